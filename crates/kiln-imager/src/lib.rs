//! # kiln-imager
//!
//! A disk config's image assembled the way upstream's imager assembles it (SPEC §3.1–§3.5), but
//! without a loop device or a mount on the build host (programs for the image run in kiln-sandbox):
//!
//! 1. the layout is planned and the partition table written into a sparse `disk.raw`
//!    (kiln-disk); RawBinaries are written at their offsets;
//! 2. every filesystem's UUID is derived before it exists (kiln-fs), so `/etc/fstab` can name
//!    it by UUID, PARTUUID or PARTLABEL;
//! 3. the image root is populated in a staging directory (kiln-compose: packages, users,
//!    files, scripts, hostname, hosts, fstab);
//! 4. the staged tree is split at the mount points (a nested mount point's subtree moves out,
//!    leaving an empty directory to mount on);
//! 5. each filesystem is built from its subtree straight into its partition's byte range.
//!
//! The boot configuration is written into the staged root before the split ([`boot`]), and for
//! legacy BIOS GRUB's boot code goes into the disk last ([`bios`]). An encrypted root
//! (`Encryption.Enable`) is formatted before step 3 and written by kiln-crypt in step 5: LUKS1,
//! LVM2 `cryptVG/root` and the filesystem, encrypted into the partition's byte range
//! ([`encrypt`]).

pub mod bios;
pub mod boot;
pub mod encrypt;
pub mod overlay;
pub mod probe;
mod raw;

use kiln_compose::rootfs::{populate, Inputs};
use kiln_compose::system::{fstab_lines, Mount};
use kiln_config::model::{Config, SystemConfig};
use kiln_disk::Layout;
use kiln_fs::FsKind;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_compose::rootfs::step;
/// Why a disk image could not be built: the step, and what went wrong (as composing the root
/// reports it).
pub use kiln_compose::rootfs::Error;

/// What building a disk image needs besides the config.
pub struct Request<'a> {
    pub config: &'a Config,
    /// What populating the root needs (its SystemConfig is the one built: upstream builds the
    /// first). Its `fstab` is filled in here.
    pub root: Inputs<'a>,
    /// The grub2-pc package file (legacy BIOS boot code), fetched as build tooling.
    pub grub_pc: Option<&'a Path>,
}

/// A partition of the built disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltPartition {
    /// Index in the config's `Partitions`.
    pub index: usize,
    pub id: String,
    pub number: u32,
    pub offset: u64,
    pub size: u64,
    /// The mount point of its PartitionSetting (empty when it has none).
    pub mount_point: String,
    pub fs: Option<FsKind>,
    /// The filesystem UUID as blkid shows it (empty without a filesystem).
    pub fs_uuid: String,
    pub partuuid: String,
    pub partlabel: String,
    /// A diff-disk build's overlay partition (`OverlayBaseImage`): the tar of what the build
    /// changed on top of the base image (upstream's `disk0.partition<i>.diff`). The partition
    /// itself is an empty filesystem, as upstream leaves it.
    pub diff: Option<PathBuf>,
}

/// The built disk: the raw image and its partitions.
#[derive(Debug, Clone)]
pub struct Built {
    pub disk: PathBuf,
    pub partitions: Vec<BuiltPartition>,
}

impl Built {
    /// The partition mounted at `mount_point`.
    pub fn mounted_at(&self, mount_point: &str) -> Option<&BuiltPartition> {
        self.partitions
            .iter()
            .find(|p| p.mount_point == mount_point)
    }
}

/// The config's disk (upstream builds the first).
fn first_disk<'a>(req: &Request<'a>) -> Result<&'a kiln_config::model::Disk, Error> {
    req.config.disks.first().ok_or_else(|| Error {
        step: "disk",
        message: "the config has no Disks".into(),
    })
}

/// Builds the disk of `req` in `work` (an empty directory on a filesystem with room for the
/// staged root and the sparse disk): `work/disk.raw` and `work/root` (the staged tree, split).
/// `progress` hears each step as it starts.
pub fn build_disk(
    req: &Request,
    work: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Built, Error> {
    let disk_config = first_disk(req)?;
    if disk_config.target_disk.is_path() {
        return Err(Error {
            step: "disk",
            message: "TargetDisk is a device path: that is the live installer's job (imager \
                      --live-install, from an ISO)"
                .into(),
        });
    }
    progress("planning the partitions");
    let layout = kiln_disk::plan(disk_config, req.root.identity).map_err(step("partitions"))?;
    let disk = work.join("disk.raw");
    write_empty_disk(&disk, &layout).map_err(step("partition table"))?;
    assemble(req, disk_config, layout, disk, work, progress)
}

/// Installs the config onto the block device (or file) `device`, as [`build_disk`] builds a disk
/// file: the partition table written over whatever was there, each filesystem made straight
/// into its partition's byte range (no partition device, no mount), sized to the device (the
/// config's MaxSize, if any, is not a limit here: `End: 0` reaches the device's end). `work`
/// holds the staged root.
pub fn install_disk(
    req: &Request,
    device: &Path,
    work: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Built, Error> {
    let disk_config = first_disk(req)?;
    let size = device_size(device).map_err(|e| Error {
        step: "disk",
        message: format!("{}: {e}", device.display()),
    })?;
    progress(&format!(
        "installing onto {} ({} MiB)",
        device.display(),
        size >> 20
    ));
    let mut sized = disk_config.clone();
    sized.max_size = size >> 20;
    let layout = kiln_disk::plan(&sized, req.root.identity).map_err(step("partitions"))?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(device)
        .map_err(step("partition table"))?;
    // The old tables' copies (the backup GPT at the device's end) go first.
    wipe_table_areas(&f, size).map_err(step("partition table"))?;
    kiln_disk::write_table(&layout, &f).map_err(step("partition table"))?;
    drop(f);
    let built = assemble(req, &sized, layout, device.to_path_buf(), work, progress)?;
    // The tools that wrote the filesystems skip their own flushes (kiln_sandbox::nosync): the
    // whole device is flushed once, here, before the installer reports success.
    progress(&format!("flushing {} to disk", device.display()));
    std::fs::OpenOptions::new()
        .write(true)
        .open(device)
        .and_then(|f| f.sync_all())
        .map_err(step("disk"))?;
    Ok(built)
}

/// The size of a block device or file, in bytes.
fn device_size(path: &Path) -> std::io::Result<u64> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::End(0))
}

/// Zeros the first and last MiB of a device: old partition tables and their backups.
fn wipe_table_areas(f: &File, size: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let n = (1u64 << 20).min(size);
    f.write_all_at(&zeros[..n as usize], 0)?;
    f.write_all_at(&zeros[..n as usize], size - n)
}

/// Everything after the partition table: filesystems planned, the root composed, the boot
/// configuration written, each filesystem made in its byte range of `disk`, BIOS boot code.
fn assemble(
    req: &Request,
    disk_config: &kiln_config::model::Disk,
    layout: Layout,
    disk: PathBuf,
    work: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Built, Error> {
    raw::write_raw_binaries(disk_config, &layout, &disk, req.root.base_dir, progress)
        .map_err(step("RawBinaries"))?;

    // What each partition will be, before any filesystem exists.
    let mut parts = Vec::new();
    for (index, p) in disk_config.partitions.iter().enumerate() {
        let planned = layout.for_config(index).ok_or_else(|| Error {
            step: "partitions",
            message: format!("partition {} ({}) has no place in the layout", index, p.id),
        })?;
        let fs = FsKind::from_config(&p.fs_type).map_err(step("filesystems"))?;
        let setting = req.root.system.setting(&p.id);
        parts.push(BuiltPartition {
            index,
            id: p.id.clone(),
            number: planned.number,
            offset: planned.offset(),
            size: planned.size(),
            mount_point: setting.map(|s| s.mount_point.clone()).unwrap_or_default(),
            fs,
            fs_uuid: fs
                .map(|k| kiln_fs::uuid_for(k, req.root.identity, &p.id))
                .unwrap_or_default(),
            partuuid: layout.partuuid(planned),
            partlabel: planned.name.clone(),
            diff: None,
        });
    }
    if !parts.iter().any(|p| p.mount_point == "/") {
        return Err(Error {
            step: "partitions",
            message: "failed to find partition setting for root mountpoint".into(),
        });
    }
    // The encrypted root's volume is formatted first: crypttab, fstab and the kernel command
    // line name its UUID and mapper device.
    let encrypted = if req.root.system.encryption.enable {
        let root_part = parts
            .iter()
            .find(|p| p.mount_point == "/")
            .expect("checked above");
        progress(&format!(
            "formatting LUKS1 on partition {} ({}) for the encrypted root",
            root_part.number, root_part.id
        ));
        Some(
            encrypt::prepare(root_part, req.root.system, req.root.identity)
                .map_err(step("Encryption"))?,
        )
    } else {
        None
    };
    // Diff-disk builds: the partitions whose settings name an OverlayBaseImage.
    let bases: Vec<(&BuiltPartition, &str)> = parts
        .iter()
        .filter_map(|p| {
            let s = req.root.system.setting(&p.id)?;
            (!s.overlay_base_image.is_empty() && !p.mount_point.is_empty())
                .then_some((p, s.overlay_base_image.as_str()))
        })
        .collect();
    let overlay_points: Vec<String> = bases.iter().map(|(p, _)| p.mount_point.clone()).collect();
    let overlay_mounts: Vec<&str> = overlay_points.iter().map(String::as_str).collect();
    let fstab = fstab_text(
        req.root.system,
        &parts,
        encrypted.is_some(),
        &overlay_mounts,
    )?;

    progress("composing the image root");
    let root = work.join("root");
    std::fs::create_dir(&root).map_err(step("staging"))?;
    let overlays = if bases.is_empty() {
        Vec::new()
    } else {
        progress("reading the overlays' base images");
        let image = kiln_sandbox::ImageRoot::open(&root).map_err(step("staging"))?;
        overlay::prepare(&image, &bases, work).map_err(step("OverlayBaseImage"))?
    };
    let inputs = Inputs {
        fstab: Some(&fstab),
        encryption: encrypted.as_ref().map(|e| &e.root),
        overlay_mounts: &overlay_mounts,
        ..req.root
    };
    populate(&root, &inputs, progress)?;

    let root_part = parts
        .iter()
        .find(|p| p.mount_point == "/")
        .expect("checked above");
    let root_setting = req
        .root
        .system
        .partition_settings
        .iter()
        .find(|s| s.id == root_part.id)
        .expect("the root partition has a setting");
    let boot_disk = boot::BootDisk {
        root: root_part,
        boot: parts.iter().find(|p| p.mount_point == "/boot"),
        root_identifier: root_setting.mount_identifier,
        probed: probe::ProbedDisk {
            table: disk_config.partition_table_type,
            partitions: &parts,
            encrypted_root: encrypted.as_ref().map(|e| probe::CryptRoot {
                luks_uuid: &e.root.luks_uuid,
                vg_id: e.volume.pv().vg_id.formatted(),
                lv_id: e.volume.pv().lv_id.formatted(),
            }),
        },
        scratch: work,
        encrypted: encrypted.as_ref().map(|e| &e.root),
    };
    let image = kiln_sandbox::ImageRoot::open(&root).map_err(step("staging"))?;
    // With `/` an overlay, upstream leaves the bootloader alone (the base image has one).
    let root_overlay = overlay_mounts.contains(&"/");
    if !root_overlay {
        progress("writing the boot configuration");
        let notes = boot::configure(&image, req.root.system, &boot_disk, &req.root.run, progress)
            .map_err(step("bootloader"))?;
        for note in notes {
            progress(&note);
        }
    }

    progress("splitting the root at its mount points");
    let contents = split_at_mount_points(&image, &work.join("parts"), &parts)?;
    let unix_time = req.root.identity.unix_time();
    for dir in contents.iter().flatten() {
        kiln_compose::finish::clamp_times(dir, unix_time).map_err(step("timestamps"))?;
    }
    let mut contents = contents;
    for o in &overlays {
        progress(&format!(
            "writing the diff of {} from its base image",
            o.mount_point
        ));
        kiln_compose::finish::clamp_times(&o.lower, unix_time).map_err(step("timestamps"))?;
        let upper = contents[o.index]
            .take()
            .expect("a mounted partition has its tree");
        let out = work.join(format!("partition{}.diff", o.index));
        overlay::write_diff(o, &upper, &out, Some(unix_time)).map_err(step("OverlayBaseImage"))?;
        parts[o.index].diff = Some(out);
    }
    for (p, content) in parts.iter().zip(&contents) {
        let Some(kind) = p.fs else { continue };
        let encrypted_here = encrypted.is_some() && p.mount_point == "/";
        progress(&format!(
            "making {}{} on partition {} ({}{})",
            kind.fstab_type(),
            if encrypted_here {
                " in LUKS1 + LVM (cryptVG/root)"
            } else {
                ""
            },
            p.number,
            p.id,
            if p.mount_point.is_empty() {
                String::new()
            } else {
                format!(", {}", p.mount_point)
            }
        ));
        let made = match &encrypted {
            Some(enc) if encrypted_here => encrypt::write(
                enc,
                &disk,
                p,
                kind,
                content.as_deref(),
                req.root.identity,
                work,
            )
            .map_err(|e| Error {
                step: "Encryption",
                message: format!("partition {} ({}): {e}", p.number, p.id),
            })?,
            _ => kiln_fs::make(
                &disk,
                kind,
                p.offset,
                p.size,
                content.as_deref(),
                req.root.identity,
                &p.id,
            )
            .map_err(|e| Error {
                step: "filesystems",
                message: format!("partition {} ({}): {e}", p.number, p.id),
            })?,
        };
        if made.uuid != p.fs_uuid {
            return Err(Error {
                step: "filesystems",
                message: format!(
                    "partition {} ({}) got UUID {} where fstab names {}",
                    p.number, p.id, made.uuid, p.fs_uuid
                ),
            });
        }
    }
    if req.root.system.boot_type == kiln_config::model::BootType::Legacy && !root_overlay {
        progress("installing GRUB's BIOS boot code");
        let rpm = req.grub_pc.ok_or_else(|| Error {
            step: "bootloader",
            message: "legacy BIOS boot needs the grub2-pc package in the sources (upstream \
                      fetches it as build tooling)"
                .into(),
        })?;
        let modules =
            bios::unpack_grub_pc(rpm, &work.join("grub-pc")).map_err(step("bootloader"))?;
        let boot_part = parts.iter().find(|p| p.mount_point == "/boot");
        let (fs, prefix) = match boot_part {
            Some(b) => (b, "/grub2"),
            None => (
                parts
                    .iter()
                    .find(|p| p.mount_point == "/")
                    .expect("checked above"),
                "/boot/grub2",
            ),
        };
        let unlock = encrypted.is_some() && boot_part.is_none();
        bios::install(&disk, &layout, &modules, &fs.fs_uuid, prefix, unlock, work)
            .map_err(step("bootloader"))?;
    }
    Ok(Built {
        disk,
        partitions: parts,
    })
}

/// The `/etc/fstab` lines: every mounted partition by its MountIdentifier (an encrypted root by
/// its mapper device; overlays left out, as upstream), swap by UUID.
fn fstab_text(
    sc: &SystemConfig,
    parts: &[BuiltPartition],
    encrypted_root: bool,
    overlay_mounts: &[&str],
) -> Result<String, Error> {
    let mounts: Vec<Mount> = parts
        .iter()
        .filter(|p| !p.mount_point.is_empty() && !overlay_mounts.contains(&p.mount_point.as_str()))
        .map(|p| {
            let setting = sc.setting(&p.id).expect("mounted partitions have settings");
            Mount {
                partition: &p.id,
                mount_point: &p.mount_point,
                fs_type: p.fs.map_or("", FsKind::fstab_type),
                options: &setting.mount_options,
                identifier: setting.mount_identifier,
                fs_uuid: &p.fs_uuid,
                partuuid: &p.partuuid,
                partlabel: &p.partlabel,
                mapper: (encrypted_root && p.mount_point == "/")
                    .then_some(kiln_compose::luks::ROOT_DEVICE),
            }
        })
        .collect();
    let swaps: Vec<String> = parts
        .iter()
        .filter(|p| p.fs == Some(FsKind::Swap))
        .map(|p| format!("UUID={}", p.fs_uuid))
        .collect();
    fstab_lines(&mounts, sc.enable_hidepid, &swaps).map_err(step("/etc/fstab"))
}

/// A sparse file of the layout's size with the partition table in it.
fn write_empty_disk(path: &Path, layout: &Layout) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .read(true)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    f.set_len(layout.size)?;
    // Not flushed: the staged disk is an intermediate; roast writes and flushes the artifacts.
    kiln_disk::write_table(layout, &f)
}

/// Moves each nested mount point's subtree out of the staged root (deepest first), leaving an
/// empty directory with the same owner and mode to mount on. Returns, per partition, the
/// directory its filesystem is built from (`None`: an empty filesystem).
fn split_at_mount_points(
    root: &kiln_sandbox::ImageRoot,
    parts_dir: &Path,
    parts: &[BuiltPartition],
) -> Result<Vec<Option<PathBuf>>, Error> {
    std::fs::create_dir_all(parts_dir).map_err(step("staging"))?;
    let mut order: Vec<&BuiltPartition> = parts
        .iter()
        .filter(|p| !p.mount_point.is_empty() && p.mount_point != "/")
        .collect();
    order.sort_by_key(|p| std::cmp::Reverse(p.mount_point.matches('/').count()));
    let mut dirs = vec![None; parts.len()];
    for p in order {
        let mp = p.mount_point.as_str();
        let dst = parts_dir.join(&p.id);
        match root.symlink_metadata(mp) {
            Ok(meta) if meta.is_dir() => {
                let mode = meta.mode() & 0o7777;
                root.rename_out(mp, &dst).map_err(step("mount points"))?;
                root.create_dir_all(mp, mode)
                    .map_err(step("mount points"))?;
                root.set_mode(mp, mode).map_err(step("mount points"))?;
                root.lchown(mp, meta.uid(), meta.gid())
                    .map_err(step("mount points"))?;
            }
            Ok(_) => {
                return Err(Error {
                    step: "mount points",
                    message: format!(
                        "{mp} is not a directory in the image (a file or a symlink), so nothing \
                         can be mounted on it"
                    ),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                root.create_dir_all(mp, 0o755)
                    .map_err(step("mount points"))?;
                std::fs::create_dir(&dst).map_err(step("mount points"))?;
            }
            Err(e) => return Err(step("mount points")(e)),
        }
        dirs[p.index] = Some(dst);
    }
    for p in parts.iter().filter(|p| p.mount_point == "/") {
        dirs[p.index] = Some(root.path().to_path_buf());
    }
    Ok(dirs)
}

/// Copies partition `p` of `disk` into `out` (upstream's `disk0.partition<i>.raw`), keeping
/// runs of zeros as holes; written under kiln's locked temporary name, renamed when complete.
pub fn dump_partition(disk: &Path, p: &BuiltPartition, out: &Path) -> std::io::Result<()> {
    let mut input = File::open(disk)?;
    input.seek(SeekFrom::Start(p.offset))?;
    let mut tmp = kiln_formats::OutFile::create(out)?;
    let output = tmp.file();
    output.set_len(p.size)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < p.size {
        let n = (p.size - at).min(buf.len() as u64) as usize;
        input.read_exact(&mut buf[..n])?;
        if buf[..n].iter().any(|&b| b != 0) {
            output.write_all_at(&buf[..n], at)?;
        }
        at += n as u64;
    }
    tmp.commit()
}

/// Upstream's rdiff partition artifact: `rdiff signature <base> sig` then `rdiff delta sig
/// <partition> <out>` (librsync), with the partition's bytes copied out of `disk` into `work`
/// (upstream reads the partition's device). Written under a temporary name, renamed when whole.
pub fn rdiff_partition(
    disk: &Path,
    p: &BuiltPartition,
    base: &Path,
    out: &Path,
    work: &Path,
) -> Result<(), String> {
    if !base.is_file() {
        return Err(format!("RdiffBaseImage {} is not a file", base.display()));
    }
    let part = work.join(format!("partition{}.raw", p.index));
    let sig = work.join(format!("partition{}.rdiff-signature", p.index));
    dump_partition(disk, p, &part).map_err(|e| format!("{}: {e}", part.display()))?;
    let rdiff = |args: &[&std::ffi::OsStr]| -> Result<(), String> {
        let o = std::process::Command::new("rdiff")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run rdiff (Debian package rdiff): {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "rdiff {} failed: {}",
                args.iter()
                    .find(|a| !a.to_string_lossy().starts_with('-'))
                    .map_or(String::new(), |a| a.to_string_lossy().into_owned()),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(())
    };
    rdiff(&["signature".as_ref(), base.as_os_str(), sig.as_os_str()])?;
    let tmp = kiln_formats::OutFile::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    rdiff(&[
        "--force".as_ref(),
        "delta".as_ref(),
        sig.as_os_str(),
        part.as_os_str(),
        tmp.temp_path().as_os_str(),
    ])?;
    let _ = std::fs::remove_file(&part);
    let _ = std::fs::remove_file(&sig);
    tmp.commit().map_err(|e| format!("{}: {e}", out.display()))
}
