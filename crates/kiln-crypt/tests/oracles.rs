//! kiln-crypt's output judged by the reference tools: cryptsetup reads the LUKS1 header and
//! opens both key slots (no device-mapper needed for `luksDump` and `open --test-passphrase`),
//! an independent Python decryption (hashlib + `cryptography`) recovers the plain payload,
//! e2fsck finds the filesystem in the LV clean, pvck reads the LVM label and metadata (checking
//! their CRCs), and cryptsetup's own LUKS1 header opens with kiln's reader.
//!
//! Needs cryptsetup (cryptsetup-bin), pvck (lvm2), mke2fs/e2fsck and /usr/bin/python3 with
//! python3-cryptography: `scripts/install-host-deps.sh test`.

use kiln_crypt::{
    luks1, lv_size, seeded_rng, EncryptedVolume, HashSpec, LuksOptions, PbkdfPolicy, VolumeOptions,
};
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::{ok, test_passphrase, with_stdin};

const MIB: u64 = 1 << 20;
const PASSWORD: &[u8] = b"correct horse battery staple";

fn keyfile() -> Vec<u8> {
    // Upstream's key file is 2048 random bytes; any bytes work, NULs and newlines included.
    (0..2048u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn options() -> VolumeOptions {
    VolumeOptions {
        luks: LuksOptions {
            key_bytes: 32,
            hash: HashSpec::Sha512,
            pbkdf: PbkdfPolicy::Fixed {
                slot_iterations: 1000,
                digest_iterations: 1000,
            },
        },
        password: PASSWORD.to_vec(),
        keyfile: Some(keyfile()),
        creation_host: "kiln-test".into(),
        system: "Linux kiln-test 6.1.0 #1 SMP x86_64".into(),
        creation_time: 1_700_000_000,
    }
}

/// A filesystem image of the LV's size made by mke2fs from a small tree.
fn make_fs(dir: &Path, size: u64) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "encrypted\n").unwrap();
    let big: Vec<u8> = (0..3 * MIB as usize).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
    let img = dir.join("fs.img");
    ok(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-E", "root_owner=0:0", "-d"])
        .arg(&root)
        .arg(&img)
        .arg(format!("{}k", size / 1024)));
    img
}

/// Encrypts `fs` into a fresh partition file of `size` bytes.
fn encrypt(dir: &Path, name: &str, size: u64, fs: &Path, seed: &[u8]) -> (PathBuf, String) {
    let vol = EncryptedVolume::new(size, &options(), &mut seeded_rng(seed)).unwrap();
    let out = dir.join(name);
    let f = std::fs::File::create(&out).unwrap();
    f.set_len(size).unwrap();
    let mut img = std::fs::File::open(fs).unwrap();
    let r = vol.write_at(&f, 0, &mut img).unwrap();
    assert_eq!(r.bytes_written, size);
    assert_eq!(r.image_bytes, std::fs::metadata(fs).unwrap().len());
    (out, vol.luks().uuid().to_string())
}

#[test]
fn cryptsetup_reads_the_header_and_opens_both_slots() {
    let dir = tempfile::tempdir().unwrap();
    let size = 40 * MIB;
    let fs = make_fs(dir.path(), lv_size(size));
    let (part, uuid) = encrypt(dir.path(), "part.img", size, &fs, b"dump");
    support::check_luks_dump(&part, &uuid);
    assert_eq!(test_passphrase(&part, PASSWORD), 0, "password");
    assert_eq!(test_passphrase(&part, &keyfile()), 0, "key file");
    assert_eq!(test_passphrase(&part, b"wrong"), 2, "wrong passphrase");
}

#[test]
fn python_decrypts_e2fsck_is_clean_and_pvck_reads_the_lvm_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let size = 48 * MIB;
    let lv = lv_size(size);
    assert_eq!(
        lv,
        44 * MIB,
        "48 MiB - 2 MiB LUKS - 1 MiB pe_start, in 4 MiB extents"
    );
    let fs = make_fs(dir.path(), lv);
    let (part, uuid) = encrypt(dir.path(), "part.img", size, &fs, b"python");
    for (name, secret) in [("pw", PASSWORD.to_vec()), ("key", keyfile())] {
        let plain = dir.path().join(format!("plain-{name}.img"));
        let j = support::python_decrypt(&part, &secret, &plain);
        assert_eq!(j["luks"]["uuid"], uuid.as_str());
        assert_eq!(j["luks"]["opened_slot"], if name == "pw" { 0 } else { 1 });
        let device = size - 2 * MIB;
        assert_eq!(j["device_size"], device);
        let l = &j["lvm"];
        assert_eq!(l["label_device_size"], device);
        assert_eq!(l["data_area"], serde_json::json!([MIB, 0]));
        assert_eq!(l["metadata_area"], serde_json::json!([4096, MIB - 4096]));
        assert_eq!(
            (l["ext_version"].clone(), l["ext_flags"].clone()),
            (2.into(), 1.into())
        );
        let text = l["text"].as_str().unwrap();
        let pe_count = lv / (4 * MIB);
        for want in [
            "cryptVG {\n".to_string(),
            "\nseqno = 1\n".into(),
            "\nextent_size = 8192\n".into(),
            format!("\ndevice = \"/dev/mapper/luks-{uuid}\"\n"),
            format!("\ndev_size = {}\n", device / 512),
            "\npe_start = 2048\n".into(),
            format!("\npe_count = {pe_count}\n"),
            "\nroot {\n".into(),
            format!("\nextent_count = {pe_count}\n"),
            "\ncreation_host = \"kiln-test\"\n".into(),
            "\ncreation_time = 1700000000\n".into(),
            "\nstripes = [\n\"pv0\", 0\n]\n".into(),
        ] {
            assert!(text.contains(&want), "{want:?} not in\n{text}");
        }

        // The LV holds exactly the filesystem image, and e2fsck finds it clean.
        let plain_bytes = std::fs::read(&plain).unwrap();
        let fs_bytes = std::fs::read(&fs).unwrap();
        assert_eq!(
            &plain_bytes[MIB as usize..(MIB + lv) as usize],
            &fs_bytes[..]
        );
        assert!(plain_bytes[(MIB + lv) as usize..].iter().all(|&b| b == 0));
        let lv_file = dir.path().join("lv.img");
        std::fs::write(&lv_file, &plain_bytes[MIB as usize..(MIB + lv) as usize]).unwrap();
        ok(Command::new("e2fsck").arg("-fn").arg(&lv_file));

        // lvm2's own reader: pvck checks the label, header and text CRCs on a plain file.
        let headers = ok(Command::new("pvck").args(["--dump", "headers"]).arg(&plain));
        assert!(!headers.contains("CHECK"), "{headers}");
        assert!(headers.contains("label_header.type LVM2 001"), "{headers}");
        let meta = ok(Command::new("pvck")
            .args(["--dump", "metadata"])
            .arg(&plain));
        assert!(!meta.contains("CHECK"), "{meta}");
        assert!(meta.contains("# vgname cryptVG seqno 1"), "{meta}");
        let search = ok(Command::new("pvck")
            .args(["--dump", "metadata_search"])
            .arg(&plain));
        assert!(search.contains("vg cryptVG seqno 1"), "{search}");
    }
}

#[test]
fn kiln_opens_a_header_cryptsetup_made() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("cs.img");
    std::fs::File::create(&part)
        .unwrap()
        .set_len(4 * MIB)
        .unwrap();
    let status = with_stdin(
        Command::new("cryptsetup")
            .args([
                "luksFormat",
                "-q",
                "--type",
                "luks1",
                "--cipher",
                "aes-xts-plain64",
                "--key-size",
                "256",
                "--hash",
                "sha512",
                "--pbkdf-force-iterations",
                "1000",
                "--key-file",
                "-",
            ])
            .arg(&part),
        PASSWORD,
    );
    assert_eq!(status, 0, "cryptsetup luksFormat");
    let area = std::fs::read(&part).unwrap();
    let h = luks1::Luks1Header::parse(&area).unwrap();
    // The same layout kiln writes.
    let (offsets, payload) = luks1::layout(32);
    assert_eq!(h.payload_offset, payload);
    for (ks, o) in h.key_slots.iter().zip(offsets) {
        assert_eq!(ks.key_material_offset, o);
        assert_eq!(ks.stripes, 4000);
    }
    assert!(area[luks1::PHDR_LEN..4096].iter().all(|&b| b == 0));
    let (slot, key) = luks1::open(&area[..payload as usize * 512], PASSWORD).unwrap();
    assert_eq!((slot, key.len()), (0, 32));
    assert!(luks1::open(&area[..payload as usize * 512], b"wrong").is_err());
}

#[test]
fn same_seed_same_bytes_and_offsets_are_respected() {
    let dir = tempfile::tempdir().unwrap();
    let size = 24 * MIB;
    let fs = make_fs(dir.path(), lv_size(size));
    let (a, _) = encrypt(dir.path(), "a.img", size, &fs, b"seed");
    let (b, _) = encrypt(dir.path(), "b.img", size, &fs, b"seed");
    let (c, _) = encrypt(dir.path(), "c.img", size, &fs, b"other seed");
    let a = std::fs::read(a).unwrap();
    assert_eq!(a, std::fs::read(b).unwrap(), "same seed, same partition");
    assert_ne!(a, std::fs::read(c).unwrap());

    // Into a disk image at 1 MiB, with write_to: the partition's bytes, nothing outside touched.
    let vol = EncryptedVolume::new(size, &options(), &mut seeded_rng(b"seed")).unwrap();
    let mut disk = std::io::Cursor::new(vec![0x5au8; (size + 3 * MIB) as usize]);
    vol.write_to(&mut disk, MIB, &mut std::fs::File::open(&fs).unwrap())
        .unwrap();
    let disk = disk.into_inner();
    assert!(disk[..MIB as usize].iter().all(|&b| b == 0x5a));
    assert_eq!(&disk[MIB as usize..(MIB + size) as usize], &a[..]);
    assert!(disk[(MIB + size) as usize..].iter().all(|&b| b == 0x5a));
}

#[test]
fn sizes_and_bad_input() {
    // Too small for LUKS (2 MiB) + pe_start (1 MiB) + one 4 MiB extent.
    assert_eq!(lv_size(7 * MIB - 512), 0);
    assert_eq!(lv_size(7 * MIB), 4 * MIB);
    assert_eq!(lv_size(7 * MIB + 1), 0, "not whole sectors");
    assert_eq!(lv_size(2 << 30), (2 << 30) - 4 * MIB);
    let err = EncryptedVolume::new(6 * MIB, &options(), &mut seeded_rng(b"x")).unwrap_err();
    assert!(err.to_string().contains("too small"), "{err}");

    // An image larger than the LV is refused; a shorter one is followed by zeros.
    let vol = EncryptedVolume::new(8 * MIB, &options(), &mut seeded_rng(b"x")).unwrap();
    let mut sink = std::io::Cursor::new(Vec::new());
    let big = vec![1u8; 4 * MIB as usize + 1];
    let err = vol.write_to(&mut sink, 0, &mut &big[..]).unwrap_err();
    assert!(
        err.to_string().contains("larger than the logical volume"),
        "{err}"
    );
    let mut sink = std::io::Cursor::new(Vec::new());
    let r = vol.write_to(&mut sink, 0, &mut &[1u8; 1000][..]).unwrap();
    assert_eq!((r.bytes_written, r.image_bytes), (8 * MIB, 1000));
    assert_eq!(sink.into_inner().len() as u64, 8 * MIB);

    // A reader that fails names the byte.
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let err = vol
        .write_to(&mut std::io::Cursor::new(Vec::new()), 0, &mut Broken)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("reading the filesystem image at byte 0"),
        "{err}"
    );
}
