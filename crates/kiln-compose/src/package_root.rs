//! The package root: the image root as the package install leaves it, before AdditionalFiles,
//! scripts, fstab, machine-id, image-id, SELinux labels or the boot configuration touch it —
//! what an incremental cache ([`PackageRootCache`], kept by kiln-build) can keep and give back.
//!
//! Upstream's order (SPEC §3.5) writes `/etc/hostname` (disk images) and adds the config's
//! groups and users *between* package transactions: after `filesystem` and `shadow-utils`,
//! before the rest, whose scriptlets then see them (a `useradd` in a `%pre` takes the next
//! free id after the config's users; a package shipping `/etc/hostname` as a config file
//! leaves an `.rpmnew`). So a package root is only the same as a cold build's when those
//! steps were the same too: the [`manifest`] that keys it names, besides the packages (each by
//! the SHA-256 of its file, in transaction order) and the rpm that installs them, the hostname,
//! groups, users and their SSH key files, the identity seed their password salts and
//! last-change day come from, and what dracut is told of the planned disk ([`crate::dracut`]). Changing scripts, AdditionalFiles, the kernel command line,
//! networks or anything else the install does not see keeps the cached root; changing users
//! or the hostname installs anew, as a cold build would.

use crate::install::{RpmSettings, Stage};
use crate::rootfs::Inputs;
use std::fmt::Write as _;
use std::path::Path;

/// Where package roots are kept between builds. `manifest` is what [`manifest`] wrote: equal
/// manifests mean equal roots.
pub trait PackageRootCache {
    /// Fills `root` (an empty directory) with the root kept for `manifest`, its owners, modes,
    /// times, extended attributes and hard links as they were, and says how, for the build's
    /// log (`copied`, `overlay`). `Ok(None)`: none is kept.
    fn restore(&self, manifest: &str, root: &Path) -> Result<Option<String>, String>;
    /// Keeps a copy of `root` for `manifest`.
    fn store(&self, manifest: &str, root: &Path) -> Result<(), String>;
}

/// Everything the package root of `inputs` depends on, one item a line: kiln's cache keys its
/// roots by this text (with the kiln binary that reads it). Reads every package file.
pub fn manifest(
    inputs: &Inputs,
    settings: &RpmSettings,
    stages: &[Stage],
) -> Result<String, String> {
    let sc = inputs.system;
    // Format 2: a disk image's package root has its times clamped to SOURCE_DATE_EPOCH.
    let mut m = String::from("kiln package root, format 2\n");
    let line = |m: &mut String, key: &str, value: &dyn std::fmt::Debug| {
        let _ = writeln!(m, "{key}: {value:?}");
    };
    line(&mut m, "rpm", &host_rpm_version());
    line(&mut m, "rpm settings", settings);
    line(&mut m, "network", &inputs.run.network);
    line(
        &mut m,
        "SOURCE_DATE_EPOCH",
        &std::env::var("SOURCE_DATE_EPOCH").ok(),
    );
    // A random identity (no SOURCE_DATE_EPOCH) makes every build different anyway: a kept
    // root is as good as a new one.
    let seed = (!inputs.identity.is_random()).then(|| hex(&inputs.identity.uuid("package root")));
    line(&mut m, "identity", &seed);
    line(&mut m, "system config", &sc.name);
    if inputs.fstab.is_some() {
        line(&mut m, "hostname", &sc.hostname);
    }
    // What dracut is told of the planned disk while the kernel's scriptlets run it.
    if inputs.packages.iter().any(|p| p.name == "dracut") {
        line(
            &mut m,
            "dracut build conf",
            &crate::dracut::build_conf(inputs.fstab),
        );
    }
    line(&mut m, "groups", &sc.groups);
    line(&mut m, "users", &sc.users);
    for user in &sc.users {
        for key in &user.ssh_pub_key_paths {
            let path = inputs.base_dir.join(key);
            let digest = digest_file(&path).unwrap_or_else(|e| format!("unreadable ({e})"));
            let _ = writeln!(m, "ssh key {}: {digest}", path.display());
        }
    }
    for stage in stages {
        let _ = writeln!(m, "transaction {}:", stage.what);
        for p in &stage.packages {
            let digest = digest_file(&p.path)
                .map_err(|e| format!("cannot read {}: {e}", p.path.display()))?;
            let _ = writeln!(m, "  {} {digest}", p.name);
        }
    }
    Ok(m)
}

/// The host's `rpm --version`: rpm writes the database and unpacks the payloads.
fn host_rpm_version() -> String {
    std::process::Command::new("rpm")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// The SHA-256 of a file, in hex.
pub fn digest_file(path: &Path) -> Result<String, String> {
    kiln_repo::Checksum::of_file("sha256", path).map_err(|e| e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::{stages, PackageFile};
    use kiln_config::model::{SystemConfig, User};
    use kiln_formats::ident::Identity;

    fn system() -> SystemConfig {
        SystemConfig {
            name: "s".into(),
            hostname: "h".into(),
            ..SystemConfig::default()
        }
    }

    /// The manifest of a system with these packages (name, file content).
    fn manifest_of(sc: &SystemConfig, packages: &[(&str, &[u8])], fstab: Option<&str>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PackageFile> = packages
            .iter()
            .map(|(name, content)| {
                let path = dir.path().join(format!("{name}.rpm"));
                std::fs::write(&path, content).unwrap();
                PackageFile {
                    name: name.to_string(),
                    path,
                }
            })
            .collect();
        let identity = Identity::seeded(b"test", 1_700_000_000);
        let inputs = Inputs {
            system: sc,
            packages: &files,
            early: &[],
            base_dir: dir.path(),
            identity: &identity,
            build_number: "",
            fstab,
            run: Default::default(),
            repo_snapshot_time: None,
            encryption: None,
            overlay_mounts: &[],
            package_cache: None,
        };
        manifest(&inputs, &RpmSettings::default(), &stages(&files, &[])).unwrap()
    }

    #[test]
    fn what_the_install_sees_changes_the_manifest_and_nothing_else_does() {
        let sc = system();
        let base = manifest_of(&sc, &[("filesystem", b"fs"), ("busybox", b"bb")], None);
        assert_eq!(
            base,
            manifest_of(&sc, &[("filesystem", b"fs"), ("busybox", b"bb")], None)
        );
        // A package's content.
        assert_ne!(
            base,
            manifest_of(&sc, &[("filesystem", b"fs"), ("busybox", b"bb2")], None)
        );
        // Users are added between transactions.
        let mut with_user = sc.clone();
        with_user.users.push(User {
            name: "alice".into(),
            ..User::default()
        });
        assert_ne!(
            base,
            manifest_of(
                &with_user,
                &[("filesystem", b"fs"), ("busybox", b"bb")],
                None
            )
        );
        // The hostname is written between transactions of a disk image only.
        let mut renamed = sc.clone();
        renamed.hostname = "other".into();
        let pkgs: &[(&str, &[u8])] = &[("filesystem", b"fs"), ("busybox", b"bb")];
        assert_eq!(base, manifest_of(&renamed, pkgs, None));
        assert_ne!(
            manifest_of(&sc, pkgs, Some("")),
            manifest_of(&renamed, pkgs, Some(""))
        );
        // Scripts, files and the kernel command line come after the install.
        let mut later = sc.clone();
        later
            .post_install_scripts
            .push(kiln_config::model::InstallScript {
                path: "/x.sh".into(),
                args: String::new(),
            });
        later.kernel_command_line.extra_command_line = "quiet".into();
        later
            .additional_files
            .insert("/a".into(), vec![Default::default()]);
        assert_eq!(base, manifest_of(&later, pkgs, None));
        // dracut runs in the install, told the planned root's filesystem.
        let with_dracut: &[(&str, &[u8])] = &[("filesystem", b"fs"), ("dracut", b"d")];
        let xfs = Some("UUID=a / xfs defaults 0 0\n");
        let ext4 = Some("UUID=a / ext4 defaults 0 0\n");
        assert_ne!(
            manifest_of(&sc, with_dracut, xfs),
            manifest_of(&sc, with_dracut, ext4)
        );
        assert_eq!(manifest_of(&sc, pkgs, xfs), manifest_of(&sc, pkgs, ext4));
    }
}
