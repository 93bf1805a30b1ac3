//! The human output of the main commands and errors, pinned (insta). Times, temporary paths,
//! sizes and package versions (which follow Debian's) are replaced by placeholders. After an
//! intended change of wording: `INSTA_UPDATE=always cargo test -p kiln-cli --test snapshots`
//! and review the `.snap` files.

mod common;

use common::{kiln, sample_repo, stderr, stdout};

fn settings(dir: &std::path::Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(&dir.display().to_string()), "[TMP]");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    s.add_filter(&regex_escape(&src.display().to_string()), "[SRC]");
    s.add_filter(r"kiln-tmp-\d+-\d+", "kiln-tmp-[PID]-[N]");
    s.add_filter(r"\[ *\d+\.\d s\]", "[T]");
    s.add_filter(r"\d+\.\d\d s", "[S] s");
    s.add_filter(r"\(\d+\.\d s\)", "([S] s)");
    s.add_filter(r"\d+\.\d MiB", "[N] MiB");
    s.add_filter(r"-\d[^ -]*-\d+\.azl3", "-[V].azl3");
    s.add_filter(r"/\S*/out/sample-repo", "[REPO]");
    // Columns padded to the widths of names and versions that change.
    s.add_filter(r" {2,}", "  ");
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn validate_reports_every_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.json");
    std::fs::write(
        &config,
        r#"{"SystemConfigs": [{"Name": "x", "Packages": ["p"], "Hostnme": "typo",
  "Users": [{"Name": "bad:name", "UID": "70000"}],
  "PartitionSetings": []}]}
"#,
    )
    .unwrap();
    let o = kiln()
        .args(["validate", "--color", "never"])
        .arg(&config)
        .output()
        .unwrap();
    settings(dir.path()).bind(|| {
        insta::assert_snapshot!(
            "validate",
            format!("exit {:?}\n{}", o.status.code(), stdout(&o))
        )
    });
}

#[test]
fn summary_says_what_a_build_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let o = kiln()
        .args(["summary", "--color", "never"])
        .arg(common::demo_config("demo-efi.json"))
        .arg("--repo")
        .arg(sample_repo())
        .arg("--disable-upstream-repos")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    settings(dir.path()).bind(|| insta::assert_snapshot!("summary", stdout(&o)));
}

#[test]
fn build_shows_its_steps_and_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = common::build_command("demo-container.json", dir.path())
        .args(["--color", "never"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    settings(dir.path()).bind(|| {
        insta::assert_snapshot!("build", format!("{}--- stdout\n{}", stderr(&o), stdout(&o)))
    });
    // A config that does not exist, and an invalid one: what the user sees.
    let folders = |name: &str| {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        for (flag, sub) in [
            ("--build-dir", "b"),
            ("--output-dir", "o"),
            ("--log-dir", "l"),
        ] {
            args.push(flag.into());
            args.push(dir.path().join(name).join(sub).into());
        }
        args
    };
    let missing = kiln()
        .args(["build", "--color", "never", "/nonexistent/c.json"])
        .args(folders("missing"))
        .output()
        .unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"SystemConfigs": [{"Name": "x"}]}"#).unwrap();
    let invalid = kiln()
        .args(["build", "--color", "never"])
        .arg(&bad)
        .args(folders("invalid"))
        .output()
        .unwrap();
    settings(dir.path()).bind(|| {
        insta::assert_snapshot!(
            "build-errors",
            format!(
                "missing (exit {:?}):\n{}\ninvalid (exit {:?}):\n{}{}",
                missing.status.code(),
                stderr(&missing),
                invalid.status.code(),
                stdout(&invalid),
                stderr(&invalid)
            )
        )
    });
}
