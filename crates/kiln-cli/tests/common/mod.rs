//! What the `kiln` binary's test files share.

#![allow(dead_code)] // not every test file uses every helper

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `kiln` binary built for these tests.
pub fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env_remove("NO_COLOR");
    c
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The sample repository (`make sample-repo`).
pub fn sample_repo() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/sample-repo");
    assert!(
        repo.join("repodata").is_dir(),
        "run `make sample-repo` first"
    );
    repo
}

/// A file of kiln's own `imageconfigs/`.
pub fn demo_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../imageconfigs")
        .join(name)
}

/// The RPM file names in `dir`.
pub fn rpms(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rpm"))
        .collect()
}

/// The one RPM in `dir` whose file name starts with `prefix`.
pub fn rpms_named(dir: &Path, prefix: &str) -> String {
    rpms(dir)
        .into_iter()
        .find(|f| f.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* in {}", dir.display()))
}

/// `kiln compose` of `config` from the sample repository into `out` (SOURCE_DATE_EPOCH set).
pub fn compose(config: &Path, out: &Path) -> Output {
    kiln()
        .arg("compose")
        .arg("--config")
        .arg(config)
        .arg("--repo")
        .arg(sample_repo())
        .arg("--output-dir")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap()
}

/// The `kiln build` command of a demo config from the sample repository into `work` (images/,
/// build/, logs/).
pub fn build_command(config: &str, work: &Path) -> Command {
    let mut c = kiln();
    c.args(build_args(&demo_config(config), &sample_repo(), work))
        .env("SOURCE_DATE_EPOCH", "1700000000");
    c
}

/// The arguments of `kiln build` of `config` from the repository `repo` into `work` (images/,
/// build/, logs/), offline.
pub fn build_args(config: &Path, repo: &Path, work: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["build".into(), "--config".into()];
    args.push(config.into());
    args.push("--repo".into());
    args.push(repo.into());
    args.push("--disable-upstream-repos".into());
    for (flag, dir) in [
        ("--output-dir", "images"),
        ("--build-dir", "build"),
        ("--log-dir", "logs"),
    ] {
        args.push(flag.into());
        args.push(work.join(dir).into());
    }
    args
}

/// `kiln build` of a demo config from the sample repository into `work` (images/, build/,
/// logs/); returns the command's output and the images directory.
pub fn build(config: &str, work: &Path) -> (Output, PathBuf) {
    let o = build_command(config, work).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    (o, work.join("images"))
}

/// `kiln boot-test` of `artifact` (firmware uefi or bios, disk virtio or nvme): logs in as
/// kiln:kiln, runs each of `runs`, and checks the console shows each of `expect`.
pub fn boot_test(artifact: &Path, firmware: &str, disk: &str, runs: &[&str], expect: &[&str]) {
    let mut cmd = kiln();
    cmd.arg("boot-test")
        .arg(artifact)
        .args(["--firmware", firmware, "--disk", disk])
        .args(["--login", "kiln:kiln", "--timeout", "600"]);
    for r in runs {
        cmd.args(["--run", r]);
    }
    for e in expect {
        cmd.args(["--expect", e]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    println!("{}", stdout(&o).trim());
}
