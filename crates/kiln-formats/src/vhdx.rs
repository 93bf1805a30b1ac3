//! VHDX (MS-VHDX 1.0): dynamic (blocks allocated as data appears, as upstream's `qemu-img
//! convert -O vhdx` makes) and fixed (every block allocated).
//!
//! Layout (all regions 1 MiB aligned):
//! ```text
//! 0        file type identifier ("vhdxfile", creator)
//! 64 KiB   header 1            128 KiB  header 2
//! 192 KiB  region table 1      256 KiB  region table 2
//! 1 MiB    log (empty, 1 MiB)
//! 2 MiB    metadata region (1 MiB): table, then file parameters, virtual disk size,
//!          page 83 data, logical and physical sector size
//! 3 MiB    BAT (payload entries with a sector-bitmap entry after every chunk-ratio of them)
//! ...      payload blocks
//! ```

use crate::ident::{guid_le, uuid_bytes, Identity};
use crate::sparse::SparseInput;
use crate::{round_up, unsupported, Converted, Subformat, MIB};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub const KIB64: u64 = 64 << 10;
pub const HEADER1_OFFSET: u64 = KIB64;
pub const HEADER2_OFFSET: u64 = 2 * KIB64;
pub const REGION_TABLE1_OFFSET: u64 = 3 * KIB64;
pub const REGION_TABLE2_OFFSET: u64 = 4 * KIB64;
pub const LOG_OFFSET: u64 = MIB;
pub const LOG_LENGTH: u64 = MIB;
pub const METADATA_OFFSET: u64 = 2 * MIB;
pub const METADATA_LENGTH: u64 = MIB;
pub const BAT_OFFSET: u64 = 3 * MIB;
/// Payload block size: Hyper-V's default for dynamic disks.
pub const BLOCK_SIZE: u64 = 32 * MIB;
pub const LOGICAL_SECTOR: u32 = 512;
pub const PHYSICAL_SECTOR: u32 = 4096;
/// The largest virtual disk the format allows (64 TiB).
pub const MAX_SIZE: u64 = 64 << 40;

pub const BAT_GUID: [u8; 16] = uuid_bytes("2DC27766-F623-4200-9D64-115E9BFD4A08");
pub const METADATA_GUID: [u8; 16] = uuid_bytes("8B7CA206-4790-4B9A-B8FE-575F050F886E");
pub const FILE_PARAMETERS_GUID: [u8; 16] = uuid_bytes("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
pub const VIRTUAL_DISK_SIZE_GUID: [u8; 16] = uuid_bytes("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
pub const PAGE83_GUID: [u8; 16] = uuid_bytes("BECA12AB-B2E6-4523-93EF-C309E000C746");
pub const LOGICAL_SECTOR_GUID: [u8; 16] = uuid_bytes("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
pub const PHYSICAL_SECTOR_GUID: [u8; 16] = uuid_bytes("CDA348C7-445D-4471-9CC9-E9885251C556");
/// The parent locator of a differencing VHDX (MS-VHDX 2.6.2.6).
pub const PARENT_LOCATOR_GUID: [u8; 16] = uuid_bytes("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");

pub const PAYLOAD_BLOCK_NOT_PRESENT: u64 = 0;
pub const PAYLOAD_BLOCK_FULLY_PRESENT: u64 = 6;

/// Payload blocks per sector bitmap block: (2^23 × logical sector size) / block size.
pub fn chunk_ratio(block_size: u64, logical_sector: u32) -> u64 {
    ((1u64 << 23) * u64::from(logical_sector)) / block_size
}

/// Index in the BAT of payload block `i` (a sector-bitmap entry follows every chunk ratio).
pub fn bat_index(i: u64, chunk_ratio: u64) -> u64 {
    i + i / chunk_ratio
}

/// BAT entries of a disk without parent: payload blocks plus interleaved bitmap entries.
pub fn bat_entries(payload_blocks: u64, chunk_ratio: u64) -> u64 {
    if payload_blocks == 0 {
        0
    } else {
        payload_blocks + (payload_blocks - 1) / chunk_ratio
    }
}

pub fn write(
    src: &SparseInput,
    out: &File,
    sub: Subformat,
    ident: &Identity,
) -> io::Result<Converted> {
    if src.is_empty() {
        return Err(unsupported(
            "the input is empty (0 bytes): a VHDX must hold at least one sector (qemu cannot open an empty one)".into(),
        ));
    }
    let size = round_up(src.len(), u64::from(LOGICAL_SECTOR));
    if size > MAX_SIZE {
        return Err(unsupported(format!(
            "a VHDX holds at most 64 TiB; this disk is {} GiB",
            size.div_ceil(1 << 30)
        )));
    }
    let mut warnings = Vec::new();
    if size != src.len() {
        warnings.push(format!(
            "the input is {} bytes, not a whole number of sectors; the VHDX is padded to {size} bytes",
            src.len()
        ));
    }
    let ratio = chunk_ratio(BLOCK_SIZE, LOGICAL_SECTOR);
    let payload_blocks = size.div_ceil(BLOCK_SIZE);
    let entries = bat_entries(payload_blocks, ratio);
    let bat_length = round_up((entries * 8).max(1), MIB);
    let data_start = BAT_OFFSET + bat_length;
    let mut bat = vec![0u64; entries as usize];
    let entry = |offset: u64| (offset / MIB) << 20 | PAYLOAD_BLOCK_FULLY_PRESENT;
    let mut next = data_start;
    if sub == Subformat::Fixed {
        // Every block allocated, in order; the host file keeps holes where the disk is zero.
        for i in 0..payload_blocks {
            bat[bat_index(i, ratio) as usize] = entry(data_start + i * BLOCK_SIZE);
        }
        next = data_start + payload_blocks * BLOCK_SIZE;
    }
    src.for_each_data_run(crate::raw::GRANULE, |mut off, mut data| {
        while !data.is_empty() {
            let block = off / BLOCK_SIZE;
            let within = off % BLOCK_SIZE;
            let n = data.len().min((BLOCK_SIZE - within) as usize);
            let idx = bat_index(block, ratio) as usize;
            if bat[idx] & 7 != PAYLOAD_BLOCK_FULLY_PRESENT {
                bat[idx] = entry(next);
                next += BLOCK_SIZE;
            }
            let base = (bat[idx] >> 20) * MIB;
            out.write_all_at(&data[..n], base + within)?;
            off += n as u64;
            data = &data[n..];
        }
        Ok(())
    })?;
    out.set_len(next)?;

    let mut bat_bytes = vec![0u8; bat_length as usize];
    for (i, e) in bat.iter().enumerate() {
        bat_bytes[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
    }
    out.write_all_at(&bat_bytes, BAT_OFFSET)?;
    out.write_all_at(&metadata_region(size, sub, ident), METADATA_OFFSET)?;
    let regions = region_table(bat_length);
    out.write_all_at(&regions, REGION_TABLE1_OFFSET)?;
    out.write_all_at(&regions, REGION_TABLE2_OFFSET)?;
    let file_write = ident.uuid("vhdx.file-write-guid");
    let data_write = ident.uuid("vhdx.data-write-guid");
    out.write_all_at(&header(0, file_write, data_write), HEADER1_OFFSET)?;
    out.write_all_at(&header(1, file_write, data_write), HEADER2_OFFSET)?;
    out.write_all_at(&file_identifier(), 0)?;
    Ok(Converted {
        virtual_size: size,
        warnings,
    })
}

fn file_identifier() -> Vec<u8> {
    let mut b = vec![0u8; 8 + 512];
    b[0..8].copy_from_slice(b"vhdxfile");
    let creator = format!("kiln {}", env!("CARGO_PKG_VERSION"));
    for (i, unit) in creator.encode_utf16().take(255).enumerate() {
        b[8 + i * 2..10 + i * 2].copy_from_slice(&unit.to_le_bytes());
    }
    b
}

/// A 4 KiB header with its CRC-32C.
fn header(sequence: u64, file_write: [u8; 16], data_write: [u8; 16]) -> Vec<u8> {
    let mut h = vec![0u8; 4096];
    h[0..4].copy_from_slice(b"head");
    h[8..16].copy_from_slice(&sequence.to_le_bytes());
    h[16..32].copy_from_slice(&guid_le(file_write));
    h[32..48].copy_from_slice(&guid_le(data_write));
    // 48..64: LogGuid zero = the log is empty, nothing to replay.
    h[64..66].copy_from_slice(&0u16.to_le_bytes()); // log version
    h[66..68].copy_from_slice(&1u16.to_le_bytes()); // version
    h[68..72].copy_from_slice(&(LOG_LENGTH as u32).to_le_bytes());
    h[72..80].copy_from_slice(&LOG_OFFSET.to_le_bytes());
    let crc = crc32c::crc32c(&h);
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The 64 KiB region table: BAT and metadata, both required.
fn region_table(bat_length: u64) -> Vec<u8> {
    let mut t = vec![0u8; KIB64 as usize];
    t[0..4].copy_from_slice(b"regi");
    t[8..12].copy_from_slice(&2u32.to_le_bytes());
    let mut put = |i: usize, guid: [u8; 16], offset: u64, length: u64| {
        let e = 16 + i * 32;
        t[e..e + 16].copy_from_slice(&guid_le(guid));
        t[e + 16..e + 24].copy_from_slice(&offset.to_le_bytes());
        t[e + 24..e + 28].copy_from_slice(&(length as u32).to_le_bytes());
        t[e + 28..e + 32].copy_from_slice(&1u32.to_le_bytes()); // required
    };
    put(0, BAT_GUID, BAT_OFFSET, bat_length);
    put(1, METADATA_GUID, METADATA_OFFSET, METADATA_LENGTH);
    let crc = crc32c::crc32c(&t);
    t[4..8].copy_from_slice(&crc.to_le_bytes());
    t
}

/// The metadata region: the table (first 64 KiB), then the items.
fn metadata_region(size: u64, sub: Subformat, ident: &Identity) -> Vec<u8> {
    const IS_VIRTUAL_DISK: u32 = 2;
    const IS_REQUIRED: u32 = 4;
    let mut r = vec![0u8; METADATA_LENGTH as usize];
    r[0..8].copy_from_slice(b"metadata");
    let mut file_params = Vec::new();
    file_params.extend_from_slice(&(BLOCK_SIZE as u32).to_le_bytes());
    let leave_blocks_allocated = u32::from(sub == Subformat::Fixed);
    file_params.extend_from_slice(&leave_blocks_allocated.to_le_bytes());
    let items: [([u8; 16], Vec<u8>, u32); 5] = [
        (FILE_PARAMETERS_GUID, file_params, IS_REQUIRED),
        (
            VIRTUAL_DISK_SIZE_GUID,
            size.to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            PAGE83_GUID,
            guid_le(ident.uuid("vhdx.page83")).to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            LOGICAL_SECTOR_GUID,
            LOGICAL_SECTOR.to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            PHYSICAL_SECTOR_GUID,
            PHYSICAL_SECTOR.to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
    ];
    r[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
    let mut offset = KIB64 as usize;
    for (i, (guid, data, flags)) in items.iter().enumerate() {
        let e = 32 + i * 32;
        r[e..e + 16].copy_from_slice(&guid_le(*guid));
        r[e + 16..e + 20].copy_from_slice(&(offset as u32).to_le_bytes());
        r[e + 20..e + 24].copy_from_slice(&(data.len() as u32).to_le_bytes());
        r[e + 24..e + 28].copy_from_slice(&flags.to_le_bytes());
        r[offset..offset + data.len()].copy_from_slice(data);
        offset += round_up(data.len() as u64, 8) as usize;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bat_geometry() {
        let ratio = chunk_ratio(BLOCK_SIZE, 512);
        assert_eq!(ratio, 128);
        assert_eq!(bat_index(0, ratio), 0);
        assert_eq!(bat_index(127, ratio), 127);
        assert_eq!(bat_index(128, ratio), 129);
        assert_eq!(bat_entries(128, ratio), 128);
        assert_eq!(bat_entries(129, ratio), 130);
    }

    #[test]
    fn structures_carry_valid_crcs() {
        let h = header(1, [1; 16], [2; 16]);
        let mut z = h.clone();
        z[4..8].fill(0);
        assert_eq!(crc32c::crc32c(&z).to_le_bytes(), h[4..8]);
        let t = region_table(MIB);
        let mut z = t.clone();
        z[4..8].fill(0);
        assert_eq!(crc32c::crc32c(&z).to_le_bytes(), t[4..8]);
    }
}
