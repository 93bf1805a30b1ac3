//! dracut in the build sandbox, told the image's planned disk instead of the build host's.
//!
//! A host-only dracut (Azure Linux's `dracut-hostonly`: `hostonly=yes`) finds the devices the
//! initramfs needs from the running system: the filesystem of `/`, `/usr`, `/boot`, `/boot/efi`…
//! through `/proc/self/mountinfo` and `/dev/block`. Upstream runs it chrooted on the image's
//! loop-mounted partitions, so it finds the image's own filesystems. In kiln's sandbox `/` is a
//! bind mount of the staging directory, so dracut would find the *build host's* filesystem: it
//! would leave out the modules of the image's (xfs) and write the host's root type and mount
//! options into the initramfs's `etc/cmdline.d` (`rootfstype=ext4 rootflags=…`), which then
//! overrides the image's own and fails to mount its root.
//!
//! So, for the build only, kiln puts [`BUILD_CONF`] into the image before the packages install
//! (the kernel's and initramfs's scriptlets run dracut) and takes it out again when the root is
//! complete, so the image ships exactly the packages' dracut configuration. It keeps host-only
//! mode and says, with dracut's own switches:
//! - `hostonly_default_device="no"` (`--no-hostonly-default-device`): do not look for the
//!   devices of `/`, `/boot`, swap… on the running system (the build host's);
//! - `hostonly_cmdline="no"` (`--no-hostonly-cmdline`): store no root device, type or options
//!   in the initramfs — the image's boot loader names its root (`root=`, and for an encrypted
//!   root `luks.uuid=` and `rd.lvm.lv=`), as the kernel command line kiln writes does;
//! - `add_drivers+=" … "`: the kernel modules of the filesystems the image mounts where dracut
//!   looks (`/`, `/usr`, `/boot`, `/boot/efi`… and `x-initrd.mount` entries), from the image's
//!   planned fstab — what host-only dracut adds for the filesystems it found (`instmods` of
//!   their types). Not `filesystems+=`, which in a generic (`--no-hostonly`) run, such as the
//!   encrypted root's regeneration, would restrict the initramfs to those filesystems.

use crate::install::PackageFile;
use kiln_sandbox::ImageRoot;

/// The build's drop-in, last in dracut's order so that nothing in the packages overrides it.
pub const BUILD_CONF: &str = "/etc/dracut.conf.d/99-kiln-build.conf";

/// The mount points host-only dracut looks up on the running system (dracut's own list, in
/// `dracut.sh`): the filesystems that must be mountable from the initramfs.
const DRACUT_MOUNT_POINTS: &[&str] = &[
    "/",
    "/etc",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/usr",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/usr/lib64",
    "/boot",
    "/boot/efi",
    "/boot/zipl",
];

/// The kernel modules of the filesystems `fstab` (the image's planned `/etc/fstab`) mounts
/// where host-only dracut looks, each once, in fstab's order. ext2 and ext3 are mounted by the
/// ext4 driver.
pub fn planned_filesystem_modules(fstab: &str) -> Vec<String> {
    let mut modules: Vec<String> = Vec::new();
    for line in fstab.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, mount_point, fs_type, rest @ ..] = fields.as_slice() else {
            continue;
        };
        if fields[0].starts_with('#') {
            continue;
        }
        let initrd = rest.first().is_some_and(|o| o.contains("x-initrd.mount"));
        if !initrd && !DRACUT_MOUNT_POINTS.contains(mount_point) {
            continue;
        }
        let module = match *fs_type {
            "ext2" | "ext3" | "ext4" => "ext4",
            "swap" | "none" | "auto" | "proc" | "tmpfs" | "sysfs" | "devpts" => continue,
            other => other,
        };
        if !modules.iter().any(|m| m == module) {
            modules.push(module.to_string());
        }
    }
    modules
}

/// The text of [`BUILD_CONF`] for an image with the planned `fstab` (`None`: no disk, as a
/// container's root).
pub fn build_conf(fstab: Option<&str>) -> String {
    let mut text = String::from(
        "# Written by kiln for the build only, and removed when the image root is complete:\n\
         # dracut runs in kiln's sandbox, whose / is the build host's filesystem, not the\n\
         # image's. Find no devices on the running system, store no root in the initramfs\n\
         # (the boot loader's command line names it), and add the image's filesystems.\n\
         hostonly_default_device=\"no\"\n\
         hostonly_cmdline=\"no\"\n",
    );
    let modules = planned_filesystem_modules(fstab.unwrap_or(""));
    if !modules.is_empty() {
        text.push_str(&format!("add_drivers+=\" {} \"\n", modules.join(" ")));
    }
    text
}

/// Whether dracut can run while `installing` goes into the image: dracut itself is among them,
/// or the image has it already (a diff-disk build's base) and a kernel, `initramfs` or dracut
/// configuration package is among them (their scriptlets and triggers run it). Otherwise the
/// drop-in is not written, so a diff-disk build's `/etc` is left as its base has it.
pub fn runs_in(root: &ImageRoot, installing: &[&PackageFile]) -> bool {
    installing.iter().any(|p| p.name == "dracut")
        || (in_image(root)
            && installing.iter().any(|p| {
                ["kernel", "initramfs", "dracut-"]
                    .iter()
                    .any(|n| p.name.starts_with(n))
            }))
}

/// Whether the image has a `dracut` command.
pub fn in_image(root: &ImageRoot) -> bool {
    [
        "/usr/bin/dracut",
        "/usr/sbin/dracut",
        "/sbin/dracut",
        "/bin/dracut",
    ]
    .iter()
    .any(|p| root.exists(p))
}

/// Puts [`BUILD_CONF`] into the image (before dracut can run there).
pub fn write_build_conf(root: &ImageRoot, fstab: Option<&str>) -> kiln_sandbox::root::Result<()> {
    root.create_dir_all("/etc/dracut.conf.d", 0o755)?;
    root.replace(BUILD_CONF, build_conf(fstab), 0o644)
}

/// Takes [`BUILD_CONF`] out of the image again, if it is there.
pub fn remove_build_conf(root: &ImageRoot) -> kiln_sandbox::root::Result<()> {
    match root.remove_file(BUILD_CONF) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planned_root_boot_and_esp_filesystems_are_added_once() {
        let fstab = "# comment ext4\n\
                     UUID=a / xfs defaults 0 0\n\
                     UUID=b /boot ext2 defaults 0 0\n\
                     UUID=c /boot/efi vfat umask=0077 0 0\n\
                     UUID=d /home ext3 defaults 0 0\n\
                     UUID=e none swap defaults 0 0\n\
                     UUID=f /var btrfs defaults,x-initrd.mount 0 0\n\
                     UUID=g /usr xfs defaults 0 0\n\
                     proc /proc proc defaults 0 0\n";
        assert_eq!(
            planned_filesystem_modules(fstab),
            ["xfs", "ext4", "vfat", "btrfs"]
        );
        let conf = build_conf(Some(fstab));
        assert!(conf.contains("hostonly_default_device=\"no\"\n"), "{conf}");
        assert!(conf.contains("hostonly_cmdline=\"no\"\n"), "{conf}");
        assert!(
            conf.ends_with("add_drivers+=\" xfs ext4 vfat btrfs \"\n"),
            "{conf}"
        );
    }

    #[test]
    fn without_a_disk_nothing_is_added_and_nothing_is_looked_up() {
        let conf = build_conf(None);
        assert!(!conf.contains("add_drivers"), "{conf}");
        assert!(conf.contains("hostonly_default_device=\"no\"\n"), "{conf}");
    }

    #[test]
    fn the_drop_in_is_written_when_dracut_can_run_in_the_install() {
        let dir = tempfile::tempdir().unwrap();
        let root = ImageRoot::open(dir.path()).unwrap();
        let pkg = |name: &str| PackageFile {
            name: name.into(),
            path: "/nonexistent.rpm".into(),
        };
        let (dracut, kernel, bash) = (pkg("dracut"), pkg("kernel"), pkg("bash"));
        assert!(runs_in(&root, &[&bash, &dracut]));
        assert!(!runs_in(&root, &[&kernel]));
        // A diff-disk base with dracut: only what runs it writes the drop-in.
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        std::fs::write(dir.path().join("usr/bin/dracut"), "").unwrap();
        assert!(runs_in(&root, &[&kernel]));
        assert!(!runs_in(&root, &[&bash]));
    }

    #[test]
    fn the_drop_in_is_written_and_removed_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = ImageRoot::open(dir.path()).unwrap();
        write_build_conf(&root, Some("UUID=a / xfs defaults 0 0\n")).unwrap();
        let text = std::fs::read_to_string(dir.path().join("etc/dracut.conf.d/99-kiln-build.conf"))
            .unwrap();
        assert!(text.contains(" xfs "), "{text}");
        remove_build_conf(&root).unwrap();
        assert!(!root.exists(BUILD_CONF));
        assert!(root.exists("/etc/dracut.conf.d"));
        // Removing it twice is no error (a cached package root restored without it).
        remove_build_conf(&root).unwrap();
    }
}
