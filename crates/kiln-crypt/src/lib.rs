//! # kiln-crypt
//!
//! Upstream's encrypted root (`Encryption: {Enable: true}`, SPEC §3.4), written natively into
//! the partition's byte range without device-mapper, loop devices or root:
//!
//! ```text
//! cryptsetup --cipher aes-xts-plain64 --key-size 256 --hash sha512 --type luks1 luksFormat <part>
//! cryptsetup luksAddKey <part> <keyfile>
//! pvcreate /dev/mapper/luks-<uuid>; vgcreate cryptVG …; lvcreate --extents 100%PVS cryptVG -n root
//! mkfs … /dev/mapper/cryptVG-root
//! ```
//!
//! becomes: make the filesystem image of [`lv_size`]`(partition_size)` bytes (kiln-fs/mke2fs
//! into a sparse file), then [`EncryptedVolume::new`] + [`EncryptedVolume::write_at`], which
//! writes the LUKS1 header and key slots ([`luks1`]), then the payload encrypted with
//! aes-xts-plain64 sector by sector: the LVM2 label and metadata ([`lvm`]) and the filesystem.
//!
//! ```no_run
//! use kiln_crypt::{lv_size, seeded_rng, EncryptedVolume, LuksOptions, VolumeOptions};
//! let partition_size = 2u64 << 30;
//! let fs_size = lv_size(partition_size); // mke2fs -t ext4 fs.img <fs_size / 1024>k
//! let opts = VolumeOptions {
//!     luks: LuksOptions::default(),
//!     password: b"password".to_vec(),
//!     keyfile: Some(vec![7u8; 2048]),
//!     creation_host: "builder".into(),
//!     system: "Linux builder".into(),
//!     creation_time: 1_700_000_000,
//! };
//! let mut rng = seeded_rng(b"1700000000:root");
//! let vol = EncryptedVolume::new(partition_size, &opts, &mut rng).unwrap();
//! let disk = std::fs::OpenOptions::new().write(true).open("disk.raw").unwrap();
//! let mut fs = std::fs::File::open("fs.img").unwrap();
//! vol.write_at(&disk, 1 << 20, &mut fs).unwrap();
//! println!("crypttab: luks-{0} UUID={0} /etc/default.keyfile luks,discard", vol.luks().uuid());
//! ```
//!
//! ## Why these crates
//!
//! The cryptography is RustCrypto's: `aes` 0.8 (AES-NI chosen at run time through
//! `cpufeatures`, otherwise a constant-time bitsliced software implementation; it received a
//! security audit by NCC Group in 2020, with the `aes-gcm` review, with no significant
//! findings), `xts-mode` 0.5, `pbkdf2` 0.12 with `hmac` 0.12, `sha2` and `sha1` 0.10. They are
//! pure Rust (no C library to build or link, nothing for the build host to provide), constant
//! time where it matters (AES-NI, no table lookups indexed by secrets), and the most widely used
//! implementations in Rust (tens of millions of downloads, used by rustls' and many others'
//! dependency trees). kiln adds no primitive of its own: the AF splitter and the header are
//! format code, and the batched XTS path ([`xts::SectorCipher::encrypt_sectors`]) calls the
//! same `aes` block encryption on a batch of blocks in place; it is tested against `xts-mode`
//! and the IEEE 1619 vectors. `xts-mode` itself is small and unaudited: it is checked by the
//! same vectors and by the independent decryption in the tests. What was checked, and the
//! oracles (cryptsetup, lvm2's pvck, Python's `cryptography`), are in `docs/encryption.md`.
//!
//! ## Reproducibility
//!
//! Every random byte (master key, UUIDs, salts, AF stripes, unused key slot areas, LVM ids)
//! comes from the `rng` the caller passes, in a fixed order: [`seeded_rng`] gives byte-identical
//! partitions for the same seed; [`os_rng`] a fresh volume each time. PBKDF2 iteration counts:
//! [`pbkdf`].

pub mod af;
pub mod error;
pub mod hash;
pub mod luks1;
pub mod lvm;
mod open;
pub mod pbkdf;
mod volume;
pub mod xts;

pub use error::{Error, Result};
pub use hash::HashSpec;
pub use luks1::{Luks1, LuksOptions};
pub use lvm::LvmOptions;
pub use open::{extract_logical_volume, Opened};
pub use pbkdf::PbkdfPolicy;
pub use volume::{lv_size, EncryptedVolume, Layout, VolumeOptions, WriteReport};

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// A ChaCha20 random generator: seeded from a caller's seed or from the operating system.
pub struct Rng(ChaCha20Rng);

impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

impl CryptoRng for Rng {}

/// The same `seed`, the same stream (its SHA-256 keys ChaCha20): for reproducible builds,
/// e.g. `format!("{SOURCE_DATE_EPOCH}:{image}:root")`.
pub fn seeded_rng(seed: &[u8]) -> Rng {
    let key: [u8; 32] = Sha256::digest(seed).into();
    Rng(ChaCha20Rng::from_seed(key))
}

/// The generator of an image's volume: [`os_rng`], or, when the build is reproducible
/// (`SOURCE_DATE_EPOCH`, [`pbkdf::reproducible_build`]), [`secret_seeded_rng`] of the password
/// and `salt` (e.g. derived from `SOURCE_DATE_EPOCH` and the image's name).
pub fn volume_rng(password: &[u8], salt: &[u8]) -> Result<Rng> {
    if pbkdf::reproducible_build() {
        Ok(secret_seeded_rng(password, salt))
    } else {
        os_rng()
    }
}

/// ChaCha20 keyed with PBKDF2-HMAC-SHA512(`secret`, `salt`, [`pbkdf::FIXED_SLOT_ITERATIONS`]):
/// reproducible, yet the master key of a volume built from it is no easier to find than the
/// password itself. A seed that everyone knows (`SOURCE_DATE_EPOCH` and a name) would give away
/// the master key, and a seed from the password alone through a fast hash would let a guess be
/// checked without the key slots' PBKDF2 cost; this one costs a guess as much as a key slot
/// does (the same hash and count as reproducible key slots).
pub fn secret_seeded_rng(secret: &[u8], salt: &[u8]) -> Rng {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    HashSpec::Sha512.pbkdf2(secret, salt, pbkdf::FIXED_SLOT_ITERATIONS, key.as_mut());
    Rng(ChaCha20Rng::from_seed(*key))
}

/// ChaCha20 keyed from the operating system's random source.
pub fn os_rng() -> Result<Rng> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| Error::Random(e.to_string()))?;
    Ok(Rng(ChaCha20Rng::from_seed(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_seeded_streams_repeat_and_depend_on_secret_and_salt() {
        let first = |secret: &[u8], salt: &[u8]| secret_seeded_rng(secret, salt).next_u64();
        assert_eq!(first(b"pw", b"salt"), first(b"pw", b"salt"));
        assert_ne!(first(b"pw", b"salt"), first(b"pw2", b"salt"));
        assert_ne!(first(b"pw", b"salt"), first(b"pw", b"salt2"));
        // Not the public-seed generator of the same bytes.
        assert_ne!(first(b"pw", b"salt"), seeded_rng(b"pwsalt").next_u64());
    }
}
