//! Filesystems made into the partitions of a disk image, checked by their own tools: e2fsck,
//! fsck.vfat, xfs_repair, blkid, debugfs and mtools read each partition's range.

use kiln_config::{validate_bytes, Options};
use kiln_disk::{plan, write_table};
use kiln_formats::ident::Identity;
use kiln_fs::{make, FsKind};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Copies `[offset, offset + len)` of `disk` into a file of its own.
fn extract(disk: &Path, offset: u64, len: u64, to: &Path) {
    let src = File::open(disk).unwrap();
    let dst = File::create(to).unwrap();
    dst.set_len(len).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        src.read_exact_at(&mut buf[..n], offset + at).unwrap();
        if buf[..n].iter().any(|&b| b != 0) {
            dst.write_all_at(&buf[..n], at).unwrap();
        }
        at += n as u64;
    }
}

/// A config of the one disk `disk` (its `Disks[]` JSON), planned with an identity seeded by
/// `seed`, and `disk.raw` of its size with its table in a new temporary directory.
fn partitioned_disk(
    disk: &str,
    seed: &[u8],
) -> (
    tempfile::TempDir,
    kiln_config::model::Disk,
    kiln_disk::Layout,
    std::path::PathBuf,
    Identity,
) {
    let doc =
        format!(r#"{{"Disks": [{disk}], "SystemConfigs": [{{"Name": "x", "Packages": ["p"]}}]}}"#);
    let opts = Options {
        base_dir: Some("/".into()),
        package_checks: false,
        file_checks: false,
    };
    let v = validate_bytes(doc.as_bytes(), Path::new("c.json"), &opts);
    let disk_cfg = v.config.unwrap().config.disks[0].clone();
    let identity = Identity::seeded(seed, 1_700_000_000);
    let layout = plan(&disk_cfg, &identity).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.raw");
    let f = File::create(&path).unwrap();
    f.set_len(layout.size).unwrap();
    write_table(
        &layout,
        &File::options().read(true).write(true).open(&path).unwrap(),
    )
    .unwrap();
    (dir, disk_cfg, layout, path, identity)
}

/// Makes config partition `i`'s filesystem (filled from `content`) in `disk`, copies the
/// partition's bytes into `<disk>.<id>.img` and checks blkid's type and UUID there; returns
/// the kind, that file and blkid's output.
fn make_and_read(
    disk: &Path,
    layout: &kiln_disk::Layout,
    i: usize,
    p: &kiln_config::model::Partition,
    content: Option<&Path>,
    identity: &Identity,
) -> (FsKind, String, String) {
    let planned = layout.for_config(i).unwrap();
    let kind = FsKind::from_config(&p.fs_type).unwrap().unwrap();
    let made = make(
        disk,
        kind,
        planned.offset(),
        planned.size(),
        content,
        identity,
        &p.id,
    )
    .unwrap_or_else(|e| panic!("{} ({} bytes): {e}", p.id, planned.size()));
    let part = disk.with_file_name(format!("{}.img", p.id));
    extract(disk, planned.offset(), planned.size(), &part);
    let part = part.display().to_string();
    let blkid = sh(&format!("blkid -p -o export {part}"));
    assert!(
        blkid.contains(&format!("TYPE={}", kind.fstab_type()))
            && blkid.contains(&format!("UUID={}", made.uuid)),
        "{}: {blkid} vs {}",
        p.id,
        made.uuid
    );
    (kind, part, blkid)
}

#[test]
fn every_filesystem_in_its_range() {
    let doc = r#"{"PartitionTableType": "gpt", "MaxSize": 800, "Partitions": [
        {"ID": "esp", "Flags": ["esp", "boot"], "Start": 1, "End": 65, "FsType": "fat32"},
        {"ID": "boot", "Start": 65, "End": 129, "FsType": "ext2"},
        {"ID": "swap", "Start": 129, "End": 145, "FsType": "linux-swap"},
        {"ID": "data", "Start": 145, "End": 465, "FsType": "xfs"},
        {"ID": "var", "Start": 465, "End": 529, "FsType": "ext3"},
        {"ID": "root", "Start": 529, "End": 0, "FsType": "ext4"}]}"#;
    let (dir, disk_cfg, layout, disk, identity) = partitioned_disk(doc, b"fs-test");
    let disk_cfg = &disk_cfg;

    // Contents.
    let esp = dir.path().join("esp");
    std::fs::create_dir_all(esp.join("EFI/BOOT")).unwrap();
    std::fs::write(esp.join("EFI/BOOT/grubx64.efi"), b"MZ grub").unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("etc/hostname"), "kiln-demo\n").unwrap();
    std::fs::write(root.join("usr/bin/tool"), vec![9u8; 100_000]).unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::os::unix::fs::symlink("../usr/bin/tool", root.join("etc/tool")).unwrap();

    for (i, p) in disk_cfg.partitions.iter().enumerate() {
        let content = match p.id.as_str() {
            "esp" => Some(esp.as_path()),
            "root" => Some(root.as_path()),
            _ => None,
        };
        let (kind, part, blkid) = make_and_read(&disk, &layout, i, p, content, &identity);
        match kind {
            FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => {
                sh(&format!("e2fsck -fn {part}"));
            }
            FsKind::Vfat => {
                sh(&format!("fsck.vfat -n {part}"));
                // The FAT size mkfs.vfat picks for a 64 MiB device, not for the whole disk.
                assert!(blkid.contains("VERSION=FAT16"), "{blkid}");
            }
            FsKind::Xfs => {
                sh(&format!("xfs_repair -n {part}"));
            }
            FsKind::Swap => {}
        }
    }
    // Contents are there, with modes and links.
    let root_img = dir.path().join("root.img").display().to_string();
    assert_eq!(
        sh(&format!(
            "debugfs -R 'cat /etc/hostname' {root_img} 2>/dev/null"
        )),
        "kiln-demo\n"
    );
    let stat = sh(&format!(
        "debugfs -R 'stat /usr/bin/tool' {root_img} 2>/dev/null"
    ));
    assert!(stat.contains("Mode:  04755"), "{stat}");
    let link = sh(&format!(
        "debugfs -R 'stat /etc/tool' {root_img} 2>/dev/null"
    ));
    assert!(
        link.contains("Fast link dest: \"../usr/bin/tool\""),
        "{link}"
    );
    let features = sh(&format!("dumpe2fs -h {root_img} 2>/dev/null"));
    assert!(
        features.contains("metadata_csum")
            && features.contains("64bit")
            && features.contains("Block size:               4096"),
        "{features}"
    );
    let esp_img = dir.path().join("esp.img").display().to_string();
    assert_eq!(
        sh(&format!(
            "MTOOLS_SKIP_CHECK=1 mtype -i {esp_img} ::/EFI/BOOT/grubx64.efi"
        )),
        "MZ grub"
    );
    // Nothing but the disk (and the extracted copies) was written.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("kiln-tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn unknown_filesystems_and_unwritable_xfs_links_are_refused() {
    assert_eq!(FsKind::from_config("").unwrap(), None);
    let e = FsKind::from_config("btrfs").unwrap_err();
    assert_eq!(e.to_string(), "unrecognized filesystem format: btrfs");

    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    File::create(&disk).unwrap().set_len(400 << 20).unwrap();
    let content = dir.path().join("content");
    std::fs::create_dir(&content).unwrap();
    std::os::unix::fs::symlink("x".repeat(400), content.join("long-link")).unwrap();
    let identity = Identity::seeded(b"fs-test", 0);
    // mkfs.xfs 6.1 writes a symlink whose target does not fit in its inode without its block
    // header (xfs_repair removes it): refused by name.
    let e = make(
        &disk,
        FsKind::Xfs,
        1 << 20,
        350 << 20,
        Some(&content),
        &identity,
        "data",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("long-link") && e.to_string().contains("400 bytes"),
        "{e}"
    );
    // A FAT filesystem too small for any FAT size: mkfs.vfat's own reason, no scratch left.
    let e = make(
        &disk,
        FsKind::Vfat,
        1 << 20,
        8 << 10,
        None,
        &identity,
        "esp",
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("mkfs.vfat failed: "), "{e}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// A 400 MiB disk file in `dir` with an xfs filesystem at 1 MiB (350 MiB) filled from
/// `content`; the filesystem's bytes are copied into `dir/fs.img`.
fn xfs_from(dir: &Path, content: &Path) -> Result<(kiln_fs::Made, PathBuf), kiln_fs::Error> {
    let disk = dir.join("disk.raw");
    File::create(&disk).unwrap().set_len(400 << 20).unwrap();
    let identity = Identity::seeded(b"fs-test", 0);
    let made = make(
        &disk,
        FsKind::Xfs,
        1 << 20,
        350 << 20,
        Some(content),
        &identity,
        "data",
    )?;
    let fs = dir.join("fs.img");
    extract(&disk, 1 << 20, 350 << 20, &fs);
    Ok((made, fs))
}

#[test]
fn xfs_is_filled_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content");
    std::fs::create_dir_all(content.join("etc")).unwrap();
    std::fs::create_dir_all(content.join("tmp")).unwrap();
    std::fs::set_permissions(content.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::write(content.join("etc/hostname"), "xfs-host").unwrap();
    std::fs::set_permissions(
        content.join("etc/hostname"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink("hostname", content.join("etc/name")).unwrap();
    std::os::unix::fs::chown(content.join("etc/hostname"), Some(12), Some(34)).unwrap();
    let (made, fs) = xfs_from(dir.path(), &content).unwrap();
    sh(&format!("xfs_repair -n {}", fs.display()));
    assert!(sh(&format!("blkid -o value -s UUID {}", fs.display())).contains(&made.uuid));
    let db = |cmds: &str| sh(&format!("xfs_db -r {cmds} {}", fs.display()));
    assert!(
        db("-c 'path /tmp' -c 'print core.mode'").contains("041777"),
        "sticky"
    );
    let inode = db("-c 'path /etc/hostname' -c 'print core.mode core.uid core.gid core.size'");
    for want in ["0100640", "core.uid = 12", "core.gid = 34", "core.size = 8"] {
        assert!(inode.contains(want), "{want} in {inode}");
    }
    assert!(
        db("-c 'path /etc/name' -c 'print core.mode'").contains("0120"),
        "symlink"
    );
}

#[test]
fn a_symlink_in_a_fat_tree_never_copies_a_host_file() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    File::create(&disk).unwrap().set_len(64 << 20).unwrap();
    let host = dir.path().join("host-secret");
    std::fs::write(&host, "host secret").unwrap();
    let content = dir.path().join("esp");
    std::fs::create_dir_all(content.join("EFI/BOOT")).unwrap();
    std::fs::write(content.join("EFI/BOOT/grub.cfg"), "ok").unwrap();
    std::os::unix::fs::symlink(&host, content.join("EFI/BOOT/leak")).unwrap();
    let identity = Identity::seeded(b"fs-test", 0);
    let e = make(
        &disk,
        FsKind::Vfat,
        1 << 20,
        32 << 20,
        Some(&content),
        &identity,
        "esp",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("EFI/BOOT/leak") && e.to_string().contains("FAT cannot hold"),
        "{e}"
    );
    let written = std::fs::read(&disk).unwrap();
    assert!(!written.windows(11).any(|w| w == b"host secret"));
}

/// Upstream's parted layout gives MBR logical partitions an odd number of sectors (they start
/// one sector after a MiB, aligned up, and end one sector after one): every filesystem kind is
/// made on such a partition, with contents, and checks clean.
#[test]
fn every_filesystem_on_mbr_logical_partitions_of_odd_sizes() {
    let doc = r#"{"PartitionTableType": "mbr", "MaxSize": 720, "Partitions": [
        {"ID": "boot", "Flags": ["boot"], "Start": 1, "End": 33, "FsType": "ext2"},
        {"ID": "p2", "Start": 33, "End": 65, "FsType": "ext3"},
        {"ID": "p3", "Start": 65, "End": 97, "FsType": "linux-swap"},
        {"ID": "esp", "Start": 97, "End": 161, "FsType": "fat32"},
        {"ID": "root", "Start": 161, "End": 225, "FsType": "ext4"},
        {"ID": "data", "Start": 225, "End": 545, "FsType": "xfs"},
        {"ID": "swap", "Start": 545, "End": 577, "FsType": "linux-swap"},
        {"ID": "last", "Start": 577, "End": 0, "FsType": "fat16"}]}"#;
    let (dir, disk_cfg, layout, disk, identity) = partitioned_disk(doc, b"fs-test-mbr");
    let disk_cfg = &disk_cfg;
    let content = dir.path().join("content");
    std::fs::create_dir_all(content.join("etc")).unwrap();
    std::fs::write(content.join("etc/hostname"), "odd\n").unwrap();
    std::fs::write(content.join("big"), vec![7u8; 300_000]).unwrap();

    let mut odd = 0;
    for (i, p) in disk_cfg.partitions.iter().enumerate() {
        let planned = layout.for_config(i).unwrap();
        let sectors = planned.size() / 512;
        if i >= 3 && p.end != 0 {
            assert_eq!(sectors % 2, 1, "{}: {sectors} sectors", p.id);
            odd += 1;
        }
        let fill = (p.fs_type != "linux-swap").then_some(content.as_path());
        let (kind, part, _) = make_and_read(&disk, &layout, i, p, fill, &identity);
        match kind {
            FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => {
                sh(&format!("e2fsck -fn {part}"));
                assert_eq!(
                    sh(&format!(
                        "debugfs -R 'cat /etc/hostname' {part} 2>/dev/null"
                    )),
                    "odd\n"
                );
            }
            FsKind::Vfat => {
                sh(&format!("fsck.vfat -n {part}"));
                assert_eq!(
                    sh(&format!(
                        "MTOOLS_SKIP_CHECK=1 mtype -i {part} ::/etc/hostname"
                    )),
                    "odd\n"
                );
            }
            FsKind::Xfs => {
                sh(&format!("xfs_repair -n {part}"));
                assert!(sh(&format!(
                    "xfs_db -r -c 'path /big' -c 'print core.size' {part}"
                ))
                .contains("core.size = 300000"));
            }
            FsKind::Swap => {
                let page = std::fs::read(&part).unwrap();
                assert_eq!(&page[4086..4096], b"SWAPSPACE2", "{}", p.id);
                let last = u32::from_le_bytes(page[1028..1032].try_into().unwrap());
                assert_eq!(u64::from(last), planned.size() / 4096 - 1);
            }
        }
    }
    assert_eq!(odd, 4);
    // Nothing else was written into the disk file's other partitions: sfdisk still reads it.
    let table = sh(&format!("sfdisk -d {}", disk.display()));
    assert_eq!(table.matches("start=").count(), 9, "{table}"); // and the extended one
}

/// A POSIX ACL as Linux's `system.posix_acl_*` value (version 2, then le16 tag, le16 perm,
/// le32 id): the owner rw-, group r--, other r--, a mask rwx and the named `entries` (tag,
/// perm, id), in the kernel's order (by tag).
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    const UNDEFINED: u32 = u32::MAX;
    let mut all = vec![
        (1, 6, UNDEFINED),
        (4, 4, UNDEFINED),
        (0x10, 7, UNDEFINED),
        (0x20, 4, UNDEFINED),
    ];
    all.extend_from_slice(entries);
    all.sort_by_key(|e| e.0);
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in all {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

/// The same ACL as xfs keeps it (`struct xfs_acl`, big-endian): count, then tag, id, perm, pad.
fn xfs_acl_of(linux: &[u8]) -> Vec<u8> {
    let entries: Vec<_> = linux[4..].chunks(8).collect();
    let mut v = (entries.len() as u32).to_be_bytes().to_vec();
    for e in entries {
        v.extend_from_slice(&u32::from(u16::from_le_bytes([e[0], e[1]])).to_be_bytes());
        v.extend_from_slice(&u32::from_le_bytes([e[4], e[5], e[6], e[7]]).to_be_bytes());
        v.extend_from_slice(&u16::from_le_bytes([e[2], e[3]]).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
    }
    v
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold("0x".to_string(), |s, b| s + &format!("{b:02x}"))
}

/// Bytes as xfs_db prints a value between quotes: printable ASCII as is, C's escapes for
/// `\a` to `\r`, the rest `\ooo`.
fn xfs_db_string(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            7..=13 => ["\\a", "\\b", "\\t", "\\n", "\\v", "\\f", "\\r"][usize::from(b - 7)].into(),
            b' '..=b'~' if b != b'"' && b != b'\\' => (b as char).to_string(),
            _ => format!("\\{b:03o}"),
        })
        .collect()
}

/// `setfattr -n name -v value path` (`0x…` values are hex).
fn setfattr(path: &Path, name: &str, value: &str) {
    sh(&format!(
        "setfattr -h -n {name} -v '{value}' '{}'",
        path.display()
    ));
}

/// Extended attributes (SELinux labels on every kind of inode, file capabilities, trusted.*
/// and user.*; enough on one file to need an attribute block) and hard links (within one
/// directory, across directories, into a directory too big to live in its inode) are carried
/// into xfs, and the filesystem checks clean.
#[test]
fn xfs_keeps_extended_attributes_and_hard_links() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("content");
    std::fs::create_dir_all(c.join("usr/bin")).unwrap();
    std::fs::create_dir_all(c.join("usr/sbin")).unwrap();
    std::fs::create_dir_all(c.join("many")).unwrap();
    std::fs::write(c.join("usr/bin/tool"), vec![5u8; 70_000]).unwrap();
    std::fs::hard_link(c.join("usr/bin/tool"), c.join("usr/bin/tool-alias")).unwrap();
    std::fs::hard_link(c.join("usr/bin/tool"), c.join("usr/sbin/tool")).unwrap();
    for i in 0..300 {
        std::fs::write(c.join(format!("many/file{i:03}")), format!("{i}\n")).unwrap();
    }
    std::fs::hard_link(c.join("many/file007"), c.join("many/zz-link")).unwrap();
    std::fs::hard_link(c.join("many/file007"), c.join("usr/bin/seven")).unwrap();
    std::os::unix::fs::symlink("tool", c.join("usr/bin/tl")).unwrap();
    std::fs::write(c.join("ping"), "ping").unwrap();
    std::fs::write(c.join("crowded"), "x").unwrap();

    let label = |t: &str| format!("system_u:object_r:{t}:s0");
    setfattr(&c, "security.selinux", &label("root_t"));
    setfattr(&c.join("usr"), "security.selinux", &label("usr_t"));
    setfattr(&c.join("usr/bin/tool"), "security.selinux", &label("bin_t"));
    setfattr(&c.join("usr/bin/tl"), "security.selinux", &label("bin_t"));
    setfattr(&c.join("many/file007"), "security.selinux", &label("etc_t"));
    setfattr(&c.join("many/file008"), "security.selinux", &label("etc_t"));
    // File capabilities (cap_net_raw+ep), binary.
    let caps = "0x0100000200200000000000000000000000000000";
    setfattr(&c.join("ping"), "security.capability", caps);
    setfattr(&c.join("ping"), "trusted.kiln", "t-value");
    setfattr(&c.join("ping"), "user.kiln", "u-value");
    for i in 0..12 {
        setfattr(
            &c.join("crowded"),
            &format!("user.a{i:02}"),
            &"x".repeat(200 + i),
        );
    }
    setfattr(&c.join("crowded"), "security.selinux", &label("crowded_t"));
    // POSIX ACLs (as systemd-tmpfiles leaves /var/log/journal): an access ACL on a file and
    // access + default ACLs on a directory, given as Linux's xattr values.
    std::fs::create_dir(c.join("journal")).unwrap();
    let (file_acl, dir_default) = (acl(&[(2, 7, 1234)]), acl(&[(8, 5, 4321)]));
    setfattr(&c.join("ping"), "system.posix_acl_access", &hex(&file_acl));
    setfattr(
        &c.join("journal"),
        "system.posix_acl_access",
        &hex(&file_acl),
    );
    setfattr(
        &c.join("journal"),
        "system.posix_acl_default",
        &hex(&dir_default),
    );

    let (_, fs) = xfs_from(dir.path(), &c).unwrap();
    sh(&format!("xfs_repair -n {}", fs.display()));
    let db = |cmds: &str| sh(&format!("xfs_db -r {cmds} {} 2>&1", fs.display()));
    let ino = |path: &str| {
        db(&format!("-c 'path {path}' -c inode"))
            .trim()
            .strip_prefix("current inode number is ")
            .unwrap()
            .to_string()
    };

    // Hard links: one inode, its link count the number of names, its data once.
    let tool = ino("/usr/bin/tool");
    assert_eq!(ino("/usr/bin/tool-alias"), tool);
    assert_eq!(ino("/usr/sbin/tool"), tool);
    let seven = ino("/many/file007");
    assert_eq!(ino("/many/zz-link"), seven);
    assert_eq!(ino("/usr/bin/seven"), seven);
    assert_ne!(ino("/many/file008"), seven);
    for (path, size) in [("/usr/sbin/tool", 70_000), ("/usr/bin/seven", 2)] {
        let stat = db(&format!(
            "-c 'path {path}' -c 'print core.nlinkv2 core.size'"
        ));
        assert!(
            stat.contains("core.nlinkv2 = 3") && stat.contains(&format!("core.size = {size}")),
            "{path}: {stat}"
        );
    }
    let data = db("-c 'path /usr/bin/seven' -c 'dblock 0' -c 'type text' -c 'print'");
    assert!(data.contains("37 0a"), "{data}");

    // Extended attributes, each in its namespace with its value.
    let attrs = |path: &str| {
        db(&format!(
            "-c 'path {path}' -c 'print a' -c 'ablock 0' -c 'print nvlist'"
        ))
    };
    for (path, t) in [
        ("/", "root_t"),
        ("/usr", "usr_t"),
        ("/usr/sbin/tool", "bin_t"),
        ("/usr/bin/tl", "bin_t"),
        ("/many/zz-link", "etc_t"),
        ("/many/file008", "etc_t"),
        ("/crowded", "crowded_t"),
    ] {
        let a = attrs(path);
        assert!(a.contains(&format!("\"{}\"", label(t))), "{path}: {a}");
        assert!(a.contains("\"selinux\""), "{path}: {a}");
    }
    // ACLs in xfs's own form, in the root namespace (xfs_repair -n above checked them too).
    let ping = attrs("/ping");
    let journal = attrs("/journal");
    for (a, name, linux) in [
        (&ping, "SGI_ACL_FILE", &file_acl),
        (&journal, "SGI_ACL_FILE", &file_acl),
        (&journal, "SGI_ACL_DEFAULT", &dir_default),
    ] {
        let want = format!("\"{name}\"");
        assert!(a.contains(&want), "{want}: {a}");
        let want = format!("\"{}\"", xfs_db_string(&xfs_acl_of(linux)));
        assert!(a.contains(&want), "{want}: {a}");
    }
    for want in [
        "\"capability\"",
        "\"\\001\\000\\000\\002\\000 \\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\"",
        "\"t-value\"",
        "\"u-value\"",
        "list[0].secure = 1",
        "list[1].root = 1",
    ] {
        assert!(ping.contains(want), "{want}: {ping}");
    }
    let crowded = attrs("/crowded");
    assert!(
        crowded.contains("core.aformat") || crowded.contains("a.bmx"),
        "{crowded}"
    );
    for i in 0..12 {
        assert!(
            crowded.contains(&format!("\"a{i:02}\""))
                && crowded.contains(&format!("\"{}\"", "x".repeat(200 + i))),
            "a{i:02}: {crowded}"
        );
    }
    assert!(!crowded.contains("vvvvvvvv"), "{crowded}");
}

/// A directory small enough to live in its inode but too big to leave room for its SELinux
/// label beside it (as `/etc/systemd/system` of a labelled image) keeps its label and every
/// entry, and nothing of the filler entry that made it a block is left.
#[test]
fn xfs_labels_a_directory_that_only_just_fits_in_its_inode() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("content");
    let full = c.join("etc/full");
    std::fs::create_dir_all(&full).unwrap();
    // 20 entries of 8-byte names: a 326-byte shortform directory, 336 bytes in the inode.
    for i in 0..20 {
        std::fs::write(full.join(format!("unit{i:04}")), "x").unwrap();
    }
    let label = "system_u:object_r:systemd_unit_file_t:s0";
    for p in [
        c.clone(),
        c.join("etc"),
        full.clone(),
        full.join("unit0003"),
    ] {
        setfattr(&p, "security.selinux", label);
    }
    let (_, fs) = xfs_from(dir.path(), &c).unwrap();
    sh(&format!("xfs_repair -n {}", fs.display()));
    let db = |cmds: &str| sh(&format!("xfs_db -r {cmds} {} 2>&1", fs.display()));
    let a = db("-c 'path /etc/full' -c 'print a'");
    assert!(a.contains(&format!("\"{label}\"")), "{a}");
    let ls = db("-c 'ls /etc/full'");
    for i in 0..20 {
        assert!(ls.contains(&format!(" unit{i:04} ")), "unit{i:04}: {ls}");
    }
    assert!(!ls.contains("kiln-xfs-filler"), "{ls}");
    let root = db("-c 'ls /'");
    assert!(!root.contains("kiln-xfs-filler"), "{root}");
}

/// An attribute xfs_db cannot make is an error naming the file and the attribute, and nothing
/// is left behind.
#[test]
fn xfs_refuses_attributes_it_cannot_write_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("content");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("flagged"), "x").unwrap();
    sh(&format!(
        "setfattr -n user.empty '{}'",
        c.join("flagged").display()
    ));
    let e = xfs_from(dir.path(), &c).unwrap_err().to_string();
    assert!(
        e.contains("flagged") && e.contains("\"user.empty\"") && e.contains("empty value"),
        "{e}"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// `xfs_db -r` with these commands on `fs`: what it printed, as bytes (names are not UTF-8).
fn xfs_db_bytes(fs: &Path, cmds: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new("xfs_db");
    cmd.arg("-r");
    for c in cmds {
        cmd.arg("-c").arg(c);
    }
    let o = cmd.arg(fs).output().unwrap();
    assert!(
        o.status.success(),
        "{cmds:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// The inode number of `name` in `xfs_db ls` output, if the entry is there and its hash is
/// right (`(good)`).
fn ls_inode(ls: &[u8], name: &[u8]) -> Option<u64> {
    let mut want = format!(" {} ", name.len()).into_bytes();
    want.extend_from_slice(name);
    want.extend_from_slice(b" (good)\n");
    let at = ls.windows(want.len()).position(|w| w == want.as_slice())?;
    let line_start = ls[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = String::from_utf8_lossy(&ls[line_start..at]).into_owned();
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Names and symlink targets that mkfs.xfs's prototype format cannot hold (whitespace, a
/// leading `:`, `$`, bytes that are not UTF-8), in directories of every xfs form (in the
/// inode, one block, leaf, node), under a staging path with a space, with hard links and
/// SELinux labels on such names: every name reads back exactly, with its hash, and the
/// filesystem checks clean.
#[test]
fn xfs_keeps_names_and_link_targets_the_prototype_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("staging root");
    let odd: Vec<&[u8]> = vec![
        b"a name",
        b"tab\there",
        b":colon-first",
        b"$",
        b"new\nline",
        b"caf\xe9",
        b" ",
    ];
    // name → directory entries: the shortform root, a one-block directory, a leaf directory
    // and a node directory.
    let dirs: [(&str, usize, &str); 4] = [
        ("", 0, ""),
        ("block dir", 40, "f"),
        ("leafdir", 200, "leaf-directory-entry-"),
        ("nodedir", 1500, "longer-file-name-number-"),
    ];
    let osname = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_owned();
    for (d, n, prefix) in dirs {
        let p = c.join(d);
        std::fs::create_dir_all(&p).unwrap();
        for i in 0..n {
            std::fs::write(p.join(format!("{prefix}{i}")), format!("{i}")).unwrap();
        }
        for (i, name) in odd.iter().enumerate() {
            std::fs::write(p.join(osname(name)), format!("{d}{i}")).unwrap();
        }
        // The sanitized form of " " taken: the placeholder is the next free name.
        std::fs::write(p.join("_"), "underscore").unwrap();
    }
    let b = c.join("block dir");
    std::fs::write(b.join("launcher manifest.xml"), "<manifest/>").unwrap();
    std::fs::hard_link(b.join("launcher manifest.xml"), c.join("nodedir/hard link")).unwrap();
    let label = "system_u:object_r:usr_t:s0";
    setfattr(&b.join("launcher manifest.xml"), "security.selinux", label);
    setfattr(&b, "security.selinux", label);
    std::os::unix::fs::symlink("../block dir/launcher manifest.xml", c.join("link to")).unwrap();
    std::os::unix::fs::symlink(":not a comment $", b.join("odd link")).unwrap();
    std::fs::create_dir(b.join("sub dir")).unwrap();
    std::fs::write(b.join("sub dir/inner file"), "inner").unwrap();

    let (_, fs) = xfs_from(dir.path(), &c).unwrap();
    sh(&format!("xfs_repair -n '{}'", fs.display()));
    // xfs_db's `path` cannot name these: inode numbers from `ls`.
    let root = xfs_db_bytes(&fs, &["ls /"]);
    let ls_of = |ino: u64| xfs_db_bytes(&fs, &[&format!("inode {ino}"), "ls"]);
    for (d, _, _) in dirs {
        let ls = match d {
            "" => root.clone(),
            d => ls_of(ls_inode(&root, d.as_bytes()).unwrap()),
        };
        for (i, name) in odd.iter().enumerate() {
            let ino = ls_inode(&ls, name)
                .unwrap_or_else(|| panic!("{d}/{name:?}: {}", String::from_utf8_lossy(&ls)));
            let data = xfs_db_bytes(&fs, &[&format!("inode {ino}"), "print core.size"]);
            let want = format!("core.size = {}", d.len() + i.to_string().len());
            assert!(
                String::from_utf8_lossy(&data).contains(&want),
                "{d}/{name:?}"
            );
        }
        assert!(ls_inode(&ls, b"_").is_some(), "{d}");
        for gone in [&b"a_name"[..], b"tab_here", b"_colon-first", b"caf_", b"0"] {
            assert!(ls_inode(&ls, gone).is_none(), "{d}: {gone:?} left");
        }
    }
    let bls = ls_of(ls_inode(&root, b"block dir").unwrap());
    let manifest = ls_inode(&bls, b"launcher manifest.xml").unwrap();
    let nls = ls_of(ls_inode(&root, b"nodedir").unwrap());
    assert_eq!(ls_inode(&nls, b"hard link"), Some(manifest));
    let m = String::from_utf8_lossy(&xfs_db_bytes(
        &fs,
        &[
            &format!("inode {manifest}"),
            "print core.nlinkv2 core.size a",
        ],
    ))
    .into_owned();
    for want in ["core.nlinkv2 = 2", "core.size = 11", label] {
        assert!(m.contains(want), "{want}: {m}");
    }
    let sub = ls_inode(&bls, b"sub dir").unwrap();
    assert!(ls_inode(&ls_of(sub), b"inner file").is_some());
    for (ls, name, target) in [
        (&root, &b"link to"[..], "../block dir/launcher manifest.xml"),
        (&bls, b"odd link", ":not a comment $"),
    ] {
        let ino = ls_inode(ls, name).unwrap();
        let t = xfs_db_bytes(&fs, &[&format!("inode {ino}"), "print u3.symlink"]);
        let t = String::from_utf8_lossy(&t);
        assert_eq!(t.trim(), format!("u3.symlink = \"{target}\""));
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
}
