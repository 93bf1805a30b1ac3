//! Upstream roast's converters (SPEC §2.2): one per artifact `Type`/`Compression` value, each
//! turning a raw disk, a partition dump or a root directory into an output file.

use crate::ident::Identity;
use crate::{compress, cpio, tar, Compression, ConvertOptions, Error, Format, OutFile, Subformat};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::Command;

/// An artifact `Type` or `Compression` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Converter {
    Raw,
    Ext4,
    Diff,
    Rdiff,
    Vhd,
    Vhdx,
    Qcow2,
    Ova,
    Gz,
    Xz,
    TarGz,
    TarXz,
    Squashfs,
    Initrd,
}

impl Converter {
    pub const ALL: &'static [(&'static str, Converter)] = &[
        ("raw", Converter::Raw),
        ("ext4", Converter::Ext4),
        ("diff", Converter::Diff),
        ("rdiff", Converter::Rdiff),
        ("vhd", Converter::Vhd),
        ("vhdx", Converter::Vhdx),
        ("qcow2", Converter::Qcow2),
        ("ova", Converter::Ova),
        ("gz", Converter::Gz),
        ("xz", Converter::Xz),
        ("tar.gz", Converter::TarGz),
        ("tar.xz", Converter::TarXz),
        ("squashfs", Converter::Squashfs),
        ("initrd", Converter::Initrd),
    ];

    /// Parses a `Type`/`Compression` value; upstream's error for anything else.
    pub fn parse(s: &str) -> Result<Converter, String> {
        Converter::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, c)| *c)
            .ok_or_else(|| format!("unsupported output format: {s}"))
    }

    /// The file extension of the output.
    pub fn extension(self) -> &'static str {
        match self {
            Converter::Initrd => "img",
            c => Converter::ALL
                .iter()
                .find(|(_, x)| *x == c)
                .map(|(n, _)| *n)
                .expect("every converter is listed"),
        }
    }

    /// Upstream's message when the input is of the wrong kind (`None`: any kind is fine).
    fn input_rule(self) -> Option<(bool, &'static str)> {
        // (needs a directory, message)
        Some(match self {
            Converter::Raw => (false, "raw conversion requires a RAW file as an input"),
            Converter::Ext4 => (false, "ext4 conversion requires a RAW file as an input"),
            Converter::Diff => (
                false,
                "overlay diff conversion requires a RAW file as an input",
            ),
            Converter::Rdiff => (false, "rdiff conversion requires a RAW file as an input"),
            Converter::Vhd => (false, "vhd conversion requires a RAW file as an input"),
            Converter::Vhdx => (false, "vhdx conversion requires a RAW file as an input"),
            Converter::Qcow2 => (false, "qcow2 conversion requires a RAW file as an input"),
            Converter::Ova => (false, "ova conversion requires a RAW file as an input"),
            Converter::Gz => (false, "gz compression requires a file as an input"),
            Converter::Xz => (false, "xz compression requires a file as an input"),
            Converter::Initrd => (true, "initrd conversion requires a directory as an input"),
            Converter::TarGz | Converter::TarXz | Converter::Squashfs => return None,
        })
    }

    /// Converts `input` (a file or a directory) into `output`. Returns warnings.
    pub fn run(
        self,
        input: &Path,
        output: &Path,
        identity: &Identity,
    ) -> Result<Vec<String>, Error> {
        let io_err = |source| Error::Io {
            what: "cannot read",
            path: input.to_path_buf(),
            source,
        };
        // Looked at without opening it: a FIFO or a device is refused, never read.
        let meta = std::fs::metadata(input).map_err(io_err)?;
        if !meta.is_dir() && !meta.is_file() {
            return Err(io_err(crate::sparse::not_regular(input, &meta)));
        }
        let is_dir = meta.is_dir();
        if let Some((needs_dir, msg)) = self.input_rule() {
            if needs_dir != is_dir {
                return Err(Error::Unsupported(msg.into()));
            }
        }
        let clamp = source_date_epoch();
        let disk = |format, subformat| {
            let opts = ConvertOptions {
                format,
                subformat,
                compression: Compression::None,
                identity: identity.clone(),
                progress: None,
            };
            crate::convert(input, output, &opts).map(|c| c.warnings)
        };
        match self {
            Converter::Raw | Converter::Ext4 | Converter::Diff | Converter::Rdiff => {
                disk(Format::Raw, None)
            }
            Converter::Vhd => disk(Format::Vhd, Some(Subformat::Fixed)),
            Converter::Vhdx => disk(Format::Vhdx, Some(Subformat::Dynamic)),
            Converter::Qcow2 => disk(Format::Qcow2, None),
            Converter::Ova => crate::ova::write(input, output, identity),
            Converter::Gz | Converter::Xz => write_output(output, |out| {
                let f = std::fs::File::open(input)?;
                if self == Converter::Gz {
                    compress::gzip_file(&f, out)
                } else {
                    compress::xz_file(&f, out)
                }
            })
            .map(|_| Vec::new()),
            Converter::TarGz | Converter::TarXz => write_output(output, |out| {
                let buffered = BufWriter::with_capacity(1 << 20, out);
                let warnings;
                if self == Converter::TarGz {
                    let mut t = tar::TarWriter::new(
                        compress::GzWriter::new(buffered, compress::threads()),
                        clamp,
                    );
                    archive(&mut t, input, is_dir)?;
                    warnings = std::mem::take(&mut t.warnings);
                    t.finish()?.finish()?.flush()?;
                } else {
                    let mut t =
                        tar::TarWriter::new(liblzma::write::XzEncoder::new(buffered, 6), clamp);
                    archive(&mut t, input, is_dir)?;
                    warnings = std::mem::take(&mut t.warnings);
                    t.finish()?.finish()?.flush()?;
                }
                Ok(warnings)
            }),
            // One gzip stream, not parallel members: the kernel's initramfs unpacker needs each
            // compressed member to end at a cpio trailer ("junk at the end of compressed
            // archive" otherwise), and members cut at 4 MiB split entries.
            Converter::Initrd => write_output(output, |out| {
                let buffered = BufWriter::with_capacity(1 << 20, out);
                let mut c = cpio::CpioWriter::new(
                    flate2::GzBuilder::new()
                        .mtime(0)
                        .write(buffered, flate2::Compression::default()),
                    clamp,
                );
                c.append_tree(input)?;
                let warnings = std::mem::take(&mut c.warnings);
                c.finish()?.finish()?.flush()?;
                Ok(warnings)
            }),
            Converter::Squashfs => squashfs(input, output).map(|_| Vec::new()),
        }
    }
}

/// `SOURCE_DATE_EPOCH`, when set to a number.
pub fn source_date_epoch() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

fn archive<W: Write>(t: &mut tar::TarWriter<W>, input: &Path, is_dir: bool) -> io::Result<()> {
    if is_dir {
        t.append_tree(input)
    } else {
        let meta = std::fs::symlink_metadata(input)?;
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "disk".into());
        t.append(input, &name, &meta)
    }
}

/// Writes `output` through a temporary file that is renamed into place on success.
fn write_output<T>(
    output: &Path,
    f: impl FnOnce(&mut std::fs::File) -> io::Result<T>,
) -> Result<T, Error> {
    let err = |what: &'static str| {
        move |source| Error::Io {
            what,
            path: output.to_path_buf(),
            source,
        }
    };
    let mut out = OutFile::create(output).map_err(err("cannot create"))?;
    let value = f(out.file()).map_err(err("cannot write"))?;
    out.commit().map_err(err("cannot write"))?;
    Ok(value)
}

/// `mksquashfs <in> <out> -noappend`, as upstream (squashfs-tools does the work). It writes
/// into kiln's locked temporary (it truncates the file, keeping it), renamed when complete.
fn squashfs(input: &Path, output: &Path) -> Result<(), Error> {
    let out = OutFile::create(output).map_err(Error::io("cannot create", output))?;
    let result = Command::new("mksquashfs")
        .arg(input)
        .arg(out.temp_path())
        .args(["-noappend", "-quiet", "-no-progress"])
        .output();
    let fail = |msg: String| Err(Error::Unsupported(msg));
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fail("mksquashfs is not installed: install the squashfs-tools package".into())
        }
        Err(e) => fail(format!("cannot run mksquashfs: {e}")),
        Ok(o) if !o.status.success() => fail(format!(
            "mksquashfs failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => out.commit().map_err(Error::io("cannot write", output)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_extensions() {
        assert_eq!(Converter::parse("tar.gz"), Ok(Converter::TarGz));
        assert_eq!(Converter::Initrd.extension(), "img");
        assert_eq!(Converter::TarXz.extension(), "tar.xz");
        assert_eq!(
            Converter::parse("vhd-fixed").unwrap_err(),
            "unsupported output format: vhd-fixed"
        );
    }
}
