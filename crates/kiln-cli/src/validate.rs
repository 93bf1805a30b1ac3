//! `kiln validate`.

use crate::output::ColorChoice;
use clap::ValueEnum;
use kiln_config::{validate_file, Options, Validation};
use std::path::PathBuf;
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

/// Validates each config, printing the reports. 0 all valid, 1 any invalid, 2 a file cannot be
/// read. JSON output is one document covering every config (diagnostics name their file).
pub fn run(
    configs: &[PathBuf],
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
    let mut status = 0u8;
    let mut all_valid = true;
    let mut json_diagnostics = Vec::new();
    for config in configs {
        let Validation { report, .. } = match validate_file(config, &opts) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: cannot read the config: {e}");
                status = USAGE;
                continue;
            }
        };
        all_valid &= report.is_valid();
        if !report.is_valid() {
            status = status.max(INVALID);
        }
        match format {
            Format::Json => {
                if let serde_json::Value::Array(d) = report.to_json()["diagnostics"].take() {
                    json_diagnostics.extend(d);
                }
            }
            Format::Human => {
                print!("{}", report.render(color.stdout()));
                println!("{}", report.summary(config));
            }
        }
    }
    if format == Format::Json {
        let doc = serde_json::json!({ "valid": all_valid && status != USAGE, "diagnostics": json_diagnostics });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("reports serialize")
        );
    }
    ExitCode::from(status)
}
