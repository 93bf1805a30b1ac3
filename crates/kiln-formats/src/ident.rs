//! Unique ids and timestamps written into images: random and current by default, derived from a
//! seed when builds must be reproducible (`SOURCE_DATE_EPOCH`).

use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where an image's ids and timestamps come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    seed: Vec<u8>,
    unix_time: u64,
    /// Drawn at random (no seed): two builds differ whatever else is equal.
    random: bool,
}

impl Identity {
    /// Random ids, the current time. The randomness is drawn once: the same `purpose` gives
    /// the same id for the life of this identity (fstab names a filesystem UUID before the
    /// filesystem is made), different purposes different ids.
    pub fn random() -> Identity {
        let unix_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut seed = vec![0u8; 32];
        getrandom::fill(&mut seed).expect("the OS random source works");
        Identity {
            seed,
            unix_time,
            random: true,
        }
    }

    /// Ids derived from `seed` (same seed, same ids), and the given time.
    pub fn seeded(seed: &[u8], unix_time: u64) -> Identity {
        Identity {
            seed: seed.to_vec(),
            unix_time,
            random: false,
        }
    }

    /// Seeded from `SOURCE_DATE_EPOCH` and `name` (e.g. the output file name) when the variable
    /// is set to a number, random otherwise.
    pub fn from_env(name: &str) -> Identity {
        match std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(epoch) => Identity::seeded(format!("{epoch}:{name}").as_bytes(), epoch),
            None => Identity::random(),
        }
    }

    /// Whether the ids were drawn at random rather than derived from a seed.
    pub fn is_random(&self) -> bool {
        self.random
    }

    /// Seconds since 1970-01-01 UTC.
    pub fn unix_time(&self) -> u64 {
        self.unix_time
    }

    /// A version-4-shaped UUID, as bytes in RFC 4122 order. `purpose` tells apart the ids of
    /// one image (e.g. "vhdx.page83").
    pub fn uuid(&self, purpose: &str) -> [u8; 16] {
        let mut id = [0u8; 16];
        let mut h = Sha256::new();
        h.update(&self.seed);
        h.update([0]);
        h.update(purpose.as_bytes());
        id.copy_from_slice(&h.finalize()[..16]);
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        id
    }
}

/// A GUID in the mixed-endian layout Microsoft formats use on disk (first three fields little
/// endian), from RFC 4122 bytes.
pub fn guid_le(uuid: [u8; 16]) -> [u8; 16] {
    let mut g = uuid;
    g[0..4].reverse();
    g[4..6].reverse();
    g[6..8].reverse();
    g
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` into RFC 4122 bytes (for constants).
pub const fn uuid_bytes(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    let mut out = [0u8; 16];
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        if b[i] == b'-' {
            i += 1;
            continue;
        }
        out[n / 2] = (out[n / 2] << 4) | hex(b[i]);
        n += 1;
        i += 1;
    }
    out
}

const fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not a hex digit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_repeat_and_differ_by_purpose() {
        let a = Identity::seeded(b"1700000000:x.vhd", 1_700_000_000);
        assert_eq!(a.uuid("vhd"), a.uuid("vhd"));
        assert_ne!(a.uuid("vhd"), a.uuid("vhdx"));
        assert_eq!(a.uuid("vhd")[6] >> 4, 4);
        assert_ne!(Identity::random().uuid("x"), Identity::random().uuid("x"));
    }

    #[test]
    fn guid_layout() {
        let u = uuid_bytes("2DC27766-F623-4200-9D64-115E9BFD4A08");
        assert_eq!(
            guid_le(u),
            [
                0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD,
                0x4A, 0x08
            ]
        );
    }
}
