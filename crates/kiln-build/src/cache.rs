//! The incremental cache (as mkosi's `Incremental=`): package roots kept between builds, so a
//! rebuild after changing only scripts, AdditionalFiles, the kernel command line or anything
//! else the install does not see restores the installed packages instead of installing them.
//!
//! What a package root depends on is kiln-compose's to say ([`kiln_compose::package_root`]): its
//! manifest names every package file by digest, the rpm that installs them, the rpm settings,
//! the identity seed, and the hostname, groups and users upstream's order adds between package
//! transactions. An entry is keyed by the SHA-256 of that manifest and of the kiln binary (a
//! changed kiln may install differently):
//!
//! ```text
//! <dir>/<key>/manifest   the manifest (its modification time: when the entry was last used)
//! <dir>/<key>/root/      the package root
//! <dir>/.kiln-lock       held while an entry is looked up, copied in or out, or evicted
//! ```
//!
//! An entry is written as a temporary (`.<key>.kiln-tmp-<pid>-<n>`, see docs/workdirs.md) and
//! renamed into place when complete; the [`KEEP`] most recently used entries stay, older ones
//! are removed after each store.
//!
//! A disk build's package root (a staged root in a work folder that goes when the build ends)
//! is restored as an overlay ([`kiln_sandbox::mounts::Overlay`]) in kiln's own mount namespace
//! ([`enter_mount_namespace`]): the entry's `root/` read-only below, the build's changes in a
//! folder beside the staged root, nothing copied. The entry is held (a shared `flock` on its
//! `manifest`) while mounted, so another build's eviction leaves it alone; [`PackageRoots::release`]
//! unmounts it before the work folder is removed. Where an overlay cannot be mounted (no
//! namespace of kiln's own, a rootless build, a kernel or filesystem overlayfs refuses), and for
//! roots that outlive the build (`kiln compose`'s rootfs), the entry is copied, and the build's
//! log says which (`package root: cached (overlay)`, `(copied)`, `(copied; no overlay: why)`).
//!
//! Copies are made by coreutils' `cp -a --preserve=xattr --reflink=auto`: it keeps owners,
//! modes, times, hard links, sparse files, device nodes and extended attributes (file
//! capabilities, SELinux labels) — failing, not warning, when an attribute cannot be kept — and
//! shares the blocks instead of copying them where the filesystem can (btrfs, XFS). A Rust twin
//! of it would be a few hundred lines of walking, `mknod`, `fchownat`, `utimensat`, xattr and
//! hard-link bookkeeping for no gain. The copies are of trees kiln made, into a folder kiln
//! made; nothing runs inside the image.

use kiln_compose::package_root::{digest_file, PackageRootCache};
use kiln_sandbox::mounts::Overlay;
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The cache kiln build uses unless told otherwise (beside the repository metadata cache).
pub const DEFAULT_DIR: &str = "out/cache/package-roots";
/// How many entries stay (the most recently used).
pub const KEEP: usize = 3;

/// What the cache did for a build's package root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Restored from this entry.
    Cached(PathBuf),
    /// Installed, and kept in this entry (or not, with why).
    Installed(Result<PathBuf, String>),
}

/// Lets a rebuild mount its cached package root as an overlay instead of copying it: moves
/// kiln into a mount namespace of its own ([`kiln_sandbox::mounts`]). Call it first thing in a
/// command that builds, while kiln is single-threaded. It never fails the command: without the
/// namespace, rebuilds copy the package root and their log says why.
pub fn enter_mount_namespace() {
    let _ = kiln_sandbox::mounts::enter_private_namespace();
}

/// A folder of package roots.
#[derive(Debug)]
pub struct PackageRoots {
    dir: PathBuf,
    keep: usize,
    outcome: RefCell<Option<Outcome>>,
    notes: RefCell<Vec<String>>,
    overlay: Cell<bool>,
    mounted: RefCell<Option<Mounted>>,
}

/// A cached root mounted as an overlay, and the shared lock that keeps its entry from eviction.
#[derive(Debug)]
struct Mounted {
    overlay: Overlay,
    _in_use: File,
}

impl PackageRoots {
    pub fn new(dir: impl Into<PathBuf>) -> PackageRoots {
        PackageRoots {
            dir: dir.into(),
            keep: KEEP,
            outcome: RefCell::new(None),
            notes: RefCell::new(Vec::new()),
            overlay: Cell::new(false),
            mounted: RefCell::new(None),
        }
    }

    /// Tells the cache that the roots it restores from now on are staged roots in a work folder
    /// that is removed after [`PackageRoots::release`]: they may be overlays of the entry, with
    /// their changes in folders beside them (`<root>.upper`, `<root>.work`, `<root>.lower`).
    pub fn restore_as_overlay(&self) {
        self.overlay.set(true);
    }

    /// Unmounts the overlay a restore mounted, if any (call it before removing the work folder).
    pub fn release(&self) -> Result<(), String> {
        match self.mounted.borrow_mut().take() {
            Some(m) => m
                .overlay
                .unmount()
                .map_err(|e| format!("the cached package root's overlay: {e}")),
            None => Ok(()),
        }
    }

    /// Keeps at most `keep` entries (at least one).
    pub fn keep(mut self, keep: usize) -> PackageRoots {
        self.keep = keep.max(1);
        self
    }

    /// What happened to the package root of the last populate (none: it was not reached).
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome.borrow().clone()
    }

    /// What the cache has to tell (a wait for its lock, temporaries removed, entries evicted).
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut self.notes.borrow_mut())
    }

    /// The entry for `manifest`.
    pub fn entry(&self, manifest: &str) -> PathBuf {
        self.dir.join(key(manifest))
    }

    /// The entries, most recently used first.
    pub fn entries(&self) -> Vec<PathBuf> {
        let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| !kiln_formats::files::is_temp_name(&e.file_name()))
            .filter_map(|e| {
                let used = e.path().join("manifest").metadata().ok()?.modified().ok()?;
                Some((used, e.path()))
            })
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        found.into_iter().map(|(_, p)| p).collect()
    }

    /// Locks the cache folder (waiting for another kiln) and removes what a killed kiln left.
    fn lock(&self) -> Result<crate::workdirs::Locks, String> {
        let mut notes = Vec::new();
        let locks = crate::workdirs::lock(&[&self.dir], true, &mut |l| notes.push(l.to_string()))?;
        crate::workdirs::sweep(&self.dir, &mut |l| notes.push(l.to_string()))?;
        self.notes.borrow_mut().extend(notes);
        Ok(locks)
    }

    /// Mounts the entry's root on `root` as an overlay, its changes beside `root`.
    fn mount(&self, entry: &Path, root: &Path) -> Result<(), String> {
        kiln_sandbox::mounts::private_namespace()?;
        let name = root
            .file_name()
            .ok_or_else(|| format!("{} has no name", root.display()))?
            .to_string_lossy()
            .into_owned();
        let side = |what: &str| root.with_file_name(format!("{name}.{what}"));
        let (lower_at, upper, work) = (side("lower"), side("upper"), side("work"));
        let in_use = File::open(entry.join("manifest"))
            .map_err(|e| format!("{}: {e}", entry.join("manifest").display()))?;
        kiln_formats::files::lock_file_shared(&in_use)
            .map_err(|e| format!("locking {}: {e}", entry.display()))?;
        let mounted = [&lower_at, &upper, &work]
            .iter()
            .try_for_each(|d| {
                std::fs::create_dir(d).map_err(|e| format!("creating {}: {e}", d.display()))
            })
            .and_then(|()| Overlay::mount(&entry.join("root"), &lower_at, &upper, &work, root));
        match mounted {
            Ok(overlay) => {
                *self.mounted.borrow_mut() = Some(Mounted {
                    overlay,
                    _in_use: in_use,
                });
                Ok(())
            }
            Err(e) => {
                for d in [&lower_at, &upper, &work] {
                    let _ = crate::workdirs::remove_tree(d);
                }
                Err(e)
            }
        }
    }

    /// Removes entries beyond the `keep` most recently used, but not one another build has
    /// mounted.
    fn evict(&self) -> Result<(), String> {
        for old in self.entries().into_iter().skip(self.keep) {
            if in_use(&old) {
                self.notes.borrow_mut().push(format!(
                    "kept the package root cache entry {}: another build has it mounted",
                    old.display()
                ));
                continue;
            }
            crate::workdirs::remove_tree(&old)?;
            self.notes.borrow_mut().push(format!(
                "removed the package root cache entry {} (keeping the {} most recently used)",
                old.display(),
                self.keep
            ));
        }
        Ok(())
    }
}

/// Whether a build holds `entry` mounted (its manifest's shared lock).
fn in_use(entry: &Path) -> bool {
    File::open(entry.join("manifest"))
        .and_then(|f| kiln_formats::files::lock_file(&f, false))
        .is_ok_and(|locked| !locked)
}

impl PackageRootCache for PackageRoots {
    fn restore(&self, manifest: &str, root: &Path) -> Result<Option<String>, String> {
        let _lock = self.lock()?;
        let entry = self.entry(manifest);
        let kept = std::fs::read_to_string(entry.join("manifest")).ok();
        if kept.as_deref() != Some(manifest) || !entry.join("root").is_dir() {
            return Ok(None);
        }
        let no_overlay = if self.overlay.get() {
            self.mount(&entry, root).err()
        } else {
            Some(String::new())
        };
        if no_overlay.is_some() {
            copy_tree(&entry.join("root"), root).map_err(|e| {
                format!(
                    "{e}; the image root is left half-filled: build again with --no-cache, or \
                     remove {}",
                    entry.display()
                )
            })?;
        }
        // Its modification time says when it was last used.
        let _ = std::fs::File::options()
            .append(true)
            .open(entry.join("manifest"))
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        *self.outcome.borrow_mut() = Some(Outcome::Cached(entry));
        Ok(Some(match no_overlay {
            None => "overlay".to_string(),
            Some(why) if why.is_empty() => "copied".to_string(),
            Some(why) => format!("copied; no overlay: {why}"),
        }))
    }

    fn store(&self, manifest: &str, root: &Path) -> Result<(), String> {
        let result = (|| {
            let _lock = self.lock()?;
            let entry = self.entry(manifest);
            if !entry.exists() {
                let temp = kiln_formats::files::TempDir::create(&entry).map_err(|e| {
                    format!("cannot create a folder in {}: {e}", self.dir.display())
                })?;
                copy_tree(root, &temp.path().join("root"))?;
                std::fs::write(temp.path().join("manifest"), manifest)
                    .map_err(|e| format!("{}: {e}", temp.path().display()))?;
                temp.persist(&entry)
                    .map_err(|e| format!("{}: {e}", entry.display()))?;
            }
            self.evict()?;
            Ok(entry)
        })();
        let stored = result.clone().map(|_| ());
        *self.outcome.borrow_mut() = Some(Outcome::Installed(result));
        stored
    }
}

/// The entry name of a manifest: its SHA-256 with the kiln binary's.
fn key(manifest: &str) -> String {
    let text = format!("{}\0{manifest}", kiln_fingerprint());
    let mut hex = sha256_hex(&text);
    hex.truncate(32);
    hex
}

/// The SHA-256 of a text, in hex.
pub(crate) fn sha256_hex(text: &str) -> String {
    kiln_repo::Checksum::compute("sha256", text.as_bytes()).expect("reading memory cannot fail")
}

/// The SHA-256 of the running kiln binary (computed once).
pub fn kiln_fingerprint() -> &'static str {
    static FINGERPRINT: OnceLock<String> = OnceLock::new();
    FINGERPRINT.get_or_init(|| {
        std::env::current_exe()
            .map_err(|e| e.to_string())
            .and_then(|exe| digest_file(&exe))
            .unwrap_or_else(|e| format!("unknown kiln binary ({e})"))
    })
}

/// Copies the tree `from` to `to` (a new path, or an empty directory whose attributes become
/// those of `from`), everything kept (see the module's notes on `cp`).
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let output = Command::new("cp")
        .args(["-a", "--preserve=xattr", "--reflink=auto", "-T", "--"])
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| format!("cannot run cp (coreutils): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "copying {} to {} failed: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// A small tree with what a package root has: modes, a hard link, a symlink, an xattr.
    fn tree(root: &Path) {
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::set_permissions(root.join("etc"), std::fs::Permissions::from_mode(0o750)).unwrap();
        std::fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd-")).unwrap();
        std::os::unix::fs::symlink("../nowhere", root.join("etc/link")).unwrap();
    }

    #[test]
    fn a_stored_root_comes_back_the_same_and_old_entries_go() {
        let t = tempfile::tempdir().unwrap();
        let cache = PackageRoots::new(t.path().join("cache")).keep(2);
        let root = t.path().join("root");
        tree(&root);
        let empty = t.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(
            cache.restore("m1", &empty).unwrap().is_none(),
            "nothing kept yet"
        );
        cache.store("m1", &root).unwrap();
        assert!(matches!(cache.outcome(), Some(Outcome::Installed(Ok(_)))));

        assert_eq!(
            cache.restore("m1", &empty).unwrap().as_deref(),
            Some("copied")
        );
        assert_eq!(cache.outcome(), Some(Outcome::Cached(cache.entry("m1"))));
        let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
        assert_eq!(
            meta(&empty.join("etc")).mode(),
            meta(&root.join("etc")).mode()
        );
        assert_eq!(
            meta(&empty.join("etc")).mtime(),
            meta(&root.join("etc")).mtime()
        );
        assert_eq!(
            meta(&empty.join("etc/passwd")).ino(),
            meta(&empty.join("etc/passwd-")).ino(),
            "hard links stay hard links"
        );
        assert_eq!(
            std::fs::read_link(empty.join("etc/link")).unwrap(),
            Path::new("../nowhere")
        );
        // Another manifest is another entry; a third evicts the least recently used.
        let other = t.path().join("other");
        std::fs::create_dir(&other).unwrap();
        assert!(cache.restore("m2", &other).unwrap().is_none());
        cache.store("m2", &root).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(cache.restore("m1", &other).is_ok(), "m1 used last");
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.store("m3", &root).unwrap();
        let left = cache.entries();
        assert_eq!(left, vec![cache.entry("m3"), cache.entry("m1")]);
        assert!(cache.take_notes().iter().any(|n| n.contains("removed")));
    }

    #[test]
    fn an_entry_is_never_half_written_under_its_name() {
        let t = tempfile::tempdir().unwrap();
        let cache = PackageRoots::new(t.path().join("cache"));
        let missing = t.path().join("no-such-root");
        let e = cache.store("m", &missing).unwrap_err();
        assert!(e.contains("copying"), "{e}");
        assert!(!cache.entry("m").exists());
        let names: Vec<_> = std::fs::read_dir(t.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| n == crate::workdirs::LOCK_FILE),
            "only the lock file is left: {names:?}"
        );
    }
}
