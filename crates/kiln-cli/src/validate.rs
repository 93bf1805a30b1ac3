//! `kiln validate`.

use crate::output::ColorChoice;
use clap::ValueEnum;
use kiln_config::{validate_file, Options, Validation};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Diagnostics with source snippets, then a summary line.
    Human,
    /// One JSON document.
    Json,
}

/// Exit status for an invalid config.
pub const INVALID: u8 = 1;
/// Exit status for usage and I/O errors.
pub const USAGE: u8 = 2;

/// Validates `config`, printing the report. 0 valid, 1 invalid, 2 the file cannot be read.
pub fn run(
    config: &Path,
    base_dir: Option<PathBuf>,
    format: Format,
    package_checks: bool,
    color: ColorChoice,
) -> ExitCode {
    if let Some(dir) = &base_dir {
        if !dir.is_dir() {
            eprintln!(
                "error: --base-dir {}: not an existing directory",
                dir.display()
            );
            return ExitCode::from(USAGE);
        }
    }
    let opts = Options {
        base_dir,
        package_checks,
        ..Options::default()
    };
    let Validation { report, .. } = match validate_file(config, &opts) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: cannot read the config: {e}");
            return ExitCode::from(USAGE);
        }
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).expect("reports serialize")
        ),
        Format::Human => {
            print!("{}", report.render(color.stdout()));
            println!("{}", report.summary(config));
        }
    }
    if report.is_valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INVALID)
    }
}
