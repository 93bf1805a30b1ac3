//! Artifact jobs, named and built as upstream roast does (SPEC §2.2 examples).

use kiln_config::{validate_bytes, Options as ConfigOptions};
use kiln_roast::{plan, run, Error, Options};
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

const VER: &str = "3.0.20260428.1200";

fn config(json: &str) -> kiln_config::Config {
    let opts = ConfigOptions {
        base_dir: Some("/".into()),
        package_checks: false,
        file_checks: false,
    };
    let v = validate_bytes(json.as_bytes(), Path::new("c.json"), &opts);
    assert!(v.report.is_valid(), "{}", v.report.render(false));
    v.config.unwrap().config
}

/// imager's outputs: a small disk, a partition dump and a root directory.
fn imager_output(dir: &Path) {
    let disk = fs::File::create(dir.join("disk0.raw")).unwrap();
    disk.set_len(8 << 20).unwrap();
    disk.write_all_at(b"bootsector", 0).unwrap();
    fs::write(dir.join("disk0.partition1.raw"), vec![3u8; 1 << 20]).unwrap();
    fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
    fs::write(dir.join("rootfs/etc/os-release"), "NAME=kiln\n").unwrap();
}

const DISK_CONFIG: &str = r#"{
  "Disks": [{
    "PartitionTableType": "gpt", "MaxSize": 8,
    "Artifacts": [
      {"Name": "core", "Type": "vhdx"},
      {"Name": "CompressedVHD", "Type": "vhd", "Compression": "gz"},
      {"Name": "qcow", "Type": "qcow2"}
    ],
    "Partitions": [
      {"ID": "boot", "Start": 1, "End": 2, "FsType": "fat32"},
      {"ID": "root", "Start": 2, "End": 0, "FsType": "ext4", "Artifacts": [{"Name": "rootpart", "Type": "ext4", "Compression": "xz"}]}
    ]
  }],
  "SystemConfigs": [{"Name": "x", "Packages": ["p"], "KernelOptions": {"default": "kernel"},
    "PartitionSettings": [{"ID": "boot", "MountPoint": "/boot/efi"}, {"ID": "root", "MountPoint": "/"}]}]
}"#;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn disk_and_partition_artifacts_get_upstream_names() {
    let input = tempfile::tempdir().unwrap();
    let output = tempfile::tempdir().unwrap();
    imager_output(input.path());
    let opts = Options {
        input_dir: input.path().to_path_buf(),
        output_dir: output.path().to_path_buf(),
        release_version: VER.into(),
        image_tag: String::new(),
        workers: 10,
    };
    let (jobs, warnings) = plan(&config(DISK_CONFIG), &opts).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(jobs[3].input, input.path().join("disk0.partition1.raw"));
    run(&jobs, &opts, |_| {}).unwrap();
    assert_eq!(
        names(output.path()),
        [
            format!("CompressedVHD-{VER}.vhd"),
            format!("CompressedVHD-{VER}.vhd.gz"),
            format!("core-{VER}.vhdx"),
            format!("qcow-{VER}.qcow2"),
            format!("rootpart-{VER}.ext4"),
            format!("rootpart-{VER}.ext4.xz"),
        ]
    );
    let out = |n: &str| output.path().join(n);
    let ok = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "vhdx"])
        .arg(input.path().join("disk0.raw"))
        .arg(out(&format!("core-{VER}.vhdx")))
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -dc {} | cmp - {}",
            out(&format!("CompressedVHD-{VER}.vhd.gz")).display(),
            out(&format!("CompressedVHD-{VER}.vhd")).display()
        ))
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn rootfs_tarball_initrd_and_image_tag() {
    let input = tempfile::tempdir().unwrap();
    let output = tempfile::tempdir().unwrap();
    imager_output(input.path());
    let c = config(
        r#"{"Disks": [{"Artifacts": [{"Name": "core", "Compression": "tar.gz"}, {"Name": "iso-initrd", "Type": "initrd", "Compression": "tar.gz"}]}],
            "SystemConfigs": [{"Name": "x", "Packages": ["p"]}]}"#,
    );
    let opts = Options {
        input_dir: input.path().to_path_buf(),
        output_dir: output.path().to_path_buf(),
        release_version: VER.into(),
        image_tag: "foo".into(),
        workers: 2,
    };
    let (jobs, _) = plan(&c, &opts).unwrap();
    assert_eq!(jobs[0].input, input.path().join("rootfs"));
    run(&jobs, &opts, |_| {}).unwrap();
    assert_eq!(
        names(output.path()),
        [
            format!("core-{VER}-foo.tar.gz"),
            "iso-initrd-foo.img".to_string(),
            "iso-initrd-foo.img.tar.gz".to_string(),
        ]
    );
}

#[test]
fn failures_are_summarised_and_bad_options_refused() {
    let input = tempfile::tempdir().unwrap();
    let output = tempfile::tempdir().unwrap();
    imager_output(input.path());
    let c = config(
        r#"{"Disks": [{"PartitionTableType": "gpt", "MaxSize": 8,
              "Artifacts": [{"Name": "good", "Type": "raw"}, {"Name": "bad", "Type": "vhd-fixed"}, {"Name": "empty"}],
              "Partitions": [{"ID": "a", "Start": 1, "End": 0}]}],
            "SystemConfigs": [{"Name": "x", "Packages": ["p"], "KernelOptions": {"default": "k"}, "PartitionSettings": [{"ID": "a", "MountPoint": "/"}]}]}"#,
    );
    let mut opts = Options {
        input_dir: input.path().to_path_buf(),
        output_dir: output.path().to_path_buf(),
        release_version: String::new(),
        image_tag: String::new(),
        workers: 3,
    };
    let (jobs, _) = plan(&c, &opts).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let e = run(&jobs, &opts, |o| {
        seen.lock()
            .unwrap()
            .push((o.job.full_name.clone(), o.result.clone()))
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to generate the following artifacts: [bad empty]"
    );
    let seen = seen.into_inner().unwrap();
    assert!(seen
        .iter()
        .any(|(n, r)| n == "bad"
            && r.as_ref().unwrap_err() == "unsupported output format: vhd-fixed"));
    assert!(seen.iter().any(|(n, r)| n == "empty"
        && r.as_ref().unwrap_err() == "Artifact (empty) has no type or compression"));
    assert_eq!(names(output.path()), ["good.raw"]);
    opts.workers = 0;
    assert!(matches!(run(&jobs, &opts, |_| {}), Err(Error::Workers(0))));

    let two = config(
        r#"{"Disks": [{"Artifacts": []}, {"Artifacts": []}], "SystemConfigs": [{"Name": "x", "Packages": ["p"]}]}"#,
    );
    assert_eq!(
        plan(&two, &opts).unwrap_err().to_string(),
        "this program currently only supports one disk"
    );
}
