//! The disks the attended installer offers: upstream runs `lsblk -d -I 8,179,252,253,254,259`
//! (SCSI/SATA/USB, MMC, virtio, NVMe); kiln reads the same from sysfs, so the installer needs no
//! lsblk.

use std::path::Path;

/// A whole disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockDevice {
    /// `/dev/<name>`.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// The device's model, when it reports one.
    pub model: String,
    /// Its serial number (`serial`: virtio; `device/serial`: NVMe, some SCSI), when it reports one.
    pub serial: String,
    /// Its world-wide id (`wwid` or `device/wwid`: NVMe, SCSI), when it reports one.
    pub wwid: String,
}

/// upstream's lsblk `-I` majors: sd, mmcblk, virtio (dynamic majors 252–254), nvme (blkext).
const MAJORS: [u32; 6] = [8, 179, 252, 253, 254, 259];

/// The disks under `sys_block` (`/sys/block`): whole disks of the majors above, not read-only,
/// not empty, not zram or device-mapper, and not holding the mounted installation media (`media`: the device mounted at
/// /mnt/cdrom, e.g. `sdb1` — a USB stick is an sd disk too). Sorted by name.
pub fn list(sys_block: &Path, media: Option<&str>) -> Vec<BlockDevice> {
    let Ok(entries) = std::fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let read = |dir: &Path, file: &str| {
        std::fs::read_to_string(dir.join(file))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let first = |dir: &Path, files: &[&str]| {
        files
            .iter()
            .map(|f| read(dir, f))
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    };
    let mut v: Vec<BlockDevice> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let dir = e.path();
            let major: u32 = read(&dir, "dev").split(':').next()?.parse().ok()?;
            let sectors: u64 = read(&dir, "size").parse().ok()?;
            let holds_media = holds_media(&name, media);
            // The virtio majors are dynamic: zram and device-mapper devices may get them too.
            let virtual_disk = ["zram", "dm-"].iter().any(|p| name.starts_with(p));
            (MAJORS.contains(&major)
                && sectors > 0
                && read(&dir, "ro") != "1"
                && !holds_media
                && !virtual_disk)
                .then(|| BlockDevice {
                    path: format!("/dev/{name}"),
                    // sysfs counts 512-byte sectors whatever the device's block size.
                    size: sectors * 512,
                    model: read(&dir, "device/model"),
                    serial: first(&dir, &["serial", "device/serial"]),
                    wwid: first(&dir, &["wwid", "device/wwid"]),
                })
        })
        .collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// Whether the disk `name` (`sdb`) holds `media`, the device mounted at /mnt/cdrom (`sdb`,
/// `sdb1`).
pub fn holds_media(name: &str, media: Option<&str>) -> bool {
    media.is_some_and(|m| m == name || partition_of(m, name))
}

/// Whether `part` (`sdb1`, `nvme0n1p2`) is a partition of `disk` (`sdb`, `nvme0n1`).
fn partition_of(part: &str, disk: &str) -> bool {
    part.strip_prefix(disk).is_some_and(|rest| {
        let rest = rest.strip_prefix('p').unwrap_or(rest);
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit())
    })
}

/// The device name (`sr0`, `sdb1`) of what is mounted at `mount_point`, from `mounts`
/// (`/proc/mounts` text).
pub fn mounted_device(mounts: &str, mount_point: &str) -> Option<String> {
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (dev, at) = (f.next()?, f.next()?);
        (at == mount_point).then(|| dev.strip_prefix("/dev/").unwrap_or(dev).to_string())
    })
}

/// A size as people read it: `4.0 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(root: &Path, name: &str, dev: &str, sectors: u64, ro: bool, model: Option<&str>) {
        let d = root.join(name);
        std::fs::create_dir_all(d.join("device")).unwrap();
        std::fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
        std::fs::write(d.join("size"), format!("{sectors}\n")).unwrap();
        std::fs::write(d.join("ro"), if ro { "1\n" } else { "0\n" }).unwrap();
        if let Some(m) = model {
            std::fs::write(d.join("device/model"), format!("{m}   \n")).unwrap();
        }
    }

    #[test]
    fn whole_writable_disks_of_upstreams_majors_are_listed() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        dev(r, "vda", "253:0", 8 << 21, false, None);
        dev(
            r,
            "nvme0n1",
            "259:0",
            1 << 30,
            false,
            Some("QEMU NVMe Ctrl"),
        );
        dev(r, "sr0", "11:0", 1000, false, Some("QEMU CD-ROM"));
        dev(r, "loop0", "7:0", 1000, false, None);
        dev(r, "sda", "8:0", 0, false, None);
        dev(r, "sdb", "8:16", 1000, true, None);
        dev(r, "sdc", "8:32", 2048, false, Some("USB stick"));
        dev(r, "zram0", "253:0", 2048, false, None);
        dev(r, "dm-0", "254:0", 2048, false, None);
        let all = list(r, None);
        let names: Vec<&str> = all.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(names, ["/dev/nvme0n1", "/dev/sdc", "/dev/vda"]);
        assert_eq!(all[0].model, "QEMU NVMe Ctrl");
        assert_eq!(all[0].size, 512 << 30);
        assert_eq!(human(all[2].size), "8.0 GiB");
        // The stick the installer runs from is not offered.
        let names: Vec<String> = list(r, Some("sdc1")).into_iter().map(|d| d.path).collect();
        assert_eq!(names, ["/dev/nvme0n1", "/dev/vda"]);
        assert!(list(&r.join("missing"), None).is_empty());
    }

    #[test]
    fn the_media_device_is_found_in_proc_mounts() {
        let m = "proc /proc proc rw 0 0\n/dev/sr0 /mnt/cdrom iso9660 ro 0 0\n";
        assert_eq!(mounted_device(m, "/mnt/cdrom").as_deref(), Some("sr0"));
        assert_eq!(mounted_device(m, "/mnt/usb"), None);
        assert!(partition_of("nvme0n1p2", "nvme0n1"));
        assert!(partition_of("sdb1", "sdb"));
        assert!(!partition_of("sdb", "sdb"));
        assert!(!partition_of("sdba1", "sdb"));
        // The hybrid ISO on a stick is mounted whole (sda) or, elsewhere, by a partition.
        assert!(holds_media("sda", Some("sda")));
        assert!(holds_media("sdb", Some("sdb1")));
        assert!(!holds_media("sdb", Some("sda")));
        assert!(!holds_media("vda", Some("sr0")));
        assert!(!holds_media("sda", None));
        assert_eq!(human(512), "512 B");
    }
}
