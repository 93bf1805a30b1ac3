//! VMDK sparse extent checks: header (or, for stream-optimized files, the footer), grain
//! directory, grain tables, and each grain's marker.

use super::{report_overlaps, Part, Reader};
use crate::vmdk::{GD_AT_END, MAGIC, MARKER_EOS, MARKER_FOOTER};
use std::io;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub(super) fn check(r: &mut Reader) -> io::Result<(Option<&'static str>, Option<u64>)> {
    let Some(mut h) = r.read(0, 512, "header")? else {
        return Ok((None, None));
    };
    let mut h_at = 0;
    if le32(&h, 0) != MAGIC {
        r.error(
            0,
            "no VMDK sparse extent header here (magic \"KDMV\" missing)".into(),
        );
        return Ok((None, None));
    }
    let version = le32(&h, 4);
    if !(1..=3).contains(&version) {
        r.error(4, format!("VMDK version {version} is not 1, 2 or 3"));
        return Ok((None, None));
    }
    let flags = le32(&h, 8);
    if flags & 1 != 0 && h[73..77] != [b'\n', b' ', b'\r', b'\n'] {
        r.error(
            73,
            "the newline check bytes are not \"\\n \\r\\n\": the file was corrupted by a text-mode transfer (VMware refuses it; qemu does not look); copy it again in binary mode".into(),
        );
        return Ok((None, None));
    }
    let compressed = flags & (1 << 16) != 0;
    let markers = flags & (1 << 17) != 0;
    // Stream-optimized files put the grain directory's offset in the footer.
    if le64(&h, 56) == GD_AT_END {
        if r.len < 1536 {
            r.error(
                0,
                "the grain directory is at the end, but the file is too short for a footer".into(),
            );
            return Ok((None, None));
        }
        let Some(m) = r.read(r.len - 1536, 512, "footer marker")? else {
            return Ok((None, None));
        };
        let Some(eos) = r.read(r.len - 512, 512, "end-of-stream marker")? else {
            return Ok((None, None));
        };
        if le32(&m, 12) != MARKER_FOOTER || le32(&eos, 12) != MARKER_EOS || le64(&eos, 0) != 0 {
            r.error(
                r.len - 1536,
                "the footer and end-of-stream markers are missing: the file is truncated".into(),
            );
            return Ok((None, None));
        }
        let Some(footer) = r.read(r.len - 1024, 512, "footer")? else {
            return Ok((None, None));
        };
        if le32(&footer, 0) != MAGIC {
            r.error(
                r.len - 1024,
                "the footer is not a sparse extent header".into(),
            );
            return Ok((None, None));
        }
        h = footer;
        h_at = r.len - 1024;
    }
    let capacity = le64(&h, 12);
    let grain = le64(&h, 20);
    let gt_entries = u64::from(le32(&h, 44));
    let gd_at = le64(&h, 56);
    if !grain.is_power_of_two() || !(8..=2048).contains(&grain) {
        r.error(
            h_at + 20,
            format!("grain size {grain} sectors is not a power of two between 8 and 2048"),
        );
        return Ok((None, Some(capacity.saturating_mul(512))));
    }
    if gt_entries != 512 {
        r.error(
            h_at + 44,
            format!("{gt_entries} entries per grain table (readers expect 512)"),
        );
        return Ok((None, Some(capacity.saturating_mul(512))));
    }
    let size = capacity.saturating_mul(512);
    let gd_entries = capacity.div_ceil(grain * gt_entries);
    let Some(gd) = r.read(gd_at.saturating_mul(512), gd_entries * 4, "grain directory")? else {
        return Ok((None, Some(size)));
    };
    let mut ranges = vec![(
        gd_at * 512,
        gd_at * 512 + gd_entries * 4,
        Part::Structure("the grain directory"),
    )];
    let sector_len = r.len.div_ceil(512);
    for i in 0..gd_entries {
        let gt_at = u64::from(le32(&gd, i as usize * 4));
        if gt_at == 0 {
            continue;
        }
        let Some(gt) = r.read(gt_at * 512, gt_entries * 4, "grain table")? else {
            continue;
        };
        ranges.push((
            gt_at * 512,
            gt_at * 512 + gt_entries * 4,
            Part::Structure("a grain table"),
        ));
        for j in 0..gt_entries {
            let g = u64::from(le32(&gt, j as usize * 4));
            if g == 0 || g == 1 {
                continue; // absent, or (1) a zero grain
            }
            let index = i * gt_entries + j;
            let at = gt_at * 512 + j * 4;
            if g >= sector_len {
                r.error(
                    at,
                    format!("grain {index} points at sector {g}, past the end of the file"),
                );
                continue;
            }
            let len = if compressed && markers {
                let Some(m) = r.read(g * 512, 12, "grain marker")? else {
                    continue;
                };
                let (lba, n) = (le64(&m, 0), u64::from(le32(&m, 8)));
                if lba != index * grain {
                    r.error(
                        g * 512,
                        format!(
                            "grain marker says sector {lba}, but the grain table places it at {}",
                            index * grain
                        ),
                    );
                }
                if g * 512 + 12 + n > r.len {
                    r.error(
                        g * 512 + 8,
                        format!(
                            "grain {index}'s {n} compressed bytes run past the end of the file"
                        ),
                    );
                }
                12 + n
            } else {
                grain * 512
            };
            ranges.push((g * 512, g * 512 + len, Part::Grain(index)));
        }
    }
    report_overlaps(r, &mut ranges);
    Ok((
        if compressed && markers {
            Some("streamOptimized")
        } else {
            Some("sparse")
        },
        Some(size),
    ))
}
