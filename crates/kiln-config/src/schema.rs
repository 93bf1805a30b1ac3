//! The config format as data: every object type, its keys, their JSON types, defaults and docs.
//!
//! One table drives three things: matching keys while decoding (and suggesting the right key for
//! a typo), the Go type names upstream's type errors quote, and the JSON Schema `kiln schema`
//! prints for editors.

use crate::model;
use serde_json::{json, Map, Value};

/// The JSON shape of a field.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    Bool,
    /// Unsigned 64-bit integer.
    U64,
    /// Signed 64-bit integer.
    I64,
    StrList,
    StrMap,
    /// A string from a fixed set (an upstream enum type with its own decoder).
    Enum(&'static [&'static str]),
    EnumList(&'static [&'static str]),
    Obj(&'static TypeInfo),
    ObjList(&'static TypeInfo),
    /// `AdditionalFiles`: source path → a destination path, a `FileConfig`, or a list of them.
    FileMap,
}

/// One key of an object type.
#[derive(Debug)]
pub struct Field {
    /// The key as upstream spells it (matched case-insensitively).
    pub name: &'static str,
    pub ty: Ty,
    /// The Go type upstream's `cannot unmarshal` errors name for this field.
    pub go_type: &'static str,
    /// The default as JSON text, when it is not the type's zero value.
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

/// An object type of the config format.
#[derive(Debug)]
pub struct TypeInfo {
    /// The name used in the schema's `$defs` and in messages.
    pub name: &'static str,
    /// The Go struct type whose decoding reports type errors (`IntermediateType<Name>` for types
    /// with their own decoder).
    pub go_struct: &'static str,
    /// The prefix upstream wraps this type's errors in, for types with their own decoder.
    pub wrapper: Option<&'static str>,
    pub doc: &'static str,
    pub fields: &'static [Field],
    /// Keys upstream used to accept and now ignores, with what to say about them.
    pub removed: &'static [(&'static str, &'static str)],
}

impl TypeInfo {
    /// The field a key selects: exact spelling first, then Go's case-insensitive match.
    pub fn field(&self, key: &str) -> Option<&'static Field> {
        let fields: &'static [Field] = self.fields;
        fields
            .iter()
            .find(|f| f.name == key)
            .or_else(|| fields.iter().find(|f| crate::json::keys_match(key, f.name)))
    }

    /// The closest real key to a misspelt one, if any is close enough to suggest.
    pub fn suggest(&self, key: &str) -> Option<&'static str> {
        let key_l = key.to_lowercase();
        let fields: &'static [Field] = self.fields;
        fields
            .iter()
            .filter(|f| !f.name.starts_with("DefaultSystemConfig"))
            .map(|f| (edit_distance(&key_l, &f.name.to_lowercase()), f.name))
            .filter(|(d, name)| *d <= (name.len() / 4).clamp(1, 3))
            .min_by_key(|(d, _)| *d)
            .map(|(_, name)| name)
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

macro_rules! field {
    ($name:literal, $ty:expr, $go:literal, $doc:literal) => {
        Field {
            name: $name,
            ty: $ty,
            go_type: $go,
            default: None,
            doc: $doc,
        }
    };
    ($name:literal, $ty:expr, $go:literal, default $def:literal, $doc:literal) => {
        Field {
            name: $name,
            ty: $ty,
            go_type: $go,
            default: Some($def),
            doc: $doc,
        }
    };
}

pub static CONFIG: TypeInfo = TypeInfo {
    name: "Config",
    go_struct: "IntermediateTypeConfig",
    wrapper: Some("failed to parse [Config]:\n"),
    doc: "An Azure Linux image configuration.",
    fields: &[
        field!(
            "Disks",
            Ty::ObjList(&DISK),
            "[]configuration.Disk",
            "Disks to create. None: the config builds a root filesystem (or an ISO payload)."
        ),
        field!(
            "SystemConfigs",
            Ty::ObjList(&SYSTEM_CONFIG),
            "[]configuration.SystemConfig",
            "How each system is configured. At least one; image builds use the first."
        ),
        field!(
            "DefaultSystemConfig",
            Ty::Obj(&SYSTEM_CONFIG),
            "configuration.SystemConfig",
            "Written by isomaker and liveinstaller; decoded and validated, then ignored."
        ),
    ],
    removed: &[],
};

pub static DISK: TypeInfo = TypeInfo {
    name: "Disk",
    go_struct: "IntermediateTypeDisk",
    wrapper: Some("failed to parse [Disk]: "),
    doc: "A disk: its partition table, size, partitions and artifacts.",
    fields: &[
        field!("PartitionTableType", Ty::Enum(model::PartitionTableType::VALUES),
            "configuration.PartitionTableType", "gpt, mbr, or \"\" for no partition table."),
        field!("MaxSize", Ty::U64, "uint64", "Size of the raw disk in MiB. Required when there are partitions, unless TargetDisk is a path."),
        field!("TargetDisk", Ty::Obj(&TARGET_DISK), "configuration.TargetDisk",
            "Install onto a real device instead of a disk file (ISO and kickstart installs)."),
        field!("Artifacts", Ty::ObjList(&ARTIFACT), "[]configuration.Artifact",
            "Artifacts made from the whole disk. Present (even empty) makes imager keep disk0.raw."),
        field!("Partitions", Ty::ObjList(&PARTITION), "[]configuration.Partition",
            "Partitions, in disk order."),
        field!("RawBinaries", Ty::ObjList(&RAW_BINARY), "[]configuration.RawBinary",
            "Binaries written at fixed offsets after partitioning."),
    ],
    removed: &[],
};

pub static TARGET_DISK: TypeInfo = TypeInfo {
    name: "TargetDisk",
    go_struct: "TargetDisk",
    wrapper: None,
    doc: "A real block device to install onto.",
    fields: &[
        field!(
            "Type",
            Ty::Str,
            "string",
            "\"path\" to install onto the device in Value."
        ),
        field!("Value", Ty::Str, "string", "The device, e.g. /dev/sda."),
    ],
    removed: &[],
};

pub static ARTIFACT: TypeInfo = TypeInfo {
    name: "Artifact",
    go_struct: "Artifact",
    wrapper: None,
    doc: "An output file made from a disk, a partition or a root filesystem.",
    fields: &[
        field!("Name", Ty::Str, "string", "Base name of the output file."),
        field!("Type", Ty::Str, "string",
            "Format: raw, ext4, diff, rdiff, vhd, vhdx, qcow2, ova, gz, xz, tar.gz, tar.xz, squashfs, initrd."),
        field!("Compression", Ty::Str, "string", "Applied after Type: gz, xz, tar.gz, tar.xz, ..."),
    ],
    removed: &[],
};

pub static RAW_BINARY: TypeInfo = TypeInfo {
    name: "RawBinary",
    go_struct: "RawBinary",
    wrapper: None,
    doc: "A binary written to the disk like `dd bs=BlockSize seek=Seek conv=notrunc`.",
    fields: &[
        field!(
            "BinPath",
            Ty::Str,
            "string",
            "Path of the binary, relative to the base directory."
        ),
        field!("BlockSize", Ty::U64, "uint64", "dd block size in bytes."),
        field!("Seek", Ty::U64, "uint64", "Offset in blocks."),
    ],
    removed: &[],
};

pub static PARTITION: TypeInfo = TypeInfo {
    name: "Partition",
    go_struct: "IntermediateTypePartition",
    wrapper: Some("failed to parse [Partition]: "),
    doc: "A partition of a disk.",
    fields: &[
        field!("ID", Ty::Str, "string", "Identifier that PartitionSettings refer to; unique across disks."),
        field!("Name", Ty::Str, "string", "GPT partition name (PARTLABEL): ASCII, at most 35 characters."),
        field!("Start", Ty::U64, "uint64", "Start offset in MiB."),
        field!("End", Ty::U64, "uint64", "End offset in MiB (exclusive); 0 = to the end of the disk."),
        field!("FsType", Ty::Str, "string",
            "fat32, fat16, vfat, ext2, ext3, ext4, xfs, linux-swap, or \"\" for no filesystem."),
        field!("Type", Ty::Str, "string",
            "Friendly GPT type: linux, esp, xbootldr, linux-root-amd64, linux-swap, linux-home, linux-srv, linux-var, linux-tmp, linux-lvm, linux-raid, linux-luks, linux-dm-crypt."),
        field!("TypeUUID", Ty::Str, "string", "Explicit GPT type GUID; not together with Type."),
        field!("Flags", Ty::EnumList(model::PartitionFlag::VALUES), "[]configuration.PartitionFlag",
            "esp, grub, bios_grub, bios-grub, boot, dmroot."),
        field!("Artifacts", Ty::ObjList(&ARTIFACT), "[]configuration.Artifact",
            "Per-partition artifacts (Type ext4, diff or rdiff)."),
    ],
    removed: &[],
};

pub static SYSTEM_CONFIG: TypeInfo = TypeInfo {
    name: "SystemConfig",
    go_struct: "IntermediateTypeSystemConfig",
    wrapper: Some("failed to parse [SystemConfig]: "),
    doc: "How one system is configured: packages, users, files, scripts, boot.",
    fields: &[
        field!("IsDefault", Ty::Bool, "bool", "The installer's default choice; at most one per file."),
        field!("IsKickStartBoot", Ty::Bool, "bool", "Partition from a kickstart file (/tmp/part-include)."),
        field!("IsIsoInstall", Ty::Bool, "bool", "Set by isomaker; required for PackageRepos."),
        field!("BootType", Ty::Enum(model::BootType::VALUES), "string", "efi, legacy, none, or \"\"."),
        field!("EnableGrubMkconfig", Ty::Bool, "bool", default "true",
            "Generate /boot/grub2/grub.cfg with grub2-mkconfig inside the image."),
        field!("EnableSystemdFirstboot", Ty::Bool, "bool",
            "Write /etc/machine-id as \"uninitialized\" so systemd runs first-boot setup."),
        field!("Hostname", Ty::Str, "string", "Host name (a DNS name without underscores)."),
        field!("Name", Ty::Str, "string", "Name of this system configuration (required)."),
        field!("PackageLists", Ty::StrList, "[]string",
            "Package-list JSON files ({\"packages\": [...]}), relative to the base directory."),
        field!("Packages", Ty::StrList, "[]string",
            "Packages: name, or name with a condition (=, <, >, <=, >=) and version."),
        field!("KernelOptions", Ty::StrMap, "map[string]string",
            "\"default\" names the kernel package (required for disk images); keys starting with _ are comments."),
        field!("KernelCommandLine", Ty::Obj(&KERNEL_COMMAND_LINE), "configuration.KernelCommandLine",
            "Kernel command line settings."),
        field!("AdditionalFiles", Ty::FileMap, "map[string]configuration.FileConfigList",
            "Files to copy into the image: source path → destination path(s)."),
        field!("PartitionSettings", Ty::ObjList(&PARTITION_SETTING), "[]configuration.PartitionSetting",
            "Mount points of partitions. None: this system config builds a root filesystem."),
        field!("PreInstallScripts", Ty::ObjList(&INSTALL_SCRIPT), "[]configuration.InstallScript",
            "Scripts run on the installer before partitioning (kickstart installs only)."),
        field!("PostInstallScripts", Ty::ObjList(&INSTALL_SCRIPT), "[]configuration.InstallScript",
            "Scripts run inside the image after packages are installed."),
        field!("FinalizeImageScripts", Ty::ObjList(&INSTALL_SCRIPT), "[]configuration.InstallScript",
            "Scripts run inside the image at the very end."),
        field!("Networks", Ty::ObjList(&NETWORK), "[]configuration.Network",
            "Network configuration for live installs."),
        field!("PackageRepos", Ty::ObjList(&PACKAGE_REPO), "[]configuration.PackageRepo",
            "Package repositories for ISO installs."),
        field!("Groups", Ty::ObjList(&GROUP), "[]configuration.Group", "Groups to create."),
        field!("Users", Ty::ObjList(&USER), "[]configuration.User", "Users to create."),
        field!("Encryption", Ty::Obj(&ENCRYPTION), "configuration.RootEncryption",
            "LUKS encryption of the root partition."),
        field!("RemoveRpmDb", Ty::Bool, "bool", "Delete the rpm database at the end (manifests are kept)."),
        field!("PreserveTdnfCache", Ty::Bool, "bool", "Keep the tdnf cache in the image."),
        field!("EnableHidepid", Ty::Bool, "bool", "Mount /proc with hidepid=2."),
        field!("DisableRpmDocs", Ty::Bool, "bool", "Install packages without documentation (%_excludedocs)."),
        field!("OverrideRpmLocales", Ty::Str, "string",
            "Locales to install (%_install_langs), e.g. NONE or en:fr."),
    ],
    removed: &[
        ("ReadOnlyVerityRoot", "ReadOnlyVerityRoot was removed in Azure Linux 3.0; it is ignored"),
        ("HidepidDisabled", "HidepidDisabled was replaced by EnableHidepid in Azure Linux 3.0; it is ignored"),
    ],
};

pub static KERNEL_COMMAND_LINE: TypeInfo = TypeInfo {
    name: "KernelCommandLine",
    go_struct: "IntermediateTypeKernelCommandLine",
    wrapper: Some("failed to parse [KernelCommandLine]: "),
    doc: "Kernel command line settings.",
    fields: &[
        field!(
            "ImaPolicy",
            Ty::EnumList(model::ImaPolicy::VALUES),
            "[]configuration.ImaPolicy",
            "IMA policies: tcb, appraise_tcb, secure_boot."
        ),
        field!(
            "SELinux",
            Ty::Enum(model::SELinux::VALUES),
            "configuration.SELinux",
            "enforcing, permissive, force_enforcing, or \"\" (off)."
        ),
        field!(
            "SELinuxPolicy",
            Ty::Str,
            "string",
            "SELinux policy package (default selinux-policy)."
        ),
        field!(
            "EnableFIPS",
            Ty::Bool,
            "bool",
            "Boot in FIPS mode (fips=1); needs dracut-fips."
        ),
        field!(
            "CGroup",
            Ty::Enum(model::CGroup::VALUES),
            "configuration.CGroup",
            "version_one, version_two, or \"\"."
        ),
        field!(
            "ExtraCommandLine",
            Ty::Str,
            "string",
            "Appended to the kernel command line (no backticks)."
        ),
    ],
    removed: &[],
};

pub static PARTITION_SETTING: TypeInfo = TypeInfo {
    name: "PartitionSetting",
    go_struct: "IntermediateTypePartitionSetting",
    wrapper: Some("failed to parse [PartitionSetting]: "),
    doc: "Where and how a partition is mounted.",
    fields: &[
        field!("ID", Ty::Str, "string", "The partition's ID."),
        field!(
            "MountPoint",
            Ty::Str,
            "string",
            "Absolute mount point, or \"\" for none."
        ),
        field!(
            "MountOptions",
            Ty::Str,
            "string",
            "Mount options (defaults when empty)."
        ),
        field!("MountIdentifier", Ty::Enum(model::MountIdentifier::VALUES), "configuration.MountIdentifier",
            default "\"partuuid\"", "uuid, partuuid or partlabel: how fstab names the partition."),
        field!("RemoveDocs", Ty::Bool, "bool", "Parsed, unused."),
        field!(
            "OverlayBaseImage",
            Ty::Str,
            "string",
            "Base image for a diff-disk build."
        ),
        field!(
            "RdiffBaseImage",
            Ty::Str,
            "string",
            "Base image for an rdiff artifact."
        ),
    ],
    removed: &[],
};

pub static INSTALL_SCRIPT: TypeInfo = TypeInfo {
    name: "InstallScript",
    go_struct: "InstallScript",
    wrapper: None,
    doc: "A script, run as `/bin/sh -c \"<Path> <Args>\"`.",
    fields: &[
        field!(
            "Path",
            Ty::Str,
            "string",
            "Script path, relative to the base directory."
        ),
        field!(
            "Args",
            Ty::Str,
            "string",
            "Arguments (interpreted by the shell)."
        ),
    ],
    removed: &[],
};

pub static NETWORK: TypeInfo = TypeInfo {
    name: "Network",
    go_struct: "IntermediateTypeNetwork",
    wrapper: Some("failed to parse [Network]:\n"),
    doc: "A network interface configuration for live installs.",
    fields: &[
        field!(
            "BootProto",
            Ty::Str,
            "string",
            "dhcp, static, bootp, ibft, or \"\"."
        ),
        field!("GateWay", Ty::Str, "string", "Gateway IP address."),
        field!("Ip", Ty::Str, "string", "IP address."),
        field!("NetMask", Ty::Str, "string", "Netmask, as an address."),
        field!(
            "OnBoot",
            Ty::Bool,
            "bool",
            "Also configure the installed image."
        ),
        field!("NameServer", Ty::StrList, "[]string", "DNS servers."),
        field!(
            "Device",
            Ty::Str,
            "string",
            "Interface name or MAC address (or bootif)."
        ),
    ],
    removed: &[],
};

pub static PACKAGE_REPO: TypeInfo = TypeInfo {
    name: "PackageRepo",
    go_struct: "IntermediateTypePackageRepo",
    wrapper: Some("failed to parse [PackageRepo]: "),
    doc: "A package repository used by ISO installs.",
    fields: &[
        field!(
            "Name",
            Ty::Str,
            "string",
            "Repository id (required, unique)."
        ),
        field!("BaseUrl", Ty::Str, "string", "Repository URL (required)."),
        field!(
            "Install",
            Ty::Bool,
            "bool",
            "Also install the .repo file into the image."
        ),
        field!("GPGCheck", Ty::Bool, "bool", default "true", "Check package signatures."),
        field!("RepoGPGCheck", Ty::Bool, "bool", default "true", "Check repository metadata signatures."),
        field!("GPGKeys", Ty::Str, "string", default "\"file:///etc/pki/rpm-gpg/MICROSOFT-RPM-GPG-KEY\"",
            "GPG key URLs; custom keys need Install: true."),
    ],
    removed: &[],
};

pub static GROUP: TypeInfo = TypeInfo {
    name: "Group",
    go_struct: "Group",
    wrapper: None,
    doc: "A group to create.",
    fields: &[
        field!("Name", Ty::Str, "string", "Group name."),
        field!("GID", Ty::Str, "string", "Group id, as a string."),
    ],
    removed: &[],
};

pub static USER: TypeInfo = TypeInfo {
    name: "User",
    go_struct: "IntermediateTypeUser",
    wrapper: Some("failed to parse [User]: "),
    doc: "A user to create.",
    fields: &[
        field!("Name", Ty::Str, "string", "User name (required)."),
        field!(
            "UID",
            Ty::Str,
            "string",
            "User id as a decimal string in [0, 60000]."
        ),
        field!(
            "PasswordHashed",
            Ty::Bool,
            "bool",
            "Password is already a crypt hash."
        ),
        field!(
            "Password",
            Ty::Str,
            "string",
            "Plain-text password (hashed with SHA-512 crypt) or a hash."
        ),
        field!(
            "PasswordExpiresDays",
            Ty::I64,
            "int64",
            "-1: never; 0: untouched; n: expires n days after the last change."
        ),
        field!(
            "SSHPubKeyPaths",
            Ty::StrList,
            "[]string",
            "Public key files, relative to the base directory."
        ),
        field!("SSHPubKeys", Ty::StrList, "[]string", "Public keys."),
        field!("PrimaryGroup", Ty::Str, "string", "Primary group."),
        field!(
            "SecondaryGroups",
            Ty::StrList,
            "[]string",
            "Supplementary groups."
        ),
        field!("StartupCommand", Ty::Str, "string", "Login shell."),
        field!("HomeDirectory", Ty::Str, "string", "Home directory."),
    ],
    removed: &[],
};

pub static ENCRYPTION: TypeInfo = TypeInfo {
    name: "RootEncryption",
    go_struct: "RootEncryption",
    wrapper: None,
    doc: "LUKS encryption of the root partition (needs the dmroot flag on it).",
    fields: &[
        field!("Enable", Ty::Bool, "bool", "Encrypt the root partition."),
        field!("Password", Ty::Str, "string", "Passphrase."),
    ],
    removed: &[],
};

pub static FILE_CONFIG: TypeInfo = TypeInfo {
    name: "FileConfig",
    go_struct: "IntermediateTypeFileConfig",
    wrapper: Some("failed to parse [FileConfig]: "),
    doc: "A destination of an additional file.",
    fields: &[
        field!(
            "Path",
            Ty::Str,
            "string",
            "Absolute destination path in the image."
        ),
        field!(
            "Permissions",
            Ty::Str,
            "configuration.FilePermissions",
            "Octal mode as a string, e.g. \"644\"."
        ),
    ],
    removed: &[],
};

/// The object types, in the order the schema lists them.
const ALL: &[&TypeInfo] = &[
    &CONFIG,
    &DISK,
    &TARGET_DISK,
    &ARTIFACT,
    &RAW_BINARY,
    &PARTITION,
    &SYSTEM_CONFIG,
    &KERNEL_COMMAND_LINE,
    &PARTITION_SETTING,
    &INSTALL_SCRIPT,
    &NETWORK,
    &PACKAGE_REPO,
    &GROUP,
    &USER,
    &ENCRYPTION,
    &FILE_CONFIG,
];

fn field_schema(f: &Field) -> Value {
    let r = |t: &TypeInfo| json!({ "$ref": format!("#/$defs/{}", t.name) });
    let mut s = match f.ty {
        Ty::Str => json!({ "type": "string" }),
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::U64 => json!({ "type": "integer", "minimum": 0 }),
        Ty::I64 => json!({ "type": "integer" }),
        Ty::StrList => json!({ "type": ["array", "null"], "items": { "type": "string" } }),
        Ty::StrMap => {
            json!({ "type": ["object", "null"], "additionalProperties": { "type": "string" } })
        }
        Ty::Enum(values) => json!({ "type": "string", "enum": values }),
        Ty::EnumList(values) => {
            json!({ "type": ["array", "null"], "items": { "type": "string", "enum": values } })
        }
        Ty::Obj(t) => r(t),
        Ty::ObjList(t) => json!({ "type": ["array", "null"], "items": r(t) }),
        Ty::FileMap => json!({
            "type": ["object", "null"],
            "additionalProperties": {
                "anyOf": [
                    { "type": "string", "minLength": 1 },
                    r(&FILE_CONFIG),
                    { "type": "array", "minItems": 1,
                      "items": { "anyOf": [ { "type": "string", "minLength": 1 }, r(&FILE_CONFIG) ] } }
                ]
            }
        }),
    };
    let obj = s.as_object_mut().expect("field schemas are objects");
    obj.insert("description".into(), json!(f.doc));
    if let Some(d) = f.default {
        obj.insert(
            "default".into(),
            serde_json::from_str(d).expect("defaults are JSON"),
        );
    }
    if f.name == "Permissions" {
        obj.insert("pattern".into(), json!("^[0-7]{1,3}$"));
    }
    s
}

fn type_schema(t: &TypeInfo) -> Value {
    let props: Map<String, Value> = t
        .fields
        .iter()
        .map(|f| (f.name.to_string(), field_schema(f)))
        .collect();
    json!({
        "type": "object",
        "description": t.doc,
        "properties": props,
        // Upstream ignores unknown keys (and configs use them as comments).
        "additionalProperties": true,
    })
}

/// A JSON Schema (draft 2020-12) of the image config format, for editors.
pub fn json_schema() -> Value {
    let defs: Map<String, Value> = ALL
        .iter()
        .map(|t| (t.name.to_string(), type_schema(t)))
        .collect();
    let mut root = type_schema(&CONFIG);
    let obj = root.as_object_mut().expect("object");
    obj.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    obj.insert(
        "$id".into(),
        json!("https://kiln.invalid/schema/image-config.json"),
    );
    obj.insert("title".into(), json!("Azure Linux image configuration"));
    obj.insert(
        "description".into(),
        json!("Azure Linux 3.0 image configuration, as read by kiln and the Azure Linux toolkit. Keys are matched case-insensitively; unknown keys are ignored."),
    );
    obj.insert("$defs".into(), Value::Object(defs));
    root
}

/// The JSON Schema of a package-list file.
pub fn package_list_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Azure Linux package list",
        "type": "object",
        "properties": { "packages": { "type": "array", "items": { "type": "string" } } },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(CONFIG.suggest("SystemConfig"), Some("SystemConfigs"));
        assert_eq!(
            SYSTEM_CONFIG.suggest("PartitionSetings"),
            Some("PartitionSettings")
        );
        assert_eq!(SYSTEM_CONFIG.suggest("Hostnme"), Some("Hostname"));
        assert_eq!(SYSTEM_CONFIG.suggest("_comment"), None);
        assert_eq!(USER.suggest("Banana"), None);
    }

    #[test]
    fn schema_lists_every_type_and_default() {
        let s = json_schema();
        for t in ALL {
            assert!(s["$defs"][t.name].is_object(), "{}", t.name);
        }
        assert_eq!(
            s["$defs"]["SystemConfig"]["properties"]["EnableGrubMkconfig"]["default"],
            json!(true)
        );
        assert_eq!(
            s["$defs"]["PartitionSetting"]["properties"]["MountIdentifier"]["default"],
            json!("partuuid")
        );
    }
}
