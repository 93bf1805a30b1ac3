//! `kiln verify`: check an image file's structure.

use clap::Args;
use kiln_formats::verify::{verify, Severity, VerifyOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// Check the structure of a raw, VHD, VHDX, QCOW2 or VMDK image, reporting each problem with its
/// byte offset.
///
/// Everything qemu checks when it opens the image is checked, and more: VHD: footer checksum and
/// fields, footer copy, dynamic header, BAT. VHDX: headers and CRC-32C, region tables, metadata,
/// BAT. QCOW2: header fields and limits, header extensions, L1/L2 tables, refcounts, COPIED
/// flags. Features kiln does not check (encryption, backing files, external data files,
/// internal snapshots, bitmaps, VMDK descriptors, VHDX logs to replay) are reported as "not
/// supported", never as ok. Files that are not disk images (archives, compressed files, ISOs),
/// directories, devices and FIFOs are refused.
///
/// Exit status: 0 ok (warnings allowed), 1 errors found, 2 the file cannot be read or is not a
/// disk image, 3 no errors found but the image uses features kiln does not check.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image file.
    image: PathBuf,
    /// Also apply Azure's upload rules: a fixed VHD, virtual size a whole number of MiB, file
    /// size = virtual size + 512.
    #[arg(long)]
    azure: bool,
    /// Print one JSON document: {"image", "format", "subformat", "virtual_size", "verdict":
    /// "ok"|"errors"|"not supported", "problems": [{"severity", "offset", "message"}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: VerifyArgs) -> ExitCode {
    let report = match verify(&args.image, VerifyOptions { azure: args.azure }) {
        Ok(r) => r,
        Err(e) => {
            if args.json {
                let doc = serde_json::json!({"image": args.image, "error": e.to_string()});
                println!("{doc}");
            } else {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let errors = report.count(Severity::Error);
    let unsupported = report.count(Severity::Unsupported);
    let status = if errors > 0 {
        ExitCode::FAILURE
    } else if unsupported > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    };
    if args.json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| {
                serde_json::json!({
                    "severity": p.severity.name(),
                    "offset": p.offset,
                    "message": p.message,
                })
            })
            .collect();
        let verdict = match (errors, unsupported) {
            (0, 0) => "ok",
            (0, _) => "not supported",
            _ => "errors",
        };
        let doc = serde_json::json!({
            "image": args.image,
            "format": report.format.to_string(),
            "subformat": report.subformat.map(|s| s.to_string()),
            "virtual_size": report.virtual_size,
            "verdict": verdict,
            "problems": problems,
        });
        println!("{doc}");
        return status;
    }
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
    let verdict = if errors > 0 {
        format!("{errors} error(s)")
    } else if unsupported > 0 {
        format!("not supported: {unsupported} feature(s) kiln does not check, so it cannot say the image is good")
    } else {
        "ok".to_string()
    };
    println!(
        "{}: {kind}, virtual size {size}: {verdict}",
        args.image.display()
    );
    status
}
