//! Any bytes as an RPM file: read or refused, and its digests checked or refused, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("kiln-fuzz-rpm-{}.rpm", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(data).unwrap();
    drop(f);
    if let Ok(p) = kiln_repo::local::read_rpm(&path, "x.rpm") {
        let _ = p.nevra();
    }
    let _ = kiln_repo::local::verify_digests(&path);
});
