#!/bin/bash
# FinalizeImageScript of marketplace-gen2-cvm: kiln's implementation of what
# microsoft/azurelinux toolkit/imageconfigs/scripts/setup_cvm_image.sh (branch 3.0) does. The
# config mounts the ESP at /efi; what the packages installed under /boot/efi (the EFI boot
# binaries) moves onto it, /boot/efi becomes a symlink to ../efi, and /etc/fstab is emptied
# (one newline), the confidential VM's partitions being found without it. Any step failing
# fails the build, as upstream's `set -e` does. See README.md here.
set -euo pipefail

die() { echo "setup_cvm_image: $*" >&2; exit 1; }

[[ -d /boot/efi && ! -L /boot/efi ]] || die "/boot/efi is not a directory in the image"
[[ -d /efi ]] || die "/efi (the ESP's mount point) does not exist in the image"

echo "setup_cvm_image: copying /boot/efi onto the ESP at /efi"
cp -a /boot/efi/. /efi/
echo "setup_cvm_image: /boot/efi -> ../efi"
rm -rf /boot/efi
ln -s ../efi /boot/efi

echo "setup_cvm_image: emptying /etc/fstab"
printf '\n' > /etc/fstab
