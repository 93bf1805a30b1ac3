//! Reading cpio "newc" (070701/070702) archives — an RPM payload, an initramfs — entry by
//! entry from a stream, without touching any file: the caller decides what to write where.
//! Every field is checked: names must be valid relative paths (no absolute path, no `..`, no
//! NUL), sizes are bounded by the stream, and a truncated or malformed archive is an error with
//! its byte offset, never a panic.

use std::io::{self, Read};

/// What kind of file an entry is (from its mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A device, FIFO or socket.
    Special,
}

/// One archive entry's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name as stored, normalised: no leading `./` or `/`.
    pub name: String,
    pub kind: EntryKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub size: u64,
}

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cpio archive: {what} at byte {offset}")]
    Malformed { what: String, offset: u64 },
    #[error("cpio archive: the entry '{name}' at byte {offset} {why}; refusing to extract it")]
    UnsafeName {
        name: String,
        offset: u64,
        why: &'static str,
    },
    #[error("cpio archive: reading at byte {offset}: {source}")]
    Io { offset: u64, source: io::Error },
}

/// A newc archive read from a stream.
pub struct CpioReader<R: Read> {
    input: R,
    offset: u64,
    /// Unread data of the current entry (and its padding).
    pending: u64,
    done: bool,
}

const HEADER: usize = 110;
/// Longer names than this are not paths any extractor should create.
const NAME_MAX: u64 = 4096;

impl<R: Read> CpioReader<R> {
    pub fn new(input: R) -> CpioReader<R> {
        CpioReader {
            input,
            offset: 0,
            pending: 0,
            done: false,
        }
    }

    fn malformed(&self, what: impl Into<String>) -> Error {
        Error::Malformed {
            what: what.into(),
            offset: self.offset,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let offset = self.offset;
        self.input.read_exact(buf).map_err(|source| {
            if source.kind() == io::ErrorKind::UnexpectedEof {
                Error::Malformed {
                    what: "the archive ends in the middle of an entry".into(),
                    offset,
                }
            } else {
                Error::Io { offset, source }
            }
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, n: u64) -> Result<(), Error> {
        let offset = self.offset;
        let copied = io::copy(&mut (&mut self.input).take(n), &mut io::sink())
            .map_err(|source| Error::Io { offset, source })?;
        self.offset += copied;
        if copied != n {
            return Err(self.malformed("the archive ends in the middle of an entry"));
        }
        Ok(())
    }

    /// The next entry, `None` after the trailer. The previous entry's unread data is skipped.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        if self.done {
            return Ok(None);
        }
        let rest = self.pending;
        self.skip(rest)?;
        self.pending = 0;
        let start = self.offset;
        let mut h = [0u8; HEADER];
        self.read_exact(&mut h)?;
        if &h[..6] != b"070701" && &h[..6] != b"070702" {
            return Err(Error::Malformed {
                what: "not a cpio newc header".into(),
                offset: start,
            });
        }
        let field = |i: usize| -> Result<u64, Error> {
            let text = std::str::from_utf8(&h[6 + i * 8..14 + i * 8]).ok();
            text.and_then(|t| u64::from_str_radix(t, 16).ok())
                .ok_or(Error::Malformed {
                    what: format!("header field {i} is not hexadecimal"),
                    offset: start,
                })
        };
        let (mode, size, namesize) = (field(1)? as u32, field(6)?, field(11)?);
        if namesize == 0 || namesize > NAME_MAX {
            return Err(Error::Malformed {
                what: format!("name length {namesize}"),
                offset: start,
            });
        }
        let mut name = vec![0u8; namesize as usize];
        self.read_exact(&mut name)?;
        if name.pop() != Some(0) || name.contains(&0) {
            return Err(Error::Malformed {
                what: "the entry's name is not NUL-terminated".into(),
                offset: start,
            });
        }
        self.skip(pad4(HEADER as u64 + namesize))?;
        let name = String::from_utf8(name).map_err(|_| Error::Malformed {
            what: "the entry's name is not UTF-8".into(),
            offset: start,
        })?;
        if name == "TRAILER!!!" {
            self.done = true;
            return Ok(None);
        }
        self.pending = size + pad4(size);
        let kind = match mode & 0o170000 {
            0o100000 => EntryKind::File,
            0o040000 => EntryKind::Dir,
            0o120000 => EntryKind::Symlink,
            _ => EntryKind::Special,
        };
        Ok(Some(Entry {
            name: safe_name(&name, start)?,
            kind,
            mode: mode & 0o7777,
            size,
        }))
    }

    /// The current entry's data (at most its size); the caller reads it or leaves it.
    pub fn data(&mut self, size: u64) -> impl Read + '_ {
        let take = size.min(self.pending);
        self.pending -= take;
        self.offset += take;
        (&mut self.input).take(take)
    }
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

/// The name as a relative path: `./` and `/` prefixes dropped; `..` components, empty names
/// and other oddities refused.
fn safe_name(name: &str, offset: u64) -> Result<String, Error> {
    let unsafe_name = |why| Error::UnsafeName {
        name: name.into(),
        offset,
        why,
    };
    let trimmed = name.trim_start_matches("./").trim_start_matches('/');
    if name.starts_with('/') {
        return Err(unsafe_name("is an absolute path"));
    }
    let mut parts = Vec::new();
    for part in trimmed.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_name("climbs out of the archive with '..'")),
            p => parts.push(p),
        }
    }
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
        let namesize = name.len() + 1;
        out.extend_from_slice(
            format!(
                "070701{:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
                1, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, 0
            )
            .as_bytes(),
        );
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len() + pad4((HEADER + namesize) as u64) as usize, 0);
        out.extend_from_slice(data);
        out.resize(out.len() + pad4(data.len() as u64) as usize, 0);
    }

    fn archive(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, m, d) in entries {
            entry(&mut out, n, *m, d);
        }
        entry(&mut out, "TRAILER!!!", 0, b"");
        out
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, Error> {
        let mut r = CpioReader::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut data = Vec::new();
            r.data(e.size).read_to_end(&mut data).unwrap();
            out.push((e, data));
        }
        Ok(out)
    }

    #[test]
    fn entries_with_their_data() {
        let a = archive(&[
            ("./usr", 0o40755, b""),
            ("./usr/lib/boot.img", 0o100644, b"boot"),
            ("usr/link", 0o120777, b"boot.img"),
        ]);
        let got = read_all(&a).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0.name, "usr/lib/boot.img");
        assert_eq!((got[1].0.kind, got[1].0.mode), (EntryKind::File, 0o644));
        assert_eq!(got[1].1, b"boot");
        assert_eq!(
            (got[2].0.kind, got[2].1.as_slice()),
            (EntryKind::Symlink, &b"boot.img"[..])
        );
        // Data left unread is skipped.
        let mut r = CpioReader::new(&a[..]);
        let names: Vec<String> = std::iter::from_fn(|| r.next_entry().unwrap())
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["usr", "usr/lib/boot.img", "usr/link"]);
    }

    #[test]
    fn hostile_names_and_truncation_are_errors() {
        for name in ["/etc/passwd", "../../etc/passwd", "usr/../../x"] {
            let e = read_all(&archive(&[(name, 0o100644, b"x")])).unwrap_err();
            assert!(matches!(e, Error::UnsafeName { .. }), "{name}: {e}");
        }
        let a = archive(&[("f", 0o100644, b"0123456789")]);
        for cut in [0, 5, HEADER, HEADER + 3, a.len() - 20] {
            assert!(read_all(&a[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = a.clone();
        bad[14] = b'g'; // the mode field
        assert!(read_all(&bad).is_err());
    }
}
