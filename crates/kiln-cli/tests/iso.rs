//! ISO installers through the `kiln` binary: the `isomaker` personality with upstream's flags
//! (judged by isoinfo; byte-identical twice with one SOURCE_DATE_EPOCH), and the whole installer
//! proven in QEMU — `kiln iso` of an unattended UEFI config from the realistic distribution,
//! booted as a CD-ROM under OVMF with a blank virtio disk, installed, then the installed disk
//! booted alone; the same for a legacy-BIOS config under SeaBIOS onto an NVMe disk; and the
//! hybrid ISO booted as a USB disk under both firmwares.

mod common;

use common::{kiln, stderr, stdout};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A gzip'd cpio initrd holding what isomaker takes from one: a kernel and the EFI loaders.
fn fake_initrd(dir: &Path) -> PathBuf {
    let root = dir.join("initrd-root");
    std::fs::create_dir_all(root.join("boot/efi/EFI/BOOT")).unwrap();
    std::fs::write(root.join("boot/vmlinuz-6.1.0-test"), vec![1u8; 50_000]).unwrap();
    std::fs::write(root.join("boot/efi/EFI/BOOT/bootx64.efi"), vec![2u8; 9_000]).unwrap();
    std::fs::write(root.join("boot/efi/EFI/BOOT/grubx64.efi"), vec![3u8; 9_000]).unwrap();
    let mut w = kiln_formats::cpio::CpioWriter::new(Vec::new(), Some(0));
    w.append_tree(&root).unwrap();
    let out = dir.join("iso-initrd.img");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&out).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&w.finish().unwrap()).unwrap();
    gz.finish().unwrap();
    out
}

/// kiln under the name `isomaker`.
fn isomaker(dir: &Path) -> Command {
    common::personality(dir, "isomaker")
}

#[test]
fn isomaker_takes_upstreams_flags_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = fake_initrd(dir.path());
    let repo = dir.path().join("package_repo");
    std::fs::create_dir_all(repo.join("repodata")).unwrap();
    std::fs::write(repo.join("bash-5.2-1.azl3.x86_64.rpm"), b"rpm").unwrap();
    std::fs::write(repo.join("repodata/repomd.xml"), b"<repomd/>").unwrap();
    let config = common::demo_config("demo-efi.json");
    let run = |out: &str| {
        let o = isomaker(dir.path())
            .arg(format!("--input={}", config.display()))
            .arg("--base-dir")
            .arg(config.parent().unwrap())
            .arg("--build-dir")
            .arg(dir.path().join("workspace"))
            .arg("--initrd-path")
            .arg(&initrd)
            .arg("--iso-repo")
            .arg(&repo)
            .args(["--release-version", "3.0.1", "--image-tag=-rc"])
            .args(["--resources", "/nonexistent/toolkit/resources"])
            .arg("--output-dir")
            .arg(dir.path().join(out))
            .args(["--unattended-install", "--repo-snapshot-time", "1700000000"])
            .arg("--log-level=warn")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        assert!(
            stderr(&o).contains("kiln ignores --resources"),
            "{}",
            stderr(&o)
        );
        // upstream's name: no hyphen before the tag.
        dir.path().join(out).join("demo-efi-3.0.1-rc.iso")
    };
    let a = run("a");
    let b = run("b");
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    assert!(
        !dir.path().join("workspace").exists(),
        "the build dir is removed"
    );
    let listing = Command::new("isoinfo")
        .args(["-R", "-f", "-i"])
        .arg(&a)
        .output()
        .unwrap();
    let listing = stdout(&listing);
    for path in [
        "/config/unattended_config.json",
        "/config/repo-snapshot-time.txt",
        "/config/packages/0/demo-packages.json",
        "/config/postinstallscripts/1/demo-postinstall.sh",
        "/RPMS/bash-5.2-1.azl3.x86_64.rpm",
        "/isolinux/vmlinuz",
        "/boot/grub2/efiboot.img",
    ] {
        assert!(listing.lines().any(|l| l == path), "{path}:\n{listing}");
    }

    // A missing initrd is a clear error, not a panic.
    let o = isomaker(dir.path())
        .arg(format!("--input={}", config.display()))
        .arg("--build-dir")
        .arg(dir.path().join("workspace"))
        .args(["--initrd-path", "/nonexistent/iso-initrd.img"])
        .arg("--iso-repo")
        .arg(&repo)
        .args(["--release-version", "", "--resources", "/x"])
        .arg("--output-dir")
        .arg(dir.path().join("c"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the installer initrd /nonexistent/iso-initrd.img does not exist"),
        "{}",
        stderr(&o)
    );
}

/// The realistic distribution: KILN_RPMS_DIR, or out/RPMS of this checkout.
fn realistic_distribution() -> PathBuf {
    let dir = std::env::var_os("KILN_RPMS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/RPMS"),
        PathBuf::from,
    );
    assert!(
        dir.join("repodata").is_dir(),
        "run `make distro` first (or set KILN_RPMS_DIR)"
    );
    dir
}

/// `make iso` of imageconfigs/`config`.json, unattended: a copy of the ISO in `work`.
fn installer_iso(work: &Path, config: &str) -> PathBuf {
    let iso = common::make_iso(config, &realistic_distribution(), true);
    let copy = work.join(format!("{config}.iso"));
    std::fs::copy(iso, &copy).unwrap();
    copy
}

#[test]
#[ignore = "needs the realistic distribution (make distro: KILN_RPMS_DIR or out/RPMS) and about 10 minutes of QEMU (TCG)"]
fn the_unattended_iso_installs_onto_a_blank_disk_under_ovmf() {
    let work = tempfile::tempdir().unwrap();
    let iso = installer_iso(work.path(), "installer-efi");
    let disk = work.path().join("disk.raw");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    // The installer: media found by label, progress on the serial console, the target checked,
    // then the reboot (QEMU stops: -no-reboot).
    let o = kiln()
        .arg("boot-test")
        .arg(&disk)
        .arg("--cdrom")
        .arg(&iso)
        .args(["--firmware", "uefi", "--persist", "--memory", "3072"])
        .args(["--timeout", "3000", "--transcript"])
        .arg(work.path().join("install.log"))
        .args(["--expect", "action:Installing onto /dev/vda"])
        .args(["--expect", "progress:100"])
        .args(["--expect", "Installation complete: rebooting."])
        .output()
        .unwrap();
    let log = std::fs::read_to_string(work.path().join("install.log")).unwrap_or_default();
    assert!(
        o.status.success(),
        "{}{}\n--- console ---\n{}",
        stdout(&o),
        stderr(&o),
        &log[log.len().saturating_sub(6000)..]
    );
    // The installed disk alone.
    let o = kiln()
        .arg("boot-test")
        .arg(&disk)
        .args([
            "--firmware",
            "uefi",
            "--login",
            "root:kiln",
            "--timeout",
            "900",
        ])
        .args([
            "--run",
            "cat /etc/hostname",
            "--run",
            "findmnt -no SOURCE,FSTYPE /",
        ])
        .args(["--expect", "kiln-installed", "--expect", "/dev/vda2 ext4"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

/// A blank sparse disk of `gib` GiB.
fn blank_disk(path: &Path, gib: u64) {
    std::fs::File::create(path)
        .unwrap()
        .set_len(gib << 30)
        .unwrap();
}

/// `kiln boot-test` with `args`; panics with its output and the console's end when it fails.
fn boot_test(args: &[&str], transcript: &Path) {
    let o = kiln()
        .arg("boot-test")
        .args(args)
        .arg("--transcript")
        .arg(transcript)
        .output()
        .unwrap();
    let log = std::fs::read_to_string(transcript).unwrap_or_default();
    // The installer's own lines (its choices, notes and errors), wherever they are.
    let installer: Vec<&str> = log
        .lines()
        .filter(|l| {
            [
                "Target disk",
                "note:",
                "warning:",
                "error",
                "boot entry",
                "kickstart",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .collect();
    assert!(
        o.status.success(),
        "{}{}\n--- the installer's lines ---\n{}\n--- console ---\n{}",
        stdout(&o),
        stderr(&o),
        installer.join("\n"),
        log.chars()
            .skip(log.chars().count().saturating_sub(6000))
            .collect::<String>()
    );
    // "…: booted in N s; saw …": the run's time, for the docs (--nocapture).
    println!("{}", stdout(&o).trim());
}

#[test]
#[ignore = "needs the realistic distribution (make distro: KILN_RPMS_DIR or out/RPMS) and 12+ minutes of QEMU (TCG); cargo test -p kiln-cli --test iso -- --ignored"]
fn the_unattended_iso_installs_onto_nvme_under_seabios() {
    let work = tempfile::tempdir().unwrap();
    let iso = installer_iso(work.path(), "installer-legacy-nvme");
    let disk = work.path().join("disk.raw");
    blank_disk(&disk, 4);
    let (disk_s, iso_s) = (disk.to_str().unwrap(), iso.to_str().unwrap());
    // El Torito's BIOS entry (isolinux) under SeaBIOS; the target is the NVMe disk; GRUB's BIOS
    // boot code goes onto it; the target is checked before the reboot.
    boot_test(
        &[
            disk_s,
            "--cdrom",
            iso_s,
            "--firmware",
            "bios",
            "--disk",
            "nvme",
            "--persist",
            "--memory",
            "3072",
            "--timeout",
            "3000",
            "--expect",
            "action:Installing onto /dev/nvme0n1",
            "--expect",
            "checking the installed packages against the resolved set",
            "--expect",
            "progress:100",
            "--expect",
            "Installation complete: rebooting.",
        ],
        &work.path().join("install.log"),
    );
    // The installed disk alone, under SeaBIOS: GRUB from the disk, root on nvme0n1p2.
    boot_installed(
        disk_s,
        "bios",
        "nvme",
        "kiln-installed-bios",
        "/dev/nvme0n1p2",
        &work.path().join("installed.log"),
    );
}

/// The unattended ISO of imageconfigs/`config`.json written to a USB stick (the ISO file as a
/// USB disk, `--usb`: qemu-xhci + usb-storage, no CD drive) installs under `firmware` onto a
/// blank 4 GiB disk on `bus` (`target` on the installer); the installed disk then boots alone
/// and root logs in, `/` on `root`.
fn install_from_usb(config: &str, firmware: &str, bus: &str, target: &str, root: &str) {
    let work = tempfile::tempdir().unwrap();
    let iso = installer_iso(work.path(), config);
    let disk = work.path().join("disk.raw");
    blank_disk(&disk, 4);
    let (disk_s, iso_s) = (disk.to_str().unwrap(), iso.to_str().unwrap());
    let installing = format!("action:Installing onto {target}");
    // UEFI boots the stick's GPT EFI System partition (shim, GRUB, `search --label CDROM` on
    // the whole disk), SeaBIOS its MBR boot code and isolinux. The installer's kernel
    // (kernel-hwe) finds the stick (xhci, usb-storage) and mounts it; the target is the other
    // disk; the stick is ejected before the reboot.
    boot_test(
        &[
            disk_s,
            "--usb",
            iso_s,
            "--firmware",
            firmware,
            "--disk",
            bus,
            "--persist",
            "--memory",
            "3072",
            "--timeout",
            "3000",
            "--expect",
            "Installation media: /dev/sda (label CDROM)",
            "--expect",
            &installing,
            "--expect",
            "progress:100",
            "--expect",
            "the installation media was ejected",
            "--expect",
            "Installation complete: rebooting.",
        ],
        &work.path().join("install.log"),
    );
    boot_installed(
        disk_s,
        firmware,
        bus,
        "kiln-installed",
        root,
        &work.path().join("installed.log"),
    );
}

/// The installed `disk` alone under `firmware` on `bus`: root logs in, the hostname is
/// `hostname`, `/` is ext4 on `root`.
fn boot_installed(disk: &str, firmware: &str, bus: &str, hostname: &str, root: &str, log: &Path) {
    let root_line = format!("{root} ext4");
    boot_test(
        &[
            disk,
            "--firmware",
            firmware,
            "--disk",
            bus,
            "--login",
            "root:kiln",
            "--timeout",
            "900",
            "--run",
            "cat /etc/hostname",
            "--run",
            "findmnt -no SOURCE,FSTYPE /",
            "--expect",
            hostname,
            "--expect",
            &root_line,
        ],
        log,
    );
}

#[test]
#[ignore = "needs the realistic distribution (make distro: KILN_RPMS_DIR or out/RPMS) and 15+ minutes of QEMU (TCG); cargo test -p kiln-cli --test iso from_a_usb_disk -- --ignored (KILN_ISO_BUILT=y after make iso CONFIG_FILE=imageconfigs/installer-efi.json UNATTENDED_INSTALLER=y)"]
fn the_unattended_iso_installs_from_a_usb_disk_under_ovmf() {
    install_from_usb("installer-efi", "uefi", "virtio", "/dev/vda", "/dev/vda2");
}

#[test]
#[ignore = "needs the realistic distribution (make distro: KILN_RPMS_DIR or out/RPMS) and 15+ minutes of QEMU (TCG); cargo test -p kiln-cli --test iso from_a_usb_disk -- --ignored (KILN_ISO_BUILT=y after make iso CONFIG_FILE=imageconfigs/installer-legacy-nvme.json UNATTENDED_INSTALLER=y)"]
fn the_unattended_iso_installs_from_a_usb_disk_under_seabios() {
    install_from_usb(
        "installer-legacy-nvme",
        "bios",
        "nvme",
        "/dev/nvme0n1",
        "/dev/nvme0n1p2",
    );
}

#[test]
#[ignore = "needs the realistic distribution (make distro: KILN_RPMS_DIR or out/RPMS) and about 5 minutes of QEMU (TCG); cargo test -p kiln-cli --test iso the_usb_stick_is_never -- --ignored (KILN_ISO_BUILT=y after make installer-initrd)"]
fn the_usb_stick_is_never_the_target() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // The stick the installer runs from is /dev/sda; the kernel command line names it as the
    // target (as a TargetDisk of /dev/sda would on a machine where sda is the stick).
    let iso = iso_with_kernel_arg(w, "kiln.target-disk=/dev/sda");
    let disk = w.join("disk.raw");
    blank_disk(&disk, 4);
    boot_test(
        &[
            disk.to_str().unwrap(),
            "--usb",
            iso.to_str().unwrap(),
            "--firmware",
            "uefi",
            "--persist",
            "--memory",
            "3072",
            "--timeout",
            "1500",
            "--expect",
            "Installation media: /dev/sda (label CDROM)",
            "--expect",
            "TargetDisk /dev/sda is /dev/sda's disk, the installation media mounted at /mnt/cdrom",
            "--expect",
            "The installation failed",
        ],
        &w.join("refused.log"),
    );
    assert!(all_zeros(&disk), "the install went on after the refusal");
}

/// OVMF's variable store (the `--vars` file of `kiln boot-test`), read and written the way
/// EDK2's variable driver keeps it: a firmware volume header, the variable store header, then
/// variables (a 4-byte aligned header starting 0x55AA, the UTF-16 name, the data). Only
/// what the boot-entry check needs: the live variables by name, and one variable added.
mod vars {
    /// EFI_GLOBAL_VARIABLE, as stored.
    pub const GLOBAL: [u8; 16] = [
        0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b,
        0x8c,
    ];
    /// gEfiAuthenticatedVariableGuid: the store's variables have the authenticated header.
    const AUTHENTICATED: [u8; 16] = [
        0x78, 0x2c, 0xf3, 0xaa, 0x7b, 0x94, 0x9a, 0x43, 0xa1, 0x80, 0x2e, 0x14, 0x4e, 0xc3, 0x77,
        0x92,
    ];
    const VAR_ADDED: u8 = 0x3f;
    const VAR_ADDED_IN_DELETED_TRANSITION: u8 = 0x3e;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn align4(n: usize) -> usize {
        (n + 3) & !3
    }

    /// Where the variables start, the store's end, and the variable header's size.
    fn layout(fd: &[u8]) -> (usize, usize, usize) {
        assert_eq!(&fd[40..44], b"_FVH", "not a firmware volume");
        let store = u16_at(fd, 48) as usize; // the volume header's length
        let size = u32_at(fd, store + 16) as usize;
        let header = if fd[store..store + 16] == AUTHENTICATED {
            60
        } else {
            32
        };
        (store + 28, store + size, header)
    }

    /// A variable: its name, vendor GUID (as stored), whether it is live (not deleted), data.
    pub struct Var {
        pub name: String,
        pub guid: [u8; 16],
        pub live: bool,
        pub data: Vec<u8>,
    }

    /// Every variable of the store, deleted ones included (`live` false), in store order; and
    /// the offset of the free space.
    pub fn list(fd: &[u8]) -> (Vec<Var>, usize) {
        let (mut at, end, header) = layout(fd);
        let mut vars = Vec::new();
        while at + header <= end && u16_at(fd, at) == 0x55aa {
            let state = fd[at + 2];
            let (name_size, data_size, guid_at) = if header == 60 {
                (u32_at(fd, at + 36), u32_at(fd, at + 40), at + 44)
            } else {
                (u32_at(fd, at + 8), u32_at(fd, at + 12), at + 16)
            };
            let (name_size, data_size) = (name_size as usize, data_size as usize);
            let name_at = at + header;
            // No padding between the name and the data (EDK2's ALIGNMENT is 1 on x86).
            let data_at = name_at + name_size;
            let name: Vec<u16> = fd[name_at..name_at + name_size]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&c| c != 0)
                .collect();
            vars.push(Var {
                name: String::from_utf16_lossy(&name),
                guid: fd[guid_at..guid_at + 16].try_into().unwrap(),
                live: state == VAR_ADDED || state == VAR_ADDED_IN_DELETED_TRANSITION,
                data: fd[data_at..data_at + data_size].to_vec(),
            });
            at = align4(data_at + data_size);
        }
        (vars, at)
    }

    /// The store with one more (live, non-volatile, boot-service and runtime) global variable.
    pub fn add(fd: &mut [u8], name: &str, data: &[u8]) {
        let (_, free) = list(fd);
        let (_, end, header) = layout(fd);
        let name: Vec<u8> = name
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut var = vec![0u8; header];
        var[0..2].copy_from_slice(&0x55aau16.to_le_bytes());
        var[2] = VAR_ADDED;
        var[4..8].copy_from_slice(&7u32.to_le_bytes());
        let (sizes, guid_at) = if header == 60 { (36, 44) } else { (8, 16) };
        var[sizes..sizes + 4].copy_from_slice(&(name.len() as u32).to_le_bytes());
        var[sizes + 4..sizes + 8].copy_from_slice(&(data.len() as u32).to_le_bytes());
        var[guid_at..guid_at + 16].copy_from_slice(&GLOBAL);
        var.extend_from_slice(&name);
        var.extend_from_slice(data);
        assert!(free + var.len() <= end, "the variable store is full");
        assert!(fd[free..free + var.len()].iter().all(|&b| b == 0xff));
        fd[free..free + var.len()].copy_from_slice(&var);
    }

    /// A Boot#### load option's parts: its description and, from its device path, the hard
    /// drive node's partition number and GPT partition GUID (as text) and the file path.
    #[derive(Debug)]
    pub struct LoadOption {
        pub description: String,
        pub partition: Option<(u32, String)>,
        pub file: Option<String>,
    }

    fn utf16z(b: &[u8]) -> (String, usize) {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&c| c != 0)
            .collect();
        (String::from_utf16_lossy(&units), units.len() * 2 + 2)
    }

    /// The GUID's text form from its stored bytes (the first three fields little-endian).
    pub fn guid_text(g: &[u8]) -> String {
        format!(
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
            u32_at(g, 0),
            u16_at(g, 4),
            u16_at(g, 6),
            g[8],
            g[9],
            g[10..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    }

    pub fn load_option(data: &[u8]) -> LoadOption {
        let path_len = u16_at(data, 4) as usize;
        let (description, n) = utf16z(&data[6..]);
        let path = &data[6 + n..(6 + n + path_len).min(data.len())];
        let (mut partition, mut file, mut at) = (None, None, 0);
        while at + 4 <= path.len() {
            let (kind, sub, len) = (path[at], path[at + 1], u16_at(path, at + 2) as usize);
            if len < 4 || at + len > path.len() || kind == 0x7f {
                break;
            }
            let node = &path[at + 4..at + len];
            match (kind, sub) {
                // Media / hard drive, GPT signature.
                (4, 1) if node.len() >= 38 && node[37] == 2 => {
                    partition = Some((u32_at(node, 0), guid_text(&node[20..36])));
                }
                (4, 4) => file = Some(utf16z(node).0),
                _ => {}
            }
            at += len;
        }
        LoadOption {
            description,
            partition,
            file,
        }
    }

    /// A load option (active) for `description` with a GPT hard drive node and a file path.
    pub fn make_load_option(
        description: &str,
        partition: u32,
        guid: [u8; 16],
        file: &str,
    ) -> Vec<u8> {
        let utf16 = |s: &str| -> Vec<u8> {
            s.encode_utf16()
                .chain([0])
                .flat_map(u16::to_le_bytes)
                .collect()
        };
        let mut path = vec![4, 1, 42, 0];
        path.extend_from_slice(&partition.to_le_bytes());
        path.extend_from_slice(&2048u64.to_le_bytes());
        path.extend_from_slice(&(64u64 << 11).to_le_bytes());
        path.extend_from_slice(&guid);
        path.extend_from_slice(&[2, 2]);
        let f = utf16(file);
        path.extend_from_slice(&[4, 4]);
        path.extend_from_slice(&((4 + f.len()) as u16).to_le_bytes());
        path.extend_from_slice(&f);
        path.extend_from_slice(&[0x7f, 0xff, 4, 0]);
        let mut data = 1u32.to_le_bytes().to_vec();
        data.extend_from_slice(&(path.len() as u16).to_le_bytes());
        data.extend_from_slice(&utf16(description));
        data.extend_from_slice(&path);
        data
    }
}

/// `sfdisk --json` of a disk file: each partition's (start, size) in 512-byte sectors, type and
/// partition GUID (upper case, as sfdisk prints them).
fn gpt_partitions(disk: &Path) -> Vec<(u64, u64, String, String)> {
    let o = Command::new("sfdisk")
        .arg("--json")
        .arg(disk)
        .output()
        .unwrap();
    assert!(o.status.success(), "sfdisk: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["partitiontable"]["label"], "gpt", "{v}");
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_string(),
                p["uuid"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Whether every byte of the file is zero (holes are read as zeros).
fn all_zeros(path: &Path) -> bool {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return true;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return false;
        }
    }
}

/// The installer initrd `make installer-initrd` writes (taken as it is with KILN_ISO_BUILT).
fn installer_initrd() -> PathBuf {
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let initrd = top.join("out/images/iso_initrd/iso-initrd.img");
    if std::env::var_os("KILN_ISO_BUILT").is_none() {
        let o = Command::new("make")
            .current_dir(&top)
            .args(["-s", "installer-initrd"])
            .arg(format!("RPMS_DIR={}", realistic_distribution().display()))
            .args(["DISABLE_UPSTREAM_REPOS=y", "LOG_COLOR=never"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    }
    assert!(
        initrd.is_file(),
        "no {}: run make installer-initrd",
        initrd.display()
    );
    initrd
}

/// The number of the one "Azure Linux" boot entry in the OVMF variables `vars`, after checking
/// it: the only one (the old Boot0009 the test put there removed), partition 1 with the GPT partition
/// GUID `esp_guid` (lower case), the fallback loader, first in BootOrder.
fn the_boot_entry(vars: &Path, esp_guid: &str) -> u16 {
    let fd = std::fs::read(vars).unwrap();
    let (all, _) = vars::list(&fd);
    let live: Vec<&vars::Var> = all
        .iter()
        .filter(|v| v.live && v.guid == vars::GLOBAL)
        .collect();
    let entries: Vec<(String, vars::LoadOption)> = live
        .iter()
        .filter(|v| v.name.len() == 8 && v.name.starts_with("Boot"))
        .filter(|v| u16::from_str_radix(&v.name[4..], 16).is_ok())
        .map(|v| (v.name.clone(), vars::load_option(&v.data)))
        .collect();
    let azure: Vec<&(String, vars::LoadOption)> = entries
        .iter()
        .filter(|(_, o)| o.description == "Azure Linux")
        .collect();
    assert_eq!(azure.len(), 1, "{entries:?}");
    let (name, option) = azure[0];
    // One entry, for this ESP: the old one (another partition GUID) is gone, whatever number
    // the new one got.
    assert_eq!(
        option.partition,
        Some((1, esp_guid.to_string())),
        "{entries:?}"
    );
    assert_eq!(
        option.file.as_deref().map(str::to_lowercase).as_deref(),
        Some("\\efi\\boot\\bootx64.efi"),
        "{entries:?}"
    );
    let order = live
        .iter()
        .find(|v| v.name == "BootOrder")
        .expect("BootOrder");
    let number = u16::from_str_radix(&name[4..], 16).unwrap();
    assert_eq!(
        u16::from_le_bytes([order.data[0], order.data[1]]),
        number,
        "BootOrder {:02x?}",
        order.data
    );
    number
}

/// OVMF's variables in `dir` with an old "Azure Linux" entry, Boot0009, of a disk long gone:
/// the installer must remove it.
fn vars_with_an_old_entry(dir: &Path) -> PathBuf {
    let vars = dir.join("vars.fd");
    let mut fd = std::fs::read("/usr/share/OVMF/OVMF_VARS_4M.fd").unwrap();
    vars::add(
        &mut fd,
        "Boot0009",
        &vars::make_load_option("Azure Linux", 1, [0x5a; 16], "\\EFI\\BOOT\\bootx64.efi"),
    );
    // Read back as the installer's efibootmgr will see it.
    let (all, _) = vars::list(&fd);
    let old = vars::load_option(&all.last().unwrap().data);
    assert_eq!(old.description, "Azure Linux", "{old:?}");
    std::fs::write(&vars, &fd).unwrap();
    vars
}

/// The unattended installer booted by `media` (boot-test's arguments: `--cdrom ISO`, or a
/// direct kernel boot) under OVMF with the variables `vars`, writing to `disks` (the first,
/// then `--extra-disk` arguments): the console must show each of `expect` in order, then the
/// install's end, the old boot entry removed and the new one made.
fn install_under_ovmf(media: &[&str], vars: &Path, disks: &[&str], expect: &[&str], log: &Path) {
    let mut args = disks.to_vec();
    args.extend(media);
    args.extend([
        "--firmware",
        "uefi",
        "--vars",
        vars.to_str().unwrap(),
        "--persist",
        "--timeout",
        "3000",
    ]);
    for e in expect.iter().chain(&[
        "progress:100",
        "removed boot entry 0009",
        "boot entry \"Azure Linux\" made for /dev/vd",
        "Installation complete: rebooting.",
    ]) {
        args.extend(["--expect", e]);
    }
    boot_test(&args, log);
}

/// The unattended ISO of imageconfigs/`config`.json (`make iso`) installed under OVMF onto a
/// blank 4 GiB virtio disk, with variables holding an old "Azure Linux" entry, as
/// [`install_under_ovmf`] checks it (`expect` on the console first): the disk and the
/// variables, in `work`.
fn install_onto_a_blank_disk_under_ovmf(
    work: &Path,
    config: &str,
    expect: &[&str],
) -> (PathBuf, PathBuf) {
    let iso = installer_iso(work, config);
    let disk = work.join("disk.raw");
    blank_disk(&disk, 4);
    let vars = vars_with_an_old_entry(work);
    install_under_ovmf(
        &["--cdrom", iso.to_str().unwrap(), "--memory", "3072"],
        &vars,
        &[disk.to_str().unwrap()],
        expect,
        &work.join("install.log"),
    );
    (disk, vars)
}

/// The installed `disk` alone under OVMF with the variables `vars` the install left: root logs
/// in, the firmware booted boot entry `number` (BootCurrent: attributes boot service and
/// runtime, then the number), `hostname` is set; and each of `runs` shows its `expect`.
fn boot_installed_under_ovmf(
    disk: &Path,
    vars: &Path,
    number: u16,
    hostname: &str,
    runs: &[&str],
    expect: &[&str],
    log: &Path,
) {
    let current = format!("06 00 00 00 {:02x} {:02x}", number & 0xff, number >> 8);
    let mut args = vec![
        disk.to_str().unwrap(),
        "--firmware",
        "uefi",
        "--vars",
        vars.to_str().unwrap(),
        "--login",
        "root:kiln",
        "--timeout",
        "900",
        "--run",
        "cat /etc/hostname",
        "--run",
        "od -An -tx1 /sys/firmware/efi/efivars/BootCurrent-8be4df61-93ca-11d2-aa0d-00e098032b8c",
        "--expect",
        hostname,
        "--expect",
        &current,
    ];
    for r in runs {
        args.extend(["--run", r]);
    }
    for e in expect {
        args.extend(["--expect", e]);
    }
    boot_test(&args, log);
}

/// `kiln iso` of installer-efi.json, unattended, with the installer initrd of
/// [`installer_initrd`] and `arg` added to the installer kernel's command line: the ISO, in `w`.
fn iso_with_kernel_arg(w: &Path, arg: &str) -> PathBuf {
    let o = kiln()
        .arg("iso")
        .arg("--config")
        .arg(common::demo_config("installer-efi.json"))
        .arg("--repo")
        .arg(realistic_distribution())
        .arg("--disable-upstream-repos")
        .arg("--initrd")
        .arg(installer_initrd())
        .arg("--unattended-install")
        .args(["--kernel-arg", arg])
        .arg("--output-dir")
        .arg(w.join("iso"))
        .arg("--build-dir")
        .arg(w.join("iso-build"))
        .arg("--log-dir")
        .arg(w.join("logs"))
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let _ = std::fs::remove_dir_all(w.join("iso-build"));
    w.join("iso/installer-efi.iso")
}

#[test]
#[ignore = "needs the realistic distribution (make distro: KILN_RPMS_DIR or out/RPMS) and 15+ minutes of QEMU (TCG); cargo test -p kiln-cli --test iso the_target_disk_selector -- --ignored (KILN_ISO_BUILT=y after make installer-initrd)"]
fn the_target_disk_selector_picks_the_disk_and_the_boot_entry_is_made_under_ovmf() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // installer-efi.json says /dev/vda; the ISO's kernel command line says the disk whose
    // serial is KILN-TARGET, the second one.
    let iso = iso_with_kernel_arg(w, "kiln.target-disk=serial:KILN-TARGET");
    let (first, target) = (w.join("first.raw"), w.join("target.raw"));
    blank_disk(&first, 3);
    blank_disk(&target, 4);
    let vars = vars_with_an_old_entry(w);
    let target_spec = format!("{},serial=KILN-TARGET", target.display());
    install_under_ovmf(
        &["--cdrom", iso.to_str().unwrap(), "--memory", "3072"],
        &vars,
        &[first.to_str().unwrap(), "--extra-disk", &target_spec],
        &["(selector serial:KILN-TARGET, from the kernel command line): serial or wwid KILN-TARGET"],
        &w.join("install.log"),
    );
    // The other disk is untouched; the chosen one has the config's layout.
    assert!(all_zeros(&first), "the disk not chosen was written to");
    let parts = gpt_partitions(&target);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let esp_guid = parts[0].3.to_lowercase();
    // The boot entry: the old one gone, one "Azure Linux" for the ESP (partition 1 of the
    // chosen disk) and the fallback loader, first in BootOrder.
    let number = the_boot_entry(&vars, &esp_guid);
    // The chosen disk alone, with those variables: the firmware boots the entry, root logs in.
    boot_installed_under_ovmf(
        &target,
        &vars,
        number,
        "kiln-installed",
        &[],
        &[],
        &w.join("installed.log"),
    );
}

#[test]
#[ignore = "needs the realistic distribution (make distro: KILN_RPMS_DIR or out/RPMS) and 15+ minutes of QEMU (TCG); cargo test -p kiln-cli --test iso a_kickstart_iso -- --ignored (KILN_ISO_BUILT=y after make iso CONFIG_FILE=imageconfigs/installer-kickstart.json UNATTENDED_INSTALLER=y)"]
fn a_kickstart_iso_installs_the_partitions_its_preinstallscript_wrote_under_ovmf() {
    let work = tempfile::tempdir().unwrap();
    // The config has no Disks: installer-kickstart-partitions.sh, run on the installer, finds
    // the virtio disk and writes /tmp/part-include; the boot entry is made for that disk.
    let (disk, vars) = install_onto_a_blank_disk_under_ovmf(
        work.path(),
        "installer-kickstart",
        &["kickstart: 3 partitions on /dev/vda"],
    );
    // Exactly the script's partitions: 64 MiB ESP at 1 MiB, 200 MiB /boot, / to the end.
    let parts = gpt_partitions(&disk);
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert_eq!((parts[0].0, parts[0].1), (2048, 64 << 11), "{parts:?}");
    assert_eq!(
        parts[0].2, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        "{parts:?}"
    );
    assert_eq!(parts[1].0, parts[0].0 + parts[0].1, "{parts:?}");
    assert_eq!(parts[1].1, 200 << 11, "{parts:?}");
    assert_eq!(parts[2].0, parts[1].0 + parts[1].1, "{parts:?}");
    let disk_sectors = (4u64 << 30) / 512;
    assert!(
        parts[2].0 + parts[2].1 + 33 + 2048 > disk_sectors,
        "/ does not grow to the end: {parts:?}"
    );
    // The boot entry is made for the disk the script chose, its ESP.
    let number = the_boot_entry(&vars, &parts[0].3.to_lowercase());
    // The installed disk alone: booted by that entry, /boot and / where the script put them.
    boot_installed_under_ovmf(
        &disk,
        &vars,
        number,
        "kiln-kickstart",
        &[
            "findmnt -no SOURCE,FSTYPE /boot",
            "findmnt -no SOURCE,FSTYPE /",
            "cat /sys/block/vda/vda1/size /sys/block/vda/vda2/size",
        ],
        &["/dev/vda2 ext4", "/dev/vda3 ext4", "131072\n409600"],
        &work.path().join("installed.log"),
    );
}

#[test]
#[ignore = "needs the realistic distribution (make distro: KILN_RPMS_DIR or out/RPMS) and 15+ minutes of QEMU (TCG); cargo test -p kiln-cli --test iso an_xfs_root -- --ignored (KILN_ISO_BUILT=y after make iso CONFIG_FILE=imageconfigs/installer-xfs.json UNATTENDED_INSTALLER=y)"]
fn an_xfs_root_installs_from_the_iso_and_boots_under_ovmf() {
    let work = tempfile::tempdir().unwrap();
    // The installer checks the xfs root (xfs_repair -n on a read-only loop device over its
    // range) and reads the rpm database out of it before it reboots.
    let (disk, vars) = install_onto_a_blank_disk_under_ovmf(
        work.path(),
        "installer-xfs",
        &[
            "checking the filesystem of partition 2 (rootfs) on /dev/vda",
            "checking the installed packages against the resolved set",
        ],
    );
    let parts = gpt_partitions(&disk);
    assert_eq!(parts.len(), 2, "{parts:?}");
    // The host's xfs_repair finds the root clean too, on a copy of its byte range.
    let root = work.path().join("root.xfs");
    common::extract_range(&disk, parts[1].0 * 512, parts[1].1 * 512, &root);
    let o = Command::new("xfs_repair")
        .arg("-n")
        .arg(&root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    std::fs::remove_file(&root).unwrap();
    let number = the_boot_entry(&vars, &parts[0].3.to_lowercase());
    // The installed disk alone: GRUB reads the kernel from xfs, the initramfs mounts it.
    boot_installed_under_ovmf(
        &disk,
        &vars,
        number,
        "kiln-installed-xfs",
        &[
            "findmnt -no SOURCE,FSTYPE /",
            "findmnt -no SOURCE,FSTYPE /boot/efi",
        ],
        &["/dev/vda2 xfs", "/dev/vda1 vfat"],
        &work.path().join("installed.log"),
    );
}

/// A small HTTP file server over `root` on 127.0.0.1, as a PXE setup's web server is for the
/// installer's `wget -r`: files, directory listings of links, a redirect for a directory named
/// without its slash, 404 otherwise. `requests` records every path asked for.
struct Server {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn serve(root: PathBuf) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = std::sync::Arc::default();
    let seen = std::sync::Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (root, seen) = (root.clone(), std::sync::Arc::clone(&seen));
            std::thread::spawn(move || {
                let _ = answer(stream, &root, &seen);
            });
        }
    });
    Server { port, requests }
}

/// `s` with every byte outside `A-Za-z0-9._~+-` as `%XX` (a listing's href).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'~' | b'+' | b'-' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(
    mut stream: std::net::TcpStream,
    root: &Path,
    seen: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut words = request.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or("/"));
    let path = percent_decode(target.split('?').next().unwrap_or("/"));
    seen.lock().unwrap().push(path.clone());
    let file = root.join(path.trim_start_matches('/'));
    let reply = |stream: &mut std::net::TcpStream, status: &str, headers: &str, len: u64| {
        write!(
            stream,
            "HTTP/1.0 {status}\r\n{headers}Content-Length: {len}\r\nConnection: close\r\n\r\n"
        )
    };
    if !matches!(method, "GET" | "HEAD") || path.split('/').any(|c| c == "..") || !file.exists() {
        return reply(&mut stream, "404 Not Found", "", 0);
    }
    if file.is_dir() {
        if !path.ends_with('/') {
            let location = format!("Location: {path}/\r\n");
            return reply(&mut stream, "301 Moved Permanently", &location, 0);
        }
        let mut names: Vec<String> = std::fs::read_dir(&file)?
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let slash = if e.path().is_dir() { "/" } else { "" };
                format!("{}{slash}", percent_encode(&name))
            })
            .collect();
        names.sort();
        let body: String = names
            .iter()
            .map(|n| format!("<a href=\"{n}\">{n}</a><br>\n"))
            .collect();
        let body = format!("<html><body>\n{body}</body></html>\n");
        reply(
            &mut stream,
            "200 OK",
            "Content-Type: text/html\r\n",
            body.len() as u64,
        )?;
        if method == "GET" {
            stream.write_all(body.as_bytes())?;
        }
        return Ok(());
    }
    let mut f = std::fs::File::open(&file)?;
    let len = f.metadata()?.len();
    reply(
        &mut stream,
        "200 OK",
        "Content-Type: application/octet-stream\r\n",
        len,
    )?;
    if method == "GET" {
        std::io::copy(&mut f, &mut stream)?;
    }
    Ok(())
}

/// A network install's setup in `w`: the tree of `make iso`'s unattended installer-efi ISO
/// extracted by xorriso, its `folders` served over HTTP (`base` as the guest reaches it), a blank
/// 4 GiB disk, and boot-test's arguments starting the tree's installer kernel as a PXE loader
/// would (QEMU's direct kernel boot) with the ISO's kernel arguments, `image-config=` naming the
/// served config folder, and `memory` MiB.
struct Pxe {
    server: Server,
    base: String,
    disk: PathBuf,
    boot: Vec<String>,
}

fn pxe(w: &Path, folders: &[&str], memory: &str) -> Pxe {
    let iso = common::make_iso("installer-efi", &realistic_distribution(), true);
    let tree = w.join("tree");
    let o = Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&iso)
        .args(["-extract", "/"])
        .arg(&tree)
        .output()
        .expect("xorriso (scripts/install-host-deps.sh test)");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let served = w.join("served");
    std::fs::create_dir(&served).unwrap();
    for f in folders {
        std::fs::rename(tree.join(f), served.join(f)).unwrap();
    }
    let server = serve(served);
    let base = format!("http://10.0.2.2:{}", server.port);
    let disk = w.join("disk.raw");
    blank_disk(&disk, 4);
    let append =
        format!("root=/dev/ram0 console=tty0 console=ttyS0,115200n8 image-config={base}/config");
    let file = |f: &str| tree.join(f).to_str().unwrap().to_string();
    let boot = vec![
        "--kernel".into(),
        file("isolinux/vmlinuz"),
        "--initrd".into(),
        file("isolinux/initrd.img"),
        "--append".into(),
        append,
        "--network".into(),
        "--memory".into(),
        memory.into(),
    ];
    Pxe {
        server,
        base,
        disk,
        boot,
    }
}

#[test]
#[ignore = "needs the realistic distribution (make distro: KILN_RPMS_DIR or out/RPMS), xorriso and 15+ minutes of QEMU (TCG); cargo test -p kiln-cli --test iso over_the_network -- --ignored (KILN_ISO_BUILT=y after make iso CONFIG_FILE=imageconfigs/installer-efi.json UNATTENDED_INSTALLER=y)"]
fn the_installer_installs_over_the_network_from_the_isos_tree_served_over_http() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // The ISO's tree (config/ and RPMS/ side by side) on a web server, as a PXE setup serves
    // it; the firmware starts the installer's kernel; no CD-ROM.
    let p = pxe(w, &["config", "RPMS"], "4096");
    let (server, disk) = (&p.server, &p.disk);
    let url = format!("{}/config", p.base);
    let rpms = format!("{}/RPMS", p.base);
    let vars = vars_with_an_old_entry(w);
    let boot: Vec<&str> = p.boot.iter().map(String::as_str).collect();
    let log = w.join("install.log");
    install_under_ovmf(
        &boot,
        &vars,
        &[disk.to_str().unwrap()],
        &[
            &format!("Fetching {url}/ into /mnt/cdrom/config"),
            &format!("Fetching {rpms}/ into /mnt/cdrom/RPMS"),
            "Network install: fetched",
            "action:Installing onto /dev/vda",
        ],
        &log,
    );
    let console = std::fs::read_to_string(&log).unwrap();
    assert!(
        console.contains(&format!("network install from {url}: no media to eject")),
        "no eject note for a network install"
    );
    // Everything came over HTTP: the config and every package of the ISO's RPMS/.
    let requests = server.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|r| r == "/config/unattended_config.json"),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r == "/RPMS/repodata/repomd.xml"),
        "{requests:?}"
    );
    let served: Vec<String> = std::fs::read_dir(w.join("served/RPMS"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rpm"))
        .collect();
    assert!(!served.is_empty());
    for rpm in &served {
        assert!(
            requests.contains(&format!("/RPMS/{rpm}")),
            "{rpm} was not fetched"
        );
    }
    // The installed disk alone: the boot entry made, root logs in.
    let parts = gpt_partitions(disk);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let number = the_boot_entry(&vars, &parts[0].3.to_lowercase());
    boot_installed_under_ovmf(
        disk,
        &vars,
        number,
        "kiln-installed",
        &["findmnt -no SOURCE,FSTYPE /"],
        &["/dev/vda2 ext4"],
        &w.join("installed.log"),
    );
}

/// runliveinstaller's download (its `fetch_tree`, run by bash with the host's wget) from the
/// test's HTTP server: a folder lands whole in the prefix given (the URL's folders cut, no
/// listing pages left), names with `+` and spaces too; a folder the server lacks is reported.
#[test]
fn runliveinstallers_fetch_takes_a_served_folder_whole_and_reports_a_missing_one() {
    let work = tempfile::tempdir().unwrap();
    let srv = work.path().join("srv");
    let files = [
        "azl/config/unattended_config.json",
        "azl/config/packages/0/a list+.json",
        "azl/RPMS/repodata/repomd.xml",
        "azl/RPMS/libstdc++-13.2.0-7.azl3.x86_64.rpm",
    ];
    for f in files {
        let path = srv.join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, f.repeat(100)).unwrap();
    }
    let server = serve(srv.clone());
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../resources/imageconfigs/additionalfiles/iso_initrd/root/runliveinstaller"),
    )
    .unwrap();
    // fetch_tree and the say it calls, as runliveinstaller defines them.
    let function = |name: &str| {
        let start = 1 + script
            .find(&format!("\n{name}() {{\n"))
            .unwrap_or_else(|| panic!("runliveinstaller has no {name}"));
        let len = script[start..].find("\n}\n").unwrap() + 3;
        script[start..start + len].to_string()
    };
    let functions = function("say") + &function("fetch_tree");
    let base = format!("http://127.0.0.1:{}/azl", server.port);
    let dest = work.path().join("cdrom");
    let fetch = |folder: &str| {
        Command::new("bash")
            .arg("-c")
            .arg(format!("{functions}\nfetch_tree \"$1\" \"$2\""))
            .arg("fetch")
            .arg(format!("{base}/{folder}"))
            .arg(dest.join(folder))
            .env("FETCH_LOG", work.path().join("fetch-log.txt"))
            .output()
            .expect("bash")
    };
    for folder in ["config", "RPMS"] {
        let o = fetch(folder);
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains(&format!("Fetching {base}/{folder}/ into ")));
    }
    for f in files {
        let got = dest.join(f.strip_prefix("azl/").unwrap());
        let text = std::fs::read_to_string(&got)
            .unwrap_or_else(|e| panic!("{f} not fetched to {}: {e}", got.display()));
        assert_eq!(text, f.repeat(100), "{f}");
    }
    let all = Command::new("find")
        .arg(&dest)
        .args(["-type", "f"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&all).lines().count(),
        files.len(),
        "{}",
        stdout(&all)
    );
    let o = fetch("nothere");
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains(&format!(
            "Could not fetch {base}/nothere/ (wget failed: the server, the path, or the network)."
        )),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
#[ignore = "needs the realistic distribution (make distro: KILN_RPMS_DIR or out/RPMS), xorriso and about 3 minutes of QEMU (TCG); cargo test -p kiln-cli --test iso a_network_install_without -- --ignored (KILN_ISO_BUILT=y after make iso CONFIG_FILE=imageconfigs/installer-efi.json UNATTENDED_INSTALLER=y)"]
fn a_network_install_without_rpms_on_the_server_says_so_and_opens_a_shell() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // The server has the ISO's config/ but not its RPMS/.
    let p = pxe(w, &["config"], "3072");
    let base = &p.base;
    let config = format!("Fetching {base}/config/ into /mnt/cdrom/config");
    let failed = format!(
        "Could not fetch {base}/RPMS/ (wget failed: the server, the path, or the network)."
    );
    let shell = "The network install could not get its media: the log is /installer/fetch-log.txt.";
    let mut args: Vec<&str> = vec![p.disk.to_str().unwrap()];
    args.extend(p.boot.iter().map(String::as_str));
    args.extend(["--persist", "--timeout", "1200"]);
    args.extend(["--expect", &config, "--expect", &failed, "--expect", shell]);
    boot_test(&args, &w.join("install.log"));
    assert!(
        p.server
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r == "/RPMS/"),
        "RPMS/ was not asked for"
    );
    assert!(all_zeros(&p.disk), "the disk was written to");
}
