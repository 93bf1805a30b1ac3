//! POSIX (pax) tar archives of a directory tree or a file, streaming.
//!
//! Entries come in a fixed order (a depth-first walk, names sorted bytewise), named `./…` as
//! `tar -C dir .` names them. Owners are numeric; modes, symlinks, hard links (later links to an
//! inode become link entries), character and block devices, FIFOs and extended attributes
//! (`SCHILY.xattr.*` records, which GNU tar and bsdtar restore) are kept. With a clamp time
//! (`SOURCE_DATE_EPOCH`), no mtime is later than it. The archive is padded to 10 KiB records, as
//! GNU tar does.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

const BLOCK: usize = 512;
const RECORD: u64 = 10240;

/// Writes a tar archive to `out`.
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
    /// Latest mtime allowed in the archive.
    clamp: Option<u64>,
    /// (device, inode) → first name stored, for hard links.
    links: HashMap<(u64, u64), String>,
    /// Things the user should know (skipped sockets).
    pub warnings: Vec<String>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W, clamp: Option<u64>) -> TarWriter<W> {
        TarWriter {
            out,
            written: 0,
            clamp,
            links: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Appends the tree under `root`: `./` first, then everything below, sorted.
    pub fn append_tree(&mut self, root: &Path) -> io::Result<()> {
        let meta = fs::symlink_metadata(root)?;
        self.append(root, "./", &meta)?;
        self.walk(root, "./")
    }

    fn walk(&mut self, dir: &Path, prefix: &str) -> io::Result<()> {
        for name in crate::tree::sorted_names(dir)? {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path)?;
            let mut archive_name = format!("{prefix}{}", String::from_utf8_lossy(name.as_bytes()));
            if meta.is_dir() {
                archive_name.push('/');
                self.append(&path, &archive_name, &meta)?;
                self.walk(&path, &archive_name)?;
            } else {
                self.append(&path, &archive_name, &meta)?;
            }
        }
        Ok(())
    }

    /// Appends one filesystem object under `name`.
    pub fn append(&mut self, path: &Path, name: &str, meta: &Metadata) -> io::Result<()> {
        let ft = meta.file_type();
        let mut linkname = String::new();
        let mut size = 0u64;
        let mut dev = (0u32, 0u32);
        let kind = if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            match self.links.get(&key) {
                Some(first) if meta.nlink() > 1 => {
                    linkname = first.clone();
                    b'1'
                }
                _ => {
                    if meta.nlink() > 1 {
                        self.links.insert(key, name.to_string());
                    }
                    size = meta.len();
                    b'0'
                }
            }
        } else if ft.is_dir() {
            b'5'
        } else if ft.is_symlink() {
            linkname =
                String::from_utf8_lossy(fs::read_link(path)?.as_os_str().as_bytes()).into_owned();
            b'2'
        } else if ft.is_char_device() || ft.is_block_device() {
            let rdev = meta.rdev();
            dev = (libc::major(rdev), libc::minor(rdev));
            if ft.is_char_device() {
                b'3'
            } else {
                b'4'
            }
        } else if ft.is_fifo() {
            b'6'
        } else {
            self.warnings.push(format!(
                "{}: sockets cannot be archived; skipped",
                path.display()
            ));
            return Ok(());
        };
        let mtime = crate::tree::mtime(meta, self.clamp);
        let entry = Entry {
            name,
            linkname: &linkname,
            kind,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            size,
            mtime,
            dev,
            xattrs: xattrs(path)?,
        };
        self.header(&entry)?;
        if kind == b'0' {
            crate::tree::copy_exact(path, size, |chunk| self.put(chunk))?;
            self.pad()?;
        }
        Ok(())
    }

    /// Appends a regular file owned by root from `data` (exactly `size` bytes).
    pub fn append_data(
        &mut self,
        name: &str,
        mode: u32,
        mtime: u64,
        size: u64,
        mut data: impl Read,
    ) -> io::Result<()> {
        let entry = Entry {
            name,
            linkname: "",
            kind: b'0',
            mode,
            uid: 0,
            gid: 0,
            size,
            mtime,
            dev: (0, 0),
            xattrs: Vec::new(),
        };
        self.header(&entry)?;
        let copied = io::copy(&mut (&mut data).take(size), &mut CountingWriter(self))?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: short data"),
            ));
        }
        self.pad()
    }

    /// Appends an overlayfs whiteout: a character device 0/0, mode 0, owned by root (what an
    /// overlay's upper directory holds for a removed lower entry).
    pub fn append_whiteout(&mut self, name: &str, mtime: u64) -> io::Result<()> {
        self.header(&Entry {
            name,
            linkname: "",
            kind: b'3',
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime,
            dev: (0, 0),
            xattrs: Vec::new(),
        })
    }

    fn pad(&mut self) -> io::Result<()> {
        let rem = (self.written % BLOCK as u64) as usize;
        if rem != 0 {
            self.put(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    fn header(&mut self, e: &Entry) -> io::Result<()> {
        // What does not fit the ustar header goes into a pax extended header before it.
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let (prefix, short) = split_name(e.name).unwrap_or_else(|| {
            pax.push(("path".into(), e.name.as_bytes().to_vec()));
            ("", truncate(e.name, 100))
        });
        if e.linkname.len() > 100 {
            pax.push(("linkpath".into(), e.linkname.as_bytes().to_vec()));
        }
        for (k, v, max) in [
            ("uid", e.uid, 0o7777777),
            ("gid", e.gid, 0o7777777),
            ("size", e.size, 0o77777777777),
        ] {
            if v > max {
                pax.push((k.into(), v.to_string().into_bytes()));
            }
        }
        for (k, v) in &e.xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        if !pax.is_empty() {
            let mut body = Vec::new();
            for (k, v) in &pax {
                body.extend(pax_record(k, v));
            }
            let pax_name = format!(
                "PaxHeaders/{}",
                truncate(
                    e.name
                        .trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or(""),
                    80
                )
            );
            let h = ustar_header(
                &Entry {
                    name: &pax_name,
                    linkname: "",
                    kind: b'x',
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    size: body.len() as u64,
                    mtime: e.mtime,
                    dev: (0, 0),
                    xattrs: Vec::new(),
                },
                "",
                &pax_name,
            );
            self.put(&h)?;
            self.put(&body)?;
            self.pad()?;
        }
        let h = ustar_header(e, prefix, short);
        self.put(&h)
    }

    /// Writes the end-of-archive blocks and pads to a whole record; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.put(&[0u8; BLOCK * 2])?;
        let rem = self.written % RECORD;
        if rem != 0 {
            let pad = vec![0u8; (RECORD - rem) as usize];
            self.put(&pad)?;
        }
        Ok(self.out)
    }
}

/// Lets `io::copy` write through [`TarWriter::put`].
struct CountingWriter<'a, W: Write>(&'a mut TarWriter<W>);

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.put(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Entry<'a> {
    name: &'a str,
    linkname: &'a str,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    dev: (u32, u32),
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Splits a name into ustar's prefix (≤ 155) and name (≤ 100) fields.
fn split_name(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return Some(("", name));
    }
    let bytes = name.as_bytes();
    // Split at a '/' so that the rest fits in 100 bytes and the prefix in 155.
    (0..bytes.len())
        .filter(|&i| {
            bytes[i] == b'/' && i <= 155 && bytes.len() - i - 1 <= 100 && i + 1 < bytes.len()
        })
        .map(|i| (&name[..i], &name[i + 1..]))
        .next()
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One pax record: `<length> <key>=<value>\n`, the length counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    let s = &s[s.len().saturating_sub(digits)..];
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

fn ustar_header(e: &Entry, prefix: &str, name: &str) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], u64::from(e.mode));
    octal(&mut h[108..116], e.uid.min(0o7777777));
    octal(&mut h[116..124], e.gid.min(0o7777777));
    octal(
        &mut h[124..136],
        if e.size > 0o77777777777 { 0 } else { e.size },
    );
    octal(&mut h[136..148], e.mtime.min(0o77777777777));
    h[156] = e.kind;
    let link = truncate(e.linkname, 100);
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], u64::from(e.dev.0));
    octal(&mut h[337..345], u64::from(e.dev.1));
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// Extended attributes of `path` (not following symlinks), sorted by name: none where the
/// filesystem has none.
pub fn xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: a valid C string and a null buffer asks for the needed size.
    let size = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if size <= 0 {
        return Ok(Vec::new()); // none, or the filesystem has no xattrs
    }
    let mut names = vec![0u8; size as usize];
    // SAFETY: the buffer has the size we pass.
    let size = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if size < 0 {
        return Ok(Vec::new());
    }
    names.truncate(size as usize);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("split at NULs");
        // SAFETY: as above.
        let vlen = unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), std::ptr::null_mut(), 0) };
        if vlen < 0 {
            continue;
        }
        let mut value = vec![0u8; vlen as usize];
        // SAFETY: as above.
        let vlen = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if vlen < 0 {
            continue;
        }
        value.truncate(vlen as usize);
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        assert_eq!(pax_record("path", b"a"), b"9 path=a\n");
        let r = pax_record("k", &[b'x'; 95]);
        assert_eq!(
            r.len().to_string(),
            String::from_utf8_lossy(&r).split(' ').next().unwrap()
        );
    }

    #[test]
    fn long_names_split_into_prefix_and_name() {
        let long = format!("./{}/{}", "d".repeat(120), "f".repeat(50));
        let (p, n) = split_name(&long).unwrap();
        assert_eq!(format!("{p}/{n}"), long);
        assert!(split_name(&"x".repeat(300)).is_none());
    }
}
