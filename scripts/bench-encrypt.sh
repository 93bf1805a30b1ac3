#!/usr/bin/env bash
# Benchmark: kiln-crypt writes a 2 GiB encrypted root partition (LUKS1 aes-xts-plain64 + LVM2)
# from a 2 GiB plain filesystem image made by mke2fs (sparse: encryption costs the same for
# every byte, and every byte of the partition is written), next to this CPU's limit for the
# cipher: `cryptsetup benchmark -c aes-xts-plain64 -s 256`. That needs the kernel's AF_ALG
# (algif_skcipher); where it is missing (containers) the script says so and uses
# `openssl speed -evp aes-128-xts -bytes 512` instead: the same cipher (a 256-bit XTS key is two
# AES-128 keys) on 512-byte sectors, one core, as cryptsetup measures it. Also prints kiln's
# cipher alone in memory (one core, all cores) and the xts-mode crate's speed.
# The I/O floor is dd writing the same number of zeros to the same place. Runs are
# interleaved and medians printed; PBKDF2 is fixed at cryptsetup's minimum so that only
# the payload is timed. The output goes to OUTDIR (default /dev/shm) to time kiln, not the disk.
#
#   scripts/bench-encrypt.sh [runs] [outdir]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
OUTDIR=${2:-/dev/shm/kiln-bench-encrypt}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --locked -q -p kiln-crypt --example encrypt
exec /usr/bin/python3 - "$CARGO_TARGET_DIR/release/examples/encrypt" "$RUNS" "$OUTDIR" <<'PY'
import os, re, shutil, statistics, subprocess, sys, tempfile
enc, runs, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(outdir, exist_ok=True)
GiB, MiB = 1 << 30, 1 << 20
part_size = 2 * GiB
lv = int(subprocess.check_output([enc, "lv-size", str(part_size)]))
work = tempfile.mkdtemp(prefix="kiln-bench-encrypt.", dir="/var/tmp")
fs = os.path.join(work, "fs.img")
root = os.path.join(work, "root")
os.makedirs(os.path.join(root, "usr"))
with open(os.path.join(root, "usr", "data.bin"), "wb") as f:
    f.write(os.urandom(64 * MiB))
subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", root, fs, f"{lv // 1024}k"], check=True)
out = os.path.join(outdir, "part.img")

def kiln():
    if os.path.exists(out):
        os.remove(out)
    r = subprocess.run([enc, out, str(part_size), fs, "--seed", "bench", "--iterations", "1000,1000"],
                       check=True, capture_output=True, text=True).stdout
    return float(re.search(r"^mb_per_s=([\d.]+)", r, re.M).group(1))

def floor():
    """Writing 2 GiB of zeros to the same place with dd (and fsync): the I/O floor."""
    f = os.path.join(outdir, "floor.img")
    p = subprocess.run(["dd", "if=/dev/zero", f"of={f}", "bs=4M", f"count={part_size // (4 * MiB)}", "conv=fsync"],
                       check=True, capture_output=True, text=True)
    os.remove(f)
    return float(re.search(r"copied, ([\d.]+) s", p.stderr).group(1))

def cryptsetup():
    p = subprocess.run(["cryptsetup", "benchmark", "-c", "aes-xts-plain64", "-s", "256"],
                       capture_output=True, text=True)
    m = re.search(r"aes-xts\s+256b\s+([\d.]+) MiB/s\s+([\d.]+) MiB/s", p.stdout)
    if m:
        return float(m.group(1)) * MiB / 1e6, "cryptsetup benchmark (kernel aes-xts, encryption)"
    p = subprocess.run(["openssl", "speed", "-elapsed", "-seconds", "3", "-evp", "aes-128-xts", "-bytes", "512"],
                       capture_output=True, text=True)
    m = re.search(r"^AES-128-XTS\s+([\d.]+)k", p.stdout, re.M)
    if not m:
        sys.exit("neither cryptsetup benchmark nor openssl speed gave a figure")
    return float(m.group(1)) * 1000 / 1e6, "openssl speed -evp aes-128-xts -bytes 512 (cryptsetup benchmark: no AF_ALG here)"

def speed():
    r = subprocess.run([enc, "speed", "512"], check=True, capture_output=True, text=True).stdout
    return {k: float(v) for k, v in re.findall(r"^(\w+)_mb_per_s=([\d.]+)", r, re.M)}

kilns, refs, speeds, floors, ref_name = [], [], [], [], ""
for _ in range(runs):
    kilns.append(kiln())
    floors.append(part_size / floor() / 1e6)
    ref, ref_name = cryptsetup()
    refs.append(ref)
    speeds.append(speed())
os.remove(out)
shutil.rmtree(work)
k, c = statistics.median(kilns), statistics.median(refs)
med = lambda key: statistics.median(s[key] for s in speeds)
print(f"2 GiB partition from a {lv / GiB:.3f} GiB ext4 image, output in {outdir}; {runs} interleaved runs, medians; {os.cpu_count()} CPUs")
print(f"  kiln-crypt, whole partition written and synced: {k:8.0f} MB/s")
print(f"  I/O floor: dd of zeros to the same place:      {statistics.median(floors):8.0f} MB/s")
print(f"  CPU limit for aes-xts-plain64, one core:        {c:8.0f} MB/s  [{ref_name}]")
print(f"  ratio kiln / limit:                             {k / c:8.2f}   (kiln / I/O floor: {k / statistics.median(floors):.2f})")
print(f"  kiln cipher in memory, all cores:               {med('batched_all_cores'):8.0f} MB/s")
print(f"  kiln cipher in memory, one core:                {med('batched_1core'):8.0f} MB/s   (ratio to the limit: {med('batched_1core') / c:.2f})")
print(f"  xts-mode crate, one block at a time, one core:  {med('xts_mode'):8.0f} MB/s")
PY
