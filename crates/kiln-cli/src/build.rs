//! `kiln build`: a config's image end to end through [`kiln_build::build`] — validate, fetch,
//! compose, roast — as upstream's `make image` runs imageconfigvalidator, imagepkgfetcher,
//! imager and roast; each step's time at the end and every line also in the build log.

use crate::cli::Global;
use crate::render::Verbosity;
use crate::sources::{ConfigArg, JsonArg, SandboxArgs, SourceArgs};
use clap::Args;
use kiln_build::BuildRequest;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    sources: SourceArgs,
    /// Where the artifacts go (default: out/images/<config name>). Locked while building
    /// (.kiln-lock); artifacts are made in a temporary folder inside it and renamed into it.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Work directory: the fetched packages (package_repo/, image_deps.json) and imager's
    /// output (default: out/build/<config name>, upstream's build/imagegen/<config>). It must
    /// be new, empty or one kiln made (it carries .kiln-build-dir); locked while building.
    #[arg(long, value_name = "DIR")]
    build_dir: Option<PathBuf>,
    /// When another kiln builds into the same folders, wait for it instead of failing.
    #[arg(long)]
    wait_lock: bool,
    /// Where the build log goes (<config name>.log).
    #[arg(long, value_name = "DIR", default_value = "out/logs")]
    log_dir: PathBuf,
    /// Appended to artifact names as -<version> (upstream's RELEASE_VERSION).
    #[arg(long, value_name = "VERSION", default_value = "")]
    release_version: String,
    /// Appended to artifact names as -<tag> (upstream's IMAGE_TAG).
    #[arg(long, value_name = "TAG", default_value = "")]
    image_tag: String,
    /// BUILD_NUMBER written to /etc/image-id (upstream's BUILD_ID; `local` when empty).
    #[arg(long, value_name = "N", default_value = "")]
    build_number: String,
    /// Artifacts converted in parallel.
    #[arg(long, value_name = "N", default_value_t = 10)]
    workers: usize,
    /// Build everything anew: install the packages even when the package-root cache has them,
    /// and make the artifacts even when they are up to date.
    #[arg(long)]
    no_cache: bool,
    /// The incremental cache: installed package roots, keyed by the packages and the settings
    /// that change their install (docs/cache.md).
    #[arg(long, value_name = "DIR", default_value = kiln_build::cache::DEFAULT_DIR)]
    package_cache: PathBuf,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    output: JsonArg,
}

impl BuildArgs {
    fn request(&self) -> BuildRequest {
        BuildRequest {
            base_dir: self.config.base_dir(),
            output_dir: self.output_dir.clone(),
            build_dir: self.build_dir.clone(),
            wait_lock: self.wait_lock,
            log_dir: self.log_dir.clone(),
            release_version: self.release_version.clone(),
            image_tag: self.image_tag.clone(),
            build_number: self.build_number.clone(),
            workers: self.workers,
            sandbox: self.sandbox.options(),
            package_cache: (!self.no_cache).then(|| self.package_cache.clone()),
            ..BuildRequest::new(self.config.path(), self.sources.options())
        }
    }
}

pub fn run(args: BuildArgs, global: Global) -> ExitCode {
    let req = args.request();
    let mut r = global.renderer(args.output.json);
    let result = kiln_build::build(&req, &mut r.sink());
    let (name, _, _) = req.folders();
    let context = |stage| format!("building {name} failed at the {stage} step: ");
    r.conclude(result, context, |built| {
        if args.output.json {
            let result = serde_json::json!({
                "event": "result",
                "name": built.name,
                "output_dir": built.output_dir.display().to_string(),
                "artifacts": built.artifacts,
                "log": built.log.display().to_string(),
                "up_to_date": built.up_to_date,
                "package_root": built.package_root.as_ref().map(|o| match o {
                    kiln_build::cache::Outcome::Cached(_) => "cached",
                    kiln_build::cache::Outcome::Installed(_) => "installed",
                }),
            });
            println!("{result}");
        } else {
            if global.verbosity != Verbosity::Quiet {
                let what = if built.up_to_date {
                    "up to date"
                } else {
                    "built"
                };
                eprintln!("{what} {}: {}", built.name, built.artifacts.join(", "));
            }
            println!("{}", built.output_dir.display());
        }
    })
}
