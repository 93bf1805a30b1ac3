//! isomaker's ISO judged by xorriso and isoinfo: upstream's tree and naming, the config's files
//! copied and its paths rewritten, El Torito entries for isolinux and efiboot.img, and two
//! builds with one identity byte-identical. The host's syslinux (Debian `isolinux`,
//! `syslinux-common`) provides the BIOS files, as for `kiln iso`.

use kiln_iso::maker::{make_iso, BiosFiles, MakerRequest};
use kiln_iso::Identity;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::tool;

/// A gzip'd cpio initrd with a kernel and the EFI loaders where the distribution puts them.
fn initrd(dir: &Path) -> PathBuf {
    let root = dir.join("initrd-root");
    fs::create_dir_all(root.join("boot/efi/EFI/BOOT")).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("boot/vmlinuz-6.1.0-kiln"), vec![0x6b; 70_000]).unwrap();
    fs::write(
        root.join("boot/efi/EFI/BOOT/bootx64.efi"),
        vec![0x4d; 30_000],
    )
    .unwrap();
    fs::write(
        root.join("boot/efi/EFI/BOOT/grubx64.efi"),
        vec![0x5a; 20_000],
    )
    .unwrap();
    fs::write(root.join("usr/bin/liveinstaller"), "#!/bin/sh\n").unwrap();
    let path = dir.join("iso-initrd.img");
    gzip_cpio(&root, &path);
    path
}

/// `root` as a gzip'd newc cpio at `out`, as roast writes an initrd.
fn gzip_cpio(root: &Path, out: &Path) {
    let mut w = kiln_formats::cpio::CpioWriter::new(Vec::new(), Some(0));
    w.append_tree(root).unwrap();
    let mut gz =
        flate2::write::GzEncoder::new(fs::File::create(out).unwrap(), flate2::Compression::fast());
    gz.write_all(&w.finish().unwrap()).unwrap();
    gz.finish().unwrap();
}

/// The error of making an ISO of `req` (and no ISO left behind).
fn fails(req: &MakerRequest, dir: &Path) -> String {
    let iso = dir.join("c.iso");
    let e = make_iso(req, &dir.join("work"), &iso, &mut |_| {}).unwrap_err();
    assert!(!iso.exists());
    e.to_string()
}

/// A config referring to files of every category, two SystemConfigs (the second the default),
/// keys in upstream's and other spellings.
fn config(dir: &Path) -> PathBuf {
    let base = dir.join("cfg");
    for d in ["files", "lists", "scripts"] {
        fs::create_dir_all(base.join(d)).unwrap();
    }
    fs::write(base.join("files/motd"), "hello\n").unwrap();
    fs::write(base.join("files/issue"), "kiln\n").unwrap();
    fs::write(base.join("lists/core.json"), r#"{"packages": ["bash"]}"#).unwrap();
    fs::write(base.join("scripts/pre.sh"), "#!/bin/sh\n").unwrap();
    fs::write(base.join("scripts/post.sh"), "#!/bin/sh\n").unwrap();
    fs::write(base.join("scripts/final.sh"), "#!/bin/sh\n").unwrap();
    fs::write(base.join("files/id.pub"), "ssh-ed25519 AAAA test\n").unwrap();
    let config = base.join("installer.json");
    fs::write(
        &config,
        r#"{
  "Disks": [{"PartitionTableType": "gpt", "MaxSize": 4096, "TargetDisk": {"Type": "path", "Value": "/dev/vda"},
             "Partitions": [{"ID": "root", "Start": 1, "End": 0, "FsType": "ext4"}]}],
  "SystemConfigs": [
    {"Name": "first",
     "AdditionalFiles": {"files/motd": "/etc/motd", "files/issue": ["/etc/issue", "/etc/issue.net"]},
     "PackageLists": ["lists/core.json"],
     "PartitionSettings": [{"ID": "root", "MountPoint": "/"}],
     "KernelOptions": {"default": "kernel"}},
    {"Name": "second", "IsDefault": true,
     "packagelists": ["lists/core.json"],
     "PreInstallScripts": [{"Path": "scripts/pre.sh"}],
     "PostInstallScripts": [{"Path": "scripts/post.sh", "Args": "-x"}],
     "FinalizeImageScripts": [{"Path": "scripts/final.sh"}],
     "Users": [{"Name": "root", "SSHPubKeyPaths": ["files/id.pub"]}],
     "PartitionSettings": [{"ID": "root", "MountPoint": "/"}],
     "KernelOptions": {"default": "kernel"}}
  ]
}"#,
    )
    .unwrap();
    config
}

fn repo(dir: &Path) -> PathBuf {
    let repo = dir.join("package_repo");
    fs::create_dir_all(repo.join("repodata")).unwrap();
    fs::write(repo.join("bash-5.2.15-3.azl3.x86_64.rpm"), vec![1u8; 5000]).unwrap();
    fs::write(repo.join("repodata/repomd.xml"), "<repomd/>\n").unwrap();
    repo
}

fn request(dir: &Path, unattended: bool) -> MakerRequest {
    let config = config(dir);
    MakerRequest {
        base_dir: config.parent().unwrap().to_path_buf(),
        config,
        initrd: initrd(dir),
        iso_repo: repo(dir),
        unattended,
        repo_snapshot_time: Some(1_700_000_000),
        bios: Some(BiosFiles {
            isolinux_bin: "/usr/lib/ISOLINUX/isolinux.bin".into(),
            ldlinux_c32: "/usr/lib/syslinux/modules/bios/ldlinux.c32".into(),
            isohybrid_mbr: Some("/usr/lib/ISOLINUX/isohdpfx.bin".into()),
        }),
        identity: Identity::seeded(b"maker test", 1_700_000_000),
        kernel_args: Vec::new(),
    }
}

#[test]
fn installer_iso_has_upstreams_tree_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(dir.path(), true);
    let iso = dir.path().join("a.iso");
    let mut steps = Vec::new();
    let (staged, _) = make_iso(&req, &dir.path().join("work"), &iso, &mut |s| {
        steps.push(s.to_string())
    })
    .unwrap();
    assert_eq!(staged.kernel, "boot/vmlinuz-6.1.0-kiln");
    assert_eq!(staged.config_files, 8);
    assert_eq!(staged.rpms, 2);
    assert!(
        !dir.path().join("work").exists(),
        "the staging tree is removed"
    );

    // Byte-identical with one identity.
    let again = dir.path().join("b.iso");
    make_iso(&req, &dir.path().join("work"), &again, &mut |_| {}).unwrap();
    assert!(fs::read(&iso).unwrap() == fs::read(&again).unwrap());

    let d = tool(Command::new("isoinfo").arg("-d").arg("-i").arg(&iso));
    assert!(d.contains("Volume id: CDROM"), "{d}");
    assert!(d.contains("Rock Ridge signatures version 1 found"), "{d}");
    assert!(d.contains("Joliet with UCS level 3 found"), "{d}");
    let r = tool(Command::new("isoinfo").args(["-R", "-f", "-i"]).arg(&iso));
    for path in [
        "/boot/grub2/grub.cfg",
        "/boot/grub2/efiboot.img",
        "/efi/boot/bootx64.efi",
        "/efi/boot/grubx64.efi",
        "/isolinux/isolinux.bin",
        "/isolinux/isolinux.cfg",
        "/isolinux/ldlinux.c32",
        "/isolinux/boot.cat",
        "/isolinux/vmlinuz",
        "/isolinux/initrd.img",
        "/RPMS/bash-5.2.15-3.azl3.x86_64.rpm",
        "/RPMS/repodata/repomd.xml",
        "/config/unattended_config.json",
        "/config/repo-snapshot-time.txt",
        "/config/additionalfiles/0/motd",
        "/config/additionalfiles/1/issue",
        "/config/packages/2/core.json",
        "/config/packages/3/core.json",
        "/config/preinstallscripts/4/pre.sh",
        "/config/postinstallscripts/5/post.sh",
        "/config/finalizeimagescripts/6/final.sh",
        "/config/sshpublickeys/7/id.pub",
    ] {
        assert!(r.lines().any(|l| l == path), "{path} missing from:\n{r}");
    }
    let j = tool(Command::new("isoinfo").args(["-J", "-f", "-i"]).arg(&iso));
    assert!(
        j.lines().any(|l| l == "/config/unattended_config.json"),
        "{j}"
    );

    let el = tool(
        Command::new("xorriso")
            .arg("-indev")
            .arg(&iso)
            .args(["-report_el_torito", "plain"]),
    );
    assert!(
        el.contains("El Torito catalog  : ")
            && el.contains("El Torito cat path : /isolinux/boot.cat"),
        "{el}"
    );
    assert!(el.contains("/isolinux/isolinux.bin"), "{el}");
    assert!(el.contains("/boot/grub2/efiboot.img"), "{el}");
    assert!(
        el.lines()
            .any(|l| l.contains("BIOS") && l.contains("y   none")),
        "{el}"
    );
    assert!(el.lines().any(|l| l.contains("UEFI")), "{el}");
    // isohdpfx.bin's patch is where xorriso looks for it: a USB stick boots isolinux too.
    assert!(el.contains("MBR isohybrid") && el.contains("GPT"), "{el}");
    // The protective MBR entry is active (BIOSes that boot only an active partition), and the
    // GPT is still sound with it.
    let sa = tool(
        Command::new("xorriso")
            .arg("-indev")
            .arg(&iso)
            .args(["-report_system_area", "plain"]),
    );
    assert!(
        sa.lines().any(|l| l.starts_with("MBR partition      :")
            && l.split_whitespace().collect::<Vec<_>>()[3..6] == ["1", "0x80", "0xee"]),
        "{sa}"
    );
    let v = tool(Command::new("sgdisk").arg("-v").arg(&iso));
    assert!(v.contains("No problems found"), "{v}");

    // Extracted: the tree, the rewritten config, the initrd's files.
    let out = dir.path().join("extracted");
    tool(
        Command::new("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(&iso)
            .args(["-extract", "/"])
            .arg(&out),
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("config/unattended_config.json")).unwrap())
            .unwrap();
    let first = &cfg["SystemConfigs"][0];
    let files: Vec<&String> = first["AdditionalFiles"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(files, ["additionalfiles/0/motd", "additionalfiles/1/issue"]);
    assert_eq!(first["PackageLists"][0], "packages/2/core.json");
    let second = &cfg["SystemConfigs"][1];
    assert_eq!(second["packagelists"][0], "packages/3/core.json");
    assert_eq!(
        second["PreInstallScripts"][0]["Path"],
        "preinstallscripts/4/pre.sh"
    );
    assert_eq!(second["PostInstallScripts"][0]["Args"], "-x");
    assert_eq!(
        second["Users"][0]["SSHPubKeyPaths"][0],
        "sshpublickeys/7/id.pub"
    );
    // upstream's MarshalIndent(…, "", " ").
    let text = fs::read_to_string(out.join("config/unattended_config.json")).unwrap();
    assert!(text.starts_with("{\n \"Disks\": [\n  {"), "{text}");
    assert_eq!(
        fs::read_to_string(out.join("config/repo-snapshot-time.txt")).unwrap(),
        "1700000000\n"
    );
    assert_eq!(
        fs::read(out.join("isolinux/vmlinuz")).unwrap(),
        vec![0x6b; 70_000]
    );
    assert_eq!(
        fs::read(out.join("isolinux/initrd.img")).unwrap(),
        fs::read(&req.initrd).unwrap()
    );
    assert_eq!(
        fs::read_to_string(out.join("boot/grub2/grub.cfg")).unwrap(),
        kiln_iso::maker::GRUB_CFG
    );
    // efiboot.img: a clean FAT with the loaders and grub.cfg.
    let img = out.join("boot/grub2/efiboot.img");
    tool(Command::new("fsck.vfat").arg("-n").arg(&img));
    let dir_list = tool(
        Command::new("mdir")
            .args(["-/", "-b", "-i"])
            .arg(&img)
            .arg("::"),
    );
    for f in [
        "::/EFI/BOOT/BOOTX64.EFI",
        "::/EFI/BOOT/GRUBX64.EFI",
        "::/boot/grub2/grub.cfg",
    ] {
        assert!(
            dir_list.lines().any(|l| l.eq_ignore_ascii_case(f)),
            "{f} missing from:\n{dir_list}"
        );
    }
}

#[test]
fn attended_iso_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(dir.path(), false);
    req.bios = None;
    req.repo_snapshot_time = None;
    let iso = dir.path().join("a.iso");
    make_iso(&req, &dir.path().join("work"), &iso, &mut |_| {}).unwrap();
    let r = tool(Command::new("isoinfo").args(["-R", "-f", "-i"]).arg(&iso));
    assert!(
        r.lines().any(|l| l == "/config/attended_config.json"),
        "{r}"
    );
    assert!(
        !r.contains("repo-snapshot-time") && !r.contains("isolinux.bin"),
        "{r}"
    );

    // Unattended with two SystemConfigs and no default: upstream's error.
    let text = fs::read_to_string(&req.config)
        .unwrap()
        .replace("\"IsDefault\": true,", "");
    fs::write(&req.config, text).unwrap();
    req.unattended = true;
    let e = fails(&req, dir.path());
    assert!(
        e.contains("you must select a default one with the [IsDefault] field"),
        "{e}"
    );

    // A missing referenced file names it; an initrd without a kernel says what it lacks.
    req.unattended = false;
    fs::remove_file(dir.path().join("cfg/scripts/post.sh")).unwrap();
    let e = fails(&req, dir.path());
    assert!(e.contains("post.sh"), "{e}");
    fs::write(dir.path().join("cfg/scripts/post.sh"), "").unwrap();
    let empty = dir.path().join("empty.img");
    gzip_cpio(&dir.path().join("cfg"), &empty);
    req.initrd = empty;
    let e = fails(&req, dir.path());
    assert!(e.contains("holds no boot/vmlinuz"), "{e}");
}

#[test]
fn kernel_arguments_go_on_both_boot_menus_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(dir.path(), true);
    req.kernel_args = vec!["kiln.target-disk=smallest".into(), "quiet".into()];
    let staged = dir.path().join("staged");
    fs::create_dir(&staged).unwrap();
    kiln_iso::maker::stage(&req, &staged, &mut |_| {}).unwrap();
    let grub = fs::read_to_string(staged.join("boot/grub2/grub.cfg")).unwrap();
    assert!(
        grub.contains("console=ttyS0,115200n8 kiln.target-disk=smallest quiet\n    initrd"),
        "{grub}"
    );
    let isolinux = fs::read_to_string(staged.join("isolinux/isolinux.cfg")).unwrap();
    assert!(
        isolinux.ends_with("console=ttyS0,115200n8 kiln.target-disk=smallest quiet\n"),
        "{isolinux}"
    );
    // A line break would end the menu entry's line: refused, nothing made.
    req.kernel_args = vec!["a\nb".into()];
    let e = fails(&req, dir.path());
    assert!(e.contains("has a line break"), "{e}");
}
