//! The host programs a build runs, checked before any work: a missing one fails at once, naming
//! the program and the Debian package that has it (scripts/install-host-deps.sh installs them
//! all: `scripts/install-host-deps.sh build`).

use crate::error::{Error, ErrorKind};
use crate::event::Stage;
use kiln_config::model::{BootType, Config};
use std::path::{Path, PathBuf};

/// A host program and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
    /// What it is for (in the error message).
    pub purpose: &'static str,
}

const fn tool(program: &'static str, package: &'static str, purpose: &'static str) -> Tool {
    Tool {
        program,
        package,
        purpose,
    }
}

pub const RPM: Tool = tool("rpm", "rpm", "installs the packages");
pub const RPMKEYS: Tool = tool("rpmkeys", "rpm", "checks package signatures");
pub const MKE2FS: Tool = tool("mke2fs", "e2fsprogs", "makes ext2/3/4 filesystems");
pub const DEBUGFS: Tool = tool("debugfs", "e2fsprogs", "sets ext2/3/4 file times");
pub const MKFS_VFAT: Tool = tool("mkfs.vfat", "dosfstools", "makes FAT filesystems");
pub const MCOPY: Tool = tool("mcopy", "mtools", "fills FAT filesystems");
pub const MKFS_XFS: Tool = tool("mkfs.xfs", "xfsprogs", "makes xfs filesystems");
pub const XFS_DB: Tool = tool("xfs_db", "xfsprogs", "fixes up xfs filesystems");
pub const GRUB_MKIMAGE: Tool = tool(
    "grub-mkimage",
    "grub-common",
    "makes the legacy BIOS core image",
);
pub const RPM2CPIO: Tool = tool("rpm2cpio", "rpm", "unpacks grub2-pc's BIOS modules");
pub const RDIFF: Tool = tool("rdiff", "rdiff", "makes rdiff partition artifacts");
pub const MKSQUASHFS: Tool = tool("mksquashfs", "squashfs-tools", "makes squashfs artifacts");

/// The programs composing `config`'s image runs on the host (not in the image).
pub fn compose_tools(config: &Config) -> Vec<Tool> {
    let mut tools = vec![RPM];
    let Some(sc) = config.system_configs.first() else {
        return tools;
    };
    let disk_image = !config.disks.is_empty() && !sc.partition_settings.is_empty();
    if !disk_image {
        return tools;
    }
    for p in config.disks.iter().flat_map(|d| &d.partitions) {
        let more: &[Tool] = match p.fs_type.as_str() {
            "ext2" | "ext3" | "ext4" => &[MKE2FS, DEBUGFS],
            "fat32" | "fat16" | "vfat" => &[MKFS_VFAT, MCOPY],
            "xfs" => &[MKFS_XFS, XFS_DB],
            _ => &[],
        };
        tools.extend_from_slice(more);
    }
    if sc.boot_type == BootType::Legacy {
        tools.extend_from_slice(&[GRUB_MKIMAGE, RPM2CPIO]);
    }
    if sc
        .partition_settings
        .iter()
        .any(|s| !s.overlay_base_image.is_empty())
    {
        tools.push(DEBUGFS); // reads the base images
    }
    let rdiff = config
        .disks
        .iter()
        .flat_map(|d| &d.partitions)
        .flat_map(|p| &p.artifacts)
        .any(|a| a.ty == "rdiff");
    if rdiff {
        tools.push(RDIFF);
    }
    dedup(tools)
}

/// The programs making `config`'s artifacts runs on the host.
pub fn roast_tools(config: &Config) -> Vec<Tool> {
    let squashfs = config
        .disks
        .iter()
        .flat_map(|d| d.artifacts.iter().flatten())
        .any(|a| a.ty == "squashfs");
    if squashfs {
        vec![MKSQUASHFS]
    } else {
        Vec::new()
    }
}

fn dedup(mut tools: Vec<Tool>) -> Vec<Tool> {
    let mut seen = Vec::new();
    tools.retain(|t| {
        let new = !seen.contains(&t.program);
        seen.push(t.program);
        new
    });
    tools
}

/// Where `program` is found in PATH (as `Command::new` would find it).
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fails, naming every missing program and its package, unless all of `tools` are in PATH.
pub fn require(tools: &[Tool], stage: Stage) -> Result<(), Error> {
    let missing: Vec<&Tool> = tools.iter().filter(|t| find(t.program).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = missing
        .iter()
        .map(|t| {
            format!(
                "{} ({}; Debian package {})",
                t.program, t.purpose, t.package
            )
        })
        .collect();
    let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    packages.dedup();
    let mut e = Error::new(
        stage,
        ErrorKind::MissingTool,
        format!(
            "this build needs {} which {} not in PATH",
            names.join(", "),
            if missing.len() == 1 { "is" } else { "are" }
        ),
    )
    .help(format!(
        "install {} (apt-get install {}, or scripts/install-host-deps.sh build)",
        packages.join(" "),
        packages.join(" ")
    ));
    e.package = Some(packages.join(" "));
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_named_with_its_package() {
        let t = Tool {
            program: "kiln-no-such-program",
            package: "kiln-no-such-package",
            purpose: "tests",
        };
        let e = require(&[RPM, t], Stage::Compose).unwrap_err();
        assert!(e.message.contains("kiln-no-such-program"), "{e}");
        assert!(
            e.help.as_deref().unwrap().contains("kiln-no-such-package"),
            "{e:?}"
        );
        assert_eq!(e.kind, ErrorKind::MissingTool);
    }

    /// `make image` runs `scripts/install-host-deps.sh build` first: that group must hold the
    /// package of every program a build of a demo or upstream config checks for (a fresh
    /// machine once lacked mkfs.vfat for demo-efi's ESP).
    #[test]
    fn the_build_host_packages_cover_every_configs_programs() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let script = std::fs::read_to_string(repo.join("scripts/install-host-deps.sh")).unwrap();
        let group: Vec<&str> = script
            .lines()
            .find_map(|l| l.trim().strip_prefix("[build]=\""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("install-host-deps.sh has a build group")
            .split_whitespace()
            .collect();
        let mut configs = 0;
        for dir in ["imageconfigs", "tests/azl-compat/imageconfigs"] {
            for entry in std::fs::read_dir(repo.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let Ok((loaded, _)) = kiln_config::load(&path, None) else {
                    continue;
                };
                configs += 1;
                let mut tools = compose_tools(&loaded.config);
                tools.extend(roast_tools(&loaded.config));
                for t in tools {
                    assert!(
                        group.contains(&t.package),
                        "{}: {} needs the Debian package {}, which install-host-deps.sh's build \
                         group lacks",
                        path.display(),
                        t.program,
                        t.package
                    );
                }
            }
        }
        assert!(configs > 10, "{configs} configs read");
    }
}
