//! The upstream tool personalities: kiln invoked as `imageconfigvalidator` takes that tool's
//! flags and prints its messages, so Makefiles and scripts written for the Azure Linux toolkit
//! keep working.

use crate::output::ColorChoice;
use clap::{Parser, ValueEnum};
use kiln_config::{validate_file, Options, Severity};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// An upstream tool kiln can stand in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    ImageConfigValidator,
    Roast,
}

impl Tool {
    pub fn from_name(name: &str) -> Option<Tool> {
        match name {
            "imageconfigvalidator" => Some(Tool::ImageConfigValidator),
            "roast" => Some(Tool::Roast),
            _ => None,
        }
    }
}

pub fn run(tool: Tool, args: Vec<OsString>) -> ExitCode {
    match tool {
        Tool::ImageConfigValidator => image_config_validator(args),
        Tool::Roast => roast(args),
    }
}

/// logrus levels, as upstream's `--log-level` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum LogLevel {
    Panic,
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Validates an image config (kiln standing in for the Azure Linux toolkit's
/// imageconfigvalidator).
///
/// Loads the config with paths resolved against --dir, runs every configuration check and the
/// package-list checks, and exits 1 with upstream's message on the first problem upstream would
/// report. kiln also prints every other problem it finds, with file, line and column.
#[derive(Debug, Parser)]
#[command(name = "imageconfigvalidator", version, max_term_width = 100)]
struct ImageConfigValidatorArgs {
    /// Path to the image config file.
    #[arg(long, value_name = "PATH", required = true)]
    input: PathBuf,
    /// Base directory for relative file paths in the config.
    #[arg(long, value_name = "DIR", required = true)]
    dir: PathBuf,
    /// Also write the log to this file.
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Log level: below `warn`, warnings are not printed.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,
    /// When to color the log.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    log_color: ColorChoice,
    /// Accepted for compatibility; kiln writes no timestamp file.
    #[arg(long, value_name = "PATH")]
    timestamp_file: Option<PathBuf>,
    /// Accepted for compatibility (Go profiling); ignored.
    #[arg(long)]
    enable_cpu_prof: bool,
    /// Accepted for compatibility (Go profiling); ignored.
    #[arg(long)]
    enable_mem_prof: bool,
    /// Accepted for compatibility (Go tracing); ignored.
    #[arg(long)]
    enable_trace: bool,
    /// Accepted for compatibility (Go profiling); ignored.
    #[arg(long, value_name = "PATH")]
    cpu_prof_file: Option<PathBuf>,
    /// Accepted for compatibility (Go profiling); ignored.
    #[arg(long, value_name = "PATH")]
    mem_prof_file: Option<PathBuf>,
    /// Accepted for compatibility (Go tracing); ignored.
    #[arg(long, value_name = "PATH")]
    trace_file: Option<PathBuf>,
}

impl ImageConfigValidatorArgs {
    /// Flags kiln accepts only so that upstream command lines keep working.
    fn ignored_flags(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut flag = |set: bool, name| {
            if set {
                v.push(name)
            }
        };
        flag(self.timestamp_file.is_some(), "--timestamp-file");
        flag(self.enable_cpu_prof, "--enable-cpu-prof");
        flag(self.enable_mem_prof, "--enable-mem-prof");
        flag(self.enable_trace, "--enable-trace");
        flag(self.cpu_prof_file.is_some(), "--cpu-prof-file");
        flag(self.mem_prof_file.is_some(), "--mem-prof-file");
        flag(self.trace_file.is_some(), "--trace-file");
        v
    }
}

/// Writes log text to stderr and, with --log-file, to the file (uncolored).
struct Log {
    file: Option<std::fs::File>,
    color: bool,
}

impl Log {
    fn write(&mut self, plain: &str, colored: &str) {
        eprint!("{}", if self.color { colored } else { plain });
        if let Some(f) = &mut self.file {
            let _ = f.write_all(plain.as_bytes());
        }
    }
}

fn image_config_validator(args: Vec<OsString>) -> ExitCode {
    let a = match ImageConfigValidatorArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let file = match &a.log_file {
        None => None,
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("error: cannot open --log-file {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
    };
    let mut log = Log {
        file,
        color: a.log_color.stderr(),
    };
    let ignored = a.ignored_flags();
    if !ignored.is_empty() && a.log_level >= LogLevel::Warn {
        let line = format!(
            "warning: kiln ignores {} (no meaning for kiln)\n",
            ignored.join(", ")
        );
        log.write(&line, &line);
    }
    if !a.dir.is_dir() {
        let line = format!(
            "error: --dir {}: not an existing directory\n",
            a.dir.display()
        );
        log.write(&line, &line);
        return ExitCode::from(2);
    }
    let input = absolute(&a.input);
    let opts = Options {
        base_dir: Some(absolute(&a.dir)),
        ..Options::default()
    };
    let mut report = match validate_file(&input, &opts) {
        Ok(v) => v.report,
        Err(e) => {
            let line = format!(
                "Failed while loading image configuration '{}': {e}\n",
                input.display()
            );
            log.write(&line, &line);
            return ExitCode::FAILURE;
        }
    };
    if a.log_level < LogLevel::Warn {
        report.diagnostics.retain(|d| d.severity == Severity::Error);
    }
    log.write(&report.render(false), &report.render(true));
    match report.upstream_summary(&input) {
        Some(line) => {
            log.write(&format!("{line}\n"), &format!("\x1b[1;31m{line}\x1b[0m\n"));
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

/// roast: the same flags as `kiln roast`.
#[derive(Debug, Parser)]
#[command(name = "roast", version, max_term_width = 100)]
struct RoastCommand {
    #[command(flatten)]
    args: crate::roast::RoastArgs,
}

fn roast(args: Vec<OsString>) -> ExitCode {
    match RoastCommand::try_parse_from(args) {
        Ok(c) => crate::roast::run(c.args, ColorChoice::Auto),
        Err(e) => {
            let _ = e.print();
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
