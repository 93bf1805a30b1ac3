//! An RPM's own digests (header SHA-256, payload digest) are checked when it is fetched: a
//! package whose bytes were altered after it was built is refused naming the package, exactly
//! when `rpmkeys -K --nosignature` refuses it.

use kiln_repo::local::verify_digests;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `digest-test-1.0-1.noarch.rpm` with one file, by rpmbuild.
fn build_rpm(dir: &Path) -> PathBuf {
    let top = dir.join("rpmbuild");
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    let spec = top.join("SPECS/t.spec");
    std::fs::write(
        &spec,
        "Name: digest-test\nVersion: 1.0\nRelease: 1\nSummary: kiln-digest-summary\nLicense: MIT\nBuildArch: noarch\n\
         %description\nt\n%install\nmkdir -p %{buildroot}/usr/share/t\n\
         head -c 20000 /dev/urandom > %{buildroot}/usr/share/t/data\n\
         %files\n/usr/share/t/data\n",
    )
    .unwrap();
    let o = Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .args(["--quiet", "-bb"])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    top.join("RPMS/noarch/digest-test-1.0-1.noarch.rpm")
}

fn rpmkeys_ok(p: &Path) -> bool {
    Command::new("rpmkeys")
        .args(["-K", "--nosignature"])
        .arg(p)
        .output()
        .unwrap()
        .status
        .success()
}

fn flipped(src: &Path, to: &Path, at: u64) {
    std::fs::copy(src, to).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(to).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x55], at).unwrap();
}

#[test]
fn altered_packages_are_refused_as_rpmkeys_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let good = build_rpm(dir.path());
    assert!(rpmkeys_ok(&good));
    verify_digests(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let len = bytes.len() as u64;
    // The summary sits in the main header's store (a marker no payload byte run repeats: the
    // payload is random data); the last byte is the payload's.
    let marker = b"kiln-digest-summary";
    let summary_at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the summary in the header") as u64;
    for (name, at, says) in [
        ("payload.rpm", len - 1, "payload digest"),
        ("payload-mid.rpm", len - 300, "payload digest"),
        ("header.rpm", summary_at, "header's SHA-256"),
    ] {
        let p = dir.path().join(name);
        flipped(&good, &p, at);
        assert!(!rpmkeys_ok(&p), "{name}: rpmkeys accepts it");
        let e = verify_digests(&p).unwrap_err().to_string();
        assert!(
            e.contains(says) && e.contains("package digest-test-1.0-1"),
            "{name}: {e}"
        );
    }
}

#[test]
fn fetching_an_altered_package_fails_naming_it_and_keeps_nothing() {
    use kiln_repo::fetch::{Download, Fetcher};
    use kiln_repo::Checksum;
    let dir = tempfile::tempdir().unwrap();
    let good = build_rpm(dir.path());
    let bad = dir.path().join("digest-test-1.0-1.noarch.rpm");
    flipped(&good, &bad, std::fs::metadata(&good).unwrap().len() - 1);
    // The repository's checksum is of the altered file: only the package's own digest can tell.
    let sum = |p: &Path| Checksum {
        kind: "sha256".into(),
        value: Checksum::compute("sha256", std::fs::File::open(p).unwrap()).unwrap(),
    };
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let item = |from: &Path| Download {
        url: format!("file://{}", from.display()),
        dest: out.join("digest-test-1.0-1.noarch.rpm"),
        checksum: sum(from),
        size: 0,
    };
    let fetcher = Fetcher::new(std::time::Duration::from_secs(5), 1, Default::default());
    let failures = fetcher.fetch_all(&[item(&bad)], 1, &|_, _| {});
    assert_eq!(failures.len(), 1);
    let e = failures[0].1.to_string();
    assert!(
        e.contains("package digest-test-1.0-1") && e.contains("payload digest"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "nothing kept");
    assert!(fetcher.fetch_all(&[item(&good)], 1, &|_, _| {}).is_empty());
}

#[test]
fn part_files_of_killed_fetches_are_removed_live_ones_kept() {
    use kiln_repo::fetch::{create_part, remove_stale_parts};
    let dir = tempfile::tempdir().unwrap();
    // A killed run's part file: nobody holds its lock.
    let stale = dir.path().join("a.rpm.kiln-part-4242");
    std::fs::write(&stale, b"half a package").unwrap();
    let stale_copy = dir.path().join(".b.rpm.kiln-part");
    std::fs::write(&stale_copy, b"half").unwrap();
    // A live transfer's, locked while its file is open.
    let live = dir.path().join("c.rpm.kiln-part-1");
    let held = create_part(&live).unwrap();
    let other = dir.path().join("d.rpm");
    std::fs::write(&other, b"a package").unwrap();
    let mut removed = remove_stale_parts(dir.path()).unwrap();
    removed.sort();
    assert_eq!(removed, [stale_copy.clone(), stale.clone()]);
    assert!(live.exists() && other.exists());
    drop(held);
    // Another test's fork (rpmbuild, rpmkeys) may hold a copy of the descriptor, and so the
    // lock, until that child execs: the sweep is tried again for a little while.
    let mut swept = Vec::new();
    for _ in 0..100 {
        swept = remove_stale_parts(dir.path()).unwrap();
        if !swept.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(swept, [live]);
}
