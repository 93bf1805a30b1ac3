//! `kiln compose`: a config's image built from local repositories (imager's stage) through
//! [`kiln_build::compose`]: the root filesystem of a rootfs config, or the disk of a disk config.

use crate::cli::Global;
use crate::sources::{ConfigArg, JsonArg, SandboxArgs};
use clap::Args;
use kiln_build::ComposeRequest;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct ComposeArgs {
    /// The image config (JSON). Its first SystemConfig is built, as upstream's imager does.
    #[command(flatten)]
    config: ConfigArg,
    /// A local package source: a directory with `repodata/` (e.g. out/sample-repo) or a
    /// directory of RPM files. Repeatable; earlier ones are preferred on equal versions.
    #[arg(long = "repo", value_name = "DIR", required = true)]
    repos: Vec<PathBuf>,
    /// Where the result goes: `<DIR>/rootfs` for a rootfs config (it must not exist yet),
    /// `<DIR>/disk0.raw` (and `disk0.partition<i>.raw` for ext4 partition artifacts) for a
    /// disk config.
    #[arg(long, value_name = "DIR", default_value = "out/images")]
    output_dir: PathBuf,
    /// Leave out Recommends and Supplements (tdnf installs them, so kiln does by default).
    #[arg(long)]
    no_weak_deps: bool,
    /// BUILD_NUMBER written to /etc/image-id.
    #[arg(long, default_value = "", value_name = "N")]
    build_number: String,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    output: JsonArg,
}

pub fn run(args: ComposeArgs, global: Global) -> ExitCode {
    let started = Instant::now();
    let req = ComposeRequest {
        repos: args.repos.clone(),
        output_dir: args.output_dir.clone(),
        no_weak_deps: args.no_weak_deps,
        build_number: args.build_number.clone(),
        sandbox: args.sandbox.options(),
        repo_snapshot_time: None,
        live_install: false,
        package_cache: None,
    };
    let mut r = global.renderer(args.output.json);
    // No build log here: what programs print is shown.
    r.show_program_output();
    let result = {
        let mut sink = r.sink();
        kiln_build::validate(&args.config.validate_request(), &mut sink).and_then(|validated| {
            kiln_build::compose(&req, &validated, &mut sink)
                .map(|c| (validated.config().system_configs[0].name.clone(), c))
        })
    };
    r.finish();
    match result {
        Ok((name, composed)) => {
            if args.output.json {
                let result = serde_json::json!({
                    "event": "result",
                    "output_dir": args.output_dir.display().to_string(),
                    "outputs": composed.outputs,
                    "packages": composed.packages.iter().map(|p| p.nevra()).collect::<Vec<_>>(),
                });
                println!("{result}");
            } else {
                eprintln!(
                    "composed {name} in {:.1} s: {}",
                    started.elapsed().as_secs_f64(),
                    composed.outputs.join(", ")
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
