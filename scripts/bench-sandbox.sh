#!/usr/bin/env bash
# Benchmark: what kiln's build sandbox costs per step. Runs `/bin/true` in a busybox image root
# through the sandbox (new namespaces, private /dev, /proc, /sys, /run, pivot_root) and through a
# plain `chroot` (what kiln did before, and what upstream's imager does without its bind
# mounts), in one run, and prints both means and the ratio. As root.
#
#   scripts/bench-sandbox.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-50}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "install hyperfine" >&2; exit 2; }
cargo build --release -q --example sandbox-run -p kiln-sandbox
RUNNER=$PWD/target/release/examples/sandbox-run
root=$(mktemp -d /tmp/kiln-bench-sandbox.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin"
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/true"
ln -s busybox "$root/bin/sh"
json=$root.json
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$json" \
    -n chroot "chroot $root /bin/true" \
    -n sandbox "$RUNNER $root /bin/true" \
    -n sandbox-host-view "$RUNNER --host $root /usr/bin/true" >/dev/null
python3 - "$json" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
for name, mean in r.items():
    print(f"{name:18} {mean * 1000:7.2f} ms per step")
print(f"sandbox/chroot: {r['sandbox'] / r['chroot']:.1f}x ({(r['sandbox'] - r['chroot']) * 1000:.1f} ms more per step)")
PY
rm -f "$json"
