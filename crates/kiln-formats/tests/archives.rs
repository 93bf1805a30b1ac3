//! gz, xz, tar.gz, tar.xz, initrd and squashfs artifacts, judged by the reference tools: gzip,
//! xz, GNU tar, cpio, unsquashfs.

use kiln_formats::artifact::Converter;
use kiln_formats::ident::Identity;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn ident() -> Identity {
    Identity::seeded(b"archives", 1_700_000_000)
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr {name}");
}

/// A tree with every kind of entry the archives must keep.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/ssh")).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::create_dir_all(root.join("dev")).unwrap();
    fs::write(root.join("etc/hostname"), "kiln\n").unwrap();
    fs::write(root.join("usr/bin/tool"), vec![7u8; 300_000]).unwrap();
    fs::set_permissions(
        root.join("usr/bin/tool"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-link")).unwrap();
    std::os::unix::fs::symlink("../usr/bin/tool", root.join("etc/tool")).unwrap();
    let deep = root.join(format!("{}/{}", "d".repeat(90), "e".repeat(90)));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("f".repeat(60)), "deep\n").unwrap();
    set_xattr(&root.join("etc/hostname"), "user.kiln", b"yes");
    let fifo = CString::new(root.join("dev/fifo").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    if is_root() {
        let null = CString::new(root.join("dev/null").as_os_str().as_bytes()).unwrap();
        assert_eq!(
            unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) },
            0
        );
        sh(&format!(
            "chown 1234:5678 {}",
            root.join("etc/hostname").display()
        ));
        set_xattr(
            &root.join("usr/bin/tool"),
            "security.capability",
            b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        );
    }
}

/// What matters of a tree, for comparing an original with its extraction.
fn describe(root: &Path) -> Vec<String> {
    let out = sh(&format!(
        "cd {} && find . -printf '%p %y %m %U:%G %s %l\\n' | grep -v '^\\. ' | sort",
        root.display()
    ));
    let mut lines: Vec<String> = out
        .lines()
        .map(|l| {
            // Directory sizes depend on the filesystem.
            let f: Vec<&str> = l.split(' ').collect();
            if f[1] == "d" {
                format!("{} {} {} {}", f[0], f[1], f[2], f[3])
            } else {
                l.to_string()
            }
        })
        .collect();
    let attrs = sh(&format!(
        "cd {} && getfattr -h -R -d -m - . 2>/dev/null || true",
        root.display()
    ));
    lines.extend(attrs.lines().filter(|l| l.contains('=')).map(String::from));
    lines
}

#[test]
fn gz_and_xz_round_trip_through_gzip_and_xz() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("disk.raw");
    let data: Vec<u8> = (0..9_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    fs::write(&input, &data).unwrap();
    for (c, check, cat) in [
        (Converter::Gz, "gzip -t", "gzip -dc"),
        (Converter::Xz, "xz -t", "xz -dc"),
    ] {
        let out = dir.path().join(format!("disk.raw.{}", c.extension()));
        c.run(&input, &out, &ident()).unwrap();
        sh(&format!("{check} {}", out.display()));
        sh(&format!(
            "{cat} {} | cmp - {}",
            out.display(),
            input.display()
        ));
    }
    // A directory is not a file to compress.
    let e = Converter::Gz
        .run(dir.path(), &dir.path().join("x.gz"), &ident())
        .unwrap_err();
    assert_eq!(e.to_string(), "gz compression requires a file as an input");
}

#[test]
fn tarballs_keep_everything_and_extract_identically() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    make_tree(&root);
    for c in [Converter::TarGz, Converter::TarXz] {
        let out = dir.path().join(format!("rootfs.{}", c.extension()));
        c.run(&root, &out, &ident()).unwrap();
        let listing = sh(&format!("tar -tf {}", out.display()));
        let names: Vec<&str> = listing.lines().collect();
        assert_eq!(names[0], "./", "{names:?}");
        assert!(names.contains(&"./etc/hostname") && names.contains(&"./usr/bin/tool-link"));
        let x = dir.path().join(format!("x-{}", c.extension()));
        fs::create_dir(&x).unwrap();
        sh(&format!(
            "tar --xattrs --xattrs-include='*' --numeric-owner -xpf {} -C {}",
            out.display(),
            x.display()
        ));
        assert_eq!(describe(&x), describe(&root), "{c:?}");
        let a = fs::metadata(x.join("usr/bin/tool")).unwrap();
        let b = fs::metadata(x.join("usr/bin/tool-link")).unwrap();
        assert_eq!(a.ino(), b.ino(), "hard link kept");
    }
}

#[test]
fn tarballs_are_reproducible_and_clamp_mtimes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    make_tree(&root);
    std::env::set_var("SOURCE_DATE_EPOCH", "1000000000");
    let a = dir.path().join("a.tar.gz");
    let b = dir.path().join("b.tar.gz");
    Converter::TarGz.run(&root, &a, &ident()).unwrap();
    Converter::TarGz.run(&root, &b, &ident()).unwrap();
    std::env::remove_var("SOURCE_DATE_EPOCH");
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    let listing = sh(&format!("tar --full-time -tvf {}", a.display()));
    assert!(
        listing.lines().all(|l| l.contains("2001-09-09")),
        "{listing}"
    );
}

#[test]
fn initrd_is_a_gzipped_newc_cpio_of_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("initrd");
    make_tree(&root);
    let out = dir.path().join("initrd.img");
    Converter::Initrd.run(&root, &out, &ident()).unwrap();
    let names = sh(&format!("gzip -dc {} | cpio -it --quiet", out.display()));
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names[0], ".");
    assert!(names.contains(&"etc/tool") && names.contains(&"dev/fifo"));
    let x = dir.path().join("x");
    fs::create_dir(&x).unwrap();
    sh(&format!(
        "cd {} && gzip -dc {} | cpio -idm --quiet --no-absolute-filenames",
        x.display(),
        out.display()
    ));
    assert_eq!(
        fs::read(x.join("usr/bin/tool")).unwrap(),
        vec![7u8; 300_000]
    );
    assert_eq!(
        fs::read_link(x.join("etc/tool")).unwrap(),
        Path::new("../usr/bin/tool")
    );
    assert_eq!(
        fs::metadata(x.join("usr/bin/tool")).unwrap().mode() & 0o7777,
        0o4755
    );
    let e = Converter::Initrd
        .run(&out, &dir.path().join("y.img"), &ident())
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "initrd conversion requires a directory as an input"
    );
}

#[test]
fn squashfs_through_mksquashfs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    make_tree(&root);
    let out = dir.path().join("rootfs.squashfs");
    Converter::Squashfs.run(&root, &out, &ident()).unwrap();
    let listing = sh(&format!("unsquashfs -l {}", out.display()));
    assert!(listing.contains("squashfs-root/usr/bin/tool"), "{listing}");
}

#[test]
fn ova_holds_ovf_manifest_and_a_checked_vmdk() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk0.raw");
    let f = fs::File::create(&raw).unwrap();
    f.set_len(50 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[5u8; 200_000], 10 << 20).unwrap();
    drop(f);
    let ova = dir.path().join("core-3.0.1.ova");
    Converter::Ova.run(&raw, &ova, &ident()).unwrap();
    let listing = sh(&format!("tar --format=ustar -tvf {}", ova.display()));
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["core-3.0.1.ovf", "core-3.0.1.mf", "core-3.0.1-disk1.vmdk"]
    );
    let x = dir.path().join("x");
    fs::create_dir(&x).unwrap();
    sh(&format!("tar -xf {} -C {}", ova.display(), x.display()));
    // The manifest's digests verify.
    let mf = fs::read_to_string(x.join("core-3.0.1.mf")).unwrap();
    assert_eq!(mf.lines().count(), 2);
    for line in mf.lines() {
        let (file, digest) = line
            .strip_prefix("SHA256(")
            .unwrap()
            .split_once(")= ")
            .unwrap();
        let got = sh(&format!("sha256sum {}", x.join(file).display()));
        assert_eq!(got.split(' ').next().unwrap(), digest, "{file}");
    }
    // The descriptor is XML naming the disk with its size; the disk checks out in qemu-img.
    let vmdk = x.join("core-3.0.1-disk1.vmdk");
    let size = fs::metadata(&vmdk).unwrap().len();
    sh(&format!(
        "/usr/bin/python3 -c \"import xml.etree.ElementTree as E; r=E.parse('{}').getroot(); ns={{'o':'http://schemas.dmtf.org/ovf/envelope/1'}}; f=r.find('o:References/o:File', ns); assert f.get('{{http://schemas.dmtf.org/ovf/envelope/1}}size')=='{size}'\"",
        x.join("core-3.0.1.ovf").display()
    ));
    sh(&format!("qemu-img check -f vmdk {}", vmdk.display()));
    sh(&format!(
        "qemu-img compare -f raw -F vmdk {} {}",
        raw.display(),
        vmdk.display()
    ));
    assert!(
        !dir.path().join("core-3.0.1-disk1.vmdk").exists(),
        "no stray vmdk beside the OVA"
    );
}

#[test]
fn fifos_and_devices_are_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("disk0.raw");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (input, what) in [
        (fifo.as_path(), "a FIFO"),
        (Path::new("/dev/zero"), "a character device"),
    ] {
        for c in [
            Converter::Gz,
            Converter::Xz,
            Converter::Vhd,
            Converter::TarGz,
        ] {
            let out = dir.path().join("out");
            let e = c.run(input, &out, &ident()).unwrap_err().to_string();
            assert!(e.contains(what), "{c:?} {}: {e}", input.display());
            assert!(!out.exists());
        }
    }
}

/// The kernel's initramfs unpacker needs each gzip member to end at a cpio trailer: an initrd
/// larger than a parallel member (4 MiB) is still one gzip stream.
#[test]
fn a_large_initrd_is_one_gzip_stream() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("initrd");
    fs::create_dir_all(root.join("boot")).unwrap();
    fs::write(root.join("boot/big"), vec![3u8; 10 << 20]).unwrap();
    let out = dir.path().join("initrd.img");
    Converter::Initrd.run(&root, &out, &ident()).unwrap();
    let data = fs::read(&out).unwrap();
    let mut one = flate2::read::GzDecoder::new(&data[..]);
    let mut first = Vec::new();
    one.read_to_end(&mut first).unwrap();
    let mut all = Vec::new();
    flate2::read::MultiGzDecoder::new(&data[..])
        .read_to_end(&mut all)
        .unwrap();
    assert!(all.len() > 10 << 20);
    assert_eq!(first.len(), all.len(), "more than one gzip member");
}
