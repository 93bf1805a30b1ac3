//! kiln's own mount namespace, and the overlays it mounts there.
//!
//! A rebuild restores a cached package root (kiln-build's cache) as an overlay instead of
//! copying it: the cache entry read-only below, the build's changes in a folder of its own. The
//! host never sees such a mount: [`enter_private_namespace`] moves kiln into a mount namespace
//! of its own (every mount private, so nothing propagates back), first thing, while kiln is
//! single-threaded as `unshare(CLONE_NEWNS)` requires; kiln's own file access, the sandbox
//! (which clones the image root's mount), mke2fs and mcopy all run in it and see the overlay.
//! When kiln exits, or is killed, the namespace and its mounts go with it; what is left are
//! folders in kiln's work folder, removed as any other.

use crate::sys;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static PRIVATE: OnceLock<Result<(), String>> = OnceLock::new();

/// Moves kiln into a mount namespace of its own, every mount in it private. Call it while the
/// process is single-threaded; later calls return the first one's result. A failure is not
/// fatal: kiln then mounts nothing ([`Overlay::mount`] says why).
pub fn enter_private_namespace() -> Result<(), String> {
    PRIVATE
        .get_or_init(|| {
            let threads = crate::userns::thread_count();
            if threads > 1 {
                return Err(format!(
                    "kiln has {threads} threads, and only a single-threaded process can enter \
                     a mount namespace (a bug in kiln: it asked too late)"
                ));
            }
            // SAFETY: unshare on our own, single-threaded process.
            if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
                return Err(format!(
                    "kiln could not enter a mount namespace of its own (unshare(CLONE_NEWNS): {})",
                    io::Error::last_os_error()
                ));
            }
            // Until this succeeds, a mount could still propagate to the host's namespace.
            sys::make_mounts_private().map_err(|e| {
                format!("kiln could not make its mounts private (mount / MS_PRIVATE: {e})")
            })?;
            Ok(())
        })
        .clone()
}

/// Whether kiln is in a private mount namespace of its own (and if not, why).
pub fn private_namespace() -> Result<(), String> {
    PRIVATE.get().cloned().unwrap_or_else(|| {
        Err(
            "kiln is in the host's mount namespace (only commands that build enter their own)"
                .into(),
        )
    })
}

/// An overlay mounted in kiln's private namespace; unmounted by [`Overlay::unmount`] or when
/// dropped.
#[derive(Debug)]
pub struct Overlay {
    target: PathBuf,
    lower_at: PathBuf,
    mounted: bool,
    lower_bound: bool,
}

impl Overlay {
    /// Mounts on the empty directory `target` the overlay of `lower` and the empty directory
    /// `upper` (overlayfs' scratch in the empty `work`, on `upper`'s filesystem). `lower` is
    /// first bound at the empty directory `lower_at`, read-only and without access-time updates,
    /// so that nothing done through the overlay changes it (not even atimes). The merged root
    /// shows `upper`'s owner, mode, times and attributes: `lower`'s are copied onto it first.
    ///
    /// Hard links stay links when one name is changed (`index=on`), directories of `lower` can
    /// be renamed (`redirect_dir=on`), and a change of owner, mode, times or attributes copies
    /// up only the metadata (`metacopy=on`). Refused unless kiln is in its private namespace.
    pub fn mount(
        lower: &Path,
        lower_at: &Path,
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> Result<Overlay, String> {
        private_namespace()?;
        copy_root_attributes(lower, upper)
            .map_err(|e| format!("copying the attributes of {}: {e}", lower.display()))?;
        let mut overlay = Overlay {
            target: target.to_path_buf(),
            lower_at: lower_at.to_path_buf(),
            mounted: false,
            lower_bound: false,
        };
        let failed = |what: &str, path: &Path| {
            let what = what.to_string();
            let path = path.display().to_string();
            move |e: io::Error| format!("{what} {path}: {e}")
        };
        let bind = sys::clone_tree(&c_path(lower)?, false).map_err(failed("binding", lower))?;
        sys::change_mount_attrs(
            bind.as_raw_fd(),
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOATIME,
            sys::MOUNT_ATTR__ATIME,
        )
        .map_err(failed("making read-only the bind mount of", lower))?;
        let at = open_dir(lower_at).map_err(failed("opening", lower_at))?;
        sys::move_mount(bind.as_raw_fd(), at.as_raw_fd())
            .map_err(failed("binding the lower layer at", lower_at))?;
        overlay.lower_bound = true;

        // Layers named by descriptor: no path of the user's (a `:` or `,` in it) reaches the
        // option parser.
        let upper_fd = open_dir(upper).map_err(failed("opening", upper))?;
        let work_fd = open_dir(work).map_err(failed("opening", work))?;
        let ctx = sys::fs_context(c"overlay")
            .map_err(|e| format!("the kernel has no overlay filesystem (fsopen overlay: {e})"))?;
        let options = [
            ("lowerdir", fd_path(&bind)),
            ("upperdir", fd_path(&upper_fd)),
            ("workdir", fd_path(&work_fd)),
            ("redirect_dir", "on".to_string()),
            ("index", "on".to_string()),
            ("metacopy", "on".to_string()),
        ];
        let set = || -> io::Result<OwnedFd> {
            for (key, value) in &options {
                let key = CString::new(*key).expect("no NUL");
                let value = CString::new(value.as_str()).expect("no NUL");
                sys::fs_set(ctx.as_raw_fd(), &key, &value)?;
            }
            sys::fs_mount(
                ctx.as_raw_fd(),
                sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
            )
        };
        let mount = set().map_err(|e| {
            let said = messages(&ctx);
            format!(
                "overlayfs refused {} as the lower layer{}: {e}{}",
                lower.display(),
                options
                    .iter()
                    .skip(3)
                    .fold(String::from(" with"), |s, (k, v)| format!("{s} {k}={v}")),
                if said.is_empty() {
                    String::new()
                } else {
                    format!(" ({said})")
                }
            )
        })?;
        let target_fd = open_dir(target).map_err(failed("opening", target))?;
        sys::move_mount(mount.as_raw_fd(), target_fd.as_raw_fd())
            .map_err(failed("mounting the overlay on", target))?;
        overlay.mounted = true;
        Ok(overlay)
    }

    /// Where the overlay is mounted.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts the overlay and the lower layer's bind mount (detached: a program still
    /// holding a file open keeps only that file).
    pub fn unmount(mut self) -> Result<(), String> {
        self.detach()
    }

    fn detach(&mut self) -> Result<(), String> {
        let mut result = Ok(());
        for (done, path) in [
            (&mut self.mounted, &self.target),
            (&mut self.lower_bound, &self.lower_at),
        ] {
            if !*done {
                continue;
            }
            *done = false;
            let c = c_path(path)?;
            // SAFETY: a valid C string.
            let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
            if rc != 0 && result.is_ok() {
                result = Err(format!(
                    "unmounting {}: {}",
                    path.display(),
                    io::Error::last_os_error()
                ));
            }
        }
        result
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = self.detach();
    }
}

fn c_path(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{}: a NUL byte in the path", path.display()))
}

/// An `O_PATH` descriptor of the directory `path` (itself, not where a symlink leads).
fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    sys::openat2(
        libc::AT_FDCWD,
        &c,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
        0,
    )
}

/// The path of an open descriptor, for options that take paths.
fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// What the filesystem said about a failed configuration (fsopen's message log).
fn messages(ctx: &OwnedFd) -> String {
    let mut said = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: reading into a buffer of the given size.
        let n = unsafe { libc::read(ctx.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        said.push(
            String::from_utf8_lossy(&buf[..n as usize])
                .trim()
                .to_string(),
        );
    }
    said.join("; ")
}

/// Gives the directory `to` the owner, mode, times and extended attributes of `from`.
fn copy_root_attributes(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(from)?;
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    let (from_c, to_c) = (
        CString::new(from.as_os_str().as_bytes())?,
        CString::new(to.as_os_str().as_bytes())?,
    );
    for name in xattr_names(&from_c)? {
        let value = xattr_value(&from_c, &name)?;
        // SAFETY: valid C strings and a buffer of the given length.
        let rc = unsafe {
            libc::lsetxattr(
                to_c.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let times = [
        libc::timespec {
            tv_sec: meta.atime() as libc::time_t,
            tv_nsec: meta.atime_nsec() as libc::c_long,
        },
        libc::timespec {
            tv_sec: meta.mtime() as libc::time_t,
            tv_nsec: meta.mtime_nsec() as libc::c_long,
        },
    ];
    // SAFETY: a valid C string and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            to_c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn xattr_names(path: &CStr) -> io::Result<Vec<CString>> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: a valid C string and a buffer of the given length.
        let n = unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => buf.resize(buf.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    }
    Ok(buf
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| CString::new(n).expect("split at NUL"))
        .collect())
}

fn xattr_value(path: &CStr, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid C strings and a buffer of the given length.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ERANGE) {
            buf.resize(buf.len() * 4, 0);
        } else {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn set_xattr(path: &Path, name: &CStr, value: &[u8]) {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings and a buffer of the given length.
        let rc = unsafe {
            libc::lsetxattr(
                c.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "{}: {}", path.display(), io::Error::last_os_error());
    }

    /// Sets `path`'s times (a symlink's own) to `secs`.
    fn set_mtime(path: &Path, secs: i64) {
        let ok = std::process::Command::new("touch")
            .args(["-h", "-d", &format!("@{secs}")])
            .arg(path)
            .status()
            .unwrap()
            .success();
        assert!(ok, "{}", path.display());
    }

    /// Every path under `root`, deepest first.
    fn walk(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(p) = stack.pop() {
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
            }
            out.push(p);
        }
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// What a package root has: a hard link, modes, an xattr, a symlink, nested directories.
    fn lower_tree(root: &Path) {
        for d in ["etc", "usr/lib/x"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd-")).unwrap();
        std::fs::write(root.join("etc/shadow"), "root:*::0:::::\n").unwrap();
        std::fs::set_permissions(root.join("etc/shadow"), PermissionsExt::from_mode(0o640))
            .unwrap();
        std::fs::write(root.join("usr/lib/x/y"), "y").unwrap();
        std::fs::write(root.join("usr/lib/z"), "z").unwrap();
        set_xattr(&root.join("usr/lib/z"), c"user.kiln", b"1");
        std::os::unix::fs::symlink("../usr/lib/z", root.join("etc/link")).unwrap();
        std::fs::set_permissions(root, PermissionsExt::from_mode(0o555)).unwrap();
        for p in walk(root) {
            set_mtime(&p, 1_000_000);
        }
    }

    /// What later build steps do to a root: append to one name of a hard link, chmod, set an
    /// attribute, rename a directory, remove and add files.
    fn change(root: &Path) {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(root.join("etc/passwd"))
            .unwrap()
            .write_all(b"kiln:x:1000:1000::/home/kiln:/bin/sh\n")
            .unwrap();
        std::fs::set_permissions(root.join("etc/shadow"), PermissionsExt::from_mode(0o600))
            .unwrap();
        set_xattr(&root.join("usr/lib/z"), c"user.kiln", b"2");
        std::fs::rename(root.join("usr/lib/x"), root.join("usr/lib/w")).unwrap();
        std::fs::remove_file(root.join("etc/link")).unwrap();
        std::fs::write(root.join("etc/new"), "new").unwrap();
        for p in walk(root) {
            set_mtime(&p, 2_000_000);
        }
    }

    /// Everything a filesystem builder reads of a tree, one line a path.
    fn describe(root: &Path) -> String {
        let mut links = std::collections::HashMap::new();
        let mut paths = walk(root);
        paths.sort();
        let mut out = String::new();
        for p in paths {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let c = CString::new(p.as_os_str().as_bytes()).unwrap();
            let xattrs: Vec<String> = xattr_names(&c)
                .unwrap()
                .iter()
                .map(|n| {
                    let v = xattr_value(&c, n).unwrap();
                    format!("{}={}", n.to_string_lossy(), String::from_utf8_lossy(&v))
                })
                .collect();
            let what = if m.is_dir() {
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                let first = links.entry((m.dev(), m.ino())).or_insert(rel.clone());
                format!(
                    "file {:?} links {} same as {first}",
                    std::fs::read_to_string(&p).unwrap(),
                    m.nlink()
                )
            } else {
                format!("special {:o} rdev {}", m.mode(), m.rdev())
            };
            out.push_str(&format!(
                "/{rel}: {what} mode {:o} owner {}:{} mtime {}.{} xattrs {xattrs:?}\n",
                m.mode(),
                m.uid(),
                m.gid(),
                m.mtime(),
                m.mtime_nsec()
            ));
        }
        out
    }

    /// An overlay of a tree, changed as a build changes a root, reads exactly as a copy of the
    /// tree changed the same way (hard links kept, no whiteouts or overlay attributes in
    /// sight), and leaves the tree itself unchanged. Mounting needs root and a process that can
    /// enter a mount namespace: the overlay is made in a forked child.
    #[test]
    fn an_overlay_reads_as_a_changed_copy_and_leaves_its_lower_layer_alone() {
        // SAFETY: a plain getter.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting an overlay needs root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let d = |n: &str| t.path().join(n);
        lower_tree(&d("lower"));
        let cp = std::process::Command::new("cp")
            .args(["-a", "--preserve=xattr", "-T"])
            .arg(d("lower"))
            .arg(d("copy"))
            .status()
            .unwrap();
        assert!(cp.success());
        change(&d("copy"));
        let before = describe(&d("lower"));
        for n in ["lower_at", "upper", "work", "merged"] {
            std::fs::create_dir(d(n)).unwrap();
        }

        // SAFETY: the child only makes system calls and allocates (glibc's allocator is safe
        // after fork), then leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let child = std::panic::catch_unwind(|| -> Result<String, String> {
                enter_private_namespace()?;
                let overlay = Overlay::mount(
                    &d("lower"),
                    &d("lower_at"),
                    &d("upper"),
                    &d("work"),
                    &d("merged"),
                )?;
                change(&d("merged"));
                let seen = describe(&d("merged"));
                overlay.unmount()?;
                if std::fs::read_dir(d("merged")).unwrap().next().is_some() {
                    return Err("still mounted after unmount".into());
                }
                Ok(seen)
            });
            let (code, text) = match child {
                Ok(Ok(seen)) => (0, seen),
                Ok(Err(e)) => (1, e),
                Err(p) => (
                    1,
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default(),
                ),
            };
            let _ = std::fs::write(d("child"), text);
            // SAFETY: leaving the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let said = std::fs::read_to_string(d("child")).unwrap_or_default();
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child failed: {said}"
        );
        assert_eq!(
            said,
            describe(&d("copy")),
            "the overlay differs from a copy"
        );
        assert_eq!(describe(&d("lower")), before, "the lower layer changed");
        assert!(
            d("upper").join("etc/new").is_file(),
            "the changes went to the upper layer"
        );
    }
}
