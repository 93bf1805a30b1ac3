//! # kiln-disk
//!
//! Partition layouts and partition tables, written straight into a disk image file (no loop
//! device, no parted). The layout follows what upstream's imager asks parted for (SPEC §3.2):
//! partitions at `Start`/`End` MiB (End 0 = to the end of the disk), MBR disks with more than four
//! partitions get three primaries, an extended partition and logical ones (numbered as parted
//! numbers them, starts shifted and aligned as upstream computes them), and type GUIDs or MBR
//! type bytes as parted derives them from the filesystem, `Type`/`TypeUUID` and the flags.

pub mod detect;
pub mod gpt;
pub mod layout;
pub mod mbr;
pub mod read;

pub use layout::{plan, Kind, Layout, PlannedPartition};

/// Bytes per sector of the disk images kiln writes.
pub const SECTOR: u64 = 512;
pub const MIB: u64 = 1 << 20;

/// Why a layout cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("partition {index} ({id}): {why}")]
    Partition {
        index: usize,
        id: String,
        why: String,
    },
    #[error("{0}")]
    Disk(String),
}

/// Writes `layout`'s partition table into the disk image `file` (already `layout.size` long).
pub fn write_table(layout: &Layout, file: &std::fs::File) -> std::io::Result<()> {
    match layout.table {
        kiln_config::PartitionTableType::Gpt => gpt::write(layout, file),
        kiln_config::PartitionTableType::Mbr => mbr::write(layout, file),
        kiln_config::PartitionTableType::None => Ok(()),
    }
}
