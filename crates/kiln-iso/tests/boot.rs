//! The hybrid ISO boots to GRUB four ways in QEMU (TCG): SeaBIOS from the CD (El Torito BIOS
//! entry, boot info patched) and from the disk (MBR boot code → the patched core image), OVMF
//! from the CD (El Torito UEFI entry) and from the disk (the GPT's EFI System Partition). GRUB's
//! images come from Debian's grub-pc-bin and grub-efi-amd64-bin (grub-mkimage), each with an
//! embedded config that prints a banner on the serial console.

use kiln_iso::{efi_boot_image, write_iso, BiosBoot, Hybrid, Identity, IsoOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn mkimage(format: &str, out: &Path, config: &Path, modules: &[&str]) {
    let status = Command::new("grub-mkimage")
        .args(["-O", format, "-p", "/boot/grub2", "-c"])
        .arg(config)
        .arg("-o")
        .arg(out)
        .args(modules)
        .status()
        .expect("grub-mkimage (grub-common; scripts/install-host-deps.sh test)");
    assert!(status.success(), "grub-mkimage -O {format} failed");
}

/// Runs QEMU until `banner` appears on the serial console (true) or `secs` pass (false).
fn boots_to(args: &[&str], banner: &str, secs: u64) -> bool {
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel", "tcg", "-m", "256", "-display", "none", "-serial", "stdio",
        ])
        .args(["-no-reboot", "-nodefaults", "-vga", "none"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 (qemu-system-x86)");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let want = banner.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            if String::from_utf8_lossy(&line).contains(&want) {
                let _ = tx.send(());
                return;
            }
        }
    });
    let seen = rx.recv_timeout(Duration::from_secs(secs)).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    seen
}

#[test]
fn hybrid_iso_boots_grub_under_bios_and_uefi_as_cd_and_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let stage = tmp.path().join("stage");
    std::fs::create_dir_all(stage.join("boot/grub2/i386-pc")).unwrap();
    std::fs::create_dir_all(stage.join("efi/boot")).unwrap();
    let cfg = |name: &str| {
        let p = tmp.path().join(format!("{name}.cfg"));
        std::fs::write(
            &p,
            format!(
                "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n\
                 echo KILN-GRUB-{name}\n"
            ),
        )
        .unwrap();
        p
    };
    mkimage(
        "i386-pc-eltorito",
        &stage.join("boot/grub2/i386-pc/eltorito.img"),
        &cfg("PC"),
        &[
            "biosdisk", "iso9660", "part_gpt", "serial", "terminal", "echo",
        ],
    );
    mkimage(
        "x86_64-efi",
        &stage.join("efi/boot/bootx64.efi"),
        &cfg("EFI"),
        &["part_gpt", "fat", "iso9660", "serial", "terminal", "echo"],
    );
    let id = Identity::seeded(b"boot", 1_700_000_000);
    efi_boot_image(
        &stage.join("efi/boot"),
        &stage.join("boot/grub2/efiboot.img"),
        &id,
    )
    .unwrap();
    let iso = tmp.path().join("grub.iso");
    let opts = IsoOptions {
        bios: Some(BiosBoot {
            grub2_boot_info: true,
            ..BiosBoot::new("boot/grub2/i386-pc/eltorito.img")
        }),
        efi_image: Some("boot/grub2/efiboot.img".into()),
        catalog: Some("boot/grub2/boot.cat".into()),
        hybrid: Some(Hybrid {
            mbr_code: Some(std::fs::read("/usr/lib/grub/i386-pc/boot_hybrid.img").unwrap()),
            grub2_mbr: true,
            isolinux_mbr: false,
        }),
        ..IsoOptions::new("CDROM", id)
    };
    write_iso(&stage, &iso, &opts).unwrap();
    let iso = iso.to_str().unwrap();
    let disk = format!("file={iso},format=raw,if=ide,snapshot=on");
    let cd = format!("file={iso},format=raw,media=cdrom,if=ide,snapshot=on");
    let ovmf = |vars: &str| {
        let v = tmp.path().join(vars);
        std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &v).expect("OVMF (ovmf)");
        vec![
            "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd".to_string(),
            format!("if=pflash,format=raw,file={}", v.display()),
        ]
    };
    let mut failed = Vec::new();
    for (name, drives, banner) in [
        ("SeaBIOS, CD", vec![cd.clone()], "KILN-GRUB-PC"),
        ("SeaBIOS, disk", vec![disk.clone()], "KILN-GRUB-PC"),
        (
            "OVMF, CD",
            [ovmf("v1.fd"), vec![cd]].concat(),
            "KILN-GRUB-EFI",
        ),
        (
            "OVMF, disk",
            [ovmf("v2.fd"), vec![disk]].concat(),
            "KILN-GRUB-EFI",
        ),
    ] {
        let mut args = Vec::new();
        for d in &drives {
            args.push("-drive");
            args.push(d.as_str());
        }
        if !boots_to(&args, banner, 180) {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "no GRUB banner: {failed:?}");
}
