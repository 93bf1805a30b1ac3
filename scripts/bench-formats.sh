#!/usr/bin/env bash
# Benchmark: convert one input — a 4 GiB sparse raw disk holding 1 GiB of random data in 16
# extents — with kiln and with qemu-img (upstream's exact commands), for vhd, vhdx and qcow2,
# plus `cp --sparse=always` as the I/O floor. Runs are interleaved (kiln, qemu-img, floor, kiln,
# …) so the machine's noise falls on all alike; every command is timed including a final `sync`
# (kiln fsyncs its output before renaming it into place). Outputs go to OUTDIR (default
# /dev/shm, to measure the tools rather than this shared machine's noisy disk; pass a disk
# directory to include the disk). Prints times, ratios and peak memory.
#
#   scripts/bench-formats.sh [path/to/kiln] [runs] [workdir] [outdir]
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${1:-out/bin/kiln}
RUNS=${2:-3}
WORK=${3:-$(mktemp -d /var/tmp/kiln-bench.XXXXXX)}
OUTDIR=${4:-/dev/shm/kiln-bench-out}
exec /usr/bin/python3 - "$KILN" "$RUNS" "$WORK" "$OUTDIR" <<'PY'
import os, shutil, statistics, subprocess, sys, time
kiln, runs, work, outdir = os.path.abspath(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.makedirs(work, exist_ok=True)
os.makedirs(outdir, exist_ok=True)
src = os.path.join(work, "input.raw")
GiB, MiB = 1 << 30, 1 << 20
if not os.path.exists(src) or os.path.getsize(src) != 4 * GiB:
    with open(src, "wb") as f:
        f.truncate(4 * GiB)
        for i in range(16):
            f.seek(i * 256 * MiB + (i % 3) * MiB)
            for _ in range(64):
                f.write(os.urandom(MiB))
subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

def run(cmd, out):
    if os.path.exists(out):
        os.remove(out)
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"failed: {' '.join(cmd)}")
    os.sync()
    return time.perf_counter() - t, usage.ru_maxrss / 1024

def interleaved(cmds):
    """Runs each (cmd, out) once per round, rounds alternating, so that the machine's noise
    falls on all of them alike. Returns (median seconds, peak MiB) per command."""
    results = [[] for _ in cmds]
    for _ in range(runs):
        for i, (cmd, out) in enumerate(cmds):
            results[i].append(run(cmd, out))
            os.remove(out)
    return [(statistics.median(t for t, _ in r), max(m for _, m in r)) for r in results]

floor_cmd = (["cp", "--sparse=always", src, os.path.join(outdir, "floor.raw")], os.path.join(outdir, "floor.raw"))
print(f"input: 4 GiB sparse raw, 1 GiB of data (page cache); output to {outdir}; {runs} interleaved runs, medians, each including sync")
print(f"{'':8} {'kiln':>9} {'qemu-img':>9} {'floor':>7} {'qemu/kiln':>10} {'kiln/floor':>11} {'kiln MiB':>9} {'qemu MiB':>9}")
cases = {
    "vhd": ["qemu-img", "convert", src, "OUT", "-o", "subformat=fixed,force_size", "-O", "vpc"],
    "vhdx": ["qemu-img", "convert", src, "OUT", "-O", "vhdx"],
    "qcow2": ["qemu-img", "convert", "-O", "qcow2", src, "OUT"],
}
for fmt, qcmd in cases.items():
    kout, qout = os.path.join(outdir, f"kiln.{fmt}"), os.path.join(outdir, f"qemu.{fmt}")
    kcmd = ([kiln, "roast", "--input", src, "--output", kout, "--format", fmt], kout)
    (kt, km), (qt, qm), (ft, _) = interleaved([kcmd, ([c if c != "OUT" else qout for c in qcmd], qout), floor_cmd])
    print(f"{fmt:8} {kt:8.2f}s {qt:8.2f}s {ft:6.2f}s {qt/kt:9.2f}x {kt/ft:10.2f}x {km:9.1f} {qm:9.1f}")
    run(kcmd[0], kout)
    run([c if c != "OUT" else qout for c in qcmd], qout)
    driver = {"vhd": "vpc"}.get(fmt, fmt)
    ok = subprocess.run(["qemu-img", "compare", "-q", "-f", driver, "-F", driver, kout, qout]).returncode == 0
    print(f"{'':8} same disk contents (qemu-img compare): {ok}")
    os.remove(kout); os.remove(qout)
shutil.rmtree(outdir, ignore_errors=True)
PY
