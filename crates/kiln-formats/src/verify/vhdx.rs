//! VHDX structure checks (MS-VHDX): headers and their CRC-32C, region tables, metadata, BAT.

use super::{le_u16, le_u32, le_u64, report_overlaps, Part, Reader};
use crate::ident::guid_le;
use crate::vhdx::*;
use crate::MIB;
use std::io;

fn crc_ok(buf: &[u8], at: usize) -> (u32, u32) {
    let stored = le_u32(buf, at);
    let mut z = buf.to_vec();
    z[at..at + 4].fill(0);
    (stored, crc32c::crc32c(&z))
}

pub(super) fn check(r: &mut Reader) -> io::Result<(Option<&'static str>, Option<u64>)> {
    // Headers: the valid one with the higher sequence number is current.
    let mut current: Option<(u64, Vec<u8>, u64)> = None;
    for at in [HEADER1_OFFSET, HEADER2_OFFSET] {
        let Some(h) = r.read(at, 4096, "header")? else {
            continue;
        };
        if &h[0..4] != b"head" {
            r.error(
                at,
                "no VHDX header here (signature \"head\" missing)".into(),
            );
            continue;
        }
        let (stored, computed) = crc_ok(&h, 4);
        if stored != computed {
            r.error(
                at + 4,
                format!("header checksum is 0x{stored:08x}, but its CRC-32C is 0x{computed:08x}"),
            );
            continue;
        }
        let seq = le_u64(&h, 8);
        if current.as_ref().is_none_or(|(s, _, _)| seq > *s) {
            current = Some((seq, h, at));
        }
    }
    let Some((_, h, h_at)) = current else {
        r.error(HEADER1_OFFSET, "neither VHDX header is valid".into());
        return Ok((None, None));
    };
    if le_u16(&h, 66) != 1 {
        r.error(
            h_at + 66,
            format!("header version {} is not 1", le_u16(&h, 66)),
        );
    }
    if h[48..64].iter().any(|&b| b != 0) {
        r.unsupported(
            h_at + 48,
            "the log may have entries to replay (LogGuid is set): the image was not closed cleanly, and kiln does not replay logs (open it read-write in qemu or Hyper-V once, or convert it)"
                .into(),
        );
    }
    let (log_len, log_at) = (u64::from(le_u32(&h, 68)), le_u64(&h, 72));
    if log_len % MIB != 0 || log_at % MIB != 0 {
        r.error(
            h_at + 68,
            format!("the log ({log_len} bytes at {log_at}) is not 1 MiB aligned"),
        );
    }

    // Region tables: both should be valid; use the first valid one.
    let mut regions: Option<(Vec<u8>, u64)> = None;
    for at in [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET] {
        let Some(t) = r.read(at, KIB64, "region table")? else {
            continue;
        };
        if &t[0..4] != b"regi" {
            r.error(
                at,
                "no region table here (signature \"regi\" missing)".into(),
            );
            continue;
        }
        let (stored, computed) = crc_ok(&t, 4);
        if stored != computed {
            r.error(
                at + 4,
                format!(
                    "region table checksum is 0x{stored:08x}, but its CRC-32C is 0x{computed:08x}"
                ),
            );
            continue;
        }
        if regions.is_none() {
            regions = Some((t, at));
        }
    }
    let Some((t, t_at)) = regions else {
        return Ok((None, None));
    };
    let count = le_u32(&t, 8) as usize;
    if count > 2047 {
        r.error(
            t_at + 8,
            format!("region table has {count} entries (at most 2047)"),
        );
        return Ok((None, None));
    }
    let mut bat_region = None;
    let mut meta_region = None;
    let mut ranges = vec![
        (
            0,
            5 * KIB64,
            Part::Structure("the headers and region tables"),
        ),
        (
            log_at,
            log_at.saturating_add(log_len),
            Part::Structure("the log"),
        ),
    ];
    for i in 0..count {
        let e = 16 + i * 32;
        let guid: [u8; 16] = t[e..e + 16].try_into().expect("16 bytes");
        let (off, len) = (le_u64(&t, e + 16), u64::from(le_u32(&t, e + 24)));
        if off % MIB != 0 || len % MIB != 0 || off < MIB {
            r.error(t_at + e as u64 + 16, format!("region {i} ({len} bytes at {off}) is not 1 MiB aligned or overlaps the header area"));
        }
        if guid == guid_le(BAT_GUID) {
            bat_region = Some((off, len));
            ranges.push((
                off,
                off.saturating_add(len),
                Part::Structure("the BAT region"),
            ));
        } else if guid == guid_le(METADATA_GUID) {
            meta_region = Some((off, len));
            ranges.push((
                off,
                off.saturating_add(len),
                Part::Structure("the metadata region"),
            ));
        } else if le_u32(&t, e + 28) & 1 != 0 {
            r.error(
                t_at + e as u64,
                format!("region {i} is required but unknown to this reader"),
            );
        }
    }
    let (Some((bat_at, bat_len)), Some((meta_at, meta_len))) = (bat_region, meta_region) else {
        r.error(
            t_at,
            "the region table lacks the BAT or the metadata region".into(),
        );
        return Ok((None, None));
    };

    // Metadata (the format puts it in a few MiB at most; refuse to read a huge claim).
    if meta_len > 16 * MIB {
        r.error(
            t_at,
            format!("the metadata region claims {meta_len} bytes; at most a few MiB are plausible"),
        );
        return Ok((None, None));
    }
    let Some(m) = r.read(meta_at, meta_len, "metadata region")? else {
        return Ok((None, None));
    };
    if m.len() < KIB64 as usize || &m[0..8] != b"metadata" {
        r.error(
            meta_at,
            "no metadata table here (signature \"metadata\" missing)".into(),
        );
        return Ok((None, None));
    }
    let items = le_u16(&m, 10) as usize;
    if items > 2047 {
        r.error(
            meta_at + 10,
            format!("metadata table has {items} entries (at most 2047)"),
        );
        return Ok((None, None));
    }
    let known = [
        FILE_PARAMETERS_GUID,
        VIRTUAL_DISK_SIZE_GUID,
        PAGE83_GUID,
        LOGICAL_SECTOR_GUID,
        PHYSICAL_SECTOR_GUID,
        PARENT_LOCATOR_GUID,
    ]
    .map(guid_le);
    for i in 0..items {
        let e = 32 + i * 32;
        if le_u32(&m, e + 24) & 4 != 0 && !known.iter().any(|g| m[e..e + 16] == g[..]) {
            r.error(
                meta_at + e as u64,
                format!("metadata item {i} is required but unknown: readers (qemu too) must refuse this image"),
            );
        }
    }
    let item = |guid: [u8; 16], r: &mut Reader| -> Option<(u64, Vec<u8>)> {
        (0..items).find_map(|i| {
            let e = 32 + i * 32;
            (m[e..e + 16] == guid_le(guid)).then(|| {
                let (off, len) = (le_u32(&m, e + 16) as usize, le_u32(&m, e + 20) as usize);
                match off.checked_add(len) {
                    Some(end) if end <= m.len() && off >= KIB64 as usize => {
                        Some((meta_at + off as u64, m[off..end].to_vec()))
                    }
                    _ => {
                        r.error(meta_at + e as u64 + 16, format!("metadata item {i} ({len} bytes at {off}) lies outside the metadata region"));
                        None
                    }
                }
            })?
        })
    };
    let require = |guid, name: &str, len: usize, r: &mut Reader| match item(guid, r) {
        Some((at, v)) if v.len() >= len => Some((at, v)),
        Some((at, _)) => {
            r.error(at, format!("metadata item {name} is too short"));
            None
        }
        None => {
            r.error(meta_at, format!("required metadata item {name} is missing"));
            None
        }
    };
    let params = require(FILE_PARAMETERS_GUID, "File Parameters", 8, r);
    let vsize = require(VIRTUAL_DISK_SIZE_GUID, "Virtual Disk Size", 8, r);
    let logical = require(LOGICAL_SECTOR_GUID, "Logical Sector Size", 4, r);
    let physical = require(PHYSICAL_SECTOR_GUID, "Physical Sector Size", 4, r);
    let _ = require(PAGE83_GUID, "Page 83 Data", 16, r);
    let (Some((p_at, p)), Some((v_at, v)), Some((l_at, l))) = (params, vsize, logical) else {
        return Ok((None, None));
    };
    let block = u64::from(le_u32(&p, 0));
    let flags = le_u32(&p, 4);
    let size = le_u64(&v, 0);
    let sector = le_u32(&l, 0);
    if !block.is_power_of_two() || !(MIB..=256 * MIB).contains(&block) {
        r.error(
            p_at,
            format!("block size {block} is not a power of two between 1 MiB and 256 MiB"),
        );
        return Ok((None, Some(size)));
    }
    if !matches!(sector, 512 | 4096) {
        r.error(
            l_at,
            format!("logical sector size {sector} is neither 512 nor 4096"),
        );
        return Ok((None, Some(size)));
    }
    if let Some((ph_at, ph)) = physical {
        let ps = le_u32(&ph, 0);
        if !matches!(ps, 512 | 4096) {
            r.error(
                ph_at,
                format!("physical sector size {ps} is neither 512 nor 4096"),
            );
        }
    }
    if size % u64::from(sector) != 0 || size > MAX_SIZE {
        r.error(
            v_at,
            format!("virtual disk size {size} is not a whole number of sectors, or exceeds 64 TiB"),
        );
        return Ok((None, Some(size)));
    }
    if flags & 2 != 0 {
        r.error(p_at + 4, "differencing VHDX: it needs its parent".into());
    }
    let fixed = flags & 1 != 0;

    // BAT.
    let ratio = chunk_ratio(block, sector);
    let payload = size.div_ceil(block);
    let entries = bat_entries(payload, ratio);
    if entries * 8 > bat_len {
        r.error(bat_at, format!("the BAT region ({bat_len} bytes) cannot hold the {entries} entries this disk needs"));
        return Ok((None, Some(size)));
    }
    if bat_at
        .checked_add(entries * 8)
        .is_none_or(|end| end > r.len)
    {
        r.error(
            bat_at,
            format!(
                "the BAT ({} bytes) extends past the end of the file ({} bytes)",
                entries * 8,
                r.len
            ),
        );
        return Ok((None, Some(size)));
    }
    // Read in pieces: the BAT of a large disk is large.
    const PIECE: u64 = 1 << 17;
    let mut bat = Vec::new();
    for i in 0..entries {
        if i % PIECE == 0 {
            let n = (entries - i).min(PIECE);
            match r.read(bat_at + i * 8, n * 8, "BAT")? {
                Some(b) => bat = b,
                None => break,
            }
        }
        let e = le_u64(&bat, (i % PIECE) as usize * 8);
        let (state, offset) = (e & 7, (e >> 20) * MIB);
        let at = bat_at + i * 8;
        let is_bitmap = (i + 1) % (ratio + 1) == 0;
        if is_bitmap {
            if state != 0 {
                r.error(
                    at,
                    format!(
                        "sector bitmap entry {i} has state {state}, but this disk has no parent"
                    ),
                );
            }
            continue;
        }
        match state {
            0..=3 => {
                if fixed {
                    r.warning(
                        at,
                        format!("BAT entry {i} is not allocated in a fixed VHDX"),
                    );
                }
            }
            6 | 7 => {
                let end = offset.saturating_add(block);
                if offset < MIB || end > r.len {
                    r.error(at, format!("BAT entry {i} points at a block at {offset}, outside the file ({} bytes)", r.len));
                }
                ranges.push((offset, end, Part::Block(i)));
            }
            s => r.error(at, format!("BAT entry {i} has invalid state {s}")),
        }
    }
    report_overlaps(r, &mut ranges);
    r.layout = Some(super::Layout::Vhdx {
        bat_at,
        entries,
        ratio,
        block,
        size,
    });
    Ok((Some(if fixed { "fixed" } else { "dynamic" }), Some(size)))
}
