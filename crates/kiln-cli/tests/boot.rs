//! Images proven by booting them: `kiln build` of a demo config from the sample repository,
//! then `kiln boot-test` (QEMU, TCG) logs in on the serial console as the configured user with
//! the configured password and checks `id`, `hostname`, `/proc/cmdline` (ExtraCommandLine and
//! root=), the file the PostInstallScript wrote, the mounts fstab asked for and the swap.

mod common;

use std::path::{Path, PathBuf};

/// Builds `config` into `work/images`; returns the artifact's path.
fn build(config: &str, work: &Path, artifact: &str) -> PathBuf {
    common::build(config, work).1.join(artifact)
}

fn boot_test(artifact: &Path, firmware: &str, expect: &[&str]) {
    boot_test_on(artifact, firmware, "virtio", expect)
}

fn boot_test_on(artifact: &Path, firmware: &str, disk: &str, expect: &[&str]) {
    let runs = [
        "id",
        "hostname",
        "cat /proc/cmdline",
        "cat /etc/kiln-postinstall",
        "mount",
        "cat /proc/swaps",
    ];
    common::boot_test(artifact, firmware, disk, &runs, expect);
}

#[test]
fn demo_efi_boots_under_ovmf_and_logs_in() {
    let work = tempfile::tempdir().unwrap();
    let vhdx = build("demo-efi.json", work.path(), "demo-efi.vhdx");
    boot_test(
        &vhdx,
        "uefi",
        &[
            "uid=1000(kiln)",
            "\nkiln-demo\n",
            "console=ttyS0 kiln.demo=1",
            "root=PARTUUID=",
            "built by kiln: demo-efi",
            "on /boot/efi type vfat",
        ],
    );
}

#[test]
fn demo_xfs_boots_with_a_separate_boot_and_an_xfs_root() {
    let work = tempfile::tempdir().unwrap();
    let qcow2 = build("demo-xfs.json", work.path(), "demo-xfs.qcow2");
    // No --firmware: the GPT's EFI system partition says UEFI.
    boot_test(
        &qcow2,
        "auto",
        &[
            "uid=1000(kiln)",
            "\nkiln-xfs\n",
            "console=ttyS0 kiln.demo=xfs",
            "root=PARTLABEL=rootfs",
            "built by kiln: demo-xfs",
            "on / type xfs",
            "on /boot type ext4",
            "on /boot/efi type vfat",
            "partition",
        ],
    );
}

#[test]
fn demo_legacy_boots_under_seabios_from_its_bios_boot_partition_on_nvme() {
    let work = tempfile::tempdir().unwrap();
    let vhd = build("demo-legacy.json", work.path(), "demo-legacy.vhd");
    // No --firmware: a GPT with a BIOS boot partition and no ESP says BIOS (read from the VHD).
    boot_test_on(
        &vhd,
        "auto",
        "nvme",
        &[
            "uid=1000(kiln)",
            "\nkiln-legacy\n",
            "console=ttyS0 kiln.demo=legacy",
            "root=UUID=",
            "built by kiln: demo-legacy",
            "/dev/nvme0n1p2 on / type ext4",
        ],
    );
    qemu_gives_its_console_to_the_terminal(&vhd);
}

/// `kiln qemu`: the serial console is the terminal (here a pipe): log in, run a command, quit
/// with Ctrl-A X.
fn qemu_gives_its_console_to_the_terminal(image: &Path) {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let mut child = common::kiln()
        .arg("qemu")
        .arg(image)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().unwrap();
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let wait_for = |text: &str, from: usize| -> usize {
        loop {
            if let Some(i) = seen.lock().unwrap()[from..].find(text) {
                return from + i + text.len();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {text:?} in:\n{}",
                seen.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let at = wait_for("login:", 0);
    stdin.write_all(b"kiln\n").unwrap();
    let at = wait_for("assword:", at);
    stdin.write_all(b"kiln\n").unwrap();
    let at = wait_for("$ ", at);
    stdin.write_all(b"echo MARK-$((6*7))\n").unwrap();
    wait_for("MARK-42", at);
    stdin.write_all(b"\x01x").unwrap();
    // Ctrl-A X ends QEMU, and kiln qemu with it (not killed by a signal).
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert!(status.code().is_some(), "{status:?}");
}

#[test]
fn demo_mbr_boots_under_seabios_with_enable_grub_mkconfig_false() {
    let work = tempfile::tempdir().unwrap();
    let raw = build("demo-mbr.json", work.path(), "demo-mbr.raw");
    // No --firmware: an MBR without an EFI system partition says BIOS.
    boot_test(
        &raw,
        "auto",
        &[
            "uid=1000(kiln)",
            "\nkiln-mbr\n",
            "console=ttyS0 kiln.demo=mbr",
            "root=PARTUUID=",
            "built by kiln: demo-mbr",
            "on /boot type ext4",
            "on /srv type ext4",
            "on /var/log type ext4",
            "partition",
        ],
    );
}
