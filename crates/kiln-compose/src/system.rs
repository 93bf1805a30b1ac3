//! The image's identity and mount files: `/etc/hostname`, the `/etc/hosts` entry and the
//! `/etc/fstab` lines (SPEC §3.5 steps 7 and 12, §3.6.1).

use kiln_config::model::MountIdentifier;
use kiln_sandbox::root::{self, ImageRoot};

/// Why a system file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] root::Error),
    #[error("must select a mount identifier for device ({0})")]
    NoIdentifier(String),
    #[error("partition '{0}' is mounted by PARTLABEL but has no Name")]
    NoLabel(String),
    #[error("partition '{partition}': its fstab {field} '{value}' holds whitespace or a control character, which would split the fstab line")]
    FstabField {
        partition: String,
        field: &'static str,
        value: String,
    },
}

/// `/etc/hostname` = the name, without a newline (as upstream writes it).
pub fn write_hostname(root: &ImageRoot, hostname: &str) -> Result<(), Error> {
    root.write("/etc/hostname", hostname, 0o644)?;
    Ok(())
}

/// Adds `127.0.0.1   <hostname>` to `/etc/hosts` as upstream's `sed "6i…"` does: before the
/// sixth line. A file shorter than that gets it at the end (sed would silently add nothing).
pub fn add_hosts_entry(root: &ImageRoot, hostname: &str) -> Result<(), Error> {
    let path = "/etc/hosts";
    let text = match root.read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let mut text = text;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let entry = format!("127.0.0.1   {hostname}\n");
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    lines.insert(lines.len().min(5), &entry);
    root.write(path, lines.concat(), 0o644)?;
    Ok(())
}

/// A mounted partition, with what kiln knows about it after making it.
#[derive(Debug, Clone)]
pub struct Mount<'a> {
    /// The partition's config ID (for messages).
    pub partition: &'a str,
    pub mount_point: &'a str,
    /// The formatted type: `vfat` for fat32/fat16, otherwise the FsType.
    pub fs_type: &'a str,
    pub options: &'a str,
    pub identifier: MountIdentifier,
    pub fs_uuid: &'a str,
    pub partuuid: &'a str,
    pub partlabel: &'a str,
    /// A device path written as it is, whatever the MountIdentifier: the encrypted root's
    /// `/dev/mapper/cryptVG-root`, as upstream writes encrypted devices.
    pub mapper: Option<&'a str>,
}

impl Mount<'_> {
    /// `UUID=…`, `PARTUUID=…` or `PARTLABEL=…`, as the MountIdentifier asks.
    pub fn device(&self) -> Result<String, Error> {
        if let Some(path) = self.mapper {
            return Ok(path.to_string());
        }
        match self.identifier {
            MountIdentifier::Uuid => Ok(format!("UUID={}", self.fs_uuid)),
            MountIdentifier::PartUuid => Ok(format!("PARTUUID={}", self.partuuid)),
            MountIdentifier::PartLabel if self.partlabel.is_empty() => {
                Err(Error::NoLabel(self.partition.into()))
            }
            MountIdentifier::PartLabel => Ok(format!("PARTLABEL={}", self.partlabel)),
            MountIdentifier::None => Err(Error::NoIdentifier(self.partition.into())),
        }
    }
}

/// The lines upstream appends to `/etc/fstab`: the mounts sorted by mount point (`/` passes 1,
/// the rest 2; no options = `defaults`), the hidepid `/proc` line, then each swap partition —
/// by the identifier given here, where upstream writes the build host's device path.
pub fn fstab_lines(mounts: &[Mount], hidepid: bool, swaps: &[String]) -> Result<String, Error> {
    let mut sorted: Vec<&Mount> = mounts
        .iter()
        .filter(|m| !m.mount_point.is_empty())
        .collect();
    sorted.sort_by(|a, b| a.mount_point.cmp(b.mount_point));
    let mut out = String::new();
    for m in sorted {
        let options = if m.options.is_empty() {
            "defaults"
        } else {
            m.options
        };
        let pass = if m.mount_point == "/" { 1 } else { 2 };
        let device = m.device()?;
        for (field, value) in [
            ("device", device.as_str()),
            ("mount point", m.mount_point),
            ("type", m.fs_type),
            ("options", options),
        ] {
            if value.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err(Error::FstabField {
                    partition: m.partition.into(),
                    field,
                    value: value.escape_debug().to_string(),
                });
            }
        }
        out.push_str(&format!(
            "{device} {} {} {options} 0 {pass}\n",
            m.mount_point, m.fs_type
        ));
    }
    if hidepid {
        out.push_str("proc /proc proc rw,nosuid,nodev,noexec,relatime,hidepid=2 0 0\n");
    }
    for s in swaps {
        out.push_str(&format!("{s} none swap sw 0 0\n"));
    }
    Ok(out)
}

/// Writes the systemd-networkd file of every network with `OnBoot` into the image, as
/// upstream's live installer copies it there (SPEC §1.10), naming the interface by `Device`.
/// `bootif` (the interface the machine booted from) cannot be known when an image is built:
/// such networks are returned for the caller to warn about.
pub fn write_networks(
    root: &ImageRoot,
    networks: &[kiln_config::model::Network],
) -> Result<Vec<String>, Error> {
    let mut skipped = Vec::new();
    for n in networks.iter().filter(|n| n.on_boot) {
        let device = n.device.trim();
        if device.eq_ignore_ascii_case("bootif") {
            skipped.push(format!(
                "network on {device} (OnBoot): the boot interface is known only on the machine \
                 that boots; no networkd file written"
            ));
            continue;
        }
        let (name, content) = n.networkd_file(device);
        root.create_dir_all("/etc/systemd/network", 0o755)?;
        root.write(format!("/etc/systemd/network/{name}"), content, 0o644)?;
    }
    Ok(skipped)
}

/// Sets `SELINUX=<mode>` in the image's `/etc/selinux/config` (upstream's `sed`) and returns
/// the policy type (`SELINUXTYPE=`).
pub fn set_selinux_mode(root: &ImageRoot, mode: &str) -> Result<String, Error> {
    let path = "/etc/selinux/config";
    let text = root.read_to_string(path)?;
    let mut policy = String::new();
    let edited: Vec<String> = text
        .lines()
        .map(|l| {
            if let Some(t) = l.strip_prefix("SELINUXTYPE=") {
                policy = t.to_string();
            }
            if l.starts_with("SELINUX=") {
                format!("SELINUX={mode}")
            } else {
                l.to_string()
            }
        })
        .collect();
    root.write(path, edited.join("\n") + "\n", 0o644)?;
    Ok(policy)
}

/// Appends `lines` to the image's `/etc/fstab` (created if the packages shipped none).
pub fn append_fstab(root: &ImageRoot, lines: &str) -> Result<(), Error> {
    root.append("/etc/fstab", lines, 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount<'a>(mp: &'a str, fs: &'a str, opts: &'a str, id: MountIdentifier) -> Mount<'a> {
        Mount {
            partition: "p",
            mount_point: mp,
            fs_type: fs,
            options: opts,
            identifier: id,
            fs_uuid: "fs-uuid",
            partuuid: "part-uuid",
            partlabel: "label",
            mapper: None,
        }
    }

    #[test]
    fn an_encrypted_root_is_named_by_its_mapper_path_whatever_the_identifier() {
        let root = Mount {
            mapper: Some("/dev/mapper/cryptVG-root"),
            ..mount("/", "ext4", "", MountIdentifier::PartUuid)
        };
        assert_eq!(
            fstab_lines(&[root], false, &[]).unwrap(),
            "/dev/mapper/cryptVG-root / ext4 defaults 0 1\n"
        );
    }

    #[test]
    fn fstab_as_upstream_writes_it() {
        let mounts = [
            mount("/boot/efi", "vfat", "umask=0077", MountIdentifier::PartUuid),
            mount("/", "ext4", "", MountIdentifier::PartUuid),
            mount("/var", "xfs", "", MountIdentifier::Uuid),
            mount("/home", "ext4", "", MountIdentifier::PartLabel),
        ];
        assert_eq!(
            fstab_lines(&mounts, true, &["PARTUUID=swap-uuid".into()]).unwrap(),
            "PARTUUID=part-uuid / ext4 defaults 0 1\n\
             PARTUUID=part-uuid /boot/efi vfat umask=0077 0 2\n\
             PARTLABEL=label /home ext4 defaults 0 2\n\
             UUID=fs-uuid /var xfs defaults 0 2\n\
             proc /proc proc rw,nosuid,nodev,noexec,relatime,hidepid=2 0 0\n\
             PARTUUID=swap-uuid none swap sw 0 0\n"
        );
        let e = fstab_lines(
            &[mount("/srv\n/ /x", "ext4", "", MountIdentifier::Uuid)],
            false,
            &[],
        );
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("would split the fstab line"));
        let e = fstab_lines(&[mount("/", "ext4", "", MountIdentifier::None)], false, &[]);
        assert_eq!(
            e.unwrap_err().to_string(),
            "must select a mount identifier for device (p)"
        );
    }

    #[test]
    fn hostname_and_hosts() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        let root = ImageRoot::open(d.path()).unwrap();
        write_hostname(&root, "demo").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/hostname")).unwrap(),
            "demo"
        );
        let hosts = d.path().join("etc/hosts");
        std::fs::write(&hosts, "1\n2\n3\n4\n5\n6\n7\n").unwrap();
        add_hosts_entry(&root, "demo").unwrap();
        assert_eq!(
            std::fs::read_to_string(&hosts).unwrap(),
            "1\n2\n3\n4\n5\n127.0.0.1   demo\n6\n7\n"
        );
        std::fs::write(&hosts, "1\n2").unwrap();
        add_hosts_entry(&root, "demo").unwrap();
        assert_eq!(
            std::fs::read_to_string(&hosts).unwrap(),
            "1\n2\n127.0.0.1   demo\n"
        );
    }

    #[test]
    fn networks_and_selinux_mode_go_into_the_image() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/selinux")).unwrap();
        let net = |device: &str, on_boot| kiln_config::model::Network {
            boot_proto: "static".into(),
            gateway: "192.168.1.1".into(),
            ip: "192.168.1.10".into(),
            netmask: "255.255.255.0".into(),
            on_boot,
            name_servers: vec!["1.1.1.1".into()],
            device: device.into(),
        };
        let root = ImageRoot::open(d.path()).unwrap();
        let skipped = write_networks(
            &root,
            &[net("eth0", true), net("eth1", false), net("bootif", true)],
        )
        .unwrap();
        assert_eq!(skipped.len(), 1, "bootif cannot be known at build time");
        let file = d.path().join("etc/systemd/network/10-static-eth0.network");
        assert_eq!(
            std::fs::read_to_string(file).unwrap(),
            "[Match]\nName=eth0\n\n[Network]\nAddress=192.168.1.10/24\nGateway=192.168.1.1\nDNS=1.1.1.1\n"
        );
        assert!(!d
            .path()
            .join("etc/systemd/network/10-static-eth1.network")
            .exists());

        std::fs::write(
            d.path().join("etc/selinux/config"),
            "# comment\nSELINUX=disabled\nSELINUXTYPE=targeted\n",
        )
        .unwrap();
        assert_eq!(set_selinux_mode(&root, "enforcing").unwrap(), "targeted");
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/selinux/config")).unwrap(),
            "# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n"
        );
        // Without the policy's file contexts in the image, labelling says what is missing.
        let e = crate::finish::label_selinux(&root, "targeted", &Default::default(), &mut |_| {})
            .unwrap_err();
        assert!(e.to_string().contains("install the policy package"), "{e}");
    }
}
