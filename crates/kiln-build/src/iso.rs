//! ISO installers, as upstream's `make iso` makes them (SPEC §5): the installer initrd built from
//! its own config (`iso_initrd.json`, a rootfs with an `initrd` artifact), the config's packages
//! fetched into a local repository, then isomaker ([`kiln_iso::maker`]) stages upstream's ISO
//! tree and writes the ISO.
//!
//! ```text
//! make_iso(&IsoRequest, &Validated, on_event)   -> IsoMade   (isomaker: repo + initrd -> .iso)
//! iso(&IsoBuildRequest, on_event)               -> IsoMade   (validate, initrd, fetch, isomaker)
//! ```

use crate::build::{build, BuildRequest};
use crate::error::{Error, ErrorKind};
use crate::event::{staged, Event, Stage};
use crate::fetch::FetchRequest;
use crate::sources::SourceOptions;
use crate::validate::{config_name, ValidateRequest, Validated};
use kiln_formats::ident::Identity;
use kiln_iso::maker::{iso_file_name, BiosFiles, MakerRequest};
use std::path::{Path, PathBuf};

const STAGE: Stage = Stage::Iso;

/// isomaker's request (upstream's flags): a fetched repository and an initrd in, an ISO out.
#[derive(Debug, Clone)]
pub struct IsoRequest {
    /// The fetched package repository (`--iso-repo`): the ISO's `RPMS/`.
    pub iso_repo: PathBuf,
    /// The installer initrd (`--initrd-path`): upstream's `iso-initrd.img`.
    pub initrd: PathBuf,
    /// Where the ISO tree is staged (`--build-dir`); recreated, and removed at the end.
    pub build_dir: PathBuf,
    /// Where the ISO goes (`--output-dir`).
    pub output_dir: PathBuf,
    /// `-<release-version>` in the ISO's name.
    pub release_version: String,
    /// Appended to the release version in the ISO's name (no hyphen, as upstream).
    pub image_tag: String,
    /// `config/unattended_config.json` (the installer installs without asking).
    pub unattended: bool,
    /// Written to `config/repo-snapshot-time.txt`.
    pub repo_snapshot_time: Option<u64>,
    /// Added to the installer kernel's command line (kiln's `--kernel-arg`).
    pub kernel_args: Vec<String>,
}

/// What isomaker made.
#[derive(Debug, Clone)]
pub struct IsoMade {
    pub iso: PathBuf,
    pub size: u64,
    /// Packages in `RPMS/`.
    pub rpms: usize,
    /// Files the config refers to, copied into `config/`.
    pub config_files: usize,
}

/// Where the host's syslinux files are (Debian `isolinux`, `syslinux-common`).
const ISOLINUX_BIN: &str = "/usr/lib/ISOLINUX/isolinux.bin";
const ISOHDPFX_BIN: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";
const LDLINUX_C32: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";

/// The BIOS boot files isomaker puts in `isolinux/`, or the packages to install.
fn bios_files() -> Result<BiosFiles, Error> {
    let missing: Vec<&str> = [
        (ISOLINUX_BIN, "isolinux"),
        (ISOHDPFX_BIN, "isolinux"),
        (LDLINUX_C32, "syslinux-common"),
    ]
    .iter()
    .filter(|(p, _)| !Path::new(p).is_file())
    .map(|(_, pkg)| *pkg)
    .collect();
    if !missing.is_empty() {
        let mut pkgs = missing.clone();
        pkgs.dedup();
        return Err(Error::new(
            STAGE,
            ErrorKind::MissingTool,
            format!(
                "the ISO's BIOS boot files (isolinux.bin, isohdpfx.bin, ldlinux.c32) are not on \
                 this host: {} missing",
                pkgs.join(" and ")
            ),
        )
        .help(format!(
            "apt-get install {} (or scripts/install-host-deps.sh build)",
            pkgs.join(" ")
        )));
    }
    Ok(BiosFiles {
        isolinux_bin: ISOLINUX_BIN.into(),
        ldlinux_c32: LDLINUX_C32.into(),
        isohybrid_mbr: Some(ISOHDPFX_BIN.into()),
    })
}

/// isomaker: the ISO of `validated` from `req.iso_repo` and `req.initrd`, at
/// `<output_dir>/<config>[-<release><tag>].iso`. Written under a temporary name and renamed.
pub fn make_iso(
    req: &IsoRequest,
    validated: &Validated,
    on_event: &mut dyn FnMut(Event),
) -> Result<IsoMade, Error> {
    staged(STAGE, on_event, |on_event| {
        make_iso_quietly(req, validated, on_event)
    })
}

fn make_iso_quietly(
    req: &IsoRequest,
    validated: &Validated,
    on_event: &mut dyn FnMut(Event),
) -> Result<IsoMade, Error> {
    let usage = |m: String| Error::new(STAGE, ErrorKind::Usage, m);
    for (what, dir) in [("--iso-repo", &req.iso_repo)] {
        if !dir.is_dir() {
            return Err(usage(format!(
                "{what} {}: not an existing directory",
                dir.display()
            )));
        }
    }
    if !req.initrd.is_file() {
        return Err(usage(format!(
            "the installer initrd {} does not exist",
            req.initrd.display()
        ))
        .help("build it with `make installer-initrd` (kiln build resources/imageconfigs/iso_initrd.json)"));
    }
    let loaded = &validated.loaded;
    let name = iso_file_name(&loaded.config_path, &req.release_version, &req.image_tag);
    let maker = MakerRequest {
        config: loaded.config_path.clone(),
        base_dir: loaded.base_dir.clone(),
        initrd: req.initrd.clone(),
        iso_repo: req.iso_repo.clone(),
        unattended: req.unattended,
        repo_snapshot_time: req.repo_snapshot_time,
        bios: Some(bios_files()?),
        identity: Identity::from_env(&format!("kiln iso {name}")),
        kernel_args: req.kernel_args.clone(),
    };
    std::fs::create_dir_all(&req.output_dir).map_err(|e| {
        Error::new(
            STAGE,
            ErrorKind::Io,
            format!("cannot create {}: {e}", req.output_dir.display()),
        )
    })?;
    let iso = req.output_dir.join(&name);
    let mut say = |l: &str| {
        on_event(Event::Step {
            stage: STAGE,
            message: l.to_string(),
        })
    };
    let (staged, report) = kiln_iso::maker::make_iso(&maker, &req.build_dir, &iso, &mut say)
        .map_err(|e| {
            let kind = match e {
                kiln_iso::Error::Config(_) => ErrorKind::InvalidConfig,
                _ => ErrorKind::Artifact,
            };
            Error::new(STAGE, kind, e.to_string())
        })?;
    say(&format!(
        "{}: {} MB, {} packages, {} config files, kernel {}",
        iso.display(),
        report.size / 1_000_000,
        staged.rpms,
        staged.config_files,
        staged.kernel
    ));
    Ok(IsoMade {
        iso,
        size: report.size,
        rpms: staged.rpms,
        config_files: staged.config_files,
    })
}

/// The whole of `make iso`.
#[derive(Debug, Clone)]
pub struct IsoBuildRequest {
    pub config: PathBuf,
    pub base_dir: Option<PathBuf>,
    /// Where the config's packages (and the initrd's) come from.
    pub sources: SourceOptions,
    /// A ready installer initrd; without it, one is built from `initrd_config`.
    pub initrd: Option<PathBuf>,
    /// upstream's `resources/imageconfigs/iso_initrd.json` (kiln's copy).
    pub initrd_config: PathBuf,
    /// Where the ISO goes (default: out/images/<config name>).
    pub output_dir: Option<PathBuf>,
    /// The work folder (default: out/build/<config name>): package_repo/, the ISO's staging.
    pub build_dir: Option<PathBuf>,
    pub log_dir: PathBuf,
    pub release_version: String,
    pub image_tag: String,
    pub unattended: bool,
    /// Added to the installer kernel's command line, e.g. `kiln.target-disk=smallest`.
    pub kernel_args: Vec<String>,
}

impl IsoBuildRequest {
    pub fn new(config: impl Into<PathBuf>, sources: SourceOptions) -> IsoBuildRequest {
        IsoBuildRequest {
            config: config.into(),
            base_dir: None,
            sources,
            initrd: None,
            initrd_config: PathBuf::from("resources/imageconfigs/iso_initrd.json"),
            output_dir: None,
            build_dir: None,
            log_dir: PathBuf::from("out/logs"),
            release_version: String::new(),
            image_tag: String::new(),
            unattended: false,
            kernel_args: Vec::new(),
        }
    }
}

/// `make iso`: the config validated, the installer initrd built (unless given), the config's
/// packages fetched into `<build_dir>/package_repo`, and the ISO made in the output folder.
pub fn iso(req: &IsoBuildRequest, on_event: &mut dyn FnMut(Event)) -> Result<IsoMade, Error> {
    let name = config_name(&req.config);
    let output_dir = req
        .output_dir
        .clone()
        .unwrap_or_else(|| Path::new("out/images").join(&name));
    let build_dir = req
        .build_dir
        .clone()
        .unwrap_or_else(|| Path::new("out/build").join(&name));
    crate::workdirs::claim_build_dir(&build_dir, req.build_dir.is_none())
        .map_err(Error::of(Stage::Setup, ErrorKind::WorkFolder))?;
    let mut say = |l: &str| {
        on_event(Event::Step {
            stage: Stage::Setup,
            message: l.to_string(),
        })
    };
    let _locks = crate::workdirs::lock(&[&build_dir, &output_dir], false, &mut say)
        .map_err(Error::of(Stage::Setup, ErrorKind::WorkFolder))?;

    let validated = crate::validate::validate(
        &ValidateRequest {
            base_dir: req.base_dir.clone(),
            ..ValidateRequest::new(&req.config)
        },
        on_event,
    )?;

    let initrd = match &req.initrd {
        Some(p) => p.clone(),
        None => {
            on_event(Event::Step {
                stage: Stage::Setup,
                message: format!(
                    "building the installer initrd from {}",
                    req.initrd_config.display()
                ),
            });
            let built = build(
                &BuildRequest {
                    log_dir: req.log_dir.clone(),
                    ..BuildRequest::new(&req.initrd_config, req.sources.clone())
                },
                on_event,
            )?;
            // The initrd artifact (`<Name>.img`), kept beside its compressed form.
            let img = std::fs::read_dir(&built.output_dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|a| a.ends_with(".img"))
                .ok_or_else(|| {
                    Error::new(
                        Stage::Roast,
                        ErrorKind::Artifact,
                        format!(
                            "{} made no initrd artifact (an `initrd` Type in its Disks' \
                             Artifacts)",
                            req.initrd_config.display()
                        ),
                    )
                })?;
            built.output_dir.join(img)
        }
    };

    let package_repo = build_dir.join("package_repo");
    crate::fetch::fetch(
        &FetchRequest {
            output_summary_file: Some(build_dir.join("image_deps.json")),
            ..FetchRequest::new(&package_repo, req.sources.clone())
        },
        &validated,
        on_event,
    )?;

    make_iso(
        &IsoRequest {
            iso_repo: package_repo,
            initrd,
            build_dir: build_dir.join("workspace"),
            output_dir,
            release_version: req.release_version.clone(),
            image_tag: req.image_tag.clone(),
            unattended: req.unattended,
            repo_snapshot_time: req.sources.repo_snapshot_time,
            kernel_args: req.kernel_args.clone(),
        },
        &validated,
        on_event,
    )
}
