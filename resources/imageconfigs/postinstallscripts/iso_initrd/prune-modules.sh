#!/bin/sh
# The installer initrd runs kernel-hwe (Debian's generic kernel), not kernel (Debian's cloud
# kernel, which has no USB: from a USB stick the installer never found its media). Its 4,000
# modules (~395 MB) would all sit in memory; keep what an installer uses on a virtual or a
# physical machine — storage controllers and USB storage, keyboards, wired network (PXE),
# the filesystems of the media and of the targets, device-mapper and crypto — and everything
# those modules depend on (modules.dep), then index them again.
set -e
KEEP='
kernel/arch/x86/crypto/
kernel/block/
kernel/crypto/
kernel/lib/
kernel/mm/
kernel/drivers/acpi/
kernel/drivers/ata/
kernel/drivers/block/
kernel/drivers/cdrom/
kernel/drivers/char/
kernel/drivers/dma/
kernel/drivers/firmware/
kernel/drivers/hid/
kernel/drivers/hv/
kernel/drivers/i2c/
kernel/drivers/input/
kernel/drivers/md/
kernel/drivers/mfd/
kernel/drivers/mmc/
kernel/drivers/net/ethernet/
kernel/drivers/net/hyperv/
kernel/drivers/net/mdio/
kernel/drivers/net/phy/
kernel/drivers/net/usb/
kernel/drivers/net/vmxnet3/
kernel/drivers/net/mii.ko
kernel/drivers/net/net_failover.ko
kernel/drivers/net/virtio_net.ko
kernel/drivers/net/xen-netfront.ko
kernel/drivers/nvdimm/
kernel/drivers/nvme/
kernel/drivers/pci/
kernel/drivers/scsi/
kernel/drivers/usb/common/
kernel/drivers/usb/core/
kernel/drivers/usb/host/
kernel/drivers/usb/storage/
kernel/drivers/virtio/
kernel/drivers/xen/
kernel/fs/btrfs/
kernel/fs/efivarfs/
kernel/fs/exfat/
kernel/fs/ext4/
kernel/fs/fat/
kernel/fs/fscache/
kernel/fs/fuse/
kernel/fs/isofs/
kernel/fs/jbd2/
kernel/fs/mbcache.ko
kernel/fs/netfs/
kernel/fs/nls/
kernel/fs/overlayfs/
kernel/fs/smb/
kernel/fs/squashfs/
kernel/fs/udf/
kernel/fs/xfs/
kernel/net/802/
kernel/net/8021q/
kernel/net/core/
kernel/net/dns_resolver/
kernel/net/ipv4/
kernel/net/ipv6/
kernel/net/llc/
kernel/net/packet/
kernel/net/unix/
'
for dir in /usr/lib/modules/*/; do
    kver=$(basename "$dir")
    [ -f "$dir/modules.dep" ] || continue
    keep=$(mktemp) && pattern=$(mktemp)
    printf '%s\n' $KEEP | sed 's/\./\\./g; s/^/^/' > "$pattern"
    # modules.dep: "module.ko: dependency.ko …", every dependency (transitively).
    grep -f "$pattern" "$dir/modules.dep" | tr ' ' '\n' | sed 's/:$//' | grep . | sort -u > "$keep"
    before=$(find "$dir/kernel" -name '*.ko*' | wc -l)
    (cd "$dir" && find kernel -name '*.ko*' | sort | comm -23 - "$keep" | xargs -r rm -f)
    find "$dir/kernel" -depth -type d -empty -delete
    rm -f "$keep" "$pattern"
    depmod -a "$kver"
    echo "prune-modules: $kver: $(find "$dir/kernel" -name '*.ko*' | wc -l) of $before modules kept"
done
