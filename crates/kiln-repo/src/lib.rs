//! # kiln-repo
//!
//! RPM repositories as rpm-md metadata describes them: `repodata/repomd.xml`, then `primary`
//! (and, when file dependencies need it, `filelists`), compressed with gzip, xz or zstd. Every
//! metadata file is checked against the checksum `repomd.xml` gives before it is parsed.
//!
//! ```no_run
//! let repo = kiln_repo::load_dir("out/sample-repo".as_ref(), false).unwrap();
//! for p in &repo.packages {
//!     println!("{}", p.nevra());
//! }
//! ```

pub mod fetch;
pub mod local;
pub mod metadata;
pub mod repofile;
pub mod summary;
pub mod write;

pub use metadata::{DataRecord, Package, Relation, RepoMd};

use sha2::Digest;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Why repository metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: its {kind} checksum is {actual}, but repomd.xml says {expected}: the repository is corrupt, or changed while it was read", path.display())]
    Checksum {
        path: PathBuf,
        kind: String,
        expected: String,
        actual: String,
    },
    #[error("unsupported checksum type {0:?} (sha1, sha224, sha256, sha384 and sha512 are)")]
    ChecksumType(String),
    #[error("malformed metadata: {0}")]
    Xml(String),
    #[error("{}: {what}", path.display())]
    Metadata { path: PathBuf, what: String },
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
}

/// A checksum as repodata writes it: the algorithm and the lowercase hex digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Checksum {
    pub kind: String,
    pub value: String,
}

impl Checksum {
    /// The digest of everything `input` yields, with this checksum's algorithm.
    pub fn compute(kind: &str, mut input: impl Read) -> Result<String, Error> {
        fn run<D: Digest>(mut d: D, input: &mut dyn Read) -> io::Result<String> {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                d.update(&buf[..n]);
            }
            Ok(d.finalize().iter().map(|b| format!("{b:02x}")).collect())
        }
        let r = match kind {
            "sha256" => run(sha2::Sha256::new(), &mut input),
            "sha512" => run(sha2::Sha512::new(), &mut input),
            "sha384" => run(sha2::Sha384::new(), &mut input),
            "sha224" => run(sha2::Sha224::new(), &mut input),
            "sha1" | "sha" => run(sha1::Sha1::new(), &mut input),
            other => return Err(Error::ChecksumType(other.to_string())),
        };
        r.map_err(|source| Error::Io {
            path: PathBuf::from("<stream>"),
            source,
        })
    }

    /// Checks the file at `path` against this checksum.
    pub fn verify_file(&self, path: &Path) -> Result<(), Error> {
        let actual = Checksum::of_file(&self.kind, path)?;
        if !actual.eq_ignore_ascii_case(&self.value) {
            return Err(Error::Checksum {
                path: path.to_path_buf(),
                kind: self.kind.clone(),
                expected: self.value.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// What identifies a file's content without reading it, while this process runs: the kernel
/// changes the change time (which no program can set) on every write.
#[derive(PartialEq, Eq, Hash)]
struct FileVersion {
    kind: String,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileVersion {
    fn of(kind: &str, meta: &std::fs::Metadata) -> FileVersion {
        use std::os::unix::fs::MetadataExt;
        FileVersion {
            kind: kind.to_string(),
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Digests computed by this process ([`Checksum::of_file`]).
static DIGESTS: std::sync::Mutex<Option<std::collections::HashMap<FileVersion, String>>> =
    std::sync::Mutex::new(None);

impl Checksum {
    /// The `kind` digest of the file at `path`, in hex. A build reads each package more than
    /// once (fetch verifies it, the package-root cache keys by it): a file digested before in
    /// this process and unchanged since (same inode, size, modification and change times) is
    /// not read again.
    pub fn of_file(kind: &str, path: &Path) -> Result<String, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let f = File::open(path).map_err(io)?;
        let before = FileVersion::of(kind, &f.metadata().map_err(io)?);
        let known = DIGESTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|m| m.get(&before).cloned());
        if let Some(known) = known {
            return Ok(known);
        }
        let digest = Checksum::compute(kind, BufReader::new(&f)).map_err(|e| match e {
            Error::Io { source, .. } => io(source),
            e => e,
        })?;
        // Kept only when the file did not change while it was read.
        if FileVersion::of(kind, &f.metadata().map_err(io)?) == before {
            DIGESTS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(Default::default)
                .insert(before, digest.clone());
        }
        Ok(digest)
    }
}

/// Opens a metadata file, decompressing gzip, xz or zstd (told apart by their magic bytes).
pub fn open_decompressed(path: &Path) -> Result<Box<dyn BufRead>, Error> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = BufReader::new(File::open(path).map_err(io_err)?);
    let magic = f.fill_buf().map_err(io_err)?.to_vec();
    let reader: Box<dyn BufRead> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(f)))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(BufReader::new(liblzma::bufread::XzDecoder::new(f)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(BufReader::new(
            zstd::stream::read::Decoder::with_buffer(f).map_err(io_err)?,
        ))
    } else if magic.starts_with(b"BZh") {
        return Err(Error::Metadata {
            path: path.to_path_buf(),
            what: "bzip2-compressed metadata is not supported (gzip, xz and zstd are)".into(),
        });
    } else {
        Box::new(f)
    };
    Ok(reader)
}

/// A repository's packages, read from its metadata.
#[derive(Debug, Clone)]
pub struct Repository {
    /// Where the metadata was read (the repository itself, or its cache).
    pub root: PathBuf,
    /// Where package locations are relative to: a directory or a URL.
    pub base: String,
    pub revision: String,
    pub packages: Vec<Package>,
    /// Whether `files` lists every file (filelists loaded) or primary's subset.
    pub full_filelists: bool,
}

/// A reader that ends early (with an error) once `stop` is set.
struct Stoppable<'a, R> {
    inner: R,
    stop: &'a std::sync::atomic::AtomicBool,
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(io::Error::other("no longer needed"));
        }
        self.inner.read(buf)
    }
}

/// Which file lists to read besides primary's subset (`/etc/*`, `*bin/*`, /usr/lib/sendmail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filelists {
    /// Primary's subset only.
    Skip,
    /// Every file of every package.
    Load,
    /// Every file, but only when a file dependency of some package (or one of these paths,
    /// e.g. requested ones) is not answered by primary's subset. filelists are often larger
    /// than primary and are rarely needed.
    WhenNeeded(Vec<String>),
}

impl From<bool> for Filelists {
    fn from(all: bool) -> Filelists {
        if all {
            Filelists::Load
        } else {
            Filelists::Skip
        }
    }
}

/// Whether some file dependency of `packages` (or one of `paths`) names a file that no
/// package's listed files or provides answer.
pub fn needs_filelists(packages: &[Package], paths: &[String]) -> bool {
    let mut known: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for p in packages {
        known.extend(p.files.iter().map(String::as_str));
        for r in &p.provides {
            known.extend(r.dep.names().into_iter().filter(|n| n.starts_with('/')));
        }
    }
    let mut wanted: Vec<&str> = paths.iter().map(String::as_str).collect();
    for p in packages {
        for list in [
            &p.requires,
            &p.recommends,
            &p.suggests,
            &p.supplements,
            &p.enhances,
            &p.conflicts,
            &p.obsoletes,
        ] {
            for r in list {
                wanted.extend(r.dep.names().into_iter().filter(|n| n.starts_with('/')));
            }
        }
    }
    wanted.iter().any(|w| !known.contains(w))
}

/// Reads the repository at `root` (a directory with `repodata/`), with the file lists
/// `filelists` asks for.
pub fn load_dir(root: &Path, filelists: impl Into<Filelists>) -> Result<Repository, Error> {
    let mode = filelists.into();
    let repomd_path = root.join("repodata/repomd.xml");
    let f = File::open(&repomd_path).map_err(|source| Error::Io {
        path: repomd_path.clone(),
        source,
    })?;
    let md = metadata::parse_repomd(BufReader::new(f.take(16 << 20))).map_err(|e| match e {
        Error::Xml(what) => Error::Metadata {
            path: repomd_path.clone(),
            what,
        },
        e => e,
    })?;
    let file = |kind: &str| -> Result<PathBuf, Error> {
        let rec = md.record(kind).ok_or_else(|| Error::Metadata {
            path: repomd_path.clone(),
            what: format!("no {kind} metadata is listed"),
        })?;
        let path = root.join(&rec.location);
        rec.checksum.verify_file(&path)?;
        Ok(path)
    };
    let primary = file("primary")?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let in_file = |path: &Path| {
        let path = path.to_path_buf();
        move |e| match e {
            Error::Xml(what) => Error::Metadata { path, what },
            e => e,
        }
    };
    // filelists are read on their own thread while primary is parsed: always with `Load`,
    // and speculatively with `WhenNeeded` (stopped as soon as primary shows they are not
    // needed), so that reading them costs no extra time on a machine with a spare core.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (packages, lists) = std::thread::scope(|s| {
        let lists = (mode != Filelists::Skip).then(|| {
            s.spawn(|| -> Result<_, Error> {
                let path = file("filelists")?;
                let input = BufReader::new(Stoppable {
                    inner: open_decompressed(&path)?,
                    stop: &stop,
                });
                metadata::parse_filelists(input).map_err(in_file(&path))
            })
        });
        let packages = (|| -> Result<Vec<Package>, Error> {
            let mut data = Vec::new();
            open_decompressed(&primary)?
                .read_to_end(&mut data)
                .map_err(|source| Error::Io {
                    path: primary.clone(),
                    source,
                })?;
            metadata::parse_primary_parallel(&data, threads).map_err(in_file(&primary))
        })();
        let wanted = match (&mode, &packages) {
            (Filelists::Load, _) => true,
            (Filelists::WhenNeeded(paths), Ok(p)) => needs_filelists(p, paths),
            _ => false,
        };
        if !wanted {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let lists = lists.map(|h| h.join().expect("the filelists thread does not panic"));
        (packages, lists.filter(|_| wanted))
    });
    let mut packages = packages?;
    let lists = lists.transpose()?;
    let full_filelists = lists.is_some();
    if let Some(mut lists) = lists {
        for p in &mut packages {
            if let Some(files) = lists.remove(&p.checksum.value) {
                p.files = files;
            }
        }
    }
    Ok(Repository {
        root: root.to_path_buf(),
        base: root.display().to_string(),
        revision: md.revision,
        packages,
        full_filelists,
    })
}

/// Reads the repository at `url` (`file://`, `http://`, `https://`). Remote metadata is
/// downloaded into `cache` (one directory per repository URL), verified, and reused while its
/// checksum still matches what the current `repomd.xml` says.
pub fn load_url(
    url: &str,
    cache: &Path,
    fetcher: &fetch::Fetcher,
    filelists: impl Into<Filelists>,
) -> Result<Repository, Error> {
    let mode = filelists.into();
    let base = url.trim_end_matches('/');
    if let Some(path) = base.strip_prefix("file://") {
        return load_dir(Path::new(path), mode);
    }
    let key = Checksum::compute("sha256", base.as_bytes())?;
    let dir = cache.join(&key[..16]);
    let repodata = dir.join("repodata");
    std::fs::create_dir_all(&repodata).map_err(|source| Error::Io {
        path: repodata.clone(),
        source,
    })?;
    // Part files a killed run left in the cache (nobody holds their lock).
    let _ = fetch::remove_stale_parts(&repodata);
    let repomd = fetcher.get(&format!("{base}/repodata/repomd.xml"), 16 << 20)?;
    let md = metadata::parse_repomd(&repomd[..]).map_err(|e| match e {
        Error::Xml(what) => Error::Metadata {
            path: PathBuf::from(format!("{base}/repodata/repomd.xml")),
            what,
        },
        e => e,
    })?;
    let fetch_kind = |kind: &str| -> Result<(), Error> {
        let rec = md.record(kind).ok_or_else(|| Error::Metadata {
            path: PathBuf::from(format!("{base}/repodata/repomd.xml")),
            what: format!("no {kind} metadata is listed"),
        })?;
        let dest = dir.join(&rec.location);
        if rec.checksum.verify_file(&dest).is_ok() {
            return Ok(()); // cached and current
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        fetcher
            .fetch_to(
                &format!("{base}/{}", rec.location),
                &dest,
                Some(&rec.checksum),
            )
            .map_err(Error::from)
    };
    fetch_kind("primary")?;
    if mode == Filelists::Load {
        fetch_kind("filelists")?;
    }
    // repomd.xml last, under a temporary name first: the cache always holds a complete set.
    let tmp = repodata.join(format!("repomd.xml.kiln-part-{}", std::process::id()));
    fetch::create_part(&tmp)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, &repomd)?;
            // Renamed while still locked: a sweeper never takes it for a dead run's.
            std::fs::rename(&tmp, repodata.join("repomd.xml"))
        })
        .map_err(|source| Error::Io {
            path: repodata.join("repomd.xml"),
            source,
        })?;
    let mut repo = match &mode {
        Filelists::WhenNeeded(paths) => {
            let primary_only = load_dir(&dir, Filelists::Skip)?;
            if needs_filelists(&primary_only.packages, paths) {
                fetch_kind("filelists")?;
                load_dir(&dir, Filelists::Load)?
            } else {
                primary_only
            }
        }
        _ => load_dir(&dir, mode.clone())?,
    };
    repo.base = base.to_string();
    Ok(repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file read again after a change is digested anew, even at the same path and size.
    #[test]
    fn a_changed_file_is_digested_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.rpm");
        std::fs::write(&path, "one").unwrap();
        let first = Checksum::of_file("sha256", &path).unwrap();
        assert_eq!(first, Checksum::compute("sha256", &b"one"[..]).unwrap());
        assert_eq!(Checksum::of_file("sha256", &path).unwrap(), first);
        std::fs::write(&path, "two").unwrap();
        let second = Checksum::of_file("sha256", &path).unwrap();
        assert_eq!(second, Checksum::compute("sha256", &b"two"[..]).unwrap());
        let sum = Checksum {
            kind: "sha256".into(),
            value: first,
        };
        assert!(
            sum.verify_file(&path).is_err(),
            "the old digest no longer verifies"
        );
    }
}
