//! `kiln roast`: convert a raw disk image into a distributable format.

use crate::cli::Global;
use clap::{Args, ValueEnum};
use kiln_build::{ConvertRequest, RoastRequest, ValidateRequest};
use kiln_formats::{Compression, ConvertOptions, Format, Subformat};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
    /// Stream-optimized VMDK.
    Vmdk,
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

/// Make image artifacts, natively (no qemu-img): convert one raw disk, or build every artifact a
/// config asks for from imager's output, as upstream's roast does.
///
/// Direct form: --input disk.raw --output disk.vhdx [--format vhdx]. The input may also be a VHD,
/// VHDX or QCOW2 image (told by its magic, read natively). Upstream form: --dir
/// <imager output> --config <config> --output-dir <dir> [--release-version V] [--image-tag T]
/// [--workers N]: artifacts are named Name[-release][-tag].<type>[.<compression>].
///
/// Inputs are read by their allocated extents and zero blocks are never written. Outputs appear
/// under their names only when complete. With SOURCE_DATE_EPOCH set, ids and timestamps are
/// derived from it (reproducible outputs).
#[derive(Debug, Args)]
pub struct RoastArgs {
    /// The disk image to convert (direct form): raw, VHD, VHDX or QCOW2, told by its magic.
    /// VMDK inputs, archives, FIFOs and devices are refused.
    #[arg(long, value_name = "FILE", requires = "output", conflicts_with_all = ["dir", "config"])]
    input: Option<PathBuf>,
    /// Where to write the image (direct form).
    #[arg(long, value_name = "FILE", requires = "input")]
    output: Option<PathBuf>,
    /// imager's output directory: disk0.raw, disk0.partition<N>.raw, rootfs/ (upstream form).
    #[arg(long, value_name = "DIR", requires_all = ["config", "output_dir"])]
    dir: Option<PathBuf>,
    /// The image config whose artifacts to build (upstream form).
    #[arg(long, value_name = "FILE", requires = "dir")]
    config: Option<PathBuf>,
    /// Where artifacts go (upstream form).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Accepted for compatibility: upstream creates it and writes intermediates to --output-dir.
    #[arg(long, value_name = "DIR")]
    tmp_dir: Option<PathBuf>,
    /// Appended to artifact names as -<version> (not for initrd artifacts).
    #[arg(long, value_name = "VERSION", default_value = "")]
    release_version: String,
    /// Appended to artifact names as -<tag>.
    #[arg(long, value_name = "TAG", default_value = "")]
    image_tag: String,
    /// Artifacts built in parallel.
    #[arg(long, value_name = "N", default_value_t = 10)]
    workers: usize,
    /// Accepted for compatibility; kiln writes no timestamp file.
    #[arg(long, value_name = "PATH")]
    timestamp_file: Option<PathBuf>,
    /// Accepted for compatibility (upstream's log flags); kiln logs to stderr.
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Accepted for compatibility.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Accepted for compatibility.
    #[arg(long, value_name = "WHEN")]
    log_color: Option<String>,
    /// Output format (default: from the output's extension).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Fixed or dynamic (VHD default fixed, VHDX default dynamic).
    #[arg(long, value_enum)]
    subformat: Option<SubformatArg>,
    /// Cluster compression (QCOW2 only).
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    compression: CompressionArg,
    #[command(flatten)]
    output_format: crate::sources::JsonArg,
}

fn format_from_extension(path: &Path) -> Option<FormatArg> {
    match path.extension()?.to_str()? {
        "raw" | "img" => Some(FormatArg::Raw),
        "vhd" => Some(FormatArg::Vhd),
        "vhdx" => Some(FormatArg::Vhdx),
        "qcow2" => Some(FormatArg::Qcow2),
        "vmdk" => Some(FormatArg::Vmdk),
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

impl RoastArgs {
    /// Whether artifacts are made from imager's output (a rootfs keeps the image's owners, so
    /// reading it needs kiln's root), not by converting one disk.
    pub fn reads_imager_output(&self) -> bool {
        self.dir.is_some()
    }
}

pub fn run(args: RoastArgs, global: Global) -> ExitCode {
    let ignored: Vec<&str> = [
        (args.timestamp_file.is_some(), "--timestamp-file"),
        (args.log_file.is_some(), "--log-file"),
        (args.log_level.is_some(), "--log-level"),
        (args.log_color.is_some(), "--log-color"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if !ignored.is_empty() {
        eprintln!(
            "warning: kiln ignores {} (no meaning for kiln)",
            ignored.join(", ")
        );
    }
    match (&args.input, &args.output, &args.dir) {
        (Some(input), Some(output), None) => convert_one(&args, input, output, global),
        (None, None, Some(_)) => jobs(&args, global),
        _ => {
            eprintln!("error: give either --input and --output (convert one disk), or --dir, --config and --output-dir (a config's artifacts)");
            ExitCode::from(2)
        }
    }
}

/// The upstream form: every artifact of a config ([`kiln_build::roast`]).
fn jobs(args: &RoastArgs, global: Global) -> ExitCode {
    let (Some(dir), Some(config), Some(output_dir)) = (&args.dir, &args.config, &args.output_dir)
    else {
        eprintln!("error: --dir needs --config and --output-dir");
        return ExitCode::from(2);
    };
    for d in [Some(output_dir), args.tmp_dir.as_ref()]
        .into_iter()
        .flatten()
    {
        if let Err(e) = std::fs::create_dir_all(d) {
            eprintln!("error: cannot create {}: {e}", d.display());
            return ExitCode::from(2);
        }
    }
    let validate = ValidateRequest {
        package_checks: false,
        file_checks: false,
        ..ValidateRequest::new(config)
    };
    let req = RoastRequest {
        input_dir: dir.clone(),
        output_dir: output_dir.clone(),
        release_version: args.release_version.clone(),
        image_tag: args.image_tag.clone(),
        workers: args.workers,
    };
    let mut r = global.renderer(args.output_format.json);
    let result = {
        let mut sink = r.sink();
        kiln_build::validate(&validate, &mut sink)
            .and_then(|validated| kiln_build::roast(&req, &validated, &mut sink))
    };
    r.finish();
    match result {
        Ok(made) => {
            if args.output_format.json {
                let paths: Vec<String> =
                    made.iter().map(|a| a.path.display().to_string()).collect();
                println!(
                    "{}",
                    serde_json::json!({"event": "result", "artifacts": paths})
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            r.error(&e, "");
            if e.kind == kiln_build::ErrorKind::ConfigUnreadable {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The direct form: one raw disk into one image ([`kiln_build::convert`]).
fn convert_one(args: &RoastArgs, input: &Path, output: &Path, global: Global) -> ExitCode {
    let Some(format) = args.format.or_else(|| format_from_extension(output)) else {
        eprintln!(
            "error: cannot tell the format from {}; pass --format raw|vhd|vhdx|qcow2|vmdk",
            output.display()
        );
        return ExitCode::from(2);
    };
    let format = match format {
        FormatArg::Raw => Format::Raw,
        FormatArg::Vhd => Format::Vhd,
        FormatArg::Vhdx => Format::Vhdx,
        FormatArg::Qcow2 => Format::Qcow2,
        FormatArg::Vmdk => Format::Vmdk,
    };
    let mut opts = ConvertOptions::new(format);
    opts.identity = kiln_formats::ident::Identity::from_env(
        &output.file_name().unwrap_or_default().to_string_lossy(),
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
    let kind = match (format, opts.subformat()) {
        (Format::Vhd | Format::Vhdx, Subformat::Fixed) => format!("{} fixed", format.name()),
        (Format::Vhd | Format::Vhdx, Subformat::Dynamic) => format!("{} dynamic", format.name()),
        _ => format.name().to_string(),
    };
    let started = Instant::now();
    let req = ConvertRequest {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        options: opts,
    };
    let mut r = global.renderer(args.output_format.json);
    let result = kiln_build::convert(req, &mut r.sink());
    r.finish();
    match result {
        Ok(done) => {
            if args.output_format.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "event": "result", "output": output.display().to_string(), "format": kind,
                        "virtual_size": done.virtual_size, "on_disk": done.on_disk,
                    })
                );
            } else {
                eprintln!(
                    "wrote {} ({kind}, virtual size {}, {} on disk) in {:.1} s",
                    output.display(),
                    human_bytes(done.virtual_size),
                    human_bytes(done.on_disk),
                    started.elapsed().as_secs_f64()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            r.error(&e, "");
            ExitCode::FAILURE
        }
    }
}
