//! What the dnf comparison tests share: the sample repository, a dnf helper script fed one
//! query per line, and the agreement check.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The sample repository (`make sample-repo`).
pub fn sample_repo() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/sample-repo");
    assert!(
        root.join("repodata/repomd.xml").exists(),
        "run `make sample-repo` first"
    );
    root
}

/// Runs `tests/<script>` (dnf through its Python API) on the sample repository with `lines` on
/// its standard input; returns one answer line per input line.
pub fn ask_dnf(script: &str, lines: &[String]) -> Vec<String> {
    let cache = std::env::temp_dir().join(format!("kiln-{script}-{}", std::process::id()));
    let mut child = Command::new("/usr/bin/python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join(script),
        )
        .arg(sample_repo())
        .arg(&cache)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all((lines.join("\n") + "\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&cache);
    assert!(
        out.status.success(),
        "dnf (Debian package dnf) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(answers.len(), lines.len());
    answers
}

/// Prints how many of kiln's answers agree with dnf's and fails listing each difference.
pub fn assert_agree(what: &str, queries: &[String], kiln: &[String], dnf: &[String]) {
    let differences: Vec<String> = queries
        .iter()
        .zip(kiln.iter().zip(dnf))
        .filter(|(_, (k, d))| k != d)
        .map(|(q, (k, d))| format!("{q:?}:\n  kiln [{k}]\n  dnf  [{d}]"))
        .collect();
    println!(
        "{what}: {} of {} agree with dnf",
        queries.len() - differences.len(),
        queries.len()
    );
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
