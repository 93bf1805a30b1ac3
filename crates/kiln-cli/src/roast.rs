//! `kiln roast`: convert a raw disk image into a distributable format.

use crate::output::ColorChoice;
use clap::{Args, ValueEnum};
use kiln_formats::{convert, Compression, ConvertOptions, Format, Subformat};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Sparse raw copy.
    Raw,
    /// VHD: fixed by default (what Azure accepts: whole MiB, padded if needed).
    Vhd,
    /// VHDX: dynamic by default (as upstream).
    Vhdx,
    /// QCOW2 version 3.
    Qcow2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SubformatArg {
    Fixed,
    Dynamic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    None,
    Zlib,
    Zstd,
}

/// Convert a raw disk image into raw, VHD, VHDX or QCOW2, natively (no qemu-img).
///
/// The input is read by its allocated extents and zero blocks are never written, so sparse
/// disks convert fast. The output appears under its name only when complete. With
/// SOURCE_DATE_EPOCH set, ids and timestamps in the image are derived from it (reproducible).
#[derive(Debug, Args)]
pub struct RoastArgs {
    /// The raw disk image to convert.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Where to write the image.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// Output format (default: from the output's extension).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Fixed or dynamic (VHD default fixed, VHDX default dynamic).
    #[arg(long, value_enum)]
    subformat: Option<SubformatArg>,
    /// Cluster compression (QCOW2 only).
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    compression: CompressionArg,
}

fn format_from_extension(path: &Path) -> Option<FormatArg> {
    match path.extension()?.to_str()? {
        "raw" | "img" => Some(FormatArg::Raw),
        "vhd" => Some(FormatArg::Vhd),
        "vhdx" => Some(FormatArg::Vhdx),
        "qcow2" => Some(FormatArg::Qcow2),
        _ => None,
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn run(args: RoastArgs, color: ColorChoice) -> ExitCode {
    let Some(format) = args.format.or_else(|| format_from_extension(&args.output)) else {
        eprintln!(
            "error: cannot tell the format from {}; pass --format raw|vhd|vhdx|qcow2",
            args.output.display()
        );
        return ExitCode::from(2);
    };
    let format = match format {
        FormatArg::Raw => Format::Raw,
        FormatArg::Vhd => Format::Vhd,
        FormatArg::Vhdx => Format::Vhdx,
        FormatArg::Qcow2 => Format::Qcow2,
    };
    let mut opts = ConvertOptions::new(format);
    opts.identity = kiln_formats::ident::Identity::from_env(
        &args
            .output
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
    );
    opts.subformat = args.subformat.map(|s| match s {
        SubformatArg::Fixed => Subformat::Fixed,
        SubformatArg::Dynamic => Subformat::Dynamic,
    });
    opts.compression = match args.compression {
        CompressionArg::None => Compression::None,
        CompressionArg::Zlib => Compression::Zlib,
        CompressionArg::Zstd => Compression::Zstd,
    };
    if opts.compression != Compression::None && format != Format::Qcow2 {
        eprintln!("error: --compression applies to qcow2 only");
        return ExitCode::from(2);
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(format!("converting to {}", format.name()));
        bar
    });
    if let Some(bar) = &bar {
        let b = bar.clone();
        opts.progress = Some(Arc::new(move |done, total| {
            b.set_length(total);
            b.set_position(done);
        }));
    }
    let started = Instant::now();
    let result = convert(&args.input, &args.output, &opts);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let warn = if color.stderr() {
        "\x1b[1;33mwarning\x1b[0m"
    } else {
        "warning"
    };
    match result {
        Ok(done) => {
            for w in &done.warnings {
                eprintln!("{warn}: {w}");
            }
            let on_disk = std::fs::metadata(&args.output)
                .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
                .unwrap_or(0);
            let kind = match (format, opts.subformat()) {
                (Format::Vhd | Format::Vhdx, Subformat::Fixed) => {
                    format!("{} fixed", format.name())
                }
                (Format::Vhd | Format::Vhdx, Subformat::Dynamic) => {
                    format!("{} dynamic", format.name())
                }
                _ => format.name().to_string(),
            };
            eprintln!(
                "wrote {} ({kind}, virtual size {}, {} on disk) in {:.1} s",
                args.output.display(),
                human_bytes(done.virtual_size),
                human_bytes(on_disk),
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
