//! Package sources in upstream's tiers (SPEC §4): locally built RPMs and the repositories given
//! with `--repo` first; then what an earlier fetch left in the output directory (upstream's
//! "fetcher-cloned" cache); then remote repositories (`--repo-file`s, i.e. REPO_LIST, and the
//! Azure Linux 3.0 repositories kiln ships). A later tier is loaded only when the earlier ones
//! cannot satisfy the request, so a build from local sources never touches the network.

use crate::error::{Error, ErrorKind};
use crate::event::{Event, Stage};
use kiln_repo::fetch::Fetcher;
use kiln_repo::repofile::{self, Vars, AZURE_LINUX_3};
use kiln_repo::Package;
use kiln_solve::pool::{PackageId, Pool, Source};
use kiln_solve::solve::{resolve, Options, Request, Resolution};
use std::path::{Path, PathBuf};

/// Where packages come from (kiln-cli's `--repo`, `--rpm-dir`, `--repo-file`, …).
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Repositories tried first: rpm-md URLs, directories with `repodata/`, or of RPM files.
    pub repos: Vec<String>,
    /// Directories of locally built RPMs (upstream's out/RPMS), tried first.
    pub rpm_dirs: Vec<PathBuf>,
    /// `.repo` files of remote repositories (upstream's REPO_LIST).
    pub repo_files: Vec<PathBuf>,
    /// No remote repository at all (upstream's DISABLE_UPSTREAM_REPOS=y).
    pub disable_upstream_repos: bool,
    /// Leave out the built-in Azure Linux 3.0 repositories.
    pub disable_default_repos: bool,
    /// `$releasever` in `.repo` files.
    pub releasever: String,
    /// The machine architecture (noarch is always allowed).
    pub arch: String,
    /// Where downloaded repository metadata is kept.
    pub cache_dir: PathBuf,
    /// Leave out Recommends and Supplements.
    pub no_weak_deps: bool,
    /// `--repo-snapshot-time`: packages of the `repos` and remote repositories built after this
    /// Unix time are not candidates (tdnf's snapshottime); `rpm_dirs` and an earlier fetch's
    /// output are not limited.
    pub repo_snapshot_time: Option<u64>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            repos: Vec::new(),
            rpm_dirs: Vec::new(),
            repo_files: Vec::new(),
            disable_upstream_repos: false,
            disable_default_repos: false,
            releasever: "3.0".into(),
            arch: "x86_64".into(),
            cache_dir: PathBuf::from("out/cache/repodata"),
            no_weak_deps: false,
            repo_snapshot_time: None,
        }
    }
}

impl SourceOptions {
    pub fn solve_options(&self) -> Options {
        Options {
            arch: self.arch.clone(),
            weak_deps: !self.no_weak_deps,
        }
    }
}

/// What to do when the remote repositories cannot be reached.
pub const NO_NETWORK_HELP: &str = "no network: build offline with DISABLE_UPSTREAM_REPOS=y \
(kiln: --disable-upstream-repos) and local packages (REPO_LIST, --rpm-dir/--repo)";

/// One source to load: a local directory or a repository by URL(s).
#[derive(Debug, Clone)]
enum Spec {
    /// A local directory, and whether the snapshot time limits it.
    Dir(PathBuf, bool),
    Url {
        id: String,
        urls: Vec<String>,
        priority: u32,
        skip_if_unavailable: bool,
    },
}

/// A pool with, for every source, where its package locations are relative to.
pub struct Sources {
    pub pool: Pool,
    /// Per source (in pool order): a directory path or a base URL.
    pub bases: Vec<String>,
    /// The tiers loaded, by name.
    pub tiers: Vec<&'static str>,
    pending: Vec<(&'static str, Vec<Spec>)>,
    fetcher: Fetcher,
    cache_dir: PathBuf,
    /// Paths the requests name: repositories read their filelists when these need them.
    wanted_paths: Vec<String>,
    /// `--repo-snapshot-time`, and how many packages it left out.
    snapshot_time: Option<u64>,
    after_snapshot: usize,
}

impl Sources {
    /// Plans the tiers; nothing is loaded yet. `cache` is the output directory of an earlier
    /// fetch (its RPMs form the middle tier).
    pub fn plan(args: &SourceOptions, cache: Option<&Path>) -> Result<Sources, Error> {
        let mut local: Vec<Spec> = args
            .rpm_dirs
            .iter()
            .map(|d| Spec::Dir(d.clone(), false))
            .collect();
        for r in &args.repos {
            local.push(if r.contains("://") {
                Spec::Url {
                    id: r.clone(),
                    urls: vec![r.clone()],
                    priority: 99,
                    skip_if_unavailable: false,
                }
            } else {
                Spec::Dir(PathBuf::from(r), true)
            });
        }
        let mut cached = Vec::new();
        if let Some(dir) = cache.filter(|d| has_rpms(d)) {
            cached.push(Spec::Dir(dir.to_path_buf(), false));
        }
        let mut remote = Vec::new();
        if !args.disable_upstream_repos {
            let vars = Vars {
                releasever: args.releasever.clone(),
                basearch: args.arch.clone(),
            };
            let mut files: Vec<(String, String)> = Vec::new();
            for f in &args.repo_files {
                let text = std::fs::read_to_string(f).map_err(|e| {
                    Error::new(
                        Stage::Fetch,
                        ErrorKind::Usage,
                        format!("{}: {e}", f.display()),
                    )
                })?;
                files.push((f.display().to_string(), text));
            }
            if !args.disable_default_repos {
                files.push((
                    "azurelinux-3.0.repo (built in)".into(),
                    AZURE_LINUX_3.into(),
                ));
            }
            for (name, text) in files {
                let defs = repofile::parse(&text, &name, &vars)
                    .map_err(Error::of(Stage::Fetch, ErrorKind::Usage))?;
                for d in defs.into_iter().filter(|d| d.enabled) {
                    remote.push(Spec::Url {
                        id: d.id,
                        urls: d.baseurls,
                        priority: d.priority,
                        skip_if_unavailable: d.skip_if_unavailable,
                    });
                }
            }
        }
        let pending: Vec<(&'static str, Vec<Spec>)> =
            [("local", local), ("cache", cached), ("remote", remote)]
                .into_iter()
                .filter(|(_, specs)| !specs.is_empty())
                .collect();
        if pending.is_empty() {
            return Err(Error::new(
                Stage::Fetch,
                ErrorKind::Usage,
                "no package source: give --repo URL|DIR, --rpm-dir DIR or --repo-file \
                 FILE, or leave the upstream repositories enabled",
            ));
        }
        Ok(Sources {
            pool: Pool::new(),
            bases: Vec::new(),
            tiers: Vec::new(),
            pending,
            fetcher: Fetcher::default(),
            cache_dir: args.cache_dir.clone(),
            wanted_paths: Vec::new(),
            snapshot_time: args.repo_snapshot_time,
            after_snapshot: 0,
        })
    }

    /// Loads the next tier into the pool; `Ok(false)` when there is none left. A repository
    /// that cannot be reached at all (its host does not resolve, the connection is refused)
    /// fails the tier at once with [`NO_NETWORK_HELP`], whatever its skip_if_unavailable says:
    /// the next repositories would only fail the same way, one after another.
    pub fn load_next_tier(&mut self, on_event: &mut dyn FnMut(Event)) -> Result<bool, Error> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        let (name, specs) = self.pending.remove(0);
        for spec in specs {
            match spec {
                Spec::Dir(dir, snapshot) => {
                    let mut packages = crate::plan::load_local(&dir, &self.wanted_paths)
                        .map_err(|e| Error::new(Stage::Fetch, ErrorKind::Packages, e))?;
                    if snapshot {
                        self.keep_snapshot(&mut packages);
                    }
                    self.add(
                        dir.display().to_string(),
                        99,
                        dir.display().to_string(),
                        packages,
                    );
                }
                Spec::Url {
                    id,
                    urls,
                    priority,
                    skip_if_unavailable,
                } => {
                    let mut last_error = format!("repository '{id}' has no baseurl");
                    let mut loaded = None;
                    let mut unreachable = 0;
                    for url in &urls {
                        let lists = kiln_repo::Filelists::WhenNeeded(self.wanted_paths.clone());
                        match kiln_repo::load_url(url, &self.cache_dir, &self.fetcher, lists) {
                            Ok(repo) => {
                                loaded = Some(repo);
                                break;
                            }
                            Err(e) => {
                                if matches!(&e, kiln_repo::Error::Fetch(f) if f.is_unreachable()) {
                                    unreachable += 1;
                                }
                                last_error = e.to_string();
                            }
                        }
                    }
                    if loaded.is_none() && unreachable > 0 && unreachable == urls.len() {
                        return Err(Error::new(
                            Stage::Fetch,
                            ErrorKind::Network,
                            format!("repository '{id}' cannot be reached: {last_error}"),
                        )
                        .help(NO_NETWORK_HELP));
                    }
                    match loaded {
                        Some(mut repo) => {
                            self.keep_snapshot(&mut repo.packages);
                            self.add(id, priority, repo.base.clone(), repo.packages)
                        }
                        None if skip_if_unavailable => on_event(Event::Warning {
                            stage: Stage::Fetch,
                            message: format!("skipping repository '{id}': {last_error}"),
                            at: None,
                        }),
                        None => {
                            return Err(Error::new(
                                Stage::Fetch,
                                ErrorKind::Packages,
                                format!("repository '{id}': {last_error}"),
                            ))
                        }
                    }
                }
            }
        }
        self.tiers.push(name);
        Ok(true)
    }

    /// Leaves out the packages built after the snapshot time (as tdnf's snapshottime, by the
    /// build time the repository metadata gives; one without a build time stays).
    fn keep_snapshot(&mut self, packages: &mut Vec<Package>) {
        if let Some(t) = self.snapshot_time {
            let before = packages.len();
            packages.retain(|p| p.build_time <= t);
            self.after_snapshot += before - packages.len();
        }
    }

    fn add(&mut self, name: String, priority: u32, base: String, packages: Vec<Package>) {
        self.pool.add_source(Source { name, priority }, packages);
        self.bases.push(base);
    }

    /// Resolves `requests` with as few tiers as possible, loading the next tier while the
    /// loaded ones cannot satisfy them (upstream tries its tiers the same way).
    pub fn resolve_tiered(
        &mut self,
        requests: &[Request],
        options: &Options,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Resolution, Error> {
        self.wanted_paths = requests
            .iter()
            .map(|r| r.name.clone())
            .filter(|n| n.starts_with('/'))
            .collect();
        let mut last = None;
        while self.load_next_tier(on_event)? {
            if self.pool.is_empty() {
                continue;
            }
            match resolve(&self.pool, requests, options) {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e.to_string()),
            }
        }
        let snapshot = match self.snapshot_time {
            Some(t) if self.after_snapshot > 0 => format!(
                " ({} packages built after --repo-snapshot-time {t} were left out: give a later \
                 time if the packages needed are newer)",
                self.after_snapshot
            ),
            _ => String::new(),
        };
        Err(Error::new(
            Stage::Fetch,
            ErrorKind::Resolve,
            format!(
                "cannot resolve the packages (sources tried: {}): {}{snapshot}",
                self.tiers.join(", "),
                last.unwrap_or_else(|| "no source has any package".into())
            ),
        )
        .help("add the package sources that provide them (--repo, --rpm-dir, --repo-file), or fix the package lists"))
    }

    /// Loads every tier (for commands that use all the given sources at once).
    pub fn load_all(
        &mut self,
        wanted_paths: Vec<String>,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<(), Error> {
        self.wanted_paths = wanted_paths;
        while self.load_next_tier(on_event)? {}
        Ok(())
    }

    /// Where package `id` is fetched from: a local path or a URL.
    pub fn origin_of(&self, id: PackageId) -> String {
        let base = &self.bases[self.pool.source_index(id)];
        let location = &self.pool.package(id).location;
        let base = base.strip_prefix("file://").unwrap_or(base);
        format!("{}/{location}", base.trim_end_matches('/'))
    }
}

fn has_rpms(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(".rpm"))
    })
}
