//! The boot configuration of a disk image (SPEC §3.6), written into the staged root before it
//! is split into filesystems: `/etc/default/grub` from upstream's template, `grubenv`, the ESP's
//! `grub.cfg` (UEFI), and `/boot/grub2/grub.cfg` — from `grub2-mkconfig` inside the image when
//! it is there and EnableGrubMkconfig is set, otherwise written by kiln (upstream then writes
//! none, and the image does not boot).

use crate::BuiltPartition;
use kiln_compose::luks::{self, EncryptedRoot};
use kiln_compose::RunOptions;
use kiln_config::model::{BootType, CGroup, MountIdentifier, SELinux, SystemConfig};
use kiln_sandbox::{ImageRoot, View};
use std::path::Path;

/// The ESP's grub.cfg (upstream's `assets/efi/grub/grub.cfg`).
const ESP_GRUB_CFG: &str = "{{.CryptoMountCommand}}
# The bootUUID in which the menuentry grub.cfg is defined;
# Can be either its own separate partition or part of the rootfs partition.
search -n -u {{.BootUUID}} -s
# For images using grub2-mkconfig, $prefix is the variable
# grub expects to be populated with the proper path to the grub.cfg, grubenv.
#    - $prefix: the path to /boot/grub2/ relative to the bootUUID
set prefix=($root)\"{{.PrefixPath}}\"
configfile $prefix/grub.cfg
";

/// `/etc/default/grub` (upstream's `assets/grub2/grub`).
const DEFAULT_GRUB: &str = r#"GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR="AzureLinux"
GRUB_DISABLE_SUBMENU=y
GRUB_TERMINAL_OUTPUT="console"
GRUB_CMDLINE_LINUX="{{.LuksUUID}} {{.LVM}} {{.IMAPolicy}} {{.SELinux}} {{.FIPS}} rd.auto=1 net.ifnames=0 lockdown=integrity {{.CGroup}}"
GRUB_CMDLINE_LINUX_DEFAULT="{{.ExtraCommandLine}} \$kernelopts"

# =============================notice===============================
# IMPORTANT: package and feature-specific behaviors are defined in
#   /etc/default/grub.d/*.cfg. The cfg files are sourced last
#   before grub2-mkconfig is called and hence have higher precedence
#   than this file's GRUB_CMDLINE_LINUX. The order as it appears in the
#   Linux commandline is:
#     - first GRUB_CMDLINE_LINUX
#     - then /etc/default/grub.d/*.cfg
#     - and finally GRUB_CMDLINE_LINUX_DEFAULT
# =============================notice===============================
for x in /etc/default/grub.d/*.cfg ; do
    if [ -e "${x}" ]; then
        . "${x}" || grub_warn "Received non-zero exit code from ${x}."
    fi
done
"#;

/// What upstream adds to `/etc/default/grub` for a legacy boot of an encrypted root.
pub const CRYPTODISK_LINES: &str = "GRUB_ENABLE_CRYPTODISK=y\nGRUB_PRELOAD_MODULES=\"lvm\"\n";

/// What the boot configuration needs to know about the disk.
pub struct BootDisk<'a> {
    pub root: &'a BuiltPartition,
    /// The partition mounted at /boot, when /boot is separate.
    pub boot: Option<&'a BuiltPartition>,
    /// The root PartitionSetting's MountIdentifier.
    pub root_identifier: MountIdentifier,
    /// Every partition, for grub2-mkconfig's probe.
    pub probed: crate::probe::ProbedDisk<'a>,
    /// A host directory for kiln's stand-ins (the build's work directory).
    pub scratch: &'a Path,
    /// The encrypted root (`Encryption.Enable`), whose filesystem is on
    /// `/dev/mapper/cryptVG-root`.
    pub encrypted: Option<&'a EncryptedRoot>,
}

impl BootDisk<'_> {
    /// The filesystem holding /boot, and the path of /boot in it (`/boot`, or `` when
    /// separate).
    fn boot_fs(&self) -> (&BuiltPartition, &'static str) {
        match self.boot {
            Some(b) => (b, ""),
            None => (self.root, "/boot"),
        }
    }

    /// `root=` for the kernel, by the root partition's MountIdentifier (an encrypted root: its
    /// mapper device, as upstream).
    pub fn root_device(&self) -> String {
        if self.encrypted.is_some() {
            return luks::ROOT_DEVICE.into();
        }
        match self.root_identifier {
            MountIdentifier::Uuid => format!("UUID={}", self.root.fs_uuid),
            MountIdentifier::PartLabel => format!("PARTLABEL={}", self.root.partlabel),
            _ => format!("PARTUUID={}", self.root.partuuid),
        }
    }
}

fn write(root: &ImageRoot, path: &str, text: &str, mode: u32, dir_mode: u32) -> Result<(), String> {
    let parent = Path::new(path)
        .parent()
        .expect("an image path has a parent");
    if !root.exists(parent) {
        root.create_dir_all(parent, dir_mode)
            .and_then(|_| root.set_mode(parent, dir_mode))
            .map_err(|e| e.to_string())?;
    }
    root.replace(path, text, mode).map_err(|e| e.to_string())
}

/// The kernel command line upstream's template puts in GRUB_CMDLINE_LINUX (placeholders
/// substituted, spaces around empty ones kept).
pub fn cmdline_linux(sc: &SystemConfig, disk: &BootDisk) -> String {
    let k = &sc.kernel_command_line;
    let ima: String = k
        .ima_policy
        .iter()
        .filter(|p| !p.as_str().is_empty())
        .map(|p| format!("ima_policy={} ", p.as_str()))
        .collect();
    let selinux = match k.selinux {
        SELinux::Off => "selinux=0",
        SELinux::Enforcing | SELinux::Permissive => "security=selinux selinux=1",
        SELinux::ForceEnforcing => "security=selinux selinux=1 enforcing=1",
    };
    let fips = match (k.enable_fips, disk.boot) {
        (false, _) => String::new(),
        (true, Some(b)) => format!("fips=1 boot=UUID={}", b.fs_uuid),
        (true, None) => "fips=1".into(),
    };
    let cgroup = match k.cgroup {
        CGroup::Default => "",
        CGroup::V2 => "systemd.unified_cgroup_hierarchy=1",
        CGroup::V1 => "systemd.unified_cgroup_hierarchy=0",
    };
    let (luks_uuid, lvm) = disk
        .encrypted
        .map(EncryptedRoot::cmdline)
        .unwrap_or_default();
    format!(
        "{luks_uuid} {lvm} {ima} {selinux} {fips} rd.auto=1 net.ifnames=0 lockdown=integrity {cgroup}"
    )
}

/// Writes the boot configuration into the staged root `root`.
/// grub2-mkconfig runs in the build sandbox with the image as `/`; its output goes to `log`.
pub fn configure(
    root: &ImageRoot,
    sc: &SystemConfig,
    disk: &BootDisk,
    run: &RunOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    if sc.boot_type == BootType::None || sc.boot_type == BootType::Unset {
        return Ok(notes);
    }
    let (boot_fs, prefix) = disk.boot_fs();
    let linux = cmdline_linux(sc, disk);
    let extra = &sc.kernel_command_line.extra_command_line;
    let default_grub = DEFAULT_GRUB
        .replacen("{{.LuksUUID}} {{.LVM}} {{.IMAPolicy}} {{.SELinux}} {{.FIPS}} rd.auto=1 net.ifnames=0 lockdown=integrity {{.CGroup}}", &linux, 1)
        .replacen("{{.ExtraCommandLine}}", extra, 1);
    let default_grub = if disk.encrypted.is_some() && sc.boot_type == BootType::Legacy {
        // Upstream appends these to the /etc/default/grub of the machine running the imager
        // (SPEC Appendix B), where its grub2-install reads them; kiln puts them where the
        // image's grub2-mkconfig reads them.
        default_grub + CRYPTODISK_LINES
    } else {
        default_grub
    };
    write(root, "/etc/default/grub", &default_grub, 0o644, 0o700)?;
    let mut env = String::from(
        "# GRUB Environment Block\n# WARNING: Do not edit this file by tools other than grub-editenv!!!\n",
    );
    env.push_str(&"#".repeat(1024 - env.len()));
    write(root, "/boot/grub2/grubenv", &env, 0o400, 0o700)?;
    if sc.boot_type == BootType::Efi {
        let esp = ESP_GRUB_CFG
            .replace(
                "{{.CryptoMountCommand}}",
                if disk.encrypted.is_some() {
                    "cryptomount -a"
                } else {
                    ""
                },
            )
            .replace("{{.BootUUID}}", &boot_fs.fs_uuid)
            .replace("{{.PrefixPath}}", &format!("{prefix}/grub2"));
        write(root, "/boot/efi/boot/grub2/grub.cfg", &esp, 0o400, 0o700)?;
    }
    let mkconfig = ["/usr/sbin/grub2-mkconfig", "/sbin/grub2-mkconfig"]
        .iter()
        .any(|p| root.exists(p));
    if sc.enable_grub_mkconfig && mkconfig {
        let sandbox = with_probe(run.sandbox(root.path(), View::Image), root, disk)?;
        let out = sandbox
            .run_lines(
                &["grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"],
                &mut |l| log(&format!("  | {l}")),
            )
            .map_err(|e| format!("grub2-mkconfig: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "grub2-mkconfig failed ({}):\n{}",
                out.status, out.tail
            ));
        }
        return Ok(notes);
    }
    if sc.enable_grub_mkconfig {
        notes.push("grub2-mkconfig is not in the image: kiln writes /boot/grub2/grub.cfg".into());
    }
    let kernels = kernels(root)?;
    if kernels.is_empty() {
        return Err("no /boot/vmlinuz-* in the image: install a kernel".into());
    }
    // /boot inside the encrypted root: GRUB opens it first (asking for the password).
    let unlock = if disk.encrypted.is_some() && disk.boot.is_none() {
        "insmod luks\ninsmod lvm\ncryptomount -a\n"
    } else {
        ""
    };
    let mut cfg = format!(
        "# Written by kiln (grub2-mkconfig is not used for this image).\nset timeout=0\n\
         {unlock}search --no-floppy --fs-uuid --set=root {}\n",
        boot_fs.fs_uuid
    );
    for kver in &kernels {
        let initrd = if root.exists(format!("/boot/initramfs-{kver}.img")) {
            format!("    initrd {prefix}/initramfs-{kver}.img\n")
        } else {
            String::new()
        };
        cfg += &format!(
            "menuentry \"Azure Linux ({kver})\" {{\n    linux {prefix}/vmlinuz-{kver} root={} {} {extra}\n{initrd}}}\n",
            disk.root_device(),
            linux.split_whitespace().collect::<Vec<_>>().join(" "),
        );
    }
    write(root, "/boot/grub2/grub.cfg", &cfg, 0o600, 0o700)?;
    Ok(notes)
}

/// The sandbox for grub2-mkconfig: kiln's grub2-probe and grub2-mkrelpath in place of the
/// image's (see [`crate::probe`]), and the `/dev` entries its scripts test for.
fn with_probe(
    mut sandbox: kiln_sandbox::Sandbox,
    root: &ImageRoot,
    disk: &BootDisk,
) -> Result<kiln_sandbox::Sandbox, String> {
    let tools = [
        (
            disk.probed.probe_script(),
            ["/usr/sbin/grub2-probe", "/usr/sbin/grub-probe"],
            "grub-probe",
        ),
        (
            disk.probed.mkrelpath_script(),
            ["/usr/bin/grub2-mkrelpath", "/usr/bin/grub-mkrelpath"],
            "grub-mkrelpath",
        ),
    ];
    for (script, paths, name) in tools {
        let host = disk.scratch.join(format!("kiln-{name}"));
        std::fs::write(&host, script)
            .and_then(|_| {
                std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            })
            .map_err(|e| format!("writing kiln's {name} for grub2-mkconfig: {e}"))?;
        let present: Vec<&str> = paths
            .into_iter()
            .filter(|p| root.metadata(p).is_ok_and(|m| m.is_file()))
            .collect();
        if present.is_empty() {
            return Err(format!(
                "grub2-mkconfig is in the image but {name} is not ({}): install grub2-tools-minimal",
                paths.join(" or ")
            ));
        }
        for p in present {
            sandbox = sandbox.stand_in(p, &host);
        }
    }
    for (path, entry) in disk.probed.dev_entries() {
        sandbox = sandbox.dev_entry(&path, entry);
    }
    Ok(sandbox)
}

/// The kernel versions of `/boot/vmlinuz-*`, newest name first.
fn kernels(root: &ImageRoot) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = root
        .read_dir("/boot")
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|e| {
            e.name
                .to_str()
                .and_then(|n| n.strip_prefix("vmlinuz-"))
                .map(String::from)
        })
        .collect();
    out.sort();
    out.reverse();
    Ok(out)
}
