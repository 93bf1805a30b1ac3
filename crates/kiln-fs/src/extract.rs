//! An ext2/3/4 filesystem image's tree copied out into a directory without mounting it: what
//! upstream's diff-disk builds see as the overlay's lower layer (SPEC §3.9, where it is a loop
//! mount of the base image).
//!
//! `debugfs rdump` copies directories, regular files and symlinks with owners and file times;
//! it drops the setuid, setgid and sticky bits, leaves out device nodes, FIFOs and sockets, and
//! turns hard links into copies. A second pass lists every directory with `debugfs ls -p`
//! (inode, full mode, owner of each entry) and puts those back: the exact modes, the special
//! files (device numbers from `debugfs stat`), and hard links by inode. Extended attributes
//! are not copied (the base's SELinux labels are not in the lower layer).

use crate::{run, Error};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// One `ls -p` line: `/inode/mode/uid/gid/name/size/`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    inode: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    name: String,
}

fn parse_ls_line(line: &str) -> Option<Listed> {
    let f: Vec<&str> = line.strip_prefix('/')?.split('/').collect();
    if f.len() < 6 {
        return None;
    }
    Some(Listed {
        inode: f[0].parse().ok()?,
        mode: u32::from_str_radix(f[1], 8).ok()?,
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        name: f[4].to_string(),
    })
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs debugfs; its output, whatever its status (debugfs says what failed on stderr).
fn output(cmd: &mut Command) -> Result<std::process::Output, Error> {
    cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingTool {
            tool: "debugfs",
            package: "e2fsprogs",
        },
        _ => Error::Tool {
            tool: "debugfs".into(),
            output: e.to_string(),
        },
    })
}

/// Runs the debugfs requests of `script` on `image` (read-only); its standard output.
fn debugfs_script(image: &Path, script: &str, scratch: &Path) -> Result<String, Error> {
    std::fs::write(scratch, script).map_err(io_at(scratch))?;
    let out = output(Command::new("debugfs").arg("-f").arg(scratch).arg(image));
    let _ = std::fs::remove_file(scratch);
    let out = out?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Copies the tree of the ext2/3/4 filesystem image `image` into `into` (an existing, empty
/// directory): owners, exact modes, times of files, symlinks, device nodes, FIFOs and hard
/// links as the filesystem has them. `scratch` is a file name kiln may write and remove.
pub fn extract_ext(image: &Path, into: &Path, scratch: &Path) -> Result<(), Error> {
    // debugfs exits 0 even when it cannot open the image: its superblock dump says.
    let stats = output(Command::new("debugfs").args(["-R", "stats -h"]).arg(image))?;
    if !String::from_utf8_lossy(&stats.stdout).contains("Filesystem magic number:  0xEF53") {
        return Err(Error::Unsupported(format!(
            "{} is not an ext2/3/4 filesystem image (kiln reads the base with debugfs): {}",
            image.display(),
            String::from_utf8_lossy(&stats.stderr).trim()
        )));
    }
    let mut rdump = Command::new("debugfs");
    rdump
        .arg("-R")
        .arg(format!("rdump / \"{}\"", into.display()))
        .arg(image);
    if into.as_os_str().as_bytes().contains(&b'"') {
        return Err(Error::Unsupported(format!(
            "{}: a folder name with a double quote cannot be given to debugfs",
            into.display()
        )));
    }
    run(&mut rdump, "debugfs", "e2fsprogs")?;

    // Every directory, as rdump made them, listed in one debugfs run.
    let mut dirs = vec![PathBuf::from("/")];
    let mut i = 0;
    while i < dirs.len() {
        let here = into.join(dirs[i].strip_prefix("/").expect("absolute"));
        for e in std::fs::read_dir(&here).map_err(io_at(&here))? {
            let e = e.map_err(io_at(&here))?;
            if e.file_type().map_err(io_at(&here))?.is_dir() {
                dirs.push(dirs[i].join(e.file_name()));
            }
        }
        i += 1;
    }
    let quotable = |p: &Path| !p.as_os_str().as_bytes().iter().any(|b| b"\"\n".contains(b));
    let mut script = String::new();
    for d in dirs.iter().filter(|d| quotable(d)) {
        script.push_str(&format!("ls -p \"{}\"\n", d.display()));
    }
    let listing = debugfs_script(image, &script, scratch)?;

    // Entries by path; the directory a block of lines belongs to is the request echoed before it.
    let mut entries: Vec<(PathBuf, Listed)> = Vec::new();
    let mut current: Option<PathBuf> = None;
    for line in listing.lines() {
        if let Some(req) = line.strip_prefix("debugfs: ls -p ") {
            current = Some(PathBuf::from(req.trim_matches('"')));
            continue;
        }
        let (Some(dir), Some(entry)) = (&current, parse_ls_line(line)) else {
            continue;
        };
        // Unused slots (lost+found's preallocated blocks) list as inode 0 with no name.
        if entry.name == "." || entry.name == ".." || entry.name.is_empty() || entry.inode == 0 {
            continue;
        }
        entries.push((dir.join(&entry.name), entry));
    }

    // Special files need their device numbers.
    let special = |m: u32| !matches!(m & S_IFMT, S_IFDIR | S_IFREG | S_IFLNK);
    let mut script = String::new();
    for (path, e) in &entries {
        if special(e.mode) && quotable(path) {
            script.push_str(&format!("stat \"{}\"\n", path.display()));
        }
    }
    let mut rdevs: HashMap<PathBuf, (u32, u32)> = HashMap::new();
    if !script.is_empty() {
        let stats = debugfs_script(image, &script, scratch)?;
        let mut current: Option<PathBuf> = None;
        for line in stats.lines() {
            if let Some(req) = line.strip_prefix("debugfs: stat ") {
                current = Some(PathBuf::from(req.trim_matches('"')));
            } else if let (Some(p), Some(rest)) =
                (&current, line.strip_prefix("Device major/minor number: "))
            {
                let hex = rest.split_whitespace().next().unwrap_or("");
                let (ma, mi) = hex.split_once(':').unwrap_or(("0", "0"));
                let ma = u32::from_str_radix(ma, 16).unwrap_or(0);
                let mi = u32::from_str_radix(mi, 16).unwrap_or(0);
                rdevs.insert(p.clone(), (ma, mi));
            }
        }
    }

    let mut first_by_inode: HashMap<u64, PathBuf> = HashMap::new();
    for (rel, e) in &entries {
        let path = into.join(rel.strip_prefix("/").expect("absolute"));
        match e.mode & S_IFMT {
            S_IFLNK => {}
            S_IFREG => {
                if let Some(first) = first_by_inode.get(&e.inode) {
                    std::fs::remove_file(&path).map_err(io_at(&path))?;
                    std::fs::hard_link(first, &path).map_err(io_at(&path))?;
                    continue;
                }
                first_by_inode.insert(e.inode, path.clone());
                set_mode(&path, e.mode)?;
            }
            S_IFDIR => set_mode(&path, e.mode)?,
            _ => {
                let (ma, mi) = rdevs.get(rel).copied().unwrap_or((0, 0));
                let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
                    Error::Unsupported(format!("{}: a NUL in the name", path.display()))
                })?;
                // SAFETY: a valid C path; mknod keeps no pointer.
                let rc = unsafe {
                    libc::mknod(
                        c.as_ptr(),
                        (e.mode & (S_IFMT | 0o7777)) as libc::mode_t,
                        libc::makedev(ma, mi),
                    )
                };
                if rc != 0 {
                    return Err(io_at(&path)(std::io::Error::last_os_error()));
                }
                std::os::unix::fs::lchown(&path, Some(e.uid), Some(e.gid)).map_err(io_at(&path))?;
                set_mode(&path, e.mode)?;
            }
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(io_at(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn ls_lines_parse() {
        assert_eq!(
            parse_ls_line("/15/104755/5/6/hard/3/"),
            Some(Listed {
                inode: 15,
                mode: 0o104755,
                uid: 5,
                gid: 6,
                name: "hard".into()
            })
        );
        assert_eq!(parse_ls_line("debugfs: ls -p /"), None);
        assert_eq!(parse_ls_line(""), None);
    }

    #[test]
    fn a_tree_comes_back_with_modes_specials_and_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::write(src.join("etc/a"), "hi\n").unwrap();
        std::os::unix::fs::symlink("a", src.join("etc/l")).unwrap();
        std::fs::set_permissions(src.join("etc/a"), std::fs::Permissions::from_mode(0o4755))
            .unwrap();
        std::fs::hard_link(src.join("etc/a"), src.join("hard")).unwrap();
        let fifo = CString::new(src.join("fifo").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
        std::fs::create_dir(src.join("tmp")).unwrap();
        std::fs::set_permissions(src.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let img = dir.path().join("fs.img");
        let mut mk = Command::new("mke2fs");
        mk.args(["-q", "-F", "-t", "ext4", "-d"])
            .arg(&src)
            .arg(&img)
            .arg("8M");
        run(&mut mk, "mke2fs", "e2fsprogs").unwrap();

        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        extract_ext(&img, &out, &dir.path().join("script")).unwrap();
        let meta = |p: &str| std::fs::symlink_metadata(out.join(p)).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("etc/a")).unwrap(), "hi\n");
        assert_eq!(meta("etc/a").mode() & 0o7777, 0o4755);
        assert_eq!(meta("tmp").mode() & 0o7777, 0o1777);
        assert_eq!(
            std::fs::read_link(out.join("etc/l")).unwrap(),
            Path::new("a")
        );
        assert_eq!(meta("hard").ino(), meta("etc/a").ino());
        assert_eq!(meta("fifo").mode() & S_IFMT, 0o010000);
        assert_eq!(meta("fifo").mode() & 0o7777, 0o640);

        let not_ext = dir.path().join("zeros.img");
        std::fs::write(&not_ext, vec![0u8; 1 << 20]).unwrap();
        let err = extract_ext(&not_ext, &out, &dir.path().join("script")).unwrap_err();
        assert!(err.to_string().contains("not an ext2/3/4"), "{err}");
    }
}
