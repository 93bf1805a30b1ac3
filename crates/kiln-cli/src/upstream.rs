//! The upstream tool personalities: kiln invoked as `imageconfigvalidator` takes that tool's
//! flags and prints its messages, so Makefiles and scripts written for the Azure Linux toolkit
//! keep working.

use crate::output::ColorChoice;
use clap::{Parser, ValueEnum};
use kiln_config::{validate_file, Options, Severity};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// An upstream tool kiln can stand in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    ImageConfigValidator,
    ImagePkgFetcher,
    Imager,
    Roast,
    IsoMaker,
    LiveInstaller,
}

impl Tool {
    pub fn from_name(name: &str) -> Option<Tool> {
        match name {
            "imageconfigvalidator" => Some(Tool::ImageConfigValidator),
            "imagepkgfetcher" => Some(Tool::ImagePkgFetcher),
            "imager" => Some(Tool::Imager),
            "roast" => Some(Tool::Roast),
            "isomaker" => Some(Tool::IsoMaker),
            "liveinstaller" => Some(Tool::LiveInstaller),
            _ => None,
        }
    }
}

pub fn run(tool: Tool, args: Vec<OsString>) -> ExitCode {
    match tool {
        Tool::ImageConfigValidator => image_config_validator(args),
        Tool::ImagePkgFetcher => image_pkg_fetcher(args),
        Tool::Imager => imager(args),
        Tool::Roast => roast(args),
        Tool::IsoMaker => isomaker(args),
        Tool::LiveInstaller => liveinstaller(args),
    }
}

/// logrus levels, as upstream's `--log-level` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum LogLevel {
    Panic,
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Validates an image config (kiln standing in for the Azure Linux toolkit's
/// imageconfigvalidator).
///
/// Loads the config with paths resolved against --dir, runs every configuration check and the
/// package-list checks, and exits 1 with upstream's message on the first problem upstream would
/// report. kiln also prints every other problem it finds, with file, line and column.
#[derive(Debug, Parser)]
#[command(name = "imageconfigvalidator", version, max_term_width = 100)]
struct ImageConfigValidatorArgs {
    /// Path to the image config file.
    #[arg(long, value_name = "PATH", required = true)]
    input: PathBuf,
    /// Base directory for relative file paths in the config.
    #[arg(long, value_name = "DIR", required = true)]
    dir: PathBuf,
    #[command(flatten)]
    go: GoFlags,
}

/// The flags every upstream Go tool takes: logging, and profiling (accepted and ignored).
#[derive(Debug, clap::Args)]
struct GoFlags {
    /// Also write the log to this file.
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Log level: below `warn`, warnings are not printed.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,
    /// When to color the log.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    log_color: ColorChoice,
    /// Accepted for compatibility; kiln writes no timestamp file.
    #[arg(long, value_name = "PATH")]
    timestamp_file: Option<PathBuf>,
    /// Accepted for compatibility (Go profiling); ignored.
    #[arg(long)]
    enable_cpu_prof: bool,
    /// Accepted for compatibility (Go profiling); ignored.
    #[arg(long)]
    enable_mem_prof: bool,
    /// Accepted for compatibility (Go tracing); ignored.
    #[arg(long)]
    enable_trace: bool,
    /// Accepted for compatibility (Go profiling); ignored.
    #[arg(long, value_name = "PATH")]
    cpu_prof_file: Option<PathBuf>,
    /// Accepted for compatibility (Go profiling); ignored.
    #[arg(long, value_name = "PATH")]
    mem_prof_file: Option<PathBuf>,
    /// Accepted for compatibility (Go tracing); ignored.
    #[arg(long, value_name = "PATH")]
    trace_file: Option<PathBuf>,
}

impl GoFlags {
    /// Flags kiln accepts only so that upstream command lines keep working.
    fn ignored_flags(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut flag = |set: bool, name| {
            if set {
                v.push(name)
            }
        };
        flag(self.timestamp_file.is_some(), "--timestamp-file");
        flag(self.enable_cpu_prof, "--enable-cpu-prof");
        flag(self.enable_mem_prof, "--enable-mem-prof");
        flag(self.enable_trace, "--enable-trace");
        flag(self.cpu_prof_file.is_some(), "--cpu-prof-file");
        flag(self.mem_prof_file.is_some(), "--mem-prof-file");
        flag(self.trace_file.is_some(), "--trace-file");
        v
    }
}

impl GoFlags {
    /// The log: stderr, and --log-file when given. Err: the exit code for a file that
    /// cannot be opened.
    fn open_log(&self) -> Result<Log, ExitCode> {
        let file = match &self.log_file {
            None => None,
            Some(p) => match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                Ok(f) => Some(f),
                Err(e) => {
                    eprintln!("error: cannot open --log-file {}: {e}", p.display());
                    return Err(ExitCode::from(2));
                }
            },
        };
        Ok(Log {
            file,
            color: self.log_color.stderr(),
        })
    }

    /// Warns once about the flags kiln ignores (unless the log level hides warnings).
    fn warn_ignored(&self, log: &mut Log, more: &[&str]) {
        let mut ignored = self.ignored_flags();
        ignored.extend_from_slice(more);
        if !ignored.is_empty() && self.log_level >= LogLevel::Warn {
            let line = format!(
                "warning: kiln ignores {} (no meaning for kiln)\n",
                ignored.join(", ")
            );
            log.write(&line, &line);
        }
    }
}

/// A personality's flags; on a usage error, clap's message printed and the exit code to use.
fn parse<T: Parser>(args: Vec<OsString>) -> Result<T, ExitCode> {
    T::try_parse_from(args).map_err(|e| {
        let _ = e.print();
        ExitCode::from(e.exit_code() as u8)
    })
}

/// The names of the flags that are set, of `(set, name)` pairs.
fn flags_set(flags: &[(bool, &'static str)]) -> Vec<&'static str> {
    flags
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, n)| *n)
        .collect()
}

/// Writes log text to stderr and, with --log-file, to the file (uncolored).
struct Log {
    file: Option<std::fs::File>,
    color: bool,
}

impl Log {
    /// Logs `message` as upstream logs a fatal error (red when colored) and gives exit 1.
    fn fatal(&mut self, message: &str) -> ExitCode {
        self.write(
            &format!("{message}\n"),
            &format!("\x1b[1;31m{message}\x1b[0m\n"),
        );
        ExitCode::FAILURE
    }

    /// Logs an event of kiln-build as a line (warnings unless `warnings` is false; program
    /// output not: it would drown upstream's log).
    fn event(&mut self, e: &kiln_build::Event, warnings: bool) {
        match e {
            kiln_build::Event::Output { .. } => {}
            kiln_build::Event::Warning { .. } if !warnings => {}
            _ => {
                if let Some(text) = e.plain() {
                    let line = format!("{text}\n");
                    let colored = match text.strip_prefix("warning") {
                        Some(rest) => format!("\x1b[1;33mwarning\x1b[0m{rest}\n"),
                        None => line.clone(),
                    };
                    self.write(&line, &colored);
                }
            }
        }
    }

    /// Logs a kiln-build error as upstream logs a fatal one: an invalid config's report, then
    /// `<context><message>`, and the help line; exit 1.
    fn error(&mut self, e: &kiln_build::Error, context: &str) -> ExitCode {
        if let Some(report) = &e.report {
            self.write(&report.render(false), &report.render(true));
        }
        if let Some(help) = &e.help {
            let line = format!("help: {help}\n");
            self.write(&line, &line);
        }
        self.fatal(&format!("{context}{}", e.message))
    }

    fn write(&mut self, plain: &str, colored: &str) {
        eprint!("{}", if self.color { colored } else { plain });
        if let Some(f) = &mut self.file {
            let _ = f.write_all(plain.as_bytes());
        }
    }
}

fn image_config_validator(args: Vec<OsString>) -> ExitCode {
    let a: ImageConfigValidatorArgs = match parse(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut log = match a.go.open_log() {
        Ok(log) => log,
        Err(code) => return code,
    };
    a.go.warn_ignored(&mut log, &[]);
    if !a.dir.is_dir() {
        let line = format!(
            "error: --dir {}: not an existing directory\n",
            a.dir.display()
        );
        log.write(&line, &line);
        return ExitCode::from(2);
    }
    let input = absolute(&a.input);
    let opts = Options {
        base_dir: Some(absolute(&a.dir)),
        ..Options::default()
    };
    let mut report = match validate_file(&input, &opts) {
        Ok(v) => v.report,
        Err(e) => {
            let line = format!(
                "Failed while loading image configuration '{}': {e}\n",
                input.display()
            );
            log.write(&line, &line);
            return ExitCode::FAILURE;
        }
    };
    if a.go.log_level < LogLevel::Warn {
        report.diagnostics.retain(|d| d.severity == Severity::Error);
    }
    log.write(&report.render(false), &report.render(true));
    match report.upstream_summary(&input) {
        Some(line) => log.fatal(&line),
        None => ExitCode::SUCCESS,
    }
}

/// Fetches every package an image config needs into a local repository (kiln standing in for
/// the Azure Linux toolkit's imagepkgfetcher).
///
/// Sources are tried in upstream's tiers: --toolchain-rpms-dir and --rpm-dir, then RPMs already
/// in --output-dir, then the --repo-file repositories (unless --disable-upstream-repos). No
/// chroot, worker tarball or tdnf is needed: those flags are accepted and ignored.
#[derive(Debug, Parser)]
#[command(name = "imagepkgfetcher", version, max_term_width = 100)]
struct ImagePkgFetcherArgs {
    /// Path to the image config file.
    #[arg(long, value_name = "PATH", required = true)]
    input: PathBuf,
    /// Directory to download packages into (it becomes a repository).
    #[arg(long, value_name = "DIR", required = true)]
    output_dir: PathBuf,
    /// Base directory for relative file paths in the config (default: the config's directory).
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
    /// Directory of locally built RPMs.
    #[arg(long, value_name = "DIR", required = true)]
    rpm_dir: PathBuf,
    /// Directory of toolchain RPMs (tried first, as upstream's toolchain repo).
    #[arg(long, value_name = "DIR", required = true)]
    toolchain_rpms_dir: PathBuf,
    /// Accepted for compatibility (upstream's chroot location); kiln needs none.
    #[arg(long, value_name = "DIR", required = true)]
    tmp_dir: PathBuf,
    /// Accepted for compatibility (upstream's worker chroot tarball); kiln needs none.
    #[arg(long, value_name = "FILE", required = true)]
    tdnf_worker: PathBuf,
    /// A .repo file of remote repositories. Repeatable; order is priority.
    #[arg(long = "repo-file", value_name = "FILE", required = true)]
    repo_files: Vec<PathBuf>,
    /// Accepted for compatibility (kiln's repository definitions have no preview repository).
    #[arg(long)]
    use_preview_repo: bool,
    /// Leave out the default Azure Linux repositories.
    #[arg(long)]
    disable_default_repos: bool,
    /// Use only local sources: no --repo-file repository.
    #[arg(long)]
    disable_upstream_repos: bool,
    /// Packages of the --repo-file repositories built after this Unix time are not candidates
    /// (tdnf's --snapshottime); local and cached RPMs are not limited.
    #[arg(long, value_name = "POSIX_TIME")]
    repo_snapshot_time: Option<String>,
    /// Not supported by kiln (TLS client certificates): accepted and ignored with a warning.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Not supported by kiln (TLS client certificates): accepted and ignored with a warning.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Fetch only packages missing from --package-graph (not supported by kiln).
    #[arg(long)]
    external_only: bool,
    /// The package graph (.dot) for --external-only.
    #[arg(long, value_name = "FILE")]
    package_graph: Option<PathBuf>,
    /// Fetch exactly the packages of this summary file.
    #[arg(long, value_name = "FILE")]
    input_summary_file: Option<PathBuf>,
    /// Write the fetched package set to this summary file.
    #[arg(long, value_name = "FILE")]
    output_summary_file: Option<PathBuf>,
    /// Check every fetched RPM's signature against the --gpg-key keys.
    #[arg(long)]
    enable_gpg_check: bool,
    /// A public key for --enable-gpg-check. Repeatable.
    #[arg(long = "gpg-key", value_name = "FILE")]
    gpg_keys: Vec<PathBuf>,
    #[command(flatten)]
    go: GoFlags,
}

fn image_pkg_fetcher(args: Vec<OsString>) -> ExitCode {
    let a: ImagePkgFetcherArgs = match parse(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut log = match a.go.open_log() {
        Ok(log) => log,
        Err(code) => return code,
    };
    if a.external_only && a.package_graph.is_none() {
        return log.fatal("input-graph must be provided if external-only is set.");
    }
    if a.external_only {
        return log.fatal(
            "kiln does not support --external-only: it keeps only the packages that upstream's \
             package graph (--package-graph, made by upstream's package build) does not build \
             locally, and kiln does not read that graph; leave out --external-only and \
             --package-graph: kiln fetches the whole set, trying --rpm-dir and \
             --toolchain-rpms-dir first",
        );
    }
    let snapshot_time = match snapshot_time(a.repo_snapshot_time.as_deref()) {
        Ok(t) => t,
        Err(e) => return log.fatal(&e),
    };
    if a.enable_gpg_check && a.gpg_keys.is_empty() {
        return log.fatal("--enable-gpg-check requires at least one --gpg-key path");
    }
    let ignored = flags_set(&[
        (true, "--tmp-dir"),
        (true, "--tdnf-worker"),
        (a.use_preview_repo, "--use-preview-repo"),
        (a.tls_cert.is_some(), "--tls-cert"),
        (a.tls_key.is_some(), "--tls-key"),
    ]);
    a.go.warn_ignored(&mut log, &ignored);
    // Upstream's Makefile passes out/RPMS and the toolchain directory even when empty or
    // not built yet: only existing ones are sources.
    let rpm_dirs = [a.toolchain_rpms_dir, a.rpm_dir]
        .into_iter()
        .filter(|d| d.is_dir())
        .collect();
    let sources = kiln_build::SourceOptions {
        rpm_dirs,
        repo_files: a.repo_files,
        disable_upstream_repos: a.disable_upstream_repos,
        disable_default_repos: true, // upstream's default repos come in through --repo-file
        arch: std::env::consts::ARCH.into(),
        repo_snapshot_time: snapshot_time,
        ..kiln_build::SourceOptions::default()
    };
    let req = kiln_build::FetchRequest {
        input_summary_file: a.input_summary_file,
        output_summary_file: a.output_summary_file,
        enable_gpg_check: a.enable_gpg_check,
        gpg_keys: a.gpg_keys,
        ..kiln_build::FetchRequest::new(&a.output_dir, sources)
    };
    let validate = kiln_build::ValidateRequest {
        base_dir: a.base_dir,
        ..kiln_build::ValidateRequest::new(&a.input)
    };
    let show_warnings = a.go.log_level >= LogLevel::Warn;
    let result = {
        let mut sink = |e: kiln_build::Event| log.event(&e, show_warnings);
        kiln_build::validate(&validate, &mut sink)
            .and_then(|validated| kiln_build::fetch(&req, &validated, &mut sink))
    };
    match result {
        Ok(f) => {
            let line = format!(
                "Fetched {} packages into {} (sources: {})\n",
                f.packages.len(),
                a.output_dir.display(),
                f.tiers.join(", ")
            );
            log.write(&line, &line);
            ExitCode::SUCCESS
        }
        Err(e) => log.error(&e, ""),
    }
}

/// Builds a config's disk image or root filesystem from a local package repository (kiln
/// standing in for the Azure Linux toolkit's imager): `disk0.raw` (and partition dumps) or
/// `rootfs/` in --output-dir. No loop device, mount or worker chroot is used.
#[derive(Debug, Parser)]
#[command(name = "imager", version, max_term_width = 100)]
struct ImagerArgs {
    /// Path to the image config file.
    #[arg(long, value_name = "PATH", required = true)]
    input: PathBuf,
    /// Directory for the work files (default: a directory in --output-dir).
    #[arg(long, value_name = "DIR")]
    build_dir: Option<PathBuf>,
    /// Base directory for relative file paths in the config.
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
    /// Where imager's output goes (with --live-install: its work files).
    #[arg(long, value_name = "DIR", required_unless_present = "live_install")]
    output_dir: Option<PathBuf>,
    /// The local package repository (imagepkgfetcher's output; with --live-install, default
    /// /mnt/cdrom/RPMS: the installation media's, as upstream's mariner-iso.repo names it).
    #[arg(long, value_name = "DIR", required_unless_present = "live_install")]
    local_repo: Option<PathBuf>,
    /// Accepted for compatibility (upstream's worker chroot tarball); kiln needs none.
    #[arg(long, value_name = "FILE")]
    tdnf_worker: Option<PathBuf>,
    /// Accepted for compatibility (packages come from --local-repo only, as in upstream's
    /// offline build).
    #[arg(long, value_name = "FILE")]
    repo_file: Option<PathBuf>,
    /// Accepted for compatibility (upstream's assets are embedded).
    #[arg(long, value_name = "DIR")]
    assets: Option<PathBuf>,
    /// Where to write the installed packages' summary (upstream's image_pkg_manifest.json).
    #[arg(long, value_name = "FILE")]
    output_image_contents: Option<PathBuf>,
    /// Install onto the config's TargetDisk (a block device): partition table and filesystems
    /// written straight onto it, packages from the installation media; then every ext
    /// filesystem is checked (the live installer runs this).
    #[arg(long)]
    live_install: bool,
    /// Print `progress:<percent>` and `action:<text>` lines on stdout.
    #[arg(long)]
    emit_progress: bool,
    /// BUILD_NUMBER written to /etc/image-id.
    #[arg(long, value_name = "N", default_value = "")]
    build_number: String,
    /// Appended to the image's /etc/tdnf/tdnf.conf as `snapshottime=` (when it exists), as
    /// upstream's imager does; --local-repo is not limited by it.
    #[arg(long, value_name = "POSIX_TIME")]
    repo_snapshot_time: Option<String>,
    #[command(flatten)]
    go: GoFlags,
}

/// Where a live install takes its packages from: the installation media's `RPMS/` (upstream's
/// `/etc/yum.repos.d/mariner-iso.repo`).
const LIVE_INSTALL_REPO: &str = "/mnt/cdrom/RPMS";

fn imager(args: Vec<OsString>) -> ExitCode {
    let a: ImagerArgs = match parse(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Err(code) = crate::become_root() {
        return code;
    }
    let mut log = match a.go.open_log() {
        Ok(log) => log,
        Err(code) => return code,
    };
    let ignored = flags_set(&[
        (a.tdnf_worker.is_some(), "--tdnf-worker"),
        (a.repo_file.is_some(), "--repo-file"),
        (a.assets.is_some(), "--assets"),
        (a.build_dir.is_some() && !a.live_install, "--build-dir"),
    ]);
    a.go.warn_ignored(&mut log, &ignored);
    let local_repo = a
        .local_repo
        .clone()
        .unwrap_or_else(|| PathBuf::from(LIVE_INSTALL_REPO));
    let output_dir = a
        .output_dir
        .clone()
        .or_else(|| a.build_dir.clone())
        .unwrap_or_else(std::env::temp_dir);
    let validate = kiln_build::ValidateRequest {
        base_dir: a.base_dir.clone(),
        ..kiln_build::ValidateRequest::new(&a.input)
    };
    let validated = {
        let mut sink = |e: kiln_build::Event| log.event(&e, a.go.log_level >= LogLevel::Warn);
        kiln_build::validate(&validate, &mut sink)
    };
    let validated = match validated {
        Ok(v) => v,
        Err(e) => {
            return log.error(
                &e,
                &format!(
                    "Failed to load configuration file ({}) with base directory ({}): ",
                    a.input.display(),
                    a.base_dir.as_deref().unwrap_or(Path::new("")).display()
                ),
            )
        }
    };
    let repo_snapshot_time = match snapshot_time(a.repo_snapshot_time.as_deref()) {
        Ok(t) => t,
        Err(e) => return log.fatal(&e),
    };
    let req = kiln_build::ComposeRequest {
        repos: vec![local_repo],
        output_dir: output_dir.clone(),
        no_weak_deps: false,
        build_number: a.build_number.clone(),
        sandbox: Default::default(),
        repo_snapshot_time,
        live_install: a.live_install,
        package_cache: None,
    };
    let emit = a.emit_progress;
    let mut progress = crate::render::Renderer::with_mode(
        crate::render::Mode::EmitProgress,
        crate::render::Options::new(false, Default::default(), a.go.log_color),
    );
    let result = {
        let mut sink = |e: kiln_build::Event| {
            if emit {
                progress.event(e);
            } else {
                log.event(&e, a.go.log_level >= LogLevel::Warn);
            }
        };
        kiln_build::compose(&req, &validated, &mut sink)
    };
    match result {
        Ok(done) => {
            if let Some(path) = &a.output_image_contents {
                if let Err(e) = std::fs::write(path, kiln_repo::summary::write(&done.packages)) {
                    return log.fatal(&format!("cannot write {}: {e}", path.display()));
                }
            }
            if emit {
                println!("progress:100");
            }
            let line = if a.live_install {
                format!("Installed onto {}\n", done.outputs.join(", "))
            } else {
                format!(
                    "Built {} in {}\n",
                    done.outputs.join(", "),
                    output_dir.display()
                )
            };
            log.write(&line, &line);
            ExitCode::SUCCESS
        }
        Err(e) => log.error(&e, ""),
    }
}

/// Makes a config's ISO installer from a fetched package repository and the installer initrd
/// (kiln standing in for the Azure Linux toolkit's isomaker): upstream's ISO tree, written by
/// kiln itself (no mkisofs, no loop mount), hybrid so it also boots from a USB stick.
#[derive(Debug, Parser)]
#[command(name = "isomaker", version, max_term_width = 100)]
struct IsoMakerArgs {
    /// Path to the image config file.
    #[arg(long, value_name = "PATH", required = true)]
    input: PathBuf,
    /// Base directory for relative file paths in the config.
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
    /// Directory the ISO's tree is staged in (recreated, removed at the end).
    #[arg(long, value_name = "DIR", required = true)]
    build_dir: PathBuf,
    /// The installer initrd (iso-initrd.img).
    #[arg(long, value_name = "FILE", required = true)]
    initrd_path: PathBuf,
    /// The fetched package repository: the ISO's RPMS/.
    #[arg(long, value_name = "DIR", required = true)]
    iso_repo: PathBuf,
    /// In the ISO's name: <config>-<version><tag>.iso.
    #[arg(long, value_name = "VERSION", required = true)]
    release_version: String,
    /// Accepted for compatibility (upstream's toolkit resources: kiln's are built in).
    #[arg(long, value_name = "DIR", required = true)]
    resources: PathBuf,
    /// Where the ISO goes.
    #[arg(long, value_name = "DIR", required = true)]
    output_dir: PathBuf,
    /// The ISO installs without asking (config/unattended_config.json).
    #[arg(long)]
    unattended_install: bool,
    /// Written to config/repo-snapshot-time.txt for the installer.
    #[arg(long, value_name = "POSIX_TIME")]
    repo_snapshot_time: Option<String>,
    /// In the ISO's name, right after the release version.
    #[arg(long, value_name = "TAG", default_value = "")]
    image_tag: String,
    #[command(flatten)]
    go: GoFlags,
}

fn isomaker(args: Vec<OsString>) -> ExitCode {
    let a: IsoMakerArgs = match parse(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut log = match a.go.open_log() {
        Ok(log) => log,
        Err(code) => return code,
    };
    a.go.warn_ignored(&mut log, &["--resources"]);
    let repo_snapshot_time = match snapshot_time(a.repo_snapshot_time.as_deref()) {
        Ok(t) => t,
        Err(e) => return log.fatal(&e),
    };
    let validate = kiln_build::ValidateRequest {
        base_dir: a.base_dir.clone(),
        ..kiln_build::ValidateRequest::new(absolute(&a.input))
    };
    let req = kiln_build::IsoRequest {
        iso_repo: a.iso_repo,
        initrd: a.initrd_path,
        build_dir: a.build_dir,
        output_dir: a.output_dir,
        release_version: a.release_version,
        image_tag: a.image_tag,
        unattended: a.unattended_install,
        repo_snapshot_time,
        kernel_args: Vec::new(),
    };
    let warnings = a.go.log_level >= LogLevel::Warn;
    let result = {
        let mut sink = |e: kiln_build::Event| log.event(&e, warnings);
        kiln_build::validate(&validate, &mut sink)
            .and_then(|v| kiln_build::make_iso(&req, &v, &mut sink))
    };
    match result {
        Ok(made) => {
            let line = format!("Built {}\n", made.iso.display());
            log.write(&line, &line);
            ExitCode::SUCCESS
        }
        Err(e) => log.error(&e, ""),
    }
}

/// Installs the system of the installation media onto a disk (kiln standing in for the Azure
/// Linux toolkit's liveinstaller, run by the ISO's /root/runliveinstaller): unattended when
/// --input exists, onto its TargetDisk, with the imager's progress lines on the console.
#[derive(Debug, Parser)]
#[command(name = "liveinstaller", version, max_term_width = 100)]
struct LiveInstallerArgs {
    /// The unattended config (when the file does not exist, the install is attended).
    #[arg(long, value_name = "PATH", required = true)]
    input: PathBuf,
    /// The attended install's template config.
    #[arg(long, value_name = "PATH")]
    template_config: Option<PathBuf>,
    /// Attended even when --input exists.
    #[arg(long)]
    attended: bool,
    /// The imager to run.
    #[arg(long, value_name = "PATH", required = true)]
    imager: PathBuf,
    /// Work directory.
    #[arg(long, value_name = "DIR", required = true)]
    build_dir: PathBuf,
    /// Base directory for relative file paths in the config.
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
    /// Passed on to the imager.
    #[arg(long, value_name = "POSIX_TIME")]
    repo_snapshot_time: Option<String>,
    /// kiln: the unattended install's disk, replacing the config's TargetDisk: smallest,
    /// largest, serial:<S>, model:<M> or a device path (default: the kernel command line's
    /// kiln.target-disk=, if any).
    #[arg(long, value_name = "SELECTOR")]
    target_disk: Option<String>,
    #[command(flatten)]
    go: GoFlags,
}

fn liveinstaller(args: Vec<OsString>) -> ExitCode {
    let a: LiveInstallerArgs = match parse(args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut log = match a.go.open_log() {
        Ok(log) => log,
        Err(code) => return code,
    };
    for (flag, dir, is_dir) in [
        ("--imager", &a.imager, false),
        ("--build-dir", &a.build_dir, true),
    ] {
        if !(if is_dir { dir.is_dir() } else { dir.is_file() }) {
            return log.fatal(&format!("{flag} {}: does not exist", dir.display()));
        }
    }
    let installer = kiln_installer::Installer {
        input: a.input,
        template_config: a.template_config,
        attended: a.attended,
        imager: a.imager,
        build_dir: a.build_dir,
        base_dir: a.base_dir,
        repo_snapshot_time: a.repo_snapshot_time,
        log_level: format!("{:?}", a.go.log_level).to_lowercase(),
        imager_log: PathBuf::from("/var/log/imager.log"),
        target_disk: a.target_disk,
        kernel_cmdline: Some(PathBuf::from("/proc/cmdline")),
    };
    // Progress goes to the console (stdout) and the log.
    let result = installer.run(&mut |line| {
        println!("{line}");
        if let Some(f) = &mut log.file {
            let _ = writeln!(f, "{line}");
        }
    });
    match result {
        Ok(done) => {
            let line = format!("Installed onto {}\n", done.target);
            log.write(&line, &line);
            ExitCode::SUCCESS
        }
        Err(e) => log.fatal(&e.to_string()),
    }
}

/// roast: the same flags as `kiln roast`.
#[derive(Debug, Parser)]
#[command(name = "roast", version, max_term_width = 100)]
struct RoastCommand {
    #[command(flatten)]
    args: crate::roast::RoastArgs,
}

fn roast(args: Vec<OsString>) -> ExitCode {
    match RoastCommand::try_parse_from(args) {
        Ok(c) if c.args.reads_imager_output() => match crate::become_root() {
            Ok(_) => crate::roast::run(c.args, personality()),
            Err(code) => code,
        },
        Ok(c) => crate::roast::run(c.args, personality()),
        Err(e) => {
            let _ = e.print();
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// The global flags of a personality (which has none of kiln's own).
fn personality() -> crate::cli::Global {
    crate::cli::Global {
        color: ColorChoice::Auto,
        verbosity: Default::default(),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `--repo-snapshot-time` as upstream's tools take it: whole seconds since 1970.
fn snapshot_time(text: Option<&str>) -> Result<Option<u64>, String> {
    text.map(|t| {
        t.parse::<u64>().map_err(|_| {
            format!(
                "--repo-snapshot-time {t:?} is not a POSIX time: give whole seconds since \
                 1970-01-01 UTC (e.g. `date -d 2025-01-31 +%s`)"
            )
        })
    })
    .transpose()
}
