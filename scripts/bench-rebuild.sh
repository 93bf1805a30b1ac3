#!/usr/bin/env bash
# Benchmark: the edit-build-boot loop (docs/cache.md), in one run, for demo-efi on the sample
# repository and for core-efi on the realistic distribution (when its RPMs are there):
#
#   cold      kiln build with an empty package-root cache (installs, and fills the cache)
#   no-op     `make image` of the same config into the same folders, nothing changed
#             ("up to date")
#   rebuild   kiln build after a PostInstallScript change ("package root: cached")
#
# and checks with cmp that the rebuild's image equals a cold build (--no-cache) of the changed
# config, with one SOURCE_DATE_EPOCH. Prints each time and the ratios cold/rebuild, cold/no-op.
# A config that fails to build is skipped with the reason (the last lines of its log).
#
#   scripts/bench-rebuild.sh [KILN] [RPM_DIR] [CONFIG]
#     KILN     default out/bin/kiln
#     RPM_DIR  the realistic distribution (default: out/RPMS, `make distro`)
#     CONFIG   the realistic config (default: tests/azl-compat/imageconfigs/core-efi.json)
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=$(realpath "${1:-out/bin/kiln}")
RPM_DIR=${2:-}
if [ -z "$RPM_DIR" ]; then
    for d in out/RPMS; do
        if ls "$d"/*.rpm >/dev/null 2>&1; then RPM_DIR=$d; break; fi
    done
fi
CORE_CONFIG=${3:-tests/azl-compat/imageconfigs/core-efi.json}
REPO=$PWD/out/sample-repo
[ -f "$REPO/repodata/repomd.xml" ] || { echo "run make sample-repo first" >&2; exit 2; }
work=$(mktemp -d /tmp/kiln-bench-rebuild.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000
now() { date +%s.%N; }
secs() { awk "BEGIN { printf \"%.2f\", $2 - $1 }"; }

# A copy of CONFIG in DIR whose first SystemConfig also runs DIR/bench-postinstall.sh (an
# absolute path; the config's other paths stay relative to its own folder, given as --base-dir).
# Packages the realistic distribution could not provide ($UNAVAILABLE: its unavailable.txt) are
# left out of copies of the package lists, and said.
with_script() {
    local config=$1 dir=$2
    mkdir -p "$dir"
    printf '#!/bin/sh\necho one > /etc/kiln-bench\n' > "$dir/bench-postinstall.sh"
    chmod +x "$dir/bench-postinstall.sh"
    /usr/bin/python3 - "$config" "$dir" "${UNAVAILABLE:-}" "${NO_MKCONFIG:-}" <<'EOF'
import json, os, sys
config, dir, unavailable, no_mkconfig = sys.argv[1:5]
gone = set()
if unavailable and os.path.exists(unavailable):
    gone = {l.split(":")[0].strip() for l in open(unavailable) if l.strip()}
base = os.path.dirname(os.path.realpath(config))
c = json.load(open(config))
sc = c["SystemConfigs"][0]
sc.setdefault("PostInstallScripts", []).append({"Path": os.path.join(dir, "bench-postinstall.sh")})
if no_mkconfig:
    sc["EnableGrubMkconfig"] = False
lists = []
for i, path in enumerate(sc.get("PackageLists", [])):
    full = os.path.join(base, path)
    doc = json.load(open(full))
    left = [p for p in doc["packages"] if p.split("=")[0] not in gone]
    if len(left) != len(doc["packages"]):
        print(f"  (left out of {path}: {', '.join(sorted(set(doc['packages']) - set(left)))}: not in the distribution)")
        doc["packages"] = left
        full = os.path.join(dir, f"list{i}-{os.path.basename(path)}")
        json.dump(doc, open(full, "w"), indent=4)
    lists.append(full)
if lists:
    sc["PackageLists"] = lists
json.dump(c, open(os.path.join(dir, os.path.basename(config)), "w"), indent=4)
EOF
}

# bench NAME CONFIG MAKE_ARGS SOURCES...: one config's three numbers.
bench() {
    local name=$1 config=$2 make_args=$3
    shift 3
    local dir=$work/$name base image
    base=$(dirname "$(realpath "$config")")
    with_script "$config" "$dir/config"
    image=$dir/config/$(basename "$config")
    build() {  # build OUT [flags]: kiln build of the bench copy into $dir/OUT
        local out=$1
        shift
        "$KILN" build "$image" --base-dir "$base" "$@" --output-dir "$dir/$out/images" \
            --build-dir "$dir/$out/build" --log-dir "$dir/$out/logs" \
            --package-cache "$dir/cache" "${SOURCES[@]}" > "$dir/$out.log" 2>&1
    }
    SOURCES=("$@")
    local t0 t1 t2 t3 t4 t5
    t0=$(now)
    if ! build warm; then
        echo "$name: skipped, the cold build failed:"
        tail -n 4 "$dir/warm.log" | sed 's/^/    /'
        if grep -q "grub2-mkconfig failed" "$dir/warm.log" && [ -z "${NO_MKCONFIG:-}" ]; then
            echo "$name: measured instead with EnableGrubMkconfig false (kiln writes grub.cfg):"
            NO_MKCONFIG=y bench "$name-no-mkconfig" "$config" "$make_args" "$@"
        fi
        return 0
    fi
    t1=$(now)
    # The no-op: `make image` of the same config into the same folders, twice, the second timed.
    local flags="--output-dir $dir/warm/images --build-dir $dir/warm/build --log-dir $dir/warm/logs --package-cache $dir/cache"
    make -s image CONFIG_FILE="$image" CONFIG_BASE_DIR="$base" $make_args KILN_BUILD_FLAGS="$flags" > "$dir/make1.log" 2>&1 || true
    t2=$(now)
    if ! make -s image CONFIG_FILE="$image" CONFIG_BASE_DIR="$base" $make_args KILN_BUILD_FLAGS="$flags" > "$dir/make2.log" 2>&1; then
        echo "$name: make image failed:"
        tail -n 4 "$dir/make2.log" | sed 's/^/    /'
    fi
    t3=$(now)
    grep -q "up to date" "$dir/make2.log" || echo "$name: warning: the second make image was not up to date"
    printf '#!/bin/sh\necho two > /etc/kiln-bench\n' > "$dir/config/bench-postinstall.sh"
    t4=$(now)
    build warm
    t5=$(now)
    grep -q "package root: cached" "$dir/warm.log" || echo "$name: warning: the rebuild did not use the package-root cache"
    build cold --no-cache
    local same=differ
    cmp -s "$dir"/warm/images/* "$dir"/cold/images/* && same=identical
    local cold noop rebuild
    cold=$(secs "$t0" "$t1") noop=$(secs "$t2" "$t3") rebuild=$(secs "$t4" "$t5")
    printf '%s:\n  cold build            %7.2f s\n  no-op make image      %7.2f s\n  rebuild (script)      %7.2f s\n' \
        "$name" "$cold" "$noop" "$rebuild"
    printf '  ratio cold/rebuild    %7.1fx\n  ratio cold/no-op      %7.1fx\n  cached rebuild vs cold build of the change (cmp, SOURCE_DATE_EPOCH=%s): %s\n' \
        "$(awk "BEGIN { print $cold / $rebuild }")" "$(awk "BEGIN { print $cold / $noop }")" "$SOURCE_DATE_EPOCH" "$same"
    # Where the rebuild's time went (kiln's per-step lines).
    grep -E '^\[ *[0-9.]+ s\] (package root: cached|writing the boot configuration|making ext4|== roast|total )' \
        "$dir/warm/logs/"*.log | sed 's/^/  rebuild: /'
}

bench demo-efi imageconfigs/demo-efi.json "SAMPLE_REPO=y DISABLE_UPSTREAM_REPOS=y" --repo "$REPO" --disable-upstream-repos
if [ -n "$RPM_DIR" ] && [ -f "$CORE_CONFIG" ]; then
    RPM_DIR=$(realpath "$RPM_DIR")
    UNAVAILABLE=$RPM_DIR/unavailable.txt
    bench core-efi "$CORE_CONFIG" "RPMS_DIR=$RPM_DIR DISABLE_UPSTREAM_REPOS=y" \
        --rpm-dir "$RPM_DIR" --disable-upstream-repos
else
    echo "core-efi: skipped, no realistic distribution (make distro, or pass its RPM dir)"
fi
