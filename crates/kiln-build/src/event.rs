//! Progress as events: what a stage does, told to whoever renders it.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// A stage of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Claiming and locking the work folders (before any stage of a build).
    Setup,
    Validate,
    Fetch,
    Compose,
    Roast,
    /// isomaker: the installer ISO staged and written.
    Iso,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Setup => "setup",
            Stage::Validate => "validate",
            Stage::Fetch => "fetch",
            Stage::Compose => "compose",
            Stage::Roast => "roast",
            Stage::Iso => "iso",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A place in a config: file, line and column (1-based; columns in characters) and JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// e.g. `SystemConfigs[0].Users[0].UID`.
    pub path: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, " at {}", self.path)?;
        }
        Ok(())
    }
}

impl Location {
    fn to_json(&self) -> Value {
        json!({
            "file": self.file.display().to_string(),
            "line": self.line,
            "column": self.column,
            "path": self.path,
        })
    }
}

/// What the pipeline tells while it works. docs/json.md describes each as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    StageStarted {
        stage: Stage,
    },
    StageFinished {
        stage: Stage,
        elapsed: Duration,
    },
    /// A step of a stage ("resolved 12 requested packages to 40 packages", "running x.sh").
    Step {
        stage: Stage,
        message: String,
    },
    /// Something the user should see that does not stop the build: the config's validation
    /// warnings (with their place), roast's padding notes, ignored settings.
    Warning {
        stage: Stage,
        message: String,
        at: Option<Location>,
    },
    /// A line a program printed (rpm and its scriptlets, scripts, grub2-mkconfig, setfiles).
    Output {
        stage: Stage,
        line: String,
    },
    /// Downloads: `done` of `count` packages finished, `bytes` of `total_bytes` transferred.
    Download {
        done: usize,
        count: usize,
        bytes: u64,
        total_bytes: u64,
    },
    /// rpm transaction `index` (1-based) of `count` starts: `what` with `packages` packages.
    Install {
        index: usize,
        count: usize,
        what: String,
        packages: usize,
    },
    /// Artifacts: `done` of `count` finished, the last being `artifact`; while one disk is
    /// converted, `bytes` of `total_bytes` of it are read (both 0 when not known).
    Convert {
        done: usize,
        count: usize,
        artifact: String,
        bytes: u64,
        total_bytes: u64,
    },
    /// A whole build's step times, at its end.
    Timings {
        stages: Vec<(Stage, Duration)>,
        total: Duration,
    },
}

impl Event {
    /// The event as one line of a plain log (no time stamp), or `None` for pure progress
    /// (downloads and conversions counting up). Program output keeps upstream's `  | ` prefix.
    pub fn plain(&self) -> Option<String> {
        match self {
            Event::StageStarted { stage } => Some(format!("== {stage}")),
            Event::StageFinished { .. } => None,
            Event::Step { message, .. } => Some(message.clone()),
            Event::Warning { message, at, .. } => Some(match at {
                Some(at) => format!("warning: {message} ({at})"),
                None => format!("warning: {message}"),
            }),
            Event::Output { line, .. } => Some(format!("  | {line}")),
            Event::Download { .. } | Event::Convert { .. } => None,
            Event::Install { what, packages, .. } => {
                Some(format!("installing {what} ({packages} packages)"))
            }
            Event::Timings { stages, total } => {
                let mut table = String::from("step        time\n");
                for (stage, t) in stages {
                    table += &format!("{:<10} {:6.2} s\n", stage.name(), t.as_secs_f64());
                }
                table += &format!("{:<10} {:6.2} s", "total", total.as_secs_f64());
                Some(table)
            }
        }
    }

    /// The event as one JSON object (docs/json.md).
    pub fn to_json(&self) -> Value {
        match self {
            Event::StageStarted { stage } => {
                json!({"event": "stage-started", "stage": stage.name()})
            }
            Event::StageFinished { stage, elapsed } => json!({
                "event": "stage-finished", "stage": stage.name(), "seconds": elapsed.as_secs_f64()
            }),
            Event::Step { stage, message } => {
                json!({"event": "step", "stage": stage.name(), "message": message})
            }
            Event::Warning { stage, message, at } => json!({
                "event": "warning", "stage": stage.name(), "message": message,
                "at": at.as_ref().map(Location::to_json),
            }),
            Event::Output { stage, line } => {
                json!({"event": "output", "stage": stage.name(), "line": line})
            }
            Event::Download {
                done,
                count,
                bytes,
                total_bytes,
            } => json!({
                "event": "download", "done": done, "count": count, "bytes": bytes,
                "total_bytes": total_bytes
            }),
            Event::Install {
                index,
                count,
                what,
                packages,
            } => json!({
                "event": "install", "index": index, "count": count, "what": what,
                "packages": packages
            }),
            Event::Convert {
                done,
                count,
                artifact,
                bytes,
                total_bytes,
            } => json!({
                "event": "convert", "done": done, "count": count, "artifact": artifact,
                "bytes": bytes, "total_bytes": total_bytes
            }),
            Event::Timings { stages, total } => json!({
                "event": "timings",
                "stages": stages.iter().map(|(s, t)| json!({"stage": s.name(), "seconds": t.as_secs_f64()})).collect::<Vec<_>>(),
                "total_seconds": total.as_secs_f64(),
            }),
        }
    }
}

/// Tells a stage's start and end (with its duration) around `work`.
pub(crate) fn staged<T, E>(
    stage: Stage,
    on_event: &mut dyn FnMut(Event),
    work: impl FnOnce(&mut dyn FnMut(Event)) -> Result<T, E>,
) -> Result<T, E> {
    let started = std::time::Instant::now();
    on_event(Event::StageStarted { stage });
    let result = work(on_event);
    if result.is_ok() {
        on_event(Event::StageFinished {
            stage,
            elapsed: started.elapsed(),
        });
    }
    result
}

/// The events of a stage's progress callback (`&str` lines, as the library crates report):
/// program output (`  | ` lines) and warnings (`warning: `) get their own kinds; rpm
/// transactions (`installing X (N packages)`) become [`Event::Install`] of `transactions`.
pub(crate) fn from_line(
    stage: Stage,
    line: &str,
    transactions: usize,
    installs: &mut usize,
) -> Event {
    if let Some(out) = line.strip_prefix("  | ") {
        return Event::Output {
            stage,
            line: out.to_string(),
        };
    }
    if let Some(w) = line.strip_prefix("warning: ") {
        return Event::Warning {
            stage,
            message: w.to_string(),
            at: None,
        };
    }
    if let Some(rest) = line.strip_prefix("installing ") {
        if let Some((what, n)) = rest
            .strip_suffix(" packages)")
            .and_then(|r| r.rsplit_once(" ("))
        {
            if let Ok(packages) = n.parse() {
                *installs += 1;
                return Event::Install {
                    index: *installs,
                    count: transactions.max(*installs),
                    what: what.to_string(),
                    packages,
                };
            }
        }
    }
    Event::Step {
        stage,
        message: line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_lines_become_their_kinds() {
        let mut n = 0;
        let s = Stage::Compose;
        assert_eq!(
            from_line(s, "  | hello", 3, &mut n),
            Event::Output {
                stage: s,
                line: "hello".into()
            }
        );
        assert!(matches!(
            from_line(s, "warning: x", 3, &mut n),
            Event::Warning { .. }
        ));
        assert_eq!(
            from_line(s, "installing the packages (12 packages)", 3, &mut n),
            Event::Install {
                index: 1,
                count: 3,
                what: "the packages".into(),
                packages: 12
            }
        );
        assert_eq!(
            from_line(s, "running a.sh", 3, &mut n),
            Event::Step {
                stage: s,
                message: "running a.sh".into()
            }
        );
    }
}
