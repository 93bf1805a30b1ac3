#!/bin/sh
# Runs inside the image after its packages are installed; the boot tests read this file.
set -e
echo "built by kiln: ${1:-demo}" > /etc/kiln-postinstall
