//! `kiln boot-test`: boots a built artifact in QEMU (TCG, no KVM needed) from a throwaway
//! snapshot, optionally logs in on the serial console and runs a few commands, and checks what
//! the console printed.

use clap::{Args, ValueEnum};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Firmware {
    /// UEFI (OVMF).
    Uefi,
    /// Legacy BIOS (SeaBIOS).
    Bios,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiskBus {
    Virtio,
    Nvme,
}

/// The machine QEMU starts: the disk, its firmware and bus, the memory.
#[derive(Debug, Args)]
pub struct MachineArgs {
    /// The image: raw, vhd, vhdx or qcow2 (told apart by extension; raw otherwise). A file
    /// whose contents say another format, or that is not a disk image, is refused before QEMU
    /// starts.
    #[arg(value_name = "ARTIFACT")]
    artifact: PathBuf,
    /// The firmware the machine starts with (default: what the disk's partition table is made
    /// for — UEFI for an EFI system partition, BIOS for a BIOS boot partition or an MBR without
    /// one).
    #[arg(long, value_enum)]
    firmware: Option<Firmware>,
    /// How the disk is attached.
    #[arg(long, value_enum, default_value_t = DiskBus::Virtio)]
    disk: DiskBus,
    /// Memory of the machine, in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    memory: u32,
    /// An ISO (e.g. kiln iso's installer) in a CD-ROM drive, booted before the disk. The drive
    /// is on virtio-scsi: Debian's cloud kernel has no SATA driver for QEMU's default one.
    /// Without --firmware the machine starts with UEFI.
    #[arg(long, value_name = "ISO")]
    cdrom: Option<PathBuf>,
    /// An image (e.g. kiln iso's hybrid ISO, as written to a USB stick with dd) attached as a
    /// USB mass-storage disk on an xHCI controller, read-only, booted before the disk. Without
    /// --firmware the machine starts with UEFI.
    #[arg(long, value_name = "IMAGE", conflicts_with = "cdrom")]
    usb: Option<PathBuf>,
    /// Another raw disk on virtio after the first (repeatable), `FILE` or `FILE,serial=S` (the
    /// serial the guest reads in sysfs), e.g. to let an installer choose between disks.
    #[arg(long = "extra-disk", value_name = "FILE[,serial=S]")]
    extra_disks: Vec<String>,
    /// Keep the UEFI variables in FILE (made from OVMF's template when it does not exist), so
    /// that the boot entries one boot made are there in the next and can be read afterwards.
    /// Written only with --persist (otherwise QEMU writes to a snapshot). Default: a fresh
    /// store for each boot.
    #[arg(long, value_name = "FILE")]
    vars: Option<PathBuf>,
    #[command(flatten)]
    direct: DirectBoot,
    /// A virtio network card on QEMU's user-mode network: an address by DHCP, the host's
    /// 127.0.0.1 reachable as 10.0.2.2 (e.g. the HTTP server of a network install). Without
    /// it QEMU adds its default card on the same network.
    #[arg(long)]
    network: bool,
}

/// Direct kernel boot (QEMU's -kernel, -initrd, -append): the firmware starts this kernel
/// instead of a boot loader from a disk or CD, as a PXE server's boot loader would.
#[derive(Debug, Clone, Args)]
pub struct DirectBoot {
    /// A kernel to start instead of booting from the disk or --cdrom, e.g. the installer's
    /// isolinux/vmlinuz out of kiln iso's ISO. Without --firmware the machine starts with UEFI.
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// The initrd of --kernel, e.g. the installer's isolinux/initrd.img.
    #[arg(long, value_name = "FILE", requires = "kernel")]
    initrd: Option<PathBuf>,
    /// The command line of --kernel, e.g. `console=ttyS0 image-config=http://10.0.2.2:8000/config`
    /// (a network install from the ISO's tree served on the host's port 8000).
    #[arg(long, value_name = "CMDLINE", requires = "kernel")]
    append: Option<String>,
}

#[derive(Debug, Args)]
pub struct BootTestArgs {
    /// The image is not modified: the machine writes to a snapshot.
    #[command(flatten)]
    machine: MachineArgs,
    /// Log in on the serial console as USER with PASSWORD, then run the commands (--run).
    #[arg(long, value_name = "USER:PASSWORD")]
    login: Option<String>,
    /// A command to run after logging in (repeatable; default: id, hostname, cat /proc/cmdline).
    #[arg(long = "run", value_name = "COMMAND")]
    commands: Vec<String>,
    /// Text the console must show (repeatable). Without --login, it must appear while booting;
    /// with neither, the boot must reach a login prompt.
    #[arg(long = "expect", value_name = "TEXT")]
    expect: Vec<String>,
    /// A kernel argument for this boot only (repeatable), e.g. `console=ttyS0` for an image
    /// whose config sends the console elsewhere: set as grubenv's `kernelopts` in a throwaway
    /// raw copy of the image (Azure Linux's grub.cfg appends it to every entry).
    #[arg(long = "kernel-arg", value_name = "ARG")]
    kernel_args: Vec<String>,
    /// Give --login's user its PASSWORD in a throwaway raw copy of the image (for an image whose
    /// config has no login), keeping the file's mode, owner and SELinux label.
    #[arg(long, requires = "login")]
    set_password: bool,
    /// Type PASSPHRASE when the boot asks for one ("Enter passphrase for …": GRUB's
    /// cryptomount of an encrypted root that holds /boot, as the attended installer lays it
    /// out), before anything else is waited for.
    #[arg(long, value_name = "PASSPHRASE")]
    passphrase: Option<String>,
    /// Seconds the whole test may take.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    timeout: u64,
    /// Let the machine write to the image (default: a throwaway snapshot), e.g. to install
    /// onto it from --cdrom.
    #[arg(long)]
    persist: bool,
    /// Write the whole console transcript here.
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
    /// Print one JSON document: {"artifact", "booted": bool, "seconds", "summary" (when it
    /// booted), "error" (when not)}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct QemuArgs {
    #[command(flatten)]
    machine: MachineArgs,
    /// Let the machine write to the image (default: a throwaway snapshot).
    #[arg(long)]
    persist: bool,
}

/// The console so far, filled by a reader thread.
#[derive(Clone, Default)]
struct Console(Arc<Mutex<Vec<u8>>>);

impl Console {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("no panic while held")).replace('\r', "")
    }
}

/// Waits until `pred` holds on the console text from `from` on; the position after the match.
fn wait_for(
    console: &Console,
    child: &mut Child,
    from: usize,
    deadline: Instant,
    what: &str,
    pred: impl Fn(&str) -> Option<usize>,
) -> Result<usize, String> {
    loop {
        let text = console.text();
        if let Some(at) = text.get(from..).and_then(&pred) {
            return Ok(from + at);
        }
        // Dead ends that no waiting will get out of.
        for (sign, why) in [
            (
                "\ngrub> ",
                "GRUB found no configuration and stopped at its prompt",
            ),
            ("Kernel panic", "the kernel panicked"),
            ("No bootable device", "the firmware found nothing to boot"),
        ] {
            if text.contains(sign) {
                return Err(format!("{why} (waiting for {what})"));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the machine stopped ({status}) before {what}"));
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The format QEMU is told, from the artifact's extension.
fn qemu_format(artifact: &Path) -> &'static str {
    match artifact.extension().and_then(|e| e.to_str()) {
        Some("vhd") => "vpc",
        Some("vhdx") => "vhdx",
        Some("qcow2") => "qcow2",
        _ => "raw",
    }
}

/// The firmware asked for, or the one the disk's partition table is made for.
fn firmware(args: &MachineArgs) -> Result<Firmware, String> {
    if let Some(f) = args.firmware {
        return Ok(f);
    }
    if args.cdrom.is_some() || args.usb.is_some() || args.direct.kernel.is_some() {
        return Ok(Firmware::Uefi);
    }
    let (disk, _) = kiln_formats::image::open(&args.artifact).map_err(|e| e.to_string())?;
    let mut head = vec![0u8; (disk.len() as usize).min(1 << 20)];
    disk.read_exact_at(&mut head, 0)
        .map_err(|e| format!("{}: {e}", args.artifact.display()))?;
    let found = kiln_disk::detect::firmware(&head).ok_or_else(|| {
        format!(
            "{} has no partition table to tell the firmware from: give --firmware uefi|bios",
            args.artifact.display()
        )
    })?;
    let firmware = match found.firmware {
        kiln_disk::detect::Firmware::Uefi => Firmware::Uefi,
        kiln_disk::detect::Firmware::Bios => Firmware::Bios,
    };
    eprintln!(
        "firmware: {} ({}; --firmware chooses another)",
        if firmware == Firmware::Uefi {
            "UEFI"
        } else {
            "BIOS"
        },
        found.why
    );
    Ok(firmware)
}

/// How the console is attached: piped to kiln (boot-test) or to the terminal (kiln qemu, with
/// QEMU's monitor on Ctrl-A C).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serial {
    Piped,
    Terminal,
}

fn qemu_command(
    args: &MachineArgs,
    vars: &Path,
    serial: Serial,
    snapshot: bool,
) -> Result<Command, String> {
    let format = qemu_format(&args.artifact);
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-display", "none"])
        .args(["-m", &args.memory.to_string()]);
    match serial {
        Serial::Piped => cmd.args(["-monitor", "none", "-no-reboot", "-serial", "stdio"]),
        Serial::Terminal => cmd.args(["-serial", "mon:stdio"]),
    };
    if snapshot {
        cmd.arg("-snapshot");
    }
    if firmware(args)? == Firmware::Uefi {
        let code = [
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_CODE.fd",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("OVMF is not installed (Debian package ovmf)")?;
        let template = code.replace("CODE", "VARS");
        let vars = match &args.vars {
            Some(kept) if kept.exists() => kept.as_path(),
            kept => {
                let vars = kept.as_deref().unwrap_or(vars);
                std::fs::copy(&template, vars).map_err(|e| format!("{template}: {e}"))?;
                vars
            }
        };
        cmd.arg("-drive")
            .arg(format!("if=pflash,format=raw,readonly=on,file={code}"))
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,file={}", vars.display()));
    }
    if let Some(iso) = &args.cdrom {
        cmd.args(["-device", "virtio-scsi-pci,id=scsi0"])
            .arg("-drive")
            .arg(format!(
                "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file={}",
                iso.display()
            ))
            .args(["-device", "scsi-cd,drive=cd0,bus=scsi0.0,bootindex=0"]);
    }
    if let Some(stick) = &args.usb {
        cmd.args(["-device", "qemu-xhci,id=xhci"])
            .arg("-drive")
            .arg(format!(
                "if=none,id=stick0,readonly=on,format=raw,file={}",
                stick.display()
            ))
            .args(["-device", "usb-storage,bus=xhci.0,drive=stick0,bootindex=0"]);
    }
    let d = &args.direct;
    for (what, file) in [("--kernel", &d.kernel), ("--initrd", &d.initrd)] {
        if let Some(file) = file {
            if !file.is_file() {
                return Err(format!("{what} {}: no such file", file.display()));
            }
        }
    }
    if let Some(kernel) = &d.kernel {
        cmd.arg("-kernel").arg(kernel);
    }
    if let Some(initrd) = &d.initrd {
        cmd.arg("-initrd").arg(initrd);
    }
    if let Some(append) = &d.append {
        cmd.arg("-append").arg(append);
    }
    if args.network {
        cmd.args(["-nic", "user,model=virtio-net-pci"]);
    }
    let file = format!("file={},format={format}", args.artifact.display());
    match args.disk {
        DiskBus::Virtio => {
            cmd.arg("-drive").arg(format!("{file},if=virtio"));
        }
        DiskBus::Nvme => {
            cmd.arg("-drive")
                .arg(format!("{file},if=none,id=disk0"))
                .args(["-device", "nvme,drive=disk0,serial=kiln"]);
        }
    }
    for (i, spec) in args.extra_disks.iter().enumerate() {
        let (file, serial) = match spec.rsplit_once(",serial=") {
            Some((file, serial)) => (file, Some(serial)),
            None => (spec.as_str(), None),
        };
        if !Path::new(file).is_file() {
            return Err(format!("--extra-disk {file}: no such file"));
        }
        // QEMU's option syntax: a comma in a value is written twice.
        cmd.arg("-drive").arg(format!(
            "file={},format=raw,if=none,id=extra{i}",
            file.replace(',', ",,")
        ));
        let mut device = format!("virtio-blk-pci,drive=extra{i}");
        if let Some(serial) = serial {
            if serial.is_empty()
                || serial.len() > 20
                || !serial.bytes().all(|b| b.is_ascii_graphic() && b != b',')
            {
                return Err(format!(
                    "--extra-disk {spec}: a serial is 1 to 20 printable characters without commas"
                ));
            }
            device.push_str(&format!(",serial={serial}"));
        }
        cmd.args(["-device", &device]);
    }
    Ok(cmd)
}

pub fn run(args: BootTestArgs) -> ExitCode {
    let started = Instant::now();
    let result = boot(&args, started);
    if args.json {
        let (booted, text) = match &result {
            Ok(summary) => (true, ("summary", summary)),
            Err(e) => (false, ("error", e)),
        };
        let mut doc = serde_json::json!({
            "artifact": args.machine.artifact,
            "booted": booted,
            "seconds": started.elapsed().as_secs_f64(),
        });
        doc[text.0] = serde_json::Value::from(text.1.as_str());
        println!("{doc}");
        return if booted {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `kiln qemu`: the image booted in QEMU with its serial console on this terminal.
pub fn run_interactive(args: QemuArgs) -> ExitCode {
    let m = &args.machine;
    let prepared = refuse_non_disk(&m.artifact).and_then(|_| {
        let work = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cmd = qemu_command(
            m,
            &work.path().join("vars.fd"),
            Serial::Terminal,
            !args.persist,
        )?;
        Ok((work, cmd))
    });
    let (_work, mut cmd) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "kiln qemu: {} ({}); Ctrl-A X quits, Ctrl-A C switches to QEMU's monitor",
        m.artifact.display(),
        if args.persist {
            "changes are written to the image"
        } else {
            "changes go to a throwaway snapshot"
        }
    );
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: cannot run qemu-system-x86_64 (Debian package qemu-system-x86): {e}");
            ExitCode::from(2)
        }
    }
}

/// Refuses, before QEMU starts, a file that is not a disk image (an archive, a compressed file;
/// an ISO is let through: it boots as a hybrid disk), or whose contents say another format than
/// its name, which is how QEMU is told the format.
fn refuse_non_disk(artifact: &Path) -> Result<(), String> {
    use kiln_formats::probe::{self, Kind};
    let (_, _, kind) = probe::open(artifact).map_err(|e| e.to_string())?;
    if kind == Kind::Iso {
        return Ok(());
    }
    probe::require_disk(artifact, kind).map_err(|e| e.to_string())?;
    let named = match qemu_format(artifact) {
        "vpc" => "vhd",
        f => f,
    };
    if matches!(kind, Kind::VmdkSparse | Kind::VmdkDescriptor) {
        return Err(format!(
            "{} is a vmdk image: boot-test boots raw, vhd, vhdx and qcow2 images (convert it with: kiln roast or qemu-img convert)",
            artifact.display()
        ));
    }
    if kind.name() != named {
        return Err(format!(
            "{} is a {} image, but its name says {named} (QEMU is told the format by the name): rename it to .{}",
            artifact.display(),
            kind.name(),
            kind.name()
        ));
    }
    Ok(())
}

fn boot(args: &BootTestArgs, started: Instant) -> Result<String, String> {
    if !args.machine.artifact.exists() {
        return Err(format!(
            "{}: no such image",
            args.machine.artifact.display()
        ));
    }
    refuse_non_disk(&args.machine.artifact)?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let changes = kiln_build::test_copy::TestChanges {
        kernel_args: args.kernel_args.clone(),
        password: match (&args.login, args.set_password) {
            (Some(login), true) => {
                let (user, password) =
                    login.split_once(':').ok_or("--login takes USER:PASSWORD")?;
                Some((user.to_string(), password.to_string()))
            }
            _ => None,
        },
    };
    let copy;
    let machine = if changes.is_empty() {
        &args.machine
    } else {
        // The copy lives beside the image (same filesystem, room for it), not in /tmp.
        let dir = kiln_formats::files::TempDir::create(
            &args
                .machine
                .artifact
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join("boot-test"),
        )
        .map_err(|e| format!("making a throwaway copy: {e}"))?;
        let raw = kiln_build::test_copy::make(
            &args.machine.artifact,
            &dir.path().join("disk.raw"),
            &changes,
        )
        .map_err(|e| format!("making a throwaway copy: {e}"))?;
        eprintln!(
            "booting a throwaway copy ({})",
            [
                (!changes.kernel_args.is_empty())
                    .then(|| format!("kernel arguments: {}", changes.kernel_args.join(" "))),
                changes
                    .password
                    .as_ref()
                    .map(|(u, _)| format!("a password for {u}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ")
        );
        copy = (
            dir,
            MachineArgs {
                artifact: raw,
                firmware: Some(firmware(&args.machine)?),
                disk: args.machine.disk,
                memory: args.machine.memory,
                cdrom: args.machine.cdrom.clone(),
                usb: args.machine.usb.clone(),
                extra_disks: args.machine.extra_disks.clone(),
                vars: args.machine.vars.clone(),
                direct: args.machine.direct.clone(),
                network: args.machine.network,
            },
        );
        &copy.1
    };
    let mut cmd = qemu_command(
        machine,
        &work.path().join("vars.fd"),
        Serial::Piped,
        !args.persist,
    )?;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run qemu-system-x86_64 (Debian package qemu-system-x86): {e}")
        })?;
    let console = Console::default();
    let mut stdout = child.stdout.take().expect("piped");
    let sink = console.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.0
                .lock()
                .expect("no panic while held")
                .extend_from_slice(&buf[..n]);
        }
    });
    let deadline = started + Duration::from_secs(args.timeout);
    let outcome = drive(args, &console, &mut child, deadline);
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let transcript = console.text();
    if let Some(path) = &args.transcript {
        let _ = std::fs::write(path, &transcript);
    }
    match outcome {
        Ok(found) => Ok(format!(
            "{}: booted{} in {:.1} s; saw {}",
            args.machine.artifact.display(),
            args.login
                .as_deref()
                .map(|l| format!(" and logged in as {}", l.split(':').next().unwrap_or(l)))
                .unwrap_or_default(),
            started.elapsed().as_secs_f64(),
            found
        )),
        Err(e) => {
            let tail: Vec<&str> = transcript.lines().rev().take(25).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!(
                "{e} ({:.1} s). The console's last lines:\n{}",
                started.elapsed().as_secs_f64(),
                tail.join("\n")
            ))
        }
    }
}

/// Logs in (if asked), runs the commands, and checks the expectations.
fn drive(
    args: &BootTestArgs,
    console: &Console,
    child: &mut Child,
    deadline: Instant,
) -> Result<String, String> {
    let mut stdin = child.stdin.take().expect("piped");
    let mut send = |text: &str| -> Result<(), String> {
        stdin
            .write_all(text.as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("cannot type on the console: {e}"))
    };
    let mut at = 0;
    if let Some(passphrase) = &args.passphrase {
        at = wait_for(console, child, at, deadline, "the passphrase prompt", |t| {
            let prompt = t.find("Enter passphrase")?;
            t[prompt..].find(": ").map(|i| prompt + i + 2)
        })?;
        send(&format!("{passphrase}\n"))?;
    }
    let Some(login) = &args.login else {
        let login_prompt = ["login: ".to_string()];
        let expect = if args.expect.is_empty() {
            &login_prompt[..]
        } else {
            &args.expect[..]
        };
        for e in expect {
            wait_for(console, child, at, deadline, &format!("{e:?}"), |t| {
                t.find(e.as_str()).map(|i| i + e.len())
            })?;
        }
        return Ok(if args.expect.is_empty() {
            "a login prompt on the console".into()
        } else {
            format!("{} expected text(s) on the console", args.expect.len())
        });
    };
    let (user, password) = login.split_once(':').ok_or("--login takes USER:PASSWORD")?;
    let at = wait_for(console, child, at, deadline, "the login prompt", |t| {
        t.find("login: ").map(|i| i + 7)
    })?;
    send(&format!("{user}\n"))?;
    let at = wait_for(console, child, at, deadline, "the password prompt", |t| {
        t.find("assword:").map(|i| i + 8)
    })?;
    send(&format!("{password}\n"))?;
    // A shell prompt ends in `$ ` or `# `; a refused login prompts again.
    let at = wait_for(console, child, at, deadline, "a shell", |t| {
        if t.contains("Login incorrect") {
            return Some(usize::MAX);
        }
        t.rfind("$ ").or_else(|| t.rfind("# ")).map(|i| i + 2)
    })
    .and_then(|at| {
        if at == usize::MAX {
            Err(format!("the login as {user} was refused"))
        } else {
            Ok(at)
        }
    })?;
    let commands = if args.commands.is_empty() {
        vec![
            "id".to_string(),
            "hostname".to_string(),
            "cat /proc/cmdline".to_string(),
        ]
    } else {
        args.commands.clone()
    };
    // The markers are built by the shell, so the echoed command line never matches them. The
    // end marker gets a line of its own: the last command's output may not end in a newline
    // (`cat /etc/hostname` of a file without one).
    send(&format!(
        "echo KILN-''BEGIN; {}; echo; echo KILN-''END\n",
        commands.join("; ")
    ))?;
    let end = wait_for(console, child, at, deadline, "the commands' output", |t| {
        t.find("\nKILN-END")
    })?;
    let text = console.text();
    let begin = text[at..end]
        .find("\nKILN-BEGIN")
        .map(|i| at + i + 11)
        .unwrap_or(at);
    let output = &text[begin..end];
    let missing: Vec<&String> = args
        .expect
        .iter()
        .filter(|e| !output.contains(e.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the commands' output lacks {missing:?}:\n{}",
            output.trim()
        ));
    }
    let _ = send("poweroff -f\n");
    Ok(format!(
        "{} expected text(s) in the output of: {}",
        args.expect.len(),
        commands.join("; ")
    ))
}
