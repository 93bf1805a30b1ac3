#!/bin/bash
# PostInstallScript of the marketplace-* configs: kiln's implementation of what
# microsoft/azurelinux toolkit/imageconfigs/additionalconfigs/configure-systemd-networkd.sh
# (branch 3.0) does. Azure VMs are configured by cloud-init, so the catch-all DHCP
# configuration systemd-networkd would otherwise apply to every en* interface is emptied (the
# file stays, empty). No such file: nothing to do. Failing to empty it fails the build, as
# upstream's does. See README.md here.

network=/etc/systemd/network/99-dhcp-en.network
if [[ -f $network ]]; then
    echo "Emptying $network"
    : > "$network"
else
    echo "No $network; nothing to empty"
fi
