//! # kiln-config
//!
//! The Azure Linux 3.0 image configuration format: its typed model ([`model`]), decoding with
//! upstream's semantics (case-insensitive keys, unknown keys ignored, last duplicate wins, Go's
//! type rules), every validation rule of upstream's `configuration` package and
//! `imageconfigvalidator`, and diagnostics that say what is wrong and exactly where.
//!
//! ```no_run
//! use kiln_config::{validate_file, Options};
//! let v = validate_file("imageconfigs/demo-efi.json".as_ref(), &Options::default()).unwrap();
//! print!("{}", v.report.render(false));
//! if let Some(loaded) = v.config {
//!     println!("{} system configs", loaded.config.system_configs.len());
//! }
//! ```
//!
//! Upstream stops at its first error; [`validate_file`] reports all of them. Each error also
//! carries the text upstream would print ([`Diagnostic::upstream`]), and
//! [`Report::upstream_error`] picks the one upstream would have stopped at.

pub mod diag;
pub mod json;
pub mod kickstart;
pub mod model;
pub mod packages;
pub mod schema;

mod decode;
mod rules;
mod validator;

pub use diag::{Diagnostic, Located, Report, Severity, SourceFile};
pub use model::*;

use std::path::{Path, PathBuf};

/// What [`validate_file`] checks besides the config itself.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory relative host paths are resolved against (default: the config's directory).
    pub base_dir: Option<PathBuf>,
    /// `imageconfigvalidator`'s package checks (reads the package lists).
    pub package_checks: bool,
    /// Warn about scripts, additional files, SSH keys and raw binaries that do not exist.
    pub file_checks: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            base_dir: None,
            package_checks: true,
            file_checks: true,
        }
    }
}

/// The result of validating a config.
#[derive(Debug, Clone)]
pub struct Validation {
    pub report: Report,
    /// The decoded config with host paths made absolute; present when the config is valid.
    pub config: Option<LoadedConfig>,
}

/// The config file itself could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ReadError {
    /// Go's text for the failure (`open <path>: no such file or directory`), as upstream prints it.
    pub message: String,
}

/// Reads and validates a config file.
pub fn validate_file(path: &Path, opts: &Options) -> Result<Validation, ReadError> {
    let bytes = std::fs::read(path).map_err(|e| ReadError {
        message: packages::go_os_error(if path.is_dir() { "read" } else { "open" }, path, &e),
    })?;
    Ok(validate_bytes(&bytes, path, opts))
}

/// Validates config text; `path` names it in diagnostics and anchors relative paths.
pub fn validate_bytes(bytes: &[u8], path: &Path, opts: &Options) -> Validation {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut report = Report::default();
    report.sources.push(SourceFile::new(path, text));
    let root = match json::parse(report.sources[0].text.as_bytes()) {
        Ok(root) => root,
        Err(e) => {
            let mut message = e.message.clone();
            if report.sources[0].text.starts_with('\u{feff}') {
                message.push_str("\n(the file starts with a UTF-8 byte order mark, which JSON does not allow; remove it)");
            }
            let span = json::Span::new(e.offset, e.offset + 1);
            let mut d = decode::Decoder::new(&mut report, 0);
            d.phase = 0;
            d.error_with_upstream(span, String::new(), message, e.message);
            return Validation {
                report,
                config: None,
            };
        }
    };
    let mut config = Config::default();
    let base_dir = absolute(
        opts.base_dir
            .clone()
            .unwrap_or_else(|| path.parent().map(Path::to_path_buf).unwrap_or_default()),
    );
    {
        let mut d = decode::Decoder::new(&mut report, 0);
        decode::config(&mut d, &root, &mut config);
        let decoded_cleanly = !d.had_type_errors();
        config.resolve_paths(&base_dir);
        if decoded_cleanly {
            if opts.package_checks {
                validator::check_packages(&mut d, &root, &config);
            }
            if opts.file_checks {
                validator::check_files(&mut d, &root, &config);
            }
        }
    }
    report.sort();
    let config = report.is_valid().then(|| LoadedConfig {
        config,
        base_dir,
        config_path: path.to_path_buf(),
    });
    Validation { report, config }
}

/// Loads a config for building: fully validated, host paths absolute. The error report holds
/// every problem; the returned report holds the warnings.
pub fn load(path: &Path, base_dir: Option<&Path>) -> Result<(LoadedConfig, Report), LoadError> {
    let opts = Options {
        base_dir: base_dir.map(Path::to_path_buf),
        ..Options::default()
    };
    let v = validate_file(path, &opts).map_err(LoadError::Read)?;
    match v.config {
        Some(c) => Ok((c, v.report)),
        None => Err(LoadError::Invalid(Box::new(v.report))),
    }
}

/// Why [`load`] failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(ReadError),
    #[error("the config is invalid")]
    Invalid(Box<Report>),
}

fn absolute(p: PathBuf) -> PathBuf {
    let p = if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p
    };
    std::path::absolute(&p).unwrap_or(p)
}

/// Decoding single objects, for the upstream compatibility corpus (whose cases exercise one
/// type at a time). Not a stable API.
#[doc(hidden)]
pub mod compat {
    use super::*;

    /// Decodes and validates `text` as a value of upstream type `level` (`Partition`, `CGroup`,
    /// …). Returns `None` for an unknown level.
    pub fn check_fragment(level: &str, text: &str) -> Option<Report> {
        let mut report = Report::default();
        report
            .sources
            .push(SourceFile::new("fragment.json", text.to_string()));
        let root = match json::parse(text.as_bytes()) {
            Ok(r) => r,
            Err(e) => {
                let mut d = decode::Decoder::new(&mut report, 0);
                let span = json::Span::new(e.offset, e.offset);
                d.error_with_upstream(span, String::new(), e.message.clone(), e.message);
                return Some(report);
            }
        };
        {
            let mut d = decode::Decoder::new(&mut report, 0);
            let d = &mut d;
            let n = &root;
            match level {
                "Config" => decode::config(d, n, &mut Config::default()),
                "Disk" => decode::disk(d, n, &mut Disk::default()),
                "Partition" => decode::partition(d, n, &mut Partition::default()),
                "PartitionFlag" => decode::partition_flag(d, n, &mut None),
                "PartitionTableType" => decode::partition_table_type(d, n, &mut Default::default()),
                "SystemConfig" => decode::system_config(d, n, &mut SystemConfig::default()),
                "KernelCommandLine" => {
                    decode::kernel_command_line(d, n, &mut KernelCommandLine::default())
                }
                "ImaPolicy" => decode::ima_policy(d, n, &mut None),
                "SELinux" => decode::selinux(d, n, &mut Default::default()),
                "CGroup" => decode::cgroup(d, n, &mut Default::default()),
                "MountIdentifier" => decode::mount_identifier(d, n, &mut Default::default()),
                "PartitionSetting" => {
                    decode::partition_setting(d, n, &mut PartitionSetting::default())
                }
                "FileConfigList" => decode::file_config_list(d, n, &mut Vec::new()),
                "FilePermissions" => decode::file_permissions(d, n, &mut None),
                "Network" => decode::network(d, n, &mut Network::default()),
                "PackageRepo" => decode::package_repo(d, n, &mut PackageRepo::default()),
                "User" => decode::user(d, n, &mut User::default()),
                _ => return None,
            }
        }
        report.sort();
        Some(report)
    }
}
