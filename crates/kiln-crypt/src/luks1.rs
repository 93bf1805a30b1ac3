//! LUKS1, as `cryptsetup luksFormat --type luks1 --cipher aes-xts-plain64 --key-size 256
//! --hash sha512` and `cryptsetup luksAddKey` write it (cryptsetup 2.6, `lib/luks1/`), following
//! the LUKS On-Disk Format Specification version 1.2.3.
//!
//! The partition starts with the 592-byte `phdr` (big-endian integers), zero-padded to 4 KiB;
//! eight key slot areas follow, each 4 KiB-aligned and as long as the AF-split key
//! (`key_bytes * 4000` bytes: 250 sectors for a 32-byte key, at sectors 8, 264, 520, …); the
//! payload starts at the first 1 MiB boundary after them (sector 4096 for 32- and 64-byte keys),
//! which is what cryptsetup picks for a partition without a larger I/O alignment. As cryptsetup
//! does, the header area is zeroed, every key slot area filled with random bytes, and the key
//! material of enabled slots written over that.

use crate::af;
use crate::error::{Error, Result};
use crate::hash::HashSpec;
use crate::pbkdf::{Iterations, PbkdfPolicy};
use crate::xts::{SectorCipher, SECTOR};
use rand_core::RngCore;
use zeroize::{Zeroize, Zeroizing};

/// `LUKS\xba\xbe`.
pub const MAGIC: [u8; 6] = *b"LUKS\xba\xbe";
/// Size of the on-disk `phdr`.
pub const PHDR_LEN: usize = 592;
/// Number of key slots.
pub const NUM_KEYS: usize = 8;
/// `LUKS_KEY_ENABLED`.
pub const KEY_ENABLED: u32 = 0x00AC_71F3;
/// `LUKS_KEY_DISABLED`.
pub const KEY_DISABLED: u32 = 0x0000_DEAD;
const SALT_LEN: usize = 32;
const DIGEST_LEN: usize = 20;
/// Key slots start on 4 KiB boundaries (`LUKS_ALIGN_KEYSLOTS`).
const ALIGN_KEYSLOTS_SECTORS: u64 = 4096 / SECTOR as u64;
/// cryptsetup's default data alignment (`DEFAULT_DISK_ALIGNMENT`, 1 MiB).
const DATA_ALIGNMENT_SECTORS: u64 = (1 << 20) / SECTOR as u64;

/// One key slot of the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySlot {
    pub active: bool,
    pub iterations: u32,
    pub salt: [u8; SALT_LEN],
    /// In 512-byte sectors from the start of the partition.
    pub key_material_offset: u32,
    pub stripes: u32,
}

/// The LUKS1 partition header (`struct luks_phdr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Luks1Header {
    pub cipher_name: String,
    pub cipher_mode: String,
    pub hash: HashSpec,
    /// In 512-byte sectors.
    pub payload_offset: u32,
    pub key_bytes: u32,
    pub mk_digest: [u8; DIGEST_LEN],
    pub mk_digest_salt: [u8; SALT_LEN],
    pub mk_digest_iterations: u32,
    /// Lower-case hyphenated UUID, as `uuid_unparse` writes it.
    pub uuid: String,
    pub key_slots: [KeySlot; NUM_KEYS],
}

fn put_str(out: &mut [u8], s: &str) {
    // Fields are NUL-padded; the last byte always stays NUL (cryptsetup copies len - 1).
    let n = s.len().min(out.len() - 1);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
}

fn get_str(b: &[u8], what: &str) -> Result<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8(b[..end].to_vec())
        .map_err(|_| Error::BadHeader(format!("{what} is not text")))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Sectors of AF-split key material for a key of `key_bytes` (`AF_split_sectors`).
pub fn key_material_sectors(key_bytes: u64) -> u64 {
    (key_bytes * af::STRIPES as u64).div_ceil(SECTOR as u64)
}

/// Key slot offsets and the payload offset (sectors) for a key size, as
/// `LUKS_generate_phdr` lays them out with 1 MiB data alignment.
pub fn layout(key_bytes: u64) -> ([u32; NUM_KEYS], u32) {
    let material = key_material_sectors(key_bytes);
    let mut offsets = [0u32; NUM_KEYS];
    let mut next = ALIGN_KEYSLOTS_SECTORS;
    for o in offsets.iter_mut() {
        *o = next as u32;
        next = (next + material).div_ceil(ALIGN_KEYSLOTS_SECTORS) * ALIGN_KEYSLOTS_SECTORS;
    }
    let payload = next.div_ceil(DATA_ALIGNMENT_SECTORS) * DATA_ALIGNMENT_SECTORS;
    (offsets, payload as u32)
}

impl Luks1Header {
    /// The 592 bytes written at the start of the partition.
    pub fn to_bytes(&self) -> [u8; PHDR_LEN] {
        let mut b = [0u8; PHDR_LEN];
        b[0..6].copy_from_slice(&MAGIC);
        b[6..8].copy_from_slice(&1u16.to_be_bytes());
        put_str(&mut b[8..40], &self.cipher_name);
        put_str(&mut b[40..72], &self.cipher_mode);
        put_str(&mut b[72..104], self.hash.name());
        b[104..108].copy_from_slice(&self.payload_offset.to_be_bytes());
        b[108..112].copy_from_slice(&self.key_bytes.to_be_bytes());
        b[112..132].copy_from_slice(&self.mk_digest);
        b[132..164].copy_from_slice(&self.mk_digest_salt);
        b[164..168].copy_from_slice(&self.mk_digest_iterations.to_be_bytes());
        put_str(&mut b[168..208], &self.uuid);
        for (i, ks) in self.key_slots.iter().enumerate() {
            let o = 208 + 48 * i;
            let active = if ks.active { KEY_ENABLED } else { KEY_DISABLED };
            b[o..o + 4].copy_from_slice(&active.to_be_bytes());
            b[o + 4..o + 8].copy_from_slice(&ks.iterations.to_be_bytes());
            b[o + 8..o + 40].copy_from_slice(&ks.salt);
            b[o + 40..o + 44].copy_from_slice(&ks.key_material_offset.to_be_bytes());
            b[o + 44..o + 48].copy_from_slice(&ks.stripes.to_be_bytes());
        }
        b
    }

    /// Reads a `phdr`, with cryptsetup's checks of the key slot layout.
    pub fn parse(b: &[u8]) -> Result<Luks1Header> {
        if b.len() < PHDR_LEN {
            return Err(Error::BadHeader(format!(
                "{} bytes, a LUKS1 header has {PHDR_LEN}",
                b.len()
            )));
        }
        if b[0..6] != MAGIC {
            return Err(Error::BadHeader("no LUKS magic".into()));
        }
        let version = u16::from_be_bytes([b[6], b[7]]);
        if version != 1 {
            return Err(Error::BadHeader(format!("version {version}, not LUKS1")));
        }
        let mut key_slots: [KeySlot; NUM_KEYS] = std::array::from_fn(|_| KeySlot {
            active: false,
            iterations: 0,
            salt: [0; SALT_LEN],
            key_material_offset: 0,
            stripes: 0,
        });
        for (i, ks) in key_slots.iter_mut().enumerate() {
            let o = 208 + 48 * i;
            ks.active = match be32(b, o) {
                KEY_ENABLED => true,
                KEY_DISABLED => false,
                other => {
                    return Err(Error::BadHeader(format!(
                        "key slot {i} has state {other:#x}, neither enabled nor disabled"
                    )))
                }
            };
            ks.iterations = be32(b, o + 4);
            ks.salt.copy_from_slice(&b[o + 8..o + 40]);
            ks.key_material_offset = be32(b, o + 40);
            ks.stripes = be32(b, o + 44);
        }
        let mut h = Luks1Header {
            cipher_name: get_str(&b[8..40], "cipher name")?,
            cipher_mode: get_str(&b[40..72], "cipher mode")?,
            hash: HashSpec::from_name(&get_str(&b[72..104], "hash spec")?)?,
            payload_offset: be32(b, 104),
            key_bytes: be32(b, 108),
            mk_digest: [0; DIGEST_LEN],
            mk_digest_salt: [0; SALT_LEN],
            mk_digest_iterations: be32(b, 164),
            uuid: get_str(&b[168..208], "UUID")?,
            key_slots,
        };
        h.mk_digest.copy_from_slice(&b[112..132]);
        h.mk_digest_salt.copy_from_slice(&b[132..164]);
        h.check()?;
        Ok(h)
    }

    fn check(&self) -> Result<()> {
        if self.key_bytes != 32 && self.key_bytes != 64 {
            return Err(Error::BadHeader(format!(
                "key size of {} bytes (kiln reads aes-xts with 32 or 64)",
                self.key_bytes
            )));
        }
        let material = key_material_sectors(u64::from(self.key_bytes));
        for (i, ks) in self.key_slots.iter().enumerate() {
            if ks.stripes as usize != af::STRIPES {
                return Err(Error::BadHeader(format!(
                    "key slot {i} has {} stripes (LUKS1 needs {})",
                    ks.stripes,
                    af::STRIPES
                )));
            }
            let start = u64::from(ks.key_material_offset);
            if start * (SECTOR as u64) < PHDR_LEN as u64
                || start + material > u64::from(self.payload_offset)
            {
                return Err(Error::BadHeader(format!(
                    "key slot {i} key material (sector {start}) lies outside the header area"
                )));
            }
        }
        Ok(())
    }

    /// The payload offset in bytes.
    pub fn payload_offset_bytes(&self) -> u64 {
        u64::from(self.payload_offset) * SECTOR as u64
    }
}

/// What [`Luks1::format`] needs.
#[derive(Debug, Clone)]
pub struct LuksOptions {
    /// Master key bytes: 32 (`--key-size 256`, AES-128 in XTS) or 64.
    pub key_bytes: usize,
    pub hash: HashSpec,
    pub pbkdf: PbkdfPolicy,
}

impl Default for LuksOptions {
    /// Upstream's `--cipher aes-xts-plain64 --key-size 256 --hash sha512`, cryptsetup's
    /// iteration policy ([`PbkdfPolicy::from_env`]).
    fn default() -> Self {
        LuksOptions {
            key_bytes: 32,
            hash: HashSpec::Sha512,
            pbkdf: PbkdfPolicy::from_env(),
        }
    }
}

/// A formatted LUKS1 volume: its header and key material, and the master key that encrypts
/// the payload (wiped from memory when dropped).
pub struct Luks1 {
    header: Luks1Header,
    master_key: Zeroizing<Vec<u8>>,
    /// The first `payload_offset` sectors of the partition.
    area: Vec<u8>,
    iterations: Iterations,
}

impl std::fmt::Debug for Luks1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Luks1")
            .field("header", &self.header)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Luks1 {
    /// Formats a volume with one key slot per secret, in order (slot 0: the password, slot 1:
    /// the key file's bytes). The master key, UUID, salts, AF stripes and the filling of
    /// unused key slot areas are drawn from `rng`, in a fixed order: the same seed gives the
    /// same bytes. The key slots' PBKDF2 runs in parallel.
    pub fn format(opts: &LuksOptions, secrets: &[&[u8]], rng: &mut dyn RngCore) -> Result<Luks1> {
        if opts.key_bytes != 32 && opts.key_bytes != 64 {
            return Err(Error::BadHeader(format!(
                "key size of {} bytes: aes-xts-plain64 takes 32 or 64",
                opts.key_bytes
            )));
        }
        if secrets.is_empty() || secrets.len() > NUM_KEYS {
            return Err(Error::BadHeader(format!(
                "{} secrets: LUKS1 holds 1 to {NUM_KEYS} key slots",
                secrets.len()
            )));
        }
        if let Some(i) = secrets.iter().position(|s| s.is_empty()) {
            return Err(Error::EmptySecret(if i == 0 {
                "password"
            } else {
                "key file"
            }));
        }
        let iterations = opts.pbkdf.iterations(opts.hash, opts.key_bytes)?;
        let key_bytes = opts.key_bytes as u64;
        let (offsets, payload_offset) = layout(key_bytes);
        let material_len = key_material_sectors(key_bytes) as usize * SECTOR;

        let mut master_key = Zeroizing::new(vec![0u8; opts.key_bytes]);
        rng.fill_bytes(&mut master_key);
        let mut uuid = [0u8; 16];
        rng.fill_bytes(&mut uuid);
        uuid[6] = (uuid[6] & 0x0f) | 0x40;
        uuid[8] = (uuid[8] & 0x3f) | 0x80;
        let mut mk_digest_salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut mk_digest_salt);

        // The header area: zeros, each key slot area random (LUKS_wipe_header_areas).
        let mut area = vec![0u8; payload_offset as usize * SECTOR];
        for &o in &offsets {
            let start = o as usize * SECTOR;
            rng.fill_bytes(&mut area[start..start + material_len]);
        }

        // Per secret: salt and AF split (random), then PBKDF2 + encryption (in parallel).
        let mut prepared = Vec::with_capacity(secrets.len());
        for _ in secrets {
            let mut salt = [0u8; SALT_LEN];
            rng.fill_bytes(&mut salt);
            let mut split = Zeroizing::new(af::split(&master_key, af::STRIPES, opts.hash, rng));
            split.resize(material_len, 0);
            prepared.push((salt, split));
        }
        let hash = opts.hash;
        let mut digest = [0u8; DIGEST_LEN];
        let slots = || {
            use rayon::prelude::*;
            prepared
                .into_par_iter()
                .zip(secrets.par_iter())
                .map(|((salt, mut split), secret)| {
                    let mut derived = Zeroizing::new(vec![0u8; opts.key_bytes]);
                    hash.pbkdf2(secret, &salt, iterations.slot, &mut derived);
                    // The derived key has the 32 or 64 bytes checked above.
                    if let Some(c) = SectorCipher::new(&derived) {
                        c.encrypt_reference(&mut split, 0);
                    }
                    (salt, split)
                })
                .collect::<Vec<_>>()
        };
        let (done, ()) = rayon::join(slots, || {
            hash.pbkdf2(&master_key, &mk_digest_salt, iterations.digest, &mut digest)
        });

        let mut key_slots: [KeySlot; NUM_KEYS] = std::array::from_fn(|i| KeySlot {
            active: false,
            iterations: 0,
            salt: [0; SALT_LEN],
            key_material_offset: offsets[i],
            stripes: af::STRIPES as u32,
        });
        for (i, (salt, enc)) in done.iter().enumerate() {
            key_slots[i].active = true;
            key_slots[i].iterations = iterations.slot;
            key_slots[i].salt = *salt;
            let start = offsets[i] as usize * SECTOR;
            area[start..start + material_len].copy_from_slice(enc);
        }
        let header = Luks1Header {
            cipher_name: "aes".into(),
            cipher_mode: "xts-plain64".into(),
            hash,
            payload_offset,
            key_bytes: opts.key_bytes as u32,
            mk_digest: digest,
            mk_digest_salt,
            mk_digest_iterations: iterations.digest,
            uuid: format_uuid(&uuid),
            key_slots,
        };
        area[..PHDR_LEN].copy_from_slice(&header.to_bytes());
        Ok(Luks1 {
            header,
            master_key,
            area,
            iterations,
        })
    }

    /// The header as written.
    pub fn header(&self) -> &Luks1Header {
        &self.header
    }

    /// The volume's UUID (`blkid -s UUID`, crypttab's `UUID=`).
    pub fn uuid(&self) -> &str {
        &self.header.uuid
    }

    /// The iteration counts used.
    pub fn iterations(&self) -> Iterations {
        self.iterations
    }

    /// The bytes before the payload: header, padding and key slot areas.
    pub fn header_area(&self) -> &[u8] {
        &self.area
    }

    /// The payload cipher (the master key).
    pub fn payload_cipher(&self) -> SectorCipher {
        // The master key has the length checked in `format`.
        SectorCipher::new(&self.master_key).expect("a 32- or 64-byte master key")
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower case.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Opens a key slot of a header area (the first `payload_offset` sectors of a partition) with
/// `passphrase`, as `LUKS_open_key_with_hdr` does: tries every enabled slot, returns the slot
/// number and the master key checked against the digest.
pub fn open(area: &[u8], passphrase: &[u8]) -> Result<(usize, Zeroizing<Vec<u8>>)> {
    let h = Luks1Header::parse(area)?;
    if area.len() < h.payload_offset_bytes() as usize {
        return Err(Error::BadHeader(format!(
            "{} bytes given, the header area has {}",
            area.len(),
            h.payload_offset_bytes()
        )));
    }
    let key_bytes = h.key_bytes as usize;
    let material_len = key_material_sectors(key_bytes as u64) as usize * SECTOR;
    for (i, ks) in h.key_slots.iter().enumerate().filter(|(_, k)| k.active) {
        let mut derived = Zeroizing::new(vec![0u8; key_bytes]);
        h.hash
            .pbkdf2(passphrase, &ks.salt, ks.iterations, &mut derived);
        let start = ks.key_material_offset as usize * SECTOR;
        let mut material = Zeroizing::new(area[start..start + material_len].to_vec());
        let Some(c) = SectorCipher::new(&derived) else {
            continue;
        };
        c.decrypt(&mut material, 0);
        let Some(key) = af::merge(&material, key_bytes, af::STRIPES, h.hash) else {
            continue;
        };
        let key = Zeroizing::new(key);
        let mut digest = [0u8; DIGEST_LEN];
        h.hash
            .pbkdf2(&key, &h.mk_digest_salt, h.mk_digest_iterations, &mut digest);
        if digest == h.mk_digest {
            return Ok((i, key));
        }
        digest.zeroize();
    }
    Err(Error::WrongPassphrase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    fn fast() -> LuksOptions {
        LuksOptions {
            key_bytes: 32,
            hash: HashSpec::Sha512,
            pbkdf: PbkdfPolicy::Fixed {
                slot_iterations: 1000,
                digest_iterations: 1000,
            },
        }
    }

    #[test]
    fn layout_is_cryptsetups() {
        // cryptsetup 2.6 luksDump: key material at 8, 264, …, 1800; payload offset 4096.
        let (offsets, payload) = layout(32);
        assert_eq!(offsets, [8, 264, 520, 776, 1032, 1288, 1544, 1800]);
        assert_eq!(payload, 4096);
        let (offsets, payload) = layout(64);
        assert_eq!(offsets[1], 8 + 504);
        assert_eq!(payload, 4096);
        assert_eq!(key_material_sectors(32), 250);
    }

    #[test]
    fn header_serializes_and_parses_back() {
        let l = Luks1::format(&fast(), &[b"pw", b"key"], &mut seeded_rng(b"h")).unwrap();
        let bytes = l.header().to_bytes();
        assert_eq!(&bytes[..6], b"LUKS\xba\xbe");
        assert_eq!(&bytes[6..8], &[0, 1]);
        assert_eq!(&bytes[8..12], b"aes\0");
        assert_eq!(&bytes[40..52], b"xts-plain64\0");
        assert_eq!(&bytes[72..79], b"sha512\0");
        assert_eq!(&bytes[104..108], &4096u32.to_be_bytes());
        assert_eq!(&bytes[108..112], &32u32.to_be_bytes());
        assert_eq!(&bytes[208..212], &KEY_ENABLED.to_be_bytes());
        assert_eq!(&bytes[256..260], &KEY_ENABLED.to_be_bytes());
        assert_eq!(&bytes[304..308], &KEY_DISABLED.to_be_bytes());
        let back = Luks1Header::parse(&bytes).unwrap();
        assert_eq!(&back, l.header());
        let u = &l.header().uuid;
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4", "a version-4 UUID: {u}");
        // The header area: header, zeros to 4 KiB, random key slot areas with zero gaps.
        let a = l.header_area();
        assert_eq!(a.len(), 4096 * 512);
        assert!(a[PHDR_LEN..4096].iter().all(|&b| b == 0));
        for s in 0..NUM_KEYS {
            let start = (8 + 256 * s) * 512;
            assert!(a[start..start + 512].iter().any(|&b| b != 0), "slot {s}");
            assert!(a[start + 250 * 512..start + 256 * 512]
                .iter()
                .all(|&b| b == 0));
        }
        assert!(a[2056 * 512..].iter().all(|&b| b == 0));
    }

    #[test]
    fn both_slots_open_and_a_wrong_passphrase_does_not() {
        let l = Luks1::format(&fast(), &[b"pw", b"keyfile bytes"], &mut seeded_rng(b"o")).unwrap();
        let (slot, k0) = open(l.header_area(), b"pw").unwrap();
        assert_eq!(slot, 0);
        let (slot, k1) = open(l.header_area(), b"keyfile bytes").unwrap();
        assert_eq!(slot, 1);
        assert_eq!(k0, k1);
        assert_eq!(&k0[..], &l.master_key[..]);
        assert!(matches!(
            open(l.header_area(), b"nope"),
            Err(Error::WrongPassphrase)
        ));
    }

    #[test]
    fn bad_input_is_refused_not_panicked_on() {
        assert!(Luks1Header::parse(&[0u8; 10]).is_err());
        assert!(Luks1Header::parse(&[0u8; 600]).is_err());
        let l = Luks1::format(&fast(), &[b"pw"], &mut seeded_rng(b"b")).unwrap();
        let mut h = l.header().to_bytes();
        h[6..8].copy_from_slice(&2u16.to_be_bytes());
        assert!(Luks1Header::parse(&h).is_err());
        let mut h = l.header().to_bytes();
        h[252..256].copy_from_slice(&3999u32.to_be_bytes()); // slot 0 stripes
        assert!(Luks1Header::parse(&h).is_err());
        let mut h = l.header().to_bytes();
        h[248..252].copy_from_slice(&4095u32.to_be_bytes()); // slot 0 beyond the payload
        assert!(Luks1Header::parse(&h).is_err());
        let mut h = l.header().to_bytes();
        h[208..212].copy_from_slice(&7u32.to_be_bytes());
        assert!(Luks1Header::parse(&h).is_err());
        // A header area cut short.
        assert!(open(&l.header_area()[..4096], b"pw").is_err());
        // Format refuses what cryptsetup refuses.
        assert!(Luks1::format(&fast(), &[], &mut seeded_rng(b"x")).is_err());
        assert!(Luks1::format(&fast(), &[b""], &mut seeded_rng(b"x")).is_err());
        let mut o = fast();
        o.key_bytes = 48;
        assert!(Luks1::format(&o, &[b"pw"], &mut seeded_rng(b"x")).is_err());
    }

    #[test]
    fn same_seed_same_header() {
        let a = Luks1::format(&fast(), &[b"pw", b"k"], &mut seeded_rng(b"s")).unwrap();
        let b = Luks1::format(&fast(), &[b"pw", b"k"], &mut seeded_rng(b"s")).unwrap();
        let c = Luks1::format(&fast(), &[b"pw", b"k"], &mut seeded_rng(b"t")).unwrap();
        assert_eq!(a.header_area(), b.header_area());
        assert_ne!(a.header_area(), c.header_area());
    }
}
