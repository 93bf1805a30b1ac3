//! kiln's ISOs judged by the reference tools: xorriso (El Torito report, extraction), isoinfo
//! (volume descriptors, Rock Ridge and Joliet listings), sgdisk and fdisk (the hybrid GPT),
//! fsck.vfat (the EFI image). The tools only judge; kiln never calls them.

use kiln_iso::{efi_boot_image, write_iso, BiosBoot, Error, Hybrid, Identity, IsoOptions};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

mod common;
use common::tool;

const EPOCH: u64 = 1_700_000_000;

/// `xorriso -osirrox on -indev ISO ARGS…`.
fn xorriso_read(iso: &Path, args: &[&OsStr]) -> String {
    tool(
        Command::new("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(iso)
            .args(args),
    )
}

/// An installer-like tree: upstream's layout, long, non-UTF-8 and clashing names, symlinks
/// (one longer than a SUSP entry), hard links, modes, an empty directory and a deep one.
fn stage(root: &Path) {
    for d in [
        "boot/grub2",
        "efi/boot",
        "isolinux",
        "RPMS/x86_64",
        "config/packages/3",
        "empty",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("boot/grub2/grub.cfg"), "set timeout=0\n").unwrap();
    let bios: Vec<u8> = (0..6000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(root.join("isolinux/isolinux.bin"), bios).unwrap();
    fs::write(root.join("isolinux/isolinux.cfg"), "default Installer\n").unwrap();
    fs::write(root.join("efi/boot/bootx64.efi"), vec![0x4d; 300_000]).unwrap();
    fs::write(root.join("efi/boot/grubx64.efi"), vec![0x5a; 200_000]).unwrap();
    let long = format!(
        "{}-1.2.3-4.azl3.x86_64.rpm",
        "a-long-package-name".repeat(10)
    );
    fs::write(root.join("RPMS/x86_64").join(&long), vec![1u8; 5000]).unwrap();
    fs::hard_link(
        root.join("RPMS/x86_64").join(&long),
        root.join("RPMS/x86_64/hardlink.rpm"),
    )
    .unwrap();
    fs::write(root.join("config/Makefile"), "upper\n").unwrap();
    fs::write(root.join("config/makefile"), "lower\n").unwrap();
    fs::write(
        root.join(OsStr::from_bytes(b"config/latin1-\xe9t\xe9")),
        "x",
    )
    .unwrap();
    fs::write(
        root.join("config/packages/3/héllo wörld ünïcode.json"),
        "{}",
    )
    .unwrap();
    let script = root.join("config/postinstall.sh");
    fs::write(&script, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o750)).unwrap();
    fs::set_permissions(
        root.join("config/packages"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    symlink("../boot/grub2/grub.cfg", root.join("config/grub.cfg")).unwrap();
    symlink(
        format!("/{}/target", "d".repeat(250)),
        root.join("config/long-link"),
    )
    .unwrap();
    let mut deep = root.join("deep");
    for i in 0..12 {
        deep = deep.join(format!("level-{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom.txt"), "deep\n").unwrap();
    // Mostly zeros with data in the middle: written sparse.
    let f = fs::File::create(root.join("RPMS/sparse.bin")).unwrap();
    f.set_len(20 << 20).unwrap();
    f.write_all_at(b"middle", 10 << 20).unwrap();
}

fn options() -> IsoOptions {
    IsoOptions {
        joliet: true,
        bios: Some(BiosBoot::new("isolinux/isolinux.bin")),
        efi_image: Some("boot/grub2/efiboot.img".into()),
        catalog: Some("isolinux/boot.cat".into()),
        hybrid: Some(Hybrid::default()),
        ..IsoOptions::new("CDROM", Identity::seeded(b"test", EPOCH))
    }
}

/// Every entry below `root` as (relative path, kind, permission bits, contents or target).
fn listing(root: &Path) -> Vec<(Vec<u8>, char, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let (kind, body) = if m.is_dir() {
                stack.push(p.clone());
                ('d', Vec::new())
            } else if m.file_type().is_symlink() {
                (
                    'l',
                    fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec(),
                )
            } else {
                ('f', fs::read(&p).unwrap())
            };
            out.push((rel, kind, m.mode() & 0o7777, body));
        }
    }
    out.sort();
    out
}

#[test]
fn installer_iso_passes_the_oracles() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("stage");
    stage(&root);
    let id = Identity::seeded(b"test", EPOCH);
    let efi = efi_boot_image(
        &root.join("efi/boot"),
        &root.join("boot/grub2/efiboot.img"),
        &id,
    )
    .unwrap();
    tool(
        Command::new("fsck.vfat")
            .arg("-n")
            .arg(root.join("boot/grub2/efiboot.img")),
    );
    let mdir = tool(
        Command::new("mdir")
            .args(["-i"])
            .arg(root.join("boot/grub2/efiboot.img"))
            .arg("::/EFI/BOOT")
            .env("MTOOLS_SKIP_CHECK", "1"),
    );
    assert!(
        mdir.contains("bootx64") && mdir.contains("grubx64"),
        "{mdir}"
    );
    assert!(efi.size < 2 << 20, "{efi:?}");

    let iso = tmp.path().join("a.iso");
    let report = write_iso(&root, &iso, &options()).unwrap();
    assert_eq!(fs::metadata(&iso).unwrap().len(), report.size);

    let d = tool(Command::new("isoinfo").arg("-d").arg("-i").arg(&iso));
    for want in [
        "Volume id: CDROM",
        "Rock Ridge signatures version 1 found",
        "Joliet with UCS level 3 found",
        "El Torito VD version 1 found",
    ] {
        assert!(d.contains(want), "isoinfo -d lacks {want:?}:\n{d}");
    }

    let el = tool(
        Command::new("xorriso")
            .arg("-indev")
            .arg(&iso)
            .args(["-report_el_torito", "plain"]),
    );
    for want in [
        "El Torito cat path : /isolinux/boot.cat",
        "El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4",
        "El Torito img path :   1  /isolinux/isolinux.bin",
        "El Torito img opts :   1  boot-info-table",
        "El Torito img path :   2  /boot/grub2/efiboot.img",
    ] {
        assert!(el.contains(want), "report_el_torito lacks {want:?}:\n{el}");
    }
    let sectors = efi.size / 512;
    assert!(
        el.lines().any(
            |l| l.starts_with("El Torito boot img :   2  UEFI  y   none")
                && l.contains(&format!(" {sectors} "))
        ),
        "no UEFI entry of {sectors} sectors:\n{el}"
    );

    let rr = tool(Command::new("isoinfo").args(["-R", "-l", "-i"]).arg(&iso));
    for want in [
        "a-long-package-namea-long-package-name",
        "héllo wörld ünïcode.json",
        "Makefile",
        "makefile",
        "grub.cfg -> ../boot/grub2/grub.cfg",
        "bottom.txt",
        "-rwxr-x---",
    ] {
        assert!(rr.contains(want), "isoinfo -R -l lacks {want:?}");
    }
    let joliet = tool(Command::new("isoinfo").args(["-J", "-l", "-i"]).arg(&iso));
    let cut: String = "a-long-package-name".repeat(10).chars().take(64).collect();
    // isoinfo prints Joliet names in its own 8-bit charset.
    for want in [cut.as_str(), "code.json", "isolinux.cfg"] {
        assert!(
            joliet.contains(want),
            "isoinfo -J -l lacks {want:?}:\n{joliet}"
        );
    }

    // The tree comes back whole: names, modes, symlinks, contents. The catalog is kiln's, and
    // the BIOS image differs only in its boot info table (bytes 8..64).
    let out = tmp.path().join("x");
    xorriso_read(&iso, &["-extract".as_ref(), "/".as_ref(), out.as_os_str()]);
    let bin = |r: &Path| fs::read(r.join("isolinux/isolinux.bin")).unwrap();
    let (staged, extracted) = (bin(&root), bin(&out));
    assert_eq!(staged[..8], extracted[..8]);
    assert_eq!(staged[64..], extracted[64..]);
    assert_eq!(extracted[8..12], 16u32.to_le_bytes());
    fs::remove_file(out.join("isolinux/boot.cat")).unwrap();
    fs::copy(
        root.join("isolinux/isolinux.bin"),
        out.join("isolinux/isolinux.bin"),
    )
    .unwrap();
    let (a, b) = (listing(&root), listing(&out));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "{} differs", String::from_utf8_lossy(&x.0));
    }
    let links = |p: &Path| {
        fs::metadata(p.join("RPMS/x86_64/hardlink.rpm"))
            .unwrap()
            .nlink()
    };
    assert_eq!(links(&root), 2);

    // The disk view.
    let v = tool(Command::new("sgdisk").arg("-v").arg(&iso));
    assert!(v.contains("No problems found"), "{v}");
    let f = tool(Command::new("fdisk").arg("-l").arg(&iso));
    assert!(
        f.contains("Disklabel type: gpt") && f.contains("EFI System"),
        "{f}"
    );
    let esp = report.efi_image.unwrap();
    assert!(
        f.contains(&format!("{} ", esp.0 / 512)),
        "the ESP does not start at the EFI image:\n{f}"
    );

    // Reproducible: one time and seed, one image.
    let again = tmp.path().join("b.iso");
    write_iso(&root, &again, &options()).unwrap();
    assert!(
        fs::read(&iso).unwrap() == fs::read(&again).unwrap(),
        "two builds differ"
    );
    let efi2 = tmp.path().join("efi2.img");
    efi_boot_image(&root.join("efi/boot"), &efi2, &id).unwrap();
    assert!(fs::read(&efi2).unwrap() == fs::read(root.join("boot/grub2/efiboot.img")).unwrap());
    // And the output stays sparse where the input is.
    let blocks = fs::metadata(&iso).unwrap().blocks() * 512;
    assert!(
        blocks < report.size - (15 << 20),
        "{blocks} bytes allocated of {}",
        report.size
    );
}

#[test]
fn a_file_of_4_gib_or_more_is_multi_extent() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("stage");
    fs::create_dir_all(&root).unwrap();
    let size: u64 = (4 << 30) + 3 * 2048 + 5;
    let f = fs::File::create(root.join("big.img")).unwrap();
    f.set_len(size).unwrap();
    let marks: [u64; 5] = [0, 1 << 30, 0xFFFF_F800 - 3, 0xFFFF_F800 + 7, size - 9];
    for &at in &marks {
        f.write_all_at(format!("{at:09x}").as_bytes(), at).unwrap();
    }
    drop(f);
    fs::write(root.join("small"), "small").unwrap();
    let iso = tmp.path().join("big.iso");
    let opts = IsoOptions {
        joliet: true,
        ..IsoOptions::new("BIG", Identity::seeded(b"big", EPOCH))
    };
    let report = write_iso(&root, &iso, &opts).unwrap();
    assert!(report.multi_extent);
    assert!(
        fs::metadata(&iso).unwrap().blocks() * 512 < 1 << 20,
        "not sparse"
    );

    let ls = tool(
        Command::new("xorriso")
            .arg("-indev")
            .arg(&iso)
            .args(["-lsl", "/big.img"]),
    );
    assert!(ls.contains(&format!(" {size} ")), "{ls}");
    // xorriso reads a multi-extent file sequentially (sampling near its end reads 4 GiB), so
    // it reports the sections and the samples are read from the image at their offsets.
    let sections = tool(Command::new("xorriso").arg("-indev").arg(&iso).args([
        "-find",
        "/big.img",
        "-exec",
        "report_sections",
        "--",
    ]));
    let extents: Vec<(u64, u64)> = sections
        .lines()
        .filter_map(|l| l.strip_prefix("File data lba:"))
        .map(|l| {
            let f: Vec<u64> = l
                .split(',')
                .take(4)
                .map(|x| x.trim().parse().unwrap())
                .collect();
            (f[1], f[3])
        })
        .collect();
    assert_eq!(extents.len(), 2, "{sections}");
    assert_eq!(extents.iter().map(|e| e.1).sum::<u64>(), size);
    let image = fs::File::open(&iso).unwrap();
    for &at in &marks {
        let (mut start, mut found) = (0, None);
        for &(lba, len) in &extents {
            if at < start + len {
                found = Some(lba * 2048 + at - start);
                break;
            }
            start += len;
        }
        let mut got = [0u8; 9];
        image.read_exact_at(&mut got, found.unwrap()).unwrap();
        assert_eq!(&got, format!("{at:09x}").as_bytes(), "at {at}");
    }
    let out = tmp.path().join("cut");
    let cut = ["-extract_cut", "/big.img", "0", "9"].map(OsStr::new);
    xorriso_read(&iso, &[&cut[..], &[out.as_os_str()]].concat());
    assert_eq!(fs::read(&out).unwrap(), b"000000000");
    let small = tmp.path().join("small");
    xorriso_read(
        &iso,
        &["-extract".as_ref(), "/small".as_ref(), small.as_os_str()],
    );
    assert_eq!(fs::read(&small).unwrap(), b"small");
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("stage");
    fs::create_dir_all(root.join("boot")).unwrap();
    let iso = tmp.path().join("x.iso");
    let id = Identity::seeded(b"", 0);
    let bad_id = IsoOptions::new(&"V".repeat(33), id.clone());
    assert!(matches!(
        write_iso(&root, &iso, &bad_id),
        Err(Error::VolumeId(_))
    ));
    let missing = IsoOptions {
        bios: Some(BiosBoot::new("boot/eltorito.img")),
        ..IsoOptions::new("CDROM", id.clone())
    };
    let e = write_iso(&root, &iso, &missing).unwrap_err();
    assert!(
        e.to_string()
            .contains("boot/eltorito.img is not in the staged tree"),
        "{e}"
    );
    let f = fs::File::create(root.join("boot/efiboot.img")).unwrap();
    f.set_len(40 << 20).unwrap();
    let big_efi = IsoOptions {
        efi_image: Some("boot/efiboot.img".into()),
        ..IsoOptions::new("CDROM", id.clone())
    };
    let e = write_iso(&root, &iso, &big_efi).unwrap_err();
    assert!(e.to_string().contains("32 MiB"), "{e}");
    let catalog = IsoOptions {
        catalog: Some("boot/boot.cat".into()),
        ..IsoOptions::new("CDROM", id.clone())
    };
    assert!(matches!(
        write_iso(&root, &iso, &catalog),
        Err(Error::Boot(_))
    ));
    let not_dir = write_iso(
        &root.join("boot/efiboot.img"),
        &iso,
        &IsoOptions::new("CDROM", id),
    );
    assert!(matches!(not_dir, Err(Error::NotADirectory(_))));
    assert!(!iso.exists(), "a failed write left an output");
}
