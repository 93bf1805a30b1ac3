//! "What satisfies this dependency?" answered by kiln's pool and by dnf (libsolv) on the sample
//! repository: every simple dependency any package declares, plus versioned ranges and paths
//! chosen to probe the edges, must get the same providers.

use kiln_repo::load_dir;
use kiln_rpm::Dep;
use kiln_solve::pool::{Pool, Source};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn providers_match_dnf() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/sample-repo");
    assert!(
        root.join("repodata/repomd.xml").exists(),
        "run `make sample-repo` first"
    );
    let repo = load_dir(&root, true).unwrap();
    let mut queries: BTreeSet<String> = BTreeSet::new();
    for p in &repo.packages {
        for r in p
            .provides
            .iter()
            .chain(&p.requires)
            .chain(&p.conflicts)
            .chain(&p.obsoletes)
            .chain(&p.recommends)
            .chain(&p.supplements)
        {
            if !r.dep.is_rich() {
                queries.insert(r.dep.to_string());
            }
        }
    }
    for extra in [
        "sample-libfoo",
        "sample-libfoo = 1.1",
        "sample-libfoo < 1.1",
        "sample-libfoo <= 1.1",
        "sample-libfoo > 1.1",
        "sample-libfoo >= 2",
        "sample-libfoo = 1.1-1.azl3",
        "sample-libfoo = 1.1-2",
        "sample-epoch > 1.5",
        "sample-epoch >= 1:0.1",
        "sample-epoch = 2.0",
        "sample-old",
        "sample-old < 2.0",
        "sample-mta",
        "sample-mta >= 2",
        "/bin/sh",
        "/usr/bin/sample-app",
        "/etc/hosts",
        "/boot",
        "/nonexistent",
        "nothing-provides-this",
        "busybox(x86-64)",
        "kernel >= 6",
        "kernel < 6",
    ] {
        queries.insert(extra.to_string());
    }
    let queries: Vec<String> = queries.into_iter().collect();

    let mut pool = Pool::new();
    pool.add_source(
        Source {
            name: "sample".into(),
            priority: 99,
        },
        repo.packages,
    );
    let kiln: Vec<String> = queries
        .iter()
        .map(|q| {
            let ids = pool.what_provides(&Dep::parse(q).unwrap()).unwrap();
            let mut v: Vec<String> = ids.iter().map(|id| pool.package(*id).nevra()).collect();
            v.sort();
            v.join(" ")
        })
        .collect();

    let cache = std::env::temp_dir().join(format!("kiln-dnf-cache-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dnf_whatprovides.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(&root)
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
        .write_all(queries.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&cache);
    assert!(
        out.status.success(),
        "dnf (Debian package dnf) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dnf: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(dnf.len(), queries.len());
    let differences: Vec<String> = queries
        .iter()
        .zip(kiln.iter().zip(&dnf))
        .filter(|(_, (k, d))| k != d)
        .map(|(q, (k, d))| format!("{q:?}: kiln [{k}], dnf [{d}]"))
        .collect();
    println!(
        "what provides: {} of {} queries agree with dnf",
        queries.len() - differences.len(),
        queries.len()
    );
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
