#!/usr/bin/env bash
# Benchmark: the installer ISO of one staged tree (~500 MB: upstream's ISO layout plus 2,000
# small, 200 medium and 10 large files of random bytes) written by kiln-iso (its mkiso example)
# and by `xorriso -as mkisofs` with upstream's options (SPEC §5.2) plus a hybrid GPT with the
# EFI image as its EFI System Partition (`-efi-boot-part --efi-boot-image
# --protective-msdos-label`), in one hyperfine run. Both get Joliet off, as upstream's line has
# it. Outputs go to OUTDIR (default /dev/shm, to measure the writers rather than this shared
# machine's disk). Prints times, the ratio and the sizes.
#
#   scripts/bench-iso.sh [runs] [workdir] [outdir]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
WORK=${2:-$(mktemp -d /var/tmp/kiln-bench-iso.XXXXXX)}
OUTDIR=${3:-/dev/shm/kiln-bench-iso}
for tool in hyperfine xorriso; do
    command -v $tool >/dev/null || { echo "install $tool (scripts/install-host-deps.sh test)" >&2; exit 2; }
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -q -p kiln-iso --example mkiso
MKISO=$CARGO_TARGET_DIR/release/examples/mkiso
mkdir -p "$OUTDIR"
trap 'rm -rf "$OUTDIR"' EXIT
stage=$WORK/stage
if [[ ! -f $stage/.complete ]]; then
    rm -rf "$stage"
    mkdir -p "$stage"/{boot/grub2,efi/boot,isolinux,config,RPMS/x86_64}
    python3 - "$stage" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(13)
def put(path, size):
    with open(os.path.join(root, path), "wb") as f:
        f.write(rnd.randbytes(size))
for i in range(2000):
    d = f"RPMS/x86_64/small-{i // 200}"
    os.makedirs(os.path.join(root, d), exist_ok=True)
    put(f"{d}/package-{i}-1.0-1.azl3.x86_64.rpm", rnd.randint(1 << 10, 64 << 10))
for i in range(200):
    put(f"RPMS/x86_64/medium-{i}-2.0-1.azl3.x86_64.rpm", rnd.randint(256 << 10, 2 << 20))
for i in range(10):
    put(f"RPMS/x86_64/large-{i}-3.0-1.azl3.x86_64.rpm", 20 << 20)
put("isolinux/isolinux.bin", 38 << 10)
put("isolinux/vmlinuz", 12 << 20)
put("isolinux/initrd.img", 60 << 20)
put("efi/boot/bootx64.efi", 950 << 10)
put("efi/boot/grubx64.efi", 2 << 20)
open(os.path.join(root, "boot/grub2/grub.cfg"), "w").write("set timeout=0\n")
open(os.path.join(root, "isolinux/isolinux.cfg"), "w").write("default Installer\n")
open(os.path.join(root, "config/unattended_config.json"), "w").write("{}\n")
PY
    "$MKISO" efiboot "$stage/efi/boot" "$stage/boot/grub2/efiboot.img" --epoch 1700000000 >/dev/null
    touch "$stage/.complete"
fi
find "$stage" -type f -exec cat {} + >/dev/null  # warm the page cache

kiln_iso=$OUTDIR/kiln.iso
xorriso_iso=$OUTDIR/xorriso.iso
json=$OUTDIR/bench.json
hyperfine -N --runs "$RUNS" --warmup 1 --export-json "$json" \
    -n kiln "$MKISO -V CDROM -b isolinux/isolinux.bin -c isolinux/boot.cat -e boot/grub2/efiboot.img --hybrid --epoch 1700000000 $stage $kiln_iso" \
    -n xorriso "xorriso -as mkisofs -quiet -R -l -D -o $xorriso_iso -V CDROM -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table -eltorito-alt-boot -e boot/grub2/efiboot.img -no-emul-boot -efi-boot-part --efi-boot-image --protective-msdos-label $stage" >/dev/null
python3 - "$json" "$kiln_iso" "$xorriso_iso" "$(du -sb --exclude=.complete "$stage" | cut -f1)" <<'PY'
import json, os, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
k, x = r["kiln"], r["xorriso"]
print(f"staged tree: {int(sys.argv[4]) / 1e6:.0f} MB; {len(k['times'])} runs each, median seconds (min–max)")
for name, res, iso in (("kiln", k, sys.argv[2]), ("xorriso", x, sys.argv[3])):
    st = os.stat(iso)
    print(f"{name:8} {res['median']:7.3f} s ({min(res['times']):.3f}–{max(res['times']):.3f})"
          f"  ISO {st.st_size / 1e6:8.1f} MB, {st.st_blocks * 512 / 1e6:8.1f} MB allocated")
print(f"xorriso/kiln: {x['median'] / k['median']:.2f}x")
PY
