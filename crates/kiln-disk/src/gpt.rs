//! GPT: protective MBR, primary header and entries, backup entries and header, CRC-32s.

use crate::layout::{Kind, Layout};
use crate::SECTOR;
use kiln_formats::ident::guid_le;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
const ENTRY_SECTORS: u64 = ENTRIES * ENTRY_SIZE / SECTOR;

fn header(
    layout: &Layout,
    my_lba: u64,
    alternate: u64,
    entries_lba: u64,
    entries_crc: u32,
) -> Vec<u8> {
    let sectors = layout.sectors();
    let mut h = vec![0u8; SECTOR as usize];
    h[0..8].copy_from_slice(b"EFI PART");
    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    h[12..16].copy_from_slice(&92u32.to_le_bytes());
    h[24..32].copy_from_slice(&my_lba.to_le_bytes());
    h[32..40].copy_from_slice(&alternate.to_le_bytes());
    h[40..48].copy_from_slice(&(2 + ENTRY_SECTORS).to_le_bytes());
    h[48..56].copy_from_slice(&(sectors - 2 - ENTRY_SECTORS).to_le_bytes());
    h[56..72].copy_from_slice(&guid_le(layout.disk_guid));
    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
    h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
    h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[..92]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Writes the GPT of `layout` into `file`.
pub fn write(layout: &Layout, file: &File) -> io::Result<()> {
    let sectors = layout.sectors();
    if sectors < 2 * (ENTRY_SECTORS + 1) + 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the disk is too small for a GPT",
        ));
    }
    let mut entries = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
    for p in layout
        .partitions
        .iter()
        .filter(|p| p.kind != Kind::Extended)
    {
        let e = (p.number as usize - 1) * ENTRY_SIZE as usize;
        entries[e..e + 16].copy_from_slice(&guid_le(p.gpt_type));
        entries[e + 16..e + 32].copy_from_slice(&guid_le(p.unique_guid));
        entries[e + 32..e + 40].copy_from_slice(&p.first_sector.to_le_bytes());
        entries[e + 40..e + 48].copy_from_slice(&p.last_sector.to_le_bytes());
        for (i, unit) in p.name.encode_utf16().take(36).enumerate() {
            entries[e + 56 + i * 2..e + 58 + i * 2].copy_from_slice(&unit.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&entries);

    // Protective MBR: one partition of type 0xEE over the whole disk.
    let mut mbr = vec![0u8; SECTOR as usize];
    let m = &mut mbr[446..462];
    m[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
    m[4] = 0xee;
    m[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    m[8..12].copy_from_slice(&1u32.to_le_bytes());
    m[12..16].copy_from_slice(&((sectors - 1).min(u64::from(u32::MAX)) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    file.write_all_at(&mbr, 0)?;

    let last = sectors - 1;
    let backup_entries = last - ENTRY_SECTORS;
    file.write_all_at(&header(layout, 1, last, 2, crc), SECTOR)?;
    file.write_all_at(&entries, 2 * SECTOR)?;
    file.write_all_at(&entries, backup_entries * SECTOR)?;
    file.write_all_at(&header(layout, last, 1, backup_entries, crc), last * SECTOR)
}
