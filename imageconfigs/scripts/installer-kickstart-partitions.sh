#!/bin/sh
# kiln's kickstart demo (installer-kickstart.json): a PreInstallScript run by the installer on
# the machine being installed. It picks the first writable virtio, SCSI or NVMe disk and writes
# the layout to /tmp/part-include: a 64 MiB EFI system partition, a 200 MiB /boot and / over the
# rest.
set -e
disk=
for d in /sys/block/vd* /sys/block/sd* /sys/block/nvme*n*; do
    [ -e "$d/size" ] || continue
    [ "$(cat "$d/size")" -gt 0 ] || continue
    [ "$(cat "$d/ro")" = 0 ] || continue
    disk=/dev/${d##*/}
    break
done
if [ -z "$disk" ]; then
    echo "installer-kickstart-partitions.sh: no writable disk in /sys/block" >&2
    exit 1
fi
cat > /tmp/part-include <<PARTS
part /boot/efi --fstype=efi --size=64 --ondisk=$disk
part /boot --fstype=ext4 --size=200 --ondisk=$disk
part / --fstype=ext4 --size=1 --grow --ondisk=$disk
PARTS
echo "kickstart layout for $disk written to /tmp/part-include"
