//! RPM files that once crashed the header reader (found by `make fuzz FUZZ_TARGET=rpmheader`):
//! they must be refused with an error.

use std::path::Path;

#[test]
fn corrupt_headers_are_refused_not_crashed_on() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    // Fuzzer findings: an entry offset past the data store (crashed the rpm crate), and a
    // string array claiming 2^28 strings in a few bytes (made it allocate 11 GB).
    for name in [
        "fuzz-crash-header-offset.rpm",
        "fuzz-oom-string-array-count.rpm",
    ] {
        let e = kiln_repo::local::read_rpm(&data.join(name), name).unwrap_err();
        assert!(e.to_string().contains("not a readable RPM"), "{name}: {e}");
    }
    let name = "fuzz-crash-header-offset.rpm";
    // The same file (a mutated sample package) cut short anywhere in its lead and headers.
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(data.join(name)).unwrap();
    for cut in [0, 10, 95, 96, 100, 111, 112, 200, 1000, 4000] {
        let p = dir.path().join("cut.rpm");
        std::fs::write(&p, &good[..cut.min(good.len())]).unwrap();
        assert!(
            kiln_repo::local::read_rpm(&p, "cut.rpm").is_err(),
            "cut at {cut}"
        );
    }
}
