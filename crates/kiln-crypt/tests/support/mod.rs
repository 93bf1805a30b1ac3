//! The oracles that judge an encrypted partition, shared by kiln-crypt's tests and the image
//! tests of kiln-cli (`#[path]`-included there): cryptsetup's `luksDump` and
//! `open --test-passphrase` (no device-mapper needed), and the independent Python decryption
//! `luks_lvm_check.py` (hashlib + `cryptography`).
//!
//! Needs cryptsetup (cryptsetup-bin), /usr/bin/python3 with python3-cryptography:
//! `scripts/install-host-deps.sh test`.

#![allow(dead_code)] // not every test file uses every helper

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/install-host-deps.sh test)"));
    out
}

pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cryptsetup luksDump` shows upstream's format (LUKS1, aes-xts-plain64, sha512, 256-bit
/// master key, payload at 2 MiB), `uuid`, slots 0 (password) and 1 (key file) enabled and the
/// rest disabled; blkid reads the same UUID (upstream's `blkid <part> -s UUID -o value`).
pub fn check_luks_dump(part: &Path, uuid: &str) {
    let dump = ok(Command::new("cryptsetup").arg("luksDump").arg(part));
    let field = |name: &str| {
        dump.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {name} in luksDump:\n{dump}"))
    };
    assert_eq!(field("Version:"), "1");
    assert_eq!(field("Cipher name:"), "aes");
    assert_eq!(field("Cipher mode:"), "xts-plain64");
    assert_eq!(field("Hash spec:"), "sha512");
    assert_eq!(field("Payload offset:"), "4096");
    assert_eq!(field("MK bits:"), "256");
    assert_eq!(field("UUID:"), uuid);
    assert_eq!(field("Key Slot 0:"), "ENABLED");
    assert_eq!(field("Key Slot 1:"), "ENABLED");
    for s in 2..8 {
        assert_eq!(field(&format!("Key Slot {s}:")), "DISABLED");
    }
    let blkid = ok(Command::new("blkid")
        .args(["-s", "UUID", "-o", "value"])
        .arg(part));
    assert_eq!(blkid.trim(), uuid);
}

/// Runs `cmd` with `input` on its standard input; its exit code.
pub fn with_stdin(cmd: &mut Command, input: &[u8]) -> i32 {
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/install-host-deps.sh test)"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait().unwrap().code().unwrap_or(-1)
}

/// `cryptsetup open --test-passphrase` with `secret` as the key file: 0 when it opens a slot,
/// 2 when no slot takes it.
pub fn test_passphrase(part: &Path, secret: &[u8]) -> i32 {
    with_stdin(
        Command::new("cryptsetup")
            .args(["open", "--test-passphrase", "--key-file", "-"])
            .arg(part)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        secret,
    )
}

/// Decrypts `part` with `secret` by `luks_lvm_check.py` into `plain` (the opened LUKS device:
/// LVM label and metadata, then the LV from 1 MiB); its JSON report.
pub fn python_decrypt(part: &Path, secret: &[u8], plain: &Path) -> serde_json::Value {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../kiln-crypt/tests/luks_lvm_check.py");
    let secret_file = plain.with_extension("secret");
    std::fs::write(&secret_file, secret).unwrap();
    let out = ok(Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(part)
        .arg(&secret_file)
        .arg(plain));
    let _ = std::fs::remove_file(&secret_file);
    serde_json::from_str(&out).unwrap()
}
