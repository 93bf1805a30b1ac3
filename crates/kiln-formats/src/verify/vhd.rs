//! VHD structure checks: footer (and its copy), dynamic header, BAT.

use super::{be_u32, be_u64, report_overlaps, Part, Reader};
use crate::vhd::{checksum, DISK_TYPE_DYNAMIC, DISK_TYPE_FIXED, FOOTER_SIZE, MAX_SIZE};
use std::io;

const FOOTER: u64 = FOOTER_SIZE as u64;

/// Checks a 512-byte footer at `at`; returns (disk type, current size, data offset).
fn footer(r: &mut Reader, f: &[u8], at: u64) -> Option<(u32, u64, u64)> {
    if &f[0..8] != b"conectix" {
        r.error(
            at,
            "no VHD footer here (cookie \"conectix\" missing)".into(),
        );
        return None;
    }
    let stored = be_u32(f, 64);
    let mut z = f.to_vec();
    z[64..68].fill(0);
    let computed = checksum(&z);
    if stored != computed {
        r.error(
            at + 64,
            format!("footer checksum is 0x{stored:08x}, but the footer sums to 0x{computed:08x}"),
        );
    }
    let version = be_u32(f, 12);
    if version != 0x0001_0000 {
        r.error(
            at + 12,
            format!("footer format version is 0x{version:08x}, expected 0x00010000"),
        );
    }
    let size = be_u64(f, 48);
    if size % 512 != 0 {
        r.error(
            at + 48,
            format!("current size {size} is not a whole number of sectors"),
        );
    }
    if size > MAX_SIZE {
        r.error(
            at + 48,
            format!("current size {size} is above the VHD limit of {MAX_SIZE} bytes (about 2040 GiB): qemu refuses to open it"),
        );
    }
    let disk_type = be_u32(f, 60);
    match disk_type {
        DISK_TYPE_FIXED | DISK_TYPE_DYNAMIC => {}
        4 => r.error(
            at + 60,
            "differencing VHD: it needs its parent and cannot be checked or uploaded alone".into(),
        ),
        t => r.error(
            at + 60,
            format!("disk type {t} is not fixed (2), dynamic (3) or differencing (4)"),
        ),
    }
    Some((disk_type, size, be_u64(f, 16)))
}

pub(super) fn check(r: &mut Reader) -> io::Result<(Option<&'static str>, Option<u64>)> {
    let end_at = r.len.saturating_sub(FOOTER);
    let end = if r.len >= FOOTER {
        r.read(end_at, FOOTER, "footer")?
    } else {
        None
    };
    let end_valid = end.as_ref().is_some_and(|f| &f[0..8] == b"conectix");
    let (f, at) = match (end, end_valid) {
        (Some(f), true) => (f, end_at),
        _ => {
            r.error(
                end_at,
                "the footer at the end of the file is missing: the file is truncated".into(),
            );
            // A dynamic VHD keeps a copy at the start; a fixed one has nothing more to read.
            match r.read(0, FOOTER, "footer copy")? {
                Some(copy) if &copy[0..8] == b"conectix" => (copy, 0),
                _ => return Ok((None, None)),
            }
        }
    };
    let Some((disk_type, size, data_offset)) = footer(r, &f, at) else {
        return Ok((None, None));
    };
    match disk_type {
        DISK_TYPE_FIXED => {
            if data_offset != u64::MAX {
                r.warning(at + 16, format!("a fixed VHD's data offset should be 0xffffffffffffffff, not 0x{data_offset:x}"));
            }
            let data = r.len.saturating_sub(FOOTER);
            if data != size {
                r.error(
                    at + 48,
                    format!("the footer says the disk holds {size} bytes, but {data} bytes precede the footer{}", if data < size { ": the file is truncated" } else { "" }),
                );
            }
            Ok((Some("fixed"), Some(size)))
        }
        DISK_TYPE_DYNAMIC => {
            dynamic(r, &f, at, size, data_offset)?;
            Ok((Some("dynamic"), Some(size)))
        }
        _ => Ok((None, Some(size))),
    }
}

fn dynamic(
    r: &mut Reader,
    footer: &[u8],
    footer_at: u64,
    size: u64,
    header_at: u64,
) -> io::Result<()> {
    if let Some(copy) = r.read(0, FOOTER, "footer copy")? {
        if footer_at != 0 && copy != footer {
            r.error(
                0,
                "the footer copy at the start differs from the footer at the end".into(),
            );
        }
    }
    let Some(h) = r.read(header_at, 1024, "dynamic disk header")? else {
        return Ok(());
    };
    if &h[0..8] != b"cxsparse" {
        r.error(
            header_at,
            "no dynamic disk header here (cookie \"cxsparse\" missing)".into(),
        );
        return Ok(());
    }
    let stored = be_u32(&h, 36);
    let mut z = h.clone();
    z[36..40].fill(0);
    let computed = checksum(&z);
    if stored != computed {
        r.error(header_at + 36, format!("dynamic header checksum is 0x{stored:08x}, but the header sums to 0x{computed:08x}"));
    }
    let bat_at = be_u64(&h, 16);
    let entries = u64::from(be_u32(&h, 28));
    let block = u64::from(be_u32(&h, 32));
    if !block.is_power_of_two() || block < 512 {
        r.error(
            header_at + 32,
            format!("block size {block} is not a power of two of at least 512"),
        );
        return Ok(());
    }
    if entries > MAX_SIZE / block {
        r.error(
            header_at + 28,
            format!("the BAT claims {entries} entries, more than a {MAX_SIZE}-byte disk can have with {block}-byte blocks: qemu refuses to open it"),
        );
        return Ok(());
    }
    if entries < size.div_ceil(block) {
        r.error(
            header_at + 28,
            format!(
                "the BAT has {entries} entries but a {size}-byte disk needs {}",
                size.div_ceil(block)
            ),
        );
    }
    let Some(bat) = r.read(bat_at, entries * 4, "BAT")? else {
        return Ok(());
    };
    let bitmap = (block / 512 / 8).div_ceil(512) * 512;
    let data_end = r.len.saturating_sub(FOOTER);
    let mut ranges = vec![
        (0, FOOTER, Part::Structure("the footer copy")),
        (
            header_at,
            header_at + 1024,
            Part::Structure("the dynamic header"),
        ),
        (bat_at, bat_at + entries * 4, Part::Structure("the BAT")),
    ];
    for i in 0..entries as usize {
        let e = be_u32(&bat, i * 4);
        if e == u32::MAX {
            continue;
        }
        let start = u64::from(e) * 512;
        let end = start + bitmap + block;
        if end > data_end {
            r.error(
                bat_at + i as u64 * 4,
                format!("BAT entry {i} points at a block at {start} that ends at {end}, past the data area (which ends at {data_end})"),
            );
        }
        ranges.push((start, end, Part::Block(i as u64)));
    }
    report_overlaps(r, &mut ranges);
    Ok(())
}
