#!/usr/bin/env bash
# Benchmark: a config built by `kiln build` (warm package cache) against a reference pipeline of
# standard tools making the same kind of image from the same repository, in one run:
#
#   dnf --installroot (resolve + install with scriptlets) → sfdisk (GPT) → mkfs.vfat + mcopy
#   (ESP) and mkfs.ext4 -d at the root partition's offset → qemu-img convert -O vhdx
#
# The reference does less than kiln (no users, fstab, hostname, image-id, rpm macros, boot
# configuration, SELinux labels, scripts); both avoid loop devices. Prints each step's time, the
# totals, the ratio and kiln's peak memory.
#
#   scripts/bench-build.sh [path/to/kiln] [runs] [config] [repository]
#
# Default: demo-efi from the busybox sample. `make bench` also runs upstream's core-efi from the
# realistic distribution (out/RPMS): scripts/bench-build.sh out/bin/kiln 3
# tests/azl-compat/imageconfigs/core-efi.json out/RPMS
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=$(realpath "${1:-out/bin/kiln}")
RUNS=${2:-3}
CONFIG=$(realpath "${3:-imageconfigs/demo-efi.json}")
REPO=$(realpath "${4:-out/sample-repo}")
[ -f "$REPO/repodata/repomd.xml" ] || { echo "no repository at $REPO: run make sample-repo (or make distro)" >&2; exit 2; }
work=$(mktemp -d /tmp/kiln-bench-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000
now() { date +%s.%N; }
# What the config asks for (its package lists, Packages and kernel), and its disk size: the
# reference resolves and installs the same request.
read -r DISK_MB packages < <(/usr/bin/python3 - "$CONFIG" <<'PY'
import json, os, sys
path = sys.argv[1]
c = json.load(open(path))
base = os.path.dirname(path)
s = c["SystemConfigs"][0]
names = []
for pl in s.get("PackageLists", []):
    names += json.load(open(os.path.join(base, pl)))["packages"]
names += s.get("Packages", [])
names += [v for v in (s.get("KernelOptions") or {}).values() if v]
print(c["Disks"][0].get("MaxSize", 512), " ".join(dict.fromkeys(names)))
PY
)
echo "config: $CONFIG ($(wc -w <<<"$packages") requested packages, ${DISK_MB} MiB disk), repository: $REPO"

kiln_once() {
    # The package cache (out/build/…/package_repo) is kept between runs: warm. --no-cache: every
    # run installs and makes everything (no package-root cache, no up-to-date check), as the
    # reference does; scripts/bench-rebuild.sh measures the incremental paths.
    /usr/bin/time -f "peak-rss-kib %M" -o "$work/time" \
        "$KILN" build --no-cache --config "$CONFIG" --repo "$REPO" --disable-upstream-repos \
        --build-dir "$work/kiln-build" --output-dir "$work/kiln-out" --log-dir "$work/logs" 2>&1 |
        awk '/^\[.*\] (validate|fetch|compose|roast|total) +[0-9.]+ s$/ { print $4, $5 }'
    awk '/peak-rss-kib/ { print "peak-mib", $2 / 1024 }' "$work/time"
}

reference_once() {
    local root=$work/ref-root disk=$work/ref.raw t0 t1 t2 t3 t4 t5
    t0=$(now)
    # The last run's outputs go first, and the staged root at the end, timed: kiln's build
    # removes its previous imager output and its staged root too.
    rm -rf "$root" "$disk" "$work/ref.vhdx" "$work/esp.img"
    dnf -q -y --nogpgcheck --installroot="$root" --setopt=reposdir=/dev/null \
        --setopt=cachedir="$work/dnf-cache" --releasever=3.0 \
        --repofrompath=sample,"file://$REPO" --repo=sample install $packages >/dev/null 2>&1
    t1=$(now)
    truncate -s "${DISK_MB}M" "$disk"
    printf 'label: gpt\nstart=2048, size=131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\nstart=133120, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=rootfs\n' |
        sfdisk -q "$disk"
    t2=$(now)
    truncate -s 64M "$work/esp.img"
    mkfs.vfat "$work/esp.img" >/dev/null
    [ -d "$root/boot/efi" ] && MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -i "$work/esp.img" "$root"/boot/efi/* ::/ 2>/dev/null || true
    dd if="$work/esp.img" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
    mkfs.ext4 -q -F -b 4096 -d "$root" -E offset=$((65 * 1048576)) "$disk" $(((DISK_MB - 65) * 1024 - 16))k
    t3=$(now)
    qemu-img convert -O vhdx "$disk" "$work/ref.vhdx"
    t4=$(now)
    rm -rf "$root" "$work/esp.img"
    t5=$(now)
    echo "install $(awk "BEGIN { print $t1 - $t0 }")"
    echo "partition $(awk "BEGIN { print $t2 - $t1 }")"
    echo "filesystems $(awk "BEGIN { print $t3 - $t2 }")"
    echo "convert $(awk "BEGIN { print $t4 - $t3 }")"
    echo "cleanup $(awk "BEGIN { print $t5 - $t4 }")"
    echo "total $(awk "BEGIN { print $t5 - $t0 }")"
}

kiln_once >/dev/null   # fills the package cache
reference_once >/dev/null
for i in $(seq "$RUNS"); do
    kiln_once | sed "s/^/kiln $i /"
    reference_once | sed "s/^/ref $i /"
done | /usr/bin/python3 -c '
import sys, statistics, collections
t = collections.defaultdict(list)
for line in sys.stdin:
    who, _, step, secs = line.split()[:4]
    t[(who, step)].append(float(secs))
med = {k: statistics.median(v) for k, v in t.items()}
K, R = "kiln", "ref"
print("kiln build (warm package cache), medians:")
for s in ["validate", "fetch", "compose", "roast", "total"]:
    print(f"  {s:<12} {med[(K, s)]:7.2f} s")
peak = med[(K, "peak-mib")]
print(f"  peak memory  {peak:7.0f} MiB")
print("reference pipeline (dnf --installroot, sfdisk, mkfs.vfat+mcopy, mkfs.ext4 -d, qemu-img, rm):")
for s in ["install", "partition", "filesystems", "convert", "cleanup", "total"]:
    print(f"  {s:<12} {med[(R, s)]:7.2f} s")
ratio = med[(R, "total")] / med[(K, "total")]
print(f"ratio reference/kiln (total): {ratio:.2f}x")
'
