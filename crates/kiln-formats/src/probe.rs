//! What a file is, told by its magic bytes: a disk image format (raw, VHD, VHDX, QCOW2, VMDK),
//! or something that is not a disk image at all (an archive, a compressed file, an ISO, an RPM),
//! which `verify`, `roast` and `boot-test` refuse instead of treating it as a raw disk.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A file's kind, by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No known magic: a raw disk (or partition) image.
    Raw,
    /// `QFI\xfb` at 0.
    Qcow2,
    /// `conectix` at 0 (dynamic) or in the last 512 bytes (fixed; a footer cut short is still
    /// recognised in the last KiB).
    Vhd,
    /// `vhdxfile` at 0.
    Vhdx,
    /// `KDMV` at 0: a sparse extent (monolithicSparse or streamOptimized).
    VmdkSparse,
    /// A text descriptor (`# Disk DescriptorFile`): the data is in other files.
    VmdkDescriptor,
    /// An ISO 9660 image (`CD001` at 32769): bootable as a CD, not a disk `verify` or `roast`
    /// reads.
    Iso,
    /// Not a disk image; the name of what it is (e.g. "a gzip file").
    NotADisk(&'static str),
}

impl Kind {
    /// The format's name as qemu-img names it (`vpc` is said `vhd`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Qcow2 => "qcow2",
            Kind::Vhd => "vhd",
            Kind::Vhdx => "vhdx",
            Kind::VmdkSparse | Kind::VmdkDescriptor => "vmdk",
            Kind::Iso => "iso",
            Kind::NotADisk(what) => what,
        }
    }
}

/// Magic numbers of files that are not disk images: (offset, bytes, what).
const NOT_DISKS: &[(u64, &[u8], &str)] = &[
    (0, &[0x1f, 0x8b], "a gzip file"),
    (0, &[0xfd, b'7', b'z', b'X', b'Z', 0], "an xz file"),
    (0, &[0x28, 0xb5, 0x2f, 0xfd], "a zstd file"),
    (0, b"BZh", "a bzip2 file"),
    (0, b"PK\x03\x04", "a zip file"),
    (0, &[0xed, 0xab, 0xee, 0xdb], "an RPM package"),
    (0, b"070701", "a cpio archive"),
    (0, b"070707", "a cpio archive"),
    (0, b"hsqs", "a squashfs filesystem"),
    (0, b"\x7fELF", "an ELF executable"),
    (257, b"ustar", "a tar archive"),
];

/// The kind of the `len`-byte `file`.
pub fn probe(file: &File, len: u64) -> io::Result<Kind> {
    let at = |offset: u64, n: usize| -> io::Result<Option<Vec<u8>>> {
        if offset.saturating_add(n as u64) > len {
            return Ok(None);
        }
        let mut b = vec![0u8; n];
        file.read_exact_at(&mut b, offset)?;
        Ok(Some(b))
    };
    let head = at(0, len.min(64) as usize)?.unwrap_or_default();
    if head.starts_with(&crate::qcow2::MAGIC.to_be_bytes()) {
        return Ok(Kind::Qcow2);
    }
    if head.starts_with(b"vhdxfile") {
        return Ok(Kind::Vhdx);
    }
    if head.starts_with(&crate::vmdk::MAGIC.to_le_bytes()) {
        return Ok(Kind::VmdkSparse);
    }
    if head.starts_with(b"conectix") {
        return Ok(Kind::Vhd);
    }
    let tail_len = len.min(1024);
    if let Some(tail) = at(len - tail_len, tail_len as usize)? {
        if tail.windows(8).any(|w| w == b"conectix") {
            return Ok(Kind::Vhd);
        }
    }
    if head.starts_with(b"# Disk DescriptorFile") {
        return Ok(Kind::VmdkDescriptor);
    }
    if at(32769, 5)?.is_some_and(|b| b == b"CD001") {
        return Ok(Kind::Iso);
    }
    for &(offset, magic, what) in NOT_DISKS {
        if at(offset, magic.len())?.is_some_and(|b| b == magic) {
            return Ok(Kind::NotADisk(what));
        }
    }
    Ok(Kind::Raw)
}

/// Why a file could not be opened as an image.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    NotADisk(#[from] NotADiskError),
}

/// Opens `path` — a regular file, opened without blocking (FIFOs, devices and directories are
/// refused at once) — and tells its kind.
pub fn open(path: &std::path::Path) -> Result<(File, u64, Kind), OpenError> {
    let io_err = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file, len) = crate::sparse::open_regular(path).map_err(io_err)?;
    let kind = probe(&file, len).map_err(io_err)?;
    Ok((file, len, kind))
}

/// Opens `path` as [`open`] does and refuses what is not a disk image (see [`require_disk`]).
pub fn open_disk(path: &std::path::Path) -> Result<(File, u64, Kind), OpenError> {
    let (file, len, kind) = open(path)?;
    require_disk(path, kind)?;
    Ok((file, len, kind))
}

/// Why a file is not accepted as a disk image.
#[derive(Debug, thiserror::Error)]
pub enum NotADiskError {
    #[error("{path} is {what}, not a disk image (offset 0: its magic bytes say so): give the disk image itself{hint}")]
    NotADisk {
        path: String,
        what: &'static str,
        hint: &'static str,
    },
}

/// Refuses `kind` unless it is a disk image format (an ISO is refused too).
pub fn require_disk(path: &std::path::Path, kind: Kind) -> Result<(), NotADiskError> {
    match kind {
        Kind::Iso => Err(NotADiskError::NotADisk {
            path: path.display().to_string(),
            what: "an ISO 9660 image",
            hint: " (an ISO is checked by booting it, not by its disk structure)",
        }),
        Kind::NotADisk(what) => Err(NotADiskError::NotADisk {
            path: path.display().to_string(),
            what,
            hint: match what {
                "a gzip file" | "an xz file" | "a zstd file" | "a bzip2 file" | "a zip file" => {
                    " (decompress it first)"
                }
                "a tar archive" => " (unpack it first)",
                _ => "",
            },
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn kind_of(bytes: &[u8]) -> Kind {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        probe(&f, bytes.len() as u64).unwrap()
    }

    #[test]
    fn magics() {
        assert_eq!(kind_of(b""), Kind::Raw);
        assert_eq!(kind_of(&[0u8; 4096]), Kind::Raw);
        assert_eq!(kind_of(b"QFI\xfb\0\0\0\x03"), Kind::Qcow2);
        assert_eq!(kind_of(b"vhdxfile"), Kind::Vhdx);
        assert_eq!(kind_of(b"KDMV\x03\0\0\0"), Kind::VmdkSparse);
        assert_eq!(
            kind_of(b"# Disk DescriptorFile\nversion=1\n"),
            Kind::VmdkDescriptor
        );
        let mut fixed = vec![0u8; 2048];
        fixed[1536..1544].copy_from_slice(b"conectix");
        assert_eq!(kind_of(&fixed), Kind::Vhd);
        assert_eq!(kind_of(&[0x1f, 0x8b, 8, 0]), Kind::NotADisk("a gzip file"));
        let mut tar = vec![0u8; 1024];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(kind_of(&tar), Kind::NotADisk("a tar archive"));
        let mut iso = vec![0u8; 40000];
        iso[32769..32774].copy_from_slice(b"CD001");
        assert_eq!(kind_of(&iso), Kind::Iso);
    }
}
