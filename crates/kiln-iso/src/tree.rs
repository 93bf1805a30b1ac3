//! The staged tree read into memory (metadata only), and the names each node gets in the ISO
//! 9660 and Joliet directories.

use crate::{io_err, Error};
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Longest ISO 9660 name (base + extension, as ECMA-119 level 2 counts it).
const ISO_FILE_CHARS: usize = 30;
/// Longest ISO 9660 directory name (mkisofs `-l`).
const ISO_DIR_CHARS: usize = 31;
/// Longest kept ISO 9660 extension.
const ISO_EXT_CHARS: usize = 8;
/// Longest Joliet name, in UCS-2 units.
const JOLIET_CHARS: usize = 64;

/// Where a file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    Path(PathBuf),
    /// The El Torito boot catalog, shown as a file when the caller names a path for it.
    Catalog,
}

/// The bytes of one file (hard links share one).
#[derive(Debug)]
pub(crate) struct Data {
    pub content: Content,
    pub size: u64,
    /// First logical block, set by the layout.
    pub lba: u32,
}

#[derive(Debug)]
pub(crate) enum Body {
    Dir {
        children: Vec<usize>,
    },
    File {
        data: usize,
    },
    Symlink(Vec<u8>),
    /// Character or block device (`rdev`), FIFO or socket: Rock Ridge mode (and PN) only.
    Special {
        rdev: u64,
    },
}

#[derive(Debug)]
pub(crate) struct Node {
    /// The real name (Rock Ridge NM); empty for the root.
    pub name: Vec<u8>,
    pub parent: usize,
    pub body: Body,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    /// ISO 9660 sort key (name, extension) and identifier (`NAME.EXT;1`, directories `NAME`).
    pub iso_key: (Vec<u8>, Vec<u8>),
    pub iso_id: Vec<u8>,
    /// Joliet name (UTF-16 units).
    pub joliet: Vec<u16>,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir { .. })
    }
}

/// The whole staged tree; node 0 is the root.
#[derive(Debug)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    pub data: Vec<Data>,
}

impl Tree {
    /// Reads the metadata of everything below `root` (symlinks are not followed), each directory
    /// in byte order of its names.
    pub fn scan(root: &Path) -> Result<Tree, Error> {
        let meta = std::fs::metadata(root).map_err(io_err("cannot read", root))?;
        if !meta.is_dir() {
            return Err(Error::NotADirectory(root.to_path_buf()));
        }
        let mut tree = Tree {
            nodes: vec![Node {
                name: Vec::new(),
                parent: 0,
                body: Body::Dir {
                    children: Vec::new(),
                },
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                nlink: 2,
                iso_key: (Vec::new(), Vec::new()),
                iso_id: vec![0],
                joliet: Vec::new(),
            }],
            data: Vec::new(),
        };
        let mut links: BTreeMap<(u64, u64), usize> = BTreeMap::new();
        let mut stack = vec![(0usize, root.to_path_buf())];
        while let Some((dir, path)) = stack.pop() {
            let mut entries = Vec::new();
            for entry in std::fs::read_dir(&path).map_err(io_err("cannot list", &path))? {
                let entry = entry.map_err(io_err("cannot list", &path))?;
                entries.push(entry.file_name());
            }
            entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let mut children = Vec::with_capacity(entries.len());
            for name in entries {
                let p = path.join(&name);
                let m = std::fs::symlink_metadata(&p).map_err(io_err("cannot read", &p))?;
                let ft = m.file_type();
                let body = if ft.is_dir() {
                    Body::Dir {
                        children: Vec::new(),
                    }
                } else if ft.is_file() {
                    let data = if m.nlink() > 1 {
                        *links.entry((m.dev(), m.ino())).or_insert_with(|| {
                            tree.data.push(Data {
                                content: Content::Path(p.clone()),
                                size: m.len(),
                                lba: 0,
                            });
                            tree.data.len() - 1
                        })
                    } else {
                        tree.data.push(Data {
                            content: Content::Path(p.clone()),
                            size: m.len(),
                            lba: 0,
                        });
                        tree.data.len() - 1
                    };
                    Body::File { data }
                } else if ft.is_symlink() {
                    let target = std::fs::read_link(&p).map_err(io_err("cannot read", &p))?;
                    Body::Symlink(target.as_os_str().as_bytes().to_vec())
                } else {
                    Body::Special { rdev: m.rdev() }
                };
                let index = tree.nodes.len();
                if matches!(body, Body::Dir { .. }) {
                    stack.push((index, p));
                }
                tree.nodes.push(Node {
                    name: name.as_bytes().to_vec(),
                    parent: dir,
                    body,
                    mode: m.mode(),
                    uid: m.uid(),
                    gid: m.gid(),
                    nlink: 1,
                    iso_key: (Vec::new(), Vec::new()),
                    iso_id: Vec::new(),
                    joliet: Vec::new(),
                });
                children.push(index);
            }
            tree.set_children(dir, children);
        }
        Ok(tree)
    }

    fn set_children(&mut self, dir: usize, list: Vec<usize>) {
        if let Body::Dir { children } = &mut self.nodes[dir].body {
            *children = list;
        }
    }

    pub fn children(&self, dir: usize) -> &[usize] {
        match &self.nodes[dir].body {
            Body::Dir { children } => children,
            _ => &[],
        }
    }

    /// The node at `path` (relative to the root, `/`-separated).
    pub fn lookup(&self, path: &str) -> Option<usize> {
        let mut at = 0;
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            at = *self
                .children(at)
                .iter()
                .find(|&&c| self.nodes[c].name == part.as_bytes())?;
        }
        Some(at)
    }

    /// Adds the boot catalog as a read-only file at `path`, whose directory must exist.
    pub fn add_catalog(&mut self, path: &str) -> Result<usize, Error> {
        let bad = |reason: &str| Error::Boot(format!("boot catalog path {path:?}: {reason}"));
        let (dir, name) = match path.trim_matches('/').rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", path.trim_matches('/')),
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(bad("not a file name"));
        }
        let parent = self
            .lookup(dir)
            .filter(|&d| self.nodes[d].is_dir())
            .ok_or_else(|| bad("its directory is not in the staged tree"))?;
        if self.lookup(path).is_some() {
            return Err(bad("a file of that name is already in the staged tree"));
        }
        self.data.push(Data {
            content: Content::Catalog,
            size: 2048,
            lba: 0,
        });
        let index = self.nodes.len();
        self.nodes.push(Node {
            name: name.as_bytes().to_vec(),
            parent,
            body: Body::File {
                data: self.data.len() - 1,
            },
            mode: 0o100444,
            uid: 0,
            gid: 0,
            nlink: 1,
            iso_key: (Vec::new(), Vec::new()),
            iso_id: Vec::new(),
            joliet: Vec::new(),
        });
        let mut list = self.children(parent).to_vec();
        let at = list.partition_point(|&c| self.nodes[c].name.as_slice() < name.as_bytes());
        list.insert(at, index);
        self.set_children(parent, list);
        Ok(index)
    }

    /// Link counts (directories: 2 + subdirectories; files: links within the tree) and the
    /// ISO 9660 and Joliet names, unique within each directory.
    pub fn finish(&mut self) {
        let mut file_links = vec![0u32; self.data.len()];
        for n in &self.nodes {
            if let Body::File { data } = n.body {
                file_links[data] += 1;
            }
        }
        for i in 0..self.nodes.len() {
            let kids = self.children(i).to_vec();
            let subdirs = kids.iter().filter(|&&c| self.nodes[c].is_dir()).count() as u32;
            if self.nodes[i].is_dir() {
                self.nodes[i].nlink = 2 + subdirs;
            } else if let Body::File { data } = self.nodes[i].body {
                self.nodes[i].nlink = file_links[data];
            }
            let mut iso_taken = HashSet::new();
            let mut joliet_taken = HashSet::new();
            for c in kids {
                let node = &self.nodes[c];
                let (key, id) = iso_name(&node.name, node.is_dir(), &mut iso_taken);
                let joliet = joliet_name(&node.name, &mut joliet_taken);
                let node = &mut self.nodes[c];
                node.iso_key = key;
                node.iso_id = id;
                node.joliet = joliet;
            }
        }
    }

    /// Source path of a node, for messages.
    pub fn display_path(&self, mut node: usize) -> String {
        let mut parts = Vec::new();
        while node != 0 {
            parts.push(OsStr::from_bytes(&self.nodes[node].name).to_string_lossy());
            node = self.nodes[node].parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }
}

fn d_chars(raw: &[u8]) -> Vec<u8> {
    raw.iter()
        .map(|&b| match b {
            b'a'..=b'z' => b.to_ascii_uppercase(),
            b'A'..=b'Z' | b'0'..=b'9' | b'_' => b,
            _ => b'_',
        })
        .collect()
}

/// `base` shortened to leave room for `_<n>`, with it.
fn with_counter(base: &[u8], max: usize, n: usize) -> Vec<u8> {
    let suffix = format!("_{n}");
    let keep = max.saturating_sub(suffix.len()).min(base.len());
    let mut out = base[..keep].to_vec();
    out.extend_from_slice(suffix.as_bytes());
    out
}

/// The ISO 9660 name of `raw`: d-characters, files `BASE.EXT;1` (base + extension ≤ 30,
/// extension ≤ 8), directories ≤ 31 without a dot; `_<n>` makes it unique among `taken`.
fn iso_name(
    raw: &[u8],
    dir: bool,
    taken: &mut HashSet<(Vec<u8>, Vec<u8>)>,
) -> ((Vec<u8>, Vec<u8>), Vec<u8>) {
    let (mut base, ext, max) = if dir {
        let mut b = d_chars(raw);
        b.truncate(ISO_DIR_CHARS);
        (b, Vec::new(), ISO_DIR_CHARS)
    } else {
        let (b, e) = match raw.iter().rposition(|&c| c == b'.') {
            Some(dot) if dot > 0 => (&raw[..dot], &raw[dot + 1..]),
            _ => (raw, &raw[..0]),
        };
        let mut e = d_chars(e);
        e.truncate(ISO_EXT_CHARS);
        let max = ISO_FILE_CHARS - e.len();
        let mut b = d_chars(b);
        b.truncate(max);
        (b, e, max)
    };
    if base.is_empty() && ext.is_empty() {
        base = b"_".to_vec();
    }
    let mut key = (base.clone(), ext.clone());
    let mut n = 1;
    while taken.contains(&key) {
        key.0 = with_counter(&base, max, n);
        n += 1;
    }
    taken.insert(key.clone());
    let mut id = key.0.clone();
    if !dir {
        id.push(b'.');
        id.extend_from_slice(&key.1);
        id.extend_from_slice(b";1");
    }
    (key, id)
}

/// The Joliet name of `raw`: UTF-16 of the name (bytes that are not UTF-8 become U+FFFD), the
/// characters Joliet forbids (`* / : ; ? \` and controls) as `_`, at most 64 units; `_<n>`
/// makes it unique among `taken`.
fn joliet_name(raw: &[u8], taken: &mut HashSet<Vec<u16>>) -> Vec<u16> {
    let text: String = String::from_utf8_lossy(raw)
        .chars()
        .map(|c| match c {
            '*' | '/' | ':' | ';' | '?' | '\\' => '_',
            c if (c as u32) < 0x20 => '_',
            c => c,
        })
        .collect();
    let mut units: Vec<u16> = text.encode_utf16().collect();
    cut_units(&mut units, JOLIET_CHARS);
    let mut name = units.clone();
    let mut n = 1;
    while taken.contains(&name) {
        let suffix: Vec<u16> = format!("_{n}").encode_utf16().collect();
        name = units.clone();
        cut_units(&mut name, JOLIET_CHARS - suffix.len());
        name.extend_from_slice(&suffix);
        n += 1;
    }
    taken.insert(name.clone());
    name
}

/// Truncates to `max` units without leaving half a surrogate pair.
fn cut_units(units: &mut Vec<u16>, max: usize) {
    if units.len() > max {
        units.truncate(max);
        if units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
            units.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_names() {
        let mut t = HashSet::new();
        assert_eq!(iso_name(b"grub.cfg", false, &mut t).1, b"GRUB.CFG;1");
        assert_eq!(iso_name(b"Grub.cfg", false, &mut t).1, b"GRUB_1.CFG;1");
        assert_eq!(iso_name(b".bashrc", false, &mut t).1, b"_BASHRC.;1");
        assert_eq!(
            iso_name(b"x86_64-linux.d", true, &mut t).1,
            b"X86_64_LINUX_D"
        );
        let long = iso_name(&[b'a'; 200], false, &mut t).1;
        assert_eq!(long.len(), 30 + 3);
        assert_eq!(iso_name(&[0xff, 0xfe], false, &mut t).1, b"__.;1");
    }

    #[test]
    fn joliet_names() {
        let mut t = HashSet::new();
        let long = "é".repeat(100);
        assert_eq!(joliet_name(long.as_bytes(), &mut t).len(), 64);
        let again = joliet_name(long.as_bytes(), &mut t);
        assert_eq!(again.len(), 64);
        assert_eq!(String::from_utf16_lossy(&again[60..]), "éé_1");
        assert_eq!(
            joliet_name(b"a:b", &mut t),
            "a_b".encode_utf16().collect::<Vec<_>>()
        );
    }
}
