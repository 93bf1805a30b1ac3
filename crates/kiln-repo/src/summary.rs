//! The package summary file of upstream's imagepkgfetcher (`--output-summary-file`,
//! `--input-summary-file`): `{"Repo":[{"Name","Version","Architecture","Distribution"}]}`, where
//! `Version` is `version-release` without the distribution tag (`5.2.15-1`) and `Distribution`
//! that tag (`azl3`), as upstream parses `tdnf list`.

use crate::metadata::Package;
use serde_json::{json, Value};

/// One entry of a summary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub distribution: String,
}

impl Entry {
    /// The entry for a package: a release `1.azl3` becomes version `…-1`, distribution `azl3`.
    pub fn of(p: &Package) -> Entry {
        let release = p.evr.release.clone().unwrap_or_default();
        let (rel, dist) = match release.rsplit_once('.') {
            Some((r, d))
                if d.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && d.chars().last().is_some_and(|c| c.is_ascii_digit()) =>
            {
                (r.to_string(), d.to_string())
            }
            _ => (release.clone(), String::new()),
        };
        let epoch = match p.evr.epoch {
            Some(e) if e != 0 => format!("{e}:"),
            _ => String::new(),
        };
        Entry {
            name: p.name.clone(),
            version: format!("{epoch}{}-{rel}", p.evr.version),
            arch: p.arch.clone(),
            distribution: dist,
        }
    }

    /// Whether `p` is the package this entry names.
    pub fn matches(&self, p: &Package) -> bool {
        Entry::of(p) == *self
    }
}

/// The summary document of `packages`, sorted and without duplicates.
pub fn write(packages: &[Package]) -> String {
    let mut entries: Vec<Entry> = packages.iter().map(Entry::of).collect();
    entries.sort();
    entries.dedup();
    let repo: Vec<Value> = entries
        .iter()
        .map(|e| json!({"Name": e.name, "Version": e.version, "Architecture": e.arch, "Distribution": e.distribution}))
        .collect();
    serde_json::to_string_pretty(&json!({ "Repo": repo })).expect("summaries serialize")
}

/// Reads a summary document (duplicates removed, as upstream does).
pub fn read(text: &str) -> Result<Vec<Entry>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not a package summary: {e}"))?;
    let list = v
        .get("Repo")
        .and_then(Value::as_array)
        .ok_or("not a package summary: no \"Repo\" list")?;
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let field = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or(format!("Repo[{i}] has no string \"{k}\""))
        };
        out.push(Entry {
            name: field("Name")?,
            version: field("Version")?,
            arch: field("Architecture")?,
            distribution: field("Distribution").unwrap_or_default(),
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_rpm::Evr;

    #[test]
    fn round_trip_and_upstream_shape() {
        let p = Package {
            name: "bash".into(),
            arch: "x86_64".into(),
            evr: Evr::new(0, "5.2.15", "1.azl3"),
            ..Package::default()
        };
        let e = Entry::of(&p);
        assert_eq!(
            (e.version.as_str(), e.distribution.as_str()),
            ("5.2.15-1", "azl3")
        );
        let text = write(&[p.clone(), p.clone()]);
        assert!(text.contains("\"Name\": \"bash\""));
        let back = read(&text).unwrap();
        assert_eq!(back, std::slice::from_ref(&e));
        assert!(back[0].matches(&p));
        assert!(read("{}").is_err());
        let epoch = Package {
            evr: Evr::new(2, "1.0", "3"),
            ..p
        };
        assert_eq!(Entry::of(&epoch).version, "2:1.0-3");
    }
}
