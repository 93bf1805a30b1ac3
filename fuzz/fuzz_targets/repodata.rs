//! Any bytes as repomd.xml, primary.xml or filelists.xml: parsed or refused, never a panic.
#![no_main]

use kiln_repo::metadata::{parse_filelists, parse_primary, parse_repomd};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_repomd(data);
    let _ = parse_primary(data, |p| {
        let _ = p.nevra();
    });
    let _ = parse_filelists(data);
});
