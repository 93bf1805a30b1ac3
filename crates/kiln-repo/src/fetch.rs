//! Downloads over `http(s)://` and `file://`: retried with exponential back-off on server errors,
//! timeouts and dropped connections (a host name that does not resolve or a refused connection
//! is not retried: it is the network or the URL, and retrying only makes the user wait); verified against the expected checksum before the file gets
//! its final name, so a killed or failed run never leaves a corrupt file behind.

use crate::Checksum;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a download failed, after retries.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The host name does not resolve or the connection is refused.
    #[error("{url}: {status} {reason} (not retried: the server says the request itself is wrong)")]
    Client {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("{reason} (not retried)")]
    Unreachable {
        url: String,
        /// What failed, naming the URL.
        reason: String,
    },
    #[error("{url}: gave up after {attempts} attempts; last error: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("unsupported URL {0} (http, https and file are)")]
    Scheme(String),
    #[error("{url}: {source}")]
    Package {
        url: String,
        source: Box<crate::Error>,
    },
}

/// Creates (truncating) the part file `path` and holds an exclusive lock on it for as long as
/// the returned file is open, so that [`remove_stale_parts`] can tell a live transfer from one
/// whose process died.
pub fn create_part(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    loop {
        let f = File::create(path)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // A sweeper may have removed the file between its creation and the lock: start over.
        match std::fs::metadata(path) {
            Ok(m) if m.ino() == f.metadata()?.ino() => return Ok(f),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Removes the part files (`*.kiln-part*`) in `dir` that no live process holds locked: what a
/// killed fetch left behind. Returns what was removed.
pub fn remove_stale_parts(dir: &Path) -> io::Result<Vec<PathBuf>> {
    use std::os::unix::io::AsRawFd;
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if !entry.file_name().to_string_lossy().contains(".kiln-part")
            || !entry.file_type()?.is_file()
        {
            continue;
        }
        let Ok(f) = File::open(&path) else { continue };
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            std::fs::remove_file(&path)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Retry policy and HTTP client.
#[derive(Debug, Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
    /// Attempts per file (the first included).
    pub attempts: u32,
    /// Delay before the first retry; doubled each time.
    pub backoff: Duration,
}

impl Default for Fetcher {
    fn default() -> Fetcher {
        Fetcher::new(Duration::from_secs(30), 6, Duration::from_millis(500))
    }
}

/// What one attempt ended with.
enum Attempt {
    Done,
    /// Worth another try (5xx, timeout, dropped connection, bad checksum).
    Retry(String),
    Fatal(FetchError),
}

impl FetchError {
    /// Whether the server could not be reached at all (no network, a wrong host name, nothing
    /// listening), as opposed to a server that answered badly.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, FetchError::Unreachable { .. })
    }
}

impl Fetcher {
    pub fn new(timeout: Duration, attempts: u32, backoff: Duration) -> Fetcher {
        Fetcher {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(timeout)
                .timeout_read(timeout)
                .build(),
            attempts: attempts.max(1),
            backoff,
        }
    }

    /// Reads a small file (metadata) fully into memory, with retries; at most `limit` bytes.
    pub fn get(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.retrying(url, || {
            let mut out = Vec::new();
            match self.attempt(url, &mut out, limit) {
                Attempt::Done => Ok(out),
                failed => Err(failed),
            }
        })
    }

    /// Runs `once` up to `attempts` times, the delay doubling between tries: `Ok` ends it,
    /// `Err(Retry)` tries again, `Err(Fatal)` gives up at once.
    fn retrying<T>(
        &self,
        url: &str,
        mut once: impl FnMut() -> Result<T, Attempt>,
    ) -> Result<T, FetchError> {
        let mut last = String::new();
        let mut delay = self.backoff;
        for attempt in 1..=self.attempts {
            if attempt > 1 {
                std::thread::sleep(delay);
                delay *= 2;
            }
            match once() {
                Ok(v) => return Ok(v),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(why)) => last = why,
                Err(Attempt::Done) => unreachable!("Done is not a failure"),
            }
        }
        Err(FetchError::Exhausted {
            url: url.into(),
            attempts: self.attempts,
            last,
        })
    }

    /// Downloads `url` to `dest`: written as `dest.kiln-part-<pid>`, checked against `expect`,
    /// then renamed. A file that does not verify is never left under `dest`.
    pub fn fetch_to(
        &self,
        url: &str,
        dest: &Path,
        expect: Option<&Checksum>,
    ) -> Result<(), FetchError> {
        let part = dest.with_file_name(format!(
            "{}.kiln-part-{}",
            dest.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let io_err = |source| FetchError::Io {
            path: dest.to_path_buf(),
            source,
        };
        // The part file stays open (locked) until it is renamed or removed.
        let mut held: Option<File> = None;
        let fetched = self.retrying(url, || {
            held = None;
            let mut f = create_part(&part).map_err(|e| Attempt::Fatal(io_err(e)))?;
            let outcome = self.attempt(url, &mut f, u64::MAX);
            held = Some(f);
            match outcome {
                Attempt::Done => match expect.map(|sum| sum.verify_file(&part)) {
                    // A corrupt transfer is worth another try.
                    Some(Err(e)) => Err(Attempt::Retry(e.to_string())),
                    _ => Ok(()),
                },
                failed => Err(failed),
            }
        });
        let done = fetched.and_then(|()| {
            File::open(&part)
                .and_then(|f| f.sync_all())
                .and_then(|()| std::fs::rename(&part, dest))
                .map_err(io_err)
        });
        if done.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        drop(held);
        done
    }

    fn attempt(&self, url: &str, out: &mut dyn Write, limit: u64) -> Attempt {
        if let Some(path) = url.strip_prefix("file://") {
            return match File::open(path).and_then(|f| copy_limited(f, out, limit)) {
                Ok(()) => Attempt::Done,
                Err(e) => Attempt::Fatal(FetchError::Io {
                    path: path.into(),
                    source: e,
                }),
            };
        }
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Attempt::Fatal(FetchError::Scheme(url.into()));
        }
        let resp = match self.agent.get(url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) if code >= 500 || code == 429 => {
                return Attempt::Retry(format!("HTTP {code} {}", r.status_text()))
            }
            Err(ureq::Error::Status(code, r)) => {
                return Attempt::Fatal(FetchError::Client {
                    url: url.into(),
                    status: code,
                    reason: r.status_text().to_string(),
                })
            }
            Err(ureq::Error::Transport(t))
                if matches!(
                    t.kind(),
                    ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed
                ) =>
            {
                let reason = t.to_string();
                return Attempt::Fatal(FetchError::Unreachable {
                    reason: if reason.contains(url) {
                        reason
                    } else {
                        format!("{url}: {reason}")
                    },
                    url: url.into(),
                });
            }
            Err(e) => return Attempt::Retry(e.to_string()),
        };
        let expected_len: Option<u64> = resp.header("Content-Length").and_then(|v| v.parse().ok());
        let mut counting = Counting { inner: out, n: 0 };
        match copy_limited(resp.into_reader(), &mut counting, limit) {
            Ok(()) => {}
            Err(e) => return Attempt::Retry(format!("the transfer broke off: {e}")),
        }
        match expected_len {
            Some(n) if n != counting.n => Attempt::Retry(format!(
                "the transfer broke off after {} of {n} bytes",
                counting.n
            )),
            _ => Attempt::Done,
        }
    }
}

struct Counting<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn copy_limited(input: impl Read, out: &mut dyn Write, limit: u64) -> io::Result<()> {
    let mut limited = input.take(limit.saturating_add(1));
    let n = io::copy(&mut limited, out)?;
    if n > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than the {limit} bytes allowed"),
        ));
    }
    Ok(())
}

/// Checks a fetched RPM's own digests (see [`crate::local::verify_digests`]); a package that
/// fails is removed.
pub fn check_package(url: &str, dest: &Path) -> Result<(), FetchError> {
    if dest.extension().is_none_or(|e| e != "rpm") {
        return Ok(());
    }
    crate::local::verify_digests(dest).map_err(|e| {
        let _ = std::fs::remove_file(dest);
        FetchError::Package {
            url: url.to_string(),
            source: Box::new(e),
        }
    })
}

/// One file to download: from `url` to `dest`, verified against `checksum`.
#[derive(Debug, Clone)]
pub struct Download {
    pub url: String,
    pub dest: PathBuf,
    pub checksum: Checksum,
    /// Expected size, for progress (0 when unknown).
    pub size: u64,
}

impl Fetcher {
    /// Downloads every item on at most `parallel` threads. Items whose destination already
    /// holds a file that verifies are skipped. `progress` is told (bytes done, bytes in all) as
    /// items finish. Returns every failure (the others still complete).
    pub fn fetch_all(
        &self,
        items: &[Download],
        parallel: usize,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Vec<(Download, FetchError)> {
        let total: u64 = items.iter().map(|d| d.size).sum();
        // What killed runs left in the destination directories.
        let mut dirs: Vec<&Path> = items.iter().filter_map(|d| d.dest.parent()).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            let _ = remove_stale_parts(dir);
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let done = std::sync::atomic::AtomicU64::new(0);
        let failures = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..parallel.clamp(1, 16).min(items.len().max(1)) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(d) = items.get(i) else { break };
                    if d.checksum.verify_file(&d.dest).is_err() {
                        let fetched = self
                            .fetch_to(&d.url, &d.dest, Some(&d.checksum))
                            .and_then(|()| check_package(&d.url, &d.dest));
                        if let Err(e) = fetched {
                            failures
                                .lock()
                                .expect("no panic while held")
                                .push((d.clone(), e));
                        }
                    }
                    let now = done.fetch_add(d.size, std::sync::atomic::Ordering::Relaxed) + d.size;
                    progress(now, total);
                });
            }
        });
        failures.into_inner().expect("threads joined")
    }
}
