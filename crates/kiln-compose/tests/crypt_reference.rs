//! kiln's SHA-512 crypt against the two implementations that matter: libxcrypt (what PAM uses
//! on the target; reached through Python's `crypt` module) and `openssl passwd -6` (what
//! upstream hashes passwords with). Passwords of every length around the 64-byte block size,
//! UTF-8, and salts of 1 to 20 characters.

use kiln_compose::crypt::sha512_crypt;
use std::io::Write;
use std::process::{Command, Stdio};

const SALT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn cases() -> Vec<(String, String)> {
    let mut rng = Lcg(7);
    let pieces = ["a", "Z", "0", " ", "!", "ü", "密", "🔑", "$", "\\", "'"];
    (0..300)
        .map(|i| {
            let len = if i < 140 {
                i
            } else {
                rng.next() as usize % 300
            };
            let mut password = String::new();
            while password.len() < len {
                password.push_str(pieces[rng.next() as usize % pieces.len()]);
            }
            let salt_len = 1 + rng.next() as usize % 20;
            let salt = (0..salt_len)
                .map(|_| char::from(SALT_CHARS[rng.next() as usize % 64]))
                .collect();
            (password, salt)
        })
        .collect()
}

#[test]
fn agrees_with_libxcrypt() {
    let cases = cases();
    let script = r#"
import crypt, json, sys, warnings
warnings.simplefilter("ignore")
for pw, salt in json.load(sys.stdin):
    print(crypt.crypt(pw, "$6$" + salt))
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-W", "ignore", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/install-host-deps.sh test)");
    let json = format!(
        "[{}]",
        cases
            .iter()
            .map(|(p, s)| format!("[{},\"{s}\"]", json_string(p)))
            .collect::<Vec<_>>()
            .join(",")
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let theirs: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(theirs.len(), cases.len());
    for ((password, salt), want) in cases.iter().zip(theirs) {
        assert_eq!(
            sha512_crypt(password.as_bytes(), salt, None),
            want,
            "password {password:?} salt {salt}"
        );
    }
}

#[test]
fn agrees_with_openssl_passwd() {
    // openssl refuses an empty password ("<NULL>") and hashes only the first 256 bytes of a
    // longer one (which then never verifies at login); kiln hashes the whole password.
    let cases = cases();
    let comparable = cases
        .iter()
        .filter(|(p, _)| !p.is_empty() && p.len() <= 256);
    for (password, salt) in comparable.step_by(10) {
        let mut child = Command::new("openssl")
            .args(["passwd", "-6", "-salt", salt, "-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl");
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let want = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            sha512_crypt(password.as_bytes(), salt, None),
            want.trim_end(),
            "password {password:?} salt {salt}"
        );
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
