//! Why a stage failed: what, in which stage, where, and what to do.

use crate::event::{Location, Stage};
use serde_json::{json, Value};

/// What kind of failure (for exit statuses and for programs reading `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong (missing source, bad option): exit 2 in the CLI.
    Usage,
    /// The config cannot be read.
    ConfigUnreadable,
    /// The config is invalid: [`Error::report`] has every diagnostic.
    InvalidConfig,
    /// A host program the build needs is missing.
    MissingTool,
    /// Another kiln holds a folder, or a folder cannot be used.
    WorkFolder,
    /// A repository cannot be reached.
    Network,
    /// The packages cannot be resolved.
    Resolve,
    /// Fetching or checking packages failed.
    Packages,
    /// Composing the image failed.
    Compose,
    /// Making an artifact failed.
    Artifact,
    /// Reading or writing a file failed.
    Io,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::ConfigUnreadable => "config-unreadable",
            ErrorKind::InvalidConfig => "invalid-config",
            ErrorKind::MissingTool => "missing-tool",
            ErrorKind::WorkFolder => "work-folder",
            ErrorKind::Network => "network",
            ErrorKind::Resolve => "resolve",
            ErrorKind::Packages => "packages",
            ErrorKind::Compose => "compose",
            ErrorKind::Artifact => "artifact",
            ErrorKind::Io => "io",
        }
    }
}

/// A stage's failure. `Display` is the message alone (as the commands printed it before);
/// renderers add the stage, the place and the help line.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub stage: Stage,
    pub kind: ErrorKind,
    pub message: String,
    /// Where in the config, when it is a config problem.
    pub at: Option<Location>,
    /// The package concerned.
    pub package: Option<String>,
    /// The partition concerned (`<index> (<id>)`).
    pub partition: Option<String>,
    /// The byte offset concerned (in a disk or file).
    pub offset: Option<u64>,
    /// What to do about it.
    pub help: Option<String>,
    /// An invalid config's whole report (every diagnostic, with its snippet).
    pub report: Option<Box<kiln_config::Report>>,
    /// The build log that has the whole story (a whole build's errors).
    pub log: Option<std::path::PathBuf>,
}

impl Error {
    pub fn new(stage: Stage, kind: ErrorKind, message: impl Into<String>) -> Error {
        let message = message.into();
        Error {
            stage,
            kind,
            partition: partition_in(&message),
            offset: offset_in(&message),
            package: None,
            at: None,
            help: None,
            report: None,
            log: None,
            message,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Error {
        self.help = Some(help.into());
        self
    }

    pub fn package(mut self, package: impl Into<String>) -> Error {
        self.package = Some(package.into());
        self
    }

    /// A closure turning a displayable error into one of `stage` and `kind`.
    pub(crate) fn of<E: std::fmt::Display>(stage: Stage, kind: ErrorKind) -> impl Fn(E) -> Error {
        move |e| Error::new(stage, kind, e.to_string())
    }

    /// The error as one JSON object (docs/json.md).
    pub fn to_json(&self) -> Value {
        let diagnostics = self
            .report
            .as_ref()
            .map(|r| r.to_json()["diagnostics"].clone());
        json!({
            "event": "error",
            "stage": self.stage.name(),
            "kind": self.kind.name(),
            "message": self.message,
            "at": self.at.as_ref().map(|a| json!({
                "file": a.file.display().to_string(), "line": a.line, "column": a.column,
                "path": a.path,
            })),
            "package": self.package,
            "partition": self.partition,
            "offset": self.offset,
            "help": self.help,
            "log": self.log.as_ref().map(|l| l.display().to_string()),
            "diagnostics": diagnostics,
        })
    }
}

/// `partition 2 (rootfs)` in a message.
fn partition_in(message: &str) -> Option<String> {
    let at = message.find("partition ")?;
    let rest = &message[at + "partition ".len()..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let tail = &rest[digits..];
    match tail.strip_prefix(" (").and_then(|t| t.split_once(')')) {
        Some((id, _)) => Some(format!("{} ({id})", &rest[..digits])),
        None => Some(rest[..digits].to_string()),
    }
}

/// `at byte N` / `at offset N` in a message.
fn offset_in(message: &str) -> Option<u64> {
    for key in ["at byte ", "at offset ", "byte offset "] {
        if let Some(at) = message.find(key) {
            let rest = &message[at + key.len()..];
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = n.parse() {
                return Some(n);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_in_messages_are_found() {
        let e = Error::new(
            Stage::Compose,
            ErrorKind::Compose,
            "filesystems: partition 2 (rootfs): mke2fs failed",
        );
        assert_eq!(e.partition.as_deref(), Some("2 (rootfs)"));
        let e = Error::new(Stage::Roast, ErrorKind::Artifact, "bad header at byte 512");
        assert_eq!(e.offset, Some(512));
        assert_eq!(e.partition, None);
        assert_eq!(e.to_string(), "bad header at byte 512");
    }
}
