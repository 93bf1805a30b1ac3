//! Prototype files for `mkfs.xfs -p`: a directory tree described as mkfs.xfs reads it (type,
//! set-id bits and permissions, owner, group, then the source file, link target or device
//! numbers; `$` closes a directory). The format has no sticky bit (it is set afterwards with
//! `xfs_db`), no extended attributes and no hard links (each name gets its own copy); names
//! with whitespace or `:` cannot be written and are refused.

use crate::Error;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A written prototype file and the directories that need the sticky bit.
pub struct Proto {
    pub file: PathBuf,
    pub sticky: Vec<(String, u32)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `t` plus the set-id characters and three octal digits, as the format spells a mode.
fn mode_token(t: char, mode: u32) -> String {
    format!(
        "{t}{}{}{:03o}",
        if mode & 0o4000 != 0 { 'u' } else { '-' },
        if mode & 0o2000 != 0 { 'g' } else { '-' },
        mode & 0o777
    )
}

fn token(s: &str, what: &str, path: &Path) -> Result<String, Error> {
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == ':' || c == '$') {
        return Err(Error::Unsupported(format!(
            "{}: an xfs filesystem is filled through a prototype file, which cannot hold a {what} \
             with whitespace, ':' or '$' ({s:?})",
            path.display()
        )));
    }
    Ok(s.to_string())
}

/// Describes `dir` into the prototype file `out`.
pub fn write(dir: &Path, out: &Path) -> Result<Proto, Error> {
    let mut text = String::from("kiln\n0 0\n");
    let mut sticky = Vec::new();
    let meta = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    text += &format!(
        "{} {} {}\n",
        mode_token('d', meta.mode()),
        meta.uid(),
        meta.gid()
    );
    if meta.mode() & 0o1000 != 0 {
        sticky.push(("/".to_string(), meta.mode() & 0o7777));
    }
    describe(dir, "", &mut text, &mut sticky)?;
    text += "$\n";
    std::fs::write(out, text).map_err(io(out))?;
    Ok(Proto {
        file: out.to_path_buf(),
        sticky,
    })
}

fn describe(
    dir: &Path,
    rel: &str,
    text: &mut String,
    sticky: &mut Vec<(String, u32)>,
) -> Result<(), Error> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = token(&e.file_name().to_string_lossy(), "name", &path)?;
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        let (mode, owner) = (meta.mode(), format!("{} {}", meta.uid(), meta.gid()));
        let ft = meta.file_type();
        let here = format!("{rel}/{name}");
        if ft.is_dir() && mode & 0o1000 != 0 {
            sticky.push((here.clone(), mode & 0o7777));
        }
        if ft.is_dir() {
            *text += &format!("{name} {} {owner}\n", mode_token('d', mode));
            describe(&path, &here, text, sticky)?;
            *text += "$\n";
        } else if ft.is_file() {
            let source = token(&path.to_string_lossy(), "staging path", &path)?;
            *text += &format!("{name} {} {owner} {source}\n", mode_token('-', mode));
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(&path))?;
            let target = token(&target.to_string_lossy(), "link target", &path)?;
            *text += &format!("{name} {} {owner} {target}\n", mode_token('l', mode));
        } else if ft.is_block_device() || ft.is_char_device() {
            let t = if ft.is_block_device() { 'b' } else { 'c' };
            let rdev = meta.rdev();
            let (major, minor) = (libc_major(rdev), libc_minor(rdev));
            *text += &format!("{name} {} {owner} {major} {minor}\n", mode_token(t, mode));
        } else if ft.is_fifo() {
            *text += &format!("{name} {} {owner}\n", mode_token('p', mode));
        }
        // Sockets are not kept in images (nothing can be listening).
    }
    Ok(())
}

/// Linux's encoding of device numbers (glibc's `gnu_dev_major`/`gnu_dev_minor`).
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

/// Sets the full modes (sticky bit included) of the directories `entries` in the xfs image
/// `image` (xfs_db writes the whole mode field, type bits included, and updates the checksum).
pub fn set_sticky(image: &Path, entries: &[(String, u32)]) -> Result<(), Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("xfs_db");
    cmd.arg("-x");
    for (path, mode) in entries {
        cmd.arg("-c").arg(format!("path {path}"));
        cmd.arg("-c")
            .arg(format!("write core.mode 0{:o}", 0o040000 | mode));
    }
    cmd.arg(image);
    crate::run(&mut cmd, "xfs_db", "xfsprogs")
}
