//! Upstream compatibility: every case of the Azure Linux toolkit's configuration tests (as data in
//! `tests/azl-compat/testdata/configuration-test-cases.json`) and every config upstream ships must
//! get upstream's verdict from kiln, and upstream's message text must appear in kiln's diagnostic.

use kiln_config::compat::{self, check_fragment};
use kiln_config::kickstart::{self, HostBoot};
use kiln_config::{validate_bytes, validate_file, MountIdentifier, Options, Report};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/azl-compat")
}

fn testdata() -> PathBuf {
    corpus().join("testdata")
}

/// Whether kiln's report matches an upstream expectation: the verdict, and the message.
/// `exact` is what upstream's loader prints (kiln's upstream text must be equal); `isvalid` is
/// what `IsValid()` on an in-memory value says (different prefixes; kiln's message must be its
/// innermost part).
fn agrees(report: &Report, expect_valid: bool, exact: &str, isvalid: &str) -> Result<(), String> {
    if report.is_valid() != expect_valid {
        return Err(format!(
            "verdict: kiln says {}, upstream {}:\n{}",
            if report.is_valid() {
                "valid"
            } else {
                "invalid"
            },
            if expect_valid { "valid" } else { "invalid" },
            report.render(false)
        ));
    }
    if expect_valid {
        return Ok(());
    }
    let first = report
        .upstream_error()
        .ok_or("no error carries upstream text")?;
    let upstream = first.upstream.as_deref().unwrap_or_default();
    if !exact.is_empty() && upstream != exact {
        return Err(format!(
            "upstream text:\n  kiln:     {upstream:?}\n  upstream: {exact:?}"
        ));
    }
    if exact.is_empty() && !isvalid.is_empty() && !isvalid.ends_with(&first.message) {
        return Err(format!(
            "message:\n  kiln:     {:?}\n  upstream: {isvalid:?}",
            first.message
        ));
    }
    Ok(())
}

fn input_text(input: &Value) -> String {
    match input {
        Value::String(s) => match s.strip_prefix("RAW:") {
            Some(raw) => raw.to_string(),
            None => match s.strip_prefix("FILE:") {
                Some(f) => std::fs::read_to_string(testdata().join(f)).unwrap_or_default(),
                None => serde_json::to_string(s).unwrap(),
            },
        },
        other => serde_json::to_string_pretty(other).unwrap(),
    }
}

fn str_field<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key].as_str().unwrap_or("")
}

/// The `n/a` cases test helpers that work on decoded values.
fn not_applicable(case: &Value) -> Result<(), String> {
    let text = input_text(&case["input"]);
    let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
    match str_field(case, "test") {
        "TestShouldFailToFindMissingRootPartitionSetting_SystemConfig" => {
            let (sc, r) = compat::decode_system_config(&text);
            check(
                r.is_valid() && sc.mount("/").is_none(),
                "root setting found",
            )
        }
        "TestShouldSucceedFindingRootPartitionSetting_SystemConfig" => {
            let (sc, r) = compat::decode_system_config(&text);
            check(
                r.is_valid() && sc.mount("/").map(|s| s.id.as_str()) == Some("MyRootfs"),
                "root setting not MyRootfs",
            )
        }
        "TestShouldSetRemoveRpmDbToFalse" => {
            let (sc, r) = compat::decode_system_config(&text);
            check(
                r.is_valid() && !sc.remove_rpm_db,
                "RemoveRpmDb is not false",
            )
        }
        "ConvertToPartedArgument" => {
            for (k, v) in case["input"].as_object().unwrap() {
                let t = kiln_config::PartitionTableType::parse(k).ok_or("unparsed")?;
                check(t.parted_label() == v, "parted label")?;
            }
            check(
                check_fragment("PartitionTableType", "\"not_a_partition_type\"")
                    .unwrap()
                    .upstream_error()
                    .is_some_and(|d| {
                        d.message == "invalid value for PartitionTableType (not_a_partition_type)"
                    }),
                "invalid table type",
            )
        }
        "TestShouldPassCreatingNetworkFile_Network" => {
            let (n, r) = compat::decode_network(&text);
            let (name, content) = n.networkd_file(&n.device);
            let want = "[Match]\nName=eth1\n\n[Network]\nAddress=10.154.214.158/24\nGateway=10.154.214.130\nDNS=10.159.32.34\n";
            check(
                r.is_valid() && name == "10-static-eth1.network" && content == want,
                &content,
            )
        }
        "TestShouldSucceedCreatingPackageRepoFile_PackageRepo" => {
            let (repo, r) = compat::decode_package_repo(&text);
            let (name, content) = repo.repo_file();
            let want: Vec<&str> = str_field(case, "note")
                .split_once(" lines: ")
                .unwrap()
                .1
                .split(" | ")
                .collect();
            check(
                r.is_valid() && name == "azurelinux-official-base.repo" && content.lines().eq(want),
                &content,
            )
        }
        other => Err(format!("no n/a handler for {other}")),
    }
}

fn sc(config: &mut Value) -> &mut Value {
    &mut config["SystemConfigs"][0]
}

/// The validator's `sequence` cases: modify `test-config.json`, validate, append a package list,
/// validate again.
fn sequence(case: &Value) -> Result<(), String> {
    let dir = testdata().join("imageconfigvalidator");
    let base_path = dir.join("test-config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&base_path).unwrap()).unwrap();
    let test = str_field(case, "test");
    let mut in_memory = false;
    match test {
        "TestSELinuxRequiresSELinuxPackageInline" | "selinux with selinux-policy" => {
            sc(&mut config)["KernelCommandLine"] = serde_json::json!({"SELinux": "enforcing"})
        }
        "fips with dracut-fips" => {
            sc(&mut config)["KernelCommandLine"] = serde_json::json!({"EnableFIPS": true})
        }
        "user with shadowutils"
        | "Shadowutils pinned version"
        | "Shadowutils pinned version with whitespace" => {
            sc(&mut config)["Users"] = serde_json::json!([{"Name": "testuser"}])
        }
        "Deeply nested parsing error" => {
            in_memory = true;
            config["Disks"][0]["PartitionTableType"] = "not_a_real_partition_type".into();
        }
        "missing package list" | "bad package name" => {}
        other => return Err(format!("no sequence handler for {other}")),
    }
    let opts = Options {
        base_dir: Some(dir.clone()),
        file_checks: false,
        ..Options::default()
    };
    let run =
        |config: &Value| validate_bytes(config.to_string().as_bytes(), &base_path, &opts).report;
    let expect = |r: &Report, want: &str| -> Result<(), String> {
        let want = want.replace("<ABS testdata dir>", &dir.display().to_string());
        if want == "valid" {
            agrees(r, true, "", "")
        } else if in_memory {
            agrees(r, false, "", &want)
        } else {
            agrees(r, false, &want, "")
        }
    };
    expect(
        &run(&config),
        str_field(&case["error"], "after_modification"),
    )
    .map_err(|e| format!("after modification: {e}"))?;
    match case["input"]["then_append_package_list"].as_str() {
        Some(list) => {
            let lists = &mut sc(&mut config)["PackageLists"];
            lists.as_array_mut().unwrap().push(list.into());
        }
        None if test == "TestSELinuxRequiresSELinuxPackageInline" => {
            sc(&mut config)["Packages"] = serde_json::json!(["selinux-policy"]);
        }
        None => {}
    }
    expect(
        &run(&config),
        str_field(&case["error"], "after_appending_list"),
    )
    .map_err(|e| format!("after appending: {e}"))
}

/// Every config upstream ships must validate.
fn upstream_configs() -> Vec<(PathBuf, Result<(), String>)> {
    let mut out = Vec::new();
    for dir in ["imageconfigs", "resources-imageconfigs"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            let result = match validate_file(&f, &Options::default()) {
                Ok(v) => agrees(&v.report, true, "", ""),
                Err(e) => Err(e.to_string()),
            };
            out.push((f, result));
        }
    }
    out
}

fn run_case(case: &Value) -> Result<(), String> {
    let level = str_field(case, "level");
    let expect = str_field(case, "expect");
    let exact = str_field(case, "error");
    let isvalid = str_field(case, "isvalid_error");
    match (level, expect) {
        (_, "n/a") => not_applicable(case),
        (_, "sequence") => sequence(case),
        ("KickstartPartition", _) => {
            let input = case["input"].as_str().unwrap();
            let lines = input.split_once(':').unwrap().1;
            let host = HostBoot {
                efi: !str_field(case, "test").contains("legacy host"),
                gpt_on_cmdline: false,
            };
            match (kickstart::parse_partitions(lines, host), expect) {
                (Ok(_), "valid") => Ok(()),
                (Err(e), "error") if e == exact => Ok(()),
                (r, _) => Err(format!("kickstart: {r:?}")),
            }
        }
        ("Validator", _) if case["input"] == "ALL:toolkit/imageconfigs/*.json" => {
            let bad: Vec<String> = upstream_configs()
                .into_iter()
                .filter_map(|(f, r)| r.err().map(|e| format!("{}: {e}", f.display())))
                .collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(bad.join("\n"))
            }
        }
        ("Validator", _) => {
            let text = input_text(&case["input"]);
            let v = validate_bytes(
                text.as_bytes(),
                Path::new("in-memory.json"),
                &Options::default(),
            );
            agrees(&v.report, expect == "valid", "", exact)
        }
        ("Config", "error") if case["input"] == "FILE:missing_file.json" => {
            match validate_file(&testdata().join("missing_file.json"), &Options::default()) {
                Err(e) if e.message.contains("no such file or directory") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
        _ => {
            let text = input_text(&case["input"]);
            let report = check_fragment(level, &text).ok_or(format!("unknown level {level}"))?;
            agrees(&report, expect == "valid", exact, isvalid)
        }
    }
}

#[test]
fn upstream_configuration_test_cases_agree() {
    let data: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("configuration-test-cases.json")).unwrap(),
    )
    .unwrap();
    let cases = data["cases"].as_array().unwrap();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        if let Err(e) = run_case(case) {
            failures.push(format!(
                "case {i} ({} / {}): {e}",
                str_field(case, "level"),
                str_field(case, "test")
            ));
        }
    }
    println!(
        "upstream configuration test cases: {} of {} agree",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(cases.len(), 161, "the corpus holds 161 cases");
}

#[test]
fn upstream_shipped_configs_are_valid() {
    let results = upstream_configs();
    let bad: Vec<String> = results
        .iter()
        .filter_map(|(f, r)| r.as_ref().err().map(|e| format!("{}: {e}", f.display())))
        .collect();
    println!(
        "upstream configs: {} of {} get upstream's verdict (valid)",
        results.len() - bad.len(),
        results.len()
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(results.len() >= 34);
}

#[test]
fn the_fixture_decodes_to_the_documented_values() {
    let text = std::fs::read_to_string(testdata().join("test_configuration.json")).unwrap();
    let (c, report) = compat::decode_config(&text);
    assert!(report.is_valid(), "{}", report.render(false));
    let sc = &c.system_configs[0];
    assert!(
        sc.enable_grub_mkconfig,
        "EnableGrubMkconfig defaults to true"
    );
    // No MountIdentifier key: partuuid.
    assert_eq!(
        sc.partition_settings[0].mount_identifier,
        MountIdentifier::PartUuid
    );
    let user = sc
        .users
        .iter()
        .find(|u| u.name == "advancedSecureCoolUser")
        .unwrap();
    assert_eq!(
        user.ssh_pub_key_paths.len(),
        2,
        "SSHPubkeyPaths maps to SSHPubKeyPaths"
    );
    assert_eq!(user.uid, "105");
    assert!(
        sc.networks.iter().any(|n| !n.name_servers.is_empty()),
        "NameServer key"
    );
    let repo1 = &sc.package_repos[0];
    assert!(
        repo1.gpg_check && repo1.repo_gpg_check,
        "GPG checks default to true"
    );
    assert_eq!(repo1.gpg_keys, "file:///etc/pki/rpm-gpg/MY-CUSTOM-KEY");
    let repo2 = &sc.package_repos[1];
    assert!(!repo2.gpg_check && !repo2.repo_gpg_check);
    assert_eq!(repo2.gpg_keys, kiln_config::DEFAULT_GPG_KEYS);
    let file4 = &sc.additional_files["local/path/file4"];
    assert_eq!(file4[0].permissions, Some(0o664));
    assert_eq!(
        sc.additional_files["local/path/file1"][0].path,
        "/final/system/path"
    );
    assert_eq!(sc.additional_files["local/path/file6"].len(), 2);
    assert_eq!(c.default_system_config().unwrap().name, sc.name);
    assert!(sc.is_default);
}
