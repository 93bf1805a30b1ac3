//! QCOW2 structure checks: header, L1 and L2 tables, refcounts (every host cluster's refcount
//! must equal the number of references to it), the COPIED flag.

use super::{be_u32, be_u64, Reader};
use crate::qcow2::{COMPRESSED, COPIED, INCOMPAT_COMPRESSION_TYPE, MAGIC, OFFSET_MASK};
use std::io;
use std::os::unix::fs::FileExt;

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

/// The header fields readers need (what `qemu-img` reads when it opens the image).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub version: u32,
    pub backing_file_offset: u64,
    pub backing_file_size: u32,
    pub cluster_bits: u32,
    pub size: u64,
    pub crypt_method: u32,
    pub l1_size: u32,
    pub l1_at: u64,
    pub refcount_table_at: u64,
    pub refcount_table_clusters: u32,
    pub nb_snapshots: u32,
    pub snapshots_at: u64,
    pub incompat: u64,
    pub autoclear: u64,
    pub refcount_order: u32,
    pub header_length: u32,
    /// 0 zlib, 1 zstd.
    pub compression_type: u8,
}

/// The header's fields from its first bytes (at least 72; version 2 defaults for the rest).
pub(crate) fn parse_header(h: &[u8]) -> Header {
    let v3 = h.len() >= 104 && be_u32(h, 4) >= 3;
    let header_length = if v3 { be_u32(h, 100) } else { 72 };
    Header {
        version: be_u32(h, 4),
        backing_file_offset: be_u64(h, 8),
        backing_file_size: be_u32(h, 16),
        cluster_bits: be_u32(h, 20),
        size: be_u64(h, 24),
        crypt_method: be_u32(h, 32),
        l1_size: be_u32(h, 36),
        l1_at: be_u64(h, 40),
        refcount_table_at: be_u64(h, 48),
        refcount_table_clusters: be_u32(h, 56),
        nb_snapshots: be_u32(h, 60),
        snapshots_at: be_u64(h, 64),
        incompat: if v3 { be_u64(h, 72) } else { 0 },
        autoclear: if v3 { be_u64(h, 88) } else { 0 },
        refcount_order: if v3 { be_u32(h, 96) } else { 4 },
        header_length,
        compression_type: if header_length > 104 && h.len() > 104 {
            h[104]
        } else {
            0
        },
    }
}

/// qemu's limits (block/qcow2.h): QCOW_MAX_L1_SIZE, QCOW_MAX_REFTABLE_SIZE,
/// QCOW_MAX_SNAPSHOTS, and the size of a snapshot table entry's fixed part.
const MAX_L1_BYTES: u64 = 32 << 20;
const MAX_REFTABLE_BYTES: u64 = 8 << 20;
const MAX_SNAPSHOTS: u64 = 65536;
const SNAPSHOT_HEADER: u64 = 40;

/// qemu's `qcow2_validate_table`: at most `max_bytes` of `entry_len`-byte entries, at a
/// cluster-aligned offset whose end fits in a signed 64-bit offset. Reports and returns false
/// when it is not so.
fn validate_table(
    r: &mut Reader,
    (what, offset_field, count_field, offset, entries, entry_len, max_bytes): (
        &str,
        u64,
        u64,
        u64,
        u64,
        u64,
        u64,
    ),
    cluster: u64,
) -> bool {
    if entries > max_bytes / entry_len {
        r.error(
            count_field,
            format!("the {what} is too large: {entries} entries, qemu refuses more than {} (it cannot open this image)", max_bytes / entry_len),
        );
        return false;
    }
    if (i64::MAX as u64) - entries * entry_len < offset || offset % cluster != 0 {
        r.error(
            offset_field,
            format!("the {what} offset {offset} is invalid (not cluster aligned, or past 2^63): qemu cannot open this image"),
        );
        return false;
    }
    true
}

/// The header checks qemu's `qcow2_do_open` makes, in its order. Returns the header when the
/// structure can be walked (`None`: an error or an unsupported feature stops the walk).
fn check_header(r: &mut Reader, h: &[u8]) -> io::Result<Option<Header>> {
    let hd = parse_header(h);
    if !matches!(hd.version, 2 | 3) {
        r.error(4, format!("QCOW2 version {} is not 2 or 3", hd.version));
        return Ok(None);
    }
    if hd.version == 3 && h.len() < 104 {
        r.error(
            0,
            "the version 3 header (104 bytes) is cut short: the file is truncated".into(),
        );
        return Ok(None);
    }
    if !(9..=21).contains(&hd.cluster_bits) {
        r.error(
            20,
            format!("cluster bits {} is outside 9..21", hd.cluster_bits),
        );
        return Ok(None);
    }
    let cluster = 1u64 << hd.cluster_bits;
    if hd.version == 3 && hd.header_length < 104 {
        r.error(
            100,
            format!(
                "the header length {} is below 104: qemu refuses the header as too short",
                hd.header_length
            ),
        );
        return Ok(None);
    }
    if u64::from(hd.header_length) > cluster {
        r.error(
            100,
            format!(
                "the header length {} exceeds the cluster size {cluster}",
                hd.header_length
            ),
        );
        return Ok(None);
    }
    if hd.backing_file_offset > cluster {
        r.error(
            8,
            format!(
                "the backing file name offset {} lies outside the header cluster ({cluster} bytes)",
                hd.backing_file_offset
            ),
        );
        return Ok(None);
    }
    match (
        hd.compression_type,
        hd.incompat & INCOMPAT_COMPRESSION_TYPE != 0,
    ) {
        (0, false) | (1, true) => {}
        (0, true) => {
            r.error(72, "the compression type incompatible feature bit (3) is set, but the compression type is zlib".into());
            return Ok(None);
        }
        (1, false) => {
            r.error(
                72,
                "the compression type is zstd, but incompatible feature bit 3 is not set".into(),
            );
            return Ok(None);
        }
        (t, _) => {
            r.error(
                104,
                format!("unknown compression type {t} (0 zlib, 1 zstd)"),
            );
            return Ok(None);
        }
    }
    if hd.incompat & !KNOWN_INCOMPAT != 0 {
        r.error(
            72,
            format!(
                "unknown incompatible features 0x{:x}: readers must refuse this image",
                hd.incompat & !KNOWN_INCOMPAT
            ),
        );
        return Ok(None);
    }
    if hd.incompat & 1 != 0 {
        r.warning(
            72,
            "the dirty bit is set: refcounts may be stale (the image was not closed cleanly)"
                .into(),
        );
    }
    if hd.incompat & 2 != 0 {
        r.error(72, "the corrupt bit is set: qemu opens the image read-only only (repair it with: qemu-img check -r all)".into());
    }
    if hd.refcount_order > 6 {
        r.error(
            96,
            format!(
                "refcount order {} is above 6 (64-bit refcounts)",
                hd.refcount_order
            ),
        );
        return Ok(None);
    }
    let mut walk = true;
    match hd.crypt_method {
        0 => {}
        1 | 2 => {
            r.unsupported(32, format!("the image is encrypted ({}): kiln cannot check or read encrypted clusters (decrypt with: qemu-img convert --object secret,... --image-opts ... -O qcow2)", if hd.crypt_method == 1 { "AES" } else { "LUKS" }));
            walk = false;
        }
        m => {
            r.error(
                32,
                format!("unknown encryption method {m}: qemu cannot open this image"),
            );
            return Ok(None);
        }
    }
    if hd.refcount_table_clusters == 0 {
        r.error(
            56,
            "the image has no refcount table (0 clusters): qemu cannot open it".into(),
        );
        return Ok(None);
    }
    // (what, offset field, count field, offset, entries, entry length, qemu's maximum bytes)
    let tables = [
        (
            "refcount table",
            48,
            56,
            hd.refcount_table_at,
            u64::from(hd.refcount_table_clusters),
            cluster,
            MAX_REFTABLE_BYTES,
        ),
        (
            "snapshot table",
            64,
            60,
            hd.snapshots_at,
            u64::from(hd.nb_snapshots),
            SNAPSHOT_HEADER,
            SNAPSHOT_HEADER * MAX_SNAPSHOTS,
        ),
        (
            "active L1 table",
            40,
            36,
            hd.l1_at,
            u64::from(hd.l1_size),
            8,
            MAX_L1_BYTES,
        ),
    ];
    for table in tables {
        if !validate_table(r, table, cluster) {
            return Ok(None);
        }
    }
    let per_l1 = cluster * (cluster / 8);
    let needed = hd.size.div_ceil(per_l1);
    if needed > i32::MAX as u64 {
        r.error(
            24,
            format!(
                "the virtual size {} is too big: it needs {needed} L1 entries",
                hd.size
            ),
        );
        return Ok(None);
    }
    if u64::from(hd.l1_size) < needed {
        r.error(
            36,
            format!(
                "the L1 table has {} entries but a {}-byte disk needs {needed}",
                hd.l1_size, hd.size
            ),
        );
        return Ok(None);
    }
    // Header extensions: from the end of the header to the backing file name (or the end of
    // the first cluster).
    let ext_end = if hd.backing_file_offset != 0 {
        hd.backing_file_offset
    } else {
        cluster
    };
    if !check_extensions(r, &hd, ext_end)? {
        return Ok(None);
    }
    if hd.backing_file_offset != 0 {
        let max = 1023.min(cluster - hd.backing_file_offset);
        if u64::from(hd.backing_file_size) > max {
            r.error(
                16,
                format!(
                    "the backing file name is {} bytes long, more than the {max} qemu reads",
                    hd.backing_file_size
                ),
            );
            return Ok(None);
        }
        r.unsupported(8, "the image has a backing file: its data is partly in another image, which kiln does not read (flatten it with: qemu-img convert -O qcow2)".into());
    }
    if hd.incompat & 0b1_0100 != 0 {
        r.unsupported(
            72,
            format!(
                "the image uses {}: kiln does not check or read it",
                if hd.incompat & 4 != 0 {
                    "an external data file"
                } else {
                    "extended L2 entries (subclusters)"
                }
            ),
        );
        walk = false;
    }
    if hd.nb_snapshots > 0 {
        let table_end = hd.snapshots_at + u64::from(hd.nb_snapshots) * SNAPSHOT_HEADER;
        if table_end > r.len {
            r.error(64, format!("the snapshot table ({} snapshots at {}) extends past the end of the file ({} bytes)", hd.nb_snapshots, hd.snapshots_at, r.len));
        }
        r.unsupported(60, format!("the image has {} internal snapshots: kiln does not walk their tables (drop them with: qemu-img snapshot -d, or convert with: qemu-img convert -O qcow2)", hd.nb_snapshots));
    }
    Ok(walk.then_some(hd))
}

/// Walks the header extensions as qemu's `qcow2_read_extensions` does. Returns false when one
/// is malformed. Bytes past the end of the file read as zeros (qemu's reads do the same).
fn check_extensions(r: &mut Reader, hd: &Header, end: u64) -> io::Result<bool> {
    let start = u64::from(hd.header_length);
    if start >= end {
        return Ok(true);
    }
    let mut area = vec![0u8; (end - start) as usize];
    let avail = r.len.saturating_sub(start).min(end - start);
    if avail > 0 {
        r.file.read_exact_at(&mut area[..avail as usize], start)?;
    }
    let cluster = 1u64 << hd.cluster_bits;
    let mut at = 0u64; // relative to start
    let len = end - start;
    while at < len {
        let field = start + at;
        if len - at < 8 {
            r.error(field, format!("a header extension starts at {field}, but only {} bytes remain before {end}: qemu reads it as too large", len - at));
            return Ok(false);
        }
        let magic = be_u32(&area, at as usize);
        let ext_len = u64::from(be_u32(&area, at as usize + 4));
        at += 8;
        if ext_len > len - at {
            r.error(field + 4, format!("header extension 0x{magic:08x} is {ext_len} bytes long, running past the end of the header area at {end}"));
            return Ok(false);
        }
        let data = &area[at as usize..(at + ext_len) as usize];
        match magic {
            0 => return Ok(true),
            EXT_BACKING_FORMAT if ext_len >= 16 => {
                r.error(field + 4, format!("the backing format extension is {ext_len} bytes long: qemu takes at most 15"));
                return Ok(false);
            }
            EXT_CRYPTO => {
                if hd.crypt_method != 2 {
                    r.error(
                        field,
                        "a LUKS encryption header extension, but the image is not LUKS encrypted"
                            .into(),
                    );
                    return Ok(false);
                }
                if ext_len != 16 {
                    r.error(
                        field + 4,
                        format!("the encryption header extension is {ext_len} bytes long, not 16"),
                    );
                    return Ok(false);
                }
                if be_u64(data, 0) % cluster != 0 {
                    r.error(
                        field + 8,
                        format!(
                            "the encryption header offset {} is not cluster aligned",
                            be_u64(data, 0)
                        ),
                    );
                    return Ok(false);
                }
            }
            EXT_BITMAPS => {
                if ext_len != 24 {
                    r.error(
                        field + 4,
                        format!("the bitmaps extension is {ext_len} bytes long, not 24"),
                    );
                    return Ok(false);
                }
                if hd.autoclear & 1 == 0 {
                    r.warning(field, "the bitmaps extension is stale (autoclear bit 0 is clear): qemu ignores the bitmaps".into());
                } else {
                    let (n, reserved) = (be_u32(data, 0), be_u32(data, 4));
                    let (dir_size, dir_at) = (be_u64(data, 8), be_u64(data, 16));
                    let bad = if reserved != 0 {
                        Some("its reserved field is not zero".to_string())
                    } else if n == 0 || n > 65535 {
                        Some(format!("it lists {n} bitmaps (1 to 65535 are allowed)"))
                    } else if dir_at % cluster != 0 {
                        Some(format!(
                            "the bitmap directory offset {dir_at} is not cluster aligned"
                        ))
                    } else if dir_size > 64 << 20 {
                        Some(format!(
                            "the bitmap directory is {dir_size} bytes, above qemu's 64 MiB"
                        ))
                    } else {
                        None
                    };
                    if let Some(why) = bad {
                        r.error(field + 8, format!("invalid bitmaps extension: {why}"));
                        return Ok(false);
                    }
                    r.unsupported(field, format!("the image has {n} persistent dirty bitmaps: kiln does not check their tables"));
                }
            }
            _ => {} // the feature name table, the data file name, and unknown extensions
        }
        at += ext_len.div_ceil(8) * 8;
    }
    Ok(true)
}

const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_CRYPTO: u32 = 0x0537_be77;
const EXT_BITMAPS: u32 = 0x2385_2875;

pub(super) fn check(r: &mut Reader) -> io::Result<Option<u64>> {
    let Some(h) = r.read(0, 112.min(r.len), "header")? else {
        return Ok(None);
    };
    if h.len() < 72 || be_u32(&h, 0) != MAGIC {
        r.error(
            0,
            "the file is too short for a QCOW2 header: it is truncated".into(),
        );
        return Ok(None);
    }
    let Some(hd) = check_header(r, &h)? else {
        return Ok(Some(be_u64(&h, 24)));
    };
    let (cluster_bits, size, refcount_order) = (hd.cluster_bits, hd.size, hd.refcount_order);
    let cluster = 1u64 << cluster_bits;
    let has_snapshots_or_bitmaps = r
        .problems
        .iter()
        .any(|p| p.severity == super::Severity::Unsupported);

    let file_clusters = r.len.div_ceil(cluster);
    // Snapshots and bitmaps hold clusters of their own: without walking them, counts would lie.
    let count_refs = file_clusters <= MAX_COUNTED_CLUSTERS && !has_snapshots_or_bitmaps;
    if file_clusters > MAX_COUNTED_CLUSTERS {
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
    let (l1_size, l1_at) = (u64::from(hd.l1_size), hd.l1_at);
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
    let (rt_at, rt_clusters) = (hd.refcount_table_at, u64::from(hd.refcount_table_clusters));
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
