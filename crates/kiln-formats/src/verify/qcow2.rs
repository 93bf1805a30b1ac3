//! QCOW2 structure checks: header, L1 and L2 tables, refcounts (every host cluster's refcount
//! must equal the number of references to it), the COPIED flag.

use super::{be_u32, be_u64, Reader};
use crate::qcow2::{COMPRESSED, COPIED, MAGIC, OFFSET_MASK};
use std::io;

/// Beyond this many host clusters, references are not counted (memory), with a warning.
const MAX_COUNTED_CLUSTERS: u64 = 64 << 20;

/// Known incompatible feature bits: dirty, corrupt, external data file, compression type,
/// extended L2 entries.
const KNOWN_INCOMPAT: u64 = 0b1_1111;

struct Refs {
    cluster_bits: u32,
    counts: Vec<u32>,
}

impl Refs {
    /// Counts one reference to every host cluster in `[start, end)`.
    fn add(&mut self, start: u64, end: u64) {
        if end <= start {
            return;
        }
        let (first, last) = (start >> self.cluster_bits, (end - 1) >> self.cluster_bits);
        for c in first..=last {
            if let Some(n) = self.counts.get_mut(c as usize) {
                *n = n.saturating_add(1);
            }
        }
    }
}

pub(super) fn check(r: &mut Reader) -> io::Result<Option<u64>> {
    let Some(h) = r.read(0, 104.min(r.len), "header")? else {
        return Ok(None);
    };
    if h.len() < 72 || be_u32(&h, 0) != MAGIC {
        r.error(0, "the file is too short for a QCOW2 header".into());
        return Ok(None);
    }
    let version = be_u32(&h, 4);
    if !matches!(version, 2 | 3) || (version == 3 && h.len() < 104) {
        r.error(
            4,
            format!("QCOW2 version {version} is not 2 or 3 (or its header is cut short)"),
        );
        return Ok(None);
    }
    let cluster_bits = be_u32(&h, 20);
    if !(9..=21).contains(&cluster_bits) {
        r.error(20, format!("cluster bits {cluster_bits} is outside 9..21"));
        return Ok(None);
    }
    let cluster = 1u64 << cluster_bits;
    let size = be_u64(&h, 24);
    if be_u64(&h, 8) != 0 {
        r.warning(
            8,
            "the image has a backing file: only this layer is checked".into(),
        );
    }
    if be_u32(&h, 32) != 0 {
        r.warning(
            32,
            "the image is encrypted: cluster contents cannot be checked".into(),
        );
    }
    if be_u32(&h, 60) != 0 {
        r.warning(
            60,
            "the image has internal snapshots: their tables are not checked".into(),
        );
    }
    let (incompat, refcount_order) = if version == 3 {
        (be_u64(&h, 72), be_u32(&h, 96))
    } else {
        (0, 4)
    };
    if incompat & !KNOWN_INCOMPAT != 0 {
        r.error(
            72,
            format!(
                "unknown incompatible features 0x{:x}: readers must refuse this image",
                incompat & !KNOWN_INCOMPAT
            ),
        );
        return Ok(Some(size));
    }
    if incompat & 1 != 0 {
        r.warning(
            72,
            "the dirty bit is set: refcounts may be stale (the image was not closed cleanly)"
                .into(),
        );
    }
    if incompat & 2 != 0 {
        r.error(72, "the corrupt bit is set".into());
    }
    if incompat & 0b1_0100 != 0 {
        r.error(
            72,
            "external data files and extended L2 entries are not supported by this checker".into(),
        );
        return Ok(Some(size));
    }
    if refcount_order > 6 {
        r.error(96, format!("refcount order {refcount_order} is above 6"));
        return Ok(Some(size));
    }

    let file_clusters = r.len.div_ceil(cluster);
    let count_refs = file_clusters <= MAX_COUNTED_CLUSTERS;
    if !count_refs {
        r.warning(
            0,
            format!("{file_clusters} host clusters: refcounts are not checked"),
        );
    }
    let mut refs = Refs {
        cluster_bits,
        counts: vec![
            0;
            if count_refs {
                file_clusters as usize
            } else {
                0
            }
        ],
    };
    refs.add(0, cluster); // the header cluster

    // L1 table.
    let l2_entries = cluster / 8;
    let l1_size = u64::from(be_u32(&h, 36));
    let l1_at = be_u64(&h, 40);
    let needed = size.div_ceil(cluster.saturating_mul(l2_entries));
    if l1_size < needed {
        r.error(
            36,
            format!("the L1 table has {l1_size} entries but a {size}-byte disk needs {needed}"),
        );
    }
    let in_file = |off: u64, len: u64, r: &Reader| off.checked_add(len).is_some_and(|e| e <= r.len);
    let mut l2_tables: Vec<(u64, u64)> = Vec::new(); // (L1 index, offset)
    if l1_size > 0 {
        if l1_at % cluster != 0 {
            r.error(
                40,
                format!("the L1 table offset {l1_at} is not cluster aligned"),
            );
        } else if let Some(l1) = r.read(l1_at, l1_size * 8, "L1 table")? {
            refs.add(l1_at, l1_at + l1_size * 8);
            for i in 0..l1_size {
                let e = be_u64(&l1, i as usize * 8);
                let off = e & OFFSET_MASK;
                let at = l1_at + i * 8;
                if e & !(OFFSET_MASK | COPIED) != 0 {
                    r.error(
                        at,
                        format!("L1 entry {i} has reserved bits set (0x{e:016x})"),
                    );
                }
                if off == 0 {
                    continue;
                }
                if off % cluster != 0 || !in_file(off, cluster, r) {
                    r.error(
                        at,
                        format!("L1 entry {i} points at {off}: not a cluster of the file"),
                    );
                    continue;
                }
                refs.add(off, off + cluster);
                l2_tables.push((i, e));
            }
        }
    }

    // L2 tables and the clusters they map.
    let shift = 62 - (cluster_bits - 8);
    let mut copied: Vec<(u64, u64)> = Vec::new(); // (entry position, host offset) with COPIED set
    for &(_, l1e) in &l2_tables {
        let l2_at = l1e & OFFSET_MASK;
        if l1e & COPIED != 0 {
            copied.push((l2_at, l2_at));
        }
        let Some(l2) = r.read(l2_at, cluster, "L2 table")? else {
            continue;
        };
        for j in 0..l2_entries {
            let e = be_u64(&l2, j as usize * 8);
            let at = l2_at + j * 8;
            if e & COMPRESSED != 0 {
                let off = e & ((1u64 << shift) - 1);
                let sectors = ((e >> shift) & ((1u64 << (62 - shift)) - 1)) + 1;
                let end = (off & !511) + sectors * 512;
                // The last compressed cluster may end inside the file's last sector.
                if off >= r.len || end > r.len.div_ceil(512) * 512 {
                    r.error(
                        at,
                        format!(
                            "compressed cluster at {off} ({sectors} sectors) lies outside the file"
                        ),
                    );
                    continue;
                }
                refs.add(off, end);
                continue;
            }
            let off = e & OFFSET_MASK;
            if e & !(OFFSET_MASK | COPIED | 1) != 0 {
                r.error(at, format!("L2 entry has reserved bits set (0x{e:016x})"));
            }
            if off == 0 {
                continue;
            }
            if off % cluster != 0 || !in_file(off, 1, r) {
                r.error(
                    at,
                    format!("L2 entry points at {off}: not a cluster of the file"),
                );
                continue;
            }
            refs.add(off, off + cluster);
            if e & COPIED != 0 {
                copied.push((at, off));
            }
        }
    }

    // Refcount table and blocks.
    let rt_at = be_u64(&h, 48);
    let rt_clusters = u64::from(be_u32(&h, 56));
    let bits = 1u64 << refcount_order;
    let per_block = cluster * 8 / bits;
    let mut refcounts: Vec<u64> = Vec::new();
    if rt_at % cluster != 0 {
        r.error(
            48,
            format!("the refcount table offset {rt_at} is not cluster aligned"),
        );
    } else if rt_clusters.saturating_mul(cluster) > r.len {
        r.error(
            56,
            format!("the refcount table claims {rt_clusters} clusters, more than the file holds"),
        );
    } else if let Some(rt) = r.read(rt_at, rt_clusters * cluster, "refcount table")? {
        refs.add(rt_at, rt_at + rt_clusters * cluster);
        if count_refs {
            refcounts = vec![0; file_clusters as usize];
        }
        for i in 0..rt_clusters * cluster / 8 {
            let off = be_u64(&rt, i as usize * 8);
            if off == 0 {
                continue;
            }
            let at = rt_at + i * 8;
            if off % cluster != 0 || !in_file(off, cluster, r) {
                r.error(
                    at,
                    format!("refcount table entry {i} points at {off}: not a cluster of the file"),
                );
                continue;
            }
            refs.add(off, off + cluster);
            if !count_refs {
                continue;
            }
            let Some(block) = r.read(off, cluster, "refcount block")? else {
                continue;
            };
            for j in 0..per_block {
                let c = i * per_block + j;
                if c >= file_clusters {
                    break;
                }
                refcounts[c as usize] = read_bits(&block, j, bits);
            }
        }
    }

    if count_refs && !refcounts.is_empty() {
        for (c, (&refc, &n)) in refcounts.iter().zip(&refs.counts).enumerate() {
            let at = c as u64 * cluster;
            let n = u64::from(n);
            if refc < n {
                r.error(at, format!("host cluster {c} is referenced {n} times but its refcount is {refc}: it would be freed while in use (overlapping allocations)"));
            } else if refc > n {
                r.warning(
                    at,
                    format!(
                        "host cluster {c} has refcount {refc} but {n} references: leaked space"
                    ),
                );
            }
        }
        for (at, off) in copied {
            let c = (off / cluster) as usize;
            if refcounts.get(c).is_some_and(|&rc| rc != 1) {
                r.error(
                    at,
                    format!(
                        "the COPIED flag is set but cluster {c} has refcount {}",
                        refcounts[c]
                    ),
                );
            }
        }
    }
    Ok(Some(size))
}

/// The `index`-th `bits`-wide big-endian refcount of a block.
fn read_bits(block: &[u8], index: u64, bits: u64) -> u64 {
    let bit = index * bits;
    if bits >= 8 {
        let bytes = (bits / 8) as usize;
        let at = (bit / 8) as usize;
        block[at..at + bytes]
            .iter()
            .fold(0u64, |v, &b| (v << 8) | u64::from(b))
    } else {
        let byte = block[(bit / 8) as usize];
        let shift = bit % 8;
        (u64::from(byte) >> shift) & ((1 << bits) - 1)
    }
}
