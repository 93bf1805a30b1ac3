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
    /// Byte ranges of values whose key names a password: never shown in a snippet.
    secrets: Vec<(usize, usize)>,
}

/// Whether a JSON key names a secret (`Password`, `password`, `LuksPassphrase`, …).
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("passphrase")
}

/// What a secret value is shown as.
pub const MASK: &str = "********";

/// The end of the JSON string starting at `start` (its opening quote): just past the closing
/// quote, or the end of the text.
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Byte ranges of the values of secret keys (see [`is_secret_key`]), found lexically, so even
/// text that does not parse is masked. A string value's range excludes its quotes.
fn secret_ranges(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let end = string_end(b, i);
        let after = skip_ws(end);
        let key = &text[i + 1..end.saturating_sub(1).max(i + 1)];
        i = end;
        if after >= b.len() || b[after] != b':' || !is_secret_key(key) {
            continue;
        }
        let v = skip_ws(after + 1);
        if v < b.len() && b[v] == b'"' {
            let v_end = string_end(b, v);
            out.push((v + 1, v_end.saturating_sub(1).max(v + 1)));
            i = v_end;
        } else {
            let len = b[v..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace())
                .unwrap_or(b.len() - v);
            if len > 0 {
                out.push((v, v + len));
            }
            i = v + len;
        }
    }
    out
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let secrets = secret_ranges(&text);
        SourceFile {
            path: path.into(),
            text,
            line_starts,
            secrets,
        }
    }

    /// A 1-based line as a snippet shows it: secret values (see [`is_secret_key`]) replaced by
    /// [`MASK`], and for each character column of the original line (1-based, one past the end
    /// included) its column in the shown text.
    pub fn shown_line(&self, line: usize) -> (String, Vec<usize>) {
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let text = self.line_text(line);
        let mut shown = String::new();
        let mut columns = vec![1];
        let mut in_secret = false;
        for (i, c) in text.char_indices() {
            let at = start + i;
            let secret = self.secrets.iter().any(|&(s, e)| s <= at && at < e);
            if secret && !in_secret {
                shown.push_str(MASK);
            } else if !secret {
                shown.push(c);
            }
            in_secret = secret;
            columns.push(shown.chars().count() + 1);
        }
        (shown, columns)
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
    let (text, shown_col) = src.shown_line(line);
    let raw_chars = src.line_text(line).chars().count();
    let shown = |col: usize| shown_col[(col - 1).min(raw_chars)];
    if !text.is_empty() || d.span.end > d.span.start {
        // Underline the span on its first line; tabs are kept so the caret lines up. Columns
        // are those of the shown text (secrets masked).
        let (end_line, end_col) = src.line_col(d.span.end.max(d.span.start + 1));
        let start = shown(column);
        let end = if end_line == line {
            shown(end_col)
        } else {
            text.chars().count() + 1
        };
        let width = end.saturating_sub(start).max(1);
        let lead: String = text
            .chars()
            .take(start - 1)
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

    #[test]
    fn a_snippet_never_shows_a_password() {
        let text = r#"{"SystemConfigs": [{"Name": "s", "Packages": ["p"],
  "Users": [{"Name": "a:b", "password": "hunter2", "UID": "70000"}],
  "Encryption": {"Enable": false, "Password": "s3cr\"et"},
  "Users2": [{"PASSWORD": 12345}]
}]}"#;
        let v = crate::validate_bytes(text.as_bytes(), Path::new("c.json"), &Default::default());
        let human = v.report.render(false);
        let json = v.report.to_json().to_string();
        for secret in ["hunter2", "s3cr", "12345"] {
            assert!(!human.contains(secret), "{human}");
            assert!(!json.contains(secret), "{json}");
        }
        assert!(
            human.contains(r#""password": "********", "UID": "70000""#),
            "{human}"
        );
        // The caret under UID still lines up with the shown (masked) text.
        let lines: Vec<&str> = human.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.ends_with("at SystemConfigs[0].Users[0].UID"))
            .unwrap();
        let (shown, caret) = (lines[at + 2], lines[at + 3]);
        assert_eq!(
            caret.find('^').unwrap(),
            shown.find(r#""70000""#).unwrap(),
            "{human}"
        );
        let s = SourceFile::new("x", text.into());
        assert_eq!(
            s.shown_line(3).0,
            r#"  "Encryption": {"Enable": false, "Password": "********"},"#
        );
        assert_eq!(s.shown_line(4).0, r#"  "Users2": [{"PASSWORD": ********}]"#);
    }

    #[test]
    fn a_mistyped_password_is_not_echoed_in_the_help() {
        let text = r#"{"SystemConfigs": [{"Name": "s", "Packages": ["p"],
  "Users": [{"Name": "u", "Password": 987654}]}]}"#;
        let v = crate::validate_bytes(text.as_bytes(), Path::new("c.json"), &Default::default());
        assert!(!v.report.is_valid());
        let json = v.report.to_json().to_string();
        assert!(!json.contains("987654"), "{json}");
        assert!(!v.report.render(false).contains("987654"));
        assert!(json.contains("found a number (not shown)"), "{json}");
    }
}
