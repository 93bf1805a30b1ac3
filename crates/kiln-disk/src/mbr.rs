//! MBR (msdos) tables: four primary entries, or three primaries, an extended partition and a chain
//! of EBRs for the logical ones, placed where parted places them.

use crate::layout::{Kind, Layout, PlannedPartition};
use crate::SECTOR;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// CHS address of an LBA with parted's geometry (255 heads, 63 sectors), saturated past 1023.
fn chs(lba: u64) -> [u8; 3] {
    let (c, h, s) = {
        let c = lba / (255 * 63);
        if c > 1023 {
            (1023, 254, 63)
        } else {
            (c, (lba / 63) % 255, lba % 63 + 1)
        }
    };
    [
        h as u8,
        (s as u8) | (((c >> 2) & 0xc0) as u8),
        (c & 0xff) as u8,
    ]
}

fn entry(status: u8, kind: u8, first: u64, count: u64, chs_first: u64, chs_last: u64) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[0] = status;
    e[1..4].copy_from_slice(&chs(chs_first));
    e[4] = kind;
    e[5..8].copy_from_slice(&chs(chs_last));
    e[8..12].copy_from_slice(&(first as u32).to_le_bytes());
    e[12..16].copy_from_slice(&(count as u32).to_le_bytes());
    e
}

fn sector_with(entries: &[[u8; 16]], signature: Option<u32>) -> Vec<u8> {
    let mut s = vec![0u8; SECTOR as usize];
    if let Some(sig) = signature {
        s[440..444].copy_from_slice(&sig.to_le_bytes());
    }
    for (i, e) in entries.iter().enumerate() {
        s[446 + i * 16..462 + i * 16].copy_from_slice(e);
    }
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

fn count(p: &PlannedPartition) -> u64 {
    p.last_sector + 1 - p.first_sector
}

/// Writes the MBR (and EBRs) of `layout` into `file`.
pub fn write(layout: &Layout, file: &File) -> io::Result<()> {
    if layout.sectors() > u64::from(u32::MAX) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an MBR disk cannot address more than 2 TiB; use PartitionTableType gpt",
        ));
    }
    let primaries: Vec<[u8; 16]> = layout
        .partitions
        .iter()
        .filter(|p| p.kind != Kind::Logical)
        .map(|p| {
            let status = if p.bootable { 0x80 } else { 0 };
            entry(
                status,
                p.mbr_type,
                p.first_sector,
                count(p),
                p.first_sector,
                p.last_sector,
            )
        })
        .collect();
    // Only the MBR is written here; the bootstrap code area stays for the bootloader.
    let mut mbr = vec![0u8; SECTOR as usize];
    file.read_at(&mut mbr[..440], 0)?;
    let table = sector_with(&primaries, Some(layout.mbr_signature));
    mbr[440..].copy_from_slice(&table[440..]);
    file.write_all_at(&mbr, 0)?;

    let Some(ext) = layout.partitions.iter().find(|p| p.kind == Kind::Extended) else {
        return Ok(());
    };
    let logicals: Vec<&PlannedPartition> = layout
        .partitions
        .iter()
        .filter(|p| p.kind == Kind::Logical)
        .collect();
    // Each EBR: at the extended start for the first logical, else on the 64 KiB boundary below
    // the logical's start (as parted places them), but after the previous logical.
    let ebrs: Vec<u64> = logicals
        .iter()
        .enumerate()
        .map(|(k, p)| {
            if k == 0 {
                ext.first_sector
            } else {
                let aligned = (p.first_sector - 1) / 128 * 128;
                if aligned > logicals[k - 1].last_sector {
                    aligned
                } else {
                    p.first_sector - 1
                }
            }
        })
        .collect();
    for (k, p) in logicals.iter().enumerate() {
        let here = ebrs[k];
        let mut entries = vec![entry(
            if p.bootable { 0x80 } else { 0 },
            p.mbr_type,
            p.first_sector - here,
            count(p),
            p.first_sector,
            p.last_sector,
        )];
        if let (Some(next), Some(next_ebr)) = (logicals.get(k + 1), ebrs.get(k + 1)) {
            entries.push(entry(
                0,
                0x05,
                next_ebr - ext.first_sector,
                next.last_sector + 1 - next_ebr,
                *next_ebr,
                next.last_sector,
            ));
        }
        file.write_all_at(&sector_with(&entries, None), here * SECTOR)?;
    }
    Ok(())
}
