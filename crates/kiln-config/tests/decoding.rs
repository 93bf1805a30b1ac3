//! Decoding semantics (SPEC §0) and diagnostics: what is accepted, what is reported, and where.

use kiln_config::{validate_bytes, BootType, MountIdentifier, Options, Report, Severity};
use std::path::Path;

fn opts() -> Options {
    Options {
        base_dir: Some("/base".into()),
        package_checks: false,
        file_checks: false,
    }
}

fn validate(text: &str) -> (Option<kiln_config::LoadedConfig>, Report) {
    let v = validate_bytes(text.as_bytes(), Path::new("c.json"), &opts());
    (v.config, v.report)
}

/// A valid rootfs config with `extra` spliced into its SystemConfig.
fn rootfs(extra: &str) -> String {
    format!(r#"{{"SystemConfigs": [{{"Name": "x", "Packages": ["filesystem"]{extra}}}]}}"#)
}

fn errors(r: &Report) -> Vec<(String, String, usize, usize)> {
    r.errors()
        .map(|d| {
            let l = r.locate(d);
            (l.message.to_string(), l.path.to_string(), l.line, l.column)
        })
        .collect()
}

fn warnings(r: &Report) -> Vec<String> {
    r.warnings().map(|d| d.message.clone()).collect()
}

#[test]
fn keys_are_case_insensitive_and_the_last_duplicate_wins() {
    let (c, r) = validate(
        r#"{"systemconfigs": [{"NAME": "x", "packages": ["a"], "Hostname": "bad_name", "hostname": "good", "BOOTTYPE": "efi"}]}"#,
    );
    assert!(r.is_valid(), "{}", r.render(false));
    let sc = &c.unwrap().config.system_configs[0];
    assert_eq!(sc.name, "x");
    assert_eq!(sc.hostname, "good");
    assert_eq!(sc.boot_type, BootType::Efi);
}

#[test]
fn null_keeps_defaults_and_empties_lists() {
    let (c, r) = validate(&rootfs(
        r#", "BootType": null, "EnableGrubMkconfig": null, "PackageLists": null, "Users": null,
           "PartitionSettings": null"#,
    ));
    assert!(r.is_valid(), "{}", r.render(false));
    let sc = &c.unwrap().config.system_configs[0];
    assert_eq!(sc.boot_type, BootType::Unset);
    assert!(sc.enable_grub_mkconfig);
    assert!(sc.package_lists.is_empty() && sc.users.is_empty());
}

#[test]
fn mount_identifier_defaults_only_when_absent() {
    let text = r#"{"Disks": [{"PartitionTableType": "gpt", "MaxSize": 100,
        "Partitions": [{"ID": "a", "Start": 1, "End": 50}, {"ID": "b", "Start": 50, "End": 0}]}],
      "SystemConfigs": [{"Name": "x", "Packages": ["p"], "KernelOptions": {"default": "kernel"},
        "PartitionSettings": [{"ID": "a", "MountPoint": "/"}, {"ID": "b", "MountPoint": "/b", "MountIdentifier": ""}]}]}"#;
    let (c, r) = validate(text);
    assert!(r.is_valid(), "{}", r.render(false));
    let s = &c.unwrap().config.system_configs[0].partition_settings;
    assert_eq!(s[0].mount_identifier, MountIdentifier::PartUuid);
    assert_eq!(s[1].mount_identifier, MountIdentifier::None);
}

#[test]
fn numbers_follow_go_rules() {
    for (value, what) in [
        ("-1", "number -1"),
        ("1.5", "number 1.5"),
        ("1e3", "number 1e3"),
        ("\"5\"", "string"),
    ] {
        let text = format!(
            r#"{{"Disks": [{{"MaxSize": {value}}}], "SystemConfigs": [{{"Name": "x", "Packages": ["p"]}}]}}"#
        );
        let (_, r) = validate(&text);
        let e = errors(&r);
        assert_eq!(e.len(), 1, "{value}: {e:?}");
        assert_eq!(
            e[0].0,
            format!("json: cannot unmarshal {what} into Go struct field IntermediateTypeDisk.MaxSize of type uint64")
        );
        assert_eq!(e[0].1, "Disks[0].MaxSize");
    }
    let (_, r) = validate(&rootfs(
        r#", "Users": [{"Name": "u", "PasswordExpiresDays": -1}]"#,
    ));
    assert!(r.is_valid(), "{}", r.render(false));
}

#[test]
fn unknown_keys_warn_with_suggestions_and_comments_stay_quiet() {
    let (_, r) = validate(&rootfs(
        r#", "_comment": "fine", "PartitionSetings": [], "ReadOnlyVerityRoot": {"Enable": false}, "Wibble": 1"#,
    ));
    assert!(r.is_valid());
    let w = warnings(&r);
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w[0].contains("did you mean \"PartitionSettings\""), "{w:?}");
    assert!(w[1].contains("removed in Azure Linux 3.0"), "{w:?}");
    assert_eq!(w[2], "unknown key \"Wibble\" in [SystemConfig] is ignored");
}

#[test]
fn three_independent_mistakes_are_all_reported_where_they_are() {
    let text = "{\n  \"SystemConfigs\": [\n    {\n      \"Name\": \"x\",\n      \"Hostname\": \"a_b\",\n      \"Packages\": [\"p\"],\n      \"Users\": [{\"Name\": \"u\", \"UID\": \"70000\"}],\n      \"KernelCommandLine\": {\"SELinux\": \"on\"}\n    }\n  ]\n}\n";
    let (_, r) = validate(text);
    assert_eq!(
        errors(&r),
        vec![
            (
                "invalid [Hostname]: a_b".to_string(),
                "SystemConfigs[0].Hostname".to_string(),
                5,
                19
            ),
            (
                "invalid value for UID (70000), not within [0, 60000]".to_string(),
                "SystemConfigs[0].Users[0].UID".to_string(),
                7,
                38
            ),
            (
                "invalid value for SELinux (on)".to_string(),
                "SystemConfigs[0].KernelCommandLine.SELinux".to_string(),
                8,
                40
            ),
        ]
    );
    // Upstream stops at the first object its decoder finishes with an error: the user.
    assert_eq!(
        r.upstream_error().unwrap().upstream.as_deref(),
        Some("failed to parse [Config]:\nfailed to parse [SystemConfig]: failed to parse [User]: invalid value for UID (70000), not within [0, 60000]")
    );
}

#[test]
fn type_errors_do_not_cascade_into_rule_errors() {
    let (_, r) = validate(r#"{"SystemConfigs": [{"Name": 5, "Packages": "p"}]}"#);
    let msgs: Vec<String> = errors(&r).into_iter().map(|e| e.0).collect();
    assert_eq!(
        msgs,
        [
            "json: cannot unmarshal number into Go struct field IntermediateTypeSystemConfig.Name of type string",
            "json: cannot unmarshal string into Go struct field IntermediateTypeSystemConfig.Packages of type []string",
        ]
    );
}

#[test]
fn syntax_errors_point_at_the_offending_character() {
    let (c, r) = validate("{\n  \"SystemConfigs\": [\n    {\"Name\": \"x\",}\n  ]\n}");
    assert!(c.is_none());
    assert_eq!(
        errors(&r),
        [(
            "invalid character '}' looking for beginning of object key string".to_string(),
            String::new(),
            3,
            18
        )]
    );
    let (_, r) = validate("\u{feff}{}");
    assert!(r
        .errors()
        .next()
        .unwrap()
        .message
        .contains("byte order mark"));
}

#[test]
fn host_paths_are_resolved_against_the_base_dir() {
    let (c, r) = validate(&rootfs(
        r#", "PackageLists": ["lists/a.json", "/abs/b.json"], "PostInstallScripts": [{"Path": "s.sh"}],
           "AdditionalFiles": {"f.txt": "/etc/f.txt"}, "Users": [{"Name": "u", "SSHPubKeyPaths": ["k.pub"]}]"#,
    ));
    assert!(r.is_valid(), "{}", r.render(false));
    let sc = &c.unwrap().config.system_configs[0];
    assert_eq!(sc.package_lists, ["/base/lists/a.json", "/abs/b.json"]);
    assert_eq!(sc.post_install_scripts[0].path, "/base/s.sh");
    assert_eq!(sc.additional_files.keys().next().unwrap(), "/base/f.txt");
    assert_eq!(sc.additional_files["/base/f.txt"][0].path, "/etc/f.txt");
    assert_eq!(sc.users[0].ssh_pub_key_paths, ["/base/k.pub"]);
}

#[test]
fn package_list_problems_point_into_the_right_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.json"),
        "{\"packages\": [\"shadow-utils\"]}",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        "{\n  \"packages\": [\n    \"kernel\",\n    \"a b\"\n  ]\n}\n",
    )
    .unwrap();
    let config = dir.path().join("c.json");
    let text = r#"{"SystemConfigs": [{"Name": "x", "PackageLists": ["good.json", "bad.json", "missing.json"], "Users": [{"Name": "u"}]}]}"#;
    std::fs::write(&config, text).unwrap();
    let v = kiln_config::validate_file(&config, &Options::default()).unwrap();
    let r = &v.report;
    let found: Vec<(String, String, usize, usize)> = r
        .errors()
        .map(|d| {
            let l = r.locate(d);
            (
                l.file.file_name().unwrap().to_string_lossy().into_owned(),
                l.message.to_string(),
                l.line,
                l.column,
            )
        })
        .collect();
    let missing = dir.path().join("missing.json");
    assert_eq!(
        found,
        [
            ("c.json".to_string(), format!("open {}: no such file or directory", missing.display()), 1, 76),
            (
                "bad.json".to_string(),
                "kernel should not be included in a package list, add via config file's [KernelOptions] entry".to_string(),
                3,
                5
            ),
            (
                "bad.json".to_string(),
                "packages list entry \"a b\" does not match the '[name][optional_condition][optional_version]' format".to_string(),
                4,
                5
            ),
        ]
    );
    // Upstream reads all lists before checking entries: the missing file is what it reports.
    assert_eq!(
        r.upstream_summary(&config).unwrap(),
        format!(
            "Invalid configuration '{}': failed to validate package lists in config: open {}: no such file or directory",
            config.display(),
            missing.display()
        )
    );
}

#[test]
fn missing_referenced_files_are_warnings_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.json");
    std::fs::write(
        &config,
        rootfs(r#", "PostInstallScripts": [{"Path": "nope.sh"}], "AdditionalFiles": {"nope.txt": "/x"}"#),
    )
    .unwrap();
    let v = kiln_config::validate_file(&config, &Options::default()).unwrap();
    assert!(v.report.is_valid());
    let w: Vec<_> = v
        .report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    assert_eq!(w.len(), 2, "{}", v.report.render(false));
    assert!(w
        .iter()
        .any(|d| d.path == "SystemConfigs[0].PostInstallScripts[0].Path"));
    assert!(w
        .iter()
        .any(|d| d.path == "SystemConfigs[0].AdditionalFiles[\"nope.txt\"]"));
}

#[test]
fn reading_special_files_fails_cleanly() {
    let e = kiln_config::validate_file(Path::new("/dev/zero"), &Options::default()).unwrap_err();
    assert_eq!(
        e.message,
        "config file /dev/zero is a character device, not a regular file; name a regular file"
    );
}
