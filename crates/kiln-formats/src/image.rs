//! Disk images as inputs: the format is told by its magic ([`crate::probe`]), and raw, VHD (fixed
//! and dynamic), VHDX (fixed and dynamic) and QCOW2 (versions 2 and 3, zlib and zstd compressed
//! clusters) are read natively as sparse streams — only the clusters or blocks the image maps
//! are read. Before an image is read, [`crate::verify`] checks it: a damaged image, or one using a
//! feature kiln does not read (encryption, a backing file, an external data file, subclusters,
//! a VHDX log to replay), is refused with the reason and its byte offset. VMDK inputs are
//! refused with what to do instead.

use crate::probe::{self, Kind};
use crate::sparse::{RawSource, Source, SparseInput};
use crate::verify::{self, be_u32, be_u64, Severity, VerifyOptions};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Why an image cannot be read as an input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    NotADisk(#[from] probe::NotADiskError),
    #[error("{} is a {format} image, which kiln does not read as an input{why}: convert it to raw first (qemu-img convert -O raw {} disk.raw) and give kiln the raw disk", path.display(), path.display())]
    Format {
        path: PathBuf,
        format: &'static str,
        why: String,
    },
    #[error("{} is a damaged {format} image: {problem} (kiln verify {} lists every problem)", path.display(), path.display())]
    Damaged {
        path: PathBuf,
        format: &'static str,
        problem: String,
    },
}

/// Opens the disk image at `path` (raw, VHD, VHDX or QCOW2) for reading by its data; returns it with
/// the detected kind.
pub fn open(path: &Path) -> Result<(SparseInput, Kind), InputError> {
    let io_err = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (file, len, kind) = probe::open_disk(path).map_err(|e| match e {
        probe::OpenError::Io { source, .. } => io_err(source),
        probe::OpenError::NotADisk(e) => InputError::NotADisk(e),
    })?;
    let refuse = |why: &str| InputError::Format {
        path: path.to_path_buf(),
        format: kind.name(),
        why: why.to_string(),
    };
    match kind {
        Kind::Raw => {
            return Ok((
                SparseInput::from_source(Box::new(RawSource::new(file, len))),
                kind,
            ))
        }
        Kind::Vhd | Kind::Vhdx | Kind::Qcow2 => {}
        Kind::VmdkSparse => return Err(refuse(" (VMDK is written, not read)")),
        Kind::VmdkDescriptor => {
            return Err(refuse(
                " (a descriptor file: the data is in the extent files it names)",
            ))
        }
        Kind::Iso | Kind::NotADisk(_) => unreachable!("refused by require_disk"),
    }
    // Checked first: the readers below trust the structure's shape (still bounds-checked).
    let (report, layout) =
        verify::verify_layout(path, VerifyOptions::default()).map_err(|e| match e {
            verify::VerifyError::Io { source, .. } => io_err(source),
            verify::VerifyError::NotADisk(e) => InputError::NotADisk(e),
        })?;
    let first = |severity| report.problems.iter().find(|p| p.severity == severity);
    if let Some(p) = first(Severity::Error) {
        return Err(InputError::Damaged {
            path: path.to_path_buf(),
            format: kind.name(),
            problem: p.to_string(),
        });
    }
    if let Some(p) = first(Severity::Unsupported) {
        return Err(refuse(&format!(" as it is ({p})")));
    }
    let source: Box<dyn Source> = match (kind, layout) {
        (Kind::Qcow2, _) => Box::new(Qcow2::open(file, len).map_err(io_err)?),
        (
            Kind::Vhdx,
            Some(verify::Layout::Vhdx {
                bat_at,
                entries,
                ratio,
                block,
                size,
            }),
        ) => {
            // MS-VHDX: payload block i's entry is at bat_index(i); state 6 (fully present) or
            // 7 (partially present: differencing disks only, which verify refuses) holds data
            // at its offset in MiB; every other state reads as zeros, as qemu reads a disk
            // without parent.
            let mut bat = vec![0u8; entries as usize * 8];
            file.read_exact_at(&mut bat, bat_at).map_err(io_err)?;
            let at = (0..size.div_ceil(block))
                .map(|i| {
                    let e = verify::le_u64(&bat, crate::vhdx::bat_index(i, ratio) as usize * 8);
                    match e & 7 {
                        6 | 7 => (e >> 20) * crate::MIB,
                        _ => NOT_STORED,
                    }
                })
                .collect();
            Box::new(Blocks {
                file,
                file_len: len,
                size,
                block,
                at,
            })
        }
        (Kind::Vhdx, None) => return Err(refuse(" (its structure could not be read)")),
        _ => vhd(file, len).map_err(io_err)?,
    };
    Ok((SparseInput::from_source(source), kind))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads `buf.len()` bytes at `offset` of a `len`-byte file; what lies past the end reads as
/// zeros (as qemu reads it).
fn read_padded(file: &File, len: u64, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let avail = len.saturating_sub(offset).min(buf.len() as u64) as usize;
    file.read_exact_at(&mut buf[..avail], offset)?;
    buf[avail..].fill(0);
    Ok(())
}

/// Calls `f(chunk, guest_offset)` for each piece of `[offset, offset + buf.len())` that lies in
/// one `unit`-sized block (a power of two).
fn by_unit(
    buf: &mut [u8],
    offset: u64,
    unit: u64,
    mut f: impl FnMut(&mut [u8], u64) -> io::Result<()>,
) -> io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let pos = offset + done as u64;
        let n = ((unit - pos % unit) as usize).min(buf.len() - done);
        f(&mut buf[done..done + n], pos)?;
        done += n;
    }
    Ok(())
}

/// A VHD: a fixed one is its file's data; a dynamic one maps blocks through its BAT.
fn vhd(file: File, len: u64) -> io::Result<Box<dyn Source>> {
    let mut footer = [0u8; 512];
    file.read_exact_at(&mut footer, len - 512)?;
    let size = be_u64(&footer, 48);
    if be_u32(&footer, 60) == crate::vhd::DISK_TYPE_FIXED {
        return Ok(Box::new(RawSource::new(file, size)));
    }
    let mut h = [0u8; 1024];
    file.read_exact_at(&mut h, be_u64(&footer, 16))?;
    let (bat_at, entries, block) = (be_u64(&h, 16), be_u32(&h, 28), be_u32(&h, 32));
    let mut bat = vec![0u8; entries as usize * 4];
    file.read_exact_at(&mut bat, bat_at)?;
    // Sectors are read as stored whatever the block's sector bitmap says, as qemu reads them.
    let bitmap = (u64::from(block) / 512 / 8).div_ceil(512) * 512;
    let at = bat
        .chunks(4)
        .map(|c| be_u32(c, 0))
        .map(|e| match e {
            u32::MAX => NOT_STORED,
            e => u64::from(e) * 512 + bitmap,
        })
        .collect();
    Ok(Box::new(Blocks {
        file,
        file_len: len,
        size,
        block: u64::from(block),
        at,
    }))
}

/// A disk stored in fixed-size blocks at host offsets (a dynamic VHD, a VHDX): `at[i]` is where
/// block `i`'s data starts in the file, [`NOT_STORED`] when the block reads as zeros.
struct Blocks {
    file: File,
    file_len: u64,
    size: u64,
    block: u64,
    at: Vec<u64>,
}

const NOT_STORED: u64 = u64::MAX;

impl Source for Blocks {
    fn len(&self) -> u64 {
        self.size
    }

    fn extents(&self) -> io::Result<Vec<(u64, u64)>> {
        let stored = (0..self.at.len() as u64).filter(|&i| self.at[i as usize] != NOT_STORED);
        Ok(merge(stored, self.block, self.size))
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        by_unit(buf, offset, self.block, |chunk, pos| {
            match self.at.get((pos / self.block) as usize).copied() {
                Some(at) if at != NOT_STORED => {
                    read_padded(&self.file, self.file_len, chunk, at + pos % self.block)
                }
                _ => {
                    chunk.fill(0);
                    Ok(())
                }
            }
        })
    }
}

/// The runs of consecutive `unit`-sized blocks among `indexes` (increasing), as byte ranges
/// clipped to `size`.
fn merge(indexes: impl Iterator<Item = u64>, unit: u64, size: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for i in indexes {
        let (start, end) = (i * unit, ((i + 1) * unit).min(size));
        if start >= end {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => out.push((start, end)),
        }
    }
    out
}

/// Where a QCOW2 guest cluster's data is.
#[derive(Debug, Clone, Copy)]
enum Cluster {
    /// At this host offset, uncompressed.
    Data(u64),
    /// Compressed: `len` bytes at this host offset.
    Compressed(u64, u64),
}

struct Qcow2 {
    file: File,
    file_len: u64,
    size: u64,
    cluster_bits: u32,
    zstd: bool,
    /// Mapped guest clusters, by guest cluster index (increasing).
    map: Vec<(u64, Cluster)>,
}

impl Qcow2 {
    fn open(file: File, len: u64) -> io::Result<Qcow2> {
        let mut h = vec![0u8; 112.min(len) as usize];
        file.read_exact_at(&mut h, 0)?;
        let hd = verify::qcow2_header(&h);
        let bits = hd.cluster_bits;
        let cluster = 1u64 << bits;
        let l2_entries = cluster / 8;
        let shift = 62 - (bits - 8);
        let mut l1 = vec![0u8; hd.l1_size as usize * 8];
        file.read_exact_at(&mut l1, hd.l1_at)?;
        let mut map = Vec::new();
        let mut l2 = vec![0u8; cluster as usize];
        // Every mapped cluster needs a host cluster or (compressed) at least a byte of the file.
        let most = len.saturating_add(1);
        for (i, e) in l1.chunks(8).enumerate() {
            let l2_at = be_u64(e, 0) & crate::qcow2::OFFSET_MASK;
            if l2_at == 0 {
                continue;
            }
            read_padded(&file, len, &mut l2, l2_at)?;
            for j in 0..l2_entries {
                let e = be_u64(&l2, j as usize * 8);
                let guest = i as u64 * l2_entries + j;
                let loc = if e & crate::qcow2::COMPRESSED != 0 {
                    let off = e & ((1u64 << shift) - 1);
                    let sectors = ((e >> shift) & ((1u64 << (62 - shift)) - 1)) + 1;
                    Cluster::Compressed(off, (off & !511) + sectors * 512 - off)
                } else if e & 1 != 0 || e & crate::qcow2::OFFSET_MASK == 0 {
                    continue; // reads as zeros (there is no backing file)
                } else {
                    Cluster::Data(e & crate::qcow2::OFFSET_MASK)
                };
                if map.len() as u64 >= most {
                    return Err(invalid(format!(
                        "the L2 tables map more clusters than a {len}-byte file can hold"
                    )));
                }
                map.push((guest, loc));
            }
        }
        Ok(Qcow2 {
            file,
            file_len: len,
            size: hd.size,
            cluster_bits: bits,
            zstd: hd.compression_type == 1,
            map,
        })
    }

    fn decompress(&self, at: u64, clen: u64, out: &mut [u8]) -> io::Result<()> {
        let clen = clen.min(self.file_len.saturating_sub(at));
        let mut data = vec![0u8; clen as usize];
        self.file.read_exact_at(&mut data, at)?;
        let cluster = 1usize << self.cluster_bits;
        let mut whole = vec![0u8; cluster];
        let filled = if self.zstd {
            let mut d = zstd::stream::read::Decoder::new(&data[..])?.single_frame();
            read_full(&mut d, &mut whole)
        } else {
            let mut d = flate2::read::DeflateDecoder::new(&data[..]);
            read_full(&mut d, &mut whole)
        };
        if filled != cluster {
            return Err(invalid(format!(
                "the compressed cluster at {at} inflates to {filled} bytes, not {cluster}"
            )));
        }
        out.copy_from_slice(&whole[..out.len()]);
        Ok(())
    }
}

/// Reads until `buf` is full or the input ends (or fails); returns how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

impl Source for Qcow2 {
    fn len(&self) -> u64 {
        self.size
    }

    fn extents(&self) -> io::Result<Vec<(u64, u64)>> {
        Ok(merge(
            self.map.iter().map(|(g, _)| *g),
            1 << self.cluster_bits,
            self.size,
        ))
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let cluster = 1u64 << self.cluster_bits;
        by_unit(buf, offset, cluster, |chunk, pos| {
            let index = pos >> self.cluster_bits;
            let within = pos % cluster;
            match self.map.binary_search_by_key(&index, |(g, _)| *g) {
                Ok(i) => match self.map[i].1 {
                    Cluster::Data(at) => read_padded(&self.file, self.file_len, chunk, at + within),
                    Cluster::Compressed(at, clen) => {
                        if within != 0 {
                            let mut whole = vec![0u8; cluster as usize];
                            self.decompress(at, clen, &mut whole)?;
                            let w = within as usize;
                            chunk.copy_from_slice(&whole[w..w + chunk.len()]);
                            Ok(())
                        } else {
                            self.decompress(at, clen, chunk)
                        }
                    }
                },
                Err(_) => {
                    chunk.fill(0);
                    Ok(())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_joins_neighbours_and_clips() {
        assert_eq!(
            merge([0, 1, 3, 9].into_iter(), 10, 95),
            [(0, 20), (30, 40), (90, 95)]
        );
        assert_eq!(merge([10].into_iter(), 10, 95), []);
    }

    #[test]
    fn by_unit_splits_at_unit_boundaries() {
        let mut buf = [0u8; 25];
        let mut seen = Vec::new();
        by_unit(&mut buf, 5, 10, |c, pos| {
            seen.push((pos, c.len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(5, 5), (10, 10), (20, 10)]);
    }
}
