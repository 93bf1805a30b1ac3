//! rpm-md metadata: `repomd.xml`, `primary.xml` and `filelists.xml`, read as streams.

use crate::{Checksum, Error};
use kiln_rpm::{Dep, Evr, Op};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::collections::HashMap;
use std::io::BufRead;

/// One `<data>` record of `repomd.xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRecord {
    /// `primary`, `filelists`, `other`, `primary_db`, …
    pub kind: String,
    /// Relative to the repository root, e.g. `repodata/<hash>-primary.xml.gz`.
    pub location: String,
    pub checksum: Checksum,
    pub size: Option<u64>,
}

/// `repomd.xml`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepoMd {
    pub revision: String,
    pub data: Vec<DataRecord>,
}

impl RepoMd {
    pub fn record(&self, kind: &str) -> Option<&DataRecord> {
        self.data.iter().find(|d| d.kind == kind)
    }
}

/// A dependency of a package, with rpm's "needed before install" marker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Relation {
    pub dep: Dep,
    /// `pre="1"`: needed by a %pre/%post scriptlet.
    pub pre: bool,
}

/// A package as repository metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Package {
    pub name: String,
    pub arch: String,
    pub evr: Evr,
    /// The checksum of the RPM file (also the package id filelists refers to).
    pub checksum: Checksum,
    /// The RPM file, relative to the repository root.
    pub location: String,
    /// Size of the RPM file.
    pub size: u64,
    pub installed_size: u64,
    /// When the package was built (Unix time, `<time build=…>`; 0 when not known): what a
    /// repository snapshot time compares.
    pub build_time: u64,
    pub summary: String,
    pub provides: Vec<Relation>,
    pub requires: Vec<Relation>,
    pub conflicts: Vec<Relation>,
    pub obsoletes: Vec<Relation>,
    pub recommends: Vec<Relation>,
    pub suggests: Vec<Relation>,
    pub supplements: Vec<Relation>,
    pub enhances: Vec<Relation>,
    /// The files primary lists (the "primary" subset: /etc, */bin/*, /usr/lib/sendmail), or all
    /// of them once filelists are loaded.
    pub files: Vec<String>,
}

impl Package {
    /// `name-[epoch:]version-release.arch`, the epoch only when non-zero.
    pub fn nevra(&self) -> String {
        let epoch = match self.evr.epoch {
            Some(e) if e != 0 => format!("{e}:"),
            _ => String::new(),
        };
        format!(
            "{}-{epoch}{}-{}.{}",
            self.name,
            self.evr.version,
            self.evr.release.as_deref().unwrap_or(""),
            self.arch
        )
    }
}

fn attr(e: &BytesStart, name: &str) -> Result<Option<String>, Error> {
    for a in e.attributes() {
        let a = a.map_err(|err| Error::Xml(err.to_string()))?;
        if a.key.local_name().as_ref() == name.as_bytes() {
            let v = a
                .unescape_value()
                .map_err(|err| Error::Xml(err.to_string()))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

fn local(e: &BytesStart) -> Vec<u8> {
    e.local_name().as_ref().to_vec()
}

/// Parses `repomd.xml`.
pub fn parse_repomd(input: impl BufRead) -> Result<RepoMd, Error> {
    let mut r = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut md = RepoMd::default();
    let mut current: Option<DataRecord> = None;
    let mut text_of: Option<Vec<u8>> = None;
    let mut checksum_kind = String::new();
    // Whether the document ended properly: a truncated repomd.xml must not pass for a whole one.
    let mut root_closed = false;
    let mut depth = 0usize;
    loop {
        let event = r
            .read_event_into(&mut buf)
            .map_err(|e| Error::Xml(format!("repomd.xml: {e}")))?;
        match &event {
            Event::Start(_) => depth += 1,
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                if depth == 0 && e.local_name().as_ref() == b"repomd" {
                    root_closed = true;
                }
            }
            _ => {}
        }
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = local(&e);
                match name.as_slice() {
                    b"data" => {
                        current = Some(DataRecord {
                            kind: attr(&e, "type")?.unwrap_or_default(),
                            location: String::new(),
                            checksum: Checksum::default(),
                            size: None,
                        })
                    }
                    b"location" => {
                        if let Some(d) = &mut current {
                            d.location = attr(&e, "href")?.unwrap_or_default();
                        }
                    }
                    b"checksum" => {
                        checksum_kind = attr(&e, "type")?.unwrap_or_default();
                        text_of = Some(name);
                    }
                    b"revision" | b"size" => text_of = Some(name),
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some(which) = text_of.take() {
                    let text = t
                        .unescape()
                        .map_err(|e| Error::Xml(e.to_string()))?
                        .trim()
                        .to_string();
                    match (which.as_slice(), &mut current) {
                        (b"revision", None) => md.revision = text,
                        (b"checksum", Some(d)) => {
                            d.checksum = Checksum {
                                kind: checksum_kind.clone(),
                                value: text,
                            }
                        }
                        (b"size", Some(d)) => d.size = text.parse().ok(),
                        _ => {}
                    }
                }
            }
            Event::End(e) => {
                text_of = None;
                if e.local_name().as_ref() == b"data" {
                    if let Some(d) = current.take() {
                        md.data.push(d);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !root_closed {
        return Err(Error::Xml(format!(
            "repomd.xml ends at byte {} without its closing </repomd>: it is truncated or not repository metadata (fetch it again, or regenerate it with createrepo_c)",
            r.buffer_position()
        )));
    }
    if md.data.is_empty() {
        return Err(Error::Xml("repomd.xml lists no metadata".into()));
    }
    Ok(md)
}

/// An `<rpm:entry>` as a relation (its attributes read in one pass: this runs for every
/// dependency of every package).
fn entry(e: &BytesStart) -> Result<Relation, Error> {
    let (mut name, mut flags, mut epoch, mut ver, mut rel, mut pre) =
        (String::new(), None, None, String::new(), None, false);
    for a in e.attributes() {
        let a = a.map_err(|err| Error::Xml(err.to_string()))?;
        let value = || -> Result<String, Error> {
            Ok(a.unescape_value()
                .map_err(|err| Error::Xml(err.to_string()))?
                .into_owned())
        };
        match a.key.local_name().as_ref() {
            b"name" => name = value()?,
            b"flags" => flags = Some(value()?),
            b"epoch" => epoch = value()?.parse().ok(),
            b"ver" => ver = value()?,
            b"rel" => rel = Some(value()?),
            b"pre" => pre = value()? == "1",
            _ => {}
        }
    }
    let dep = if name.starts_with('(') {
        Dep::parse(&name).map_err(|err| Error::Xml(err.to_string()))?
    } else {
        let op = match flags.as_deref() {
            None => None,
            Some("EQ") => Some(Op::Eq),
            Some("LT") => Some(Op::Lt),
            Some("LE") => Some(Op::Le),
            Some("GT") => Some(Op::Gt),
            Some("GE") => Some(Op::Ge),
            Some(other) => {
                return Err(Error::Xml(format!(
                    "unknown dependency flags {other:?} on {name}"
                )))
            }
        };
        let range = op.map(|op| {
            (
                op,
                Evr {
                    epoch,
                    version: ver,
                    release: rel,
                },
            )
        });
        Dep::Simple { name, range }
    };
    Ok(Relation { dep, pre })
}

/// Parses a whole decompressed `primary.xml` on several threads: the document is cut at
/// `<package` tags into one run of complete packages per thread. The packages come back in
/// document order.
pub fn parse_primary_parallel(data: &[u8], threads: usize) -> Result<Vec<Package>, Error> {
    let threads = threads.clamp(1, 8);
    if threads == 1 || data.len() < (4 << 20) {
        let mut out = Vec::new();
        parse_primary(data, |p| out.push(p))?;
        return Ok(out);
    }
    // A package element starts with `<package ` or `<package>` (not `<packager`).
    let starts_at = |from: usize| -> usize {
        data[from..]
            .windows(9)
            .position(|w| w.starts_with(b"<package") && (w[8] == b' ' || w[8] == b'>'))
            .map_or(data.len(), |k| from + k)
    };
    // The closing root tag stays out: a run that closes what it never opened is an error.
    let end = data
        .windows(11)
        .rposition(|w| w == b"</metadata>")
        .unwrap_or(data.len());
    let mut cuts = vec![0];
    for k in 1..threads {
        let at = starts_at((end * k / threads).max(*cuts.last().unwrap_or(&0)));
        cuts.push(at.min(end));
    }
    cuts.push(end);
    cuts.dedup();
    let parts: Vec<Result<Vec<Package>, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = cuts
            .windows(2)
            .map(|w| {
                let chunk = &data[w[0]..w[1]];
                s.spawn(move || {
                    let mut out = Vec::new();
                    parse_primary(chunk, |p| out.push(p)).map(|_| out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a parser thread does not panic"))
            .collect()
    });
    let mut all = Vec::new();
    for part in parts {
        all.extend(part?);
    }
    Ok(all)
}

/// Parses `primary.xml` (already decompressed), calling `each` for every package.
pub fn parse_primary(input: impl BufRead, mut each: impl FnMut(Package)) -> Result<usize, Error> {
    let mut r = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut pkg: Option<Package> = None;
    let mut text_of: Option<Vec<u8>> = None;
    let mut list: Option<Vec<u8>> = None;
    let mut count = 0;
    loop {
        match r
            .read_event_into(&mut buf)
            .map_err(|e| Error::Xml(e.to_string()))?
        {
            Event::Start(e) | Event::Empty(e) => {
                let name = local(&e);
                if name == b"package" {
                    pkg = Some(Package::default());
                    continue;
                }
                let Some(p) = &mut pkg else { continue };
                match name.as_slice() {
                    b"name" | b"arch" | b"summary" | b"file" => text_of = Some(name),
                    b"checksum" => {
                        p.checksum.kind = attr(&e, "type")?.unwrap_or_default();
                        text_of = Some(name);
                    }
                    b"version" => {
                        p.evr = Evr {
                            epoch: Some(
                                attr(&e, "epoch")?.and_then(|x| x.parse().ok()).unwrap_or(0),
                            ),
                            version: attr(&e, "ver")?.unwrap_or_default(),
                            release: Some(attr(&e, "rel")?.unwrap_or_default()),
                        }
                    }
                    b"location" => p.location = attr(&e, "href")?.unwrap_or_default(),
                    b"time" => {
                        p.build_time = attr(&e, "build")?.and_then(|x| x.parse().ok()).unwrap_or(0);
                    }
                    b"size" => {
                        p.size = attr(&e, "package")?
                            .and_then(|x| x.parse().ok())
                            .unwrap_or(0);
                        p.installed_size = attr(&e, "installed")?
                            .and_then(|x| x.parse().ok())
                            .unwrap_or(0);
                    }
                    b"provides" | b"requires" | b"conflicts" | b"obsoletes" | b"recommends"
                    | b"suggests" | b"supplements" | b"enhances" => list = Some(name),
                    b"entry" => {
                        let rel = entry(&e)?;
                        let target = match list.as_deref() {
                            Some(b"provides") => &mut p.provides,
                            Some(b"requires") => &mut p.requires,
                            Some(b"conflicts") => &mut p.conflicts,
                            Some(b"obsoletes") => &mut p.obsoletes,
                            Some(b"recommends") => &mut p.recommends,
                            Some(b"suggests") => &mut p.suggests,
                            Some(b"supplements") => &mut p.supplements,
                            Some(b"enhances") => &mut p.enhances,
                            _ => continue,
                        };
                        target.push(rel);
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let (Some(which), Some(p)) = (text_of.take(), &mut pkg) {
                    let text = t
                        .unescape()
                        .map_err(|e| Error::Xml(e.to_string()))?
                        .into_owned();
                    match which.as_slice() {
                        b"name" => p.name = text,
                        b"arch" => p.arch = text,
                        b"summary" => p.summary = text,
                        b"checksum" => p.checksum.value = text.trim().to_string(),
                        b"file" => p.files.push(text),
                        _ => {}
                    }
                }
            }
            Event::End(e) => {
                text_of = None;
                match e.local_name().as_ref() {
                    b"package" => {
                        if let Some(p) = pkg.take() {
                            if p.name.is_empty() || p.location.is_empty() {
                                return Err(Error::Xml(
                                    "a package without a name or a location".into(),
                                ));
                            }
                            count += 1;
                            each(p);
                        }
                    }
                    b"provides" | b"requires" | b"conflicts" | b"obsoletes" | b"recommends"
                    | b"suggests" | b"supplements" | b"enhances" => list = None,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(count)
}

/// Parses `filelists.xml`: package id (checksum) → every file of the package.
pub fn parse_filelists(input: impl BufRead) -> Result<HashMap<String, Vec<String>>, Error> {
    let mut r = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut out = HashMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    let mut in_file = false;
    loop {
        match r
            .read_event_into(&mut buf)
            .map_err(|e| Error::Xml(e.to_string()))?
        {
            Event::Start(e) => match e.local_name().as_ref() {
                b"package" => current = Some((attr(&e, "pkgid")?.unwrap_or_default(), Vec::new())),
                b"file" => in_file = true,
                _ => {}
            },
            Event::Text(t) if in_file => {
                if let Some((_, files)) = &mut current {
                    files.push(
                        t.unescape()
                            .map_err(|e| Error::Xml(e.to_string()))?
                            .into_owned(),
                    );
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"file" => in_file = false,
                b"package" => {
                    if let Some((id, files)) = current.take() {
                        out.insert(id, files);
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A primary document of `n` packages, each with a `<packager/>` (which also starts with
    /// `<package`) and a few dependencies.
    fn document(n: usize) -> String {
        let mut doc = String::from(
            "<?xml version=\"1.0\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" \
             xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"0\">\n",
        );
        for i in 0..n {
            doc += &format!(
                "<package type=\"rpm\"><name>p{i}</name><arch>noarch</arch>\
                 <version epoch=\"0\" ver=\"{i}\" rel=\"1\"/><packager/>\
                 <checksum type=\"sha256\" pkgid=\"YES\">{i:064x}</checksum>\
                 <location href=\"p{i}.rpm\"/><format><rpm:requires>\
                 <rpm:entry name=\"p{}\" flags=\"GE\" ver=\"1\"/><rpm:entry name=\"/bin/sh\" pre=\"1\"/>\
                 </rpm:requires><file>/usr/bin/p{i}</file></format></package>\n",
                i / 2
            );
        }
        doc + "</metadata>\n"
    }

    #[test]
    fn a_truncated_repomd_is_an_error() {
        let whole = "<?xml version=\"1.0\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\">\
                     <revision>1</revision><data type=\"primary\"><checksum type=\"sha256\">ab</checksum>\
                     <location href=\"repodata/p.xml.gz\"/></data>\
                     <data type=\"filelists\"><checksum type=\"sha256\">cd</checksum>\
                     <location href=\"repodata/f.xml.gz\"/></data></repomd>\n";
        let md = parse_repomd(whole.as_bytes()).unwrap();
        assert_eq!(md.data.len(), 2);
        // Cut anywhere before the closing tag (after the first record, inside the second, ...).
        for cut in [
            whole.find("<data type=\"filelists").unwrap(),
            whole.len() - 20,
            whole.len() - 11,
        ] {
            let e = parse_repomd(&whole.as_bytes()[..cut])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("truncated") || e.contains("repomd.xml:"),
                "cut at {cut}: {e}"
            );
        }
        assert!(parse_repomd(&b"<html><body>proxy error</body></html>"[..]).is_err());
    }

    #[test]
    fn parallel_parsing_gives_the_same_packages_in_order() {
        let doc = document(20_000);
        assert!(doc.len() > 4 << 20, "big enough to be split");
        let mut one = Vec::new();
        parse_primary(doc.as_bytes(), |p| one.push(p)).unwrap();
        for threads in [1, 2, 3, 7] {
            let many = parse_primary_parallel(doc.as_bytes(), threads).unwrap();
            assert_eq!(many.len(), 20_000);
            assert!(many == one, "{threads} threads");
        }
        // Malformed input is an error either way, not a panic.
        let broken = doc.replacen("</package>", "</pkg>", 7000);
        assert!(parse_primary_parallel(broken.as_bytes(), 3).is_err());
    }
}
