//! Any bytes given as an image config: decoding, validation and both renderings of the report
//! must never panic.
#![no_main]

use kiln_config::{compat, validate_bytes, Options};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let opts = Options {
        base_dir: Some("/nonexistent-kiln-fuzz".into()),
        package_checks: true,
        file_checks: true,
    };
    let v = validate_bytes(data, Path::new("fuzz.json"), &opts);
    let _ = v.report.render(true);
    let _ = v.report.to_json();
    let _ = v.report.upstream_summary(Path::new("fuzz.json"));
    if let Ok(text) = std::str::from_utf8(data) {
        for level in ["Disk", "Partition", "SystemConfig", "FileConfigList", "Network", "PackageRepo", "User"] {
            let _ = compat::check_fragment(level, text).map(|r| r.render(false));
        }
        let _ = kiln_config::packages::PackageSpec::parse(text);
    }
});
