//! Thin wrappers over the Linux system calls the sandbox and [`crate::root`] use that libc does
//! not wrap: openat2 and the file-descriptor-based mount API (fsopen, fsconfig, fsmount,
//! open_tree, move_mount, mount_setattr). Every function returns the raw result as
//! `io::Result`; none allocates, so they are safe to call in a forked child.

use libc::{c_char, c_int, c_long, c_uint};
use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `RESOLVE_*` flags of openat2.
pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

const FSCONFIG_SET_STRING: c_uint = 1;
const FSCONFIG_CMD_CREATE: c_uint = 6;
const FSMOUNT_CLOEXEC: c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: c_uint = 0x40;
const OPEN_TREE_CLONE: c_uint = 1;
const AT_RECURSIVE: c_uint = 0x8000;

/// Mount attributes (`MOUNT_ATTR_*`).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;

fn check(rc: c_long) -> io::Result<c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd(rc: c_long) -> io::Result<OwnedFd> {
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    check(rc).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// openat2(2): `path` resolved from `dir` under the `resolve` rules.
pub fn openat2(
    dir: RawFd,
    path: &CStr,
    flags: c_int,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve,
    };
    // SAFETY: valid C string and a properly sized open_how that the kernel only reads.
    fd(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })
}

/// A new, detached filesystem of type `fstype` with `options` (key, value) set, as a mount
/// file descriptor with `attrs` (`MOUNT_ATTR_*`).
pub fn new_mount(fstype: &CStr, options: &[(&CStr, &CStr)], attrs: u64) -> io::Result<OwnedFd> {
    let ctx = fs_context(fstype)?;
    use std::os::fd::AsRawFd;
    for (k, v) in options {
        fs_set(ctx.as_raw_fd(), k, v)?;
    }
    fs_mount(ctx.as_raw_fd(), attrs)
}

/// fsopen(2): a filesystem context of type `fstype`, to configure with [`fs_set`]; reading it
/// gives the filesystem's messages (`e overlayfs: …`).
pub fn fs_context(fstype: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: a valid C string; the descriptor returned is owned here.
    fd(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 1 as c_uint) })
}

/// fsconfig(2) FSCONFIG_SET_STRING: sets option `key` to `value` in the context `ctx`.
pub fn fs_set(ctx: RawFd, key: &CStr, value: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx,
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0 as c_int,
        )
    })
    .map(|_| ())
}

/// fsconfig(2) FSCONFIG_CMD_CREATE, then fsmount(2): the context's filesystem as a detached
/// mount with `attrs`.
pub fn fs_mount(ctx: RawFd, attrs: u64) -> io::Result<OwnedFd> {
    // SAFETY: null key and value, as FSCONFIG_CMD_CREATE takes them.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<c_char>(),
            std::ptr::null::<c_char>(),
            0 as c_int,
        )
    })?;
    // SAFETY: the descriptor returned is owned here.
    fd(unsafe { libc::syscall(libc::SYS_fsmount, ctx, FSMOUNT_CLOEXEC, attrs as c_uint) })
}

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at `path` (and, with
/// `recursive`, the mounts below it), to be attached elsewhere with [`move_mount`].
pub fn clone_tree(path: &CStr, recursive: bool) -> io::Result<OwnedFd> {
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as c_uint | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: valid C string.
    fd(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) })
}

/// mount_setattr(2): sets `attrs` on the detached or attached mount `mount` and every mount
/// below it.
pub fn set_mount_attrs(mount: RawFd, attrs: u64) -> io::Result<()> {
    change_mount_attrs(mount, attrs, 0)
}

/// mount_setattr(2) with attributes to clear too (an atime mode is set with
/// [`MOUNT_ATTR__ATIME`] cleared).
pub fn change_mount_attrs(mount: RawFd, set: u64, clear: u64) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        set: u64,
        clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        set,
        clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: an empty path with AT_EMPTY_PATH and a properly sized struct the kernel reads.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount,
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH as c_uint) | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(|_| ())
}

/// move_mount(2): attaches the mount `mount` on the directory or file `target` (both file
/// descriptors, so the target was resolved by whoever opened it).
pub fn move_mount(mount: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: empty paths with the EMPTY_PATH flags.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount,
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(|_| ())
}

/// Makes every mount of the calling process's mount namespace private (`mount / MS_REC |
/// MS_PRIVATE`): nothing mounted after propagates to the namespace it was copied from.
pub fn make_mounts_private() -> io::Result<()> {
    // SAFETY: a propagation change on our own mount namespace, with valid C strings.
    cvt(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .map(|_| ())
}

/// pivot_root(".", "."): the current directory becomes `/`, the old root stacked on it.
pub fn pivot_root_here() -> io::Result<()> {
    // SAFETY: valid C strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) }).map(|_| ())
}

/// Returns `Err` with the last OS error when `rc` is -1.
pub fn cvt(rc: c_int) -> io::Result<c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
