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

/// The demo config copied under `dir` and built once into `dir/warm`, installing its package
/// root into `dir/cache`: (config, cache, cold output folder, warm output folder).
fn first_build(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let config = demo(&dir.join("config"));
    let cache = dir.join("cache");
    let (cold, warm) = (dir.join("cold"), dir.join("warm"));
    let o = build(&config, &warm, &cache, &[]);
    assert!(says(&o, "package root: installed"), "{}", stderr(&o));
    (config, cache, cold, warm)
}

#[test]
fn a_cached_rebuild_is_the_cold_build_and_what_the_install_sees_invalidates_it() {
    let t = tempfile::tempdir().unwrap();
    let (config, cache, cold, warm) = first_build(t.path());
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

/// What a build must never change in a cache entry, one line a path: type, mode, owner,
/// modification time, content (its digest) or link target, and extended attributes.
fn entry_state(entry: &Path) -> Vec<String> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let mut lines = Vec::new();
    let mut stack = vec![entry.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let what = if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            "dir".to_string()
        } else if m.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(&p).unwrap().display())
        } else if m.is_file() {
            kiln_repo::Checksum::of_file("sha256", &p).unwrap()
        } else {
            format!("rdev {}", m.rdev())
        };
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let mut names = vec![0u8; 65536];
        // SAFETY: a valid C string and a buffer of the given length.
        let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        names.truncate(n.max(0) as usize);
        lines.push(format!(
            "{} {what} {:o} {}:{} {}.{} links {} xattrs {}",
            p.strip_prefix(entry).unwrap().display(),
            m.mode(),
            m.uid(),
            m.gid(),
            m.mtime(),
            m.mtime_nsec(),
            m.nlink(),
            String::from_utf8_lossy(&names)
        ));
    }
    lines.sort();
    lines
}

/// A rebuild's script changes package files in place — appends to one, links another, chmods,
/// renames a package directory, removes a file, writes into the ESP — on a package root the
/// cache mounts as an overlay: the image is still the cold build's, the cache entry is left as
/// it was, and every mount (the overlay's too) is made inside a new mount namespace, never in
/// the build host's (strace).
#[test]
fn a_rebuild_that_changes_package_files_is_the_cold_build_and_leaves_the_cache_alone() {
    let t = tempfile::tempdir().unwrap();
    let (config, cache, cold, warm) = first_build(t.path());
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("root").is_dir())
        .expect("an entry");
    // The root (the manifest's modification time says when the entry was last used).
    let before = entry_state(&entry.join("root"));
    assert!(
        before.iter().any(|l| l.starts_with("etc/login.defs ")),
        "the entry holds the package root"
    );

    let script = config.parent().unwrap().join("scripts/demo-postinstall.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    std::fs::write(
        &script,
        format!(
            "{text}echo '# changed' >> /etc/login.defs\nln /etc/login.defs /etc/login.defs.link\n\
             chmod 600 /etc/default/useradd\nmv /etc/skel /etc/skel.moved\nrm /etc/shells\n\
             mkdir /etc/kiln.d\necho x > /etc/kiln.d/x\necho esp > /boot/efi/kiln-esp\n"
        ),
    )
    .unwrap();
    let trace = t.path().join("trace");
    let mut args = build_args(&config, &sample_repo(), &warm);
    let at = args.iter().position(|a| a == "--package-cache").unwrap();
    args[at + 1] = cache.clone().into();
    let o = std::process::Command::new("strace")
        .args(common::STRACE_ARGS)
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(says(&o, "package root: cached (overlay)"), "{}", stderr(&o));
    let log = std::fs::read_to_string(&trace).unwrap();
    assert!(
        log.contains("fsopen(\"overlay\""),
        "strace saw the overlay mounted"
    );
    let offending = common::mounts_outside_a_namespace(&log);
    assert!(offending.is_empty(), "{}", offending.join("\n"));
    assert_eq!(
        entry_state(&entry.join("root")),
        before,
        "the cache entry changed"
    );

    let o = build(&config, &cold, &cache, &["--no-cache"]);
    assert!(!says(&o, "package root: cached"), "{}", stderr(&o));
    assert!(
        image(&cold) == image(&warm),
        "the cached rebuild differs from the cold build"
    );
    // Nothing of the overlay is left in the build folder.
    let left: Vec<_> = walkdir(&warm.join("build"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".upper"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.push(p);
    }
    out
}
