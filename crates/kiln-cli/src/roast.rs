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

pub fn run(args: RoastArgs, color: ColorChoice) -> ExitCode {
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
        (Some(input), Some(output), None) => convert_one(&args, input, output, color),
        (None, None, Some(_)) => jobs(&args, color),
        _ => {
            eprintln!("error: give either --input and --output (convert one disk), or --dir, --config and --output-dir (a config's artifacts)");
            ExitCode::from(2)
        }
    }
}

/// The upstream form: every artifact of a config.
fn jobs(args: &RoastArgs, color: ColorChoice) -> ExitCode {
    let (Some(dir), Some(config), Some(output_dir)) = (&args.dir, &args.config, &args.output_dir)
    else {
        eprintln!("error: --dir needs --config and --output-dir");
        return ExitCode::from(2);
    };
    let warn = if color.stderr() {
        "\x1b[1;33mwarning\x1b[0m"
    } else {
        "warning"
    };
    let opts = kiln_config::Options {
        base_dir: None,
        package_checks: false,
        file_checks: false,
    };
    let v = match kiln_config::validate_file(config, &opts) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: cannot read the config: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(loaded) = v.config else {
        eprint!("{}", v.report.render(color.stderr()));
        eprintln!("error: {} is not a valid config", config.display());
        return ExitCode::FAILURE;
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
    let mut say = |line: &str| eprintln!("{line}");
    if let Err(e) = crate::workdirs::sweep(output_dir, &mut say) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match roast_config(
        &loaded.config,
        dir,
        output_dir,
        &args.release_version,
        &args.image_tag,
        args.workers,
        warn,
        &mut say,
    ) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds every artifact `config` asks for from imager's output in `input_dir` into
/// `output_dir`, as upstream's roast does; `say` hears progress and warnings (prefixed with
/// `warn`). Returns the artifacts' paths.
#[allow(clippy::too_many_arguments)]
pub fn roast_config(
    config: &kiln_config::model::Config,
    input_dir: &Path,
    output_dir: &Path,
    release_version: &str,
    image_tag: &str,
    workers: usize,
    warn: &str,
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<Vec<PathBuf>, String> {
    let opts = kiln_roast::Options {
        input_dir: input_dir.to_path_buf(),
        output_dir: output_dir.to_path_buf(),
        release_version: release_version.to_string(),
        image_tag: image_tag.to_string(),
        workers,
    };
    let (jobs, warnings) = kiln_roast::plan(config, &opts).map_err(|e| e.to_string())?;
    for w in warnings {
        say(&format!("{warn}: {w}"));
    }
    if jobs.is_empty() {
        say("roast: the config asks for no artifacts");
        return Ok(Vec::new());
    }
    let say = std::sync::Mutex::new(say);
    let made = std::sync::Mutex::new(Vec::new());
    kiln_roast::run(&jobs, &opts, |o| {
        let mut say = say.lock().expect("no panic while held");
        for w in &o.warnings {
            say(&format!("{warn}: {}: {w}", o.job.full_name));
        }
        match &o.result {
            Ok(path) => {
                say(&format!(
                    "roast: {} ({:.1} s)",
                    path.display(),
                    o.elapsed.as_secs_f64()
                ));
                made.lock().expect("no panic while held").push(path.clone());
            }
            Err(e) => say(&format!("roast: {} failed: {e}", o.job.full_name)),
        }
    })
    .map_err(|e| e.to_string())?;
    Ok(made.into_inner().expect("threads joined"))
}

/// The direct form: one raw disk into one image.
fn convert_one(args: &RoastArgs, input: &Path, output: &Path, color: ColorChoice) -> ExitCode {
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
    // Temporaries of a killed kiln beside the output (only those nobody holds) go first.
    let beside = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Err(e) = crate::workdirs::sweep(beside, &mut |line| eprintln!("{line}")) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let result = convert(input, output, &opts);
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
            let on_disk = std::fs::metadata(output)
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
                output.display(),
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
