#!/usr/bin/env bash
# Benchmark: resolve a 200-package request against the large generated repository (Debian's
# package index as ~66,000 rpm-md packages, scripts/gen-large-repo.py), kiln vs dnf, in the
# same run. Prints both medians and the ratio.
#
#   scripts/bench-resolve.sh [path/to/kiln] [runs]
#
# Both start from the repository on disk with warm metadata: dnf's solv cache is built by a
# first run that is not timed; kiln has no metadata cache and parses the rpm-md XML every time
# (its load is inside its time). dnf runs as a user runs it (`dnf --installroot … --assumeno
# install`, weak dependencies on as tdnf has them), so its time includes Python's start-up.
# The request: 200 names drawn at random (seed 200) from the repository, leaving out those
# that cannot be installed together. The packages each tool would install are compared too.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${1:-out/bin/kiln}
RUNS=${2:-5}
scripts/install-host-deps.sh test
REPO=$PWD/out/large-repo
[ -f "$REPO/repodata/repomd.xml" ] || /usr/bin/python3 scripts/gen-large-repo.py "$REPO"
exec /usr/bin/python3 - "$KILN" "$RUNS" "$REPO" <<'PY'
import gzip, random, re, statistics, subprocess, sys, tempfile, time
kiln, runs, repo = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with gzip.open(f"{repo}/repodata/primary.xml.gz", "rt") as f:
    names = sorted(set(re.findall(r"<name>([^<]+)</name>", f.read())))
pick = random.Random(200).sample(names, 320)
while True:  # drop what cannot be installed together until 200 resolve
    r = subprocess.run([kiln, "resolve", "--repo", repo, *pick[:200]], capture_output=True, text=True)
    if r.returncode == 0:
        break
    bad = re.findall(r'required by "([^"]+)" in the command line', r.stderr)
    if not bad:
        sys.exit(f"cannot make a request set: {r.stderr}")
    pick.remove(bad[-1])
request = pick[:200]
root, cache = tempfile.mkdtemp(prefix="kiln-bench-root-"), tempfile.mkdtemp(prefix="kiln-bench-dnf-")
dnf = ["dnf", "--nogpgcheck", f"--installroot={root}", "--setopt=reposdir=/dev/null",
       f"--setopt=cachedir={cache}", "--releasever=3.0", f"--repofrompath=large,file://{repo}",
       "--repo=large", "--setopt=install_weak_deps=True", "--assumeno", "install", *request]
def timed(cmd):
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t, out.stdout
timed(dnf)  # builds dnf's solv cache: warm metadata from here on
line = "1\t" + "\t".join(request) + "\n"
dnf_set = set(subprocess.run(["/usr/bin/python3", "crates/kiln-solve/tests/dnf_resolve.py", repo, cache],
                             input=line, capture_output=True, text=True, check=True).stdout.split())
kiln_set = set(r.stdout.split())
d = statistics.median(timed(dnf)[0] for _ in range(runs))
k = statistics.median(timed([kiln, "resolve", "--repo", repo, *request])[0] for _ in range(runs))
print(f"repository: {len(names)} names; request: {len(request)} packages; runs: {runs} (medians)")
print(f"packages to install: kiln {len(kiln_set)}, dnf {len(dnf_set)}; "
      f"only kiln: {sorted(kiln_set - dnf_set)}, only dnf: {sorted(dnf_set - kiln_set)}")
print(f"dnf  (warm solv cache):               {d*1000:8.1f} ms")
print(f"kiln (parsing the XML metadata):       {k*1000:8.1f} ms")
print(f"ratio dnf/kiln:                        {d/k:8.2f}x")
PY
