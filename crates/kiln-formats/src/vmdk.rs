//! VMDK, stream-optimized (VMware Virtual Disk Format 5.0): what OVAs carry.
//!
//! Layout, written in one pass: the sparse extent header (grain directory "at end"), the
//! descriptor, then for each grain that holds data a grain marker and its deflate (zlib)
//! compressed contents, a grain table (marker + table) after the grains it maps, then the grain
//! directory, a footer (the header again, with the directory's offset) and the end-of-stream
//! marker. Grains are compressed in parallel batches.

use crate::ident::Identity;
use crate::sparse::{is_zero, SparseInput};
use crate::{round_up, unsupported, Converted};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

pub const MAGIC: u32 = 0x564d_444b; // "KDMV"
/// Grain size in sectors (64 KiB).
pub const GRAIN_SECTORS: u64 = 128;
pub const GRAIN: u64 = GRAIN_SECTORS * 512;
pub const GT_ENTRIES: u64 = 512;
/// Valid newline detection, compressed grains, markers.
pub const FLAGS: u32 = 0x0003_0001;
pub const GD_AT_END: u64 = u64::MAX;
pub const MARKER_EOS: u32 = 0;
pub const MARKER_GT: u32 = 1;
pub const MARKER_GD: u32 = 2;
pub const MARKER_FOOTER: u32 = 3;
/// Sectors before the first grain: header and descriptor.
const OVERHEAD_SECTORS: u64 = 128;
const DESCRIPTOR_SECTORS: u64 = 20;
/// Grains compressed per batch (spread over the cores).
const BATCH: usize = 256;

/// The 512-byte sparse extent header (also the footer, with the grain directory's offset).
pub fn header(capacity_sectors: u64, gd_offset: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&3u32.to_le_bytes());
    h[8..12].copy_from_slice(&FLAGS.to_le_bytes());
    h[12..20].copy_from_slice(&capacity_sectors.to_le_bytes());
    h[20..28].copy_from_slice(&GRAIN_SECTORS.to_le_bytes());
    h[28..36].copy_from_slice(&1u64.to_le_bytes()); // descriptor offset
    h[36..44].copy_from_slice(&DESCRIPTOR_SECTORS.to_le_bytes());
    h[44..48].copy_from_slice(&(GT_ENTRIES as u32).to_le_bytes());
    // 48..56: redundant grain directory: none.
    h[56..64].copy_from_slice(&gd_offset.to_le_bytes());
    h[64..72].copy_from_slice(&OVERHEAD_SECTORS.to_le_bytes());
    h[72] = 0; // clean shutdown
    h[73] = b'\n';
    h[74] = b' ';
    h[75] = b'\r';
    h[76] = b'\n';
    h[77..79].copy_from_slice(&1u16.to_le_bytes()); // deflate
    h
}

/// A metadata marker sector: `sectors` of `kind` follow.
fn marker(sectors: u64, kind: u32) -> [u8; 512] {
    let mut m = [0u8; 512];
    m[0..8].copy_from_slice(&sectors.to_le_bytes());
    m[12..16].copy_from_slice(&kind.to_le_bytes());
    m
}

/// The embedded descriptor, naming the extent `file_name`.
pub fn descriptor(capacity_sectors: u64, file_name: &str, ident: &Identity) -> String {
    let cid = u32::from_le_bytes(ident.uuid("vmdk.cid")[..4].try_into().expect("4 bytes"));
    let heads = 255u64;
    let sectors = 63u64;
    let cylinders = (capacity_sectors / (heads * sectors)).clamp(1, 65535);
    format!(
        "# Disk DescriptorFile\nversion=1\nCID={cid:08x}\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\n\n\
         # Extent description\nRW {capacity_sectors} SPARSE \"{file_name}\"\n\n\
         # The Disk Data Base\n#DDB\n\n\
         ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"{cylinders}\"\nddb.geometry.heads = \"{heads}\"\n\
         ddb.geometry.sectors = \"{sectors}\"\nddb.adapterType = \"lsilogic\"\nddb.toolsInstallType = \"4\"\n"
    )
}

struct Writer<'a> {
    out: &'a File,
    /// Next free sector.
    next: u64,
    gd: Vec<u32>,
    /// The grain table being filled: its index and entries.
    gt: Option<(u64, Vec<u32>)>,
}

impl Writer<'_> {
    fn write_sectors(&mut self, data: &[u8]) -> io::Result<u64> {
        let at = self.next;
        self.out.write_all_at(data, at * 512)?;
        self.next += (data.len() as u64).div_ceil(512);
        Ok(at)
    }

    fn flush_gt(&mut self) -> io::Result<()> {
        if let Some((index, table)) = self.gt.take() {
            let bytes: Vec<u8> = table.iter().flat_map(|e| e.to_le_bytes()).collect();
            self.write_sectors(&marker(bytes.len() as u64 / 512, MARKER_GT))?;
            let at = self.write_sectors(&bytes)?;
            self.gd[index as usize] = at as u32;
        }
        Ok(())
    }

    /// Writes one compressed grain for guest grain `grain`.
    fn grain(&mut self, grain: u64, compressed: &[u8]) -> io::Result<()> {
        let gt_index = grain / GT_ENTRIES;
        if self.gt.as_ref().is_some_and(|(i, _)| *i != gt_index) {
            self.flush_gt()?;
        }
        let mut rec = Vec::with_capacity(12 + compressed.len() + 512);
        rec.extend_from_slice(&(grain * GRAIN_SECTORS).to_le_bytes());
        rec.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
        rec.extend_from_slice(compressed);
        rec.resize(round_up(rec.len() as u64, 512) as usize, 0);
        let at = self.write_sectors(&rec)?;
        if at > u64::from(u32::MAX) {
            return Err(unsupported(
                "the VMDK grows past 2 TiB of compressed data".into(),
            ));
        }
        let (_, table) = self
            .gt
            .get_or_insert_with(|| (gt_index, vec![0; GT_ENTRIES as usize]));
        table[(grain % GT_ENTRIES) as usize] = at as u32;
        Ok(())
    }
}

fn compress_grain(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut padded;
    let data = if (data.len() as u64) < GRAIN {
        padded = data.to_vec();
        padded.resize(GRAIN as usize, 0);
        &padded[..]
    } else {
        data
    };
    let mut e = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::default(),
    );
    e.write_all(data)?;
    e.finish()
}

/// Writes `src` as a stream-optimized VMDK whose descriptor names the extent `file_name`.
pub fn write(
    src: &SparseInput,
    out: &File,
    file_name: &str,
    ident: &Identity,
) -> io::Result<Converted> {
    let size = round_up(src.len(), 512);
    let capacity = size / 512;
    let mut warnings = Vec::new();
    if size != src.len() {
        warnings.push(format!(
            "the input is {} bytes, not a whole number of sectors; the VMDK is padded to {size} bytes",
            src.len()
        ));
    }
    let grains = size.div_ceil(GRAIN);
    let gd_entries = grains.div_ceil(GT_ENTRIES);
    let mut w = Writer {
        out,
        next: OVERHEAD_SECTORS,
        gd: vec![0; gd_entries as usize],
        gt: None,
    };
    out.write_all_at(&header(capacity, GD_AT_END), 0)?;
    let desc = descriptor(capacity, file_name, ident);
    if desc.len() as u64 > DESCRIPTOR_SECTORS * 512 {
        return Err(unsupported(format!(
            "the extent name {file_name:?} is too long for the descriptor"
        )));
    }
    out.write_all_at(desc.as_bytes(), 512)?;

    // Grains with data, compressed in parallel batches and written in order.
    let mut batch: Vec<(u64, Vec<u8>)> = Vec::with_capacity(BATCH);
    let threads = crate::compress::threads();
    let flush = |batch: &mut Vec<(u64, Vec<u8>)>, w: &mut Writer| -> io::Result<()> {
        let per = batch.len().div_ceil(threads).max(1);
        let compressed: Vec<io::Result<Vec<Vec<u8>>>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .chunks(per)
                .map(|part| s.spawn(move || part.iter().map(|(_, d)| compress_grain(d)).collect()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        let mut i = 0;
        for part in compressed {
            for c in part? {
                w.grain(batch[i].0, &c)?;
                i += 1;
            }
        }
        batch.clear();
        Ok(())
    };
    src.for_each_data_run(GRAIN, |off, data| {
        for (i, g) in data.chunks(GRAIN as usize).enumerate() {
            if !is_zero(g) {
                batch.push((off / GRAIN + i as u64, g.to_vec()));
                if batch.len() == BATCH {
                    flush(&mut batch, &mut w)?;
                }
            }
        }
        Ok(())
    })?;
    flush(&mut batch, &mut w)?;
    w.flush_gt()?;

    let gd_bytes: Vec<u8> = w.gd.iter().flat_map(|e| e.to_le_bytes()).collect();
    let gd_sectors = (gd_bytes.len() as u64).div_ceil(512);
    w.write_sectors(&marker(gd_sectors, MARKER_GD))?;
    let gd_at = if gd_bytes.is_empty() {
        w.next
    } else {
        w.write_sectors(&gd_bytes)?
    };
    w.write_sectors(&marker(1, MARKER_FOOTER))?;
    w.write_sectors(&header(capacity, gd_at))?;
    w.write_sectors(&marker(0, MARKER_EOS))?;
    out.set_len(w.next * 512)?;
    Ok(Converted {
        virtual_size: size,
        warnings,
    })
}
