//! Upstream's own image configs, unchanged, built from the realistic distribution (`make
//! distro`, out/RPMS) and booted in QEMU with the firmware their partition table is made for.
//!
//! The configs send the kernel's console to the screen and have no login, so each boot uses a
//! throwaway copy of the image (`kiln boot-test --kernel-arg console=ttyS0 --set-password`):
//! grubenv's `kernelopts` and root's password change in the copy only; the image is as built.
//! The test then waits for `systemctl is-system-running` (multi-user.target reached) and
//! requires no failed unit.

mod common;

use common::{kiln, stderr, stdout};
use std::path::{Path, PathBuf};

/// The realistic distribution (`make distro`, which `make test` runs first).
fn distro_repo() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/RPMS");
    assert!(repo.join("repodata").is_dir(), "run `make distro` first");
    repo
}

/// `kiln build` of upstream's `name.json` into `work` with `SOURCE_DATE_EPOCH` fixed; the disk
/// artifact it made.
fn build(name: &str, work: &Path, extra: &[&str]) -> PathBuf {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/azl-compat/imageconfigs")
        .join(format!("{name}.json"));
    let o = kiln()
        .args(common::build_args(&config, &distro_repo(), work))
        .args(extra)
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .output()
        .unwrap();
    assert!(o.status.success(), "building {name}: {}", stderr(&o));
    let images = work.join("images");
    std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("vhdx" | "vhd" | "raw" | "qcow2")
            )
        })
        .unwrap_or_else(|| panic!("{name} made no disk image in {}", images.display()))
}

/// Boots `disk` (firmware from its partition table) on a throwaway copy with the serial
/// console and a root password, and checks the system is up with no failed unit; returns what
/// the commands printed.
fn boot_until_running(disk: &Path, runs: &[&str], expect: &[&str]) -> String {
    let mut cmd = kiln();
    cmd.arg("boot-test")
        .arg(disk)
        .args(["--kernel-arg", "console=ttyS0"])
        .args(["--login", "root:kiln-test", "--set-password"])
        .args(["--timeout", "1200"]);
    for r in [
        "systemctl is-system-running --wait",
        "systemctl --failed --no-legend --plain | sed 's/^/FAILED-UNIT /'",
    ]
    .iter()
    .chain(runs)
    {
        cmd.args(["--run", r]);
    }
    for e in ["\nrunning"].iter().chain(expect) {
        cmd.args(["--expect", e]);
    }
    let transcript = disk.with_extension("console.txt");
    cmd.arg("--transcript").arg(&transcript);
    let o = cmd.output().unwrap();
    let console = std::fs::read_to_string(&transcript).unwrap_or_default();
    let failed: Vec<&str> = console
        .lines()
        .filter(|l| l.starts_with("FAILED-UNIT "))
        .collect();
    assert!(
        o.status.success() && failed.is_empty(),
        "{} did not come up cleanly: {failed:?}\n{}{}",
        disk.display(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

#[test]
fn minimal_os_boots_under_uefi() {
    let work = tempfile::tempdir().unwrap();
    let disk = build("minimal-os", work.path(), &[]);
    boot_until_running(&disk, &["cat /etc/os-release"], &["Azure Linux"]);
}

/// core-efi: two builds with one SOURCE_DATE_EPOCH are byte-identical (the second installs
/// anew, without the package-root cache), and the image boots under UEFI.
#[test]
fn core_efi_is_reproducible_and_boots_under_uefi() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let a = build("core-efi", first.path(), &[]);
    let b = build("core-efi", second.path(), &["--no-cache"]);
    let same = std::process::Command::new("cmp")
        .arg(&a)
        .arg(&b)
        .status()
        .unwrap();
    assert!(same.success(), "two builds of core-efi differ");
    boot_until_running(
        &a,
        &[
            "grep -c '^menuentry' /boot/grub2/grub.cfg",
            "rpm -q kernel systemd cloud-init hyperv-daemons",
        ],
        &["kernel-6.6", "hyperv-daemons-"],
    );
}

#[test]
fn core_legacy_boots_under_bios() {
    let work = tempfile::tempdir().unwrap();
    let disk = build("core-legacy", work.path(), &[]);
    boot_until_running(
        &disk,
        &["test -d /sys/firmware/efi || echo NO-EFI"],
        &["NO-EFI"],
    );
}

/// core-efi-selinux: the refpolicy store loads at boot (permissive, as the config says) and the
/// files carry the labels setfiles gave them in the build.
#[test]
fn core_efi_selinux_boots_with_its_policy_and_labels() {
    let work = tempfile::tempdir().unwrap();
    let disk = build("core-efi-selinux", work.path(), &[]);
    boot_until_running(
        &disk,
        &[
            "getenforce",
            "ls -Z /etc/shadow /usr/bin/bash",
            "ausearch -m avc 2>/dev/null | grep -c 'avc:' || true",
        ],
        &["Permissive", ":shadow_t:", ":shell_exec_t:"],
    );
}

/// qemu-guest: upstream's QEMU image (console on ttyS0 by its own command line, the guest
/// agent, its FinalizeImageScripts).
#[test]
fn qemu_guest_boots_with_its_agent() {
    let work = tempfile::tempdir().unwrap();
    let disk = build("qemu-guest", work.path(), &[]);
    boot_until_running(
        &disk,
        // qemu-guest has no rpm command (its lists do not name rpm).
        &["cat /proc/cmdline", "command -v qemu-ga"],
        &["console=ttyS0", "/qemu-ga"],
    );
}

/// The packages `kiln summary` resolves for upstream's `name.json` (NAME-VERSION-RELEASE.ARCH).
fn resolved(name: &str) -> Vec<String> {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/azl-compat/imageconfigs")
        .join(format!("{name}.json"));
    let o = kiln()
        .arg("summary")
        .arg(&config)
        .arg("--rpm-dir")
        .arg(distro_repo())
        .args(["--disable-upstream-repos", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut names: Vec<String> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        // NAME-VERSION-RELEASE.ARCH, as `rpm -qa` and upstream's manifests print it (no epoch).
        .map(|p| {
            let version = p["version"].as_str().unwrap();
            let version = version.split_once(':').map_or(version, |(_, v)| v);
            format!(
                "{}-{version}.{}",
                p["name"].as_str().unwrap(),
                p["arch"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    names
}

/// Builds upstream's container config `name` and unpacks its tarball; the unpacked root.
fn container(name: &str, work: &Path) -> PathBuf {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/azl-compat/imageconfigs")
        .join(format!("{name}.json"));
    let o = kiln()
        .args(common::build_args(&config, &distro_repo(), work))
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .output()
        .unwrap();
    assert!(o.status.success(), "building {name}: {}", stderr(&o));
    let tarball = std::fs::read_dir(work.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap_or_else(|| panic!("{name} made no tar.gz"));
    let root = work.join("root");
    std::fs::create_dir(&root).unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&root)
        .status()
        .unwrap();
    assert!(tar.success());
    root
}

/// `rpm -qa` over the rpmdb in an unpacked root (read with the host's rpm): N-V-R.A.
fn rpm_qa(root: &Path) -> Vec<String> {
    let o = std::process::Command::new("rpm")
        .args(["--define", "_db_backend sqlite", "--dbpath"])
        .arg(root.join("var/lib/rpm"))
        .args(["-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut v: Vec<String> = stdout(&o).lines().map(String::from).collect();
    v.sort();
    v
}

/// core-container keeps its rpmdb: `rpm -qa` in the tarball is the resolved set.
#[test]
fn core_container_holds_what_was_resolved() {
    let work = tempfile::tempdir().unwrap();
    let root = container("core-container", work.path());
    assert_eq!(rpm_qa(&root), resolved("core-container"));
    assert!(root.join("etc/os-release").exists());
    // Its PostInstallScript (postinstallscripts/core-container/cleanup.sh) ran: /boot, /home
    // and /var/log are left empty, /usr/src is gone.
    for dir in ["boot", "home", "var/log"] {
        let left: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("/{dir}: {e}"))
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "/{dir} still holds {left:?}");
    }
    assert!(!root.join("usr/src").exists(), "/usr/src is still there");
}

/// The distroless images drop the rpmdb (RemoveRpmDb) and carry upstream's manifests instead:
/// container-manifest-1 lists exactly the resolved packages.
#[test]
fn distroless_images_carry_manifests_and_no_rpmdb() {
    for name in ["distroless-minimal", "distroless-base", "distroless-debug"] {
        let work = tempfile::tempdir().unwrap();
        let root = container(name, work.path());
        assert!(
            !root.join("var/lib/rpm/rpmdb.sqlite").exists(),
            "{name} still has its rpmdb"
        );
        let manifest =
            std::fs::read_to_string(root.join("var/lib/rpmmanifest/container-manifest-1"))
                .unwrap_or_else(|e| panic!("{name}: container-manifest-1: {e}"));
        let mut listed: Vec<String> = manifest.lines().map(String::from).collect();
        listed.sort();
        assert_eq!(listed, resolved(name), "{name}");
        let second =
            std::fs::read_to_string(root.join("var/lib/rpmmanifest/container-manifest-2")).unwrap();
        assert_eq!(second.lines().count(), listed.len(), "{name}");
    }
}
