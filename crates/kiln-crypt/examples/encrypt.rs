//! Encrypts a plain filesystem image into a LUKS1 + LVM2 partition (the tests' and the
//! benchmark's driver).
//!
//! ```text
//! encrypt lv-size PARTITION_SIZE
//! encrypt speed [MIB]          # cipher only, in memory: MB/s of xts-mode, batched, all cores
//! encrypt OUT PARTITION_SIZE IMAGE [--offset N] [--password P] [--keyfile FILE]
//!         [--seed S] [--iterations SLOT,DIGEST | --benchmark MS] [--host H] [--time T]
//! ```
//!
//! Prints `uuid=…`, `lv_size=…`, `seconds=…` and `iterations=…` lines. OUT is created if
//! missing and never truncated (a disk image may hold other partitions).

use kiln_crypt::{
    lv_size, os_rng, seeded_rng, EncryptedVolume, HashSpec, LuksOptions, PbkdfPolicy, Rng,
    VolumeOptions,
};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("encrypt: {e}");
            ExitCode::from(1)
        }
    }
}

fn num(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("lv-size") {
        let size = num(args.get(1).ok_or("lv-size needs a partition size")?)?;
        println!("{}", lv_size(size));
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("speed") {
        let mib = args.get(1).map_or(Ok(256), |s| num(s))?;
        speed(mib as usize);
        return Ok(());
    }
    if args.len() < 3 {
        return Err("usage: encrypt OUT PARTITION_SIZE IMAGE [options] | lv-size SIZE".into());
    }
    let (out, size, image) = (&args[0], num(&args[1])?, &args[2]);
    let mut offset = 0;
    let mut password = b"password".to_vec();
    let mut keyfile = None;
    let mut seed: Option<String> = None;
    let mut pbkdf = PbkdfPolicy::from_env();
    let mut host = "kiln".to_string();
    let mut time = 1_700_000_000;
    let mut it = args[3..].iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--offset" => offset = num(val()?)?,
            "--password" => password = val()?.as_bytes().to_vec(),
            "--keyfile" => {
                let p = val()?;
                keyfile = Some(std::fs::read(p).map_err(|e| format!("{p}: {e}"))?)
            }
            "--seed" => seed = Some(val()?.clone()),
            "--iterations" => {
                let v = val()?;
                let (s, d) = v.split_once(',').ok_or("--iterations SLOT,DIGEST")?;
                pbkdf = PbkdfPolicy::Fixed {
                    slot_iterations: num(s)? as u32,
                    digest_iterations: num(d)? as u32,
                };
            }
            "--benchmark" => {
                pbkdf = PbkdfPolicy::Benchmark {
                    iter_time_ms: num(val()?)? as u32,
                }
            }
            "--host" => host = val()?.clone(),
            "--time" => time = num(val()?)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let opts = VolumeOptions {
        luks: LuksOptions {
            key_bytes: 32,
            hash: HashSpec::Sha512,
            pbkdf,
        },
        password,
        keyfile,
        system: format!("Linux {host}"),
        creation_host: host,
        creation_time: time,
    };
    let mut rng: Rng = match &seed {
        Some(s) => seeded_rng(s.as_bytes()),
        None => os_rng().map_err(|e| e.to_string())?,
    };
    let start = Instant::now();
    let vol = EncryptedVolume::new(size, &opts, &mut rng).map_err(|e| e.to_string())?;
    let formatted = start.elapsed();
    let disk = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(out)
        .map_err(|e| format!("{out}: {e}"))?;
    let mut fs = std::fs::File::open(image).map_err(|e| format!("{image}: {e}"))?;
    let t = Instant::now();
    vol.write_at(&disk, offset, &mut fs)
        .map_err(|e| e.to_string())?;
    disk.sync_all().map_err(|e| format!("{out}: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    let it = vol.luks().iterations();
    println!("uuid={}", vol.luks().uuid());
    println!("lv_size={}", vol.layout().lv_size);
    println!("iterations={},{}", it.slot, it.digest);
    println!("format_seconds={:.3}", formatted.as_secs_f64());
    println!("seconds={secs:.3}");
    println!("mb_per_s={:.1}", size as f64 / secs / 1e6);
    Ok(())
}

/// In-memory aes-xts-plain64 throughput: the `xts-mode` crate (one block at a time), kiln's
/// batched path on one core, and on all cores in 256 KiB tasks as the writer does.
fn speed(mib: usize) {
    use kiln_crypt::xts::SectorCipher;
    use rayon::prelude::*;
    let cipher = SectorCipher::new(&[0x42u8; 32]).expect("a 32-byte key");
    let mut buf = vec![0u8; mib << 20];
    let mb = buf.len() as f64 / 1e6;
    let time = |f: &mut dyn FnMut()| {
        f(); // warm up
        let t = Instant::now();
        f();
        mb / t.elapsed().as_secs_f64()
    };
    let reference = time(&mut || cipher.encrypt_reference(&mut buf, 0));
    let batched = time(&mut || cipher.encrypt_sectors(&mut buf, 0));
    let parallel = time(&mut || {
        buf.par_chunks_mut(256 << 10)
            .enumerate()
            .for_each(|(i, c)| cipher.encrypt_sectors(c, i as u64 * 512))
    });
    println!("xts_mode_mb_per_s={reference:.0}");
    println!("batched_1core_mb_per_s={batched:.0}");
    println!("batched_all_cores_mb_per_s={parallel:.0}");
    println!("threads={}", rayon::current_num_threads());
}
