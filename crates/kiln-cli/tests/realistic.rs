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

/// `kiln build` of upstream's `name.json` into `work` with `SOURCE_DATE_EPOCH` fixed; the
/// folder of its artifacts.
fn build_images(name: &str, work: &Path, extra: &[&str]) -> PathBuf {
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
    work.join("images")
}

/// [`build_images`], then the disk artifact it made.
fn build(name: &str, work: &Path, extra: &[&str]) -> PathBuf {
    let images = build_images(name, work, extra);
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
        // TCG on a busy host can miss the kernel's IO-APIC timer check ("IO-APIC + timer
        // doesn't work!" panic); Fedora's cloud images skip it the same way.
        .args(["--kernel-arg", "no_timer_check"])
        // udev's coldplug under TCG on a busy host can outlast systemd's 90 s wait for a disk
        // (baremetal's /boot/efi timed out so, into emergency mode).
        .args(["--kernel-arg", "systemd.default_device_timeout_sec=900"])
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
    // The package tools work in the running system: tdnf (the distribution's tdnf runs dnf)
    // lists what is installed, rpm's database holds the resolved set, and rpm -V finds the
    // files of these packages as installed (digests, sizes, modes, owners, links). Not their
    // mtimes: with SOURCE_DATE_EPOCH kiln clamps every mtime later than it, and packages built
    // after that date record later ones.
    let installed = format!("RPM-QA={}", resolved("core-efi").len());
    boot_until_running(
        &a,
        &[
            "grep -c '^menuentry' /boot/grub2/grub.cfg",
            "rpm -q kernel systemd cloud-init hyperv-daemons",
            "tdnf list installed tdnf rpm",
            "echo RPM-QA=$(rpm -qa | wc -l)",
            "rpm -V --nomtime bash coreutils rpm tdnf kernel systemd && echo RPM-V-CLEAN",
        ],
        &[
            "kernel-6.6",
            "hyperv-daemons-",
            "tdnf.x86_64",
            "@System",
            &installed,
            "\nRPM-V-CLEAN",
        ],
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

/// baremetal: upstream's bare-metal image (VHDX, UEFI, cloud-init, its own console=ttyS0)
/// boots with SELinux enforcing, as its config says, and its cleanup script ran.
#[test]
#[ignore = "builds and boots a systemd image under TCG (about 9 minutes); cargo test -p kiln-cli --test realistic -- --ignored baremetal"]
fn baremetal_boots_enforcing_under_uefi() {
    let work = tempfile::tempdir().unwrap();
    let disk = build("baremetal", work.path(), &[]);
    boot_until_running(
        &disk,
        &[
            "getenforce",
            "cat /proc/cmdline",
            "test -d /sys/firmware/efi && echo EFI",
        ],
        &["Enforcing", "rd.info", "\nEFI"],
    );
}

/// core-ova: the OVA's disk as a hypervisor imports it (the VMDK out of the archive, converted
/// by qemu-img), booted with BIOS (its BootType is legacy).
#[test]
#[ignore = "builds and boots a systemd image under TCG (about 10 minutes); cargo test -p kiln-cli --test realistic -- --ignored core_ova"]
fn core_ova_boots_under_bios() {
    let work = tempfile::tempdir().unwrap();
    let images = build_images("core-ova", work.path(), &[]);
    let ova = images.join("core.ova");
    sh(
        "tar",
        &[
            "-xf",
            ova.to_str().unwrap(),
            "-C",
            work.path().to_str().unwrap(),
            "core-disk1.vmdk",
        ],
    );
    let disk = work.path().join("core-disk1.qcow2");
    sh(
        "qemu-img",
        &[
            "convert",
            "-f",
            "vmdk",
            "-O",
            "qcow2",
            work.path().join("core-disk1.vmdk").to_str().unwrap(),
            disk.to_str().unwrap(),
        ],
    );
    boot_until_running(
        &disk,
        // core-ova has no hostname command (its lists do not name it).
        &[
            "test -d /sys/firmware/efi || echo NO-EFI",
            "cat /etc/hostname",
        ],
        &["NO-EFI", "\nmariner"],
    );
}

/// A FIPS config (fips=1, dracut-fips): the kernel runs in FIPS mode, the initramfs has
/// dracut's fips module, which loaded the crypto modules, ran the kernel's crypto self-tests
/// (tcrypt) and checked the kernel image against `/boot/.vmlinuz-<kver>.hmac` with
/// sha512hmac before the root was switched to; sha512hmac refuses a changed image.
fn fips_boots_and_checks_its_kernel(name: &str) {
    let work = tempfile::tempdir().unwrap();
    let disk = build(name, work.path(), &[]);
    boot_until_running(
        &disk,
        &[
            "echo FIPS-ENABLED=$(cat /proc/sys/crypto/fips_enabled)",
            "lsinitrd /boot/initramfs-$(uname -r).img | grep -o -E 'sbin/fips.sh|bin/sha512hmac|bin/kcapi-dgst|etc/fipsmodules' | sort -u",
            "journalctl -b -o cat | grep -E 'Checking integrity of kernel|All initrd crypto checks done|Self testing crypto'",
            "cd /boot && sha512hmac -c /boot/.vmlinuz-$(uname -r).hmac",
            "cp /boot/vmlinuz-$(uname -r) /tmp/v && echo x >> /tmp/v && sed 's|  /boot/vmlinuz-.*|  /tmp/v|' /boot/.vmlinuz-$(uname -r).hmac > /tmp/v.hmac && { sha512hmac -c /tmp/v.hmac || echo CHANGED-IMAGE-REFUSED; }",
        ],
        &[
            "FIPS-ENABLED=1",
            "sbin/fips.sh",
            "bin/sha512hmac",
            "bin/kcapi-dgst",
            "etc/fipsmodules",
            "Self testing crypto algorithms",
            "Checking integrity of kernel",
            "All initrd crypto checks done",
            ": OK",
            "/tmp/v: FAILED",
            "CHANGED-IMAGE-REFUSED",
        ],
    );
}

#[test]
#[ignore = "builds and boots a systemd image under TCG (about 6 minutes); cargo test -p kiln-cli --test realistic -- --ignored core_fips"]
fn core_fips_boots_in_fips_mode_under_bios() {
    fips_boots_and_checks_its_kernel("core-fips");
}

#[test]
#[ignore = "builds and boots a systemd image under TCG (about 14 minutes); cargo test -p kiln-cli --test realistic -- --ignored core_hwe_fips"]
fn core_hwe_fips_boots_in_fips_mode_under_bios() {
    fips_boots_and_checks_its_kernel("core-hwe-fips");
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
    container_root(name, &work.join("images"), work)
}

/// The rootfs tarball `name` left in `images`, unpacked under `work`.
fn container_root(name: &str, images: &Path, work: &Path) -> PathBuf {
    let tarball = std::fs::read_dir(images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .unwrap_or_else(|| panic!("{name} made no tar.gz"));
    let root = work.join("root");
    std::fs::create_dir(&root).unwrap();
    sh(
        "tar",
        &[
            "-xzf",
            tarball.to_str().unwrap(),
            "-C",
            root.to_str().unwrap(),
        ],
    );
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

/// The x86_64 configs built and booted above, or checked as tarballs.
const BOOTED_OR_CHECKED: [&str; 9] = [
    "core-efi",
    "core-legacy",
    "core-efi-selinux",
    "minimal-os",
    "qemu-guest",
    "core-container",
    "distroless-minimal",
    "distroless-base",
    "distroless-debug",
];

/// Every other x86_64 config: built below, unchanged, and its artifacts checked.
const BUILT_AND_CHECKED: [&str; 6] = [
    "core-container-builder",
    "swuvm",
    "baremetal",
    "core-ova",
    "core-fips",
    "core-hwe-fips",
];

/// The configs this distribution cannot build, and why (docs/azl-distro.md says the same):
/// each fails with the reason given, which `excluded_configs_fail_for_their_reason` checks.
const EXCLUDED: [(&str, &str); 11] = [
    // azurevm-packages.json names grubby, which has no Debian counterpart.
    ("marketplace-gen1", "nothing provides grubby"),
    ("marketplace-gen1-fips", "nothing provides grubby"),
    ("marketplace-gen1-kernel-hwe", "nothing provides grubby"),
    (
        "marketplace-gen1-kernel-hwe-fips",
        "nothing provides grubby",
    ),
    ("marketplace-gen2", "nothing provides grubby"),
    ("marketplace-gen2-fips", "nothing provides grubby"),
    ("marketplace-gen2-kernel-hwe", "nothing provides grubby"),
    (
        "marketplace-gen2-kernel-hwe-fips",
        "nothing provides grubby",
    ),
    // cvm-packages.json: Azure's unified kernel image (no Debian UKI), and grubby.
    ("marketplace-gen2-cvm", "nothing provides kernel-uki"),
    // The ISO installer's config (Disks without artifacts, no disk); it also names
    // build-essential (autoconf/automake are perl programs; perl is not in the distribution).
    ("full", "nothing provides build-essential"),
    // The unattended ISO's payload: it installs onto /dev/sda from the installer (the ISO
    // tests cover that path); `kiln build` refuses to write a host device.
    (
        "core-legacy-unattended-hyperv",
        "TargetDisk is a device path: that is the live installer's job",
    ),
];

/// Configs for aarch64 build hosts (upstream builds for the host's architecture): the
/// distribution is x86_64.
const OTHER_ARCHITECTURE: [&str; 7] = [
    "core-efi-aarch64",
    "full-aarch64",
    "marketplace-gen2-aarch64",
    "marketplace-gen2-aarch64-fips",
    "marketplace-gen2-aarch64-kernel-hwe",
    "marketplace-gen2-aarch64-kernel-hwe-fips",
    "minimal-os-aarch64",
];

fn upstream_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/azl-compat/imageconfigs")
        .join(format!("{name}.json"))
}

/// Every upstream config is in exactly one of the lists above: a config added upstream is
/// noticed here.
#[test]
fn every_upstream_config_is_built_or_excluded_with_a_reason() {
    let dir = upstream_config("x").parent().unwrap().to_path_buf();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".json").map(String::from))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = BOOTED_OR_CHECKED
        .iter()
        .chain(&BUILT_AND_CHECKED)
        .chain(EXCLUDED.iter().map(|(n, _)| n))
        .chain(&OTHER_ARCHITECTURE)
        .map(|n| n.to_string())
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

/// Each excluded config fails, unchanged, with the reason its exclusion gives: the packages
/// really are missing (and every missing name is told at once), or the config is the
/// installer's.
#[test]
fn excluded_configs_fail_for_their_reason() {
    let Some(repo) = common::distro_repo() else {
        return;
    };
    for (name, reason) in EXCLUDED {
        let o = if reason.starts_with("nothing provides") {
            kiln()
                .arg("summary")
                .arg(upstream_config(name))
                .arg("--rpm-dir")
                .arg(&repo)
                .arg("--disable-upstream-repos")
                .output()
                .unwrap()
        } else {
            let work = tempfile::tempdir().unwrap();
            kiln()
                .args(common::build_args(
                    &upstream_config(name),
                    &repo,
                    work.path(),
                ))
                .output()
                .unwrap()
        };
        assert!(!o.status.success(), "{name} built");
        let err = stderr(&o);
        assert!(err.contains(reason), "{name}: {err}");
        if name == "marketplace-gen2-cvm" {
            assert!(err.contains("nothing provides grubby"), "{err}");
        }
    }
}

/// Runs `program args`, asserting success; its stdout.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> String {
    let o = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        o.status.success(),
        "{program} {args:?}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// `run` with string arguments.
fn sh(program: &str, args: &[&str]) -> String {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    run(program, &args)
}

/// What an ext4 filesystem (a file, or at `offset` of a raw disk) holds, read with debugfs
/// (nothing mounted).
struct Ext4 {
    spec: String,
}

impl Ext4 {
    fn at(file: &Path, offset: u64) -> Ext4 {
        // e2fsck: the filesystem is clean (-n: read-only, -f: even if marked clean).
        let spec = format!("{}?offset={offset}", file.display());
        sh("e2fsck", &["-fn", &spec]);
        Ext4 { spec }
    }

    fn cat(&self, path: &str) -> String {
        sh("debugfs", &["-R", &format!("cat {path}"), &self.spec])
    }

    fn exists(&self, path: &str) -> bool {
        !sh("debugfs", &["-R", &format!("stat {path}"), &self.spec]).is_empty()
    }

    /// The SELinux label of `path`.
    fn label(&self, path: &str) -> String {
        sh(
            "debugfs",
            &["-R", &format!("ea_get {path} security.selinux"), &self.spec],
        )
    }

    /// `rpm -qa` of the image's rpmdb (copied out with debugfs, read with the host's rpm).
    fn rpm_qa(&self, scratch: &Path) -> Vec<String> {
        let dest = scratch.join("rpmdb");
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir_all(&dest).unwrap();
        sh(
            "debugfs",
            &[
                "-R",
                &format!("rdump /var/lib/rpm {}", dest.display()),
                &self.spec,
            ],
        );
        // rpm_qa wants the root holding var/lib/rpm.
        let root = scratch.join("rpmroot");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("var/lib")).unwrap();
        std::fs::rename(dest.join("rpm"), root.join("var/lib/rpm")).unwrap();
        rpm_qa(&root)
    }
}

/// The config `name`'s JSON document.
fn config_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(upstream_config(name)).unwrap()).unwrap()
}

/// The words the config asks for on the kernel command line (ExtraCommandLine, SELinux,
/// EnableFIPS).
fn expected_cmdline(sc: &serde_json::Value) -> Vec<String> {
    let kcl = &sc["KernelCommandLine"];
    let mut words: Vec<String> = kcl["ExtraCommandLine"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    // As upstream: enforcing=1 only for force_enforcing; the mode is /etc/selinux/config's.
    match kcl["SELinux"].as_str() {
        Some("permissive" | "enforcing") => {
            words.extend(["security=selinux".into(), "selinux=1".into()])
        }
        Some("force_enforcing") => words.extend([
            "security=selinux".into(),
            "selinux=1".into(),
            "enforcing=1".into(),
        ]),
        _ => {}
    }
    if kcl["EnableFIPS"] == true {
        words.push("fips=1".into());
    }
    words
}

/// Checks the root filesystem of `name`'s image against its config: hostname, users, fstab,
/// SELinux mode and labels, kernel command line in grub.cfg, and the packages (`rpm -qa` of its
/// rpmdb = the resolved set).
fn check_root(name: &str, root: &Ext4, scratch: &Path) {
    let config = config_json(name);
    let sc = &config["SystemConfigs"][0];
    if let Some(host) = sc["Hostname"].as_str() {
        assert_eq!(root.cat("/etc/hostname").trim(), host, "{name}: hostname");
    }
    let passwd = root.cat("/etc/passwd");
    for user in sc["Users"].as_array().into_iter().flatten() {
        let user = user["Name"].as_str().unwrap();
        assert!(
            passwd.lines().any(|l| l.starts_with(&format!("{user}:"))),
            "{name}: no {user} in /etc/passwd"
        );
    }
    let fstab = root.cat("/etc/fstab");
    for setting in sc["PartitionSettings"].as_array().into_iter().flatten() {
        let mount = setting["MountPoint"].as_str().unwrap_or("");
        if !mount.is_empty() {
            assert!(
                fstab
                    .lines()
                    .any(|l| l.split_whitespace().nth(1) == Some(mount)),
                "{name}: {mount} not in /etc/fstab:\n{fstab}"
            );
        }
    }
    if let Some(mode) = sc["KernelCommandLine"]["SELinux"].as_str() {
        let mode = mode.trim_start_matches("force_");
        assert!(
            root.cat("/etc/selinux/config")
                .lines()
                .any(|l| l == format!("SELINUX={mode}")),
            "{name}: SELinux mode"
        );
        let label = root.label("/etc/shadow");
        assert!(
            label.contains(":shadow_t:"),
            "{name}: /etc/shadow is {label}"
        );
    }
    if sc["BootType"].is_string() {
        // The kernel's line in grub.cfg carries what the config asks for.
        let grub = root.cat("/boot/grub2/grub.cfg");
        let linux = grub
            .lines()
            .find(|l| l.trim_start().starts_with("linux"))
            .unwrap_or_else(|| panic!("{name}: no linux line in grub.cfg:\n{grub}"));
        for word in expected_cmdline(sc) {
            assert!(
                linux.split_whitespace().any(|w| w == word),
                "{name}: {word} is not on the kernel's line: {linux}"
            );
        }
        let kernel = linux.split_whitespace().nth(1).unwrap();
        assert!(root.exists(kernel), "{name}: {kernel} is not in the image");
        let initramfs = kernel.replace("/vmlinuz-", "/initramfs-") + ".img";
        assert!(root.exists(&initramfs), "{name}: no {initramfs}");
    }
    assert_eq!(root.rpm_qa(scratch), resolved(name), "{name}: rpm -qa");
}

/// The GPT type GUID upstream gives a partition with these flags.
fn partition_type(flags: &[serde_json::Value]) -> &'static str {
    if flags.iter().any(|f| f == "esp") {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    } else if flags.iter().any(|f| f == "grub" || f == "bios_grub") {
        "21686148-6449-6E6F-744E-656564454649"
    } else {
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    }
}

/// Checks a disk image (any format qemu-img reads) of `name`: its format, its partition table
/// against the config, each filesystem with its checker, and the root's contents.
fn check_disk(name: &str, image: &Path, format: &str, scratch: &Path) {
    // The format named: qemu-img probes a fixed VHD (footer only) as raw; with -f vpc it reads
    // the footer and fails if it is not one.
    let info: serde_json::Value = serde_json::from_str(&sh(
        "qemu-img",
        &[
            "info",
            "-f",
            format,
            "--output=json",
            image.to_str().unwrap(),
        ],
    ))
    .unwrap();
    assert_eq!(info["format"], format, "{name}: {info}");
    let raw = scratch.join("disk.raw");
    sh(
        "qemu-img",
        &[
            "convert",
            "-f",
            format,
            "-O",
            "raw",
            image.to_str().unwrap(),
            raw.to_str().unwrap(),
        ],
    );
    let disk = &config_json(name)["Disks"][0];
    if let Some(max) = disk["MaxSize"].as_u64() {
        assert_eq!(
            std::fs::metadata(&raw).unwrap().len(),
            max << 20,
            "{name}: size"
        );
    }
    let table: serde_json::Value =
        serde_json::from_str(&sh("sfdisk", &["--json", raw.to_str().unwrap()])).unwrap();
    let table = &table["partitiontable"];
    assert_eq!(table["label"], disk["PartitionTableType"], "{name}");
    let found = table["partitions"].as_array().unwrap();
    let wanted = disk["Partitions"].as_array().unwrap();
    assert_eq!(found.len(), wanted.len(), "{name}: {table}");
    let mut root = None;
    for (got, want) in found.iter().zip(wanted) {
        let start = got["start"].as_u64().unwrap();
        assert_eq!(
            start,
            want["Start"].as_u64().unwrap() * 2048,
            "{name}: {got}"
        );
        match want["End"].as_u64().unwrap() {
            // End 0: to the end of the disk (the backup GPT after it).
            0 => assert_eq!(
                start + got["size"].as_u64().unwrap() - 1,
                table["lastlba"].as_u64().unwrap(),
                "{name}: {got}"
            ),
            end => assert_eq!(start + got["size"].as_u64().unwrap(), end * 2048, "{name}"),
        }
        let flags = want["Flags"].as_array().cloned().unwrap_or_default();
        assert_eq!(got["type"], partition_type(&flags), "{name}: {got}");
        let offset = start * 512;
        if partition_type(&flags) == "21686148-6449-6E6F-744E-656564454649" {
            // The BIOS boot partition holds GRUB's core image (written over the filesystem
            // the config names, as grub-install does), and the MBR GRUB's boot code.
            use std::os::unix::fs::FileExt;
            let disk = std::fs::File::open(&raw).unwrap();
            let (mut mbr, mut core) = ([0u8; 512], [0u8; 512]);
            disk.read_exact_at(&mut mbr, 0).unwrap();
            disk.read_exact_at(&mut core, offset).unwrap();
            assert!(
                mbr.windows(4).any(|w| w == b"GRUB"),
                "{name}: no GRUB boot code in the MBR"
            );
            assert!(
                core.iter().any(|&b| b != 0),
                "{name}: empty BIOS boot partition"
            );
            continue;
        }
        match want["FsType"].as_str().unwrap() {
            "fat32" => {
                // fsck.vfat reads a file: the partition copied out.
                let esp = scratch.join("esp.img");
                sh(
                    "dd",
                    &[
                        &format!("if={}", raw.display()),
                        &format!("of={}", esp.display()),
                        "bs=512",
                        &format!("skip={start}"),
                        &format!("count={}", got["size"]),
                        "status=none",
                    ],
                );
                sh("fsck.vfat", &["-n", esp.to_str().unwrap()]);
                std::fs::remove_file(&esp).unwrap();
            }
            "ext4" => {
                let fs = Ext4::at(&raw, offset);
                let id = want["ID"].as_str().unwrap();
                let mount = config_json(name)["SystemConfigs"][0]["PartitionSettings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["ID"] == id)
                    .and_then(|s| s["MountPoint"].as_str())
                    .unwrap_or("")
                    .to_string();
                if mount == "/" {
                    root = Some(fs);
                }
            }
            other => panic!("{name}: no check for {other}"),
        }
    }
    let root = root.unwrap_or_else(|| panic!("{name}: no root filesystem"));
    check_root(name, &root, scratch);
    std::fs::remove_file(&raw).unwrap();
}

/// The OVA: upstream's three members, a manifest whose SHA-256 sums hold, an OVF naming the
/// disk, and the disk a streamOptimized VMDK checked as any disk.
fn check_ova(name: &str, ova: &Path, scratch: &Path) {
    let listing = sh("tar", &["-tf", ova.to_str().unwrap()]);
    let members: Vec<&str> = listing.lines().collect();
    assert_eq!(
        members,
        ["core.ovf", "core.mf", "core-disk1.vmdk"],
        "{name}"
    );
    let dir = scratch.join("ova");
    std::fs::create_dir_all(&dir).unwrap();
    sh(
        "tar",
        &["-xf", ova.to_str().unwrap(), "-C", dir.to_str().unwrap()],
    );
    let manifest = std::fs::read_to_string(dir.join("core.mf")).unwrap();
    for line in manifest.lines() {
        // SHA256(file)= hex
        let (file, sum) = line
            .strip_prefix("SHA256(")
            .and_then(|l| l.split_once(")= "))
            .unwrap_or_else(|| panic!("{name}: manifest line {line}"));
        let actual = sh("sha256sum", &[dir.join(file).to_str().unwrap()]);
        assert!(actual.starts_with(sum), "{name}: {file}'s sum");
    }
    assert!(
        std::fs::read_to_string(dir.join("core.ovf"))
            .unwrap()
            .contains("core-disk1.vmdk"),
        "{name}: the OVF does not name the disk"
    );
    check_disk(name, &dir.join("core-disk1.vmdk"), "vmdk", scratch);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Builds every other x86_64 config (BUILT_AND_CHECKED), unchanged, one after the other from
/// the realistic distribution, and checks each artifact with tools other than kiln: format
/// (qemu-img), partition table against the config (sfdisk), filesystems (e2fsck, fsck.vfat),
/// hostname, users, fstab, SELinux, kernel command line, and `rpm -qa` = the resolved set.
/// The package-root cache is off: no two of these configs install the same root (packages,
/// hostname or users differ), so it would only add a copy of each root.
#[test]
fn every_other_x86_64_config_builds_and_its_artifacts_check() {
    let Some(repo) = common::distro_repo() else {
        return;
    };
    let started = std::time::Instant::now();
    for name in BUILT_AND_CHECKED {
        let build_started = std::time::Instant::now();
        let work = tempfile::tempdir().unwrap();
        let o = kiln()
            .args(common::build_args(
                &upstream_config(name),
                &repo,
                work.path(),
            ))
            .arg("--no-cache")
            .env("SOURCE_DATE_EPOCH", "1767225600")
            .output()
            .unwrap();
        assert!(o.status.success(), "building {name}: {}", stderr(&o));
        let images = work.path().join("images");
        let scratch = work.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        match name {
            "core-container-builder" => {
                let root = container_root(name, &images, work.path());
                assert_eq!(rpm_qa(&root), resolved(name), "{name}");
                for tool in [
                    "usr/bin/createrepo_c",
                    "usr/bin/python3",
                    "usr/sbin/useradd",
                ] {
                    assert!(root.join(tool).exists(), "{name}: no /{tool}");
                }
            }
            "swuvm" => {
                // A partition artifact: the root filesystem alone, gzip-compressed.
                let gz = images.join("swuvm.ext4.gz");
                let ext4 = scratch.join("swuvm.ext4");
                let out = std::fs::File::create(&ext4).unwrap();
                let status = std::process::Command::new("gzip")
                    .arg("-dc")
                    .arg(&gz)
                    .stdout(out)
                    .status()
                    .unwrap();
                assert!(status.success(), "{name}: gzip -d");
                let root = Ext4::at(&ext4, 0);
                check_root(name, &root, &scratch);
            }
            "core-ova" => check_ova(name, &images.join("core.ova"), &scratch),
            "baremetal" => check_disk(name, &images.join("core.vhdx"), "vhdx", &scratch),
            _ => {
                let vhd = images.join("core.vhd");
                // Azure's rules: a fixed VHD of a whole number of MiB.
                sh(
                    env!("CARGO_BIN_EXE_kiln"),
                    &["verify", "--azure", vhd.to_str().unwrap()],
                );
                check_disk(name, &vhd, "vpc", &scratch);
            }
        }
        eprintln!(
            "{name}: built and checked in {:.0?}",
            build_started.elapsed()
        );
    }
    eprintln!("all built and checked in {:.0?}", started.elapsed());
}
