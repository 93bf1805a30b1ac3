//! kiln's resolution against dnf's (libsolv, through dnf's Python API) on the sample repository,
//! for an empty install root: hand-picked cases that exercise each kind of dependency (versioned,
//! soname, file, virtual, rich `or`/`if … else`/`with`/`unless`, Conflicts, Obsoletes, epochs,
//! Recommends/Supplements), the demo config's package list, and 60 random package sets — each
//! with weak dependencies on (tdnf's default) and off. Both must choose the same NEVRAs, or both
//! must fail.

mod common;

#[test]
fn resolutions_match_dnf() {
    let root = common::sample_repo();
    let (pool, names) = common::pool_of(&root);

    let mut sets: Vec<Vec<String>> = [
        &["sample-app"][..],
        &["sample-rich"],
        &["sample-rich", "sample-minimal"],
        &["sample-app", "sample-mta-postfix"],
        &["sample-mta-postfix", "sample-mta-exim"],
        &["sample-old"],
        &["sample-new"],
        &["sample-epoch"],
        &["sample-epoch < 1:0"],
        &["sample-libfoo"],
        &["sample-libfoo < 2"],
        &["sample-libfoo = 1.0"],
        &["sample-libfoo >= 1.1", "sample-app"],
        &["sample-mta"],
        &["/bin/sh"],
        &["libfoo.so.1()(64bit)"],
        &["sample-docs"],
        &["nothing-provides-this"],
        &["sample-app", "sample-libfoo = 2.0"],
        &[
            "filesystem",
            "busybox",
            "shadow-utils",
            "grub2-efi-binary",
            "shim",
            "initramfs",
            "kernel",
        ],
    ]
    .iter()
    .map(|s| s.iter().map(|x| x.to_string()).collect())
    .collect();
    // Every SystemConfig of kiln's demo configs, as the config asks (kernel, release, lists).
    let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../imageconfigs");
    let mut demo_sets = 0;
    for entry in std::fs::read_dir(&configs).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let v = kiln_config::validate_file(&path, &kiln_config::Options::default()).unwrap();
        let loaded = v.config.expect("the demo configs are valid");
        for sc in &loaded.config.system_configs {
            let disk = !loaded.config.disks.is_empty() && !sc.partition_settings.is_empty();
            let list = kiln_config::packages::requested(sc, &loaded.config_path, disk).unwrap();
            sets.push(list.into_iter().map(|(text, _)| text).collect());
            demo_sets += 1;
        }
    }
    assert!(
        demo_sets >= 3,
        "the demo configs' system configs are compared"
    );
    let mut rng = common::Lcg(42);
    for _ in 0..60 {
        let n = 1 + rng.next() % 5;
        let mut set: Vec<String> = (0..n)
            .map(|_| names[rng.next() % names.len()].clone())
            .collect();
        set.dedup();
        sets.push(set);
    }

    let mut lines = Vec::new();
    let mut kiln = Vec::new();
    for set in &sets {
        for weak in [true, false] {
            lines.push(format!("{}\t{}", u8::from(weak), set.join("\t")));
            kiln.push(common::kiln_answer(&pool, set, weak));
        }
    }

    let dnf = common::ask_dnf("dnf_resolve.py", &root, &lines);
    common::assert_agree("resolutions", &lines, &kiln, &dnf);
}
