//! `kiln why`: the chain of requirements that pulls a package into a config's image.

use crate::cli::Global;
use clap::Args;
use kiln_build::ValidateRequest;
use kiln_solve::solve::Options;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct WhyArgs {
    /// The package name (as in `kiln resolve`'s output, without version).
    #[arg(value_name = "PACKAGE")]
    package: String,
    /// The image config (JSON); its first SystemConfig is resolved.
    #[arg(long, value_name = "CONFIG")]
    config: PathBuf,
    /// A local package source: a directory with `repodata/` or of RPM files. Repeatable.
    #[arg(long = "repo", value_name = "DIR", required = true)]
    repos: Vec<PathBuf>,
    /// Resolve without Recommends and Supplements.
    #[arg(long)]
    no_weak_deps: bool,
}

pub fn run(args: WhyArgs, global: Global) -> ExitCode {
    let mut r = global.renderer(false);
    let validated = kiln_build::validate(&ValidateRequest::new(&args.config), &mut r.sink());
    let validated = match validated {
        Ok(v) => v,
        Err(e) => {
            r.error(&e, "");
            return ExitCode::from(1);
        }
    };
    let result = (|| {
        let loaded = &validated.loaded;
        let pool = kiln_build::local_pool(&args.repos, &kiln_build::requested_paths(loaded))?;
        let options = Options {
            weak_deps: !args.no_weak_deps,
            ..Options::default()
        };
        let (requests, resolution) = kiln_build::resolve_config(loaded, &pool, &options)?;
        let id = resolution
            .packages
            .iter()
            .copied()
            .find(|&id| pool.package(id).name == args.package)
            .ok_or_else(|| {
                format!(
                    "{} is not in the image of {} ({} packages resolved)",
                    args.package,
                    args.config.display(),
                    resolution.packages.len()
                )
            })?;
        Ok::<_, String>(resolution.why(&pool, &requests, id))
    })();
    match result {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
