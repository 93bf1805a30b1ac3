//! Validation rules (SPEC §1.2–§1.14), with upstream's message texts.
//!
//! Each function checks one decoded object, the way its upstream `IsValid()` does, but reports
//! every violation instead of the first one. Rules are listed in upstream's order, so the first
//! diagnostic a function emits is the one upstream would have returned.

use crate::decode::{Decoder, Seg};
use crate::json::{go_quote, Node};
use crate::model::*;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use Seg::{Index as I, Key as K};

pub(crate) fn disk(d: &mut Decoder, node: &Node, disk: &Disk) {
    // Both checks read every partition's Start and End.
    if d.is_tainted_below(&[K("Partitions")]) || d.is_tainted_below(&[K("TargetDisk")]) {
        return;
    }
    // Overlaps: sort [Start, End] by Start; End 0 (to the end of the disk) never overlaps.
    let mut ranges: Vec<(usize, u64, u64)> = disk
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.start, p.end))
        .collect();
    ranges.sort_by_key(|r| r.1);
    for pair in ranges.windows(2) {
        let ((_, _, end), (b, start, _)) = (pair[0], pair[1]);
        if end > start {
            d.error(
                node,
                &[K("Partitions"), I(b), K("Start")],
                format!("invalid [Disk]: a [Partition] with an end location {end} overlaps with a [Partition] with a start location {start}"),
            );
        }
    }
    if !disk.target_disk.is_path() {
        if disk.max_size == 0 && !disk.partitions.is_empty() {
            d.error(
                node,
                &[K("MaxSize")],
                "invalid [Disk]: a configuration without a defined target disk must have a non-zero MaxSize".into(),
            );
        }
        // Upstream's quirk: an End of 0 resets the running end to that partition's Start.
        let mut last_end = 0;
        for p in &disk.partitions {
            if p.end == 0 {
                last_end = p.start;
            } else if p.end > last_end {
                last_end = p.end;
            }
        }
        if disk.max_size < last_end {
            d.error(
                node,
                &[K("MaxSize")],
                format!(
                    "invalid [Disk]: the MaxSize of {} is not large enough to accomodate defined partitions ending at {last_end}",
                    disk.max_size
                ),
            );
        }
    } else if disk.max_size != 0 {
        d.warning(
            node,
            &[K("MaxSize")],
            "defining both a maxsize and target disk in the same config should be avoided as maxsize value will not be used".into(),
        );
    }
}

pub(crate) fn partition(d: &mut Decoder, node: &Node, p: &Partition) {
    if !p.ty.is_empty() && !p.type_uuid.is_empty() {
        d.error(
            node,
            &[K("TypeUUID")],
            "cannot set Type and TypeUUID at the same time".into(),
        );
    }
    if !p.ty.is_empty() && partition_type_guid(&p.ty).is_none() {
        d.error(
            node,
            &[K("Type")],
            format!("unrecognized partition type ({}), consider setting TypeUUID parameter explicitly or add a new entry to partition type table", p.ty),
        );
    }
    if let Some((pos, c)) = p.name.char_indices().find(|(_, c)| *c as u32 > 0x7F) {
        d.error(
            node,
            &[K("Name")],
            format!(
                "[Name] ({}) contains a non-ASCII character '{c}' at position ({pos})",
                p.name
            ),
        );
    } else {
        let units = p.name.encode_utf16().count();
        if units + 1 > 36 {
            d.error(
                node,
                &[K("Name")],
                format!(
                    "[Name] is too long, GPT header can hold only 72 bytes of UTF-16 (35 normal characters + null) while ({}) needs {} bytes",
                    p.name,
                    (units + 1) * 2
                ),
            );
        }
    }
    crate::safety::partition_name(d, node, &p.name);
    if !crate::model::FS_TYPES.contains(&p.fs_type.as_str()) {
        d.warning(
            node,
            &[K("FsType")],
            format!(
                "FsType \"{}\" is not a filesystem kiln or upstream can create; the build will fail with: unrecognized filesystem format: {}",
                p.fs_type, p.fs_type
            ),
        );
    }
}

/// govalidator's `IsDNSName` (2021) plus upstream's extra ban on `_`.
pub(crate) fn is_valid_hostname(h: &str) -> bool {
    if h.contains('_') || h.replace('.', "").len() > 255 || h.parse::<IpAddr>().is_ok() {
        return false;
    }
    let h = h.strip_suffix('.').unwrap_or(h);
    h.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    })
}

pub(crate) fn system_config(d: &mut Decoder, node: &Node, s: &SystemConfig) {
    if !s.hostname.is_empty() && !is_valid_hostname(&s.hostname) {
        d.error(
            node,
            &[K("Hostname")],
            format!("invalid [Hostname]: {}", s.hostname),
        );
    }
    if s.name.trim().is_empty() {
        d.error(node, &[K("Name")], "missing [Name] field".into());
    }
    let raw_boot_type = node.member("BootType").and_then(Node::as_str).unwrap_or("");
    if BootType::parse(raw_boot_type).is_none() {
        d.error(
            node,
            &[K("BootType")],
            format!("invalid [BootType]: {raw_boot_type}. Expecting values of either 'efi', 'legacy', 'none' or empty string"),
        );
    }
    let lists_unreadable = d.is_tainted_below(&[K("Packages")]);
    if s.package_lists.is_empty() && s.packages.is_empty() && !lists_unreadable {
        d.error(
            node,
            &[K("PackageLists")],
            "system configuration must provide at least one package list inside the [PackageLists] or one package in the [Packages] field".into(),
        );
    }
    if !s.partition_settings.is_empty() && !s.kernel_options.contains_key("default") {
        d.error(
            node,
            &[K("KernelOptions")],
            "system configuration must always provide default kernel inside the [KernelOptions] field; remember that kernels are FORBIDDEN from appearing in any of the [PackageLists] or [Packages]".into(),
        );
    }
    for (name, kernel) in &s.kernel_options {
        if !name.starts_with('_') && kernel.trim().is_empty() {
            d.error(
                node,
                &[K("KernelOptions"), Seg::MapKey(name.clone())],
                format!("empty kernel entry found in the [KernelOptions] field ({name}); remember that kernels are FORBIDDEN from appearing in any of the [PackageLists] or [Packages]"),
            );
        }
    }
    let mut mount_points = HashSet::new();
    for (i, p) in s.partition_settings.iter().enumerate() {
        if !p.mount_point.is_empty() && !mount_points.insert(p.mount_point.as_str()) {
            d.error(
                node,
                &[K("PartitionSettings"), I(i), K("MountPoint")],
                format!(
                    "invalid [PartitionSettings]: duplicate mount point found at ({})",
                    p.mount_point
                ),
            );
        }
    }
    if s.encryption.enable {
        if mount_points.is_empty() {
            d.warning(
                node,
                &[K("Encryption"), K("Enable")],
                format!("[Encryption] is enabled, but no partitions are listed as part of System Config '{}'. This is only valid for ISO installers", s.name),
            );
        } else if !mount_points.contains("/") {
            d.error(
                node,
                &[K("Encryption"), K("Enable")],
                "invalid [Encryption]: must have a partition mounted at '/'".into(),
            );
        }
    }
    // KernelCommandLine, AdditionalFiles, PackageRepos, Networks and Users were validated as
    // they were decoded; what remains are the checks across entries.
    let mut repo_names = HashSet::new();
    for (i, r) in s.package_repos.iter().enumerate() {
        if !repo_names.insert(r.name.as_str()) {
            d.error(
                node,
                &[K("PackageRepos"), I(i), K("Name")],
                format!(
                    "invalid [PackageRepos]: duplicate package repo names ({})",
                    r.name
                ),
            );
        }
    }
    let groups: HashSet<&str> = s.groups.iter().map(|g| g.name.as_str()).collect();
    for (i, u) in s.users.iter().enumerate() {
        if !u.primary_group.is_empty() && !groups.contains(u.primary_group.as_str()) {
            d.warning(
                node,
                &[K("Users"), I(i), K("PrimaryGroup")],
                format!("Primary group ({}) for user ({}) not defined in [SystemConfig.Groups], if this group is not present user creation may fail.", u.primary_group, u.name),
            );
        }
        for (j, g) in u.secondary_groups.iter().enumerate() {
            if !groups.contains(g.as_str()) {
                d.warning(
                    node,
                    &[K("Users"), I(i), K("SecondaryGroups"), I(j)],
                    format!("Secondary group ({g}) for user ({}) not defined in [SystemConfig.Groups], if this group is not present user creation may fail.", u.name),
                );
            }
        }
    }
    crate::safety::system_config(d, node, s);
}

pub(crate) fn kernel_command_line(d: &mut Decoder, node: &Node, k: &KernelCommandLine) {
    // CGroup, ImaPolicy and SELinux were checked by their own decoders.
    if k.extra_command_line.contains('`') {
        d.error(
            node,
            &[K("ExtraCommandLine")],
            "the 'ExtraCommandLine' field contains the ` character which is reserved for use by sed".into(),
        );
    }
}

pub(crate) fn network(d: &mut Decoder, node: &Node, n: &Network) {
    let proto = n.boot_proto.trim();
    if !matches!(proto, "dhcp" | "static" | "bootp" | "ibft" | "") {
        d.error(
            node,
            &[K("BootProto")],
            format!("invalid input for bootproto ({proto}), bootproto can only be one of dhcp, bootp, ibft and static"),
        );
    }
    let may_be_empty = matches!(proto, "" | "dhcp");
    let check_ip = |d: &mut Decoder, rel: &[Seg], what: &str, value: &str| {
        if (value.is_empty() && may_be_empty) || value.parse::<IpAddr>().is_ok() {
            return;
        }
        d.error(
            node,
            rel,
            format!("invalid input for {what}:\ninvalid IP address ({value})"),
        );
    };
    check_ip(d, &[K("Ip")], "IP", &n.ip);
    check_ip(d, &[K("NetMask")], "netmask", &n.netmask);
    check_ip(d, &[K("GateWay")], "gateway", &n.gateway);
    for (i, ns) in n.name_servers.iter().enumerate() {
        check_ip(d, &[K("NameServer"), I(i)], "nameserver", ns);
    }
    if n.device.trim().is_empty() {
        d.error(
            node,
            &[K("Device")],
            "invalid input for device, device cannot be empty".into(),
        );
    }
}

/// Go's `url.ParseRequestURI`, to the extent configs can exercise it: an absolute URI or an
/// absolute path. Returns the inner error text.
pub(crate) fn parse_request_uri(url: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("parse {}: {why}", go_quote(url)));
    if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return fail("net/url: invalid control character in URL");
    }
    let rest = url.split_once('#').map_or(url, |(r, _)| r);
    if rest.starts_with('/') || rest == "*" {
        return Ok(());
    }
    // getScheme: letters, then letters/digits/+-. up to ':'.
    for (i, c) in rest.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return fail("missing protocol scheme"),
            ':' => {
                let after = &rest[i + 1..];
                let after = after.split_once('?').map_or(after, |(a, _)| a);
                if let Some(authority) = after.strip_prefix("//") {
                    let host = authority.split('/').next().unwrap_or("");
                    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
                    if let Some(bad) = host.chars().find(|c| " <>\"{}|\\^`".contains(*c)) {
                        return fail(&format!(
                            "invalid character {} in host name",
                            go_quote(&bad.to_string())
                        ));
                    }
                }
                return Ok(());
            }
            _ => break,
        }
    }
    fail("invalid URI for request")
}

pub(crate) fn package_repo(d: &mut Decoder, node: &Node, r: &PackageRepo) {
    if r.name.trim().is_empty() {
        d.error(
            node,
            &[K("Name")],
            format!(
                "invalid value for package repo [Name] ({}), name cannot be empty",
                r.name
            ),
        );
    }
    if r.base_url.trim().is_empty() {
        d.error(
            node,
            &[K("BaseUrl")],
            format!(
                "invalid value for package repo [BaseUrl] ({}), URL cannot be empty",
                r.base_url
            ),
        );
    } else if let Err(e) = parse_request_uri(&r.base_url) {
        d.error(
            node,
            &[K("BaseUrl")],
            format!("failed to parse input URL ({}):\n{e}", r.base_url),
        );
    }
    if (r.gpg_check || r.repo_gpg_check) && r.gpg_keys != DEFAULT_GPG_KEYS {
        if r.install {
            d.warning(
                node,
                &[K("GPGKeys")],
                format!("package repo '{}' uses custom GPG keys ({}); make sure the keys exist in the installed image", r.name, r.gpg_keys),
            );
        } else {
            d.error(
                node,
                &[K("GPGKeys")],
                format!("invalid value for package repo '{}' [GPGKeys] ({}), custom GPG keys are only supported for repos that are installed into the final image by setting 'Install=true'", r.name, r.gpg_keys),
            );
        }
    }
}

pub(crate) fn user(d: &mut Decoder, node: &Node, u: &User) {
    const UID_MIN: i64 = 0;
    const UID_MAX: i64 = 60000;
    const EXPIRE_MIN: i64 = -1;
    const EXPIRE_MAX: i64 = 99999;
    if u.name.trim().is_empty() {
        d.error(
            node,
            &[K("Name")],
            format!("invalid value for name ({}), name cannot be empty", u.name),
        );
    }
    if !u.uid.trim().is_empty() {
        match go_atoi(&u.uid) {
            None => d.error(
                node,
                &[K("UID")],
                format!("failed to convert UID ({}) to a number", u.uid),
            ),
            Some(uid) if !(UID_MIN..=UID_MAX).contains(&uid) => d.error(
                node,
                &[K("UID")],
                format!("invalid value for UID ({uid}), not within [{UID_MIN}, {UID_MAX}]"),
            ),
            Some(_) if u.name == "root" => {
                d.warning(node, &[K("UID")], "the UID of root is ignored".into())
            }
            Some(_) => {}
        }
    }
    if !(EXPIRE_MIN..=EXPIRE_MAX).contains(&u.password_expires_days) {
        d.error(
            node,
            &[K("PasswordExpiresDays")],
            format!(
                "invalid value for PasswordExpiresDays ({}), not within [{EXPIRE_MIN}, {EXPIRE_MAX}]",
                u.password_expires_days
            ),
        );
    }
    crate::safety::user(d, node, u);
}

/// Go's `strconv.Atoi`: optional sign, decimal digits, fits in 64 bits.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.strip_prefix('+').unwrap_or(s).parse().ok()
}

pub(crate) fn file_config_list(d: &mut Decoder, node: &Node, list: &[FileConfig]) {
    if list.is_empty() && !matches!(node.value, crate::json::Value::Null) {
        d.error(node, &[], "list is empty".into());
    }
}

pub(crate) fn file_config(d: &mut Decoder, node: &Node, fc: &FileConfig) {
    if fc.path.is_empty() {
        let rel: &[Seg] = if node.as_str().is_some() {
            &[]
        } else {
            &[K("Path")]
        };
        d.error(node, rel, "invalid [Path] value: empty string".into());
    }
}

/// An octal permission string (`"644"`), as Go's `strconv.ParseUint(s, 8, 32)` reads it.
pub(crate) fn parse_permissions(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    let mode = u32::from_str_radix(s, 8).map_err(|_| {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            go_quote(s)
        )
    })?;
    if mode & !0o777 != 0 {
        return Err(format!("0o{mode:o} contains non-permission bits"));
    }
    Ok(mode)
}

/// Config-level checks (SPEC §1.14), run once the whole document is decoded.
pub(crate) fn config(d: &mut Decoder, node: &Node, c: &Config) {
    // These checks join values from all over the document; after a type error they would
    // report consequences of values kiln could not read.
    if d.had_type_errors() {
        return;
    }
    let sc_path = |i: usize| [K("SystemConfigs"), I(i)];
    // Every PartitionSetting refers to a partition.
    for (i, s) in c.system_configs.iter().enumerate() {
        for (j, p) in s.partition_settings.iter().enumerate() {
            if c.find_partition(&p.id).is_none() {
                let mut rel = sc_path(i).to_vec();
                rel.extend([K("PartitionSettings"), I(j), K("ID")]);
                d.error(
                    node,
                    &rel,
                    format!("invalid [Config]:\n[SystemConfig] ({}) mounts a [Partition] ({}) which has no corresponding partition on a [Disk]", s.name, p.id),
                );
            }
        }
    }
    // Partition IDs are unique across disks.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, disk) in c.disks.iter().enumerate() {
        for (j, p) in disk.partitions.iter().enumerate() {
            if let Some(first) = seen.get(p.id.as_str()) {
                d.error(
                    node,
                    &[K("Disks"), I(i), K("Partitions"), I(j), K("ID")],
                    format!("invalid [Config]:\na [Partition] on a [Disk] ({first}) shares an ID ({}) with another partition (on disk ({i}))", p.id),
                );
            } else {
                seen.insert(&p.id, i);
            }
        }
    }
    // Device-mapper (encrypted) roots.
    const DM: &str = "a config in [SystemConfigs] enables a device mapper based root (Encryption), but partitions are miss-configured:\n";
    for (i, s) in c.system_configs.iter().enumerate() {
        if s.encryption.enable {
            if c.disks.is_empty() {
                let mut rel = sc_path(i).to_vec();
                rel.extend([K("Encryption"), K("Enable")]);
                d.warning(
                    node,
                    &rel,
                    format!("[SystemConfig] ({}) enables [Encryption] but the config has no [Disks]; this is only valid for ISO installers", s.name),
                );
                continue;
            }
            match s
                .partition_settings
                .iter()
                .position(|p| p.mount_point == "/")
            {
                None => {
                    let mut rel = sc_path(i).to_vec();
                    rel.push(K("PartitionSettings"));
                    d.error(node, &rel, format!("{DM}can't find a root ('/') [PartitionSetting] to work with [Encryption]"));
                }
                Some(j) => {
                    let root = &s.partition_settings[j];
                    let mut rel = sc_path(i).to_vec();
                    rel.extend([K("PartitionSettings"), I(j), K("ID")]);
                    match c.find_partition(&root.id) {
                        None => d.error(
                            node,
                            &rel,
                            format!("{DM}can't find a [Disk] [Partition] to match with [PartitionSetting] '{}'", root.id),
                        ),
                        Some((_, p)) if !p.has_flag(PartitionFlag::DmRoot) => d.error(
                            node,
                            &rel,
                            format!("{DM}[Partition] ({}) must include 'dmroot' device mapper root flag in [Flags] for [SystemConfig] ({})'s root partition since it uses [Encryption]", p.id, s.name),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
        let dm_roots: Vec<(usize, &str)> = s
            .partition_settings
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                c.find_partition(&p.id)
                    .is_some_and(|(_, part)| part.has_flag(PartitionFlag::DmRoot))
            })
            .map(|(j, p)| (j, p.id.as_str()))
            .collect();
        if let [(_, first), (j, second), ..] = dm_roots[..] {
            let mut rel = sc_path(i).to_vec();
            rel.extend([K("PartitionSettings"), I(j), K("ID")]);
            d.error(
                node,
                &rel,
                format!("{DM}[SystemConfig] ({}) includes two (or more) device mapper root [PartitionSettings] ({first}) and ({second}), include only one", s.name),
            );
        }
    }
    // PARTLABEL needs a GPT disk and a partition name.
    for (i, s) in c.system_configs.iter().enumerate() {
        for (j, p) in s.partition_settings.iter().enumerate() {
            if p.mount_identifier != MountIdentifier::PartLabel {
                continue;
            }
            let Some((disk, part)) = c.find_partition(&p.id) else {
                continue;
            };
            let mut rel = sc_path(i).to_vec();
            rel.extend([K("PartitionSettings"), I(j), K("MountIdentifier")]);
            if c.disks[disk].partition_table_type != PartitionTableType::Gpt {
                d.error(node, &rel, format!("invalid [Config]:\n[SystemConfig] ({}) mounts a [Partition] ({}) via PARTLABEL, but that partition is on an MBR disk which does not support PARTLABEL", s.name, p.id));
            } else if part.name.is_empty() {
                d.error(node, &rel, format!("invalid [Config]:\n[SystemConfig] ({}) mounts a [Partition] ({}) via PARTLABEL, but it has no [Name]", s.name, p.id));
            } else {
                let j = c.disks[disk].partitions.iter().position(|q| q.id == p.id);
                let rel = [
                    K("Disks"),
                    I(disk),
                    K("Partitions"),
                    I(j.unwrap_or(0)),
                    K("Name"),
                ];
                crate::safety::fstab_field(d, node, &rel, &part.name);
            }
        }
    }
    if c.system_configs.is_empty() {
        d.error(
            node,
            &[K("SystemConfigs")],
            "config file must provide at least one system configuration inside the [SystemConfigs] field".into(),
        );
    }
    let defaults: Vec<usize> = c
        .system_configs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_default)
        .map(|(i, _)| i)
        .collect();
    if let [_, second, ..] = defaults[..] {
        let mut rel = sc_path(second).to_vec();
        rel.push(K("IsDefault"));
        d.error(
            node,
            &rel,
            "config file must have no more than one default system configuration. Please remove redundant [IsDefault] fields".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        for ok in ["azurelinux", "Azure-Linux-Test", "a.b.c", "host.", "x1"] {
            assert!(is_valid_hostname(ok), "{ok}");
        }
        for bad in ["abcd_efg", "-a", "a..b", "1.2.3.4", "::1", &"a".repeat(64)] {
            assert!(!is_valid_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn request_uris() {
        assert!(parse_request_uri(
            "https://packages.microsoft.com/azurelinux/$releasever/prod/base/$basearch"
        )
        .is_ok());
        assert!(parse_request_uri("file:///mnt/cdrom/RPMS").is_ok());
        assert!(parse_request_uri("/abs/path").is_ok());
        assert_eq!(
            parse_request_uri("asjhdjkshd").unwrap_err(),
            "parse \"asjhdjkshd\": invalid URI for request"
        );
        assert_eq!(
            parse_request_uri(":x").unwrap_err(),
            "parse \":x\": missing protocol scheme"
        );
    }

    #[test]
    fn permissions() {
        assert_eq!(parse_permissions("777"), Ok(0o777));
        assert_eq!(parse_permissions("000"), Ok(0));
        assert_eq!(
            parse_permissions("1000").unwrap_err(),
            "0o1000 contains non-permission bits"
        );
        assert_eq!(
            parse_permissions("999").unwrap_err(),
            "strconv.ParseUint: parsing \"999\": invalid syntax"
        );
    }

    #[test]
    fn atoi() {
        assert_eq!(go_atoi("105"), Some(105));
        assert_eq!(go_atoi("-2"), Some(-2));
        assert_eq!(go_atoi("+7"), Some(7));
        assert_eq!(go_atoi(" 7"), None);
        assert_eq!(go_atoi("1e3"), None);
    }
}
