//! # kiln-fs
//!
//! Filesystems made straight into their partition's byte range of a disk image — no loop device,
//! no mount — with upstream's options (SPEC §3.2), optionally filled from a staging directory:
//!
//! - ext2/ext3/ext4: `mke2fs -b 4096 -O <upstream's feature list> -E offset=…,root_owner=0:0
//!   -d <staging>` into the disk file itself;
//! - fat32/fat16/vfat: `mkfs.vfat` on a scratch file copied into the range (FAT size left to
//!   mkfs.vfat, as upstream), then `mcopy -i disk@@offset` for the contents;
//! - linux-swap: the swap signature page written natively (nothing is done on the build host);
//! - xfs: `mkfs.xfs -p <prototype file>` into a scratch file copied into the range (owners,
//!   modes, symlinks, devices), then sticky bits, extended attributes, hard links, and names
//!   and symlink targets the prototype format cannot hold added with xfs_db (and xfs_repair to
//!   free the hard links' placeholder inodes and rebuild renamed entries' hashes).
//!
//! [`extract::extract_ext`] reads an ext2/3/4 image's tree back out (the lower layer of a
//! diff-disk build).
//!
//! On a block device (the live installer's target) the tools that need a scratch file (xfs,
//! FAT) write through a loop device over the range instead ([`loopdev`]): a scratch file there
//! would sit in the installer's memory beside the staged tree.
//!
//! Every filesystem UUID comes from the caller (derived from `SOURCE_DATE_EPOCH` for reproducible
//! builds) and is returned, so fstab and the boot configuration can name it.

pub mod extract;
pub mod loopdev;
mod xfs_proto;

use kiln_formats::ident::Identity;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

/// A filesystem kind, from a config's `FsType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Vfat,
    Ext2,
    Ext3,
    Ext4,
    Xfs,
    Swap,
}

impl FsKind {
    /// `None` for `""` (no filesystem); upstream's error for anything unknown.
    pub fn from_config(fs_type: &str) -> Result<Option<FsKind>, Error> {
        Ok(Some(match fs_type {
            "" => return Ok(None),
            "fat32" | "fat16" | "vfat" => FsKind::Vfat,
            "ext2" => FsKind::Ext2,
            "ext3" => FsKind::Ext3,
            "ext4" => FsKind::Ext4,
            "xfs" => FsKind::Xfs,
            "linux-swap" => FsKind::Swap,
            other => {
                return Err(Error::Unsupported(format!(
                    "unrecognized filesystem format: {other}"
                )))
            }
        }))
    }

    /// The type fstab and blkid use (`vfat` for every FAT, as upstream records it).
    pub fn fstab_type(self) -> &'static str {
        match self {
            FsKind::Vfat => "vfat",
            FsKind::Ext2 => "ext2",
            FsKind::Ext3 => "ext3",
            FsKind::Ext4 => "ext4",
            FsKind::Xfs => "xfs",
            FsKind::Swap => "swap",
        }
    }
}

/// Upstream's mkfs feature lists.
const EXT2_FEATURES: &str = "none,sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr";
const EXT3_FEATURES: &str =
    "none,sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr,has_journal";
const EXT4_FEATURES: &str = "none,sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr,has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize,^metadata_csum_seed";

/// Why a filesystem could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Unsupported(String),
    #[error("{tool} is not installed: install the {package} package")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("{tool} failed: {output}")]
    Tool { tool: String, output: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: io::Error,
    },
}

/// What was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub kind: FsKind,
    /// The filesystem UUID as blkid shows it (`xxxxxxxx-…`, or `XXXX-XXXX` for FAT).
    pub uuid: String,
}

/// FAT holds only files and directories, and mcopy copies what a symlink points to: a link in
/// the tree (a package's `/boot/efi/x` → `/etc/shadow`) would put a file of the build host into
/// the image. Such a tree is refused, as writing it into a mounted FAT filesystem would fail.
fn only_files_and_dirs(dir: &Path) -> Result<(), Error> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let path = entry.map_err(io(&d))?.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            if meta.is_dir() {
                stack.push(path);
            } else if !meta.is_file() {
                let inside = path.strip_prefix(dir).unwrap_or(&path);
                return Err(Error::Unsupported(format!(
                    "{} in the FAT filesystem's tree is a symlink or a special file, which FAT \
                     cannot hold (the package or script that made it must not)",
                    inside.display()
                )));
            }
        }
    }
    Ok(())
}

/// Runs a tool that writes the staged disk or a scratch file: its flushes are skipped (the disk
/// is an intermediate, and a live install flushes its device once at the end; see
/// [`kiln_sandbox::nosync`]).
fn run(cmd: &mut Command, tool: &'static str, package: &'static str) -> Result<(), Error> {
    match kiln_sandbox::nosync::skip_flushes(cmd).output() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingTool { tool, package }),
        Err(e) => Err(Error::Tool {
            tool: tool.into(),
            output: e.to_string(),
        }),
        Ok(o) if !o.status.success() => Err(Error::Tool {
            tool: tool.into(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
            .trim()
            .to_string(),
        }),
        Ok(_) => Ok(()),
    }
}

fn uuid_text(u: [u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..].concat()
    )
}

/// The UUID [`make`] gives a `kind` filesystem made for `purpose`, as blkid shows it: known
/// before the filesystem exists, so that fstab can be written first.
pub fn uuid_for(kind: FsKind, identity: &Identity, purpose: &str) -> String {
    let uuid = identity.uuid(&format!("fs.{purpose}"));
    match kind {
        FsKind::Vfat => {
            let id = u32::from_le_bytes(uuid[..4].try_into().expect("4 bytes"));
            format!("{:04X}-{:04X}", id >> 16, id & 0xffff)
        }
        _ => uuid_text(uuid),
    }
}

/// Makes a `kind` filesystem in `disk` at `[offset, offset + size)`, filled from `content`.
/// `purpose` tells apart the ids of several filesystems of one image (e.g. the partition ID).
pub fn make(
    disk: &Path,
    kind: FsKind,
    offset: u64,
    size: u64,
    content: Option<&Path>,
    identity: &Identity,
    purpose: &str,
) -> Result<Made, Error> {
    let uuid = identity.uuid(&format!("fs.{purpose}"));
    let epoch = identity.unix_time().to_string();
    match kind {
        FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => {
            let (t, features) = match kind {
                FsKind::Ext2 => ("ext2", EXT2_FEATURES),
                FsKind::Ext3 => ("ext3", EXT3_FEATURES),
                _ => ("ext4", EXT4_FEATURES),
            };
            let text = uuid_text(uuid);
            let mut cmd = Command::new("mke2fs");
            cmd.args([
                "-q", "-F", "-t", t, "-b", "4096", "-O", features, "-U", &text,
            ])
            .arg("-E")
            .arg(format!("offset={offset},root_owner=0:0,hash_seed={text}"))
            .env("E2FSPROGS_FAKE_TIME", &epoch);
            if let Some(dir) = content {
                cmd.arg("-d").arg(dir);
            }
            cmd.arg(disk).arg(format!("{}k", size / 1024));
            run(&mut cmd, "mke2fs", "e2fsprogs")?;
            if let Some(dir) = content {
                set_times(disk, offset, dir, identity.unix_time())?;
            }
            Ok(Made { kind, uuid: text })
        }
        FsKind::Vfat => {
            let id = u32::from_le_bytes(uuid[..4].try_into().expect("4 bytes"));
            // Any size: the scratch file is the partition's exact size (an MBR logical
            // partition has an odd number of sectors), as the partition device is upstream's.
            // Not `--offset`: with it mkfs.vfat 4.2 picks the FAT size from the whole disk
            // file, not the partition (FAT32 for a 64 MiB ESP on a big disk, then fails).
            let mut cmd = Command::new("mkfs.vfat");
            cmd.arg("-i")
                .arg(format!("{id:08x}"))
                .env("SOURCE_DATE_EPOCH", &epoch);
            format_in_scratch(disk, offset, size, cmd, "mkfs.vfat", "dosfstools", &|_| {
                Ok(())
            })?;
            if let Some(dir) = content {
                only_files_and_dirs(dir)?;
                let entries: Vec<_> = std::fs::read_dir(dir)
                    .map_err(|source| Error::Io {
                        path: dir.to_path_buf(),
                        source,
                    })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .collect();
                if !entries.is_empty() {
                    let mut cmd = Command::new("mcopy");
                    cmd.arg("-s")
                        .arg("-p")
                        .arg("-m")
                        .arg("-i")
                        .arg(format!("{}@@{offset}", disk.display()))
                        .args(&entries)
                        .arg("::/")
                        .env("MTOOLS_SKIP_CHECK", "1");
                    run(&mut cmd, "mcopy", "mtools")?;
                }
            }
            Ok(Made {
                kind,
                uuid: format!("{:04X}-{:04X}", id >> 16, id & 0xffff),
            })
        }
        FsKind::Swap => {
            write_swap(disk, offset, size, uuid)?;
            Ok(Made {
                kind,
                uuid: uuid_text(uuid),
            })
        }
        FsKind::Xfs => {
            let text = uuid_text(uuid);
            let mut cmd = Command::new("mkfs.xfs");
            cmd.args(["-q", "-f", "-m"]).arg(format!("uuid={text}"));
            // Absolute: mkfs.xfs may run in the prototype's scratch directory.
            let disk = &std::path::absolute(disk).map_err(|source| Error::Io {
                path: disk.to_path_buf(),
                source,
            })?;
            // Contents come from a prototype file (mkfs.xfs -p); what it cannot express
            // (sticky bits, extended attributes, hard links, names and symlink targets its
            // parser cannot read) xfs_db adds afterwards.
            let proto = match content {
                Some(dir) => Some(xfs_proto::write(dir, &disk.with_extension("xfs-proto"))?),
                None => None,
            };
            if let Some(p) = &proto {
                cmd.arg("-p").arg(&p.file);
                if let Some(dir) = p.workdir() {
                    cmd.current_dir(dir);
                }
            }
            let finish = |scratch: &Path| match &proto {
                Some(p) => p.finish(scratch),
                None => Ok(()),
            };
            let made = format_in_scratch(disk, offset, size, cmd, "mkfs.xfs", "xfsprogs", &finish);
            if let Some(p) = &proto {
                p.remove();
            }
            made?;
            Ok(Made { kind, uuid: text })
        }
    }
}

/// mke2fs -d copies each file's change time, which only the kernel can set (to "now"), and its
/// access time, which any read of the staged tree on the build host moves (relatime): every
/// inode made from `dir` gets `unix_time` as both instead, with debugfs on the filesystem in
/// place (`disk?offset=`), so that two builds of one tree are identical (the superblock's
/// lifetime-writes count too).
fn set_times(disk: &Path, offset: u64, dir: &Path, unix_time: u64) -> Result<(), Error> {
    let mut script = String::new();
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = dir.join(&rel);
        let meta = std::fs::symlink_metadata(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })? {
                let entry = entry.map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                names.push(entry.file_name());
            }
            // In name order, not the directory's: debugfs then writes the same blocks in the
            // same order for the same tree, and counts the same writes (below).
            names.sort();
            stack.extend(names.into_iter().rev().map(|n| rel.join(n)));
        }
        let name = format!("/{}", rel.display());
        if name.contains(['"', '\n']) {
            continue; // debugfs cannot quote these; such a file keeps its build-time ctime
        }
        for field in ["ctime", "atime"] {
            script.push_str(&format!("sif \"{name}\" {field} @{unix_time}\n"));
        }
    }
    // The superblock's count of kilobytes ever written is mke2fs's I/O, which depends on how
    // the staged tree reads, not on what it holds (an overlay lists extended attributes so that
    // mke2fs rewrites inodes it already wrote): the image keeps only this debugfs run's count.
    script.push_str("ssv kbytes_written 0\n");
    let script_path = disk.with_extension(format!("times.{offset}"));
    std::fs::write(&script_path, script).map_err(|source| Error::Io {
        path: script_path.clone(),
        source,
    })?;
    // debugfs stamps the superblock's last write time on close: the build's time, not now.
    let mut cmd = Command::new("debugfs");
    cmd.arg("-w")
        .arg("-f")
        .arg(&script_path)
        .arg(format!("{}?offset={offset}", disk.display()))
        .env("E2FSPROGS_FAKE_TIME", unix_time.to_string());
    let result = run(&mut cmd, "debugfs", "e2fsprogs");
    let _ = std::fs::remove_file(&script_path);
    result
}

/// Runs `mkfs` (the scratch file is its last argument) on a sparse scratch file of `size` bytes
/// beside `disk`, then copies the written parts into `[offset, offset + size)`. For tools that
/// cannot write at an offset, or that size the filesystem from the whole file when they do.
fn format_in_scratch(
    disk: &Path,
    offset: u64,
    size: u64,
    mut mkfs: Command,
    tool: &'static str,
    package: &'static str,
    after: &dyn Fn(&Path) -> Result<(), Error>,
) -> Result<(), Error> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    // A block device (the live installer's target): the tool writes through a loop device over
    // the range, not into a scratch file in memory.
    if loopdev::is_block_device(disk) {
        let dev = loopdev::LoopDevice::attach(disk, offset, size, false).map_err(|output| {
            Error::Tool {
                tool: "losetup".into(),
                output,
            }
        })?;
        run(mkfs.arg(dev.path()), tool, package)?;
        return after(dev.path());
    }
    // kiln's locked temporary beside the disk (see kiln_formats::files), held until removed.
    let (held, scratch) =
        kiln_formats::files::create_temp_file(&disk.with_file_name(tool)).map_err(io_err(disk))?;
    let made = held
        .set_len(size)
        .map_err(io_err(&scratch))
        .and_then(|_| run(mkfs.arg(&scratch), tool, package))
        .and_then(|_| after(&scratch))
        .and_then(|_| {
            let src =
                kiln_formats::sparse::SparseInput::open(&scratch).map_err(io_err(&scratch))?;
            let out = File::options()
                .write(true)
                .open(disk)
                .map_err(io_err(disk))?;
            src.for_each_data_run(4096, |at, data| out.write_all_at(data, offset + at))
                .map_err(io_err(disk))
        });
    let _ = std::fs::remove_file(&scratch);
    drop(held);
    made
}

/// The Linux swap signature ("SWAPSPACE2", version 1, the last page, the UUID) in the first page
/// of the range, as mkswap writes it; the rest of the range stays as it is (zeros).
fn write_swap(disk: &Path, offset: u64, size: u64, uuid: [u8; 16]) -> Result<(), Error> {
    const PAGE: u64 = 4096;
    let pages = size / PAGE;
    if pages < 10 {
        return Err(Error::Unsupported(format!(
            "a swap partition needs at least 40 KiB, not {size} bytes"
        )));
    }
    let mut page = vec![0u8; PAGE as usize];
    page[1024..1028].copy_from_slice(&1u32.to_le_bytes()); // version
    page[1028..1032].copy_from_slice(&((pages - 1) as u32).to_le_bytes()); // last page
    page[1036..1052].copy_from_slice(&uuid);
    page[PAGE as usize - 10..].copy_from_slice(b"SWAPSPACE2");
    let f = File::options()
        .write(true)
        .open(disk)
        .map_err(|source| Error::Io {
            path: disk.to_path_buf(),
            source,
        })?;
    f.write_all_at(&page, offset).map_err(|source| Error::Io {
        path: disk.to_path_buf(),
        source,
    })
}
