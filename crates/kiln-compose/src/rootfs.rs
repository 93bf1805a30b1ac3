//! A system config's root filesystem populated in a staging directory, step by step in
//! upstream's order (SPEC §3.5, then §3.3 steps 7 and 9): the rpm database; `filesystem`;
//! `shadow-utils` and what it needs; groups and users; the other packages (initramfs last) —
//! the package root, which an incremental cache may give back instead ([`crate::package_root`]);
//! AdditionalFiles; machine-id; manifests; PostInstallScripts; the tdnf cache; RemoveRpmDb;
//! `/etc/image-id`; the rpm macros; FinalizeImageScripts.

use crate::dracut;
use crate::install::{self, PackageFile, RpmSettings};
use crate::luks::{self, EncryptedRoot};
use crate::package_root::{self, PackageRootCache};
use crate::{files, finish, system, users, RunOptions};
use kiln_config::model::SystemConfig;
use kiln_formats::ident::Identity;
use kiln_sandbox::ImageRoot;
use std::path::Path;

/// Why populating the root failed: the step, and what went wrong in it.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct Error {
    pub step: &'static str,
    pub message: String,
}

/// Turns an error into the [`Error`] of `step`.
pub fn step<E: std::fmt::Display>(step: &'static str) -> impl FnOnce(E) -> Error {
    move |e| Error {
        step,
        message: e.to_string(),
    }
}

/// What populating needs besides the config.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    pub system: &'a SystemConfig,
    /// The resolved packages, as files.
    pub packages: &'a [PackageFile],
    /// Names installed before the users are added (`shadow-utils` and its dependencies).
    pub early: &'a [&'a str],
    /// The config file's directory (SSH key paths are relative to it when not resolved).
    pub base_dir: &'a Path,
    pub identity: &'a Identity,
    /// `BUILD_NUMBER` of `/etc/image-id` (`local` when empty).
    pub build_number: &'a str,
    /// For a disk image: the lines for `/etc/fstab`. Disk images (only) also get
    /// `/etc/hostname` and the `/etc/hosts` entry, as upstream writes them.
    pub fstab: Option<&'a str>,
    /// How rpm, scripts and setfiles run (timeout, network).
    pub run: RunOptions,
    /// `--repo-snapshot-time`: written into the image's tdnf.conf (`snapshottime=`), so the
    /// running system sees the same snapshot.
    pub repo_snapshot_time: Option<u64>,
    /// A disk image's encrypted root (`Encryption.Enable`): the key file, crypttab and the
    /// initramfs regenerated to unlock it, as upstream adds them (SPEC §3.4, §3.5).
    pub encryption: Option<&'a EncryptedRoot>,
    /// A diff-disk build's overlay mount points (`OverlayBaseImage`, SPEC §3.9): their base
    /// trees are already in the root, so `rpm --initdb` is skipped, and with `/` among them
    /// no hostname is written, as upstream does.
    pub overlay_mounts: &'a [&'a str],
    /// Where the package root is kept between builds (kiln build's incremental cache): a root
    /// installed before from the same packages and settings is restored instead of installed.
    pub package_cache: Option<&'a dyn PackageRootCache>,
}

/// Populates `root` (an existing, empty directory). `progress` hears each step's name as it
/// starts.
/// The output of programs run for the image reaches `progress` too, each line indented.
pub fn populate(root: &Path, inputs: &Inputs, progress: &mut dyn FnMut(&str)) -> Result<(), Error> {
    let sc = inputs.system;
    let run = &inputs.run;
    let settings = RpmSettings {
        exclude_docs: sc.disable_rpm_docs,
        install_langs: sc.override_rpm_locales.clone(),
    };
    // A diff-disk build's base already has some of the packages: tdnf leaves those alone.
    let mut packages = inputs.packages.to_vec();
    if !inputs.overlay_mounts.is_empty() {
        let installed =
            install::installed_names(root, &settings, run).map_err(step("installing packages"))?;
        packages.retain(|p| !installed.contains(&p.name));
        progress(&format!(
            "{} of the packages are in the base image already",
            inputs.packages.len() - packages.len()
        ));
    }
    let stages = install::stages(&packages, inputs.early);
    // A diff-disk build starts from its base tree: there is no package root to restore.
    let cache = inputs
        .package_cache
        .filter(|_| inputs.overlay_mounts.is_empty());
    match cache {
        None => install_packages(root, inputs, &settings, &stages, progress)?,
        Some(cache) => {
            let manifest = package_root::manifest(inputs, &settings, &stages)
                .map_err(step("package root cache"))?;
            match cache
                .restore(&manifest, root)
                .map_err(step("package root cache"))?
            {
                Some(how) => progress(&format!("package root: cached ({how})")),
                None => {
                    install_packages(root, inputs, &settings, &stages, progress)?;
                    progress("package root: installed");
                    if let Err(e) = cache.store(&manifest, root) {
                        progress(&format!("warning: the package root was not cached: {e}"));
                    }
                }
            }
        }
    }
    // Opened after the restore: a cached root may be an overlay mounted on `root`.
    let image = ImageRoot::open(root).map_err(step("staging"))?;
    let image = &image;
    if !sc.additional_files.is_empty() {
        progress("copying additional files");
        files::copy_additional_files(image, &sc.additional_files)
            .map_err(step("AdditionalFiles"))?;
    }
    if let Some(enc) = inputs.encryption {
        progress(&format!("writing the key file {}", luks::KEYFILE));
        luks::write_keyfile(image, enc).map_err(step("Encryption"))?;
    }
    if let Some(lines) = inputs.fstab {
        progress("writing /etc/hosts and /etc/fstab");
        system::add_hosts_entry(image, &sc.hostname).map_err(step("/etc/hosts"))?;
        system::append_fstab(image, lines).map_err(step("/etc/fstab"))?;
        if let Some(enc) = inputs.encryption {
            luks::write_crypttab(image, enc).map_err(step("/etc/crypttab"))?;
        }
    }
    progress("resetting machine-id");
    finish::reset_machine_state(image, sc.enable_systemd_firstboot).map_err(step("machine-id"))?;
    if inputs.encryption.is_some() {
        progress("regenerating the initramfs for the encrypted root (dracut)");
        let notes = luks::regenerate_initramfs(image, run, &mut output(progress))
            .map_err(step("Encryption"))?;
        for note in notes {
            progress(&note);
        }
    }
    if sc.remove_rpm_db {
        progress("writing the rpm manifests");
        finish::write_rpm_manifests(image, run, &mut output(progress))
            .map_err(step("RemoveRpmDb"))?;
    }
    if !sc.networks.is_empty() {
        progress("writing network files");
        for warning in system::write_networks(image, &sc.networks).map_err(step("Networks"))? {
            progress(&format!("warning: {warning}"));
        }
    }
    run_scripts(
        image,
        &sc.post_install_scripts,
        "PostInstallScripts",
        run,
        progress,
    )?;
    if !sc.preserve_tdnf_cache {
        finish::clean_tdnf_cache(image).map_err(step("tdnf cache"))?;
    }
    if sc.remove_rpm_db {
        finish::remove_rpm_db(image).map_err(step("RemoveRpmDb"))?;
    }
    progress("writing /etc/image-id");
    finish::write_image_id(image, inputs.build_number, inputs.identity)
        .map_err(step("image-id"))?;
    if let Some(t) = inputs.repo_snapshot_time {
        finish::add_tdnf_snapshot_time(image, t).map_err(step("tdnf.conf"))?;
    }
    settings
        .write_into_image(image)
        .map_err(step("rpm macros"))?;
    run_scripts(
        image,
        &sc.finalize_image_scripts,
        "FinalizeImageScripts",
        run,
        progress,
    )?;
    if !sc.remove_rpm_db {
        finish::settle_rpm_db(image).map_err(step("rpm database"))?;
    }
    // The image ships the packages' dracut configuration only.
    dracut::remove_build_conf(image).map_err(step("dracut"))?;
    if let Some(mode) = selinux_mode(sc) {
        progress(&format!("labelling the files for SELinux ({mode})"));
        let policy = system::set_selinux_mode(image, mode).map_err(step("SELinux"))?;
        finish::label_selinux(image, &policy, run, &mut output(progress))
            .map_err(step("SELinux"))?;
    }
    Ok(())
}

/// The rpm database, the packages in upstream's transactions, and the hostname, groups and
/// users upstream adds between them (SPEC §3.5 steps 1, 5–10): the package root.
fn install_packages(
    root: &Path,
    inputs: &Inputs,
    settings: &RpmSettings,
    stages: &[install::Stage],
    progress: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    let image = &ImageRoot::open(root).map_err(step("staging"))?;
    let run = &inputs.run;
    if inputs.overlay_mounts.is_empty() {
        progress("creating the rpm database");
        install::init_db(root, settings, run, &mut output(progress))
            .map_err(step("rpm database"))?;
    }
    let mut users_done = false;
    let installing: Vec<&PackageFile> = stages.iter().flat_map(|s| &s.packages).collect();
    let mut dracut_conf_done = !dracut::runs_in(image, &installing);
    for stage in stages {
        // After `filesystem` made /etc, before any package whose scriptlets run dracut.
        if !dracut_conf_done && stage.what != "filesystem" {
            progress(&format!(
                "telling dracut the image's disk for the build ({})",
                dracut::BUILD_CONF
            ));
            dracut::write_build_conf(image, inputs.fstab).map_err(step("dracut"))?;
            dracut_conf_done = true;
        }
        if !users_done && stage.what != "filesystem" && stage.what != "the first packages" {
            apply_users(image, inputs, progress)?;
            users_done = true;
        }
        progress(&format!(
            "installing {} ({} packages)",
            stage.what,
            stage.packages.len()
        ));
        install::install_stage(root, stage, settings, run, &mut output(progress))
            .map_err(step("installing packages"))?;
        if stage.what == "filesystem" && image.exists("/etc") {
            finish::seed_machine_id(image, inputs.identity).map_err(step("machine-id"))?;
        }
    }
    if !users_done {
        apply_users(image, inputs, progress)?;
    }
    // A disk image's times are clamped to the build's time at its end (kiln-imager); clamping
    // the package root's now too shows every later step the same root whether it was installed
    // or restored, and a restored overlay then copies up only what later steps change.
    if inputs.fstab.is_some() {
        finish::clamp_times(root, inputs.identity.unix_time()).map_err(step("timestamps"))?;
    }
    Ok(())
}

/// The SELINUX= value for the config's KernelCommandLine.SELinux, `None` when SELinux is off.
fn selinux_mode(sc: &SystemConfig) -> Option<&'static str> {
    use kiln_config::model::SELinux;
    match sc.kernel_command_line.selinux {
        SELinux::Off => None,
        SELinux::Enforcing | SELinux::ForceEnforcing => Some("enforcing"),
        SELinux::Permissive => Some("permissive"),
    }
}

/// Runs a config's scripts in order, each in the sandbox; `what` names the config entry.
fn run_scripts(
    image: &ImageRoot,
    scripts: &[kiln_config::model::InstallScript],
    what: &'static str,
    run: &RunOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    for script in scripts {
        progress(&format!("running {}", script.path));
        finish::run_script(
            image,
            Path::new(&script.path),
            &script.args,
            run,
            &mut output(progress),
        )
        .map_err(step(what))?;
    }
    Ok(())
}

/// A log for a program's output: each line handed to `progress`, indented.
fn output<'p>(progress: &'p mut dyn FnMut(&str)) -> impl FnMut(&str) + 'p {
    move |line: &str| progress(&format!("  | {line}"))
}

fn apply_users(
    root: &ImageRoot,
    inputs: &Inputs,
    progress: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    let sc = inputs.system;
    if inputs.fstab.is_some() && !inputs.overlay_mounts.contains(&"/") {
        progress("writing /etc/hostname");
        system::write_hostname(root, &sc.hostname).map_err(step("hostname"))?;
    }
    if sc.groups.is_empty() && sc.users.is_empty() {
        return Ok(());
    }
    progress("adding groups and users");
    users::apply(
        root,
        &sc.groups,
        &sc.users,
        inputs.base_dir,
        inputs.identity,
    )
    .map_err(step("Users"))
}
