//! The install config an attended install runs: the template (`attended_config.json` on the
//! media) with upstream's automatic disk layout and the user's choices (SPEC §5.3).

use super::state::Choices;
use serde_json::{json, Map, Value};

/// The template's SystemConfigs by name, and the first one's hostname (the hostname field's
/// initial value).
pub fn template_systems(template: &Value) -> Result<(Vec<String>, String), String> {
    let systems = template
        .get("SystemConfigs")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or("it has no SystemConfigs to install")?;
    let names = systems
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.get("Name")
                .and_then(Value::as_str)
                .filter(|n| !n.trim().is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| format!("System {}", i + 1))
        })
        .collect();
    let hostname = systems[0]
        .get("Hostname")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((names, hostname))
}

/// The firmware the installer runs under decides the installed system's BootType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Efi,
    Legacy,
}

impl Firmware {
    /// The running machine's: UEFI when the kernel was started by it.
    pub fn host() -> Self {
        if std::path::Path::new("/sys/firmware/efi").is_dir() {
            Firmware::Efi
        } else {
            Firmware::Legacy
        }
    }

    fn boot_type(self) -> &'static str {
        match self {
            Firmware::Efi => "efi",
            Firmware::Legacy => "legacy",
        }
    }
}

/// The config to install: the chosen SystemConfig of the template alone, with BootType, Hostname,
/// Users, Encryption and PartitionSettings from the choices, and one GPT disk laid out as
/// upstream's automatic partitioning does — `esp` 1–9 MiB (upstream's BootPartitionConfig: an
/// ESP mounted at /boot/efi under UEFI, a BIOS boot partition under legacy BIOS) and `rootfs`
/// from 9 MiB to the end, ext4 at `/` (flag `dmroot` when encrypted), both named and mounted by
/// PARTUUID — on the chosen disk. The template's other top-level keys are kept.
pub fn install_config(
    template: &Value,
    choices: &Choices,
    firmware: Firmware,
) -> Result<Value, String> {
    let mut config = template
        .as_object()
        .cloned()
        .ok_or("the template is not a JSON object")?;
    let mut system = template
        .get("SystemConfigs")
        .and_then(Value::as_array)
        .and_then(|a| a.get(choices.system))
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| format!("the template has no SystemConfig {}", choices.system))?;

    let (boot_flags, boot_setting) = match firmware {
        Firmware::Efi => (
            json!(["esp", "boot"]),
            json!({"ID": "esp", "MountPoint": "/boot/efi", "MountOptions": "umask=0077,nodev",
                   "MountIdentifier": "partuuid"}),
        ),
        Firmware::Legacy => (
            json!(["grub"]),
            json!({"ID": "esp", "MountPoint": "", "MountIdentifier": "partuuid"}),
        ),
    };
    let mut root_flags = Vec::new();
    if choices.encryption.is_some() {
        root_flags.push(json!("dmroot"));
    }
    config.insert(
        "Disks".into(),
        json!([{
            "PartitionTableType": "gpt",
            "TargetDisk": {"Type": "path", "Value": choices.disk},
            "Partitions": [
                {"ID": "esp", "Name": "esp", "Flags": boot_flags, "Start": 1, "End": 9,
                 "FsType": "fat32"},
                {"ID": "rootfs", "Name": "rootfs", "Flags": root_flags, "Start": 9, "End": 0,
                 "FsType": "ext4"},
            ],
        }]),
    );
    let set = |s: &mut Map<String, Value>, k: &str, v: Value| {
        s.insert(k.to_string(), v);
    };
    set(&mut system, "IsDefault", json!(true));
    set(&mut system, "BootType", json!(firmware.boot_type()));
    set(&mut system, "Hostname", json!(choices.hostname));
    set(
        &mut system,
        "PartitionSettings",
        json!([boot_setting, {"ID": "rootfs", "MountPoint": "/", "MountIdentifier": "partuuid"}]),
    );
    // upstream also lists root without a password; kiln leaves root as the distribution made
    // it (locked) rather than write an empty password, which would let anyone log in as root.
    set(
        &mut system,
        "Users",
        json!([{"Name": choices.user, "Password": choices.password,
                "SecondaryGroups": ["wheel"]}]),
    );
    set(
        &mut system,
        "Encryption",
        match &choices.encryption {
            Some(p) => json!({"Enable": true, "Password": p}),
            None => json!({"Enable": false, "Password": ""}),
        },
    );
    config.insert("SystemConfigs".into(), json!([system]));
    Ok(Value::Object(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_config::model::{BootType, MountIdentifier, PartitionFlag};

    const TEMPLATE: &str = r#"{
     "_comment": "kept",
     "SystemConfigs": [
      {"Name": "Full", "PackageLists": ["packages/0/full.json"], "Hostname": "full-host",
       "KernelOptions": {"default": "kernel"}},
      {"Name": "Core", "Packages": ["bash"], "KernelOptions": {"default": "kernel"},
       "Users": [{"Name": "root", "Password": "template"}], "IsDefault": false}
     ]
    }"#;

    fn choices(encryption: Option<&str>) -> Choices {
        Choices {
            system: 1,
            disk: "/dev/vda".into(),
            encryption: encryption.map(str::to_string),
            hostname: "box1".into(),
            user: "ada".into(),
            password: "s3cret".into(),
        }
    }

    /// The config as kiln's validator reads it (the same check the imager makes).
    fn validated(v: &Value) -> kiln_config::model::Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attendedconfig.json");
        std::fs::write(&path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        let opts = kiln_config::Options {
            package_checks: false,
            file_checks: false,
            ..Default::default()
        };
        let r = kiln_config::validate_file(&path, &opts).unwrap();
        match r.config {
            Some(c) => c.config,
            None => panic!("{}", r.report.render(false)),
        }
    }

    #[test]
    fn the_template_names_its_systems() {
        let t: Value = serde_json::from_str(TEMPLATE).unwrap();
        let (names, host) = template_systems(&t).unwrap();
        assert_eq!(names, ["Full", "Core"]);
        assert_eq!(host, "full-host");
        let e = template_systems(&json!({"SystemConfigs": []})).unwrap_err();
        assert!(e.contains("no SystemConfigs"), "{e}");
        let (names, _) = template_systems(&json!({"SystemConfigs": [{}]})).unwrap();
        assert_eq!(names, ["System 1"]);
    }

    #[test]
    fn the_choices_make_a_valid_config_with_upstreams_layout() {
        let t: Value = serde_json::from_str(TEMPLATE).unwrap();
        let v = install_config(&t, &choices(None), Firmware::Efi).unwrap();
        assert_eq!(v["_comment"], "kept");
        let c = validated(&v);
        assert_eq!(c.system_configs.len(), 1);
        let s = &c.system_configs[0];
        assert_eq!(s.name, "Core");
        assert!(s.is_default);
        assert_eq!(s.boot_type, BootType::Efi);
        assert_eq!(s.hostname, "box1");
        assert!(!s.encryption.enable);
        assert_eq!(s.users.len(), 1, "the template's users are replaced");
        assert_eq!(
            (
                s.users[0].name.as_str(),
                s.users[0].password.as_str(),
                &s.users[0].secondary_groups[..]
            ),
            ("ada", "s3cret", &["wheel".to_string()][..])
        );
        let d = &c.disks[0];
        assert!(d.target_disk.is_path());
        assert_eq!(d.target_disk.value, "/dev/vda");
        let p = &d.partitions;
        assert_eq!((p[0].start, p[0].end, p[1].start, p[1].end), (1, 9, 9, 0));
        assert!(p[0].has_flag(PartitionFlag::Esp));
        assert_eq!(
            (p[0].fs_type.as_str(), p[1].fs_type.as_str()),
            ("fat32", "ext4")
        );
        let esp = s.setting("esp").unwrap();
        assert_eq!(esp.mount_point, "/boot/efi");
        assert_eq!(esp.mount_identifier, MountIdentifier::PartUuid);
        assert_eq!(s.setting("rootfs").unwrap().mount_point, "/");
    }

    #[test]
    fn encryption_and_legacy_bios_change_the_layout() {
        let t: Value = serde_json::from_str(TEMPLATE).unwrap();
        let v = install_config(&t, &choices(Some("luks-pw")), Firmware::Legacy).unwrap();
        let c = validated(&v);
        let s = &c.system_configs[0];
        assert_eq!(s.boot_type, BootType::Legacy);
        assert!(s.encryption.enable);
        assert_eq!(s.encryption.password, "luks-pw");
        let p = &c.disks[0].partitions;
        assert!(p[0].has_flag(PartitionFlag::Grub));
        assert!(p[1].has_flag(PartitionFlag::DmRoot));
        assert_eq!(s.setting("esp").unwrap().mount_point, "");
    }

    #[test]
    fn a_bad_template_or_choice_is_an_error() {
        let t: Value = serde_json::from_str(TEMPLATE).unwrap();
        let mut c = choices(None);
        c.system = 5;
        assert!(install_config(&t, &c, Firmware::Efi)
            .unwrap_err()
            .contains("no SystemConfig 5"));
        assert!(install_config(&json!([]), &choices(None), Firmware::Efi).is_err());
    }
}
