//! kiln's temporaries and the trees it removes.
//!
//! Everything kiln writes under a final name is first written under a temporary name in the
//! final name's own directory (so the last step is a rename within one filesystem):
//! `.<final name>.kiln-tmp-<pid>-<n>`. The writer holds an exclusive `flock` on the temporary
//! (a file, or a directory) for as long as it exists, so a temporary that nobody holds was left
//! by a killed kiln: [`sweep_stale`] removes those, and only those — never a name without
//! kiln's pattern, never one a live writer holds.
//!
//! [`remove_tree`] is how kiln removes a tree it made: it never follows a symbolic link and never
//! descends into another mount (a bind mount or another filesystem mounted inside the tree is
//! left in place and reported).

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What sits between the final name and the writer's PID in a temporary's name.
pub const TEMP_MARK: &str = ".kiln-tmp-";

/// How many times a temporary is created again when a sweeper removed it before it was locked.
const CREATE_ATTEMPTS: usize = 8;

/// A fresh temporary name for `dest`, in `dest`'s directory: `.<name>.kiln-tmp-<pid>-<n>`.
pub fn temp_path(dest: &Path) -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = dest.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", dest.display()),
        )
    })?;
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        "{TEMP_MARK}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(dest.with_file_name(tmp))
}

/// Whether `name` is one of kiln's temporary names: `.<name>.kiln-tmp-<digits>[-<digits>]`.
pub fn is_temp_name(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let Some(at) = name.rfind(TEMP_MARK) else {
        return false;
    };
    let tail = &name[at + TEMP_MARK.len()..];
    let numbers: Vec<&str> = tail.split('-').collect();
    name.starts_with('.')
        && at > 1
        && numbers.len() <= 2
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Takes an exclusive `flock` on `file`, waiting for it when `wait`. `Ok(false)`: another open
/// file holds it (only without `wait`). The kernel releases it when the file is closed, or the
/// process dies.
pub fn lock_file(file: &File, wait: bool) -> io::Result<bool> {
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    flock(file, op)
}

/// Takes a shared `flock` on `file`, waiting while another open file holds it exclusively
/// (readers of a thing that must not be removed meanwhile; see [`lock_file`]).
pub fn lock_file_shared(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_SH).map(|_| ())
}

fn flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor this File owns.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Whether `file` is still what `path` names (a sweeper did not remove it meanwhile).
fn still_named(file: &File, path: &Path) -> io::Result<bool> {
    let open = file.metadata()?;
    Ok(match std::fs::symlink_metadata(path) {
        Ok(named) => named.dev() == open.dev() && named.ino() == open.ino(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    })
}

/// Makes a new temporary for `dest` with `make` and locks it; returns its handle and path.
fn create_locked(
    dest: &Path,
    make: impl Fn(&Path) -> io::Result<File>,
) -> io::Result<(File, PathBuf)> {
    for _ in 0..CREATE_ATTEMPTS {
        let path = temp_path(dest)?;
        let file = make(&path)?;
        lock_file(&file, true)?;
        if still_named(&file, &path)? {
            return Ok((file, path));
        }
    }
    Err(io::Error::other(format!(
        "{}: temporaries for it kept being removed while being created",
        dest.display()
    )))
}

/// A new, empty, locked temporary file for `dest` in `dest`'s directory (read and write).
pub fn create_temp_file(dest: &Path) -> io::Result<(File, PathBuf)> {
    create_locked(dest, |path| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    })
}

/// A temporary directory for `dest` in `dest`'s directory, locked while this value lives and
/// removed (with [`remove_tree`]) when it is dropped. [`TempDir::persist`] gives it its final
/// name instead.
#[derive(Debug)]
pub struct TempDir {
    lock: Option<File>,
    path: PathBuf,
}

impl TempDir {
    /// Creates it (mode 0755); `dest`'s directory must exist.
    pub fn create(dest: &Path) -> io::Result<TempDir> {
        let (lock, path) = create_locked(dest, |path| {
            std::fs::create_dir(path)?;
            File::open(path)
        })?;
        Ok(TempDir {
            lock: Some(lock),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames it to `dest` (in the same directory, so the same filesystem).
    pub fn persist(mut self, dest: &Path) -> io::Result<()> {
        std::fs::rename(&self.path, dest)?;
        self.lock = None;
        Ok(())
    }

    /// Removes it in a background thread, which holds its lock until the tree is gone (a
    /// sweeper leaves it alone meanwhile): a staged root's thousands of unlinks overlap the
    /// next step instead of delaying it. [`finish_removals`] waits for them; a kiln that exits
    /// first leaves a temporary the next sweep removes.
    pub fn remove_in_background(mut self) {
        let Some(lock) = self.lock.take() else { return };
        let path = std::mem::take(&mut self.path);
        let handle = std::thread::spawn(move || {
            let removed = remove_tree(&path);
            drop(lock);
            removed
        });
        PENDING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
    }
}

/// Removals running in background threads ([`TempDir::remove_in_background`]).
type Removal = std::thread::JoinHandle<Result<(), RemoveError>>;
static PENDING: std::sync::Mutex<Vec<Removal>> = std::sync::Mutex::new(Vec::new());

/// Waits for every background removal; returns what could not be removed (as a dropped
/// [`TempDir`] would leave it).
pub fn finish_removals() -> Vec<RemoveError> {
    let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
    pending
        .into_iter()
        .filter_map(|h| h.join().ok().and_then(Result::err))
        .collect()
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = remove_tree(&self.path);
        }
    }
}

/// Removes the temporaries in `dir` (not below it) that a killed kiln left: names with kiln's
/// pattern ([`is_temp_name`]) that are regular files or directories no one holds locked.
/// Returns what it removed; a missing `dir` has none.
pub fn sweep_stale(dir: &Path) -> Result<Vec<PathBuf>, RemoveError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if !is_temp_name(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err(&path))?;
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            // Gone meanwhile (its writer finished).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&path)(e)),
        };
        if !lock_file(&file, false).map_err(io_err(&path))?
            || !still_named(&file, &path).map_err(io_err(&path))?
        {
            continue;
        }
        if kind.is_dir() {
            remove_tree(&path)?;
        } else {
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
        removed.push(path);
    }
    Ok(removed)
}

/// Why [`remove_tree`] left something in place.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("cannot remove {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{} is a mount point inside {}: kiln does not remove another filesystem's files, so it \
         left it (and the folders above it) in place; unmount it (umount {}) and remove {} yourself",
        mount.display(), tree.display(), mount.display(), tree.display()
    )]
    MountPoint { mount: PathBuf, tree: PathBuf },
}

/// The [`RemoveError::Io`] of an operation on `path`.
fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RemoveError {
    let path = path.to_path_buf();
    move |source| RemoveError::Io { path, source }
}

/// Which mount a file is on: its device, its mount id (0 when the kernel does not tell), and
/// whether it is the root of a mount (when the kernel tells).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MountOf {
    dev: (u32, u32),
    mnt_id: u64,
    mount_root: bool,
}

fn mount_of(dir: libc::c_int, name: &CStr, flags: libc::c_int) -> io::Result<(MountOf, u32)> {
    // SAFETY: statx fills a zeroed plain-data struct; `name` is NUL-terminated.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::statx(
            dir,
            name.as_ptr(),
            flags | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_TYPE | libc::STATX_MNT_ID,
            &mut st,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let root_attr = libc::STATX_ATTR_MOUNT_ROOT as u64;
    Ok((
        MountOf {
            dev: (st.stx_dev_major, st.stx_dev_minor),
            mnt_id: if st.stx_mask & libc::STATX_MNT_ID != 0 {
                st.stx_mnt_id
            } else {
                0
            },
            mount_root: st.stx_attributes_mask & root_attr != 0
                && st.stx_attributes & root_attr != 0,
        },
        u32::from(st.stx_mode) & libc::S_IFMT,
    ))
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Opens directory `name` in `dir` without following a symbolic link.
fn open_dir_at(dir: libc::c_int, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: openat with a NUL-terminated name; the descriptor is owned from here on.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The names in an open directory (without `.` and `..`).
fn names(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    // SAFETY: fdopendir takes a duplicate descriptor and closedir releases it; readdir's entries
    // are read before the next call.
    let dup = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(dup) };
        return Err(e);
    }
    let mut out = Vec::new();
    loop {
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break;
        }
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            out.push(name.to_owned());
        }
    }
    unsafe { libc::closedir(stream) };
    Ok(out)
}

fn unlink_at(dir: libc::c_int, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unlinkat with a NUL-terminated name.
    if unsafe { libc::unlinkat(dir, name.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes `path` and everything under it, as `rm -r` would, but never follows a symbolic link
/// (a link is removed, not what it points to) and never crosses into another mount: a directory
/// (or file) that is a mount point, or is on another device than `path`, is left in place with
/// the folders above it, and the first one is reported as [`RemoveError::MountPoint`] once the
/// rest is removed. A missing `path` is not an error.
pub fn remove_tree(path: &Path) -> Result<(), RemoveError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(path)(e)),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path).map_err(io_err(path));
    }
    let c_path = c_name(path.as_os_str()).map_err(io_err(path))?;
    let dir = open_dir_at(libc::AT_FDCWD, &c_path).map_err(io_err(path))?;
    let (top, _) = mount_of(dir.as_raw_fd(), c"", libc::AT_EMPTY_PATH).map_err(io_err(path))?;
    let mut mounts = Vec::new();
    if top.mount_root {
        mounts.push(path.to_path_buf());
    } else {
        empty_dir(&dir, path, top, &mut mounts)?;
    }
    drop(dir);
    match mounts.into_iter().next() {
        Some(mount) => Err(RemoveError::MountPoint {
            mount,
            tree: path.to_path_buf(),
        }),
        None => std::fs::remove_dir(path).map_err(io_err(path)),
    }
}

/// Removes what `dir` (at `path`) holds on `top`'s mount; other mounts found go to `mounts`.
fn empty_dir(
    dir: &OwnedFd,
    path: &Path,
    top: MountOf,
    mounts: &mut Vec<PathBuf>,
) -> Result<(), RemoveError> {
    let other_mount = |m: MountOf| {
        m.mount_root
            || m.dev != top.dev
            || (m.mnt_id != 0 && top.mnt_id != 0 && m.mnt_id != top.mnt_id)
    };
    for name in names(dir).map_err(io_err(path))? {
        let child = path.join(OsStr::from_bytes(name.to_bytes()));
        let (at, kind) = match mount_of(dir.as_raw_fd(), &name, 0) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&child)(e)),
        };
        if other_mount(at) {
            mounts.push(child);
            continue;
        }
        if kind != libc::S_IFDIR {
            unlink_at(dir.as_raw_fd(), &name, 0).map_err(io_err(&child))?;
            continue;
        }
        let sub = open_dir_at(dir.as_raw_fd(), &name).map_err(io_err(&child))?;
        // Checked again on the open directory: something may have been mounted meanwhile.
        let (opened, _) =
            mount_of(sub.as_raw_fd(), c"", libc::AT_EMPTY_PATH).map_err(io_err(&child))?;
        if other_mount(opened) {
            mounts.push(child);
            continue;
        }
        let before = mounts.len();
        empty_dir(&sub, &child, top, mounts)?;
        drop(sub);
        if mounts.len() == before {
            unlink_at(dir.as_raw_fd(), &name, libc::AT_REMOVEDIR).map_err(io_err(&child))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_carry_the_pattern() {
        let t = temp_path(Path::new("/x/core.vhd")).unwrap();
        assert!(is_temp_name(t.file_name().unwrap()), "{}", t.display());
        assert!(t
            .file_name()
            .unwrap()
            .as_bytes()
            .starts_with(b".core.vhd.kiln-tmp-"));
        assert_ne!(t, temp_path(Path::new("/x/core.vhd")).unwrap());
        for yes in [
            ".a.kiln-tmp-12",
            ".a.b.kiln-tmp-12-3",
            ".rootfs.kiln-tmp-1-0",
        ] {
            assert!(is_temp_name(OsStr::new(yes)), "{yes}");
        }
        for no in [
            "a.kiln-tmp-12",
            ".kiln-tmp-12",
            ".a.kiln-tmp-",
            ".a.kiln-tmp-12-3-4",
            ".a.kiln-tmp-x",
            ".a.kiln-tmp",
            ".a.kiln-part",
            "notes.txt",
        ] {
            assert!(!is_temp_name(OsStr::new(no)), "{no}");
        }
        assert!(temp_path(Path::new("/")).is_err());
    }

    #[test]
    fn sweep_removes_only_unheld_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let stale_file = d.join(".a.raw.kiln-tmp-999999-0");
        std::fs::write(&stale_file, b"half").unwrap();
        let stale_dir = d.join(".rootfs.kiln-tmp-999999-1");
        std::fs::create_dir_all(stale_dir.join("etc")).unwrap();
        std::fs::write(stale_dir.join("etc/x"), b"x").unwrap();
        let (held, held_path) = create_temp_file(&d.join("b.raw")).unwrap();
        let held_dir = TempDir::create(&d.join("rootfs")).unwrap();
        let keep = [
            "notes.txt",
            "a.kiln-tmp-1",
            ".a.kiln-part",
            ".x.kiln-tmp-1-2-3",
        ];
        for k in keep {
            std::fs::write(d.join(k), b"mine").unwrap();
        }
        let removed = sweep_stale(d).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!stale_file.exists() && !stale_dir.exists());
        assert!(held_path.exists() && held_dir.path().exists());
        for k in keep {
            assert!(d.join(k).exists(), "{k}");
        }
        drop(held);
        let held_dir_path = held_dir.path().to_path_buf();
        drop(held_dir);
        assert!(!held_dir_path.exists(), "a dropped TempDir is removed");
        // A fork by another test may hold a copy of the descriptor (and its lock) until the
        // child execs: the sweep is tried again for a little while.
        let mut swept = Vec::new();
        for _ in 0..100 {
            swept = sweep_stale(d).unwrap();
            if !swept.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(swept, vec![held_path]);
        assert!(sweep_stale(&d.join("missing")).unwrap().is_empty());
    }

    #[test]
    fn temp_dir_persists_under_its_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let t = TempDir::create(&dir.path().join("rootfs")).unwrap();
        std::fs::write(t.path().join("f"), b"x").unwrap();
        t.persist(&dir.path().join("rootfs")).unwrap();
        assert!(dir.path().join("rootfs/f").exists());
    }

    #[test]
    fn remove_tree_removes_links_not_their_targets() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"mine").unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("top-link")).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        remove_tree(&dir.path().join("top-link")).unwrap();
        assert!(outside.join("keep").exists());
        remove_tree(&tree).unwrap();
    }

    /// Runs `f` on a thread of its own mount namespace (private, so nothing propagates to the
    /// host, and gone with the thread). `None` when this process may not (not root).
    fn in_own_mount_namespace<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: unshare and mount with static, NUL-terminated arguments.
                let private = unsafe {
                    libc::unshare(libc::CLONE_NEWNS) == 0
                        && libc::mount(
                            std::ptr::null(),
                            c"/".as_ptr(),
                            std::ptr::null(),
                            libc::MS_REC | libc::MS_PRIVATE,
                            std::ptr::null(),
                        ) == 0
                };
                if !private {
                    eprintln!(
                        "skipped: cannot make a private mount namespace ({}); run the tests as root",
                        io::Error::last_os_error()
                    );
                    return None;
                }
                Some(f())
            })
            .join()
            .expect("the namespace thread does not panic")
        })
    }

    #[test]
    fn remove_tree_stops_at_a_bind_mount() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("sentinel"), b"mine").unwrap();
        let tree = dir.path().join("build");
        let mount = tree.join("imager_output/rootfs/mnt");
        std::fs::create_dir_all(&mount).unwrap();
        std::fs::write(tree.join("imager_output/f"), b"x").unwrap();
        std::fs::create_dir_all(tree.join("other")).unwrap();
        let result = in_own_mount_namespace(|| {
            let src = c_name(outside.as_os_str()).unwrap();
            let dst = c_name(mount.as_os_str()).unwrap();
            // SAFETY: a bind mount with NUL-terminated paths.
            let r = unsafe {
                libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            assert_eq!(r, 0, "bind mount: {}", io::Error::last_os_error());
            let result = remove_tree(&tree);
            let seen = mount.join("sentinel").exists();
            // SAFETY: unmounting what this thread mounted.
            unsafe { libc::umount2(dst.as_ptr(), libc::MNT_DETACH) };
            (result, seen)
        });
        let Some((result, seen_through_mount)) = result else {
            return;
        };
        match result {
            Err(RemoveError::MountPoint { mount: m, tree: t }) => {
                assert_eq!((m, t), (mount.clone(), tree.clone()));
            }
            other => panic!("expected a mount point error, got {other:?}"),
        }
        assert!(seen_through_mount, "the mount was left in place");
        assert!(outside.join("sentinel").exists());
        assert!(mount.exists(), "the mount point's folder is kept");
        assert!(!tree.join("other").exists() && !tree.join("imager_output/f").exists());
    }

    #[test]
    fn a_temp_dir_is_removed_in_the_background_and_waited_for() {
        let t = tempfile::tempdir().unwrap();
        let dir = TempDir::create(&t.path().join("build")).unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f"), "x").unwrap();
        let path = dir.path().to_path_buf();
        dir.remove_in_background();
        assert!(finish_removals().is_empty());
        assert!(!path.exists());
    }
}
