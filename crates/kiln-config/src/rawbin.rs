//! Where a RawBinary lands on its disk, checked (SPEC §1.2: upstream runs
//! `dd if=<BinPath> of=<disk> bs=<BlockSize> seek=<Seek> conv=notrunc` and checks nothing).
//!
//! kiln computes `Seek × BlockSize` and the end of the binary with checked arithmetic (a
//! product that wraps past 2⁶⁴ would land at a small offset and overwrite the partition
//! table), and refuses a binary that does not lie inside the disk, overlaps a partition, or
//! overlaps the partition table: the MBR's disk signature and entries (bytes 440–511; the boot
//! code before them may be replaced), a GPT's protective MBR entries, header and entries at
//! the start (up to byte 17408) and its backup entries and header in the last 33 sectors.
//! Validation uses the config's MiB ranges ([`DiskGeometry::from_config`]); the imager checks
//! again against the planned layout, with the binary's real size.

use crate::model::{Disk, PartitionTableType, RawBinary};

const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;
/// GPT: protective MBR, header (LBA 1) and 128 entries of 128 bytes (LBAs 2–33).
const GPT_PRIMARY_END: u64 = 34 * SECTOR;
/// GPT: backup entries and header, the last 33 sectors.
const GPT_BACKUP: u64 = 33 * SECTOR;
/// MBR: disk signature (440), entries (446) and boot signature (510).
const MBR_TABLE: (u64, u64) = (440, 512);

/// What a RawBinary may be written into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskGeometry {
    /// The disk's size in bytes (`None`: unknown, e.g. a TargetDisk device).
    pub size: Option<u64>,
    pub table: PartitionTableType,
    /// Each partition's name for messages and its byte range `[start, end)`.
    pub partitions: Vec<(String, u64, u64)>,
}

impl DiskGeometry {
    /// The geometry a config describes: `MaxSize` MiB (unknown for a TargetDisk path), each
    /// partition from `Start` to `End` MiB (`End` 0: to the end of the disk).
    pub fn from_config(disk: &Disk) -> DiskGeometry {
        let size = (!disk.target_disk.is_path())
            .then(|| disk.max_size.checked_mul(MIB))
            .flatten();
        let partitions = disk
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let end = match p.end {
                    0 => size.unwrap_or(u64::MAX),
                    e => e.saturating_mul(MIB),
                };
                (
                    format!("Partitions[{i}] ({})", p.id),
                    p.start.saturating_mul(MIB),
                    end,
                )
            })
            .collect();
        DiskGeometry {
            size,
            table: disk.partition_table_type,
            partitions,
        }
    }

    /// The partition table's byte ranges, with what each holds.
    pub fn table_areas(&self) -> Vec<(&'static str, u64, u64)> {
        match self.table {
            PartitionTableType::None => vec![],
            PartitionTableType::Mbr => vec![("the MBR partition table", MBR_TABLE.0, MBR_TABLE.1)],
            PartitionTableType::Gpt => {
                let mut areas = vec![(
                    "the GPT (protective MBR, header and entries)",
                    MBR_TABLE.0,
                    GPT_PRIMARY_END,
                )];
                if let Some(size) = self.size {
                    let start = size.saturating_sub(GPT_BACKUP);
                    areas.push(("the backup GPT", start, size));
                }
                areas
            }
        }
    }
}

/// Why a RawBinary cannot be written where the config puts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("BlockSize is 0; dd needs a block size of at least 1 byte (e.g. 512)")]
    ZeroBlockSize,
    #[error("Seek {seek} × BlockSize {block_size} does not fit in 64 bits; give the offset the binary is meant for")]
    OffsetOverflow { seek: u64, block_size: u64 },
    #[error("the binary ({len} bytes at byte {offset}) ends past 2^64 bytes")]
    EndOverflow { offset: u64, len: u64 },
    #[error(
        "bytes {start}..{end} do not fit on the disk of {size} bytes; lower Seek or raise MaxSize"
    )]
    PastEnd { start: u64, end: u64, size: u64 },
    #[error("bytes {start}..{end} overlap {area} (bytes {area_start}..{area_end}); move the binary (Seek) to a gap outside the table")]
    OverlapsTable {
        start: u64,
        end: u64,
        area: &'static str,
        area_start: u64,
        area_end: u64,
    },
    #[error("bytes {start}..{end} overlap {partition} (bytes {part_start}..{part_end}); move the binary (Seek) to a gap between partitions")]
    OverlapsPartition {
        start: u64,
        end: u64,
        partition: String,
        part_start: u64,
        part_end: u64,
    },
}

/// The byte range `[start, end)` `rb` writes on `disk`, if it lies inside the disk and outside
/// the partition table and every partition. `len` is the binary's size; when it is not known
/// (validation of a file that is missing), only its first byte is checked.
pub fn placement(
    rb: &RawBinary,
    len: Option<u64>,
    disk: &DiskGeometry,
) -> Result<(u64, u64), PlacementError> {
    if rb.block_size == 0 {
        return Err(PlacementError::ZeroBlockSize);
    }
    let start = rb
        .seek
        .checked_mul(rb.block_size)
        .ok_or(PlacementError::OffsetOverflow {
            seek: rb.seek,
            block_size: rb.block_size,
        })?;
    let end = start
        .checked_add(len.unwrap_or(0))
        .ok_or(PlacementError::EndOverflow {
            offset: start,
            len: len.unwrap_or(0),
        })?;
    if len == Some(0) {
        return Ok((start, end)); // nothing is written
    }
    // The bytes to check: the whole binary, or its first byte when its size is unknown.
    let check_end = end.max(start + 1);
    if let Some(size) = disk.size {
        if check_end > size {
            return Err(PlacementError::PastEnd {
                start,
                end: check_end,
                size,
            });
        }
    }
    let overlaps = |a: u64, b: u64| start < b && a < check_end;
    for (area, a, b) in disk.table_areas() {
        if overlaps(a, b) {
            return Err(PlacementError::OverlapsTable {
                start,
                end: check_end,
                area,
                area_start: a,
                area_end: b,
            });
        }
    }
    for (name, a, b) in &disk.partitions {
        if overlaps(*a, *b) {
            return Err(PlacementError::OverlapsPartition {
                start,
                end: check_end,
                partition: name.clone(),
                part_start: *a,
                part_end: *b,
            });
        }
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rb(block_size: u64, seek: u64) -> RawBinary {
        RawBinary {
            bin_path: "b".into(),
            block_size,
            seek,
        }
    }

    fn gpt_disk() -> DiskGeometry {
        DiskGeometry {
            size: Some(16 * MIB),
            table: PartitionTableType::Gpt,
            partitions: vec![("Partitions[0] (root)".into(), 2 * MIB, 16 * MIB - 64 * 512)],
        }
    }

    #[test]
    fn a_binary_in_the_gap_after_the_gpt_is_placed() {
        assert_eq!(
            placement(&rb(512, 64), Some(4096), &gpt_disk()),
            Ok((32768, 36864))
        );
        // MBR boot code (bytes 0..440) may be replaced.
        let mbr = DiskGeometry {
            table: PartitionTableType::Mbr,
            ..gpt_disk()
        };
        assert!(placement(&rb(440, 0), Some(440), &mbr).is_ok());
        assert!(matches!(
            placement(&rb(440, 0), Some(441), &mbr),
            Err(PlacementError::OverlapsTable { .. })
        ));
    }

    #[test]
    fn a_wrapping_offset_is_an_error_not_a_write_at_the_start() {
        // 2^63 × 2 wraps to 0 in unchecked arithmetic: the protective MBR.
        assert_eq!(
            placement(&rb(2, 1 << 63), Some(1), &gpt_disk()),
            Err(PlacementError::OffsetOverflow {
                seek: 1 << 63,
                block_size: 2
            })
        );
        assert!(matches!(
            placement(&rb(1, u64::MAX - 1), Some(2), &gpt_disk()),
            Err(PlacementError::EndOverflow { .. })
        ));
        assert_eq!(
            placement(&rb(0, 1), Some(1), &gpt_disk()),
            Err(PlacementError::ZeroBlockSize)
        );
    }

    #[test]
    fn tables_partitions_and_the_disk_end_are_refused() {
        let d = gpt_disk();
        for (r, len) in [(rb(1024, 1), 10), (rb(512, 1), 1)] {
            assert!(
                matches!(
                    placement(&r, Some(len), &d),
                    Err(PlacementError::OverlapsTable { .. })
                ),
                "{r:?}"
            );
        }
        let backup = placement(&rb(512, 16 * 2048 - 10), Some(512), &d).unwrap_err();
        assert!(backup.to_string().contains("the backup GPT"), "{backup}");
        let part = placement(&rb(MIB, 1), Some(MIB + 1), &d).unwrap_err();
        assert!(part.to_string().contains("Partitions[0] (root)"), "{part}");
        let past = placement(&rb(MIB, 16), Some(1), &d).unwrap_err();
        assert!(matches!(past, PlacementError::PastEnd { .. }), "{past}");
    }
}
