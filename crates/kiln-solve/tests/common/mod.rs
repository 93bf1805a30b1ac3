//! What the dnf comparison tests share: the sample repository, a dnf helper script fed one
//! query per line, and the agreement check.

use kiln_solve::pool::{Pool, Source};
use kiln_solve::solve::{resolve, Options, Request};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The sample repository (`make sample-repo`).
#[allow(dead_code)] // not every test binary uses every helper
pub fn sample_repo() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/sample-repo");
    assert!(
        root.join("repodata/repomd.xml").exists(),
        "run `make sample-repo` first"
    );
    root
}

/// The large generated repository (`scripts/gen-large-repo.py`: Debian's package index as
/// rpm-md metadata), generated on first use.
#[allow(dead_code)] // not every test binary uses every helper
pub fn large_repo() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/large-repo");
    if !root.join("repodata/repomd.xml").exists() {
        let status = Command::new("/usr/bin/python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gen-large-repo.py"))
            .arg(&root)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "scripts/gen-large-repo.py failed");
    }
    root
}

/// kiln's answer for one package set, in the form the dnf scripts print: the NEVRAs sorted and
/// space separated, or `ERROR`.
#[allow(dead_code)]
pub fn kiln_answer(pool: &Pool, set: &[String], weak_deps: bool) -> String {
    let requests: Vec<Request> = set
        .iter()
        .map(|s| Request::parse(s, "test").unwrap())
        .collect();
    let options = Options {
        weak_deps,
        ..Options::default()
    };
    match resolve(pool, &requests, &options) {
        Ok(r) => {
            let mut v: Vec<String> = r
                .packages
                .iter()
                .map(|&id| pool.package(id).nevra())
                .collect();
            v.sort();
            v.join(" ")
        }
        Err(_) => "ERROR".to_string(),
    }
}

/// Runs `tests/<script>` (dnf through its Python API) on the repository at `repo` with `lines`
/// on its standard input; returns one answer line per input line.
pub fn ask_dnf(script: &str, repo: &Path, lines: &[String]) -> Vec<String> {
    let cache = std::env::temp_dir().join(format!("kiln-{script}-{}", std::process::id()));
    let mut child = Command::new("/usr/bin/python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join(script),
        )
        .arg(repo)
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
        .map(|(q, (k, d))| {
            let only = |a: &str, b: &str| {
                let b: std::collections::HashSet<&str> = b.split(' ').collect();
                a.split(' ')
                    .filter(|x| !b.contains(x))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            format!(
                "{q:?}:\n  only kiln: [{}]\n  only dnf:  [{}]",
                only(k, d),
                only(d, k)
            )
        })
        .collect();
    println!(
        "{what}: {} of {} agree with dnf",
        queries.len() - differences.len(),
        queries.len()
    );
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// A small deterministic generator for random package sets.
pub struct Lcg(pub u64);

impl Lcg {
    #[allow(dead_code)]
    pub fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
}

/// The packages of the repository at `root` (with filelists) in a pool of one source, and
/// their distinct names, sorted (what random package sets are drawn from).
#[allow(dead_code)]
pub fn pool_of(root: &Path) -> (Pool, Vec<String>) {
    let repo = kiln_repo::load_dir(root, true).unwrap();
    let mut names: Vec<String> = repo.packages.iter().map(|p| p.name.clone()).collect();
    names.sort();
    names.dedup();
    let mut pool = Pool::new();
    pool.add_source(
        Source {
            name: root.display().to_string(),
            priority: 99,
        },
        repo.packages,
    );
    (pool, names)
}
