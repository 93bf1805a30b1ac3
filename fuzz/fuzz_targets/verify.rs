//! Any bytes as an image file: `verify` must report problems, never panic or allocate wildly.
#![no_main]

use kiln_formats::verify::{verify, VerifyOptions};
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("kiln-fuzz-verify-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(data).unwrap();
    drop(f);
    for azure in [false, true] {
        let _ = verify(&path, VerifyOptions { azure });
    }
});
