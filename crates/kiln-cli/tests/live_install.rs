//! `imager --live-install` (what the ISO's installer runs) onto a disk image file instead of a
//! block device, without QEMU: a kickstart config (`IsKickStartBoot`) whose PreInstallScript
//! writes `/tmp/part-include` is installed with exactly the partitions that file names, and the
//! target check (fsck-clean filesystems, the rpm database equal to the resolved set) passes —
//! and fails on a damaged filesystem or a different package set.

mod common;

use common::{sample_repo, stderr, stdout};
use kiln_imager::BuiltPartition;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// kiln under the name `imager`.
fn imager(dir: &Path) -> Command {
    common::personality(dir, "imager")
}

/// `sfdisk --json` of the disk: (start, size) of each partition, in 512-byte sectors.
fn partitions(disk: &Path) -> Vec<(u64, u64)> {
    let o = Command::new("sfdisk")
        .arg("--json")
        .arg(disk)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap()))
        .collect()
}

fn debugfs(disk: &Path, offset: u64, request: &str) -> String {
    let o = Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(format!("{}?offset={offset}", disk.display()))
        .output()
        .unwrap();
    stdout(&o)
}

/// A blank disk file of `size` bytes in `dir`.
fn blank_disk(dir: &Path, size: u64) -> PathBuf {
    let disk = dir.join("target.raw");
    std::fs::File::create(&disk).unwrap().set_len(size).unwrap();
    disk
}

/// `imager --live-install` of `config` from the sample repository (its relative paths from
/// `base_dir` when given), work and log in `dir`; asserts it succeeded and returns everything
/// it printed and logged.
fn live_install(dir: &Path, config: &Path, base_dir: Option<&Path>) -> String {
    let log = dir.join("imager.log");
    let mut cmd = imager(dir);
    cmd.arg("--live-install")
        .arg(format!("--input={}", config.display()))
        .arg(format!("--build-dir={}", dir.join("work").display()))
        .arg(format!("--local-repo={}", sample_repo().display()))
        .arg(format!("--log-file={}", log.display()))
        .arg("--log-level=info");
    if let Some(base) = base_dir {
        cmd.arg(format!("--base-dir={}", base.display()));
    }
    let o = cmd.output().unwrap();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let all = format!("{}{}\n--- log ---\n{log}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{all}");
    all
}

#[test]
fn a_kickstart_config_installs_with_the_partitions_its_preinstallscript_wrote() {
    // In the host's /tmp: the PreInstallScript gets a private /tmp, into which kiln binds the
    // script's own folder, so it runs from where it is.
    let dir = tempfile::tempdir().unwrap();
    let disk = blank_disk(dir.path(), 600 << 20);
    // The script decides the layout on the installer (here from its argument, the target);
    // its /tmp is private, so the host's /tmp/part-include is not touched.
    let script = dir.path().join("pre.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nset -e\ncat > /tmp/part-include <<EOF\n\
         # kiln test layout\n\
         part biosboot --fstype=biosboot --size=8 --ondisk=$1\n\
         part /boot --fstype=ext4 --size=100 --ondisk=$1\n\
         part / --fstype=ext4 --size=1 --grow --ondisk=$1\n\
         EOF\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let packages = common::demo_config("packagelists/demo-packages.json");
    let config = dir.path().join("kickstart.json");
    std::fs::write(
        &config,
        serde_json::to_string_pretty(&serde_json::json!({
            "SystemConfigs": [{
                "Name": "Kickstart",
                "BootType": "legacy",
                "Hostname": "kiln-kickstart",
                "IsKickStartBoot": true,
                "PreInstallScripts": [{"Path": script, "Args": disk}],
                "PackageLists": [packages],
                "Packages": ["grub2-pc"],
                "KernelOptions": {"default": "kernel"},
                "Users": [{"Name": "kiln", "Password": "kiln"}]
            }]
        }))
        .unwrap(),
    )
    .unwrap();
    let host_include = std::fs::read("/tmp/part-include").ok();
    let all = live_install(dir.path(), &config, None);
    assert_eq!(
        std::fs::read("/tmp/part-include").ok(),
        host_include,
        "the host's /tmp/part-include changed"
    );
    for line in [
        "kickstart: 3 partitions on",
        "checking the filesystem of partition 2",
        "checking the installed packages against the resolved set",
    ] {
        assert!(all.contains(line), "{line}:\n{all}");
    }
    // The partitions are part-include's: 8 MiB at 1 MiB, 100 MiB after it, the rest grown.
    let mib = 2048;
    let parts = partitions(&disk);
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert_eq!(parts[0], (mib, 8 * mib));
    assert_eq!(parts[1], (9 * mib, 100 * mib));
    assert_eq!(parts[2].0, 109 * mib);
    assert!(parts[2].0 + parts[2].1 > 590 * mib, "{parts:?}");
    // /boot holds the kernel and GRUB's configuration, / the system.
    let boot = parts[1].0 * 512;
    let root = parts[2].0 * 512;
    assert!(
        debugfs(&disk, boot, "ls /").contains("grub2"),
        "{}",
        debugfs(&disk, boot, "ls -l /")
    );
    assert_eq!(
        debugfs(&disk, root, "cat /etc/hostname").trim(),
        "kiln-kickstart"
    );
    // The config with that layout is kept for the installer's UEFI boot entry, root only.
    let kept = dir.path().join("work/kickstart_config.json");
    let meta = std::fs::metadata(&kept).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    assert_eq!(
        kept["Disks"][0]["TargetDisk"]["Value"].as_str(),
        disk.to_str()
    );

    // The check the installer runs before it reboots fails on a different package set and on
    // a damaged filesystem.
    let built = |number: u32, start: u64, size: u64, mount: &str, fs| BuiltPartition {
        index: number as usize - 1,
        id: format!("Partition{number}"),
        number,
        offset: start * 512,
        size: size * 512,
        mount_point: mount.into(),
        fs,
        fs_uuid: String::new(),
        partuuid: String::new(),
        partlabel: String::new(),
        diff: None,
    };
    let target = [
        built(
            2,
            parts[1].0,
            parts[1].1,
            "/boot",
            Some(kiln_fs::FsKind::Ext4),
        ),
        built(3, parts[2].0, parts[2].1, "/", Some(kiln_fs::FsKind::Ext4)),
    ];
    let work = dir.path().join("check");
    std::fs::create_dir(&work).unwrap();
    let check = |expected: &BTreeSet<String>| {
        kiln_build::live::check_target(&disk, &target, Some(expected), None, &work, &mut |_| {})
    };
    let db = dir.path().join("db");
    std::fs::create_dir(&db).unwrap();
    debugfs(
        &disk,
        root,
        &format!(
            "dump /var/lib/rpm/rpmdb.sqlite {}/rpmdb.sqlite",
            db.display()
        ),
    );
    let installed = kiln_build::live::query_rpmdb(&db).unwrap();
    assert!(
        installed.iter().any(|p| p.starts_with("busybox-")),
        "{installed:?}"
    );
    check(&installed).unwrap();
    let mut other = installed.clone();
    let gone = other.pop_first().unwrap();
    other.insert("not-installed-1.0-1.x86_64".into());
    let e = check(&other).unwrap_err();
    assert!(
        e.contains(&format!(
            "missing not-installed-1.0-1.x86_64; not resolved {gone}"
        )),
        "{e}"
    );
    // Zero /boot's block group descriptors (the block after its superblock).
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 4096], boot + 4096).unwrap();
    let e = check(&installed).unwrap_err();
    assert!(
        e.contains("the filesystem of partition 2 (Partition2)") && e.contains("not clean"),
        "{e}"
    );
}

#[test]
fn an_xfs_root_is_checked_by_the_live_install_and_damage_fails_it() {
    // demo-xfs.json (ESP, ext4 /boot, swap, xfs /) installed onto a disk file: the target
    // check runs xfs_repair -n on the root and reads the rpm database out of xfs.
    let dir = tempfile::tempdir().unwrap();
    let disk = blank_disk(dir.path(), 1 << 30);
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::demo_config("demo-xfs.json")).unwrap())
            .unwrap();
    config["Disks"][0]["TargetDisk"] = serde_json::json!({"Type": "path", "Value": disk});
    let input = dir.path().join("xfs.json");
    std::fs::write(&input, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let all = live_install(dir.path(), &input, Some(&common::demo_config("")));
    for line in [
        "checking the filesystem of partition 4 (rootfs)",
        "checking the installed packages against the resolved set",
    ] {
        assert!(all.contains(line), "{line}:\n{all}");
    }
    assert!(!all.contains("not checked"), "{all}");
    // The check again, on a damaged root: its AG headers (AGF, AGI, AGFL: the sectors after
    // the superblock) zeroed.
    let parts = partitions(&disk);
    assert_eq!(parts.len(), 4, "{parts:?}");
    let (start, size) = parts[3];
    let root = BuiltPartition {
        index: 3,
        id: "rootfs".into(),
        number: 4,
        offset: start * 512,
        size: size * 512,
        mount_point: "/".into(),
        fs: Some(kiln_fs::FsKind::Xfs),
        fs_uuid: String::new(),
        partuuid: String::new(),
        partlabel: String::new(),
        diff: None,
    };
    let work = dir.path().join("check");
    std::fs::create_dir(&work).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 1536], start * 512 + 512).unwrap();
    let e = kiln_build::live::check_target(
        &disk,
        std::slice::from_ref(&root),
        None,
        None,
        &work,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        e.contains("the xfs filesystem of partition 4 (rootfs)") && e.contains("not clean"),
        "{e}"
    );
    // Nothing of the check is left in its work folder.
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
}

#[path = "../../kiln-crypt/tests/support/mod.rs"]
mod crypt_oracles;

/// What the attended installer installs when encryption is chosen: the config it makes from
/// the choices (`kiln_installer::attended::config::install_config`, the screens' own code)
/// installed by `imager --live-install` onto a disk, whose root partition cryptsetup then opens
/// with the password typed on the Encryption screen (and refuses another), the target check
/// having passed.
#[test]
fn the_attended_installers_encryption_choice_installs_a_root_its_password_opens() {
    use kiln_installer::attended::config::{install_config, Firmware};
    use kiln_installer::attended::state::Choices;
    let dir = tempfile::tempdir().unwrap();
    let disk = blank_disk(dir.path(), 400 << 20);
    let template = serde_json::json!({"SystemConfigs": [{
        "Name": "Demo",
        "PackageLists": [common::demo_config("packagelists/demo-packages.json")],
        "KernelOptions": {"default": "kernel"}
    }]});
    let choices = Choices {
        system: 0,
        disk: disk.to_str().unwrap().into(),
        encryption: Some("typed on the screen".into()),
        hostname: "box-1".into(),
        user: "ada".into(),
        password: "pw1".into(),
    };
    let config = dir.path().join("attendedconfig.json");
    let made = install_config(&template, &choices, Firmware::Efi).unwrap();
    std::fs::write(&config, serde_json::to_vec_pretty(&made).unwrap()).unwrap();
    let all = live_install(dir.path(), &config, None);
    for line in [
        "opening the encrypted partition 2 (rootfs)",
        "checking the filesystem of partition 2 (rootfs)",
        "checking the installed packages against the resolved set",
    ] {
        assert!(all.contains(line), "{line}:\n{all}");
    }
    let parts = partitions(&disk);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let root = dir.path().join("root.luks");
    let (start, size) = parts[1];
    common::extract_range(&disk, start * 512, size * 512, &root);
    let blkid = |tag: &str| {
        crypt_oracles::ok(
            Command::new("blkid")
                .args(["-s", tag, "-o", "value"])
                .arg(&root),
        )
        .trim()
        .to_string()
    };
    assert_eq!(blkid("TYPE"), "crypto_LUKS");
    crypt_oracles::check_luks_dump(&root, &blkid("UUID"));
    assert_eq!(
        crypt_oracles::test_passphrase(&root, b"typed on the screen"),
        0
    );
    assert_eq!(crypt_oracles::test_passphrase(&root, b"pw1"), 2);
}
