//! How many PBKDF2 iterations a key slot and the master key digest get.
//!
//! cryptsetup 2.6 (`luksFormat --type luks1`, `luksAddKey`) benchmarks PBKDF2 on the build host
//! and aims each key slot at its LUKS1 `iteration time` of 2000 ms (`cryptsetup --help`:
//! "Default PBKDF for LUKS1: pbkdf2, iteration time: 2000 (ms)"), at least 1000 iterations; the
//! master key digest gets the iterations of 125 ms (`LUKS_MKD_ITERATIONS_MS`), at least 1000.
//! [`PbkdfPolicy::Benchmark`] does the same with kiln's own PBKDF2, measured in thread CPU time
//! (as cryptsetup does) so that a busy build host does not lower the count.
//!
//! A reproducible build cannot benchmark (the counts would differ from host to host and the
//! header with them), so with `SOURCE_DATE_EPOCH` set [`PbkdfPolicy::from_env`] picks fixed
//! counts: [`FIXED_SLOT_ITERATIONS`] = 1,000,000 per key slot (five times OWASP's 2023 minimum
//! of 210,000 for PBKDF2-HMAC-SHA512; what cryptsetup picks for 2 s on a host doing 500,000
//! iterations a second, two thirds of a second on the 1.5 M/s host kiln was written on) and
//! [`FIXED_DIGEST_ITERATIONS`] = 62,500 for the master key digest (the same 125:2000 ratio).

use crate::error::{Error, Result};
use crate::hash::HashSpec;
use std::time::Duration;

/// Key slot iterations when the build is reproducible.
pub const FIXED_SLOT_ITERATIONS: u32 = 1_000_000;
/// Master key digest iterations when the build is reproducible.
pub const FIXED_DIGEST_ITERATIONS: u32 = 62_500;
/// cryptsetup's LUKS1 default iteration time.
pub const DEFAULT_ITER_TIME_MS: u32 = 2000;
/// cryptsetup's `LUKS_MKD_ITERATIONS_MS`.
pub const DIGEST_ITER_TIME_MS: u32 = 125;
/// cryptsetup's minimum for both (`LUKS_SLOT_ITERATIONS_MIN`, `LUKS_MKD_ITERATIONS_MIN`).
pub const MIN_ITERATIONS: u32 = 1000;

/// Where the iteration counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PbkdfPolicy {
    /// Benchmark this host, as cryptsetup does: key slots take `iter_time_ms` of PBKDF2, the
    /// master key digest 125/2000 of that.
    Benchmark { iter_time_ms: u32 },
    /// Fixed counts (reproducible builds, tests).
    Fixed {
        slot_iterations: u32,
        digest_iterations: u32,
    },
}

/// Whether `SOURCE_DATE_EPOCH` is set to a number: the build must be reproducible.
pub fn reproducible_build() -> bool {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .is_some_and(|v| v.trim().parse::<u64>().is_ok())
}

/// The counts a policy settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iterations {
    pub slot: u32,
    pub digest: u32,
}

impl PbkdfPolicy {
    /// Fixed counts ([`FIXED_SLOT_ITERATIONS`], [`FIXED_DIGEST_ITERATIONS`]) when
    /// `SOURCE_DATE_EPOCH` is set to a number, cryptsetup's benchmark of 2000 ms otherwise.
    pub fn from_env() -> PbkdfPolicy {
        if reproducible_build() {
            PbkdfPolicy::reproducible()
        } else {
            PbkdfPolicy::Benchmark {
                iter_time_ms: DEFAULT_ITER_TIME_MS,
            }
        }
    }

    /// The fixed counts of reproducible builds.
    pub fn reproducible() -> PbkdfPolicy {
        PbkdfPolicy::Fixed {
            slot_iterations: FIXED_SLOT_ITERATIONS,
            digest_iterations: FIXED_DIGEST_ITERATIONS,
        }
    }

    /// Settles the counts (benchmarking takes about half a second).
    pub fn iterations(self, hash: HashSpec, key_len: usize) -> Result<Iterations> {
        match self {
            PbkdfPolicy::Fixed {
                slot_iterations,
                digest_iterations,
            } => {
                if slot_iterations == 0 || digest_iterations == 0 {
                    return Err(Error::Pbkdf("iteration counts must be at least 1".into()));
                }
                Ok(Iterations {
                    slot: slot_iterations,
                    digest: digest_iterations,
                })
            }
            PbkdfPolicy::Benchmark { iter_time_ms } => {
                if iter_time_ms == 0 {
                    return Err(Error::Pbkdf("iteration time must be at least 1 ms".into()));
                }
                let per_second = benchmark(hash, key_len);
                let slot = per_second * f64::from(iter_time_ms) / 1000.0;
                let digest = per_second * f64::from(DIGEST_ITER_TIME_MS) / 1000.0;
                let clamp = |v: f64| -> Result<u32> {
                    if v > f64::from(u32::MAX) {
                        return Err(Error::Pbkdf(format!(
                            "{v:.0} iterations do not fit the header's 32-bit count; lower the iteration time"
                        )));
                    }
                    Ok((v as u32).max(MIN_ITERATIONS))
                };
                Ok(Iterations {
                    slot: clamp(slot)?,
                    digest: clamp(digest)?,
                })
            }
        }
    }
}

/// PBKDF2 iterations per second of this thread's CPU time for a `key_len`-byte output: doubles
/// the count from 2^12 until one run takes at least 250 ms.
pub fn benchmark(hash: HashSpec, key_len: usize) -> f64 {
    let mut out = vec![0u8; key_len.max(1)];
    let salt = [0u8; 32];
    let mut iterations: u32 = 1 << 12;
    loop {
        let start = thread_cpu_time();
        hash.pbkdf2(b"kiln benchmark passphrase", &salt, iterations, &mut out);
        let spent = thread_cpu_time().saturating_sub(start);
        if spent >= Duration::from_millis(250) || iterations >= 1 << 30 {
            let secs = spent.as_secs_f64().max(1e-6);
            return f64::from(iterations) / secs;
        }
        iterations *= 2;
    }
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_counts_are_kept_and_zero_refused() {
        let p = PbkdfPolicy::Fixed {
            slot_iterations: 1234,
            digest_iterations: 56,
        };
        assert_eq!(
            p.iterations(HashSpec::Sha512, 32).unwrap(),
            Iterations {
                slot: 1234,
                digest: 56
            }
        );
        let z = PbkdfPolicy::Fixed {
            slot_iterations: 0,
            digest_iterations: 1,
        };
        assert!(z.iterations(HashSpec::Sha512, 32).is_err());
    }

    #[test]
    fn benchmark_follows_cryptsetup_ratios() {
        let it = PbkdfPolicy::Benchmark { iter_time_ms: 100 }
            .iterations(HashSpec::Sha512, 32)
            .unwrap();
        assert!(it.slot >= MIN_ITERATIONS && it.digest >= MIN_ITERATIONS);
        // 125 ms for the digest against 100 ms for the slot.
        assert!(it.digest >= it.slot, "{it:?}");
    }
}
