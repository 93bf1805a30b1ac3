//! What `grub2-probe` would read from a mounted disk, for `grub2-mkconfig` in the sandbox.
//!
//! Upstream runs grub2-mkconfig in a chroot on the loop-mounted disk, where grub2-probe finds
//! the device under `/` and `/boot` (from the mount table) and reads its partition table and
//! filesystem. kiln's image root is a staging directory that is not on any device yet, so the
//! real probe answers with the build host's disk. kiln knows every answer already — it planned
//! the partition table and chose each filesystem's UUID — and hands grub2-mkconfig a stand-in
//! probe (a small shell script, run in the sandbox with the image as `/`) plus the
//! `/dev/disk/by-uuid` links its scripts test for. grub2-mkrelpath gets a stand-in too: it maps
//! a path to the path inside the filesystem holding it (`/boot/vmlinuz` is `/vmlinuz` when
//! `/boot` is its own partition), which the real one derives from the mount table.
//!
//! The device names are those of the first SCSI disk (`/dev/sda`, partitions by number); they
//! reach `grub.cfg` only where grub2-mkconfig falls back to a device name, which it does not
//! while `/dev/disk/by-uuid/<uuid>` exists.

use crate::BuiltPartition;
use kiln_config::model::PartitionTableType;
use kiln_fs::FsKind;
use kiln_sandbox::DevEntry;

/// The disk as grub2-probe would see it.
pub struct ProbedDisk<'a> {
    pub table: PartitionTableType,
    pub partitions: &'a [BuiltPartition],
    /// The encrypted root, when the root filesystem is on `cryptVG/root` inside the root
    /// partition.
    pub encrypted_root: Option<CryptRoot<'a>>,
}

/// What GRUB reads of an encrypted root: the LUKS volume and the LVM ids of `cryptVG/root`.
pub struct CryptRoot<'a> {
    /// The LUKS UUID as its header holds it.
    pub luks_uuid: &'a str,
    /// The volume group's and the logical volume's ids, dashed as LVM prints them
    /// (`xxxxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxxxx`).
    pub vg_id: String,
    pub lv_id: String,
}

/// grub-probe's `abstraction` of an LV on LUKS1 (aes-xts-plain64, sha512), one module a line
/// in its order: the LV's member first — the cryptodisk, then its module and ciphers
/// (`grub_util_cryptodisk_get_abstraction`: XTS opens the cipher twice, the header's hash
/// last) — then `lvm` for the LV itself.
const CRYPT_ABSTRACTION: &str = "cryptodisk\nluks\ngcry_rijndael\ngcry_rijndael\ngcry_sha512\nlvm";

/// The device of an encrypted root (an LVM volume on LUKS).
const CRYPT_ROOT: &str = "/dev/mapper/cryptVG-root";

/// One filesystem the probe can answer for.
struct Device {
    path: String,
    mount_point: String,
    /// (target, answer) pairs.
    answers: Vec<(&'static str, String)>,
}

const DISK: &str = "/dev/sda";

impl ProbedDisk<'_> {
    fn devices(&self) -> Vec<Device> {
        let map = match self.table {
            PartitionTableType::Mbr => "msdos",
            _ => "gpt",
        };
        self.partitions
            .iter()
            .filter_map(|p| {
                let fs = match p.fs? {
                    FsKind::Vfat => "fat",
                    FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => "ext2",
                    FsKind::Xfs => "xfs",
                    FsKind::Swap => return None,
                };
                // grub prints FAT serials in lower case (its search compares without case).
                let uuid = p.fs_uuid.to_ascii_lowercase();
                let part = format!("{map}{}", p.number);
                let path = format!("{DISK}{}", p.number);
                if let (Some(crypt), "/") = (&self.encrypted_root, p.mount_point.as_str()) {
                    return Some(crypt_device(crypt, fs, uuid, map, p.mount_point.clone()));
                }
                Some(Device {
                    answers: vec![
                        ("device", path.clone()),
                        ("disk", DISK.into()),
                        ("fs", fs.into()),
                        ("fs_uuid", uuid),
                        ("fs_label", String::new()),
                        ("partuuid", p.partuuid.to_ascii_lowercase()),
                        ("partmap", map.into()),
                        ("abstraction", String::new()),
                        ("cryptodisk_uuid", String::new()),
                        ("drive", format!("(hd0,{part})")),
                        ("compatibility_hint", format!("hd0,{part}")),
                        ("bios_hints", format!("--hint-bios=hd0,{part} ")),
                        ("efi_hints", format!("--hint-efi=hd0,{part} ")),
                        ("baremetal_hints", format!("--hint-baremetal=ahci0,{part} ")),
                        ("arc_hints", String::new()),
                        ("ieee1275_hints", String::new()),
                        (
                            "hints_string",
                            format!(
                                "--hint-bios=hd0,{part} --hint-efi=hd0,{part} \
                                 --hint-baremetal=ahci0,{part} "
                            ),
                        ),
                    ],
                    path,
                    mount_point: p.mount_point.clone(),
                })
            })
            .collect()
    }

    /// Mounted filesystems, longest mount point first (the first prefix match holds a path).
    fn mounted(&self) -> Vec<Device> {
        let mut d: Vec<Device> = self
            .devices()
            .into_iter()
            .filter(|d| d.mount_point.starts_with('/'))
            .collect();
        d.sort_by_key(|d| std::cmp::Reverse(d.mount_point.len()));
        d
    }

    /// The grub2-probe stand-in: `grub2-probe [-t TARGET] [-d] PATH|DEVICE`.
    pub fn probe_script(&self) -> String {
        let mut s = String::from(PROBE_HEAD);
        s += &path_to_device(&self.mounted());
        s += "case \"$dev:$target\" in\n";
        for d in self.devices() {
            for (target, answer) in &d.answers {
                s += &format!("  {}:{target}) echo {} ;;\n", d.path, quote(answer));
            }
        }
        s += "  *) echo \"grub-probe: error: kiln's stand-in has no answer for --target=$target \
              of $dev.\" >&2; exit 1 ;;\nesac\n";
        s
    }

    /// The grub2-mkrelpath stand-in: the path inside the filesystem that holds it.
    pub fn mkrelpath_script(&self) -> String {
        let mut s = String::from(
            "#!/bin/sh\n# grub-mkrelpath stand-in written by kiln (see grub-probe's).\n\
             [ $# -ge 1 ] || { echo 'Usage: grub-mkrelpath PATH' >&2; exit 1; }\n\
             for p; do :; done\ncase \"$p\" in\n",
        );
        for d in self.mounted().iter().filter(|d| d.mount_point != "/") {
            let mp = &d.mount_point;
            s += &format!(
                "  {0}) echo / ;;\n  {0}/*) echo \"${{p#{0}}}\" ;;\n",
                quote(mp)
            );
        }
        s += "  *) echo \"$p\" ;;\nesac\n";
        s
    }

    /// The `/dev` entries grub2-mkconfig's scripts test for: placeholder files named as the
    /// devices, and the by-uuid / by-partuuid links to them.
    pub fn dev_entries(&self) -> Vec<(String, DevEntry)> {
        let mut out = vec![(
            DISK.trim_start_matches("/dev/").into(),
            DevEntry::Placeholder,
        )];
        for d in self.devices() {
            let name = d.path.trim_start_matches("/dev/").to_string();
            let answer = |t: &str| {
                d.answers
                    .iter()
                    .find(|(k, _)| *k == t)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            out.push((name.clone(), DevEntry::Placeholder));
            for (dir, id) in [
                ("by-uuid", answer("fs_uuid")),
                ("by-partuuid", answer("partuuid")),
            ] {
                if !id.is_empty() {
                    out.push((
                        format!("disk/{dir}/{id}"),
                        DevEntry::Symlink(format!("../../{name}")),
                    ));
                }
            }
        }
        out
    }
}

/// What grub-probe (2.06) says of `/dev/mapper/cryptVG-root`: GRUB reaches it through its lvm
/// and cryptodisk modules, not a partition. Its drive is the LV's `lvmid/VG-ID/LV-ID` (from the
/// device-mapper UUID, `grub_util_get_devmapper_grub_dev`), which the hint targets print as is,
/// since it is no BIOS disk; `hints_string` is empty for the same reason. The partition map is
/// the one under the LUKS volume (`probe_partmap` follows the members), and `cryptodisk_uuid`
/// the LUKS UUID without dashes, as luks.c keeps it (and `cryptomount -u` takes it).
fn crypt_device(
    crypt: &CryptRoot,
    fs: &str,
    fs_uuid: String,
    map: &str,
    mount_point: String,
) -> Device {
    let lvmid = format!("lvmid/{}/{}", crypt.vg_id, crypt.lv_id);
    let mut answers = vec![
        ("device", CRYPT_ROOT.into()),
        ("disk", CRYPT_ROOT.into()),
        ("fs", fs.into()),
        ("fs_uuid", fs_uuid),
        ("fs_label", String::new()),
        ("partuuid", String::new()),
        ("partmap", map.into()),
        ("abstraction", CRYPT_ABSTRACTION.into()),
        ("cryptodisk_uuid", crypt.luks_uuid.replace('-', "")),
        ("drive", format!("({lvmid})")),
        ("compatibility_hint", lvmid.clone()),
        ("hints_string", String::new()),
    ];
    for hint in [
        "bios_hints",
        "efi_hints",
        "baremetal_hints",
        "arc_hints",
        "ieee1275_hints",
    ] {
        answers.push((hint, format!("{lvmid} ")));
    }
    Device {
        answers,
        path: CRYPT_ROOT.into(),
        mount_point,
    }
}

const PROBE_HEAD: &str = r#"#!/bin/sh
# grub-probe stand-in written by kiln for grub2-mkconfig. The image is not on a device while
# kiln builds it, so kiln answers what grub-probe would read from the disk it is writing.
target=fs
device=
arg=
while [ $# -gt 0 ]; do
  case "$1" in
    -t|--target) target=$2; shift 2 ;;
    --target=*) target=${1#--target=}; shift ;;
    -d|--device) device=yes; shift ;;
    -m|--device-map|-s) shift 2 ;;
    --device-map=*|-v|--verbose) shift ;;
    -*) echo "grub-probe: error: kiln's stand-in does not know the option $1." >&2; exit 1 ;;
    *) arg=$1; shift ;;
  esac
done
[ -n "$arg" ] || { echo 'grub-probe: error: no path or device is specified.' >&2; exit 1; }
if [ -n "$device" ]; then
  dev=$arg
else
"#;

/// The sh that maps a path to the device of the longest mount point holding it.
fn path_to_device(mounted: &[Device]) -> String {
    let mut s = String::from("  case \"$arg\" in\n");
    for d in mounted {
        let mp = &d.mount_point;
        let pattern = if mp == "/" {
            "/*".to_string()
        } else {
            format!("{0}|{0}/*", quote(mp))
        };
        s += &format!("    {pattern}) dev={} ;;\n", d.path);
    }
    s += "    *) echo \"grub-probe: error: failed to get canonical path of '$arg'.\" >&2; \
          exit 1 ;;\n  esac\nfi\n";
    s
}

/// `s` as one single-quoted sh word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn part(number: u32, mount_point: &str, fs: FsKind, uuid: &str) -> BuiltPartition {
        BuiltPartition {
            index: number as usize - 1,
            id: format!("p{number}"),
            number,
            offset: 0,
            size: 0,
            mount_point: mount_point.into(),
            fs: Some(fs),
            fs_uuid: uuid.into(),
            partuuid: format!("0000000{number}-AAAA-BBBB-CCCC-DDDDDDDDDDDD"),
            partlabel: String::new(),
            diff: None,
        }
    }

    fn sh(script: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("probe")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim_end().to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    #[test]
    fn the_probe_answers_as_grub_probe_on_the_written_disk() {
        let parts = [
            part(1, "/boot/efi", FsKind::Vfat, "ABCD-0123"),
            part(
                2,
                "/boot",
                FsKind::Ext4,
                "11111111-2222-3333-4444-555555555555",
            ),
            part(3, "/", FsKind::Xfs, "66666666-2222-3333-4444-555555555555"),
        ];
        let disk = ProbedDisk {
            table: PartitionTableType::Gpt,
            partitions: &parts,
            encrypted_root: None,
        };
        let probe = disk.probe_script();
        let ask = |args: &[&str]| sh(&probe, args);
        assert_eq!(ask(&["--target=device", "/"]), (true, "/dev/sda3".into()));
        assert_eq!(
            ask(&["--target=device", "/boot"]),
            (true, "/dev/sda2".into())
        );
        assert_eq!(
            ask(&["-t", "device", "/boot/efi/EFI"]),
            (true, "/dev/sda1".into())
        );
        assert_eq!(ask(&["-t", "device", "/bootx"]), (true, "/dev/sda3".into()));
        assert_eq!(ask(&["/usr/share/grub/unicode.pf2"]), (true, "xfs".into()));
        assert_eq!(
            ask(&["--device", "/dev/sda2", "--target=fs_uuid"]),
            (true, "11111111-2222-3333-4444-555555555555".into())
        );
        assert_eq!(
            ask(&["--device", "/dev/sda1", "--target=fs_uuid"]),
            (true, "abcd-0123".into())
        );
        assert_eq!(ask(&["-d", "/dev/sda1", "-t", "fs"]), (true, "fat".into()));
        assert_eq!(
            ask(&["-d", "/dev/sda2", "-t", "partmap"]),
            (true, "gpt".into())
        );
        assert_eq!(
            ask(&["-d", "/dev/sda2", "-t", "hints_string"]),
            (
                true,
                "--hint-bios=hd0,gpt2 --hint-efi=hd0,gpt2 --hint-baremetal=ahci0,gpt2".into()
            )
        );
        assert_eq!(
            ask(&["-d", "/dev/sda3", "-t", "abstraction"]),
            (true, "".into())
        );
        let (ok, err) = ask(&["-d", "/dev/sda9", "-t", "fs"]);
        assert!(!ok && err.contains("no answer"), "{err}");
        let (ok, err) = ask(&["-t", "zfs_hex", "/"]);
        assert!(!ok && err.contains("zfs_hex"), "{err}");

        let rel = disk.mkrelpath_script();
        assert_eq!(
            sh(&rel, &["/boot/vmlinuz-6.6"]),
            (true, "/vmlinuz-6.6".into())
        );
        assert_eq!(sh(&rel, &["/boot"]), (true, "/".into()));
        assert_eq!(sh(&rel, &["/boot/efi/x"]), (true, "/x".into()));
        assert_eq!(
            sh(&rel, &["/usr/share/grub"]),
            (true, "/usr/share/grub".into())
        );

        let dev = disk.dev_entries();
        assert!(dev.contains(&(
            "disk/by-uuid/abcd-0123".into(),
            DevEntry::Symlink("../../sda1".into())
        )));
        assert!(dev.contains(&("sda3".into(), DevEntry::Placeholder)));
    }

    #[test]
    fn mbr_disks_are_msdos_partitions() {
        let parts = [part(5, "/", FsKind::Ext4, "u")];
        let disk = ProbedDisk {
            table: PartitionTableType::Mbr,
            partitions: &parts,
            encrypted_root: None,
        };
        let probe = disk.probe_script();
        assert_eq!(
            sh(&probe, &["-t", "compatibility_hint", "/"]),
            (true, "hd0,msdos5".into())
        );
        assert_eq!(sh(&probe, &["-t", "partmap", "/"]), (true, "msdos".into()));
    }

    #[test]
    fn an_encrypted_root_is_an_lvm_volume_on_luks() {
        let parts = [
            part(1, "/boot/efi", FsKind::Vfat, "ABCD-0123"),
            part(2, "/boot", FsKind::Ext4, "b"),
            part(3, "/", FsKind::Ext4, "r"),
        ];
        let disk = ProbedDisk {
            table: PartitionTableType::Gpt,
            partitions: &parts,
            encrypted_root: Some(CryptRoot {
                luks_uuid: "aaaa-bb",
                vg_id: "VGVGVG-1111-2222-3333-4444-5555-666666".into(),
                lv_id: "LVLVLV-1111-2222-3333-4444-5555-666666".into(),
            }),
        };
        let probe = disk.probe_script();
        let ask = |args: &[&str]| sh(&probe, args);
        let lvmid = "lvmid/VGVGVG-1111-2222-3333-4444-5555-666666/\
                     LVLVLV-1111-2222-3333-4444-5555-666666";
        assert_eq!(ask(&["-t", "device", "/"]), (true, CRYPT_ROOT.into()));
        assert_eq!(ask(&["-t", "device", "/boot"]), (true, "/dev/sda2".into()));
        // One module a line: grub-mkconfig_lib reads them with IFS set to a newline, and
        // 10_linux names the root by its device when `lvm` is among them.
        assert_eq!(
            ask(&["-d", CRYPT_ROOT, "-t", "abstraction"]),
            (
                true,
                "cryptodisk\nluks\ngcry_rijndael\ngcry_rijndael\ngcry_sha512\nlvm".into()
            )
        );
        assert_eq!(
            ask(&["-d", CRYPT_ROOT, "-t", "cryptodisk_uuid"]),
            (true, "aaaabb".into())
        );
        assert_eq!(ask(&["-t", "partmap", "/"]), (true, "gpt".into()));
        assert_eq!(
            ask(&["-t", "compatibility_hint", "/"]),
            (true, lvmid.into())
        );
        assert_eq!(ask(&["-t", "drive", "/"]), (true, format!("({lvmid})")));
        assert_eq!(ask(&["-t", "hints_string", "/"]), (true, "".into()));
        assert_eq!(ask(&["-t", "bios_hints", "/"]), (true, lvmid.into()));
        let dev = disk.dev_entries();
        assert!(dev.contains(&("mapper/cryptVG-root".into(), DevEntry::Placeholder)));
        assert!(dev.contains(&(
            "disk/by-uuid/r".into(),
            DevEntry::Symlink("../../mapper/cryptVG-root".into())
        )));
    }
}
