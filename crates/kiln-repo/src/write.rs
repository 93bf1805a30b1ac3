//! Writing rpm-md metadata for a directory of packages, as `createrepo_c` does: gzip-compressed
//! `primary.xml` (every dependency, the primary subset of the files) and `filelists.xml` (all
//! files), and `repomd.xml` with the checksums of both, compressed and open. The new
//! `repodata/` is built beside the old one and swapped in, so readers never see half of it.

use crate::{Checksum, Error, Package, Relation};
use flate2::write::GzEncoder;
use kiln_rpm::{Dep, Op};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `dir/repodata/` describing `packages` (their `location`s relative to `dir`).
/// `timestamp` goes into repomd.xml (use `SOURCE_DATE_EPOCH` for reproducible metadata).
pub fn write_repodata(dir: &Path, packages: &[Package], timestamp: u64) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut sorted: Vec<&Package> = packages.iter().collect();
    sorted.sort_by(|a, b| a.location.cmp(&b.location));
    let staging = dir.join(".repodata.kiln-tmp");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;

    let n = sorted.len();
    let primary = std::iter::once(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" \
         xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"{n}\">\n"
    ))
    .chain(sorted.iter().map(|p| primary_package(p)))
    .chain(std::iter::once("</metadata>\n".to_string()));
    let filelists = std::iter::once(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filelists xmlns=\"http://linux.duke.edu/metadata/filelists\" \
         packages=\"{n}\">\n"
    ))
    .chain(sorted.iter().map(|p| filelists_package(p)))
    .chain(std::iter::once("</filelists>\n".to_string()));
    let records = [
        ("primary", write_gz(&staging, "primary", primary)?),
        ("filelists", write_gz(&staging, "filelists", filelists)?),
    ];
    let mut repomd = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\" \
         xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n  <revision>{timestamp}</revision>\n"
    );
    for (kind, w) in &records {
        let _ = write!(
            repomd,
            "  <data type=\"{kind}\">\n    <checksum type=\"sha256\">{}</checksum>\n    \
             <open-checksum type=\"sha256\">{}</open-checksum>\n    <location href=\"repodata/{}\"/>\n    \
             <timestamp>{timestamp}</timestamp>\n    <size>{}</size>\n    <open-size>{}</open-size>\n  </data>\n",
            w.checksum, w.open_checksum, w.file_name, w.size, w.open_size
        );
    }
    repomd.push_str("</repomd>\n");
    let repomd_path = staging.join("repomd.xml");
    std::fs::write(&repomd_path, repomd).map_err(io(&repomd_path))?;

    // Swap the new repodata in; the old one goes away only once the new one is in place.
    let target = dir.join("repodata");
    let old = dir.join(".repodata.kiln-old");
    let _ = std::fs::remove_dir_all(&old);
    if target.exists() {
        std::fs::rename(&target, &old).map_err(io(&target))?;
    }
    std::fs::rename(&staging, &target).map_err(io(&target))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

struct Written {
    file_name: String,
    checksum: String,
    open_checksum: String,
    size: u64,
    open_size: u64,
}

/// Writes one gzip-compressed metadata file named by its checksum, as createrepo_c names them.
fn write_gz(
    dir: &Path,
    kind: &str,
    chunks: impl Iterator<Item = String>,
) -> Result<Written, Error> {
    let tmp: PathBuf = dir.join(format!("{kind}.xml.gz"));
    let io = |source| Error::Io {
        path: tmp.clone(),
        source,
    };
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut gz = GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::new(6));
    let mut open = <sha2::Sha256 as sha2::Digest>::new();
    let mut open_size = 0u64;
    for chunk in chunks {
        sha2::Digest::update(&mut open, chunk.as_bytes());
        open_size += chunk.len() as u64;
        gz.write_all(chunk.as_bytes()).map_err(io)?;
    }
    let mut w = gz.finish().map_err(io)?;
    w.flush().map_err(io)?;
    drop(w);
    let open_checksum = hex(&sha2::Digest::finalize(open));
    let checksum = Checksum::compute("sha256", std::fs::File::open(&tmp).map_err(io)?)?;
    let size = std::fs::metadata(&tmp).map_err(io)?.len();
    let file_name = format!("{checksum}-{kind}.xml.gz");
    std::fs::rename(&tmp, dir.join(&file_name)).map_err(io)?;
    Ok(Written {
        file_name,
        checksum,
        open_checksum,
        size,
        open_size,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The files primary.xml lists: those createrepo_c keeps there (so that file dependencies on
/// them resolve without filelists).
fn in_primary(path: &str) -> bool {
    path.starts_with("/etc/") || path.contains("bin/") || path == "/usr/lib/sendmail"
}

fn version_element(p: &Package) -> String {
    format!(
        "<version epoch=\"{}\" ver=\"{}\" rel=\"{}\"/>",
        p.evr.epoch.unwrap_or(0),
        esc(&p.evr.version),
        esc(p.evr.release.as_deref().unwrap_or(""))
    )
}

fn entry(r: &Relation, with_pre: bool) -> String {
    let mut out = String::from("<rpm:entry");
    match &r.dep {
        Dep::Simple { name, range } => {
            let _ = write!(out, " name=\"{}\"", esc(name));
            if let Some((op, evr)) = range {
                let flags = match op {
                    Op::Eq => "EQ",
                    Op::Lt => "LT",
                    Op::Le => "LE",
                    Op::Gt => "GT",
                    Op::Ge => "GE",
                };
                let _ = write!(out, " flags=\"{flags}\"");
                if let Some(e) = evr.epoch {
                    let _ = write!(out, " epoch=\"{e}\"");
                }
                let _ = write!(out, " ver=\"{}\"", esc(&evr.version));
                if let Some(rel) = &evr.release {
                    let _ = write!(out, " rel=\"{}\"", esc(rel));
                }
            }
        }
        rich => {
            let _ = write!(out, " name=\"{}\"", esc(&rich.to_string()));
        }
    }
    if with_pre && r.pre {
        out.push_str(" pre=\"1\"");
    }
    out.push_str("/>");
    out
}

fn primary_package(p: &Package) -> String {
    let mut out = format!(
        "<package type=\"rpm\">\n  <name>{}</name>\n  <arch>{}</arch>\n  {}\n  \
         <checksum type=\"{}\" pkgid=\"YES\">{}</checksum>\n  <summary>{}</summary>\n  \
         <description></description>\n  <packager></packager>\n  <url></url>\n  \
         <time file=\"0\" build=\"{}\"/>\n  <size package=\"{}\" installed=\"{}\" archive=\"0\"/>\n  \
         <location href=\"{}\"/>\n  <format>\n",
        esc(&p.name),
        esc(&p.arch),
        version_element(p),
        esc(&p.checksum.kind),
        esc(&p.checksum.value),
        esc(&p.summary),
        p.build_time,
        p.size,
        p.installed_size,
        esc(&p.location)
    );
    for (tag, list) in [
        ("provides", &p.provides),
        ("requires", &p.requires),
        ("conflicts", &p.conflicts),
        ("obsoletes", &p.obsoletes),
        ("suggests", &p.suggests),
        ("enhances", &p.enhances),
        ("recommends", &p.recommends),
        ("supplements", &p.supplements),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "    <rpm:{tag}>");
        for r in list {
            let _ = writeln!(out, "      {}", entry(r, tag == "requires"));
        }
        let _ = writeln!(out, "    </rpm:{tag}>");
    }
    for f in p.files.iter().filter(|f| in_primary(f)) {
        let _ = writeln!(out, "    <file>{}</file>", esc(f));
    }
    out.push_str("  </format>\n</package>\n");
    out
}

fn filelists_package(p: &Package) -> String {
    let mut out = format!(
        "<package pkgid=\"{}\" name=\"{}\" arch=\"{}\">\n  {}\n",
        esc(&p.checksum.value),
        esc(&p.name),
        esc(&p.arch),
        version_element(p)
    );
    for f in &p.files {
        let _ = writeln!(out, "  <file>{}</file>", esc(f));
    }
    out.push_str("</package>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_metadata_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let rel = |s: &str, pre| Relation {
            dep: Dep::parse(s).unwrap(),
            pre,
        };
        let p = Package {
            name: "a&b".into(),
            arch: "x86_64".into(),
            evr: kiln_rpm::Evr::new(1, "2.0", "3"),
            checksum: Checksum {
                kind: "sha256".into(),
                value: "ab".repeat(32),
            },
            location: "a-2.0-3.x86_64.rpm".into(),
            size: 10,
            installed_size: 20,
            summary: "<tool>".into(),
            provides: vec![rel("a&b = 1:2.0-3", false)],
            requires: vec![rel("/bin/sh", true), rel("(c or d >= 1)", false)],
            recommends: vec![rel("e", false)],
            files: vec!["/usr/bin/a".into(), "/usr/share/a/x".into()],
            ..Default::default()
        };
        write_repodata(dir.path(), std::slice::from_ref(&p), 7).unwrap();
        write_repodata(dir.path(), std::slice::from_ref(&p), 7).unwrap(); // replaces cleanly
        let back = crate::load_dir(dir.path(), true).unwrap();
        assert_eq!(back.packages, vec![p]);
        assert_eq!(back.revision, "7");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["repodata"]);
    }

    #[test]
    fn filelists_are_read_only_when_a_file_dependency_needs_them() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = |name: &str, requires: &str, files: &[&str]| Package {
            name: name.into(),
            arch: "noarch".into(),
            evr: kiln_rpm::Evr::new(0, "1", "1"),
            checksum: Checksum {
                kind: "sha256".into(),
                value: format!("{name:0>64}"),
            },
            location: format!("{name}.rpm"),
            requires: vec![Relation {
                dep: Dep::parse(requires).unwrap(),
                pre: false,
            }],
            files: files.iter().map(|f| f.to_string()).collect(),
            ..Default::default()
        };
        let b = pkg("b", "c", &["/usr/bin/b", "/usr/share/b/data"]);
        let when = |paths: &[&str]| {
            crate::Filelists::WhenNeeded(paths.iter().map(|p| p.to_string()).collect())
        };
        // /usr/bin/b is in primary's subset: no filelists needed.
        let a = pkg("a", "/usr/bin/b", &[]);
        write_repodata(dir.path(), &[a, b.clone()], 1).unwrap();
        let r = crate::load_dir(dir.path(), when(&[])).unwrap();
        assert!(!r.full_filelists);
        assert_eq!(r.packages[1].files, ["/usr/bin/b"]);
        // A requested path outside it: filelists are read.
        let r = crate::load_dir(dir.path(), when(&["/usr/share/b/data"])).unwrap();
        assert!(r.full_filelists);
        assert_eq!(r.packages[1].files.len(), 2);
        // A file dependency outside it: the same.
        let a = pkg("a", "(/usr/share/b/data or x)", &[]);
        write_repodata(dir.path(), &[a, b], 1).unwrap();
        assert!(
            crate::load_dir(dir.path(), when(&[]))
                .unwrap()
                .full_filelists
        );
    }
}
