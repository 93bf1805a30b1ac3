//! Prototype files for `mkfs.xfs -p`: a directory tree described as mkfs.xfs reads it (type,
//! set-id bits and permissions, owner, group, then the source file, link target or device
//! numbers; `$` closes a directory).
//!
//! xfsprogs 6.1's parser (`getstr` in mkfs/proto.c) splits tokens at spaces, tabs and newlines,
//! takes a token that starts with `:` as a comment to the end of the line, and a name `$` as the
//! end of its directory; it has no quoting. An entry whose name it cannot read is made under a
//! placeholder name of the same length, unique in its directory, and renamed afterwards (see
//! below); so is a symlink target; a file whose path in the staging tree it cannot read is
//! given to mkfs.xfs through a symlink of a plain name in a scratch directory beside the
//! prototype, mkfs.xfs's working directory.
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
//!   for the freed placeholders;
//! - names and symlink targets the parser cannot read, last (xfs_db's `path` cannot name them
//!   either): the real bytes written over the placeholder's, which have the same length, so
//!   nothing moves. A shortform directory (in its inode) keeps no hashes; a one-block directory
//!   keeps its entries' name hashes in the same block, sorted, and its verifier refuses the
//!   block until they match: kiln writes the new name's hash (`xfs_da_hashname`) and the
//!   re-sorted hash table with it (`write -d`, then a verified write of the block). A larger
//!   directory keeps its hashes in leaf blocks, which `xfs_repair` rebuilds from the entries
//!   ("rebuilding directory inode"). An inline symlink's target is written in the inode; a
//!   target too long for the inode is refused (mkfs.xfs 6.1 writes such a symlink's block
//!   without its header, and `xfs_repair` removes it).
//!
//! A directory small enough to be kept in its inode (shortform) but too big to leave room for
//! its first attribute would have to become a directory block when the attribute is added;
//! xfs_db 6.1's `attr_set` crashes doing that (a SELinux-labelled `/etc/systemd/system`). Such
//! a directory gets a filler entry in the prototype, with a long name, so that mkfs.xfs makes
//! it a directory block from the start; the filler's inode is freed as a placeholder's is, and
//! `xfs_repair` drops the entry that points at it.

use crate::Error;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
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
    /// Entries made under a placeholder name, renamed at the end.
    renames: Vec<Rename>,
    /// Symlinks made with a placeholder target: (path, real target).
    targets: Vec<(String, Vec<u8>)>,
    /// The scratch directory of symlinks to staged files whose paths the format cannot hold,
    /// if any: mkfs.xfs must run in it.
    sources: Option<PathBuf>,
}

/// An entry of the directory `dir` made as `placeholder` (as long as `name`, unique in `dir`).
struct Rename {
    dir: String,
    placeholder: String,
    name: Vec<u8>,
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

/// Whether `bytes` can be a token of the prototype file and a word of an xfs_db command as
/// they are: UTF-8 (the prototype is text), no whitespace or control characters (both split
/// at whitespace), not starting with `:` (a comment) and not `$` (the end of a directory).
fn plain(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
        && !bytes.is_empty()
        && !bytes.iter().any(|&b| b == b' ' || b.is_ascii_control())
        && bytes[0] != b':'
        && bytes != b"$"
}

/// `bytes` with every byte that is not a letter, digit, `.`, `-`, `_` or `+` made `_`: a plain
/// token of the same length.
fn sanitized(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'+' => b,
            _ => b'_',
        })
        .collect()
}

/// A plain name as long as `name` and not in `taken` (which it joins): `name` sanitized, then
/// with its end replaced by a counter. `None` if every such name is taken (a one-byte name in
/// a directory of more than 60 one-byte names).
fn placeholder(name: &[u8], taken: &mut HashSet<Vec<u8>>) -> Option<String> {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let base = sanitized(name);
    let mut candidate = base.clone();
    for k in 0u64.. {
        if !taken.contains(&candidate) && candidate != b"." && candidate != b".." {
            taken.insert(candidate.clone());
            return String::from_utf8(candidate).ok();
        }
        let (mut digits, mut x) = (Vec::new(), k);
        loop {
            digits.push(DIGITS[(x % 62) as usize]);
            x /= 62;
            if x == 0 {
                break;
            }
        }
        if digits.len() > base.len() {
            return None;
        }
        candidate = base.clone();
        let tail = candidate.len() - digits.len();
        for (i, d) in digits.iter().rev().enumerate() {
            candidate[tail + i] = *d;
        }
    }
    None
}

/// xfs's hash of a directory entry's name (`xfs_da_hashname`), which directory blocks keep
/// their entries sorted by.
fn da_hashname(name: &[u8]) -> u32 {
    let mut hash = 0u32;
    let mut chunks = name.chunks_exact(4);
    for c in chunks.by_ref() {
        hash = (u32::from(c[0]) << 21)
            ^ (u32::from(c[1]) << 14)
            ^ (u32::from(c[2]) << 7)
            ^ u32::from(c[3])
            ^ hash.rotate_left(28);
    }
    match *chunks.remainder() {
        [a, b, c] => {
            (u32::from(a) << 14) ^ (u32::from(b) << 7) ^ u32::from(c) ^ hash.rotate_left(21)
        }
        [a, b] => (u32::from(a) << 7) ^ u32::from(b) ^ hash.rotate_left(14),
        [a] => u32::from(a) ^ hash.rotate_left(7),
        _ => hash,
    }
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
    renames: Vec<Rename>,
    targets: Vec<(String, Vec<u8>)>,
    /// Where symlinks to staged files with paths the format cannot hold go, and how many.
    sources: PathBuf,
    aliases: usize,
    /// (device, inode) of files with several names → their group in `links`.
    seen: HashMap<(u64, u64), usize>,
}

impl Walker {
    /// How the prototype names the staged file `path`: its path, or a symlink to it in the
    /// scratch directory (relative: mkfs.xfs runs there) if the format cannot hold its path.
    fn source(&mut self, path: &Path) -> Result<String, Error> {
        if let Some(s) = path.to_str().filter(|s| plain(s.as_bytes())) {
            return Ok(s.to_string());
        }
        if self.aliases == 0 {
            // A previous run's, if it was interrupted: kiln's own scratch name.
            let _ = std::fs::remove_dir_all(&self.sources);
            std::fs::create_dir(&self.sources).map_err(io(&self.sources))?;
        }
        let alias = format!("{}", self.aliases);
        let link = self.sources.join(&alias);
        std::os::unix::fs::symlink(path, &link).map_err(io(&link))?;
        self.aliases += 1;
        Ok(alias)
    }

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
        let mut taken: HashSet<Vec<u8>> = entries
            .iter()
            .map(|e| e.file_name().as_bytes().to_vec())
            .collect();
        let mut names: Vec<usize> = Vec::new();
        for e in entries {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            let (mode, owner) = (meta.mode(), format!("{} {}", meta.uid(), meta.gid()));
            let ft = meta.file_type();
            if ft.is_socket() {
                continue; // not kept in images (nothing can be listening)
            }
            let real = e.file_name().as_bytes().to_vec();
            let name = match std::str::from_utf8(&real) {
                Ok(n) if plain(&real) => n.to_string(),
                _ => {
                    let p = placeholder(&real, &mut taken).ok_or_else(|| {
                        Error::Unsupported(format!(
                            "{}: no placeholder name of its length is free in its directory \
                             (xfs is filled through a prototype file, which cannot hold this \
                             name); rename it or use ext4 for this partition",
                            path.display()
                        ))
                    })?;
                    let dir = if rel.is_empty() { "/" } else { rel };
                    self.renames.push(Rename {
                        dir: dir.to_string(),
                        placeholder: p.clone(),
                        name: real,
                    });
                    p
                }
            };
            let here = format!("{rel}/{name}");
            names.push(name.len());
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
            self.attrs(&path, &here)?;
            if ft.is_dir() {
                self.text += &format!("{name} {} {owner}\n", mode_token('d', mode));
                let own = self.first_attr_bytes(&here);
                self.describe(&path, &here, own)?;
                self.text += "$\n";
            } else if ft.is_file() {
                let source = self.source(&path)?;
                self.text += &format!("{name} {} {owner} {source}\n", mode_token('-', mode));
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(io(&path))?;
                let target = target.as_os_str().as_bytes();
                if target.len() as u64 > LITERAL_AREA {
                    return Err(Error::Unsupported(format!(
                        "{}: its target is {} bytes long, more than an xfs inode holds ({}), \
                         and mkfs.xfs 6.1 writes such symlinks without their block header (a \
                         corrupt filesystem); shorten the target or use ext4 for this partition",
                        path.display(),
                        target.len(),
                        LITERAL_AREA
                    )));
                }
                let target = match std::str::from_utf8(target) {
                    Ok(t) if plain(target) => t.to_string(),
                    _ => {
                        self.targets.push((here.clone(), target.to_vec()));
                        String::from_utf8(sanitized(target)).unwrap_or_default()
                    }
                };
                self.text += &format!("{name} {} {owner} {target}\n", mode_token('l', mode));
            } else if ft.is_block_device() || ft.is_char_device() {
                let t = if ft.is_block_device() { 'b' } else { 'c' };
                let rdev = meta.rdev();
                let (major, minor) = (libc_major(rdev), libc_minor(rdev));
                self.text += &format!("{name} {} {owner} {major} {minor}\n", mode_token(t, mode));
            } else if ft.is_fifo() {
                self.text += &format!("{name} {} {owner}\n", mode_token('p', mode));
            }
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

/// Describes `dir` into the prototype file `out` (and the scratch directory of symlinks beside
/// it, if needed: [`Proto::remove`] removes both).
pub fn write(dir: &Path, out: &Path) -> Result<Proto, Error> {
    let mut w = Walker {
        text: String::from("kiln\n0 0\n"),
        sticky: Vec::new(),
        xattrs: Vec::new(),
        links: Vec::new(),
        fillers: Vec::new(),
        renames: Vec::new(),
        targets: Vec::new(),
        sources: out.with_extension("xfs-sources"),
        aliases: 0,
        seen: HashMap::new(),
    };
    let sources = |w: &Walker| (w.aliases > 0).then(|| w.sources.clone());
    if let Err(e) = walk(&mut w, dir, out) {
        if let Some(s) = sources(&w) {
            let _ = std::fs::remove_dir_all(s);
        }
        return Err(e);
    }
    w.links.retain(|group| group.len() > 1);
    Ok(Proto {
        file: out.to_path_buf(),
        sources: sources(&w),
        sticky: w.sticky,
        xattrs: w.xattrs,
        links: w.links,
        fillers: w.fillers,
        renames: w.renames,
        targets: w.targets,
    })
}

fn walk(w: &mut Walker, dir: &Path, out: &Path) -> Result<(), Error> {
    // Absolute: mkfs.xfs may run in the scratch directory of symlinks.
    let dir = &std::path::absolute(dir).map_err(io(dir))?;
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
    std::fs::write(out, &w.text).map_err(io(out))
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
    /// cannot hold: sticky bits, extended attributes, hard links, and the names and symlink
    /// targets it was given placeholders for.
    pub fn finish(&self, image: &Path) -> Result<(), Error> {
        if self.sticky.is_empty()
            && self.xattrs.is_empty()
            && self.links.is_empty()
            && self.renames.is_empty()
            && self.targets.is_empty()
        {
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

        // 3. Attribute leaf blocks, where those are not in the inode, and the directories.
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
        let blocks = if script.is_empty() {
            BTreeMap::new()
        } else {
            sections(&xfs_db(image, &script, false)?)
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().map(str::to_string).collect::<Vec<_>>()))
                .collect()
        };
        let link_dirs = view_dirs(image, &dirs, blocksize)?;

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
                let dir = &link_dirs[d];
                let wanted = format!(" = {placeholder}");
                let place = dir.find(|l| {
                    let key = l.strip_suffix(wanted.as_str())?;
                    key.contains(".inumber").then(|| key.to_string())
                });
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
                script += &format!("inode {}\n", dir.ino);
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
        // 5. The real names and symlink targets (xfs_db's `path` cannot name them: last).
        let rebuild = self.rename(image, blocksize)?;
        // 6. The placeholders' inodes, now unused, freed in the inode btrees and counts, the
        // fillers' entries, which point at freed inodes, dropped, and the hashes of renamed
        // entries in leaf blocks rebuilt.
        if !self.links.is_empty() || !self.fillers.is_empty() || rebuild {
            crate::run(
                Command::new("xfs_repair").arg(image),
                "xfs_repair",
                "xfsprogs",
            )?;
        }
        Ok(())
    }
}

/// A directory as xfs_db shows it.
struct DirView {
    ino: u64,
    /// Shortform: its entries are in the inode, and `blocks` is what xfs_db prints of it.
    local: bool,
    /// What xfs_db prints of each directory block (`dblock N`), or of the inode.
    blocks: Vec<Vec<String>>,
}

impl DirView {
    /// The first of the lines that `pick` takes something from, and where it is: the directory
    /// block, `None` for the inode.
    fn find<T>(&self, pick: impl Fn(&str) -> Option<T>) -> Option<(T, Option<usize>)> {
        self.blocks.iter().enumerate().find_map(|(b, lines)| {
            let found = lines.iter().find_map(|l| pick(l))?;
            Some((found, (!self.local).then_some(b)))
        })
    }
}

/// The directories `dirs` (paths xfs_db can follow) as xfs_db shows them: their inodes, then
/// the blocks of those not kept in their inode.
fn view_dirs(image: &Path, dirs: &[String], blocksize: u64) -> Result<Vec<DirView>, Error> {
    if dirs.is_empty() {
        return Ok(Vec::new());
    }
    let mut script = String::new();
    for (d, dir) in dirs.iter().enumerate() {
        script += &format!("echo @@dir {d}\npath {dir}\ninode\nprint core.format core.size u3\n");
    }
    let out = xfs_db(image, &script, false)?;
    let info = sections(&out);
    let mut views = Vec::new();
    let mut script = String::new();
    for (d, dir) in dirs.iter().enumerate() {
        let lines = info.get(&format!("dir {d}")).cloned().unwrap_or_default();
        let ino = inode_number(&lines)
            .ok_or_else(|| broken(format!("{dir}: not found in the new filesystem")))?;
        let local = number(field(&lines, "core.format")) == Some(1);
        let mut blocks = Vec::new();
        if local {
            blocks.push(lines.iter().map(|l| l.to_string()).collect());
        } else {
            let n = number(field(&lines, "core.size"))
                .unwrap_or(0)
                .div_ceil(blocksize);
            for b in 0..n {
                script += &format!("echo @@dblock {d} {b}\ninode {ino}\ndblock {b}\nprint\n");
            }
        }
        views.push(DirView { ino, local, blocks });
    }
    if !script.is_empty() {
        let out = xfs_db(image, &script, false)?;
        let info = sections(&out);
        for (d, view) in views.iter_mut().enumerate().filter(|(_, v)| !v.local) {
            while let Some(lines) = info.get(&format!("dblock {d} {}", view.blocks.len())) {
                view.blocks
                    .push(lines.iter().map(|l| l.to_string()).collect());
            }
        }
    }
    Ok(views)
}

/// A number as xfs_db prints it: decimal, or hexadecimal with `0x`.
fn any_number(value: Option<&str>) -> Option<u64> {
    let v = value?.split_whitespace().next()?;
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

impl Proto {
    /// The directory mkfs.xfs must run in, if the prototype names files relative to it.
    pub fn workdir(&self) -> Option<&Path> {
        self.sources.as_deref()
    }

    /// Removes the prototype file and its scratch directory of symlinks.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.file);
        if let Some(s) = &self.sources {
            let _ = std::fs::remove_dir_all(s);
        }
    }

    /// Writes the real names and symlink targets over their placeholders (see the module's
    /// notes). Whether an entry of a directory with leaf blocks was renamed: its hashes are
    /// then for `xfs_repair` to rebuild.
    fn rename(&self, image: &Path, blocksize: u64) -> Result<bool, Error> {
        if self.renames.is_empty() && self.targets.is_empty() {
            return Ok(false);
        }
        let mut dirs: Vec<String> = Vec::new();
        for r in &self.renames {
            if !dirs.contains(&r.dir) {
                dirs.push(r.dir.clone());
            }
        }
        let views = view_dirs(image, &dirs, blocksize)?;
        let mut script = String::new();
        let mut rebuild = false;
        for (dir, view) in dirs.iter().zip(&views) {
            // Each entry's fields (`u3.sfdir3.list[3]`, `bu[7]`, `du[2]`), by directory block.
            let mut by_block: BTreeMap<Option<usize>, Vec<(String, &Rename)>> = BTreeMap::new();
            for r in self.renames.iter().filter(|r| &r.dir == dir) {
                let wanted = format!(" = \"{}\"", r.placeholder);
                let place = view.find(|l| {
                    let key = l.strip_suffix(wanted.as_str())?;
                    key.strip_suffix(".name").map(str::to_string)
                });
                let Some((entry, block)) = place else {
                    return Err(broken(format!(
                        "{dir}: the entry {:?} (for {:?}) was not found",
                        r.placeholder,
                        String::from_utf8_lossy(&r.name)
                    )));
                };
                by_block.entry(block).or_default().push((entry, r));
            }
            for (block, entries) in by_block {
                script += &format!("inode {}\n", view.ino);
                let lines = match block {
                    Some(b) => {
                        script += &format!("dblock {b}\n");
                        &view.blocks[b]
                    }
                    None => &view.blocks[0],
                };
                let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
                if block.is_none() || !lines.iter().any(|l| l.starts_with("bhdr.")) {
                    // In the inode (no hashes), or a data block whose hashes are in leaf
                    // blocks, which xfs_repair rebuilds.
                    for (entry, r) in &entries {
                        script += &format!("write {entry}.name {}\n", hex(&r.name));
                    }
                    rebuild |= block.is_some();
                    continue;
                }
                // A one-block directory: its hash table, sorted, written with the names; the
                // block verifier refuses each write alone, and sees the last.
                let mut leaf: Vec<(u64, u64)> = Vec::new();
                while let (Some(hash), Some(address)) = (
                    any_number(field(&lines, &format!("bleaf[{}].hashval", leaf.len()))),
                    any_number(field(&lines, &format!("bleaf[{}].address", leaf.len()))),
                ) {
                    leaf.push((hash, address));
                }
                let before = leaf.clone();
                for (entry, r) in &entries {
                    let tag = any_number(field(&lines, &format!("{entry}.tag")));
                    // The hash table addresses entries in 8-byte units of the block.
                    let slot = tag.and_then(|t| leaf.iter_mut().find(|e| e.1 == t / 8));
                    let Some(slot) = slot else {
                        return Err(broken(format!(
                            "{dir}: no hash of the entry {entry} in directory block {block:?}"
                        )));
                    };
                    slot.0 = u64::from(da_hashname(&r.name));
                    script += &format!("write -d {entry}.name {}\n", hex(&r.name));
                }
                leaf.sort_by_key(|e| e.0);
                for (i, (now, was)) in leaf.iter().zip(&before).enumerate() {
                    if now != was {
                        script += &format!(
                            "write -d bleaf[{i}].hashval {}\nwrite -d bleaf[{i}].address {}\n",
                            now.0, now.1
                        );
                    }
                }
                script += &format!("write bhdr.hdr.owner {}\n", view.ino);
            }
        }
        if !self.targets.is_empty() {
            let mut read = String::new();
            for (t, (link, _)) in self.targets.iter().enumerate() {
                read += &format!(
                    "echo @@target {t}\npath {link}\ninode\nprint core.format core.size\n"
                );
            }
            let out = xfs_db(image, &read, false)?;
            let info = sections(&out);
            for (t, (link, target)) in self.targets.iter().enumerate() {
                let lines = info
                    .get(&format!("target {t}"))
                    .cloned()
                    .unwrap_or_default();
                let ino = inode_number(&lines)
                    .ok_or_else(|| broken(format!("{link}: not found in the new filesystem")))?;
                if number(field(&lines, "core.format")) != Some(1)
                    || number(field(&lines, "core.size")) != Some(target.len() as u64)
                {
                    return Err(broken(format!(
                        "{link}: the symlink's target is not in its inode: {}",
                        lines.join(" ")
                    )));
                }
                script += &format!("inode {ino}\nwrite u3.symlink {}\n", hex(target));
            }
        }
        xfs_db(image, &script, true)?;
        Ok(rebuild)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes as xfs_db's `hash` and `ls` show them.
    #[test]
    fn da_hashname_is_xfs_hash() {
        assert_eq!(da_hashname(b"."), 0x2e);
        assert_eq!(da_hashname(b".."), 0x172e);
        assert_eq!(da_hashname(b"file1"), 0x6d3b32b7);
        assert_eq!(da_hashname(b"a\tb:c"), 0x11389d65);
        assert_eq!(da_hashname(b"longer-file-name-number-1"), 0x27da91ac);
    }

    /// What xfsprogs 6.1's `getstr` splits or skips, and what xfs_db's commands split.
    #[test]
    fn plain_tokens() {
        let plain_or_not: [(&[u8], bool); 15] = [
            (b"a", true),
            (b"a:b", true),
            (b"a$", true),
            (b"$$", true),
            (b"caf\xc3\xa9", true),
            (b"q\"x'\\#;", true),
            (b"", false),
            (b"a b", false),
            (b"a\tb", false),
            (b"a\nb", false),
            (b"a\rb", false),
            (b":a", false),
            (b"$", false),
            (b"caf\xe9", false),
            (b"\x7f", false),
        ];
        for (bytes, want) in plain_or_not {
            assert_eq!(plain(bytes), want, "{bytes:?}");
        }
    }

    /// Placeholders: plain, as long as the name, unique, a counter when the plain form is
    /// taken, none when every name of that length is.
    #[test]
    fn placeholders() {
        let mut taken: HashSet<Vec<u8>> = [b"a b".to_vec(), b"a_b".to_vec()].into();
        assert_eq!(placeholder(b"a b", &mut taken).as_deref(), Some("a_0"));
        assert_eq!(placeholder(b"a\tb", &mut taken).as_deref(), Some("a_1"));
        assert_eq!(placeholder(b":x", &mut taken).as_deref(), Some("_x"));
        assert_eq!(placeholder(b"$", &mut taken).as_deref(), Some("_"));
        assert_eq!(
            placeholder("caf\u{e9} x".as_bytes(), &mut taken).as_deref(),
            Some("caf___x")
        );
        // Every one-byte name taken (the counter's 62 and `_`): none left.
        let mut full: HashSet<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        assert_eq!(placeholder(b" ", &mut full), None);
    }
}
