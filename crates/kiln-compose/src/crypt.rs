//! SHA-512 crypt (`$6$`), as glibc's `crypt(3)` and `openssl passwd -6` compute it (Ulrich
//! Drepper's "Unix crypt using SHA-256 and SHA-512" specification), so that the hashes kiln
//! writes to `/etc/shadow` verify with the target's PAM.
//!
//! Upstream hashes plaintext passwords with `openssl passwd -6 -salt <12 random chars>`; kiln
//! uses 16-character salts (the most the format carries), derived from the build `Identity` so
//! that builds with `SOURCE_DATE_EPOCH` are reproducible.

use kiln_formats::ident::Identity;
use sha2::{Digest, Sha512};

/// The alphabet of crypt's base-64 encoding (not RFC 4648's).
const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const DEFAULT_ROUNDS: u32 = 5000;
const MAX_SALT: usize = 16;

/// A `$6$` hash of `password` with `salt` (only its first 16 characters count, and it ends at
/// the first `$`). `rounds`: `None` for the default 5000 (not written in the hash), otherwise
/// clamped to 1000..=999999999 and written as `rounds=N$`, as glibc does.
pub fn sha512_crypt(password: &[u8], salt: &str, rounds: Option<u32>) -> String {
    let salt = salt.split('$').next().unwrap_or("").as_bytes();
    let salt = &salt[..salt.len().min(MAX_SALT)];
    let n = rounds.map_or(DEFAULT_ROUNDS, |r| r.clamp(1000, 999_999_999));

    let b = Sha512::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut a = Sha512::new().chain_update(password).chain_update(salt);
    a.update(repeat_to(&b, password.len()));
    let mut len = password.len();
    while len > 0 {
        if len & 1 == 1 {
            a.update(b);
        } else {
            a.update(password);
        }
        len >>= 1;
    }
    let a = a.finalize();

    let mut dp = Sha512::new();
    for _ in 0..password.len() {
        dp.update(password);
    }
    let p = repeat_to(&dp.finalize(), password.len());
    let mut ds = Sha512::new();
    for _ in 0..16 + usize::from(a[0]) {
        ds.update(salt);
    }
    let s = repeat_to(&ds.finalize(), salt.len());

    let mut c = a;
    for i in 0..n {
        let mut h = Sha512::new();
        if i % 2 == 1 {
            h.update(&p);
        } else {
            h.update(c);
        }
        if i % 3 != 0 {
            h.update(&s);
        }
        if i % 7 != 0 {
            h.update(&p);
        }
        if i % 2 == 1 {
            h.update(c);
        } else {
            h.update(&p);
        }
        c = h.finalize();
    }

    let mut out = String::from("$6$");
    if rounds.is_some() {
        out.push_str(&format!("rounds={n}$"));
    }
    out.push_str(
        std::str::from_utf8(salt).expect("salt was a str cut at an ASCII '$' or 16 bytes"),
    );
    out.push('$');
    // The digest's bytes go out in this order, three at a time, then the last one alone.
    for k in 0..21 {
        let (x, y, z) = (k, k + 21, k + 42);
        let (b2, b1, b0) = match k % 3 {
            0 => (x, y, z),
            1 => (y, z, x),
            _ => (z, x, y),
        };
        encode(&mut out, (c[b2], c[b1], c[b0]), 4);
    }
    encode(&mut out, (0, 0, c[63]), 2);
    out
}

/// `len` bytes of `digest` repeated.
fn repeat_to(digest: &[u8], len: usize) -> Vec<u8> {
    digest.iter().copied().cycle().take(len).collect()
}

fn encode(out: &mut String, (b2, b1, b0): (u8, u8, u8), chars: usize) {
    let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
    for _ in 0..chars {
        out.push(char::from(ALPHABET[(w & 0x3f) as usize]));
        w >>= 6;
    }
}

/// A 16-character salt for `purpose` (e.g. `user.root`), from the build's identity: random per
/// build, or derived from `SOURCE_DATE_EPOCH` when it is set.
pub fn salt(identity: &Identity, purpose: &str) -> String {
    identity
        .uuid(&format!("salt.{purpose}"))
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 0x3f)]))
        .collect()
}

/// Whether `text` already looks like a crypt hash (`$id$…`), for `PasswordHashed` checks.
pub fn looks_hashed(text: &str) -> bool {
    text.starts_with('$') && text[1..].contains('$')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors of Drepper's specification (libxcrypt refuses the last one's rounds=10
    /// rather than raising it to 1000; kiln never asks for fewer than 5000).
    #[test]
    fn specification_vectors() {
        let cases: &[(&str, Option<u32>, &str, &str)] = &[
            ("saltstring", None, "Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
            ("saltstringsaltstring", Some(10000), "Hello world!", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
            ("toolongsaltstring", Some(5000), "This is just a test", "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"),
            ("roundstoolow", Some(10), "the minimum number is still observed", "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."),
        ];
        for (salt, rounds, password, want) in cases {
            assert_eq!(
                &sha512_crypt(password.as_bytes(), salt, *rounds),
                want,
                "{password}"
            );
        }
    }

    #[test]
    fn salts_are_sixteen_characters_of_the_alphabet_and_reproducible() {
        let id = Identity::seeded(b"x", 1);
        let s = salt(&id, "user.root");
        assert_eq!(s.len(), 16);
        assert!(s.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(s, salt(&Identity::seeded(b"x", 1), "user.root"));
        assert_ne!(s, salt(&id, "user.test"));
    }

    #[test]
    fn hashes_are_recognised() {
        assert!(looks_hashed("$6$abc$def"));
        assert!(!looks_hashed("password"));
        assert!(!looks_hashed("$"));
    }
}
