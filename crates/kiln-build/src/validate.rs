//! The validate stage: the config read and checked as upstream's imageconfigvalidator does, its
//! warnings told as events (a typo'd key must not build silently).

use crate::error::{Error, ErrorKind};
use crate::event::{staged, Event, Location, Stage};
use kiln_config::model::LoadedConfig;
use kiln_config::{validate_file, Options};
use std::path::{Path, PathBuf};

/// Which config, and how to read it.
#[derive(Debug, Clone)]
pub struct ValidateRequest {
    pub config: PathBuf,
    /// Directory relative paths in the config are resolved against (default: the config's).
    pub base_dir: Option<PathBuf>,
    /// Read the package lists (upstream's package checks).
    pub package_checks: bool,
    /// Warn about scripts, files, keys and raw binaries that do not exist.
    pub file_checks: bool,
}

impl ValidateRequest {
    pub fn new(config: impl Into<PathBuf>) -> ValidateRequest {
        ValidateRequest {
            config: config.into(),
            base_dir: None,
            package_checks: true,
            file_checks: true,
        }
    }
}

/// A valid config, with the warnings it got.
#[derive(Debug, Clone)]
pub struct Validated {
    pub loaded: LoadedConfig,
    /// The config's name: its file name without `.json` (names the build's folders and log).
    pub name: String,
    /// Each warning with its place.
    pub warnings: Vec<(String, Location)>,
}

impl Validated {
    pub fn config(&self) -> &kiln_config::model::Config {
        &self.loaded.config
    }
}

/// The name a config's build folders, log and messages use.
pub fn config_name(path: &Path) -> String {
    path.file_stem()
        .map_or("image".into(), |s| s.to_string_lossy().into_owned())
}

/// Reads and validates the config; every warning is told as [`Event::Warning`] with its place.
/// An invalid config is an [`ErrorKind::InvalidConfig`] error carrying the whole report.
pub fn validate(
    req: &ValidateRequest,
    on_event: &mut dyn FnMut(Event),
) -> Result<Validated, Error> {
    staged(Stage::Validate, on_event, |on_event| {
        validate_quietly(req, on_event)
    })
}

/// [`validate`] without the stage's start and end events (inside a build's validate stage).
pub(crate) fn validate_quietly(
    req: &ValidateRequest,
    on_event: &mut dyn FnMut(Event),
) -> Result<Validated, Error> {
    let stage = Stage::Validate;
    let options = Options {
        base_dir: req.base_dir.clone(),
        package_checks: req.package_checks,
        file_checks: req.file_checks,
    };
    let validation = validate_file(&req.config, &options).map_err(|e| {
        Error::new(
            stage,
            ErrorKind::ConfigUnreadable,
            format!("cannot read the config: {e}"),
        )
        .help("check the path of the config file")
    })?;
    let report = validation.report;
    let mut warnings = Vec::new();
    for d in report.warnings() {
        let l = report.locate(d);
        let at = Location {
            file: l.file.to_path_buf(),
            line: l.line,
            column: l.column,
            path: l.path.to_string(),
        };
        warnings.push((d.message.clone(), at));
    }
    // An invalid config's report carries its warnings too.
    if validation.config.is_some() {
        for (message, at) in &warnings {
            on_event(Event::Warning {
                stage,
                message: message.clone(),
                at: Some(at.clone()),
            });
        }
    }
    match validation.config {
        Some(loaded) if !loaded.config.system_configs.is_empty() => Ok(Validated {
            name: config_name(&req.config),
            loaded,
            warnings,
        }),
        Some(_) => Err(Error::new(
            stage,
            ErrorKind::InvalidConfig,
            "the config has no SystemConfigs",
        )
        .help("add a SystemConfig to the config's SystemConfigs")),
        None => {
            let first = report.errors().next().map(|d| {
                let l = report.locate(d);
                Location {
                    file: l.file.to_path_buf(),
                    line: l.line,
                    column: l.column,
                    path: l.path.to_string(),
                }
            });
            let mut e = Error::new(
                stage,
                ErrorKind::InvalidConfig,
                format!("{} is not a valid config (see above)", req.config.display()),
            )
            .help(format!(
                "fix the errors above (`kiln validate {}` lists them all)",
                req.config.display()
            ));
            e.at = first;
            e.report = Some(Box::new(report));
            Err(e)
        }
    }
}
