//! The encrypted root volume as a whole: the partition's layout, and the stream that writes it.

use crate::error::{Error, Result};
use crate::luks1::{self, Luks1, LuksOptions};
use crate::lvm::{self, LvmOptions, PhysicalVolume, PvGeometry};
use crate::xts::{SectorCipher, SECTOR};
use rand_core::RngCore;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::mpsc;

/// Bytes encrypted and written at a time.
const CHUNK: usize = 4 << 20;
/// Bytes one rayon task encrypts.
const TASK: usize = 256 << 10;

/// Where everything lies in the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub partition_size: u64,
    /// LUKS payload offset in bytes (2 MiB for aes-xts with a 32- or 64-byte key).
    pub payload_offset: u64,
    /// The decrypted device (`/dev/mapper/luks-<uuid>`): the partition after the payload offset.
    pub device_size: u64,
    /// The LV's first byte on the decrypted device (pvcreate's 1 MiB).
    pub pe_start: u64,
    /// All extents of the PV, the size of `/dev/mapper/cryptVG-root`.
    pub lv_size: u64,
}

impl Layout {
    /// For a partition of `partition_size` bytes and a master key of `key_bytes`.
    pub fn new(partition_size: u64, key_bytes: usize) -> Result<Layout> {
        if partition_size % SECTOR as u64 != 0 {
            return Err(Error::Unaligned {
                what: "partition size",
                value: partition_size,
            });
        }
        let (_, payload_sectors) = luks1::layout(key_bytes as u64);
        let payload_offset = u64::from(payload_sectors) * SECTOR as u64;
        let min = payload_offset + lvm::PE_START + lvm::EXTENT_SIZE;
        if partition_size < min {
            return Err(Error::PartitionTooSmall {
                size: partition_size,
                min,
            });
        }
        let device_size = partition_size - payload_offset;
        let geometry = PvGeometry::new(device_size)?;
        Ok(Layout {
            partition_size,
            payload_offset,
            device_size,
            pe_start: lvm::PE_START,
            lv_size: geometry.lv_size(),
        })
    }
}

/// The size of `/dev/mapper/cryptVG-root` in a partition of `partition_size` bytes with
/// upstream's settings (LUKS1 aes-xts-plain64, 256-bit key; LVM extents of 4 MiB from 1 MiB):
/// make the filesystem exactly this large. 0 when the partition is too small to hold one extent
/// (or is not a whole number of sectors); [`Layout::new`] says why.
pub fn lv_size(partition_size: u64) -> u64 {
    Layout::new(partition_size, 32).map_or(0, |l| l.lv_size)
}

/// What [`EncryptedVolume::new`] needs besides the partition size.
#[derive(Debug, Clone)]
pub struct VolumeOptions {
    pub luks: LuksOptions,
    /// Key slot 0.
    pub password: Vec<u8>,
    /// Key slot 1: the key file's bytes (upstream: 2048 random bytes, `/etc/default.keyfile`).
    pub keyfile: Option<Vec<u8>>,
    /// `creation_host` of the LVM metadata.
    pub creation_host: String,
    /// The uname comment after it (sysname nodename release version machine).
    pub system: String,
    /// `creation_time` of the LVM metadata, seconds since 1970.
    pub creation_time: u64,
}

/// A formatted volume ready to be written: LUKS header and key slots, LVM metadata.
#[derive(Debug)]
pub struct EncryptedVolume {
    layout: Layout,
    luks: Luks1,
    pv: PhysicalVolume,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteReport {
    /// Bytes written to the target (the whole partition).
    pub bytes_written: u64,
    /// Bytes of filesystem image read.
    pub image_bytes: u64,
}

impl EncryptedVolume {
    /// Formats LUKS1 (slot 0: the password; slot 1: the key file) and lays out LVM with
    /// upstream's names (`cryptVG`, `root`, the PV as `/dev/mapper/luks-<uuid>`). All
    /// randomness comes from `rng` (see [`crate::seeded_rng`] for reproducible builds).
    pub fn new(
        partition_size: u64,
        opts: &VolumeOptions,
        rng: &mut dyn RngCore,
    ) -> Result<EncryptedVolume> {
        let layout = Layout::new(partition_size, opts.luks.key_bytes)?;
        let mut secrets: Vec<&[u8]> = vec![&opts.password];
        if let Some(k) = &opts.keyfile {
            secrets.push(k);
        }
        let luks = Luks1::format(&opts.luks, &secrets, rng)?;
        let mut lvm = LvmOptions::upstream(luks.uuid(), &opts.creation_host, opts.creation_time);
        lvm.system = opts.system.clone();
        EncryptedVolume::from_parts(layout, luks, &lvm, rng)
    }

    /// From a formatted LUKS1 volume and LVM options of the caller's choice.
    pub fn from_parts(
        layout: Layout,
        luks: Luks1,
        lvm: &LvmOptions,
        rng: &mut dyn RngCore,
    ) -> Result<EncryptedVolume> {
        if luks.header().payload_offset_bytes() != layout.payload_offset {
            return Err(Error::BadHeader(format!(
                "payload at byte {}, the layout expects {}",
                luks.header().payload_offset_bytes(),
                layout.payload_offset
            )));
        }
        let pv = PhysicalVolume::new(layout.device_size, lvm, rng)?;
        Ok(EncryptedVolume { layout, luks, pv })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn luks(&self) -> &Luks1 {
        &self.luks
    }

    pub fn pv(&self) -> &PhysicalVolume {
        &self.pv
    }

    /// Writes the partition into `target` at `partition_offset`: the LUKS header area, then
    /// the encrypted payload — LVM label and metadata, the filesystem image read from
    /// `fs_image` (at most `lv_size` bytes; a shorter image is followed by zeros), and zeros
    /// to the end — in chunks of 4 MiB encrypted on all cores while the previous chunk is
    /// written. Every byte of the partition is written.
    pub fn write_to<W: Write + Seek + Send>(
        &self,
        target: &mut W,
        partition_offset: u64,
        fs_image: &mut dyn Read,
    ) -> Result<WriteReport> {
        let mut pos = None;
        self.stream(
            fs_image,
            |offset, data| {
                let at = partition_offset + offset;
                if pos != Some(at) {
                    target.seek(SeekFrom::Start(at))?;
                }
                target.write_all(data)?;
                pos = Some(at + data.len() as u64);
                Ok(())
            },
            partition_offset,
        )
        .and_then(|r| {
            target.flush().map_err(|source| Error::Write {
                offset: partition_offset + self.layout.partition_size,
                source,
            })?;
            Ok(r)
        })
    }

    /// As [`EncryptedVolume::write_to`], with positioned writes into a file (or block device)
    /// that other writers may share.
    pub fn write_at(
        &self,
        target: &std::fs::File,
        partition_offset: u64,
        fs_image: &mut dyn Read,
    ) -> Result<WriteReport> {
        use std::os::unix::fs::FileExt;
        self.stream(
            fs_image,
            |offset, data| target.write_all_at(data, partition_offset + offset),
            partition_offset,
        )
    }

    fn stream<F>(&self, fs_image: &mut dyn Read, mut sink: F, base: u64) -> Result<WriteReport>
    where
        F: FnMut(u64, &[u8]) -> io::Result<()> + Send,
    {
        let layout = self.layout;
        let header = self.luks.header_area();
        sink(0, header).map_err(|source| Error::Write {
            offset: base,
            source,
        })?;
        let cipher = self.luks.payload_cipher();
        let lvm_area = self.pv.area();
        let mut source = PayloadSource {
            lvm_area: &lvm_area,
            image: fs_image,
            image_end: layout.pe_start + layout.lv_size,
            device_size: layout.device_size,
            pos: 0,
            image_read: 0,
            image_eof: false,
        };

        // Three buffers: one being filled and encrypted, one queued, one being written.
        let (full_tx, full_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(1);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
        for _ in 0..3 {
            let _ = empty_tx.send(vec![0u8; CHUNK]);
        }
        let payload_offset = layout.payload_offset;
        std::thread::scope(|s| -> Result<WriteReport> {
            let writer = s.spawn(move || -> Result<()> {
                for (pos, buf) in full_rx {
                    let offset = payload_offset + pos;
                    sink(offset, &buf).map_err(|source| Error::Write {
                        offset: base + offset,
                        source,
                    })?;
                    // The reader may have stopped on an error: nobody to hand the buffer to.
                    let _ = empty_tx.send(buf);
                }
                Ok(())
            });
            let produced = (|| -> Result<()> {
                while source.pos < layout.device_size {
                    let Ok(mut buf) = empty_rx.recv() else {
                        // The writer stopped (its error is reported below).
                        return Ok(());
                    };
                    let pos = source.pos;
                    let n = (layout.device_size - pos).min(CHUNK as u64) as usize;
                    buf.resize(n, 0);
                    source.fill(&mut buf)?;
                    encrypt(&cipher, &mut buf, pos / SECTOR as u64);
                    if full_tx.send((pos, buf)).is_err() {
                        return Ok(());
                    }
                }
                source.check_end()
            })();
            drop(full_tx);
            let written = writer.join().unwrap_or_else(|_| {
                Err(Error::Write {
                    offset: base,
                    source: io::Error::other("the writer thread panicked"),
                })
            });
            produced?;
            written?;
            Ok(WriteReport {
                bytes_written: layout.partition_size,
                image_bytes: source.image_read,
            })
        })
    }
}

fn encrypt(cipher: &SectorCipher, buf: &mut [u8], first_sector: u64) {
    use rayon::prelude::*;
    let per_task = (TASK / SECTOR) as u64;
    buf.par_chunks_mut(TASK)
        .enumerate()
        .for_each(|(i, part)| cipher.encrypt_sectors(part, first_sector + i as u64 * per_task));
}

/// The plain payload, in order: LVM area, filesystem image, zeros.
struct PayloadSource<'a> {
    lvm_area: &'a [u8],
    image: &'a mut dyn Read,
    /// Payload offset where the LV ends.
    image_end: u64,
    device_size: u64,
    pos: u64,
    image_read: u64,
    image_eof: bool,
}

impl PayloadSource<'_> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut at = 0;
        while at < buf.len() {
            let pos = self.pos;
            let want = buf.len() - at;
            let got = if pos < lvm::PE_START {
                let n = want.min((lvm::PE_START - pos) as usize);
                buf[at..at + n].copy_from_slice(&self.lvm_area[pos as usize..pos as usize + n]);
                n
            } else if pos < self.image_end && !self.image_eof {
                let n = want.min((self.image_end - pos) as usize);
                let r = loop {
                    match self.image.read(&mut buf[at..at + n]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        r => break r,
                    }
                };
                let r = r.map_err(|source| Error::ReadImage {
                    offset: self.image_read,
                    source,
                })?;
                if r == 0 {
                    self.image_eof = true;
                    continue;
                }
                self.image_read += r as u64;
                r
            } else {
                let n = want.min((self.device_size - pos) as usize);
                buf[at..at + n].fill(0);
                n
            };
            at += got;
            self.pos += got as u64;
        }
        Ok(())
    }

    /// The image must not go on past the LV.
    fn check_end(&mut self) -> Result<()> {
        if self.image_eof {
            return Ok(());
        }
        let mut one = [0u8; 1];
        loop {
            match self.image.read(&mut one) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    return Err(Error::ImageTooLarge {
                        lv_size: self.image_end - lvm::PE_START,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(Error::ReadImage {
                        offset: self.image_read,
                        source,
                    })
                }
            }
        }
    }
}
