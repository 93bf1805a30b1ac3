//! Any text as a kickstart partition file must parse or fail cleanly.
#![no_main]

use kiln_config::kickstart::{parse_partitions, HostBoot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for efi in [false, true] {
            let _ = parse_partitions(text, HostBoot { efi, gpt_on_cmdline: false });
        }
    }
});
