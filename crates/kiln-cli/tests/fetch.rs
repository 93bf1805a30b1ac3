//! `kiln fetch` and the `imagepkgfetcher` personality: the packages a config needs, resolved
//! and copied or downloaded into a repository dnf can read; the summary round trip; the cache;
//! signature checks; bad sources.

mod common;

use common::{demo_config, kiln, sample_repo, stderr};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::rpms;

fn fetch(out: &Path, extra: &[&str]) -> Output {
    kiln()
        .arg("fetch")
        .arg("--config")
        .arg(demo_config("demo-efi.json"))
        .arg("--output-dir")
        .arg(out)
        .args(["--disable-upstream-repos"])
        .args(extra)
        .output()
        .unwrap()
}

/// The NEVRAs dnf sees in the repository at `dir` (Debian's dnf through its Python API).
fn dnf_list(dir: &Path) -> BTreeSet<String> {
    let cache = tempfile::tempdir().unwrap();
    let script = r#"
import sys, dnf
b = dnf.Base()
b.conf.cachedir = sys.argv[2]
b.conf.reposdir = []
b.conf.substitutions["releasever"] = "3.0"
b.conf.substitutions["basearch"] = "x86_64"
b.repos.add_new_repo("fetched", b.conf, baseurl=["file://" + sys.argv[1]])
b.fill_sack(load_system_repo=False)
for p in b.sack.query().available():
    print(f"{p.name}-{p.version}-{p.release}.{p.arch}.rpm")
"#;
    let o = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(dir)
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "dnf: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn fetch_makes_a_repository_dnf_reads_and_a_summary_that_reproduces_it() {
    let repo = sample_repo();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("repo");
    let summary = work.path().join("image_deps.json");
    let o = fetch(
        &out,
        &[
            "--repo",
            repo.to_str().unwrap(),
            "--output-summary-file",
            summary.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("9 copied"), "{}", stderr(&o));
    let files = rpms(&out);
    // The demo's packages, their dependencies, and grub2-pc as build tooling (as upstream).
    for name in [
        "kernel-",
        "busybox-",
        "shim-",
        "grub2-pc-",
        "azurelinux-release-",
    ] {
        assert!(
            files.iter().any(|f| f.starts_with(name)),
            "{name} in {files:?}"
        );
    }
    assert_eq!(dnf_list(&out), files, "dnf reads the written repodata");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(doc["Repo"].as_array().unwrap().len(), files.len());
    assert!(doc["Repo"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["Name"] == "kernel" && e["Distribution"] == "azl3"));

    // Again: everything is already there and verifies.
    let o = fetch(&out, &["--repo", repo.to_str().unwrap()]);
    assert!(stderr(&o).contains("9 already there"), "{}", stderr(&o));

    // A damaged file is noticed and replaced.
    let kernel = out.join(files.iter().find(|f| f.starts_with("kernel-")).unwrap());
    std::fs::write(&kernel, b"not an rpm").unwrap();
    let o = fetch(&out, &["--repo", repo.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 copied"), "{}", stderr(&o));

    // The summary reproduces exactly that set elsewhere.
    let again = work.path().join("again");
    let o = fetch(
        &again,
        &[
            "--repo",
            repo.to_str().unwrap(),
            "--input-summary-file",
            summary.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(rpms(&again), files);

    // A summary naming a package no source has fails and says which.
    let text = std::fs::read_to_string(&summary)
        .unwrap()
        .replace("\"kernel\"", "\"kernel-nowhere\"");
    std::fs::write(&summary, text).unwrap();
    let o = fetch(
        &work.path().join("third"),
        &[
            "--repo",
            repo.to_str().unwrap(),
            "--input-summary-file",
            summary.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("kernel-nowhere-"), "{}", stderr(&o));
}

#[test]
fn fetch_downloads_over_http_and_explains_missing_sources() {
    let repo = sample_repo();
    let port = 18000 + std::process::id() % 1000;
    let mut server = Command::new("/usr/bin/python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(&repo)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let work = tempfile::tempdir().unwrap();
    let mut o = None;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let r = fetch(
            &work.path().join("repo"),
            &[
                "--repo",
                &url,
                "--cache-dir",
                work.path().join("cache").to_str().unwrap(),
            ],
        );
        if r.status.success() {
            o = Some(r);
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let o = o.expect("the fetch over HTTP succeeds once the server is up");
    assert!(stderr(&o).contains("9 downloaded"), "{}", stderr(&o));
    assert_eq!(dnf_list(&work.path().join("repo")).len(), 9);

    // No source at all.
    let o = fetch(&work.path().join("none"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no package source"), "{}", stderr(&o));
    // A source with some of the packages: what is missing, and what asked for it.
    let some = work.path().join("some");
    std::fs::create_dir(&some).unwrap();
    let busybox = common::rpms_named(&repo, "busybox-");
    std::fs::copy(repo.join(&busybox), some.join(&busybox)).unwrap();
    let o = fetch(
        &work.path().join("x"),
        &["--rpm-dir", some.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nothing provides kernel, required by \"kernel\""),
        "{}",
        stderr(&o)
    );
}

/// A GnuPG home with a fresh signing key; returns its armored public key file.
fn signing_key(home: &Path, email: &str) -> PathBuf {
    let gpg = |args: &[&str]| {
        let o = Command::new("gpg")
            .env("GNUPGHOME", home)
            .args(["--batch", "--quiet", "--passphrase", ""])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "gpg: {}", stderr(&o));
        o.stdout
    };
    gpg(&["--quick-gen-key", email, "rsa2048", "sign", "never"]);
    let key = home.join("key.asc");
    std::fs::write(&key, gpg(&["--armor", "--export", email])).unwrap();
    key
}

#[test]
fn fetch_checks_signatures_against_the_given_keys() {
    let work = tempfile::tempdir().unwrap();
    let (good_home, other_home) = (work.path().join("g1"), work.path().join("g2"));
    for h in [&good_home, &other_home] {
        std::fs::create_dir(h).unwrap();
        std::fs::set_permissions(h, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    }
    let good = signing_key(&good_home, "kiln-test@kiln.invalid");
    let other = signing_key(&other_home, "other@kiln.invalid");
    // A directory of the sample RPMs, signed.
    let signed = work.path().join("signed");
    std::fs::create_dir(&signed).unwrap();
    for f in rpms(&sample_repo()) {
        std::fs::copy(sample_repo().join(&f), signed.join(&f)).unwrap();
    }
    let files: Vec<PathBuf> = rpms(&signed).iter().map(|f| signed.join(f)).collect();
    let o = Command::new("rpmsign")
        .env("GNUPGHOME", &good_home)
        .args(["--define", "_gpg_name kiln-test@kiln.invalid"])
        .args(["--define", "__gpg /usr/bin/gpg"])
        .arg("--addsign")
        .args(&files)
        .output()
        .unwrap();
    assert!(o.status.success(), "rpmsign: {}", stderr(&o));
    let dir = signed.to_str().unwrap();
    let check = |key: &Path, out: &str| {
        fetch(
            &work.path().join(out),
            &[
                "--rpm-dir",
                dir,
                "--enable-gpg-check",
                "--gpg-key",
                key.to_str().unwrap(),
            ],
        )
    };
    let o = check(&good, "ok");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = check(&other, "wrong-key");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("GPG check failed for 9 package(s)"),
        "{}",
        stderr(&o)
    );
    // Unsigned packages fail the check too.
    let o = fetch(
        &work.path().join("unsigned"),
        &[
            "--repo",
            sample_repo().to_str().unwrap(),
            "--enable-gpg-check",
            "--gpg-key",
            good.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("digests OK"), "{}", stderr(&o));
}

#[test]
fn imagepkgfetcher_personality_takes_upstreams_flags() {
    let work = tempfile::tempdir().unwrap();
    let repo_file = work.path().join("sample.repo");
    std::fs::write(
        &repo_file,
        format!(
            "[sample]\nbaseurl=file://{}\nenabled=1\n",
            sample_repo().display()
        ),
    )
    .unwrap();
    let link = work.path().join("imagepkgfetcher");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), &link).unwrap();
    let out = work.path().join("package_repo");
    let args = |extra: &[&str]| {
        Command::new(&link)
            .arg(format!(
                "--input={}",
                demo_config("demo-efi.json").display()
            ))
            .arg(format!("--output-dir={}", out.display()))
            .args([
                "--rpm-dir=/nonexistent/RPMS",
                "--toolchain-rpms-dir=/nonexistent/toolchain",
            ])
            .args(["--tmp-dir=/tmp/unused", "--tdnf-worker=/tmp/unused.tar.gz"])
            .arg(format!("--repo-file={}", repo_file.display()))
            .args(extra)
            .output()
            .unwrap()
    };
    let summary = work.path().join("image_deps.json");
    let o = args(&[&format!("--output-summary-file={}", summary.display())]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("kiln ignores --tmp-dir, --tdnf-worker"),
        "{}",
        stderr(&o)
    );
    assert_eq!(rpms(&out).len(), 9);
    assert!(summary.is_file());
    let o = args(&["--enable-gpg-check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--enable-gpg-check requires at least one --gpg-key path"));
    let o = args(&["--external-only"]);
    assert!(stderr(&o).contains("input-graph must be provided if external-only is set."));
    // With upstream repositories off, what an earlier run left in the output directory is
    // the only source (upstream's fetcher-cloned tier); a new directory has none.
    let o = args(&["--disable-upstream-repos"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = Command::new(&link)
        .arg(format!(
            "--input={}",
            demo_config("demo-efi.json").display()
        ))
        .arg(format!(
            "--output-dir={}",
            work.path().join("new").display()
        ))
        .args([
            "--rpm-dir=/nonexistent/RPMS",
            "--toolchain-rpms-dir=/nonexistent/toolchain",
        ])
        .args(["--tmp-dir=/tmp/unused", "--tdnf-worker=/tmp/unused.tar.gz"])
        .arg(format!("--repo-file={}", repo_file.display()))
        .arg("--disable-upstream-repos")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no package source"), "{}", stderr(&o));
}
