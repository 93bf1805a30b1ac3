//! Any bytes as a disk image input (`roast --input`): probed, checked and read as raw, VHD or
//! QCOW2 (or VHDX) by `kiln_formats::image`, or refused — never a panic, a hang or a huge allocation.
#![no_main]

use kiln_formats::image;
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("kiln-fuzz-image-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(data).unwrap();
    drop(f);
    if let Ok((input, _)) = image::open(&path) {
        // Read what the image maps (at most 64 MiB of it: a virtual size may be huge).
        let mut budget: u64 = 64 << 20;
        let _ = input.for_each_data_run(4096, |_, d| {
            budget = budget.saturating_sub(d.len() as u64);
            if budget == 0 {
                return Err(std::io::Error::other("enough"));
            }
            Ok(())
        });
    }
});
