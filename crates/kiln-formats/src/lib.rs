//! # kiln-formats
//!
//! Disk image formats, written natively: raw (sparse), VHD (fixed, as Azure requires, and
//! dynamic), VHDX (dynamic and fixed, per MS-VHDX) and QCOW2 (version 3). Every writer streams:
//! the input is read by its allocated extents, all-zero granules are never written, and memory
//! stays bounded whatever the image size. Outputs are written under a temporary name and renamed
//! into place only when complete.
//!
//! ```no_run
//! use kiln_formats::{convert, ConvertOptions, Format};
//! let opts = ConvertOptions::new(Format::Vhdx);
//! let done = convert("disk.raw".as_ref(), "disk.vhdx".as_ref(), &opts).unwrap();
//! for w in &done.warnings { eprintln!("warning: {w}"); }
//! ```

pub mod artifact;
pub mod compress;
pub mod cpio;
pub mod cpio_read;
pub mod files;
pub mod ident;
pub mod image;
pub mod ova;
pub mod probe;
pub mod qcow2;
pub mod raw;
pub mod sparse;
pub mod tar;
pub mod tree;
pub mod verify;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;

use ident::Identity;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub const MIB: u64 = 1 << 20;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Vhd,
    Vhdx,
    Qcow2,
    /// Stream-optimized VMDK.
    Vmdk,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "raw" => Format::Raw,
            "vhd" | "vpc" => Format::Vhd,
            "vhdx" => Format::Vhdx,
            "qcow2" => Format::Qcow2,
            "vmdk" => Format::Vmdk,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
        }
    }

    /// The subformat used when none is asked for: fixed VHD (what Azure takes, and what
    /// upstream's roast makes), dynamic VHDX (as upstream).
    pub fn default_subformat(self) -> Subformat {
        match self {
            Format::Vhdx => Subformat::Dynamic,
            _ => Subformat::Fixed,
        }
    }
}

/// Fixed (all blocks allocated) or dynamic (blocks allocated as data appears).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subformat {
    Fixed,
    Dynamic,
}

/// Cluster compression for QCOW2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Zlib,
    Zstd,
}

/// How to convert.
#[derive(Clone)]
pub struct ConvertOptions {
    pub format: Format,
    pub subformat: Option<Subformat>,
    pub compression: Compression,
    /// Where unique ids and timestamps come from.
    pub identity: Identity,
    /// Told how much of the input's data has been converted.
    pub progress: Option<sparse::Progress>,
}

impl std::fmt::Debug for ConvertOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvertOptions")
            .field("format", &self.format)
            .field("subformat", &self.subformat)
            .field("compression", &self.compression)
            .field("identity", &self.identity)
            .finish()
    }
}

impl ConvertOptions {
    /// Defaults for `format`, with ids seeded from `SOURCE_DATE_EPOCH` when it is set.
    pub fn new(format: Format) -> ConvertOptions {
        ConvertOptions {
            format,
            subformat: None,
            compression: Compression::None,
            identity: Identity::from_env(format.name()),
            progress: None,
        }
    }

    pub fn subformat(&self) -> Subformat {
        self.subformat
            .unwrap_or_else(|| self.format.default_subformat())
    }
}

/// What a conversion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The virtual disk size written into the image (may exceed the input: padding).
    pub virtual_size: u64,
    /// Things the user should know (e.g. padding for Azure).
    pub warnings: Vec<String>,
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Input(#[from] image::InputError),
}

impl Error {
    fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
        move |source| Error::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Converts the disk image `input` (raw, VHD, VHDX or QCOW2, told by its magic: see [`image`]) into
/// `output`. The output appears under its name only when complete; on failure nothing is left
/// behind.
pub fn convert(input: &Path, output: &Path, opts: &ConvertOptions) -> Result<Converted, Error> {
    let (mut src, _) = image::open(input)?;
    src.set_progress(opts.progress.clone());
    let mut out = OutFile::create(output).map_err(Error::io("cannot create", output))?;
    let io_err = Error::io("cannot write", output);
    let result = match (opts.format, opts.subformat(), opts.compression) {
        (Format::Raw, _, Compression::None) => raw::write(&src, out.file()),
        (Format::Vhd, Subformat::Fixed, Compression::None) => {
            vhd::write_fixed(&src, out.file(), &opts.identity)
        }
        (Format::Vhd, Subformat::Dynamic, Compression::None) => {
            vhd::write_dynamic(&src, out.file(), &opts.identity)
        }
        (Format::Vhdx, sub, Compression::None) => {
            vhdx::write(&src, out.file(), sub, &opts.identity)
        }
        (Format::Qcow2, Subformat::Fixed, compression) => {
            qcow2::write(&src, out.file(), compression)
        }
        (Format::Vmdk, Subformat::Fixed, Compression::None) => {
            let name = output
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            vmdk::write(&src, out.file(), &name, &opts.identity)
        }
        (f, s, c) => {
            return Err(Error::Unsupported(format!(
                "{} does not support subformat {s:?} with compression {c:?}",
                f.name()
            )))
        }
    };
    let converted = match result {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            return Err(Error::Unsupported(e.to_string()))
        }
        Err(e) => return Err(io_err(e)),
    };
    out.commit().map_err(Error::io("cannot write", output))?;
    Ok(converted)
}

/// An output file written under a temporary name in the same directory (kiln's pattern, locked
/// while written: see [`files`]), renamed into place by [`OutFile::commit`], removed if dropped
/// before.
pub struct OutFile {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl OutFile {
    pub fn create(dest: &Path) -> io::Result<OutFile> {
        let (file, tmp) = files::create_temp_file(dest)?;
        Ok(OutFile {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("not committed")
    }

    /// The temporary's path, for a program that writes the file itself (it must not replace it:
    /// the lock is on this file).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes the file to disk and gives it its final name.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("committed once");
        file.sync_all()?;
        // Renamed while still locked, so no sweeper takes it for a killed writer's.
        std::fs::rename(&self.tmp, &self.dest)
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Rounds `v` up to a multiple of `to` (a power of two).
pub(crate) fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

/// An `InvalidInput` error: the input cannot be represented in the format.
pub(crate) fn unsupported(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}
