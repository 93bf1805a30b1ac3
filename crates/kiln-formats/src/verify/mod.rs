//! `kiln verify`: read an image file and check its structure, reporting every problem with the
//! byte offset where it is. Parsers treat the file as untrusted: every offset and length is
//! bounds-checked, and nothing is allocated in proportion to a field's value without checking it
//! against the file's size first.

mod qcow2;
mod vhd;
mod vhdx;
mod vmdk;

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How bad a problem is: errors make the image invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, at a byte offset of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub offset: u64,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{s}: offset {} (0x{:x}): {}",
            self.offset, self.offset, self.message
        )
    }
}

/// What was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `raw`, `vhd`, `vhdx`, `qcow2` or `vmdk`.
    pub format: &'static str,
    /// `fixed`/`dynamic` for VHD and VHDX, `streamOptimized` for VMDK.
    pub subformat: Option<&'static str>,
    /// The virtual disk size, when the structure says it.
    pub virtual_size: Option<u64>,
    pub file_size: u64,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        !self.problems.iter().any(|p| p.severity == Severity::Error)
    }
}

/// What to check besides the structure.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Azure's upload rules: a fixed VHD whose virtual size is a whole number of MiB, file size
    /// = virtual size + 512, a valid footer.
    pub azure: bool,
}

/// Reads what it needs of the file, collecting problems.
pub(crate) struct Reader<'a> {
    file: &'a File,
    pub len: u64,
    pub problems: Vec<Problem>,
}

impl Reader<'_> {
    /// `len` bytes at `offset`, or `None` (and a problem) when they lie outside the file.
    pub fn read(&mut self, offset: u64, len: u64, what: &str) -> io::Result<Option<Vec<u8>>> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {
                let mut buf = vec![0u8; len as usize];
                self.file.read_exact_at(&mut buf, offset)?;
                Ok(Some(buf))
            }
            _ => {
                self.error(
                    offset,
                    format!("{what} ({len} bytes) extends past the end of the file ({} bytes): the file is truncated or the offset is wrong", self.len),
                );
                Ok(None)
            }
        }
    }

    pub fn error(&mut self, offset: u64, message: String) {
        self.problems.push(Problem {
            severity: Severity::Error,
            offset,
            message,
        });
    }

    pub fn warning(&mut self, offset: u64, message: String) {
        self.problems.push(Problem {
            severity: Severity::Warning,
            offset,
            message,
        });
    }
}

/// Reads the image at `path` and checks it.
pub fn verify(path: &Path, opts: VerifyOptions) -> io::Result<Report> {
    let (file, len) = crate::sparse::open_regular(path)?;
    let mut r = Reader {
        file: &file,
        len,
        problems: Vec::new(),
    };
    let mut head = [0u8; 8];
    let n = file.read_at(&mut head, 0)?;
    // A VHD footer at the end, or one cut short by truncation (its cookie in the last KiB).
    let tail_len = r.len.min(1024);
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact_at(&mut tail, r.len - tail_len)?;
    let has_footer = tail.windows(8).any(|w| w == b"conectix");
    let (format, subformat, virtual_size) =
        if n >= 4 && head[..4] == crate::qcow2::MAGIC.to_be_bytes() {
            ("qcow2", None, qcow2::check(&mut r)?)
        } else if n >= 4 && &head[..4] == b"KDMV" {
            let (sub, size) = vmdk::check(&mut r)?;
            ("vmdk", sub, size)
        } else if n == 8 && &head == b"vhdxfile" {
            let (sub, size) = vhdx::check(&mut r)?;
            ("vhdx", sub, size)
        } else if (n == 8 && &head == b"conectix") || has_footer {
            let (sub, size) = vhd::check(&mut r)?;
            ("vhd", sub, size)
        } else {
            ("raw", None, Some(r.len))
        };
    if opts.azure {
        azure_rules(&mut r, format, subformat, virtual_size);
    }
    r.problems.sort_by_key(|p| (p.offset, p.severity));
    Ok(Report {
        format,
        subformat,
        virtual_size,
        file_size: r.len,
        problems: r.problems,
    })
}

fn azure_rules(r: &mut Reader, format: &str, subformat: Option<&str>, size: Option<u64>) {
    const MIB: u64 = 1 << 20;
    if format != "vhd" || subformat != Some("fixed") {
        let what = match subformat {
            Some(s) => format!("a {s} {format}"),
            None => format!("a {format} image"),
        };
        r.error(0, format!("Azure accepts only fixed VHDs; this is {what} (convert with: kiln roast --format vhd)"));
        return;
    }
    let Some(size) = size else { return };
    if size % MIB != 0 {
        r.error(
            r.len.saturating_sub(512) + 48,
            format!("Azure needs a virtual size that is a whole number of MiB; this one is {size} bytes ({} MiB + {} bytes)", size / MIB, size % MIB),
        );
    }
    if r.len != size.saturating_add(512) {
        r.error(
            0,
            format!("Azure needs the file to be the virtual size plus the 512-byte footer ({} bytes); it is {} bytes", size.saturating_add(512), r.len),
        );
    }
}

/// Big- and little-endian field readers shared by the format checkers.
pub(crate) fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A part of an image file, for overlap messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Structure(&'static str),
    /// A data block, by the index of its table entry.
    Block(u64),
    /// A VMDK grain, by its index in the disk.
    Grain(u64),
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Structure(s) => f.write_str(s),
            Part::Block(i) => write!(f, "the block of BAT entry {i}"),
            Part::Grain(i) => write!(f, "grain {i}"),
        }
    }
}

/// Reports every range of `ranges` that overlaps an earlier one (after sorting by start).
pub(crate) fn report_overlaps(r: &mut Reader, ranges: &mut [(u64, u64, Part)]) {
    for (a, b) in overlaps(ranges) {
        let (pa, pb) = (ranges[a].2, ranges[b].2);
        r.error(ranges[b].0, format!("{pb} overlaps {pa}"));
    }
}

/// Finds overlaps among `(start, end, _)` ranges; returns the index pairs.
fn overlaps<T>(ranges: &mut [(u64, u64, T)]) -> Vec<(usize, usize)> {
    ranges.sort_by_key(|r| r.0);
    let mut out = Vec::new();
    let mut furthest: Option<usize> = None;
    for i in 0..ranges.len() {
        if let Some(f) = furthest {
            if ranges[i].0 < ranges[f].1 {
                out.push((f, i));
            }
            if ranges[i].1 > ranges[f].1 {
                furthest = Some(i);
            }
        } else {
            furthest = Some(i);
        }
    }
    out
}
