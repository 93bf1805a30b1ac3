//! Every command that builds goes through kiln-build: it shows the config's warnings, checks
//! the host programs before any work, fails at once without a network, takes the config as a
//! positional argument, and speaks JSON lines that follow docs/events.schema.json.

mod common;

use common::{demo_config, kiln, sample_repo, stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// demo-container.json with a typo'd key (`Hostnme`), written into `dir`; relative paths in it
/// stay those of imageconfigs/ (pass `--base-dir`).
fn typo_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(demo_config("demo-container.json")).unwrap();
    let text = text.replacen(
        "\"Name\": \"Demo Container\",",
        "\"Name\": \"Demo Container\", \"Hostnme\": \"typo\",",
        1,
    );
    assert!(text.contains("Hostnme"));
    let config = dir.join("typo-container.json");
    std::fs::write(&config, text).unwrap();
    config
}

fn imageconfigs() -> PathBuf {
    demo_config("demo-container.json")
        .parent()
        .unwrap()
        .to_path_buf()
}

fn fetch(config: &Path, out: &Path, extra: &[&str]) -> Output {
    kiln()
        .arg("fetch")
        .arg("--config")
        .arg(config)
        .arg("--output-dir")
        .arg(out)
        .arg("--base-dir")
        .arg(imageconfigs())
        .arg("--repo")
        .arg(sample_repo())
        .arg("--disable-upstream-repos")
        .args(extra)
        .output()
        .unwrap()
}

const TYPO_WARNING: &str =
    "unknown key \"Hostnme\" in [SystemConfig] is ignored; did you mean \"Hostname\"?";

#[test]
fn fetch_and_imagepkgfetcher_show_the_configs_warnings() {
    let work = tempfile::tempdir().unwrap();
    let config = typo_config(work.path());
    let o = fetch(&config, &work.path().join("pkgs"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(TYPO_WARNING), "{err}");
    assert!(
        err.contains("typo-container.json:"),
        "the warning's place: {err}"
    );

    // -q: the final result only.
    let o = fetch(&config, &work.path().join("pkgs"), &["-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("Hostnme"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("kiln: "), "{err}");

    let link = work.path().join("imagepkgfetcher");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), &link).unwrap();
    let repo_file = work.path().join("sample.repo");
    let repo = format!(
        "[sample]\nbaseurl=file://{}\nenabled=1\n",
        sample_repo().display()
    );
    std::fs::write(&repo_file, repo).unwrap();
    let o = Command::new(&link)
        .arg(format!("--input={}", config.display()))
        .arg(format!("--base-dir={}", imageconfigs().display()))
        .arg(format!(
            "--output-dir={}",
            work.path().join("pkgs2").display()
        ))
        .args([
            "--rpm-dir=/nonexistent/RPMS",
            "--toolchain-rpms-dir=/nonexistent/tc",
        ])
        .args(["--tmp-dir=/tmp/unused", "--tdnf-worker=/tmp/unused.tar.gz"])
        .arg(format!("--repo-file={}", repo_file.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(TYPO_WARNING), "{}", stderr(&o));
}

#[test]
fn the_config_can_be_given_as_a_positional_argument() {
    let work = tempfile::tempdir().unwrap();
    let o = kiln()
        .arg("fetch")
        .arg(demo_config("demo-container.json"))
        .arg("--output-dir")
        .arg(work.path().join("pkgs"))
        .arg("--repo")
        .arg(sample_repo())
        .arg("--disable-upstream-repos")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("packages in"), "{}", stderr(&o));

    // Both at once is a usage error.
    let o = kiln()
        .arg("fetch")
        .arg(demo_config("demo-container.json"))
        .arg("--config")
        .arg(demo_config("demo-container.json"))
        .arg("--output-dir")
        .arg(work.path().join("pkgs"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // `kiln build CONFIG`: an invalid config fails at the validate step, not as a usage error.
    let bad = work.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"SystemConfigs\": [{\"Name\": \"x\", \"Hostname\": \"a_b\"}]}",
    )
    .unwrap();
    let o = kiln()
        .arg("build")
        .arg(&bad)
        .args(common::build_args(&bad, &sample_repo(), work.path())[3..].iter())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("building bad failed at the validate step"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("invalid [Hostname]: a_b"),
        "{}",
        stdout(&o)
    );
}

/// `kiln summary --json` of a demo config from the sample repository.
fn summary_json(config: &str) -> serde_json::Value {
    let o = kiln()
        .arg("summary")
        .arg(demo_config(config))
        .arg("--repo")
        .arg(sample_repo())
        .args(["--disable-upstream-repos", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn summary_says_what_a_build_would_do() {
    let doc = summary_json("demo-efi.json");
    assert_eq!(doc["kind"], "disk");
    let packages = doc["packages"].as_array().unwrap();
    assert!(packages.iter().any(|p| p["name"] == "kernel"), "{doc}");
    assert!(packages.iter().all(|p| p["size"].as_u64().unwrap() > 0));
    let fs: Vec<&str> = doc["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["fs_type"].as_str().unwrap())
        .collect();
    assert!(fs.contains(&"ext4") && fs.contains(&"fat32"), "{fs:?}");
    assert!(
        doc["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().ends_with(".vhdx")),
        "{doc}"
    );
    let human = kiln()
        .arg("summary")
        .arg("--config")
        .arg(demo_config("demo-efi.json"))
        .arg("--repo")
        .arg(sample_repo())
        .arg("--disable-upstream-repos")
        .output()
        .unwrap();
    assert!(human.status.success(), "{}", stderr(&human));
    assert!(
        stdout(&human).contains("host programs: rpm (rpm)"),
        "{}",
        stdout(&human)
    );
    // A rootfs tarball is named as roast makes it: no empty type between name and compression.
    let doc = summary_json("demo-container.json");
    assert_eq!(
        doc["artifacts"],
        serde_json::json!(["demo-container.tar.gz"])
    );
}

#[test]
fn no_network_fails_at_once_and_says_what_to_do() {
    let work = tempfile::tempdir().unwrap();
    for url in ["http://kiln-test.invalid/azl", "http://127.0.0.1:9/azl"] {
        let repo_file = work.path().join("remote.repo");
        std::fs::write(
            &repo_file,
            format!("[remote]\nbaseurl={url}\nenabled=1\n[other]\nbaseurl={url}/2\nenabled=1\n"),
        )
        .unwrap();
        let o = kiln()
            .arg("fetch")
            .arg(demo_config("demo-container.json"))
            .arg("--output-dir")
            .arg(work.path().join("pkgs"))
            .arg("--repo-file")
            .arg(&repo_file)
            .arg("--disable-default-repos")
            .arg("--cache-dir")
            .arg(work.path().join("cache"))
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains("repository 'remote' cannot be reached"),
            "{err}"
        );
        assert!(err.contains("(not retried)"), "{err}");
        assert!(
            err.contains(
                "no network: build offline with DISABLE_UPSTREAM_REPOS=y (kiln: \
                 --disable-upstream-repos) and local packages (REPO_LIST, --rpm-dir/--repo)"
            ),
            "{err}"
        );
    }
}

/// A folder of links to the host programs a demo-xfs build checks for, but mkfs.xfs.
fn path_without_mkfs_xfs(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for program in [
        "rpm",
        "rpm2cpio",
        "mke2fs",
        "debugfs",
        "mkfs.vfat",
        "mcopy",
        "xfs_db",
    ] {
        let o = Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .unwrap();
        let found = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(!found.is_empty(), "{program} is installed (make host-deps)");
        std::os::unix::fs::symlink(found, bin.join(program)).unwrap();
    }
    bin
}

#[test]
fn a_missing_host_program_fails_the_build_before_any_work() {
    let work = tempfile::tempdir().unwrap();
    let bin = path_without_mkfs_xfs(work.path());
    let o = kiln()
        .args(common::build_args(
            &demo_config("demo-xfs.json"),
            &sample_repo(),
            work.path(),
        ))
        .env("PATH", &bin)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("failed at the validate step"), "{err}");
    assert!(err.contains("mkfs.xfs"), "{err}");
    assert!(err.contains("xfsprogs"), "{err}");
    assert!(
        !work.path().join("build/package_repo").exists(),
        "nothing was fetched: {err}"
    );
}

/// Checks each line of `out` against docs/events.schema.json with python3-jsonschema; returns
/// the events' kinds.
fn check_json_lines(out: &str) -> Vec<String> {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.schema.json");
    let checker = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft202012Validator(schema)
for n, line in enumerate(sys.stdin, 1):
    event = json.loads(line)
    errors = list(validator.iter_errors(event))
    if errors:
        sys.exit(f"line {n}: {line.strip()}: {errors[0].message}")
    print(event["event"])
"#;
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(checker)
        .arg(&schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(out.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).lines().map(str::to_string).collect()
}

#[test]
fn json_lines_follow_the_documented_schema() {
    let work = tempfile::tempdir().unwrap();
    let config = typo_config(work.path());
    // Relative paths of the config: next to it.
    for dir in ["files", "scripts"] {
        let o = Command::new("cp")
            .arg("-r")
            .arg(imageconfigs().join(dir))
            .arg(work.path())
            .output()
            .unwrap();
        assert!(o.status.success());
    }
    std::fs::write(
        work.path().join("scripts/demo-postinstall.sh"),
        "#!/bin/sh\necho hello from the script\necho \"built by kiln: $1\" > /etc/kiln-postinstall\n",
    )
    .unwrap();
    let o = kiln()
        .args(common::build_args(&config, &sample_repo(), work.path()))
        .arg("--json")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let kinds = check_json_lines(&stdout(&o));
    for kind in [
        "stage-started",
        "stage-finished",
        "step",
        "warning",
        "install",
        "convert",
        "timings",
        "result",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    assert_eq!(kinds.last().map(String::as_str), Some("result"));
    // The build log has every line, program output included.
    let log = std::fs::read_to_string(work.path().join("logs/typo-container.log")).unwrap();
    assert!(log.contains(TYPO_WARNING), "{log}");
    assert!(
        log.contains("  | hello from the script"),
        "program output in the log: {log}"
    );
    assert!(
        !stderr(&o).contains("hello from the script"),
        "program output on stderr only with -v"
    );

    // An error is one object too.
    let bad = work.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"SystemConfigs\": [{\"Name\": \"x\", \"Hostname\": \"a_b\"}]}",
    )
    .unwrap();
    let o = kiln()
        .arg("fetch")
        .arg(&bad)
        .args(["--output-dir", "/nonexistent", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let kinds = check_json_lines(&stdout(&o));
    assert_eq!(kinds.last().map(String::as_str), Some("error"), "{kinds:?}");
    let error: serde_json::Value =
        serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(error["kind"], "invalid-config");
    assert!(error["at"]["line"].as_u64().is_some(), "{error}");
    assert!(
        error["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["path"] == "SystemConfigs[0].Hostname"),
        "{error}"
    );
}

/// `--base-dir` (upstream's CONFIG_BASE_DIR) resolves the config's relative paths, for every
/// command that reads a config: a copy of demo-efi elsewhere finds its package list only so.
#[test]
fn base_dir_resolves_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("moved.json");
    std::fs::copy(demo_config("demo-efi.json"), &config).unwrap();
    let base = demo_config("demo-efi.json").parent().unwrap().to_path_buf();
    let summary = |extra: &[&std::ffi::OsStr]| {
        kiln()
            .arg("summary")
            .arg(&config)
            .arg("--repo")
            .arg(sample_repo())
            .arg("--disable-upstream-repos")
            .args(extra)
            .output()
            .unwrap()
    };
    let o = summary(&[]);
    assert!(!o.status.success());
    assert!(stdout(&o).contains("demo-packages.json") || stderr(&o).contains("demo-packages.json"));
    let o = summary(&["--base-dir".as_ref(), base.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("busybox-"), "{}", stdout(&o));
}

/// An artifact Type roast cannot make (`qcow`) fails `kiln build` at its validate step, before
/// any package is fetched or installed, naming the nearest format (it once failed in roast,
/// after the whole build, with `failed to generate the following artifacts: [my my]`).
#[test]
fn an_unknown_artifact_type_fails_the_build_before_any_work() {
    let work = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(demo_config("demo-efi.json")).unwrap();
    let bad = text.replacen("\"Type\": \"vhdx\"", "\"Type\": \"qcow\"", 1);
    assert_ne!(text, bad);
    let config = work.path().join("qcow.json");
    std::fs::write(&config, bad).unwrap();
    let o = kiln()
        .args(common::build_args(&config, &sample_repo(), work.path()))
        .arg("--base-dir")
        .arg(imageconfigs())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("failed at the validate step"), "{err}");
    assert!(err.contains("did you mean \"qcow2\""), "{err}");
    assert!(!err.contains("== fetch"), "{err}");
}
