//! `kiln verify`: check an image file's structure.

use clap::Args;
use kiln_formats::verify::{verify, VerifyOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// Check the structure of a raw, VHD, VHDX or QCOW2 image, reporting each problem with its byte
/// offset.
///
/// VHD: footer checksum and fields, footer copy, dynamic header, BAT. VHDX: headers and CRC-32C,
/// region tables, metadata, BAT. QCOW2: header, L1/L2 tables, refcounts, COPIED flags.
/// Exit status: 0 no errors (warnings allowed), 1 problems found, 2 the file cannot be read.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image file.
    image: PathBuf,
    /// Also apply Azure's upload rules: a fixed VHD, virtual size a whole number of MiB, file
    /// size = virtual size + 512.
    #[arg(long)]
    azure: bool,
}

pub fn run(args: VerifyArgs) -> ExitCode {
    let report = match verify(&args.image, VerifyOptions { azure: args.azure }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.image.display());
            return ExitCode::from(2);
        }
    };
    for p in &report.problems {
        println!("{}: {p}", args.image.display());
    }
    let kind = match report.subformat {
        Some(s) => format!("{} {s}", report.format),
        None => report.format.to_string(),
    };
    let size = report
        .virtual_size
        .map_or("unknown".to_string(), |s| format!("{s} bytes"));
    let errors = report
        .problems
        .iter()
        .filter(|p| p.severity == kiln_formats::verify::Severity::Error)
        .count();
    println!(
        "{}: {kind}, virtual size {size}: {}",
        args.image.display(),
        if errors == 0 {
            "ok".to_string()
        } else {
            format!("{errors} error(s)")
        }
    );
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
