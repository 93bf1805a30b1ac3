//! What can go wrong, said so that the caller can act on it.

use std::io;

/// An error from building or reading an encrypted volume.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The partition cannot hold the LUKS header, the LVM metadata and one extent.
    #[error(
        "partition of {size} bytes is too small for an encrypted root: LUKS1 + LVM2 need at least {min} bytes"
    )]
    PartitionTooSmall { size: u64, min: u64 },
    /// Sizes and offsets are counted in 512-byte sectors.
    #[error("{what} ({value} bytes) is not a multiple of 512 bytes")]
    Unaligned { what: &'static str, value: u64 },
    /// The filesystem image does not fit in the logical volume.
    #[error("filesystem image is larger than the logical volume ({lv_size} bytes); make it with kiln_crypt::lv_size()")]
    ImageTooLarge { lv_size: u64 },
    /// Reading the plain filesystem image failed.
    #[error("reading the filesystem image at byte {offset}: {source}")]
    ReadImage { offset: u64, source: io::Error },
    /// Writing the encrypted partition failed.
    #[error("writing the encrypted partition at byte {offset} of the target: {source}")]
    Write { offset: u64, source: io::Error },
    /// Reading a LUKS header or key slot failed.
    #[error("reading the LUKS header at byte {offset}: {source}")]
    Read { offset: u64, source: io::Error },
    /// The bytes are not a LUKS1 header kiln can use.
    #[error("not a usable LUKS1 header: {0}")]
    BadHeader(String),
    /// No enabled key slot opens with the passphrase given.
    #[error("no key slot opens with this passphrase")]
    WrongPassphrase,
    /// An empty passphrase or key file.
    #[error("the {0} is empty: LUKS needs at least one byte")]
    EmptySecret(&'static str),
    /// A volume group or logical volume name LVM would refuse.
    #[error("invalid LVM {kind} name {name:?}: {why}")]
    InvalidName {
        kind: &'static str,
        name: String,
        why: &'static str,
    },
    /// A text field of the LVM metadata that would break its syntax.
    #[error("invalid LVM metadata {field} {value:?}: {why}")]
    InvalidField {
        field: &'static str,
        value: String,
        why: &'static str,
    },
    /// The LVM metadata text does not fit in the metadata area.
    #[error("LVM metadata of {size} bytes does not fit in the metadata area (at most {max})")]
    MetadataTooLarge { size: u64, max: u64 },
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    /// A PBKDF2 parameter out of range.
    #[error("PBKDF2 {0}")]
    Pbkdf(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
