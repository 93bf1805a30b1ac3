//! `convert` reads its input by format, told by magic: raw, VHD (fixed, dynamic), VHDX (fixed,
//! dynamic) and QCOW2 (v2, v3, zlib and zstd compressed) made by qemu-img and by kiln convert to
//! a raw disk that `qemu-img compare` finds identical to the source image; VMDK inputs,
//! archives, damaged and encrypted images are refused with what to do.

use kiln_formats::image::InputError;
use kiln_formats::{convert, Compression, ConvertOptions, Error, Format, Subformat, MIB};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A 20 MiB sparse disk with data scattered over it (not cluster aligned everywhere).
fn raw_input(dir: &Path) -> PathBuf {
    let p = dir.join("src.raw");
    let f = File::create(&p).unwrap();
    f.set_len(20 * MIB).unwrap();
    for (i, off) in [0u64, 65_536 * 3 + 512, 7 * MIB + 4096, 20 * MIB - 70_000]
        .iter()
        .enumerate()
    {
        let data: Vec<u8> = (0..70_000u32)
            .map(|n| (n.wrapping_mul(2_654_435_761) >> (i + 3)) as u8)
            .collect();
        f.write_all_at(&data, *off).unwrap();
    }
    p
}

fn qemu_img(args: &[&str]) {
    let o = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn to_raw(input: &Path, out: &Path) -> Result<(), Error> {
    convert(input, out, &ConvertOptions::new(Format::Raw)).map(|_| ())
}

fn kiln_image(src: &Path, out: &Path, format: Format, sub: Option<Subformat>, c: Compression) {
    let mut opts = ConvertOptions::new(format);
    opts.subformat = sub;
    opts.compression = c;
    convert(src, out, &opts).unwrap();
}

#[test]
fn qcow2_vhd_and_vhdx_inputs_convert_to_what_qemu_reads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = raw_input(d);
    let s = src.to_str().unwrap();
    let at = |n: &str| d.join(n).to_str().unwrap().to_string();
    let mut made: Vec<(String, &str)> = Vec::new();
    // Made by qemu-img: (name, qemu-img format, convert options).
    for (name, fmt, extra) in [
        ("q.qcow2", "qcow2", &[][..]),
        ("qz.qcow2", "qcow2", &["-c"][..]),
        (
            "qzstd.qcow2",
            "qcow2",
            &["-c", "-o", "compression_type=zstd"][..],
        ),
        (
            "qv2.qcow2",
            "qcow2",
            &["-o", "compat=0.10,cluster_size=4096"][..],
        ),
        (
            "q.vhd",
            "vpc",
            &["-o", "subformat=dynamic,force_size=on"][..],
        ),
        (
            "qf.vhd",
            "vpc",
            &["-o", "subformat=fixed,force_size=on"][..],
        ),
        ("q.vhdx", "vhdx", &[][..]),
        (
            "qf.vhdx",
            "vhdx",
            &["-o", "subformat=fixed,block_size=1M"][..],
        ),
    ] {
        let out = at(name);
        let mut args = vec!["convert", "-O", fmt];
        args.extend(extra);
        args.extend([s, out.as_str()]);
        qemu_img(&args);
        made.push((out, fmt));
    }
    // Made by kiln.
    for (name, f, sub, c, fmt) in [
        ("k.qcow2", Format::Qcow2, None, Compression::None, "qcow2"),
        ("kz.qcow2", Format::Qcow2, None, Compression::Zstd, "qcow2"),
        (
            "kd.vhd",
            Format::Vhd,
            Some(Subformat::Dynamic),
            Compression::None,
            "vpc",
        ),
        (
            "kf.vhd",
            Format::Vhd,
            Some(Subformat::Fixed),
            Compression::None,
            "vpc",
        ),
        (
            "kd.vhdx",
            Format::Vhdx,
            Some(Subformat::Dynamic),
            Compression::None,
            "vhdx",
        ),
        (
            "kf.vhdx",
            Format::Vhdx,
            Some(Subformat::Fixed),
            Compression::None,
            "vhdx",
        ),
    ] {
        kiln_image(&src, &d.join(name), f, sub, c);
        made.push((at(name), fmt));
    }
    for (image, fmt) in made {
        let out = PathBuf::from(format!("{image}.raw"));
        to_raw(Path::new(&image), &out).unwrap_or_else(|e| panic!("{image}: {e}"));
        let o = Command::new("qemu-img")
            .args(["compare", "-f", fmt, "-F", "raw", &image])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{image}: qemu-img compare: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // And the raw disk is the source (up to the padding some formats add).
        let want = std::fs::read(&src).unwrap();
        let got = std::fs::read(&out).unwrap();
        assert!(got.len() >= want.len(), "{image}: {} bytes", got.len());
        assert!(got[..want.len()] == want[..], "{image}: data differs");
        assert!(
            got[want.len()..].iter().all(|&b| b == 0),
            "{image}: padding"
        );
    }
    // A QCOW2 input converts into another format too.
    let out = d.join("from-qcow2.vhdx");
    let mut opts = ConvertOptions::new(Format::Vhdx);
    opts.subformat = Some(Subformat::Dynamic);
    convert(&d.join("qz.qcow2"), &out, &opts).unwrap();
    qemu_img(&[
        "compare",
        "-f",
        "vhdx",
        "-F",
        "raw",
        out.to_str().unwrap(),
        s,
    ]);
}

fn refused(input: &Path) -> InputError {
    let out = input.with_extension("out.raw");
    match to_raw(input, &out) {
        Err(Error::Input(e)) => {
            assert!(!out.exists());
            e
        }
        other => panic!("{}: {other:?}", input.display()),
    }
}

#[test]
fn other_inputs_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = raw_input(d);
    let s = src.to_str().unwrap();
    for (name, fmt, opts) in [
        ("a.vmdk", "vmdk", ""),
        ("b.vmdk", "vmdk", "subformat=streamOptimized"),
    ] {
        let p = d.join(name);
        let mut args = vec!["convert", "-O", fmt];
        if !opts.is_empty() {
            args.extend(["-o", opts]);
        }
        args.extend([s, p.to_str().unwrap()]);
        qemu_img(&args);
        let e = refused(&p);
        let m = e.to_string();
        assert!(matches!(e, InputError::Format { .. }), "{name}: {m}");
        assert!(
            m.contains(&format!("is a {fmt} image")) && m.contains("qemu-img convert -O raw"),
            "{name}: {m}"
        );
    }
    // A VMDK descriptor.
    let desc = d.join("c.vmdk");
    std::fs::write(&desc, "# Disk DescriptorFile\nversion=1\n").unwrap();
    assert!(refused(&desc).to_string().contains("descriptor file"));

    // Not disk images at all.
    let tgz = d.join("root.tar.gz");
    std::fs::write(&tgz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).unwrap();
    assert!(matches!(refused(&tgz), InputError::NotADisk(_)));

    // Damaged and encrypted QCOW2: refused with the offset, never read as raw.
    let q = d.join("q.qcow2");
    qemu_img(&["convert", "-O", "qcow2", s, q.to_str().unwrap()]);
    for (name, at, byte, says) in [
        ("bad.qcow2", 79, 0x20, ["damaged qcow2", "offset 72"]),
        ("enc.qcow2", 35, 1, ["encrypted", "qemu-img convert"]),
    ] {
        let p = d.join(name);
        std::fs::copy(&q, &p).unwrap();
        OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .write_all_at(&[byte], at)
            .unwrap();
        let m = refused(&p).to_string();
        assert!(says.iter().all(|w| m.contains(w)), "{name}: {m}");
    }

    // A FIFO is refused at once, not waited on.
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let m = refused(&fifo).to_string();
    assert!(m.contains("a FIFO"), "{m}");
}
