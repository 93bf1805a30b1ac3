//! Packages of the sample repository (`make sample-repo`) installed into an image root with
//! `rpm --root`: the rpmdb lists exactly them, scriptlets ran inside the root (busybox's applet
//! links, sample-app's %post and %posttrans log), and rpm's own complaints reach the user.

use kiln_compose::finish::{remove_rpm_db, run_script, write_rpm_manifests};
use kiln_compose::install::{init_db, install_stage, stages, PackageFile, RpmSettings};
use kiln_compose::RunOptions;
use kiln_sandbox::ImageRoot;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sample_repo() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/sample-repo");
    assert!(
        p.join("repodata").is_dir(),
        "the sample repository is missing: run `make sample-repo` first"
    );
    p
}

fn package(file: &str) -> PackageFile {
    let path = sample_repo().join(file);
    let name = file.rsplitn(3, '-').nth(2).unwrap().to_string();
    PackageFile { name, path }
}

#[test]
fn packages_land_in_the_rpmdb_and_scriptlets_run_inside_the_root() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let files = [
        "sample-app-1.2-3.azl3.noarch.rpm",
        "sample-libfoo-1.1-1.azl3.noarch.rpm",
        "sample-mta-postfix-1.0-1.azl3.noarch.rpm",
        "shadow-utils-4.14.3-1.azl3.noarch.rpm",
        "busybox-1.35.0-1.azl3.x86_64.rpm",
        "filesystem-1.1-1.azl3.noarch.rpm",
    ];
    let packages: Vec<PackageFile> = files.iter().map(|f| package(f)).collect();
    let settings = RpmSettings::default();
    let stages = stages(&packages, &["shadow-utils", "busybox"]);
    let plan: Vec<String> = stages
        .iter()
        .map(|s| format!("{}:{}", s.what, s.packages.len()))
        .collect();
    assert_eq!(
        plan,
        ["filesystem:1", "the first packages:2", "the packages:3"]
    );
    init_db(&root, &settings, &RunOptions::default(), &mut |_| {}).unwrap();
    for s in &stages {
        install_stage(&root, s, &settings, &RunOptions::default(), &mut |_| {}).unwrap();
    }

    let qa = Command::new("rpm")
        .arg("--root")
        .arg(&root)
        .args([
            "--dbpath",
            "/var/lib/rpm",
            "-qa",
            "--qf",
            "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm\n",
        ])
        .output()
        .unwrap();
    let mut listed: Vec<String> = String::from_utf8(qa.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    let mut want: Vec<String> = files.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
    assert!(root.join("var/lib/rpm/rpmdb.sqlite").is_file());

    // busybox's %post made its applet links inside the root; sample-app's %pre, %post and
    // %posttrans wrote their log there.
    assert!(std::fs::symlink_metadata(root.join("bin/ls"))
        .unwrap()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(root.join("var/log/sample-app.log")).unwrap(),
        "pre 1\npost 1\nposttrans\n"
    );

    // The same root, finished: a script runs inside it (busybox's sh) with its arguments and is
    // gone afterwards; a failing one reports its output.
    let script = d.path().join("scripts/post.sh");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$1\" > /etc/from-script\necho done\n",
    )
    .unwrap();
    let image = ImageRoot::open(&root).unwrap();
    let run = RunOptions::default();
    let mut out = Vec::new();
    run_script(&image, &script, "demo-arg", &run, &mut |l| {
        out.push(l.to_string())
    })
    .unwrap();
    assert_eq!(out, ["done"]);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/from-script")).unwrap(),
        "demo-arg\n"
    );
    assert!(!root.join("tmp/kiln-scripts").exists());
    assert!(!root
        .join(script.parent().unwrap().strip_prefix("/").unwrap())
        .exists());
    std::fs::write(&script, "#!/bin/sh\necho broken >&2\nexit 3\n").unwrap();
    let e = run_script(&image, &script, "", &run, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("exit status 3") && e.contains("broken"), "{e}");

    // Manifests in upstream's formats, then RemoveRpmDb.
    write_rpm_manifests(&image, &run, &mut |_| {}).unwrap();
    let m1 =
        std::fs::read_to_string(root.join("var/lib/rpmmanifest/container-manifest-1")).unwrap();
    let mut m1: Vec<String> = m1.lines().map(|l| format!("{l}.rpm")).collect();
    m1.sort();
    assert_eq!(m1, want);
    let m2 =
        std::fs::read_to_string(root.join("var/lib/rpmmanifest/container-manifest-2")).unwrap();
    let app = m2.lines().find(|l| l.starts_with("sample-app\t")).unwrap();
    let fields: Vec<&str> = app.split('\t').collect();
    assert_eq!(fields.len(), 10, "{app}");
    assert_eq!(
        [fields[1], fields[5], fields[7], fields[8], fields[9]],
        [
            "1.2-3.azl3",
            "(none)",
            "noarch",
            "0",
            "sample-app-1.2-3.azl3.src.rpm"
        ]
    );
    remove_rpm_db(&image).unwrap();
    assert!(!root.join("var/lib/rpm").exists());
}

#[test]
fn rpm_failures_name_the_packages_and_say_why() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let settings = RpmSettings::default();
    init_db(&root, &settings, &RunOptions::default(), &mut |_| {}).unwrap();
    let stage = &stages(&[package("sample-app-1.2-3.azl3.noarch.rpm")], &[])[0];
    let e = install_stage(&root, stage, &settings, &RunOptions::default(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("installing sample-app into the image failed:")
            && e.contains("sample-libfoo >= 1.1 is needed by sample-app"),
        "{e}"
    );
    assert!(!e.contains("Alien"), "{e}");
}

#[test]
fn macro_files_are_upstreams_exactly() {
    let spec = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/azl-compat/SPEC.md"),
    )
    .unwrap();
    // The two fenced blocks of SPEC §3.3 step 5, unindented.
    let blocks: Vec<String> = spec
        .split("```")
        .filter(|b| b.contains("dynamically generated by the Azure Linux Toolkit"))
        .map(|b| {
            b.lines()
                .skip(1)
                .map(|l| l.strip_prefix("   ").unwrap_or(l).to_string() + "\n")
                .collect::<String>()
                .trim_end_matches([' ', '\n'])
                .to_string()
                + "\n"
        })
        .collect();
    assert_eq!(blocks.len(), 2);
    let files = RpmSettings {
        exclude_docs: true,
        install_langs: "en:fr".into(),
    }
    .macro_files();
    assert_eq!(files[0].1, blocks[0]);
    assert_eq!(
        files[1].1,
        blocks[1].replace("<OverrideRpmLocales>", "en:fr")
    );
}
