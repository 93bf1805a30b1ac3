//! Reading back a volume kiln wrote, as the booted system opens it (cryptsetup, then LVM): the
//! LUKS1 header parsed from the partition, a key slot opened with a secret, and the logical
//! volume decrypted into a file. The live installer checks its encrypted target this way —
//! from the bytes on the disk and the password, not from what it meant to write.

use crate::error::{Error, Result};
use crate::luks1::{self, Luks1Header, PHDR_LEN};
use crate::volume::Layout;
use crate::xts::SECTOR;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Bytes read and decrypted at a time.
const CHUNK: usize = 4 << 20;
/// Runs of zeros this long (aligned) are left as holes in the output.
const HOLE: usize = 4096;

/// What [`extract_logical_volume`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The key slot the secret opened (0: the password, 1: the key file, for kiln's volumes).
    pub slot: usize,
    /// Bytes of the logical volume written to the output.
    pub lv_size: u64,
}

/// Opens the LUKS1 + LVM2 volume of kiln's layout (one physical volume over the whole payload,
/// `cryptVG/root` over all of its extents) that fills the `size` bytes at `offset` of
/// `device`: the header is parsed and a key slot opened with `secret`, the LVM label checked,
/// and the logical volume decrypted into `out` (from its byte 0; blocks of zeros are left as
/// holes, so a mostly empty filesystem takes little room). Reads every byte of the volume.
pub fn extract_logical_volume(
    device: &File,
    offset: u64,
    size: u64,
    secret: &[u8],
    out: &File,
) -> Result<Opened> {
    let read = |at: u64, buf: &mut [u8]| {
        device
            .read_exact_at(buf, offset + at)
            .map_err(|source| Error::Read {
                offset: offset + at,
                source,
            })
    };
    let mut phdr = vec![0u8; PHDR_LEN];
    read(0, &mut phdr)?;
    let header = Luks1Header::parse(&phdr)?;
    let payload = header.payload_offset_bytes();
    if payload >= size {
        return Err(Error::BadHeader(format!(
            "the payload starts at byte {payload}, past the partition's {size} bytes"
        )));
    }
    let mut area = vec![0u8; payload as usize];
    read(0, &mut area)?;
    let (slot, key) = luks1::open(&area, secret)?;
    let cipher = crate::xts::SectorCipher::new(&key)
        .ok_or_else(|| Error::BadHeader(format!("a master key of {} bytes", key.len())))?;
    let layout = Layout::new(size, key.len())?;
    if layout.payload_offset != payload {
        return Err(Error::BadHeader(format!(
            "payload at byte {payload}, kiln's layout puts it at {}",
            layout.payload_offset
        )));
    }
    // pvcreate's label: "LABELONE" in the payload's second sector.
    let mut label = vec![0u8; SECTOR];
    read(payload + SECTOR as u64, &mut label)?;
    cipher.decrypt(&mut label, 1);
    if &label[..8] != b"LABELONE" || &label[24..32] != b"LVM2 001" {
        return Err(Error::BadHeader(
            "the decrypted volume holds no LVM2 physical volume label".into(),
        ));
    }
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    while pos < layout.lv_size {
        let n = (layout.lv_size - pos).min(CHUNK as u64) as usize;
        let plain = layout.pe_start + pos;
        read(payload + plain, &mut buf[..n])?;
        decrypt(&cipher, &mut buf[..n], plain / SECTOR as u64);
        for (i, block) in buf[..n].chunks(HOLE).enumerate() {
            if block.iter().any(|&b| b != 0) {
                let at = pos + (i * HOLE) as u64;
                out.write_all_at(block, at)
                    .map_err(|source| Error::Write { offset: at, source })?;
            }
        }
        pos += n as u64;
    }
    out.set_len(layout.lv_size).map_err(|source| Error::Write {
        offset: layout.lv_size,
        source,
    })?;
    Ok(Opened {
        slot,
        lv_size: layout.lv_size,
    })
}

/// Decrypts on all cores, a task per 256 KiB.
fn decrypt(cipher: &crate::xts::SectorCipher, buf: &mut [u8], first_sector: u64) {
    use rayon::prelude::*;
    const TASK: usize = 256 << 10;
    let per_task = (TASK / SECTOR) as u64;
    buf.par_chunks_mut(TASK)
        .enumerate()
        .for_each(|(i, part)| cipher.decrypt(part, first_sector + i as u64 * per_task));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{seeded_rng, EncryptedVolume, LuksOptions, PbkdfPolicy, VolumeOptions};
    use std::io::Read;

    fn volume(size: u64) -> EncryptedVolume {
        let opts = VolumeOptions {
            luks: LuksOptions {
                pbkdf: PbkdfPolicy::Fixed {
                    slot_iterations: 1000,
                    digest_iterations: 1000,
                },
                ..LuksOptions::default()
            },
            password: b"pw".to_vec(),
            keyfile: Some(vec![9u8; 64]),
            creation_host: "h".into(),
            system: "Linux h".into(),
            creation_time: 1,
        };
        EncryptedVolume::new(size, &opts, &mut seeded_rng(b"open")).unwrap()
    }

    #[test]
    fn what_was_written_is_read_back_with_either_secret_and_refused_with_another() {
        let size = 16u64 << 20;
        let vol = volume(size);
        let lv = vol.layout().lv_size;
        // A "filesystem" with data at its start, a hole, and data at its end.
        let mut image = vec![0u8; lv as usize];
        image[..5000].fill(0xa5);
        image[lv as usize - 100..].copy_from_slice(&[7u8; 100]);
        let dir = tempfile::tempdir().unwrap();
        let disk = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("disk"))
            .unwrap();
        disk.set_len((1 << 20) + size).unwrap();
        vol.write_at(&disk, 1 << 20, &mut &image[..]).unwrap();
        for (secret, slot) in [(&b"pw"[..], 0), (&[9u8; 64][..], 1)] {
            let path = dir.path().join(format!("lv{slot}"));
            let out = File::create_new(&path).unwrap();
            let opened = extract_logical_volume(&disk, 1 << 20, size, secret, &out).unwrap();
            assert_eq!(opened, Opened { slot, lv_size: lv });
            let mut back = Vec::new();
            File::open(&path).unwrap().read_to_end(&mut back).unwrap();
            assert!(back == image, "slot {slot}: the volume read back differs");
            // The zeros between are holes.
            let blocks = std::os::unix::fs::MetadataExt::blocks(&out.metadata().unwrap());
            assert!(blocks * 512 < lv / 2, "{blocks} blocks allocated");
        }
        let out = File::create_new(dir.path().join("wrong")).unwrap();
        let e = extract_logical_volume(&disk, 1 << 20, size, b"other", &out).unwrap_err();
        assert!(matches!(e, Error::WrongPassphrase), "{e}");
        // Not LUKS at all: the header is refused, not read as one.
        let e = extract_logical_volume(&disk, 0, size, b"pw", &out).unwrap_err();
        assert!(matches!(e, Error::BadHeader(_)), "{e}");
    }
}
