//! Choosing the unattended install's disk on the machine itself (kiln's addition, outside the
//! config's fields): one ISO or PXE entry can then serve machines whose disks have different
//! names. The selector comes from liveinstaller's `--target-disk` or, without it, the kernel
//! command line's `kiln.target-disk=` (a boot entry can carry it); the disks are the attended
//! installer's ([`crate::attended::disks::list`]).

use crate::attended::disks::{human, BlockDevice};
use std::fmt;

/// The kernel command line's parameter.
pub const CMDLINE_KEY: &str = "kiln.target-disk";

const FORMS: &str = "smallest, largest, serial:<serial or wwid>, model:<model>, or a device \
                     path such as /dev/nvme0n1";

/// How the disk is picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Smallest,
    Largest,
    /// The disk whose serial number or wwid is this.
    Serial(String),
    /// The disk whose model is this.
    Model(String),
    /// This device, as a TargetDisk path would name it.
    Path(String),
}

impl std::str::FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let nonempty = |what: &str, v: &str| {
            let v = v.trim();
            if v.is_empty() {
                Err(format!("target disk selector {s:?}: the {what} is empty"))
            } else {
                Ok(v.to_string())
            }
        };
        if let Some(v) = s.strip_prefix("serial:") {
            return Ok(Selector::Serial(nonempty("serial", v)?));
        }
        if let Some(v) = s.strip_prefix("model:") {
            return Ok(Selector::Model(nonempty("model", v)?));
        }
        match s {
            "smallest" => Ok(Selector::Smallest),
            "largest" => Ok(Selector::Largest),
            _ if s.strip_prefix("/dev/").is_some_and(|n| !n.is_empty()) => {
                Ok(Selector::Path(s.to_string()))
            }
            _ => Err(format!("unknown target disk selector {s:?}: use {FORMS}")),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Smallest => f.write_str("smallest"),
            Selector::Largest => f.write_str("largest"),
            Selector::Serial(s) => write!(f, "serial:{s}"),
            Selector::Model(m) => write!(f, "model:{m}"),
            Selector::Path(p) => f.write_str(p),
        }
    }
}

/// The selector of the kernel command line `cmdline` (`/proc/cmdline` text): the last
/// `kiln.target-disk=` wins, as the kernel's own parameters do. Double quotes around the value
/// (`kiln.target-disk="model:QEMU NVMe Ctrl"`) keep its spaces, as the kernel reads them.
pub fn from_cmdline(cmdline: &str) -> Result<Option<Selector>, String> {
    let mut found = None;
    let mut rest = cmdline.trim();
    while !rest.is_empty() {
        // One parameter: up to a space outside double quotes.
        let mut quoted = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c.is_whitespace() && !quoted
            })
            .map_or(rest.len(), |(i, _)| i);
        let param = &rest[..end];
        rest = rest[end..].trim_start();
        if let Some(v) = param
            .strip_prefix(CMDLINE_KEY)
            .and_then(|v| v.strip_prefix('='))
        {
            found = Some(v.replace('"', ""));
        }
    }
    found
        .map(|v| {
            v.parse()
                .map_err(|e| format!("the kernel command line's {CMDLINE_KEY}: {e}"))
        })
        .transpose()
}

/// The disk chosen, and why (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub path: String,
    pub reason: String,
}

/// Picks the disk of `selector` among `disks` (sorted by name, as `disks::list` returns them).
pub fn choose(selector: &Selector, disks: &[BlockDevice]) -> Result<Choice, String> {
    if let Selector::Path(p) = selector {
        // A path is taken as given, as the config's TargetDisk is (it may be a /dev/disk/by-id
        // link, or a disk of a kind the list does not offer).
        let known = disks.iter().find(|d| &d.path == p);
        return Ok(Choice {
            path: p.clone(),
            reason: match known {
                Some(d) => format!("given by path ({})", human(d.size)),
                None => "given by path".into(),
            },
        });
    }
    if disks.is_empty() {
        return Err(format!(
            "target disk {selector}: no disk to install onto (whole disks that are not \
             read-only, not empty, not zram, device-mapper or loop devices, and not the \
             installation media)"
        ));
    }
    let seen = || disks.iter().map(describe).collect::<Vec<_>>().join("; ");
    let (matching, how): (Vec<&BlockDevice>, String) = match selector {
        Selector::Smallest | Selector::Largest => {
            let sizes = disks.iter().map(|d| d.size);
            let want = if *selector == Selector::Smallest {
                sizes.min()
            } else {
                sizes.max()
            };
            let of = format!("the {selector} of {} disks", disks.len());
            (disks.iter().filter(|d| Some(d.size) == want).collect(), of)
        }
        Selector::Serial(s) => (
            disks
                .iter()
                .filter(|d| &d.serial == s || &d.wwid == s)
                .collect(),
            format!("serial or wwid {s}"),
        ),
        Selector::Model(m) => (
            disks.iter().filter(|d| &d.model == m).collect(),
            format!("model {m}"),
        ),
        Selector::Path(_) => unreachable!("handled above"),
    };
    let Some(first) = matching.first() else {
        return Err(format!(
            "target disk {selector}: no disk has that {}; the disks seen: {}",
            if matches!(selector, Selector::Model(_)) {
                "model"
            } else {
                "serial or wwid"
            },
            seen()
        ));
    };
    let mut reason = format!("{how} ({})", human(first.size));
    if matching.len() > 1 {
        let names: Vec<&str> = matching.iter().map(|d| d.path.as_str()).collect();
        reason.push_str(&format!(
            "; {} disks match ({}): the first by name is taken",
            matching.len(),
            names.join(", ")
        ));
    }
    reason.push_str(&format!("; the disks seen: {}", seen()));
    Ok(Choice {
        path: first.path.clone(),
        reason,
    })
}

/// `/dev/vda 8.0 GiB model "QEMU HARDDISK" serial "S1"` for the log.
fn describe(d: &BlockDevice) -> String {
    let mut s = format!("{} {}", d.path, human(d.size));
    for (what, v) in [
        ("model", &d.model),
        ("serial", &d.serial),
        ("wwid", &d.wwid),
    ] {
        if !v.is_empty() {
            s.push_str(&format!(" {what} {v:?}"));
        }
    }
    s
}

/// The config `json` (an unattended config's text) with every Disk's TargetDisk, when it has
/// one, set to `{"Type": "path", "Value": path}`. More than one such Disk is refused: the
/// selector names one device.
pub fn retarget(json: &[u8], path: &str) -> Result<Vec<u8>, String> {
    let mut config: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    let targets: Vec<&mut serde_json::Value> = config
        .get_mut("Disks")
        .and_then(serde_json::Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get_mut("TargetDisk").filter(|t| !t.is_null()))
        .collect();
    match targets.len() {
        0 => return Err("no Disk has a TargetDisk for the chosen disk to replace".into()),
        1 => {}
        n => {
            return Err(format!(
                "{n} Disks have a TargetDisk: a target disk selector picks one device, so it \
                 serves configs of one Disk only"
            ))
        }
    }
    for t in targets {
        *t = serde_json::json!({"Type": "path", "Value": path});
    }
    Ok(serde_json::to_vec_pretty(&config).expect("a JSON value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attended::disks::list;
    use std::path::Path;

    /// A disk in a fake `/sys/block`.
    fn disk(root: &Path, name: &str, dev: &str, gib: u64, files: &[(&str, &str)]) {
        let d = root.join(name);
        std::fs::create_dir_all(d.join("device")).unwrap();
        std::fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
        std::fs::write(d.join("size"), format!("{}\n", gib << 21)).unwrap();
        std::fs::write(d.join("ro"), "0\n").unwrap();
        for (f, v) in files {
            std::fs::write(d.join(f), format!("{v}\n")).unwrap();
        }
    }

    /// vda 16 GiB (virtio serial), nvme0n1 8 GiB (NVMe serial and wwid), sda 8 GiB (the
    /// media's), loop0 1 GiB.
    fn machine() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        disk(r, "vda", "253:0", 16, &[("serial", "VIRTIO-A")]);
        disk(
            r,
            "nvme0n1",
            "259:0",
            8,
            &[
                ("device/serial", "NVME-1"),
                ("wwid", "eui.0011"),
                ("device/model", "QEMU NVMe Ctrl"),
            ],
        );
        disk(r, "sda", "8:0", 4, &[("device/model", "USB stick")]);
        disk(r, "loop0", "7:0", 1, &[]);
        t
    }

    fn pick(root: &Path, sel: &str) -> Result<Choice, String> {
        choose(&sel.parse()?, &list(root, Some("sda1")))
    }

    #[test]
    fn each_selector_picks_its_disk() {
        let t = machine();
        let r = t.path();
        let c = pick(r, "smallest").unwrap();
        assert_eq!(
            c.path, "/dev/nvme0n1",
            "the media's 4 GiB stick is not a candidate"
        );
        assert!(
            c.reason.starts_with("the smallest of 2 disks (8.0 GiB)"),
            "{}",
            c.reason
        );
        assert!(c.reason.contains("/dev/vda 16.0 GiB"), "{}", c.reason);
        assert_eq!(pick(r, "largest").unwrap().path, "/dev/vda");
        assert_eq!(pick(r, "serial:VIRTIO-A").unwrap().path, "/dev/vda");
        assert_eq!(pick(r, "serial:NVME-1").unwrap().path, "/dev/nvme0n1");
        assert_eq!(pick(r, "serial:eui.0011").unwrap().path, "/dev/nvme0n1");
        assert_eq!(
            pick(r, "model:QEMU NVMe Ctrl").unwrap().path,
            "/dev/nvme0n1"
        );
        let c = pick(r, "/dev/disk/by-id/x").unwrap();
        assert_eq!(
            (c.path.as_str(), c.reason.as_str()),
            ("/dev/disk/by-id/x", "given by path")
        );
        assert_eq!(
            pick(r, "/dev/vda").unwrap().reason,
            "given by path (16.0 GiB)"
        );
    }

    #[test]
    fn a_tie_is_broken_by_name_and_said() {
        let t = machine();
        disk(t.path(), "vdb", "253:16", 16, &[]);
        let c = pick(t.path(), "largest").unwrap();
        assert_eq!(c.path, "/dev/vda");
        assert!(
            c.reason
                .contains("2 disks match (/dev/vda, /dev/vdb): the first by name is taken"),
            "{}",
            c.reason
        );
    }

    #[test]
    fn no_match_lists_the_disks_seen() {
        let t = machine();
        let e = pick(t.path(), "serial:NOPE").unwrap_err();
        assert!(e.contains("no disk has that serial or wwid"), "{e}");
        assert!(e.contains(r#"/dev/vda 16.0 GiB serial "VIRTIO-A""#), "{e}");
        assert!(
            e.contains(
                r#"/dev/nvme0n1 8.0 GiB model "QEMU NVMe Ctrl" serial "NVME-1" wwid "eui.0011""#
            ),
            "{e}"
        );
        assert!(pick(t.path(), "model:Other")
            .unwrap_err()
            .contains("no disk has that model"));
        let empty = tempfile::tempdir().unwrap();
        disk(empty.path(), "sda", "8:0", 4, &[]);
        let e = pick(empty.path(), "smallest").unwrap_err();
        assert!(e.contains("no disk to install onto"), "{e}");
    }

    #[test]
    fn selectors_parse_strictly() {
        assert_eq!("serial: S1 ".parse(), Ok(Selector::Serial("S1".into())));
        for bad in [
            "", "biggest", "Smallest", "serial:", "model: ", "/dev/", "sda", "id:x",
        ] {
            let e = bad.parse::<Selector>().unwrap_err();
            assert!(e.contains("target disk selector"), "{bad}: {e}");
        }
        let e = "biggest".parse::<Selector>().unwrap_err();
        assert!(e.contains("smallest, largest, serial:"), "{e}");
    }

    #[test]
    fn the_kernel_command_line_carries_a_selector() {
        let c = "BOOT_IMAGE=/isolinux/vmlinuz root=/dev/ram0 kiln.target-disk=smallest quiet\n";
        assert_eq!(from_cmdline(c), Ok(Some(Selector::Smallest)));
        let c = r#"a=1 kiln.target-disk="model:QEMU NVMe Ctrl" b kiln.target-disk-x=1"#;
        assert_eq!(
            from_cmdline(c),
            Ok(Some(Selector::Model("QEMU NVMe Ctrl".into())))
        );
        assert_eq!(
            from_cmdline("kiln.target-disk=largest kiln.target-disk=/dev/sdb"),
            Ok(Some(Selector::Path("/dev/sdb".into())))
        );
        assert_eq!(from_cmdline("console=ttyS0"), Ok(None));
        let e = from_cmdline("kiln.target-disk=biggest").unwrap_err();
        assert!(
            e.starts_with("the kernel command line's kiln.target-disk: unknown"),
            "{e}"
        );
    }

    #[test]
    fn the_configs_target_disk_is_replaced() {
        let c = br#"{"Disks": [{"TargetDisk": {"Type": "path", "Value": "/dev/sda"}, "X": 1}],
                     "SystemConfigs": []}"#;
        let out: serde_json::Value =
            serde_json::from_slice(&retarget(c, "/dev/nvme0n1").unwrap()).unwrap();
        assert_eq!(out["Disks"][0]["TargetDisk"]["Value"], "/dev/nvme0n1");
        assert_eq!(out["Disks"][0]["X"], 1);
        let two = br#"{"Disks": [{"TargetDisk": {"Type": "path", "Value": "/dev/sda"}},
                                 {"TargetDisk": {"Type": "path", "Value": "/dev/sdb"}}]}"#;
        assert!(retarget(two, "/dev/vda").unwrap_err().contains("2 Disks"));
        assert!(retarget(br#"{"Disks": [{}]}"#, "/dev/vda").is_err());
        assert!(retarget(b"{", "/dev/vda")
            .unwrap_err()
            .starts_with("not JSON"));
    }
}
