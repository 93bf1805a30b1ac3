//! kiln's resolution against dnf's (libsolv, through dnf's Python API) on the sample repository,
//! for an empty install root: hand-picked cases that exercise each kind of dependency (versioned,
//! soname, file, virtual, rich `or`/`if … else`/`with`/`unless`, Conflicts, Obsoletes, epochs,
//! Recommends/Supplements), the demo config's package list, and 60 random package sets — each
//! with weak dependencies on (tdnf's default) and off. Both must choose the same NEVRAs, or both
//! must fail.

use kiln_repo::load_dir;
use kiln_solve::pool::{Pool, Source};
use kiln_solve::solve::{resolve, Options, Request};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
}

#[test]
fn resolutions_match_dnf() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/sample-repo");
    assert!(
        root.join("repodata/repomd.xml").exists(),
        "run `make sample-repo` first"
    );
    let repo = load_dir(&root, true).unwrap();
    let mut names: Vec<String> = repo.packages.iter().map(|p| p.name.clone()).collect();
    names.sort();
    names.dedup();
    let mut pool = Pool::new();
    pool.add_source(
        Source {
            name: "sample".into(),
            priority: 99,
        },
        repo.packages.clone(),
    );

    let mut sets: Vec<Vec<String>> = [
        &["sample-app"][..],
        &["sample-rich"],
        &["sample-rich", "sample-minimal"],
        &["sample-app", "sample-mta-postfix"],
        &["sample-mta-postfix", "sample-mta-exim"],
        &["sample-old"],
        &["sample-new"],
        &["sample-epoch"],
        &["sample-epoch < 1:0"],
        &["sample-libfoo"],
        &["sample-libfoo < 2"],
        &["sample-libfoo = 1.0"],
        &["sample-libfoo >= 1.1", "sample-app"],
        &["sample-mta"],
        &["/bin/sh"],
        &["libfoo.so.1()(64bit)"],
        &["sample-docs"],
        &["nothing-provides-this"],
        &["sample-app", "sample-libfoo = 2.0"],
        &[
            "filesystem",
            "busybox",
            "shadow-utils",
            "grub2-efi-binary",
            "shim",
            "initramfs",
            "kernel",
        ],
    ]
    .iter()
    .map(|s| s.iter().map(|x| x.to_string()).collect())
    .collect();
    let mut rng = Lcg(42);
    for _ in 0..60 {
        let n = 1 + rng.next() % 5;
        let mut set: Vec<String> = (0..n)
            .map(|_| names[rng.next() % names.len()].clone())
            .collect();
        set.dedup();
        sets.push(set);
    }

    let mut lines = Vec::new();
    let mut kiln = Vec::new();
    for set in &sets {
        for weak in [true, false] {
            lines.push(format!("{}\t{}", u8::from(weak), set.join("\t")));
            let requests: Vec<Request> = set
                .iter()
                .map(|s| Request::parse(s, "test").unwrap())
                .collect();
            let options = Options {
                weak_deps: weak,
                ..Options::default()
            };
            kiln.push(match resolve(&pool, &requests, &options) {
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
            });
        }
    }

    let cache = std::env::temp_dir().join(format!("kiln-dnf-resolve-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dnf_resolve.py");
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
        .write_all((lines.join("\n") + "\n").as_bytes())
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
    assert_eq!(dnf.len(), lines.len());
    let differences: Vec<String> = lines
        .iter()
        .zip(kiln.iter().zip(&dnf))
        .filter(|(_, (k, d))| k != d)
        .map(|(q, (k, d))| format!("{q:?}:\n  kiln [{k}]\n  dnf  [{d}]"))
        .collect();
    println!(
        "resolutions: {} of {} agree with dnf",
        lines.len() - differences.len(),
        lines.len()
    );
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
