//! # kiln-installer
//!
//! upstream's `liveinstaller` (SPEC §5.3): run on the ISO's installer initrd by
//! `/root/runliveinstaller`, it picks the mode — unattended when the `--input` config exists
//! (and `--attended` is not given), attended otherwise — and for an unattended install runs the
//! imager (`<imager> --live-install --emit-progress …`) onto the config's TargetDisk, passing its
//! `progress:N` / `action:text` lines on as they come (upstream shows none in unattended mode).
//! After a successful install of a UEFI system the old "Azure Linux" boot entries are removed and
//! one made for the installed disk (errors reported, not ignored), then the media is ejected.
//!
//! Unattended, the disk can be chosen on the machine instead ([`target`]: `--target-disk` or the
//! kernel command line's `kiln.target-disk=`, e.g. `smallest`).
//!
//! Attended, a terminal UI ([`attended`]) asks upstream's questions and installs the config
//! they make the same way.

pub mod attended;
pub mod target;

use kiln_config::model::{BootType, Config};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// liveinstaller's flags.
#[derive(Debug, Clone)]
pub struct Installer {
    /// The unattended config (it may not exist: then the install is attended).
    pub input: PathBuf,
    /// The attended install's template (`attended_config.json`).
    pub template_config: Option<PathBuf>,
    /// Attended even when `input` exists.
    pub attended: bool,
    /// The imager to run (on the ISO: `/installer/imager`, kiln itself).
    pub imager: PathBuf,
    pub build_dir: PathBuf,
    /// Where the config's relative paths resolve (the media's `config/`).
    pub base_dir: Option<PathBuf>,
    pub repo_snapshot_time: Option<String>,
    /// The imager's log level (`--log-level`).
    pub log_level: String,
    /// The imager's log file (upstream: /var/log/imager.log).
    pub imager_log: PathBuf,
    /// A target disk selector ([`target::Selector`]) replacing the unattended config's
    /// TargetDisk (kiln's `--target-disk`).
    pub target_disk: Option<String>,
    /// The kernel command line to read `kiln.target-disk=` from when `target_disk` is not
    /// given (`/proc/cmdline` on the installer; `None`: none is read).
    pub kernel_cmdline: Option<PathBuf>,
}

/// How the install goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Unattended,
    Attended,
}

/// Why the install failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("the unattended config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("the imager {imager} could not be run: {source}")]
    Spawn {
        imager: PathBuf,
        source: std::io::Error,
    },
    #[error("the imager failed ({status}); its log is {log}")]
    Imager { status: String, log: PathBuf },
    #[error("the attended installer: {0}")]
    Attended(String),
}

/// What the install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub target: String,
    /// Notes for the console: boot-entry and eject results.
    pub notes: Vec<String>,
}

impl Installer {
    /// upstream's rule: attended if asked, or if the unattended config does not exist (then the
    /// template must).
    pub fn mode(&self) -> Result<Mode, Error> {
        if !self.attended && self.input.is_file() {
            return Ok(Mode::Unattended);
        }
        match &self.template_config {
            Some(t) if t.is_file() => Ok(Mode::Attended),
            t => Err(Error::Usage(format!(
                "Attended installation requires a template config file. Specified template ({}) \
                 does not exist.",
                t.as_deref().unwrap_or(Path::new("")).display()
            ))),
        }
    }

    /// Installs. `line` hears every line for the console: the imager's progress protocol,
    /// then the notes.
    pub fn run(&self, line: &mut dyn FnMut(&str)) -> Result<Installed, Error> {
        match self.mode()? {
            Mode::Attended => attended::run(self, line),
            Mode::Unattended => self.unattended(line),
        }
    }

    fn unattended(&self, line: &mut dyn FnMut(&str)) -> Result<Installed, Error> {
        let config = self.load()?;
        let system = config
            .default_system_config()
            .or(config.system_configs.first());
        // A kickstart config has no Disks: its PreInstallScripts write them (imager reads
        // /tmp/part-include).
        let kickstart = system.is_some_and(|s| s.is_kick_start_boot);
        if let Some((selector, from)) = self.selector()? {
            if !kickstart {
                return self.retargeted(&selector, &from, line)?.unattended(line);
            }
            line(&format!(
                "note: the target disk selector {selector} ({from}) is not used: a kickstart \
                 config's PreInstallScripts choose the disks"
            ));
        }
        let disk = config.disks.first();
        let target = match disk {
            _ if kickstart => "the disks its PreInstallScripts choose (kickstart)".to_string(),
            None => {
                return Err(Error::Config {
                    path: self.input.clone(),
                    message: "no Disks: an unattended install needs one with a TargetDisk".into(),
                })
            }
            Some(d) if !d.target_disk.is_path() || d.target_disk.value.is_empty() => {
                return Err(Error::Config {
                    path: self.input.clone(),
                    message: "the disk has no TargetDisk of Type path (the device to install onto)"
                        .into(),
                })
            }
            Some(d) => d.target_disk.value.clone(),
        };
        if !kickstart {
            self.not_the_media(&target)?;
        }
        let mut cmd = Command::new(&self.imager);
        cmd.arg("--live-install")
            .arg(format!("--input={}", self.input.display()))
            .arg(format!("--build-dir={}", self.build_dir.display()))
            .arg(format!("--log-file={}", self.imager_log.display()))
            .arg(format!("--log-level={}", self.log_level))
            .arg("--emit-progress");
        if let Some(b) = &self.base_dir {
            cmd.arg(format!("--base-dir={}", b.display()));
        }
        if let Some(t) = self.repo_snapshot_time.as_deref().filter(|t| !t.is_empty()) {
            cmd.arg(format!("--repo-snapshot-time={t}"));
        }
        line(&format!("action:Installing onto {target}"));
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| Error::Spawn {
                imager: self.imager.clone(),
                source,
            })?;
        if let Some(out) = child.stdout.take() {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                line(&l);
            }
        }
        let status = child.wait().map_err(|source| Error::Spawn {
            imager: self.imager.clone(),
            source,
        })?;
        if !status.success() {
            return Err(Error::Imager {
                status: status.to_string(),
                log: self.imager_log.clone(),
            });
        }
        let mut notes = Vec::new();
        if system.is_some_and(|s| s.boot_type == BootType::Efi) {
            // A kickstart install's disk is the one its PreInstallScripts wrote: the imager
            // keeps the config with that layout in the build directory.
            let chosen = match disk.filter(|_| !kickstart) {
                Some(disk) => Ok((target.clone(), esp_number(disk))),
                None => self.kickstart_disk(),
            };
            match chosen {
                Ok((disk, esp)) => notes.extend(boot_entry(&disk, esp)),
                Err(why) => notes.push(format!(
                    "warning: no UEFI boot entry made ({why}); the disk boots through its \
                     fallback loader \\EFI\\BOOT\\bootx64.efi"
                )),
            }
        }
        // A network install (image-config= on the kernel command line) has no media to eject.
        let cmdline = self
            .kernel_cmdline
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok());
        notes.push(match cmdline.as_deref().and_then(network_media) {
            Some(url) => format!("network install from {url}: no media to eject"),
            None => eject(),
        });
        for n in &notes {
            line(n);
        }
        Ok(Installed { target, notes })
    }

    /// The target disk selector and where it came from: `--target-disk`, else the kernel
    /// command line.
    fn selector(&self) -> Result<Option<(target::Selector, String)>, Error> {
        if let Some(s) = &self.target_disk {
            let sel = s
                .parse()
                .map_err(|e| Error::Usage(format!("--target-disk: {e}")))?;
            return Ok(Some((sel, "--target-disk".into())));
        }
        let Some(path) = &self.kernel_cmdline else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        let sel = target::from_cmdline(&text).map_err(Error::Usage)?;
        Ok(sel.map(|s| (s, "the kernel command line".into())))
    }

    /// The installer of the config with its TargetDisk replaced by the disk `selector` picks
    /// (written to `<build-dir>/unattended_config.target.json`, root only: it may hold
    /// passwords). Says which disk and why.
    fn retargeted(
        &self,
        selector: &target::Selector,
        from: &str,
        line: &mut dyn FnMut(&str),
    ) -> Result<Installer, Error> {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let media = attended::disks::mounted_device(&mounts, attended::MEDIA);
        let found = attended::disks::list(Path::new("/sys/block"), media.as_deref());
        let choice = target::choose(selector, &found).map_err(Error::Usage)?;
        line(&format!(
            "Target disk {} (selector {selector}, from {from}): {}",
            choice.path, choice.reason
        ));
        let bad = |message: String| Error::Config {
            path: self.input.clone(),
            message,
        };
        let text = std::fs::read(&self.input).map_err(|e| bad(e.to_string()))?;
        let config = target::retarget(&text, &choice.path).map_err(bad)?;
        let path = self.build_dir.join("unattended_config.target.json");
        attended::write_private(&path, &config).map_err(|e| Error::Config {
            path: path.clone(),
            message: format!("cannot write it: {e}"),
        })?;
        Ok(Installer {
            input: path,
            // The config's relative paths still resolve where the original's did.
            base_dir: Some(self.base_dir.clone().unwrap_or_else(|| {
                self.input
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default()
            })),
            target_disk: None,
            kernel_cmdline: None,
            ..self.clone()
        })
    }

    /// Refuses a TargetDisk that is the disk the installer runs from: a USB stick is an sd
    /// disk like the target may be (`/dev/sda` on one machine is the stick on another).
    fn not_the_media(&self, target: &str) -> Result<(), Error> {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let Some(media) = attended::disks::mounted_device(&mounts, attended::MEDIA) else {
            return Ok(());
        };
        // A /dev/disk/by-* name is a link to the device.
        let real = std::fs::canonicalize(target).unwrap_or_else(|_| PathBuf::from(target));
        let name = real.file_name().map(|n| n.to_string_lossy().into_owned());
        if !name.is_some_and(|n| attended::disks::holds_media(&n, Some(&media))) {
            return Ok(());
        }
        Err(Error::Config {
            path: self.input.clone(),
            message: format!(
                "TargetDisk {target} is /dev/{media}'s disk, the installation media mounted at \
                 {}: installing would overwrite the installer; name another disk, or choose it \
                 on the machine with kiln.target-disk= on the kernel command line (e.g. \
                 kiln.target-disk=largest, docs/iso.md), which never picks the media",
                attended::MEDIA
            ),
        })
    }

    /// The disk a kickstart install went onto and its EFI system partition's number, from the
    /// config the imager kept with the layout of `/tmp/part-include`.
    fn kickstart_disk(&self) -> Result<(String, usize), String> {
        let path = self.build_dir.join(kiln_config::kickstart::LAYOUT_CONFIG);
        let opts = kiln_config::Options {
            base_dir: self.base_dir.clone(),
            package_checks: false,
            file_checks: false,
        };
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let checked = kiln_config::validate_bytes(&text, &path, &opts);
        let config = checked
            .config
            .ok_or_else(|| format!("{}: {}", path.display(), checked.report.render(false)))?
            .config;
        let disk = config
            .disks
            .first()
            .filter(|d| !d.target_disk.value.is_empty())
            .ok_or_else(|| format!("{} names no disk", path.display()))?;
        Ok((disk.target_disk.value.clone(), esp_number(disk)))
    }

    fn load(&self) -> Result<Config, Error> {
        let opts = kiln_config::Options {
            base_dir: self.base_dir.clone(),
            package_checks: false,
            ..Default::default()
        };
        let bad = |message: String| Error::Config {
            path: self.input.clone(),
            message,
        };
        let v = kiln_config::validate_file(&self.input, &opts).map_err(|e| bad(e.to_string()))?;
        match v.config {
            Some(c) => Ok(c.config),
            None => Err(bad(v.report.render(false))),
        }
    }
}

/// The number of the disk's EFI system partition (flag `esp`), else 1.
fn esp_number(disk: &kiln_config::model::Disk) -> usize {
    disk.partitions
        .iter()
        .position(|p| p.has_flag(kiln_config::model::PartitionFlag::Esp))
        .map_or(1, |i| i + 1)
}

/// The installed disk's UEFI boot entry: old "Azure Linux" entries deleted, a new one for
/// `\EFI\BOOT\bootx64.efi` on partition `esp` of `disk`. Reports what happened (a machine
/// without efivars or efibootmgr still boots the disk through the fallback path).
fn boot_entry(disk: &str, esp: usize) -> Vec<String> {
    let mut notes = Vec::new();
    let listing = match Command::new("efibootmgr").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            return vec![format!(
                "note: no UEFI boot entry made (efibootmgr: {}); the disk boots through its \
                 fallback loader \\EFI\\BOOT\\bootx64.efi",
                String::from_utf8_lossy(&o.stderr).trim()
            )]
        }
        Err(e) => {
            return vec![format!(
                "note: no UEFI boot entry made (efibootmgr: {e}); the disk boots through its \
                 fallback loader \\EFI\\BOOT\\bootx64.efi"
            )]
        }
    };
    for num in old_entries(&listing) {
        match Command::new("efibootmgr").args(["-b", &num, "-B"]).output() {
            Ok(o) if o.status.success() => notes.push(format!("removed boot entry {num}")),
            _ => notes.push(format!("warning: boot entry {num} could not be removed")),
        }
    }
    let made = Command::new("efibootmgr")
        .args(["-c", "-d", disk, "-p", &esp.to_string()])
        .args(["-l", "\\EFI\\BOOT\\bootx64.efi", "-L", "Azure Linux"])
        .output();
    notes.push(match made {
        Ok(o) if o.status.success() => format!("boot entry \"Azure Linux\" made for {disk}"),
        Ok(o) => format!(
            "warning: the boot entry could not be made: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("warning: the boot entry could not be made: {e}"),
    });
    notes
}

/// The numbers of `efibootmgr`'s entries labelled "Azure Linux" (`Boot0003* Azure Linux …`).
fn old_entries(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Boot")?;
            let (num, label) = rest.split_at_checked(4)?;
            let label = label.trim_start_matches('*').trim_start();
            (num.chars().all(|c| c.is_ascii_hexdigit()) && label.starts_with("Azure Linux"))
                .then(|| num.to_string())
        })
        .collect()
}

/// The URL of a network install's config folder (`image-config=<url>`, or upstream's
/// `--image-config=<url>`, on the kernel command line), if this is one.
fn network_media(cmdline: &str) -> Option<&str> {
    cmdline.split_whitespace().find_map(|w| {
        w.strip_prefix("--")
            .unwrap_or(w)
            .strip_prefix("image-config=")
    })
}

/// Ejects the installation media: the device mounted at /mnt/cdrom (a CD, or a USB stick the
/// hybrid ISO was written to: eject picks the method), else upstream's `eject --cdrom --force`;
/// when it cannot, says why and asks for the media to be removed.
fn eject() -> String {
    let media = Path::new("/mnt/cdrom");
    let mounted = Command::new("mountpoint")
        .arg("-q")
        .arg(media)
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = Command::new("eject");
    if mounted {
        cmd.arg("--force").arg(media);
    } else {
        cmd.args(["--cdrom", "--force"]);
    }
    let why = match cmd.output() {
        Ok(o) if o.status.success() => return "the installation media was ejected".into(),
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => format!("eject (util-linux): {e}"),
    };
    format!(
        "note: the media could not be ejected ({why})\n*** Remove the installation media (CD \
         or USB stick) before the machine starts again, or it will boot the installer again. ***"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_install_is_told_by_image_config_on_the_command_line() {
        let url = "http://10.0.2.2:8080/config";
        let pxe = format!("BOOT_IMAGE=/vmlinuz console=ttyS0 image-config={url} quiet\n");
        assert_eq!(network_media(&pxe), Some(url));
        assert_eq!(network_media(&format!("--image-config={url}")), Some(url));
        assert_eq!(network_media("root=/dev/ram0 mariner.media=CDROM\n"), None);
        assert_eq!(network_media("kiln.image-config-x=1"), None);
    }

    #[test]
    fn old_azure_linux_entries_are_found() {
        let listing = "BootCurrent: 0001\nBootOrder: 0003,0001\nBoot0001* UEFI QEMU DVD-ROM\n\
                       Boot0003* Azure Linux\tHD(1,GPT,…)\nBoot000A  Azure Linux\nBootNext: 0003\n";
        assert_eq!(old_entries(listing), ["0003", "000A"]);
    }

    /// An unattended installer of `input` with `imager`, working in `dir`.
    fn installer(dir: &Path, input: &Path, imager: PathBuf) -> Installer {
        Installer {
            input: input.to_path_buf(),
            template_config: None,
            attended: false,
            imager,
            build_dir: dir.into(),
            base_dir: None,
            repo_snapshot_time: None,
            log_level: "info".into(),
            imager_log: dir.join("imager.log"),
            target_disk: None,
            kernel_cmdline: None,
        }
    }

    #[test]
    fn mode_follows_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("unattended_config.json");
        let template = dir.path().join("attended_config.json");
        let mut i = installer(dir.path(), &input, "/installer/imager".into());
        i.template_config = Some(template.clone());
        let e = i.mode().unwrap_err().to_string();
        assert!(
            e.starts_with("Attended installation requires a template config file."),
            "{e}"
        );
        std::fs::write(&template, "{}").unwrap();
        assert_eq!(i.mode().unwrap(), Mode::Attended);
        std::fs::write(&input, "{}").unwrap();
        assert_eq!(i.mode().unwrap(), Mode::Unattended);
        i.attended = true;
        assert_eq!(i.mode().unwrap(), Mode::Attended);
        // The template "{}" has nothing to install: refused before the terminal is touched.
        let e = i.run(&mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("no SystemConfigs"), "{e}");
    }

    #[test]
    fn an_unattended_config_without_a_target_disk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("unattended_config.json");
        std::fs::write(
            &input,
            r#"{"SystemConfigs": [{"Name": "x", "PackageList": [], "Packages": ["bash"]}]}"#,
        )
        .unwrap();
        let i = installer(dir.path(), &input, "/bin/false".into());
        let e = i.run(&mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("unattended config"), "{e}");
    }

    #[test]
    fn a_kickstart_installs_disk_and_esp_come_from_the_layout_the_imager_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let i = installer(d, &d.join("unattended_config.json"), "/bin/false".into());
        let e = i.kickstart_disk().unwrap_err();
        assert!(e.contains("kickstart_config.json"), "{e}");
        // What the imager keeps: the config with /tmp/part-include's layout as its Disks.
        std::fs::write(
            d.join(kiln_config::kickstart::LAYOUT_CONFIG),
            r#"{"Disks": [{"PartitionTableType": "gpt",
                 "TargetDisk": {"Type": "path", "Value": "/dev/vdb"},
                 "Partitions": [{"ID": "boot", "Start": 1, "End": 201, "FsType": "ext4"},
                   {"ID": "esp", "Flags": ["esp", "boot"], "Start": 201, "End": 265,
                    "FsType": "fat32"},
                   {"ID": "root", "Start": 265, "End": 0, "FsType": "ext4"}]}],
               "SystemConfigs": [{"Name": "x", "Packages": ["bash"], "BootType": "efi",
                 "IsKickStartBoot": true, "KernelOptions": {"default": "kernel"},
                 "PartitionSettings": [{"ID": "boot", "MountPoint": "/boot"},
                   {"ID": "esp", "MountPoint": "/boot/efi"},
                   {"ID": "root", "MountPoint": "/"}]}]}"#,
        )
        .unwrap();
        assert_eq!(i.kickstart_disk().unwrap(), ("/dev/vdb".to_string(), 2));
    }

    /// An imager that keeps the config it was given and fails (nothing is installed).
    fn recording_imager(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let imager = dir.join("imager.sh");
        let script = format!(
            "#!/bin/sh\nfor a; do case $a in --input=*) cp \"${{a#--input=}}\" {0}/given.json;; \
             --base-dir=*) echo \"${{a#--base-dir=}}\" > {0}/base;; esac; done\nexit 3\n",
            dir.display()
        );
        std::fs::write(&imager, script).unwrap();
        std::fs::set_permissions(&imager, std::fs::Permissions::from_mode(0o755)).unwrap();
        imager
    }

    #[test]
    fn the_selector_replaces_the_target_disk_flag_before_kernel_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let input = d.join("unattended_config.json");
        std::fs::write(
            &input,
            r#"{"Disks": [{"PartitionTableType": "gpt",
                 "TargetDisk": {"Type": "path", "Value": "/dev/sda"},
                 "Partitions": [{"ID": "root", "Start": 1, "End": 0, "FsType": "ext4"}]}],
               "SystemConfigs": [{"Name": "x", "Packages": ["bash"],
                 "BootType": "legacy", "KernelOptions": {"default": "kernel"},
                 "PartitionSettings": [{"ID": "root", "MountPoint": "/"}]}]}"#,
        )
        .unwrap();
        let cmdline = d.join("cmdline");
        std::fs::write(
            &cmdline,
            "console=ttyS0 kiln.target-disk=/dev/disk/by-id/a\n",
        )
        .unwrap();
        let mut i = installer(d, &input, recording_imager(d));
        i.kernel_cmdline = Some(cmdline.clone());
        let given = |i: &Installer| {
            let mut lines = Vec::new();
            let e = i.run(&mut |l| lines.push(l.to_string())).unwrap_err();
            assert!(e.to_string().contains("the imager failed"), "{e}");
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(d.join("given.json")).unwrap()).unwrap();
            (
                v["Disks"][0]["TargetDisk"]["Value"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                lines,
            )
        };
        let (disk, lines) = given(&i);
        assert_eq!(disk, "/dev/disk/by-id/a");
        assert!(
            lines[0].starts_with(
                "Target disk /dev/disk/by-id/a (selector /dev/disk/by-id/a, \
                                  from the kernel command line): given by path"
            ),
            "{lines:?}"
        );
        // Relative paths still resolve beside the original config.
        let base = std::fs::read_to_string(d.join("base")).unwrap();
        assert_eq!(base.trim(), d.display().to_string());
        i.target_disk = Some("/dev/vdb".into());
        assert_eq!(given(&i).0, "/dev/vdb");
        // The original config is left as it was.
        assert!(std::fs::read_to_string(&input)
            .unwrap()
            .contains("/dev/sda"));
        i.target_disk = Some("biggest".into());
        let e = i.run(&mut |_| {}).unwrap_err().to_string();
        assert!(
            e.starts_with("--target-disk: unknown target disk selector"),
            "{e}"
        );
        i.target_disk = None;
        std::fs::write(&cmdline, "kiln.target-disk=serial:").unwrap();
        let e = i.run(&mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("kiln.target-disk: target disk selector"), "{e}");
    }
}
