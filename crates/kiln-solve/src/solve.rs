//! Resolution: from requested package strings to the set of packages a fresh install gets,
//! choosing among candidates as dnf/tdnf (libsolv) do for an empty install root.
//!
//! Requests become jobs for the engine ([`crate::engine`]), which decides as libsolv does;
//! the result is the installed set, each package with why it is there, or a sentence saying
//! what cannot be met and the chain of requirements that led to it.

use crate::engine::{evr_matches, obsoletes, Cause, Engine, Origin, WeakWhy};
use crate::pool::{PackageId, Pool};
use kiln_rpm::{Dep, Evr, Op};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// A package string from a config (`name`, `name=1.2`, `name >= 1.0`, a capability or a path)
/// and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub range: Option<(Op, Evr)>,
    /// Where the request was written, e.g. `packagelists/core.json`.
    pub origin: String,
}

impl Request {
    pub fn new(name: &str, range: Option<(Op, Evr)>, origin: &str) -> Request {
        Request {
            name: name.into(),
            range,
            origin: origin.into(),
        }
    }

    /// A package string as configs write them (SPEC §1.8): `name`, or `name` then one of
    /// `=`, `<`, `<=`, `>`, `>=` and a version, spaces allowed around the operator.
    pub fn parse(text: &str, origin: &str) -> Result<Request, String> {
        let t = text.trim();
        let bad = || {
            format!("package string {text:?} is not 'name', or 'name', an operator and a version")
        };
        let split = t.find(['<', '>', '=']);
        let Some(at) = split else {
            if t.is_empty() || t.contains(char::is_whitespace) {
                return Err(bad());
            }
            return Ok(Request::new(t, None, origin));
        };
        let name = t[..at].trim_end();
        let rest = &t[at..];
        let op_len = if rest.starts_with("<=") || rest.starts_with(">=") {
            2
        } else {
            1
        };
        let op = Op::parse(&rest[..op_len]).ok_or_else(bad)?;
        let version = rest[op_len..].trim_start();
        if name.is_empty()
            || name.contains(char::is_whitespace)
            || version.is_empty()
            || version.contains(|c: char| c.is_whitespace() || "<>=".contains(c))
        {
            return Err(bad());
        }
        Ok(Request::new(name, Some((op, Evr::parse(version))), origin))
    }

    pub(crate) fn dep(&self) -> Dep {
        Dep::Simple {
            name: self.name.clone(),
            range: self.range.clone(),
        }
    }

    pub(crate) fn text(&self) -> String {
        match &self.range {
            None => self.name.clone(),
            Some((op, evr)) => format!("{} {} {evr}", self.name, op.as_str()),
        }
    }
}

/// How to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The machine architecture (`x86_64`, `aarch64`); `noarch` is always allowed.
    pub arch: String,
    /// Install Recommends and Supplements (tdnf does: it leaves libsolv's default on).
    pub weak_deps: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            arch: "x86_64".into(),
            weak_deps: true,
        }
    }
}

/// Why a package is in the resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Asked for by request `n`.
    Requested(usize),
    /// Needed by a chosen package's Requires.
    Required { by: PackageId, dep: String },
    /// A chosen package recommends it.
    Recommended { by: PackageId, dep: String },
    /// It supplements a chosen package.
    Supplements { dep: String },
}

/// The packages to install, each with why.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Chosen packages in the order they were chosen.
    pub packages: Vec<PackageId>,
    pub reasons: BTreeMap<PackageId, Reason>,
}

impl Resolution {
    /// Why `id` is in the set, as a chain of lines from it to the request.
    pub fn why(&self, pool: &Pool, requests: &[Request], id: PackageId) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = Some(id);
        let mut seen = HashSet::new();
        while let Some(p) = at.take() {
            if !seen.insert(p) {
                break;
            }
            let nevra = pool.package(p).nevra();
            match self.reasons.get(&p) {
                Some(Reason::Requested(n)) => out.push(format!(
                    "{nevra}: requested as \"{}\" in {}",
                    requests[*n].text(),
                    requests[*n].origin
                )),
                Some(Reason::Required { by, dep }) => {
                    out.push(format!(
                        "{nevra}: provides {dep}, required by {}",
                        pool.package(*by).nevra()
                    ));
                    at = Some(*by);
                }
                Some(Reason::Recommended { by, dep }) => {
                    out.push(format!(
                        "{nevra}: provides {dep}, recommended by {}",
                        pool.package(*by).nevra()
                    ));
                    at = Some(*by);
                }
                Some(Reason::Supplements { dep }) => {
                    out.push(format!("{nevra}: supplements {dep}, which is installed"))
                }
                None => out.push(format!("{nevra}: not in the resolution")),
            }
        }
        out
    }
}

/// Why resolution failed: the unmet requirement and the chain that led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsatisfiable {
    pub message: String,
}

impl fmt::Display for Unsatisfiable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Unsatisfiable {}

/// Resolves `requests` against `pool` (see [`crate::engine`] for how choices are made).
pub fn resolve(
    pool: &Pool,
    requests: &[Request],
    options: &Options,
) -> Result<Resolution, Unsatisfiable> {
    let mut engine = Engine::new(pool, &options.arch, options.weak_deps);
    // Every request nothing provides is named, not only the first: a config missing several
    // packages is fixed in one round.
    let mut missing = Vec::new();
    for (n, r) in requests.iter().enumerate() {
        let candidates = job_candidates(pool, &mut engine, r);
        if candidates.is_empty() {
            missing.push(format!(
                "nothing provides {}, required by \"{}\" in {}",
                r.dep(),
                r.text(),
                r.origin
            ));
        } else {
            engine.add_job(n, &candidates);
        }
    }
    if !missing.is_empty() {
        return Err(Unsatisfiable {
            message: missing.join("; "),
        });
    }
    if let Err(failure) = engine.run() {
        return Err(Unsatisfiable {
            message: engine.explain(&failure, requests),
        });
    }
    let packages = engine.installed_in_order();
    let mut reasons = BTreeMap::new();
    for &id in &packages {
        let reason = match engine.cause_of(id) {
            Cause::Clause(c) | Cause::Choice(c) => match engine.origin(c) {
                Origin::Job(n) => Reason::Requested(*n),
                Origin::Requires { owner, dep } => Reason::Required {
                    by: *owner,
                    dep: dep.to_string(),
                },
                _ => continue,
            },
            Cause::Weak(k) => match &engine.weak[k] {
                WeakWhy::Recommended { by, dep } => Reason::Recommended {
                    by: *by,
                    dep: dep.to_string(),
                },
                WeakWhy::Supplements { dep } => Reason::Supplements {
                    dep: dep.to_string(),
                },
            },
            Cause::Flip => continue,
        };
        reasons.insert(id, reason);
    }
    Ok(Resolution { packages, reasons })
}

/// What a request may install: packages of that name (in range) first, and only then
/// packages providing it as a capability or a file. As dnf does, a package that obsoletes the
/// best candidate (a rename) is installed instead of it.
fn job_candidates(pool: &Pool, engine: &mut Engine, r: &Request) -> Vec<PackageId> {
    let by_name: Vec<PackageId> = pool
        .by_name(&r.name)
        .into_iter()
        .filter(|&id| engine.arch_ok(id) && evr_matches(&pool.package(id).evr, &r.range))
        .collect();
    let Some(&best) = by_name.iter().min_by_key(|&&id| pool.source(id).priority) else {
        return engine.simple_providers(&r.dep());
    };
    let replacements: Vec<PackageId> = pool
        .obsoleting(&pool.package(best).name)
        .iter()
        .copied()
        .filter(|&o| o != best && engine.arch_ok(o) && obsoletes(pool, o, best))
        .collect();
    if replacements.is_empty() {
        by_name
    } else {
        replacements
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_strings() {
        let r = Request::parse(" gcc >= 9.1 ", "c.json").unwrap();
        assert_eq!(
            (r.name.as_str(), r.text()),
            ("gcc", "gcc >= 9.1".to_string())
        );
        assert_eq!(
            Request::parse("gcc=9.1.0", "").unwrap().text(),
            "gcc = 9.1.0"
        );
        assert_eq!(Request::parse("a<2", "").unwrap().text(), "a < 2");
        assert_eq!(Request::parse("/usr/bin/x", "").unwrap().range, None);
        for bad in ["", "a b", "a >", "=1", "a >= 1 2", "a => 1", "a <<1"] {
            assert!(Request::parse(bad, "").is_err(), "{bad:?}");
        }
    }

    fn package(nevra: (&str, &str, &str), requires: &[&str]) -> kiln_repo::Package {
        let (name, version, arch) = nevra;
        kiln_repo::Package {
            name: name.into(),
            arch: arch.into(),
            evr: Evr::new(0, version, "1"),
            provides: vec![kiln_repo::metadata::Relation {
                dep: Dep::parse(&format!("{name} = {version}-1")).unwrap(),
                pre: false,
            }],
            requires: requires
                .iter()
                .map(|r| kiln_repo::metadata::Relation {
                    dep: Dep::parse(r).unwrap(),
                    pre: false,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn failures_tell_the_whole_chain_and_why_tells_the_path() {
        let mut pool = Pool::new();
        pool.add_source(
            crate::pool::Source {
                name: "r".into(),
                priority: 99,
            },
            vec![
                package(("bar", "1.2", "x86_64"), &["libfoo.so.1()(64bit)"]),
                package(("app", "2.0", "noarch"), &["bar"]),
                package(("tool", "1.0", "x86_64"), &[]),
                package(("top", "1.0", "noarch"), &["tool"]),
            ],
        );
        let core = |s: &str| Request::parse(s, "packagelists/core.json").unwrap();
        let e = resolve(&pool, &[core("bar")], &Options::default()).unwrap_err();
        assert_eq!(
            e.message,
            "nothing provides libfoo.so.1()(64bit) needed by bar-1.2-1.x86_64, required by \"bar\" in packagelists/core.json"
        );
        let e = resolve(&pool, &[core("app")], &Options::default()).unwrap_err();
        assert_eq!(
            e.message,
            "nothing provides libfoo.so.1()(64bit) needed by bar-1.2-1.x86_64, required by app-2.0-1.noarch, required by \"app\" in packagelists/core.json"
        );
        let e = resolve(&pool, &[core("nope >= 2")], &Options::default()).unwrap_err();
        assert_eq!(
            e.message,
            "nothing provides nope >= 2, required by \"nope >= 2\" in packagelists/core.json"
        );
        // Every missing request is named, in the lists' order.
        let extra = Request::parse("gone", "packagelists/extra.json").unwrap();
        let e = resolve(
            &pool,
            &[core("nope"), core("top"), extra],
            &Options::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "nothing provides nope, required by \"nope\" in packagelists/core.json; \
             nothing provides gone, required by \"gone\" in packagelists/extra.json"
        );

        let requests = [core("top")];
        let r = resolve(&pool, &requests, &Options::default()).unwrap();
        let tool = r.packages[1];
        assert_eq!(
            r.why(&pool, &requests, tool),
            [
                "tool-1.0-1.x86_64: provides tool, required by top-1.0-1.noarch",
                "top-1.0-1.noarch: requested as \"top\" in packagelists/core.json"
            ]
        );
        // A preferred repository's package wins over a newer one elsewhere (libsolv's
        // prune-to-highest-priority).
        let mut two = Pool::new();
        let src = |name: &str, priority| crate::pool::Source {
            name: name.into(),
            priority,
        };
        two.add_source(
            src("local", 1),
            vec![package(("tool", "1.0", "x86_64"), &[])],
        );
        two.add_source(
            src("remote", 99),
            vec![package(("tool", "2.0", "x86_64"), &[])],
        );
        let r = resolve(&two, &[core("tool")], &Options::default()).unwrap();
        assert_eq!(two.package(r.packages[0]).nevra(), "tool-1.0-1.x86_64");
        // Another architecture's packages are not candidates.
        let arm = Options {
            arch: "aarch64".into(),
            ..Options::default()
        };
        assert!(resolve(&pool, &requests, &arm).is_err());
    }
}
