//! The attended installer (liveinstaller's terminal UI) driven by typed keys and judged by a
//! terminal emulator (the vt100 crate) reading what it printed: in a pseudo-terminal that
//! reports no size, as a serial console does (fast, no QEMU), and end to end over QEMU's serial
//! console — `make iso` of imageconfigs/installer-attended.json booted under OVMF with a blank
//! virtio disk, every screen answered, the progress seen, and the installed disk then booted
//! alone and logged into as the user created.

mod common;

use common::{kiln, stderr, stdout};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a terminal of 80x24 shows, fed by a reader thread.
#[derive(Clone)]
struct Screen(Arc<Mutex<vt100::Parser>>);

impl Screen {
    fn new() -> Self {
        Screen(Arc::new(Mutex::new(vt100::Parser::new(24, 80, 0))))
    }

    fn feed(&self, mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        let me = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                me.0.lock().unwrap().process(&buf[..n]);
            }
        })
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().screen().contents()
    }

    /// Waits until the screen shows every one of `texts`; the screen then.
    fn wait(&self, texts: &[&str], child: &mut Child, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.text();
            if texts.iter().all(|t| s.contains(t)) {
                return s;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("stopped ({status}) before showing {texts:?}; the screen:\n{s}");
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {texts:?}; it shows:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn typed(to: &mut impl Write, keys: &str) {
    to.write_all(keys.as_bytes()).unwrap();
    to.flush().unwrap();
}

/// A pseudo-terminal pair (master, slave) whose size reads as 0x0, as a serial console's does.
fn pty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors we then own.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are open and owned by nothing else.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    }
}

#[test]
fn the_attended_installer_runs_on_a_terminal_of_unknown_size() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("attended_config.json");
    std::fs::write(
        &template,
        r#"{"SystemConfigs": [{"Name": "First system", "Packages": ["bash"]},
                             {"Name": "Second system", "Packages": ["bash"]}]}"#,
    )
    .unwrap();
    let link = dir.path().join("liveinstaller");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), &link).unwrap();
    let (master, slave) = pty();
    let mut cmd = Command::new(&link);
    cmd.arg("--input")
        .arg(dir.path().join("unattended_config.json"))
        .arg("--template-config")
        .arg(&template)
        // Never reached (the test does not confirm), and it could install nothing anyway.
        .args(["--imager", "/bin/false"])
        .arg("--build-dir")
        .arg(dir.path())
        .arg(format!(
            "--log-file={}",
            dir.path().join("log.txt").display()
        ))
        .env("TERM", "vt100")
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    // The terminal becomes the installer's controlling terminal, as a getty's does.
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // The command holds copies of the terminal's slave side: dropped, the master reads end
    // when the installer exits.
    drop(cmd);
    let screen = Screen::new();
    let reader = screen.feed(master.try_clone().unwrap());
    let mut keys = master;
    let limit = Duration::from_secs(60);

    let s = screen.wait(&["+ License agreement -", "< Accept >"], &mut child, limit);
    assert!(s.contains("Azure Linux installer (kiln)"), "{s}");
    typed(&mut keys, "\r");
    screen.wait(
        &["+ Installation choice -", "Second system"],
        &mut child,
        limit,
    );
    typed(&mut keys, "\t\r");
    let s = screen.wait(&["+ Disk -", "EVERYTHING ON IT"], &mut child, limit);
    // This host's disks are listed, and never installed onto: the test goes back before the
    // confirmation. Without a disk it cannot go further than this screen.
    if !s.contains("(no disk found)") {
        typed(&mut keys, "\r");
        screen.wait(&["+ Encryption -", "Confirm password:"], &mut child, limit);
        typed(&mut keys, "luks\rluks\r");
        screen.wait(&["+ Hostname -"], &mut child, limit);
        typed(&mut keys, "bad_name\r");
        screen.wait(
            &["letters, digits, hyphens and dots only"],
            &mut child,
            limit,
        );
        typed(&mut keys, "\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7fbox-1\r");
        screen.wait(&["+ User -", "User name:"], &mut child, limit);
        typed(&mut keys, "ada\rpw1\rpw2\r");
        screen.wait(&["The passwords differ."], &mut child, limit);
        typed(&mut keys, "\x7f1\r");
        let s = screen.wait(&["+ Confirm -", "< Install >"], &mut child, limit);
        for want in [
            "System:       Second system",
            "Encryption:   LUKS on the root",
            "Hostname:     box-1",
            "User:         ada (wheel)",
        ] {
            assert!(s.contains(want), "{want}:\n{s}");
        }
        assert!(!s.contains("pw1") && !s.contains("luks\n"), "{s}");
        // Back through every screen (Esc, sent alone so it is not read as a key sequence).
        for title in ["+ User -", "+ Hostname -", "+ Encryption -", "+ Disk -"] {
            std::thread::sleep(Duration::from_millis(300));
            typed(&mut keys, "\x1b");
            screen.wait(&[title], &mut child, limit);
        }
    }
    for title in ["+ Installation choice -", "+ License agreement -"] {
        std::thread::sleep(Duration::from_millis(300));
        typed(&mut keys, "\x1b");
        screen.wait(&[title], &mut child, limit);
    }
    // Decline: nothing installed, a failure status for runliveinstaller (a shell follows).
    typed(&mut keys, "\t\r");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    drop(keys);
    let _ = reader.join();
    let log = std::fs::read_to_string(dir.path().join("log.txt")).unwrap();
    assert!(log.contains("The license was declined"), "{log}");
    assert!(!dir.path().join("attendedconfig.json").exists());
}

/// OVMF's code and a fresh copy of its variables in `dir`.
fn ovmf(dir: &Path) -> (String, PathBuf) {
    let code = [
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_CODE.fd",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("OVMF (Debian package ovmf)");
    let vars = dir.join("vars.fd");
    std::fs::copy(code.replace("CODE", "VARS"), &vars).unwrap();
    (code.to_string(), vars)
}

#[test]
#[ignore = "needs the realistic distribution (make distro: out/RPMS) and about 10 minutes of QEMU (TCG); run with --ignored (KILN_ISO_BUILT=y after make iso CONFIG_FILE=imageconfigs/installer-attended.json)"]
fn the_attended_iso_installs_over_the_serial_console() {
    let work = tempfile::tempdir().unwrap();
    let rpms = common::distro_repo().expect("run `make distro` first");
    // KILN_ISO_BUILT=y: the ISO `make iso` already made (common::make_iso).
    let built = common::make_iso("installer-attended", &rpms, false);
    let iso = work.path().join("installer-attended.iso");
    std::fs::copy(&built, &iso).unwrap();
    let disk = work.path().join("disk.raw");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();

    // The machine kiln boot-test starts for --cdrom, its serial console on our pipes.
    let (code, vars) = ovmf(work.path());
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-display", "none", "-m", "3072"])
        .args(["-monitor", "none", "-no-reboot", "-serial", "stdio"])
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,readonly=on,file={code}"))
        .arg("-drive")
        .arg(format!("if=pflash,format=raw,file={}", vars.display()))
        .args(["-device", "virtio-scsi-pci,id=scsi0"])
        .arg("-drive")
        .arg(format!(
            "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file={}",
            iso.display()
        ))
        .args(["-device", "scsi-cd,drive=cd0,bus=scsi0.0,bootindex=0"])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", disk.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 (Debian package qemu-system-x86)");
    let screen = Screen::new();
    let transcript = Arc::new(Mutex::new(Vec::new()));
    // Both the screen and a transcript (for the failure message) read the console.
    let tee = Tee(child.stdout.take().unwrap(), transcript.clone());
    let reader = screen.feed(tee);
    let mut keys = child.stdin.take().unwrap();
    let started = Instant::now();
    let boot = Duration::from_secs(1800);
    let step = Duration::from_secs(120);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        screen.wait(&["+ License agreement -", "< Accept >"], &mut child, boot);
        typed(&mut keys, "\r");
        screen.wait(
            &["+ Installation choice -", "message of the day"],
            &mut child,
            step,
        );
        typed(&mut keys, "\t\r");
        screen.wait(&["+ Disk -", "/dev/vda", "4.0 GiB"], &mut child, step);
        typed(&mut keys, "\r");
        screen.wait(&["+ Encryption -"], &mut child, step);
        typed(&mut keys, "\r\r");
        screen.wait(&["+ Hostname -"], &mut child, step);
        typed(&mut keys, "attended-box\r");
        screen.wait(&["+ User -"], &mut child, step);
        typed(&mut keys, "ada\rkiln-pw1\rkiln-pw1\r");
        let s = screen.wait(&["+ Confirm -", "/dev/vda"], &mut child, step);
        assert!(s.contains("User:         ada (wheel)"), "{s}");
        let asked = started.elapsed();
        typed(&mut keys, "\r");
        // Progress: the bar moves with the imager's progress lines.
        screen.wait(&["+ Installing -", "%"], &mut child, step);
        let mut seen = std::collections::BTreeSet::new();
        let deadline = Instant::now() + boot;
        while !screen.text().contains("The system is installed.") {
            let s = screen.text();
            // The bar's line: `|  [####....]  42%   |`.
            if let Some(p) = s.lines().find_map(|l| {
                l.split([' ', '|', ']'])
                    .find_map(|w| w.strip_suffix('%')?.parse::<u32>().ok())
            }) {
                seen.insert(p);
            }
            assert!(
                !s.contains("+ Installation failed -"),
                "the install failed:\n{s}"
            );
            assert!(Instant::now() < deadline, "no end of the install:\n{s}");
            assert!(child.try_wait().unwrap().is_none(), "QEMU stopped:\n{s}");
            std::thread::sleep(Duration::from_millis(200));
        }
        let installed = started.elapsed();
        assert!(
            seen.len() >= 3,
            "the progress bar moved through only {seen:?}"
        );
        typed(&mut keys, "\r");
        // runliveinstaller reboots; -no-reboot stops QEMU.
        let deadline = Instant::now() + step;
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "no reboot after the finish screen"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "attended install: screens answered at {:.0} s, installed at {:.0} s; progress seen: {seen:?}",
            asked.as_secs_f64(),
            installed.as_secs_f64()
        );
    }));
    let _ = child.kill();
    let _ = child.wait();
    drop(keys);
    let _ = reader.join();
    let console = String::from_utf8_lossy(&transcript.lock().unwrap()).into_owned();
    std::fs::write(work.path().join("console.log"), &console).unwrap();
    if let Err(e) = result {
        eprintln!(
            "--- console (last 6000 bytes) ---\n{}",
            &console[console.len().saturating_sub(6000)..]
        );
        std::panic::resume_unwind(e);
    }
    assert!(console.contains("Installation complete: rebooting."));

    // The installed disk alone: the user created logs in; the system chosen is installed.
    let o = kiln()
        .arg("boot-test")
        .arg(&disk)
        .args(["--firmware", "uefi", "--login", "ada:kiln-pw1"])
        .args(["--timeout", "900"])
        .args([
            "--run",
            "id",
            "--run",
            "cat /etc/hostname",
            "--run",
            "cat /etc/motd",
        ])
        .args(["--expect", "(wheel)", "--expect", "attended-box"])
        .args(["--expect", "Installed by the kiln attended installer."])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    eprintln!("{}", stdout(&o));
}

/// A reader that also keeps what it read.
struct Tee<R>(R, Arc<Mutex<Vec<u8>>>);

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}
