//! The `kiln` binary as users run it: exit statuses, both output formats, the upstream
//! `imageconfigvalidator` personality, schema and completions.

mod common;

use common::{compose, demo_config, kiln, sample_repo, stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/azl-compat")
}

/// A config with three independent mistakes (lines 5, 7 and 8) and one typo'd key (line 6).
const THREE_MISTAKES: &str = r#"{
  "SystemConfigs": [
    {
      "Name": "x",
      "Hostname": "a_b",
      "Pakages": ["q"], "Packages": ["shadow-utils"],
      "Users": [{"Name": "u", "UID": "70000"}],
      "KernelCommandLine": {"SELinux": "on"}
    }
  ]
}
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn three_mistakes_in_json_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.json", THREE_MISTAKES);
    let o = kiln()
        .arg("validate")
        .arg(&config)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["valid"], false);
    let got: Vec<(String, String, u64, u64, String)> = doc["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["file"], config.display().to_string());
            (
                d["severity"].as_str().unwrap().into(),
                d["path"].as_str().unwrap().into(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["message"].as_str().unwrap().into(),
            )
        })
        .collect();
    let e = |p: &str, l, c, m: &str| ("error".to_string(), p.to_string(), l, c, m.to_string());
    assert_eq!(
        got,
        vec![
            e(
                "SystemConfigs[0].Hostname",
                5,
                19,
                "invalid [Hostname]: a_b"
            ),
            (
                "warning".into(),
                "SystemConfigs[0].Pakages".into(),
                6,
                7,
                "unknown key \"Pakages\" in [SystemConfig] is ignored; did you mean \"Packages\"?"
                    .into()
            ),
            e(
                "SystemConfigs[0].Users[0].UID",
                7,
                38,
                "invalid value for UID (70000), not within [0, 60000]"
            ),
            e(
                "SystemConfigs[0].KernelCommandLine.SELinux",
                8,
                40,
                "invalid value for SELinux (on)"
            ),
        ]
    );
}

#[test]
fn three_mistakes_in_human_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.json", THREE_MISTAKES);
    let o = kiln().arg("validate").arg(&config).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let c = config.display();
    for want in [
        format!("error: invalid [Hostname]: a_b\n --> {c}:5:19 at SystemConfigs[0].Hostname"),
        format!("error: invalid value for UID (70000), not within [0, 60000]\n --> {c}:7:38 at SystemConfigs[0].Users[0].UID"),
        format!("error: invalid value for SELinux (on)\n --> {c}:8:40 at SystemConfigs[0].KernelCommandLine.SELinux"),
        "8 |       \"KernelCommandLine\": {\"SELinux\": \"on\"}\n  |                                        ^^^^".to_string(),
        format!("{c}: invalid (3 errors, 1 warning)"),
    ] {
        assert!(out.contains(&want), "missing:\n{want}\n--- in ---\n{out}");
    }
    assert!(!out.contains("\x1b["), "no color when not a terminal");
}

#[test]
fn exit_statuses() {
    let ok = corpus().join("imageconfigs/core-efi.json");
    assert_eq!(
        kiln()
            .arg("validate")
            .arg(&ok)
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    let o = kiln()
        .args(["validate", "/nonexistent/c.json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("open /nonexistent/c.json: no such file or directory"));
    assert_eq!(
        kiln()
            .args(["validate", "--format", "xml", "x"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        kiln().arg("validate").output().unwrap().status.code(),
        Some(2)
    );
    let o = kiln()
        .arg("validate")
        .arg(&ok)
        .args(["--base-dir", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn every_upstream_config_validates_in_one_run() {
    let mut configs: Vec<PathBuf> = std::fs::read_dir(corpus().join("imageconfigs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    configs.sort();
    let o = kiln()
        .arg("validate")
        .args(&configs)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["valid"], true);
}

#[test]
fn imageconfigvalidator_personality() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("imageconfigvalidator");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), &link).unwrap();
    let config = write(dir.path(), "c.json", THREE_MISTAKES);

    // Invalid: upstream's fatal line for the error upstream stops at, exit 1.
    let o = Command::new(&link)
        .arg(format!("--input={}", config.display()))
        .arg(format!("--dir={}", dir.path().display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.ends_with(&format!(
            "Failed while loading image configuration '{}': failed to parse [Config]:\nfailed to parse [SystemConfig]: failed to parse [User]: invalid value for UID (70000), not within [0, 60000]\n",
            config.display()
        )),
        "{err}"
    );

    // Valid, with flags kiln has no use for: one warning, exit 0; `--flag value` works too.
    let ok = corpus().join("imageconfigs/core-efi.json");
    let log = dir.path().join("log.txt");
    let o = Command::new(&link)
        .arg("--input")
        .arg(&ok)
        .arg(format!("--dir={}", corpus().join("imageconfigs").display()))
        .args([
            "--timestamp-file=/tmp/ts.json",
            "--enable-cpu-prof",
            "--log-color=never",
        ])
        .arg(format!("--log-file={}", log.display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("kiln ignores").count(), 1, "{err}");
    assert!(err.contains("--timestamp-file, --enable-cpu-prof"));
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("kiln ignores"));

    // A missing package list is a validation error, reported as upstream does.
    let bad = write(
        dir.path(),
        "lists.json",
        r#"{"SystemConfigs": [{"Name": "x", "PackageLists": ["nope.json"]}]}"#,
    );
    let o = kiln()
        .arg("imageconfigvalidator")
        .arg(format!("--input={}", bad.display()))
        .arg(format!("--dir={}", dir.path().display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&format!(
        "Invalid configuration '{}': failed to validate package lists in config: open {}: no such file or directory",
        bad.display(),
        dir.path().join("nope.json").display()
    )));

    // Required flags.
    let o = Command::new(&link).arg("--dir=/tmp").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--input"));
}

#[test]
fn schema_is_a_json_schema_of_the_config() {
    let o = kiln().arg("schema").output().unwrap();
    assert!(o.status.success());
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(s["properties"]["SystemConfigs"].is_object());
    assert_eq!(
        s["$defs"]["Partition"]["properties"]["Flags"]["items"]["enum"][5],
        "dmroot"
    );
}

#[test]
fn help_and_completions() {
    for args in [
        &["--help"][..],
        &["validate", "--help"],
        &["schema", "--help"],
        &["completions", "--help"],
    ] {
        let o = kiln().args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}");
        assert!(stdout(&o).contains("Usage: kiln"), "{args:?}");
    }
    let o = kiln().args(["validate", "--help"]).output().unwrap();
    assert!(stdout(&o).contains("Exit status: 0 valid"));
    for shell in ["bash", "zsh", "fish"] {
        let o = kiln().args(["completions", shell]).output().unwrap();
        assert!(
            o.status.success() && stdout(&o).contains("validate"),
            "{shell}"
        );
    }
    let o = kiln()
        .args(["imageconfigvalidator", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).contains("--input <PATH>"));
}

#[test]
fn roast_converts_and_verify_checks() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(3 * 1024 * 1024 + 1000).unwrap();
    drop(f);
    let vhd = dir.path().join("disk.vhd");
    let o = kiln()
        .args(["roast", "--input"])
        .arg(&raw)
        .arg("--output")
        .arg(&vhd)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: the input is 3146728 bytes, not a whole number of MiB"),
        "{err}"
    );
    assert!(err.contains("(vhd fixed, virtual size 4.0 MiB"), "{err}");
    let o = kiln()
        .arg("verify")
        .arg(&vhd)
        .arg("--azure")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("vhd fixed, virtual size 4194304 bytes: ok"));

    // A corrupt image: exit 1, the problem with its offset.
    let bytes = std::fs::read(&vhd).unwrap();
    let mut broken = bytes.clone();
    broken[4 * 1024 * 1024 + 64] ^= 1;
    std::fs::write(&vhd, &broken).unwrap();
    let o = kiln().arg("verify").arg(&vhd).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("offset 4194368 (0x400040): footer checksum"),
        "{}",
        stdout(&o)
    );
    // The same as one JSON document, for tools.
    let o = kiln()
        .args(["verify", "--json"])
        .arg(&vhd)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["format"], "vhd");
    assert_eq!(doc["verdict"], "errors");
    assert_eq!(doc["problems"][0]["severity"], "error");
    assert_eq!(doc["problems"][0]["offset"], 4194368);

    // Unknown extension without --format: usage error; missing input: failure, no output left.
    let o = kiln()
        .args(["roast", "--input"])
        .arg(&raw)
        .arg("--output")
        .arg(dir.path().join("x.bin"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = kiln()
        .args(["roast", "--input", "/nonexistent.raw", "--output"])
        .arg(dir.path().join("y.vhdx"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(!dir.path().join("y.vhdx").exists());
}

#[test]
fn verify_says_not_supported_for_what_it_does_not_check() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("enc.qcow2");
    assert!(std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&q)
        .arg("16M")
        .status()
        .unwrap()
        .success());
    let o = kiln().arg("verify").arg(&q).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // crypt_method = 1 (AES): qemu-img still opens it; kiln cannot check it, so it is not ok.
    let f = std::fs::OpenOptions::new().write(true).open(&q).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[1], 35).unwrap();
    let o = kiln().arg("verify").arg(&q).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains("not supported: offset 32 (0x20): the image is encrypted (AES)")
            && out.contains("qcow2, virtual size 16777216 bytes: not supported")
            && !out.contains(": ok"),
        "{out}"
    );
}

#[test]
fn non_images_are_refused_by_verify_roast_and_boot_test() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("root.tar.gz");
    std::fs::write(&tgz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).unwrap();
    let o = kiln().arg("verify").arg(&tgz).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("is a gzip file, not a disk image"),
        "{}",
        stderr(&o)
    );
    let o = kiln()
        .args(["roast", "--input"])
        .arg(&tgz)
        .arg("--output")
        .arg(dir.path().join("x.vhd"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is a gzip file"), "{}", stderr(&o));
    assert!(!dir.path().join("x.vhd").exists());
    // boot-test refuses before QEMU starts (so this runs without QEMU's system emulator).
    let o = kiln().arg("boot-test").arg(&tgz).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is a gzip file"), "{}", stderr(&o));
    let o = kiln()
        .args(["boot-test", "--json"])
        .arg(&tgz)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["booted"], false);
    assert!(doc["error"].as_str().unwrap().contains("is a gzip file"));
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for cmd in ["verify", "boot-test"] {
        let o = kiln().arg(cmd).arg(&fifo).output().unwrap();
        assert!(stderr(&o).contains("is a FIFO"), "{cmd}: {}", stderr(&o));
    }
    // A QCOW2 that names itself raw: boot-test says so.
    let q = dir.path().join("disk.raw");
    let mut head = vec![0u8; 512];
    head[..4].copy_from_slice(b"QFI\xfb");
    std::fs::write(&q, &head).unwrap();
    let o = kiln().arg("boot-test").arg(&q).output().unwrap();
    assert!(
        stderr(&o).contains("is a qcow2 image, but its name says raw"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn roast_personality_builds_a_configs_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("imager_output");
    std::fs::create_dir_all(input.join("rootfs/etc")).unwrap();
    std::fs::write(input.join("rootfs/etc/hostname"), "kiln\n").unwrap();
    let config = write(
        dir.path(),
        "core-container.json",
        r#"{"Disks": [{"Artifacts": [{"Name": "core", "Compression": "tar.gz"}]}], "SystemConfigs": [{"Name": "c", "Packages": ["p"]}]}"#,
    );
    let link = dir.path().join("roast");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), &link).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(&link)
        .arg(format!("--dir={}", input.display()))
        .arg(format!("--config={}", config.display()))
        .arg(format!("--output-dir={}", out.display()))
        .arg(format!("--tmp-dir={}", dir.path().join("tmp").display()))
        .arg("--release-version=3.0.20260428.1200")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let tarball = out.join("core-3.0.20260428.1200.tar.gz");
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&tarball)
        .output()
        .unwrap();
    assert_eq!(stdout(&listing), "./\n./etc/\n./etc/hostname\n");
}

#[test]
fn resolve_prints_nevras_or_the_chain() {
    let repo = sample_repo();
    let dir = tempfile::tempdir().unwrap();
    let resolve = |args: &[&str]| {
        kiln()
            .arg("resolve")
            .arg("--repo")
            .arg(&repo)
            .arg("--cache-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let o = resolve(&["sample-app", "--no-weak-deps"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "busybox-1.35.0-1.azl3.x86_64\nfilesystem-1.1-1.azl3.noarch\nsample-app-1.2-3.azl3.noarch\n\
         sample-libfoo-1.1-1.azl3.noarch\nsample-mta-exim-1.0-1.azl3.noarch\n"
    );
    // A directory of RPM files (no repodata) works the same.
    let rpms = dir.path().join("rpms");
    std::fs::create_dir(&rpms).unwrap();
    for f in [
        "sample-epoch-1.0-1.azl3.noarch.rpm",
        "sample-epoch-2.0-1.azl3.noarch.rpm",
    ] {
        std::fs::copy(repo.join(f), rpms.join(f)).unwrap();
    }
    let o = kiln()
        .args(["resolve", "--json", "--repo"])
        .arg(&rpms)
        .arg("sample-epoch")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["nevra"], "sample-epoch-1:1.0-1.azl3.noarch");
    assert_eq!(v[0]["epoch"], 1);

    let o = resolve(&["sample-app", "sample-libfoo = 2.0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("needed by sample-app-1.2-3.azl3.noarch, required by \"sample-app\""),
        "{}",
        stderr(&o)
    );
    let o = resolve(&["nothing-here"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nothing provides nothing-here"),
        "{}",
        stderr(&o)
    );
    let o = kiln().args(["resolve", "x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = kiln()
        .args(["resolve", "--repo", "/nonexistent/repo", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/repo: not a directory or URL"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn compose_builds_the_demo_container_root() {
    let repo = sample_repo();
    let config = demo_config("demo-container.json");
    let out = tempfile::tempdir().unwrap();
    let o = compose(&config, out.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("installing the packages"),
        "{}",
        stderr(&o)
    );
    let root = out.path().join("rootfs");

    // The rpmdb holds exactly what `kiln resolve` says the config's packages resolve to.
    let o = kiln()
        .args(["resolve", "--repo"])
        .arg(&repo)
        .args([
            "azurelinux-release",
            "filesystem",
            "busybox",
            "shadow-utils",
            "sample-app",
        ])
        .output()
        .unwrap();
    let want = stdout(&o);
    let qa = Command::new("rpm")
        .arg("--root")
        .arg(&root)
        .args(["--dbpath", "/var/lib/rpm", "-qa"])
        .output()
        .unwrap();
    let mut have: Vec<String> = stdout(&qa).lines().map(String::from).collect();
    have.sort();
    assert_eq!(have.join("\n") + "\n", want);

    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    assert!(read("etc/passwd").contains("app:x:1000:1000::/home/app:/bin/sh"));
    assert!(read("etc/group").contains("app:x:1000:"));
    assert_eq!(read("etc/motd"), "Welcome to a kiln demo container.\n");
    assert_eq!(
        read("etc/kiln-postinstall"),
        "built by kiln: demo-container\n"
    );
    assert!(read("etc/image-id").contains("IMAGE_BUILD_DATE=20231114221320"));
    assert!(!root.join("tmp/kiln-scripts").exists());

    // kiln shell: a command in the composed root, in the sandbox; its status comes back.
    let o = kiln()
        .arg("shell")
        .arg(&root)
        .args([
            "/bin/sh",
            "-c",
            "echo pid=$$; id -un; test -c /dev/null && exit 7",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(stdout(&o), "pid=2\nroot\n");
    let left: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["rootfs"], "no temporary is left beside it");

    // Never over an existing result.
    let o = compose(&config, out.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));

    // Invalid configs are refused with their diagnostics.
    let bad = write(out.path(), "bad.json", THREE_MISTAKES);
    let o = compose(&bad, &out.path().join("bad"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is not a valid config"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn compose_distroless_keeps_manifests_and_drops_the_rpmdb() {
    let out = tempfile::tempdir().unwrap();
    let o = compose(&demo_config("demo-distroless.json"), out.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let root = out.path().join("rootfs");
    assert!(!root.join("var/lib/rpm").exists());
    let m1 =
        std::fs::read_to_string(root.join("var/lib/rpmmanifest/container-manifest-1")).unwrap();
    let mut m1: Vec<&str> = m1.lines().collect();
    m1.sort();
    assert_eq!(
        m1,
        [
            "azurelinux-release-3.0-1.azl3.noarch",
            "filesystem-1.1-1.azl3.noarch",
            "sample-minimal-1.0-1.azl3.noarch"
        ]
    );
    let m2 =
        std::fs::read_to_string(root.join("var/lib/rpmmanifest/container-manifest-2")).unwrap();
    let line = m2
        .lines()
        .find(|l| l.starts_with("sample-minimal\t"))
        .unwrap();
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 10, "{line}");
    assert_eq!(fields[1], "1.0-1.azl3");
    assert_eq!(fields[5], "(none)");
    assert_eq!(fields[9], "sample-minimal-1.0-1.azl3.src.rpm");
}

#[test]
fn why_names_the_chain_to_a_package() {
    let repo = sample_repo();
    let config = demo_config("demo-container.json");
    let why = |package: &str| {
        kiln()
            .args(["why", package, "--config"])
            .arg(&config)
            .arg("--repo")
            .arg(&repo)
            .output()
            .unwrap()
    };
    let o = why("sample-libfoo");
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("sample-libfoo-1.1-1.azl3.noarch: provides "));
    assert!(lines[0].ends_with("required by sample-app-1.2-3.azl3.noarch"));
    assert!(lines[1].starts_with("sample-app-1.2-3.azl3.noarch: requested as \"sample-app\" in "));
    let o = why("kernel");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("kernel is not in the image"),
        "{}",
        stderr(&o)
    );
}
