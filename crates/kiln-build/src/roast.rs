//! The roast stage: every artifact a config asks for, made from imager's output as upstream's
//! roast makes them.

use crate::error::{Error, ErrorKind};
use crate::event::{staged, Event, Stage};
use crate::validate::Validated;
use std::path::PathBuf;
use std::time::Duration;

/// Where imager's output is and where the artifacts go.
#[derive(Debug, Clone)]
pub struct RoastRequest {
    /// imager's output: disk0.raw, disk0.partition<N>.raw, rootfs/.
    pub input_dir: PathBuf,
    pub output_dir: PathBuf,
    /// Appended to artifact names as -<version> (not for initrd artifacts).
    pub release_version: String,
    /// Appended to artifact names as -<tag>.
    pub image_tag: String,
    /// Artifacts made in parallel.
    pub workers: usize,
}

/// An artifact made.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: PathBuf,
    pub elapsed: Duration,
}

const STAGE: Stage = Stage::Roast;

/// The roast stage: every artifact of the config, from `req.input_dir` into `req.output_dir`.
/// Each finished artifact is told as [`Event::Convert`] and a step; roast's notes as warnings.
pub fn roast(
    req: &RoastRequest,
    validated: &Validated,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<Artifact>, Error> {
    staged(STAGE, on_event, |on_event| {
        crate::host::require(&crate::host::roast_tools(validated.config()), STAGE)?;
        roast_quietly(req, validated, on_event)
    })
}

pub(crate) fn roast_quietly(
    req: &RoastRequest,
    validated: &Validated,
    on_event: &mut dyn FnMut(Event),
) -> Result<Vec<Artifact>, Error> {
    let opts = kiln_roast::Options {
        input_dir: req.input_dir.clone(),
        output_dir: req.output_dir.clone(),
        release_version: req.release_version.clone(),
        image_tag: req.image_tag.clone(),
        workers: req.workers,
    };
    let failed = Error::of(STAGE, ErrorKind::Artifact);
    // Temporaries a killed kiln left in the output folder (only those nobody holds).
    let mut say = |line: &str| {
        on_event(Event::Step {
            stage: STAGE,
            message: line.to_string(),
        })
    };
    crate::workdirs::sweep(&req.output_dir, &mut say)
        .map_err(Error::of(STAGE, ErrorKind::WorkFolder))?;
    let (jobs, warnings) = kiln_roast::plan(validated.config(), &opts).map_err(&failed)?;
    let warn = |message: String| Event::Warning {
        stage: STAGE,
        message,
        at: None,
    };
    for w in warnings {
        on_event(warn(w));
    }
    if jobs.is_empty() {
        on_event(Event::Step {
            stage: STAGE,
            message: "roast: the config asks for no artifacts".into(),
        });
        return Ok(Vec::new());
    }
    let count = jobs.len();
    on_event(Event::Convert {
        done: 0,
        count,
        artifact: String::new(),
        bytes: 0,
        total_bytes: 0,
    });
    // Jobs run on threads; what they tell comes back here.
    let (tx, rx) =
        std::sync::mpsc::channel::<(String, Vec<String>, Result<PathBuf, String>, Duration)>();
    let tx = std::sync::Mutex::new(tx);
    let mut made = Vec::new();
    let mut failures = Vec::new();
    let result = std::thread::scope(|s| {
        let worker = s.spawn(move || {
            let result = kiln_roast::run(&jobs, &opts, |o| {
                let _ = tx.lock().expect("no panic while held").send((
                    o.job.full_name.clone(),
                    o.warnings.clone(),
                    o.result.clone(),
                    o.elapsed,
                ));
            });
            drop(tx);
            result
        });
        for (done, (name, warnings, result, elapsed)) in rx.iter().enumerate() {
            for w in warnings {
                on_event(warn(format!("{name}: {w}")));
            }
            match result {
                Ok(path) => {
                    on_event(Event::Step {
                        stage: STAGE,
                        message: format!(
                            "roast: {} ({:.1} s)",
                            path.display(),
                            elapsed.as_secs_f64()
                        ),
                    });
                    made.push(Artifact { path, elapsed });
                }
                Err(e) => {
                    on_event(Event::Step {
                        stage: STAGE,
                        message: format!("roast: {name} failed: {e}"),
                    });
                    failures.push(format!("{name}: {e}"));
                }
            }
            on_event(Event::Convert {
                done: done + 1,
                count,
                artifact: name,
                bytes: 0,
                total_bytes: 0,
            });
        }
        worker.join().expect("the roast threads do not panic")
    });
    result.map_err(|e| {
        let mut error = failed(e);
        if !failures.is_empty() {
            error.message = format!("{}: {}", error.message, failures.join("; "));
        }
        error
    })?;
    Ok(made)
}
