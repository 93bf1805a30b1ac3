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
///
/// Returns where the main header starts and where the payload starts.
fn check_structure(f: &mut File) -> Result<(u64, u64), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut lead = [0u8; 96];
    f.read_exact(&mut lead)
        .map_err(|_| "shorter than an RPM lead".to_string())?;
    if lead[..4] != [0xed, 0xab, 0xee, 0xdb] {
        return Err("no RPM lead (magic ed ab ee db missing)".into());
    }
    let mut at: u64 = 96;
    let mut main_at = 0;
    for (which, pad) in [("signature", true), ("main", false)] {
        main_at = at;
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
    Ok((main_at, at))
}

/// Checks an RPM file's own digests, as `rpmkeys -K --nosignature` does: the main header's
/// SHA-256 (signature tag 273) and the payload's digest (header tag 5092, algorithm tag 5093:
/// SHA-256 by default, SHA-512 when it says 10). A package whose repository checksum matches
/// but whose payload does not match its own header was built or signed wrong, or tampered with
/// before the repository was made. The error names the package.
pub fn verify_digests(path: &Path) -> Result<(), Error> {
    use sha2::Digest;
    use std::io::{Read, Seek, SeekFrom};
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io_err)?;
    let bad = |what: String| Error::Metadata {
        path: path.to_path_buf(),
        what,
    };
    let (main_at, payload_at) =
        check_structure(&mut f).map_err(|why| bad(format!("not a readable RPM: {why}")))?;
    let meta = rpm::PackageMetadata::parse(&mut BufReader::new(&mut f))
        .map_err(|e| bad(format!("not a readable RPM: {e}")))?;
    let package = match (meta.get_name(), meta.get_version(), meta.get_release()) {
        (Ok(n), Ok(v), Ok(r)) => format!("package {n}-{v}-{r}"),
        _ => "the package".to_string(),
    };
    // Hashes `len` bytes (all to the end when None) from `at`.
    let mut digest_of = |at: u64, len: Option<u64>, sha512: bool| -> Result<String, Error> {
        f.seek(SeekFrom::Start(at)).map_err(io_err)?;
        let mut part: Box<dyn Read> = match len {
            Some(n) => Box::new((&mut f).take(n)),
            None => Box::new(&mut f),
        };
        let mut buf = vec![0u8; 1 << 16];
        let mut d256 = sha2::Sha256::new();
        let mut d512 = sha2::Sha512::new();
        loop {
            let n = part.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                break;
            }
            if sha512 {
                d512.update(&buf[..n]);
            } else {
                d256.update(&buf[..n]);
            }
        }
        let out = if sha512 {
            d512.finalize().to_vec()
        } else {
            d256.finalize().to_vec()
        };
        Ok(out.iter().map(|b| format!("{b:02x}")).collect())
    };
    if let Ok(want) = meta
        .signature
        .get_entry_data_as_string(rpm::IndexSignatureTag::RPMSIGTAG_SHA256)
    {
        let got = digest_of(main_at, Some(payload_at - main_at), false)?;
        if !got.eq_ignore_ascii_case(want.trim()) {
            return Err(bad(format!("{package}: its header's SHA-256 is {got}, but its signature header says {want}: the package is corrupt or was altered (rpmkeys -K --nosignature agrees); get it again from its builder")));
        }
    }
    let want = meta
        .header
        .get_entry_data_as_string_array(rpm::IndexTag::RPMTAG_PAYLOADSHA256)
        .ok()
        .and_then(|v| v.first().map(|s| s.to_string()));
    if let Some(want) = want {
        let algo = meta
            .header
            .get_entry_data_as_u32(rpm::IndexTag::RPMTAG_PAYLOADSHA256ALGO)
            .unwrap_or(8);
        let sha512 = match algo {
            8 => false,
            10 => true,
            other => {
                return Err(bad(format!(
                    "{package}: its payload digest uses algorithm {other}, which kiln does not check (8 SHA-256 and 10 SHA-512 are)"
                )))
            }
        };
        let got = digest_of(payload_at, None, sha512)?;
        if !got.eq_ignore_ascii_case(want.trim()) {
            return Err(bad(format!("{package}: its payload digest is {got}, but its header says {want}: the payload is corrupt or was replaced (rpmkeys -K --nosignature agrees); get it again from its builder")));
        }
    }
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
        build_time: meta.get_build_time().unwrap_or(0),
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
