//! QCOW2 version 3, written in one pass.
//!
//! Layout: header (cluster 0), L1 table, then data clusters in guest order with each L2 table
//! written after the data it maps, then refcount blocks and the refcount table. All-zero
//! clusters are not allocated (they read as zeros). With compression, each cluster is
//! compressed (raw deflate as qemu's zlib type, or zstd) and packed at byte granularity; a cluster
//! that does not shrink is stored as is.

use crate::sparse::SparseInput;
use crate::{round_up, Compression, Converted};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

pub const MAGIC: u32 = 0x5146_49fb;
pub const CLUSTER_BITS: u32 = 16;
pub const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// Entries per L2 table (8-byte entries in one cluster).
pub const L2_ENTRIES: u64 = CLUSTER / 8;
/// 16-bit refcounts.
pub const REFCOUNT_ORDER: u32 = 4;
pub const REFCOUNTS_PER_BLOCK: u64 = CLUSTER * 8 / (1 << REFCOUNT_ORDER);
pub const HEADER_LENGTH: u32 = 112;
/// L1/L2 flag: the cluster's refcount is exactly one.
pub const COPIED: u64 = 1 << 63;
/// L2 flag: the cluster is compressed.
pub const COMPRESSED: u64 = 1 << 62;
/// Offset mask of standard L1/L2 entries (bits 9–55).
pub const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// Incompatible feature: the compression type field is not zlib.
pub const INCOMPAT_COMPRESSION_TYPE: u64 = 1 << 3;

/// Bit where the sector count of a compressed cluster descriptor starts.
pub const fn compressed_shift() -> u32 {
    62 - (CLUSTER_BITS - 8)
}

struct Writer<'a> {
    out: &'a File,
    /// Next free byte of the host file.
    next: u64,
    /// Refcount of every host cluster so far.
    refcounts: Vec<u16>,
    l1: Vec<u64>,
    /// The L2 table being filled: its L1 index and entries.
    l2: Option<(usize, Vec<u64>)>,
    compression: Compression,
    scratch: Vec<u8>,
}

impl Writer<'_> {
    /// Claims `bytes` at the next free position, counting one reference on every host cluster
    /// they touch. With `align`, starts on a cluster boundary.
    fn allocate(&mut self, bytes: u64, align: bool) -> u64 {
        if align {
            self.next = round_up(self.next, CLUSTER);
        }
        let start = self.next;
        self.next += bytes;
        let first = start / CLUSTER;
        let last = (self.next - 1) / CLUSTER;
        if self.refcounts.len() <= last as usize {
            self.refcounts.resize(last as usize + 1, 0);
        }
        for c in first..=last {
            self.refcounts[c as usize] += 1;
        }
        start
    }

    fn flush_l2(&mut self) -> io::Result<()> {
        if let Some((l1_index, table)) = self.l2.take() {
            let at = self.allocate(CLUSTER, true);
            let bytes: Vec<u8> = table.iter().flat_map(|e| e.to_be_bytes()).collect();
            self.out.write_all_at(&bytes, at)?;
            self.l1[l1_index] = at | COPIED;
        }
        Ok(())
    }

    fn set_l2(&mut self, guest_cluster: u64, entry: u64) -> io::Result<()> {
        let l1_index = (guest_cluster / L2_ENTRIES) as usize;
        if self.l2.as_ref().is_some_and(|(i, _)| *i != l1_index) {
            self.flush_l2()?;
        }
        let (_, table) = self
            .l2
            .get_or_insert_with(|| (l1_index, vec![0; L2_ENTRIES as usize]));
        table[(guest_cluster % L2_ENTRIES) as usize] = entry;
        Ok(())
    }

    /// Stores a run of consecutive guest clusters that all hold data, uncompressed: one write
    /// per L2 table the run spans.
    fn plain_run(&mut self, first: u64, data: &[u8]) -> io::Result<()> {
        let (mut guest, mut rest) = (first, data);
        while !rest.is_empty() {
            let n = (rest.len() as u64)
                .div_ceil(CLUSTER)
                .min(L2_ENTRIES - guest % L2_ENTRIES);
            let bytes = (n * CLUSTER).min(rest.len() as u64) as usize;
            // Finish the previous L2 table before allocating, so the data stays contiguous.
            let l1_index = (guest / L2_ENTRIES) as usize;
            if self.l2.as_ref().is_some_and(|(i, _)| *i != l1_index) {
                self.flush_l2()?;
            }
            let at = self.allocate(n * CLUSTER, true);
            self.out.write_all_at(&rest[..bytes], at)?;
            for k in 0..n {
                self.set_l2(guest + k, (at + k * CLUSTER) | COPIED)?;
            }
            guest += n;
            rest = &rest[bytes..];
        }
        Ok(())
    }

    /// Stores one guest cluster (`data` may be short for the last cluster of the disk).
    fn cluster(&mut self, guest_cluster: u64, data: &[u8]) -> io::Result<()> {
        if self.compression != Compression::None {
            if let Some(compressed) = self.compress(data)? {
                let len = compressed.len() as u64;
                let at = self.allocate(len, false);
                self.out.write_all_at(&compressed, at)?;
                let extra_sectors = ((at + len - 1) >> 9) - (at >> 9);
                let entry = COMPRESSED | (extra_sectors << compressed_shift()) | at;
                return self.set_l2(guest_cluster, entry);
            }
        }
        let at = self.allocate(CLUSTER, true);
        self.out.write_all_at(data, at)?;
        self.set_l2(guest_cluster, at | COPIED)
    }

    /// The compressed form of a cluster, if it is smaller than the cluster.
    fn compress(&mut self, data: &[u8]) -> io::Result<Option<Vec<u8>>> {
        // Readers decompress exactly one cluster: pad the short last one.
        self.scratch.clear();
        self.scratch.extend_from_slice(data);
        self.scratch.resize(CLUSTER as usize, 0);
        let compressed = match self.compression {
            Compression::Zlib => {
                let mut e = flate2::write::DeflateEncoder::new(
                    Vec::with_capacity(CLUSTER as usize),
                    flate2::Compression::default(),
                );
                e.write_all(&self.scratch)?;
                e.finish()?
            }
            Compression::Zstd => zstd::bulk::compress(&self.scratch, 3)?,
            Compression::None => return Ok(None),
        };
        // At most 256 sectors can be described; a cluster that does not shrink stays plain.
        Ok((compressed.len() < (CLUSTER - 512) as usize).then_some(compressed))
    }
}

pub fn write(src: &SparseInput, out: &File, compression: Compression) -> io::Result<Converted> {
    // QCOW2 sizes are whole sectors.
    let size = round_up(src.len(), 512);
    let mut warnings = Vec::new();
    if size != src.len() {
        warnings.push(format!(
            "the input is {} bytes, not a whole number of sectors; the QCOW2 image is padded to {size} bytes",
            src.len()
        ));
    }
    let l1_size = size.div_ceil(CLUSTER * L2_ENTRIES);
    let l1_clusters = round_up(l1_size * 8, CLUSTER) / CLUSTER;
    let mut w = Writer {
        out,
        next: 0,
        refcounts: Vec::new(),
        l1: vec![0; l1_size as usize],
        l2: None,
        compression,
        scratch: Vec::new(),
    };
    w.allocate(CLUSTER, true); // header
                               // An empty disk has no L1 table (an allocated but unreferenced one would be a leak).
    let l1_offset = if l1_clusters > 0 {
        w.allocate(l1_clusters * CLUSTER, true)
    } else {
        0
    };
    // Runs hold only clusters with data (the granule is the cluster).
    src.for_each_data_run(CLUSTER, |off, data| {
        if compression == Compression::None {
            return w.plain_run(off / CLUSTER, data);
        }
        for (i, chunk) in data.chunks(CLUSTER as usize).enumerate() {
            w.cluster(off / CLUSTER + i as u64, chunk)?;
        }
        Ok(())
    })?;
    w.flush_l2()?;
    if l1_clusters > 0 {
        let l1_bytes: Vec<u8> = w.l1.iter().flat_map(|e| e.to_be_bytes()).collect();
        out.write_all_at(&l1_bytes, l1_offset)?;
    }

    // Refcount blocks and table go last; they must count themselves too.
    let used = w.next.div_ceil(CLUSTER);
    let (mut blocks, mut table) = (0u64, 0u64);
    loop {
        let total = used + blocks + table;
        let b = total.div_ceil(REFCOUNTS_PER_BLOCK);
        let t = round_up((b * 8).max(1), CLUSTER) / CLUSTER;
        if (b, t) == (blocks, table) {
            break;
        }
        (blocks, table) = (b, t);
    }
    let blocks_at = used * CLUSTER;
    let table_at = blocks_at + blocks * CLUSTER;
    let mut refcounts = std::mem::take(&mut w.refcounts);
    refcounts.resize(used as usize, 0);
    refcounts.resize((used + blocks + table) as usize, 1);
    let mut table_bytes = vec![0u8; (table * CLUSTER) as usize];
    for b in 0..blocks {
        let first = (b * REFCOUNTS_PER_BLOCK) as usize;
        let last = (first + REFCOUNTS_PER_BLOCK as usize).min(refcounts.len());
        let mut block = vec![0u8; CLUSTER as usize];
        for (i, r) in refcounts[first..last].iter().enumerate() {
            block[i * 2..i * 2 + 2].copy_from_slice(&r.to_be_bytes());
        }
        let at = blocks_at + b * CLUSTER;
        out.write_all_at(&block, at)?;
        table_bytes[b as usize * 8..b as usize * 8 + 8].copy_from_slice(&at.to_be_bytes());
    }
    out.write_all_at(&table_bytes, table_at)?;
    out.set_len(table_at + table * CLUSTER)?;

    let mut h = vec![0u8; HEADER_LENGTH as usize + 8];
    h[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    h[20..24].copy_from_slice(&CLUSTER_BITS.to_be_bytes());
    h[24..32].copy_from_slice(&size.to_be_bytes());
    h[36..40].copy_from_slice(&(l1_size as u32).to_be_bytes());
    h[40..48].copy_from_slice(&l1_offset.to_be_bytes());
    h[48..56].copy_from_slice(&table_at.to_be_bytes());
    h[56..60].copy_from_slice(&(table as u32).to_be_bytes());
    if compression == Compression::Zstd {
        h[72..80].copy_from_slice(&INCOMPAT_COMPRESSION_TYPE.to_be_bytes());
        h[104] = 1;
    }
    h[96..100].copy_from_slice(&REFCOUNT_ORDER.to_be_bytes());
    h[100..104].copy_from_slice(&HEADER_LENGTH.to_be_bytes());
    // h[112..120]: the end-of-extensions marker (type 0, length 0).
    out.write_all_at(&h, 0)?;
    Ok(Converted {
        virtual_size: size,
        warnings,
    })
}
