#!/usr/bin/env bash
# Installs the host packages kiln needs, by purpose, on Debian and Ubuntu.
#
#   scripts/install-host-deps.sh [--check] GROUP...
#
# Idempotent: prints nothing and changes nothing when everything is present. With --check it
# only lists what is missing (exit 1 if anything is). Groups name what the packages are for; a
# group lists only packages something in this repository uses today.
set -euo pipefail

declare -A GROUP_PACKAGES=(
    # `make test`: the JSON Schema check (tests/check_schema.py: python3 with jsonschema); the
    # disk format tests judge kiln's outputs with qemu-img (qemu-utils), the archive tests with
    # GNU tar, cpio, unsquashfs (squashfs-tools) and getfattr (attr); rpmvercmp is compared with
    # the rpm program.
    # Repository metadata tests recompress metadata with zstd.
    # The sample repository check writes partition tables with sfdisk (fdisk); dnf answers the
    # same dependency queries as kiln's package pool; parted makes the reference partition tables,
    # sgdisk (gdisk) checks kiln's. kiln-fs makes filesystems with dosfstools, mtools and
    # xfsprogs (e2fsprogs is always there). Password hashes are checked with openssl and
    # python3's crypt (libxcrypt); account files with shadow-utils (passwd). The sandbox tests
    # run a static busybox as the image (busybox-static). The rootless tests run kiln as an
    # ordinary user, which maps its user namespace with newuidmap/newgidmap (uidmap).
    # kiln-crypt's encrypted volumes are judged by cryptsetup (cryptsetup-bin: luksDump and
    # open --test-passphrase work on a plain file), lvm2's pvck (reads the LVM label and
    # metadata from the decrypted payload) and an independent decryption in Python
    # (python3-cryptography). kiln-iso's ISOs are judged by xorriso (El Torito report,
    # extraction) and isoinfo (genisoimage), and its boot test uses GRUB's BIOS and UEFI images
    # (grub-pc-bin, grub-efi-amd64-bin). The installer's network download (runliveinstaller's
    # fetch_tree) is run with the host's wget against a test's HTTP server.
    [test]="python3 python3-jsonschema wget qemu-utils cpio squashfs-tools attr rpm zstd createrepo-c fdisk dnf parted gdisk dosfstools mtools xfsprogs openssl passwd gpg libsolv-tools strace busybox-static uidmap cryptsetup-bin lvm2 python3-cryptography xorriso genisoimage grub-pc-bin grub-efi-amd64-bin rdiff time"
    # `make image` / `kiln build`: rpm installs the packages (and rpm2cpio reads grub2-pc's
    # payload), e2fsprogs, dosfstools + mtools and xfsprogs make the filesystems, grub-mkimage
    # (grub-common) the BIOS core image, mksquashfs (squashfs-tools) squashfs artifacts, and
    # newuidmap/newgidmap (uidmap) map a rootless build's user namespace, rdiff makes rdiff
    # partition artifacts; `kiln iso` puts syslinux's isolinux.bin, isohdpfx.bin (isolinux) and
    # ldlinux.c32 (syslinux-common) on the ISO for BIOS boot, as upstream's isomaker puts its copies.
    [build]="rpm e2fsprogs dosfstools mtools xfsprogs grub-common squashfs-tools uidmap rdiff isolinux syslinux-common"
    # Boot tests (`kiln boot-test`): QEMU and OVMF (UEFI; SeaBIOS comes with QEMU).
    [boot]="qemu-system-x86 ovmf"
    # `make sample-repo`: rpmbuild, createrepo_c, dpkg-deb (payloads from Debian packages),
    # grub-mkimage (grubx64.efi), depmod (modules.dep).
    [sample-repo]="rpm createrepo-c dpkg grub-common kmod"
    # `make distro` (azl-distro/build.py): python3, apt-get download, dpkg-deb, rpmbuild,
    # createrepo_c, grub-mkimage (grubx64.efi), depmod (the kernel's modules.dep), gcc (the
    # Hyper-V daemons from Debian's kernel source); its check
    # resolves with dnf and libsolv's installcheck.
    [distro]="python3 apt dpkg rpm createrepo-c grub-common kmod dnf libsolv-tools gcc libc6-dev linux-libc-dev"
)

check_only=false
groups=()
for arg in "$@"; do
    case "$arg" in
        --check) check_only=true ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *)
            if [[ -z "${GROUP_PACKAGES[$arg]+x}" ]]; then
                echo "install-host-deps: unknown group '$arg' (known: ${!GROUP_PACKAGES[*]})" >&2
                exit 2
            fi
            groups+=("$arg") ;;
    esac
done
[[ ${#groups[@]} -gt 0 ]] || { echo "usage: $0 [--check] GROUP... (known: ${!GROUP_PACKAGES[*]})" >&2; exit 2; }

# One dpkg-query for every package (a no-op `make image` runs this script each time).
wanted=()
for g in "${groups[@]}"; do
    wanted+=(${GROUP_PACKAGES[$g]})
done
declare -A installed=()
while IFS=$'\t' read -r pkg status; do
    [[ $status == 'install ok installed' ]] && installed[$pkg]=1
done < <(dpkg-query -W -f='${Package}\t${Status}\n' "${wanted[@]}" 2>/dev/null || true)
missing=()
for pkg in "${wanted[@]}"; do
    [[ -n "${installed[$pkg]+x}" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if $check_only; then
    echo "missing host packages: ${missing[*]}"
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "install-host-deps: missing packages (${missing[*]}) and no apt-get here; install the equivalents by hand" >&2
    exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "install-host-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
# Debian's qemu-system-x86 needs the qemu-utils of its own release: a newer qemu-utils from
# elsewhere (a backport) is replaced by bookworm's when QEMU comes in.
for pkg in "${missing[@]}"; do
    if [[ $pkg == qemu-system-x86 ]] && dpkg --compare-versions \
        "$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || echo 0)" gt 1:8; then
        missing+=("qemu-utils/bookworm" "qemu-block-extra/bookworm")
    fi
done
echo "install-host-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; an old list may name versions that are gone.
if ! "${sudo[@]}" apt-get install -y -qq --allow-downgrades --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --allow-downgrades --no-install-recommends "${missing[@]}" >/dev/null
fi
