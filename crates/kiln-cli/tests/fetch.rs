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

/// A copy of the sample repository whose repodata gives sample-libfoo 1.0, 1.1 and 2.0 the
/// build times 1000, 2000 and 3000 (everything else 1000): three builds of one package.
fn repo_of_three_builds(dir: &Path) -> PathBuf {
    let repo = dir.join("builds");
    std::fs::create_dir_all(&repo).unwrap();
    for name in rpms(&sample_repo()) {
        std::fs::copy(sample_repo().join(&name), repo.join(&name)).unwrap();
    }
    let mut packages = kiln_repo::local::scan_dir(&repo).unwrap();
    for p in &mut packages {
        p.build_time = match (p.name.as_str(), p.evr.version.as_str()) {
            ("sample-libfoo", "1.1") => 2000,
            ("sample-libfoo", "2.0") => 3000,
            _ => 1000,
        };
    }
    kiln_repo::write::write_repodata(&repo, &packages, 1000).unwrap();
    repo
}

#[test]
fn a_repository_snapshot_time_leaves_out_later_builds() {
    let work = tempfile::tempdir().unwrap();
    let repo = repo_of_three_builds(work.path());
    let config = work.path().join("libfoo.json");
    std::fs::write(
        &config,
        r#"{"SystemConfigs": [{"Name": "libfoo", "Packages": ["sample-libfoo"]}]}"#,
    )
    .unwrap();
    let fetch = |out: &str, extra: &[&str]| {
        kiln()
            .arg("fetch")
            .arg("--config")
            .arg(&config)
            .arg("--output-dir")
            .arg(work.path().join(out))
            .args(["--disable-upstream-repos", "--repo"])
            .arg(&repo)
            .args(extra)
            .output()
            .unwrap()
    };
    let libfoo = |out: &str| -> Vec<String> {
        rpms(&work.path().join(out))
            .into_iter()
            .filter(|n| n.starts_with("sample-libfoo-"))
            .collect()
    };
    let o = fetch("latest", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(libfoo("latest"), ["sample-libfoo-2.0-1.azl3.noarch.rpm"]);
    // The build of time 3000 is after the snapshot: the one of 2000 is the newest candidate.
    let o = fetch("snapshot", &["--repo-snapshot-time", "2500"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(libfoo("snapshot"), ["sample-libfoo-1.1-1.azl3.noarch.rpm"]);
    // Exactly at a build time, that build is in the snapshot.
    let o = fetch("at", &["--repo-snapshot-time", "3000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(libfoo("at"), ["sample-libfoo-2.0-1.azl3.noarch.rpm"]);
    // Before every build: nothing to install, and the error says why.
    let o = fetch("none", &["--repo-snapshot-time", "999"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("built after --repo-snapshot-time 999 were left out"),
        "{}",
        stderr(&o)
    );

    // imagepkgfetcher takes upstream's flag: its --repo-file repositories are limited.
    let repo_file = work.path().join("builds.repo");
    std::fs::write(
        &repo_file,
        format!("[builds]\nbaseurl=file://{}\nenabled=1\n", repo.display()),
    )
    .unwrap();
    let link = work.path().join("imagepkgfetcher");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), &link).unwrap();
    let fetcher = |out: &str, snapshot: &str| {
        Command::new(&link)
            .arg(format!("--input={}", config.display()))
            .arg(format!("--output-dir={}", work.path().join(out).display()))
            .args([
                "--rpm-dir=/nonexistent/RPMS",
                "--toolchain-rpms-dir=/nonexistent/toolchain",
                "--tmp-dir=/tmp/unused",
                "--tdnf-worker=/tmp/unused.tar.gz",
            ])
            .arg(format!("--repo-file={}", repo_file.display()))
            .arg(format!("--repo-snapshot-time={snapshot}"))
            .output()
            .unwrap()
    };
    let o = fetcher("upstream", "2500");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("--repo-snapshot-time"),
        "{}",
        stderr(&o)
    );
    assert_eq!(libfoo("upstream"), ["sample-libfoo-1.1-1.azl3.noarch.rpm"]);
    let o = fetcher("bad", "yesterday");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--repo-snapshot-time \"yesterday\" is not a POSIX time"),
        "{}",
        stderr(&o)
    );
    // --external-only needs upstream's package graph, which kiln does not read: refused with
    // the reason and what to do instead.
    let o = Command::new(&link)
        .arg(format!("--input={}", config.display()))
        .arg(format!(
            "--output-dir={}",
            work.path().join("ext").display()
        ))
        .args([
            "--rpm-dir=/nonexistent/RPMS",
            "--toolchain-rpms-dir=/nonexistent/toolchain",
            "--tmp-dir=/tmp/unused",
            "--tdnf-worker=/tmp/unused.tar.gz",
            "--external-only",
            "--package-graph=/nonexistent/graph.dot",
        ])
        .arg(format!("--repo-file={}", repo_file.display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("kiln does not read that graph")
            && stderr(&o).contains("leave out --external-only and --package-graph"),
        "{}",
        stderr(&o)
    );
}

/// `kiln build` resolves within the snapshot as `kiln fetch` does, and both it and the `imager`
/// personality append `snapshottime=` to the image's tdnf.conf (SPEC §3.3 step 8), so tdnf in
/// the image keeps to the same snapshot.
#[test]
fn a_repository_snapshot_time_reaches_the_build_and_the_images_tdnf_conf() {
    let work = tempfile::tempdir().unwrap();
    let repo = repo_of_three_builds(work.path());
    std::fs::write(work.path().join("tdnf.conf"), "[main]\ngpgcheck=1\n").unwrap();
    let config = work.path().join("libfoo.json");
    std::fs::write(
        &config,
        r#"{"Disks": [{"Artifacts": [{"Name": "rootfs", "Type": "tar.gz"}]}],
            "SystemConfigs": [{"Name": "libfoo", "Packages": ["sample-libfoo"],
                               "AdditionalFiles": {"tdnf.conf": "/etc/tdnf/tdnf.conf"}}]}"#,
    )
    .unwrap();
    let build = |out: &str, snapshot: &str| {
        kiln()
            .args(common::build_args(&config, &repo, &work.path().join(out)))
            .args(["--repo-snapshot-time", snapshot])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap()
    };
    let member = |tar: &Path, name: &str| {
        Command::new("tar")
            .arg("-xzOf")
            .arg(tar)
            .arg(name)
            .output()
            .unwrap()
    };
    let o = build("b", "2500");
    assert!(o.status.success(), "{}", stderr(&o));
    let tar = work.path().join("b/images/rootfs.tar.gz");
    // libfoo 1.1 (built at 2000) ships libfoo.so.1; 2.0 (built at 3000) libfoo.so.2.
    assert!(member(&tar, "./usr/lib/sample/libfoo.so.1")
        .status
        .success());
    assert!(!member(&tar, "./usr/lib/sample/libfoo.so.2")
        .status
        .success());
    let conf = String::from_utf8(member(&tar, "./etc/tdnf/tdnf.conf").stdout).unwrap();
    assert_eq!(conf, "[main]\ngpgcheck=1\nsnapshottime=2500\n");
    // Before every build, the build stops at its fetch step and says why.
    let o = build("none", "999");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("built after --repo-snapshot-time 999 were left out"),
        "{}",
        stderr(&o)
    );

    // The imager personality, on the build's fetched repository, as upstream's Makefile runs it.
    let link = work.path().join("imager");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), &link).unwrap();
    let out = work.path().join("imager_output");
    std::fs::create_dir(&out).unwrap();
    let o = Command::new(&link)
        .arg(format!("--input={}", config.display()))
        .arg(format!("--output-dir={}", out.display()))
        .arg(format!(
            "--local-repo={}",
            work.path().join("b/build/package_repo").display()
        ))
        .arg("--tdnf-worker=/tmp/unused.tar.gz")
        .arg("--repo-snapshot-time=2500")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("ignored"), "{}", stderr(&o));
    let conf = std::fs::read_to_string(out.join("rootfs/etc/tdnf/tdnf.conf")).unwrap();
    assert_eq!(conf, "[main]\ngpgcheck=1\nsnapshottime=2500\n");
}
