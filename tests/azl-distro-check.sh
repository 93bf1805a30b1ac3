#!/usr/bin/env bash
# Checks the realistic distribution (make distro) as package managers see it:
#   - rpm -K accepts every package (digests);
#   - every package has its sonames and interpreters resolved inside the repository (libsolv's
#     installcheck: each package is installable);
#   - each supported upstream config's package set (its package lists, KernelOptions' kernel,
#     azurelinux-release, grub2-pc, as kiln fetch requests them) resolves with dnf and with
#     `kiln resolve`, and both choose the same packages;
#   - the upstream names that cannot exist here (docs/azl-distro.md) fail in kiln resolve with
#     "nothing provides".
#
#   tests/azl-distro-check.sh [REPO] [KILN]     (default out/RPMS, out/bin/kiln)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(realpath "${1:-out/RPMS}")
kiln=$(realpath "${2:-out/bin/kiln}")
configs=${AZL_DISTRO_CONFIGS:-"core-efi core-legacy minimal-os core-efi-selinux qemu-guest core-container core-container-builder distroless-base distroless-minimal distroless-debug core-fips core-hwe-fips core-ova baremetal swuvm"}
# Upstream names with no package here, and why: docs/azl-distro.md.
# Packages the build left out because the Debian archive it used lacked their source are in
# $repo/unavailable.txt; a config's check resolves its lists without them (and says so).
missing_names=${AZL_DISTRO_MISSING:-"SymCrypt SymCrypt-OpenSSL linux-firmware-qlogic calamares kernel-uki kernel-drivers-accessibility kernel-drivers-sound grubby rtctl rt-setup build-essential texinfo golang"}
unavailable=$(cut -d: -f1 "$repo/unavailable.txt" 2>/dev/null | tr '\n' ' ')
missing_names="$missing_names $unavailable"
tmp=$(mktemp -d /tmp/kiln-azl-distro-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAILED: $*"; }

# 1. Signatures/digests of every package.
n=$(ls "$repo"/*.rpm | wc -l)
if out=$(rpm -K "$repo"/*.rpm 2>&1) && [ "$(grep -c 'digests OK' <<<"$out")" -eq "$n" ]; then
    ok "rpm -K: $n packages, digests OK"
else
    bad "rpm -K: $(grep -v 'digests OK' <<<"$out" | head -5)"
fi

# 2. Every package installable within the repository.
repo2solv -o "$tmp/repo.solv" "$repo"
if out=$(installcheck x86_64 "$tmp/repo.solv" 2>&1) && [ -z "$out" ]; then
    ok "installcheck: every package's dependencies are in the repository"
else
    bad "installcheck: $(grep -c "can't be installed" <<<"$out") packages cannot be installed:"
    grep 'nothing provides' <<<"$out" | sed 's/^ *//' | sort | uniq -c | sort -rn | head -20
fi

# 3. Upstream configs.
dnf_names() {  # the NEVRAs dnf chooses for an empty root (dnf's Python API), or its problem
    /usr/bin/python3 - "$repo" "$tmp/root-$1" "${@:2}" <<'EOF'
import sys, dnf
repo, root, names = sys.argv[1], sys.argv[2], sys.argv[3:]
b = dnf.Base()
b.conf.installroot = root
b.conf.substitutions["releasever"] = "3.0"
b.conf.install_weak_deps = True
b.conf.gpgcheck = False
b.repos.add_new_repo("azl", b.conf, baseurl=["file://" + repo])
b.fill_sack(load_system_repo=False)
try:
    for n in names:
        b.install(n)
    b.resolve()
except dnf.exceptions.Error as e:
    print("dnf:", e)
    sys.exit(1)
for p in sorted(str(p) for p in b.transaction.install_set):
    print(p)
EOF
}
for c in $configs; do
    cfg=tests/azl-compat/imageconfigs/$c.json
    mapfile -t pkgs < <(SKIP="$unavailable" /usr/bin/python3 - "$cfg" <<'EOF'
import json, os, sys
cfg = sys.argv[1]
c = json.load(open(cfg))
out = []
for sc in c["SystemConfigs"]:
    for pl in sc.get("PackageLists", []):
        out += json.load(open(os.path.join(os.path.dirname(cfg), pl)))["packages"]
    out += sc.get("Packages", [])
    k = (sc.get("KernelOptions") or {}).get("default")
    if k:
        out.append(k)
    if (sc.get("KernelCommandLine") or {}).get("SELinux", "off") not in ("", "off"):
        out.append(sc.get("KernelCommandLine", {}).get("SELinuxPolicy") or "selinux-policy")
out += ["azurelinux-release", "grub2-pc"]
skip = set(os.environ.get("SKIP", "").split())
print("\n".join(p for p in dict.fromkeys(out) if p not in skip))
EOF
)
    if ! kout=$("$kiln" --color never resolve --repo "$repo" "${pkgs[@]}" 2>&1); then
        bad "$c: kiln resolve: $(tail -3 <<<"$kout")"
        continue
    fi
    sort <<<"$kout" > "$tmp/kiln-$c"
    if ! dnf_names "$c" "${pkgs[@]}" > "$tmp/dnf-$c" 2>&1; then
        bad "$c: $(head -5 "$tmp/dnf-$c")"
    elif diff -u "$tmp/dnf-$c" "$tmp/kiln-$c" > "$tmp/diff-$c"; then
        ok "$c: ${#pkgs[@]} requested${unavailable:+ (without unavailable: $unavailable)}, $(wc -l < "$tmp/kiln-$c") packages; dnf and kiln resolve agree"
    else
        bad "$c: dnf and kiln resolve differ:"
        grep '^[-+][^-+]' "$tmp/diff-$c" | head -20
    fi
done

# 4. Names that cannot exist here.
for name in $missing_names; do
    if out=$("$kiln" --color never resolve --repo "$repo" "$name" 2>&1); then
        bad "$name resolves, but docs/azl-distro.md says it cannot exist here"
    elif grep -q 'nothing provides' <<<"$out"; then
        ok "$name: nothing provides it"
    else
        bad "$name: unexpected error: $out"
    fi
done
echo "azl-distro: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
