#!/bin/bash
# PostInstallScript of core-container: kiln's implementation of what microsoft/azurelinux
# toolkit/imageconfigs/postinstallscripts/core-container/cleanup.sh (branch 3.0) does. A
# container has no use for a kernel and boot loader (/boot), kernel sources (/usr/src), home
# directories or the logs of the package installs: their contents go (/usr/src itself too).
# As upstream's, the status is that of the last removal (/var/log's). See README.md here.

shopt -s nullglob   # an empty directory is nothing to remove

echo "cleanup: removing what /boot holds"
rm -rf -- /boot/*
echo "cleanup: removing /usr/src"
rm -rf -- /usr/src/
echo "cleanup: removing what /home holds"
rm -rf -- /home/*
echo "cleanup: removing what /var/log holds"
rm -rf -- /var/log/*
