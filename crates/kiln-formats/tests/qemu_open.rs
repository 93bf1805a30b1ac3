//! `verify` checks what qemu checks when it opens an image: each case takes a good image made by
//! `qemu-img create` (or kiln), patches header bytes, asks `qemu-img info` whether it opens, and
//! requires kiln never to call the result ok — an error at the given offset where qemu refuses,
//! "not supported" for features kiln does not check. Files that are not disk images, and paths
//! that are not regular files, are refused without being read.

use kiln_formats::verify::{verify, Report, Severity, VerifyError, VerifyOptions};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn qemu_create(dir: &Path, name: &str, fmt: &str, opts: &str) -> PathBuf {
    let p = dir.join(name);
    let mut cmd = Command::new("qemu-img");
    cmd.args(["create", "-q", "-f", fmt]);
    if !opts.is_empty() {
        cmd.args(["-o", opts]);
    }
    let ok = cmd.arg(&p).arg("64M").status().expect("qemu-img runs");
    assert!(ok.success());
    p
}

/// Whether `qemu-img info` opens the file, and its message.
fn qemu_opens(path: &Path, fmt: &str) -> (bool, String) {
    let o = Command::new("qemu-img")
        .args(["info", "-f", fmt])
        .arg(path)
        .output()
        .expect("qemu-img runs");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn patched(from: &Path, to: &Path, patches: &[(u64, &[u8])]) {
    std::fs::copy(from, to).unwrap();
    let f = OpenOptions::new().write(true).open(to).unwrap();
    for (at, bytes) in patches {
        f.write_all_at(bytes, *at).unwrap();
    }
}

fn has(r: &Report, severity: Severity, offset: u64, text: &str) -> bool {
    r.problems
        .iter()
        .any(|p| p.severity == severity && p.offset == offset && p.message.contains(text))
}

struct Case {
    name: &'static str,
    patches: &'static [(u64, &'static [u8])],
    qemu_opens: bool,
    severity: Severity,
    offset: u64,
    text: &'static str,
}

fn run_cases(base: &Path, fmt: &str, cases: &[Case]) {
    let dir = base.parent().unwrap();
    let (ok, why) = qemu_opens(base, fmt);
    assert!(ok, "the base image opens: {why}");
    assert!(verify(base, VerifyOptions::default()).unwrap().is_ok());
    for c in cases {
        let p = dir.join(c.name);
        patched(base, &p, c.patches);
        let (opens, why) = qemu_opens(&p, fmt);
        assert_eq!(opens, c.qemu_opens, "{}: qemu-img info: {why}", c.name);
        let r = verify(&p, VerifyOptions::default()).unwrap();
        assert!(!r.is_ok(), "{}: kiln says ok", c.name);
        assert!(
            has(&r, c.severity, c.offset, c.text),
            "{}: expected {:?} at {} containing {:?}; got {:#?}",
            c.name,
            c.severity,
            c.offset,
            c.text,
            r.problems
        );
        if !c.qemu_opens {
            assert!(r.count(Severity::Error) > 0, "{}: qemu refuses it", c.name);
        }
    }
}

#[test]
fn qcow2_header_checks_agree_with_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let base = qemu_create(dir.path(), "base.qcow2", "qcow2", "");
    run_cases(
        &base,
        "qcow2",
        &[
            Case {
                name: "snapshots-ffffffff.qcow2",
                patches: &[(60, &[0xff; 4])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 60,
                text: "snapshot table is too large",
            },
            Case {
                name: "snapshots-outside.qcow2",
                patches: &[(60, &[0, 0, 0, 1]), (64, &[0, 0, 0, 0, 0x10, 0, 0, 0])],
                qemu_opens: true, // qemu reads past the end of the file as zeros
                severity: Severity::Error,
                offset: 64,
                text: "extends past the end of the file",
            },
            Case {
                name: "snapshots-unaligned.qcow2",
                patches: &[(60, &[0, 0, 0, 1]), (64, &[0, 0, 0, 0, 0, 0, 0x10, 1])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 64,
                text: "snapshot table offset 4097 is invalid",
            },
            Case {
                name: "aes.qcow2",
                patches: &[(35, &[1])],
                qemu_opens: true,
                severity: Severity::Unsupported,
                offset: 32,
                text: "encrypted (AES)",
            },
            Case {
                name: "crypt-method-7.qcow2",
                patches: &[(35, &[7])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 32,
                text: "unknown encryption method 7",
            },
            Case {
                name: "unknown-incompat.qcow2",
                patches: &[(79, &[0x20])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 72,
                text: "unknown incompatible features 0x20",
            },
            Case {
                name: "external-data-file.qcow2",
                patches: &[(79, &[0x04])],
                qemu_opens: true, // `info` does not read data
                severity: Severity::Unsupported,
                offset: 72,
                text: "external data file",
            },
            Case {
                name: "extension-too-long.qcow2",
                patches: &[(116, &[0, 1, 0, 0])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 116,
                text: "running past the end of the header area",
            },
            Case {
                name: "header-length.qcow2",
                patches: &[(100, &[0, 1, 0, 1])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 100,
                text: "exceeds the cluster size",
            },
            Case {
                name: "header-short.qcow2",
                patches: &[(100, &[0, 0, 0, 96])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 100,
                text: "below 104",
            },
            Case {
                name: "no-refcount-table.qcow2",
                patches: &[(56, &[0; 4])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 56,
                text: "no refcount table",
            },
            Case {
                name: "refcount-table-huge.qcow2",
                patches: &[(56, &[0, 0, 0x10, 0])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 56,
                text: "refcount table is too large",
            },
            Case {
                name: "l1-huge.qcow2",
                patches: &[(36, &[0x10, 0, 0, 0])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 36,
                text: "active L1 table is too large",
            },
            Case {
                name: "l1-too-small.qcow2",
                patches: &[(24, &[0, 0, 0x10, 0, 0, 0, 0, 0])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 36,
                text: "needs",
            },
            Case {
                name: "compression-bit-zlib.qcow2",
                patches: &[(79, &[0x08])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 72,
                text: "compression type incompatible feature bit",
            },
            Case {
                name: "compression-type-9.qcow2",
                patches: &[(104, &[9])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 104,
                text: "unknown compression type 9",
            },
            Case {
                name: "backing-offset.qcow2",
                patches: &[(8, &[0, 0, 0, 0, 0, 2, 0, 0])],
                qemu_opens: false,
                severity: Severity::Error,
                offset: 8,
                text: "outside the header cluster",
            },
        ],
    );
}

#[test]
fn qcow2_features_kiln_does_not_check_are_not_ok() {
    let dir = tempfile::tempdir().unwrap();
    let backing = qemu_create(dir.path(), "backing.qcow2", "qcow2", "");
    let top = dir.path().join("top.qcow2");
    assert!(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&backing)
        .arg(&top)
        .status()
        .unwrap()
        .success());
    let r = verify(&top, VerifyOptions::default()).unwrap();
    assert!(has(&r, Severity::Unsupported, 8, "backing file"), "{r:?}");
    assert!(!r.is_ok());

    let snap = qemu_create(dir.path(), "snap.qcow2", "qcow2", "");
    assert!(Command::new("qemu-img")
        .args(["snapshot", "-c", "s1"])
        .arg(&snap)
        .status()
        .unwrap()
        .success());
    assert!(qemu_opens(&snap, "qcow2").0);
    let r = verify(&snap, VerifyOptions::default()).unwrap();
    assert!(
        has(&r, Severity::Unsupported, 60, "internal snapshot"),
        "{r:?}"
    );
    assert_eq!(r.count(Severity::Error), 0, "{r:?}");
}

#[test]
fn vhd_vhdx_vmdk_open_checks_agree_with_qemu() {
    let dir = tempfile::tempdir().unwrap();
    // Dynamic VHD: footer copy at 0, dynamic header at 512 (max table entries at 512 + 28).
    let vhd = qemu_create(dir.path(), "base.vhd", "vpc", "subformat=dynamic");
    run_cases(
        &vhd,
        "vpc",
        &[Case {
            name: "bat-huge.vhd",
            patches: &[(512 + 28, &[0x7f, 0xff, 0xff, 0xff])],
            qemu_opens: false,
            severity: Severity::Error,
            offset: 512 + 28,
            text: "qemu refuses to open it",
        }],
    );
    // Sparse VMDK with newline detection: the check bytes at 73.
    let vmdk = qemu_create(dir.path(), "base.vmdk", "vmdk", "");
    run_cases(
        &vmdk,
        "vmdk",
        &[Case {
            name: "text-mode.vmdk",
            patches: &[(75, b"\n")],
            qemu_opens: true, // qemu does not look at the check bytes; VMware does
            severity: Severity::Error,
            offset: 73,
            text: "text-mode transfer",
        }],
    );
}

#[test]
fn files_that_are_not_disk_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("root.tar.gz");
    std::fs::write(&tgz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]).unwrap();
    let mut tar = vec![0u8; 10240];
    tar[257..263].copy_from_slice(b"ustar\0");
    let tarp = dir.path().join("root.tar");
    std::fs::write(&tarp, &tar).unwrap();
    let xz = dir.path().join("disk.raw.xz");
    std::fs::write(&xz, [0xfd, b'7', b'z', b'X', b'Z', 0, 0, 4]).unwrap();
    for (p, what) in [
        (&tgz, "a gzip file"),
        (&tarp, "a tar archive"),
        (&xz, "an xz file"),
    ] {
        match verify(p, VerifyOptions::default()) {
            Err(VerifyError::NotADisk(e)) => {
                let m = e.to_string();
                assert!(m.contains(what) && m.contains("not a disk image"), "{m}");
            }
            other => panic!("{}: {other:?}", p.display()),
        }
    }
}

#[test]
fn fifos_devices_and_directories_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (p, what) in [
        (fifo.as_path(), "a FIFO"),
        (Path::new("/dev/zero"), "a character device"),
        (dir.path(), "a directory"),
    ] {
        let started = Instant::now();
        match verify(p, VerifyOptions::default()) {
            Err(VerifyError::Io { source, .. }) => {
                assert!(source.to_string().contains(what), "{source}")
            }
            other => panic!("{}: {other:?}", p.display()),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
