//! What several stages share: local repositories in one pool, and a config's package strings
//! resolved against it.

use kiln_config::model::LoadedConfig;
use kiln_solve::pool::{Pool, Source};
use kiln_solve::solve::{resolve, Options as SolveOptions, Request, Resolution};
use std::path::{Path, PathBuf};

/// Local repositories (directories with `repodata/`, or of RPM files) in one pool, earlier ones
/// preferred; each source is named by its directory.
pub fn local_pool(repos: &[PathBuf], wanted_paths: &[String]) -> Result<Pool, String> {
    let mut pool = Pool::new();
    for (i, dir) in repos.iter().enumerate() {
        let packages = load_local(dir, wanted_paths)?;
        pool.add_source(
            Source {
                name: dir.display().to_string(),
                priority: i as u32,
            },
            packages,
        );
    }
    Ok(pool)
}

/// The packages of a local source: a repository (`repodata/`) or a directory of RPM files.
/// A repository's filelists are read only when a file dependency, or one of `wanted_paths`,
/// needs them.
pub fn load_local(dir: &Path, wanted_paths: &[String]) -> Result<Vec<kiln_repo::Package>, String> {
    if dir.join("repodata/repomd.xml").is_file() {
        kiln_repo::load_dir(dir, kiln_repo::Filelists::WhenNeeded(wanted_paths.to_vec()))
            .map(|r| r.packages)
            .map_err(|e| e.to_string())
    } else if dir.is_dir() {
        kiln_repo::local::scan_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))
    } else {
        Err(format!(
            "{}: not a directory or URL (a repository needs repodata/repomd.xml, or RPM files)",
            dir.display()
        ))
    }
}

/// The first SystemConfig's package strings, resolved.
pub fn resolve_config(
    loaded: &LoadedConfig,
    pool: &Pool,
    options: &SolveOptions,
) -> Result<(Vec<Request>, Resolution), String> {
    let sc = &loaded.config.system_configs[0];
    let disk = !loaded.config.disks.is_empty() && !sc.partition_settings.is_empty();
    let mut requests = Vec::new();
    for (text, origin) in kiln_config::packages::requested(sc, &loaded.config_path, disk)? {
        requests.push(Request::parse(&text, &origin)?);
    }
    let resolution = resolve(pool, &requests, options)
        .map_err(|e| format!("cannot resolve the packages: {e}"))?;
    Ok((requests, resolution))
}

/// The file paths among a config's package strings (they may need full file lists).
pub fn requested_paths(loaded: &LoadedConfig) -> Vec<String> {
    let mut out = Vec::new();
    for sc in &loaded.config.system_configs {
        if let Ok(list) = kiln_config::packages::requested(sc, &loaded.config_path, false) {
            out.extend(
                list.into_iter()
                    .map(|(t, _)| t)
                    .filter(|t| t.starts_with('/')),
            );
        }
    }
    out
}
