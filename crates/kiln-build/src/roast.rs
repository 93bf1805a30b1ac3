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

/// Fails, before any work, when an artifact's Type or Compression is one roast cannot make
/// (upstream's validator accepts any string and its roast fails after the whole build; kiln
/// build says it at once), suggesting the nearest known one.
pub(crate) fn check_formats(
    config: &kiln_config::model::Config,
    stage: Stage,
) -> Result<(), Error> {
    use kiln_formats::artifact::Converter;
    let known: Vec<&str> = Converter::ALL.iter().map(|(n, _)| *n).collect();
    let artifacts = config.disks.iter().flat_map(|d| {
        d.artifacts
            .iter()
            .flatten()
            .chain(d.partitions.iter().flat_map(|p| &p.artifacts))
    });
    for a in artifacts {
        for (field, value) in [("Type", &a.ty), ("Compression", &a.compression)] {
            if value.is_empty() || Converter::parse(value).is_ok() {
                continue;
            }
            let nearest = known
                .iter()
                .filter(|k| k.starts_with(value.as_str()) || value.starts_with(*k))
                .max_by_key(|k| k.len());
            let mut e = Error::new(
                stage,
                ErrorKind::InvalidConfig,
                format!(
                    "artifact {:?}: {field} {value:?} is not a format roast makes (unsupported \
                     output format: {value})",
                    a.name
                ),
            );
            e = e.help(match nearest {
                Some(k) => format!("did you mean {k:?}? known: {}", known.join(", ")),
                None => format!("known: {}", known.join(", ")),
            });
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_artifact_type_is_refused_with_the_nearest_known_one() {
        let mut config = kiln_config::model::Config::default();
        config.disks.push(kiln_config::model::Disk::default());
        config.disks[0].artifacts = Some(vec![kiln_config::model::Artifact {
            name: "my".into(),
            ty: "qcow".into(),
            compression: String::new(),
        }]);
        let e = check_formats(&config, Stage::Validate).unwrap_err();
        assert!(e.message.contains("\"qcow\""), "{e}");
        assert!(e.help.unwrap().contains("did you mean \"qcow2\""));
        config.disks[0].artifacts.as_mut().unwrap()[0].ty = "qcow2".into();
        check_formats(&config, Stage::Validate).unwrap();
    }
}
