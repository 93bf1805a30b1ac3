//! The decision engine behind [`crate::solve::resolve`], modelled on libsolv (which dnf and
//! tdnf use) so that kiln makes the same choices, not merely valid ones.
//!
//! Every dependency becomes clauses over "package installed" literals, generated for the
//! packages reachable from the requests: `Requires: x` of A is (¬A ∨ x₁ ∨ … ∨ xₙ) over x's
//! providers; Conflicts, Obsoletes and "one version per name" are (¬A ∨ ¬B); rich
//! dependencies are turned into clauses. Unit clauses propagate at once. Choices follow
//! libsolv's `solver_run_sat`:
//!
//! 1. the requests (jobs) in order, each choosing by policy among its candidates;
//! 2. the unmet Requires of installed packages, scanned in libsolv's rule order (owners by
//!    descending package id, then by provider list), cyclically; in a first pass only those
//!    the policy narrows to one candidate are decided, the others postponed;
//! 3. weak dependencies (Recommends of installed packages, packages whose Supplements match);
//! 4. minimization: when a package that was passed over at a choice got installed later
//!    anyway, the choice is redone with it.
//!
//! The policy (libsolv's `policy_filter_unwanted`): the best repository priority, then per
//! name the best version, names in byte order, packages obsoleted by another candidate
//! dropped; for a choice, candidates recommended (or supplementing) by the installed set
//! first, then suggested ones. A conflict undoes the latest choice and excludes what it chose
//! (chronological backtracking, where libsolv learns a clause; the outcome is the same for
//! the cases compared with dnf in the tests).

use crate::pool::{PackageId, Pool};
use crate::solve::Request;
use kiln_rpm::{Dep, Evr, Op};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

/// A literal: package installed (positive) or excluded (negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Lit(i32);

impl Lit {
    fn install(id: PackageId) -> Lit {
        Lit(id.0 as i32 + 1)
    }
    fn exclude(id: PackageId) -> Lit {
        Lit(-(id.0 as i32 + 1))
    }
    fn id(self) -> PackageId {
        PackageId(self.0.unsigned_abs() - 1)
    }
    fn positive(self) -> bool {
        self.0 > 0
    }
    fn not(self) -> Lit {
        Lit(-self.0)
    }
    fn index(self) -> usize {
        self.id().0 as usize * 2 + usize::from(!self.positive())
    }
}

/// What a clause stands for, to explain decisions and failures.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    Job(usize),
    Requires { owner: PackageId, dep: Dep },
    Conflicts { owner: PackageId, dep: Dep },
    Obsoletes { owner: PackageId, dep: Dep },
    SameName,
}

struct Clause {
    lits: Vec<Lit>,
    origin: Origin,
    /// The literal that last made it true: checked first, as it usually still is.
    hint: std::cell::Cell<u32>,
}

/// Why a literal holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cause {
    /// Implied by a clause.
    Clause(u32),
    /// Chosen among several candidates to meet a clause (a job or a Requires).
    Choice(u32),
    /// Chosen for a weak dependency: `weak[n]`.
    Weak(usize),
    /// The opposite was tried and led to a conflict.
    Flip,
}

/// A weak reason: recommended by a package, or supplementing the installed set.
#[derive(Debug, Clone)]
pub(crate) enum WeakWhy {
    Recommended { by: PackageId, dep: Dep },
    Supplements { dep: Dep },
}

/// A choice among several candidates, kept for minimization.
struct Branch {
    /// The level before the choice (the chosen package sits at `level + 1`).
    level: usize,
    candidates: Vec<PackageId>,
    cause: Cause,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Choose,
    ChooseNoReorder,
    Recommend,
}

/// A boolean formula over "some provider installed" sets, for rich dependencies.
enum Formula {
    Any(Vec<PackageId>),
    Not(Box<Formula>),
    And(Vec<Formula>),
    Or(Vec<Formula>),
}

/// How many conflicts the engine may undo before it gives up.
const MAX_CONFLICTS: usize = 50_000;

/// How a run ended badly.
pub(crate) enum Failure {
    /// No assignment satisfies the clauses: this one is false at level 0.
    Unsat(u32),
    /// Too many conflicts undone.
    GaveUp,
}

pub(crate) struct Engine<'a> {
    pool: &'a Pool,
    arch: &'a str,
    weak_deps: bool,
    clauses: Vec<Clause>,
    /// Clause ids by literal.
    occurs: Vec<Vec<u32>>,
    /// Requires clauses per owner, in libsolv's rule order.
    requires_of: Vec<Vec<u32>>,
    ruled: Vec<bool>,
    same_name_done: HashSet<(PackageId, PackageId)>,
    value: Vec<i8>,
    level_of: Vec<u32>,
    cause: Vec<Cause>,
    trail: Vec<Lit>,
    /// Trail index where each level above 0 starts.
    level_start: Vec<usize>,
    head: usize,
    /// Clauses added after level 0, re-checked when choices are undone.
    late: Vec<u32>,
    pending_conflict: Option<u32>,
    branches: Vec<Branch>,
    jobs: Vec<u32>,
    pub(crate) weak: Vec<WeakWhy>,
    /// Providers by dependency, keyed by the dependency's address: every dependency asked
    /// about lives in the pool, which does not change while the engine runs.
    providers_cache: HashMap<usize, Rc<Vec<PackageId>>>,
    supplementing: Vec<PackageId>,
    conflicts: usize,
    /// Providers of the installed set's Recommends and Suggests, kept up to `weak_index`.
    weak_index: usize,
    recommended: HashSet<PackageId>,
    suggested: HashSet<PackageId>,
    /// Packages that own Requires clauses, by descending id (libsolv's rule order), for the
    /// rule scan; `owners_dirty` when new ones still need sorting in.
    owners: Vec<u32>,
    owners_dirty: bool,
    /// How many Requires clauses installed packages own.
    installed_rules: usize,
}

impl<'a> Engine<'a> {
    pub(crate) fn new(pool: &'a Pool, arch: &'a str, weak_deps: bool) -> Engine<'a> {
        let n = pool.len();
        let supplementing = pool
            .ids()
            .filter(|&id| !pool.package(id).supplements.is_empty())
            .collect();
        Engine {
            pool,
            arch,
            weak_deps,
            clauses: Vec::new(),
            occurs: vec![Vec::new(); n * 2],
            requires_of: vec![Vec::new(); n],
            ruled: vec![false; n],
            same_name_done: HashSet::new(),
            value: vec![0; n],
            level_of: vec![0; n],
            cause: vec![Cause::Flip; n],
            trail: Vec::new(),
            level_start: Vec::new(),
            head: 0,
            late: Vec::new(),
            pending_conflict: None,
            branches: Vec::new(),
            jobs: Vec::new(),
            weak: Vec::new(),
            providers_cache: HashMap::new(),
            supplementing,
            conflicts: 0,
            weak_index: 0,
            recommended: HashSet::new(),
            suggested: HashSet::new(),
            owners: Vec::new(),
            owners_dirty: false,
            installed_rules: 0,
        }
    }

    pub(crate) fn arch_ok(&self, id: PackageId) -> bool {
        let a = &self.pool.package(id).arch;
        a == "noarch" || a == self.arch
    }

    fn installed(&self, id: PackageId) -> bool {
        self.value[id.0 as usize] > 0
    }

    fn lit_value(&self, l: Lit) -> i8 {
        let v = self.value[l.id().0 as usize];
        if l.positive() {
            v
        } else {
            -v
        }
    }

    fn level(&self) -> usize {
        self.level_start.len()
    }

    /// The installed packages, in the order they were decided.
    pub(crate) fn installed_in_order(&self) -> Vec<PackageId> {
        self.trail
            .iter()
            .filter(|l| l.positive())
            .map(|l| l.id())
            .collect()
    }

    pub(crate) fn cause_of(&self, id: PackageId) -> Cause {
        self.cause[id.0 as usize]
    }

    pub(crate) fn origin(&self, clause: u32) -> &Origin {
        &self.clauses[clause as usize].origin
    }

    // ---- providers and formulas ----

    /// The installable packages that satisfy a simple dependency (or a `with`/`without`, or
    /// the union of an `or`), for a dependency of a pool package.
    pub(crate) fn providers(&mut self, dep: &'a Dep) -> Rc<Vec<PackageId>> {
        let key = dep as *const Dep as usize;
        if let Some(v) = self.providers_cache.get(&key) {
            return v.clone();
        }
        let v: Vec<PackageId> = match dep {
            Dep::Simple { .. } => self.simple_providers(dep),
            Dep::With(parts) => {
                let sets: Vec<Rc<Vec<PackageId>>> =
                    parts.iter().map(|d| self.providers(d)).collect();
                match sets.split_first() {
                    Some((first, rest)) => first
                        .iter()
                        .copied()
                        .filter(|p| rest.iter().all(|s| s.contains(p)))
                        .collect(),
                    None => Vec::new(),
                }
            }
            Dep::Without(a, b) => {
                let minus = self.providers(b);
                self.providers(a)
                    .iter()
                    .copied()
                    .filter(|p| !minus.contains(p))
                    .collect()
            }
            // Or: the union, as libsolv's whatprovides of an `or` gives.
            Dep::Or(parts) => {
                let mut all: Vec<PackageId> = Vec::new();
                for d in parts {
                    all.extend(self.providers(d).iter().copied());
                }
                all.sort();
                all.dedup();
                all
            }
            Dep::And(_) | Dep::If { .. } | Dep::Unless { .. } => Vec::new(),
        };
        let v = Rc::new(v);
        self.providers_cache.insert(key, v.clone());
        v
    }

    /// The installable packages that satisfy a simple dependency (not cached: for requests).
    pub(crate) fn simple_providers(&self, dep: &Dep) -> Vec<PackageId> {
        self.pool
            .what_provides(dep)
            .unwrap_or_default()
            .into_iter()
            .filter(|&id| self.arch_ok(id))
            .collect()
    }

    /// `dep` as a formula. In the requires sense an `if`/`unless` without the branch that
    /// applies asks for nothing (true); in the conflicts/supplements sense it matches nothing.
    fn formula(
        &mut self,
        dep: &'a Dep,
        conflict_sense: bool,
        except: Option<PackageId>,
    ) -> Formula {
        use Formula::*;
        let f = |d: &'a Dep, this: &mut Self| this.formula(d, conflict_sense, except);
        match dep {
            Dep::Simple { .. } | Dep::With(_) | Dep::Without(..) => Any(self
                .providers(dep)
                .iter()
                .copied()
                .filter(|&p| Some(p) != except)
                .collect()),
            Dep::And(v) => And(v.iter().map(|d| f(d, self)).collect()),
            Dep::Or(v) => Or(v.iter().map(|d| f(d, self)).collect()),
            // `(A unless B [else C])` is `(A if not B [else C])`.
            Dep::If {
                then,
                cond,
                otherwise,
            }
            | Dep::Unless {
                then,
                cond,
                otherwise,
            } => {
                let unless = matches!(dep, Dep::Unless { .. });
                let guard = |this: &mut Self| {
                    let c = f(cond, this);
                    if unless {
                        Not(Box::new(c))
                    } else {
                        c
                    }
                };
                let (t, c) = (f(then, self), guard(self));
                match otherwise {
                    Some(e) => {
                        let (c2, e) = (guard(self), f(e, self));
                        Or(vec![And(vec![c, t]), And(vec![Not(Box::new(c2)), e])])
                    }
                    None if conflict_sense => And(vec![t, c]),
                    None => Or(vec![t, Not(Box::new(c))]),
                }
            }
        }
    }

    /// Clauses equivalent to `f` (or to its negation).
    fn cnf(f: &Formula, positive: bool) -> Vec<Vec<Lit>> {
        match (f, positive) {
            (Formula::Any(ps), true) => vec![ps.iter().map(|&p| Lit::install(p)).collect()],
            (Formula::Any(ps), false) => ps.iter().map(|&p| vec![Lit::exclude(p)]).collect(),
            (Formula::Not(g), _) => Self::cnf(g, !positive),
            (Formula::And(v), true) | (Formula::Or(v), false) => {
                v.iter().flat_map(|g| Self::cnf(g, positive)).collect()
            }
            (Formula::And(v), false) | (Formula::Or(v), true) => {
                let mut acc: Vec<Vec<Lit>> = vec![Vec::new()];
                for g in v {
                    let part = Self::cnf(g, positive);
                    let mut next = Vec::new();
                    for a in &acc {
                        for b in &part {
                            let mut c = a.clone();
                            c.extend(b.iter().copied());
                            c.sort();
                            c.dedup();
                            if !c.iter().any(|l| c.contains(&l.not())) {
                                next.push(c);
                            }
                        }
                    }
                    acc = next;
                    if acc.len() > 4096 {
                        break; // a pathological rich dependency; keep what there is
                    }
                }
                acc
            }
        }
    }

    fn holds(f: &Formula, installed: &dyn Fn(PackageId) -> bool) -> bool {
        match f {
            Formula::Any(ps) => ps.iter().any(|&p| installed(p)),
            Formula::Not(g) => !Self::holds(g, installed),
            Formula::And(v) => v.iter().all(|g| Self::holds(g, installed)),
            Formula::Or(v) => v.iter().any(|g| Self::holds(g, installed)),
        }
    }

    /// Whether `dep` holds over the installed set (requires sense), or matches it (conflict
    /// sense, as Supplements use it), never counting `except`.
    pub(crate) fn dep_holds(
        &mut self,
        dep: &'a Dep,
        conflict_sense: bool,
        except: Option<PackageId>,
    ) -> bool {
        let f = self.formula(dep, conflict_sense, except);
        let value = &self.value;
        Self::holds(&f, &|p| value[p.0 as usize] > 0)
    }

    // ---- clauses ----

    fn add_clause(&mut self, mut lits: Vec<Lit>, origin: Origin) -> u32 {
        lits.dedup();
        let id = self.clauses.len() as u32;
        for l in &lits {
            self.occurs[l.index()].push(id);
        }
        self.clauses.push(Clause {
            lits,
            origin,
            hint: std::cell::Cell::new(0),
        });
        if self.level() > 0 {
            self.late.push(id);
        }
        self.check_clause(id);
        id
    }

    /// Assigns a clause's last literal when it is unit; notes it when it is false.
    fn check_clause(&mut self, id: u32) {
        let mut undecided = None;
        let mut count = 0;
        for &l in &self.clauses[id as usize].lits {
            match self.lit_value(l) {
                1 => return,
                0 => {
                    undecided = Some(l);
                    count += 1;
                }
                _ => {}
            }
        }
        match (count, undecided) {
            (0, _) => {
                self.pending_conflict.get_or_insert(id);
            }
            (1, Some(l)) => self.assign(l, Cause::Clause(id)),
            _ => {}
        }
    }

    /// Generates the clauses of `start` and of every package its Requires (and, with weak
    /// dependencies, Recommends) can reach, as libsolv's `solver_addpkgrulesforsolvable`.
    pub(crate) fn ensure_rules(&mut self, start: PackageId) {
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            if self.ruled[n.0 as usize] {
                continue;
            }
            self.ruled[n.0 as usize] = true;
            let pool = self.pool;
            let pkg = pool.package(n);
            let mut reqs = Vec::new();
            for r in &pkg.requires {
                if matches!(&r.dep, Dep::Simple { name, .. } if name.starts_with("rpmlib(")) {
                    continue;
                }
                let f = self.formula(&r.dep, false, None);
                for clause in Self::cnf(&f, true) {
                    if clause.contains(&Lit::install(n)) {
                        continue; // satisfied by the package itself
                    }
                    for l in &clause {
                        if l.positive() && !self.ruled[l.id().0 as usize] {
                            queue.push_back(l.id());
                        }
                    }
                    let mut lits = vec![Lit::exclude(n)];
                    lits.extend(clause.iter().copied());
                    reqs.push((lits, r.dep.clone()));
                }
            }
            // libsolv's rule order within one owner: by the provider lists.
            reqs.sort_by(|a, b| {
                a.0[1..]
                    .iter()
                    .map(|l| l.0)
                    .cmp(b.0[1..].iter().map(|l| l.0))
            });
            if !reqs.is_empty() {
                self.owners.push(n.0);
                self.owners_dirty = true;
            }
            for (lits, dep) in reqs {
                let id = self.add_clause(lits, Origin::Requires { owner: n, dep });
                self.requires_of[n.0 as usize].push(id);
            }
            for c in &pkg.conflicts {
                let f = self.formula(&c.dep, true, Some(n));
                for clause in Self::cnf(&f, false) {
                    let mut lits = vec![Lit::exclude(n)];
                    lits.extend(clause.iter().copied());
                    lits.sort();
                    self.add_clause(
                        lits,
                        Origin::Conflicts {
                            owner: n,
                            dep: c.dep.clone(),
                        },
                    );
                }
            }
            for o in &pkg.obsoletes {
                let Dep::Simple { name, range } = &o.dep else {
                    continue;
                };
                for b in self.pool.by_name(name) {
                    if b != n && self.arch_ok(b) && evr_matches(&self.pool.package(b).evr, range) {
                        self.add_clause(
                            vec![Lit::exclude(n), Lit::exclude(b)],
                            Origin::Obsoletes {
                                owner: n,
                                dep: o.dep.clone(),
                            },
                        );
                    }
                }
            }
            for b in self.pool.by_name(&pkg.name) {
                let pair = (n.min(b), n.max(b));
                if b != n && self.arch_ok(b) && self.same_name_done.insert(pair) {
                    self.add_clause(
                        vec![Lit::exclude(pair.0), Lit::exclude(pair.1)],
                        Origin::SameName,
                    );
                }
            }
            if self.weak_deps {
                for r in &pkg.recommends {
                    for &p in self.providers(&r.dep).iter() {
                        if !self.ruled[p.0 as usize] {
                            queue.push_back(p);
                        }
                    }
                }
            }
        }
    }

    /// Adds a request's clause: one of `candidates`.
    pub(crate) fn add_job(&mut self, n: usize, candidates: &[PackageId]) {
        for &c in candidates {
            self.ensure_rules(c);
        }
        let id = self.add_clause(
            candidates.iter().map(|&c| Lit::install(c)).collect(),
            Origin::Job(n),
        );
        self.jobs.push(id);
    }

    // ---- assignment, propagation, undoing ----

    fn assign(&mut self, l: Lit, cause: Cause) {
        let i = l.id().0 as usize;
        self.value[i] = if l.positive() { 1 } else { -1 };
        if l.positive() {
            self.installed_rules += self.requires_of[i].len();
        }
        self.level_of[i] = self.level() as u32;
        self.cause[i] = cause;
        self.trail.push(l);
    }

    /// Unit propagation; the id of a clause that became false on conflict.
    fn propagate(&mut self) -> Result<(), u32> {
        if let Some(c) = self.pending_conflict.take() {
            return Err(c);
        }
        while self.head < self.trail.len() {
            let l = self.trail[self.head];
            self.head += 1;
            let watch = l.not().index();
            let mut k = 0;
            while k < self.occurs[watch].len() {
                let id = self.occurs[watch][k];
                k += 1;
                self.check_clause(id);
                if let Some(c) = self.pending_conflict.take() {
                    return Err(c);
                }
            }
        }
        Ok(())
    }

    fn undo_to(&mut self, level: usize) {
        let keep = self
            .level_start
            .get(level)
            .copied()
            .unwrap_or(self.trail.len());
        for l in self.trail.drain(keep..) {
            let i = l.id().0 as usize;
            self.value[i] = 0;
            if l.positive() {
                self.installed_rules -= self.requires_of[i].len();
            }
        }
        self.level_start.truncate(level);
        self.head = self.head.min(self.trail.len());
        self.branches.retain(|b| b.level < level);
        self.pending_conflict = None;
        self.weak_index = 0;
        self.recommended.clear();
        self.suggested.clear();
        for k in 0..self.late.len() {
            let id = self.late[k];
            self.check_clause(id);
        }
    }

    /// After a conflict: undoes the latest choice and excludes what it chose, going further
    /// back while that conflicts too.
    fn backtrack(&mut self, mut conflict: u32) -> Result<(), Failure> {
        loop {
            self.conflicts += 1;
            if self.conflicts > MAX_CONFLICTS {
                return Err(Failure::GaveUp);
            }
            let level = self.level();
            if level == 0 {
                return Err(Failure::Unsat(conflict));
            }
            let decision = self.trail[self.level_start[level - 1]];
            self.undo_to(level - 1);
            self.assign(decision.not(), Cause::Flip);
            match self.propagate() {
                Ok(()) => return Ok(()),
                Err(c) => conflict = c,
            }
        }
    }

    /// Installs the first of `dq` (policy-ordered) at a new level. `Ok(false)`: nothing was
    /// decided (its rules excluded it, or a conflict was undone): look again.
    fn decide(&mut self, dq: &[PackageId], cause: Cause) -> Result<bool, Failure> {
        let p = dq[0];
        self.ensure_rules(p);
        if let Err(c) = self.propagate() {
            self.backtrack(c)?;
            return Ok(false);
        }
        if self.value[p.0 as usize] != 0 {
            return Ok(false);
        }
        let before = self.level();
        if dq.len() > 1 {
            self.branches.push(Branch {
                level: before,
                candidates: dq.to_vec(),
                cause,
            });
        }
        self.level_start.push(self.trail.len());
        self.assign(Lit::install(p), cause);
        if let Err(c) = self.propagate() {
            self.backtrack(c)?;
            return Ok(false);
        }
        Ok(true)
    }

    // ---- policy ----

    fn policy(&mut self, mut dq: Vec<PackageId>, mode: Mode) -> Vec<PackageId> {
        let pool = self.pool;
        if dq.len() > 1 {
            let best = dq
                .iter()
                .map(|&p| pool.source(p).priority)
                .min()
                .unwrap_or(0);
            dq.retain(|&p| pool.source(p).priority == best);
        }
        if dq.len() > 1 {
            // Per name the best version; names in byte order.
            dq.sort_by(|&a, &b| {
                let (pa, pb) = (pool.package(a), pool.package(b));
                pa.name
                    .as_bytes()
                    .cmp(pb.name.as_bytes())
                    .then_with(|| pb.evr.cmp(&pa.evr))
                    .then_with(|| arch_rank(&pa.arch).cmp(&arch_rank(&pb.arch)))
                    .then_with(|| a.cmp(&b))
            });
            dq.dedup_by(|b, a| pool.package(*a).name == pool.package(*b).name);
            // Drop candidates another candidate obsoletes.
            let kept: Vec<PackageId> = dq
                .iter()
                .copied()
                .filter(|&p| {
                    !dq.iter().any(|&o| {
                        o != p
                            && pool.package(o).name != pool.package(p).name
                            && obsoletes(pool, o, p)
                    })
                })
                .collect();
            if !kept.is_empty() {
                dq = kept;
            }
        }
        if dq.len() > 1 && matches!(mode, Mode::Choose | Mode::ChooseNoReorder) {
            dq = self.prune_to_weak(dq, false);
            if dq.len() > 1 {
                dq = self.prune_to_weak(dq, true);
            }
        }
        dq
    }

    /// libsolv's `prune_to_recommended`: candidates recommended by (or supplementing) the
    /// installed set, if any; with `suggested`, the same for Suggests and Enhances.
    /// Brings the providers of the installed set's Recommends and Suggests up to date.
    fn update_weak_maps(&mut self) {
        let pool = self.pool;
        while self.weak_index < self.trail.len() {
            let l = self.trail[self.weak_index];
            self.weak_index += 1;
            if !l.positive() {
                continue;
            }
            let p = pool.package(l.id());
            for r in &p.recommends {
                let v = self.providers(&r.dep);
                self.recommended.extend(v.iter().copied());
            }
            for r in &p.suggests {
                let v = self.providers(&r.dep);
                self.suggested.extend(v.iter().copied());
            }
        }
    }

    fn prune_to_weak(&mut self, dq: Vec<PackageId>, suggested: bool) -> Vec<PackageId> {
        let pool = self.pool;
        self.update_weak_maps();
        let mut kept = Vec::new();
        for &c in &dq {
            let wanted = if suggested {
                &self.suggested
            } else {
                &self.recommended
            };
            let p = pool.package(c);
            let list = if suggested {
                &p.enhances
            } else {
                &p.supplements
            };
            if wanted.contains(&c) || list.iter().any(|s| self.dep_holds(&s.dep, true, Some(c))) {
                kept.push(c);
            }
        }
        if kept.is_empty() {
            dq
        } else {
            kept
        }
    }

    // ---- the run ----

    pub(crate) fn run(&mut self) -> Result<(), Failure> {
        if let Err(c) = self.propagate() {
            return Err(Failure::Unsat(c));
        }
        let mut rounds = 0usize;
        'main: loop {
            rounds += 1;
            if rounds > 1_000_000 {
                return Err(Failure::GaveUp);
            }
            for j in 0..self.jobs.len() {
                let id = self.jobs[j];
                let lits = self.clauses[id as usize].lits.clone();
                if lits.iter().any(|&l| self.lit_value(l) > 0) {
                    continue;
                }
                let dq: Vec<PackageId> = lits
                    .iter()
                    .filter(|&&l| self.lit_value(l) == 0)
                    .map(|l| l.id())
                    .collect();
                if dq.is_empty() {
                    if self.level() == 0 {
                        return Err(Failure::Unsat(id));
                    }
                    self.backtrack(id)?;
                    continue 'main;
                }
                let dq = self.policy(dq, Mode::Choose);
                self.decide(&dq, Cause::Choice(id))?;
                continue 'main;
            }
            if self.decide_requires()? {
                continue 'main;
            }
            if self.weak_deps && self.install_weak()? {
                continue 'main;
            }
            if self.minimize()? {
                continue 'main;
            }
            return Ok(());
        }
    }

    /// Sorts newly ruled owners in; `at` (an index into `owners`) follows its owner.
    fn sort_owners(&mut self, at: usize) -> usize {
        if !self.owners_dirty {
            return at;
        }
        let owner = self.owners.get(at).copied();
        self.owners.sort_unstable_by(|a, b| b.cmp(a));
        self.owners_dirty = false;
        owner.map_or(0, |o| self.owners.partition_point(|&x| x > o))
    }

    /// The Requires rule after `(owners[at], rank)` in libsolv's rule order (owners by
    /// descending id, installed ones only), wrapping around.
    fn next_rule(&self, at: usize, rank: usize) -> Option<(usize, usize)> {
        let owner = self.owners[at] as usize;
        if self.value[owner] > 0 && rank + 1 < self.requires_of[owner].len() {
            return Some((at, rank + 1));
        }
        let n = self.owners.len();
        (1..=n)
            .map(|k| (at + k) % n)
            .find(|&i| self.value[self.owners[i] as usize] > 0)
            .map(|i| (i, 0))
    }

    /// The undecided packages that could meet an unmet clause; `None` when it is met (or,
    /// for a rich clause, its condition does not apply).
    fn open_candidates(&self, id: u32) -> Option<Vec<PackageId>> {
        let clause = &self.clauses[id as usize];
        let lits = &clause.lits;
        if self.lit_value(lits[clause.hint.get() as usize]) > 0 {
            return None;
        }
        if let Some(k) = lits.iter().enumerate().position(|(k, &l)| {
            let v = self.lit_value(l);
            v > 0 || (v == 0 && !l.positive() && k > 0)
        }) {
            if self.lit_value(lits[k]) > 0 {
                clause.hint.set(k as u32);
            }
            return None; // met, or its condition does not apply
        }
        let mut dq = Vec::new();
        for (k, &l) in self.clauses[id as usize].lits.iter().enumerate() {
            match self.lit_value(l) {
                1 => return None,
                0 if l.positive() => dq.push(l.id()),
                0 if k > 0 => return None, // a condition not (yet) installed
                _ => {}
            }
        }
        (!dq.is_empty()).then_some(dq)
    }

    /// Decides unmet Requires, scanning the rules cyclically from where the last decision
    /// was made until a whole round decides nothing. In a first round only rules the policy
    /// narrows to one candidate are decided; the others wait (libsolv's "postponed").
    /// `Ok(true)` when a conflict was undone (start over).
    fn decide_requires(&mut self) -> Result<bool, Failure> {
        let mut postpone = true;
        let mut postponed: Option<(u32, usize)> = None;
        self.sort_owners(0);
        let Some(first) = self.owners.iter().position(|&o| self.value[o as usize] > 0) else {
            return Ok(false);
        };
        let mut at = (first, 0usize);
        let mut idle = 0usize;
        loop {
            at.0 = self.sort_owners(at.0);
            if idle >= self.installed_rules.max(1) {
                match (postpone, postponed) {
                    (true, Some((owner, rank))) => {
                        postpone = false;
                        at = (self.owners.partition_point(|&x| x > owner), rank);
                        idle = 0;
                        continue;
                    }
                    _ => return Ok(false),
                }
            }
            idle += 1;
            let (index, rank) = at;
            let owner = self.owners[index];
            if self.value[owner as usize] <= 0 || rank >= self.requires_of[owner as usize].len() {
                // The owner was undone under the cursor: move on.
                at = match self.next_rule(index, rank) {
                    Some(next) => next,
                    None => return Ok(false),
                };
                continue;
            }
            let id = self.requires_of[owner as usize][rank];
            if let Some(mut dq) = self.open_candidates(id) {
                let mut take = true;
                if dq.len() > 1 && postpone {
                    dq = self.policy(dq, Mode::ChooseNoReorder);
                    if dq.len() > 1 {
                        postponed.get_or_insert((owner, rank));
                        take = false;
                    }
                }
                if take {
                    if dq.len() > 1 {
                        dq = self.policy(dq, Mode::Choose);
                    }
                    let conflicts = self.conflicts;
                    let decided = self.decide(&dq, Cause::Choice(id))?;
                    if self.conflicts > conflicts {
                        return Ok(true); // choices were undone: start over, as libsolv does
                    }
                    idle = 0;
                    if !decided {
                        continue; // look at the same rule again
                    }
                }
            }
            at = match self.next_rule(index, rank) {
                Some(next) => next,
                None => return Ok(false),
            };
        }
    }

    /// libsolv's weak-dependency step. `Ok(true)` when something was installed or undone.
    fn install_weak(&mut self) -> Result<bool, Failure> {
        let installed = self.installed_in_order();
        let mut dq: Vec<PackageId> = Vec::new();
        let mut seen = HashSet::new();
        let mut ids = installed.clone();
        ids.sort();
        let pool = self.pool;
        for &q in &ids {
            for r in &pool.package(q).recommends {
                if matches!(r.dep, Dep::Or(_) | Dep::If { .. } | Dep::Unless { .. })
                    && self.dep_holds(&r.dep, false, None)
                {
                    continue;
                }
                let providers = self.providers(&r.dep);
                if providers.iter().any(|&p| self.installed(p)) {
                    continue;
                }
                for &p in providers.iter() {
                    if self.value[p.0 as usize] == 0 && seen.insert(p) {
                        dq.push(p);
                    }
                }
            }
        }
        let mut dqs: Vec<PackageId> = Vec::new();
        for k in 0..self.supplementing.len() {
            let p = self.supplementing[k];
            if self.value[p.0 as usize] != 0 || !self.arch_ok(p) {
                continue;
            }
            if pool
                .package(p)
                .supplements
                .iter()
                .any(|s| self.dep_holds(&s.dep, true, Some(p)))
            {
                dqs.push(p);
            }
        }
        if !dqs.is_empty() {
            dqs = self.policy(dqs, Mode::Recommend);
        }
        if !dq.is_empty() {
            dq = self.policy(dq, Mode::Recommend);
        }
        for &p in &dqs {
            if !dq.contains(&p) {
                dq.push(p);
            }
        }
        if dq.is_empty() {
            return Ok(false);
        }
        if dq.len() == 1 {
            let p = dq[0];
            let why = self.weak_why(p, &installed);
            self.weak.push(why);
            let cause = Cause::Weak(self.weak.len() - 1);
            self.decide(&[p], cause)?;
            return Ok(true);
        }
        let dq = self.policy(dq, Mode::Recommend);
        let dqmap: HashSet<PackageId> = dq.iter().copied().collect();
        for &p in &dqs {
            if self.value[p.0 as usize] != 0 || !dqmap.contains(&p) {
                continue;
            }
            let why = self.weak_why(p, &installed);
            self.weak.push(why);
            let conflicts = self.conflicts;
            self.decide(&[p], Cause::Weak(self.weak.len() - 1))?;
            if self.conflicts > conflicts {
                return Ok(true);
            }
        }
        for &q in &installed {
            for r in &pool.package(q).recommends {
                let providers = self.providers(&r.dep);
                if providers.iter().any(|&p| self.installed(p)) {
                    continue;
                }
                let cands: Vec<PackageId> = providers
                    .iter()
                    .copied()
                    .filter(|&p| self.value[p.0 as usize] == 0 && dqmap.contains(&p))
                    .collect();
                if cands.is_empty() {
                    continue;
                }
                let cands = self.policy(cands, Mode::Choose);
                self.weak.push(WeakWhy::Recommended {
                    by: q,
                    dep: r.dep.clone(),
                });
                let conflicts = self.conflicts;
                self.decide(&cands, Cause::Weak(self.weak.len() - 1))?;
                if self.conflicts > conflicts {
                    return Ok(true);
                }
            }
        }
        Ok(true)
    }

    fn weak_why(&mut self, p: PackageId, installed: &[PackageId]) -> WeakWhy {
        let pool = self.pool;
        for &q in installed {
            for r in &pool.package(q).recommends {
                if self.providers(&r.dep).contains(&p) {
                    return WeakWhy::Recommended {
                        by: q,
                        dep: r.dep.clone(),
                    };
                }
            }
        }
        let sup = &pool.package(p).supplements;
        let dep = sup
            .iter()
            .find(|s| self.dep_holds(&s.dep, true, Some(p)))
            .or(sup.first())
            .map(|s| s.dep.clone())
            .unwrap_or(Dep::Simple {
                name: String::new(),
                range: None,
            });
        WeakWhy::Supplements { dep }
    }

    /// libsolv's minimization: when a candidate passed over at a choice got installed later
    /// anyway (at the choice's level or after), the choice is redone with it; and a choice
    /// that was not recommended is redone with a recommended candidate. The earliest such
    /// choice goes first. `Ok(true)` when a choice was redone.
    fn minimize(&mut self) -> Result<bool, Failure> {
        self.update_weak_maps();
        let mut found: Option<(usize, PackageId)> = None;
        for bi in (0..self.branches.len()).rev() {
            let (level, candidates) = (
                self.branches[bi].level,
                self.branches[bi].candidates.clone(),
            );
            let mut pick = None;
            let mut recommended = None;
            for &c in &candidates[1..] {
                let ci = c.0 as usize;
                if self.value[ci] > 0 && self.level_of[ci] as usize > level {
                    pick = Some(c);
                    break;
                }
                if recommended.is_none() && self.value[ci] == 0 && self.favoured(c) {
                    recommended = Some(c);
                }
            }
            if pick.is_none() {
                let chosen = candidates[0];
                let still = self.value[chosen.0 as usize] > 0
                    && self.level_of[chosen.0 as usize] as usize == level + 1;
                if recommended.is_some() && still && !self.favoured(chosen) {
                    pick = recommended;
                }
            }
            if let Some(c) = pick {
                found = Some((level, c));
            }
        }
        let Some((level, p)) = found else {
            return Ok(false);
        };
        let cause = self
            .branches
            .iter()
            .find(|b| b.level == level)
            .map(|b| b.cause)
            .unwrap_or(Cause::Flip);
        self.undo_to(level);
        self.decide(&[p], cause)?;
        Ok(true)
    }

    /// Recommended by the installed set, or supplementing it.
    fn favoured(&mut self, c: PackageId) -> bool {
        let pool = self.pool;
        self.recommended.contains(&c)
            || pool
                .package(c)
                .supplements
                .iter()
                .any(|s| self.dep_holds(&s.dep, true, Some(c)))
    }
}

impl Engine<'_> {
    /// Why the run failed, as one sentence that ends with the request it comes from.
    pub(crate) fn explain(&mut self, failure: &Failure, requests: &[Request]) -> String {
        let id = match failure {
            Failure::GaveUp => {
                return format!(
                    "no installable set found after undoing {MAX_CONFLICTS} conflicting choices; \
                     the requests may conflict with each other"
                )
            }
            Failure::Unsat(id) => *id,
        };
        let lits = self.clauses[id as usize].lits.clone();
        match self.clauses[id as usize].origin.clone() {
            Origin::Job(n) => {
                let cands: Vec<PackageId> = lits.iter().map(|l| l.id()).collect();
                let best = self.policy(cands, Mode::Recommend)[0];
                format!(
                    "{}, required by \"{}\" in {}",
                    self.why_not(best, 0),
                    requests[n].text(),
                    requests[n].origin
                )
            }
            Origin::Requires { owner, dep } => {
                let text = self.requires_message(owner, &dep, id, 0);
                text + &self.chain(owner, requests)
            }
            _ => {
                let installed: Vec<PackageId> = lits
                    .iter()
                    .map(|l| l.id())
                    .filter(|&p| self.installed(p))
                    .collect();
                let first = installed.first().copied().unwrap_or(lits[0].id());
                let text = self.clash(id, first);
                text + &self.chain(first, requests)
            }
        }
    }

    fn nevra(&self, id: PackageId) -> String {
        self.pool.package(id).nevra()
    }

    /// Why package `p` cannot be installed.
    fn why_not(&mut self, p: PackageId, depth: usize) -> String {
        match self.cause[p.0 as usize] {
            Cause::Clause(id) if self.value[p.0 as usize] < 0 => {
                match self.clauses[id as usize].origin.clone() {
                    Origin::Requires { owner, dep } if owner == p && depth < 12 => {
                        self.requires_message(p, &dep, id, depth)
                    }
                    Origin::Requires { .. } | Origin::Job(_) => {
                        format!(
                            "{} cannot be installed with the others chosen",
                            self.nevra(p)
                        )
                    }
                    _ => self.clash(id, p),
                }
            }
            _ => format!(
                "{} cannot be installed with the others chosen",
                self.nevra(p)
            ),
        }
    }

    /// The sentence for an unmet Requires clause of `owner`.
    fn requires_message(&mut self, owner: PackageId, dep: &Dep, id: u32, depth: usize) -> String {
        let providers: Vec<PackageId> = self.clauses[id as usize]
            .lits
            .iter()
            .filter(|l| l.positive())
            .map(|l| l.id())
            .collect();
        let owner_text = self.nevra(owner);
        match providers.first() {
            None => format!("nothing provides {dep} needed by {owner_text}"),
            Some(&q) => {
                let q_cause = self.cause[q.0 as usize];
                let own_requires = matches!(q_cause, Cause::Clause(c)
                    if matches!(&self.clauses[c as usize].origin, Origin::Requires { owner, .. } if *owner == q));
                let why = self.why_not(q, depth + 1);
                if own_requires {
                    format!("{why}, required by {owner_text}")
                } else {
                    let more = match providers.len() {
                        1 => String::new(),
                        n => format!(" (and {} other candidates)", n - 1),
                    };
                    format!(
                        "{why}{more}; so nothing installable provides {dep} needed by {owner_text}"
                    )
                }
            }
        }
    }

    /// The sentence for a Conflicts, Obsoletes or same-name clause that excludes `p`.
    fn clash(&self, id: u32, p: PackageId) -> String {
        let clause = &self.clauses[id as usize];
        let other = clause
            .lits
            .iter()
            .map(|l| l.id())
            .find(|&o| o != p)
            .unwrap_or(p);
        let (a, b) = (self.nevra(p), self.nevra(other));
        match &clause.origin {
            Origin::Conflicts { owner, dep } => {
                let (o, x) = if *owner == p { (&a, &b) } else { (&b, &a) };
                format!("{o} conflicts with {dep}, which {x} provides")
            }
            Origin::Obsoletes { owner, dep } => {
                let (o, x) = if *owner == p { (&a, &b) } else { (&b, &a) };
                format!("{o} obsoletes {dep}, which {x} is")
            }
            _ => format!("{a} cannot be installed with {b}, another version of it"),
        }
    }

    /// `, required by …` from an installed package up to its request.
    fn chain(&self, from: PackageId, requests: &[Request]) -> String {
        let mut text = String::new();
        let mut at = from;
        let mut seen = HashSet::new();
        while seen.insert(at) {
            let by = match self.cause[at.0 as usize] {
                Cause::Clause(id) | Cause::Choice(id) => match &self.clauses[id as usize].origin {
                    Origin::Job(n) => {
                        text += &format!(
                            ", required by \"{}\" in {}",
                            requests[*n].text(),
                            requests[*n].origin
                        );
                        break;
                    }
                    Origin::Requires { owner, .. } => *owner,
                    _ => break,
                },
                Cause::Weak(k) => match &self.weak[k] {
                    WeakWhy::Recommended { by, .. } => *by,
                    WeakWhy::Supplements { .. } => break,
                },
                Cause::Flip => break,
            };
            text += &format!(", required by {}", self.nevra(by));
            at = by;
        }
        text
    }
}

/// Whether package `a` obsoletes package `b` (by name, as libsolv does without
/// obsolete-uses-provides).
pub(crate) fn obsoletes(pool: &Pool, a: PackageId, b: PackageId) -> bool {
    let (pa, pb) = (pool.package(a), pool.package(b));
    pa.obsoletes.iter().any(|o| match &o.dep {
        Dep::Simple { name, range } => *name == pb.name && evr_matches(&pb.evr, range),
        _ => false,
    })
}

/// Whether a package's EVR is within a requested range (`None`: any).
pub(crate) fn evr_matches(evr: &Evr, range: &Option<(Op, Evr)>) -> bool {
    match range {
        None => true,
        Some((op, want)) => kiln_rpm::ranges_overlap(Some((Op::Eq, evr)), Some((*op, want))),
    }
}

/// Lower is better: the machine's own architecture before noarch.
fn arch_rank(arch: &str) -> u8 {
    u8::from(arch == "noarch")
}
