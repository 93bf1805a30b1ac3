//! The compose stage: a config's image built from local repositories (imager's stage): the
//! root filesystem of a rootfs config, or the disk of a disk config (kiln-imager).

use crate::error::{Error, ErrorKind};
use crate::event::{from_line, staged, Event, Stage};
use crate::validate::Validated;
use kiln_compose::install::PackageFile;
use kiln_compose::rootfs::{populate, Inputs};
use kiln_formats::ident::Identity;
use kiln_solve::solve::{resolve, Options as SolveOptions, Request};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// What to compose from and where.
#[derive(Debug, Clone)]
pub struct ComposeRequest {
    /// Local package sources: directories with `repodata/` or of RPM files; earlier ones are
    /// preferred on equal versions.
    pub repos: Vec<PathBuf>,
    /// `<DIR>/rootfs` for a rootfs config (it must not exist yet), `<DIR>/disk0.raw` (and
    /// `disk0.partition<i>.raw` for ext4 partition artifacts) for a disk config.
    pub output_dir: PathBuf,
    /// Leave out Recommends and Supplements.
    pub no_weak_deps: bool,
    /// BUILD_NUMBER written to /etc/image-id.
    pub build_number: String,
    pub sandbox: SandboxOptions,
    /// `--repo-snapshot-time`: written into the image's tdnf.conf as upstream's imager does.
    pub repo_snapshot_time: Option<u64>,
    /// Install onto the config's TargetDisk (a block device) instead of making `disk0.raw`
    /// (imager `--live-install`, run by the ISO's installer); `output_dir` is the work folder.
    pub live_install: bool,
    /// The incremental cache's folder (see [`crate::cache`]); `None`: packages are always
    /// installed.
    pub package_cache: Option<PathBuf>,
}

/// How programs run for the image (rpm scriptlets, scripts, setfiles, grub2-mkconfig): always in
/// kiln's build sandbox (docs/security.md).
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Stop a step that runs longer than this many seconds, with every process it started.
    pub script_timeout: u64,
    /// Give scripts and scriptlets the build host's network.
    pub network: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            script_timeout: 3600,
            network: false,
        }
    }
}

impl SandboxOptions {
    pub fn run_options(&self) -> kiln_compose::RunOptions {
        kiln_compose::RunOptions {
            timeout: std::time::Duration::from_secs(self.script_timeout.max(1)),
            network: self.network,
        }
    }
}

/// Whether this process may install packages (rpm runs scriptlets in a chroot and sets owners).
fn require_root(what: &str) -> Result<(), String> {
    // /proc/self belongs to the process's effective user.
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
        != 0
    {
        return Err(format!(
            "{what} installs packages with rpm --root, which runs their scriptlets in a chroot \
             and sets file owners: run it as root"
        ));
    }
    Ok(())
}

/// What composing made: the output names and the packages installed.
#[derive(Debug, Clone)]
pub struct Composed {
    pub outputs: Vec<String>,
    pub packages: Vec<kiln_repo::Package>,
    /// Whether the package root came from the cache (`None`: no cache was asked for).
    pub package_root: Option<crate::cache::Outcome>,
}

/// The compose stage: the first SystemConfig of the config composed from `req.repos` into
/// `req.output_dir`: a disk config's `disk0.raw` (and partition dumps), or a rootfs config's
/// `rootfs/`. The host programs it needs are checked first.
pub fn compose(
    req: &ComposeRequest,
    validated: &Validated,
    on_event: &mut dyn FnMut(Event),
) -> Result<Composed, Error> {
    let composed = staged(STAGE, on_event, |on_event| {
        crate::host::require(&crate::host::compose_tools(validated.config()), STAGE)?;
        compose_quietly(req, validated, on_event)
    });
    kiln_formats::files::finish_removals();
    composed
}

const STAGE: Stage = Stage::Compose;

pub(crate) fn compose_quietly(
    req: &ComposeRequest,
    validated: &Validated,
    on_event: &mut dyn FnMut(Event),
) -> Result<Composed, Error> {
    let mut installs = 0;
    let mut transactions = 0;
    let mut tell = |line: &str, transactions: usize| {
        on_event(from_line(STAGE, line, transactions, &mut installs))
    };
    compose_lines(req, validated, &mut transactions, &mut tell).map_err(|e| {
        let kind = if e.contains("run it as root") {
            ErrorKind::Usage
        } else {
            ErrorKind::Compose
        };
        let mut error = Error::new(STAGE, kind, e);
        if let Some(p) = package_in(&error.message) {
            error.package = Some(p);
        }
        error
    })
}

/// The package a compose failure names (`… required by "x"`, `installing … x-1.0-1.x86_64`).
fn package_in(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("nothing provides ")?;
    Some(rest.split_whitespace().next()?.to_string())
}

fn compose_lines(
    args: &ComposeRequest,
    validated: &Validated,
    transactions: &mut usize,
    tell: &mut dyn FnMut(&str, usize),
) -> Result<Composed, String> {
    require_root("kiln compose")?;
    // rpm --root wants absolute paths.
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let args = &ComposeRequest {
        output_dir: absolute(&args.output_dir),
        repos: args.repos.iter().map(absolute).collect(),
        ..args.clone()
    };
    let kickstarted;
    let loaded = if crate::kickstart::is_kickstart(validated) {
        if !args.live_install {
            return Err(
                "IsKickStartBoot: a kickstart config's PreInstallScripts choose the partitions \
                 of the machine being installed, so it installs with imager --live-install \
                 (the ISO's installer), not into a disk image"
                    .into(),
            );
        }
        kickstarted = crate::kickstart::apply(validated, &args.output_dir, &mut |l| tell(l, 0))?;
        &kickstarted.loaded
    } else {
        &validated.loaded
    };
    let sc = loaded
        .config
        .system_configs
        .first()
        .ok_or("the config has no SystemConfigs")?;
    let disk_image = !loaded.config.disks.is_empty() && !sc.partition_settings.is_empty();
    let rootfs = args.output_dir.join("rootfs");
    if !disk_image && rootfs.exists() {
        return Err(format!(
            "output rootfs directory ({}) already exists",
            rootfs.display()
        ));
    }

    // Resolve.
    let pool = crate::plan::local_pool(&args.repos, &crate::plan::requested_paths(loaded))?;
    let options = SolveOptions {
        weak_deps: !args.no_weak_deps,
        ..SolveOptions::default()
    };
    let (requests, resolution) = crate::plan::resolve_config(loaded, &pool, &options)?;
    // Sources are named by their directories.
    let source_dir = |id| PathBuf::from(&pool.source(id).name);
    let files: Vec<PackageFile> = resolution
        .packages
        .iter()
        .map(|&id| PackageFile {
            name: pool.package(id).name.clone(),
            path: source_dir(id).join(&pool.package(id).location),
        })
        .collect();
    // shadow-utils and what it needs go in before the users are added, as upstream does.
    let early: Vec<String> = if sc.users.is_empty() && sc.groups.is_empty() {
        Vec::new()
    } else {
        let shadow = [Request::new("shadow-utils", None, "Users")];
        match resolve(&pool, &shadow, &options) {
            Ok(r) => r
                .packages
                .iter()
                .map(|&id| pool.package(id).name.clone())
                .collect(),
            Err(_) => {
                return Err(
                    "shadow-utils package must be added to the image's package lists when setting users or groups".into(),
                )
            }
        }
    };
    let early: Vec<&str> = early.iter().map(String::as_str).collect();
    *transactions = kiln_compose::install::stages(&files, &early).len();
    let count = *transactions;
    let report = &mut |line: &str| tell(line, count);
    let installed: Vec<kiln_repo::Package> = resolution
        .packages
        .iter()
        .map(|&id| pool.package(id).clone())
        .collect();
    report(&format!(
        "resolved {} requested packages to {} packages",
        requests.len(),
        files.len()
    ));

    // Seeded by the SystemConfig too: two images built with one SOURCE_DATE_EPOCH do not share
    // filesystem UUIDs (a machine with both disks attached must tell them apart).
    let identity = Identity::from_env(&format!("kiln compose {}", sc.name));
    std::fs::create_dir_all(&args.output_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.output_dir.display()))?;
    crate::workdirs::sweep(&args.output_dir, report)?;
    let cache = args
        .package_cache
        .as_ref()
        .map(crate::cache::PackageRoots::new);
    let result = (|| -> Result<Vec<String>, String> {
        let inputs = Inputs {
            system: sc,
            packages: &files,
            early: &early,
            base_dir: &loaded.base_dir,
            identity: &identity,
            build_number: &args.build_number,
            fstab: None,
            run: args.sandbox.run_options(),
            repo_snapshot_time: args.repo_snapshot_time,
            // A disk image's encrypted root is set up by kiln-imager.
            encryption: None,
            overlay_mounts: &[],
            package_cache: cache
                .as_ref()
                .map(|c| c as &dyn kiln_compose::package_root::PackageRootCache),
        };
        if args.live_install && !disk_image {
            return Err(
                "--live-install needs a config with Disks, PartitionSettings and a \
                        TargetDisk of Type path"
                    .into(),
            );
        }
        if disk_image {
            // GRUB's BIOS boot code comes from the grub2-pc package, fetched as build tooling.
            let grub_pc = pool
                .by_name("grub2-pc")
                .into_iter()
                .next()
                .map(|id| source_dir(id).join(&pool.package(id).location));
            let req = kiln_imager::Request {
                config: &loaded.config,
                root: inputs,
                grub_pc: grub_pc.as_deref(),
            };
            if args.live_install {
                return crate::live::install_onto_target(
                    &req,
                    &installed,
                    &args.output_dir,
                    report,
                );
            }
            // The staged root is a work folder's, removed at the end: a cached package root
            // can be an overlay of its entry instead of a copy.
            if let Some(cache) = &cache {
                cache.restore_as_overlay();
            }
            return build_disk_outputs(&req, &args.output_dir, cache.as_ref(), report);
        }

        // Populate a temporary folder beside it, then give it its final name (dropped: removed).
        let staging = kiln_formats::files::TempDir::create(&rootfs).map_err(|e| {
            format!(
                "cannot create a folder in {}: {e}",
                args.output_dir.display()
            )
        })?;
        populate(staging.path(), &inputs, report).map_err(|e| e.to_string())?;
        staging
            .persist(&rootfs)
            .map_err(|e| format!("{}: {e}", rootfs.display()))?;
        Ok(vec!["rootfs".to_string()])
    })();
    if let Some(cache) = &cache {
        for note in cache.take_notes() {
            report(&note);
        }
    }
    Ok(Composed {
        outputs: result.map_err(|e| format!("composing {}: {e}", sc.name))?,
        packages: installed,
        package_root: cache.and_then(|c| c.outcome()),
    })
}

/// Builds a disk config's image in a temporary work folder beside the outputs and moves out what
/// upstream's imager leaves: `disk0.raw` (when the disk has Artifacts), and per partition
/// artifact `disk0.partition<i>.raw` (`ext4`), `.diff` (the overlay's changes, with
/// OverlayBaseImage) or `.rdiff` (an rdiff delta from RdiffBaseImage). Returns the output names.
fn build_disk_outputs(
    req: &kiln_imager::Request,
    out: &std::path::Path,
    cache: Option<&crate::cache::PackageRoots>,
    report: &mut dyn FnMut(&str),
) -> Result<Vec<String>, String> {
    let disk = &req.config.disks[0];
    // A temporary work folder beside the outputs (removed when dropped).
    let work = kiln_formats::files::TempDir::create(&out.join("build"))
        .map_err(|e| format!("cannot create a folder in {}: {e}", out.display()))?;
    let result = (|| {
        let built = kiln_imager::build_disk(req, work.path(), report);
        // The staged root is read no more: a cached root's overlay goes before the work
        // folder's removal (which would refuse a mount point in it).
        if let Err(e) = cache.map_or(Ok(()), |c| c.release()) {
            report(&format!("warning: {e}"));
        }
        let built = built.map_err(|e| e.to_string())?;
        let mut outputs = Vec::new();
        for p in &built.partitions {
            let setting = req.root.system.setting(&p.id);
            let types: Vec<&str> = disk.partitions[p.index]
                .artifacts
                .iter()
                .map(|a| a.ty.as_str())
                .collect();
            if types.contains(&"ext4") {
                let name = format!("disk0.partition{}.raw", p.index);
                kiln_imager::dump_partition(&built.disk, p, &out.join(&name))
                    .map_err(|e| format!("{name}: {e}"))?;
                outputs.push(name);
            }
            if types.contains(&"diff") {
                let name = format!("disk0.partition{}.diff", p.index);
                let diff = p.diff.as_ref().ok_or_else(|| {
                    format!(
                        "partition {} ({}): a diff artifact is the overlay of a diff-disk build: \
                         its PartitionSetting needs an OverlayBaseImage",
                        p.index, p.id
                    )
                })?;
                std::fs::rename(diff, out.join(&name)).map_err(|e| format!("{name}: {e}"))?;
                outputs.push(name);
            }
            if types.contains(&"rdiff") {
                let name = format!("disk0.partition{}.rdiff", p.index);
                let base = setting
                    .map(|s| s.rdiff_base_image.as_str())
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "partition {} ({}): an rdiff artifact needs its PartitionSetting's \
                             RdiffBaseImage (the image the delta is taken from)",
                            p.index, p.id
                        )
                    })?;
                kiln_imager::rdiff_partition(
                    &built.disk,
                    p,
                    std::path::Path::new(base),
                    &out.join(&name),
                    work.path(),
                )
                .map_err(|e| format!("{name}: {e}"))?;
                outputs.push(name);
            }
        }
        if disk.artifacts.is_some() {
            std::fs::rename(&built.disk, out.join("disk0.raw"))
                .map_err(|e| format!("disk0.raw: {e}"))?;
            outputs.push("disk0.raw".to_string());
        }
        Ok(outputs)
    })();
    // The staged root (thousands of files) is removed while the next step runs.
    work.remove_in_background();
    result
}
