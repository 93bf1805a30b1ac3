//! `kiln summary`: what a build of a config would do, through [`kiln_build::summary`]
//! (validate and resolve only: no root, no package downloads).

use crate::cli::Global;
use crate::sources::{ConfigArg, JsonArg, SourceArgs};
use clap::Args;
use kiln_build::SummaryRequest;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    sources: SourceArgs,
    /// Print the summary as one JSON document: {"name", "system_config", "kind", "sources",
    /// "packages": [{"nevra", "name", "version", "arch", "size", "installed_size", "source"}],
    /// "download_size", "installed_size", "partitions", "artifacts", "host_tools"}.
    #[command(flatten)]
    output: JsonArg,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

pub fn run(args: SummaryArgs, global: Global) -> ExitCode {
    let req = SummaryRequest {
        validate: args.config.validate_request(),
        sources: args.sources.options(),
    };
    // Warnings and errors as plain lines; the summary itself on stdout.
    let mut r = global.renderer(false);
    let result = {
        let mut sink = |e: kiln_build::Event| {
            if matches!(e, kiln_build::Event::Warning { .. }) {
                r.event(e);
            }
        };
        kiln_build::summary(&req, &mut sink)
    };
    let s = match result {
        Ok(s) => s,
        Err(e) => {
            r.error(&e, "");
            return ExitCode::from(1);
        }
    };
    if args.output.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s.to_json()).expect("JSON values print")
        );
        return ExitCode::SUCCESS;
    }
    let download: u64 = s.packages.iter().map(|p| p.size).sum();
    let installed: u64 = s.packages.iter().map(|p| p.installed_size).sum();
    println!(
        "{} (SystemConfig {}): a {} image",
        s.name, s.system_config, s.kind
    );
    println!(
        "packages: {} from {} ({} to download, {} installed)",
        s.packages.len(),
        s.sources.join(", "),
        mib(download),
        mib(installed)
    );
    for p in &s.packages {
        println!(
            "  {:<40} {:>12} {:>12}  {}",
            p.nevra,
            mib(p.size),
            mib(p.installed_size),
            p.source
        );
    }
    if !s.partitions.is_empty() {
        println!("partitions:");
        for p in &s.partitions {
            let end = if p.end == 0 {
                "end".to_string()
            } else {
                format!("{} MiB", p.end)
            };
            println!(
                "  {:<12} {:<6} {} MiB – {end}  {}",
                p.id,
                p.fs_type,
                p.start,
                if p.mount_point.is_empty() {
                    "(not mounted)"
                } else {
                    &p.mount_point
                }
            );
        }
    }
    println!(
        "artifacts: {}",
        if s.artifacts.is_empty() {
            "none (imager's output only)".to_string()
        } else {
            s.artifacts.join(", ")
        }
    );
    let tools: Vec<String> = s
        .tools
        .iter()
        .map(|t| format!("{} ({})", t.program, t.package))
        .collect();
    println!("host programs: {}", tools.join(", "));
    println!(
        "a build would: fetch {} packages, install them in {} with rpm, {}, then make {} artifact(s)",
        s.packages.len(),
        if s.kind == "disk" {
            "a disk image"
        } else {
            "a root filesystem"
        },
        if s.kind == "disk" {
            "write the partition table and filesystems"
        } else {
            "configure the system"
        },
        s.artifacts.len()
    );
    ExitCode::SUCCESS
}
