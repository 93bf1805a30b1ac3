//! `kiln iso`: a config's ISO installer through [`kiln_build::iso`] — the installer initrd
//! built (or given), the config's packages fetched, isomaker — as upstream's `make iso`.

use crate::cli::Global;
use crate::render::Verbosity;
use crate::sources::{ConfigArg, JsonArg, SourceArgs};
use clap::Args;
use kiln_build::IsoBuildRequest;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct IsoArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    sources: SourceArgs,
    /// The installer installs without asking, onto the config's TargetDisk
    /// (`config/unattended_config.json`; upstream's UNATTENDED_INSTALLER=y).
    #[arg(long)]
    unattended_install: bool,
    /// A ready installer initrd (upstream's iso-initrd.img); without it one is built from
    /// --initrd-config with the same package sources.
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// The installer initrd's config (upstream's resources/imageconfigs/iso_initrd.json).
    #[arg(
        long,
        value_name = "CONFIG",
        default_value = "resources/imageconfigs/iso_initrd.json"
    )]
    initrd_config: PathBuf,
    /// Where the ISO goes (default: out/images/<config name>).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Work directory: the fetched packages and the ISO's staging tree (default:
    /// out/build/<config name>).
    #[arg(long, value_name = "DIR")]
    build_dir: Option<PathBuf>,
    /// Where build logs go.
    #[arg(long, value_name = "DIR", default_value = "out/logs")]
    log_dir: PathBuf,
    /// In the ISO's name: <config>-<version><tag>.iso (upstream's RELEASE_VERSION).
    #[arg(long, value_name = "VERSION", default_value = "")]
    release_version: String,
    /// In the ISO's name, right after the release version (upstream's IMAGE_TAG).
    #[arg(long, value_name = "TAG", default_value = "")]
    image_tag: String,
    /// Added to the installer kernel's command line in the ISO's boot menus (repeatable; kiln's
    /// addition), e.g. `kiln.target-disk=smallest` to choose the target disk on the machine.
    #[arg(long = "kernel-arg", value_name = "ARG")]
    kernel_args: Vec<String>,
    #[command(flatten)]
    output: JsonArg,
}

impl IsoArgs {
    /// Building the initrd installs packages: root (or kiln's user namespace) is needed then.
    pub fn needs_root(&self) -> bool {
        self.initrd.is_none()
    }

    fn request(&self) -> IsoBuildRequest {
        IsoBuildRequest {
            base_dir: self.config.base_dir(),
            initrd: self.initrd.clone(),
            initrd_config: self.initrd_config.clone(),
            output_dir: self.output_dir.clone(),
            build_dir: self.build_dir.clone(),
            log_dir: self.log_dir.clone(),
            release_version: self.release_version.clone(),
            image_tag: self.image_tag.clone(),
            unattended: self.unattended_install,
            kernel_args: self.kernel_args.clone(),
            ..IsoBuildRequest::new(self.config.path(), self.sources.options())
        }
    }
}

pub fn run(args: IsoArgs, global: Global) -> ExitCode {
    let req = args.request();
    let mut r = global.renderer(args.output.json);
    let result = kiln_build::iso(&req, &mut r.sink());
    let context = |stage| format!("making the ISO failed at the {stage} step: ");
    r.conclude(result, context, |made| {
        if args.output.json {
            let result = serde_json::json!({
                "event": "result",
                "iso": made.iso.display().to_string(),
                "size": made.size,
                "packages": made.rpms,
            });
            println!("{result}");
        } else {
            if global.verbosity != Verbosity::Quiet {
                eprintln!(
                    "built {} ({} MB, {} packages)",
                    made.iso.display(),
                    made.size / 1_000_000,
                    made.rpms
                );
            }
            println!("{}", made.iso.display());
        }
    })
}
