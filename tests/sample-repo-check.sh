#!/usr/bin/env bash
# Checks the sample repository as a package manager sees it: the metadata lists every package,
# and a base system installs with `rpm --root`, running its scriptlets inside the root (busybox
# applet links, the initramfs built in %posttrans, sample-app's %pre/%post/%posttrans).
#
#   tests/sample-repo-check.sh [REPO]      (default out/sample-repo; needs root for rpm --root,
#                                           sfdisk for the partition-table images)
set -euo pipefail
repo=$(realpath "${1:-out/sample-repo}")
root=$(mktemp -d /tmp/kiln-sample-root.XXXXXX)
trap 'rm -rf "$root"' EXIT
passed=0 failed=0
check() {
    local what=$1; shift
    if "$@" >/dev/null 2>&1; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $what"; fi
}

primary=$(ls "$repo"/repodata/*-primary.xml.gz)
check "repodata lists 23 packages" test "$(zcat "$primary" | grep -c '<package type="rpm">')" -eq 23
check "three versions of sample-libfoo" test "$(ls "$repo"/sample-libfoo-*.rpm | wc -l)" -eq 3
check "rich dependency kept" sh -c "rpm -qp --requires '$repo'/sample-rich-*.rpm | grep -qx '(sample-tools if sample-app else sample-minimal)'"
check "obsoletes kept" sh -c "rpm -qp --obsoletes '$repo'/sample-new-*.rpm | grep -q 'sample-old < 2.0'"
check "weak dependency kept" sh -c "rpm -qp --recommends '$repo'/sample-app-*.rpm | grep -qx sample-docs"
check "epoch outranks version" sh -c "rpm -qp --qf '%{EPOCH}' '$repo'/sample-epoch-1.0-*.rpm | grep -qx 1"

# Debian's rpm warns that it is not Debian's package manager; that is expected here.
quiet_rpm() { rpm "$@" 2> >(grep -v -e 'should not be used directly' -e 'assuming you know' >&2); }
quiet_rpm --root "$root" --initdb
quiet_rpm --root "$root" -i --quiet "$repo"/filesystem-*.rpm "$repo"/busybox-*.rpm \
    "$repo"/azurelinux-release-*.rpm "$repo"/shadow-utils-*.rpm "$repo"/kernel-*.rpm \
    "$repo"/initramfs-*.rpm "$repo"/grub2-efi-binary-*.rpm "$repo"/shim-*.rpm \
    "$repo"/sample-app-*.rpm "$repo"/sample-libfoo-1.1-*.rpm "$repo"/sample-mta-postfix-*.rpm
kver=$(ls "$root/lib/modules")
check "/bin/sh is busybox" test "$(readlink "$root/bin/sh")" = busybox
check "busybox %post made the applet links" test -L "$root/sbin/getty" -a -L "$root/bin/login"
check "inittab mounts devtmpfs and starts a getty on ttyS0" sh -c "grep -q devtmpfs '$root/etc/inittab' && grep -q '^ttyS0::respawn:/sbin/getty' '$root/etc/inittab'"
check "os-release says Azure Linux" grep -qx 'ID=azurelinux' "$root/etc/os-release"
check "hosts has at least six lines" test "$(wc -l < "$root/etc/hosts")" -ge 6
check "kernel and modules installed" test -f "$root/boot/vmlinuz-$kver" -a -f "$root/lib/modules/$kver/modules.dep"
check "initramfs %posttrans built the initramfs" sh -c "zcat '$root/boot/initramfs-$kver.img' | cpio -it 2>/dev/null | grep -qx init"
check "initramfs holds the xfs module" sh -c "zcat '$root/boot/initramfs-$kver.img' | cpio -it 2>/dev/null | grep -q 'xfs.ko'"
check "shim and grub at the EFI fallback path" test -f "$root/boot/efi/EFI/BOOT/bootx64.efi" -a -f "$root/boot/efi/EFI/BOOT/grubx64.efi"
check "grubx64.efi is an EFI application" sh -c "head -c 2 '$root/boot/efi/EFI/BOOT/grubx64.efi' | grep -q MZ"
check "sample-app scriptlets ran in order" test "$(tr '\n' ' ' < "$root/var/log/sample-app.log")" = "pre 1 post 1 posttrans "
check "rpmdb knows 11 packages" test "$(rpm --root "$root" -qa | wc -l)" -eq 11
# The initramfs init finds root=PARTUUID= by reading the partition table itself: compare what it
# reads from GPT and MBR images with what sfdisk wrote.
for label in gpt dos; do
    img="$root/disk-$label.img"
    truncate -s 64M "$img"
    printf 'label: %s\n,16M\n,16M\n,\n' "$label" | sfdisk -q "$img" >/dev/null
    want=$(sfdisk --json "$img" | /usr/bin/python3 -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
for i, p in enumerate(t["partitions"], 1):
    print(i, p["uuid"].lower() if t["label"] == "gpt" else "%08x-%02x" % (int(t["id"], 16), i))')
    got=$("$root/bin/busybox" sh "$root/usr/share/kiln-initramfs/init" partuuids "$img")
    check "initramfs reads $label PARTUUIDs as the kernel names them" test "$got" = "$want"
done
echo "sample repo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
