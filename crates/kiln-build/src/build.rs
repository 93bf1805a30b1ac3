//! The whole build: validate, fetch, compose, roast — as upstream's `make image` runs
//! imageconfigvalidator, imagepkgfetcher, imager and roast — in locked work folders, every event
//! also written as a line to the build log.

use crate::compose::{ComposeRequest, SandboxOptions};
use crate::error::{Error, ErrorKind};
use crate::event::{staged, Event, Stage};
use crate::fetch::FetchRequest;
use crate::roast::RoastRequest;
use crate::sources::SourceOptions;
use crate::validate::{config_name, ValidateRequest};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A whole build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub config: PathBuf,
    /// Directory relative paths in the config are resolved against (upstream's
    /// CONFIG_BASE_DIR; default: the config's directory).
    pub base_dir: Option<PathBuf>,
    pub sources: SourceOptions,
    /// Where the artifacts go (default: out/images/<config name>). Locked while building.
    pub output_dir: Option<PathBuf>,
    /// The work folder: package_repo/, image_deps.json, imager_output/ (default:
    /// out/build/<config name>). New, empty or one kiln made; locked while building.
    pub build_dir: Option<PathBuf>,
    /// When another kiln builds into the same folders, wait for it instead of failing.
    pub wait_lock: bool,
    /// Where the build log goes (`<config name>.log`).
    pub log_dir: PathBuf,
    /// Appended to artifact names as -<version> (upstream's RELEASE_VERSION).
    pub release_version: String,
    /// Appended to artifact names as -<tag> (upstream's IMAGE_TAG).
    pub image_tag: String,
    /// BUILD_NUMBER written to /etc/image-id (`local` when empty).
    pub build_number: String,
    /// Artifacts converted in parallel.
    pub workers: usize,
    pub sandbox: SandboxOptions,
    /// The incremental cache: the package-root cache's folder ([`crate::cache`]), and the
    /// up-to-date check ([`crate::uptodate`]). `None` (`--no-cache`): everything is built anew.
    pub package_cache: Option<PathBuf>,
}

impl BuildRequest {
    pub fn new(config: impl Into<PathBuf>, sources: SourceOptions) -> BuildRequest {
        BuildRequest {
            config: config.into(),
            base_dir: None,
            sources,
            output_dir: None,
            build_dir: None,
            wait_lock: false,
            log_dir: PathBuf::from("out/logs"),
            release_version: String::new(),
            image_tag: String::new(),
            build_number: String::new(),
            workers: 10,
            sandbox: SandboxOptions::default(),
            package_cache: Some(PathBuf::from(crate::cache::DEFAULT_DIR)),
        }
    }

    /// The config's name, and the output and build folders.
    pub fn folders(&self) -> (String, PathBuf, PathBuf) {
        let name = config_name(&self.config);
        let output_dir = self
            .output_dir
            .clone()
            .unwrap_or_else(|| Path::new("out/images").join(&name));
        let build_dir = self
            .build_dir
            .clone()
            .unwrap_or_else(|| Path::new("out/build").join(&name));
        (name, output_dir, build_dir)
    }
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub output_dir: PathBuf,
    pub build_dir: PathBuf,
    /// The artifacts' file names, in `output_dir`.
    pub artifacts: Vec<String>,
    pub log: PathBuf,
    pub timings: Vec<(Stage, Duration)>,
    pub total: Duration,
    /// The artifacts were already there, made from the same inputs: nothing was built.
    pub up_to_date: bool,
    /// Where the package root came from (`None`: not composed, or no cache).
    pub package_root: Option<crate::cache::Outcome>,
}

/// The build log: every event as a time-stamped line.
struct Log {
    file: std::io::BufWriter<std::fs::File>,
    started: Instant,
}

impl Log {
    fn line(&mut self, text: &str) {
        for l in text.lines() {
            let _ = writeln!(
                self.file,
                "[{:6.1} s] {l}",
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Builds the config end to end: the folders claimed and locked, the config validated (its
/// warnings told) and the host programs checked before any work, then fetch, compose and roast;
/// artifacts appear in the output folder only when all succeeded. Every event also goes to
/// `<log_dir>/<name>.log`, program output included.
pub fn build(req: &BuildRequest, on_event: &mut dyn FnMut(Event)) -> Result<Built, Error> {
    let started = Instant::now();
    let (name, output_dir, build_dir) = req.folders();
    let setup = |e: String| Error::new(Stage::Setup, ErrorKind::WorkFolder, e);
    // Claimed and locked before the log is opened: a second build must not truncate the log
    // of the build that holds the folders.
    let mut say = |l: &str| {
        on_event(Event::Step {
            stage: Stage::Setup,
            message: l.to_string(),
        })
    };
    crate::workdirs::claim_build_dir(&build_dir, req.build_dir.is_none()).map_err(setup)?;
    let _locks = crate::workdirs::lock(&[&build_dir, &output_dir], req.wait_lock, &mut say)
        .map_err(|e| {
            setup(e).help("wait for that build to finish, pass --wait-lock, or use other folders")
        })?;
    let log_path = req.log_dir.join(format!("{name}.log"));
    let file = std::fs::create_dir_all(&req.log_dir)
        .and_then(|_| std::fs::File::create(&log_path))
        .map_err(|e| {
            Error::new(
                Stage::Setup,
                ErrorKind::Io,
                format!("cannot write the build log {}: {e}", log_path.display()),
            )
        })?;
    let mut log = Log {
        file: std::io::BufWriter::new(file),
        started,
    };
    let timings = std::cell::RefCell::new(Vec::new());
    let mut tee = |event: Event| {
        if let Some(line) = event.plain() {
            log.line(&line);
        }
        if let Event::StageFinished { stage, elapsed } = &event {
            timings.borrow_mut().push((*stage, *elapsed));
        }
        on_event(event);
    };
    tee(Event::Step {
        stage: Stage::Setup,
        message: format!("kiln build {}", req.config.display()),
    });
    if let Some(mode @ kiln_sandbox::userns::Mode::UserNamespace { .. }) =
        kiln_sandbox::userns::mode()
    {
        tee(Event::Step {
            stage: Stage::Setup,
            message: mode.to_string(),
        });
    }
    let result = stages(req, &output_dir, &build_dir, &mut tee);
    // Trees removed while later steps ran are gone before the build counts as done (and its
    // folders are unlocked).
    kiln_formats::files::finish_removals();
    let total = started.elapsed();
    let stages_timed = timings.borrow().clone();
    tee(Event::Timings {
        stages: stages_timed,
        total,
    });
    let timings = timings.into_inner();
    match result {
        Ok(done) => {
            let artifacts = done.artifacts;
            log.line(&format!("built {name}: {}", artifacts.join(", ")));
            let _ = log.file.flush();
            Ok(Built {
                name,
                output_dir,
                build_dir,
                artifacts,
                log: log_path,
                timings,
                total,
                up_to_date: done.up_to_date,
                package_root: done.package_root,
            })
        }
        Err(mut e) => {
            log.line(&format!(
                "error: the {} step failed: {}",
                e.stage, e.message
            ));
            if let Some(report) = &e.report {
                log.line(&report.render(false));
            }
            if let Some(help) = &e.help {
                log.line(&format!("help: {help}"));
            }
            let _ = log.file.flush();
            e.log = Some(log_path);
            Err(e)
        }
    }
}

/// What the stages did.
struct Done {
    artifacts: Vec<String>,
    up_to_date: bool,
    package_root: Option<crate::cache::Outcome>,
}

fn stages(
    req: &BuildRequest,
    output_dir: &Path,
    build_dir: &Path,
    on_event: &mut dyn FnMut(Event),
) -> Result<Done, Error> {
    let validated = staged(Stage::Validate, on_event, |on_event| {
        let mut say = |l: &str| {
            on_event(Event::Step {
                stage: Stage::Validate,
                message: l.to_string(),
            })
        };
        crate::workdirs::sweep(output_dir, &mut say)
            .map_err(Error::of(Stage::Validate, ErrorKind::WorkFolder))?;
        let validated = crate::validate::validate_quietly(
            &ValidateRequest {
                base_dir: req.base_dir.clone(),
                ..ValidateRequest::new(&req.config)
            },
            on_event,
        )?;
        // Every artifact format and host program the build will use, before any work.
        crate::roast::check_formats(validated.config(), Stage::Validate)?;
        let mut tools = crate::host::compose_tools(validated.config());
        tools.extend(crate::host::roast_tools(validated.config()));
        crate::host::require(&tools, Stage::Validate)?;
        Ok(validated)
    })?;

    let package_repo = build_dir.join("package_repo");
    let fetched = staged(Stage::Fetch, on_event, |on_event| {
        let fetch = FetchRequest {
            output_summary_file: Some(build_dir.join("image_deps.json")),
            ..FetchRequest::new(&package_repo, req.sources.clone())
        };
        let fetched = crate::fetch::fetch_quietly(&fetch, &validated, on_event)?;
        on_event(Event::Step {
            stage: Stage::Fetch,
            message: fetched.describe(&package_repo),
        });
        Ok::<_, Error>(fetched)
    })?;

    // Artifacts made from these very inputs are not made again.
    let key = crate::uptodate::key(&crate::uptodate::Key {
        validated: &validated,
        packages: &fetched.packages,
        request: req,
    });
    if req.package_cache.is_some() {
        if let Some(artifacts) = crate::uptodate::check(output_dir, &key) {
            on_event(Event::Step {
                stage: Stage::Fetch,
                message: format!(
                    "up to date: {} in {} (made from these same inputs; --no-cache builds anew)",
                    artifacts.join(", "),
                    output_dir.display()
                ),
            });
            return Ok(Done {
                artifacts,
                up_to_date: true,
                package_root: None,
            });
        }
    }
    crate::uptodate::forget(output_dir).map_err(Error::of(Stage::Compose, ErrorKind::Io))?;

    let imager_output = build_dir.join("imager_output");
    let package_root = staged(Stage::Compose, on_event, |on_event| {
        // Removed before any work (not in the background): a mount point found inside fails
        // the build here, naming it.
        crate::workdirs::remove_tree(&imager_output)
            .map_err(Error::of(Stage::Compose, ErrorKind::WorkFolder))?;
        let compose = ComposeRequest {
            repos: vec![package_repo.clone()],
            output_dir: imager_output.clone(),
            no_weak_deps: req.sources.no_weak_deps,
            build_number: req.build_number.clone(),
            sandbox: req.sandbox.clone(),
            repo_snapshot_time: req.sources.repo_snapshot_time,
            live_install: false,
            package_cache: req.package_cache.clone(),
        };
        let composed = crate::compose::compose_quietly(&compose, &validated, on_event)?;
        on_event(Event::Step {
            stage: Stage::Compose,
            message: format!(
                "{}: {}",
                imager_output.display(),
                composed.outputs.join(", ")
            ),
        });
        Ok::<_, Error>(composed.package_root)
    })?;

    staged(Stage::Roast, on_event, |on_event| {
        let failed = |e: String| Error::new(Stage::Roast, ErrorKind::Io, e);
        // Artifacts are made in a temporary folder inside the output folder (one filesystem,
        // so moving them in is a rename) and moved in when all succeeded, so a failed build
        // leaves no partial artifact under a final name; the folder and the intermediates go
        // when it drops.
        let staging =
            kiln_formats::files::TempDir::create(&output_dir.join("artifacts")).map_err(|e| {
                failed(format!(
                    "cannot create a folder in {}: {e}",
                    output_dir.display()
                ))
            })?;
        let roast = RoastRequest {
            input_dir: imager_output.clone(),
            output_dir: staging.path().to_path_buf(),
            release_version: req.release_version.clone(),
            image_tag: req.image_tag.clone(),
            workers: req.workers,
        };
        let made = crate::roast::roast_quietly(&roast, &validated, on_event)?;
        let mut names = Vec::new();
        for artifact in made {
            let file = artifact
                .path
                .file_name()
                .expect("artifacts are files")
                .to_owned();
            let dest = output_dir.join(&file);
            std::fs::rename(&artifact.path, &dest)
                .map_err(|e| failed(format!("{}: {e}", dest.display())))?;
            names.push(file.to_string_lossy().into_owned());
        }
        // Intermediates stay beside the artifacts, as upstream's roast leaves them (the ISO
        // flow takes `iso-initrd.img` from beside `iso-initrd.img.tar.gz`).
        for entry in std::fs::read_dir(staging.path())
            .map_err(|e| failed(format!("{}: {e}", staging.path().display())))?
        {
            let entry = entry.map_err(|e| failed(e.to_string()))?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let dest = output_dir.join(entry.file_name());
                std::fs::rename(entry.path(), &dest)
                    .map_err(|e| failed(format!("{}: {e}", dest.display())))?;
            }
        }
        if names.is_empty() {
            on_event(Event::Step {
                stage: Stage::Roast,
                message: format!(
                    "{} asks for no artifacts; imager's output is in {}",
                    validated.name,
                    imager_output.display()
                ),
            });
        } else {
            crate::uptodate::record(output_dir, &key, &names).map_err(failed)?;
        }
        Ok(Done {
            artifacts: names,
            up_to_date: false,
            package_root,
        })
    })
}
