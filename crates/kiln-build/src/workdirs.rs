//! The folders a build works in: the lock that keeps two builds out of one folder, the marker
//! that tells a build folder kiln made from a user's folder, and the sweep of temporaries a
//! killed kiln left.

use kiln_formats::files;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file of a folder a build works in (`flock`ed; it holds the holder's PID).
pub const LOCK_FILE: &str = ".kiln-lock";
/// The marker of a build folder kiln created; kiln empties only folders that carry it.
pub const MARKER_FILE: &str = ".kiln-build-dir";
/// The marker's first line (its format).
pub const MARKER_LINE: &str = "kiln build directory, format 1";
/// What a build folder of kiln before the marker held: such a default folder is adopted.
const KILN_ENTRIES: &[&str] = &[
    LOCK_FILE,
    "package_repo",
    "image_deps.json",
    "imager_output",
    "artifacts",
];

/// Locks held on folders; released when dropped, or by the kernel when kiln dies.
#[derive(Debug)]
pub struct Locks {
    _held: Vec<File>,
}

/// Takes the lock of each folder in `dirs` (created when missing; a folder named twice is
/// locked once). Fails at once when another kiln holds one, naming its PID, unless `wait`.
pub fn lock(dirs: &[&Path], wait: bool, say: &mut dyn FnMut(&str)) -> Result<Locks, String> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut held = Vec::new();
    for dir in dirs {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the folder {}: {e}", dir.display()))?;
        let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        held.push(lock_one(dir, wait, say)?);
    }
    Ok(Locks { _held: held })
}

fn lock_one(dir: &Path, wait: bool, say: &mut dyn FnMut(&str)) -> Result<File, String> {
    let path = dir.join(LOCK_FILE);
    let failed = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| failed("open the lock file", e))?;
    if !files::lock_file(&file, false).map_err(|e| failed("lock", e))? {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim() {
            "" => "another kiln".to_string(),
            pid => format!("another kiln (PID {pid})"),
        };
        if !wait {
            return Err(format!(
                "{} is in use by {holder}, which holds {}: wait for that build to finish, or \
                 pass --wait-lock to wait for it, or use other --build-dir/--output-dir folders",
                dir.display(),
                path.display()
            ));
        }
        say(&format!(
            "waiting for {holder} to release {}",
            dir.display()
        ));
        files::lock_file(&file, true).map_err(|e| failed("lock", e))?;
    }
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .map_err(|e| failed("write", e))?;
    Ok(file)
}

/// Makes sure `dir` is a build folder kiln may empty: creates it with the marker when missing,
/// marks it when it is empty, and refuses a non-empty folder without the marker (unless
/// `default` and it holds only what an older kiln put there).
pub fn claim_build_dir(dir: &Path, default: bool) -> Result<(), String> {
    let marker = dir.join(MARKER_FILE);
    let marked = std::fs::read_to_string(&marker)
        .map(|s| s.lines().next() == Some(MARKER_LINE))
        .unwrap_or(false);
    if !marked {
        let entries: Vec<String> = match std::fs::read_dir(dir) {
            Ok(list) => list
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(format!(
                    "cannot read the build folder {}: {e}",
                    dir.display()
                ))
            }
        };
        let foreign: Vec<&String> = entries
            .iter()
            .filter(|e| e.as_str() != LOCK_FILE && !(default && KILN_ENTRIES.contains(&e.as_str())))
            .collect();
        if !foreign.is_empty() {
            return Err(format!(
                "the build folder {} is not empty and kiln did not create it (it has no {MARKER_FILE}; \
                 it holds {}{}): kiln replaces and removes files in its build folder, so it does not \
                 use this one; give --build-dir an empty or new folder",
                dir.display(),
                foreign.iter().take(3).map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                if foreign.len() > 3 { ", …" } else { "" }
            ));
        }
        std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&marker, format!("{MARKER_LINE}\n")))
            .map_err(|e| format!("cannot mark the build folder {}: {e}", marker.display()))?;
    }
    Ok(())
}

/// Removes the temporaries a killed kiln left in `dir` (see [`files::sweep_stale`]), saying
/// which.
pub fn sweep(dir: &Path, say: &mut dyn FnMut(&str)) -> Result<(), String> {
    let removed = files::sweep_stale(dir)
        .map_err(|e| format!("removing stale temporaries in {}: {e}", dir.display()))?;
    for path in removed {
        say(&format!(
            "removed {} (a temporary left by a kiln that was stopped)",
            path.display()
        ));
    }
    Ok(())
}

/// Removes a tree kiln made (see [`files::remove_tree`]).
pub fn remove_tree(path: &Path) -> Result<(), String> {
    files::remove_tree(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_or_empty_folder_is_marked_and_a_users_folder_refused() {
        let t = tempfile::tempdir().unwrap();
        let new = t.path().join("new");
        claim_build_dir(&new, false).unwrap();
        assert!(std::fs::read_to_string(new.join(MARKER_FILE))
            .unwrap()
            .starts_with(MARKER_LINE));
        std::fs::write(new.join("package_repo"), b"").unwrap();
        claim_build_dir(&new, false).unwrap();

        let mine = t.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        std::fs::write(mine.join("imager_output"), b"mine").unwrap();
        let e = claim_build_dir(&mine, false).unwrap_err();
        assert!(e.contains("not empty and kiln did not create it"), "{e}");
        assert!(
            e.contains("imager_output") && e.contains("an empty or new folder"),
            "{e}"
        );
        assert!(!mine.join(MARKER_FILE).exists());
        // An older kiln's default folder is adopted.
        claim_build_dir(&mine, true).unwrap();
        std::fs::write(mine.join("notes.txt"), b"mine").unwrap();
        std::fs::remove_file(mine.join(MARKER_FILE)).unwrap();
        assert!(claim_build_dir(&mine, true).is_err());
    }

    #[test]
    fn a_held_lock_names_its_holder() {
        let t = tempfile::tempdir().unwrap();
        let mut quiet = |_: &str| {};
        let first = lock(&[t.path(), t.path()], false, &mut quiet).unwrap();
        let e = lock(&[t.path()], false, &mut quiet).unwrap_err();
        assert!(
            e.contains(&format!("(PID {})", std::process::id())) && e.contains("--wait-lock"),
            "{e}"
        );
        assert!(e.contains(&t.path().display().to_string()), "{e}");
        drop(first);
        // A fork by another test may hold a copy of the lock until the child execs.
        let again = (0..100).find_map(|_| {
            let l = lock(&[t.path()], false, &mut quiet).ok();
            if l.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            l
        });
        assert!(
            again.is_some(),
            "the lock is free once its holder is dropped"
        );
    }
}
