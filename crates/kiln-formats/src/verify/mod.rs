//! `kiln verify`: read an image file and check its structure, reporting every problem with the
//! byte offset where it is. Parsers treat the file as untrusted: every offset and length is
//! bounds-checked, and nothing is allocated in proportion to a field's value without checking it
//! against the file's size first.

mod qcow2;
pub(crate) use qcow2::parse_header as qcow2_header;
mod vhd;
mod vhdx;
mod vmdk;

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How bad a problem is: errors make the image invalid; an unsupported feature means the image
/// uses something kiln does not check, so it cannot say the image is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Unsupported,
    Warning,
}

/// One finding, at a byte offset of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub offset: u64,
    pub message: String,
}

impl Severity {
    /// How messages and JSON name it.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Unsupported => "not supported",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.severity.name();
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
    /// No errors, and nothing left unchecked.
    pub fn is_ok(&self) -> bool {
        self.count(Severity::Error) == 0 && self.count(Severity::Unsupported) == 0
    }

    /// How many problems of `severity` were found.
    pub fn count(&self, severity: Severity) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == severity)
            .count()
    }
}

/// Why a file could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    NotADisk(#[from] crate::probe::NotADiskError),
}

impl From<crate::probe::OpenError> for VerifyError {
    fn from(e: crate::probe::OpenError) -> VerifyError {
        match e {
            crate::probe::OpenError::Io { path, source } => VerifyError::Io { path, source },
            crate::probe::OpenError::NotADisk(e) => VerifyError::NotADisk(e),
        }
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
    /// What a checker learnt that a reader of the image needs (see [`crate::image`]).
    pub layout: Option<Layout>,
}

/// Where a checked image's data is, for formats whose readers would otherwise parse the same
/// structures again.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layout {
    /// A VHDX: `entries` BAT entries at `bat_at` (a sector-bitmap entry after every `ratio`
    /// payload entries), `block`-byte blocks, a `size`-byte disk.
    Vhdx {
        bat_at: u64,
        entries: u64,
        ratio: u64,
        block: u64,
        size: u64,
    },
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

    /// A feature kiln does not check: the image cannot be called good.
    pub fn unsupported(&mut self, offset: u64, message: String) {
        self.problems.push(Problem {
            severity: Severity::Unsupported,
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

/// Reads the image at `path` and checks it. Files that are not disk images (archives,
/// compressed files, ISOs), directories, devices and FIFOs are refused.
pub fn verify(path: &Path, opts: VerifyOptions) -> Result<Report, VerifyError> {
    verify_layout(path, opts).map(|(report, _)| report)
}

/// [`verify`], with what the checker learnt of the image's layout.
pub(crate) fn verify_layout(
    path: &Path,
    opts: VerifyOptions,
) -> Result<(Report, Option<Layout>), VerifyError> {
    let io_err = |source| VerifyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file, len, kind) = crate::probe::open_disk(path)?;
    let mut r = Reader {
        file: &file,
        len,
        problems: Vec::new(),
        layout: None,
    };
    use crate::probe::Kind;
    let checked = match kind {
        Kind::Qcow2 => qcow2::check(&mut r).map(|size| (None, size)),
        Kind::VmdkSparse => vmdk::check(&mut r),
        Kind::VmdkDescriptor => {
            r.unsupported(0, "a VMDK descriptor file: the data is in the extent files it names, which kiln does not read (check each extent, or convert with: qemu-img convert -O raw)".into());
            Ok((None, None))
        }
        Kind::Vhdx => vhdx::check(&mut r),
        Kind::Vhd => vhd::check(&mut r),
        Kind::Raw | Kind::Iso | Kind::NotADisk(_) => Ok((None, Some(r.len))),
    };
    let (subformat, virtual_size) = checked.map_err(io_err)?;
    let format = kind.name();
    if opts.azure {
        azure_rules(&mut r, format, subformat, virtual_size);
    }
    r.problems.sort_by_key(|p| (p.offset, p.severity));
    Ok((
        Report {
            format,
            subformat,
            virtual_size,
            file_size: r.len,
            problems: r.problems,
        },
        r.layout,
    ))
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
