//! Package strings (`name`, `name >= 1.0`, …) and package-list files (SPEC §1.8).

use crate::diag::SourceFile;
use crate::input::{InputError, PACKAGE_LIST_LIMIT};
use crate::json::{self, Span, Value};
use std::fmt;
use std::path::Path;

/// A version condition of a package string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Eq => "=",
            Condition::Lt => "<",
            Condition::Gt => ">",
            Condition::Le => "<=",
            Condition::Ge => ">=",
        }
    }
}

/// A parsed package string: a name and an optional version condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub name: String,
    pub condition: Option<(Condition, String)>,
}

impl fmt::Display for PackageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.condition {
            None => f.write_str(&self.name),
            Some((c, v)) => write!(f, "{} {} {v}", self.name, c.as_str()),
        }
    }
}

/// Upstream's message for a package string that does not parse.
pub fn bad_entry_message(entry: &str) -> String {
    format!("packages list entry \"{entry}\" does not match the '[name][optional_condition][optional_version]' format")
}

/// Go regexp `\s`.
fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

fn is_word(c: char) -> bool {
    !is_space(c) && !matches!(c, '<' | '>' | '=')
}

impl PackageSpec {
    /// Parses `^\s*([^><=\s]+)\s*(?:([<>]=|[<>=])\s*([^<>=\s]+))?\s*$`.
    pub fn parse(entry: &str) -> Result<PackageSpec, String> {
        let bad = || bad_entry_message(entry);
        let s = entry.trim_start_matches(is_space);
        let name_len = s.find(|c| !is_word(c)).unwrap_or(s.len());
        if name_len == 0 {
            return Err(bad());
        }
        let (name, rest) = s.split_at(name_len);
        let rest = rest.trim_start_matches(is_space);
        if rest.is_empty() {
            return Ok(PackageSpec {
                name: name.to_string(),
                condition: None,
            });
        }
        let (cond, rest) = if let Some(r) = rest.strip_prefix("<=") {
            (Condition::Le, r)
        } else if let Some(r) = rest.strip_prefix(">=") {
            (Condition::Ge, r)
        } else if let Some(r) = rest.strip_prefix('<') {
            (Condition::Lt, r)
        } else if let Some(r) = rest.strip_prefix('>') {
            (Condition::Gt, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (Condition::Eq, r)
        } else {
            return Err(bad());
        };
        let rest = rest.trim_start_matches(is_space);
        let version_len = rest.find(|c| !is_word(c)).unwrap_or(rest.len());
        if version_len == 0 || !rest[version_len..].chars().all(is_space) {
            return Err(bad());
        }
        Ok(PackageSpec {
            name: name.to_string(),
            condition: Some((cond, rest[..version_len].to_string())),
        })
    }
}

/// A problem reading a package-list file, with upstream's text.
#[derive(Debug, Clone)]
pub enum ListError {
    /// The file could not be read (`open <path>: no such file or directory`).
    Io(String),
    /// The file was read but is not a valid package list; the span is in `source`.
    Content {
        source: Box<SourceFile>,
        span: Span,
        path: String,
        message: String,
    },
}

/// A package-list file: its text, and each entry with its span.
#[derive(Debug, Clone)]
pub struct PackageList {
    pub source: SourceFile,
    pub entries: Vec<(String, Span)>,
}

/// Reads a JSON input file: a regular file of at most `limit` bytes, opened so that a FIFO or
/// a device such as `/dev/zero` cannot hang kiln ([`crate::input::read_bounded`]). Errors are
/// Go's texts where upstream has one (`open <path>: no such file or directory`).
pub(crate) fn read_json_file(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    crate::input::read_bounded(path, limit, what).map_err(|e| match e {
        InputError::Io { source, .. } => go_os_error("open", path, &source),
        // Go's os.ReadFile opens a directory and fails reading it.
        InputError::NotRegular {
            kind: "a directory",
            ..
        } => format!("read {}: is a directory", path.display()),
        other => other.to_string(),
    })
}

/// Go's rendering of an OS error (`no such file or directory`).
pub(crate) fn go_os_error(op: &str, path: &Path, e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    let text = match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => text,
    };
    format!("{op} {}: {text}", path.display())
}

impl PackageList {
    /// Reads `{"packages": [...]}` (key matched case-insensitively, other keys ignored).
    pub fn read(path: &Path) -> Result<PackageList, ListError> {
        let bytes =
            read_json_file(path, PACKAGE_LIST_LIMIT, "package list").map_err(ListError::Io)?;
        let source = SourceFile::new(path, String::from_utf8_lossy(&bytes).into_owned());
        let content =
            |source: &SourceFile, span: Span, path: &str, message: String| ListError::Content {
                source: Box::new(source.clone()),
                span,
                path: path.to_string(),
                message,
            };
        let node = match json::parse(source.text.as_bytes()) {
            Ok(n) => n,
            Err(e) => {
                let span = Span::new(e.offset, e.offset + 1);
                return Err(content(&source, span, "", e.message));
            }
        };
        let mut entries = Vec::new();
        match &node.value {
            Value::Object(_) | Value::Null => {}
            other => {
                return Err(content(
                    &source,
                    node.span,
                    "",
                    format!(
                        "json: cannot unmarshal {} into Go value of type pkgjson.PackageList",
                        other.kind_name()
                    ),
                ))
            }
        }
        if let Some(list) = node.member("packages") {
            match &list.value {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        match &item.value {
                            Value::String(s) => entries.push((s.clone(), item.span)),
                            Value::Null => entries.push((String::new(), item.span)),
                            other => {
                                return Err(content(
                                    &source,
                                    item.span,
                                    &format!("packages[{i}]"),
                                    format!("json: cannot unmarshal {} into Go struct field PackageList.packages of type string", other.kind_name()),
                                ))
                            }
                        }
                    }
                }
                Value::Null => {}
                other => {
                    return Err(content(
                        &source,
                        list.span,
                        "packages",
                        format!("json: cannot unmarshal {} into Go struct field PackageList.packages of type []string", other.kind_name()),
                    ))
                }
            }
        }
        Ok(PackageList { source, entries })
    }
}

/// The package strings a system config installs, each with where it was written, in
/// upstream's order (SPEC §3.1 step 4): the kernel (`KernelOptions["default"]`; a disk image
/// must have one), `azurelinux-release`, each package list's entries, then `Packages`.
/// `config_file` names the config in the origins; package-list paths must already be resolved
/// (as `Config::resolve_paths` leaves them).
pub fn requested(
    sc: &crate::model::SystemConfig,
    config_file: &Path,
    disk_image: bool,
) -> Result<Vec<(String, String)>, String> {
    let here = config_file.display().to_string();
    let mut out = Vec::new();
    match sc.kernel_options.get("default").map(|k| k.trim()) {
        Some(k) if !k.is_empty() => out.push((k.to_string(), format!("{here} (KernelOptions)"))),
        _ if disk_image => {
            return Err(format!(
                "failed to select a suitable kernel to install in config ({here}):\nno kernel for option (default) set"
            ))
        }
        _ => {}
    }
    out.push((
        "azurelinux-release".to_string(),
        format!("{here} (always added)"),
    ));
    for list in &sc.package_lists {
        let read = PackageList::read(Path::new(list)).map_err(|e| match e {
            ListError::Io(text) => text,
            ListError::Content { path, message, .. } => format!("{list}: {path}: {message}"),
        })?;
        out.extend(read.entries.into_iter().map(|(e, _)| (e, list.clone())));
    }
    out.extend(sc.packages.iter().map(|p| (p.clone(), here.clone())));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Result<String, String> {
        PackageSpec::parse(s).map(|p| p.to_string())
    }

    #[test]
    fn package_string_grammar() {
        assert_eq!(spec("kernel"), Ok("kernel".into()));
        assert_eq!(spec("  shadow-utils=1.0 "), Ok("shadow-utils = 1.0".into()));
        assert_eq!(
            spec("shadow-utils = some-version"),
            Ok("shadow-utils = some-version".into())
        );
        assert_eq!(spec("a>=2"), Ok("a >= 2".into()));
        assert_eq!(spec("a <3"), Ok("a < 3".into()));
        assert_eq!(
            spec("python3-libs>3.0.1-1.azl3"),
            Ok("python3-libs > 3.0.1-1.azl3".into())
        );
        for bad in [
            "",
            "  ",
            "bad package = bad < version",
            "a = ",
            "a == 1",
            "=1",
            "a b",
            "a = 1 2",
            "a=>1",
        ] {
            assert!(spec(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            spec("a b").unwrap_err(),
            "packages list entry \"a b\" does not match the '[name][optional_condition][optional_version]' format"
        );
    }
}
