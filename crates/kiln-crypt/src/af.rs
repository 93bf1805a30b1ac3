//! The anti-forensic information splitter of LUKS1 (Clemens Fruhwirth, "LUKS On-Disk Format
//! Specification", section 2.4): the master key is spread over `stripes` blocks so that losing
//! any part of the key material loses the key.
//!
//! Split: `d = 0`; for each of the first `stripes - 1` blocks, draw it at random, `d ^= block`,
//! `d = diffuse(d)`; the last block is `key ^ d`. Merge does the same over the stored blocks.
//! `diffuse` hashes the block digest-sized piece by piece: piece `i` becomes
//! `H(be32(i) || piece)`, the last (shorter) piece truncated.

use crate::hash::HashSpec;
use rand_core::RngCore;

/// LUKS1 always uses 4000 stripes (cryptsetup refuses anything else).
pub const STRIPES: usize = 4000;

fn diffuse(hash: HashSpec, block: &mut [u8]) {
    let dlen = hash.digest_len();
    let mut out = vec![0u8; block.len()];
    for (i, (src, dst)) in block.chunks(dlen).zip(out.chunks_mut(dlen)).enumerate() {
        // A block is at most a few hundred bytes, so `i` fits in u32.
        hash.hash_indexed(i as u32, src, dst);
    }
    block.copy_from_slice(&out);
}

fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// Splits `key` into `stripes` blocks of `key.len()` bytes, the random ones drawn from `rng`.
pub fn split(key: &[u8], stripes: usize, hash: HashSpec, rng: &mut dyn RngCore) -> Vec<u8> {
    let n = key.len();
    let mut out = vec![0u8; n * stripes];
    if stripes == 0 {
        return out;
    }
    let mut d = vec![0u8; n];
    for block in out.chunks_mut(n).take(stripes - 1) {
        rng.fill_bytes(block);
        xor_into(&mut d, block);
        diffuse(hash, &mut d);
    }
    let last = &mut out[(stripes - 1) * n..];
    last.copy_from_slice(key);
    xor_into(last, &d);
    out
}

/// Recovers the key of `key_len` bytes from `stripes` blocks (`material` may be longer: the key
/// material area is padded to whole sectors).
pub fn merge(material: &[u8], key_len: usize, stripes: usize, hash: HashSpec) -> Option<Vec<u8>> {
    if stripes == 0 || key_len == 0 || material.len() < key_len.checked_mul(stripes)? {
        return None;
    }
    let mut d = vec![0u8; key_len];
    for block in material.chunks(key_len).take(stripes - 1) {
        xor_into(&mut d, block);
        diffuse(hash, &mut d);
    }
    let last = &material[(stripes - 1) * key_len..stripes * key_len];
    xor_into(&mut d, last);
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn split_then_merge_gives_the_key_back() {
        let mut rng = ChaCha20Rng::from_seed([7; 32]);
        for (len, hash) in [
            (32, HashSpec::Sha512),
            (64, HashSpec::Sha256),
            (16, HashSpec::Sha1),
        ] {
            let key: Vec<u8> = (0..len as u8).collect();
            let m = split(&key, STRIPES, hash, &mut rng);
            assert_eq!(m.len(), len * STRIPES);
            assert_eq!(merge(&m, len, STRIPES, hash).unwrap(), key);
            // Any damaged stripe loses the key.
            let mut bad = m.clone();
            bad[len * 1234] ^= 1;
            assert_ne!(merge(&bad, len, STRIPES, hash).unwrap(), key);
        }
    }

    #[test]
    fn two_stripes_by_hand() {
        // stripes = 2: d = diffuse(s0); s1 = key ^ d. With a 32-byte key and sha512 the
        // diffusion is one truncated hash: H(be32(0) || s0)[..32].
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let key = [0xabu8; 32];
        let m = split(&key, 2, HashSpec::Sha512, &mut rng);
        let mut d = [0u8; 32];
        HashSpec::Sha512.hash_indexed(0, &m[..32], &mut d);
        let expect: Vec<u8> = key.iter().zip(d).map(|(k, d)| k ^ d).collect();
        assert_eq!(&m[32..], &expect[..]);
        // sha1 (20-byte digest) on a 32-byte block: pieces of 20 and 12 bytes.
        let mut blk = [5u8; 32];
        let orig = blk;
        diffuse(HashSpec::Sha1, &mut blk);
        let mut a = [0u8; 20];
        let mut b = [0u8; 12];
        HashSpec::Sha1.hash_indexed(0, &orig[..20], &mut a);
        HashSpec::Sha1.hash_indexed(1, &orig[20..], &mut b);
        assert_eq!(&blk[..20], &a);
        assert_eq!(&blk[20..], &b);
    }

    #[test]
    fn merge_rejects_short_material() {
        assert!(merge(&[0u8; 10], 32, STRIPES, HashSpec::Sha512).is_none());
        assert!(merge(&[0u8; 10], 0, STRIPES, HashSpec::Sha512).is_none());
    }
}
