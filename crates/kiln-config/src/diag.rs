//! Diagnostics: what is wrong, where (file, line, column, JSON path), and how to show it.

use crate::json::Span;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How bad a finding is. Errors make a config invalid; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A source text that diagnostics point into (a config or a package-list file).
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as it should be shown to the user.
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and column of a byte offset; columns count characters, not bytes.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }

    /// The text of a 1-based line, without its line terminator.
    pub fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches(['\n', '\r'])
    }
}

/// Where in upstream's processing an error would surface. Upstream stops at its first error; kiln
/// reports all of them but knows which one upstream would have printed (the smallest key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct UpstreamOrder {
    /// 0: reading the file; 1: decoding; 2: config-level checks; 3: validator package checks;
    /// 4: validator kickstart check.
    pub phase: u8,
    /// Within decoding: the end offset of the object whose decoder returns the error.
    pub offset: usize,
    /// Emission order, for ties.
    pub seq: usize,
}

/// One finding about a config.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The message text; for errors that upstream also reports, upstream's exact text.
    pub message: String,
    /// JSON path of the offending value, e.g. `SystemConfigs[0].Users[1].UID` (empty: the file).
    pub path: String,
    /// Index into [`Report::sources`] of the file the span is in.
    pub source: usize,
    pub span: Span,
    /// What upstream would print for this error: the message with its chain of
    /// `failed to parse [...]` prefixes. `None` for warnings and kiln-only findings.
    pub upstream: Option<String>,
    /// What to do about it, when kiln can say more than the message.
    pub help: Option<String>,
    pub(crate) order: UpstreamOrder,
}

/// The outcome of validating a config: every diagnostic, and the files they point into.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub sources: Vec<SourceFile>,
    pub diagnostics: Vec<Diagnostic>,
}

/// A diagnostic with its location resolved, ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<'a> {
    pub severity: Severity,
    pub message: &'a str,
    pub path: &'a str,
    pub file: &'a Path,
    pub line: usize,
    pub column: usize,
}

impl Report {
    /// True when there is no error (warnings allowed).
    pub fn is_valid(&self) -> bool {
        !self
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    /// The error upstream's tools would have stopped at, with upstream's full message text.
    pub fn upstream_error(&self) -> Option<&Diagnostic> {
        self.errors()
            .filter(|d| d.upstream.is_some())
            .min_by_key(|d| d.order)
    }

    /// The fatal line upstream's imageconfigvalidator would print for this config, if any:
    /// `Failed while loading image configuration '<path>': …` for errors its loader finds,
    /// `Invalid configuration '<path>': …` for those its validation finds.
    pub fn upstream_summary(&self, config: &Path) -> Option<String> {
        let d = self.upstream_error()?;
        let text = d.upstream.as_deref().unwrap_or(&d.message);
        Some(if d.order.phase <= 2 {
            format!(
                "Failed while loading image configuration '{}': {text}",
                config.display()
            )
        } else {
            format!("Invalid configuration '{}': {text}", config.display())
        })
    }

    /// File, line and column of a diagnostic.
    pub fn locate<'a>(&'a self, d: &'a Diagnostic) -> Located<'a> {
        let src = &self.sources[d.source];
        let (line, column) = src.line_col(d.span.start);
        Located {
            severity: d.severity,
            message: &d.message,
            path: &d.path,
            file: &src.path,
            line,
            column,
        }
    }

    /// Sorts diagnostics by file, then position, errors before warnings at the same place.
    pub(crate) fn sort(&mut self) {
        self.diagnostics
            .sort_by_key(|d| (d.source, d.span.start, d.severity, d.order));
    }

    /// The machine-readable form: `{"valid": bool, "diagnostics": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let diagnostics = self
            .diagnostics
            .iter()
            .map(|d| {
                let l = self.locate(d);
                let mut j = serde_json::json!({
                    "severity": l.severity.as_str(),
                    "message": l.message,
                    "path": l.path,
                    "file": l.file.display().to_string(),
                    "line": l.line,
                    "column": l.column,
                });
                if let Some(help) = &d.help {
                    j["help"] = help.clone().into();
                }
                j
            })
            .collect::<Vec<_>>();
        serde_json::json!({ "valid": self.is_valid(), "diagnostics": diagnostics })
    }

    /// The human-readable form: each diagnostic with its location and a source snippet.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            render_one(&mut out, self, d, color);
        }
        out
    }

    /// One line such as `config.json: invalid (2 errors, 1 warning)`.
    pub fn summary(&self, file: &Path) -> String {
        let errors = self.errors().count();
        let warnings = self.warnings().count();
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        format!(
            "{}: {} ({}, {})",
            file.display(),
            if errors == 0 { "valid" } else { "invalid" },
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    }
}

fn render_one(out: &mut String, report: &Report, d: &Diagnostic, color: bool) {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let (label, code) = match d.severity {
        Severity::Error => ("error", "1;31"),
        Severity::Warning => ("warning", "1;33"),
    };
    let src = &report.sources[d.source];
    let (line, column) = src.line_col(d.span.start);
    let mut lines = d.message.lines();
    let first = lines.next().unwrap_or("");
    let _ = writeln!(out, "{}: {}", paint(code, label), paint("1", first));
    for more in lines {
        let _ = writeln!(out, "  {more}");
    }
    let gutter = line.to_string().len();
    let pad = " ".repeat(gutter);
    let at = if d.path.is_empty() {
        String::new()
    } else {
        format!(" at {}", d.path)
    };
    let _ = writeln!(
        out,
        "{pad}{} {}:{line}:{column}{at}",
        paint("1;34", "-->"),
        src.path.display()
    );
    let text = src.line_text(line);
    if !text.is_empty() || d.span.end > d.span.start {
        // Underline the span on its first line; tabs are kept so the caret lines up.
        let (_, end_col) = src.line_col(d.span.end.max(d.span.start + 1));
        let (end_line, _) = src.line_col(d.span.end.max(d.span.start + 1));
        let text_chars = text.chars().count();
        let width = if end_line == line {
            end_col.saturating_sub(column).max(1)
        } else {
            text_chars.saturating_sub(column - 1).max(1)
        };
        let lead: String = text
            .chars()
            .take(column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let bar = paint("1;34", "|");
        let _ = writeln!(out, "{pad} {bar}");
        let _ = writeln!(out, "{} {bar} {text}", paint("1;34", &line.to_string()));
        let _ = writeln!(out, "{pad} {bar} {lead}{}", paint(code, &"^".repeat(width)));
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, "{pad} = {}: {help}", paint("1", "help"));
    }
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let s = SourceFile::new("x.json", "{\n  \"é\": 1\n}".into());
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(2), (2, 1));
        // The value `1` comes after `  "é": ` — 7 characters but 8 bytes.
        let off = s.text.find('1').unwrap();
        assert_eq!(s.line_col(off), (2, 8));
        assert_eq!(s.line_text(2), "  \"é\": 1");
    }
}
