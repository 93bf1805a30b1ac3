//! Prototype files for `mkfs.xfs -p`: a directory tree described as mkfs.xfs reads it (type,
//! set-id bits and permissions, owner, group, then the source file, link target or device
//! numbers; `$` closes a directory). Names with whitespace or `:` cannot be written and are
//! refused.
//!
//! What the format cannot hold is done afterwards with `xfs_db -x` on the new filesystem
//! ([`Proto::finish`]; xfsprogs 6.1 has no way to fill xfs from a directory with them):
//!
//! - the sticky bit: the directory's whole mode written;
//! - extended attributes (`security.*`, `trusted.*`, `user.*`, and POSIX ACLs as xfs keeps
//!   them: root-namespace `SGI_ACL_FILE`/`SGI_ACL_DEFAULT` in its own layout and byte order):
//!   `attr_set -v LEN` makes each attribute with a placeholder value of the right length
//!   (xfs_db 6.1 cannot take a value), then the value's bytes are written over it where xfs_db
//!   shows it is (in the inode or in the attribute leaf block);
//! - hard links: every name after a file's first is an empty placeholder file in the prototype;
//!   its directory entry is then pointed at the first name's inode, that inode's link count set,
//!   the placeholder inode freed (mode 0), and `xfs_repair` updates the inode btrees and counts
//!   for the freed placeholders.
//!
//! A directory small enough to be kept in its inode (shortform) but too big to leave room for
//! its first attribute would have to become a directory block when the attribute is added;
//! xfs_db 6.1's `attr_set` crashes doing that (a SELinux-labelled `/etc/systemd/system`). Such
//! a directory gets a filler entry in the prototype, with a long name, so that mkfs.xfs makes
//! it a directory block from the start; the filler's inode is freed as a placeholder's is, and
//! `xfs_repair` drops the entry that points at it.

use crate::Error;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// An extended attribute as xfs keeps it: xfs_db's namespace flag, the namespace bits xfs_db
/// prints (root, secure), the name without its prefix, and the value.
struct Attr {
    flag: &'static str,
    root: bool,
    secure: bool,
    name: String,
    value: Vec<u8>,
}

/// A written prototype file and what it cannot hold.
pub struct Proto {
    pub file: PathBuf,
    /// Directories that need the sticky bit, with their whole mode.
    sticky: Vec<(String, u32)>,
    /// Paths (in the new filesystem) with their extended attributes.
    xattrs: Vec<(String, Vec<Attr>)>,
    /// Hard links: each group's first path is the file itself, the others placeholders.
    links: Vec<Vec<String>>,
    /// Filler entries that make directories blocks (see the module's notes), freed at the end.
    fillers: Vec<String>,
}

/// mkfs.xfs's inode size (its default for v5 filesystems, which kiln keeps) less the inode
/// core: the bytes an inode holds a shortform directory and attributes in (`XFS_LITINO`).
const LITERAL_AREA: u64 = 512 - 176;
/// The name of a filler entry: as long as a name can be.
const FILLER: &str = concat!(
    ".kiln-xfs-filler-",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
);

/// Whether adding the first attribute (`bytes`: its shortform size with the header) to a
/// shortform directory of `dsize` bytes makes xfs turn the directory into a block: no attribute
/// fork offset leaves the directory's bytes in place (`xfs_attr_shortform_bytesfit` returns 0)
/// and the directory is larger than the default data fork (`xfs_default_attroffset`, 100 bytes
/// for 512-byte inodes).
fn attr_moves_directory(dsize: u64, bytes: u64) -> bool {
    if dsize > LITERAL_AREA {
        return false; // already a block
    }
    let fits = bytes <= LITERAL_AREA && {
        let offset = (LITERAL_AREA - bytes) >> 3;
        // At least the data fork, or a btree root of two pointers (XFS_BMDR_SPACE_CALC(2)).
        let min = dsize.max(36).div_ceil(8);
        offset >= min
    };
    !fits && dsize > 100
}

/// The size of a shortform directory with entries of these name lengths, with 4- or 8-byte
/// inode numbers (`xfs_dir2_sf_hdr` and entries with a file type byte).
fn shortform_size(names: &[usize], ino_bytes: u64) -> u64 {
    2 + ino_bytes + names.iter().map(|&n| n as u64 + 4 + ino_bytes).sum::<u64>()
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

/// The xfs form of the extended attribute `full` of `path`, or why it cannot be written.
fn xfs_attr(full: &str, value: Vec<u8>, path: &Path) -> Result<Attr, Error> {
    let refuse = |why: &str| {
        Error::Unsupported(format!(
            "{}: its extended attribute {full:?} cannot be written into xfs: {why}; remove it \
             from the image or use ext4 for this partition",
            path.display()
        ))
    };
    let (flag, root, secure, name) = if let Some(n) = full.strip_prefix("security.") {
        ("-s", false, true, n)
    } else if let Some(n) = full.strip_prefix("trusted.") {
        ("-r", true, false, n)
    } else if let Some(n) = full.strip_prefix("user.") {
        ("-u", false, false, n)
    } else if let Some(name) = acl_name(full) {
        let value = xfs_acl(&value).ok_or_else(|| refuse("it is not a POSIX ACL Linux made"))?;
        return Ok(Attr {
            flag: "-r",
            root: true,
            secure: false,
            name: name.into(),
            value,
        });
    } else {
        return Err(refuse(
            "kiln carries only security.*, trusted.* and user.* attributes and POSIX ACLs on \
             xfs (no other system.* attributes)",
        ));
    };
    if name.is_empty()
        || name.len() > 255
        || !name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'\'')
    {
        return Err(refuse(
            "xfs_db can only name attributes of 1 to 255 printable ASCII characters without \
             quotes or backslashes",
        ));
    }
    if value.is_empty() {
        return Err(refuse(
            "xfs_db 6.1 cannot make an attribute with an empty value",
        ));
    }
    Ok(Attr {
        flag,
        root,
        secure,
        name: name.to_string(),
        value,
    })
}

/// xfs's name for a POSIX ACL attribute: it keeps them in the root namespace under its own
/// names (`SGI_ACL_FILE`, `SGI_ACL_DEFAULT`), where Linux shows `system.posix_acl_*`.
fn acl_name(full: &str) -> Option<&'static str> {
    match full {
        "system.posix_acl_access" => Some("SGI_ACL_FILE"),
        "system.posix_acl_default" => Some("SGI_ACL_DEFAULT"),
        _ => None,
    }
}

/// A POSIX ACL as Linux hands it out (`posix_acl_xattr`: le32 version 2, then entries of le16
/// tag, le16 permissions, le32 id) in xfs's on-disk form (`struct xfs_acl`: be32 count, then
/// entries of be32 tag, be32 id, be16 permissions, be16 padding; the same tag values and the
/// same undefined id for entries without one). `None` if `value` is not such an ACL.
fn xfs_acl(value: &[u8]) -> Option<Vec<u8>> {
    let (version, entries) = value.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != 2 || entries.is_empty() || entries.len() % 8 != 0 {
        return None;
    }
    let count = u32::try_from(entries.len() / 8).ok()?;
    let mut out = Vec::with_capacity(4 + entries.len() / 8 * 12);
    out.extend_from_slice(&count.to_be_bytes());
    for e in entries.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        out.extend_from_slice(&u32::from(tag).to_be_bytes());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&perm.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
    }
    Some(out)
}

/// Walks the staging tree into the prototype text.
struct Walker {
    text: String,
    sticky: Vec<(String, u32)>,
    xattrs: Vec<(String, Vec<Attr>)>,
    links: Vec<Vec<String>>,
    fillers: Vec<String>,
    /// (device, inode) of files with several names → their group in `links`.
    seen: HashMap<(u64, u64), usize>,
}

impl Walker {
    /// The shortform size of the first attribute of `here` (which [`Walker::attrs`] has just
    /// seen, if it has any): xfs_attr_sf_hdr, then the entry's name length, value length and
    /// flags bytes, its name and value.
    fn first_attr_bytes(&self, here: &str) -> Option<u64> {
        let (path, attrs) = self.xattrs.last()?;
        let first = attrs.first().filter(|_| path == here)?;
        Some(4 + 3 + first.name.len() as u64 + first.value.len() as u64)
    }

    fn attrs(&mut self, path: &Path, here: &str) -> Result<(), Error> {
        let found = kiln_formats::tar::xattrs(path).map_err(io(path))?;
        if found.is_empty() {
            return Ok(());
        }
        let attrs = found
            .into_iter()
            .map(|(name, value)| xfs_attr(&name, value, path))
            .collect::<Result<Vec<_>, _>>()?;
        self.xattrs.push((here.to_string(), attrs));
        Ok(())
    }

    /// Describes the entries of `dir` (`rel` in the new filesystem), whose first attribute
    /// takes `own` bytes.
    fn describe(&mut self, dir: &Path, rel: &str, own: Option<u64>) -> Result<(), Error> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .collect::<Result<_, _>>()
            .map_err(io(dir))?;
        entries.sort_by_key(|e| e.file_name());
        let mut names: Vec<usize> = Vec::new();
        for e in entries {
            let path = e.path();
            let name = token(&e.file_name().to_string_lossy(), "name", &path)?;
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            let (mode, owner) = (meta.mode(), format!("{} {}", meta.uid(), meta.gid()));
            let ft = meta.file_type();
            let here = format!("{rel}/{name}");
            if !ft.is_socket() {
                names.push(name.len());
            }
            if ft.is_file() && meta.nlink() > 1 {
                if let Some(&group) = self.seen.get(&(meta.dev(), meta.ino())) {
                    // Another name of a file already described: a placeholder, linked later.
                    self.text += &format!("{name} ---000 0 0 /dev/null\n");
                    self.links[group].push(here);
                    continue;
                }
                self.seen.insert((meta.dev(), meta.ino()), self.links.len());
                self.links.push(vec![here.clone()]);
            }
            if ft.is_dir() && mode & 0o1000 != 0 {
                self.sticky.push((here.clone(), mode & 0o7777));
            }
            if !ft.is_socket() {
                self.attrs(&path, &here)?;
            }
            if ft.is_dir() {
                self.text += &format!("{name} {} {owner}\n", mode_token('d', mode));
                let own = self.first_attr_bytes(&here);
                self.describe(&path, &here, own)?;
                self.text += "$\n";
            } else if ft.is_file() {
                let source = token(&path.to_string_lossy(), "staging path", &path)?;
                self.text += &format!("{name} {} {owner} {source}\n", mode_token('-', mode));
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(io(&path))?;
                let target = token(&target.to_string_lossy(), "link target", &path)?;
                self.text += &format!("{name} {} {owner} {target}\n", mode_token('l', mode));
            } else if ft.is_block_device() || ft.is_char_device() {
                let t = if ft.is_block_device() { 'b' } else { 'c' };
                let rdev = meta.rdev();
                let (major, minor) = (libc_major(rdev), libc_minor(rdev));
                self.text += &format!("{name} {} {owner} {major} {minor}\n", mode_token(t, mode));
            } else if ft.is_fifo() {
                self.text += &format!("{name} {} {owner}\n", mode_token('p', mode));
            }
            // Sockets are not kept in images (nothing can be listening).
        }
        if let Some(bytes) = own {
            self.fill_if_attr_moves(rel, bytes, &mut names);
        }
        Ok(())
    }

    /// Gives the directory `rel` (its entries' name lengths `names`) filler entries when its
    /// first attribute (`bytes` in shortform) would turn it from shortform into a block (see
    /// the module's notes).
    fn fill_if_attr_moves(&mut self, rel: &str, bytes: u64, names: &mut Vec<usize>) {
        // Inode numbers of 4 bytes, or 8 on a filesystem large enough to need them.
        let moves = |names: &[usize]| {
            [4, 8]
                .iter()
                .any(|&ino| attr_moves_directory(shortform_size(names, ino), bytes))
        };
        while moves(names) {
            let n = self.fillers.len();
            let name = format!("{}{n}", &FILLER[..FILLER.len() - n.to_string().len()]);
            self.text += &format!("{name} ---000 0 0 /dev/null\n");
            self.fillers.push(format!("{rel}/{name}"));
            names.push(name.len());
        }
    }
}

/// Describes `dir` into the prototype file `out`.
pub fn write(dir: &Path, out: &Path) -> Result<Proto, Error> {
    let mut w = Walker {
        text: String::from("kiln\n0 0\n"),
        sticky: Vec::new(),
        xattrs: Vec::new(),
        links: Vec::new(),
        fillers: Vec::new(),
        seen: HashMap::new(),
    };
    let meta = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    w.text += &format!(
        "{} {} {}\n",
        mode_token('d', meta.mode()),
        meta.uid(),
        meta.gid()
    );
    if meta.mode() & 0o1000 != 0 {
        w.sticky.push(("/".to_string(), meta.mode() & 0o7777));
    }
    w.attrs(dir, "/")?;
    let own = w.first_attr_bytes("/");
    w.describe(dir, "", own)?;
    w.text += "$\n";
    std::fs::write(out, &w.text).map_err(io(out))?;
    w.links.retain(|group| group.len() > 1);
    Ok(Proto {
        file: out.to_path_buf(),
        sticky: w.sticky,
        xattrs: w.xattrs,
        links: w.links,
        fillers: w.fillers,
    })
}

/// Linux's encoding of device numbers (glibc's `gnu_dev_major`/`gnu_dev_minor`).
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

/// Runs the xfs_db `script` (commands read from its standard input) on `image`, read-only or
/// in expert mode, and returns what it printed. xfs_db goes on after a failed command: in
/// expert mode anything it complains about is an error; readers check its output for what they
/// asked.
fn xfs_db(image: &Path, script: &str, write: bool) -> Result<String, Error> {
    let mut cmd = Command::new("xfs_db");
    cmd.arg(if write { "-x" } else { "-r" })
        .arg(image)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingTool {
                tool: "xfs_db",
                package: "xfsprogs",
            })
        }
        Err(e) => {
            return Err(Error::Tool {
                tool: "xfs_db".into(),
                output: e.to_string(),
            })
        }
        Ok(c) => c,
    };
    let stdin = child.stdin.take();
    let out = std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(mut stdin) = stdin {
                let _ = stdin.write_all(script.as_bytes());
            }
        });
        child.wait_with_output()
    })
    .map_err(|e| Error::Tool {
        tool: "xfs_db".into(),
        output: e.to_string(),
    })?;
    let complaints = String::from_utf8_lossy(&out.stderr).trim().to_string();
    // Reads may fail where a structure is not there (callers check); a write must not.
    if (write && !complaints.is_empty()) || (!out.status.success() && out.stdout.is_empty()) {
        // A crash prints nothing: say how it ended.
        let output = if complaints.is_empty() {
            format!("xfs_db {} with no message", out.status)
        } else {
            complaints
        };
        return Err(Error::Tool {
            tool: "xfs_db".into(),
            output,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// xfs_db's output cut into the sections that `echo @@<key>` commands started.
fn sections(output: &str) -> BTreeMap<String, Vec<&str>> {
    let mut out: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut current = None;
    for line in output.lines() {
        if let Some(key) = line.strip_prefix("@@") {
            current = Some(key.trim().to_string());
            out.entry(key.trim().to_string()).or_default();
        } else if let Some(k) = &current {
            out.entry(k.clone()).or_default().push(line);
        }
    }
    out
}

/// The value of `key` in lines `key = value`.
fn field<'a>(lines: &[&'a str], key: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(" = "))
            .map(str::trim)
    })
}

/// The number in `current inode number is N`.
fn inode_number(lines: &[&str]) -> Option<u64> {
    lines.iter().find_map(|l| {
        l.strip_prefix("current inode number is ")
            .and_then(|n| n.trim().parse().ok())
    })
}

/// The leading number of a field value (`2 (extents)` → 2).
fn number(value: Option<&str>) -> Option<u64> {
    value?.split_whitespace().next()?.parse().ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::from("#"), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn broken(what: String) -> Error {
    Error::Tool {
        tool: "xfs_db".into(),
        output: what,
    }
}

/// Where xfs_db shows an inode's attribute `a`: the field path of its value (after
/// `inode N`, plus `ablock 0` for a leaf block), or why it cannot be written.
fn attr_value_field(
    shortform: bool,
    lines: &[&str],
    a: &Attr,
    path: &str,
) -> Result<String, Error> {
    let quoted = format!("\"{}\"", a.name);
    let (root, secure) = (u64::from(a.root), u64::from(a.secure));
    if shortform {
        let count = number(field(lines, "a.sfattr.hdr.count")).unwrap_or(0);
        for i in 0..count {
            let f = |k: &str| field(lines, &format!("a.sfattr.list[{i}].{k}"));
            if f("name") == Some(quoted.as_str())
                && number(f("root")) == Some(root)
                && number(f("secure")) == Some(secure)
            {
                return Ok(format!("a.sfattr.list[{i}].value"));
            }
        }
    } else {
        // entries[0-N] = [hashval,nameidx,incomplete,root,secure,local], then `i:[…]` lines.
        let table = lines
            .iter()
            .skip_while(|l| !l.starts_with("entries["))
            .skip(1)
            .map_while(|l| {
                let (i, rest) = l.trim().split_once(":[")?;
                let cols: Vec<&str> = rest.trim_end_matches(']').split(',').collect();
                Some((i.parse::<usize>().ok()?, cols))
            });
        for (i, cols) in table {
            if field(lines, &format!("nvlist[{i}].name")) == Some(quoted.as_str())
                && cols.get(3).and_then(|c| c.parse().ok()) == Some(root)
                && cols.get(4).and_then(|c| c.parse().ok()) == Some(secure)
            {
                if cols.get(5) != Some(&"1") {
                    return Err(Error::Unsupported(format!(
                        "{path}: its extended attribute {:?} has a value of {} bytes, too large \
                         for kiln's xfs writer (it must fit in the attribute block); remove it \
                         or use ext4 for this partition",
                        a.name,
                        a.value.len()
                    )));
                }
                return Ok(format!("nvlist[{i}].value"));
            }
        }
    }
    Err(broken(format!(
        "{path}: the extended attribute {:?} was not made (too many attributes on one file \
         for kiln's xfs writer?)",
        a.name
    )))
}

impl Proto {
    /// Gives the xfs image `image` (just made from this prototype) what the prototype file
    /// cannot hold: sticky bits, extended attributes and hard links.
    pub fn finish(&self, image: &Path) -> Result<(), Error> {
        if self.sticky.is_empty() && self.xattrs.is_empty() && self.links.is_empty() {
            return Ok(());
        }
        // 1. Every attribute made, with a placeholder value of its length.
        if !self.xattrs.is_empty() {
            let mut script = String::new();
            for (path, attrs) in &self.xattrs {
                script += &format!("path {path}\n");
                for a in attrs {
                    script += &format!("attr_set {} -v {} {}\n", a.flag, a.value.len(), a.name);
                }
            }
            xfs_db(image, &script, true)?;
        }
        // 2. Where things are: inode numbers, attribute forks, directories of placeholders.
        let mut dirs: Vec<String> = Vec::new();
        for group in &self.links {
            for name in &group[1..] {
                let parent = match name.rsplit_once('/') {
                    Some(("", _)) | None => "/".to_string(),
                    Some((p, _)) => p.to_string(),
                };
                if !dirs.contains(&parent) {
                    dirs.push(parent);
                }
            }
        }
        let mut script = String::from("sb 0\nprint blocksize dirblklog\n");
        for (k, (path, _)) in self.xattrs.iter().enumerate() {
            script += &format!("echo @@attr {k}\npath {path}\ninode\nprint core.aformat a\n");
        }
        for (g, group) in self.links.iter().enumerate() {
            for (i, name) in group.iter().enumerate() {
                script += &format!("echo @@link {g} {i}\npath {name}\ninode\n");
            }
        }
        for (d, dir) in dirs.iter().enumerate() {
            script +=
                &format!("echo @@dir {d}\npath {dir}\ninode\nprint core.format core.size u3\n");
        }
        for (f, filler) in self.fillers.iter().enumerate() {
            script += &format!("echo @@filler {f}\npath {filler}\ninode\n");
        }
        let out = xfs_db(image, &script, false)?;
        let head: Vec<&str> = out.lines().take_while(|l| !l.starts_with("@@")).collect();
        let blocksize = number(field(&head, "blocksize")).unwrap_or(0);
        if blocksize == 0 || number(field(&head, "dirblklog")) != Some(0) {
            return Err(broken(format!(
                "unexpected xfs geometry (block size, directory block size): {}",
                head.join(" ")
            )));
        }
        let info = sections(&out);
        let section = |key: String| -> Result<&Vec<&str>, Error> {
            info.get(&key)
                .ok_or_else(|| broken(format!("no answer for {key}: {}", out.trim())))
        };

        // 3. Attribute leaf blocks and directory blocks, where those are not in the inode.
        let mut script = String::new();
        let mut attr_inodes = Vec::new();
        for (k, (path, _)) in self.xattrs.iter().enumerate() {
            let lines = section(format!("attr {k}"))?;
            let ino = inode_number(lines)
                .ok_or_else(|| broken(format!("{path}: not found in the new filesystem")))?;
            let format = number(field(lines, "core.aformat"));
            match format {
                Some(1) => {}
                Some(2) => script += &format!("echo @@leaf {k}\ninode {ino}\nablock 0\nprint\n"),
                _ => {
                    return Err(Error::Unsupported(format!(
                        "{path}: too many extended attributes for kiln's xfs writer (they do \
                         not fit in one attribute block)"
                    )))
                }
            }
            attr_inodes.push((ino, format == Some(1)));
        }
        let mut dir_inodes = Vec::new();
        for (d, dir) in dirs.iter().enumerate() {
            let lines = section(format!("dir {d}"))?;
            let ino = inode_number(lines)
                .ok_or_else(|| broken(format!("{dir}: not found in the new filesystem")))?;
            let local = number(field(lines, "core.format")) == Some(1);
            let blocks = number(field(lines, "core.size"))
                .unwrap_or(0)
                .div_ceil(blocksize);
            if !local {
                for b in 0..blocks {
                    script += &format!("echo @@dblock {d} {b}\ninode {ino}\ndblock {b}\nprint\n");
                }
            }
            dir_inodes.push((ino, local, blocks));
        }
        let blocks = if script.is_empty() {
            BTreeMap::new()
        } else {
            sections(&xfs_db(image, &script, false)?)
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().map(str::to_string).collect::<Vec<_>>()))
                .collect()
        };

        // 4. The writes.
        let mut script = String::new();
        for (k, (path, attrs)) in self.xattrs.iter().enumerate() {
            let (ino, shortform) = attr_inodes[k];
            let leaf: Vec<&str>;
            let lines: &[&str] = if shortform {
                section(format!("attr {k}"))?
            } else {
                leaf = blocks
                    .get(&format!("leaf {k}"))
                    .map(|v| v.iter().map(String::as_str).collect())
                    .unwrap_or_default();
                &leaf
            };
            script += &format!("inode {ino}\n");
            if !shortform {
                script += "ablock 0\n";
            }
            for a in attrs {
                let f = attr_value_field(shortform, lines, a, path)?;
                script += &format!("write {f} {}\n", hex(&a.value));
            }
        }
        for (g, group) in self.links.iter().enumerate() {
            let ino = |i: usize| -> Result<u64, Error> {
                inode_number(section(format!("link {g} {i}"))?)
                    .ok_or_else(|| broken(format!("{}: not found in the new filesystem", group[i])))
            };
            let target = ino(0)?;
            for (i, name) in group.iter().enumerate().skip(1) {
                let placeholder = ino(i)?;
                let parent = match name.rsplit_once('/') {
                    Some(("", _)) | None => "/",
                    Some((p, _)) => p,
                };
                let d = dirs.iter().position(|x| x == parent).unwrap_or(0);
                let (dino, local, nblocks) = dir_inodes[d];
                let wanted = format!(" = {placeholder}");
                let find = |lines: &[&str]| {
                    lines.iter().find_map(|l| {
                        let key = l.strip_suffix(wanted.as_str())?;
                        key.contains(".inumber").then(|| key.to_string())
                    })
                };
                let place = if local {
                    find(section(format!("dir {d}"))?).map(|f| (f, None))
                } else {
                    (0..nblocks).find_map(|b| {
                        let lines: Vec<&str> = blocks
                            .get(&format!("dblock {d} {b}"))?
                            .iter()
                            .map(String::as_str)
                            .collect();
                        find(&lines).map(|f| (f, Some(b)))
                    })
                };
                let Some((f, block)) = place else {
                    return Err(broken(format!(
                        "{name}: its directory entry was not found in {parent}"
                    )));
                };
                if f.ends_with(".i4") && target > u64::from(u32::MAX) {
                    return Err(Error::Unsupported(format!(
                        "{name}: a hard link to inode {target} cannot be written into the short \
                         directory {parent}"
                    )));
                }
                script += &format!("inode {dino}\n");
                if let Some(b) = block {
                    script += &format!("dblock {b}\n");
                }
                script += &format!("write {f} {target}\ninode {placeholder}\nwrite core.mode 0\n");
            }
            script += &format!("inode {target}\nwrite core.nlinkv2 {}\n", group.len());
        }
        for (path, mode) in &self.sticky {
            script += &format!("path {path}\nwrite core.mode 0{:o}\n", 0o040000 | mode);
        }
        for (f, filler) in self.fillers.iter().enumerate() {
            let ino = inode_number(section(format!("filler {f}"))?)
                .ok_or_else(|| broken(format!("{filler}: not found in the new filesystem")))?;
            script += &format!("inode {ino}\nwrite core.mode 0\n");
        }
        xfs_db(image, &script, true)?;
        // 5. The placeholders' inodes, now unused, freed in the inode btrees and counts, and
        // the fillers' entries, which point at freed inodes, dropped.
        if !self.links.is_empty() || !self.fillers.is_empty() {
            crate::run(
                Command::new("xfs_repair").arg(image),
                "xfs_repair",
                "xfsprogs",
            )?;
        }
        Ok(())
    }
}
