//! Up-to-date builds: `kiln build` records, beside the artifacts it made, a key of everything
//! they were made from; a build whose key is the same, with the artifacts still as it left
//! them, composes nothing and says "up to date" (as make does with its targets, but by content,
//! not by times).
//!
//! The key (a SHA-256) covers: the kiln binary; the config file and its parsed form (every
//! setting, defaults included); every file the config names (scripts, AdditionalFiles sources,
//! RawBinaries, PackageLists, SSH keys: contents and modes, directories walked); the fetched
//! packages by checksum (so a new package in a source, or a changed one, rebuilds); the build's
//! own options (release version, image tag, build number, weak deps, snapshot time, network);
//! and `SOURCE_DATE_EPOCH`. Host programs (rpm, mke2fs, …) are not in it: after upgrading them,
//! build with `--no-cache`.
//!
//! The record, `<output folder>/.kiln-inputs`, holds the key and each artifact's name, size
//! and modification time; it is removed before a build composes anything and written after
//! its artifacts are in place, so it never describes artifacts it did not see made.

use kiln_compose::package_root::digest_file;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The record's name in the output folder.
pub const RECORD: &str = ".kiln-inputs";
const FORMAT: &str = "kiln build inputs, format 1";

/// What a build's artifacts are made from.
pub struct Key<'a> {
    pub validated: &'a crate::Validated,
    pub packages: &'a [kiln_repo::Package],
    pub request: &'a crate::BuildRequest,
}

/// The key of a build, in hex.
pub fn key(k: &Key) -> String {
    let loaded = &k.validated.loaded;
    let req = k.request;
    let mut m = String::new();
    let mut line = |key: &str, value: &dyn std::fmt::Debug| {
        let _ = writeln!(m, "{key}: {value:?}");
    };
    line("format", &FORMAT);
    line("kiln", &crate::cache::kiln_fingerprint());
    line("config file", &loaded.config_path);
    line("config digest", &digest_file(&loaded.config_path).ok());
    line("base dir", &loaded.base_dir);
    line("config", &loaded.config);
    for path in loaded.config.host_paths() {
        line(path, &tree_digest(Path::new(path)));
    }
    for p in k.packages {
        line(&p.nevra(), &p.checksum.value);
    }
    line("release version", &req.release_version);
    line("image tag", &req.image_tag);
    line("build number", &req.build_number);
    line("weak deps", &!req.sources.no_weak_deps);
    line("snapshot time", &req.sources.repo_snapshot_time);
    line("network", &req.sandbox.network);
    line(
        "SOURCE_DATE_EPOCH",
        &std::env::var("SOURCE_DATE_EPOCH").ok(),
    );
    crate::cache::sha256_hex(&m)
}

/// A file's mode and content digest; a directory's entries', sorted, recursively.
fn tree_digest(path: &Path) -> String {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return format!("unreadable ({e})"),
    };
    if !meta.is_dir() {
        let digest = digest_file(path).unwrap_or_else(|e| format!("unreadable ({e})"));
        return format!("{:o} {digest}", meta.mode());
    }
    let mut names: Vec<_> = match std::fs::read_dir(path) {
        Ok(list) => list.filter_map(Result::ok).map(|e| e.file_name()).collect(),
        Err(e) => return format!("unreadable ({e})"),
    };
    names.sort();
    let mut text = format!("{:o} [", meta.mode());
    for name in names {
        let _ = write!(text, "{:?}: {}, ", name, tree_digest(&path.join(&name)));
    }
    text.push(']');
    text
}

/// One artifact's line: name, size, modification time (ns).
fn artifact_line(dir: &Path, name: &str) -> Option<String> {
    let meta = std::fs::symlink_metadata(dir.join(name)).ok()?;
    if !meta.is_file() {
        return None;
    }
    Some(format!(
        "{name}\t{}\t{}.{:09}",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

/// The artifacts of `dir` when its record has `key` and every artifact it lists is still as it
/// was written; `None` otherwise.
pub fn check(dir: &Path, key: &str) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(dir.join(RECORD)).ok()?;
    let mut lines = text.lines();
    if lines.next()? != FORMAT || lines.next()? != key {
        return None;
    }
    let mut names = Vec::new();
    for l in lines {
        let name = l.split('\t').next()?;
        if artifact_line(dir, name).as_deref() != Some(l) {
            return None;
        }
        names.push(name.to_string());
    }
    (!names.is_empty()).then_some(names)
}

/// Removes the record (before anything in `dir` is replaced).
pub fn forget(dir: &Path) -> Result<(), String> {
    match std::fs::remove_file(dir.join(RECORD)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", dir.join(RECORD).display()))
        }
        _ => Ok(()),
    }
}

/// Records that the artifacts `names` in `dir` were made from `key` (written under a temporary
/// name and renamed).
pub fn record(dir: &Path, key: &str, names: &[String]) -> Result<(), String> {
    let mut text = format!("{FORMAT}\n{key}\n");
    for name in names {
        let l = artifact_line(dir, name)
            .ok_or_else(|| format!("{} is not a file", dir.join(name).display()))?;
        text.push_str(&l);
        text.push('\n');
    }
    let dest = dir.join(RECORD);
    let (mut file, temp) = kiln_formats::files::create_temp_file(&dest)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .and_then(|_| std::fs::rename(&temp, &dest))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            format!("cannot write {}: {e}", dest.display())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_holds_while_its_artifacts_are_untouched() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        std::fs::write(dir.join("a.vhdx"), b"disk").unwrap();
        let names = vec!["a.vhdx".to_string()];
        assert_eq!(check(dir, "k1"), None, "no record yet");
        record(dir, "k1", &names).unwrap();
        assert_eq!(check(dir, "k1"), Some(names.clone()));
        assert_eq!(check(dir, "k2"), None, "another key");
        // An artifact rewritten (its size or time changes) or removed is not up to date.
        std::fs::write(dir.join("a.vhdx"), b"disk, rewritten").unwrap();
        assert_eq!(check(dir, "k1"), None);
        record(dir, "k1", &names).unwrap();
        std::fs::remove_file(dir.join("a.vhdx")).unwrap();
        assert_eq!(check(dir, "k1"), None);
        forget(dir).unwrap();
        forget(dir).unwrap();
        assert!(!dir.join(RECORD).exists());
    }

    #[test]
    fn a_directory_digest_follows_its_contents_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("files");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/f"), b"one").unwrap();
        let before = tree_digest(&d);
        assert_eq!(before, tree_digest(&d));
        std::fs::write(d.join("sub/f"), b"two").unwrap();
        let changed = tree_digest(&d);
        assert_ne!(before, changed);
        std::fs::set_permissions(d.join("sub/f"), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_ne!(changed, tree_digest(&d));
        assert!(tree_digest(&t.path().join("missing")).starts_with("unreadable"));
    }
}
