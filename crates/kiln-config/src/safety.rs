//! kiln's own checks on values that end up in line-based system files, and on account names.
//!
//! Upstream accepts these values and either fails later (`useradd` refuses a bad name) or writes
//! a corrupt file: a `:` in a home directory shifts every field of `/etc/passwd`, a newline in
//! ExtraCommandLine or a network's Device injects lines into `grub.cfg` or a networkd file, a
//! space in a mount option splits an fstab line. kiln refuses them at validation, naming the
//! entry. These errors carry no upstream text: upstream's verdict on the config is unchanged
//! (the `imageconfigvalidator` personality still exits as upstream does), but `kiln validate`
//! says invalid and `kiln build` refuses the config.

use crate::decode::{Decoder, Seg};
use crate::json::Node;
use crate::model::*;

use Seg::{Index as I, Key as K};

/// The longest user or group name: Azure Linux 3.0's shadow-utils is built with
/// `--with-group-name-max-length=32`, and utmp/wtmp records hold 32 bytes of a user name.
pub const MAX_ACCOUNT_NAME: usize = 32;

/// shadow-utils 4.14's `is_valid_name` (as Azure Linux 3.0 ships it, without
/// `--badname`): `[A-Za-z0-9_.][A-Za-z0-9_.-]*$?`, not `.` or `..`, not all digits, and at
/// most [`MAX_ACCOUNT_NAME`] characters. Returns why a name is refused.
pub fn account_name_problem(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    let plain = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
    let body = b.strip_suffix(b"$").unwrap_or(b);
    if b.len() > MAX_ACCOUNT_NAME {
        Some("it is longer than 32 characters")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not names")
    } else if body.first().is_none_or(|&c| !plain(c)) {
        Some("it must start with a letter, a digit, `_` or `.`")
    } else if !body.iter().all(|&c| plain(c) || c == b'-') {
        Some("only letters, digits, `_`, `.`, `-` and a final `$` are allowed")
    } else if b.iter().all(u8::is_ascii_digit) {
        Some("an all-digit name would be taken for a numeric ID")
    } else {
        None
    }
}

/// Characters that end or split a line of a colon-separated file (`/etc/passwd`, `/etc/shadow`,
/// `/etc/group`).
const COLON_FILE: &[char] = &[':', '\n', '\r', '\0'];
/// Characters that end a line (grub.cfg, networkd and .repo files, rpm macros).
const LINE: &[char] = &['\n', '\r', '\0'];

/// A short name for a character, for messages.
fn describe(c: char) -> String {
    match c {
        '\n' => "a newline".into(),
        '\r' => "a carriage return".into(),
        '\0' => "a NUL character".into(),
        ' ' => "a space".into(),
        '\t' => "a tab".into(),
        c if c.is_control() || c.is_whitespace() => format!("the character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

/// The first character of `value` that `bad` refuses.
fn first_bad(value: &str, bad: impl Fn(char) -> bool) -> Option<char> {
    value.chars().find(|&c| bad(c))
}

/// Refuses `value` (the field at `rel`) if it holds one of `chars`; `file` names where it is
/// written. The value is never quoted (it may be a password hash).
fn refuse(d: &mut Decoder, node: &Node, rel: &[Seg], value: &str, chars: &[char], file: &str) {
    if let Some(c) = first_bad(value, |c| chars.contains(&c)) {
        d.kiln_error(
            node,
            rel,
            format!(
                "{} contains {}, which would break {file}; remove it",
                field_name(rel),
                describe(c)
            ),
        );
    }
}

/// The last key of a relative path (`HomeDirectory`), for messages.
fn field_name(rel: &[Seg]) -> &'static str {
    rel.iter()
        .rev()
        .find_map(|s| match s {
            Seg::Key(k) => Some(*k),
            _ => None,
        })
        .unwrap_or("the value")
}

/// An fstab field: no whitespace or control characters (fstab splits on blanks).
pub(crate) fn fstab_field(d: &mut Decoder, node: &Node, rel: &[Seg], value: &str) {
    if let Some(c) = first_bad(value, |c| c.is_whitespace() || c.is_control()) {
        d.kiln_error(
            node,
            rel,
            format!(
                "{} ({}) contains {}, which would split its /etc/fstab line; remove it",
                field_name(rel),
                value.escape_default(),
                describe(c)
            ),
        );
    }
}

fn account_name(d: &mut Decoder, node: &Node, rel: &[Seg], what: &str, name: &str) {
    if name.trim().is_empty() {
        return; // upstream's own error for users; groups: useradd's default
    }
    if let Some(why) = account_name_problem(name) {
        d.kiln_error(
            node,
            rel,
            format!(
                "invalid {what} name ({}): {why}; shadow-utils' useradd and groupadd accept `[A-Za-z0-9_.][A-Za-z0-9_.-]*` with an optional final `$`, at most 32 characters",
                name.escape_default()
            ),
        );
    }
}

/// A User's fields that reach `/etc/passwd`, `/etc/shadow`, `/etc/group` and authorized_keys.
pub(crate) fn user(d: &mut Decoder, node: &Node, u: &User) {
    account_name(d, node, &[K("Name")], "user", &u.name);
    account_name(d, node, &[K("PrimaryGroup")], "group", &u.primary_group);
    for (i, g) in u.secondary_groups.iter().enumerate() {
        account_name(d, node, &[K("SecondaryGroups"), I(i)], "group", g);
    }
    let passwd = "its /etc/passwd line";
    refuse(
        d,
        node,
        &[K("HomeDirectory")],
        &u.home_directory,
        COLON_FILE,
        passwd,
    );
    refuse(
        d,
        node,
        &[K("StartupCommand")],
        &u.startup_command,
        COLON_FILE,
        passwd,
    );
    if u.password_hashed {
        // Never quote the value: it is a secret.
        refuse(
            d,
            node,
            &[K("Password")],
            &u.password,
            COLON_FILE,
            "its /etc/shadow line",
        );
    }
    for (i, key) in u.ssh_pub_keys.iter().enumerate() {
        let file = "authorized_keys (one key per line)";
        refuse(d, node, &[K("SSHPubKeys"), I(i)], key, LINE, file);
    }
}

/// A Group: its name, and a GID that is a number (it becomes a field of `/etc/group`).
pub(crate) fn group(d: &mut Decoder, node: &Node, g: &Group) {
    account_name(d, node, &[K("Name")], "group", &g.name);
    if !g.gid.is_empty() && !g.gid.bytes().all(|b| b.is_ascii_digit()) {
        d.kiln_error(
            node,
            &[K("GID")],
            format!(
                "invalid GID ({}): a GID is a whole number such as \"1001\"",
                g.gid.escape_default()
            ),
        );
    }
}

/// The SystemConfig fields written into line-based files.
pub(crate) fn system_config(d: &mut Decoder, node: &Node, s: &SystemConfig) {
    for (i, p) in s.partition_settings.iter().enumerate() {
        fstab_field(
            d,
            node,
            &[K("PartitionSettings"), I(i), K("MountPoint")],
            &p.mount_point,
        );
        let rel = [K("PartitionSettings"), I(i), K("MountOptions")];
        fstab_field(d, node, &rel, &p.mount_options);
    }
    let rel = [K("KernelCommandLine"), K("ExtraCommandLine")];
    let cmdline = "the kernel command line in grub.cfg";
    refuse(
        d,
        node,
        &rel,
        &s.kernel_command_line.extra_command_line,
        LINE,
        cmdline,
    );
    let rel = [K("OverrideRpmLocales")];
    refuse(
        d,
        node,
        &rel,
        &s.override_rpm_locales,
        LINE,
        "the rpm macros file",
    );
    for (i, n) in s.networks.iter().enumerate() {
        network_device(d, node, &[K("Networks"), I(i), K("Device")], &n.device);
    }
    for (i, r) in s.package_repos.iter().enumerate() {
        let file = "the .repo file";
        refuse(
            d,
            node,
            &[K("PackageRepos"), I(i), K("Name")],
            &r.name,
            LINE,
            file,
        );
        if r.name.contains('/') {
            d.kiln_error(
                node,
                &[K("PackageRepos"), I(i), K("Name")],
                "a package repo Name names its .repo file and cannot contain `/`".into(),
            );
        }
        refuse(
            d,
            node,
            &[K("PackageRepos"), I(i), K("GPGKeys")],
            &r.gpg_keys,
            LINE,
            file,
        );
    }
}

/// A network's Device names an interface (or a MAC address) and its networkd file
/// (`10-<proto>-<device>.network`): no `/`, blanks or control characters.
fn network_device(d: &mut Decoder, node: &Node, rel: &[Seg], device: &str) {
    let device = device.trim();
    if device.is_empty() {
        return; // upstream's error
    }
    let bad = first_bad(device, |c| c == '/' || c.is_whitespace() || c.is_control());
    if let Some(c) = bad.or(matches!(device, "." | "..").then_some('.')) {
        d.kiln_error(
            node,
            rel,
            format!(
                "Device ({}) contains {}; it names an interface and its networkd file: give an interface name such as eth0 or a MAC address",
                device.escape_default(),
                describe(c)
            ),
        );
    }
}

/// A partition's Name: no control characters anywhere (it is a GPT label and may be a
/// `PARTLABEL=` in fstab).
pub(crate) fn partition_name(d: &mut Decoder, node: &Node, name: &str) {
    if let Some(c) = first_bad(name, char::is_control) {
        d.kiln_error(
            node,
            &[K("Name")],
            format!(
                "[Name] ({}) contains {}; give the partition a printable name",
                name.escape_default(),
                describe(c)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{validate_bytes, Options, Report};
    use std::path::Path;

    fn validate(text: &str) -> Report {
        let opts = Options {
            file_checks: false,
            package_checks: false,
            ..Options::default()
        };
        validate_bytes(text.as_bytes(), Path::new("c.json"), &opts).report
    }

    /// The one error of `report`: its path, 1-based line, and message.
    fn only_error(report: &Report) -> (String, usize, String) {
        let errors: Vec<_> = report.errors().collect();
        assert_eq!(errors.len(), 1, "{}", report.render(false));
        let d = errors[0];
        assert!(d.upstream.is_none(), "a kiln-only error: {:?}", d.upstream);
        (d.path.clone(), report.locate(d).line, d.message.clone())
    }

    /// A SystemConfig with `extra` members (on line 3 and after).
    fn sc(extra: &str) -> String {
        format!("{{\"SystemConfigs\": [{{\"Name\": \"s\", \"Packages\": [\"p\"],\n{extra}\n}}]}}")
    }

    #[test]
    fn bad_user_and_group_names_are_errors_at_their_entry() {
        for (extra, path) in [
            (
                r#""Users": [{"Name": "a:b"}]"#,
                "SystemConfigs[0].Users[0].Name",
            ),
            (
                r#""Users": [{"Name": "u", "PrimaryGroup": "-g"}]"#,
                "SystemConfigs[0].Users[0].PrimaryGroup",
            ),
            (
                r#""Users": [{"Name": "u", "SecondaryGroups": ["ok", "a b"]}]"#,
                "SystemConfigs[0].Users[0].SecondaryGroups[1]",
            ),
            (
                r#""Groups": [{"Name": "g\nroot::0:"}]"#,
                "SystemConfigs[0].Groups[0].Name",
            ),
            (
                r#""Groups": [{"Name": "g", "GID": "1:2"}]"#,
                "SystemConfigs[0].Groups[0].GID",
            ),
        ] {
            let (p, line, msg) = only_error(&validate(&sc(extra)));
            assert_eq!((p.as_str(), line), (path, 2), "{msg}");
        }
        let (_, _, msg) = only_error(&validate(&sc(r#""Users": [{"Name": "a:b"}]"#)));
        assert!(
            msg.starts_with("invalid user name (a:b): only letters"),
            "{msg}"
        );
    }

    #[test]
    fn values_that_would_break_a_line_based_file_are_errors() {
        for (extra, path, what) in [
            (
                r#""Users": [{"Name": "u", "HomeDirectory": "/home/u:x"}]"#,
                "Users[0].HomeDirectory",
                "`:`",
            ),
            (
                r#""Users": [{"Name": "u", "StartupCommand": "/bin/sh\nroot::0:0::/:/bin/sh"}]"#,
                "Users[0].StartupCommand",
                "a newline",
            ),
            (
                r#""Users": [{"Name": "u", "PasswordHashed": true, "Password": "$6$x$y:0:0"}]"#,
                "Users[0].Password",
                "`:`",
            ),
            (
                r#""Users": [{"Name": "u", "SSHPubKeys": ["ssh-ed25519 A\nssh-rsa B"]}]"#,
                "Users[0].SSHPubKeys[0]",
                "a newline",
            ),
            (
                r#""KernelCommandLine": {"ExtraCommandLine": "quiet\nmenuentry x {"}"#,
                "KernelCommandLine.ExtraCommandLine",
                "a newline",
            ),
            (
                r#""PartitionSettings": [{"ID": "r", "MountPoint": "/a b"}]"#,
                "PartitionSettings[0].MountPoint",
                "a space",
            ),
            (
                r#""PartitionSettings": [{"ID": "r", "MountPoint": "/", "MountOptions": "ro\n/dev/x /y"}]"#,
                "PartitionSettings[0].MountOptions",
                "a newline",
            ),
            (
                r#""Networks": [{"Device": "eth0\nName=*"}]"#,
                "Networks[0].Device",
                "a newline",
            ),
            (
                r#""Networks": [{"Device": "../../etc/x"}]"#,
                "Networks[0].Device",
                "`/`",
            ),
            (
                r#""OverrideRpmLocales": "en\n%__x y""#,
                "OverrideRpmLocales",
                "a newline",
            ),
        ] {
            let text = sc(extra);
            let report = validate(&text);
            let d = report
                .errors()
                .find(|d| d.upstream.is_none())
                .unwrap_or_else(|| panic!("no kiln error for {extra}:\n{}", report.render(false)));
            assert_eq!(d.path, format!("SystemConfigs[0].{path}"), "{}", d.message);
            assert!(d.message.contains(what), "{}", d.message);
            assert!(!d.message.contains("$6$x$y"), "a password is never echoed");
        }
    }

    #[test]
    fn a_partlabel_mount_of_a_name_with_a_space_is_an_error() {
        let text = r#"{"Disks": [{"PartitionTableType": "gpt", "MaxSize": 10, "Partitions": [
  {"ID": "r", "Name": "my root", "Start": 1, "End": 0}]}],
 "SystemConfigs": [{"Name": "s", "Packages": ["p"], "KernelOptions": {"default": "kernel"},
  "PartitionSettings": [{"ID": "r", "MountPoint": "/", "MountIdentifier": "partlabel"}]}]}"#;
        let (path, line, msg) = only_error(&validate(text));
        assert_eq!((path.as_str(), line), ("Disks[0].Partitions[0].Name", 2));
        assert!(msg.contains("/etc/fstab"), "{msg}");
    }

    #[test]
    fn valid_values_pass() {
        let report = validate(&sc(
            r#""Users": [{"Name": "advancedSecureCoolUser", "HomeDirectory": "/home/a", "PrimaryGroup": "g", "SecondaryGroups": ["wheel"],
  "PasswordHashed": true, "Password": "$6$salt$hash", "SSHPubKeys": ["ssh-ed25519 AAAA me@host"]}],
  "Groups": [{"Name": "g", "GID": "1001"}], "Networks": [{"Device": "aa:bb:cc:dd:ee:ff"}],
  "KernelCommandLine": {"ExtraCommandLine": "console=ttyS0 quiet"}"#,
        ));
        assert!(report.is_valid(), "{}", report.render(false));
    }

    #[test]
    fn account_names_follow_shadow_utils() {
        for ok in [
            "root",
            "u",
            "advancedSecureCoolUser",
            "_apt",
            "a.b",
            "build-1",
            "machine$",
            "1user",
            &"a".repeat(32),
        ] {
            assert_eq!(account_name_problem(ok), None, "{ok}");
        }
        for bad in [
            "a:b",
            "a\nb",
            "-a",
            "a b",
            ".",
            "..",
            "1000",
            "a$b",
            "$",
            "ü",
            &"a".repeat(33),
        ] {
            assert!(account_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
