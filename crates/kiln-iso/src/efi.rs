//! The EFI system image (`efiboot.img`) El Torito's UEFI entry points at: a FAT filesystem
//! holding `EFI/BOOT/*`, made by `mkfs.vfat` and filled by `mcopy` (kiln-fs), without a mount.

use crate::{io_err, Error, Identity};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// What [`efi_boot_image`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfiImage {
    /// Bytes of the image.
    pub size: u64,
    /// The FAT volume id (`XXXX-XXXX`).
    pub volume_id: String,
}

/// Builds at `output` a FAT image holding the regular files of `efi_boot_dir` (e.g. the ISO's
/// `efi/boot/` with `bootx64.efi` and `grubx64.efi`) as `EFI/BOOT/<name>`, sized to them: their
/// sizes in 4 KiB clusters plus a quarter and 512 KiB for the FATs and directories, in whole
/// 64 KiB. File times are the identity's; ids are derived from it.
pub fn efi_boot_image(
    efi_boot_dir: &Path,
    output: &Path,
    identity: &Identity,
) -> Result<EfiImage, Error> {
    efi_boot_image_with(efi_boot_dir, &[], output, identity)
}

/// [`efi_boot_image`] with more files: `(path in the image, source)`, e.g. a GRUB configuration
/// at `boot/grub2/grub.cfg` for GRUB started from the image as a disk partition.
pub fn efi_boot_image_with(
    efi_boot_dir: &Path,
    extra: &[(&str, &Path)],
    output: &Path,
    identity: &Identity,
) -> Result<EfiImage, Error> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(efi_boot_dir).map_err(io_err("cannot list", efi_boot_dir))? {
        let entry = entry.map_err(io_err("cannot list", efi_boot_dir))?;
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(io_err("cannot read", &path))?;
        if meta.is_file() {
            files.push((entry.file_name(), path, meta.len()));
        }
    }
    files.sort();
    let mut extra_sizes = Vec::new();
    for (_, src) in extra {
        let meta = std::fs::metadata(src).map_err(io_err("cannot read", src))?;
        extra_sizes.push(meta.len());
    }
    let content: u64 = files
        .iter()
        .map(|f| f.2)
        .chain(extra_sizes)
        .map(|n| n.div_ceil(4096) * 4096)
        .sum();
    let size = (content + content / 4 + (512 << 10)).div_ceil(64 << 10) * (64 << 10);

    // The tree mcopy copies: EFI/BOOT/<files>, every time the identity's.
    let parent = output.parent().unwrap_or(Path::new("."));
    let stage = kiln_formats::files::TempDir::create(&parent.join("efiboot-stage"))
        .map_err(io_err("cannot create a directory beside", output))?;
    let boot = stage.path().join("EFI/BOOT");
    std::fs::create_dir_all(&boot).map_err(io_err("cannot create", &boot))?;
    let when = UNIX_EPOCH + Duration::from_secs(identity.unix_time());
    for (name, src, _) in &files {
        copy_timed(src, &boot.join(name), when)?;
    }
    let mut dirs = vec![boot.clone(), stage.path().join("EFI")];
    for (at, src) in extra {
        let dest = stage.path().join(at);
        let mut dir = dest.parent();
        while let Some(d) = dir.filter(|d| *d != stage.path()) {
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
            dir = d.parent();
        }
        std::fs::create_dir_all(dest.parent().expect("inside the stage"))
            .map_err(io_err("cannot create", &dest))?;
        copy_timed(src, &dest, when)?;
    }
    for dir in &dirs {
        let f = std::fs::File::open(dir).map_err(io_err("cannot open", dir))?;
        f.set_modified(when)
            .map_err(io_err("cannot set the time of", dir))?;
    }

    let mut out = kiln_formats::OutFile::create(output).map_err(io_err("cannot create", output))?;
    out.file()
        .set_len(size)
        .map_err(io_err("cannot size", output))?;
    let made = kiln_fs::make(
        out.temp_path(),
        kiln_fs::FsKind::Vfat,
        0,
        size,
        Some(stage.path()),
        identity,
        "efiboot",
    )?;
    out.commit().map_err(io_err("cannot write", output))?;
    Ok(EfiImage {
        size,
        volume_id: made.uuid,
    })
}

/// Copies `src` to `dest` and gives the copy the time `when`.
fn copy_timed(src: &Path, dest: &Path, when: std::time::SystemTime) -> Result<(), Error> {
    std::fs::copy(src, dest).map_err(io_err("cannot copy", src))?;
    let f = std::fs::File::options()
        .write(true)
        .open(dest)
        .map_err(io_err("cannot open", dest))?;
    f.set_modified(when)
        .map_err(io_err("cannot set the time of", dest))
}
