//! `kiln resolve`: package strings resolved against the given sources only, printed as NEVRAs.

use clap::Args;
use kiln_build::{SourceOptions, Sources};
use kiln_solve::pool::Pool;
use kiln_solve::solve::{resolve, Options, Request};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// Package strings as configs write them: `name`, `name=1.2`, `name >= 1.0` (quote it),
    /// a capability such as `libfoo.so.1()(64bit)`, or a path such as `/bin/sh`.
    #[arg(required = true, value_name = "PACKAGE")]
    packages: Vec<String>,
    /// A repository: an rpm-md URL (`http(s)://`, `file://`), a directory with `repodata/`, or a
    /// directory of RPM files (read from their headers). Repeatable.
    #[arg(long = "repo", value_name = "URL|DIR")]
    repos: Vec<String>,
    /// A `.repo` file (dnf/tdnf format); its enabled repositories are used. Repeatable.
    #[arg(long = "repo-file", value_name = "FILE")]
    repo_files: Vec<PathBuf>,
    /// The machine architecture (noarch is always allowed).
    #[arg(long, default_value = "x86_64")]
    arch: String,
    /// `$releasever` in `.repo` files.
    #[arg(long, default_value = "3.0", value_name = "VERSION")]
    releasever: String,
    /// Leave out Recommends and Supplements (tdnf installs them, so kiln does by default).
    #[arg(long)]
    no_weak_deps: bool,
    /// Where downloaded repository metadata is kept.
    #[arg(long, default_value = "out/cache/repodata", value_name = "DIR")]
    cache_dir: PathBuf,
    /// Print JSON: [{"nevra", "name", "epoch", "version", "release", "arch", "repo", "location",
    /// "why"}], sorted by NEVRA.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ResolveArgs) -> ExitCode {
    let pool = match load_sources(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut requests = Vec::new();
    for p in &args.packages {
        match Request::parse(p, "the command line") {
            Ok(r) => requests.push(r),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let options = Options {
        arch: args.arch.clone(),
        weak_deps: !args.no_weak_deps,
    };
    let resolution = match resolve(&pool, &requests, &options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot resolve: {e}");
            return ExitCode::from(1);
        }
    };
    let mut chosen: Vec<_> = resolution.packages.clone();
    chosen.sort_by_key(|&id| pool.package(id).nevra());
    if args.json {
        let list: Vec<serde_json::Value> = chosen
            .iter()
            .map(|&id| {
                let p = pool.package(id);
                serde_json::json!({
                    "nevra": p.nevra(),
                    "name": p.name,
                    "epoch": p.evr.epoch.unwrap_or(0),
                    "version": p.evr.version,
                    "release": p.evr.release.clone().unwrap_or_default(),
                    "arch": p.arch,
                    "repo": pool.source(id).name,
                    "location": p.location,
                    "why": resolution.why(&pool, &requests, id),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).expect("JSON values print")
        );
    } else {
        for id in chosen {
            println!("{}", pool.package(id).nevra());
        }
    }
    // The pool is large and the process ends here: let the OS reclaim it.
    std::mem::forget(pool);
    ExitCode::SUCCESS
}

/// Every package of the given repositories and `.repo` files, in one pool.
fn load_sources(args: &ResolveArgs) -> Result<Pool, String> {
    if args.repos.is_empty() && args.repo_files.is_empty() {
        return Err("no package source: give --repo URL|DIR or --repo-file FILE".into());
    }
    let source_args = SourceOptions {
        repos: args.repos.clone(),
        repo_files: args.repo_files.clone(),
        disable_default_repos: true,
        releasever: args.releasever.clone(),
        arch: args.arch.clone(),
        cache_dir: args.cache_dir.clone(),
        no_weak_deps: args.no_weak_deps,
        ..SourceOptions::default()
    };
    let mut sources = Sources::plan(&source_args, None).map_err(|e| e.to_string())?;
    let paths = args
        .packages
        .iter()
        .filter(|p| p.starts_with('/'))
        .cloned()
        .collect();
    let mut warn = |e: kiln_build::Event| {
        if let Some(line) = e.plain() {
            eprintln!("{line}");
        }
    };
    sources
        .load_all(paths, &mut warn)
        .map_err(|e| match &e.help {
            Some(help) => format!("{e}\n  help: {help}"),
            None => e.to_string(),
        })?;
    Ok(sources.pool)
}
