//! Reading a disk's partition table back (GPT, or MBR with its logical partitions), for
//! `kiln inspect`: what kiln (or anything else) wrote, as a list of partitions.

use std::io;

/// One partition as the table describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The partition's number as Linux names it (`sda3`: 3; MBR logical partitions from 5).
    pub number: u32,
    /// Byte offset and length.
    pub start: u64,
    pub size: u64,
    /// A readable type: `EFI system`, `BIOS boot`, `Linux filesystem`, `Linux swap`, … or the
    /// raw GUID / MBR type byte.
    pub kind: String,
    /// The GPT partition name (PARTLABEL); empty on MBR.
    pub name: String,
}

/// The table and its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// `gpt` or `mbr`.
    pub scheme: &'static str,
    pub partitions: Vec<Partition>,
}

const GPT_TYPES: [(&str, &str); 6] = [
    ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI system"),
    ("21686148-6449-6E6F-744E-656564454649", "BIOS boot"),
    ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem"),
    ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"),
    ("CA7D7CCB-63ED-4C53-861C-1742536059CC", "Linux LUKS"),
    ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"),
];

fn guid_text(b: &[u8]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{}",
        u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
        u16::from_le_bytes(b[4..6].try_into().expect("2 bytes")),
        u16::from_le_bytes(b[6..8].try_into().expect("2 bytes")),
        b[8],
        b[9],
        b[10..16]
            .iter()
            .map(|x| format!("{x:02X}"))
            .collect::<String>()
    )
}

fn mbr_kind(t: u8) -> String {
    match t {
        0x83 => "Linux".into(),
        0x82 => "Linux swap".into(),
        0xef => "EFI system".into(),
        0x05 | 0x0f | 0x85 => "Extended".into(),
        0x0b | 0x0c => "FAT32".into(),
        0x06 | 0x0e => "FAT16".into(),
        t => format!("type 0x{t:02x}"),
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Reads the table of a disk of `len` bytes through `read_at(offset, buf)`; `None` when the
/// disk has no partition table.
pub fn table(
    len: u64,
    read_at: &mut dyn FnMut(u64, &mut [u8]) -> io::Result<()>,
) -> io::Result<Option<Table>> {
    if len < 512 {
        return Ok(None);
    }
    let mut mbr = [0u8; 512];
    read_at(0, &mut mbr)?;
    if mbr[510..] != [0x55, 0xaa] {
        return Ok(None);
    }
    let entry = |i: usize| {
        let e = &mbr[446 + 16 * i..462 + 16 * i];
        (
            e[4],
            u64::from(u32::from_le_bytes(e[8..12].try_into().expect("4 bytes"))),
            u64::from(u32::from_le_bytes(e[12..16].try_into().expect("4 bytes"))),
        )
    };
    if (0..4).any(|i| entry(i).0 == 0xee) {
        return gpt(len, read_at).map(Some);
    }
    let mut partitions = Vec::new();
    for i in 0..4 {
        let (t, lba, sectors) = entry(i);
        if t == 0 || sectors == 0 {
            continue;
        }
        partitions.push(Partition {
            number: i as u32 + 1,
            start: lba * 512,
            size: sectors * 512,
            kind: mbr_kind(t),
            name: String::new(),
        });
        if matches!(t, 0x05 | 0x0f | 0x85) {
            logical(lba, len, read_at, &mut partitions)?;
        }
    }
    Ok(Some(Table {
        scheme: "mbr",
        partitions,
    }))
}

/// The logical partitions of the extended partition at `ext_lba`: a chain of EBRs.
fn logical(
    ext_lba: u64,
    len: u64,
    read_at: &mut dyn FnMut(u64, &mut [u8]) -> io::Result<()>,
    out: &mut Vec<Partition>,
) -> io::Result<()> {
    let mut ebr_lba = ext_lba;
    for number in 5..5 + 128 {
        if ebr_lba * 512 + 512 > len {
            return Err(bad(
                "an extended partition's boot record lies past the disk's end",
            ));
        }
        let mut ebr = [0u8; 512];
        read_at(ebr_lba * 512, &mut ebr)?;
        if ebr[510..] != [0x55, 0xaa] {
            return Err(bad("an extended partition's boot record has no signature"));
        }
        let field = |o: usize| u64::from(u32::from_le_bytes(ebr[o..o + 4].try_into().expect("4")));
        let (t, rel, sectors) = (ebr[446 + 4], field(446 + 8), field(446 + 12));
        if t != 0 && sectors != 0 {
            out.push(Partition {
                number,
                start: (ebr_lba + rel) * 512,
                size: sectors * 512,
                kind: mbr_kind(t),
                name: String::new(),
            });
        }
        let next = field(462 + 8);
        if ebr[462 + 4] == 0 || next == 0 {
            return Ok(());
        }
        ebr_lba = ext_lba + next;
    }
    Err(bad(
        "more than 128 logical partitions (a loop in the extended partition?)",
    ))
}

fn gpt(len: u64, read_at: &mut dyn FnMut(u64, &mut [u8]) -> io::Result<()>) -> io::Result<Table> {
    let mut h = [0u8; 92];
    read_at(512, &mut h)?;
    if &h[..8] != b"EFI PART" {
        return Err(bad("a protective MBR without a GPT header"));
    }
    let entries = u64::from_le_bytes(h[72..80].try_into().expect("8 bytes"));
    let count = u32::from_le_bytes(h[80..84].try_into().expect("4 bytes")).min(1024) as u64;
    let size = u32::from_le_bytes(h[84..88].try_into().expect("4 bytes")) as u64;
    if !(128..=4096).contains(&size) {
        return Err(bad("a GPT entry size outside 128..4096"));
    }
    let bytes = count * size;
    let start = entries.checked_mul(512).filter(|s| s + bytes <= len);
    let Some(start) = start else {
        return Err(bad("the GPT entries lie past the disk's end"));
    };
    let mut array = vec![0u8; bytes as usize];
    read_at(start, &mut array)?;
    let mut partitions = Vec::new();
    for (i, e) in array.chunks(size as usize).enumerate() {
        if e[..16].iter().all(|b| *b == 0) {
            continue;
        }
        let guid = guid_text(&e[..16]);
        let kind = GPT_TYPES
            .iter()
            .find(|(g, _)| *g == guid)
            .map_or(guid.clone(), |(_, k)| (*k).to_string());
        let first = u64::from_le_bytes(e[32..40].try_into().expect("8 bytes"));
        let last = u64::from_le_bytes(e[40..48].try_into().expect("8 bytes"));
        let units: Vec<u16> = e[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        partitions.push(Partition {
            number: i as u32 + 1,
            start: first.saturating_mul(512),
            size: last
                .saturating_sub(first)
                .saturating_add(1)
                .saturating_mul(512),
            kind,
            name: String::from_utf16_lossy(&units),
        });
    }
    Ok(Table {
        scheme: "gpt",
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_table_and_damaged_tables_are_not_panics() {
        let mut zeros = |_: u64, b: &mut [u8]| {
            b.fill(0);
            Ok(())
        };
        assert_eq!(table(1 << 20, &mut zeros).unwrap(), None);
        // A protective MBR whose GPT entries point past the disk.
        let mut disk = vec![0u8; 4096];
        disk[446 + 4] = 0xee;
        disk[510] = 0x55;
        disk[511] = 0xaa;
        disk[512..520].copy_from_slice(b"EFI PART");
        disk[512 + 72..512 + 80].copy_from_slice(&u64::MAX.to_le_bytes());
        disk[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        disk[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        let len = disk.len() as u64;
        let mut read = |o: u64, b: &mut [u8]| {
            let o = o as usize;
            b.copy_from_slice(&disk[o..o + b.len()]);
            Ok(())
        };
        assert!(table(len, &mut read).is_err());
    }
}
