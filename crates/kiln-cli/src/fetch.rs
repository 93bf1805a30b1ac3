//! `kiln fetch`: every package a config's image needs, resolved with its dependencies and copied
//! or downloaded into a flat local repository with `repodata/`, as upstream's imagepkgfetcher
//! leaves it for the imager ([`kiln_build::fetch`]).

use crate::cli::Global;
use crate::sources::{ConfigArg, JsonArg, SourceArgs};
use clap::Args;
use kiln_build::FetchRequest;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The image config (JSON). The packages of every SystemConfig are fetched.
    #[command(flatten)]
    config: ConfigArg,
    /// The local repository to fill: RPMs and `repodata/`. RPMs already there that verify
    /// are kept (and serve as a cache tier).
    #[arg(long, value_name = "DIR")]
    output_dir: PathBuf,
    #[command(flatten)]
    sources: SourceArgs,
    /// Fetch exactly the packages of this summary file (written by --output-summary-file) and
    /// nothing else, to reproduce an earlier package set.
    #[arg(long, value_name = "FILE")]
    input_summary_file: Option<PathBuf>,
    /// Write the fetched package set as a summary file (upstream's image_deps.json).
    #[arg(long, value_name = "FILE")]
    output_summary_file: Option<PathBuf>,
    /// Check every fetched RPM's signature against the --gpg-key keys.
    #[arg(long, requires = "gpg_keys")]
    enable_gpg_check: bool,
    /// A public key (ASCII-armored) for --enable-gpg-check. Repeatable.
    #[arg(long = "gpg-key", value_name = "FILE")]
    gpg_keys: Vec<PathBuf>,
    /// Downloads at a time.
    #[arg(long, default_value_t = 4, value_name = "N")]
    jobs: usize,
    #[command(flatten)]
    output: JsonArg,
}

pub fn run(args: FetchArgs, global: Global) -> ExitCode {
    let started = Instant::now();
    let validate = args.config.validate_request();
    let req = FetchRequest {
        input_summary_file: args.input_summary_file.clone(),
        output_summary_file: args.output_summary_file.clone(),
        enable_gpg_check: args.enable_gpg_check,
        gpg_keys: args.gpg_keys.clone(),
        jobs: args.jobs,
        ..FetchRequest::new(&args.output_dir, args.sources.options())
    };
    let mut r = global.renderer(args.output.json);
    let result = {
        let mut sink = r.sink();
        kiln_build::validate(&validate, &mut sink)
            .and_then(|validated| kiln_build::fetch(&req, &validated, &mut sink))
    };
    r.finish();
    match result {
        Ok(f) => {
            if args.output.json {
                let result = serde_json::json!({
                    "event": "result",
                    "packages": f.packages.iter().map(|p| p.nevra()).collect::<Vec<_>>(),
                    "output_dir": args.output_dir.display().to_string(),
                    "sources": f.tiers,
                    "downloaded": f.downloaded,
                    "copied": f.copied,
                    "kept": f.kept,
                });
                println!("{result}");
            } else {
                eprintln!(
                    "kiln: {} in {:.1}s",
                    f.describe(&args.output_dir),
                    started.elapsed().as_secs_f64()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            r.error(&e, "");
            ExitCode::from(1)
        }
    }
}
