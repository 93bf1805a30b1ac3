//! Rootless builds: kiln run by an ordinary user becomes root in a user namespace mapped from
//! the user's /etc/subuid and /etc/subgid ranges (kiln_sandbox::userns).
//!
//! The tests need root (as CI runs them): they make the system users `kiln-rootless` (with the
//! range 200000–265535) and `kiln-nosubid` (without one), copy the kiln binary and its inputs
//! where those users can read them, and run kiln as them with `runuser`. Run by an ordinary
//! user, they say why they skip.

mod common;

use common::{stderr, stdout};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The user with a subordinate range.
const USER: &str = "kiln-rootless";
/// The first id of its range: image uid 1000 is host uid SUB_START + 999.
const SUB_START: u32 = 200_000;
/// A user without a range.
const NO_RANGE_USER: &str = "kiln-nosubid";

/// Whether the tests can run; says why not when they cannot.
fn can_run(test: &str) -> bool {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        eprintln!(
            "skipped {test}: it runs as root, to create the user {USER} and run kiln as it \
             with runuser"
        );
    }
    root
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Makes the system user `name` when missing and, with `range`, gives it the subordinate ids
/// SUB_START.. in /etc/subuid and /etc/subgid (idempotent; other test runs may race).
fn ensure_user(name: &str, range: bool) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !run("id", &["-u", name]).status.success() {
        let o = run("useradd", &["--system", "--create-home", name]);
        assert!(
            run("id", &["-u", name]).status.success(),
            "useradd {name}: {}",
            stderr(&o)
        );
    }
    if !range {
        return;
    }
    let has = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&format!("{name}:")))
    };
    let files = ["/etc/subuid", "/etc/subgid"];
    if files.iter().any(|f| !has(f)) {
        let ids = format!("{SUB_START}-{}", SUB_START + 65535);
        run(
            "usermod",
            &["--add-subuids", &ids, "--add-subgids", &ids, name],
        );
    }
    for file in files {
        if !has(file) {
            // No usermod with subordinate ids: the line itself.
            let mut text = std::fs::read_to_string(file).unwrap_or_default();
            text.push_str(&format!("{name}:{SUB_START}:65536\n"));
            std::fs::write(file, text).unwrap();
        }
    }
}

/// For a test that runs kiln as `user` (with a subordinate range when `range`): the user and
/// its folder, or `None` (said why) when the tests cannot run.
fn prepare(test: &str, user: &str, range: bool) -> Option<UserDir> {
    if !can_run(test) {
        return None;
    }
    ensure_user(user, range);
    Some(UserDir::new(user))
}

/// A folder `owner` owns holding a copy of the kiln binary, kiln's imageconfigs/ and the
/// sample repository.
struct UserDir {
    dir: tempfile::TempDir,
    kiln: PathBuf,
}

impl UserDir {
    fn new(owner: &str) -> UserDir {
        let dir = tempfile::tempdir().unwrap();
        let kiln = dir.path().join("kiln");
        std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &kiln).unwrap();
        let configs = common::demo_config("demo-efi.json");
        for source in [configs.parent().unwrap(), &common::sample_repo()] {
            let o = run(
                "cp",
                &["-a", source.to_str().unwrap(), dir.path().to_str().unwrap()],
            );
            assert!(o.status.success(), "cp: {}", stderr(&o));
        }
        let o = run(
            "chown",
            &["-R", &format!("{owner}:"), dir.path().to_str().unwrap()],
        );
        assert!(o.status.success(), "chown: {}", stderr(&o));
        UserDir { dir, kiln }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> PathBuf {
        self.path().join("imageconfigs/demo-efi.json")
    }

    fn repo(&self) -> PathBuf {
        self.path().join("sample-repo")
    }

    /// kiln run as `user` in this folder, with `env` (`KEY=value`) and `args`.
    fn kiln_as<S: AsRef<std::ffi::OsStr>>(&self, user: &str, env: &[&str], args: &[S]) -> Output {
        Command::new("runuser")
            .args(["-u", user, "--", "env"])
            .args(env)
            .arg(&self.kiln)
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap()
    }
}

#[test]
fn kiln_is_root_in_its_namespace_and_image_ids_land_in_the_subordinate_range() {
    let Some(dir) = prepare("the user-namespace test", USER, true) else {
        return;
    };
    let file = dir.path().join("owned-by-1000");
    let o = dir.kiln_as(
        USER,
        &[],
        &["userns-probe", "--chown", file.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("rootless: uid"), "{out}");
    assert!(out.contains("Uid:\t0\t0\t0\t0"), "{out}");
    assert!(out.contains("Gid:\t0\t0\t0\t0"), "{out}");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (SUB_START + 999, SUB_START + 999),
        "a file given 1000:1000 in kiln's namespace"
    );
}

#[test]
fn a_user_without_subordinate_ids_is_told_the_line_to_add_and_can_still_validate() {
    let Some(dir) = prepare("the missing-range test", NO_RANGE_USER, false) else {
        return;
    };
    let args = common::build_args(&dir.config(), &dir.repo(), &dir.path().join("work"));
    let o = dir.kiln_as(NO_RANGE_USER, &[], &args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("/etc/subuid gives {NO_RANGE_USER} no range")),
        "{err}"
    );
    assert!(err.contains(&format!("`{NO_RANGE_USER}:")), "{err}");
    assert!(err.contains("--add-subuids"), "{err}");
    // Commands that build nothing need no namespace.
    let o = dir.kiln_as(
        NO_RANGE_USER,
        &[],
        &["validate", dir.config().to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn without_newuidmap_the_error_names_the_uidmap_package() {
    let Some(dir) = prepare("the missing-newuidmap test", USER, true) else {
        return;
    };
    let o = dir.kiln_as(USER, &["PATH=/nonexistent"], &["userns-probe"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("newuidmap was not found in PATH"), "{err}");
    assert!(err.contains("install the uidmap package"), "{err}");
}

/// The byte offset of partition `n` (1-based) of a raw disk, from `sfdisk --json`.
fn partition_offset(disk: &Path, n: usize) -> u64 {
    let o = run("sfdisk", &["--json", disk.to_str().unwrap()]);
    assert!(o.status.success(), "sfdisk: {}", stderr(&o));
    let table: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    table["partitiontable"]["partitions"][n - 1]["start"]
        .as_u64()
        .unwrap()
        * 512
}

/// debugfs `request` on the ext4 filesystem at `offset` of `disk`.
fn debugfs(disk: &Path, offset: u64, request: &str) -> String {
    let o = run(
        "debugfs",
        &[
            "-R",
            request,
            &format!("{}?offset={offset}", disk.display()),
        ],
    );
    assert!(o.status.success(), "debugfs {request}: {}", stderr(&o));
    stdout(&o)
}

/// The numbers after `label` in debugfs's `stat` output (e.g. "User:" → the uid).
fn field(stat: &str, label: &str) -> u32 {
    stat.split(label)
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no {label} in {stat}"))
}

/// The byte ranges of the root filesystem (at `offset` of `disk`) that hold the file `path`:
/// its data blocks and its inode.
fn file_ranges(disk: &Path, offset: u64, path: &str) -> Vec<std::ops::Range<u64>> {
    let inode_size = u64::from(field(&debugfs(disk, offset, "stats"), "Inode size:"));
    let mut ranges: Vec<_> = debugfs(disk, offset, &format!("blocks {path}"))
        .split_whitespace()
        .map(|b| {
            let b: u64 = b.parse().unwrap();
            offset + b * 4096..offset + (b + 1) * 4096
        })
        .collect();
    let imap = debugfs(disk, offset, &format!("imap {path}"));
    let block = u64::from(field(&imap, "located at block"));
    let at = imap.split("offset 0x").nth(1).unwrap().trim();
    let at = u64::from_str_radix(at, 16).unwrap();
    let start = offset + block * 4096 + at;
    ranges.push(start..start + inode_size);
    ranges
}

/// The byte ranges where the raw disks `a` and `b` differ (in 4 KiB pieces).
fn differences(a: &Path, b: &Path) -> Vec<std::ops::Range<u64>> {
    use std::io::Read;
    let (mut a, mut b) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut at = 0u64;
    let mut found = Vec::new();
    loop {
        let n = a.read(&mut x).unwrap();
        b.read_exact(&mut y[..n]).unwrap();
        if n == 0 {
            return found;
        }
        for (i, (p, q)) in x[..n].chunks(4096).zip(y[..n].chunks(4096)).enumerate() {
            if p != q {
                let first = p.iter().zip(q).position(|(u, v)| u != v).unwrap();
                let last = p.iter().zip(q).rposition(|(u, v)| u != v).unwrap();
                let base = at + (i as u64) * 4096;
                found.push(base + first as u64..base + last as u64 + 1);
            }
        }
        at += n as u64;
    }
}

#[test]
fn a_rootless_build_of_demo_efi_matches_a_root_build_and_boots() {
    let Some(dir) = prepare("the rootless build test", USER, true) else {
        return;
    };
    let epoch = "SOURCE_DATE_EPOCH=1700000000";
    let rootless = dir.path().join("work");
    let args = common::build_args(&dir.config(), &dir.repo(), &rootless);
    let o = dir.kiln_as(USER, &[epoch], &args);
    assert!(o.status.success(), "rootless build: {}", stderr(&o));
    assert!(stderr(&o).contains("rootless: uid"), "{}", stderr(&o));
    // The same inputs, built as root.
    let root_work = tempfile::tempdir().unwrap();
    let o = common::kiln()
        .args(common::build_args(
            &dir.config(),
            &dir.repo(),
            root_work.path(),
        ))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "root build: {}", stderr(&o));

    // The artifact and everything kiln made for itself belong to the user.
    let vhdx = rootless.join("images/demo-efi.vhdx");
    let user_uid = std::fs::metadata(dir.path()).unwrap().uid();
    for p in [&vhdx, &rootless.join("build/imager_output/disk0.raw")] {
        assert_eq!(std::fs::metadata(p).unwrap().uid(), user_uid, "{p:?}");
    }

    // Inside the image, files keep the image's owners.
    let disk = rootless.join("build/imager_output/disk0.raw");
    let root_disk = root_work.path().join("build/imager_output/disk0.raw");
    let rootfs = partition_offset(&disk, 2);
    // (The demo user has no primary group of its own: useradd's default, users (100).)
    for (path, owner) in [("/home/kiln", (1000, 100)), ("/etc/passwd", (0, 0))] {
        let stat = debugfs(&disk, rootfs, &format!("stat {path}"));
        assert_eq!(
            (field(&stat, "User:"), field(&stat, "Group:")),
            owner,
            "{path}: {stat}"
        );
    }

    // The disks are the same: qemu-img says so, or they differ only inside the sample
    // initramfs (its cpio archive records the build host's inode numbers, so two root builds
    // differ there too).
    let compare = run(
        "qemu-img",
        &[
            "compare",
            "-f",
            "vhdx",
            "-F",
            "vhdx",
            vhdx.to_str().unwrap(),
            root_work
                .path()
                .join("images/demo-efi.vhdx")
                .to_str()
                .unwrap(),
        ],
    );
    if !compare.status.success() {
        let ls = debugfs(&disk, rootfs, "ls /boot");
        let initramfs = ls
            .split_whitespace()
            .find(|n| n.starts_with("initramfs-"))
            .expect("an initramfs in /boot");
        let path = format!("/boot/{initramfs}");
        let allowed: Vec<_> = [&disk, &root_disk]
            .iter()
            .flat_map(|d| file_ranges(d, rootfs, &path))
            .collect();
        let unexplained: Vec<_> = differences(&disk, &root_disk)
            .into_iter()
            .filter(|d| !allowed.iter().any(|r| r.start <= d.start && d.end <= r.end))
            .collect();
        assert!(
            unexplained.is_empty(),
            "the rootless and the root disk differ outside {path} at {unexplained:?} ({})",
            stdout(&compare).trim()
        );
        println!("the disks differ only inside {path}");
    }

    // And it boots, the user's home its own.
    common::boot_test(
        &vhdx,
        "uefi",
        "virtio",
        &["id", "stat -c %u:%g:%n /home/kiln"],
        &["uid=1000(kiln)", "1000:100:/home/kiln"],
    );
}
