//! An encrypted root (`Encryption.Enable`, SPEC §3.4) composed from the busybox sample and
//! judged by the reference tools: cryptsetup reads the LUKS1 header of the root partition and
//! opens it with the config's password and with the key file found inside the image, an
//! independent Python decryption recovers the LVM volume, and e2fsck finds the filesystem in
//! `cryptVG/root` clean, with the key file (mode 000), crypttab and fstab upstream writes.

mod common;

#[path = "../../kiln-crypt/tests/support/mod.rs"]
mod crypt_oracles;

use common::{demo_config, kiln, sample_repo, stderr};
use crypt_oracles::{check_luks_dump, ok, python_decrypt, test_passphrase};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;
const PASSWORD: &str = "kiln-secret";

/// demo-efi's system with a separate /boot and the root on an encrypted partition, written
/// into `dir`; its relative paths are those of imageconfigs/ (pass `--base-dir`).
fn encrypted_config(dir: &Path) -> PathBuf {
    let config = serde_json::json!({
        "Disks": [{
            "PartitionTableType": "gpt",
            "MaxSize": 128,
            "Artifacts": [{"Name": "encrypted", "Type": "raw"}],
            "Partitions": [
                {"ID": "esp", "Name": "esp", "Flags": ["esp", "boot"], "Start": 1, "End": 9,
                 "FsType": "fat32"},
                {"ID": "boot", "Name": "boot", "Start": 9, "End": 49, "FsType": "ext4"},
                {"ID": "rootfs", "Name": "rootfs", "Flags": ["dmroot"], "Start": 49, "End": 0,
                 "FsType": "ext4"}
            ]
        }],
        "SystemConfigs": [{
            "Name": "Encrypted",
            "BootType": "efi",
            "Hostname": "kiln-crypt",
            "PartitionSettings": [
                {"ID": "esp", "MountPoint": "/boot/efi", "MountOptions": "umask=0077"},
                {"ID": "boot", "MountPoint": "/boot"},
                {"ID": "rootfs", "MountPoint": "/"}
            ],
            "PackageLists": ["packagelists/demo-packages.json"],
            "KernelOptions": {"default": "kernel"},
            "KernelCommandLine": {"ExtraCommandLine": "console=ttyS0"},
            "Users": [{"Name": "kiln", "Password": "kiln"}],
            "Encryption": {"Enable": true, "Password": PASSWORD}
        }]
    });
    let path = dir.join("encrypted.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

/// `sfdisk --json` of a disk: each partition's (start, size) in bytes.
fn partitions(disk: &Path) -> Vec<(u64, u64)> {
    let out = ok(Command::new("sfdisk").arg("--json").arg(disk));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap() * 512,
                p["size"].as_u64().unwrap() * 512,
            )
        })
        .collect()
}

/// `len` bytes of `file` from `offset`, into a new file `out`.
fn extract(file: &Path, offset: u64, len: u64, out: &Path) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut o = std::fs::File::create(out).unwrap();
    std::io::copy(&mut f.take(len), &mut o).unwrap();
}

fn debugfs(fs: &Path, request: &str) -> String {
    ok(Command::new("debugfs").arg("-R").arg(request).arg(fs))
}

#[test]
fn an_encrypted_root_opens_with_the_password_and_the_images_key_file() {
    let work = tempfile::tempdir().unwrap();
    let config = encrypted_config(work.path());
    let out = work.path().join("out");
    let base = demo_config("demo-efi.json").parent().unwrap().to_path_buf();
    let o = kiln()
        .arg("compose")
        .arg("--config")
        .arg(&config)
        .arg("--base-dir")
        .arg(&base)
        .arg("--repo")
        .arg(sample_repo())
        .arg("--output-dir")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The busybox sample has no dracut: the build says its initramfs cannot unlock the root.
    assert!(
        stderr(&o).contains("warning: dracut is not in the image"),
        "{}",
        stderr(&o)
    );
    let disk = out.join("disk0.raw");
    let parts = partitions(&disk);
    assert_eq!(parts.len(), 3);

    // /boot stays a plain ext4 filesystem; the root partition is LUKS1 as upstream formats it.
    let boot = work.path().join("boot.img");
    extract(&disk, parts[1].0, parts[1].1, &boot);
    ok(Command::new("e2fsck").arg("-fn").arg(&boot));
    let part = work.path().join("root.luks");
    let (offset, size) = parts[2];
    extract(&disk, offset, size, &part);
    let blkid = ok(Command::new("blkid")
        .args(["-s", "TYPE", "-o", "value"])
        .arg(&part));
    assert_eq!(blkid.trim(), "crypto_LUKS");
    let uuid = ok(Command::new("blkid")
        .args(["-s", "UUID", "-o", "value"])
        .arg(&part))
    .trim()
    .to_string();
    check_luks_dump(&part, &uuid);
    assert_eq!(test_passphrase(&part, PASSWORD.as_bytes()), 0, "password");
    assert_eq!(test_passphrase(&part, b"wrong"), 2, "a wrong password");

    // Decrypted independently: LVM cryptVG/root over the whole PV, the filesystem in it.
    let plain = work.path().join("plain.img");
    let j = python_decrypt(&part, PASSWORD.as_bytes(), &plain);
    assert_eq!(j["luks"]["uuid"], uuid.as_str());
    assert_eq!(j["luks"]["opened_slot"], 0);
    let text = j["lvm"]["text"].as_str().unwrap();
    let lv = (size - 3 * MIB) / (4 * MIB) * 4 * MIB;
    for want in [
        "cryptVG {\n".to_string(),
        format!("device = \"/dev/mapper/luks-{uuid}\""),
        "\nroot {\n".into(),
        format!("\nextent_count = {}\n", lv / (4 * MIB)),
        "creation_host = \"kiln-crypt\"".into(),
        "creation_time = 1700000000".into(),
    ] {
        assert!(text.contains(&want), "{want:?} not in\n{text}");
    }
    let root = work.path().join("lv.img");
    extract(&plain, MIB, lv, &root);
    ok(Command::new("e2fsck").arg("-fn").arg(&root));
    std::fs::remove_file(&plain).unwrap();

    // Inside: the key file (mode 000) opens slot 1; crypttab and fstab are upstream's.
    let stat = debugfs(&root, "stat /etc/default.keyfile");
    assert!(stat.contains("Mode:  0000"), "{stat}");
    assert!(stat.contains("Size: 2048"), "{stat}");
    let keyfile = work.path().join("default.keyfile");
    debugfs(
        &root,
        &format!("dump /etc/default.keyfile {}", keyfile.display()),
    );
    let key = std::fs::read(&keyfile).unwrap();
    assert_eq!(key.len(), 2048);
    assert_eq!(test_passphrase(&part, &key), 0, "the image's key file");
    let j = python_decrypt(&part, &key, &plain);
    assert_eq!(j["luks"]["opened_slot"], 1);
    let crypttab = debugfs(&root, "cat /etc/crypttab");
    assert!(
        crypttab.contains(&format!(
            "luks-{uuid} UUID={uuid} /etc/default.keyfile luks,discard\n"
        )),
        "{crypttab}"
    );
    let fstab = debugfs(&root, "cat /etc/fstab");
    assert!(
        fstab.contains("/dev/mapper/cryptVG-root / ext4 defaults 0 1\n"),
        "{fstab}"
    );
    // The kernel command line upstream's template gets: the LUKS UUID and the LV to activate.
    let grub = debugfs(&root, "cat /etc/default/grub");
    assert!(
        grub.contains(&format!(
            "GRUB_CMDLINE_LINUX=\"luks.uuid={uuid} rd.lvm.lv=cryptVG/root  selinux=0  rd.auto=1"
        )),
        "{grub}"
    );
    // The ESP's grub.cfg opens encrypted disks first.
    let esp = work.path().join("esp.img");
    extract(&disk, parts[0].0, parts[0].1, &esp);
    let cfg = ok(Command::new("mtype")
        .arg("-i")
        .arg(&esp)
        .arg("::/boot/grub2/grub.cfg")
        .env("MTOOLS_SKIP_CHECK", "1"));
    assert!(cfg.starts_with("cryptomount -a\n"), "{cfg}");
}
