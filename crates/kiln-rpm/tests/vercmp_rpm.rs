//! `rpmvercmp` and EVR ordering against the `rpm` program itself: rpm's own test pairs
//! (tests/rpmvercmp.at, with their expected results), 2,000 generated version pairs and 1,000
//! generated `epoch:version-release` pairs, all compared by rpm's Lua `rpm.vercmp` (which parses
//! its arguments as EVRs) in one run each.

use kiln_rpm::{rpmvercmp, Evr};
use std::cmp::Ordering;
use std::process::Command;

/// rpm's test pairs: (a, b, expected).
const RPM_TESTS: &[(&str, &str, i32)] = &[
    ("1.0", "1.0", 0),
    ("1.0", "2.0", -1),
    ("2.0", "1.0", 1),
    ("2.0.1", "2.0.1", 0),
    ("2.0", "2.0.1", -1),
    ("2.0.1", "2.0", 1),
    ("2.0.1a", "2.0.1a", 0),
    ("2.0.1a", "2.0.1", 1),
    ("2.0.1", "2.0.1a", -1),
    ("5.5p1", "5.5p1", 0),
    ("5.5p1", "5.5p2", -1),
    ("5.5p2", "5.5p1", 1),
    ("5.5p10", "5.5p10", 0),
    ("5.5p1", "5.5p10", -1),
    ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1),
    ("10.1xyz", "10xyz", 1),
    ("xyz10", "xyz10", 0),
    ("xyz10", "xyz10.1", -1),
    ("xyz10.1", "xyz10", 1),
    ("xyz.4", "xyz.4", 0),
    ("xyz.4", "8", -1),
    ("8", "xyz.4", 1),
    ("xyz.4", "2", -1),
    ("2", "xyz.4", 1),
    ("5.5p2", "5.6p1", -1),
    ("5.6p1", "5.5p2", 1),
    ("5.6p1", "6.5p1", -1),
    ("6.5p1", "5.6p1", 1),
    ("6.0.rc1", "6.0", 1),
    ("6.0", "6.0.rc1", -1),
    ("10b2", "10a1", 1),
    ("10a2", "10b2", -1),
    ("1.0aa", "1.0aa", 0),
    ("1.0a", "1.0aa", -1),
    ("1.0aa", "1.0a", 1),
    ("10.0001", "10.0001", 0),
    ("10.0001", "10.1", 0),
    ("10.1", "10.0001", 0),
    ("10.0001", "10.0039", -1),
    ("10.0039", "10.0001", 1),
    ("4.999.9", "5.0", -1),
    ("5.0", "4.999.9", 1),
    ("20101121", "20101121", 0),
    ("20101121", "20101122", -1),
    ("20101122", "20101121", 1),
    ("2_0", "2_0", 0),
    ("2.0", "2_0", 0),
    ("2_0", "2.0", 0),
    ("a", "a", 0),
    ("a+", "a+", 0),
    ("a+", "a_", 0),
    ("a_", "a+", 0),
    ("+a", "+a", 0),
    ("+a", "_a", 0),
    ("_a", "+a", 0),
    ("+_", "+_", 0),
    ("_+", "+_", 0),
    ("_+", "_+", 0),
    ("+", "_", 0),
    ("_", "+", 0),
    ("1.0~rc1", "1.0~rc1", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~rc2", "1.0~rc1", 1),
    ("1.0~rc1~git123", "1.0~rc1~git123", 0),
    ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0~rc1", "1.0~rc1~git123", 1),
    ("1.0^", "1.0^", 0),
    ("1.0^", "1.0", 1),
    ("1.0", "1.0^", -1),
    ("1.0^git1", "1.0^git1", 0),
    ("1.0^git1", "1.0", 1),
    ("1.0", "1.0^git1", -1),
    ("1.0^git1", "1.0^git2", -1),
    ("1.0^git2", "1.0^git1", 1),
    ("1.0^git1", "1.01", -1),
    ("1.01", "1.0^git1", 1),
    ("1.0^20160101", "1.0^20160101", 0),
    ("1.0^20160101", "1.0.1", -1),
    ("1.0.1", "1.0^20160101", 1),
    ("1.0^20160101^git1", "1.0^20160101^git1", 0),
    ("1.0^20160102", "1.0^20160101^git1", 1),
    ("1.0^20160101^git1", "1.0^20160102", -1),
    ("1.0~rc1^git1", "1.0~rc1^git1", 0),
    ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc1^git1", -1),
    ("1.0^git1~pre", "1.0^git1~pre", 0),
    ("1.0^git1", "1.0^git1~pre", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
];

fn as_int(o: Ordering) -> i32 {
    match o {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

/// Version-like strings from a deterministic generator: segments of digits (leading zeros
/// included), letters, and every separator rpm treats specially.
fn generated(n: usize) -> Vec<(String, String)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    // No '-' or ':': rpm.vercmp would read them as EVR separators.
    let pieces = [
        "0",
        "1",
        "2",
        "9",
        "10",
        "01",
        "007",
        "99999999999999999999",
        "a",
        "b",
        "rc",
        "git",
        "Z",
        "pre",
        "p",
        ".",
        "_",
        "+",
        "~",
        "^",
        "%",
    ];
    let make = |next: &mut dyn FnMut(u64) -> u64| {
        let len = 1 + next(6) as usize;
        (0..len)
            .map(|_| pieces[next(pieces.len() as u64) as usize])
            .collect::<String>()
    };
    (0..n)
        .map(|i| {
            let a = make(&mut next);
            // Half the pairs are near-misses of each other, where order is subtle.
            let b = if i % 2 == 0 {
                let mut b = a.clone();
                let at = next(b.len() as u64 + 1) as usize;
                b.insert_str(at.min(b.len()), pieces[next(pieces.len() as u64) as usize]);
                b
            } else {
                make(&mut next)
            };
            (a, b)
        })
        .collect()
}

/// rpm.vercmp on every pair, in one rpm run.
fn rpm_vercmp(pairs: &[(String, String)]) -> Vec<i32> {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("pairs.txt");
    let text: String = pairs.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect();
    std::fs::write(&list, text).unwrap();
    // rpm's Lua print() writes into the macro's expansion, without newlines: separate by commas.
    let lua = format!(
        "%{{lua: for line in io.lines('{}') do local t = string.find(line, '\\t', 1, true); print(rpm.vercmp(string.sub(line, 1, t - 1), string.sub(line, t + 1)) .. ',') end}}",
        list.display()
    );
    let out = Command::new("rpm")
        .arg("--eval")
        .arg(&lua)
        .output()
        .expect("rpm is installed (Debian package rpm)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<i32> = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(',')
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("rpm printed {l:?}"))
        })
        .collect();
    assert_eq!(results.len(), pairs.len());
    results
}

#[test]
fn rpmvercmp_agrees_with_rpm() {
    let mut pairs: Vec<(String, String)> = RPM_TESTS
        .iter()
        .map(|(a, b, _)| (a.to_string(), b.to_string()))
        .collect();
    pairs.extend(generated(2000));
    let results = rpm_vercmp(&pairs);
    let mut disagreements = Vec::new();
    for (i, ((a, b), rpm)) in pairs.iter().zip(&results).enumerate() {
        let kiln = as_int(rpmvercmp(a, b));
        if kiln != *rpm {
            disagreements.push(format!("rpmvercmp({a:?}, {b:?}): rpm {rpm}, kiln {kiln}"));
        }
        if let Some((_, _, want)) = RPM_TESTS.get(i) {
            assert_eq!(*rpm, *want, "rpm itself on {a:?} {b:?}");
        }
    }
    println!(
        "rpmvercmp: {} of {} pairs agree with rpm",
        pairs.len() - disagreements.len(),
        pairs.len()
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn evr_order_agrees_with_rpm() {
    let versions = generated(2000);
    let evr = |i: usize, v: &str, r: &str| -> String {
        let mut s = String::new();
        if i % 3 == 0 {
            s.push_str(&format!("{}:", i % 4));
        }
        s.push_str(if v.is_empty() { "1" } else { v });
        if i % 5 != 0 {
            s.push('-');
            s.push_str(if r.is_empty() { "1" } else { r });
        }
        s
    };
    let pairs: Vec<(String, String)> = versions
        .chunks(2)
        .enumerate()
        .map(|(i, c)| (evr(i, &c[0].0, &c[1].0), evr(i / 2, &c[0].1, &c[1].1)))
        .collect();
    let results = rpm_vercmp(&pairs);
    let mut disagreements = Vec::new();
    for ((a, b), rpm) in pairs.iter().zip(&results) {
        let kiln = as_int(Evr::parse(a).cmp(&Evr::parse(b)));
        if kiln != *rpm {
            disagreements.push(format!("{a:?} vs {b:?}: rpm {rpm}, kiln {kiln}"));
        }
    }
    println!(
        "EVR order: {} of {} pairs agree with rpm",
        pairs.len() - disagreements.len(),
        pairs.len()
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
