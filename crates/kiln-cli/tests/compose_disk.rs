//! `kiln compose` of a disk config: the disk's layout, each filesystem's checker, and the files
//! inside read back out of the image with debugfs and mtools (never from the staging tree).

mod common;

use common::{demo_config, kiln, sample_repo, stderr};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    o
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `sfdisk --json` of a disk image: the partitions' (start, size, type, uuid, name).
fn partitions(disk: &Path) -> Vec<serde_json::Value> {
    let o = run(Command::new("sfdisk").arg("--json").arg(disk));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .clone()
}

/// Copies a partition's bytes out of the disk image into its own file.
fn extract(disk: &Path, part: &serde_json::Value, out: &Path) {
    let (start, size) = (
        part["start"].as_u64().unwrap(),
        part["size"].as_u64().unwrap(),
    );
    common::extract_range(disk, start * 512, size * 512, out);
}

/// `debugfs -R <request>` on an ext4 image.
fn debugfs(fs: &Path, request: &str) -> String {
    text(&run(Command::new("debugfs").arg("-R").arg(request).arg(fs)))
}

/// `kiln compose` of a demo config into `out`; returns `out/disk0.raw`.
fn compose(config: &str, out: &Path) -> std::path::PathBuf {
    let o = common::compose(&demo_config(config), out);
    assert!(o.status.success(), "{}", stderr(&o));
    out.join("disk0.raw")
}

/// blkid's `TYPE` and `UUID` of a filesystem image.
fn blkid(fs: &Path) -> (String, String) {
    let o = run(Command::new("blkid").args(["-o", "export"]).arg(fs));
    let field = |k: &str| {
        text(&o)
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")).map(String::from))
            .unwrap_or_default()
    };
    (field("TYPE"), field("UUID"))
}

#[test]
fn the_demo_efi_disk_has_its_layout_filesystems_and_files() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    compose("demo-efi.json", &out);
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["disk0.raw"], "only the disk is left behind");
    let disk = out.join("disk0.raw");
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 512 << 20);

    // The layout: GPT as configured (ESP 1–65 MiB, root to the end).
    assert!(text(&run(Command::new("sgdisk").arg("-v").arg(&disk))).contains("No problems found"));
    let parts = partitions(&disk);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["start"], 2048);
    assert_eq!(parts[0]["size"], 64 * 2048);
    assert_eq!(parts[0]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_eq!(parts[0]["name"], "esp");
    assert_eq!(parts[1]["start"], 65 * 2048);
    assert_eq!(parts[1]["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    assert_eq!(parts[1]["name"], "rootfs");

    // Each filesystem passes its checker and has the configured features.
    let (esp, root) = (work.path().join("esp.img"), work.path().join("root.img"));
    extract(&disk, &parts[0], &esp);
    extract(&disk, &parts[1], &root);
    run(Command::new("fsck.vfat").arg("-n").arg(&esp));
    run(Command::new("e2fsck").arg("-fn").arg(&root));
    let features = text(&run(Command::new("dumpe2fs").arg("-h").arg(&root)));
    for f in [
        "has_journal",
        "extent",
        "64bit",
        "metadata_csum",
        "huge_file",
        "flex_bg",
    ] {
        assert!(features.contains(f), "ext4 feature {f}");
    }
    assert!(features.contains("Block size:               4096"));

    // fstab names the partitions as configured (PARTUUID by default), with the ESP's options.
    let fstab = debugfs(&root, "cat /etc/fstab");
    let partuuid = |p: &serde_json::Value| p["uuid"].as_str().unwrap().to_lowercase();
    assert!(
        fstab.contains(&format!(
            "PARTUUID={} / ext4 defaults 0 1",
            partuuid(&parts[1])
        )),
        "{fstab}"
    );
    assert!(
        fstab.contains(&format!(
            "PARTUUID={} /boot/efi vfat umask=0077 0 2",
            partuuid(&parts[0])
        )),
        "{fstab}"
    );
    assert_eq!(debugfs(&root, "cat /etc/hostname"), "kiln-demo");
    let hosts = debugfs(&root, "cat /etc/hosts");
    assert_eq!(
        hosts.lines().nth(5),
        Some("127.0.0.1   kiln-demo"),
        "{hosts}"
    );
    // useradd's defaults of the sample repository's shadow-utils: group `users`, /bin/sh.
    assert!(debugfs(&root, "cat /etc/passwd").contains("kiln:x:1000:100::/home/kiln:/bin/sh"));
    let shadow_stat = debugfs(&root, "stat /etc/shadow");
    assert!(shadow_stat.contains("Mode:  0000"), "{shadow_stat}");
    assert!(
        shadow_stat.contains("User:     0   Group:     0"),
        "{shadow_stat}"
    );
    let shadow = debugfs(&root, "cat /etc/shadow");
    let hash = shadow.lines().find(|l| l.starts_with("kiln:")).unwrap();
    assert!(hash.starts_with("kiln:$6$"), "{hash}");
    let home = debugfs(&root, "stat /home/kiln");
    assert!(home.contains("User:  1000   Group:   100"), "{home}");
    assert_eq!(
        debugfs(&root, "cat /etc/kiln-postinstall"),
        "built by kiln: demo-efi\n"
    );
    let image_id = debugfs(&root, "cat /etc/image-id");
    assert!(image_id.contains("BUILD_NUMBER=local"), "{image_id}");
    // The mount point of the ESP is an empty directory in the root filesystem; the ESP holds
    // what the packages put under /boot/efi.
    assert!(!debugfs(&root, "ls /boot/efi").contains("EFI"));
    let esp_tree = text(&run(Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-/")
        .arg("-b")
        .arg("-i")
        .arg(&esp)
        .arg("::")));
    assert!(
        esp_tree.to_uppercase().contains("BOOTX64.EFI"),
        "{esp_tree}"
    );

    // The rpm database inside lists exactly the resolved packages: what `kiln fetch` gets for
    // the config, less grub2-pc (build tooling, not installed).
    let rpmdb = work.path().join("rpmdb");
    std::fs::create_dir(&rpmdb).unwrap();
    debugfs(&root, &format!("rdump /var/lib/rpm {}", rpmdb.display()));
    let installed: BTreeSet<String> = text(&run(Command::new("rpm")
        .arg("--dbpath")
        .arg(rpmdb.join("rpm"))
        .args([
            "--define",
            "_db_backend sqlite",
            "-qa",
            "--qf",
            "%{NEVRA}.rpm\n",
        ])))
    .lines()
    .map(String::from)
    .collect();
    let fetched = work.path().join("fetched");
    let o = kiln()
        .args(["fetch", "--disable-upstream-repos", "--config"])
        .arg(demo_config("demo-efi.json"))
        .arg("--repo")
        .arg(sample_repo())
        .arg("--output-dir")
        .arg(&fetched)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let expected: BTreeSet<String> = common::rpms(&fetched)
        .into_iter()
        .filter(|f| !f.starts_with("grub2-pc-"))
        .collect();
    assert_eq!(installed, expected);
}

#[test]
fn legacy_mbr_and_xfs_disks_have_their_layouts_and_filesystems() {
    let work = tempfile::tempdir().unwrap();

    // demo-legacy: a BIOS boot partition before the root, fstab by filesystem UUID.
    let disk = compose("demo-legacy.json", &work.path().join("legacy"));
    assert!(text(&run(Command::new("sgdisk").arg("-v").arg(&disk))).contains("No problems found"));
    let parts = partitions(&disk);
    assert_eq!(
        parts[0]["type"], "21686148-6449-6E6F-744E-656564454649",
        "bios_grub"
    );
    assert_eq!(
        (parts[0]["start"].as_u64(), parts[0]["size"].as_u64()),
        (Some(2048), Some(8 * 2048))
    );
    let (boot, root) = (
        work.path().join("l-boot.img"),
        work.path().join("l-root.img"),
    );
    extract(&disk, &parts[0], &boot);
    extract(&disk, &parts[1], &root);
    // The BIOS boot partition holds GRUB's core image (as grub-install leaves it), and the
    // MBR GRUB's boot code pointing at it: the core's sector at 0x5c, its blocklist at the
    // end of the core's first sector (the rest from the next sector on).
    let mut mbr = [0u8; 512];
    std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(&disk).unwrap(), &mut mbr, 0)
        .unwrap();
    assert!(
        mbr.windows(4).any(|w| w == b"GRUB"),
        "GRUB's boot.img in the MBR"
    );
    assert_eq!(
        u64::from_le_bytes(mbr[0x5c..0x64].try_into().unwrap()),
        2048
    );
    let core = std::fs::read(&boot).unwrap();
    assert_eq!(u64::from_le_bytes(core[500..508].try_into().unwrap()), 2049);
    run(Command::new("e2fsck").arg("-fn").arg(&root));
    let (_, uuid) = blkid(&root);
    assert!(debugfs(&root, "cat /etc/fstab").contains(&format!("UUID={uuid} / ext4 defaults 0 1")));

    // demo-mbr: three primaries, an extended partition and two logical ones (as parted
    // numbers them), every filesystem checked, /srv and /var/log on their own partitions.
    let disk = compose("demo-mbr.json", &work.path().join("mbr"));
    let parts = partitions(&disk);
    let types: Vec<&str> = parts.iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["83", "83", "83", "f", "83", "82"]);
    assert_eq!(parts[0]["bootable"], true);
    let fs: Vec<std::path::PathBuf> = (0..6)
        .map(|i| work.path().join(format!("m{i}.img")))
        .collect();
    for i in [0, 1, 2, 4, 5] {
        extract(&disk, &parts[i], &fs[i]);
    }
    for i in [0, 1, 2, 4] {
        run(Command::new("e2fsck").arg("-fn").arg(&fs[i]));
    }
    let (swap_type, swap_uuid) = blkid(&fs[5]);
    assert_eq!(swap_type, "swap");
    let fstab = debugfs(&fs[1], "cat /etc/fstab");
    assert!(
        fstab.contains(&format!("UUID={swap_uuid} none swap sw 0 0")),
        "{fstab}"
    );
    assert!(
        fstab.contains(&format!(
            "UUID={} /srv ext4 nodev,nosuid 0 2",
            blkid(&fs[2]).1
        )),
        "{fstab}"
    );
    // On MBR the PARTUUID is the disk signature and the partition number.
    let o = run(Command::new("sfdisk").arg("--json").arg(&disk));
    let table: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let signature = table["partitiontable"]["id"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x")
        .to_string();
    assert!(
        fstab.contains(&format!("PARTUUID={signature}-02 / ext4")),
        "{fstab}"
    );
    assert!(
        debugfs(&fs[0], "ls /").contains("vmlinuz-"),
        "the kernel is on /boot"
    );
    assert!(
        !debugfs(&fs[1], "ls /boot").contains("vmlinuz-"),
        "and not under / 's /boot"
    );
    assert_eq!(
        debugfs(&fs[2], "cat /motd"),
        std::fs::read_to_string(demo_config("files/motd")).unwrap()
    );

    // demo-xfs: xfs root, separate /boot, swap, mounts by PARTLABEL.
    let disk = compose("demo-xfs.json", &work.path().join("xfs"));
    let parts = partitions(&disk);
    let (boot, root) = (
        work.path().join("x-boot.img"),
        work.path().join("x-root.img"),
    );
    extract(&disk, &parts[1], &boot);
    extract(&disk, &parts[3], &root);
    run(Command::new("e2fsck").arg("-fn").arg(&boot));
    run(Command::new("xfs_repair").arg("-n").arg(&root));
    assert_eq!(blkid(&root).0, "xfs");
    let xfs_db = |cmds: &[&str]| {
        let mut c = Command::new("xfs_db");
        c.arg("-r");
        for cmd in cmds {
            c.arg("-c").arg(cmd);
        }
        text(&run(c.arg(&root)))
    };
    assert!(
        xfs_db(&["path /tmp", "print core.mode"]).contains("041777"),
        "sticky /tmp"
    );
    // fstab's first block, decoded from xfs_db's hex dump ("000:  23 20 2f …  text").
    let dump = xfs_db(&["path /etc/fstab", "dblock 0", "type text", "print"]);
    let bytes: Vec<u8> = dump
        .lines()
        .filter_map(|l| l.split_once(':'))
        .flat_map(|(_, rest)| {
            rest.split_whitespace()
                .take(16)
                .filter_map(|h| u8::from_str_radix(h, 16).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    let fstab = String::from_utf8_lossy(&bytes).into_owned();
    for line in [
        "PARTLABEL=rootfs / xfs defaults 0 1",
        "PARTLABEL=boot /boot ext4 defaults 0 2",
        "PARTLABEL=esp /boot/efi vfat umask=0077 0 2",
    ] {
        assert!(fstab.contains(line), "{line} in {fstab}");
    }
    assert!(
        debugfs(&boot, "ls /").contains("vmlinuz-"),
        "the kernel is on /boot"
    );
}

/// The disk is made without loop devices, and every mount (rpm's, the scripts', grub2-mkconfig's
/// sandbox) happens inside a new mount namespace: none in the build host's.
#[test]
fn composing_a_disk_uses_no_loop_device_and_mounts_only_in_the_sandbox() {
    let work = tempfile::tempdir().unwrap();
    let trace = work.path().join("trace");
    let o = Command::new("strace")
        .args(common::STRACE_ARGS)
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .arg("compose")
        .arg("--config")
        .arg(demo_config("demo-efi.json"))
        .arg("--repo")
        .arg(sample_repo())
        .arg("--output-dir")
        .arg(work.path().join("out"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(&trace).unwrap();
    let calls = common::syscalls(&log);
    assert!(calls.len() > 100, "strace saw the build and its children");
    assert!(
        calls
            .iter()
            .any(|c| c.name == "unshare" && c.text.contains("CLONE_NEWNS")),
        "the sandbox ran"
    );
    let offending = common::mounts_outside_a_namespace(&log);
    assert!(offending.is_empty(), "{}", offending.join("\n"));
}

#[test]
fn imager_personality_builds_with_upstreams_flags() {
    let work = tempfile::tempdir().unwrap();
    let link = work.path().join("imager");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), &link).unwrap();
    let out = work.path().join("imager_output");
    std::fs::create_dir(&out).unwrap();
    let manifest = work.path().join("image_pkg_manifest.json");
    let o = Command::new(&link)
        .arg(format!(
            "--input={}",
            demo_config("demo-efi.json").display()
        ))
        .arg(format!("--output-dir={}", out.display()))
        .arg(format!("--local-repo={}", sample_repo().display()))
        .arg("--tdnf-worker=/tmp/unused.tar.gz")
        .arg(format!("--output-image-contents={}", manifest.display()))
        .arg("--emit-progress")
        .arg("--build-number=42")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(text(&o).lines().any(|l| l.starts_with("action:")));
    assert_eq!(text(&o).lines().last(), Some("progress:100"));
    assert!(out.join("disk0.raw").is_file());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert!(doc["Repo"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["Name"] == "kernel"));
    // The image-id carries the build number.
    let parts = partitions(&out.join("disk0.raw"));
    let root = work.path().join("root.img");
    extract(&out.join("disk0.raw"), &parts[1], &root);
    assert!(debugfs(&root, "cat /etc/image-id").contains("BUILD_NUMBER=42"));
}

#[test]
fn additional_files_cannot_escape_the_image() {
    let work = tempfile::tempdir().unwrap();
    let motd = demo_config("files/motd");
    let list = demo_config("packagelists/demo-packages.json");
    let config = work.path().join("escape.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"SystemConfigs": [{{"Name": "escape", "PackageLists": ["{}"],
                "AdditionalFiles": {{"{}": "../../../kiln-escaped"}}}}]}}"#,
            list.display(),
            motd.display()
        ),
    )
    .unwrap();
    let out = work.path().join("a/b/out");
    let o = common::compose(&config, &out);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("AdditionalFiles"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("outside the image root"),
        "{}",
        stderr(&o)
    );
    for dir in [
        work.path(),
        &work.path().join("a"),
        &work.path().join("a/b"),
        &out,
        Path::new("/"),
    ] {
        assert!(
            !dir.join("kiln-escaped").exists(),
            "written in {}",
            dir.display()
        );
    }
    assert!(
        !out.join("rootfs").exists(),
        "no result under the final name"
    );
}

/// `kiln build` of a demo config from the sample repository into `work`; returns the output
/// directory.
fn build(config: &str, work: &Path) -> std::path::PathBuf {
    let (o, out) = common::build(config, work);
    assert_eq!(
        text(&o).trim(),
        out.display().to_string(),
        "prints where the artifacts are"
    );
    for step in ["validate", "fetch", "compose", "roast", "total"] {
        assert!(
            stderr(&o)
                .lines()
                .any(|l| l.contains(&format!("] {step} "))),
            "{step} timing"
        );
    }
    out
}

/// `tar -tvzf` lines of a tarball: (mode, owner/group, path).
fn tar_listing(tarball: &Path) -> Vec<(String, String, String)> {
    text(&run(Command::new("tar").arg("-tvzf").arg(tarball)))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[5].to_string())
        })
        .collect()
}

#[test]
fn build_makes_the_container_tarballs_with_owners_modes_and_manifests() {
    let work = tempfile::tempdir().unwrap();
    let out = build("demo-container.json", &work.path().join("container"));
    let list = tar_listing(&out.join("demo-container.tar.gz"));
    let find = |path: &str| {
        list.iter()
            .find(|(_, _, p)| p == path)
            .unwrap_or_else(|| panic!("{path} in the tarball"))
            .clone()
    };
    assert_eq!(
        find("./etc/shadow"),
        ("----------".into(), "0/0".into(), "./etc/shadow".into())
    );
    assert_eq!(
        find("./home/app/").1,
        "1000/1000",
        "the user's home is the user's"
    );
    assert_eq!(find("./usr/bin/sample-app").0, "-rwxr-xr-x");
    assert!(
        list.iter().any(|(_, _, p)| p.starts_with("./var/lib/rpm/")),
        "rpmdb kept"
    );
    assert!(
        std::fs::read_to_string(work.path().join("container/logs/demo-container.log"))
            .unwrap()
            .contains("built demo-container: demo-container.tar.gz")
    );

    let out = build("demo-distroless.json", &work.path().join("distroless"));
    let tarball = out.join("demo-distroless.tar.gz");
    let list = tar_listing(&tarball);
    assert!(
        !list.iter().any(|(_, _, p)| p.starts_with("./var/lib/rpm/")),
        "no rpm database"
    );
    let manifest = text(&run(Command::new("tar")
        .arg("-xzOf")
        .arg(&tarball)
        .arg("./var/lib/rpmmanifest/container-manifest-2")));
    // upstream's query format: name, version-release, install time, build time, vendor,
    // (none), size, arch, epoch, source rpm — tab separated.
    let busybox = manifest
        .lines()
        .find(|l| l.starts_with("filesystem\t"))
        .unwrap();
    assert_eq!(busybox.split('\t').count(), 10, "{busybox}");
    assert_eq!(busybox.split('\t').nth(5), Some("(none)"), "{busybox}");
}

#[test]
fn raw_binaries_land_at_their_offsets() {
    let work = tempfile::tempdir().unwrap();
    let blob = work.path().join("blob.bin");
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8 + 1).collect();
    std::fs::write(&blob, &data).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(demo_config("demo-legacy.json")).unwrap())
            .unwrap();
    config["Disks"][0]["RawBinaries"] =
        serde_json::json!([{"BinPath": blob.display().to_string(), "BlockSize": 512, "Seek": 40}]);
    config["SystemConfigs"][0]["PackageLists"] =
        serde_json::json!([demo_config("packagelists/demo-packages.json")
            .display()
            .to_string()]);
    config["SystemConfigs"][0]["PostInstallScripts"] = serde_json::json!([]);
    let path = work.path().join("raw.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = work.path().join("out");
    let o = common::compose(&path, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let disk = std::fs::read(out.join("disk0.raw")).unwrap();
    assert_eq!(&disk[40 * 512..40 * 512 + data.len()], &data[..]);
    assert!(text(&run(Command::new("sgdisk")
        .arg("-v")
        .arg(out.join("disk0.raw"))))
    .contains("No problems found"));
}

/// Two builds with one SOURCE_DATE_EPOCH are byte-identical, the initramfs that a package's
/// scriptlet makes inside the image included (the sample's records no host inode numbers).
#[test]
fn two_builds_with_one_source_date_epoch_are_identical() {
    let work = tempfile::tempdir().unwrap();
    let a = std::fs::read(compose("demo-efi.json", &work.path().join("a"))).unwrap();
    let b = std::fs::read(compose("demo-efi.json", &work.path().join("b"))).unwrap();
    assert_eq!(a.len(), b.len());
    let differing: Vec<usize> = (0..a.len() / 4096)
        .filter(|&i| a[i * 4096..(i + 1) * 4096] != b[i * 4096..(i + 1) * 4096])
        .collect();
    assert!(
        differing.is_empty(),
        "{} blocks differ, the first at byte {}",
        differing.len(),
        differing[0] * 4096
    );
}

/// `kiln inspect` reads a built VHDX without mounting it: the table, the filesystems, a file,
/// a FAT directory and the installed packages.
#[test]
fn inspect_reads_a_built_image() {
    let work = tempfile::tempdir().unwrap();
    let (_, images) = common::build("demo-efi.json", work.path());
    let vhdx = images.join("demo-efi.vhdx");
    let inspect = |extra: &[&str]| {
        let o = common::kiln()
            .arg("inspect")
            .arg(&vhdx)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::stderr(&o));
        common::stdout(&o)
    };
    let doc: serde_json::Value = serde_json::from_str(&inspect(&["--json"])).unwrap();
    assert_eq!(doc["format"], "vhdx");
    assert_eq!(doc["table"], "gpt");
    let fs: Vec<&str> = doc["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["filesystem"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(fs, ["vfat", "ext4"]);
    assert_eq!(inspect(&["--cat", "/etc/hostname"]), "kiln-demo");
    assert!(inspect(&["--ls", "/EFI/BOOT", "--partition", "1"]).contains("bootx64"));
    let packages = inspect(&["--packages"]);
    assert!(
        packages.lines().any(|l| l.starts_with("busybox-")),
        "{packages}"
    );
    // Nothing is left beside the image.
    let mut left: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    // The VHDX, the lock file and the up-to-date check's record of its inputs.
    assert_eq!(left, [".kiln-inputs", ".kiln-lock", "demo-efi.vhdx"]);
}
