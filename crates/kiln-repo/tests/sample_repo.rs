//! Metadata of the sample repository (`make sample-repo`), read by kiln and compared with what the
//! `rpm` program reads from the RPM files themselves.

use kiln_repo::{load_dir, Error};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/sample-repo");
    assert!(
        p.join("repodata/repomd.xml").exists(),
        "the sample repository is missing: run `make sample-repo` first"
    );
    p
}

fn rpm_q(args: &[&str], file: &Path) -> Vec<String> {
    let o = Command::new("rpm")
        .args(["-qp", "--nosignature"])
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// rpm prints no epoch when the header has none; repodata writes epoch 0.
fn normalize(s: &str) -> String {
    s.replace(" 0:", " ")
}

#[test]
fn packages_match_what_rpm_reads_from_the_files() {
    let root = repo();
    let repo = load_dir(&root, true).unwrap();
    assert_eq!(repo.packages.len(), 23);
    assert!(repo.full_filelists);
    for p in &repo.packages {
        let file = root.join(&p.location);
        let q = rpm_q(
            &["--qf", "%{NAME} %{EPOCHNUM} %{VERSION} %{RELEASE} %{ARCH}"],
            &file,
        );
        let f: Vec<&str> = q[0].split(' ').collect();
        let epoch = if f[1] == "0" {
            String::new()
        } else {
            format!("{}:", f[1])
        };
        assert_eq!(
            p.nevra(),
            format!("{}-{epoch}{}-{}.{}", f[0], f[2], f[3], f[4]),
            "{}",
            p.location
        );
        let rel = |list: &[kiln_repo::Relation]| -> BTreeSet<String> {
            list.iter().map(|r| normalize(&r.dep.to_string())).collect()
        };
        let from_rpm = |flag: &str| -> BTreeSet<String> {
            rpm_q(&[flag], &file)
                .into_iter()
                .filter(|l| !l.starts_with("rpmlib("))
                .map(|l| normalize(&l))
                .collect()
        };
        assert_eq!(
            rel(&p.provides),
            from_rpm("--provides"),
            "{} provides",
            p.name
        );
        // createrepo_c leaves out what the package provides itself (busybox needs /bin/sh).
        let own: BTreeSet<String> = p
            .provides
            .iter()
            .filter_map(|r| match &r.dep {
                kiln_rpm::Dep::Simple { name, .. } => Some(name.clone()),
                _ => None,
            })
            .chain(p.files.iter().cloned())
            .collect();
        let rpm_requires: BTreeSet<String> = from_rpm("--requires")
            .into_iter()
            .filter(|r| !own.contains(r))
            .collect();
        assert_eq!(rel(&p.requires), rpm_requires, "{} requires", p.name);
        for (kind, ours) in [
            ("conflicts", &p.conflicts),
            ("obsoletes", &p.obsoletes),
            ("recommends", &p.recommends),
            ("supplements", &p.supplements),
        ] {
            assert_eq!(
                rel(ours),
                from_rpm(&format!("--{kind}")),
                "{} {kind}",
                p.name
            );
        }
        let files: BTreeSet<String> = p.files.iter().cloned().collect();
        let rpm_files: BTreeSet<String> = rpm_q(&["-l"], &file).into_iter().collect();
        assert_eq!(files, rpm_files, "{} files", p.name);
        let sha =
            kiln_repo::Checksum::compute(&p.checksum.kind, std::fs::File::open(&file).unwrap())
                .unwrap();
        assert_eq!(sha, p.checksum.value, "{} checksum", p.name);
    }
    let rich = repo
        .packages
        .iter()
        .find(|p| p.name == "sample-rich")
        .unwrap();
    assert!(rich.requires.iter().any(|r| r.dep.is_rich()));
    let app = repo
        .packages
        .iter()
        .find(|p| p.name == "sample-app")
        .unwrap();
    assert!(app
        .requires
        .iter()
        .any(|r| r.pre && r.dep.to_string() == "/bin/sh"));
}

#[test]
fn damaged_metadata_is_refused_with_the_file_named() {
    let src = repo();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("repo");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let primary = std::fs::read_dir(copy.join("repodata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-primary.xml.gz"))
        .unwrap();
    let mut bytes = std::fs::read(&primary).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&primary, &bytes).unwrap();
    match load_dir(&copy, false) {
        Err(e @ Error::Checksum { .. }) => assert!(
            e.to_string()
                .contains("-primary.xml.gz: its sha256 checksum is"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    std::fs::write(copy.join("repodata/repomd.xml"), "<repomd").unwrap();
    let e = load_dir(&copy, false).unwrap_err();
    assert!(e.to_string().contains("repomd.xml"), "{e}");
    let e = load_dir(dir.path(), false).unwrap_err();
    assert!(
        e.to_string().contains("repodata/repomd.xml: No such file"),
        "{e}"
    );
}

#[test]
fn xz_and_zstd_compressed_metadata_read_the_same() {
    let src = repo();
    let want: Vec<String> = load_dir(&src, true)
        .unwrap()
        .packages
        .iter()
        .map(|p| p.nevra())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("repo");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&copy)
        .status()
        .unwrap()
        .success());
    std::fs::remove_dir_all(copy.join("repodata")).unwrap();
    let ok = Command::new("createrepo_c")
        .args(["--quiet", "--general-compress-type=xz"])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(ok.success());
    let got: Vec<String> = load_dir(&copy, true)
        .unwrap()
        .packages
        .iter()
        .map(|p| p.nevra())
        .collect();
    assert_eq!(got, want);
    // zstd: createrepo_c here cannot write it, so recompress primary and filelists by hand and
    // point repomd.xml at them with their new checksums.
    let repodata = copy.join("repodata");
    let mut repomd = std::fs::read_to_string(repodata.join("repomd.xml")).unwrap();
    for kind in ["primary", "filelists"] {
        let xz = std::fs::read_dir(&repodata)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(&format!("-{kind}.xml.xz")))
            .unwrap();
        let zst = repodata.join(format!("{kind}.xml.zst"));
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "xz -dc {} | zstd -q -o {}",
                xz.display(),
                zst.display()
            ))
            .status()
            .unwrap();
        assert!(
            ok.success(),
            "xz and zstd are needed (Debian packages xz-utils, zstd)"
        );
        let old =
            kiln_repo::Checksum::compute("sha256", std::fs::File::open(&xz).unwrap()).unwrap();
        let new =
            kiln_repo::Checksum::compute("sha256", std::fs::File::open(&zst).unwrap()).unwrap();
        let name = xz.file_name().unwrap().to_string_lossy().into_owned();
        // The file name holds the old checksum: rename before replacing the checksum.
        repomd = repomd
            .replace(&name, &format!("{kind}.xml.zst"))
            .replace(&old, &new);
    }
    std::fs::write(repodata.join("repomd.xml"), repomd).unwrap();
    let got: Vec<String> = load_dir(&copy, true)
        .unwrap()
        .packages
        .iter()
        .map(|p| p.nevra())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn rpm_headers_read_the_same_as_createrepo_c_metadata() {
    let root = repo();
    let mut from_metadata = load_dir(&root, true).unwrap().packages;
    from_metadata.sort_by(|a, b| a.location.cmp(&b.location));
    let from_headers = kiln_repo::local::scan_dir(&root).unwrap();
    assert_eq!(from_headers.len(), from_metadata.len());
    let set = |v: &[kiln_repo::Relation]| -> BTreeSet<(String, bool)> {
        v.iter()
            .map(|r| (normalize(&r.dep.to_string()), r.pre))
            .collect()
    };
    for (h, m) in from_headers.iter().zip(&from_metadata) {
        assert_eq!(
            (h.nevra(), &h.location, &h.checksum),
            (m.nevra(), &m.location, &m.checksum)
        );
        assert_eq!(set(&h.provides), set(&m.provides), "{} provides", h.name);
        assert_eq!(set(&h.requires), set(&m.requires), "{} requires", h.name);
        assert_eq!(set(&h.conflicts), set(&m.conflicts), "{} conflicts", h.name);
        assert_eq!(set(&h.obsoletes), set(&m.obsoletes), "{} obsoletes", h.name);
        assert_eq!(
            set(&h.recommends),
            set(&m.recommends),
            "{} recommends",
            h.name
        );
        assert_eq!(set(&h.suggests), set(&m.suggests), "{} suggests", h.name);
        assert_eq!(
            set(&h.supplements),
            set(&m.supplements),
            "{} supplements",
            h.name
        );
        let files = |p: &kiln_repo::Package| p.files.iter().cloned().collect::<BTreeSet<_>>();
        assert_eq!(files(h), files(m), "{} files", h.name);
    }
    let e =
        kiln_repo::local::read_rpm(&root.join("repodata/repomd.xml"), "repomd.xml").unwrap_err();
    assert!(e.to_string().contains("not a readable RPM"), "{e}");
}
