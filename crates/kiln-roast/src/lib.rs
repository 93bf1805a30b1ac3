//! # kiln-roast
//!
//! Turns imager's outputs (`disk0.raw`, `disk0.partition<j>.raw|diff|rdiff`, `rootfs/`) into the
//! artifacts a config's `Disks[].Artifacts` and `Partitions[].Artifacts` ask for, exactly as
//! upstream's roast names and builds them (SPEC §2.2):
//!
//! - full name = `Name`, plus `-<release-version>` unless the Type is `initrd`, plus
//!   `-<image-tag>` when set;
//! - `Type` converts the input into `<full>.<ext(Type)>`; `Compression` then compresses the
//!   result (or the input) into `<that file's name>.<ext(Compression)>`;
//! - every step's output stays in the output directory (as upstream, which writes intermediates
//!   there: the ISO flow relies on `iso-initrd.img` next to `iso-initrd.img.tar.gz`);
//! - jobs run on `workers` threads; failures are collected and summarised at the end.

use kiln_config::Config;
use kiln_formats::artifact::Converter;
use kiln_formats::ident::Identity;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One artifact to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The artifact's full name (`Name[-release][-tag]`), used in messages.
    pub full_name: String,
    /// The file or directory it is made from.
    pub input: PathBuf,
    pub ty: String,
    pub compression: String,
}

/// How roast was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// imager's output directory (`--dir`).
    pub input_dir: PathBuf,
    pub output_dir: PathBuf,
    pub release_version: String,
    pub image_tag: String,
    pub workers: usize,
}

/// Why roast could not start or what failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this program currently only supports one disk")]
    TooManyDisks,
    #[error("Value in --workers must be greater than zero. Found {0}")]
    Workers(usize),
    #[error("failed to generate the following artifacts: [{}]", .0.join(" "))]
    Failed(Vec<String>),
}

/// The jobs a config asks for, in config order, with warnings (missing partition settings).
pub fn plan(config: &Config, opts: &Options) -> Result<(Vec<Job>, Vec<String>), Error> {
    if config.disks.len() > 1 {
        return Err(Error::TooManyDisks);
    }
    let mut jobs = Vec::new();
    let mut warnings = Vec::new();
    let system = config.system_configs.first();
    let full_name = |name: &str, ty: &str| {
        let mut full = name.to_string();
        if ty != "initrd" && !opts.release_version.is_empty() {
            full = format!("{full}-{}", opts.release_version);
        }
        full
    };
    for (i, disk) in config.disks.iter().enumerate() {
        let disk_input = if disk.partitions.is_empty() {
            opts.input_dir.join("rootfs")
        } else {
            opts.input_dir.join(format!("disk{i}.raw"))
        };
        for a in disk.artifacts.iter().flatten() {
            jobs.push(Job {
                full_name: full_name(&a.name, &a.ty),
                input: disk_input.clone(),
                ty: a.ty.clone(),
                compression: a.compression.clone(),
            });
        }
        for (j, p) in disk.partitions.iter().enumerate() {
            if p.artifacts.is_empty() {
                continue;
            }
            let setting = system.and_then(|s| s.setting(&p.id));
            if setting.is_none() {
                warnings.push(format!(
                    "Couldn't find partition setting '{}' under system config '{}'",
                    p.id,
                    system.map_or("", |s| s.name.as_str())
                ));
            }
            for a in &p.artifacts {
                let ext = match (a.ty.as_str(), setting) {
                    ("diff", Some(s)) if !s.overlay_base_image.is_empty() => "diff",
                    ("rdiff", Some(s)) if !s.rdiff_base_image.is_empty() => "rdiff",
                    _ => "raw",
                };
                jobs.push(Job {
                    full_name: full_name(&a.name, &a.ty),
                    input: opts.input_dir.join(format!("disk{i}.partition{j}.{ext}")),
                    ty: a.ty.clone(),
                    compression: a.compression.clone(),
                });
            }
        }
    }
    Ok((jobs, warnings))
}

/// Go's `filepath.Ext`: the last `.suffix` of the final path element, or "".
fn go_ext(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rfind('.') {
        Some(i) => name[i..].to_string(),
        None => String::new(),
    }
}

/// What one job produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub job: Job,
    /// The final artifact (intermediates, if any, stay next to it).
    pub result: Result<PathBuf, String>,
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

/// Builds one artifact.
pub fn run_job(job: &Job, opts: &Options) -> Outcome {
    let started = Instant::now();
    let mut warnings = Vec::new();
    let result = (|| -> Result<PathBuf, String> {
        if job.ty.is_empty() && job.compression.is_empty() {
            return Err(format!(
                "Artifact ({}) has no type or compression",
                job.full_name
            ));
        }
        let tag = if opts.image_tag.is_empty() {
            String::new()
        } else {
            format!("-{}", opts.image_tag)
        };
        let mut current = job.input.clone();
        for (value, is_type) in [(&job.ty, true), (&job.compression, false)] {
            if value.is_empty() {
                continue;
            }
            let converter = Converter::parse(value)?;
            let name = if is_type {
                format!("{}{tag}.{}", job.full_name, converter.extension())
            } else {
                format!(
                    "{}{tag}{}.{}",
                    job.full_name,
                    go_ext(&current),
                    converter.extension()
                )
            };
            let out = opts.output_dir.join(name);
            let identity =
                Identity::from_env(&out.file_name().unwrap_or_default().to_string_lossy());
            warnings.extend(
                converter
                    .run(&current, &out, &identity)
                    .map_err(|e| e.to_string())?,
            );
            current = out;
        }
        Ok(current)
    })();
    Outcome {
        job: job.clone(),
        result,
        warnings,
        elapsed: started.elapsed(),
    }
}

/// Runs every job on `opts.workers` threads, calling `report` as each finishes. Fails with the
/// list of artifacts that could not be made.
pub fn run(
    jobs: &[Job],
    opts: &Options,
    report: impl Fn(&Outcome) + Sync,
) -> Result<Vec<Outcome>, Error> {
    if opts.workers == 0 {
        return Err(Error::Workers(opts.workers));
    }
    let next = Mutex::new(0usize);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..opts.workers.min(jobs.len()) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().expect("no panics while holding the lock");
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(job) = jobs.get(i) else { break };
                let outcome = run_job(job, opts);
                report(&outcome);
                outcomes
                    .lock()
                    .expect("no panics while holding the lock")
                    .push((i, outcome));
            });
        }
    });
    let mut outcomes = outcomes.into_inner().expect("threads joined");
    outcomes.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<Outcome> = outcomes.into_iter().map(|(_, o)| o).collect();
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.job.full_name.clone())
        .collect();
    if failed.is_empty() {
        Ok(outcomes)
    } else {
        Err(Error::Failed(failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_ext_takes_the_last_suffix() {
        assert_eq!(go_ext(Path::new("/x/disk0.raw")), ".raw");
        assert_eq!(go_ext(Path::new("/x/core-3.0.20260428.1200.vhd")), ".vhd");
        assert_eq!(go_ext(Path::new("/x/rootfs")), "");
    }
}
