//! The sandbox seen from inside: a busybox root, run as root (the CI's user).

use kiln_sandbox::run::Error;
use kiln_sandbox::{Sandbox, Status, View};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A minimal image root: static busybox and its applets.
fn busybox_root() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static is installed");
    for applet in [
        "sh", "cat", "ls", "sleep", "echo", "test", "mount", "mknod", "touch", "ps", "id", "head",
        "wc", "dd", "chroot", "readlink", "stat", "hostname", "ip", "find",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    (d, root)
}

fn run(sb: &Sandbox, script: &str) -> (Status, String) {
    let mut all = Vec::new();
    let out = sb
        .run(&["/bin/sh", "-c", script], &mut |b| {
            all.extend_from_slice(b)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    (out.status, String::from_utf8_lossy(&all).into_owned())
}

fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(marker))
        .count()
}

#[test]
fn the_image_sees_dev_proc_sys_run_and_nothing_of_the_host() {
    let (_d, root) = busybox_root();
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let sb = Sandbox::new(&root, View::Image);
    let (status, out) = run(
        &sb,
        "echo hi > /dev/null; test -c /dev/null && echo null-is-char; \
         test -c /dev/urandom && echo urandom; test -e /dev/pts/ptmx && echo pts; \
         test -r /proc/self/stat && echo proc; echo pid=$$; \
         test -d /sys/class && echo sys; touch /sys/x 2>/dev/null || echo sys-read-only; \
         touch /run/x && echo run; ls /sys/class/net; hostname; \
         mknod /tmp/sda b 8 0 2>/dev/null || echo no-mknod; \
         mount -o remount,rw /sys 2>/dev/null || echo no-remount; \
         ls /",
    );
    assert!(status.success(), "{out}");
    for want in [
        "null-is-char",
        "urandom",
        "pts",
        "proc",
        "pid=2",
        "sys\n",
        "sys-read-only",
        "run\n",
        "\nlo\n",
        "kiln-sandbox",
        "no-mknod",
        "no-remount",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // Nothing was mounted in the host's namespace, and nothing the sandbox mounted or wrote
    // in /dev stays in the image.
    assert_eq!(
        std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        mounts_before
    );
    assert!(std::fs::read_dir(root.join("dev"))
        .unwrap()
        .next()
        .is_none());
    assert!(std::fs::read_dir(root.join("run"))
        .unwrap()
        .next()
        .is_none());
    assert!(!root.join("tmp/sda").exists());
}

#[test]
fn background_processes_end_with_the_step() {
    let (_d, root) = busybox_root();
    let sb = Sandbox::new(&root, View::Image);
    let start = Instant::now();
    let (status, out) = run(&sb, "sleep 4242 & sleep 4242 & echo started");
    assert!(status.success() && out.contains("started"));
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(
        processes_with("4242"),
        0,
        "a background process outlived the step"
    );
}

#[test]
fn a_step_past_its_timeout_is_stopped_with_everything_it_started() {
    let (_d, root) = busybox_root();
    let sb = Sandbox::new(&root, View::Image).timeout(Duration::from_secs(1));
    let e = sb
        .run(
            &["/bin/sh", "-c", "sleep 4343 & echo waiting; sleep 4343"],
            &mut |_| {},
        )
        .unwrap_err();
    match e {
        Error::TimedOut {
            program,
            seconds,
            tail,
        } => {
            assert_eq!((program.as_str(), seconds), ("/bin/sh", 1));
            assert!(tail.contains("waiting"));
        }
        e => panic!("{e}"),
    }
    assert_eq!(processes_with("4343"), 0);
}

#[test]
fn output_is_streamed_and_only_its_tail_kept() {
    let (_d, root) = busybox_root();
    let sb = Sandbox::new(&root, View::Image);
    let mut total = 0usize;
    let out = sb
        .run(
            &[
                "/bin/sh",
                "-c",
                "dd if=/dev/zero bs=1M count=64 2>/dev/null; echo end",
            ],
            &mut |b| total += b.len(),
        )
        .unwrap();
    assert!(out.status.success());
    assert_eq!(total, (64 << 20) + 4);
    assert!(out.tail.len() <= kiln_sandbox::run::TAIL && out.tail.ends_with("end\n"));
}

#[test]
fn failures_name_what_failed() {
    let (_d, root) = busybox_root();
    let sb = Sandbox::new(&root, View::Image);
    let e = sb.run(&["/bin/no-such-tool"], &mut |_| {}).unwrap_err();
    assert!(matches!(e, Error::Exec { .. }), "{e}");
    assert!(e.to_string().contains("/bin/no-such-tool"), "{e}");
    let (status, _) = run(&sb, "exit 3");
    assert_eq!(status, Status::Exited(3));
    let (status, _) = run(&sb, "kill -9 $$");
    assert_eq!(status, Status::Signaled(9));
    // An image whose /dev is a symlink to a host directory is refused, and nothing is mounted
    // on the host.
    std::fs::remove_dir(root.join("dev")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("dev")).unwrap();
    let e = sb.run(&["/bin/sh", "-c", "true"], &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("the image's /dev"), "{e}");
}

#[test]
fn a_host_tool_sees_usr_read_only_and_the_image_writable() {
    let (d, root) = busybox_root();
    let extra = d.path().join("packages");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(extra.join("p.rpm"), "package").unwrap();
    let sb = Sandbox::new(&root, View::Host).read_only(&extra);
    let r = root.display();
    let e = extra.display();
    let (status, out) = run(
        &sb,
        &format!(
            "test -r /etc/shadow || echo no-shadow; touch /usr/x 2>/dev/null || echo usr-ro; \
             cat {e}/p.rpm; echo; touch {e}/y 2>/dev/null || echo extra-ro; \
             echo data > {r}/written && echo image-rw; \
             chroot {r} /bin/sh -c 'test -c /dev/null && echo chroot-dev; test -r /proc/1/stat && echo chroot-proc'"
        ),
    );
    assert!(status.success(), "{out}");
    for want in [
        "no-shadow",
        "usr-ro",
        "package",
        "extra-ro",
        "image-rw",
        "chroot-dev",
        "chroot-proc",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("written")).unwrap(),
        "data\n"
    );
    assert!(!Path::new("/usr/x").exists());
}

#[test]
fn standard_output_can_go_to_a_file_and_output_comes_in_lines() {
    let (d, root) = busybox_root();
    let sb = Sandbox::new(&root, View::Image);
    let file = std::fs::File::create(d.path().join("out")).unwrap();
    let mut errors = Vec::new();
    let out = sb
        .run_with_stdout(
            &["/bin/sh", "-c", "echo to-file; echo to-log >&2"],
            &file,
            &mut |b| errors.extend_from_slice(b),
        )
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(d.path().join("out")).unwrap(),
        "to-file\n"
    );
    assert_eq!(errors, b"to-log\n");
    let mut lines = Vec::new();
    sb.run_lines(&["/bin/sh", "-c", "echo a; printf 'b\\nc'"], &mut |l| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert_eq!(lines, ["a", "b", "c"]);
}

#[test]
fn a_stand_in_replaces_an_image_file_for_one_run_only() {
    let (d, root) = busybox_root();
    std::fs::create_dir_all(root.join("usr/sbin")).unwrap();
    std::fs::write(
        root.join("usr/sbin/probe"),
        "#!/bin/sh\necho the image file\n",
    )
    .unwrap();
    // A link inside the image resolves inside it: the stand-in covers what it names.
    std::os::unix::fs::symlink("probe", root.join("usr/sbin/probe2")).unwrap();
    let host = d.path().join("stand-in");
    std::fs::write(&host, "#!/bin/sh\necho the stand-in\n").unwrap();
    let sb = Sandbox::new(&root, View::Image)
        .stand_in("/usr/sbin/probe2", &host)
        .dev_entry(
            "disk/by-uuid/1234",
            kiln_sandbox::DevEntry::Symlink("../../sda2".into()),
        )
        .dev_entry("sda2", kiln_sandbox::DevEntry::Placeholder);
    let (status, out) = run(
        &sb,
        "sh /usr/sbin/probe; echo x >> /usr/sbin/probe 2>/dev/null || echo read-only; \
         test -e /dev/disk/by-uuid/1234 && echo uuid-link; test -b /dev/sda2 || echo not-a-device",
    );
    assert!(status.success(), "{out}");
    for want in ["the stand-in", "read-only", "uuid-link", "not-a-device"] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("usr/sbin/probe")).unwrap(),
        "#!/bin/sh\necho the image file\n"
    );

    // A path that leaves the image, or names no regular file, is refused before anything runs.
    std::os::unix::fs::symlink("/etc/passwd", root.join("usr/sbin/escape")).unwrap();
    for bad in ["/usr/sbin", "/usr/sbin/missing", "/../etc/passwd"] {
        let sb = Sandbox::new(&root, View::Image).stand_in(bad, &host);
        assert!(
            sb.run(&["/bin/true"], &mut |_| {}).is_err(),
            "{bad} accepted"
        );
    }
    // The escaping link resolves to the image's own /etc/passwd, which does not exist.
    let sb = Sandbox::new(&root, View::Image).stand_in("/usr/sbin/escape", &host);
    assert!(sb.run(&["/bin/true"], &mut |_| {}).is_err());
}
