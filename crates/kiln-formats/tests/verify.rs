//! `verify` accepts what kiln and qemu-img write, and finds deliberately broken copies: a flipped
//! checksum byte, a truncated file, an overlapping BAT (or L2) entry.

use kiln_formats::ident::Identity;
use kiln_formats::verify::{verify, Report, Severity, VerifyOptions};
use kiln_formats::{convert, Compression, ConvertOptions, Format, Subformat, MIB};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn input(dir: &Path) -> PathBuf {
    let p = dir.join("in.raw");
    let f = File::create(&p).unwrap();
    f.set_len(100 * MIB).unwrap();
    for (i, off) in [0u64, 3 * MIB, 40 * MIB, 99 * MIB].iter().enumerate() {
        f.write_all_at(&vec![i as u8 + 1; 300_000], *off).unwrap();
    }
    p
}

fn make(dir: &Path, name: &str, format: Format, sub: Option<Subformat>, c: Compression) -> PathBuf {
    let out = dir.join(name);
    let opts = ConvertOptions {
        format,
        subformat: sub,
        compression: c,
        identity: Identity::seeded(b"verify", 1_700_000_000),
        progress: None,
    };
    convert(&input(dir), &out, &opts).unwrap();
    out
}

fn check(path: &Path) -> Report {
    verify(path, VerifyOptions::default()).unwrap()
}

fn errors(r: &Report) -> Vec<String> {
    r.problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.to_string())
        .collect()
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0; len];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut b, offset)
        .unwrap();
    b
}

fn truncate(path: &Path, by: u64) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - by).unwrap();
}

#[test]
fn kiln_outputs_verify() {
    let dir = tempfile::tempdir().unwrap();
    for (name, f, s, c, kind) in [
        ("a.raw", Format::Raw, None, Compression::None, ("raw", None)),
        (
            "a.vhd",
            Format::Vhd,
            Some(Subformat::Fixed),
            Compression::None,
            ("vhd", Some("fixed")),
        ),
        (
            "b.vhd",
            Format::Vhd,
            Some(Subformat::Dynamic),
            Compression::None,
            ("vhd", Some("dynamic")),
        ),
        (
            "a.vhdx",
            Format::Vhdx,
            Some(Subformat::Dynamic),
            Compression::None,
            ("vhdx", Some("dynamic")),
        ),
        (
            "b.vhdx",
            Format::Vhdx,
            Some(Subformat::Fixed),
            Compression::None,
            ("vhdx", Some("fixed")),
        ),
        (
            "a.qcow2",
            Format::Qcow2,
            None,
            Compression::None,
            ("qcow2", None),
        ),
        (
            "b.qcow2",
            Format::Qcow2,
            None,
            Compression::Zlib,
            ("qcow2", None),
        ),
        (
            "c.qcow2",
            Format::Qcow2,
            None,
            Compression::Zstd,
            ("qcow2", None),
        ),
    ] {
        let out = make(dir.path(), name, f, s, c);
        let r = check(&out);
        assert!(r.problems.is_empty(), "{name}: {:?}", r.problems);
        assert_eq!((r.format, r.subformat), kind, "{name}");
        assert_eq!(r.virtual_size, Some(100 * MIB), "{name}");
    }
    let azure = verify(&dir.path().join("a.vhd"), VerifyOptions { azure: true }).unwrap();
    assert!(azure.is_ok());
    let azure = verify(&dir.path().join("b.vhd"), VerifyOptions { azure: true }).unwrap();
    assert!(errors(&azure)[0].contains("Azure accepts only fixed VHDs"));
}

#[test]
fn qemu_img_outputs_verify() {
    let dir = tempfile::tempdir().unwrap();
    let src = input(dir.path());
    for (name, args) in [
        (
            "q.vhd",
            vec!["-O", "vpc", "-o", "subformat=fixed,force_size"],
        ),
        ("qd.vhd", vec!["-O", "vpc"]),
        ("q.vhdx", vec!["-O", "vhdx"]),
        ("qf.vhdx", vec!["-O", "vhdx", "-o", "subformat=fixed"]),
        ("q.qcow2", vec!["-O", "qcow2"]),
        ("qc.qcow2", vec!["-O", "qcow2", "-c"]),
        (
            "qz.qcow2",
            vec!["-O", "qcow2", "-c", "-o", "compression_type=zstd"],
        ),
    ] {
        let out = dir.path().join(name);
        let status = Command::new("qemu-img")
            .args(["convert", "-f", "raw"])
            .args(&args)
            .arg(&src)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success(), "{name}");
        let r = check(&out);
        assert!(r.is_ok(), "{name}: {:?}", r.problems);
    }
}

#[test]
fn vhd_corruptions_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let fixed = make(
        dir.path(),
        "f.vhd",
        Format::Vhd,
        Some(Subformat::Fixed),
        Compression::None,
    );
    let footer = 100 * MIB;
    // A flipped checksum byte.
    let b = read_at(&fixed, footer + 67, 1)[0];
    patch(&fixed, footer + 67, &[b ^ 0xff]);
    let e = errors(&check(&fixed));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains(&format!("offset {}", footer + 64)) && e[0].contains("checksum"),
        "{e:?}"
    );
    // Truncated: the footer is gone.
    let fixed = make(
        dir.path(),
        "g.vhd",
        Format::Vhd,
        Some(Subformat::Fixed),
        Compression::None,
    );
    truncate(&fixed, 100);
    assert!(!check(&fixed).is_ok());

    let dynamic = make(
        dir.path(),
        "d.vhd",
        Format::Vhd,
        Some(Subformat::Dynamic),
        Compression::None,
    );
    // Overlapping BAT entries: the second allocated block placed on the first.
    let bat = read_at(&dynamic, 1536, 8);
    patch(&dynamic, 1536 + 4, &bat[0..4]);
    let e = errors(&check(&dynamic));
    assert!(e.iter().any(|m| m.contains("overlaps")), "{e:?}");
    let dynamic = make(
        dir.path(),
        "e.vhd",
        Format::Vhd,
        Some(Subformat::Dynamic),
        Compression::None,
    );
    truncate(&dynamic, 3 * MIB);
    let e = errors(&check(&dynamic));
    assert!(e.iter().any(|m| m.contains("truncated")), "{e:?}");
}

#[test]
fn vhdx_corruptions_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let v = make(dir.path(), "a.vhdx", Format::Vhdx, None, Compression::None);
    // One header broken: reported, the other header still serves.
    patch(&v, 64 * 1024 + 4, &[0xde]);
    let r = check(&v);
    assert_eq!(errors(&r).len(), 1, "{:?}", r.problems);
    assert!(errors(&r)[0].contains("header checksum"));
    // Both broken: nothing to read.
    patch(&v, 128 * 1024 + 4, &[0xde]);
    assert!(errors(&check(&v))
        .iter()
        .any(|m| m.contains("neither VHDX header is valid")));

    // Overlapping BAT entries.
    let v = make(dir.path(), "b.vhdx", Format::Vhdx, None, Compression::None);
    let bat_at = 3 * MIB;
    let first = read_at(&v, bat_at, 8);
    patch(&v, bat_at + 8, &first);
    let e = errors(&check(&v));
    assert!(e.iter().any(|m| m.contains("overlaps")), "{e:?}");

    // Truncated: the last block lies past the end.
    let v = make(dir.path(), "c.vhdx", Format::Vhdx, None, Compression::None);
    truncate(&v, 40 * MIB);
    let e = errors(&check(&v));
    assert!(e.iter().any(|m| m.contains("outside the file")), "{e:?}");

    // A flipped region table checksum byte: the second copy serves, with one error.
    let v = make(dir.path(), "d.vhdx", Format::Vhdx, None, Compression::None);
    patch(&v, 192 * 1024 + 5, &[0x55]);
    assert_eq!(errors(&check(&v)).len(), 1);
}

#[test]
fn qcow2_corruptions_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let q = make(
        dir.path(),
        "a.qcow2",
        Format::Qcow2,
        None,
        Compression::None,
    );
    // Two L2 entries on one cluster: the refcount (1) is below the references (2).
    let l1 = u64::from_be_bytes(read_at(&q, 40, 8).try_into().unwrap());
    let l2 = u64::from_be_bytes(read_at(&q, l1, 8).try_into().unwrap()) & 0x00ff_ffff_ffff_fe00;
    let first = read_at(&q, l2, 8);
    patch(&q, l2 + 8, &first);
    let e = errors(&check(&q));
    assert!(
        e.iter()
            .any(|m| m.contains("referenced 2 times but its refcount is 1")),
        "{e:?}"
    );
    // Truncated.
    let q = make(
        dir.path(),
        "b.qcow2",
        Format::Qcow2,
        None,
        Compression::None,
    );
    truncate(&q, 200_000);
    assert!(!check(&q).is_ok());
    // A flipped magic/version byte.
    let q = make(
        dir.path(),
        "c.qcow2",
        Format::Qcow2,
        None,
        Compression::None,
    );
    patch(&q, 7, &[9]);
    assert!(errors(&check(&q))[0].contains("version 9"));
}

#[test]
fn azure_rules() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd.raw");
    let f = File::create(&odd).unwrap();
    f.set_len(MIB + 512).unwrap();
    drop(f);
    let q = dir.path().join("odd.vhd");
    assert!(Command::new("qemu-img")
        .args([
            "convert",
            "-f",
            "raw",
            "-O",
            "vpc",
            "-o",
            "subformat=fixed,force_size"
        ])
        .arg(&odd)
        .arg(&q)
        .status()
        .unwrap()
        .success());
    let r = verify(&q, VerifyOptions { azure: true }).unwrap();
    assert!(
        errors(&r).iter().any(|m| m.contains("whole number of MiB")),
        "{:?}",
        r.problems
    );
    assert!(check(&q).is_ok(), "structurally fine");
}

#[test]
fn vmdk_corruptions_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let v = make(dir.path(), "a.vmdk", Format::Vmdk, None, Compression::None);
    // Truncated: the footer and end-of-stream markers are gone.
    truncate(&v, 700);
    assert!(errors(&check(&v)).iter().any(|m| m.contains("truncated")));
    // Two grain table entries on one grain: the marker's sector disagrees, and they overlap.
    let v = make(dir.path(), "b.vmdk", Format::Vmdk, None, Compression::None);
    let len = std::fs::metadata(&v).unwrap().len();
    let footer = read_at(&v, len - 1024, 512);
    let gd = u64::from_le_bytes(footer[56..64].try_into().unwrap());
    let gt = u64::from(u32::from_le_bytes(
        read_at(&v, gd * 512, 4).try_into().unwrap(),
    ));
    let first = read_at(&v, gt * 512, 4);
    patch(&v, gt * 512 + 4, &first);
    let e = errors(&check(&v));
    assert!(e.iter().any(|m| m.contains("overlaps")), "{e:?}");
    assert!(
        e.iter().any(|m| m.contains("grain marker says sector 0")),
        "{e:?}"
    );
}
