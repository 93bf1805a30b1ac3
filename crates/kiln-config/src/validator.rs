//! The checks `imageconfigvalidator` adds after loading (SPEC §6): package lists are readable and
//! well-formed, kernels come from KernelOptions, FIPS/SELinux/users have the packages they need,
//! kickstart configs define no partitions. Plus kiln's own warnings about files that a build
//! would need and that do not exist.

use crate::decode::{path_string, Decoder, Seg};
use crate::diag::Severity;
use crate::input;
use crate::json::{Node, Span};
use crate::model::*;
use crate::packages::{ListError, PackageList, PackageSpec};
use std::path::Path;

use Seg::{Index as I, Key as K};

const PREFIX: &str = "failed to validate package lists in config: ";

/// Where a package string came from, for pointing at it.
#[derive(Clone)]
struct Origin {
    source: usize,
    span: Span,
    path: String,
}

pub(crate) fn check_packages(d: &mut Decoder, root: &Node, config: &Config) {
    d.phase = 3;
    for (i, sc) in config.system_configs.iter().enumerate() {
        let sc_rel = [K("SystemConfigs"), I(i)];
        let at = |d: &Decoder, rel: &[Seg]| -> Origin {
            let mut full = sc_rel.to_vec();
            full.extend_from_slice(rel);
            let (span, path) = d.locate(root, &full);
            Origin {
                source: d.source,
                span,
                path,
            }
        };
        // Upstream reads every list first, then checks the entries one by one.
        let mut entries: Vec<(String, Origin)> = Vec::new();
        let mut complete = true;
        for (j, list_path) in sc.package_lists.iter().enumerate() {
            match PackageList::read(Path::new(list_path)) {
                Err(ListError::Io(msg)) => {
                    complete = false;
                    let o = at(d, &[K("PackageLists"), I(j)]);
                    error(d, &o, msg);
                }
                Err(ListError::Content {
                    source,
                    span,
                    path,
                    message,
                }) => {
                    complete = false;
                    d.report.sources.push(*source);
                    let o = Origin {
                        source: d.report.sources.len() - 1,
                        span,
                        path,
                    };
                    error(d, &o, message);
                }
                Ok(list) => {
                    d.report.sources.push(list.source);
                    let source = d.report.sources.len() - 1;
                    entries.extend(list.entries.into_iter().enumerate().map(
                        |(k, (entry, span))| {
                            let path = format!("packages[{k}]");
                            (entry, Origin { source, span, path })
                        },
                    ));
                }
            }
        }
        for (j, entry) in sc.packages.iter().enumerate() {
            entries.push((entry.clone(), at(d, &[K("Packages"), I(j)])));
        }
        let mut packages: Vec<(PackageSpec, Origin)> = Vec::new();
        for (entry, o) in entries {
            match PackageSpec::parse(&entry) {
                Ok(spec) if spec.name == "kernel" => {
                    error(d, &o, "kernel should not be included in a package list, add via config file's [KernelOptions] entry".into());
                }
                Ok(spec) => packages.push((spec, o)),
                Err(msg) => {
                    complete = false;
                    error(d, &o, msg);
                }
            }
        }
        let has = |name: &str| packages.iter().any(|(p, _)| p.name == name);
        // Whether a package is missing can only be told when every list could be read.
        if !complete {
            continue;
        }
        let kcl = &sc.kernel_command_line;
        let fips_on_cmdline = kcl.extra_command_line.contains("fips=1");
        if (fips_on_cmdline || kcl.enable_fips) && !has("dracut-fips") {
            let field = if kcl.enable_fips {
                "EnableFIPS"
            } else {
                "ExtraCommandLine"
            };
            let o = at(d, &[K("KernelCommandLine"), K(field)]);
            error(d, &o, "'fips=1' provided on kernel cmdline, but 'dracut-fips' package is not included in the package lists".into());
        }
        if kcl.selinux != SELinux::Off && !has(kcl.selinux_policy_package()) {
            let o = at(d, &[K("KernelCommandLine"), K("SELinux")]);
            error(
                d,
                &o,
                format!(
                    "[SELinux] selected, but '{}' package is not included in the package lists",
                    kcl.selinux_policy_package()
                ),
            );
        }
        if (!sc.users.is_empty() || !sc.groups.is_empty()) && !has("shadow-utils") {
            let field = if sc.users.is_empty() {
                "Groups"
            } else {
                "Users"
            };
            let o = at(d, &[K(field)]);
            error(d, &o, "the 'shadow-utils' package must be included in the package lists when the image is configured to add users or groups".into());
        }
    }

    d.phase = 4;
    for (i, sc) in config.system_configs.iter().enumerate() {
        if sc.is_kick_start_boot && (!config.disks.is_empty() || !sc.partition_settings.is_empty())
        {
            let (span, path) = d.locate(root, &[K("SystemConfigs"), I(i), K("IsKickStartBoot")]);
            let msg = "partition should not be specified in image config file when performing kickstart installation".to_string();
            d.error_with_upstream(span, path, msg.clone(), msg);
        }
    }
}

fn error(d: &mut Decoder, o: &Origin, message: String) {
    let upstream = format!("{PREFIX}{message}");
    d.emit(
        Severity::Error,
        o.source,
        o.span,
        o.path.clone(),
        message,
        Some(upstream),
    );
}

/// Checks the host files a build will read. One that does not exist gets a warning (upstream's
/// `make` stops with `missing files`; its validator says nothing); one that exists but is not a
/// regular file, or is larger than kiln reads (SSH keys, scripts), is an error only kiln reports
/// — a build would hang on a FIFO or read `/dev/zero` forever. Only `stat` is used: nothing is
/// opened.
pub(crate) fn check_files(d: &mut Decoder, root: &Node, config: &Config) {
    d.phase = 5;
    let missing = |d: &mut Decoder, rel: Vec<Seg>, what: &str, file: &str, limit: Option<u64>| {
        if file.is_empty() {
            return;
        }
        let (span, _) = d.locate(root, &rel);
        let path = path_string(&rel);
        match std::fs::metadata(file) {
            Err(_) => d.warning_at(
                span,
                path,
                format!("{what} {file} does not exist; a build of this config will fail"),
            ),
            Ok(meta) => {
                if let Err(e) = input::check_metadata(Path::new(file), &meta, limit, what) {
                    d.kiln_error_at(span, path, e.to_string());
                }
            }
        }
    };
    for (i, disk) in config.disks.iter().enumerate() {
        for (j, b) in disk.raw_binaries.iter().enumerate() {
            let rel = vec![K("Disks"), I(i), K("RawBinaries"), I(j), K("BinPath")];
            missing(d, rel, "raw binary", &b.bin_path, None);
        }
    }
    for (i, sc) in config.system_configs.iter().enumerate() {
        let base = [K("SystemConfigs"), I(i)];
        let rel = |tail: &[Seg]| {
            let mut v = base.to_vec();
            v.extend_from_slice(tail);
            v
        };
        // AdditionalFiles keys were resolved against the base dir; their JSON keys are the
        // original spellings, in the same order.
        let keys: Vec<String> = root
            .member("SystemConfigs")
            .and_then(|n| n.element(i))
            .and_then(|n| n.member("AdditionalFiles"))
            .and_then(|n| match &n.value {
                crate::json::Value::Object(m) => Some(m.iter().map(|m| m.key.clone()).collect()),
                _ => None,
            })
            .unwrap_or_default();
        for (src, key) in sc.additional_files.keys().zip(keys) {
            missing(
                d,
                rel(&[K("AdditionalFiles"), Seg::MapKey(key)]),
                "additional file",
                src,
                None,
            );
        }
        for (field, scripts) in [
            ("PreInstallScripts", &sc.pre_install_scripts),
            ("PostInstallScripts", &sc.post_install_scripts),
            ("FinalizeImageScripts", &sc.finalize_image_scripts),
        ] {
            for (j, s) in scripts.iter().enumerate() {
                let rel = rel(&[K(field), I(j), K("Path")]);
                missing(d, rel, "script", &s.path, Some(input::SCRIPT_LIMIT));
            }
        }
        for (j, u) in sc.users.iter().enumerate() {
            for (k, key) in u.ssh_pub_key_paths.iter().enumerate() {
                missing(
                    d,
                    rel(&[K("Users"), I(j), K("SSHPubKeyPaths"), I(k)]),
                    "SSH public key file",
                    key,
                    Some(input::SSH_KEY_LIMIT),
                );
            }
        }
    }
}

/// Where each RawBinary lands ([`crate::rawbin::placement`]): an offset that overflows, a range
/// past the disk's end or over a partition is an error only kiln reports; a range over the
/// partition table is a warning here (upstream's own test config writes at byte 1024 of a GPT
/// disk and is valid) and an error when the imager writes it. With `file_sizes`, the binary's
/// size is read from the file (when it is a regular file); otherwise its first byte is checked.
pub(crate) fn check_raw_binaries(d: &mut Decoder, root: &Node, config: &Config, file_sizes: bool) {
    d.phase = 5;
    for (i, disk) in config.disks.iter().enumerate() {
        let geometry = crate::rawbin::DiskGeometry::from_config(disk);
        for (j, b) in disk.raw_binaries.iter().enumerate() {
            let len = file_sizes
                .then(|| std::fs::metadata(&b.bin_path).ok())
                .flatten()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            let Err(e) = crate::rawbin::placement(b, len, &geometry) else {
                continue;
            };
            let rel = [K("Disks"), I(i), K("RawBinaries"), I(j)];
            let (span, path) = d.locate(root, &rel);
            let message = format!("RawBinaries[{j}] ({}): {e}", b.bin_path);
            match e {
                crate::rawbin::PlacementError::OverlapsTable { .. } => d.warning_at(
                    span,
                    path,
                    format!("{message}; kiln's imager refuses to write it"),
                ),
                _ => d.kiln_error_at(span, path, message),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::diag::Severity;
    use crate::input::tests::{mkfifo, within_timeout};
    use crate::{validate_bytes, Options, Report};
    use std::path::Path;

    /// A config naming `special` as an SSH key, a script, an AdditionalFiles source and a
    /// package list, validated with every check on (under a timeout: reading a FIFO blocks).
    fn validate_naming(special: &Path) -> Report {
        let s = special.display();
        let text = format!(
            r#"{{"SystemConfigs": [{{
  "Name": "s",
  "PackageLists": ["{s}"],
  "Packages": ["shadow-utils"],
  "AdditionalFiles": {{"{s}": "/etc/x"}},
  "PostInstallScripts": [{{"Path": "{s}"}}],
  "Users": [{{"Name": "u", "SSHPubKeyPaths": ["{s}"]}}]
}}]}}"#
        );
        within_timeout(move || {
            validate_bytes(text.as_bytes(), Path::new("c.json"), &Options::default()).report
        })
    }

    fn assert_named(report: &Report, kind: &str) {
        let errors: Vec<_> = report.errors().collect();
        for (path, line) in [
            ("SystemConfigs[0].PackageLists[0]", 3),
            ("SystemConfigs[0].AdditionalFiles[\"", 5),
            ("SystemConfigs[0].PostInstallScripts[0].Path", 6),
            ("SystemConfigs[0].Users[0].SSHPubKeyPaths[0]", 7),
        ] {
            let d = errors
                .iter()
                .find(|d| d.path.starts_with(path))
                .unwrap_or_else(|| panic!("no error at {path}:\n{}", report.render(false)));
            assert!(d.message.contains(kind), "{}", d.message);
            assert_eq!(report.locate(d).line, line, "{path}");
            assert_eq!(d.severity, Severity::Error);
        }
    }

    /// A GPT disk of 16 MiB with one partition from 2 MiB, and one RawBinary.
    fn raw_binary_report(block_size: u64, seek: u64, len: usize) -> Report {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.bin"), vec![1u8; len]).unwrap();
        let text = format!(
            r#"{{"Disks": [{{"PartitionTableType": "gpt", "MaxSize": 16,
  "Partitions": [{{"ID": "r", "Start": 2, "End": 0}}],
  "RawBinaries": [{{"BinPath": "b.bin", "BlockSize": {block_size}, "Seek": {seek}}}]}}],
 "SystemConfigs": [{{"Name": "s", "Packages": ["p"]}}]}}"#
        );
        let opts = Options {
            package_checks: false,
            ..Options::default()
        };
        validate_bytes(text.as_bytes(), &dir.path().join("c.json"), &opts).report
    }

    #[test]
    fn raw_binaries_must_land_inside_the_disk_and_outside_partitions() {
        let ok = raw_binary_report(512, 64, 4096);
        assert!(ok.is_valid(), "{}", ok.render(false));
        for (bs, seek, len, what) in [
            (2, 1u64 << 63, 16, "does not fit in 64 bits"),
            (1 << 20, 15, 2 << 20, "do not fit on the disk"),
            (512, 64, 2 << 20, "overlap Partitions[0] (r)"),
            (0, 64, 16, "BlockSize is 0"),
        ] {
            let r = raw_binary_report(bs, seek, len);
            let e = r
                .errors()
                .next()
                .unwrap_or_else(|| panic!("no error for {bs}×{seek}:\n{}", r.render(false)));
            assert_eq!(e.path, "Disks[0].RawBinaries[0]");
            assert_eq!(r.locate(e).line, 3);
            assert!(e.message.contains(what), "{}", e.message);
        }
        // Over the GPT: upstream accepts it (its own test config does this); kiln warns.
        let table = raw_binary_report(1024, 1, 16);
        assert!(table.is_valid());
        assert!(table
            .warnings()
            .any(|w| w.message.contains("overlap the GPT")));
    }

    #[test]
    fn a_fifo_named_by_the_config_is_an_error_at_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let report = validate_naming(&fifo);
        assert_named(&report, "is a FIFO (named pipe), not a regular file");
    }

    #[test]
    fn dev_zero_named_by_the_config_is_an_error_at_its_entry() {
        let report = validate_naming(Path::new("/dev/zero"));
        assert_named(&report, "is a character device, not a regular file");
    }

    #[test]
    fn a_directory_is_an_error_and_a_missing_file_still_only_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let report = validate_naming(dir.path());
        assert!(report
            .errors()
            .any(|d| d.path == "SystemConfigs[0].Users[0].SSHPubKeyPaths[0]"
                && d.message.contains("is a directory")));
        let report = validate_naming(&dir.path().join("missing"));
        let key = report
            .diagnostics
            .iter()
            .find(|d| d.path == "SystemConfigs[0].Users[0].SSHPubKeyPaths[0]")
            .unwrap();
        assert_eq!(key.severity, Severity::Warning, "{}", key.message);
    }

    #[test]
    fn an_oversized_ssh_key_is_an_error_naming_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("big.pub");
        std::fs::write(&key, vec![b'a'; (crate::input::SSH_KEY_LIMIT + 1) as usize]).unwrap();
        let report = validate_naming(&key);
        let d = report
            .errors()
            .find(|d| d.path == "SystemConfigs[0].Users[0].SSHPubKeyPaths[0]")
            .unwrap();
        assert!(d.message.contains("larger than 1 MiB"), "{}", d.message);
    }
}
