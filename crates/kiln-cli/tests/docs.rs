//! What the README and docs tell a newcomer holds: the layout names every crate, kiln's place is
//! told (it is in out/bin, not on PATH), the first-image guide is there, the README's `kiln
//! roast` examples run as written (and so name only formats roast makes), and docs/boot.md's
//! example expects what the demo image prints.

mod common;

use common::{kiln, stderr};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

#[test]
fn the_readme_layout_names_every_crate() {
    let readme = read("README.md");
    for entry in std::fs::read_dir(repo().join("crates")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            readme.contains(&format!("crates/{name} ")),
            "README.md's layout does not name crates/{name}"
        );
    }
}

#[test]
fn the_readme_says_where_kiln_is_and_links_the_first_image_guide() {
    let readme = read("README.md");
    assert!(
        readme.contains("out/bin"),
        "README.md must say that kiln is in out/bin (it is not on PATH)"
    );
    assert!(readme.contains("docs/first-image.md"));
    let guide = read("docs/first-image.md");
    for step in ["make image", "boot-test", "validate", "rebuild"] {
        assert!(guide.contains(step), "docs/first-image.md has no {step:?}");
    }
}

/// The README's `kiln roast …` lines, run in order in a folder holding a small disk.raw.
#[test]
fn the_readme_roast_examples_run_as_written() {
    let readme = read("README.md");
    let examples: Vec<Vec<String>> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("kiln roast "))
        .map(|l| {
            let command = l.split('#').next().unwrap();
            command.split_whitespace().map(String::from).collect()
        })
        .collect();
    assert!(examples.len() >= 3, "README.md has kiln roast examples");
    let t = tempfile::tempdir().unwrap();
    let disk = std::fs::File::create(t.path().join("disk.raw")).unwrap();
    disk.set_len(4 << 20).unwrap();
    for args in examples {
        let o = kiln()
            .arg("roast")
            .args(&args)
            .current_dir(t.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "kiln roast {}: {}",
            args.join(" "),
            stderr(&o)
        );
    }
}

/// docs/boot.md's first example logs in to demo-efi, prints /etc/os-release and expects a
/// text: it must be in the sample's os-release (what that command prints).
#[test]
fn the_boot_test_example_expects_what_the_demo_prints() {
    let doc = read("docs/boot.md");
    let example = doc
        .lines()
        .find(|l| l.starts_with("kiln boot-test") && l.contains("os-release"))
        .expect("docs/boot.md has the os-release example");
    let expect = example.split("--expect ").nth(1).expect("it has --expect");
    let expect = match expect.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap(),
        None => expect.split_whitespace().next().unwrap(),
    };
    let spec = read("sample-repo/specs/azurelinux-release.spec");
    let os_release = spec
        .split("/usr/lib/os-release <<'E'\n")
        .nth(1)
        .and_then(|s| s.split("\nE\n").next())
        .expect("the spec writes /usr/lib/os-release");
    assert!(
        os_release.contains(expect),
        "docs/boot.md expects {expect:?}, which the demo's /etc/os-release does not have:\n{os_release}"
    );
}
