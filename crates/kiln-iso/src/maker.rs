//! isomaker: upstream's installer ISO (SPEC §5.2) staged from a config, the installer initrd and
//! a fetched package repository, then written by [`crate::write_iso`].
//!
//! The staged tree is upstream's: `boot/grub2/{grub.cfg,efiboot.img}`, `efi/boot/{bootx64.efi,
//! grubx64.efi}`, `isolinux/{isolinux.bin,isolinux.cfg,ldlinux.c32,vmlinuz,initrd.img}` (and
//! `boot.cat`, the El Torito catalog), `RPMS/` and `config/` with every file the config refers
//! to and the config itself, its paths rewritten. kiln adds Joliet, a hybrid MBR + GPT (the same
//! file boots from a USB stick) and a copy of `grub.cfg` inside `efiboot.img` (GRUB started from
//! the USB stick's EFI partition finds its configuration there).

use crate::{io_err, BiosBoot, Error, Hybrid, Identity, IsoOptions, IsoReport};
use serde_json::{Map, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// upstream's `iso_root_static_files/boot/grub2/grub.cfg`.
pub const GRUB_CFG: &str = r#"set timeout=0

# The use of mariner.media=CDROM is a workaround that our installer does not require
# but it is observed to be needed to boot on some hardware/SoCs.
menuentry "Azure Linux" {
    search --label CDROM --set root
    linux /isolinux/vmlinuz root=/dev/ram0 mariner.media=CDROM lockdown=integrity sysctl.kernel.unprivileged_bpf_disabled=1 console=tty0 console=ttyS0,115200n8
    initrd /isolinux/initrd.img
}
"#;

/// upstream's amd64 `isolinux.cfg`.
pub const ISOLINUX_CFG: &str = "# D-I config version 2.0\ntotaltimeout 1\n\ndefault Installer\nlabel Installer\n\tkernel vmlinuz\n\tappend initrd=initrd.img root=/dev/ram0 console=tty0 console=ttyS0,115200n8\n";

/// The volume id the installer mounts the media by (`mount -L CDROM`).
pub const VOLUME_ID: &str = "CDROM";

/// The legacy BIOS boot files (upstream ships them in its resources; kiln takes the host's
/// syslinux: Debian's `isolinux` and `syslinux-common`).
#[derive(Debug, Clone)]
pub struct BiosFiles {
    /// `isolinux.bin` (Debian: /usr/lib/ISOLINUX/isolinux.bin).
    pub isolinux_bin: PathBuf,
    /// `ldlinux.c32` (Debian: /usr/lib/syslinux/modules/bios/ldlinux.c32).
    pub ldlinux_c32: PathBuf,
    /// The isohybrid MBR code (Debian: /usr/lib/ISOLINUX/isohdpfx.bin), so the image boots
    /// under BIOS from a USB stick too.
    pub isohybrid_mbr: Option<PathBuf>,
}

/// What to make the ISO of.
#[derive(Debug, Clone)]
pub struct MakerRequest {
    /// The image config as written (its JSON is copied with the paths rewritten).
    pub config: PathBuf,
    /// Where the config's relative paths resolve.
    pub base_dir: PathBuf,
    /// The installer initrd (gzip'd cpio: upstream's `iso-initrd.img`); the kernel and the EFI
    /// loaders are taken from it.
    pub initrd: PathBuf,
    /// The fetched package repository (RPMs and `repodata/`): the ISO's `RPMS/`.
    pub iso_repo: PathBuf,
    /// `config/unattended_config.json` instead of `config/attended_config.json`.
    pub unattended: bool,
    /// Written to `config/repo-snapshot-time.txt`.
    pub repo_snapshot_time: Option<u64>,
    /// Without them the ISO boots under UEFI only.
    pub bios: Option<BiosFiles>,
    /// Dates and ids (SOURCE_DATE_EPOCH).
    pub identity: Identity,
    /// Added to the installer kernel's command line in `grub.cfg` and `isolinux.cfg` (kiln's
    /// addition, e.g. `kiln.target-disk=smallest`); empty: upstream's lines.
    pub kernel_args: Vec<String>,
}

/// `<config name>[-<release-version><image-tag>].iso`: upstream puts no hyphen before the tag
/// (unlike roast).
pub fn iso_file_name(config: &Path, release_version: &str, image_tag: &str) -> String {
    let name = config
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    if release_version.is_empty() && image_tag.is_empty() {
        format!("{name}.iso")
    } else {
        format!("{name}-{release_version}{image_tag}.iso")
    }
}

/// The extra kernel arguments as they go after upstream's: each one preceded by a space. An
/// argument with a line break would end the boot entry's line (and isolinux reads no quotes
/// across lines): refused.
fn kernel_args(args: &[String]) -> Result<String, Error> {
    let mut out = String::new();
    for a in args {
        if a.is_empty() || a.contains(['\n', '\r']) {
            return Err(Error::KernelArg(format!(
                "the kernel argument {a:?} is empty or has a line break"
            )));
        }
        out.push(' ');
        out.push_str(a);
    }
    Ok(out)
}

/// What staging made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The config files copied into `config/` (the config itself not counted).
    pub config_files: usize,
    /// Files copied into `RPMS/`.
    pub rpms: usize,
    /// The kernel's name in the initrd.
    pub kernel: String,
}

/// Stages upstream's ISO tree in `dir` (an empty directory). `progress` hears each step.
pub fn stage(
    req: &MakerRequest,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Staged, Error> {
    let grub = dir.join("boot/grub2");
    mkdirs(&grub)?;
    let extra = kernel_args(&req.kernel_args)?;
    write(
        &grub.join("grub.cfg"),
        &GRUB_CFG.replace(
            " console=ttyS0,115200n8\n",
            &format!(" console=ttyS0,115200n8{extra}\n"),
        ),
    )?;
    let isolinux = dir.join("isolinux");
    mkdirs(&isolinux)?;
    if let Some(b) = &req.bios {
        write(
            &isolinux.join("isolinux.cfg"),
            &ISOLINUX_CFG.replace(
                " console=ttyS0,115200n8\n",
                &format!(" console=ttyS0,115200n8{extra}\n"),
            ),
        )?;
        copy_file(&b.isolinux_bin, &isolinux.join("isolinux.bin"))?;
        copy_file(&b.ldlinux_c32, &isolinux.join("ldlinux.c32"))?;
    }

    progress("copying the config and the files it refers to into config/");
    let config_files = stage_config(req, &dir.join("config"))?;

    progress(&format!(
        "copying the packages of {} into RPMS/",
        req.iso_repo.display()
    ));
    let rpms = copy_tree(&req.iso_repo, &dir.join("RPMS"))?;

    progress(&format!(
        "taking the kernel and the EFI loaders from {}",
        req.initrd.display()
    ));
    let efi = dir.join("efi/boot");
    mkdirs(&efi)?;
    let kernel = extract_from_initrd(
        &req.initrd,
        &[
            ("boot/vmlinuz", isolinux.join("vmlinuz")),
            ("boot/efi/EFI/BOOT/bootx64.efi", efi.join("bootx64.efi")),
            ("boot/efi/EFI/BOOT/grubx64.efi", efi.join("grubx64.efi")),
        ],
    )?;
    copy_file(&req.initrd, &isolinux.join("initrd.img"))?;

    progress("making boot/grub2/efiboot.img");
    crate::efi::efi_boot_image_with(
        &efi,
        &[("boot/grub2/grub.cfg", &grub.join("grub.cfg"))],
        &grub.join("efiboot.img"),
        &req.identity,
    )?;
    Ok(Staged {
        config_files,
        rpms,
        kernel,
    })
}

/// The ISO options for a staged tree: upstream's mkisofs line (Rock Ridge, volume id `CDROM`,
/// isolinux with a boot info table, `boot/grub2/efiboot.img` for UEFI, the catalog at
/// `isolinux/boot.cat`) plus Joliet and a hybrid MBR + GPT.
pub fn iso_options(req: &MakerRequest) -> Result<IsoOptions, Error> {
    let mbr_code = match req.bios.as_ref().and_then(|b| b.isohybrid_mbr.as_ref()) {
        Some(p) => Some(std::fs::read(p).map_err(io_err("cannot read", p))?),
        None => None,
    };
    Ok(IsoOptions {
        joliet: true,
        bios: req
            .bios
            .as_ref()
            .map(|_| BiosBoot::new("isolinux/isolinux.bin")),
        efi_image: Some("boot/grub2/efiboot.img".into()),
        catalog: Some("isolinux/boot.cat".into()),
        hybrid: Some(Hybrid {
            isolinux_mbr: mbr_code.is_some(),
            mbr_code,
            grub2_mbr: false,
        }),
        ..IsoOptions::new(VOLUME_ID, req.identity.clone())
    })
}

/// Stages the tree in `work` (created, then removed) and writes the ISO at `output`.
pub fn make_iso(
    req: &MakerRequest,
    work: &Path,
    output: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(Staged, IsoReport), Error> {
    if work.exists() {
        std::fs::remove_dir_all(work).map_err(io_err("cannot remove", work))?;
    }
    mkdirs(work)?;
    let result = (|| {
        let staged = stage(req, work, progress)?;
        progress(&format!("writing {}", output.display()));
        let report = crate::write_iso(work, output, &iso_options(req)?)?;
        Ok((staged, report))
    })();
    let _ = std::fs::remove_dir_all(work);
    result
}

/// The categories of referenced files, in upstream's order: (directory in `config/`, where the
/// paths are in a SystemConfig).
const CATEGORIES: &[&str] = &[
    "additionalfiles",
    "packages",
    "preinstallscripts",
    "postinstallscripts",
    "finalizeimagescripts",
    "sshpublickeys",
];

/// Copies every file the config refers to into `config/<category>/<n>/<name>` (one counter over
/// all categories and SystemConfigs, upstream's order), rewrites the config's paths to those
/// (relative to `config/`) and saves it as `unattended_config.json` or `attended_config.json`
/// (1-space indent, as upstream's MarshalIndent). Returns how many files were copied.
fn stage_config(req: &MakerRequest, config_dir: &Path) -> Result<usize, Error> {
    let bad = |m: String| Error::Config(format!("{}: {m}", req.config.display()));
    let text = std::fs::read_to_string(&req.config).map_err(io_err("cannot read", &req.config))?;
    let mut doc: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let systems = field_mut(&mut doc, "SystemConfigs")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| bad("no SystemConfigs".into()))?;
    if req.unattended
        && systems.len() > 1
        && !systems
            .iter()
            .any(|s| field(s, "IsDefault").and_then(Value::as_bool) == Some(true))
    {
        return Err(Error::Config(
            "for unattended installation with more than one system configuration present you \
             must select a default one with the [IsDefault] field"
                .into(),
        ));
    }
    mkdirs(config_dir)?;
    let mut counter = 0usize;
    let mut copy = |category: &str, path: &str| -> Result<String, Error> {
        let src = req.base_dir.join(path);
        let name = src
            .file_name()
            .ok_or_else(|| bad(format!("{path}: not a file path")))?
            .to_string_lossy()
            .into_owned();
        let rel = format!("{category}/{counter}/{name}");
        counter += 1;
        let dest = config_dir.join(&rel);
        mkdirs(dest.parent().expect("has a parent"))?;
        copy_file(&src, &dest)?;
        Ok(rel)
    };
    for category in CATEGORIES {
        for system in systems.iter_mut() {
            rewrite(system, category, &mut copy)?;
        }
    }
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(&doc, &mut ser).map_err(|e| bad(e.to_string()))?;
    let name = if req.unattended {
        "unattended_config.json"
    } else {
        "attended_config.json"
    };
    let path = config_dir.join(name);
    std::fs::write(&path, out).map_err(io_err("cannot write", &path))?;
    if let Some(t) = req.repo_snapshot_time {
        write(
            &config_dir.join("repo-snapshot-time.txt"),
            &format!("{t}\n"),
        )?;
    }
    Ok(counter)
}

/// Rewrites one category's paths of a SystemConfig through `copy`.
fn rewrite(
    system: &mut Value,
    category: &str,
    copy: &mut dyn FnMut(&str, &str) -> Result<String, Error>,
) -> Result<(), Error> {
    match category {
        "additionalfiles" => {
            let Some(Value::Object(files)) = field_mut(system, "AdditionalFiles") else {
                return Ok(());
            };
            let mut renamed = Map::new();
            for (src, dest) in std::mem::take(files) {
                renamed.insert(copy(category, &src)?, dest);
            }
            *files = renamed;
        }
        "packages" => {
            for p in field_mut(system, "PackageLists")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                rewrite_string(p, category, copy)?;
            }
        }
        "sshpublickeys" => {
            for user in field_mut(system, "Users")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                for k in field_mut(user, "SSHPubKeyPaths")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    rewrite_string(k, category, copy)?;
                }
            }
        }
        _ => {
            let key = match category {
                "preinstallscripts" => "PreInstallScripts",
                "postinstallscripts" => "PostInstallScripts",
                _ => "FinalizeImageScripts",
            };
            for script in field_mut(system, key)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(p) = field_mut(script, "Path") {
                    rewrite_string(p, category, copy)?;
                }
            }
        }
    }
    Ok(())
}

fn rewrite_string(
    v: &mut Value,
    category: &str,
    copy: &mut dyn FnMut(&str, &str) -> Result<String, Error>,
) -> Result<(), Error> {
    if let Value::String(s) = v {
        if !s.is_empty() {
            *s = copy(category, s)?;
        }
    }
    Ok(())
}

/// A field of a JSON object, its key matched as upstream's decoder does (case-insensitively;
/// the last of several spellings wins).
fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .rfind(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn field_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    v.as_object_mut()?
        .iter_mut()
        .rfind(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Extracts from the gzip'd cpio initrd, for each `(prefix, dest)`, the first regular file
/// whose name starts with `prefix` (upstream's rule). Returns the first one's name (the kernel).
fn extract_from_initrd(initrd: &Path, wanted: &[(&str, PathBuf)]) -> Result<String, Error> {
    let file = std::fs::File::open(initrd).map_err(io_err("cannot open", initrd))?;
    let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    let mut cpio = kiln_formats::cpio_read::CpioReader::new(gz);
    let mut found: Vec<Option<String>> = vec![None; wanted.len()];
    let bad =
        |e: kiln_formats::cpio_read::Error| Error::Initrd(format!("{}: {e}", initrd.display()));
    while let Some(entry) = cpio.next_entry().map_err(bad)? {
        if entry.kind != kiln_formats::cpio_read::EntryKind::File {
            continue;
        }
        let Some(i) = wanted
            .iter()
            .enumerate()
            .position(|(i, (p, _))| found[i].is_none() && entry.name.starts_with(p))
        else {
            continue;
        };
        let dest = &wanted[i].1;
        let mut out = std::fs::File::create(dest).map_err(io_err("cannot create", dest))?;
        let copied = std::io::copy(&mut cpio.data(entry.size), &mut out)
            .map_err(io_err("cannot write", dest))?;
        if copied != entry.size {
            return Err(Error::Initrd(format!(
                "{}: {} is cut short",
                initrd.display(),
                entry.name
            )));
        }
        set_mode(dest, 0o644)?;
        found[i] = Some(entry.name);
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    let missing: Vec<&str> = wanted
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|((p, _), _)| *p)
        .collect();
    if !missing.is_empty() {
        return Err(Error::Initrd(format!(
            "{} holds no {}: build it from a config with a kernel, grub2-efi-binary and shim \
             (upstream's iso_initrd.json)",
            initrd.display(),
            missing.join(", ")
        )));
    }
    Ok(found.swap_remove(0).expect("all found"))
}

/// Copies the tree at `src` into `dest` (created), following symlinks as `cp -r -L` does, in
/// name order. Returns the number of files copied.
fn copy_tree(src: &Path, dest: &Path) -> Result<usize, Error> {
    mkdirs(dest)?;
    let mut n = 0;
    let names = kiln_formats::tree::sorted_names(src).map_err(io_err("cannot list", src))?;
    for name in names {
        if kiln_formats::files::is_temp_name(&name) || name == ".kiln-lock" {
            continue;
        }
        let (s, d) = (src.join(&name), dest.join(&name));
        let meta = std::fs::metadata(&s).map_err(io_err("cannot read", &s))?;
        if meta.is_dir() {
            n += copy_tree(&s, &d)?;
        } else if meta.is_file() {
            copy_file(&s, &d)?;
            n += 1;
        }
    }
    Ok(n)
}

fn copy_file(src: &Path, dest: &Path) -> Result<(), Error> {
    std::fs::copy(src, dest)
        .map(|_| ())
        .map_err(io_err("cannot copy", src))
}

fn mkdirs(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(io_err("cannot write", path))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("cannot set the mode of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_names_follow_upstream() {
        let c = Path::new("/x/core-efi.json");
        assert_eq!(iso_file_name(c, "", ""), "core-efi.iso");
        assert_eq!(iso_file_name(c, "3.0.1", ""), "core-efi-3.0.1.iso");
        assert_eq!(iso_file_name(c, "3.0.1", "-rc"), "core-efi-3.0.1-rc.iso");
        assert_eq!(iso_file_name(c, "", "tag"), "core-efi-tag.iso");
    }

    #[test]
    fn fields_match_case_insensitively_last_wins() {
        let v: Value =
            serde_json::from_str(r#"{"packagelists": [1], "PackageLists": [2]}"#).unwrap();
        assert_eq!(field(&v, "PACKAGELISTS"), Some(&serde_json::json!([2])));
        assert_eq!(field(&v, "Users"), None);
    }
}
