//! The kickstart partition file (`/tmp/part-include`) of kickstart installs (SPEC §1.13).
//!
//! Lines such as `part /boot --fstype=ext4 --size=512 --ondisk=/dev/sda` become disks, partitions
//! and partition settings that replace the config's own. Upstream crashes on options it does not
//! know; kiln reports them as errors.

use crate::model::*;

/// The file of the installer's work directory (imager's `--build-dir`) where a kickstart
/// install keeps its config with the layout of `/tmp/part-include` as Disks: liveinstaller
/// reads the disk and its EFI system partition from it for the UEFI boot entry.
pub const LAYOUT_CONFIG: &str = "kickstart_config.json";

/// How the installer host booted, which decides the partition table type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostBoot {
    /// `/sys/firmware/efi` exists.
    pub efi: bool,
    /// `/proc/cmdline` contains `--gpt=True`.
    pub gpt_on_cmdline: bool,
}

/// The layout a kickstart file describes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KickstartLayout {
    pub disks: Vec<Disk>,
    pub partition_settings: Vec<PartitionSetting>,
}

/// `BootPartitionConfig`: flags, mount point and options of the boot partition.
pub fn boot_partition_config(
    boot: BootType,
    table: PartitionTableType,
) -> Result<(Vec<PartitionFlag>, &'static str, &'static str), String> {
    match boot {
        BootType::Efi => Ok((
            vec![PartitionFlag::Esp, PartitionFlag::Boot],
            "/boot/efi",
            "umask=0077,nodev",
        )),
        BootType::Legacy => match table {
            PartitionTableType::Gpt => Ok((vec![PartitionFlag::Grub], "", "")),
            PartitionTableType::Mbr => Ok((vec![PartitionFlag::Boot], "", "")),
            PartitionTableType::None => {
                Err(format!("unknown partition table type ({})", table.as_str()))
            }
        },
        other => Err(format!("unknown boot type ({})", other.as_str())),
    }
}

/// Parses the partition lines of a kickstart file.
pub fn parse_partitions(text: &str, host: HostBoot) -> Result<KickstartLayout, String> {
    let table = if host.efi || host.gpt_on_cmdline {
        PartitionTableType::Gpt
    } else {
        PartitionTableType::Mbr
    };
    let mut layout = KickstartLayout::default();
    // Per disk: where the next partition starts.
    let mut disk_ends: Vec<u64> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if !line.contains("--ondisk") && !line.contains("--ondrive") {
            continue;
        }
        let id = format!("Partition{}", n + 1);
        let mut part = Partition {
            id: id.clone(),
            ..Partition::default()
        };
        let mut setting = PartitionSetting {
            id,
            ..PartitionSetting::default()
        };
        let mut disk_name: Option<String> = None;
        let mut size: Option<u64> = None;
        let mut grow = false;
        for token in line.split(' ') {
            if token == "part" {
                continue;
            }
            if let Some(opt) = token.strip_prefix("--") {
                let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
                match key {
                    "grow" => grow = true,
                    "ondisk" | "ondrive" => {
                        if value.is_empty() {
                            return Err("--ondisk/--ondrive must not be empty".into());
                        }
                        disk_name = Some(value.to_string());
                    }
                    "size" => {
                        let v = value.parse::<u64>().ok().filter(|_| {
                            !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
                        });
                        size = Some(v.ok_or_else(|| {
                            format!("strconv.ParseUint: parsing \"{value}\": invalid syntax")
                        })?);
                    }
                    "fstype" => {
                        if value.is_empty() {
                            return Err("--fstype must not be empty".into());
                        }
                        part.fs_type = match value {
                            "biosboot" | "efi" => "fat32",
                            "swap" => "linux-swap",
                            other => other,
                        }
                        .to_string();
                    }
                    _ => return Err(format!("unsupported kickstart partition option --{key}")),
                }
                continue;
            }
            match token {
                "" => return Err("Mount Point must not be empty".into()),
                "/boot/efi" => {
                    let (flags, mount, options) = boot_partition_config(BootType::Efi, table)?;
                    part.flags = flags;
                    setting.mount_point = mount.into();
                    setting.mount_options = options.into();
                }
                "biosboot" => {
                    let (flags, _, _) = boot_partition_config(BootType::Legacy, table)?;
                    part.flags = flags;
                }
                "swap" => {}
                mp if mp.starts_with('/') => setting.mount_point = mp.to_string(),
                mp => return Err(format!("invalid mount point specified: ({mp})")),
            }
        }
        let disk_name = disk_name.ok_or("--ondisk/--ondrive must not be empty")?;
        let disk_index = match layout
            .disks
            .iter()
            .position(|d| d.target_disk.value == disk_name)
        {
            Some(i) => i,
            None => {
                layout.disks.push(Disk {
                    partition_table_type: table,
                    target_disk: TargetDisk {
                        ty: "path".into(),
                        value: disk_name,
                    },
                    ..Disk::default()
                });
                disk_ends.push(1);
                layout.disks.len() - 1
            }
        };
        part.start = disk_ends[disk_index];
        part.end = if grow {
            0
        } else {
            part.start + size.unwrap_or(0)
        };
        disk_ends[disk_index] = part.end;
        layout.disks[disk_index].partitions.push(part);
        layout.partition_settings.push(setting);
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EFI: HostBoot = HostBoot {
        efi: true,
        gpt_on_cmdline: false,
    };
    const BIOS: HostBoot = HostBoot {
        efi: false,
        gpt_on_cmdline: false,
    };

    #[test]
    fn efi_layout() {
        let l = parse_partitions(
            "part /boot/efi --fstype=efi --size=8 --ondisk=/dev/sda\npart /boot --fstype=ext4 --size=512 --ondisk=/dev/sda\npart / --fstype=ext4 --size=800 --ondisk=/dev/sda",
            EFI,
        )
        .unwrap();
        assert_eq!(l.disks.len(), 1);
        let d = &l.disks[0];
        assert_eq!(d.partition_table_type, PartitionTableType::Gpt);
        assert_eq!(
            d.target_disk,
            TargetDisk {
                ty: "path".into(),
                value: "/dev/sda".into()
            }
        );
        let got: Vec<_> = d
            .partitions
            .iter()
            .map(|p| (p.id.as_str(), p.start, p.end, p.fs_type.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Partition1", 1, 9, "fat32"),
                ("Partition2", 9, 521, "ext4"),
                ("Partition3", 521, 1321, "ext4")
            ]
        );
        assert_eq!(
            d.partitions[0].flags,
            [PartitionFlag::Esp, PartitionFlag::Boot]
        );
        assert_eq!(l.partition_settings[0].mount_point, "/boot/efi");
        assert_eq!(l.partition_settings[0].mount_options, "umask=0077,nodev");
        assert_eq!(l.partition_settings[2].mount_point, "/");
        assert!(l
            .partition_settings
            .iter()
            .all(|s| s.mount_identifier == MountIdentifier::PartUuid));
    }

    #[test]
    fn legacy_layout() {
        let l = parse_partitions(
            "part biosboot --fstype=biosboot --size=8 --ondisk=/dev/sda\npart / --fstype=ext4 --size=800 --ondisk=/dev/sda",
            BIOS,
        )
        .unwrap();
        let d = &l.disks[0];
        assert_eq!(d.partition_table_type, PartitionTableType::Mbr);
        assert_eq!(d.partitions[0].flags, [PartitionFlag::Boot]);
        assert_eq!((d.partitions[1].start, d.partitions[1].end), (9, 809));
        assert_eq!(l.partition_settings[0].mount_point, "");
    }

    #[test]
    fn errors() {
        let e = |s| parse_partitions(s, EFI).unwrap_err();
        assert_eq!(
            e("part / --fstype=ext4 --size=800 --ondisk="),
            "--ondisk/--ondrive must not be empty"
        );
        assert_eq!(
            e("part / --fstype=     --size=800 --ondisk=/dev/sda"),
            "--fstype must not be empty"
        );
        assert_eq!(
            e("part / --fstype=ext4 --size=abcd --ondisk=/dev/sda"),
            "strconv.ParseUint: parsing \"abcd\": invalid syntax"
        );
        assert_eq!(
            e("part / --label=x --ondisk=/dev/sda"),
            "unsupported kickstart partition option --label"
        );
        assert_eq!(
            e("part boot --size=1 --ondisk=/dev/sda"),
            "invalid mount point specified: (boot)"
        );
    }
}
