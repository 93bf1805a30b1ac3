//! ISO 9660 images written natively from a staged directory tree: Rock Ridge (real names,
//! modes, owners, symlinks, times), Joliet, El Torito boot (BIOS no-emulation with a boot info
//! table, UEFI platform 0xEF) and a hybrid MBR + GPT so the same file boots from a USB stick.
//!
//! Files are streamed from disk into extents planned before anything is written (no file is
//! held in memory; holes stay holes in the output); every date and id comes from the caller's
//! [`Identity`], so two builds of one tree with one identity are byte-identical. See
//! `docs/iso.md` for the layout written and its limits.

mod boot;
mod efi;
mod iso;
pub mod maker;
mod susp;
mod time;
mod tree;

pub use efi::{efi_boot_image, efi_boot_image_with, EfiImage};
pub use iso::write_iso;
pub use kiln_formats::ident::Identity;

use std::path::{Path, PathBuf};

/// Turns an I/O error on `path` into [`Error::Io`] saying what was being done.
pub(crate) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

/// The largest EFI image an El Torito entry can describe: its sector count is a u16 of 512-byte
/// sectors.
pub const MAX_ELTORITO_EFI_IMAGE: u64 = 0xFFFF * 512;

/// What to write.
#[derive(Debug, Clone)]
pub struct IsoOptions {
    /// The volume id (upstream: `CDROM`, which its installer mounts by label): at most 32
    /// printable ASCII characters.
    pub volume_id: String,
    /// Dates (SOURCE_DATE_EPOCH) and ids (GPT GUIDs, MBR signature) come from here.
    pub identity: Identity,
    /// Write a Joliet tree beside the ISO 9660 / Rock Ridge one.
    pub joliet: bool,
    /// The El Torito BIOS entry.
    pub bios: Option<BiosBoot>,
    /// The El Torito UEFI entry: the path in the staged tree of the FAT image holding
    /// `EFI/BOOT/BOOTX64.EFI` (upstream: `boot/grub2/efiboot.img`).
    pub efi_image: Option<String>,
    /// Where the boot catalog appears in the tree (upstream: `isolinux/boot.cat`); hidden when
    /// `None`. Only with a boot entry.
    pub catalog: Option<String>,
    /// Make the image bootable as a disk too.
    pub hybrid: Option<Hybrid>,
}

impl IsoOptions {
    /// Upstream's defaults: volume id `CDROM`, Rock Ridge, no Joliet, no boot entries.
    pub fn new(volume_id: &str, identity: Identity) -> IsoOptions {
        IsoOptions {
            volume_id: volume_id.to_string(),
            identity,
            joliet: false,
            bios: None,
            efi_image: None,
            catalog: None,
            hybrid: None,
        }
    }
}

/// The El Torito BIOS (platform 0, no emulation) entry.
#[derive(Debug, Clone)]
pub struct BiosBoot {
    /// Path in the staged tree (upstream: `isolinux/isolinux.bin`; GRUB: `boot/grub2/i386-pc/eltorito.img`).
    pub image: String,
    /// 512-byte sectors the BIOS loads (`-boot-load-size`, 4 as everyone uses).
    pub load_size: u16,
    /// Patch the boot info table into bytes 8..64 of the image in the ISO (`-boot-info-table`).
    pub boot_info_table: bool,
    /// Patch GRUB's core image block list at byte 2548 with the image's 512-byte address + 5
    /// (xorriso `--grub2-boot-info`, as grub-mkrescue does).
    pub grub2_boot_info: bool,
}

impl BiosBoot {
    /// Load size 4, boot info table patched, no GRUB patch (upstream's isolinux).
    pub fn new(image: &str) -> BiosBoot {
        BiosBoot {
            image: image.to_string(),
            load_size: 4,
            boot_info_table: true,
            grub2_boot_info: false,
        }
    }
}

/// The disk view: a protective MBR and a GPT with a data partition over the ISO and an EFI
/// System Partition over the EFI image's extent (written last in the image, so the two do not
/// overlap).
#[derive(Debug, Clone, Default)]
pub struct Hybrid {
    /// Boot code for the MBR's first bytes (GRUB's `boot_hybrid.img`): at most 512 bytes, of
    /// which the first 440 are used (the signature, partition table and 0x55AA are kiln's).
    pub mbr_code: Option<Vec<u8>>,
    /// Patch bytes 432..440 of the MBR with the BIOS boot image's 512-byte address + 4, where
    /// GRUB's `boot_hybrid.img` reads it (xorriso `--grub2-mbr`).
    pub grub2_mbr: bool,
    /// Patch bytes 432..440 of the MBR with the BIOS boot image's 512-byte address (and
    /// zeros), where syslinux's `isohdpfx.bin` reads it (xorriso `-isohybrid-mbr`).
    pub isolinux_mbr: bool,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoReport {
    /// Bytes of the image.
    pub size: u64,
    pub directories: usize,
    /// Regular files (hard links counted once).
    pub files: usize,
    /// True when a file of 4 GiB or more needed several extents (ISO level 3).
    pub multi_extent: bool,
    /// The EFI image's byte range in the image, when there is one.
    pub efi_image: Option<(u64, u64)>,
}

/// Why an ISO (or EFI image) could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the staged tree {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("invalid volume id {0:?}: at most 32 printable ASCII characters")]
    VolumeId(String),
    #[error("El Torito: {0}")]
    Boot(String),
    #[error("{}: {reason}", path.display())]
    Changed { path: PathBuf, reason: String },
    #[error("the image cannot hold this tree: {0}")]
    Limit(String),
    #[error("the config: {0}")]
    Config(String),
    #[error("the installer initrd: {0}")]
    Initrd(String),
    #[error("the installer's kernel arguments: {0}")]
    KernelArg(String),
    #[error("EFI image: {0}")]
    Fs(#[from] kiln_fs::Error),
}
