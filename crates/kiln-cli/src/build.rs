//! `kiln build`: a config's image end to end — validate, fetch, compose, roast — as upstream's
//! `make image` runs imageconfigvalidator, imagepkgfetcher, imager and roast, with each step's
//! time at the end and every line also written to a log file.

use crate::compose::ComposeArgs;
use crate::fetch::FetchArgs;
use crate::output::ColorChoice;
use crate::sources::SourceArgs;
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The image config (JSON).
    #[arg(long, value_name = "CONFIG")]
    config: PathBuf,
    #[command(flatten)]
    sources: SourceArgs,
    /// Where the artifacts go (default: out/images/<config name>). Locked while building
    /// (.kiln-lock); artifacts are made in a temporary folder inside it and renamed into it.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Work directory: the fetched packages (package_repo/, image_deps.json) and imager's
    /// output (default: out/build/<config name>, upstream's build/imagegen/<config>). It must
    /// be new, empty or one kiln made (it carries .kiln-build-dir); locked while building.
    #[arg(long, value_name = "DIR")]
    build_dir: Option<PathBuf>,
    /// When another kiln builds into the same folders, wait for it instead of failing.
    #[arg(long)]
    wait_lock: bool,
    /// Where the build log goes (<config name>.log).
    #[arg(long, value_name = "DIR", default_value = "out/logs")]
    log_dir: PathBuf,
    /// Appended to artifact names as -<version> (upstream's RELEASE_VERSION).
    #[arg(long, value_name = "VERSION", default_value = "")]
    release_version: String,
    /// Appended to artifact names as -<tag> (upstream's IMAGE_TAG).
    #[arg(long, value_name = "TAG", default_value = "")]
    image_tag: String,
    /// BUILD_NUMBER written to /etc/image-id (upstream's BUILD_ID; `local` when empty).
    #[arg(long, value_name = "N", default_value = "")]
    build_number: String,
    /// Artifacts converted in parallel.
    #[arg(long, value_name = "N", default_value_t = 10)]
    workers: usize,
    #[command(flatten)]
    sandbox: crate::compose::SandboxArgs,
}

/// Writes each line to stderr and to the log; on a terminal, the current stage also gets a
/// live progress line (a spinner with the stage's latest step and elapsed time). What programs
/// in the image print (lines starting with `  | `) goes to the log only: a failure's message
/// carries its end.
struct Log {
    file: std::io::BufWriter<std::fs::File>,
    started: Instant,
    bar: Option<indicatif::ProgressBar>,
}

impl Log {
    fn line(&mut self, text: &str) {
        let stamped = format!("[{:6.1} s] {text}", self.started.elapsed().as_secs_f64());
        if text.starts_with("  | ") {
            if let Some(bar) = &self.bar {
                bar.set_message(text.to_string());
            }
            let _ = writeln!(self.file, "{stamped}");
            return;
        }
        match &self.bar {
            Some(bar) => {
                bar.println(&stamped);
                bar.set_message(text.to_string());
            }
            None => eprintln!("{stamped}"),
        }
        let _ = writeln!(self.file, "{stamped}");
    }

    /// Starts the live line of a stage (on a terminal).
    fn stage(&mut self, name: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {prefix:>9} [{elapsed}] {wide_msg}",
                )
                .expect("valid template"),
            );
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            self.bar = Some(bar);
        }
    }

    fn done(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let _ = self.file.flush();
    }
}

pub fn run(args: BuildArgs, color: ColorChoice) -> ExitCode {
    let started = Instant::now();
    let name = args
        .config
        .file_stem()
        .map_or("image".into(), |s| s.to_string_lossy().into_owned());
    let output_dir = args
        .output_dir
        .clone()
        .unwrap_or_else(|| Path::new("out/images").join(&name));
    let build_dir = args
        .build_dir
        .clone()
        .unwrap_or_else(|| Path::new("out/build").join(&name));
    // Claimed and locked before the log is opened: a second build must not truncate the log
    // of the build that holds the folders.
    let mut say = |l: &str| eprintln!("{l}");
    let locks = crate::workdirs::claim_build_dir(&build_dir, args.build_dir.is_none())
        .and_then(|_| crate::workdirs::lock(&[&build_dir, &output_dir], args.wait_lock, &mut say));
    let _locks = match locks {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let log_path = args.log_dir.join(format!("{name}.log"));
    let file = match std::fs::create_dir_all(&args.log_dir)
        .and_then(|_| std::fs::File::create(&log_path))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "error: cannot write the build log {}: {e}",
                log_path.display()
            );
            return ExitCode::from(2);
        }
    };
    let mut log = Log {
        file: std::io::BufWriter::new(file),
        started,
        bar: None,
    };
    log.line(&format!("kiln build {}", args.config.display()));
    if let Some(mode @ kiln_sandbox::userns::Mode::UserNamespace { .. }) =
        kiln_sandbox::userns::mode()
    {
        log.line(&mode.to_string());
    }
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    let result = steps(
        &args,
        color,
        &name,
        &output_dir,
        &build_dir,
        &mut log,
        &mut timings,
    );
    log.done();
    let mut table = String::from("step        time\n");
    for (step, t) in &timings {
        table += &format!("{step:<10} {:6.2} s\n", t.as_secs_f64());
    }
    table += &format!("{:<10} {:6.2} s", "total", started.elapsed().as_secs_f64());
    for l in table.lines() {
        log.line(l);
    }
    match result {
        Ok(artifacts) => {
            log.line(&format!("built {name}: {}", artifacts.join(", ")));
            println!("{}", output_dir.display());
            ExitCode::SUCCESS
        }
        Err((step, cause)) => {
            log.line(&format!("error: the {step} step failed: {cause}"));
            eprintln!(
                "error: building {name} failed at the {step} step (log: {})",
                log_path.display()
            );
            ExitCode::FAILURE
        }
    }
}

type StepResult<T> = Result<T, (&'static str, String)>;

fn steps(
    args: &BuildArgs,
    color: ColorChoice,
    name: &str,
    output_dir: &Path,
    build_dir: &Path,
    log: &mut Log,
    timings: &mut Vec<(&'static str, Duration)>,
) -> StepResult<Vec<String>> {
    let timed = |step: &'static str, log: &mut Log| {
        log.stage(step);
        log.line(&format!("== {step}"));
        (step, Instant::now())
    };

    let (step, t) = timed("validate", log);
    let mut say = |l: &str| log.line(l);
    crate::workdirs::sweep(output_dir, &mut say).map_err(|e| (step, e))?;
    let loaded = crate::plan::load_config(&args.config, color).map_err(|e| (step, e))?;
    timings.push((step, t.elapsed()));

    let (step, t) = timed("fetch", log);
    let package_repo = build_dir.join("package_repo");
    let fetch = FetchArgs {
        config: args.config.clone(),
        output_dir: package_repo.clone(),
        base_dir: None,
        sources: args.sources.clone(),
        input_summary_file: None,
        output_summary_file: Some(build_dir.join("image_deps.json")),
        enable_gpg_check: false,
        gpg_keys: Vec::new(),
        jobs: 4,
    };
    let fetched = crate::fetch::fetch(&fetch, color).map_err(|e| (step, e))?;
    log.line(&format!(
        "{} packages in {} (sources: {}; {} downloaded, {} copied, {} already there)",
        fetched.packages.len(),
        package_repo.display(),
        fetched.tiers.join(", "),
        fetched.downloaded,
        fetched.copied,
        fetched.kept
    ));
    timings.push((step, t.elapsed()));

    let (step, t) = timed("compose", log);
    let imager_output = build_dir.join("imager_output");
    crate::workdirs::remove_tree(&imager_output).map_err(|e| (step, e))?;
    let compose = ComposeArgs {
        config: args.config.clone(),
        repos: vec![package_repo],
        output_dir: imager_output.clone(),
        no_weak_deps: args.sources.no_weak_deps,
        build_number: args.build_number.clone(),
        sandbox: args.sandbox.clone(),
    };
    let mut say = |l: &str| log.line(l);
    let outputs = crate::compose::compose(&loaded, &compose, &mut say)
        .map_err(|e| (step, e))?
        .outputs;
    log.line(&format!(
        "{}: {}",
        imager_output.display(),
        outputs.join(", ")
    ));
    timings.push((step, t.elapsed()));

    let (step, t) = timed("roast", log);
    // Artifacts are made in a temporary folder inside the output folder (one filesystem, so
    // moving them in is a rename) and moved in when all succeeded, so a failed build leaves no
    // partial artifact under a final name; the folder and the intermediates go when it drops.
    let staging =
        kiln_formats::files::TempDir::create(&output_dir.join("artifacts")).map_err(|e| {
            (
                step,
                format!("cannot create a folder in {}: {e}", output_dir.display()),
            )
        })?;
    let lines = std::sync::Mutex::new(Vec::new());
    let mut collect = |l: &str| {
        lines
            .lock()
            .expect("no panic while held")
            .push(l.to_string())
    };
    let made = crate::roast::roast_config(
        &loaded.config,
        &imager_output,
        staging.path(),
        &args.release_version,
        &args.image_tag,
        args.workers,
        "warning",
        &mut collect,
    );
    for l in lines.into_inner().expect("no panic while held") {
        log.line(&l);
    }
    let made = made.map_err(|e| (step, e))?;
    let mut names = Vec::new();
    for path in made {
        let file = path.file_name().expect("artifacts are files").to_owned();
        let dest = output_dir.join(&file);
        std::fs::rename(&path, &dest).map_err(|e| (step, format!("{}: {e}", dest.display())))?;
        names.push(file.to_string_lossy().into_owned());
    }
    timings.push((step, t.elapsed()));
    if names.is_empty() {
        log.line(&format!(
            "{name} asks for no artifacts; imager's output is in {}",
            imager_output.display()
        ));
    }
    Ok(names)
}
