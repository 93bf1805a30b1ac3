//! The flags commands share: package sources (kiln-build's [`SourceOptions`]), the config (as
//! `--config CONFIG` or a positional CONFIG), the sandbox and `--json`.

use clap::Args;
use kiln_build::{SandboxOptions, SourceOptions};
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// A repository tried first: an rpm-md URL (`http(s)://`, `file://`), a directory with
    /// `repodata/`, or a directory of RPM files. Repeatable.
    #[arg(long = "repo", value_name = "URL|DIR")]
    pub repos: Vec<String>,
    /// A directory of locally built RPMs (upstream's out/RPMS), tried first. Repeatable.
    #[arg(long = "rpm-dir", value_name = "DIR")]
    pub rpm_dirs: Vec<PathBuf>,
    /// A `.repo` file (dnf/tdnf format) of remote repositories, tried after the local ones
    /// (upstream's REPO_LIST). Repeatable; its priorities apply.
    #[arg(long = "repo-file", value_name = "FILE")]
    pub repo_files: Vec<PathBuf>,
    /// Never use remote repositories: neither the `--repo-file`s nor the default Azure Linux
    /// 3.0 repositories (upstream's DISABLE_UPSTREAM_REPOS=y).
    #[arg(long)]
    pub disable_upstream_repos: bool,
    /// Leave out the default Azure Linux 3.0 repositories (the `--repo-file`s still count).
    #[arg(long)]
    pub disable_default_repos: bool,
    /// `$releasever` in `.repo` files.
    #[arg(long, default_value = "3.0", value_name = "VERSION")]
    pub releasever: String,
    /// The machine architecture (noarch is always allowed).
    #[arg(long, default_value = "x86_64")]
    pub arch: String,
    /// Where downloaded repository metadata is kept.
    #[arg(long, default_value = "out/cache/repodata", value_name = "DIR")]
    pub cache_dir: PathBuf,
    /// Leave out Recommends and Supplements (tdnf installs them, so kiln does by default).
    #[arg(long)]
    pub no_weak_deps: bool,
    /// A repository snapshot: packages of the `--repo` and remote repositories built after this
    /// Unix time (seconds) are not candidates (tdnf's snapshottime, upstream's
    /// REPO_SNAPSHOT_TIME). `--rpm-dir`s and an earlier fetch's output are not limited.
    #[arg(long, value_name = "POSIX_TIME")]
    pub repo_snapshot_time: Option<u64>,
}

impl SourceArgs {
    /// The sources as kiln-build takes them.
    pub fn options(&self) -> SourceOptions {
        SourceOptions {
            repos: self.repos.clone(),
            rpm_dirs: self.rpm_dirs.clone(),
            repo_files: self.repo_files.clone(),
            disable_upstream_repos: self.disable_upstream_repos,
            disable_default_repos: self.disable_default_repos,
            releasever: self.releasever.clone(),
            arch: self.arch.clone(),
            cache_dir: self.cache_dir.clone(),
            no_weak_deps: self.no_weak_deps,
            repo_snapshot_time: self.repo_snapshot_time,
        }
    }
}

/// The image config: `kiln build CONFIG` or `kiln build --config CONFIG`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// The image config (JSON).
    #[arg(value_name = "CONFIG", required_unless_present = "config_flag")]
    config: Option<PathBuf>,
    /// The image config (JSON), as a flag (upstream's scripts pass it so).
    #[arg(
        long = "config",
        id = "config_flag",
        value_name = "CONFIG",
        conflicts_with = "config"
    )]
    config_flag: Option<PathBuf>,
    /// Directory relative paths in the config (scripts, files, package lists) are resolved
    /// against (upstream's CONFIG_BASE_DIR; default: the config's directory).
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
}

impl ConfigArg {
    pub fn path(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| self.config_flag.clone())
            .expect("clap requires one of them")
    }

    pub fn base_dir(&self) -> Option<PathBuf> {
        self.base_dir.clone()
    }

    /// Validating the config as the command names it.
    pub fn validate_request(&self) -> kiln_build::ValidateRequest {
        kiln_build::ValidateRequest {
            base_dir: self.base_dir(),
            ..kiln_build::ValidateRequest::new(self.path())
        }
    }
}

/// How programs run for the image (rpm scriptlets, scripts, setfiles, grub2-mkconfig): always in
/// kiln's build sandbox (docs/security.md).
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Stop a step (an rpm transaction, a script, setfiles, grub2-mkconfig) that runs longer
    /// than this, with every process it started, and fail the build naming it.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub script_timeout: u64,
    /// Give scripts and scriptlets the build host's network (they have none by default).
    #[arg(long)]
    pub sandbox_network: bool,
}

impl SandboxArgs {
    pub fn options(&self) -> SandboxOptions {
        SandboxOptions {
            script_timeout: self.script_timeout,
            network: self.sandbox_network,
        }
    }
}

/// `--json`: events as JSON lines on stdout.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonArg {
    /// Print one JSON object per event (progress, warnings, the result or the error) on
    /// stdout, one per line (docs/json.md).
    #[arg(long)]
    pub json: bool,
}
