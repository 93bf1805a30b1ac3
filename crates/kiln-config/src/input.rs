//! Opening the host files a config names (SSH keys, scripts, AdditionalFiles sources, raw
//! binaries, package lists, the config itself) without ever hanging or reading without end.
//!
//! A config can name any path: a FIFO would block `open` until a writer appears, `/dev/zero`
//! would be read forever, a terminal could become the controlling one. [`open_regular`] opens
//! with `O_NONBLOCK | O_NOCTTY | O_CLOEXEC` (opening a FIFO does not wait, a terminal is never
//! adopted), then checks with `fstat` on the open descriptor — not on the path, so nothing can be
//! swapped in between — that it is a regular file. [`read_bounded`] also refuses a file larger
//! than a stated limit, and stops reading there even if the file grows meanwhile.
//!
//! ```no_run
//! use kiln_config::input::{read_bounded, SSH_KEY_LIMIT};
//! let key = read_bounded("keys/id.pub".as_ref(), SSH_KEY_LIMIT, "SSH public key file").unwrap();
//! ```
//!
//! Validation uses [`check_metadata`] on `stat` results (it never opens the file), so the same
//! rules are reported at `kiln validate` time with the config entry's location.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bound for an SSH public key file (a key line is well under 16 KiB).
pub const SSH_KEY_LIMIT: u64 = 1 << 20;
/// Bound for a package-list file (every package name of Azure Linux 3.0 fits in 2 MiB).
pub const PACKAGE_LIST_LIMIT: u64 = 4 << 20;
/// Bound for an install script (Pre/Post/FinalizeImageScripts).
pub const SCRIPT_LIMIT: u64 = 64 << 20;
/// Bound for a config file.
pub const CONFIG_LIMIT: u64 = 64 << 20;

/// Why a config-named input cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// `open` or `read` failed (missing file, permissions, …).
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The path names something other than a regular file.
    #[error("{what} {} is {kind}, not a regular file; name a regular file", path.display())]
    NotRegular {
        what: String,
        path: PathBuf,
        /// `a directory`, `a FIFO (named pipe)`, `a character device`, …
        kind: &'static str,
    },
    /// The file is larger than its bound.
    #[error("{what} {} is larger than {} (the limit for {what}s); name the right file or make it smaller", path.display(), human(*limit))]
    TooLarge {
        what: String,
        path: PathBuf,
        limit: u64,
    },
}

impl InputError {
    /// The underlying I/O error kind, for callers that treat a missing file specially.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            InputError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// `1 MiB`, `64 MiB`, or bytes when not a whole number of MiB.
fn human(bytes: u64) -> String {
    if bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// What kind of file `meta` describes, as an article and a noun (`None`: a regular file).
pub fn non_regular_kind(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    Some(if t.is_file() {
        return None;
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    })
}

/// Checks `meta` (of `path`) against the rules [`open_regular`] and [`read_bounded`] apply: a
/// regular file, at most `limit` bytes when a limit is given. For validation, which only stats.
pub fn check_metadata(
    path: &Path,
    meta: &Metadata,
    limit: Option<u64>,
    what: &str,
) -> Result<(), InputError> {
    if let Some(kind) = non_regular_kind(meta) {
        return Err(InputError::NotRegular {
            what: what.to_string(),
            path: path.to_path_buf(),
            kind,
        });
    }
    match limit {
        Some(limit) if meta.len() > limit => Err(InputError::TooLarge {
            what: what.to_string(),
            path: path.to_path_buf(),
            limit,
        }),
        _ => Ok(()),
    }
}

/// Opens a file a config names for reading, refusing anything but a regular file.
///
/// The file is opened with `O_NONBLOCK | O_NOCTTY | O_CLOEXEC`, so a FIFO, a device or a
/// terminal never blocks or becomes the controlling terminal, and then checked with `fstat`.
/// Symbolic links are followed (the file they lead to is checked). `what` names the input in
/// errors (`"SSH public key file"`, `"script"`, …). `O_NONBLOCK` has no effect on reading a
/// regular file, so the returned file reads as usual.
pub fn open_regular(path: &Path, what: &str) -> Result<File, InputError> {
    let io = |source| InputError::Io {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    };
    // std adds O_CLOEXEC to every open.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    check_metadata(path, &meta, None, what)?;
    Ok(file)
}

/// Reads a whole file a config names: a regular file ([`open_regular`]) of at most `limit`
/// bytes. The bound holds even if the file grows while it is read.
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, InputError> {
    let file = open_regular(path, what)?;
    let io = |source| InputError::Io {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let meta = file.metadata().map_err(io)?;
    check_metadata(path, &meta, Some(limit), what)?;
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() as u64 > limit {
        return Err(InputError::TooLarge {
            what: what.to_string(),
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(data)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Runs `f` on a thread and fails the test if it takes more than 20 seconds (a FIFO that is
    /// opened or read blocking would hang forever).
    pub(crate) fn within_timeout<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("timed out: a FIFO or device was opened or read blocking")
    }

    pub(crate) fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    }

    #[test]
    fn a_regular_file_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pub");
        std::fs::write(&p, "ssh-ed25519 AAAA x\n").unwrap();
        assert_eq!(
            read_bounded(&p, SSH_KEY_LIMIT, "SSH public key file").unwrap(),
            b"ssh-ed25519 AAAA x\n"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        mkfifo(&p);
        let e = within_timeout(move || read_bounded(&p, SCRIPT_LIMIT, "script").unwrap_err());
        let text = e.to_string();
        assert!(
            text.contains("is a FIFO (named pipe), not a regular file"),
            "{text}"
        );
        assert!(text.starts_with("script "), "{text}");
    }

    #[test]
    fn devices_and_directories_are_refused() {
        let e = within_timeout(|| {
            read_bounded(Path::new("/dev/zero"), SSH_KEY_LIMIT, "SSH public key file").unwrap_err()
        });
        assert!(
            e.to_string()
                .contains("/dev/zero is a character device, not a regular file"),
            "{e}"
        );
        let e = open_regular(Path::new("/"), "additional file").unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }

    #[test]
    fn a_file_over_the_bound_is_refused_and_says_the_bound() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        std::fs::write(&p, vec![b'a'; (SSH_KEY_LIMIT + 1) as usize]).unwrap();
        let e = read_bounded(&p, SSH_KEY_LIMIT, "SSH public key file").unwrap_err();
        assert!(
            e.to_string()
                .contains("larger than 1 MiB (the limit for SSH public key files)"),
            "{e}"
        );
        assert_eq!(
            read_bounded(&p, SSH_KEY_LIMIT + 1, "x").unwrap().len(),
            1 << 20 | 1
        );
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let e = open_regular(Path::new("/nonexistent/x"), "script").unwrap_err();
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::NotFound));
    }
}
