//! `.repo` files (dnf/tdnf INI): repository ids, base URLs, enabled, priority, GPG settings,
//! with `$releasever`, `$basearch` and `$arch` substituted.

use std::fmt;

/// The values substituted into `.repo` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vars {
    pub releasever: String,
    pub basearch: String,
}

impl Default for Vars {
    /// Azure Linux 3.0 on x86_64.
    fn default() -> Vars {
        Vars {
            releasever: "3.0".into(),
            basearch: "x86_64".into(),
        }
    }
}

impl Vars {
    /// Replaces `$releasever`, `${releasever}`, `$basearch`, `$arch` (and braced forms).
    pub fn substitute(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (k, v) in [
            ("releasever", &self.releasever),
            ("basearch", &self.basearch),
            ("arch", &self.basearch),
        ] {
            out = out
                .replace(&format!("${{{k}}}"), v)
                .replace(&format!("${k}"), v);
        }
        out
    }
}

/// One `[id]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoDef {
    pub id: String,
    pub name: String,
    /// Base URLs, tried in order.
    pub baseurls: Vec<String>,
    pub enabled: bool,
    /// Lower is preferred (dnf's default is 99).
    pub priority: u32,
    pub gpgcheck: bool,
    pub repo_gpgcheck: bool,
    pub gpgkeys: Vec<String>,
    pub skip_if_unavailable: bool,
    pub sslverify: bool,
}

/// A line of a `.repo` file that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct RepoFileError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for RepoDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.baseurls.join(" "))
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Parses a `.repo` file; `file` names it in errors.
pub fn parse(text: &str, file: &str, vars: &Vars) -> Result<Vec<RepoDef>, RepoFileError> {
    let err = |line: usize, message: String| RepoFileError {
        file: file.to_string(),
        line,
        message,
    };
    // Sections, each with its (line, key, value) entries; continuation lines are joined.
    type Entries = Vec<(usize, String, String)>;
    let mut sections: Vec<(usize, String, Entries)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw.starts_with(char::is_whitespace) {
            // A continuation of the previous value.
            match sections.last_mut().and_then(|s| s.2.last_mut()) {
                Some((_, _, value)) => {
                    value.push(' ');
                    value.push_str(trimmed);
                    continue;
                }
                None => {
                    return Err(err(
                        n,
                        "a continuation line with nothing to continue".into(),
                    ))
                }
            }
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let id = rest
                .strip_suffix(']')
                .ok_or_else(|| err(n, format!("section header {trimmed:?} lacks ']'")))?
                .trim();
            if id.is_empty() || id.contains(char::is_whitespace) {
                return Err(err(n, format!("invalid repository id {id:?}")));
            }
            sections.push((n, id.to_string(), Vec::new()));
            continue;
        }
        let (key, value) = trimmed
            .split_once('=')
            .ok_or_else(|| err(n, format!("expected key=value, found {trimmed:?}")))?;
        let Some(section) = sections.last_mut() else {
            return Err(err(
                n,
                format!("{} is outside any [repository] section", key.trim()),
            ));
        };
        section
            .2
            .push((n, key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut repos = Vec::new();
    for (line, id, entries) in sections {
        if id == "main" {
            continue; // dnf.conf's global section
        }
        let mut r = RepoDef {
            id: id.clone(),
            name: id.clone(),
            baseurls: Vec::new(),
            enabled: true,
            priority: 99,
            gpgcheck: false,
            repo_gpgcheck: false,
            gpgkeys: Vec::new(),
            skip_if_unavailable: false,
            sslverify: true,
        };
        for (n, key, value) in entries {
            let value = vars.substitute(&value);
            let boolean = || {
                parse_bool(&value)
                    .ok_or_else(|| err(n, format!("{key}: {value:?} is not a boolean")))
            };
            match key.as_str() {
                "name" => r.name = value,
                "baseurl" => r.baseurls = split_list(&value),
                "enabled" => r.enabled = boolean()?,
                "priority" => {
                    r.priority = value
                        .parse()
                        .map_err(|_| err(n, format!("priority: {value:?} is not a number")))?
                }
                "gpgcheck" => r.gpgcheck = boolean()?,
                "repo_gpgcheck" => r.repo_gpgcheck = boolean()?,
                "gpgkey" => r.gpgkeys = split_list(&value),
                "skip_if_unavailable" => r.skip_if_unavailable = boolean()?,
                "sslverify" => r.sslverify = boolean()?,
                "metalink" | "mirrorlist" => {
                    return Err(err(
                        n,
                        format!("{key} is not supported: give the repository a baseurl"),
                    ))
                }
                _ => {} // other dnf options do not change what kiln reads
            }
        }
        if r.baseurls.is_empty() {
            return Err(err(line, format!("repository [{id}] has no baseurl")));
        }
        repos.push(r);
    }
    Ok(repos)
}

/// The Azure Linux 3.0 package repositories (packages.microsoft.com), which users build from.
pub const AZURE_LINUX_3: &str = include_str!("azurelinux-3.0.repo");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_lists_booleans_and_variables() {
        let text = "# comment\n[one]\nname=One $releasever\nbaseurl=https://a/$releasever/$basearch\n  https://b/${basearch}\nenabled=0\npriority = 5\ngpgcheck=True\ngpgkey=file:///k1, file:///k2\n\n[two]\nbaseurl=file:///srv/repo\n";
        let r = parse(text, "x.repo", &Vars::default()).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].name, "One 3.0");
        assert_eq!(r[0].baseurls, ["https://a/3.0/x86_64", "https://b/x86_64"]);
        assert!(!r[0].enabled && r[0].gpgcheck && !r[0].repo_gpgcheck);
        assert_eq!(r[0].priority, 5);
        assert_eq!(r[0].gpgkeys, ["file:///k1", "file:///k2"]);
        assert!(r[1].enabled);
        assert_eq!(r[1].priority, 99);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(
            "[a]\nbaseurl=x\nenabled=maybe\n",
            "r.repo",
            &Vars::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.repo:3: enabled: \"maybe\" is not a boolean"
        );
        let e = parse("baseurl=x\n", "r.repo", &Vars::default()).unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse("[a]\nname=x\n", "r.repo", &Vars::default()).unwrap_err();
        assert_eq!(e.to_string(), "r.repo:1: repository [a] has no baseurl");
        assert!(parse("[a\n", "r.repo", &Vars::default()).is_err());
    }

    #[test]
    fn the_azure_linux_definition_parses() {
        let r = parse(AZURE_LINUX_3, "azurelinux-3.0.repo", &Vars::default()).unwrap();
        let ids: Vec<&str> = r.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "azurelinux-official-base",
                "azurelinux-official-extended",
                "azurelinux-official-ms-oss",
                "azurelinux-official-ms-non-oss"
            ]
        );
        assert_eq!(
            r[0].baseurls,
            ["https://packages.microsoft.com/azurelinux/3.0/prod/base/x86_64"]
        );
        assert!(r.iter().all(|r| r.gpgcheck && r.repo_gpgcheck && r.enabled));
    }
}
