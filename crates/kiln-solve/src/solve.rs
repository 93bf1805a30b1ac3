//! Resolution: from requested package strings to the set of packages a fresh install gets,
//! choosing among candidates as dnf/tdnf (libsolv) do for an empty install root.
//!
//! The solver keeps a set of chosen packages and a queue of requirements (the requests first,
//! then each chosen package's Requires in order). A requirement already met by a chosen package
//! costs nothing; one with a single installable candidate takes it; otherwise libsolv's policy
//! picks: candidates recommended or supplemented by chosen packages first, then the best
//! architecture, then per name the highest version, then the alphabetically first name.
//! Candidates that conflict with, obsolete or are obsoleted by chosen packages, or that would be
//! a second version of a chosen name, are not installable. Rich dependencies are evaluated
//! against the chosen set, and conditional ones (`if`, `unless`) re-checked until nothing
//! changes. With weak dependencies on (tdnf's default), Recommends of chosen packages and
//! packages whose Supplements match the chosen set are added afterwards when installable.
//!
//! There is no backtracking over earlier choices: when a choice leads to a dead end that another
//! choice would have avoided, kiln reports the dead end (libsolv would find the other way).

use crate::pool::{PackageId, Pool};
use kiln_rpm::{Dep, Evr, Op};
use std::collections::{BTreeMap, HashSet, VecDeque};
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

    fn dep(&self) -> Dep {
        Dep::Simple {
            name: self.name.clone(),
            range: self.range.clone(),
        }
    }

    fn text(&self) -> String {
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

/// A requirement waiting to be met.
#[derive(Debug, Clone)]
struct Need {
    dep: Dep,
    /// The request it comes from, or the package that requires it.
    from: From,
    weak: bool,
}

#[derive(Debug, Clone)]
enum From {
    Request(usize),
    Package(PackageId),
    /// A package whose Supplements (this text) match the chosen set.
    Supplementing(String),
}

/// How often the solver may go back on a choice before it gives up on a request.
const MAX_BACKTRACKS: usize = 10_000;

/// A choice with other candidates left, and the state to go back to.
struct ChoicePoint {
    chosen: usize,
    queue: VecDeque<Need>,
    need: Need,
    others: VecDeque<PackageId>,
}

struct Solver<'a> {
    pool: &'a Pool,
    options: &'a Options,
    requests: &'a [Request],
    chosen: Vec<PackageId>,
    chosen_set: HashSet<PackageId>,
    reasons: BTreeMap<PackageId, Reason>,
}

/// Resolves `requests` against `pool`.
pub fn resolve(
    pool: &Pool,
    requests: &[Request],
    options: &Options,
) -> Result<Resolution, Unsatisfiable> {
    let mut s = Solver {
        pool,
        options,
        requests,
        chosen: Vec::new(),
        chosen_set: HashSet::new(),
        reasons: BTreeMap::new(),
    };
    let mut queue: VecDeque<Need> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| Need {
            dep: r.dep(),
            from: From::Request(i),
            weak: false,
        })
        .collect();
    loop {
        s.drain(&mut queue)?;
        // Conditional requirements may have become due as the set grew.
        let mut more: VecDeque<Need> = s
            .chosen
            .iter()
            .flat_map(|&p| {
                pool.package(p)
                    .requires
                    .iter()
                    .filter(|r| r.dep.is_rich() && !s.met(&r.dep, None))
                    .map(move |r| Need {
                        dep: r.dep.clone(),
                        from: From::Package(p),
                        weak: false,
                    })
            })
            .collect();
        if more.is_empty() && options.weak_deps {
            more = s.weak_needs();
        }
        if more.is_empty() {
            break;
        }
        let before = s.chosen.len();
        s.drain(&mut more)?;
        if s.chosen.len() == before {
            break; // only weak needs that could not be met
        }
    }
    Ok(Resolution {
        packages: s.chosen,
        reasons: s.reasons,
    })
}

impl Solver<'_> {
    fn arch_ok(&self, id: PackageId) -> bool {
        let a = &self.pool.package(id).arch;
        a == "noarch" || *a == self.options.arch
    }

    /// The packages satisfying a simple dependency, or those named like a request.
    fn providers(&self, dep: &Dep) -> Vec<PackageId> {
        self.pool
            .what_provides(dep)
            .unwrap_or_default()
            .into_iter()
            .filter(|&id| self.arch_ok(id))
            .collect()
    }

    /// Whether `dep` holds over the chosen set (plus `extra`), never counting `except` (a
    /// package's own Conflicts do not match itself). A requirement's `if`/`unless` without the
    /// branch that applies asks for nothing, so it holds.
    fn holds(&self, dep: &Dep, extra: Option<PackageId>, except: Option<PackageId>) -> bool {
        self.evaluate(dep, extra, except, true)
    }

    /// Whether `dep` matches packages of the chosen set (plus `extra`), as Conflicts and
    /// Supplements use it: an `if`/`unless` without the branch that applies matches nothing.
    fn matches(&self, dep: &Dep, extra: Option<PackageId>, except: Option<PackageId>) -> bool {
        self.evaluate(dep, extra, except, false)
    }

    fn evaluate(
        &self,
        dep: &Dep,
        extra: Option<PackageId>,
        except: Option<PackageId>,
        no_branch: bool,
    ) -> bool {
        let counts = |id: &PackageId| {
            Some(*id) != except && (self.chosen_set.contains(id) || Some(*id) == extra)
        };
        match dep {
            Dep::Simple { .. } => self.providers(dep).iter().any(counts),
            Dep::And(v) => v.iter().all(|d| self.evaluate(d, extra, except, no_branch)),
            Dep::Or(v) => v.iter().any(|d| self.evaluate(d, extra, except, no_branch)),
            Dep::With(v) => self.with_candidates(v).iter().any(counts),
            Dep::Without(a, b) => self.without_candidates(a, b).iter().any(counts),
            Dep::If {
                then,
                cond,
                otherwise,
            } => {
                if self.evaluate(cond, extra, except, no_branch) {
                    self.evaluate(then, extra, except, no_branch)
                } else {
                    otherwise
                        .as_ref()
                        .map_or(no_branch, |o| self.evaluate(o, extra, except, no_branch))
                }
            }
            Dep::Unless {
                then,
                cond,
                otherwise,
            } => {
                if !self.evaluate(cond, extra, except, no_branch) {
                    self.evaluate(then, extra, except, no_branch)
                } else {
                    otherwise
                        .as_ref()
                        .map_or(no_branch, |o| self.evaluate(o, extra, except, no_branch))
                }
            }
        }
    }

    fn met(&self, dep: &Dep, extra: Option<PackageId>) -> bool {
        self.holds(dep, extra, None)
    }

    fn with_candidates(&self, parts: &[Dep]) -> Vec<PackageId> {
        let mut sets = parts.iter().map(|d| self.simple_or_empty(d));
        let Some(first) = sets.next() else {
            return Vec::new();
        };
        sets.fold(first, |acc, s| {
            acc.into_iter().filter(|p| s.contains(p)).collect()
        })
    }

    fn without_candidates(&self, a: &Dep, b: &Dep) -> Vec<PackageId> {
        let minus = self.simple_or_empty(b);
        self.simple_or_empty(a)
            .into_iter()
            .filter(|p| !minus.contains(p))
            .collect()
    }

    fn simple_or_empty(&self, d: &Dep) -> Vec<PackageId> {
        if matches!(d, Dep::Simple { .. }) {
            self.providers(d)
        } else {
            Vec::new()
        }
    }

    /// Whether `id` can join the chosen set: one version per name, no conflicts either way,
    /// no obsoletes either way.
    fn installable(&self, id: PackageId) -> bool {
        let p = self.pool.package(id);
        for &q in &self.chosen {
            let other = self.pool.package(q);
            if other.name == p.name && q != id {
                return false;
            }
            if obsoletes(self.pool, id, q) || obsoletes(self.pool, q, id) {
                return false;
            }
        }
        if p.conflicts
            .iter()
            .any(|c| self.blocks(&c.dep, Some(id), Some(id)))
        {
            return false;
        }
        self.chosen.iter().all(|&q| {
            !self
                .pool
                .package(q)
                .conflicts
                .iter()
                .any(|c| self.blocks(&c.dep, Some(id), Some(q)))
        })
    }

    /// Whether a Conflicts entry forbids the set. `(A unless B)` does not: installing B lifts
    /// it, so it becomes a need for B instead ([`Solver::escapes`]).
    fn blocks(&self, dep: &Dep, extra: Option<PackageId>, except: Option<PackageId>) -> bool {
        match dep {
            Dep::Unless {
                otherwise: None, ..
            } => false,
            _ => self.matches(dep, extra, except),
        }
    }

    /// The B of every `Conflicts: (A unless B)` of the chosen set whose A is installed and
    /// B is not: libsolv's clause (¬owner ∨ ¬A ∨ B) then needs B.
    fn escapes(&self) -> Vec<Need> {
        let mut out = Vec::new();
        for &q in &self.chosen {
            for c in &self.pool.package(q).conflicts {
                if let Dep::Unless {
                    then,
                    cond,
                    otherwise: None,
                } = &c.dep
                {
                    if self.matches(then, None, Some(q)) && !self.met(cond, None) {
                        out.push(Need {
                            dep: (**cond).clone(),
                            from: From::Package(q),
                            weak: false,
                        });
                    }
                }
            }
        }
        out
    }

    /// Candidate packages for an unmet dependency, best first; empty when none can be installed.
    fn candidates(&self, dep: &Dep) -> Vec<PackageId> {
        let raw: Vec<PackageId> = match dep {
            Dep::Simple { .. } => self.providers(dep),
            Dep::Or(v) => {
                let mut all = Vec::new();
                for d in v {
                    all.extend(self.candidates(d));
                }
                all.sort();
                all.dedup();
                all
            }
            Dep::With(v) => self.with_candidates(v),
            Dep::Without(a, b) => self.without_candidates(a, b),
            // And/If/Unless are split into their parts before they get here.
            _ => Vec::new(),
        };
        let mut ok: Vec<PackageId> = raw.into_iter().filter(|&id| self.installable(id)).collect();
        self.order(&mut ok);
        ok
    }

    /// libsolv's policy order: recommended/supplementing first, then the best repository
    /// priority, then names alphabetically, each name's versions best first.
    fn order(&self, ids: &mut Vec<PackageId>) {
        let favoured: Vec<PackageId> = ids
            .iter()
            .copied()
            .filter(|&id| self.recommended(id) || self.supplements_chosen(id))
            .collect();
        if !favoured.is_empty() {
            *ids = favoured;
        }
        let pool = self.pool;
        // libsolv prunes to the best repository priority first; kiln orders by it, so that
        // going back on a choice can still reach the other repositories' packages.
        ids.sort_by(|&a, &b| {
            let (pa, pb) = (pool.package(a), pool.package(b));
            pool.source(a)
                .priority
                .cmp(&pool.source(b).priority)
                .then_with(|| pa.name.cmp(&pb.name))
                .then_with(|| pb.evr.cmp(&pa.evr))
                .then_with(|| arch_rank(&pa.arch).cmp(&arch_rank(&pb.arch)))
        });
        // Older versions stay behind the best one: the policy takes the best, and they are
        // what going back on that choice tries.
    }

    fn recommended(&self, id: PackageId) -> bool {
        self.chosen.iter().any(|&q| {
            self.pool.package(q).recommends.iter().any(|r| {
                matches!(r.dep, Dep::Simple { .. }) && self.providers(&r.dep).contains(&id)
            })
        })
    }

    fn supplements_chosen(&self, id: PackageId) -> bool {
        self.pool
            .package(id)
            .supplements
            .iter()
            .any(|s| self.matches(&s.dep, None, Some(id)))
    }

    fn choose(&mut self, id: PackageId, reason: Reason) -> VecDeque<Need> {
        self.chosen.push(id);
        self.chosen_set.insert(id);
        self.reasons.insert(id, reason);
        self.pool
            .package(id)
            .requires
            .iter()
            .filter(|r| !r.dep.to_string().starts_with("rpmlib("))
            .map(|r| Need {
                dep: r.dep.clone(),
                from: From::Package(id),
                weak: false,
            })
            .collect()
    }

    /// Meets every need of `queue`, choosing as the policy says and, when a choice leads to a
    /// need nothing can meet, going back to the latest choice that had other candidates.
    fn drain(&mut self, queue: &mut VecDeque<Need>) -> Result<(), Unsatisfiable> {
        let mut choices: Vec<ChoicePoint> = Vec::new();
        let mut first_failure: Option<Unsatisfiable> = None;
        let mut backtracks = 0usize;
        while let Some(need) = queue.pop_front() {
            if self.met(&need.dep, None) {
                continue;
            }
            match &need.dep {
                Dep::And(parts) => {
                    for d in parts.iter().rev() {
                        queue.push_front(Need {
                            dep: d.clone(),
                            ..need.clone()
                        });
                    }
                    continue;
                }
                // As libsolv's clauses: (A if B else C) = (¬B ∨ A) ∧ (B ∨ C), and
                // (A unless B else C) = (B ∨ A) ∧ (¬B ∨ C). A clause of two positive sides is a
                // choice among the providers of both; the rule is then looked at again.
                Dep::If {
                    then,
                    cond,
                    otherwise,
                } => {
                    let next = if self.met(cond, None) {
                        (**then).clone()
                    } else {
                        match otherwise {
                            Some(o) => Dep::Or(vec![(**cond).clone(), (**o).clone()]),
                            None => continue,
                        }
                    };
                    queue.push_front(need.clone());
                    queue.push_front(Need { dep: next, ..need });
                    continue;
                }
                Dep::Unless {
                    then,
                    cond,
                    otherwise,
                } => {
                    let next = if self.met(cond, None) {
                        match otherwise {
                            Some(o) => (**o).clone(),
                            None => continue,
                        }
                    } else {
                        Dep::Or(vec![(**cond).clone(), (**then).clone()])
                    };
                    queue.push_front(need.clone());
                    queue.push_front(Need { dep: next, ..need });
                    continue;
                }
                _ => {}
            }
            let candidates = match (&need.from, &need.dep) {
                // A request names a package first, and only then a capability or a file.
                (From::Request(_), Dep::Simple { name, range }) => {
                    let by_name: Vec<PackageId> = self
                        .pool
                        .by_name(name)
                        .into_iter()
                        .filter(|&id| {
                            self.arch_ok(id) && evr_matches(&self.pool.package(id).evr, range)
                        })
                        .collect();
                    if by_name.is_empty() {
                        self.candidates(&need.dep)
                    } else if by_name.iter().any(|id| self.chosen_set.contains(id)) {
                        continue;
                    } else {
                        let mut ok: Vec<PackageId> = by_name
                            .into_iter()
                            .filter(|&id| self.installable(id))
                            .collect();
                        self.order(&mut ok);
                        // dnf installs what replaces a requested package (a rename that
                        // obsoletes it) instead of the package itself.
                        let mut replacements: Vec<PackageId> = match ok.first() {
                            Some(&best) => self
                                .pool
                                .ids()
                                .filter(|&o| {
                                    o != best && self.arch_ok(o) && obsoletes(self.pool, o, best)
                                })
                                .filter(|&o| self.installable(o))
                                .collect(),
                            None => Vec::new(),
                        };
                        if replacements.is_empty() {
                            ok
                        } else {
                            self.order(&mut replacements);
                            replacements
                        }
                    }
                }
                _ => self.candidates(&need.dep),
            };
            let Some((&best, others)) = candidates.split_first() else {
                if need.weak {
                    continue;
                }
                let failure = first_failure
                    .get_or_insert_with(|| self.failure(&need))
                    .clone();
                // Back to the latest choice with candidates left.
                loop {
                    backtracks += 1;
                    let Some(mut point) = choices.pop() else {
                        return Err(failure);
                    };
                    if backtracks > MAX_BACKTRACKS {
                        return Err(failure);
                    }
                    self.truncate(point.chosen);
                    let Some(next) = point.others.pop_front() else {
                        continue;
                    };
                    *queue = point.queue.clone();
                    let need = point.need.clone();
                    if !point.others.is_empty() {
                        choices.push(point);
                    }
                    self.take(&need, next, queue);
                    break;
                }
                continue;
            };
            if !others.is_empty() {
                choices.push(ChoicePoint {
                    chosen: self.chosen.len(),
                    queue: queue.clone(),
                    need: need.clone(),
                    others: others.iter().copied().collect(),
                });
            }
            self.take(&need, best, queue);
        }
        Ok(())
    }

    /// Chooses `id` for `need` and queues its requirements.
    fn take(&mut self, need: &Need, id: PackageId, queue: &mut VecDeque<Need>) {
        let dep = need.dep.to_string();
        let reason = match &need.from {
            From::Request(n) => Reason::Requested(*n),
            From::Package(by) if need.weak => Reason::Recommended { by: *by, dep },
            From::Package(by) => Reason::Required { by: *by, dep },
            From::Supplementing(dep) => Reason::Supplements { dep: dep.clone() },
        };
        let more = self.choose(id, reason);
        queue.extend(more);
        // Conditional conflicts this choice set off come first, as unit clauses do.
        for need in self.escapes() {
            queue.push_front(need);
        }
    }

    /// Forgets the choices after the first `len`.
    fn truncate(&mut self, len: usize) {
        for id in self.chosen.drain(len..) {
            self.chosen_set.remove(&id);
            self.reasons.remove(&id);
        }
    }

    /// Recommends of chosen packages that are not met, and packages supplementing the set.
    fn weak_needs(&self) -> VecDeque<Need> {
        let mut out = VecDeque::new();
        for &p in &self.chosen {
            for r in &self.pool.package(p).recommends {
                if !self.met(&r.dep, None) {
                    out.push_back(Need {
                        dep: r.dep.clone(),
                        from: From::Package(p),
                        weak: true,
                    });
                }
            }
        }
        let mut supplementing: Vec<PackageId> = self
            .pool
            .ids()
            .filter(|&id| !self.chosen_set.contains(&id) && self.arch_ok(id))
            .filter(|&id| self.supplements_chosen(id))
            .collect();
        self.order(&mut supplementing);
        for id in supplementing {
            let p = self.pool.package(id);
            out.push_back(Need {
                dep: Dep::Simple {
                    name: p.name.clone(),
                    range: Some((Op::Eq, p.evr.clone())),
                },
                from: From::Supplementing(
                    p.supplements
                        .iter()
                        .find(|s| self.matches(&s.dep, None, Some(id)))
                        .map(|s| s.dep.to_string())
                        .unwrap_or_default(),
                ),
                weak: true,
            });
        }
        out
    }

    fn failure(&self, need: &Need) -> Unsatisfiable {
        let providers = match &need.dep {
            Dep::Simple { .. } => self.providers(&need.dep),
            _ => Vec::new(),
        };
        let what = if providers.is_empty() && matches!(need.dep, Dep::Simple { .. }) {
            format!("nothing provides {}", need.dep)
        } else if providers.is_empty() {
            format!("nothing satisfies {}", need.dep)
        } else {
            let mut names: Vec<String> = providers
                .iter()
                .take(3)
                .map(|&p| self.pool.package(p).nevra())
                .collect();
            if providers.len() > 3 {
                names.push(format!("{} more", providers.len() - 3));
            }
            format!(
                "{} is provided only by packages that cannot be installed with the others chosen ({})",
                need.dep,
                names.join(", ")
            )
        };
        let chain = match &need.from {
            From::Supplementing(_) => what,
            &From::Request(n) => format!(
                "{what}, required by \"{}\" in {}",
                self.requests[n].text(),
                self.requests[n].origin
            ),
            &From::Package(p) => {
                let mut text = format!("{what} needed by {}", self.pool.package(p).nevra());
                let mut at = p;
                let mut seen = HashSet::new();
                while seen.insert(at) {
                    match self.reasons.get(&at) {
                        Some(Reason::Required { by, .. })
                        | Some(Reason::Recommended { by, .. }) => {
                            text.push_str(&format!(
                                ", required by {}",
                                self.pool.package(*by).nevra()
                            ));
                            at = *by;
                        }
                        Some(Reason::Requested(n)) => {
                            text.push_str(&format!(
                                ", required by \"{}\" in {}",
                                self.requests[*n].text(),
                                self.requests[*n].origin
                            ));
                            break;
                        }
                        _ => break,
                    }
                }
                text
            }
        };
        Unsatisfiable { message: chain }
    }
}

/// Whether package `a` obsoletes package `b` (by name, as libsolv does without
/// obsolete-uses-provides).
fn obsoletes(pool: &Pool, a: PackageId, b: PackageId) -> bool {
    let (pa, pb) = (pool.package(a), pool.package(b));
    pa.obsoletes.iter().any(|o| match &o.dep {
        Dep::Simple { name, range } => *name == pb.name && evr_matches(&pb.evr, range),
        _ => false,
    })
}

/// Whether a package's EVR is within a requested range (`None`: any).
fn evr_matches(evr: &Evr, range: &Option<(Op, Evr)>) -> bool {
    match range {
        None => true,
        Some((op, want)) => kiln_rpm::ranges_overlap(Some((Op::Eq, evr)), Some((*op, want))),
    }
}

/// Lower is better: the machine's own architecture before noarch, as libsolv scores them.
fn arch_rank(arch: &str) -> u8 {
    u8::from(arch == "noarch")
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
