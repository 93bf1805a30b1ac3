//! Which firmware a disk is made to boot with, read from its partition table: a GPT with an EFI
//! system partition, or an MBR with one (type 0xEF), boots with UEFI; a GPT with only a BIOS
//! boot partition, or any other MBR disk, boots with legacy BIOS.

/// The firmware a disk's partition table is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Uefi,
    Bios,
}

/// What the table says, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub firmware: Firmware,
    pub why: &'static str,
}

/// The EFI system partition's type GUID as GPT stores it (mixed-endian).
const ESP: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];
/// The BIOS boot partition's type GUID (`Hah!IdontNeedEFI`).
const BIOS_BOOT: [u8; 16] = *b"Hah!IdontNeedEFI";

/// Reads the table from `head` (the disk's first bytes: at least 34 sectors for a GPT with the
/// usual entry array); `None` when there is no partition table.
pub fn firmware(head: &[u8]) -> Option<Detected> {
    let mbr = head.get(..512)?;
    if mbr[510..] != [0x55, 0xaa] {
        return None;
    }
    let types: Vec<u8> = (0..4).map(|i| mbr[446 + 16 * i + 4]).collect();
    if types.contains(&0xee) {
        return Some(gpt(head).unwrap_or(Detected {
            firmware: Firmware::Uefi,
            why: "a GPT whose entries could not be read",
        }));
    }
    Some(if types.contains(&0xef) {
        Detected {
            firmware: Firmware::Uefi,
            why: "an MBR with an EFI system partition",
        }
    } else {
        Detected {
            firmware: Firmware::Bios,
            why: "an MBR without an EFI system partition",
        }
    })
}

fn gpt(head: &[u8]) -> Option<Detected> {
    let header = head.get(512..1024)?;
    if &header[..8] != b"EFI PART" {
        return None;
    }
    let u32_at = |o: usize| u32::from_le_bytes(header[o..o + 4].try_into().expect("4 bytes"));
    let entries_lba = u64::from_le_bytes(header[72..80].try_into().expect("8 bytes"));
    let (count, size) = (u32_at(80) as usize, u32_at(84) as usize);
    let start = usize::try_from(entries_lba.checked_mul(512)?).ok()?;
    if size < 16 {
        return None;
    }
    let mut bios_boot = false;
    for i in 0..count.min(1024) {
        let Some(entry) = head.get(start + i * size..start + i * size + 16) else {
            break;
        };
        if entry == ESP {
            return Some(Detected {
                firmware: Firmware::Uefi,
                why: "a GPT with an EFI system partition",
            });
        }
        bios_boot |= entry == BIOS_BOOT;
    }
    Some(if bios_boot {
        Detected {
            firmware: Firmware::Bios,
            why: "a GPT with a BIOS boot partition and no EFI system partition",
        }
    } else {
        Detected {
            firmware: Firmware::Uefi,
            why: "a GPT without a BIOS boot partition",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbr(types: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; 64 * 512];
        for (i, t) in types.iter().enumerate() {
            d[446 + 16 * i + 4] = *t;
        }
        d[510] = 0x55;
        d[511] = 0xaa;
        d
    }

    fn gpt_with(types: &[[u8; 16]]) -> Vec<u8> {
        let mut d = mbr(&[0xee]);
        d[512..520].copy_from_slice(b"EFI PART");
        d[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        d[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        d[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            d[1024 + 128 * i..1024 + 128 * i + 16].copy_from_slice(t);
        }
        d
    }

    #[test]
    fn the_table_names_the_firmware() {
        let linux = [0xafu8; 16];
        assert_eq!(
            firmware(&gpt_with(&[ESP, linux])).unwrap().firmware,
            Firmware::Uefi
        );
        assert_eq!(
            firmware(&gpt_with(&[BIOS_BOOT, linux])).unwrap().firmware,
            Firmware::Bios
        );
        assert_eq!(
            firmware(&gpt_with(&[BIOS_BOOT, ESP])).unwrap().firmware,
            Firmware::Uefi
        );
        assert_eq!(
            firmware(&mbr(&[0x83, 0x82])).unwrap().firmware,
            Firmware::Bios
        );
        assert_eq!(
            firmware(&mbr(&[0xef, 0x83])).unwrap().firmware,
            Firmware::Uefi
        );
        assert_eq!(firmware(&[0u8; 4096]), None);
        assert_eq!(firmware(&[0u8; 100]), None);
        // A header pointing its entries anywhere is read safely.
        let mut odd = gpt_with(&[ESP]);
        odd[512 + 72..512 + 80].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(firmware(&odd).is_some());
    }
}
