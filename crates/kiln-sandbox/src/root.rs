//! Kernel-confined file access inside an image root.
//!
//! Every path is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)` from a descriptor of
//! the image root, as the image itself would resolve it once booted: absolute symlinks are
//! re-rooted, `..` stops at the root, and nothing a package or a script planted can lead to a
//! file of the build host. Magic links (`/proc/self/...`) are refused, and so is crossing into
//! another mount (there is none inside a staged root; a mount there is a mistake kiln must not
//! write through). A path the caller gives that climbs above the root with `..` is refused
//! outright, since it is a mistake in a config rather than something an image can mean.
//!
//! Files are opened without side effects first (`O_PATH`) and only reopened for reading or
//! writing once they are known to be regular files, so a FIFO or a device node in the image can
//! never block kiln or be read as data.

use crate::sys::{self, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_XDEV};
use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

const CONFINED: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

/// A file operation in the image that failed: what, on which image path, and why.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path} in the image: {source}")]
pub struct Error {
    pub op: &'static str,
    /// The path as the image sees it (`/etc/passwd`).
    pub path: String,
    #[source]
    pub source: io::Error,
}

impl Error {
    /// The underlying error's kind (e.g. to treat a missing file as nothing to do).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

/// The result of a confined operation.
pub type Result<T> = std::result::Result<T, Error>;

/// An image root, held open; every operation is confined to it.
#[derive(Debug)]
pub struct ImageRoot {
    fd: OwnedFd,
    path: PathBuf,
}

/// One entry of [`ImageRoot::read_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    pub file_type: std::fs::FileType,
}

impl ImageRoot {
    /// Opens the image root at the host path `path` (a directory).
    pub fn open(path: &Path) -> io::Result<ImageRoot> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        let fd = sys::openat2(libc::AT_FDCWD, &c, libc::O_PATH | libc::O_DIRECTORY, 0, 0)?;
        Ok(ImageRoot {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The root's host path, for tools that take a directory (mkfs, rpm in the sandbox).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root's descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `path` made relative to the root, with lexical `..` applied; an error if it climbs above
    /// the root or is not a valid path.
    fn relative(&self, op: &'static str, path: &Path) -> Result<PathBuf> {
        let mut parts: Vec<&OsStr> = Vec::new();
        let invalid = |why: &str| Error {
            op,
            path: path.display().to_string(),
            source: io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
        };
        if path.as_os_str().as_bytes().contains(&0) {
            return Err(invalid("the path contains a NUL byte"));
        }
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(invalid(
                            "the path leads outside the image root through '..'",
                        ));
                    }
                }
                Component::Normal(n) => parts.push(n),
                Component::Prefix(_) => return Err(invalid("not a path in the image")),
            }
        }
        Ok(parts.iter().collect())
    }

    fn err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
        let path = image_path(path);
        move |source| Error { op, path, source }
    }

    fn open_at(&self, op: &'static str, path: &Path, flags: i32, mode: u32) -> Result<OwnedFd> {
        let rel = self.relative(op, path)?;
        let rel = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel
        };
        let c = CString::new(rel.as_os_str().as_bytes()).expect("checked for NUL");
        sys::openat2(self.fd.as_raw_fd(), &c, flags, mode, CONFINED).map_err(Self::err(op, path))
    }

    /// The parent directory of `path` (resolved in the root) and the last component's name.
    fn parent(&self, op: &'static str, path: &Path) -> Result<(OwnedFd, CString)> {
        let rel = self.relative(op, path)?;
        let Some(name) = rel.file_name() else {
            return Err(Self::err(op, path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the image root itself",
            )));
        };
        let name = CString::new(name.as_bytes()).expect("checked for NUL");
        let dir = self.open_at(
            op,
            rel.parent().unwrap_or(Path::new("")),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )?;
        Ok((dir, name))
    }

    /// Metadata of what `path` leads to (symlinks followed inside the root).
    pub fn metadata(&self, path: impl AsRef<Path>) -> Result<Metadata> {
        let path = path.as_ref();
        let fd = self.open_at("reading", path, libc::O_PATH, 0)?;
        File::from(fd)
            .metadata()
            .map_err(Self::err("reading", path))
    }

    /// Metadata of `path` itself (a final symlink is not followed).
    pub fn symlink_metadata(&self, path: impl AsRef<Path>) -> Result<Metadata> {
        let path = path.as_ref();
        let fd = self.open_at("reading", path, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        File::from(fd)
            .metadata()
            .map_err(Self::err("reading", path))
    }

    /// Whether `path` leads to something.
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        self.metadata(path).is_ok()
    }

    /// Whether `path` leads to a directory.
    pub fn is_dir(&self, path: impl AsRef<Path>) -> bool {
        self.metadata(path).is_ok_and(|m| m.is_dir())
    }

    /// Opens the regular file `path` leads to with `flags` (e.g. `O_RDONLY`), never opening a
    /// FIFO or a device.
    fn open_regular(&self, op: &'static str, path: &Path, flags: i32) -> Result<File> {
        let fd = self.open_at(op, path, libc::O_PATH, 0)?;
        let probe = File::from(fd);
        let meta = probe.metadata().map_err(Self::err(op, path))?;
        if !meta.is_file() {
            return Err(Self::err(op, path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a regular file (a {})", kind_name(&meta)),
            )));
        }
        reopen(&probe, flags).map_err(Self::err(op, path))
    }

    /// Opens the regular file `path` for reading.
    pub fn open_file(&self, path: impl AsRef<Path>) -> Result<File> {
        self.open_regular("reading", path.as_ref(), libc::O_RDONLY)
    }

    /// The contents of the regular file `path`, refused when larger than `limit` bytes.
    pub fn read_bounded(&self, path: impl AsRef<Path>, limit: u64) -> Result<Vec<u8>> {
        let path = path.as_ref();
        let f = self.open_file(path)?;
        let mut data = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut data)
            .map_err(Self::err("reading", path))?;
        if data.len() as u64 > limit {
            return Err(Self::err("reading", path)(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than {limit} bytes"),
            )));
        }
        Ok(data)
    }

    /// The text of the regular file `path` (at most 64 MiB).
    pub fn read_to_string(&self, path: impl AsRef<Path>) -> Result<String> {
        let path = path.as_ref();
        let data = self.read_bounded(path, 64 << 20)?;
        String::from_utf8(data)
            .map_err(|e| Self::err("reading", path)(io::Error::new(io::ErrorKind::InvalidData, e)))
    }

    /// Opens `path` for writing: an existing regular file is truncated (its mode kept), a
    /// missing one is created with `mode` (inside the root even through a dangling symlink).
    pub fn create(&self, path: impl AsRef<Path>, mode: u32) -> Result<File> {
        self.open_for_write(path.as_ref(), mode, libc::O_TRUNC)
    }

    fn open_for_write(&self, path: &Path, mode: u32, extra: i32) -> Result<File> {
        match self.open_regular("writing", path, libc::O_WRONLY | extra) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let fd = self.open_at(
            "writing",
            path,
            libc::O_WRONLY | libc::O_CREAT | libc::O_NONBLOCK | libc::O_NOCTTY | extra,
            mode,
        )?;
        let f = File::from(fd);
        let meta = f.metadata().map_err(Self::err("writing", path))?;
        if !meta.is_file() {
            return Err(Self::err("writing", path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        Ok(f)
    }

    /// Writes `data` to `path` (created with `mode`, or truncated), then sets `mode`.
    pub fn write(&self, path: impl AsRef<Path>, data: impl AsRef<[u8]>, mode: u32) -> Result<()> {
        let path = path.as_ref();
        let mut f = self.create(path, mode)?;
        f.write_all(data.as_ref())
            .and_then(|_| f.set_permissions(Permissions::from_mode(mode)))
            .map_err(Self::err("writing", path))
    }

    /// Replaces `path` by a new file with `data` and `mode`: written beside it under a
    /// temporary name, then renamed over it, so readers never see a half-written file. A
    /// symlink at `path` is replaced, not followed.
    pub fn replace(&self, path: impl AsRef<Path>, data: impl AsRef<[u8]>, mode: u32) -> Result<()> {
        let path = path.as_ref();
        let (dir, name) = self.parent("writing", path)?;
        let dir = reopen_dir(&dir).map_err(Self::err("writing", path))?;
        let mut tmp = name.as_bytes().to_vec();
        tmp.splice(0..0, b".kiln-new.".iter().copied());
        let tmp = CString::new(tmp).expect("no NUL");
        // SAFETY: valid descriptors and C strings.
        unsafe { libc::unlinkat(dir.as_raw_fd(), tmp.as_ptr(), 0) };
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode,
            )
        };
        let result = sys::cvt(fd).and_then(|fd| {
            // SAFETY: a new descriptor owned here.
            let mut f = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            f.write_all(data.as_ref())?;
            f.set_permissions(Permissions::from_mode(mode))?;
            sys::cvt(unsafe {
                libc::renameat(
                    dir.as_raw_fd(),
                    tmp.as_ptr(),
                    dir.as_raw_fd(),
                    name.as_ptr(),
                )
            })
            .map(|_| ())
        });
        if result.is_err() {
            unsafe { libc::unlinkat(dir.as_raw_fd(), tmp.as_ptr(), 0) };
        }
        result.map_err(Self::err("writing", path))
    }

    /// Appends `data` to `path` (created with `mode` when missing).
    pub fn append(&self, path: impl AsRef<Path>, data: impl AsRef<[u8]>, mode: u32) -> Result<()> {
        let path = path.as_ref();
        let mut f = self.open_for_write(path, mode, libc::O_APPEND)?;
        f.write_all(data.as_ref())
            .map_err(Self::err("writing", path))
    }

    /// Copies everything `from` yields into `path` (created with `mode`, or truncated), then
    /// sets `mode`.
    pub fn copy_in(&self, from: &mut dyn Read, path: impl AsRef<Path>, mode: u32) -> Result<u64> {
        let path = path.as_ref();
        let mut f = self.create(path, mode)?;
        let n = io::copy(from, &mut f).map_err(Self::err("writing", path))?;
        f.set_permissions(Permissions::from_mode(mode))
            .map_err(Self::err("writing", path))?;
        Ok(n)
    }

    /// Creates the directory `path` and its missing parents with `mode`; existing ones (and
    /// symlinks to directories inside the root) are kept as they are.
    pub fn create_dir_all(&self, path: impl AsRef<Path>, mode: u32) -> Result<()> {
        let path = path.as_ref();
        let rel = self.relative("creating", path)?;
        let mut at = PathBuf::new();
        for c in rel.components() {
            at.push(c);
            if self.is_dir(&at) {
                continue;
            }
            let (dir, name) = self.parent("creating", &at)?;
            let dir = reopen_dir(&dir).map_err(Self::err("creating", &at))?;
            // SAFETY: valid descriptor and C string.
            let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) };
            if let Err(e) = sys::cvt(rc) {
                if e.kind() != io::ErrorKind::AlreadyExists || !self.is_dir(&at) {
                    return Err(Self::err("creating", &at)(
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            io::Error::new(
                                io::ErrorKind::AlreadyExists,
                                "exists and is not a directory",
                            )
                        } else {
                            e
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    /// Sets the permission bits of what `path` leads to.
    pub fn set_mode(&self, path: impl AsRef<Path>, mode: u32) -> Result<()> {
        let path = path.as_ref();
        let fd = self.open_at("changing the mode of", path, libc::O_PATH, 0)?;
        std::fs::set_permissions(proc_fd(&fd), Permissions::from_mode(mode))
            .map_err(Self::err("changing the mode of", path))
    }

    /// Changes the owner of `path` itself (a final symlink is not followed).
    pub fn lchown(&self, path: impl AsRef<Path>, uid: u32, gid: u32) -> Result<()> {
        let path = path.as_ref();
        let fd = self.open_at(
            "changing the owner of",
            path,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        )?;
        // SAFETY: an O_PATH descriptor with AT_EMPTY_PATH.
        let rc =
            unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) };
        sys::cvt(rc)
            .map(|_| ())
            .map_err(Self::err("changing the owner of", path))
    }

    /// Creates the symlink `path` → `target`.
    pub fn symlink(&self, target: impl AsRef<Path>, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let (dir, name) = self.parent("creating", path)?;
        let dir = reopen_dir(&dir).map_err(Self::err("creating", path))?;
        let target = CString::new(target.as_ref().as_os_str().as_bytes()).map_err(|_| {
            Self::err("creating", path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NUL in target",
            ))
        })?;
        // SAFETY: valid descriptor and C strings.
        let rc = unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) };
        sys::cvt(rc)
            .map(|_| ())
            .map_err(Self::err("creating", path))
    }

    /// The target of the symlink `path`.
    pub fn read_link(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref();
        let (dir, name) = self.parent("reading", path)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        // SAFETY: valid descriptor, C string and buffer of the given length.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(Self::err("reading", path)(io::Error::last_os_error()));
        }
        buf.truncate(n as usize);
        Ok(PathBuf::from(OsString::from(std::ffi::OsStr::from_bytes(
            &buf,
        ))))
    }

    /// The entries of the directory `path` leads to, sorted by name.
    pub fn read_dir(&self, path: impl AsRef<Path>) -> Result<Vec<DirEntry>> {
        let path = path.as_ref();
        let fd = self.open_at("reading", path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let mut out = list_dir(fd).map_err(Self::err("reading", path))?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Moves `path` (itself, not what a final symlink leads to) out of the image to the host
    /// path `to`, normally on the same filesystem (kiln's work folder). A directory the kernel
    /// cannot rename there — the root is an overlay (a cached package root, see [`crate::mounts`])
    /// — is copied with everything kept (coreutils' `cp -a`) and removed from the image.
    pub fn rename_out(&self, path: impl AsRef<Path>, to: &Path) -> Result<()> {
        let path = path.as_ref();
        let (dir, name) = self.parent("moving", path)?;
        let dir = reopen_dir(&dir).map_err(Self::err("moving", path))?;
        let to_c = CString::new(to.as_os_str().as_bytes()).map_err(|_| {
            Self::err("moving", path)(io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
        })?;
        // SAFETY: valid descriptor and C strings.
        let rc = unsafe {
            libc::renameat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_FDCWD,
                to_c.as_ptr(),
            )
        };
        match sys::cvt(rc) {
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
            other => return other.map(|_| ()).map_err(Self::err("moving", path)),
        }
        // SAFETY: valid descriptor and C string; the result is checked.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        let fd = sys::cvt(fd)
            .map_err(|_| Self::err("moving", path)(io::Error::from_raw_os_error(libc::EXDEV)))?;
        // SAFETY: a new descriptor owned here.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // cp runs as a child: it reaches the directory through kiln's descriptor ("/." makes
        // it copy what the descriptor holds, not the magic link).
        let from = format!("/proc/{}/fd/{}/.", std::process::id(), fd.as_raw_fd());
        let copied = std::process::Command::new("cp")
            .args(["-a", "--preserve=xattr", "-T", "--", &from])
            .arg(to)
            .output()
            .map_err(|e| io::Error::other(format!("cannot run cp (coreutils): {e}")))
            .and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!(
                        "copying it to {} failed: {}",
                        to.display(),
                        String::from_utf8_lossy(&o.stderr).trim()
                    )))
                }
            });
        copied.map_err(Self::err("moving", path))?;
        self.remove_all(path)
    }

    /// Removes the file or symlink `path` (not what a symlink leads to).
    pub fn remove_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let (dir, name) = self.parent("removing", path)?;
        let dir = reopen_dir(&dir).map_err(Self::err("removing", path))?;
        // SAFETY: valid descriptor and C string.
        let rc = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
        sys::cvt(rc)
            .map(|_| ())
            .map_err(Self::err("removing", path))
    }

    /// Removes `path` and, when it is a directory (not a symlink to one), everything in it,
    /// never following symlinks and never crossing into another filesystem.
    pub fn remove_all(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let (dir, name) = self.parent("removing", path)?;
        let dir = reopen_dir(&dir).map_err(Self::err("removing", path))?;
        let dev = File::from(self.fd.try_clone().map_err(Self::err("removing", path))?)
            .metadata()
            .map_err(Self::err("removing", path))?;
        use std::os::unix::fs::MetadataExt;
        remove_entry(dir.as_fd(), &name, dev.dev()).map_err(Self::err("removing", path))
    }
}

/// The image path of `path` for messages: absolute.
fn image_path(path: &Path) -> String {
    let s = path.display().to_string();
    if s.starts_with('/') {
        s
    } else {
        format!("/{s}")
    }
}

fn kind_name(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else if t.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

/// `/proc/self/fd/N` of a descriptor: reopening it opens the very inode the descriptor holds.
fn proc_fd(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn reopen(fd: &impl AsRawFd, flags: i32) -> io::Result<File> {
    let c = CString::new(proc_fd(fd).into_os_string().into_vec()).expect("no NUL");
    sys::openat2(libc::AT_FDCWD, &c, flags | libc::O_NOCTTY, 0, 0).map(File::from)
}

fn reopen_dir(fd: &OwnedFd) -> io::Result<OwnedFd> {
    reopen(fd, libc::O_RDONLY | libc::O_DIRECTORY).map(OwnedFd::from)
}

use std::os::unix::ffi::OsStringExt;

fn list_dir(fd: OwnedFd) -> io::Result<Vec<DirEntry>> {
    // Listing through /proc/self/fd keeps to the inode the descriptor holds.
    let mut out = Vec::new();
    for e in std::fs::read_dir(proc_fd(&fd))? {
        let e = e?;
        out.push(DirEntry {
            name: e.file_name(),
            file_type: e.file_type()?,
        });
    }
    Ok(out)
}

/// Removes `name` in `dir`: a directory's contents first, never through a symlink or into a
/// directory on another device than `dev`.
fn remove_entry(dir: BorrowedFd<'_>, name: &CString, dev: u64) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: valid descriptor and C string; the result is checked.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd >= 0 {
        // SAFETY: a new descriptor owned here.
        let sub = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let meta = File::from(sub.try_clone()?).metadata()?;
        if meta.dev() != dev {
            return Err(io::Error::other(format!(
                "{} is a mount point; it was left in place",
                name.to_string_lossy()
            )));
        }
        for e in list_dir(sub.try_clone()?)? {
            let c = CString::new(e.name.into_vec()).expect("names have no NUL");
            remove_entry(sub.as_fd(), &c, dev)?;
        }
        // SAFETY: valid descriptor and C string.
        return sys::cvt(unsafe {
            libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR)
        })
        .map(|_| ());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // Not a directory (or a symlink): unlink the entry itself.
        Some(libc::ENOTDIR) | Some(libc::ELOOP) => {
            // SAFETY: valid descriptor and C string.
            sys::cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(|_| ())
        }
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, ImageRoot, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let host = d.path().join("host");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("secret"), "host secret").unwrap();
        let r = ImageRoot::open(&root).unwrap();
        (d, r, host)
    }

    #[test]
    fn symlinks_planted_in_the_image_stay_in_the_image() {
        let (d, r, host) = setup();
        let root = d.path().join("root");
        // Absolute and relative links that would lead to the host if joined naively.
        symlink(&host, root.join("etc/abs")).unwrap();
        symlink("../../../host", root.join("usr/lib/rel")).unwrap();
        symlink(host.join("secret"), root.join("etc/shadow")).unwrap();
        // The absolute link leads to the same path inside the image, which does not exist yet.
        let e = r.write("/etc/abs/planted", "x", 0o644).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        r.create_dir_all(&host, 0o755).unwrap();
        r.write("/etc/abs/planted", "x", 0o644).unwrap();
        // The relative link climbs to the image's / and no further: the image's /host.
        r.create_dir_all("/host", 0o755).unwrap();
        r.write("/usr/lib/rel/planted", "y", 0o644).unwrap();
        assert!(!host.join("planted").exists());
        // The host path re-rooted inside the image.
        let rerooted = root.join(host.strip_prefix("/").unwrap()).join("planted");
        assert_eq!(std::fs::read_to_string(rerooted).unwrap(), "x");
        assert_eq!(
            std::fs::read_to_string(root.join("host/planted")).unwrap(),
            "y"
        );
        // Reading the image's /etc/shadow never reads the host's file.
        assert_eq!(
            r.read_to_string("/etc/shadow").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        r.write("/etc/shadow", "image", 0o600).unwrap();
        assert_eq!(
            std::fs::read_to_string(host.join("secret")).unwrap(),
            "host secret"
        );
        // Replacing a symlink replaces the link itself.
        symlink(host.join("secret"), root.join("etc/passwd")).unwrap();
        r.replace("/etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
            .unwrap();
        assert!(!std::fs::symlink_metadata(root.join("etc/passwd"))
            .unwrap()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(host.join("secret")).unwrap(),
            "host secret"
        );
        // Removal removes links, not what they point to.
        symlink(&host, root.join("victim")).unwrap();
        r.remove_all("/victim").unwrap();
        assert!(host.join("secret").exists());
        // Lexical escapes are refused.
        let e = r.write("/../../escape", "z", 0o644).unwrap_err();
        assert!(e.to_string().contains("outside the image root"), "{e}");
    }

    #[test]
    fn special_files_are_never_opened_as_data() {
        let (d, r, _) = setup();
        let root = d.path().join("root");
        let fifo = CString::new(root.join("etc/fifo").into_os_string().into_vec()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let e = r.read_to_string("/etc/fifo").unwrap_err();
        assert!(e.to_string().contains("not a regular file (a FIFO)"), "{e}");
        let e = r.write("/etc/fifo", "x", 0o644).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        std::fs::write(root.join("etc/big"), vec![b'a'; 100]).unwrap();
        assert!(r.read_bounded("/etc/big", 10).is_err());
        assert_eq!(r.read_bounded("/etc/big", 100).unwrap().len(), 100);
    }

    #[test]
    fn directories_modes_owners_and_listing() {
        let (d, r, _) = setup();
        let root = d.path().join("root");
        symlink("usr/lib", root.join("lib")).unwrap();
        r.create_dir_all("/lib/modules/x", 0o700).unwrap();
        assert!(root.join("usr/lib/modules/x").is_dir());
        r.write("/lib/modules/x/f", "data", 0o640).unwrap();
        r.set_mode("/lib/modules/x/f", 0o600).unwrap();
        let mode = std::fs::metadata(root.join("usr/lib/modules/x/f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o600);
        r.append("/lib/modules/x/f", "+more", 0o600).unwrap();
        assert_eq!(r.read_to_string("/lib/modules/x/f").unwrap(), "data+more");
        let names: Vec<_> = r
            .read_dir("/lib/modules")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec![OsString::from("x")]);
        r.symlink("/etc/target", "/etc/link").unwrap();
        assert_eq!(
            r.read_link("/etc/link").unwrap(),
            PathBuf::from("/etc/target")
        );
        r.lchown("/etc/link", 0, 0).unwrap();
        std::fs::write(root.join("etc/notdir"), "").unwrap();
        assert!(r.create_dir_all("/etc/notdir/x", 0o755).is_err());
        r.remove_all("/usr").unwrap();
        assert!(!root.join("usr").exists());
    }
}
