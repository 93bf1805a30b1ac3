#!/usr/bin/env bash
# Checks the Makefile's promises (issue #12's findings about make):
#   - `make image` installs the build's host packages, not only the sample repository's;
#   - upstream's CONFIG_BASE_DIR, LOG_LEVEL and LOG_COLOR reach kiln;
#   - any config has an offline route: SAMPLE_REPO=y DISABLE_UPSTREAM_REPOS=y;
#   - `make clean` keeps the downloads (`make clean-downloads` removes them);
#   - building kiln ignores SOURCE_DATE_EPOCH (a reproducible image build recompiled kiln);
#   - two `make kiln` at once both succeed and leave a working out/bin/kiln;
#   - a second, unchanged `make image` is up to date.
# The first checks read `make -n`; the last two run make (kiln and the sample repository must be
# built: `make kiln sample-repo`).
#
#   tests/make-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/kiln-make-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAILED: $*"; }
# dry WHAT MAKE-ARGS...: what `make -n MAKE-ARGS` would run, continuation lines joined.
dry() { make -n "$@" 2>&1 | sed -e ':a' -e '/\\$/N; s/\\\n//; ta'; }
# expect WHAT PATTERN MAKE-ARGS...: `make -n MAKE-ARGS` runs a line matching PATTERN.
expect() {
    local what=$1 pattern=$2 out
    shift 2
    out=$(dry "$@")
    if grep -qE -- "$pattern" <<<"$out"; then ok "$what"; else bad "$what: make -n $* has no /$pattern/"; fi
}
refuse() {
    local what=$1 pattern=$2 out
    shift 2
    out=$(dry "$@")
    if grep -qE -- "$pattern" <<<"$out"; then bad "$what: make -n $* has /$pattern/"; else ok "$what"; fi
}

expect "make image installs the build's host packages" 'install-host-deps\.sh build' image
expect "CONFIG_BASE_DIR reaches kiln" '--base-dir /tmp/kiln-base( |$)' image \
    CONFIG_FILE=imageconfigs/demo-legacy.json CONFIG_BASE_DIR=/tmp/kiln-base
expect "LOG_LEVEL=debug is -v" 'kiln build .* -v( |$)' image LOG_LEVEL=debug
expect "LOG_LEVEL=warn is -q" 'kiln build .* -q( |$)' image LOG_LEVEL=warn
expect "LOG_COLOR reaches kiln" '--color never' image LOG_COLOR=never
expect "SAMPLE_REPO=y builds any config offline" \
    'kiln build --config imageconfigs/demo-legacy.json --repo out/sample-repo .*--disable-upstream-repos' \
    image CONFIG_FILE=imageconfigs/demo-legacy.json SAMPLE_REPO=y DISABLE_UPSTREAM_REPOS=y
refuse "make clean keeps the downloads" 'var/cache/kiln' clean
expect "make clean-downloads removes them" 'rm -rf /var/cache/kiln/debs' clean-downloads
expect "kiln is built without SOURCE_DATE_EPOCH" 'env -u SOURCE_DATE_EPOCH .*cargo build' kiln

# Two `make kiln` at once (cargo's own lock serialises the compile; each installs the binary
# under a temporary name and renames it).
make -s kiln > "$tmp/a.log" 2>&1 & a=$!
make -s kiln > "$tmp/b.log" 2>&1 & b=$!
if wait "$a" && wait "$b" && out/bin/kiln --version > /dev/null; then
    ok "two make kiln at once"
else
    bad "two make kiln at once: $(cat "$tmp/a.log" "$tmp/b.log" | tail -n 5)"
fi

# An unchanged `make image` is up to date (the demo into scratch folders).
flags="--output-dir $tmp/images --build-dir $tmp/build --log-dir $tmp/logs --package-cache $tmp/cache"
if make -s image KILN_BUILD_FLAGS="$flags" > "$tmp/first.log" 2>&1 &&
    make -s image KILN_BUILD_FLAGS="$flags" > "$tmp/second.log" 2>&1 &&
    grep -q "up to date" "$tmp/second.log"; then
    ok "a second make image is up to date"
else
    bad "a second make image: $(tail -n 5 "$tmp/first.log" "$tmp/second.log")"
fi

echo "make-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
