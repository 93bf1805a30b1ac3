//! The fast edit-build-boot loop (docs/cache.md): a rebuild that changes only what comes after
//! the package install restores the package root from the cache and makes the same image as a
//! cold build; what the install sees (packages, users) installs anew; an unchanged build is up
//! to date and makes nothing.

mod common;

use common::{build_args, demo_config, kiln, sample_repo, stderr};
use std::path::{Path, PathBuf};
use std::process::Output;

/// demo-efi.json with its package list and script, copied into `dir` so they can be changed.
fn demo(dir: &Path) -> PathBuf {
    let imageconfigs = demo_config("demo-efi.json").parent().unwrap().to_path_buf();
    for file in [
        "demo-efi.json",
        "packagelists/demo-packages.json",
        "scripts/demo-postinstall.sh",
    ] {
        let to = dir.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(imageconfigs.join(file), &to).unwrap();
    }
    dir.join("demo-efi.json")
}

/// `kiln build` of `config` into `work` (its cache in `cache`), with one SOURCE_DATE_EPOCH.
fn build(config: &Path, work: &Path, cache: &Path, extra: &[&str]) -> Output {
    let mut args = build_args(config, &sample_repo(), work);
    let at = args.iter().position(|a| a == "--package-cache").unwrap();
    args[at + 1] = cache.into();
    let o = kiln()
        .args(args)
        .args(extra)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

fn image(work: &Path) -> Vec<u8> {
    std::fs::read(work.join("images/demo-efi.vhdx")).unwrap()
}

fn says(o: &Output, what: &str) -> bool {
    stderr(o).contains(what)
}

#[test]
fn a_cached_rebuild_is_the_cold_build_and_what_the_install_sees_invalidates_it() {
    let t = tempfile::tempdir().unwrap();
    let config = demo(&t.path().join("config"));
    let cache = t.path().join("cache");
    let (cold, warm) = (t.path().join("cold"), t.path().join("warm"));

    let o = build(&config, &warm, &cache, &[]);
    assert!(says(&o, "package root: installed"), "{}", stderr(&o));
    // Nothing changed: nothing is made.
    let o = build(&config, &warm, &cache, &[]);
    assert!(says(&o, "up to date"), "{}", stderr(&o));
    assert!(!says(&o, "package root"), "{}", stderr(&o));

    // A PostInstallScript and the kernel command line change: the package root is cached,
    // and the image is the cold build's, byte for byte.
    let script = config.parent().unwrap().join("scripts/demo-postinstall.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(
        &script,
        format!("{text}echo changed >> /etc/kiln-postinstall\n"),
    )
    .unwrap();
    let json = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, json.replace("kiln.demo=1", "kiln.demo=2")).unwrap();
    let o = build(&config, &warm, &cache, &[]);
    assert!(says(&o, "package root: cached"), "{}", stderr(&o));
    let o = build(&config, &cold, &cache, &["--no-cache"]);
    assert!(!says(&o, "package root: cached"), "{}", stderr(&o));
    assert!(
        image(&cold) == image(&warm),
        "the cached rebuild differs from the cold build"
    );

    // A user is added between package transactions: installed anew.
    let json = std::fs::read_to_string(&config).unwrap();
    let with_user = json.replace(
        "\"Name\": \"kiln\",",
        "\"Name\": \"kiln\", \"UID\": \"1500\",",
    );
    assert_ne!(json, with_user);
    std::fs::write(&config, &with_user).unwrap();
    let o = build(&config, &warm, &cache, &[]);
    assert!(says(&o, "package root: installed"), "{}", stderr(&o));

    // Another package: installed anew.
    let list = config
        .parent()
        .unwrap()
        .join("packagelists/demo-packages.json");
    let packages = std::fs::read_to_string(&list).unwrap();
    let more = packages.replacen("\"busybox\"", "\"busybox\", \"sample-app\"", 1);
    assert_ne!(packages, more);
    std::fs::write(&list, more).unwrap();
    let o = build(&config, &warm, &cache, &[]);
    assert!(says(&o, "package root: installed"), "{}", stderr(&o));
    // The cache keeps a bounded number of entries.
    let entries = std::fs::read_dir(&cache)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert!(
        (1..=kiln_build::cache::KEEP).contains(&entries),
        "{entries} entries"
    );
}
