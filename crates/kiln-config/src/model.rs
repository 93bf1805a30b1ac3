//! The typed image configuration: the Azure Linux 3.0 schema (SPEC §1).
//!
//! Every field keeps upstream's type and default. Enumerations are Rust enums; values upstream
//! keeps as free strings (FsType, artifact types, BootType spellings checked elsewhere) stay strings
//! where upstream only checks them at build time.

use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// A string enumeration of the config format: the enum, its JSON spellings (`VALUES`), `parse`
/// and `as_str`.
macro_rules! string_enum {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $s:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The JSON spellings, in declaration order.
            pub const VALUES: &'static [&'static str] = &[$($s),+];

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($s => Some(Self::$variant),)+
                    _ => None,
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $s,)+
                }
            }
        }
    };
}

/// A whole config file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub disks: Vec<Disk>,
    pub system_configs: Vec<SystemConfig>,
}

impl Config {
    /// The SystemConfig installers offer by default: the first with `IsDefault`, else the first.
    pub fn default_system_config(&self) -> Option<&SystemConfig> {
        self.system_configs
            .iter()
            .find(|s| s.is_default)
            .or_else(|| self.system_configs.first())
    }

    /// Finds a partition by ID on any disk, with the index of its disk.
    pub fn find_partition(&self, id: &str) -> Option<(usize, &Partition)> {
        self.disks
            .iter()
            .enumerate()
            .find_map(|(i, d)| d.partitions.iter().find(|p| p.id == id).map(|p| (i, p)))
    }

    /// Every host path [`Config::resolve_paths`] resolves: RawBinaries, AdditionalFiles sources,
    /// PackageLists, scripts and SSH key files — the files a build reads besides the config.
    pub fn host_paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = Vec::new();
        for disk in &self.disks {
            paths.extend(disk.raw_binaries.iter().map(|b| b.bin_path.as_str()));
        }
        for sc in &self.system_configs {
            paths.extend(sc.additional_files.keys().map(String::as_str));
            paths.extend(sc.package_lists.iter().map(String::as_str));
            let scripts = sc
                .pre_install_scripts
                .iter()
                .chain(&sc.post_install_scripts)
                .chain(&sc.finalize_image_scripts);
            paths.extend(scripts.map(|s| s.path.as_str()));
            for user in &sc.users {
                paths.extend(user.ssh_pub_key_paths.iter().map(String::as_str));
            }
        }
        paths.retain(|p| !p.is_empty());
        paths
    }

    /// Makes every host path absolute against `base_dir` (SPEC §1.15, `LoadWithAbsolutePaths`):
    /// RawBinaries, AdditionalFiles sources, PackageLists, scripts and SSH key files. Destination
    /// paths, OverlayBaseImage and RdiffBaseImage are left as they are, as upstream does.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let abs = |p: &mut String| {
            if !p.is_empty() && !Path::new(p.as_str()).is_absolute() {
                *p = base_dir.join(&*p).to_string_lossy().into_owned();
            }
        };
        for disk in &mut self.disks {
            disk.raw_binaries
                .iter_mut()
                .for_each(|b| abs(&mut b.bin_path));
        }
        for sc in &mut self.system_configs {
            sc.additional_files = std::mem::take(&mut sc.additional_files)
                .into_iter()
                .map(|(mut src, dst)| {
                    abs(&mut src);
                    (src, dst)
                })
                .collect();
            sc.package_lists.iter_mut().for_each(abs);
            for script in sc
                .pre_install_scripts
                .iter_mut()
                .chain(&mut sc.post_install_scripts)
                .chain(&mut sc.finalize_image_scripts)
            {
                abs(&mut script.path);
            }
            for user in &mut sc.users {
                user.ssh_pub_key_paths.iter_mut().for_each(abs);
            }
        }
    }
}

string_enum! {
    /// Partition table kind (`PartitionTableType`).
    #[derive(Default)]
    pub enum PartitionTableType {
        /// `""`: no partition table.
        #[default]
        None = "",
        Gpt = "gpt",
        Mbr = "mbr",
    }
}

impl PartitionTableType {
    /// The label name parted uses (`mklabel`).
    pub fn parted_label(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gpt => "gpt",
            Self::Mbr => "msdos",
        }
    }
}

/// One disk (`Disks[]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Disk {
    pub partition_table_type: PartitionTableType,
    /// Size of the raw disk in MiB.
    pub max_size: u64,
    pub target_disk: TargetDisk,
    /// `None` when absent or null; `Some(vec![])` still asks imager for `disk0.raw`.
    pub artifacts: Option<Vec<Artifact>>,
    pub partitions: Vec<Partition>,
    pub raw_binaries: Vec<RawBinary>,
}

/// `TargetDisk`: `{"Type": "path", "Value": "/dev/sda"}` installs onto a real device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetDisk {
    pub ty: String,
    pub value: String,
}

impl TargetDisk {
    pub fn is_path(&self) -> bool {
        self.ty == "path"
    }
}

/// An output artifact (`{"Name", "Type", "Compression"}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Artifact {
    pub name: String,
    pub ty: String,
    pub compression: String,
}

/// A binary written at a fixed offset of the disk (`dd bs=BlockSize seek=Seek`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawBinary {
    pub bin_path: String,
    pub block_size: u64,
    pub seek: u64,
}

string_enum! {
    /// A partition flag.
    pub enum PartitionFlag {
        Esp = "esp",
        Grub = "grub",
        BiosGrub = "bios_grub",
        BiosGrubDash = "bios-grub",
        Boot = "boot",
        /// Marks the partition that becomes the device-mapper root when encryption is on.
        DmRoot = "dmroot",
    }
}

impl PartitionFlag {
    /// The parted flag this sets (`None` for the internal `dmroot` marker).
    pub fn parted_flag(self) -> Option<&'static str> {
        match self {
            Self::Esp => Some("esp"),
            Self::Grub | Self::BiosGrub | Self::BiosGrubDash => Some("bios_grub"),
            Self::Boot => Some("boot"),
            Self::DmRoot => None,
        }
    }
}

/// One partition of a disk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partition {
    pub id: String,
    /// GPT partition name (PARTLABEL).
    pub name: String,
    /// Start offset in MiB.
    pub start: u64,
    /// End offset in MiB (exclusive); 0 = to the end of the disk.
    pub end: u64,
    pub fs_type: String,
    /// Friendly GPT type name (see [`PARTITION_TYPES`]).
    pub ty: String,
    pub type_uuid: String,
    pub flags: Vec<PartitionFlag>,
    pub artifacts: Vec<Artifact>,
}

impl Partition {
    pub fn has_flag(&self, flag: PartitionFlag) -> bool {
        self.flags.contains(&flag)
    }
}

/// Friendly partition `Type` names and their GPT type GUIDs (upstream's table, exactly).
pub const PARTITION_TYPES: &[(&str, &str)] = &[
    ("linux", "0fc63daf-8483-4772-8e79-3d69d8477de4"),
    ("esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
    ("xbootldr", "bc13c2ff-59e6-4262-a352-b275fd6f7172"),
    ("linux-root-amd64", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"),
    ("linux-swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"),
    ("linux-home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915"),
    ("linux-srv", "3b8f8425-20e0-4f3b-907f-1a25a76f98e8"),
    ("linux-var", "4d21b016-b534-45c2-a9fb-5c16e091fd2d"),
    ("linux-tmp", "7ec6f557-3bc5-4aca-b293-16ef5df639d1"),
    ("linux-lvm", "e6d6d379-f507-44c2-a23c-238f2a3df928"),
    ("linux-raid", "a19d880f-05fc-4d3b-a006-743f0f84911e"),
    ("linux-luks", "ca7d7ccb-63ed-4c53-861c-1742536059cc"),
    ("linux-dm-crypt", "7ffec5c9-2d00-49b7-8941-3ea10a5586b7"),
];

/// The GPT type GUID of a friendly partition type name.
pub fn partition_type_guid(name: &str) -> Option<&'static str> {
    PARTITION_TYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, g)| *g)
}

/// Filesystems upstream's imager can format (`FsType`); anything else fails at build time.
pub const FS_TYPES: &[&str] = &[
    "fat32",
    "fat16",
    "vfat",
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "linux-swap",
    "",
];

string_enum! {
    /// Boot loader kind (`BootType`).
    #[derive(Default)]
    pub enum BootType {
        /// `""`: not set (a build error for disk images, fine for rootfs).
        #[default]
        Unset = "",
        Efi = "efi",
        Legacy = "legacy",
        None = "none",
    }
}

string_enum! {
    /// How fstab and the kernel command line identify a partition (`MountIdentifier`).
    #[derive(Default)]
    pub enum MountIdentifier {
        /// An explicit `""`: fails when fstab is written.
        None = "",
        Uuid = "uuid",
        /// The default when the key is absent.
        #[default]
        PartUuid = "partuuid",
        PartLabel = "partlabel",
    }
}

/// Where and how a partition is mounted (`PartitionSettings[]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionSetting {
    pub id: String,
    pub mount_point: String,
    pub mount_options: String,
    pub mount_identifier: MountIdentifier,
    pub remove_docs: bool,
    pub overlay_base_image: String,
    pub rdiff_base_image: String,
}

string_enum! {
    /// An IMA policy name (`KernelCommandLine.ImaPolicy[]`).
    pub enum ImaPolicy {
        Tcb = "tcb",
        AppraiseTcb = "appraise_tcb",
        SecureBoot = "secure_boot",
        None = "",
    }
}

string_enum! {
    /// SELinux mode (`KernelCommandLine.SELinux`).
    #[derive(Default)]
    pub enum SELinux {
        /// `""`: SELinux off.
        #[default]
        Off = "",
        Enforcing = "enforcing",
        Permissive = "permissive",
        ForceEnforcing = "force_enforcing",
    }
}

string_enum! {
    /// Cgroup hierarchy (`KernelCommandLine.CGroup`).
    #[derive(Default)]
    pub enum CGroup {
        /// `""`: the distribution's default.
        #[default]
        Default = "",
        V1 = "version_one",
        V2 = "version_two",
    }
}

/// Kernel command line settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelCommandLine {
    pub ima_policy: Vec<ImaPolicy>,
    pub selinux: SELinux,
    /// Package that provides the SELinux policy (`""` means `selinux-policy`).
    pub selinux_policy: String,
    pub enable_fips: bool,
    pub cgroup: CGroup,
    pub extra_command_line: String,
}

impl KernelCommandLine {
    /// The SELinux policy package the validator requires when SELinux is on.
    pub fn selinux_policy_package(&self) -> &str {
        if self.selinux_policy.is_empty() {
            "selinux-policy"
        } else {
            &self.selinux_policy
        }
    }
}

/// One destination of an additional file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileConfig {
    pub path: String,
    /// Mode bits to `chmod` after copying (octal string in JSON).
    pub permissions: Option<u32>,
}

/// A script run during the build: `/bin/sh -c "<Path> <Args>"`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstallScript {
    pub path: String,
    pub args: String,
}

/// Network settings for live installs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Network {
    pub boot_proto: String,
    pub gateway: String,
    pub ip: String,
    pub netmask: String,
    pub on_boot: bool,
    /// JSON key `NameServer` (singular), as upstream.
    pub name_servers: Vec<String>,
    pub device: String,
}

impl Network {
    /// Prefix length of `NetMask` (`255.255.255.0` → 24), when it is a contiguous IPv4 mask.
    pub fn prefix_len(&self) -> Option<u32> {
        let mask: std::net::Ipv4Addr = self.netmask.parse().ok()?;
        let bits = u32::from(mask);
        (bits.leading_ones() + bits.trailing_zeros() == 32).then(|| bits.leading_ones())
    }

    /// The systemd-networkd file upstream writes for this network on interface `ifname`:
    /// its name (`10-<BootProto>-<ifname>.network`) and content.
    pub fn networkd_file(&self, ifname: &str) -> (String, String) {
        let mut lines = vec![
            "[Match]".to_string(),
            format!("Name={ifname}"),
            String::new(),
            "[Network]".to_string(),
        ];
        if !self.ip.is_empty() && !self.netmask.is_empty() {
            if let Some(len) = self.prefix_len() {
                lines.push(format!("Address={}/{len}", self.ip));
            }
        }
        if !self.gateway.is_empty() {
            lines.push(format!("Gateway={}", self.gateway));
        }
        lines.extend(self.name_servers.iter().map(|ns| format!("DNS={ns}")));
        let name = format!("10-{}-{ifname}.network", self.boot_proto.trim());
        (name, lines.join("\n") + "\n")
    }
}

/// The GPG key upstream uses when a PackageRepo names none.
pub const DEFAULT_GPG_KEYS: &str = "file:///etc/pki/rpm-gpg/MICROSOFT-RPM-GPG-KEY";

/// A package repository for ISO installs.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageRepo {
    pub name: String,
    pub base_url: String,
    pub install: bool,
    pub gpg_check: bool,
    pub repo_gpg_check: bool,
    pub gpg_keys: String,
}

impl Default for PackageRepo {
    fn default() -> Self {
        PackageRepo {
            name: String::new(),
            base_url: String::new(),
            install: false,
            gpg_check: true,
            repo_gpg_check: true,
            gpg_keys: DEFAULT_GPG_KEYS.to_string(),
        }
    }
}

impl PackageRepo {
    /// The `.repo` file upstream writes for this repository: its name and content.
    pub fn repo_file(&self) -> (String, String) {
        let flag = |b: bool| if b { "1" } else { "0" };
        let content = format!(
            "[{name}]\nname={name}\nbaseurl={url}\ngpgkey={keys}\ngpgcheck={gpg}\nrepo_gpgcheck={repo_gpg}\nenabled=1\nskip_if_unavailable=True\nsslverify=1\n",
            name = self.name,
            url = self.base_url,
            keys = self.gpg_keys,
            gpg = flag(self.gpg_check),
            repo_gpg = flag(self.repo_gpg_check),
        );
        (format!("{}.repo", self.name), content)
    }
}

/// A group to create. GID is a string, as upstream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub name: String,
    pub gid: String,
}

/// A user to create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub name: String,
    /// Decimal UID as a string; empty = allocate.
    pub uid: String,
    pub password_hashed: bool,
    pub password: String,
    /// -1: never expires; 0: untouched; n: account expires n days after the last change.
    pub password_expires_days: i64,
    pub ssh_pub_key_paths: Vec<String>,
    pub ssh_pub_keys: Vec<String>,
    pub primary_group: String,
    pub secondary_groups: Vec<String>,
    pub startup_command: String,
    pub home_directory: String,
}

/// LUKS root encryption.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RootEncryption {
    pub enable: bool,
    pub password: String,
}

/// How one system is configured.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemConfig {
    pub is_default: bool,
    pub is_kick_start_boot: bool,
    pub is_iso_install: bool,
    pub boot_type: BootType,
    pub enable_grub_mkconfig: bool,
    pub enable_systemd_firstboot: bool,
    pub hostname: String,
    pub name: String,
    pub package_lists: Vec<String>,
    pub packages: Vec<String>,
    /// `default` names the kernel package; keys starting with `_` are comments.
    pub kernel_options: IndexMap<String, String>,
    pub kernel_command_line: KernelCommandLine,
    /// Source path → destinations.
    pub additional_files: IndexMap<String, Vec<FileConfig>>,
    pub partition_settings: Vec<PartitionSetting>,
    pub pre_install_scripts: Vec<InstallScript>,
    pub post_install_scripts: Vec<InstallScript>,
    pub finalize_image_scripts: Vec<InstallScript>,
    pub networks: Vec<Network>,
    pub package_repos: Vec<PackageRepo>,
    pub groups: Vec<Group>,
    pub users: Vec<User>,
    pub encryption: RootEncryption,
    pub remove_rpm_db: bool,
    pub preserve_tdnf_cache: bool,
    pub enable_hidepid: bool,
    pub disable_rpm_docs: bool,
    pub override_rpm_locales: String,
}

impl Default for SystemConfig {
    fn default() -> Self {
        SystemConfig {
            is_default: false,
            is_kick_start_boot: false,
            is_iso_install: false,
            boot_type: BootType::Unset,
            enable_grub_mkconfig: true,
            enable_systemd_firstboot: false,
            hostname: String::new(),
            name: String::new(),
            package_lists: Vec::new(),
            packages: Vec::new(),
            kernel_options: IndexMap::new(),
            kernel_command_line: KernelCommandLine::default(),
            additional_files: IndexMap::new(),
            partition_settings: Vec::new(),
            pre_install_scripts: Vec::new(),
            post_install_scripts: Vec::new(),
            finalize_image_scripts: Vec::new(),
            networks: Vec::new(),
            package_repos: Vec::new(),
            groups: Vec::new(),
            users: Vec::new(),
            encryption: RootEncryption::default(),
            remove_rpm_db: false,
            preserve_tdnf_cache: false,
            enable_hidepid: false,
            disable_rpm_docs: false,
            override_rpm_locales: String::new(),
        }
    }
}

impl SystemConfig {
    /// A SystemConfig without PartitionSettings builds a root filesystem, not a disk.
    pub fn is_rootfs(&self) -> bool {
        self.partition_settings.is_empty()
    }

    /// The kernel package (`KernelOptions["default"]`).
    pub fn default_kernel(&self) -> Option<&str> {
        self.kernel_options.get("default").map(String::as_str)
    }

    /// The partition setting mounted at `mount_point`.
    pub fn mount(&self, mount_point: &str) -> Option<&PartitionSetting> {
        self.partition_settings
            .iter()
            .find(|s| s.mount_point == mount_point)
    }

    /// The partition setting of the partition `id`.
    pub fn setting(&self, id: &str) -> Option<&PartitionSetting> {
        self.partition_settings.iter().find(|s| s.id == id)
    }
}

/// A config loaded from a file, with host paths made absolute.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The directory relative host paths were resolved against.
    pub base_dir: PathBuf,
    pub config_path: PathBuf,
}
