//! Running a program inside an image root, isolated from the build host.
//!
//! [`Sandbox::run`] forks a child that enters new user, mount, PID, IPC, UTS, cgroup and (unless
//! asked otherwise) network namespaces. Its user namespace maps the ids kiln itself has one to
//! one, so files keep the image's owners, while every capability the program has is confined to
//! the namespaces: it cannot create device nodes, load modules, or lift the read-only flag of a
//! mount it was given. The child then forks the namespace's PID 1, which builds the new root:
//!
//! * [`View::Image`]: the image root itself is `/`, with a private `/dev` (tmpfs holding null,
//!   zero, full, random, urandom and tty bound from the host, a new devpts instance, `/dev/shm`),
//!   `/proc` of the new PID namespace, `/sys` read-only and `/run` a tmpfs. This is where scripts,
//!   scriptlets, grub2-mkconfig, setfiles and dracut run.
//! * [`View::Host`]: for a host tool that works *on* the image (`rpm --root`): a tmpfs root with
//!   the host's `/usr` (and the few `/etc` files a program needs to start) read-only, the image
//!   root at its own path (writable, with its own `/dev`, `/proc`, `/sys` and `/run` as above, so
//!   rpm's chrooted scriptlets find them), and any extra paths read-only. Nothing else of the
//!   host is visible, so a scriptlet that escapes rpm's chroot finds only public binaries.
//!
//! Mount targets inside the image are resolved with openat2 beneath the root and without
//! following symlinks, so a package cannot redirect them. Every mount lives in the new mount
//! namespace and disappears with it: nothing is ever mounted in the host's namespace.
//!
//! PID 1 runs the program in a new session, reaps every process, and exits with the program's
//! status; the kernel then kills whatever is left in the namespace, so background processes
//! never outlive the step. Both children die with their parent (`PR_SET_PDEATHSIG`), so killing
//! kiln, or a timeout, ends the whole tree. Flushes to disk (fsync and the like) return at once
//! ([`crate::nosync`]): the tree is staged, and made anew if the build stops. Output (stdout and
//! stderr together) is streamed to the caller as it comes; only its last [`TAIL`] bytes are kept
//! for error messages.

use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use std::ffi::{CStr, CString, OsStr};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How much of a program's output is kept for error messages.
pub const TAIL: usize = 16 * 1024;

/// The default time a program may run: generous, since dracut or a big transaction under
/// emulation is slow; `--script-timeout` changes it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// What the program sees as `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The image root.
    Image,
    /// The host's `/usr` read-only, the image root at its own path.
    Host,
}

/// Why a program could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the build sandbox could not be set up ({step}): {source}{hint}")]
    Setup {
        step: String,
        source: io::Error,
        hint: &'static str,
    },
    #[error("{program} could not be started in the sandbox: {source}")]
    Exec { program: String, source: io::Error },
    #[error("{program} did not finish within {seconds} s and was stopped with everything it started (raise --script-timeout if it needs longer); its last output:\n{tail}")]
    TimedOut {
        program: String,
        seconds: u64,
        tail: String,
    },
    #[error("the build sandbox: {0}")]
    Io(#[from] io::Error),
}

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
}

impl Status {
    pub fn success(self) -> bool {
        self == Status::Exited(0)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Exited(c) => write!(f, "exit status {c}"),
            Status::Signaled(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// A finished program: its status and the end of its output.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    /// The last [`TAIL`] bytes of its output, as text.
    pub tail: String,
}

/// A sandbox for running programs in one image root.
#[derive(Debug, Clone)]
pub struct Sandbox {
    root: PathBuf,
    view: View,
    read_only: Vec<PathBuf>,
    network: bool,
    image_mounts: bool,
    interactive: bool,
    timeout: Duration,
    env: Vec<(String, String)>,
    workdir: String,
    stand_ins: Vec<(PathBuf, String)>,
    dev_entries: Vec<(String, DevEntry)>,
}

/// An entry kiln adds to the private `/dev` for one run (see [`Sandbox::dev_entry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevEntry {
    /// An empty regular file: a placeholder named as a device, for programs that only test
    /// that the device exists (the sandbox can never create real device nodes).
    Placeholder,
    /// A symbolic link to the given target (`disk/by-uuid/X` → `../../sda2`).
    Symlink(String),
}

impl Sandbox {
    /// A sandbox over the image root at `root` (a host directory) with `view` as `/`.
    pub fn new(root: &Path, view: View) -> Sandbox {
        Sandbox {
            root: root.to_path_buf(),
            view,
            read_only: Vec::new(),
            network: false,
            image_mounts: true,
            interactive: false,
            timeout: DEFAULT_TIMEOUT,
            env: vec![
                (
                    "PATH".into(),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ),
                ("HOME".into(), "/root".into()),
                ("LANG".into(), "C.UTF-8".into()),
            ],
            workdir: "/".into(),
            stand_ins: Vec::new(),
            dev_entries: Vec::new(),
        }
    }

    /// Shows the host file `host` read-only (and nosuid) in place of the image's regular file
    /// `image_path` for this run: a program kiln supplies instead of one of the image's (the
    /// device probe grub2-mkconfig calls, which has no device to probe here). The image file is
    /// resolved inside the image root (its symlinks cannot leave it) and must exist; the image
    /// itself is not changed.
    pub fn stand_in(mut self, image_path: &str, host: &Path) -> Sandbox {
        self.stand_ins.push((host.to_path_buf(), image_path.into()));
        self
    }

    /// Adds `path` (relative to `/dev`, e.g. `disk/by-uuid/X`) to the private `/dev`, with
    /// its parent directories.
    pub fn dev_entry(mut self, path: &str, entry: DevEntry) -> Sandbox {
        self.dev_entries.push((path.into(), entry));
        self
    }

    /// Also shows the host path `path` read-only at the same path ([`View::Host`] only).
    pub fn read_only(mut self, path: &Path) -> Sandbox {
        self.read_only.push(path.to_path_buf());
        self
    }

    /// Gives the program the host's network (off by default).
    pub fn network(mut self, on: bool) -> Sandbox {
        self.network = on;
        self
    }

    /// [`View::Host`] only: whether the image gets its `/dev`, `/proc` and `/run` (on by
    /// default). Off for a transaction that installs the packages owning those directories:
    /// rpm sets their owners and modes, which a mounted proc refuses when its root is not the
    /// namespace's (a rootless build).
    pub fn image_mounts(mut self, on: bool) -> Sandbox {
        self.image_mounts = on;
        self
    }

    /// Gives the program kiln's own standard input, output and error (a terminal, for `kiln
    /// shell`) instead of streaming its output to the caller; it stays in kiln's session so a
    /// shell gets job control. The caller's `log` then hears nothing.
    pub fn interactive(mut self, on: bool) -> Sandbox {
        self.interactive = on;
        self
    }

    /// Stops the program and everything it started after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Sandbox {
        self.timeout = timeout;
        self
    }

    /// Sets an environment variable for the program.
    pub fn env(mut self, key: &str, value: &str) -> Sandbox {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// The directory the program starts in (default `/`).
    pub fn workdir(mut self, dir: &str) -> Sandbox {
        self.workdir = dir.into();
        self
    }

    /// Runs `argv` (the program is looked up in `PATH` inside the sandbox), handing its output
    /// to `log` as it comes.
    pub fn run<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        log: &mut dyn FnMut(&[u8]),
    ) -> Result<Outcome, Error> {
        self.run_inner(argv, None, log)
    }

    /// Runs `argv` with its standard output written to `stdout` (a file kiln opened, e.g. one
    /// inside the image) and only its standard error handed to `log`.
    pub fn run_with_stdout<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        stdout: &std::fs::File,
        log: &mut dyn FnMut(&[u8]),
    ) -> Result<Outcome, Error> {
        self.run_inner(argv, Some(stdout), log)
    }

    /// Runs `argv` and hands its output to `log` a line at a time (lossy UTF-8, lines longer
    /// than 4 KiB cut into pieces), as build logs want it.
    pub fn run_lines<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        log: &mut dyn FnMut(&str),
    ) -> Result<Outcome, Error> {
        let mut pending: Vec<u8> = Vec::new();
        let emit = |line: &[u8], log: &mut dyn FnMut(&str)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            log(&String::from_utf8_lossy(line));
        };
        let result = self.run(argv, &mut |chunk| {
            for piece in chunk.split_inclusive(|b| *b == b'\n') {
                pending.extend_from_slice(piece);
                if pending.last() == Some(&b'\n') {
                    pending.pop();
                    emit(&pending, log);
                    pending.clear();
                } else if pending.len() >= 4096 {
                    emit(&pending, log);
                    pending.clear();
                }
            }
        });
        if !pending.is_empty() {
            emit(&pending, log);
        }
        result
    }

    fn run_inner<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        stdout: Option<&std::fs::File>,
        log: &mut dyn FnMut(&[u8]),
    ) -> Result<Outcome, Error> {
        let program = argv
            .first()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .unwrap_or_default();
        let plan = Plan::new(self, argv)?;
        let mut pipes = Pipes::new()?;
        if let Some(f) = stdout {
            pipes.stdout = Some(f.try_clone()?.into());
        }
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the child only makes system calls and small allocations (glibc's fork leaves
        // malloc usable in the child) before it execs or exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error().into());
        }
        if pid == 0 {
            child(&plan, &pipes, parent);
        }
        let mut guard = Child {
            pid,
            pid1: None,
            reaped: false,
        };
        let Pipes {
            ready_r,
            ready_w,
            go_r,
            go_w,
            out_r,
            out_w,
            err_r,
            err_w,
            stdout,
        } = pipes;
        // The child's ends: only the child may hold them, or the reads below never end.
        drop((ready_w, go_r, out_w, err_w, stdout));
        // Wait for the child to be in its user namespace, then map it.
        let mut b = [0u8; 1];
        let mut ready = std::fs::File::from(ready_r);
        if ready.read(&mut b)? == 1 {
            write_id_maps(pid)?;
            std::fs::File::from(go_w).write_all(b"g")?;
            // Then the child names the namespace's PID 1, the process to kill on a timeout.
            let mut p = [0u8; 4];
            if ready.read_exact(&mut p).is_ok() {
                guard.pid1 = Some(i32::from_le_bytes(p));
            }
        } else {
            drop(go_w);
        }
        let (status, tail, timed_out) = pump(&mut guard, out_r, self.timeout, log)?;
        let mut report = Vec::new();
        std::fs::File::from(err_r).read_to_end(&mut report)?;
        if let Some(e) = decode_report(&report) {
            return Err(match e {
                (step, source) if step == "exec" => Error::Exec { program, source },
                (step, source) => Error::Setup {
                    hint: hint(&source),
                    step,
                    source,
                },
            });
        }
        if timed_out {
            return Err(Error::TimedOut {
                program,
                seconds: self.timeout.as_secs(),
                tail,
            });
        }
        Ok(Outcome { status, tail })
    }
}

fn hint(e: &io::Error) -> &'static str {
    if e.raw_os_error() == Some(libc::EPERM) || e.raw_os_error() == Some(libc::ENOSPC) {
        " — kiln needs user namespaces: check that kernel.unprivileged_userns_clone and \
         user.max_user_namespaces allow them (a container may need --privileged or a seccomp \
         profile that permits unshare)"
    } else {
        ""
    }
}

/// The forked child and the namespace's PID 1 it started; both killed, and the child reaped,
/// when dropped before its end.
struct Child {
    pid: libc::pid_t,
    pid1: Option<libc::pid_t>,
    reaped: bool,
}

impl Child {
    /// Ends the sandbox: killing PID 1 makes the kernel kill every process of the namespace,
    /// and the child's wait for PID 1 returns only once they are all gone.
    fn kill(&self) {
        // SAFETY: signals to our own child and to the PID 1 it reported.
        unsafe {
            match self.pid1 {
                Some(p) => libc::kill(p, libc::SIGKILL),
                None => libc::kill(self.pid, libc::SIGKILL),
            };
        }
    }

    /// Waits for the child: its wait status, or `None` when it was already reaped.
    fn wait(&mut self) -> Option<i32> {
        let mut st = 0;
        // SAFETY: our own child, reaped once.
        let rc = unsafe { libc::waitpid(self.pid, &mut st, 0) };
        self.reaped = true;
        (rc == self.pid).then_some(st)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            self.wait();
        }
    }
}

/// Streams the output to `log` until the program's namespace is gone or the time is up, then
/// reaps the child: (status, tail, timed out).
fn pump(
    child: &mut Child,
    out: OwnedFd,
    timeout: Duration,
    log: &mut dyn FnMut(&[u8]),
) -> io::Result<(Status, String, bool)> {
    let deadline = Instant::now() + timeout;
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut timed_out = false;
    let mut file = std::fs::File::from(out);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            child.kill();
            break;
        }
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(60_000) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            continue;
        }
        let got = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        log(&buf[..got]);
        tail.extend_from_slice(&buf[..got]);
        if tail.len() > 2 * TAIL {
            tail.drain(..tail.len() - TAIL);
        }
    }
    // The child reports the program's status; a signal is passed on as 128 + its number.
    let status = match child.wait() {
        None => Status::Signaled(libc::SIGKILL),
        Some(st) if libc::WIFEXITED(st) => match libc::WEXITSTATUS(st) {
            c if (129..128 + 65).contains(&c) => Status::Signaled(c - 128),
            c => Status::Exited(c),
        },
        Some(st) => Status::Signaled(libc::WTERMSIG(st)),
    };
    if tail.len() > TAIL {
        tail.drain(..tail.len() - TAIL);
    }
    Ok((
        status,
        String::from_utf8_lossy(&tail).into_owned(),
        timed_out,
    ))
}

/// Maps every id kiln has to the same id in the child's user namespace.
fn write_id_maps(pid: libc::pid_t) -> io::Result<()> {
    for file in ["uid_map", "gid_map"] {
        let own = std::fs::read_to_string(format!("/proc/self/{file}"))?;
        let map: String = own
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3).then(|| format!("{} {} {}\n", f[0], f[0], f[2]))
            })
            .collect();
        std::fs::write(format!("/proc/{pid}/{file}"), map).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("writing the sandbox's {file}: {e} (kiln must run as root, or as an ordinary user through its user namespace with /etc/subuid ranges)"),
            )
        })?;
    }
    Ok(())
}

struct Pipes {
    ready_r: OwnedFd,
    ready_w: OwnedFd,
    go_r: OwnedFd,
    go_w: OwnedFd,
    out_r: OwnedFd,
    out_w: OwnedFd,
    err_r: OwnedFd,
    err_w: OwnedFd,
    /// Where the program's standard output goes instead of `out_w`.
    stdout: Option<OwnedFd>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: a two-element array for the new descriptors.
    sys::cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: new descriptors owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Pipes {
    fn new() -> io::Result<Pipes> {
        let (ready_r, ready_w) = pipe()?;
        let (go_r, go_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        Ok(Pipes {
            ready_r,
            ready_w,
            go_r,
            go_w,
            out_r,
            out_w,
            err_r,
            err_w,
            stdout: None,
        })
    }
}

/// A host path shown read-only in the [`View::Host`] root.
struct Shown {
    /// The host path (the clone's source).
    source: CString,
    /// Where it goes, relative to the new root.
    at: CString,
    what: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
}

/// Everything the child needs, prepared before the fork.
struct Plan {
    root: CString,
    view: View,
    /// [`View::Host`]: the image root's path relative to `/`, and what else is shown.
    root_at: CString,
    shown: Vec<Shown>,
    /// [`View::Host`]: top-level symlinks (`bin` → `usr/bin`) as on the host.
    links: Vec<(CString, CString)>,
    network: bool,
    image_mounts: bool,
    interactive: bool,
    argv: Vec<CString>,
    env: Vec<CString>,
    workdir: CString,
    /// (host file, image path relative to the image root).
    stand_ins: Vec<(CString, CString)>,
    /// (path relative to /dev, symlink target or None for a placeholder file).
    dev_entries: Vec<(CString, Option<CString>)>,
}

fn cstring(p: &OsStr) -> io::Result<CString> {
    CString::new(p.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
}

impl Plan {
    fn new<S: AsRef<OsStr>>(s: &Sandbox, argv: &[S]) -> io::Result<Plan> {
        if argv.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no program to run",
            ));
        }
        let root = std::fs::canonicalize(&s.root)?;
        let relative = |p: &Path| cstring(p.strip_prefix("/").unwrap_or(p).as_os_str());
        let mut shown = Vec::new();
        let mut links = Vec::new();
        if s.view == View::Host {
            for top in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
                let host = Path::new("/").join(top);
                match std::fs::read_link(&host) {
                    Ok(target) => {
                        links.push((cstring(top.as_ref())?, cstring(target.as_os_str())?))
                    }
                    Err(_) if host.is_dir() => shown.push(Shown {
                        source: cstring(host.as_os_str())?,
                        at: cstring(top.as_ref())?,
                        what: Kind::Dir,
                    }),
                    Err(_) => {}
                }
            }
            let mut extra: Vec<PathBuf> = vec!["/usr".into()];
            // What a dynamically linked host program (rpm) needs from /etc to start and to
            // name users; no secrets.
            for f in [
                "/etc/ld.so.cache",
                "/etc/ld.so.conf",
                "/etc/ld.so.conf.d",
                "/etc/rpm",
                "/etc/alternatives",
                "/etc/passwd",
                "/etc/group",
                "/etc/nsswitch.conf",
                "/etc/localtime",
            ] {
                if Path::new(f).exists() {
                    extra.push(f.into());
                }
            }
            for p in &s.read_only {
                extra.push(std::fs::canonicalize(p)?);
            }
            for p in extra {
                let what = if std::fs::metadata(&p)?.is_dir() {
                    Kind::Dir
                } else {
                    Kind::File
                };
                shown.push(Shown {
                    source: cstring(p.as_os_str())?,
                    at: relative(&p)?,
                    what,
                });
            }
        }
        Ok(Plan {
            root_at: relative(&root)?,
            root: cstring(root.as_os_str())?,
            view: s.view,
            shown,
            links,
            network: s.network,
            image_mounts: s.image_mounts,
            interactive: s.interactive,
            argv: argv
                .iter()
                .map(|a| cstring(a.as_ref()))
                .collect::<io::Result<_>>()?,
            env: s
                .env
                .iter()
                .map(|(k, v)| cstring(OsStr::new(&format!("{k}={v}"))))
                .collect::<io::Result<_>>()?,
            workdir: cstring(OsStr::new(&s.workdir))?,
            stand_ins: s
                .stand_ins
                .iter()
                .map(|(host, at)| {
                    let at = at.trim_start_matches('/');
                    if at.is_empty() || at.split('/').any(|c| c == "..") {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("a stand-in's image path must name a file: /{at}"),
                        ));
                    }
                    Ok((cstring(host.as_os_str())?, cstring(OsStr::new(at))?))
                })
                .collect::<io::Result<_>>()?,
            dev_entries: s
                .dev_entries
                .iter()
                .map(|(path, entry)| {
                    let path = path.trim_start_matches('/');
                    if path.is_empty() || path.split('/').any(|c| c == ".." || c == ".") {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("a /dev entry must be a plain relative path: {path}"),
                        ));
                    }
                    let target = match entry {
                        DevEntry::Placeholder => None,
                        DevEntry::Symlink(t) => Some(cstring(OsStr::new(t))?),
                    };
                    Ok((cstring(OsStr::new(path))?, target))
                })
                .collect::<io::Result<_>>()?,
        })
    }
}

/// Reports a failed step to the parent and exits.
fn fail(err: RawFd, step: &str, e: io::Error) -> ! {
    let code = e.raw_os_error().unwrap_or(libc::EIO);
    let mut msg = code.to_le_bytes().to_vec();
    msg.extend_from_slice(step.as_bytes());
    // SAFETY: writing a buffer to our pipe, then leaving without running destructors.
    unsafe {
        libc::write(err, msg.as_ptr().cast(), msg.len());
        libc::_exit(126)
    }
}

fn decode_report(report: &[u8]) -> Option<(String, io::Error)> {
    if report.len() < 4 {
        return None;
    }
    let code = i32::from_le_bytes(report[..4].try_into().expect("four bytes"));
    Some((
        String::from_utf8_lossy(&report[4..]).into_owned(),
        io::Error::from_raw_os_error(code),
    ))
}

/// The pipes moved to descriptors 1000..1009 and every other descriptor above 2 closed.
fn keep_only(pipes: &Pipes) -> Pipes {
    let mut fds = vec![
        &pipes.ready_r,
        &pipes.ready_w,
        &pipes.go_r,
        &pipes.go_w,
        &pipes.out_r,
        &pipes.out_w,
        &pipes.err_r,
        &pipes.err_w,
    ];
    fds.extend(pipes.stdout.as_ref());
    let mut moved = [0; 9];
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: duplicating our own descriptors onto free high numbers.
        moved[i] = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 1000 + i as i32) };
        if moved[i] != 1000 + i as i32 {
            // SAFETY: leaving the forked child at once.
            unsafe { libc::_exit(126) };
        }
    }
    // SAFETY: closing every other descriptor; the moved ones are owned below.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, 999u32, 0u32);
        libc::syscall(
            libc::SYS_close_range,
            1000 + fds.len() as u32,
            u32::MAX,
            0u32,
        );
        let own = |i: usize| OwnedFd::from_raw_fd(moved[i]);
        Pipes {
            ready_r: own(0),
            ready_w: own(1),
            go_r: own(2),
            go_w: own(3),
            out_r: own(4),
            out_w: own(5),
            err_r: own(6),
            err_w: own(7),
            stdout: pipes.stdout.as_ref().map(|_| own(8)),
        }
    }
}

/// The forked child: namespaces, then PID 1.
fn child(plan: &Plan, pipes: &Pipes, parent: libc::pid_t) -> ! {
    // Descriptors of other threads' work (another sandbox's pipes) must not be held here.
    let pipes = &keep_only(pipes);
    let err = pipes.err_w.as_raw_fd();
    // SAFETY: system calls on our own process and descriptors.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(126);
        }
        // Signals kiln ignores or handles must not be inherited as such.
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP;
    if !plan.network {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: unshare on our single-threaded child.
    if let Err(e) = sys::cvt(unsafe { libc::unshare(flags) }) {
        fail(err, "unshare", e);
    }
    let mut b = [0u8; 1];
    // SAFETY: our pipes.
    unsafe {
        libc::write(pipes.ready_w.as_raw_fd(), b"r".as_ptr().cast(), 1);
        if libc::read(pipes.go_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) != 1 {
            libc::_exit(126);
        }
    }
    let pid1 = fork_into(err, plan, pipes, init);
    // SAFETY: telling the parent PID 1's pid, closing our copies so the parent sees the ends
    // of the pipes, and reaping PID 1.
    unsafe {
        let p = pid1.to_le_bytes();
        libc::write(pipes.ready_w.as_raw_fd(), p.as_ptr().cast(), 4);
        libc::close(pipes.out_w.as_raw_fd());
        libc::close(err);
        let mut st = 0;
        while libc::waitpid(pid1, &mut st, 0) < 0 {}
        exit_as(st)
    }
}

/// Forks; the child runs `child(plan, pipes)`, the parent gets the child's pid. A
/// failed fork is reported on `err` and ends this process.
fn fork_into(err: RawFd, plan: &Plan, pipes: &Pipes, child: fn(&Plan, &Pipes) -> !) -> libc::pid_t {
    // SAFETY: fork of a single-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(err, "fork", io::Error::last_os_error());
    }
    if pid == 0 {
        child(plan, pipes);
    }
    pid
}

/// Exits as the process whose wait status is `st` did (a signal as 128 + its number).
fn exit_as(st: libc::c_int) -> ! {
    // SAFETY: leaving the forked child without running destructors.
    unsafe {
        if libc::WIFEXITED(st) {
            libc::_exit(libc::WEXITSTATUS(st));
        }
        libc::_exit(128 + libc::WTERMSIG(st))
    }
}

/// PID 1 of the sandbox: builds the root, runs the program, reaps, exits with its status.
fn init(plan: &Plan, pipes: &Pipes) -> ! {
    let err = pipes.err_w.as_raw_fd();
    // SAFETY: system calls on our own process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::umask(0);
    }
    if let Err((step, e)) = build_root(plan) {
        fail(err, step, e);
    }
    let pid = fork_into(err, plan, pipes, exec);
    // SAFETY: closing our copies of the pipes, then reaping every process of the namespace
    // until the program itself has ended.
    unsafe {
        libc::close(pipes.out_w.as_raw_fd());
        libc::close(err);
        loop {
            let mut st = 0;
            let r = libc::waitpid(-1, &mut st, 0);
            if r == pid {
                exit_as(st);
            }
            if r < 0 && *libc::__errno_location() == libc::ECHILD {
                libc::_exit(126);
            }
        }
    }
}

/// The program itself, in a new session with the output pipe as stdout and stderr.
fn exec(plan: &Plan, pipes: &Pipes) -> ! {
    let err = pipes.err_w.as_raw_fd();
    let out = pipes.out_w.as_raw_fd();
    let mut argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut env: Vec<*const libc::c_char> = plan.env.iter().map(|a| a.as_ptr()).collect();
    env.push(std::ptr::null());
    // SAFETY: system calls on our own process with valid, NUL-terminated arrays.
    unsafe {
        libc::umask(0o022);
        if !plan.interactive {
            libc::setsid();
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            if null < 0 {
                fail(err, "opening /dev/null", io::Error::last_os_error());
            }
            libc::dup2(null, 0);
            libc::dup2(pipes.stdout.as_ref().map_or(out, |f| f.as_raw_fd()), 1);
            libc::dup2(out, 2);
        }
        if libc::chdir(plan.workdir.as_ptr()) != 0 {
            fail(
                err,
                "entering the working directory",
                io::Error::last_os_error(),
            );
        }
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        // A build step works on a staged tree: its flushes only wait for the disk. A shell
        // someone types in keeps them.
        if !plan.interactive {
            crate::nosync::install();
        }
        libc::execvpe(argv[0], argv.as_ptr(), env.as_ptr());
        fail(err, "exec", io::Error::last_os_error());
    }
}

type Step = (&'static str, io::Error);

fn at<T>(step: &'static str, r: io::Result<T>) -> Result<T, Step> {
    r.map_err(|e| (step, e))
}

fn open_path(path: &CStr) -> io::Result<OwnedFd> {
    sys::openat2(libc::AT_FDCWD, path, libc::O_PATH | libc::O_DIRECTORY, 0, 0)
}

/// `name` in `dir` as a directory (created when missing), never through a symlink.
fn ensure_dir(dir: RawFd, name: &CStr, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor and C string.
    let rc = unsafe { libc::mkdirat(dir, name.as_ptr(), mode) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    sys::openat2(
        dir,
        name,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS,
    )
}

/// An empty regular file `name` in `dir` to mount a file on.
fn ensure_file(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor and C string; the new descriptor is closed at once.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
            0o644,
        )
    };
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
    sys::openat2(
        dir,
        name,
        libc::O_PATH,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS,
    )
}

/// Creates each directory of the relative path `rel` under `dir` (a path kiln chose, on a
/// tmpfs kiln made) and returns the last.
fn ensure_path(dir: RawFd, rel: &CStr) -> io::Result<OwnedFd> {
    let mut cur = sys::openat2(dir, c".", libc::O_PATH | libc::O_DIRECTORY, 0, 0)?;
    for part in rel
        .to_bytes()
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty())
    {
        let name = CString::new(part).expect("no NUL");
        cur = ensure_dir(cur.as_raw_fd(), &name, 0o755)?;
    }
    Ok(cur)
}

fn tmpfs(mode: &CStr, attrs: u64) -> io::Result<OwnedFd> {
    sys::new_mount(c"tmpfs", &[(c"mode", mode)], attrs)
}

const SAFE: u64 = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

/// Builds the new root and enters it.
fn build_root(plan: &Plan) -> Result<(), Step> {
    at("making mounts private", sys::make_mounts_private())?;
    // Copies of every source first: attaching the new root may cover them.
    let image = at("opening the image root", sys::clone_tree(&plan.root, true))?;
    let mut shown = Vec::new();
    for s in &plan.shown {
        let fd = at("showing host files", sys::clone_tree(&s.source, true))?;
        at(
            "making host files read-only",
            sys::set_mount_attrs(fd.as_raw_fd(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID),
        )?;
        shown.push(fd);
    }
    let mut stand_ins = Vec::new();
    for (host, _) in &plan.stand_ins {
        let fd = at("showing kiln's stand-ins", sys::clone_tree(host, false))?;
        at(
            "making kiln's stand-ins read-only",
            sys::set_mount_attrs(fd.as_raw_fd(), MOUNT_ATTR_RDONLY | SAFE),
        )?;
        stand_ins.push(fd);
    }
    let sys_fallback = at("showing /sys", sys::clone_tree(c"/sys", true))?;
    at(
        "making /sys read-only",
        sys::set_mount_attrs(
            sys_fallback.as_raw_fd(),
            MOUNT_ATTR_RDONLY | SAFE | MOUNT_ATTR_NOEXEC,
        ),
    )?;

    let (new_root, image_dir) = match plan.view {
        View::Image => {
            let at_root = at("opening the image root", open_path(&plan.root))?;
            at(
                "mounting the image root",
                sys::move_mount(image.as_raw_fd(), at_root.as_raw_fd()),
            )?;
            (image, None)
        }
        View::Host => {
            let base = at("mounting the sandbox root", tmpfs(c"0755", SAFE))?;
            let tmp = at("opening /tmp", open_path(c"/tmp"))?;
            at(
                "mounting the sandbox root",
                sys::move_mount(base.as_raw_fd(), tmp.as_raw_fd()),
            )?;
            for (s, fd) in plan.shown.iter().zip(&shown) {
                let target = match s.what {
                    Kind::Dir => ensure_path(base.as_raw_fd(), &s.at),
                    Kind::File => split_parent(&s.at).and_then(|(parent, name)| {
                        ensure_path(base.as_raw_fd(), &parent)
                            .and_then(|d| ensure_file(d.as_raw_fd(), &name))
                    }),
                };
                let target = at("showing host files", target)?;
                at(
                    "showing host files",
                    sys::move_mount(fd.as_raw_fd(), target.as_raw_fd()),
                )?;
            }
            for (name, target) in &plan.links {
                // SAFETY: valid descriptor and C strings.
                at(
                    "linking host directories",
                    sys::cvt(unsafe {
                        libc::symlinkat(target.as_ptr(), base.as_raw_fd(), name.as_ptr())
                    }),
                )?;
            }
            for d in [c"tmp", c"var/tmp"] {
                let dir = at("making /tmp", ensure_path(base.as_raw_fd(), d))?;
                // SAFETY: an O_PATH descriptor reopened through fchmodat's empty path is not
                // possible, so the mode is set by path relative to the new root.
                let _ = dir;
                unsafe { libc::fchmodat(base.as_raw_fd(), d.as_ptr(), 0o1777, 0) };
            }
            let dev = at("making /dev", ensure_dir(base.as_raw_fd(), c"dev", 0o755))?;
            populate_dev(dev.as_raw_fd())?;
            let proc_dir = at("making /proc", ensure_dir(base.as_raw_fd(), c"proc", 0o555))?;
            mount_proc(proc_dir.as_raw_fd())?;
            let image_at = at(
                "placing the image root",
                ensure_path(base.as_raw_fd(), &plan.root_at),
            )?;
            at(
                "placing the image root",
                sys::move_mount(image.as_raw_fd(), image_at.as_raw_fd()),
            )?;
            let image_dir = at(
                "placing the image root",
                sys::openat2(
                    base.as_raw_fd(),
                    &plan.root_at,
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                    0,
                ),
            )?;
            (base, Some(image_dir))
        }
    };
    let image_fd = image_dir.as_ref().unwrap_or(&new_root).as_raw_fd();
    // rpm sets the metadata of the directories a package ships (the filesystem package's /sys
    // among them), which a mounted sysfs refuses: a host tool gets no /sys in the image.
    let sys_fallback = (plan.view == View::Image).then_some(sys_fallback);
    // Stand-ins first: with nothing mounted in the image yet, their paths cannot lead into
    // /dev or /proc.
    for ((_, image_path), fd) in plan.stand_ins.iter().zip(&stand_ins) {
        let target = at(
            "placing kiln's stand-ins",
            stand_in_target(image_fd, image_path),
        )?;
        at(
            "placing kiln's stand-ins",
            sys::move_mount(fd.as_raw_fd(), target.as_raw_fd()),
        )?;
    }
    if plan.image_mounts || plan.view == View::Image {
        image_mounts(image_fd, sys_fallback, plan.network)?;
        add_dev_entries(image_fd, &plan.dev_entries)?;
    }
    // Enter the new root; the old one is detached and gone from this namespace.
    // SAFETY: fchdir/umount2/chdir on our own process.
    unsafe {
        at(
            "entering the new root",
            sys::cvt(libc::fchdir(new_root.as_raw_fd())),
        )?;
        match sys::pivot_root_here() {
            Ok(()) => {
                at(
                    "detaching the host's root",
                    sys::cvt(libc::umount2(c".".as_ptr(), libc::MNT_DETACH)),
                )?;
            }
            // The host's root is the initramfs (kiln as the ISO's installer): rootfs cannot be
            // pivoted, so the new root is moved over it and entered, as switch_root does. The
            // initramfs stays beneath, unreachable from the new root's paths.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && on_rootfs() => {
                at(
                    "entering the new root (over the initramfs)",
                    sys::cvt(libc::mount(
                        c".".as_ptr(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_MOVE,
                        std::ptr::null(),
                    )),
                )?;
                at(
                    "entering the new root (over the initramfs)",
                    sys::cvt(libc::chroot(c".".as_ptr())),
                )?;
            }
            Err(e) => {
                at::<()>("entering the new root", Err(e))?;
            }
        }
        at(
            "entering the new root",
            sys::cvt(libc::chdir(c"/".as_ptr())),
        )?;
        libc::sethostname(c"kiln-sandbox".as_ptr(), 12);
    }
    if !plan.network {
        loopback_up();
    }
    Ok(())
}

fn split_parent(rel: &CStr) -> io::Result<(CString, CString)> {
    let b = rel.to_bytes();
    let i = b.iter().rposition(|c| *c == b'/');
    let (parent, name) = match i {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (&b[..0], b),
    };
    Ok((
        CString::new(parent).expect("no NUL"),
        CString::new(name).expect("no NUL"),
    ))
}

/// The device nodes of the private `/dev`: (name, host node bound onto it).
const DEVICES: [(&CStr, &CStr); 6] = [
    (c"null", c"/dev/null"),
    (c"zero", c"/dev/zero"),
    (c"full", c"/dev/full"),
    (c"random", c"/dev/random"),
    (c"urandom", c"/dev/urandom"),
    (c"tty", c"/dev/tty"),
];

/// A tmpfs on the directory `dev` holding the standard nodes, a new devpts and `/dev/shm`.
fn populate_dev(dev: RawFd) -> Result<(), Step> {
    let fs = at(
        "mounting /dev",
        tmpfs(c"0755", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC),
    )?;
    at("mounting /dev", sys::move_mount(fs.as_raw_fd(), dev))?;
    let d = fs.as_raw_fd();
    for (name, host) in DEVICES {
        let target = at("making /dev nodes", ensure_file(d, name))?;
        // The host's /dev is still visible here: the new root is entered last.
        let copy = at("making /dev nodes", sys::clone_tree(host, false))?;
        at(
            "making /dev nodes",
            sys::move_mount(copy.as_raw_fd(), target.as_raw_fd()),
        )?;
    }
    let pts = at("making /dev/pts", ensure_dir(d, c"pts", 0o755))?;
    let ptsfs = at(
        "mounting /dev/pts",
        sys::new_mount(
            c"devpts",
            &[(c"ptmxmode", c"0666"), (c"mode", c"0620")],
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
        ),
    )?;
    at(
        "mounting /dev/pts",
        sys::move_mount(ptsfs.as_raw_fd(), pts.as_raw_fd()),
    )?;
    let shm = at("making /dev/shm", ensure_dir(d, c"shm", 0o1777))?;
    let shmfs = at("mounting /dev/shm", tmpfs(c"1777", SAFE))?;
    at(
        "mounting /dev/shm",
        sys::move_mount(shmfs.as_raw_fd(), shm.as_raw_fd()),
    )?;
    for (name, target) in [
        (c"ptmx", c"pts/ptmx"),
        (c"fd", c"/proc/self/fd"),
        (c"stdin", c"/proc/self/fd/0"),
        (c"stdout", c"/proc/self/fd/1"),
        (c"stderr", c"/proc/self/fd/2"),
    ] {
        // SAFETY: valid descriptor and C strings.
        at(
            "linking /dev entries",
            sys::cvt(unsafe { libc::symlinkat(target.as_ptr(), d, name.as_ptr()) }),
        )?;
    }
    Ok(())
}

/// The image's regular file `rel` (resolved inside the image root, symlinks staying in it) to
/// mount a stand-in on.
fn stand_in_target(root: RawFd, rel: &CStr) -> io::Result<OwnedFd> {
    let fd = sys::openat2(
        root,
        rel,
        libc::O_PATH,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )?;
    // SAFETY: fstat on a valid descriptor into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    sys::cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the image path of a stand-in is not a regular file",
        ));
    }
    Ok(fd)
}

/// The caller's entries in the image's private `/dev` (a tmpfs kiln just made).
fn add_dev_entries(root: RawFd, entries: &[(CString, Option<CString>)]) -> Result<(), Step> {
    if entries.is_empty() {
        return Ok(());
    }
    let dev = at(
        "adding /dev entries",
        sys::openat2(
            root,
            c"dev",
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS,
        ),
    )?;
    for (path, target) in entries {
        let (parent, name) = at("adding /dev entries", split_parent(path))?;
        let dir = at("adding /dev entries", ensure_path(dev.as_raw_fd(), &parent))?;
        match target {
            None => drop(at(
                "adding /dev entries",
                ensure_file(dir.as_raw_fd(), &name),
            )?),
            // SAFETY: valid descriptor and C strings.
            Some(t) => at(
                "adding /dev entries",
                sys::cvt(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })
                    .map(drop),
            )?,
        }
    }
    Ok(())
}

fn mount_proc(dir: RawFd) -> Result<(), Step> {
    let fs = at(
        "mounting /proc",
        sys::new_mount(c"proc", &[], SAFE | MOUNT_ATTR_NOEXEC),
    )?;
    at("mounting /proc", sys::move_mount(fs.as_raw_fd(), dir))
}

/// `/dev`, `/proc`, `/sys` and `/run` inside the image root, resolved beneath it without
/// following symlinks.
fn image_mounts(root: RawFd, sys_fallback: Option<OwnedFd>, network: bool) -> Result<(), Step> {
    let refuse = |what: &'static str| {
        move |e: io::Error| {
            if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) {
                (
                    what,
                    io::Error::new(e.kind(), "it is a symlink or not a directory in the image"),
                )
            } else {
                (what, e)
            }
        }
    };
    let dev = ensure_dir(root, c"dev", 0o755).map_err(refuse("the image's /dev"))?;
    populate_dev(dev.as_raw_fd())?;
    let proc_dir = ensure_dir(root, c"proc", 0o555).map_err(refuse("the image's /proc"))?;
    mount_proc(proc_dir.as_raw_fd())?;
    let Some(sys_fallback) = sys_fallback else {
        return mount_run(root, refuse("the image's /run"));
    };
    let sys_dir = ensure_dir(root, c"sys", 0o555).map_err(refuse("the image's /sys"))?;
    // sysfs can be mounted only by the owner of the network namespace.
    let sysfs = if network {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    } else {
        sys::new_mount(c"sysfs", &[], MOUNT_ATTR_RDONLY | SAFE | MOUNT_ATTR_NOEXEC)
    };
    let sysfs = sysfs.unwrap_or(sys_fallback);
    at(
        "mounting /sys",
        sys::move_mount(sysfs.as_raw_fd(), sys_dir.as_raw_fd()),
    )?;
    mount_run(root, refuse("the image's /run"))
}

fn mount_run(root: RawFd, refuse: impl FnOnce(io::Error) -> Step) -> Result<(), Step> {
    let run = ensure_dir(root, c"run", 0o755).map_err(refuse)?;
    let runfs = at("mounting /run", tmpfs(c"0755", SAFE))?;
    at(
        "mounting /run",
        sys::move_mount(runfs.as_raw_fd(), run.as_raw_fd()),
    )
}

/// Brings the new network namespace's loopback interface up, for programs that talk to
/// themselves over 127.0.0.1. Failure leaves it down, which only such programs notice.
fn loopback_up() {
    // SAFETY: a socket and two ioctls on a zeroed, NUL-terminated ifreq.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
        }
        libc::close(s);
    }
}

/// Whether `/` is the kernel's initramfs (rootfs), which pivot_root refuses.
fn on_rootfs() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines().any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let fstype = f.iter().position(|x| *x == "-").and_then(|i| f.get(i + 1));
            f.get(4) == Some(&"/") && matches!(fstype, Some(&"rootfs"))
        })
    })
}
