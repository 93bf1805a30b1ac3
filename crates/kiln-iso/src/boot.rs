//! El Torito (boot record, boot catalog, boot info table) and the hybrid disk view (protective
//! MBR with optional boot code, GPT with a data partition and an EFI System Partition).

use crate::iso::BLOCK;
use crate::{Hybrid, Identity};
use kiln_config::PartitionTableType;
use kiln_disk::{Kind, Layout, PlannedPartition, SECTOR};
use kiln_formats::ident::uuid_bytes;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

const PLATFORM_X86: u8 = 0;
const PLATFORM_EFI: u8 = 0xEF;

/// The boot record volume descriptor pointing at the catalog.
pub(crate) fn record_descriptor(catalog_lba: u32) -> Vec<u8> {
    let mut v = vec![0u8; BLOCK as usize];
    v[1..6].copy_from_slice(b"CD001");
    v[6] = 1;
    v[7..30].copy_from_slice(b"EL TORITO SPECIFICATION");
    v[71..75].copy_from_slice(&catalog_lba.to_le_bytes());
    v
}

/// A bootable no-emulation entry.
fn entry(lba: u32, sectors: u16) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[0] = 0x88;
    e[6..8].copy_from_slice(&sectors.to_le_bytes());
    e[8..12].copy_from_slice(&lba.to_le_bytes());
    e
}

/// The boot catalog: validation entry, the default entry (BIOS when there is one), then a final
/// section of platform 0xEF with the UEFI entry. `bios` and `efi` are (block, 512-byte
/// sectors).
pub(crate) fn catalog(bios: Option<(u32, u16)>, efi: Option<(u32, u16)>) -> Vec<u8> {
    let mut c = vec![0u8; BLOCK as usize];
    c[0] = 1;
    c[1] = if bios.is_some() {
        PLATFORM_X86
    } else {
        PLATFORM_EFI
    };
    c[30] = 0x55;
    c[31] = 0xAA;
    let sum = c[..32].chunks(2).fold(0u16, |s, w| {
        s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    c[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    match (bios, efi) {
        (Some((lba, n)), efi) => {
            c[32..64].copy_from_slice(&entry(lba, n));
            if let Some((lba, n)) = efi {
                c[64] = 0x91;
                c[65] = PLATFORM_EFI;
                c[66..68].copy_from_slice(&1u16.to_le_bytes());
                c[96..128].copy_from_slice(&entry(lba, n));
            }
        }
        (None, Some((lba, n))) => c[32..64].copy_from_slice(&entry(lba, n)),
        (None, None) => {}
    }
    c
}

/// `-boot-info-table`: bytes 8..64 of the boot image get the primary volume descriptor's
/// block (16), the image's block and length, and the 32-bit sum of its words from byte 64.
pub(crate) fn patch_boot_info_table(image: &mut [u8], lba: u32) {
    let sum = image[64..].chunks(4).fold(0u32, |s, w| {
        let mut word = [0u8; 4];
        word[..w.len()].copy_from_slice(w);
        s.wrapping_add(u32::from_le_bytes(word))
    });
    let len = image.len() as u32;
    image[8..64].fill(0);
    image[8..12].copy_from_slice(&16u32.to_le_bytes());
    image[12..16].copy_from_slice(&lba.to_le_bytes());
    image[16..20].copy_from_slice(&len.to_le_bytes());
    image[20..24].copy_from_slice(&sum.to_le_bytes());
}

/// xorriso `--grub2-boot-info`: GRUB's core image (after the 2048-byte cdboot.img) starts with
/// diskboot.img, whose block list at byte 500 gets the 512-byte sector of the rest: the
/// image's sector + 5.
pub(crate) fn patch_grub2_boot_info(image: &mut [u8], lba: u32) {
    let sector = u64::from(lba) * 4 + 5;
    image[2548..2556].copy_from_slice(&sector.to_le_bytes());
}

const BASIC_DATA: [u8; 16] = uuid_bytes("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7");
const ESP: [u8; 16] = uuid_bytes("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");

fn partition(
    number: u32,
    first: u64,
    last: u64,
    name: &str,
    ty: [u8; 16],
    id: &Identity,
) -> PlannedPartition {
    PlannedPartition {
        number,
        config_index: None,
        kind: Kind::Primary,
        first_sector: first,
        last_sector: last,
        name: name.to_string(),
        gpt_type: ty,
        mbr_type: 0,
        bootable: false,
        unique_guid: id.uuid(&format!("iso.gpt.partition{number}")),
    }
}

/// Writes the protective MBR (with the caller's boot code and, for GRUB's boot_hybrid.img,
/// the BIOS image's 512-byte sector + 4 at byte 432, for syslinux's isohdpfx.bin the sector) and the GPT: partition 1 (basic data)
/// from byte 32 KiB to the EFI image (or the volume's end), partition 2 (EFI System) over the
/// EFI image.
pub(crate) fn write_hybrid(
    file: &File,
    hybrid: &Hybrid,
    id: &Identity,
    total: u64,
    volume_end: u64,
    efi: Option<(u64, u64)>,
    bios_lba: Option<u32>,
) -> io::Result<()> {
    let first = 16 * BLOCK / SECTOR;
    let data_end = efi.map_or(volume_end, |(start, _)| start) / SECTOR;
    let mut partitions = vec![partition(1, first, data_end - 1, "ISO9660", BASIC_DATA, id)];
    if let Some((start, len)) = efi {
        let (s, n) = (start / SECTOR, len.div_ceil(SECTOR));
        partitions.push(partition(2, s, s + n - 1, "EFI System", ESP, id));
    }
    let layout = Layout {
        table: PartitionTableType::Gpt,
        size: total,
        disk_guid: id.uuid("iso.gpt.disk"),
        mbr_signature: 0,
        partitions,
    };
    kiln_disk::gpt::write(&layout, file)?;
    let mut mbr = [0u8; SECTOR as usize];
    file.read_exact_at(&mut mbr, 0)?;
    if let Some(code) = &hybrid.mbr_code {
        let n = code.len().min(440);
        mbr[..n].copy_from_slice(&code[..n]);
    }
    if let (true, Some(lba)) = (hybrid.grub2_mbr, bios_lba) {
        mbr[432..440].copy_from_slice(&(u64::from(lba) * 4 + 4).to_le_bytes());
    }
    if let (true, Some(lba)) = (hybrid.isolinux_mbr, bios_lba) {
        mbr[432..440].copy_from_slice(&(u64::from(lba) * 4).to_le_bytes());
    }
    // With BIOS boot code, the protective entry is marked active (parted's pmbr_boot): some
    // BIOSes boot a USB disk only with an active partition; UEFI ignores the flag.
    if hybrid.mbr_code.is_some() && bios_lba.is_some() {
        mbr[446] = 0x80;
    }
    let sig = id.uuid("iso.mbr.signature");
    mbr[440..444].copy_from_slice(&sig[..4]);
    file.write_all_at(&mbr, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_checksum_and_entries() {
        let c = catalog(Some((30, 4)), Some((40, 5760)));
        let sum = c[..32].chunks(2).fold(0u16, |s, w| {
            s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
        });
        assert_eq!(sum, 0);
        assert_eq!(&c[32..34], &[0x88, 0]);
        assert_eq!(u16::from_le_bytes([c[38], c[39]]), 4);
        assert_eq!(u32::from_le_bytes([c[40], c[41], c[42], c[43]]), 30);
        assert_eq!((c[64], c[65]), (0x91, 0xEF));
        assert_eq!(u16::from_le_bytes([c[102], c[103]]), 5760);
    }

    #[test]
    fn boot_info_table() {
        let mut image: Vec<u8> = (0..200u8).collect();
        patch_boot_info_table(&mut image, 33);
        assert_eq!(&image[8..20], &[16, 0, 0, 0, 33, 0, 0, 0, 200, 0, 0, 0]);
        let sum = (64..200u32)
            .collect::<Vec<_>>()
            .chunks(4)
            .fold(0u32, |s, w| {
                s.wrapping_add(w[0] | w[1] << 8 | w[2] << 16 | w[3] << 24)
            });
        assert_eq!(&image[20..24], &sum.to_le_bytes());
    }
}
