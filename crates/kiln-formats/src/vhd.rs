//! VHD (Virtual Hard Disk, "vpc"): fixed and dynamic.
//!
//! Fixed VHDs are what Azure accepts: the raw disk followed by a 512-byte footer, the virtual size
//! a whole number of MiB and the footer's current size equal to it (qemu's `force_size`). The
//! footer names creator "qem2", as qemu-img (upstream's converter) does, which also tells readers
//! to trust the current size rather than the CHS geometry.

use crate::ident::Identity;
use crate::sparse::SparseInput;
use crate::{round_up, unsupported, Converted, MIB};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub const FOOTER_SIZE: usize = 512;
pub const DYNAMIC_HEADER_SIZE: usize = 1024;
/// The dynamic block size (2 MiB, the only one common readers handle).
pub const BLOCK_SIZE: u64 = 2 * MIB;
/// The largest VHD (2040 GiB): the limit of the format's readers (Hyper-V, qemu).
pub const MAX_SIZE: u64 = 0xff00_0000 * 512;
/// Seconds between 1970-01-01 and 2000-01-01, the VHD epoch.
const VHD_EPOCH: u64 = 946_684_800;
const NO_OFFSET: u64 = u64::MAX;

pub const DISK_TYPE_FIXED: u32 = 2;
pub const DISK_TYPE_DYNAMIC: u32 = 3;

/// The VHD footer (also the first sector of a dynamic VHD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    pub data_offset: u64,
    pub timestamp: u32,
    pub creator_app: [u8; 4],
    pub creator_version: u32,
    pub creator_os: [u8; 4],
    pub original_size: u64,
    pub current_size: u64,
    pub geometry: (u16, u8, u8),
    pub disk_type: u32,
    pub unique_id: [u8; 16],
}

impl Footer {
    fn new(size: u64, disk_type: u32, data_offset: u64, ident: &Identity) -> Footer {
        Footer {
            data_offset,
            timestamp: ident
                .unix_time()
                .saturating_sub(VHD_EPOCH)
                .min(u32::MAX as u64) as u32,
            creator_app: *b"qem2",
            creator_version: 0x0005_0003,
            creator_os: *b"Wi2k",
            original_size: size,
            current_size: size,
            geometry: chs_geometry(size),
            disk_type,
            unique_id: ident.uuid("vhd.unique-id"),
        }
    }

    pub fn to_bytes(&self) -> [u8; FOOTER_SIZE] {
        let mut b = [0u8; FOOTER_SIZE];
        b[0..8].copy_from_slice(b"conectix");
        b[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit always set
        b[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        b[16..24].copy_from_slice(&self.data_offset.to_be_bytes());
        b[24..28].copy_from_slice(&self.timestamp.to_be_bytes());
        b[28..32].copy_from_slice(&self.creator_app);
        b[32..36].copy_from_slice(&self.creator_version.to_be_bytes());
        b[36..40].copy_from_slice(&self.creator_os);
        b[40..48].copy_from_slice(&self.original_size.to_be_bytes());
        b[48..56].copy_from_slice(&self.current_size.to_be_bytes());
        b[56..58].copy_from_slice(&self.geometry.0.to_be_bytes());
        b[58] = self.geometry.1;
        b[59] = self.geometry.2;
        b[60..64].copy_from_slice(&self.disk_type.to_be_bytes());
        b[68..84].copy_from_slice(&self.unique_id);
        let sum = checksum(&b);
        b[64..68].copy_from_slice(&sum.to_be_bytes());
        b
    }
}

/// One's complement of the byte sum, with the checksum field (already zero) included.
pub fn checksum(bytes: &[u8]) -> u32 {
    !bytes
        .iter()
        .fold(0u32, |s, &b| s.wrapping_add(u32::from(b)))
}

/// CHS geometry by the algorithm of the VHD specification (capped at 65535/16/255).
pub fn chs_geometry(size: u64) -> (u16, u8, u8) {
    let mut total = (size / 512).min(65535 * 16 * 255);
    let (spt, heads, cyl_times_heads);
    if total >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cyl_times_heads = total / spt;
    } else {
        let mut s = 17;
        let mut cth = total / s;
        let mut h = cth.div_ceil(1024);
        if h < 4 {
            h = 4;
        }
        if cth >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            cth = total / s;
        }
        if cth >= h * 1024 {
            s = 63;
            h = 16;
            cth = total / s;
        }
        spt = s;
        heads = h;
        cyl_times_heads = cth;
    }
    total = cyl_times_heads / heads;
    (total as u16, heads as u8, spt as u8)
}

fn check_size(size: u64) -> io::Result<()> {
    if size > MAX_SIZE {
        return Err(unsupported(format!(
            "a VHD holds at most 2040 GiB; this disk is {} GiB (use vhdx or qcow2)",
            size.div_ceil(1 << 30)
        )));
    }
    Ok(())
}

/// A fixed VHD: the data at its own offsets, padded to a whole MiB, then the footer.
pub fn write_fixed(src: &SparseInput, out: &File, ident: &Identity) -> io::Result<Converted> {
    if src.is_empty() {
        return Err(unsupported(
            "the input is empty (0 bytes): a fixed VHD must hold at least one sector (qemu and Azure reject an empty one)".into(),
        ));
    }
    let size = round_up(src.len(), MIB);
    check_size(size)?;
    let mut warnings = Vec::new();
    if size != src.len() {
        warnings.push(format!(
            "the input is {} bytes, not a whole number of MiB; the VHD is padded with zeros to {} MiB ({size} bytes), as Azure requires",
            src.len(),
            size / MIB
        ));
    }
    out.set_len(size + FOOTER_SIZE as u64)?;
    src.for_each_data_run(crate::raw::GRANULE, |off, data| out.write_all_at(data, off))?;
    let footer = Footer::new(size, DISK_TYPE_FIXED, NO_OFFSET, ident);
    out.write_all_at(&footer.to_bytes(), size)?;
    Ok(Converted {
        virtual_size: size,
        warnings,
    })
}

/// A dynamic VHD: footer copy, dynamic header, BAT, then 2 MiB blocks (each behind a sector
/// bitmap) for the parts of the disk that hold data, then the footer.
pub fn write_dynamic(src: &SparseInput, out: &File, ident: &Identity) -> io::Result<Converted> {
    let size = round_up(src.len(), 512);
    check_size(size)?;
    let mut warnings = Vec::new();
    if size != src.len() {
        warnings.push(format!(
            "the input is {} bytes, not a whole number of sectors; the VHD is padded to {size} bytes",
            src.len()
        ));
    }
    let entries = size.div_ceil(BLOCK_SIZE);
    let bat_offset = (FOOTER_SIZE + DYNAMIC_HEADER_SIZE) as u64;
    let bat_bytes = round_up(entries * 4, 512);
    let mut bat = vec![u32::MAX; entries as usize];
    let mut next = round_up(bat_offset + bat_bytes, 4096);
    let bitmap = [0xffu8; 512];
    src.for_each_data_run(crate::raw::GRANULE, |mut off, mut data| {
        while !data.is_empty() {
            let block = off / BLOCK_SIZE;
            let within = off % BLOCK_SIZE;
            let n = data.len().min((BLOCK_SIZE - within) as usize);
            if bat[block as usize] == u32::MAX {
                bat[block as usize] = (next / 512) as u32;
                out.write_all_at(&bitmap, next)?;
                next += 512 + BLOCK_SIZE;
            }
            let base = u64::from(bat[block as usize]) * 512 + 512;
            out.write_all_at(&data[..n], base + within)?;
            off += n as u64;
            data = &data[n..];
        }
        Ok(())
    })?;
    let footer = Footer::new(size, DISK_TYPE_DYNAMIC, FOOTER_SIZE as u64, ident).to_bytes();
    out.write_all_at(&footer, 0)?;
    out.write_all_at(
        &dynamic_header(bat_offset, entries as u32),
        FOOTER_SIZE as u64,
    )?;
    let mut bat_bytes_buf = vec![0xffu8; bat_bytes as usize];
    for (i, e) in bat.iter().enumerate() {
        bat_bytes_buf[i * 4..i * 4 + 4].copy_from_slice(&e.to_be_bytes());
    }
    out.write_all_at(&bat_bytes_buf, bat_offset)?;
    out.write_all_at(&footer, next)?;
    out.set_len(next + FOOTER_SIZE as u64)?;
    Ok(Converted {
        virtual_size: size,
        warnings,
    })
}

fn dynamic_header(bat_offset: u64, entries: u32) -> [u8; DYNAMIC_HEADER_SIZE] {
    let mut h = [0u8; DYNAMIC_HEADER_SIZE];
    h[0..8].copy_from_slice(b"cxsparse");
    h[8..16].copy_from_slice(&NO_OFFSET.to_be_bytes());
    h[16..24].copy_from_slice(&bat_offset.to_be_bytes());
    h[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    h[28..32].copy_from_slice(&entries.to_be_bytes());
    h[32..36].copy_from_slice(&(BLOCK_SIZE as u32).to_be_bytes());
    let sum = checksum(&h);
    h[36..40].copy_from_slice(&sum.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_the_specification() {
        // 1 MiB = 2048 sectors: 17 sectors, 4 heads, 30 cylinders.
        assert_eq!(chs_geometry(MIB), (30, 4, 17));
        // 127 GiB and beyond are capped.
        assert_eq!(chs_geometry(1 << 40), (65535, 16, 255));
        assert_eq!(chs_geometry(0), (0, 4, 17));
    }

    #[test]
    fn footer_checksum_sums_to_all_ones() {
        let f = Footer::new(
            MIB,
            DISK_TYPE_FIXED,
            NO_OFFSET,
            &Identity::seeded(b"x", 1_000_000_000),
        );
        let b = f.to_bytes();
        let stored = u32::from_be_bytes(b[64..68].try_into().unwrap());
        let mut z = b;
        z[64..68].fill(0);
        assert_eq!(checksum(&z), stored);
        assert_eq!(&b[0..8], b"conectix");
        assert_eq!(
            u32::from_be_bytes(b[24..28].try_into().unwrap()),
            1_000_000_000 - 946_684_800
        );
    }
}
