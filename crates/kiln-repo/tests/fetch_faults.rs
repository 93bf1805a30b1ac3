//! Fetching the sample repository from a local HTTP server that misbehaves: kiln retries what is
//! worth retrying, fails with a clear message otherwise, and the cache never holds a file that
//! does not verify.

use kiln_repo::fetch::{FetchError, Fetcher};
use kiln_repo::{load_dir, load_url, Error};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/sample-repo");
    assert!(
        p.join("repodata/repomd.xml").exists(),
        "run `make sample-repo` first"
    );
    p
}

fn server() -> Server {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fault_server.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(repo())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    Server {
        port: line.trim().parse().unwrap(),
        child,
    }
}

fn fetcher() -> Fetcher {
    Fetcher::new(Duration::from_secs(5), 4, Duration::from_millis(10))
}

/// Files in `dir` (recursively) that are not complete, verified metadata or packages.
fn leftovers(dir: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(dir)
        .args(["-name", "*kiln-part*"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn flaky_and_dropped_transfers_are_retried() {
    let s = server();
    let want: Vec<String> = load_dir(&repo(), false)
        .unwrap()
        .packages
        .iter()
        .map(|p| p.nevra())
        .collect();
    for mode in ["ok", "flaky", "drop"] {
        let cache = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{}/{mode}", s.port);
        let r = load_url(&url, cache.path(), &fetcher(), true)
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let got: Vec<String> = r.packages.iter().map(|p| p.nevra()).collect();
        assert_eq!(got, want, "{mode}");
        assert_eq!(r.base, url);
        // A package, through the same faults.
        let p = &r.packages[0];
        let dest = cache.path().join(p.location.clone());
        fetcher()
            .fetch_to(&format!("{url}/{}", p.location), &dest, Some(&p.checksum))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        p.checksum.verify_file(&dest).unwrap();
        assert!(
            leftovers(cache.path()).is_empty(),
            "{mode}: {:?}",
            leftovers(cache.path())
        );
    }
}

#[test]
fn corrupt_packages_never_enter_the_cache() {
    let s = server();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/badsum", s.port);
    let r = load_url(&url, cache.path(), &fetcher(), false).unwrap();
    let p = &r.packages[0];
    let dest = cache.path().join(&p.location);
    let e = fetcher()
        .fetch_to(&format!("{url}/{}", p.location), &dest, Some(&p.checksum))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("gave up after 4 attempts") && msg.contains("checksum is"),
        "{msg}"
    );
    assert!(!dest.exists());
    assert!(leftovers(cache.path()).is_empty());
}

#[test]
fn hopeless_servers_and_bad_metadata_fail_clearly() {
    let s = server();
    let cache = tempfile::tempdir().unwrap();
    let e = load_url(
        &format!("http://127.0.0.1:{}/always500", s.port),
        cache.path(),
        &fetcher(),
        false,
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Fetch(FetchError::Exhausted { attempts: 4, .. })),
        "{e}"
    );
    assert!(e.to_string().contains("HTTP 500"), "{e}");
    let e = load_url(
        &format!("http://127.0.0.1:{}/ok/nowhere", s.port),
        cache.path(),
        &fetcher(),
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    let e = load_url(
        &format!("http://127.0.0.1:{}/truncrepomd", s.port),
        cache.path(),
        &fetcher(),
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("repomd.xml"), "{e}");
    // Nothing was cached under a final name from the truncated repomd.
    assert!(leftovers(cache.path()).is_empty());
    let e = load_url(
        "ftp://example.invalid/repo",
        cache.path(),
        &fetcher(),
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("unsupported URL"), "{e}");
}

#[test]
fn whole_repositories_download_in_parallel_and_resume() {
    use kiln_repo::fetch::Download;
    let s = server();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/flaky", s.port);
    let r = load_url(&url, cache.path(), &fetcher(), false).unwrap();
    let out = tempfile::tempdir().unwrap();
    let items: Vec<Download> = r
        .packages
        .iter()
        .map(|p| Download {
            url: format!("{url}/{}", p.location),
            dest: out.path().join(&p.location),
            checksum: p.checksum.clone(),
            size: p.size,
        })
        .collect();
    let seen = std::sync::Mutex::new(Vec::new());
    let failures = fetcher().fetch_all(&items, 4, &|done, total| {
        seen.lock().unwrap().push((done, total))
    });
    assert!(failures.is_empty(), "{failures:?}");
    for d in &items {
        d.checksum.verify_file(&d.dest).unwrap();
    }
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), items.len());
    let total: u64 = items.iter().map(|d| d.size).sum();
    assert!(seen.iter().any(|&(d, t)| d == total && t == total));
    // A second run finds everything in place: pointed at a server that only fails, it succeeds
    // because it fetches nothing.
    let bad = format!("http://127.0.0.1:{}/always500", s.port);
    let again: Vec<Download> = items
        .iter()
        .map(|d| Download {
            url: format!("{bad}/x"),
            ..d.clone()
        })
        .collect();
    assert!(fetcher().fetch_all(&again, 4, &|_, _| {}).is_empty());
    assert!(leftovers(out.path()).is_empty());
}

#[test]
fn a_killed_runs_part_files_are_removed_by_the_next_run() {
    let s = server();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/ok", s.port);
    load_url(&url, cache.path(), &fetcher(), false).unwrap();
    // What a run killed mid-transfer leaves: part files nobody holds, in the metadata cache.
    let repodata = std::fs::read_dir(cache.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("repodata");
    for name in [
        "repomd.xml.kiln-part-999999",
        "x-primary.xml.gz.kiln-part-999998",
    ] {
        std::fs::write(repodata.join(name), b"half").unwrap();
    }
    assert_eq!(leftovers(cache.path()).len(), 2);
    load_url(&url, cache.path(), &fetcher(), false).unwrap();
    assert!(
        leftovers(cache.path()).is_empty(),
        "{:?}",
        leftovers(cache.path())
    );
}

#[test]
fn unresolvable_hosts_and_refused_connections_are_not_retried() {
    let cache = tempfile::tempdir().unwrap();
    // Many attempts with a long back-off: were these retried, the test would take minutes.
    let patient = Fetcher::new(Duration::from_secs(5), 6, Duration::from_secs(20));
    // Port 9 (discard) on the loopback: nothing listens there.
    for url in ["http://kiln-test.invalid/repo", "http://127.0.0.1:9/repo"] {
        let e = load_url(url, cache.path(), &patient, false).unwrap_err();
        assert!(
            matches!(&e, Error::Fetch(f) if f.is_unreachable()),
            "{url}: {e}"
        );
        assert!(e.to_string().contains("(not retried)"), "{e}");
    }
}
