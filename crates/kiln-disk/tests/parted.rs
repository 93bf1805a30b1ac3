//! kiln's partition tables against parted's, for the same requests: upstream's imager drives
//! parted with `mklabel`, `mkpart <name|primary|extended|logical> [fs] <start>s <end>s|100%` and
//! `set <n> <flag> on`; kiln writes the table itself. sfdisk reads both; they must agree on every
//! partition's start, size, type, name and boot flag, and sgdisk/sfdisk must find nothing wrong.

use kiln_config::{validate_bytes, Options, PartitionFlag, PartitionTableType};
use kiln_disk::{plan, write_table, Kind};
use kiln_formats::ident::Identity;
use std::path::Path;
use std::process::Command;

fn disk(json: &str) -> kiln_config::Disk {
    let doc =
        format!(r#"{{"Disks": [{json}], "SystemConfigs": [{{"Name": "x", "Packages": ["p"]}}]}}"#);
    let opts = Options {
        base_dir: Some("/".into()),
        package_checks: false,
        file_checks: false,
    };
    let v = validate_bytes(doc.as_bytes(), Path::new("c.json"), &opts);
    assert!(v.report.is_valid(), "{}", v.report.render(false));
    v.config.unwrap().config.disks.remove(0)
}

fn sfdisk(img: &Path) -> serde_json::Value {
    let o = Command::new("sfdisk")
        .arg("--json")
        .arg(img)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = v["partitiontable"].take();
    // Ids and GUIDs are random (parted) or derived (kiln); the device path differs.
    let parts: Vec<serde_json::Value> = t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            serde_json::json!({
                "start": p["start"], "size": p["size"], "type": p["type"],
                "name": p.get("name").cloned().unwrap_or_default(),
                "bootable": p.get("bootable").cloned().unwrap_or(false.into()),
            })
        })
        .collect();
    serde_json::json!({ "label": t["label"], "partitions": parts })
}

/// The parted commands upstream's imager runs for this disk (sectors from kiln's plan).
fn parted_commands(d: &kiln_config::Disk, layout: &kiln_disk::Layout) -> Vec<String> {
    let gpt = d.partition_table_type == PartitionTableType::Gpt;
    let mut cmds = vec![format!("mklabel {}", if gpt { "gpt" } else { "msdos" })];
    let end = |p: &kiln_disk::PlannedPartition, end_mib: u64| {
        if end_mib == 0 {
            "100%".to_string()
        } else {
            format!("{}s", p.last_sector)
        }
    };
    for p in &layout.partitions {
        let (what, fs, end_mib) = match p.config_index {
            None => (
                "extended".to_string(),
                String::new(),
                d.partitions.last().unwrap().end,
            ),
            Some(i) => {
                let c = &d.partitions[i];
                let what = match (gpt, p.kind) {
                    (true, _) if c.name.is_empty() => "\"\"".to_string(),
                    (true, _) => c.name.clone(),
                    (false, Kind::Logical) => "logical".into(),
                    _ => "primary".into(),
                };
                let fs = if c.fs_type == "vfat" {
                    "fat32".into()
                } else {
                    c.fs_type.clone()
                };
                (what, fs, c.end)
            }
        };
        cmds.push(format!(
            "mkpart {what} {fs} {}s {}",
            p.first_sector,
            end(p, end_mib)
        ));
    }
    for p in &layout.partitions {
        let Some(i) = p.config_index else { continue };
        for f in &d.partitions[i].flags {
            let flag = match f {
                PartitionFlag::Esp => "esp",
                PartitionFlag::Boot => "boot",
                PartitionFlag::Grub | PartitionFlag::BiosGrub | PartitionFlag::BiosGrubDash
                    if gpt =>
                {
                    "bios_grub"
                }
                _ => continue,
            };
            cmds.push(format!("set {} {flag} on", p.number));
        }
    }
    cmds
}

fn check(name: &str, json: &str) {
    let d = disk(json);
    let layout = plan(&d, &Identity::seeded(name.as_bytes(), 0)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("kiln.img");
    let theirs = dir.path().join("parted.img");
    for img in [&ours, &theirs] {
        std::fs::File::create(img)
            .unwrap()
            .set_len(layout.size)
            .unwrap();
    }
    write_table(
        &layout,
        &std::fs::File::options()
            .read(true)
            .write(true)
            .open(&ours)
            .unwrap(),
    )
    .unwrap();
    let mut args = vec!["-s".to_string(), theirs.display().to_string()];
    for c in parted_commands(&d, &layout) {
        // Upstream passes an empty name as the two characters "", which parted reads as "".
        args.extend(c.split(' ').filter(|s| !s.is_empty()).map(String::from));
    }
    let o = Command::new("parted").args(&args).output().unwrap();
    assert!(
        o.status.success(),
        "{name}: parted {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(sfdisk(&ours), sfdisk(&theirs), "{name}");
    if d.partition_table_type == PartitionTableType::Gpt {
        let v = Command::new("sgdisk")
            .arg("-v")
            .arg(&ours)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&v.stdout);
        assert!(text.contains("No problems found"), "{name}: {text}");
    } else {
        let v = Command::new("sfdisk")
            .arg("-V")
            .arg(&ours)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&v.stdout)
        );
    }
}

#[test]
fn tables_match_parted() {
    check(
        "core-efi",
        r#"{"PartitionTableType": "gpt", "MaxSize": 64, "Partitions": [
        {"ID": "boot", "Flags": ["esp", "boot"], "Start": 1, "End": 9, "FsType": "fat32"},
        {"ID": "rootfs", "Start": 9, "End": 0, "FsType": "ext4"}]}"#,
    );
    check(
        "core-legacy",
        r#"{"PartitionTableType": "gpt", "MaxSize": 64, "Partitions": [
        {"ID": "boot", "Flags": ["grub"], "Start": 1, "End": 9, "FsType": "fat32"},
        {"ID": "rootfs", "Start": 9, "End": 0, "FsType": "ext4"}]}"#,
    );
    check(
        "marketplace-gen1",
        r#"{"PartitionTableType": "gpt", "MaxSize": 100, "Partitions": [
        {"ID": "reserved", "Name": "reserved", "Flags": ["bios_grub"], "Start": 1, "End": 9},
        {"ID": "boot", "Name": "boot", "Start": 9, "End": 41, "FsType": "ext4"},
        {"ID": "rootfs", "Name": "rootfs", "Start": 41, "End": 0, "FsType": "xfs"}]}"#,
    );
    check(
        "swap-and-fat16",
        r#"{"PartitionTableType": "gpt", "MaxSize": 64, "Partitions": [
        {"ID": "swap", "Start": 1, "End": 17, "FsType": "linux-swap"},
        {"ID": "data", "Name": "data", "Start": 17, "End": 33, "FsType": "fat16"},
        {"ID": "none", "Start": 33, "End": 0}]}"#,
    );
    check(
        "mbr",
        r#"{"PartitionTableType": "mbr", "MaxSize": 64, "Partitions": [
        {"ID": "boot", "Flags": ["boot"], "Start": 1, "End": 9, "FsType": "fat32"},
        {"ID": "rootfs", "Start": 9, "End": 0, "FsType": "ext4"}]}"#,
    );
    check(
        "mbr-esp",
        r#"{"PartitionTableType": "mbr", "MaxSize": 64, "Partitions": [
        {"ID": "esp", "Flags": ["esp"], "Start": 1, "End": 9, "FsType": "vfat"},
        {"ID": "swap", "Start": 9, "End": 17, "FsType": "linux-swap"},
        {"ID": "rootfs", "Start": 17, "End": 0, "FsType": "xfs"}]}"#,
    );
    check(
        "mbr-logical",
        r#"{"PartitionTableType": "mbr", "MaxSize": 64, "Partitions": [
        {"ID": "p0", "Flags": ["boot"], "Start": 1, "End": 9, "FsType": "fat32"},
        {"ID": "p1", "Start": 9, "End": 17, "FsType": "ext4"},
        {"ID": "p2", "Start": 17, "End": 25, "FsType": "ext4"},
        {"ID": "p3", "Start": 25, "End": 33, "FsType": "ext4"},
        {"ID": "p4", "Start": 33, "End": 41, "FsType": "linux-swap"},
        {"ID": "p5", "Start": 41, "End": 0, "FsType": "xfs"}]}"#,
    );
}

#[test]
fn logical_partitions_are_placed_and_numbered_as_upstream() {
    let d = disk(
        r#"{"PartitionTableType": "mbr", "MaxSize": 64, "Partitions": [
        {"ID": "p0", "Start": 1, "End": 9}, {"ID": "p1", "Start": 9, "End": 17}, {"ID": "p2", "Start": 17, "End": 25},
        {"ID": "p3", "Start": 25, "End": 33}, {"ID": "p4", "Start": 33, "End": 41}, {"ID": "p5", "Start": 41, "End": 0}]}"#,
    );
    let l = plan(&d, &Identity::seeded(b"x", 0)).unwrap();
    let got: Vec<(u32, u64, u64)> = l
        .partitions
        .iter()
        .map(|p| (p.number, p.first_sector, p.last_sector))
        .collect();
    assert_eq!(
        got,
        [
            (1, 2048, 18431),
            (2, 18432, 34815),
            (3, 34816, 51199),
            (4, 51200, 131071),
            (5, 51712, 67584),
            (6, 68096, 83968),
            (7, 84480, 131071)
        ]
    );
    assert_eq!(
        l.partuuid(l.for_config(3).unwrap()),
        format!("{:08x}-05", l.mbr_signature)
    );
}

#[test]
fn impossible_layouts_are_refused() {
    let d = disk(
        r#"{"PartitionTableType": "gpt", "MaxSize": 64, "Partitions": [{"ID": "a", "Start": 0, "End": 9}]}"#,
    );
    let e = plan(&d, &Identity::seeded(b"x", 0)).unwrap_err();
    assert!(e.to_string().contains("inside the partition table"), "{e}");
    let d = disk(
        r#"{"PartitionTableType": "gpt", "MaxSize": 64, "Partitions": [{"ID": "a", "Start": 1, "End": 64}]}"#,
    );
    let e = plan(&d, &Identity::seeded(b"x", 0)).unwrap_err();
    assert!(e.to_string().contains("outside the 64 MiB disk"), "{e}");
}

/// What kiln writes, read back by `kiln_disk::read::table`: the same numbers, places, types
/// and names as the layout (GPT with names; MBR with logical partitions through the EBR chain).
#[test]
fn tables_read_back_as_written() {
    for json in [
        r#"{"PartitionTableType": "gpt", "MaxSize": 64, "Partitions": [
            {"ID": "esp", "Name": "esp", "Flags": ["esp", "boot"], "Start": 1, "End": 9, "FsType": "fat32"},
            {"ID": "bios", "Flags": ["bios_grub"], "Start": 9, "End": 10},
            {"ID": "root", "Name": "rootfs", "Start": 10, "End": 0, "FsType": "ext4"}]}"#,
        r#"{"PartitionTableType": "mbr", "MaxSize": 64, "Partitions": [
            {"ID": "p0", "Start": 1, "End": 9}, {"ID": "p1", "Start": 9, "End": 17}, {"ID": "p2", "Start": 17, "End": 25},
            {"ID": "p3", "Start": 25, "End": 33, "FsType": "linux-swap"}, {"ID": "p4", "Start": 33, "End": 41}, {"ID": "p5", "Start": 41, "End": 0}]}"#,
    ] {
        let d = disk(json);
        let layout = plan(&d, &Identity::seeded(b"read", 0)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&img)
            .unwrap();
        f.set_len(layout.size).unwrap();
        write_table(&layout, &f).unwrap();
        let mut read = |o: u64, b: &mut [u8]| std::os::unix::fs::FileExt::read_exact_at(&f, b, o);
        let table = kiln_disk::read::table(layout.size, &mut read)
            .unwrap()
            .unwrap();
        let got: Vec<(u32, u64, u64)> = table
            .partitions
            .iter()
            .filter(|p| p.kind != "Extended")
            .map(|p| (p.number, p.start / 512, (p.start + p.size) / 512 - 1))
            .collect();
        let want: Vec<(u32, u64, u64)> = layout
            .partitions
            .iter()
            .filter(|p| p.kind != Kind::Extended)
            .map(|p| (p.number, p.first_sector, p.last_sector))
            .collect();
        assert_eq!(got, want, "{json}");
        if table.scheme == "gpt" {
            let kinds: Vec<(&str, &str)> = table
                .partitions
                .iter()
                .map(|p| (p.kind.as_str(), p.name.as_str()))
                .collect();
            assert_eq!(
                kinds,
                [
                    ("EFI system", "esp"),
                    ("BIOS boot", ""),
                    ("Linux filesystem", "rootfs")
                ]
            );
        }
    }
}
