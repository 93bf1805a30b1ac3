//! cpio "newc" (070701) archives of a directory, as the kernel's initramfs unpacker reads them.
//!
//! Entries come in a depth-first walk with names sorted bytewise, named relative to the
//! directory with the root as `.` (upstream's order and naming). Inode numbers are assigned in
//! order (so archives are reproducible); hard links are stored as separate copies; symlinks
//! carry their target as data; devices their major and minor numbers.

use std::fs::{self, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u64,
    clamp: Option<u64>,
    pub warnings: Vec<String>,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W, clamp: Option<u64>) -> CpioWriter<W> {
        CpioWriter {
            out,
            written: 0,
            next_ino: 1,
            clamp,
            warnings: Vec::new(),
        }
    }

    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn align4(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..pad])
    }

    /// Appends `root` as `.` and everything below it.
    pub fn append_tree(&mut self, root: &Path) -> io::Result<()> {
        let meta = fs::symlink_metadata(root)?;
        self.append(root, ".", &meta)?;
        self.walk(root, "")
    }

    fn walk(&mut self, dir: &Path, prefix: &str) -> io::Result<()> {
        for name in crate::tree::sorted_names(dir)? {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path)?;
            let archive_name = format!("{prefix}{}", String::from_utf8_lossy(name.as_bytes()));
            self.append(&path, &archive_name, &meta)?;
            if meta.is_dir() {
                self.walk(&path, &format!("{archive_name}/"))?;
            }
        }
        Ok(())
    }

    fn append(&mut self, path: &Path, name: &str, meta: &Metadata) -> io::Result<()> {
        let ft = meta.file_type();
        let link_target;
        let (data_len, rdev): (u64, u64) = if ft.is_file() {
            (meta.len(), 0)
        } else if ft.is_symlink() {
            link_target = fs::read_link(path)?;
            (link_target.as_os_str().len() as u64, 0)
        } else if ft.is_dir() || ft.is_fifo() {
            (0, 0)
        } else if ft.is_char_device() || ft.is_block_device() {
            (0, meta.rdev())
        } else {
            self.warnings.push(format!(
                "{}: sockets cannot be archived; skipped",
                path.display()
            ));
            return Ok(());
        };
        if data_len > u64::from(u32::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is larger than a cpio newc entry can hold (4 GiB)",
                    path.display()
                ),
            ));
        }
        let mtime = crate::tree::mtime(meta, self.clamp);
        let ino = self.next_ino;
        self.next_ino += 1;
        let fields = [
            ino,
            u64::from(meta.mode()),
            u64::from(meta.uid()),
            u64::from(meta.gid()),
            if ft.is_dir() { 2 } else { 1 },
            mtime,
            data_len,
            0,
            0,
            u64::from(libc::major(rdev)),
            u64::from(libc::minor(rdev)),
            name.len() as u64 + 1,
            0,
        ];
        self.header(&fields, name)?;
        if ft.is_file() {
            crate::tree::copy_exact(path, data_len, |chunk| self.put(chunk))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(path)?;
            self.put(target.as_os_str().as_bytes())?;
        }
        self.align4()
    }

    fn header(&mut self, fields: &[u64; 13], name: &str) -> io::Result<()> {
        let mut h = String::from("070701");
        for f in fields {
            h.push_str(&format!("{:08x}", f & 0xffff_ffff));
        }
        self.put(h.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.align4()
    }

    /// Writes the trailer entry and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let fields = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0];
        self.header(&fields, "TRAILER!!!")?;
        Ok(self.out)
    }
}
