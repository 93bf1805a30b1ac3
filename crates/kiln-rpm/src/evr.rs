//! RPM version comparison: `rpmvercmp` exactly as rpm 4.18 implements it (including `~`, which
//! sorts before everything, and `^`, which sorts after the base version but before anything
//! else), and `[epoch:]version[-release]` triples.

use std::cmp::Ordering;
use std::fmt;

/// Compares two version (or release) strings the way rpm does.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca.is_none() && cb.is_none() {
            break;
        }
        // Tilde sorts before everything, even the end of the string.
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // Caret sorts after the end of the string, before anything else.
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else { break };
        // One completely numeric or completely alphabetic segment from each.
        let numeric = ca.is_ascii_digit();
        let class = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let end_a = i + a[i..].iter().take_while(|c| class(c)).count();
        let end_b = j + b[j..].iter().take_while(|c| class(c)).count();
        if end_b == j {
            // Different kinds: numeric is newer than alphabetic.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut sa, mut sb) = (&a[i..end_a], &b[j..end_b]);
        if numeric {
            while sa.first() == Some(&b'0') {
                sa = &sa[1..];
            }
            while sb.first() == Some(&b'0') {
                sb = &sb[1..];
            }
            match sa.len().cmp(&sb.len()) {
                Ordering::Equal => {}
                longer => return longer,
            }
        }
        match sa.cmp(sb) {
            Ordering::Equal => {}
            o => return o,
        }
        i = end_a;
        j = end_b;
    }
    // All segments equal: whichever has something left (separators) wins.
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// `[epoch:]version[-release]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Evr {
    /// `None` when not written (compares as 0).
    pub epoch: Option<u64>,
    pub version: String,
    /// `None` when not written: a requirement without release matches any release.
    pub release: Option<String>,
}

impl Evr {
    /// Parses `[epoch:]version[-release]` as rpm splits it: the epoch is the digits before the
    /// first `:`, the release what follows the last `-`.
    pub fn parse(s: &str) -> Evr {
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                // An epoch beyond u64 (found by fuzzing) saturates rather than vanishing.
                (Some(e.parse().unwrap_or(u64::MAX)), rest)
            }
            _ => (None, s),
        };
        let (version, release) = match rest.rsplit_once('-') {
            Some((v, r)) => (v.to_string(), Some(r.to_string())),
            None => (rest.to_string(), None),
        };
        Evr {
            epoch,
            version,
            release,
        }
    }

    pub fn new(epoch: u64, version: &str, release: &str) -> Evr {
        Evr {
            epoch: Some(epoch),
            version: version.into(),
            release: Some(release.into()),
        }
    }

    /// rpm's comparison for dependency matching: epochs (missing = 0), versions, then releases
    /// only when both have one.
    pub fn cmp_for_deps(&self, other: &Evr) -> Ordering {
        let e = self.epoch.unwrap_or(0).cmp(&other.epoch.unwrap_or(0));
        if e != Ordering::Equal {
            return e;
        }
        match rpmvercmp(&self.version, &other.version) {
            Ordering::Equal => match (&self.release, &other.release) {
                (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => rpmvercmp(a, b),
                _ => Ordering::Equal,
            },
            o => o,
        }
    }
}

impl Ord for Evr {
    /// Total order of package versions (a missing release sorts as empty).
    fn cmp(&self, other: &Evr) -> Ordering {
        self.epoch
            .unwrap_or(0)
            .cmp(&other.epoch.unwrap_or(0))
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| {
                rpmvercmp(
                    self.release.as_deref().unwrap_or(""),
                    other.release.as_deref().unwrap_or(""),
                )
            })
    }
}

impl PartialOrd for Evr {
    fn partial_cmp(&self, other: &Evr) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Evr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = self.epoch {
            write!(f, "{e}:")?;
        }
        f.write_str(&self.version)?;
        if let Some(r) = &self.release {
            write!(f, "-{r}")?;
        }
        Ok(())
    }
}

/// A version comparison operator of a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<" => Op::Lt,
            "<=" | "=<" => Op::Le,
            "=" | "==" => Op::Eq,
            ">=" | "=>" => Op::Ge,
            ">" => Op::Gt,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">",
        }
    }

    fn less(self) -> bool {
        matches!(self, Op::Lt | Op::Le)
    }

    fn equal(self) -> bool {
        matches!(self, Op::Le | Op::Eq | Op::Ge)
    }

    fn greater(self) -> bool {
        matches!(self, Op::Ge | Op::Gt)
    }
}

/// Whether two version ranges overlap (rpm's `rpmdsCompare`): `provide` is what a package
/// offers (usually `= its EVR`), `require` what is asked. No range on either side matches all.
pub fn ranges_overlap(provide: Option<(Op, &Evr)>, require: Option<(Op, &Evr)>) -> bool {
    let (Some((pa, a)), Some((pb, b))) = (provide, require) else {
        return true;
    };
    match a.cmp_for_deps(b) {
        Ordering::Less => pa.greater() || pb.less(),
        Ordering::Greater => pa.less() || pb.greater(),
        Ordering::Equal => {
            (pa.equal() && pb.equal()) || (pa.less() && pb.less()) || (pa.greater() && pb.greater())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn vercmp_basics() {
        assert_eq!(rpmvercmp("1.0", "1.0"), Equal);
        assert_eq!(rpmvercmp("1.0~rc1", "1.0"), Less);
        assert_eq!(rpmvercmp("1.0^git1", "1.0"), Greater);
        assert_eq!(rpmvercmp("1.0^git1", "1.01"), Less);
        assert_eq!(rpmvercmp("10.0001", "10.1"), Equal);
        assert_eq!(rpmvercmp("xyz.4", "8"), Less);
        assert_eq!(rpmvercmp("_+", "+_"), Equal);
    }

    #[test]
    fn evr_parsing_and_ordering() {
        let e = Evr::parse("2:1.0-3.azl3");
        assert_eq!(
            (e.epoch, e.version.as_str(), e.release.as_deref()),
            (Some(2), "1.0", Some("3.azl3"))
        );
        assert_eq!(e.to_string(), "2:1.0-3.azl3");
        assert!(Evr::parse("1:0.1-1") > Evr::parse("9.9-9"));
        assert_eq!(Evr::parse("1.0").cmp_for_deps(&Evr::parse("1.0-7")), Equal);
        assert_eq!(
            Evr::parse("0:1.0-1"),
            Evr {
                epoch: Some(0),
                ..Evr::parse("1.0-1")
            }
        );
    }

    #[test]
    fn range_overlaps_follow_rpmds_compare() {
        let v = |s| Evr::parse(s);
        let (p, r) = (v("1.2-1"), v("1.0"));
        assert!(ranges_overlap(Some((Op::Eq, &p)), Some((Op::Ge, &r))));
        assert!(!ranges_overlap(Some((Op::Eq, &p)), Some((Op::Lt, &r))));
        assert!(
            ranges_overlap(Some((Op::Eq, &v("1.0-5"))), Some((Op::Eq, &r))),
            "no release: any"
        );
        assert!(!ranges_overlap(
            Some((Op::Eq, &v("1.0-5"))),
            Some((Op::Eq, &v("1.0-6")))
        ));
        assert!(ranges_overlap(None, Some((Op::Lt, &r))));
        assert!(ranges_overlap(
            Some((Op::Le, &v("2.0"))),
            Some((Op::Ge, &v("1.0")))
        ));
    }
}
