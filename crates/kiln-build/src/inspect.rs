//! Looking into a built image without mounting it: its format, partition table, the
//! filesystem on each partition, files listed or read (debugfs for ext2/3/4, mtools for FAT),
//! and the installed packages (the image's rpmdb read with the host's rpm). A VHD, VHDX or
//! QCOW2 image is first read into a sparse raw copy in a temporary folder.

use kiln_formats::files::TempDir;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why an image could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Open(#[from] kiln_formats::image::InputError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    NoSuch(String),
    #[error("{tool} is not installed: install the {package} package")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("{tool} failed: {output}")]
    Tool { tool: &'static str, output: String },
}

/// One partition and what is on it.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub number: u32,
    pub start: u64,
    pub size: u64,
    pub kind: String,
    pub name: String,
    /// `ext4`, `ext2/3`, `xfs`, `vfat`, `swap`, `luks`, or none recognised.
    pub filesystem: Option<&'static str>,
}

/// What an image holds.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub image: PathBuf,
    pub format: String,
    pub virtual_size: u64,
    /// `gpt`, `mbr`, or none (a filesystem or nothing at offset 0).
    pub table: Option<&'static str>,
    pub partitions: Vec<PartitionInfo>,
}

impl Inspected {
    /// As one JSON document (`kiln inspect --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let parts: Vec<_> = self
            .partitions
            .iter()
            .map(|p| {
                serde_json::json!({
                    "number": p.number, "start": p.start, "size": p.size, "type": p.kind,
                    "name": p.name, "filesystem": p.filesystem,
                })
            })
            .collect();
        serde_json::json!({
            "image": self.image, "format": self.format, "virtual_size": self.virtual_size,
            "table": self.table, "partitions": parts,
        })
    }
}

/// An image opened for inspection.
pub struct Image {
    raw: PathBuf,
    _copy: Option<TempDir>,
    info: Inspected,
}

/// The filesystem whose signature starts `head` (the first 8 KiB of a partition).
fn filesystem(head: &[u8]) -> Option<&'static str> {
    let at = |o: usize, sig: &[u8]| head.get(o..o + sig.len()) == Some(sig);
    if at(1080, &[0x53, 0xef]) {
        // The ext4 feature "extents" (incompat 0x40) tells ext4 from ext2/3.
        let incompat = head
            .get(1120..1124)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")));
        return Some(if incompat.is_some_and(|f| f & 0x40 != 0) {
            "ext4"
        } else {
            "ext2/3"
        });
    }
    if at(0, b"XFSB") {
        Some("xfs")
    } else if at(0, b"LUKS\xba\xbe") {
        Some("luks")
    } else if at(4086, b"SWAPSPACE2") {
        Some("swap")
    } else if at(0x52, b"FAT32") || at(0x36, b"FAT1") {
        Some("vfat")
    } else {
        None
    }
}

fn run(
    tool: &'static str,
    package: &'static str,
    cmd: &mut Command,
) -> Result<Vec<u8>, InspectError> {
    let out = cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => InspectError::MissingTool { tool, package },
        _ => InspectError::Tool {
            tool,
            output: e.to_string(),
        },
    })?;
    if !out.status.success() {
        return Err(InspectError::Tool {
            tool,
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

impl Image {
    /// Opens `path` (raw, VHD, VHDX or QCOW2) and reads its table and filesystems.
    pub fn open(path: &Path) -> Result<Image, InspectError> {
        Image::open_inner(path, None)
    }

    /// Opens a sparse raw copy of `path` made at `copy` (a new file), which
    /// [`Image::replace_file`] may change: a throwaway copy for a test boot.
    pub fn open_copy(path: &Path, copy: &Path) -> Result<Image, InspectError> {
        Image::open_inner(path, Some(copy))
    }

    /// The raw disk this reads (the image itself, or its copy).
    pub fn raw(&self) -> &Path {
        &self.raw
    }

    fn open_inner(path: &Path, copy_to: Option<&Path>) -> Result<Image, InspectError> {
        let (input, kind) = kiln_formats::image::open(path)?;
        let io = |p: &Path| {
            let path = p.to_path_buf();
            move |source| InspectError::Io { path, source }
        };
        let raw_copy = |raw: &Path| -> Result<(), InspectError> {
            let f = std::fs::File::create_new(raw).map_err(io(raw))?;
            f.set_len(input.len()).map_err(io(raw))?;
            input
                .for_each_data_run(4096, |offset, data| f.write_all_at(data, offset))
                .map_err(io(path))
        };
        let (raw, copy) = if let Some(raw) = copy_to {
            raw_copy(raw)?;
            (raw.to_path_buf(), None)
        } else if kind == kiln_formats::probe::Kind::Raw {
            (path.to_path_buf(), None)
        } else {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            let dir = TempDir::create(&parent.unwrap_or(Path::new(".")).join("inspect"))
                .map_err(io(path))?;
            let raw = dir.path().join("disk.raw");
            raw_copy(&raw)?;
            (raw, Some(dir))
        };
        let file = std::fs::File::open(&raw).map_err(io(&raw))?;
        let len = input.len();
        let mut read = |o: u64, b: &mut [u8]| file.read_exact_at(b, o);
        let table = kiln_disk::read::table(len, &mut read).map_err(io(path))?;
        let mut partitions = Vec::new();
        for p in table.iter().flat_map(|t| &t.partitions) {
            let mut head = vec![0u8; 8192.min(p.size) as usize];
            let fs = match file.read_exact_at(&mut head, p.start) {
                Ok(()) => filesystem(&head),
                Err(_) => None,
            };
            partitions.push(PartitionInfo {
                number: p.number,
                start: p.start,
                size: p.size,
                kind: p.kind.clone(),
                name: p.name.clone(),
                filesystem: fs,
            });
        }
        let info = Inspected {
            image: path.to_path_buf(),
            format: kind.name().to_string(),
            virtual_size: len,
            table: table.map(|t| t.scheme),
            partitions,
        };
        Ok(Image {
            raw,
            _copy: copy,
            info,
        })
    }

    pub fn info(&self) -> &Inspected {
        &self.info
    }

    /// Partition `number`, or (none given) the largest ext or xfs partition — the root, as
    /// images are usually laid out.
    pub fn partition(&self, number: Option<u32>) -> Result<&PartitionInfo, InspectError> {
        let parts = &self.info.partitions;
        match number {
            Some(n) => parts
                .iter()
                .find(|p| p.number == n)
                .ok_or_else(|| InspectError::NoSuch(format!("the image has no partition {n}"))),
            None => parts
                .iter()
                .filter(|p| matches!(p.filesystem, Some("ext4" | "ext2/3" | "xfs")))
                .max_by_key(|p| p.size)
                .ok_or_else(|| {
                    InspectError::NoSuch(
                        "the image has no ext or xfs partition: give --partition N".into(),
                    )
                }),
        }
    }

    fn debugfs(&self, p: &PartitionInfo, request: &str) -> Result<Vec<u8>, InspectError> {
        run(
            "debugfs",
            "e2fsprogs",
            Command::new("debugfs").arg("-R").arg(request).arg(format!(
                "{}?offset={}",
                self.raw.display(),
                p.start
            )),
        )
    }

    fn fat_image(&self, p: &PartitionInfo) -> String {
        format!("{}@@{}", self.raw.display(), p.start)
    }

    /// `ls -l` of `path` in the partition.
    pub fn list(&self, number: Option<u32>, path: &str) -> Result<String, InspectError> {
        let p = self.partition(number)?;
        let out = match p.filesystem {
            Some("ext4" | "ext2/3") => self.debugfs(p, &format!("ls -l {path}"))?,
            Some("vfat") => run(
                "mdir",
                "mtools",
                Command::new("mdir")
                    .args(["-i", &self.fat_image(p)])
                    .arg(format!("::{path}"))
                    .env("MTOOLS_SKIP_CHECK", "1"),
            )?,
            other => return Err(unreadable(p, other)),
        };
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The contents of the file `path` in the partition.
    pub fn cat(&self, number: Option<u32>, path: &str) -> Result<Vec<u8>, InspectError> {
        let p = self.partition(number)?;
        match p.filesystem {
            Some("ext4" | "ext2/3") => {
                // debugfs prints nothing for a missing file; ask for its inode first.
                let stat = self.debugfs(p, &format!("stat {path}"))?;
                if stat.is_empty() {
                    return Err(InspectError::NoSuch(format!(
                        "{path} is not in partition {}",
                        p.number
                    )));
                }
                self.debugfs(p, &format!("cat {path}"))
            }
            Some("vfat") => run(
                "mtype",
                "mtools",
                Command::new("mtype")
                    .args(["-i", &self.fat_image(p)])
                    .arg(format!("::{path}"))
                    .env("MTOOLS_SKIP_CHECK", "1"),
            ),
            other => Err(unreadable(p, other)),
        }
    }

    /// The ext partition that holds `path` (the first of `candidates` found), or an error
    /// naming what was looked for.
    pub fn find_file<'p>(
        &self,
        candidates: &[&'p str],
    ) -> Result<(&PartitionInfo, &'p str), InspectError> {
        for p in &self.info.partitions {
            if !matches!(p.filesystem, Some("ext4" | "ext2/3")) {
                continue;
            }
            for path in candidates {
                if !self.debugfs(p, &format!("stat {path}"))?.is_empty() {
                    return Ok((p, path));
                }
            }
        }
        Err(InspectError::NoSuch(format!(
            "no ext partition of {} holds {}",
            self.info.image.display(),
            candidates.join(" or ")
        )))
    }

    /// Replaces the regular file `path` in ext partition `p` of a copy made by
    /// [`Image::open_copy`] with `contents`, keeping its mode, owner and SELinux label.
    pub fn replace_file(
        &self,
        p: &PartitionInfo,
        path: &str,
        contents: &[u8],
    ) -> Result<(), InspectError> {
        if !matches!(p.filesystem, Some("ext4" | "ext2/3")) {
            return Err(unreadable(p, p.filesystem));
        }
        if path.chars().any(|c| c.is_whitespace() || c == '"') {
            return Err(InspectError::NoSuch(format!("{path}: not a plain path")));
        }
        let stat = String::from_utf8_lossy(&self.debugfs(p, &format!("stat {path}"))?).into_owned();
        let field = |name: &str| {
            stat.split_whitespace()
                .skip_while(|w| *w != name)
                .nth(1)
                .map(str::to_string)
        };
        let (Some(mode), Some(uid), Some(gid)) = (field("Mode:"), field("User:"), field("Group:"))
        else {
            return Err(InspectError::NoSuch(format!(
                "{path} is not in partition {}",
                p.number
            )));
        };
        let perms = u32::from_str_radix(&mode, 8).ok().filter(|m| *m <= 0o7777);
        let (Some(perms), true) = (perms, stat.contains("Type: regular")) else {
            return Err(InspectError::NoSuch(format!(
                "{path} is not a regular file"
            )));
        };
        let dir = tempfile::tempdir().map_err(|source| InspectError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let new = dir.path().join("new");
        let label = dir.path().join("label");
        std::fs::write(&new, contents).map_err(|source| InspectError::Io {
            path: new.clone(),
            source,
        })?;
        self.debugfs(
            p,
            &format!("ea_get -f {} {path} security.selinux", label.display()),
        )?;
        let mut script = format!(
            "rm {path}\nwrite {} {path}\nsif {path} mode 0{:o}\nsif {path} uid {uid}\nsif {path} gid {gid}\n",
            new.display(),
            0o100000 | perms
        );
        if label.is_file() {
            script += &format!("ea_set -f {} {path} security.selinux\n", label.display());
        }
        let commands = dir.path().join("commands");
        std::fs::write(&commands, script).map_err(|source| InspectError::Io {
            path: commands.clone(),
            source,
        })?;
        run(
            "debugfs",
            "e2fsprogs",
            Command::new("debugfs")
                .arg("-w")
                .arg("-f")
                .arg(&commands)
                .arg(format!("{}?offset={}", self.raw.display(), p.start)),
        )?;
        Ok(())
    }

    /// The packages installed in the image (`rpm -qa` over its rpmdb), sorted.
    pub fn packages(&self, number: Option<u32>) -> Result<Vec<String>, InspectError> {
        let p = self.partition(number)?;
        if !matches!(p.filesystem, Some("ext4" | "ext2/3")) {
            return Err(unreadable(p, p.filesystem));
        }
        let dir = tempfile::tempdir().map_err(|source| InspectError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let db = dir.path().join("rpmdb.sqlite");
        self.debugfs(
            p,
            &format!("dump /var/lib/rpm/rpmdb.sqlite {}", db.display()),
        )?;
        if !db.is_file() {
            return Err(InspectError::NoSuch(format!(
                "partition {} has no /var/lib/rpm/rpmdb.sqlite (RemoveRpmDb, or not the root)",
                p.number
            )));
        }
        let out = run(
            "rpm",
            "rpm",
            Command::new("rpm")
                .args(["--define", "_db_backend sqlite", "--dbpath"])
                .arg(dir.path())
                .args(["-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n"]),
        )?;
        let mut list: Vec<String> = String::from_utf8_lossy(&out)
            .lines()
            .map(String::from)
            .collect();
        list.sort();
        Ok(list)
    }
}

fn unreadable(p: &PartitionInfo, fs: Option<&str>) -> InspectError {
    InspectError::NoSuch(format!(
        "partition {} holds {}: kiln inspect reads files on ext2/3/4 and FAT",
        p.number,
        fs.unwrap_or("no filesystem kiln recognises")
    ))
}
