//! Diff-disk builds (SPEC §2.3, §3.9): a base config's root partition dumped as an `ext4`
//! partition artifact becomes an overlay config's `OverlayBaseImage` and `RdiffBaseImage`; the
//! overlay build's `diff` artifact holds exactly what it changed on top of the base (new and
//! changed entries, whiteouts for removed ones), and its `rdiff` artifact patches the base into
//! the built partition (librsync's `rdiff patch` is the judge).

mod common;

use common::stderr;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A disk config from the sample repository: ESP and an ext4 root, `root` the root's
/// PartitionSetting, `system` extra SystemConfig keys, `root_artifacts` the root partition's.
fn config(
    dir: &Path,
    name: &str,
    root: serde_json::Value,
    root_artifacts: serde_json::Value,
    system: serde_json::Value,
) -> PathBuf {
    let mut sc = serde_json::json!({
        "Name": name,
        "BootType": "efi",
        "Hostname": "kiln-diff",
        "PartitionSettings": [
            {"ID": "esp", "MountPoint": "/boot/efi", "MountOptions": "umask=0077"},
            root
        ],
        "KernelOptions": {"default": "kernel"}
    });
    for (k, v) in system.as_object().unwrap() {
        sc[k] = v.clone();
    }
    let config = serde_json::json!({
        "Disks": [{
            "PartitionTableType": "gpt",
            "MaxSize": 160,
            "Artifacts": [{"Name": name, "Type": "raw"}],
            "Partitions": [
                {"ID": "esp", "Flags": ["esp", "boot"], "Start": 1, "End": 9, "FsType": "fat32"},
                {"ID": "rootfs", "Start": 9, "End": 0, "FsType": "ext4",
                 "Artifacts": root_artifacts}
            ]
        }],
        "SystemConfigs": [sc]
    });
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

fn compose(config: &Path, out: &Path) {
    let o = common::compose_based(config, Some(&common::imageconfigs()), out);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `tar tvf` of the archive: name → (type character, mode string, the line).
fn listing(tar: &Path) -> BTreeMap<String, String> {
    ok(Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(tar))
    .lines()
    .map(|l| {
        let name = l.split_whitespace().nth(5).unwrap().trim_end_matches('/');
        (name.to_string(), l.to_string())
    })
    .collect()
}

#[test]
fn a_diff_disk_build_writes_the_overlays_changes_and_an_rdiff_delta() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // The base: its root partition dumped as upstream's `ext4` partition artifact.
    let base_config = config(
        dir,
        "base",
        serde_json::json!({"ID": "rootfs", "MountPoint": "/"}),
        serde_json::json!([{"Name": "base-root", "Type": "ext4"}]),
        serde_json::json!({
            "PackageLists": ["packagelists/demo-packages.json"],
            "Users": [{"Name": "kiln", "Password": "kiln"}]
        }),
    );
    compose(&base_config, &dir.join("base"));
    let base_root = dir.join("base/disk0.partition1.raw");
    ok(Command::new("e2fsck").arg("-fn").arg(&base_root));

    // The overlay: one more package, and a script that removes, changes and adds files.
    let script = dir.join("overlay.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nset -e\nrm /etc/shells\nchmod 0700 /etc/skel\nmkdir -p /opt/overlay\n\
         echo hi > /opt/overlay/new\n",
    )
    .unwrap();
    let overlay_config = config(
        dir,
        "overlay",
        serde_json::json!({"ID": "rootfs", "MountPoint": "/",
            "OverlayBaseImage": base_root, "RdiffBaseImage": base_root}),
        serde_json::json!([{"Name": "root-diff", "Type": "diff"},
                           {"Name": "root-rdiff", "Type": "rdiff"}]),
        serde_json::json!({
            "Packages": ["sample-app"],
            "PostInstallScripts": [{"Path": script}]
        }),
    );
    let out = dir.join("overlay");
    compose(&overlay_config, &out);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "disk0.partition1.diff",
            "disk0.partition1.rdiff",
            "disk0.raw"
        ]
    );

    // The diff against the base tree (read out with debugfs, independently of kiln).
    let base_tree = dir.join("base-tree");
    std::fs::create_dir(&base_tree).unwrap();
    ok(Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump / {}", base_tree.display()))
        .arg(&base_root));
    let diff = out.join("disk0.partition1.diff");
    let entries = listing(&diff);
    assert!(entries.contains_key("."), "{entries:#?}");
    // Removed: a whiteout (character device 0,0).
    let shells = &entries["./etc/shells"];
    assert!(shells.starts_with("c---------"), "{shells}");
    assert!(shells.contains(" 0,0 "), "{shells}");
    // Changed metadata: the directory itself, with its new mode.
    assert!(entries["./etc/skel"].starts_with("drwx------"));
    // Added: the script's file and the new package's.
    let applied = dir.join("applied");
    std::fs::create_dir(&applied).unwrap();
    ok(Command::new("tar")
        .args(["-xf"])
        .arg(&diff)
        .arg("-C")
        .arg(&applied)
        .args(["./opt/overlay/new", "./usr/bin/sample-app"]));
    assert_eq!(
        std::fs::read_to_string(applied.join("opt/overlay/new")).unwrap(),
        "hi\n"
    );
    assert!(!base_tree.join("usr/bin/sample-app").exists());
    // Nothing the build left as it was: every regular file of the diff is new or changed.
    for (name, line) in &entries {
        if !line.starts_with('-') {
            continue;
        }
        let rel = name.trim_start_matches("./");
        let in_base = base_tree.join(rel);
        if !in_base.is_file() {
            continue;
        }
        let extracted = dir.join("one");
        let _ = std::fs::remove_dir_all(&extracted);
        std::fs::create_dir(&extracted).unwrap();
        ok(Command::new("tar")
            .arg("-xf")
            .arg(&diff)
            .arg("-C")
            .arg(&extracted)
            .arg(name));
        let same = std::fs::read(extracted.join(rel)).unwrap() == std::fs::read(&in_base).unwrap();
        assert!(!same, "{name} is unchanged: {line}");
    }
    // The base's busybox and the users' files stayed as they were.
    for unchanged in ["./etc/passwd", "./usr/bin/busybox", "./bin/busybox"] {
        assert!(!entries.contains_key(unchanged), "{unchanged} in the diff");
    }

    // The partition itself is an empty filesystem, as upstream leaves it; fstab left it out.
    let parts = ok(Command::new("sfdisk")
        .arg("--json")
        .arg(out.join("disk0.raw")));
    let v: serde_json::Value = serde_json::from_str(&parts).unwrap();
    let p = &v["partitiontable"]["partitions"][1];
    let (start, size) = (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap());
    let part = dir.join("part.raw");
    ok(Command::new("dd")
        .arg(format!("if={}", out.join("disk0.raw").display()))
        .arg(format!("of={}", part.display()))
        .args(["bs=512", "status=none"])
        .arg(format!("skip={start}"))
        .arg(format!("count={size}")));
    ok(Command::new("e2fsck").arg("-fn").arg(&part));
    let ls = ok(Command::new("debugfs").args(["-R", "ls -p /"]).arg(&part));
    assert_eq!(ls.lines().filter(|l| l.starts_with('/')).count(), 3, "{ls}");

    // rdiff: the delta patches the base into the built partition.
    let patched = dir.join("patched.raw");
    ok(Command::new("rdiff")
        .arg("patch")
        .arg(&base_root)
        .arg(out.join("disk0.partition1.rdiff"))
        .arg(&patched));
    assert!(
        std::fs::read(&patched).unwrap() == std::fs::read(&part).unwrap(),
        "rdiff patch gives the partition"
    );
}
