//! The package pool: candidates from all repositories, and the provider index.

use kiln_repo::Package;
use kiln_rpm::{ranges_overlap, Dep, Evr, Op};
use std::collections::HashMap;

/// A package's index in its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageId(pub u32);

/// Where a pool's package came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The repository's id (`.repo` section) or directory.
    pub name: String,
    /// Lower is preferred (dnf's priority).
    pub priority: u32,
}

/// A provided capability's version range (`None`: unversioned).
type Range = Option<(Op, Evr)>;

/// All candidate packages and what provides what.
#[derive(Debug, Default)]
pub struct Pool {
    packages: Vec<(Package, usize)>,
    sources: Vec<Source>,
    /// Capability name → (package, its provided range).
    provides: HashMap<String, Vec<(PackageId, Range)>>,
    /// File path → packages that own it.
    files: HashMap<String, Vec<PackageId>>,
    /// Package name → packages of that name, in pool order.
    names: HashMap<String, Vec<PackageId>>,
    /// Package name → packages whose Obsoletes name it.
    obsoleters: HashMap<String, Vec<PackageId>>,
}

impl Pool {
    pub fn new() -> Pool {
        Pool::default()
    }

    /// Adds a source's packages.
    pub fn add_source(&mut self, source: Source, packages: Vec<Package>) {
        let s = self.sources.len();
        self.sources.push(source);
        for p in packages {
            let id = PackageId(self.packages.len() as u32);
            for r in &p.provides {
                if let Dep::Simple { name, range } = &r.dep {
                    self.provides
                        .entry(name.clone())
                        .or_default()
                        .push((id, range.clone()));
                }
            }
            for f in &p.files {
                self.files.entry(f.clone()).or_default().push(id);
            }
            self.names.entry(p.name.clone()).or_default().push(id);
            for o in &p.obsoletes {
                if let Dep::Simple { name, .. } = &o.dep {
                    self.obsoleters.entry(name.clone()).or_default().push(id);
                }
            }
            self.packages.push((p, s));
        }
    }

    pub fn len(&self) -> usize {
        self.packages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    pub fn package(&self, id: PackageId) -> &Package {
        &self.packages[id.0 as usize].0
    }

    /// The index (in the order sources were added) of the source `id` comes from.
    pub fn source_index(&self, id: PackageId) -> usize {
        self.packages[id.0 as usize].1
    }

    pub fn source(&self, id: PackageId) -> &Source {
        &self.sources[self.packages[id.0 as usize].1]
    }

    pub fn ids(&self) -> impl Iterator<Item = PackageId> {
        (0..self.packages.len() as u32).map(PackageId)
    }

    /// The packages that satisfy a simple dependency `name [op evr]`: those providing `name`
    /// with a range that overlaps (an unversioned provide satisfies any version), and, for a path,
    /// those owning the file. Sorted, without duplicates. Rich dependencies are not simple: `None`.
    pub fn what_provides(&self, dep: &Dep) -> Option<Vec<PackageId>> {
        let Dep::Simple { name, range } = dep else {
            return None;
        };
        let want = range.as_ref().map(|(op, evr)| (*op, evr));
        let mut out: Vec<PackageId> = self
            .provides
            .get(name)
            .into_iter()
            .flatten()
            .filter(|(_, have)| ranges_overlap(have.as_ref().map(|(op, evr)| (*op, evr)), want))
            .map(|(id, _)| *id)
            .collect();
        if name.starts_with('/') {
            out.extend(self.files.get(name).into_iter().flatten().copied());
        }
        out.sort();
        out.dedup();
        Some(out)
    }

    /// Packages whose Obsoletes name `name` (any version).
    pub fn obsoleting(&self, name: &str) -> &[PackageId] {
        self.obsoleters.get(name).map_or(&[], Vec::as_slice)
    }

    /// Packages by name, highest EVR first.
    pub fn by_name(&self, name: &str) -> Vec<PackageId> {
        let mut v: Vec<PackageId> = self.names.get(name).cloned().unwrap_or_default();
        v.sort_by(|a, b| self.package(*b).evr.cmp(&self.package(*a).evr));
        v
    }
}
