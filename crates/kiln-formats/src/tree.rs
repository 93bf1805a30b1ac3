//! Walking a directory tree the same way every archive writer does: names sorted bytewise, file
//! contents copied exactly, mtimes clamped for reproducibility.

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The names in `dir`, sorted bytewise (a fixed order whatever the filesystem returns).
pub fn sorted_names(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names: Vec<OsString> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Feeds exactly `size` bytes of the file at `path` to `put`, 1 MiB at a time; a file that
/// shrinks meanwhile is an error (the header already promised `size`).
pub fn copy_exact(
    path: &Path,
    size: u64,
    mut put: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut f = File::open(path)?;
    let mut left = size;
    let cap = (1u64 << 20).min(size).max(1);
    let mut buf = vec![0u8; cap as usize];
    while left > 0 {
        let n = f.read(&mut buf[..left.min(cap) as usize])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while being archived", path.display()),
            ));
        }
        put(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// The mtime to record: the file's, but never later than `clamp` (`SOURCE_DATE_EPOCH`).
pub fn mtime(meta: &Metadata, clamp: Option<u64>) -> u64 {
    let m = meta.mtime().max(0) as u64;
    clamp.map_or(m, |c| m.min(c))
}
