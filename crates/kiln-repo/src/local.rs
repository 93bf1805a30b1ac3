//! Directories of RPM files without metadata (e.g. locally built `out/RPMS`): each package is read
//! from its header, and described the way createrepo_c would describe it in `primary.xml`.

use crate::metadata::{Package, Relation};
use crate::{Checksum, Error};
use kiln_rpm::{Dep, Evr, Op};
use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

fn relations(deps: Vec<rpm::Dependency>) -> Result<Vec<Relation>, String> {
    use rpm::DependencyFlags as F;
    let mut out: Vec<Relation> = Vec::new();
    for d in deps {
        // rpmlib() features are rpm's own business, as in createrepo_c's output.
        if d.flags.contains(F::RPMLIB) || d.name.starts_with("rpmlib(") {
            continue;
        }
        let pre = d
            .flags
            .intersects(F::PREREQ | F::SCRIPT_PRE | F::SCRIPT_POST);
        let dep = if d.name.starts_with('(') {
            Dep::parse(&d.name).map_err(|e| e.to_string())?
        } else {
            let sense = d.flags & (F::LESS | F::GREATER | F::EQUAL);
            let op = if sense == F::EQUAL {
                Some(Op::Eq)
            } else if sense == F::LE {
                Some(Op::Le)
            } else if sense == F::GE {
                Some(Op::Ge)
            } else if sense == F::LESS {
                Some(Op::Lt)
            } else if sense == F::GREATER {
                Some(Op::Gt)
            } else {
                None
            };
            Dep::Simple {
                name: d.name.clone(),
                range: op
                    .filter(|_| !d.version.is_empty())
                    .map(|op| (op, Evr::parse(&d.version))),
            }
        };
        // Kept once per (dependency, pre) pair, as createrepo_c keeps them.
        let rel = Relation { dep, pre };
        if !out.contains(&rel) {
            out.push(rel);
        }
    }
    Ok(out)
}

/// Checks the lead and both header structures of an RPM before the `rpm` crate parses it: every
/// index entry's data must lie inside its header's data store and sizes must be plausible (the
/// crate indexes out of bounds, or allocates what a corrupt size asks for, otherwise).
fn check_structure(f: &mut File) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut lead = [0u8; 96];
    f.read_exact(&mut lead)
        .map_err(|_| "shorter than an RPM lead".to_string())?;
    if lead[..4] != [0xed, 0xab, 0xee, 0xdb] {
        return Err("no RPM lead (magic ed ab ee db missing)".into());
    }
    let mut at: u64 = 96;
    for (which, pad) in [("signature", true), ("main", false)] {
        f.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
        let mut intro = [0u8; 16];
        f.read_exact(&mut intro)
            .map_err(|_| format!("the {which} header is cut short"))?;
        if intro[..3] != [0x8e, 0xad, 0xe8] {
            return Err(format!("no {which} header at offset {at}"));
        }
        let entries = u64::from(u32::from_be_bytes(
            intro[8..12].try_into().expect("4 bytes"),
        ));
        let store = u64::from(u32::from_be_bytes(
            intro[12..16].try_into().expect("4 bytes"),
        ));
        if entries > 1 << 16 || store > 256 << 20 {
            return Err(format!(
                "the {which} header claims {entries} entries and {store} bytes of data"
            ));
        }
        let mut index = vec![0u8; (entries * 16) as usize];
        f.read_exact(&mut index)
            .map_err(|_| format!("the {which} header index is cut short"))?;
        for e in index.chunks(16) {
            let field =
                |i: usize| u64::from(u32::from_be_bytes(e[i..i + 4].try_into().expect("4 bytes")));
            let (kind, offset, count) = (field(4), field(8), field(12));
            let width = match kind {
                0 => 0,
                1 | 2 | 7 => 1,
                3 => 2,
                4 => 4,
                5 => 8,
                6 | 8 | 9 => 1, // strings: at least their terminator
                _ => {
                    return Err(format!(
                        "the {which} header has an entry of unknown type {kind}"
                    ))
                }
            };
            // Each string needs at least its terminator, so a string array's count is bounded
            // by the data size too; an unbounded count makes readers preallocate gigabytes.
            let needed = if kind == 6 {
                count.min(1)
            } else {
                count * width
            };
            if offset.checked_add(needed).is_none_or(|end| end > store) {
                return Err(format!("a {which} header entry points outside its data ({offset} + {needed} > {store})"));
            }
        }
        at += 16 + entries * 16 + store;
        if pad {
            at = at.div_ceil(8) * 8;
        }
    }
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    Ok(())
}

/// Reads one RPM file's header.
pub fn read_rpm(path: &Path, location: &str) -> Result<Package, Error> {
    let bad = |what: String| Error::Metadata {
        path: path.to_path_buf(),
        what,
    };
    let mut f = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    check_structure(&mut f).map_err(|why| bad(format!("not a readable RPM: {why}")))?;
    let meta = rpm::PackageMetadata::parse(&mut BufReader::new(f))
        .map_err(|e| bad(format!("not a readable RPM: {e}")))?;
    if meta.is_source_package() {
        return Err(bad("a source RPM, not a binary package".into()));
    }
    let text = |r: Result<&str, rpm::Error>| r.map(String::from).map_err(|e| bad(e.to_string()));
    let deps = |r: Result<Vec<rpm::Dependency>, rpm::Error>| {
        r.map_err(|e| bad(e.to_string()))
            .and_then(|d| relations(d).map_err(bad))
    };
    let name = text(meta.get_name())?;
    let evr = Evr {
        epoch: Some(meta.get_epoch().map(u64::from).unwrap_or(0)),
        version: text(meta.get_version())?,
        release: Some(text(meta.get_release())?),
    };
    let files: Vec<String> = meta
        .get_file_paths()
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let provides = deps(meta.get_provides())?;
    // Requirements the package satisfies itself are left out, as createrepo_c does.
    let own: HashSet<&str> = provides
        .iter()
        .filter_map(|r| match &r.dep {
            Dep::Simple { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .chain(files.iter().map(String::as_str))
        .collect();
    let requires = deps(meta.get_requires())?
        .into_iter()
        .filter(|r| !matches!(&r.dep, Dep::Simple { name, .. } if own.contains(name.as_str())))
        .collect();
    let checksum = Checksum {
        kind: "sha256".into(),
        value: Checksum::compute(
            "sha256",
            BufReader::new(File::open(path).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?),
        )?,
    };
    Ok(Package {
        name,
        arch: text(meta.get_arch())?,
        evr,
        checksum,
        location: location.to_string(),
        size,
        installed_size: meta.get_installed_size().unwrap_or(0),
        summary: meta.get_summary().unwrap_or("").to_string(),
        provides,
        requires,
        conflicts: deps(meta.get_conflicts())?,
        obsoletes: deps(meta.get_obsoletes())?,
        recommends: deps(meta.get_recommends())?,
        suggests: deps(meta.get_suggests())?,
        supplements: deps(meta.get_supplements())?,
        enhances: deps(meta.get_enhances())?,
        files,
    })
}

/// Reads every `*.rpm` in `dir` (not recursing), sorted by file name.
pub fn scan_dir(dir: &Path) -> Result<Vec<Package>, Error> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rpm") && !n.ends_with(".src.rpm"))
        .collect();
    names.sort();
    names.iter().map(|n| read_rpm(&dir.join(n), n)).collect()
}
