//! What an encrypted root (`Encryption.Enable`, SPEC §3.4) puts inside the image: the key file
//! `/etc/default.keyfile` (mode 000), the `/etc/crypttab` line that names it, and an initramfs
//! regenerated with dracut's crypt and lvm modules and both files, so that the machine unlocks
//! its root at boot without asking for the password. The volume itself (LUKS1 + LVM2) is
//! written by kiln-crypt when the disk is assembled (kiln-imager).

use crate::finish::{run_in, Error};
use kiln_sandbox::{ImageRoot, View};
use zeroize::Zeroizing;

/// Where upstream puts the key file (its `diskutils.DefaultKeyFilePath`).
pub const KEYFILE: &str = "/etc/default.keyfile";
/// The device the root filesystem is on once dracut has opened LUKS and activated LVM: what
/// fstab and the kernel command line name.
pub const ROOT_DEVICE: &str = "/dev/mapper/cryptVG-root";
/// dracut modules upstream adds (`--add`).
pub const DRACUT_MODULES: &str = "dm crypt crypt-gpg crypt-loop lvm";
/// kiln's dracut drop-in: the same modules and files for every later `dracut` run in the
/// image (a kernel update), which upstream's one-off command line does not cover.
pub const DRACUT_CONF: &str = "/etc/dracut.conf.d/10-kiln-encrypted-root.conf";

/// The encrypted root as the image sees it.
pub struct EncryptedRoot {
    /// The LUKS UUID (`blkid` of the partition).
    pub luks_uuid: String,
    /// The key file's bytes (key slot 1), wiped from memory when dropped.
    pub keyfile: Zeroizing<Vec<u8>>,
}

impl EncryptedRoot {
    /// The line upstream appends to `/etc/crypttab`.
    pub fn crypttab_line(&self) -> String {
        format!("luks-{0} UUID={0} {KEYFILE} luks,discard\n", self.luks_uuid)
    }

    /// What upstream puts on the kernel command line (`{{.LuksUUID}} {{.LVM}}`).
    pub fn cmdline(&self) -> (String, &'static str) {
        (
            format!("luks.uuid={}", self.luks_uuid),
            "rd.lvm.lv=cryptVG/root",
        )
    }
}

/// The key file, mode 000 (upstream copies it as an AdditionalFile after `chmod 000`).
pub fn write_keyfile(root: &ImageRoot, enc: &EncryptedRoot) -> Result<(), Error> {
    root.create_dir_all("/etc", 0o755)?;
    root.replace(KEYFILE, enc.keyfile.as_slice(), 0o000)?;
    Ok(())
}

/// Appends the crypttab line, as upstream does.
pub fn write_crypttab(root: &ImageRoot, enc: &EncryptedRoot) -> Result<(), Error> {
    root.append("/etc/crypttab", enc.crypttab_line(), 0o644)?;
    Ok(())
}

/// The initramfs regenerated as upstream does it (`dracut -f --no-hostonly --fstab --kmoddir
/// /lib/modules/<kver> --add "dm crypt crypt-gpg crypt-loop lvm" -I "/etc/crypttab
/// /etc/default.keyfile" <initrd> <kver>`), in the build sandbox with the image as `/`; kiln
/// first writes [`DRACUT_CONF`] so that later runs keep both. Exactly one
/// `/boot/initramfs-*.img` must exist (upstream's error otherwise). An image without dracut (the
/// busybox sample) keeps its initramfs, which then cannot unlock the root: the returned note
/// says so.
pub fn regenerate_initramfs(
    root: &ImageRoot,
    run: &crate::RunOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<String>, Error> {
    if !crate::dracut::in_image(root) {
        return Ok(vec![
            "warning: dracut is not in the image, so its initramfs was not regenerated with the \
             crypt and lvm modules and the key file: it cannot unlock the encrypted root at boot \
             (add the dracut, cryptsetup and lvm2 packages)"
                .into(),
        ]);
    }
    let mut initrds: Vec<String> = match root.read_dir("/boot") {
        Ok(entries) => entries
            .into_iter()
            .filter_map(|e| e.name.to_str().map(String::from))
            .filter(|n| n.starts_with("initramfs-") && n.ends_with(".img"))
            .map(|n| format!("/boot/{n}"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    initrds.sort();
    let [initrd] = initrds.as_slice() else {
        return Err(Error::Tool {
            what: "regenerating the initramfs for the encrypted root".into(),
            output: format!("unable to find one intird image: {initrds:?}"),
        });
    };
    let kver = initrd
        .trim_start_matches("/boot/initramfs-")
        .trim_end_matches(".img");
    root.create_dir_all("/etc/dracut.conf.d", 0o755)?;
    root.replace(
        DRACUT_CONF,
        format!(
            "# Written by kiln: the root is LUKS + LVM, unlocked at boot with {KEYFILE}.\n\
             add_dracutmodules+=\" {DRACUT_MODULES} \"\n\
             install_items+=\" /etc/crypttab {KEYFILE} \"\n"
        ),
        0o644,
    )?;
    let kmoddir = format!("/lib/modules/{kver}");
    let files = format!("/etc/crypttab {KEYFILE}");
    run_in(
        &run.sandbox(root.path(), View::Image),
        &[
            "dracut",
            "-f",
            "--no-hostonly",
            "--fstab",
            "--kmoddir",
            &kmoddir,
            "--add",
            DRACUT_MODULES,
            "-I",
            &files,
            initrd,
            kver,
        ],
        "dracut",
        log,
    )?;
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn enc() -> EncryptedRoot {
        EncryptedRoot {
            luks_uuid: "69eb70da-39a9-45f8-a002-354a88575b6e".into(),
            keyfile: Zeroizing::new(vec![0, 1, b'\n', 255]),
        }
    }

    #[test]
    fn crypttab_and_cmdline_are_upstreams() {
        assert_eq!(
            enc().crypttab_line(),
            "luks-69eb70da-39a9-45f8-a002-354a88575b6e UUID=69eb70da-39a9-45f8-a002-354a88575b6e \
             /etc/default.keyfile luks,discard\n"
        );
        let (luks, lvm) = enc().cmdline();
        assert_eq!(luks, "luks.uuid=69eb70da-39a9-45f8-a002-354a88575b6e");
        assert_eq!(lvm, "rd.lvm.lv=cryptVG/root");
    }

    #[test]
    fn keyfile_is_mode_000_and_crypttab_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/crypttab"), "# shipped\n").unwrap();
        let root = ImageRoot::open(dir.path()).unwrap();
        write_keyfile(&root, &enc()).unwrap();
        write_crypttab(&root, &enc()).unwrap();
        let key = dir.path().join("etc/default.keyfile");
        assert_eq!(std::fs::read(&key).unwrap(), [0, 1, b'\n', 255]);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0);
        let tab = std::fs::read_to_string(dir.path().join("etc/crypttab")).unwrap();
        assert!(tab.starts_with("# shipped\nluks-69eb70da"), "{tab}");
    }

    #[test]
    fn without_dracut_the_initramfs_stays_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let root = ImageRoot::open(dir.path()).unwrap();
        let notes =
            regenerate_initramfs(&root, &crate::RunOptions::default(), &mut |_| {}).unwrap();
        assert!(notes[0].contains("dracut is not in the image"), "{notes:?}");
    }
}
