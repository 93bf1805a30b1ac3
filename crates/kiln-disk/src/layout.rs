//! Where each partition goes and what type it gets, as upstream's parted calls place them.

use crate::{Error, MIB, SECTOR};
use kiln_config::{partition_type_guid, Disk, PartitionFlag, PartitionTableType};
use kiln_formats::ident::{uuid_bytes, Identity};

/// Sectors per MiB.
const MIB_SECTORS: u64 = MIB / SECTOR;
/// GPT: sectors the primary (and the backup) table takes (header + 128 entries).
const GPT_TABLE_SECTORS: u64 = 33;

/// What kind of partition table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Primary,
    /// The MBR container of logical partitions.
    Extended,
    Logical,
}

/// One partition of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPartition {
    /// The number the kernel and parted give it (`/dev/sda<number>`).
    pub number: u32,
    /// Index in the config's `Partitions` (`None` for the extended container).
    pub config_index: Option<usize>,
    pub kind: Kind,
    pub first_sector: u64,
    /// Inclusive.
    pub last_sector: u64,
    /// GPT partition name (PARTLABEL).
    pub name: String,
    /// GPT type GUID, RFC 4122 byte order.
    pub gpt_type: [u8; 16],
    /// MBR partition type byte.
    pub mbr_type: u8,
    /// MBR active flag.
    pub bootable: bool,
    /// GPT unique partition GUID, RFC 4122 byte order.
    pub unique_guid: [u8; 16],
}

impl PlannedPartition {
    pub fn offset(&self) -> u64 {
        self.first_sector * SECTOR
    }

    pub fn size(&self) -> u64 {
        (self.last_sector + 1 - self.first_sector) * SECTOR
    }
}

/// A disk's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub table: PartitionTableType,
    /// Bytes.
    pub size: u64,
    pub disk_guid: [u8; 16],
    pub mbr_signature: u32,
    pub partitions: Vec<PlannedPartition>,
}

/// A GUID as text (`c12a7328-f81f-11d2-ba4b-00a0c93ec93b`).
pub fn guid_string(g: &[u8; 16]) -> String {
    let h: Vec<String> = g.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

impl Layout {
    pub fn sectors(&self) -> u64 {
        self.size / SECTOR
    }

    /// The planned partition for `Partitions[index]` of the config.
    pub fn for_config(&self, index: usize) -> Option<&PlannedPartition> {
        self.partitions
            .iter()
            .find(|p| p.config_index == Some(index))
    }

    /// The PARTUUID the kernel gives a partition: its GPT unique GUID, or on MBR the disk
    /// signature and the partition number (`0a1b2c3d-05`).
    pub fn partuuid(&self, p: &PlannedPartition) -> String {
        match self.table {
            PartitionTableType::Gpt => guid_string(&p.unique_guid),
            _ => format!("{:08x}-{:02x}", self.mbr_signature, p.number),
        }
    }
}

const LINUX_DATA: [u8; 16] = uuid_bytes("0fc63daf-8483-4772-8e79-3d69d8477de4");
const MS_BASIC_DATA: [u8; 16] = uuid_bytes("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7");
const LINUX_SWAP: [u8; 16] = uuid_bytes("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f");
const ESP: [u8; 16] = uuid_bytes("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
/// The BIOS boot partition type, where GRUB's core image goes on GPT disks.
pub const BIOS_BOOT: [u8; 16] = uuid_bytes("21686148-6449-6e6f-744e-656564454649");

fn parse_guid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) || s.len() != 36 {
        return None;
    }
    let mut g = [0u8; 16];
    for (i, b) in g.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(g)
}

/// parted's start alignment as upstream drives it: a sector number compared with the physical
/// block size in bytes (512 for image files) — whole-MiB starts stay put, others round up.
fn align_start(start: u64) -> u64 {
    const P: u64 = 512;
    if start < P {
        if start % MIB_SECTORS == 0 {
            start
        } else {
            0
        }
    } else if start % P == 0 {
        start
    } else {
        (start / P + 1) * P
    }
}

/// Plans the partitions of `disk` (MaxSize MiB), with GUIDs and the MBR signature from
/// `identity`.
pub fn plan(disk: &Disk, identity: &Identity) -> Result<Layout, Error> {
    let size = disk
        .max_size
        .checked_mul(MIB)
        .ok_or_else(|| Error::Disk(format!("MaxSize {} MiB is too large", disk.max_size)))?;
    let sectors = size / SECTOR;
    let table = disk.partition_table_type;
    if table == PartitionTableType::None && !disk.partitions.is_empty() {
        return Err(Error::Disk(
            "partitions need a PartitionTableType (gpt or mbr)".into(),
        ));
    }
    let gpt = table == PartitionTableType::Gpt;
    let (first_usable, last_usable) = if gpt {
        (
            2 + GPT_TABLE_SECTORS - 1,
            sectors.saturating_sub(GPT_TABLE_SECTORS + 1),
        )
    } else {
        (1, sectors.saturating_sub(1))
    };
    let logical_layout = !gpt && disk.partitions.len() > 4;
    let mut sig = [0u8; 4];
    sig.copy_from_slice(&identity.uuid("mbr.signature")[..4]);
    let mut layout = Layout {
        table,
        size,
        disk_guid: identity.uuid("gpt.disk"),
        mbr_signature: u32::from_le_bytes(sig),
        partitions: Vec::new(),
    };
    let end_of = |end_mib: u64, logical: bool| -> u64 {
        if end_mib == 0 {
            last_usable
        } else {
            end_mib * MIB_SECTORS - 1 + u64::from(logical)
        }
    };
    for (i, p) in disk.partitions.iter().enumerate() {
        let fail = |why: String| Error::Partition {
            index: i,
            id: p.id.clone(),
            why,
        };
        let logical = logical_layout && i >= 3;
        if logical_layout && i == 3 {
            let last = disk.partitions.last().expect("more than four partitions");
            let first_sector = align_start(p.start * MIB_SECTORS);
            layout.partitions.push(PlannedPartition {
                number: 4,
                config_index: None,
                kind: Kind::Extended,
                first_sector,
                last_sector: end_of(last.end, false),
                name: String::new(),
                gpt_type: LINUX_DATA,
                mbr_type: 0x0f,
                bootable: false,
                unique_guid: identity.uuid("partition.extended"),
            });
        }
        let number = if logical { i as u32 + 2 } else { i as u32 + 1 };
        let first_sector = align_start(p.start * MIB_SECTORS + u64::from(logical));
        let last_sector = end_of(p.end, logical);
        if first_sector < first_usable {
            return Err(fail(format!(
                "it starts at {} MiB, inside the partition table; start at 1 MiB or later",
                p.start
            )));
        }
        if last_sector > last_usable || last_sector < first_sector {
            return Err(fail(format!(
                "it ends at {} MiB, outside the {} MiB disk (MaxSize) or before it starts",
                p.end, disk.max_size
            )));
        }
        // Type: from the filesystem, then Type/TypeUUID, then GUID-changing flags (parted).
        let fs = p.fs_type.as_str();
        let mut gpt_type = match fs {
            "fat16" | "fat32" | "vfat" => MS_BASIC_DATA,
            "linux-swap" => LINUX_SWAP,
            _ => LINUX_DATA,
        };
        if !p.ty.is_empty() {
            let g = partition_type_guid(&p.ty)
                .ok_or_else(|| fail(format!("unknown partition Type {}", p.ty)))?;
            gpt_type = uuid_bytes(g);
        } else if !p.type_uuid.is_empty() {
            gpt_type = parse_guid(&p.type_uuid)
                .ok_or_else(|| fail(format!("TypeUUID {} is not a GUID", p.type_uuid)))?;
        }
        let flag = |f: PartitionFlag| p.flags.contains(&f);
        if flag(PartitionFlag::Esp) || (gpt && flag(PartitionFlag::Boot)) {
            gpt_type = ESP;
        }
        if flag(PartitionFlag::Grub)
            || flag(PartitionFlag::BiosGrub)
            || flag(PartitionFlag::BiosGrubDash)
        {
            gpt_type = BIOS_BOOT;
        }
        let mut mbr_type = match fs {
            "fat16" => 0x0e,
            "fat32" | "vfat" => 0x0c,
            "linux-swap" => 0x82,
            _ => 0x83,
        };
        if flag(PartitionFlag::Esp) {
            mbr_type = 0xef;
        }
        layout.partitions.push(PlannedPartition {
            number,
            config_index: Some(i),
            kind: if logical {
                Kind::Logical
            } else {
                Kind::Primary
            },
            first_sector,
            last_sector,
            name: p.name.clone(),
            gpt_type,
            mbr_type,
            bootable: !gpt && flag(PartitionFlag::Boot),
            unique_guid: identity.uuid(&format!("partition.{number}")),
        });
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_follows_upstream() {
        assert_eq!(align_start(2048), 2048);
        assert_eq!(align_start(51201), 51712);
        assert_eq!(align_start(100), 0);
        assert_eq!(align_start(512), 512);
    }

    #[test]
    fn guid_text() {
        assert_eq!(guid_string(&ESP), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        assert_eq!(
            parse_guid("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
            Some(ESP)
        );
        assert_eq!(parse_guid("nope"), None);
    }
}
