#!/usr/bin/env bash
# Benchmark: validate every config upstream ships (35 files), kiln vs a reference validator,
# on the same inputs in the same run. Prints both medians and the ratio.
#
#   scripts/bench-validate.sh [path/to/kiln] [runs]
#
# The reference is Debian's python3-jsonschema checking the same files against `kiln schema`
# (structure and types only; upstream's Go imageconfigvalidator cannot be built on this machine,
# which has no access to the Go module proxy). kiln does strictly more work: every upstream
# rule plus reading and checking every package list.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${1:-out/bin/kiln}
RUNS=${2:-15}
scripts/install-host-deps.sh test
exec /usr/bin/python3 - "$KILN" "$RUNS" <<'PY'
import glob, json, statistics, subprocess, sys, time
kiln, runs = sys.argv[1], int(sys.argv[2])
configs = sorted(glob.glob("tests/azl-compat/imageconfigs/*.json") + glob.glob("tests/azl-compat/resources-imageconfigs/*.json"))
schema = subprocess.check_output([kiln, "schema"]).decode()
reference = f"""
import json, sys, jsonschema
schema = json.loads(sys.stdin.read())
v = jsonschema.validators.validator_for(schema)(schema)
bad = [p for p in sys.argv[1:] if not v.is_valid(json.load(open(p)))]
sys.exit(1 if bad else 0)
"""
def timed(cmd, stdin=None):
    t = time.perf_counter()
    subprocess.run(cmd, input=stdin, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t
def median(cmd, stdin=None):
    timed(cmd, stdin)  # warm the page cache
    return statistics.median(timed(cmd, stdin) for _ in range(runs))
k_all = median([kiln, "validate", *configs])
k_each = statistics.median(sum(timed([kiln, "validate", c]) for c in configs) for _ in range(max(3, runs // 5)))
ref = median(["/usr/bin/python3", "-c", reference, *configs], schema.encode())
print(f"configs: {len(configs)}, runs: {runs} (medians)")
print(f"kiln validate, all configs in one process:      {k_all*1000:8.1f} ms")
print(f"kiln validate, one process per config (make):   {k_each*1000:8.1f} ms")
print(f"reference (python3-jsonschema, schema only):    {ref*1000:8.1f} ms")
print(f"ratio reference / kiln (one process):           {ref/k_all:8.1f}x")
PY
