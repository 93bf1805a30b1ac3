//! Any bytes as a cpio newc archive (an RPM payload): the reader must return entries with safe
//! names or an error, never panic, loop or allocate wildly.
#![no_main]

use kiln_formats::cpio_read::CpioReader;
use libfuzzer_sys::fuzz_target;
use std::io::Read;

fuzz_target!(|data: &[u8]| {
    let mut r = CpioReader::new(data);
    let mut buf = Vec::new();
    while let Ok(Some(e)) = r.next_entry() {
        assert!(!e.name.starts_with('/') && !e.name.split('/').any(|p| p == ".."));
        buf.clear();
        let _ = r.data(e.size).read_to_end(&mut buf);
    }
});
