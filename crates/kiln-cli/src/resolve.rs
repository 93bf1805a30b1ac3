//! `kiln resolve`: package strings resolved against the given sources only, printed as NEVRAs.

use clap::Args;
use kiln_repo::fetch::Fetcher;
use kiln_repo::repofile::{self, Vars};
use kiln_solve::pool::{Pool, Source};
use kiln_solve::solve::{resolve, Options, Request};
use std::path::{Path, PathBuf};
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
    release_version: String,
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
    let fetcher = Fetcher::default();
    let mut pool = Pool::new();
    for r in &args.repos {
        let packages = load_one(r, &args.cache_dir, &fetcher)?;
        pool.add_source(
            Source {
                name: r.clone(),
                priority: 99,
            },
            packages,
        );
    }
    let vars = Vars {
        releasever: args.release_version.clone(),
        basearch: args.arch.clone(),
    };
    for file in &args.repo_files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let defs = repofile::parse(&text, &file.display().to_string(), &vars)
            .map_err(|e| e.to_string())?;
        for def in defs.into_iter().filter(|d| d.enabled) {
            let mut last_error = format!("repository '{}' has no baseurl", def.id);
            let mut loaded = None;
            for url in &def.baseurls {
                match load_one(url, &args.cache_dir, &fetcher) {
                    Ok(p) => {
                        loaded = Some(p);
                        break;
                    }
                    Err(e) => last_error = e,
                }
            }
            match loaded {
                Some(packages) => pool.add_source(
                    Source {
                        name: def.id.clone(),
                        priority: def.priority,
                    },
                    packages,
                ),
                None if def.skip_if_unavailable => {
                    eprintln!("warning: skipping repository '{}': {last_error}", def.id)
                }
                None => return Err(format!("repository '{}': {last_error}", def.id)),
            }
        }
    }
    Ok(pool)
}

fn load_one(
    repo: &str,
    cache: &Path,
    fetcher: &Fetcher,
) -> Result<Vec<kiln_repo::Package>, String> {
    if repo.contains("://") {
        return kiln_repo::load_url(repo, cache, fetcher, true)
            .map(|r| r.packages)
            .map_err(|e| format!("{repo}: {e}"));
    }
    crate::plan::load_local(Path::new(repo))
}
