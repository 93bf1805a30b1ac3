//! What the `kiln` binary's test files share.

#![allow(dead_code)] // not every test file uses every helper

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `kiln` binary built for these tests.
pub fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env_remove("NO_COLOR");
    c
}

/// kiln under the upstream tool name `name` (a symlink in `dir`), with SOURCE_DATE_EPOCH set.
pub fn personality(dir: &Path, name: &str) -> Command {
    let link = dir.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), &link).unwrap();
    }
    let mut c = Command::new(link);
    c.env("SOURCE_DATE_EPOCH", "1767225600");
    c
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The sample repository (`make sample-repo`).
pub fn sample_repo() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/sample-repo");
    assert!(
        repo.join("repodata").is_dir(),
        "run `make sample-repo` first"
    );
    repo
}

/// The realistic distribution (`make distro`), or `None` after saying why the test using it
/// is skipped.
pub fn distro_repo() -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/RPMS");
    if repo.join("repodata").is_dir() {
        return Some(repo);
    }
    eprintln!(
        "skipped: no realistic distribution at {} (run `make distro`)",
        repo.display()
    );
    None
}

/// `kiln build` of `config` from the realistic distribution `repo` into `work` (images/,
/// build/, logs/), its relative paths resolved in upstream's imageconfigs/ (their package
/// lists); asserts it succeeded.
pub fn build_realistic(config: &Path, repo: &Path, work: &Path) {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/azl-compat/imageconfigs");
    let o = kiln()
        .args(build_args(config, repo, work))
        .arg("--base-dir")
        .arg(&corpus)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A file of kiln's own `imageconfigs/`.
pub fn demo_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../imageconfigs")
        .join(name)
}

/// The RPM file names in `dir`.
pub fn rpms(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rpm"))
        .collect()
}

/// The one RPM in `dir` whose file name starts with `prefix`.
pub fn rpms_named(dir: &Path, prefix: &str) -> String {
    rpms(dir)
        .into_iter()
        .find(|f| f.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* in {}", dir.display()))
}

/// `kiln compose` of `config` from the sample repository into `out` (SOURCE_DATE_EPOCH set).
pub fn compose(config: &Path, out: &Path) -> Output {
    compose_based(config, None, out)
}

/// kiln's own `imageconfigs/` (package lists, scripts, files of the demo configs).
pub fn imageconfigs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../imageconfigs")
}

/// As [`compose`], with the config's relative paths resolved in `base` (`--base-dir`), e.g.
/// [`imageconfigs`] for a config written elsewhere that names the demo package lists.
pub fn compose_based(config: &Path, base: Option<&Path>, out: &Path) -> Output {
    let mut cmd = kiln();
    cmd.arg("compose").arg("--config").arg(config);
    if let Some(base) = base {
        cmd.arg("--base-dir").arg(base);
    }
    cmd.arg("--repo")
        .arg(sample_repo())
        .arg("--output-dir")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap()
}

/// The `kiln build` command of a demo config from the sample repository into `work` (images/,
/// build/, logs/).
pub fn build_command(config: &str, work: &Path) -> Command {
    build_config_command(&demo_config(config), work)
}

/// The `kiln build` command of the config file `config` from the sample repository into `work`
/// (images/, build/, logs/).
pub fn build_config_command(config: &Path, work: &Path) -> Command {
    let mut c = kiln();
    c.args(build_args(config, &sample_repo(), work))
        .env("SOURCE_DATE_EPOCH", "1700000000");
    c
}

/// The arguments of `kiln build` of `config` from the repository `repo` into `work` (images/,
/// build/, logs/, and the package-root cache in cache/), offline.
pub fn build_args(config: &Path, repo: &Path, work: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["build".into(), "--config".into()];
    args.push(config.into());
    args.push("--repo".into());
    args.push(repo.into());
    args.push("--disable-upstream-repos".into());
    for (flag, dir) in [
        ("--output-dir", "images"),
        ("--build-dir", "build"),
        ("--log-dir", "logs"),
        ("--package-cache", "cache"),
    ] {
        args.push(flag.into());
        args.push(work.join(dir).into());
    }
    args
}

/// `kiln build` of a demo config from the sample repository into `work` (images/, build/,
/// logs/); returns the command's output and the images directory.
pub fn build(config: &str, work: &Path) -> (Output, PathBuf) {
    let o = build_command(config, work).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    (o, work.join("images"))
}

/// `kiln boot-test` of `artifact` (firmware uefi, bios or auto, disk virtio or nvme): logs in as
/// kiln:kiln, runs each of `runs`, and checks the console shows each of `expect`.
pub fn boot_test(artifact: &Path, firmware: &str, disk: &str, runs: &[&str], expect: &[&str]) {
    boot_test_with(artifact, firmware, disk, &[], runs, expect)
}

/// [`boot_test`] with more of boot-test's arguments (`extra`, e.g. `--passphrase P`).
pub fn boot_test_with(
    artifact: &Path,
    firmware: &str,
    disk: &str,
    extra: &[&str],
    runs: &[&str],
    expect: &[&str],
) {
    let mut cmd = kiln();
    cmd.arg("boot-test")
        .arg(artifact)
        .args(["--disk", disk])
        .args(extra);
    // "auto": boot-test picks the firmware from the partition table.
    if firmware != "auto" {
        cmd.args(["--firmware", firmware]);
    }
    cmd.args(["--login", "kiln:kiln", "--timeout", "600"]);
    for r in runs {
        cmd.args(["--run", r]);
    }
    for e in expect {
        cmd.args(["--expect", e]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    println!("{}", stdout(&o).trim());
}

/// One system call of an `strace -f -o FILE` log, its `<unfinished ...>` and `<... resumed>`
/// halves joined: the process, the call's name, its whole text and its return value.
#[derive(Debug, Clone)]
pub struct Syscall {
    pub pid: u32,
    pub name: String,
    pub text: String,
    pub ret: Option<i64>,
}

/// The calls of an `strace -f -o FILE` log, in the order they finished.
pub fn syscalls(log: &str) -> Vec<Syscall> {
    let mut pending: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
    let mut calls = Vec::new();
    for line in log.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        let text = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, head.to_string());
            continue;
        } else if let Some(resumed) = rest.strip_prefix("<... ") {
            let tail = resumed.split_once("resumed>").map_or("", |(_, t)| t);
            format!("{}{tail}", pending.remove(&pid).unwrap_or_default())
        } else {
            rest.to_string()
        };
        let Some(open) = text.find('(') else {
            continue; // "+++ exited with 0 +++", "--- SIGCHLD …"
        };
        let name = text[..open].to_string();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        // "= 123", "= 123 /* 4567 in strace's PID NS */", "= -1 EPERM (…)", "= ?"; a resumed
        // call pads before its "=" (") <spaces> = 0").
        let ret = text.rsplit_once(" = ").and_then(|(call, r)| {
            if !call.trim_end().ends_with(')') {
                return None;
            }
            let r = match r.split_once("/* ") {
                Some((_, translated)) => translated,
                None => r,
            };
            r.split_whitespace().next()?.parse::<i64>().ok()
        });
        calls.push(Syscall {
            pid,
            name,
            text,
            ret,
        });
    }
    calls
}

/// The system calls of the log that mount, unmount, change the root or use a loop device
/// outside a new mount namespace: a process is in one from its successful `unshare` with
/// `CLONE_NEWNS` on, and so is every process it forks afterwards (or forks with
/// `CLONE_NEWNS`). Loop devices count anywhere. Log it with `strace -f --pidns-translation`,
/// so that forks inside a new PID namespace return host process ids.
pub fn mounts_outside_a_namespace(log: &str) -> Vec<String> {
    use std::collections::HashMap;
    const MOUNTS: [&str; 10] = [
        "mount",
        "umount2",
        "move_mount",
        "fsmount",
        "fsopen",
        "fsconfig",
        "open_tree",
        "mount_setattr",
        "pivot_root",
        "chroot",
    ];
    let calls = syscalls(log);
    // Since which call each process is in a new mount namespace.
    let mut since: HashMap<u32, usize> = HashMap::new();
    loop {
        let before = since.clone();
        for (i, c) in calls.iter().enumerate() {
            let ok = c.ret.is_some_and(|r| r >= 0);
            if c.name == "unshare" && ok && c.text.contains("CLONE_NEWNS") {
                let at = since.entry(c.pid).or_insert(i);
                *at = (*at).min(i);
            }
            let forks = ["clone", "clone3", "fork", "vfork"].contains(&c.name.as_str());
            if let (true, Some(child)) = (forks, c.ret.filter(|r| *r > 0)) {
                let inside = since.get(&c.pid).is_some_and(|&s| s < i);
                if inside || c.text.contains("CLONE_NEWNS") {
                    since.insert(child as u32, 0);
                }
            }
        }
        if since == before {
            break;
        }
    }
    calls
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            let outside = since.get(&c.pid).is_none_or(|&s| s > *i);
            let mounts = MOUNTS.contains(&c.name.as_str());
            let loop_dev = c.text.contains("LOOP_") || c.text.contains("/dev/loop");
            loop_dev || (outside && mounts)
        })
        .map(|(_, c)| format!("{} {}", c.pid, c.text))
        .collect()
}

/// strace's arguments, up to the log file's name, for [`mounts_outside_a_namespace`]: every
/// process, the mount family, ioctls, opens, namespaces and forks, process ids as the host sees
/// them.
pub const STRACE_ARGS: [&str; 6] = [
    "-f",
    "-qq",
    "--pidns-translation",
    "-e",
    "trace=mount,umount2,move_mount,fsmount,fsopen,fsconfig,open_tree,mount_setattr,pivot_root,\
     chroot,ioctl,open,openat,unshare,clone,clone3,fork,vfork",
    "-o",
];

/// `make iso` of imageconfigs/`config`.json from the realistic distribution `rpms`, unattended
/// (UNATTENDED_INSTALLER=y) or attended; asserts it succeeded and returns the ISO's path in
/// out/images/`config`/. With KILN_ISO_BUILT set, the ISO a `make iso` already wrote there is
/// taken as it is (a nested `make` run from `cargo test` rebuilds kiln in release from scratch:
/// its environment differs).
#[allow(dead_code)]
pub fn make_iso(config: &str, rpms: &Path, unattended: bool) -> PathBuf {
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let iso = top.join(format!("out/images/{config}/{config}.iso"));
    if std::env::var_os("KILN_ISO_BUILT").is_some() {
        assert!(
            iso.is_file(),
            "KILN_ISO_BUILT is set but {} does not exist: run make iso CONFIG_FILE=imageconfigs/{config}.json{}",
            iso.display(),
            if unattended { " UNATTENDED_INSTALLER=y" } else { "" }
        );
        return iso;
    }
    let mut make = Command::new("make");
    make.current_dir(&top)
        .args(["-s", "iso"])
        .arg(format!("CONFIG_FILE=imageconfigs/{config}.json"));
    if unattended {
        make.arg("UNATTENDED_INSTALLER=y");
    }
    let o = make
        .arg("DISABLE_UPSTREAM_REPOS=y")
        .arg(format!("RPMS_DIR={}", rpms.display()))
        .arg("LOG_COLOR=never")
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    iso
}

/// Copies `len` bytes of `file` from byte `offset` into the new file `to` (a partition out of a
/// disk image); blocks of zeros are left as holes.
pub fn extract_range(file: &Path, offset: u64, len: u64, to: &Path) {
    use std::os::unix::fs::FileExt;
    let from = std::fs::File::open(file).unwrap();
    let out = std::fs::File::create_new(to).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        from.read_exact_at(&mut buf[..n], offset + at).unwrap();
        if buf[..n].iter().any(|&b| b != 0) {
            out.write_all_at(&buf[..n], at).unwrap();
        }
        at += n as u64;
    }
    out.set_len(len).unwrap();
}
