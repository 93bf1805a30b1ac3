//! aes-xts-plain64 over 512-byte sectors, as dm-crypt does it: the key is split in halves (the
//! first encrypts the data, the second the tweak), the tweak of a sector is its number as a
//! little-endian 64-bit integer padded to 16 bytes (`plain64`), and sectors are numbered from
//! the start of the area (the LUKS payload, or a key slot's key material).
//!
//! Key material (a few hundred KiB, once per key slot) goes through the `xts-mode` crate. The
//! payload — the whole partition — goes through [`SectorCipher::encrypt_sectors`], which
//! computes the same XTS but hands AES eight or more blocks at a time
//! (`BlockEncrypt::encrypt_blocks`), so that the AES-NI backend of the `aes` crate pipelines
//! them; `xts-mode` encrypts one block after the other, which leaves AES-NI mostly waiting.
//! The unit tests prove both agree sector for sector.

use aes::cipher::consts::U16;
use aes::cipher::inout::InOutBuf;
use aes::cipher::{
    generic_array::GenericArray, BlockDecrypt, BlockEncrypt, BlockSizeUser, KeyInit,
};
use aes::{Aes128, Aes256, Block};
use xts_mode::{get_tweak_default, Xts128};
use zeroize::Zeroize;

/// The sector size of LUKS1 and of the IV numbering.
pub const SECTOR: usize = 512;
const BLOCKS_PER_SECTOR: usize = SECTOR / 16;
/// Sectors encrypted per batch: 8 sectors = 256 AES blocks and 8 tweaks at once.
const BATCH: usize = 8;

/// One key size: the `xts-mode` pair, and the same two AES keys for the batched path
/// (`Xts128` keeps its ciphers to itself).
struct Pair<C: BlockEncrypt + BlockDecrypt + aes::cipher::BlockCipher> {
    xts: Xts128<C>,
    data: C,
    tweak: C,
}

impl<C: BlockEncrypt + BlockDecrypt + aes::cipher::BlockCipher + KeyInit + Clone> Pair<C> {
    fn new(key: &[u8]) -> Pair<C> {
        let half = key.len() / 2;
        let data = C::new(GenericArray::from_slice(&key[..half]));
        let tweak = C::new(GenericArray::from_slice(&key[half..]));
        Pair {
            xts: Xts128::new(data.clone(), tweak.clone()),
            data,
            tweak,
        }
    }
}

enum Keys {
    Aes128(Box<Pair<Aes128>>),
    Aes256(Box<Pair<Aes256>>),
}

/// An aes-xts-plain64 key (32 bytes: AES-128 twice; 64 bytes: AES-256 twice).
pub struct SectorCipher {
    keys: Keys,
}

impl SectorCipher {
    /// Returns `None` unless the key is 32 or 64 bytes.
    pub fn new(key: &[u8]) -> Option<SectorCipher> {
        let keys = match key.len() {
            32 => Keys::Aes128(Box::new(Pair::new(key))),
            64 => Keys::Aes256(Box::new(Pair::new(key))),
            _ => return None,
        };
        Some(SectorCipher { keys })
    }

    /// Encrypts whole sectors in place with the `xts-mode` crate; `first_sector` numbers the
    /// first. `buf.len()` must be a multiple of 512 (a shorter tail is left as it is).
    pub fn encrypt_reference(&self, buf: &mut [u8], first_sector: u64) {
        self.reference(buf, first_sector, true)
    }

    /// Decrypts whole sectors in place (`xts-mode`).
    pub fn decrypt(&self, buf: &mut [u8], first_sector: u64) {
        self.reference(buf, first_sector, false)
    }

    fn reference(&self, buf: &mut [u8], first_sector: u64, encrypt: bool) {
        fn run<C>(x: &Xts128<C>, buf: &mut [u8], first: u128, encrypt: bool)
        where
            C: BlockEncrypt + BlockDecrypt + aes::cipher::BlockCipher,
        {
            if encrypt {
                x.encrypt_area(buf, SECTOR, first, get_tweak_default)
            } else {
                x.decrypt_area(buf, SECTOR, first, get_tweak_default)
            }
        }
        let whole = buf.len() / SECTOR * SECTOR;
        let buf = &mut buf[..whole];
        match &self.keys {
            Keys::Aes128(x) => run(&x.xts, buf, first_sector.into(), encrypt),
            Keys::Aes256(x) => run(&x.xts, buf, first_sector.into(), encrypt),
        }
    }

    /// Encrypts whole sectors in place, in batches for AES-NI; the same bytes as
    /// [`SectorCipher::encrypt_reference`].
    pub fn encrypt_sectors(&self, buf: &mut [u8], first_sector: u64) {
        match &self.keys {
            Keys::Aes128(x) => batched(&x.data, &x.tweak, buf, first_sector),
            Keys::Aes256(x) => batched(&x.data, &x.tweak, buf, first_sector),
        }
    }
}

/// XTS over whole sectors: per batch, the sectors' tweaks are encrypted together, each
/// sector's 32 block tweaks follow by multiplication by x in GF(2^128) (little-endian, as
/// IEEE 1619), and all data blocks of the batch go through AES in one call.
fn batched<C: BlockEncrypt + BlockSizeUser<BlockSize = U16>>(
    data: &C,
    tweak: &C,
    buf: &mut [u8],
    first_sector: u64,
) {
    let mut tweaks = [0u128; BATCH * BLOCKS_PER_SECTOR];
    let mut t0 = [Block::default(); BATCH];
    let mut sector = first_sector;
    let whole = buf.len() / SECTOR * SECTOR;
    for chunk in buf[..whole].chunks_mut(BATCH * SECTOR) {
        let n = chunk.len() / SECTOR;
        for (i, t) in t0.iter_mut().take(n).enumerate() {
            *t = Block::from(u128::from(sector + i as u64).to_le_bytes());
        }
        tweak.encrypt_blocks(&mut t0[..n]);
        for s in 0..n {
            let mut t = u128::from_le_bytes(t0[s].into());
            for b in 0..BLOCKS_PER_SECTOR {
                tweaks[s * BLOCKS_PER_SECTOR + b] = t;
                t = (t << 1) ^ (if t >> 127 == 1 { 0x87 } else { 0 });
            }
        }
        xor_tweaks(chunk, &tweaks);
        // The chunk is whole sectors, so it splits into 16-byte blocks without a tail: AES
        // runs in place, all blocks of the batch in one call.
        let (blocks, _tail) = InOutBuf::from(&mut *chunk).into_chunks::<U16>();
        data.encrypt_blocks_inout(blocks);
        xor_tweaks(chunk, &tweaks);
        sector += n as u64;
    }
    tweaks.zeroize();
    for t in t0.iter_mut() {
        t.as_mut_slice().zeroize();
    }
}

fn xor_tweaks(chunk: &mut [u8], tweaks: &[u128]) {
    for (b, t) in chunk.chunks_exact_mut(16).zip(tweaks) {
        let mut v = [0u8; 16];
        v.copy_from_slice(b);
        b.copy_from_slice(&(u128::from_le_bytes(v) ^ t).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    #[test]
    fn batched_equals_xts_mode() {
        let mut rng = ChaCha20Rng::from_seed([3; 32]);
        for key_len in [32, 64] {
            let mut key = vec![0u8; key_len];
            rng.fill_bytes(&mut key);
            let c = SectorCipher::new(&key).unwrap();
            // 21 sectors: two full batches and a partial one; a first sector past 2^32 and
            // near 2^64 checks the 64-bit little-endian IV.
            for first in [0u64, 5, 0x1_2345_6789, u64::MAX - 30] {
                let mut a = vec![0u8; 21 * SECTOR];
                rng.fill_bytes(&mut a);
                let plain = a.clone();
                let mut b = a.clone();
                c.encrypt_reference(&mut a, first);
                c.encrypt_sectors(&mut b, first);
                assert_eq!(a, b, "key {key_len} first sector {first}");
                c.decrypt(&mut b, first);
                assert_eq!(b, plain);
            }
        }
    }

    #[test]
    fn ieee1619_vector_10() {
        // IEEE P1619/D16 Annex B, vector 10 uses AES-256 keys and a 512-byte data unit with
        // sequence number 0xff; its first ciphertext bytes are checked here.
        let key1 = hex("2718281828459045235360287471352662497757247093699959574966967627");
        let key2 = hex("3141592653589793238462643383279502884197169399375105820974944592");
        let mut key = key1.clone();
        key.extend(&key2);
        let c = SectorCipher::new(&key).unwrap();
        let mut buf: Vec<u8> = (0..512).map(|i| i as u8).collect();
        c.encrypt_sectors(&mut buf, 0xff);
        assert_eq!(&buf[..16], &hex("1c3b3a102f770386e4836c99e370cf9b")[..]);
    }

    #[test]
    fn other_key_sizes_are_refused() {
        assert!(SectorCipher::new(&[0u8; 48]).is_none());
        assert!(SectorCipher::new(&[]).is_none());
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
