//! Any text as an RPM dependency, and as two versions: parse or fail cleanly, never panic;
//! whatever parses prints back to something that parses the same.
#![no_main]

use kiln_rpm::{rpmvercmp, Dep};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(dep) = Dep::parse(text) {
        let again = Dep::parse(&dep.to_string()).expect("printed dependencies parse");
        assert_eq!(again, dep);
    }
    let mut middle = text.len() / 2;
    while !text.is_char_boundary(middle) {
        middle -= 1;
    }
    let (a, b) = text.split_at(middle);
    assert_eq!(rpmvercmp(a, b), rpmvercmp(b, a).reverse());
});
