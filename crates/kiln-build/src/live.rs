//! imager `--live-install`: the config installed onto its TargetDisk (kiln-imager's own
//! assembly: no partition device, no mount), then the target checked before the installer
//! reboots — kiln's addition to upstream (SPEC §5.3), whose installer reboots whatever it wrote:
//!
//! * every filesystem is clean: ext2/3/4 with `e2fsck -fn` on its byte range of the device, FAT
//!   with `fsck.vfat -n` on a copy of its partition (fsck.vfat reads no byte range), xfs with
//!   `xfs_repair -n` on a read-only loop device over its range (a sparse copy on a disk file);
//!   an encrypted root is first opened from the device with the config's password (the LUKS
//!   header read back, a key slot opened, the LVM label checked) and its logical volume
//!   decrypted into a sparse file, which is checked instead;
//! * the installed rpm database, read from the target (debugfs dumps it out of an ext
//!   filesystem holding `/var/lib/rpm`, xfs_db's extent map finds it in xfs, the installer's
//!   rpm lists it), holds exactly the resolved packages.
//!
//! Any difference fails the install with what differs, so the installer shows a shell and the
//! log instead of rebooting into a broken system.

use kiln_config::model::PartitionFlag;
use kiln_fs::FsKind;
use kiln_imager::BuiltPartition;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Installs onto the config's TargetDisk, then checks what was written ([`check_target`]).
/// Returns the device's path.
pub(crate) fn install_onto_target(
    req: &kiln_imager::Request,
    resolved: &[kiln_repo::Package],
    work_dir: &Path,
    report: &mut dyn FnMut(&str),
) -> Result<Vec<String>, String> {
    let target = &req.config.disks[0].target_disk;
    if !target.is_path() || target.value.is_empty() {
        return Err(
            "--live-install needs the disk's TargetDisk: {\"Type\": \"path\", \
                    \"Value\": \"/dev/…\"}"
                .into(),
        );
    }
    let device = PathBuf::from(&target.value);
    std::fs::create_dir_all(work_dir)
        .map_err(|e| format!("cannot create {}: {e}", work_dir.display()))?;
    let work = kiln_formats::files::TempDir::create(&work_dir.join("live-install"))
        .map_err(|e| format!("cannot create a folder in {}: {e}", work_dir.display()))?;
    let built =
        kiln_imager::install_disk(req, &device, work.path(), report).map_err(|e| e.to_string())?;
    // A BIOS boot partition holds GRUB's core image, whatever its FsType says.
    let partitions = &req.config.disks[0].partitions;
    let checked: Vec<BuiltPartition> = built
        .partitions
        .iter()
        .filter(|p| !partitions[p.index].has_flag(PartitionFlag::Grub))
        .cloned()
        .collect();
    let resolved: BTreeSet<String> = resolved.iter().map(|p| p.nevra()).collect();
    let expected = (!req.root.system.remove_rpm_db).then_some(&resolved);
    // The encrypted root is opened with the password, as at the first boot.
    let system = req.root.system;
    let unlock = system
        .encryption
        .enable
        .then(|| checked.iter().find(|p| p.mount_point == "/"))
        .flatten()
        .map(|p| Unlock {
            partition: p.number,
            secret: system.encryption.password.as_bytes(),
        });
    check_target(&device, &checked, expected, unlock, work.path(), report)?;
    drop(work);
    Ok(vec![device.display().to_string()])
}

/// An encrypted partition of the target and the secret that opens it.
#[derive(Debug, Clone, Copy)]
pub struct Unlock<'a> {
    /// Its partition number.
    pub partition: u32,
    pub secret: &'a [u8],
}

/// Where the tools read a filesystem: its byte range of the device, or the decrypted logical
/// volume of an encrypted partition.
struct Sources<'a> {
    device: &'a Path,
    decrypted: Option<(u32, PathBuf)>,
}

impl Sources<'_> {
    /// The decrypted logical volume of partition `p`, if it is the encrypted one.
    fn decrypted(&self, p: &BuiltPartition) -> Option<&Path> {
        match &self.decrypted {
            Some((n, lv)) if *n == p.number => Some(lv),
            _ => None,
        }
    }

    /// `file?offset=N`: e2fsprogs' way to read a filesystem at a byte offset.
    fn e2fs(&self, p: &BuiltPartition) -> String {
        match self.decrypted(p) {
            Some(lv) => lv.display().to_string(),
            None => format!("{}?offset={}", self.device.display(), p.offset),
        }
    }
}

/// Checks the installed target `device`: each filesystem clean (an encrypted one, `unlock`,
/// after opening it with its secret), and (`expected` given) its rpm database holding exactly
/// the packages `expected` names (`name-[epoch:]version-release.arch`). `work` holds the copies
/// the tools read.
pub fn check_target(
    device: &Path,
    partitions: &[BuiltPartition],
    expected: Option<&BTreeSet<String>>,
    unlock: Option<Unlock>,
    work: &Path,
    report: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let mut sources = Sources {
        device,
        decrypted: None,
    };
    if let Some(u) = unlock {
        let p = partitions
            .iter()
            .find(|p| p.number == u.partition)
            .ok_or_else(|| format!("no partition {} to open", u.partition))?;
        sources.decrypted = Some((p.number, open_encrypted(device, p, u.secret, work, report)?));
    }
    let result = check_filesystems(&sources, partitions, work, report).and_then(|()| {
        let Some(expected) = expected else {
            report("not checked: the rpm database (RemoveRpmDb)");
            return Ok(());
        };
        report("checking the installed packages against the resolved set");
        let installed = installed_packages(&sources, partitions, work)?;
        compare_packages(expected, &installed)
    });
    if let Some((_, lv)) = &sources.decrypted {
        let _ = std::fs::remove_file(lv);
    }
    result
}

/// Opens encrypted partition `p` of `device` with `secret` and decrypts its logical volume into
/// a sparse file in `work`, whose path it returns.
fn open_encrypted(
    device: &Path,
    p: &BuiltPartition,
    secret: &[u8],
    work: &Path,
    report: &mut dyn FnMut(&str),
) -> Result<PathBuf, String> {
    let what = format!("partition {} ({}) on {}", p.number, p.id, device.display());
    report(&format!(
        "opening the encrypted {what} with its password and decrypting it to check it"
    ));
    let from = std::fs::File::open(device).map_err(|e| format!("{}: {e}", device.display()))?;
    let lv = work.join(format!("partition{}.lv", p.number));
    let out = std::fs::File::create_new(&lv).map_err(|e| format!("{}: {e}", lv.display()))?;
    match kiln_crypt::extract_logical_volume(&from, p.offset, p.size, secret, &out) {
        Ok(_) => Ok(lv),
        Err(e) => {
            let _ = std::fs::remove_file(&lv);
            Err(format!(
                "the encrypted {what} does not open after the install: {e}"
            ))
        }
    }
}

fn check_filesystems(
    sources: &Sources,
    partitions: &[BuiltPartition],
    work: &Path,
    report: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let device = sources.device;
    for p in partitions {
        let Some(kind) = p.fs else { continue };
        if matches!(kind, FsKind::Swap) {
            continue;
        }
        let what = format!("partition {} ({}) on {}", p.number, p.id, device.display());
        report(&format!("checking the filesystem of {what}"));
        match kind {
            FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => {
                let out = tool(
                    Command::new("e2fsck")
                        .args(["-f", "-n"])
                        .arg(sources.e2fs(p)),
                    "e2fsck",
                    "e2fsprogs",
                )?;
                clean(&out, "", &what)?;
            }
            FsKind::Vfat => {
                let copy = work.join(format!("partition{}.vfat", p.number));
                copy_range(device, p, &copy).map_err(|e| format!("reading {what}: {e}"))?;
                let out = tool(
                    Command::new("fsck.vfat").arg("-n").arg(&copy),
                    "fsck.vfat",
                    "dosfstools",
                );
                let _ = std::fs::remove_file(&copy);
                clean(&out?, "FAT ", &what)?;
            }
            FsKind::Xfs => {
                let view = XfsView::open(sources, p, work)
                    .map_err(|e| format!("cannot read the xfs filesystem of {what}: {e}"))?;
                // -n: no modification; exit status 1 when it found corruption.
                let out = tool(
                    Command::new("xfs_repair").arg("-n").arg(view.path()),
                    "xfs_repair",
                    "xfsprogs",
                )?;
                clean(&out, "xfs ", &what)?;
            }
            FsKind::Swap => {} // skipped above
        }
    }
    Ok(())
}

/// A checker's run `out` on the filesystem of `what` (`kind`: "FAT ", "xfs " or "") found it
/// clean, or the error with what the checker printed.
fn clean(out: &std::process::Output, kind: &str, what: &str) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "the {kind}filesystem of {what} is not clean after the install: {} {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// The rpm database's packages differ from the resolved ones: the error names both sides.
pub fn compare_packages(
    wanted: &BTreeSet<String>,
    installed: &BTreeSet<String>,
) -> Result<(), String> {
    let missing: Vec<&str> = wanted.difference(installed).map(String::as_str).collect();
    let extra: Vec<&str> = installed.difference(wanted).map(String::as_str).collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let list = |v: &[&str]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    Err(format!(
        "the installed rpm database differs from the resolved packages: missing {}; not \
         resolved {}",
        list(&missing),
        list(&extra)
    ))
}

fn tool(cmd: &mut Command, name: &str, package: &str) -> Result<std::process::Output, String> {
    cmd.output()
        .map_err(|e| format!("cannot run {name} (package {package}): {e}"))
}

/// Copies partition `p` of `device` into the new file `to`, sparse: blocks of zeros (a blank
/// disk's free space) are left as holes.
fn copy_range(device: &Path, p: &BuiltPartition, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    const CHUNK: usize = 1 << 20;
    let from = std::fs::File::open(device)?;
    let out = std::fs::File::create_new(to)?;
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < p.size {
        let n = (p.size - at).min(CHUNK as u64) as usize;
        from.read_exact_at(&mut buf[..n], p.offset + at)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => std::io::Error::new(
                    e.kind(),
                    format!("the device ended after {at} of {} bytes", p.size),
                ),
                _ => e,
            })?;
        if buf[..n].iter().any(|&b| b != 0) {
            out.write_all_at(&buf[..n], at)?;
        }
        at += n as u64;
    }
    out.set_len(p.size)
}

/// Partition `p` of `device` as a path the xfs tools open (they read no byte range of a
/// device): on a block device (the installer's target) a read-only loop device over the range,
/// which copies nothing into the installer's memory; on a disk image file a sparse copy of the
/// range in `work`. Detached or removed when dropped.
enum XfsView {
    Loop(kiln_fs::loopdev::LoopDevice),
    Copy(PathBuf),
    /// The decrypted logical volume of an encrypted root (removed by its owner).
    Decrypted(PathBuf),
}

impl XfsView {
    fn open(sources: &Sources, p: &BuiltPartition, work: &Path) -> Result<Self, String> {
        if let Some(lv) = sources.decrypted(p) {
            return Ok(XfsView::Decrypted(lv.to_path_buf()));
        }
        let device = sources.device;
        if kiln_fs::loopdev::is_block_device(device) {
            return kiln_fs::loopdev::LoopDevice::attach(device, p.offset, p.size, true)
                .map(XfsView::Loop);
        }
        let path = work.join(format!("partition{}.xfs", p.number));
        copy_range(device, p, &path).map_err(|e| format!("{}: {e}", device.display()))?;
        Ok(XfsView::Copy(path))
    }

    fn path(&self) -> &Path {
        match self {
            XfsView::Loop(l) => l.path(),
            XfsView::Copy(p) | XfsView::Decrypted(p) => p,
        }
    }
}

impl Drop for XfsView {
    fn drop(&mut self) {
        if let XfsView::Copy(p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The contents of the regular file `path` in the xfs filesystem on `fs` (a device or image of
/// that filesystem alone), read through its extent map as xfs_db reports it (xfsprogs has no
/// tool that copies a file out of an unmounted filesystem); `None` when there is no such file.
fn xfs_read_file(fs: &Path, path: &str) -> Result<Option<Vec<u8>>, String> {
    use std::os::unix::fs::FileExt;
    let out = tool(
        Command::new("xfs_db")
            .arg("-r")
            .args(["-c", "sb 0", "-c", "print blocksize agblocks"])
            .arg("-c")
            .arg(format!("path {path}"))
            .args(["-c", "print core.size core.format", "-c", "bmap"])
            .arg(fs),
        "xfs_db",
        "xfsprogs",
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // xfs_db reports a missing path on stdout (6.1) or stderr.
    let missing = format!("{path}: No such file or directory");
    if text.contains(&missing) || stderr.contains(&missing) {
        return Ok(None);
    }
    let field = |name: &str| -> Result<u64, String> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(" = "))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| {
                format!(
                    "xfs_db printed no {name} for {path}: {}{}",
                    text.trim(),
                    stderr.trim()
                )
            })
    };
    let (block, ag_blocks, size) = (field("blocksize")?, field("agblocks")?, field("core.size")?);
    // 2 = extents; 3 (a B-tree) is only a longer map, which bmap prints the same way.
    if !matches!(field("core.format")?, 2 | 3) {
        return Err(format!("{path} in xfs is not a file with an extent map"));
    }
    let mut data = vec![0u8; size as usize];
    let dev = std::fs::File::open(fs).map_err(|e| format!("{}: {e}", fs.display()))?;
    // "data offset 0 startblock 98328 (3/24) count 74 flag 0": file block 0 is allocation
    // group 3's block 24, 74 blocks; flag 1 is an unwritten (reads as zeros) extent.
    for line in text.lines().filter(|l| l.starts_with("data offset ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("xfs_db's extent line for {path} is not understood: {line}");
        let [_, _, offset, _, _, ag, _, count, _, flag] = words[..] else {
            return Err(bad());
        };
        let num = |w: &str| w.parse::<u64>().map_err(|_| bad());
        let (ag_no, ag_block) = ag
            .trim_matches(['(', ')'])
            .split_once('/')
            .ok_or_else(bad)?;
        let (offset, count) = (num(offset)? * block, num(count)? * block);
        if flag != "0" || offset >= size {
            continue;
        }
        let len = count.min(size - offset) as usize;
        let at = (num(ag_no)? * ag_blocks + num(ag_block)?) * block;
        let start = offset as usize;
        dev.read_exact_at(&mut data[start..start + len], at)
            .map_err(|e| format!("reading {path} from {}: {e}", fs.display()))?;
    }
    Ok(Some(data))
}

/// The packages in the target's rpm database, `name-[epoch:]version-release.arch`.
fn installed_packages(
    sources: &Sources,
    partitions: &[BuiltPartition],
    work: &Path,
) -> Result<BTreeSet<String>, String> {
    const DB: &str = "/var/lib/rpm";
    // The filesystem holding /var/lib/rpm: the longest mount point above it.
    let holder = partitions
        .iter()
        .filter(|p| p.fs.is_some() && is_under(DB, &p.mount_point))
        .max_by_key(|p| p.mount_point.len())
        .ok_or("no partition holds /var/lib/rpm (no root partition)")?;
    let inner = match holder.mount_point.as_str() {
        "/" => DB.to_string(),
        mp => DB[mp.len()..].to_string(),
    };
    let db = work.join("rpmdb");
    std::fs::create_dir_all(&db).map_err(|e| format!("{}: {e}", db.display()))?;
    let unreadable = |why: &str| {
        format!(
            "the installed rpm database ({DB}/rpmdb.sqlite) could not be read from partition \
             {} ({}): {why}",
            holder.number, holder.id
        )
    };
    let result = match holder.fs {
        Some(FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4) => (|| {
            let out = tool(
                Command::new("debugfs")
                    .arg("-R")
                    .arg(format!("rdump {inner} {}", db.display()))
                    .arg(sources.e2fs(holder)),
                "debugfs",
                "e2fsprogs",
            )?;
            let dumped = db.join("rpm");
            if !out.status.success() || !dumped.join("rpmdb.sqlite").is_file() {
                return Err(unreadable(String::from_utf8_lossy(&out.stderr).trim()));
            }
            Ok(dumped)
        })(),
        Some(FsKind::Xfs) => (|| {
            let view = XfsView::open(sources, holder, work).map_err(|e| unreadable(&e))?;
            let dumped = db.join("rpm");
            std::fs::create_dir_all(&dumped).map_err(|e| format!("{}: {e}", dumped.display()))?;
            // The database, and its write-ahead log when rpm left one.
            for name in ["rpmdb.sqlite", "rpmdb.sqlite-wal"] {
                match xfs_read_file(view.path(), &format!("{inner}/{name}")) {
                    Ok(Some(data)) => std::fs::write(dumped.join(name), data)
                        .map_err(|e| format!("{}: {e}", dumped.join(name).display()))?,
                    Ok(None) if name != "rpmdb.sqlite" => {}
                    Ok(None) => return Err(unreadable("there is no such file")),
                    Err(e) => return Err(unreadable(&e)),
                }
            }
            Ok(dumped)
        })(),
        _ => Err(format!(
            "the rpm database is on partition {} ({}), which is neither ext2/3/4 nor xfs: \
             kiln reads installed files with debugfs or xfs_db only (set RemoveRpmDb to skip \
             this check)",
            holder.number, holder.id
        )),
    };
    let result = result.and_then(|dumped| query_rpmdb(&dumped));
    let _ = std::fs::remove_dir_all(&db);
    result
}

/// `rpm -qa` over the sqlite rpm database in `dbpath`: `name-[epoch:]version-release.arch` of
/// each package (gpg-pubkey entries, imported keys, left out).
pub fn query_rpmdb(dbpath: &Path) -> Result<BTreeSet<String>, String> {
    let out = tool(
        Command::new("rpm")
            .args(["--define", "_db_backend sqlite", "--dbpath"])
            .arg(dbpath)
            .args([
                "-qa",
                "--qf",
                "%{NAME}\\t%|EPOCH?{%{EPOCH}}:{0}|\\t%{VERSION}-%{RELEASE}.%{ARCH}\\n",
            ]),
        "rpm",
        "rpm",
    )?;
    if !out.status.success() {
        return Err(format!(
            "rpm could not read the rpm database in {}: {}",
            dbpath.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // As kiln_repo's nevra(): the epoch only when it is not 0.
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            let (name, epoch, vra) = (f.next()?, f.next()?, f.next()?);
            (name != "gpg-pubkey").then(|| match epoch {
                "0" | "" => format!("{name}-{vra}"),
                e => format!("{name}-{e}:{vra}"),
            })
        })
        .collect())
}

/// Whether `path` is `mount_point` or below it.
fn is_under(path: &str, mount_point: &str) -> bool {
    match mount_point {
        "" => false,
        "/" => true,
        mp => path == mp || path.strip_prefix(mp).is_some_and(|r| r.starts_with('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rpmdb_holder_is_the_deepest_mount_point_above_it() {
        assert!(is_under("/var/lib/rpm", "/"));
        assert!(is_under("/var/lib/rpm", "/var"));
        assert!(is_under("/var/lib/rpm", "/var/lib/rpm"));
        assert!(!is_under("/var/lib/rpm", "/va"));
        assert!(!is_under("/var/lib/rpm", "/boot"));
        assert!(!is_under("/var/lib/rpm", ""));
    }

    #[test]
    fn a_package_difference_names_both_sides() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert!(compare_packages(&set(&["a-1-1.x86_64"]), &set(&["a-1-1.x86_64"])).is_ok());
        let e = compare_packages(
            &set(&["a-1-1.x86_64", "b-2-1.noarch"]),
            &set(&["a-1-1.x86_64", "c-1:3-1.x86_64"]),
        )
        .unwrap_err();
        assert!(
            e.contains("missing b-2-1.noarch; not resolved c-1:3-1.x86_64"),
            "{e}"
        );
    }
}
