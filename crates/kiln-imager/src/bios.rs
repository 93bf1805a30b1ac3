//! Legacy BIOS boot code installed as grub-bios-setup installs it, but into the disk file and
//! without a device: a GRUB core image made with `grub-mkimage` from the i386-pc modules of the
//! `grub2-pc` package, written into the BIOS boot partition (GPT) or the gap after the MBR, its
//! first sector's blocklist pointing at the rest; and `boot.img` in the MBR, pointing at the
//! core image, with the disk's partition table kept.

use kiln_disk::{Layout, SECTOR};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

/// GRUB's boot.img fields (grub/include/grub/i386/pc/boot.h).
const BPB: std::ops::Range<usize> = 0x03..0x5a;
const KERNEL_SECTOR: usize = 0x5c;
const BOOT_DRIVE: usize = 0x64;
const DRIVE_CHECK: usize = 0x66;
const MBR_TAIL: std::ops::Range<usize> = 0x1b8..0x1fe;
/// The first blocklist of diskboot.img: the last 12 bytes of the core image's first sector.
const BLOCKLIST: usize = 0x200 - 12;

/// The modules a core image carries: enough to find the boot filesystem by UUID and read
/// grub.cfg from ext2/3/4, xfs or FAT on GPT or MBR disks.
const MODULES: &[&str] = &[
    "biosdisk",
    "part_gpt",
    "part_msdos",
    "ext2",
    "xfs",
    "fat",
    "search",
    "search_fs_uuid",
    "normal",
    "configfile",
    "linux",
    "echo",
    "test",
    "ls",
    "cat",
    "gzio",
    "loadenv",
    "serial",
    "terminal",
    "minicmd",
    "sleep",
    "boot",
];

/// What a core image also carries when /boot is inside the encrypted root (what grub2-install
/// adds with GRUB_ENABLE_CRYPTODISK=y): LUKS1 with aes-xts-plain64 and sha512, and LVM.
const CRYPTO_MODULES: &[&str] = &[
    "cryptodisk",
    "luks",
    "lvm",
    "gcry_rijndael",
    "gcry_sha512",
    "gcry_sha256",
    "gcry_sha1",
];

/// Installs GRUB for BIOS boot into `disk`. `modules` is the i386-pc directory of the grub2-pc
/// package; the core image finds the boot filesystem by `boot_uuid` and reads
/// `<prefix>/grub.cfg` there. `unlock`: /boot is inside the encrypted root, which the core
/// image opens first (`cryptomount -a`, asking for the password).
pub fn install(
    disk: &Path,
    layout: &Layout,
    modules: &Path,
    boot_uuid: &str,
    prefix: &str,
    unlock: bool,
    work: &Path,
) -> Result<(), String> {
    let cfg = work.join("load.cfg");
    std::fs::write(
        &cfg,
        format!(
            "{}search.fs_uuid {boot_uuid} root\nset prefix=($root){prefix}\n",
            if unlock { "cryptomount -a\n" } else { "" }
        ),
    )
    .map_err(|e| format!("{}: {e}", cfg.display()))?;
    let core_path = work.join("core.img");
    let out = Command::new("grub-mkimage")
        .args(["-O", "i386-pc", "-d"])
        .arg(modules)
        .arg("-c")
        .arg(&cfg)
        .arg("-p")
        .arg(prefix)
        .arg("-o")
        .arg(&core_path)
        .args(MODULES)
        .args(if unlock { CRYPTO_MODULES } else { &[] })
        .output()
        .map_err(|e| format!("cannot run grub-mkimage (Debian package grub-common): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "grub-mkimage failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut core = std::fs::read(&core_path).map_err(|e| e.to_string())?;
    let boot_img = std::fs::read(modules.join("boot.img"))
        .map_err(|e| format!("{}: {e}", modules.join("boot.img").display()))?;
    if boot_img.len() != 512 || core.len() < 512 {
        return Err("the grub2-pc package's boot.img or core image is malformed".into());
    }

    // Where the core image goes: the BIOS boot partition, or the sectors after the MBR.
    let (lba, room) = match layout.table {
        kiln_config::PartitionTableType::Gpt => {
            let p = layout
                .partitions
                .iter()
                .find(|p| p.gpt_type == kiln_disk::layout::BIOS_BOOT)
                .ok_or(
                    "a legacy BIOS GPT disk needs a BIOS boot partition (Flags: grub or bios_grub)",
                )?;
            (p.first_sector, p.size())
        }
        _ => {
            let first = layout
                .partitions
                .iter()
                .map(|p| p.first_sector)
                .min()
                .unwrap_or(layout.sectors());
            (1, (first.saturating_sub(1)) * SECTOR)
        }
    };
    let sectors = core.len().div_ceil(512) as u64;
    if sectors * SECTOR > room {
        return Err(format!(
            "GRUB's core image ({} KiB) does not fit in the {} KiB there is for it",
            core.len() / 1024,
            room / 1024
        ));
    }
    core.resize(sectors as usize * 512, 0);
    // The rest of the core image follows its first sector, loaded at segment 0x820.
    core[BLOCKLIST..BLOCKLIST + 8].copy_from_slice(&(lba + 1).to_le_bytes());
    core[BLOCKLIST + 8..BLOCKLIST + 10].copy_from_slice(&((sectors - 1) as u16).to_le_bytes());
    core[BLOCKLIST + 10..BLOCKLIST + 12].copy_from_slice(&0x0820u16.to_le_bytes());

    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    f.write_all_at(&core, lba * SECTOR)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    let mut mbr = [0u8; 512];
    f.read_exact_at(&mut mbr, 0)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    let mut boot = boot_img;
    boot[BPB].copy_from_slice(&mbr[BPB]);
    boot[MBR_TAIL].copy_from_slice(&mbr[MBR_TAIL]);
    boot[KERNEL_SECTOR..KERNEL_SECTOR + 8].copy_from_slice(&lba.to_le_bytes());
    boot[BOOT_DRIVE] = 0xff;
    // A hard disk: use the drive the BIOS booted from, whatever its number (grub-bios-setup
    // without --allow-floppy).
    boot[DRIVE_CHECK..DRIVE_CHECK + 2].copy_from_slice(&[0x90, 0x90]);
    // Not flushed here: a staged disk is an intermediate, a live install's device is flushed
    // once at its end.
    f.write_all_at(&boot, 0)
        .map_err(|e| format!("{}: {e}", disk.display()))
}

/// Unpacks the i386-pc directory of the grub2-pc package `rpm` into `into`; returns it.
/// `rpm2cpio` only decodes the payload; kiln reads the archive itself and writes nothing but
/// the regular files under `usr/lib/grub/i386-pc/`, each resolved inside `into` (absolute and
/// `..` names are refused, links and devices skipped), at most 256 MiB in all.
pub fn unpack_grub_pc(rpm: &Path, into: &Path) -> Result<std::path::PathBuf, String> {
    use kiln_formats::cpio_read::{CpioReader, EntryKind};
    const PREFIX: &str = "usr/lib/grub/i386-pc/";
    const LIMIT: u64 = 256 << 20;
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let dest =
        kiln_sandbox::ImageRoot::open(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let mut child = Command::new("rpm2cpio")
        .arg(rpm)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot unpack {}: rpm2cpio: {e} (install rpm)",
                rpm.display()
            )
        })?;
    let stdout = child.stdout.take().expect("piped");
    let mut archive = CpioReader::new(std::io::BufReader::new(stdout));
    let mut total = 0u64;
    let result = (|| -> Result<(), String> {
        while let Some(entry) = archive.next_entry().map_err(|e| e.to_string())? {
            if entry.kind != EntryKind::File || !entry.name.starts_with(PREFIX) {
                continue;
            }
            total = total.saturating_add(entry.size);
            if total > LIMIT {
                return Err(format!("the i386-pc files are larger than {LIMIT} bytes"));
            }
            let path = Path::new(&entry.name);
            if let Some(parent) = path.parent() {
                dest.create_dir_all(parent, 0o755)
                    .map_err(|e| e.to_string())?;
            }
            dest.copy_in(&mut archive.data(entry.size), path, entry.mode & 0o755)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    drop(archive);
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let dir = into.join("usr/lib/grub/i386-pc");
    match result {
        Err(e) => Err(format!("cannot unpack {}: {e}", rpm.display())),
        Ok(()) if !out.status.success() || !dir.join("boot.img").is_file() => Err(format!(
            "{} has no usr/lib/grub/i386-pc/boot.img ({})",
            rpm.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(()) => Ok(dir),
    }
}
