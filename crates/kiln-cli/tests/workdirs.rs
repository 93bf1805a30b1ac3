//! The folders `kiln build` and `kiln roast` work in: a second build of held folders fails
//! naming the first, a user's folder given as --build-dir is never emptied, temporaries a killed
//! kiln left are removed (and nothing else), and artifacts land on an output folder of another
//! filesystem.

mod common;

use common::{build_command, kiln, stderr};
use kiln_formats::files::lock_file;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

/// Holds `<dir>/.kiln-lock` as a running kiln would: locked, with this process's PID in it.
fn hold_lock(dir: &Path) -> std::fs::File {
    std::fs::create_dir_all(dir).unwrap();
    let mut f = std::fs::File::create(dir.join(".kiln-lock")).unwrap();
    assert!(lock_file(&f, false).unwrap());
    writeln!(f, "{}", std::process::id()).unwrap();
    f
}

/// Runs the demo-container build into `work`, which must refuse to start; returns its stderr.
fn refused_build(work: &Path) -> String {
    let o = build_command("demo-container.json", work).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    err
}

#[test]
fn a_second_build_of_held_folders_fails_naming_the_first() {
    let work = tempfile::tempdir().unwrap();
    for held in ["build", "images"] {
        let dir = work.path().join(held);
        let lock = hold_lock(&dir);
        let err = refused_build(work.path());
        assert!(
            err.contains(&format!(
                "{} is in use by another kiln (PID {})",
                dir.display(),
                std::process::id()
            )),
            "{err}"
        );
        assert!(err.contains("--wait-lock"), "{err}");
        assert!(
            !work.path().join("logs/demo-container.log").exists(),
            "the holder's log is left alone"
        );
        drop(lock);
    }
}

#[test]
fn a_users_folder_given_as_build_dir_is_not_emptied() {
    let work = tempfile::tempdir().unwrap();
    let build = work.path().join("build");
    std::fs::create_dir_all(build.join("imager_output")).unwrap();
    std::fs::write(build.join("imager_output/mine.txt"), "mine").unwrap();
    std::fs::write(build.join("notes.txt"), "mine").unwrap();
    let err = refused_build(work.path());
    assert!(
        err.contains(&format!(
            "the build folder {} is not empty and kiln did not create it",
            build.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("give --build-dir an empty or new folder"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(build.join("imager_output/mine.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(build.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(!build.join(".kiln-build-dir").exists());
}

#[test]
fn roast_removes_a_killed_roasts_temporary_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("disk.raw");
    std::fs::File::create(&input)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();
    let stale = d.join(".disk.vhd.kiln-tmp-4000000-0");
    std::fs::write(&stale, vec![1u8; 4096]).unwrap();
    // A live writer's temporary: locked by its writer (here, this test).
    let live = d.join(".other.vhd.kiln-tmp-4000001-0");
    let held = std::fs::File::create(&live).unwrap();
    assert!(lock_file(&held, false).unwrap());
    let unrelated = [
        "notes.txt",
        "disk.vhd.kiln-tmp-1",
        ".disk.raw.kiln-part",
        ".x.kiln-tmp-a",
    ];
    for name in unrelated {
        std::fs::write(d.join(name), "mine").unwrap();
    }
    let o = kiln()
        .arg("roast")
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(d.join("disk.vhd"))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(!stale.exists(), "{err}");
    assert!(
        err.contains(&format!("removed {}", stale.display())),
        "{err}"
    );
    assert!(live.exists(), "a held temporary is left alone");
    for name in unrelated {
        assert!(d.join(name).exists(), "{name} is left alone");
    }
    let left: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("kiln-tmp-") && n.starts_with(".disk.vhd"))
        .collect();
    assert!(left.is_empty(), "roast left {left:?}");
}

/// Whether this test process may mount (root, with `unshare`); prints why not.
fn can_mount() -> bool {
    let ok = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: cannot make a mount namespace with unshare (run the tests as root)");
    }
    ok
}

/// Runs `sh -c script` in a private mount namespace (its mounts go with it, whatever happens),
/// with `args` and then `command`'s line as its arguments.
fn in_mount_namespace(script: &str, args: &[&Path], command: &Command) -> Output {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .args(args)
    .arg(command.get_program())
    .args(command.get_args());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.output().unwrap()
}

#[test]
fn a_build_puts_its_artifacts_on_a_tmpfs_output_folder_and_sweeps_it() {
    if !can_mount() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("images");
    std::fs::create_dir_all(&out).unwrap();
    let build = build_command("demo-container.json", work.path());
    // In a private mount namespace: the tmpfs goes when the command ends, whatever happens.
    let script = r#"set -e
out="$1"; shift
mount -t tmpfs kiln-test-output "$out"
printf half > "$out/.demo-container.tar.gz.kiln-tmp-4000000-0"
printf mine > "$out/notes.txt"
"$@"
echo "filesystem: $(stat -f -c %T "$out")"
ls -A "$out"
"#;
    let o = in_mount_namespace(script, &[&out], &build);
    let (listing, err) = (common::stdout(&o), stderr(&o));
    assert!(o.status.success(), "{listing}{err}");
    assert!(listing.contains("filesystem: tmpfs"), "{listing}");
    let mut names: Vec<&str> = listing
        .lines()
        .skip_while(|l| !l.starts_with("filesystem:"))
        .skip(1)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".kiln-inputs",
            ".kiln-lock",
            "demo-container.tar.gz",
            "notes.txt"
        ],
        "the artifact, its inputs' record, the lock and the user's file; no temporary: {err}"
    );
    assert!(err.contains(".demo-container.tar.gz.kiln-tmp-4000000-0 (a temporary left by a kiln that was stopped)"), "{err}");
    assert!(
        work.path().join("build/.kiln-build-dir").exists(),
        "the build folder kiln made is marked"
    );
}

#[test]
fn a_build_does_not_remove_what_is_mounted_in_its_build_folder() {
    if !can_mount() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    common::build("demo-container.json", work.path());
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("sentinel"), "mine").unwrap();
    let mount = work.path().join("build/imager_output/rootfs/mnt");
    // --no-cache: the same build again would be up to date and remove nothing.
    let mut build = build_command("demo-container.json", work.path());
    build.arg("--no-cache");
    // The bind mount lives in a private mount namespace and goes with it.
    let script = r#"src="$1"; mnt="$2"; shift 2
mount --bind "$src" "$mnt" || exit 99
"$@"
echo "exit: $?"
"#;
    let o = in_mount_namespace(script, &[&outside, &mount], &build);
    let (out, err) = (common::stdout(&o), stderr(&o));
    assert!(out.contains("exit: 1"), "{out}{err}");
    assert!(
        err.contains(&format!("{} is a mount point inside", mount.display())),
        "{err}"
    );
    assert!(err.contains("umount"), "{err}");
    assert_eq!(
        std::fs::read_to_string(outside.join("sentinel")).unwrap(),
        "mine"
    );
}

#[test]
fn with_wait_lock_a_second_build_waits_for_the_first() {
    use std::io::BufRead;
    let work = tempfile::tempdir().unwrap();
    let build_dir = work.path().join("build");
    let lock = hold_lock(&build_dir);
    let mut child = build_command("demo-container.json", work.path())
        .arg("--wait-lock")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(
        first,
        format!(
            "waiting for another kiln (PID {}) to release {}",
            std::process::id(),
            build_dir.display()
        )
    );
    drop(lock);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success(), "{}", rest.join("\n"));
    assert!(work.path().join("images/demo-container.tar.gz").exists());
}
