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
    assert!(
        o.status.success(),
        "{}{}\n--- console ---\n{}",
        stdout(&o),
        stderr(&o),
        log.chars()
            .skip(log.chars().count().saturating_sub(6000))
            .collect::<String>()
    );
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
    boot_test(
        &[
            disk_s,
            "--firmware",
            "bios",
            "--disk",
            "nvme",
            "--login",
            "root:kiln",
            "--timeout",
            "900",
            "--run",
            "cat /etc/hostname",
            "--run",
            "findmnt -no SOURCE,FSTYPE /",
            "--expect",
            "kiln-installed-bios",
            "--expect",
            "/dev/nvme0n1p2 ext4",
        ],
        &work.path().join("installed.log"),
    );
}

#[test]
#[ignore = "needs the realistic distribution (make distro: KILN_RPMS_DIR or out/RPMS) and about 4 minutes of QEMU (TCG); cargo test -p kiln-cli --test iso -- --ignored"]
fn the_hybrid_iso_boots_as_a_usb_disk_under_both_firmwares() {
    let work = tempfile::tempdir().unwrap();
    let iso = installer_iso(work.path(), "installer-efi");
    let disk = work.path().join("disk.raw");
    blank_disk(&disk, 1);
    // The ISO as a USB stick (dd'd), not a CD: UEFI boots the GPT's EFI System partition,
    // SeaBIOS the MBR's isolinux boot code. The installer's kernel (Debian's cloud kernel) has
    // no USB drivers, so the installer starts and waits for its media: that line is the
    // installer's start, after firmware, boot loader, kernel and initrd all came from the stick.
    for firmware in ["uefi", "bios"] {
        boot_test(
            &[
                disk.to_str().unwrap(),
                "--usb",
                iso.to_str().unwrap(),
                "--firmware",
                firmware,
                "--memory",
                "3072",
                "--timeout",
                "1200",
                "--expect",
                "Waiting for the installation media (label CDROM)",
            ],
            &work.path().join(format!("usb-{firmware}.log")),
        );
    }
}
