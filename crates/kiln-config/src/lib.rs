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
pub mod input;
pub mod json;
pub mod kickstart;
pub mod model;
pub mod packages;
pub mod rawbin;
pub mod schema;

mod decode;
mod rules;
mod safety;
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
    let bytes = packages::read_json_file(path, input::CONFIG_LIMIT, "config file")
        .map_err(|message| ReadError { message })?;
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
            validator::check_raw_binaries(&mut d, &root, &config, opts.file_checks);
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

    /// Parses `text` and runs `decode` on it, collecting diagnostics.
    fn run<T: Default>(
        text: &str,
        decode: impl FnOnce(&mut decode::Decoder, &json::Node, &mut T),
    ) -> (T, Report) {
        let mut report = Report::default();
        let mut value = T::default();
        report
            .sources
            .push(SourceFile::new("fragment.json", text.to_string()));
        match json::parse(text.as_bytes()) {
            Ok(root) => {
                let mut d = decode::Decoder::new(&mut report, 0);
                decode(&mut d, &root, &mut value);
            }
            Err(e) => {
                let mut d = decode::Decoder::new(&mut report, 0);
                let span = json::Span::new(e.offset, e.offset);
                d.error_with_upstream(span, String::new(), e.message.clone(), e.message);
            }
        }
        report.sort();
        (value, report)
    }

    pub fn decode_config(text: &str) -> (Config, Report) {
        run(text, decode::config)
    }

    pub fn decode_system_config(text: &str) -> (SystemConfig, Report) {
        run(text, decode::system_config)
    }

    pub fn decode_network(text: &str) -> (Network, Report) {
        run(text, decode::network)
    }

    pub fn decode_package_repo(text: &str) -> (PackageRepo, Report) {
        run(text, decode::package_repo)
    }

    /// Decodes and validates `text` as a value of upstream type `level` (`Partition`, `CGroup`,
    /// …). Returns `None` for an unknown level.
    pub fn check_fragment(level: &str, text: &str) -> Option<Report> {
        Some(match level {
            "Config" => decode_config(text).1,
            "Disk" => run(text, decode::disk).1,
            "Partition" => run(text, decode::partition).1,
            "PartitionFlag" => run(text, decode::enum_element::<PartitionFlag>).1,
            "PartitionTableType" => run(text, decode::enum_value::<PartitionTableType>).1,
            "SystemConfig" => decode_system_config(text).1,
            "KernelCommandLine" => run(text, decode::kernel_command_line).1,
            "ImaPolicy" => run(text, decode::enum_element::<ImaPolicy>).1,
            "SELinux" => run(text, decode::enum_value::<SELinux>).1,
            "CGroup" => run(text, decode::enum_value::<CGroup>).1,
            "MountIdentifier" => run(text, decode::enum_value::<MountIdentifier>).1,
            "PartitionSetting" => run(text, decode::partition_setting).1,
            "FileConfigList" => run(text, decode::file_config_list).1,
            "FilePermissions" => run(text, decode::file_permissions).1,
            "Network" => decode_network(text).1,
            "PackageRepo" => decode_package_repo(text).1,
            "User" => run(text, decode::user).1,
            _ => return None,
        })
    }
}
