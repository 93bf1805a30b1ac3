//! `kiln fetch` (and the `imagepkgfetcher` personality): every package a config's image needs,
//! resolved with its dependencies and copied or downloaded into a flat local repository with
//! `repodata/`, as upstream's imagepkgfetcher leaves it for the imager.

use crate::error::{Error, ErrorKind};
use crate::event::{staged, Event, Stage};
use crate::sources::{SourceOptions, Sources};
use crate::validate::Validated;
use kiln_repo::fetch::Download;
use kiln_repo::{summary, Package};
use kiln_solve::pool::PackageId;
use kiln_solve::solve::Request;
use std::path::{Path, PathBuf};

/// Where packages go and where they come from.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// The local repository to fill: RPMs and `repodata/`. RPMs already there that verify
    /// are kept (and serve as a cache tier).
    pub output_dir: PathBuf,
    pub sources: SourceOptions,
    /// Fetch exactly the packages of this summary file, to reproduce an earlier package set.
    pub input_summary_file: Option<PathBuf>,
    /// Write the fetched package set as a summary file (upstream's image_deps.json).
    pub output_summary_file: Option<PathBuf>,
    /// Check every fetched RPM's signature against `gpg_keys`.
    pub enable_gpg_check: bool,
    pub gpg_keys: Vec<PathBuf>,
    /// Downloads at a time.
    pub jobs: usize,
}

impl FetchRequest {
    pub fn new(output_dir: impl Into<PathBuf>, sources: SourceOptions) -> FetchRequest {
        FetchRequest {
            output_dir: output_dir.into(),
            sources,
            input_summary_file: None,
            output_summary_file: None,
            enable_gpg_check: false,
            gpg_keys: Vec::new(),
            jobs: 4,
        }
    }
}

/// What a fetch did.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub packages: Vec<Package>,
    pub tiers: Vec<&'static str>,
    pub downloaded: usize,
    pub copied: usize,
    pub kept: usize,
}

impl Fetched {
    /// `N packages in DIR (sources: …; D downloaded, C copied, K already there)`.
    pub fn describe(&self, dir: &Path) -> String {
        format!(
            "{} packages in {} (sources: {}; {} downloaded, {} copied, {} already there)",
            self.packages.len(),
            dir.display(),
            self.tiers.join(", "),
            self.downloaded,
            self.copied,
            self.kept
        )
    }
}

/// The package strings of every SystemConfig, plus the build tooling upstream fetches.
pub fn requests(
    loaded: &kiln_config::model::LoadedConfig,
    arch: &str,
) -> Result<Vec<Request>, String> {
    let disk = !loaded.config.disks.is_empty();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut push = |text: String, origin: String| -> Result<(), String> {
        if seen.insert(text.clone()) {
            out.push(Request::parse(&text, &origin)?);
        }
        Ok(())
    };
    for sc in &loaded.config.system_configs {
        let disk_image = disk && !sc.partition_settings.is_empty();
        for (text, origin) in kiln_config::packages::requested(sc, &loaded.config_path, disk_image)?
        {
            push(text, origin)?;
        }
        // Every kernel of KernelOptions (keys starting with `_` are comments).
        for (key, value) in &sc.kernel_options {
            let value = value.trim();
            if !key.starts_with('_') && !value.is_empty() {
                let name = Path::new(value)
                    .file_name()
                    .map_or(value.to_string(), |n| n.to_string_lossy().into_owned());
                push(
                    name,
                    format!("{} (KernelOptions)", loaded.config_path.display()),
                )?;
            }
        }
    }
    if arch == "x86_64" {
        push(
            "grub2-pc".into(),
            "build tooling (upstream fetches grub2-pc for legacy-BIOS images on x86_64)".into(),
        )?;
    }
    Ok(out)
}

/// The fetch stage: every package the config's images need (every SystemConfig, and the build
/// tooling upstream fetches), resolved tier by tier, copied or downloaded into
/// `req.output_dir`, verified, with `repodata/` written over it.
pub fn fetch(
    req: &FetchRequest,
    validated: &Validated,
    on_event: &mut dyn FnMut(Event),
) -> Result<Fetched, Error> {
    staged(Stage::Fetch, on_event, |on_event| {
        fetch_quietly(req, validated, on_event)
    })
}

const STAGE: Stage = Stage::Fetch;

fn fail(kind: ErrorKind) -> impl Fn(String) -> Error {
    move |message| Error::new(STAGE, kind, message)
}

pub(crate) fn fetch_quietly(
    req: &FetchRequest,
    validated: &Validated,
    on_event: &mut dyn FnMut(Event),
) -> Result<Fetched, Error> {
    let args = req;
    if args.enable_gpg_check && args.gpg_keys.is_empty() {
        return Err(Error::new(
            STAGE,
            ErrorKind::Usage,
            "--enable-gpg-check requires at least one --gpg-key path",
        ));
    }
    if args.enable_gpg_check {
        crate::host::require(&[crate::host::RPMKEYS], STAGE)?;
    }
    std::fs::create_dir_all(&args.output_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.output_dir.display()))
        .map_err(fail(ErrorKind::Io))?;
    let mut sources = Sources::plan(&args.sources, Some(&args.output_dir))?;
    let chosen: Vec<PackageId> = match &args.input_summary_file {
        Some(file) => from_summary(&mut sources, file, on_event)?,
        None => {
            let requests = requests(&validated.loaded, &args.sources.arch)
                .map_err(fail(ErrorKind::InvalidConfig))?;
            let options = args.sources.solve_options();
            sources
                .resolve_tiered(&requests, &options, on_event)?
                .packages
        }
    };
    on_event(Event::Step {
        stage: STAGE,
        message: format!(
            "resolved to {} packages (sources: {})",
            chosen.len(),
            sources.tiers.join(", ")
        ),
    });
    let (downloaded, copied, kept) =
        transfer(&sources, &chosen, &args.output_dir, args.jobs, on_event)?;
    if args.enable_gpg_check {
        let files: Vec<PathBuf> = chosen
            .iter()
            .map(|&id| {
                args.output_dir
                    .join(file_name(&sources.pool.package(id).location))
            })
            .collect();
        check_signatures(&files, &args.gpg_keys).map_err(fail(ErrorKind::Packages))?;
    }
    // The output directory becomes a repository of everything in it (as upstream's
    // createrepo run over it does).
    let packages = kiln_repo::local::scan_dir(&args.output_dir)
        .map_err(Error::of(STAGE, ErrorKind::Packages))?;
    kiln_repo::write::write_repodata(&args.output_dir, &packages, timestamp())
        .map_err(|e| format!("cannot write the repository metadata: {e}"))
        .map_err(fail(ErrorKind::Io))?;
    let fetched: Vec<Package> = chosen
        .iter()
        .map(|&id| sources.pool.package(id).clone())
        .collect();
    if let Some(file) = &args.output_summary_file {
        write_atomically(file, summary::write(&fetched).as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", file.display()))
            .map_err(fail(ErrorKind::Io))?;
    }
    Ok(Fetched {
        packages: fetched,
        tiers: sources.tiers.clone(),
        downloaded,
        copied,
        kept,
    })
}

/// The packages a summary file names, found tier by tier; every entry must be found.
fn from_summary(
    sources: &mut Sources,
    file: &Path,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<PackageId>, Error> {
    let unreadable =
        |e: String| Error::new(STAGE, ErrorKind::Usage, format!("{}: {e}", file.display()));
    let text = std::fs::read_to_string(file).map_err(|e| unreadable(e.to_string()))?;
    let entries = summary::read(&text).map_err(|e| unreadable(e.to_string()))?;
    let mut found: Vec<Option<PackageId>> = vec![None; entries.len()];
    while found.iter().any(Option::is_none) && sources.load_next_tier(on_event)? {
        for (slot, entry) in found.iter_mut().zip(&entries) {
            if slot.is_none() {
                *slot = sources
                    .pool
                    .ids()
                    .find(|&id| entry.matches(sources.pool.package(id)));
            }
        }
    }
    let missing: Vec<String> = entries
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(e, _)| format!("{}-{}.{}", e.name, e.version, e.arch))
        .collect();
    if !missing.is_empty() {
        return Err(fail(ErrorKind::Resolve)(format!(
            "{}: {} package(s) of the summary are in no source ({}): {}",
            file.display(),
            missing.len(),
            sources.tiers.join(", "),
            missing.join(", ")
        )));
    }
    Ok(found.into_iter().flatten().collect())
}

fn file_name(location: &str) -> &str {
    location.rsplit('/').next().unwrap_or(location)
}

/// Copies local packages and downloads remote ones into `out`, each verified against its
/// checksum before it takes its final name. Returns (downloaded, copied, already there).
fn transfer(
    sources: &Sources,
    chosen: &[PackageId],
    out: &Path,
    jobs: usize,
    on_event: &mut dyn FnMut(Event),
) -> Result<(usize, usize, usize), Error> {
    let failed = |message: String, package: &str| {
        Error::new(STAGE, ErrorKind::Packages, message).package(package)
    };
    let (mut copied, mut kept) = (0, 0);
    let mut downloads = Vec::new();
    // Part files a killed run left behind (no live process holds their lock).
    kiln_repo::fetch::remove_stale_parts(out)
        .map_err(|e| format!("cannot clean {}: {e}", out.display()))
        .map_err(fail(ErrorKind::Io))?;
    for &id in chosen {
        let p = sources.pool.package(id);
        let dest = out.join(file_name(&p.location));
        let origin = sources.origin_of(id);
        let verified =
            |path: &Path| p.checksum.value.is_empty() || p.checksum.verify_file(path).is_ok();
        if dest.exists() && verified(&dest) {
            kept += 1;
            continue;
        }
        if origin.contains("://") {
            downloads.push(Download {
                url: origin,
                dest,
                checksum: p.checksum.clone(),
                size: p.size,
            });
            continue;
        }
        if Path::new(&origin) == dest {
            return Err(failed(
                format!(
                    "{} does not match its checksum ({})",
                    dest.display(),
                    p.checksum.value
                ),
                &p.name,
            )
            .help("delete it and fetch again"));
        }
        let part = out.join(format!(".{}.kiln-part", file_name(&p.location)));
        let copy = || -> std::io::Result<std::fs::File> {
            let mut to = kiln_repo::fetch::create_part(&part)?;
            std::io::copy(&mut std::fs::File::open(&origin)?, &mut to)?;
            Ok(to)
        };
        let _held = copy().map_err(|e| {
            let _ = std::fs::remove_file(&part);
            failed(format!("cannot copy {origin}: {e}"), &p.name)
        })?;
        if !verified(&part) {
            let _ = std::fs::remove_file(&part);
            return Err(failed(
                format!(
                    "{origin} does not match the checksum its repository gives ({}): the source \
                     is corrupt or changed",
                    p.checksum.value
                ),
                &p.name,
            ));
        }
        if let Err(e) = kiln_repo::local::verify_digests(&part) {
            let _ = std::fs::remove_file(&part);
            return Err(failed(format!("{origin}: {e}"), &p.name));
        }
        std::fs::rename(&part, &dest)
            .map_err(|e| failed(format!("{}: {e}", dest.display()), &p.name))?;
        copied += 1;
    }
    let total = downloads.len();
    if total > 0 {
        let fetcher = kiln_repo::fetch::Fetcher::default();
        let total_bytes: u64 = downloads.iter().map(|d| d.size).sum();
        on_event(Event::Download {
            done: 0,
            count: total,
            bytes: 0,
            total_bytes,
        });
        // Downloads run on threads; their progress comes back here to be told.
        let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
        let failures = std::thread::scope(|s| {
            let worker = s.spawn(move || {
                let progress = |done: u64, all: u64| {
                    let _ = tx.send((done, all));
                };
                fetcher.fetch_all(&downloads, jobs, &progress)
            });
            for (done, (bytes, all)) in rx.iter().enumerate() {
                on_event(Event::Download {
                    done: done + 1,
                    count: total,
                    bytes,
                    total_bytes: all,
                });
            }
            worker.join().expect("the download threads do not panic")
        });
        if !failures.is_empty() {
            let list: Vec<String> = failures
                .iter()
                .map(|(d, e)| format!("  {}: {e}", d.url))
                .collect();
            let mut e = Error::new(
                STAGE,
                ErrorKind::Packages,
                format!(
                    "{} of {total} downloads failed (nothing unverified was kept):\n{}",
                    failures.len(),
                    list.join("\n")
                ),
            );
            if failures.iter().all(|(_, e)| e.is_unreachable()) {
                e.kind = ErrorKind::Network;
                e.help = Some(crate::sources::NO_NETWORK_HELP.into());
            }
            if let [(d, _)] = failures.as_slice() {
                e.package = Some(file_name(&d.url).to_string());
            }
            return Err(e);
        }
    }
    Ok((total, copied, kept))
}

/// Checks every file's RPM signature against `keys` with rpmkeys, in a keyring of its own.
pub fn check_signatures(files: &[PathBuf], keys: &[PathBuf]) -> Result<(), String> {
    let db = tempfile::tempdir().map_err(|e| format!("cannot make a keyring: {e}"))?;
    let dbpath = db.path().display().to_string();
    for key in keys {
        let out = std::process::Command::new("rpmkeys")
            .args(["--dbpath", &dbpath, "--import"])
            .arg(key)
            .output()
            .map_err(|e| format!("cannot run rpmkeys (install rpm): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{} is not a usable public key: {}",
                key.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let mut bad = Vec::new();
    for chunk in files.chunks(200) {
        let out = std::process::Command::new("rpmkeys")
            .args(["--dbpath", &dbpath, "--checksig"])
            .args(chunk)
            .output()
            .map_err(|e| format!("cannot run rpmkeys: {e}"))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "<file>: digests signatures OK" when signed by a known key.
            if !line.ends_with("signatures OK") {
                bad.push(line.to_string());
            }
        }
        if !out.status.success() && bad.is_empty() {
            bad.push(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "GPG check failed for {} package(s) (unsigned, or signed by a key not given with \
             --gpg-key):\n  {}",
            bad.len(),
            bad.join("\n  ")
        ))
    }
}

/// SOURCE_DATE_EPOCH when set, else now.
fn timestamp() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("kiln-part");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}
