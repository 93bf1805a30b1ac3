//! Rootless builds: kiln started by an ordinary user becomes root in a user namespace of its
//! own, as podman and mkosi do, so that everything after it — composing, the sandbox, mke2fs —
//! runs unchanged.
//!
//! [`become_root`] is called first thing, while kiln is single-threaded. As root it does
//! nothing. As an ordinary user it forks a helper, enters a new user namespace, and the helper
//! (still outside it) maps the namespace with the setuid `newuidmap`/`newgidmap` of the uidmap
//! package: the user's own uid and gid become 0, and ids 1–65535 become the user's subordinate
//! range from `/etc/subuid` and `/etc/subgid`. kiln then is uid 0 there, with every capability
//! over what the namespace owns: files it writes for itself (artifacts, logs) belong to the user
//! on the host, and files an image gives uid 1000 belong to the host's `subuid start + 999`,
//! while inside the namespace — where rpm, scripts and mke2fs run — they show as 1000.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// How many ids besides 0 kiln maps: every id an image's files and accounts use (`nobody` is
/// 65534).
pub const IDS: u32 = 65535;

/// A range of subordinate ids on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// The host id that id 1 of the namespace maps to.
    pub start: u32,
    /// How many ids are mapped from `start`.
    pub count: u32,
}

/// How kiln is root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// kiln was started as root: nothing was changed.
    Root,
    /// kiln was started by the user `uid` (group `gid`) and is root in a user namespace where
    /// ids 1.. map to `subuid` and `subgid`.
    UserNamespace {
        uid: u32,
        gid: u32,
        subuid: IdRange,
        subgid: IdRange,
    },
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Root => write!(f, "running as root"),
            Mode::UserNamespace {
                uid,
                gid,
                subuid,
                subgid,
            } => write!(
                f,
                "rootless: uid {uid} and gid {gid} are root in kiln's user namespace, image ids \
                 1–{} are host uids {}–{} and gids {}–{}",
                subuid.count,
                subuid.start,
                subuid.start + (subuid.count - 1),
                subgid.start,
                subgid.start + (subgid.count - 1),
            ),
        }
    }
}

/// Why kiln could not become root in a user namespace. Each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "kiln runs as an ordinary user in a user namespace, but this host does not allow \
         unprivileged user namespaces ({setting} is {value}): {fix}, or run kiln as root"
    )]
    Disabled {
        setting: &'static str,
        value: String,
        fix: &'static str,
    },
    #[error(
        "{file} gives {user} no range of subordinate ids, which kiln needs to build as an \
         ordinary user (image files owned by other users than root): add the line \
         `{user}:{suggested}:65536` to {file} (or run `sudo usermod --add-subuids \
         {suggested}-{suggested_end} --add-subgids {suggested}-{suggested_end} {user}`), \
         or run kiln as root"
    )]
    NoRange {
        file: &'static str,
        user: String,
        suggested: u64,
        suggested_end: u64,
    },
    #[error(
        "{file}: the range of subordinate ids of {user} ({start}:{count}) is smaller than the \
         65536 ids kiln maps: give {user} a range of 65536 ids in {file}, or run kiln as root"
    )]
    RangeTooSmall {
        file: &'static str,
        user: String,
        start: u32,
        count: u32,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{tool} was not found in PATH; kiln needs it to build as an ordinary user: install the \
         uidmap package (Debian, Ubuntu: `apt-get install uidmap`; Fedora: shadow-utils), or \
         run kiln as root"
    )]
    MissingTool { tool: &'static str },
    #[error("{tool} could not map kiln's user namespace ({args}): {message}{hint}")]
    Map {
        tool: &'static str,
        args: String,
        message: String,
        hint: &'static str,
    },
    #[error("kiln could not enter a user namespace ({step}): {source}{hint}")]
    System {
        step: &'static str,
        source: io::Error,
        hint: &'static str,
    },
    #[error(
        "kiln must enter its user namespace while it is single-threaded, and it has {0} \
         threads (a bug in kiln: become_root is called too late)"
    )]
    Threaded(usize),
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// How kiln became root, once [`become_root`] succeeded.
pub fn mode() -> Option<Mode> {
    MODE.get().copied()
}

/// Makes kiln root: as root, nothing changes ([`Mode::Root`]); as an ordinary user, kiln
/// enters a user namespace mapped from the user's `/etc/subuid` and `/etc/subgid` ranges and
/// becomes uid and gid 0 there ([`Mode::UserNamespace`]).
///
/// Must be called while the process is single-threaded (the kernel refuses a new user
/// namespace to a threaded process), and at most once.
pub fn become_root() -> Result<Mode, Error> {
    if let Some(mode) = mode() {
        return Ok(mode);
    }
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        return Ok(*MODE.get_or_init(|| Mode::Root));
    }
    check_sysctls(&|p| std::fs::read_to_string(p).ok())?;
    let threads = thread_count();
    if threads > 1 {
        return Err(Error::Threaded(threads));
    }
    let user = user_name(uid);
    let subuid = range_for(SUBUID, user.as_deref(), uid)?;
    let subgid = range_for(SUBGID, user.as_deref(), uid)?;
    let newuidmap = find_tool("newuidmap")?;
    let newgidmap = find_tool("newgidmap")?;
    let maps = [
        (
            "newuidmap",
            newuidmap,
            map_args(uid, subuid.start, subuid.count),
        ),
        (
            "newgidmap",
            newgidmap,
            map_args(gid, subgid.start, subgid.count),
        ),
    ];
    unshare_mapped(&maps)?;
    // SAFETY: system calls on our own process.
    unsafe {
        if libc::setresgid(0, 0, 0) != 0 {
            return Err(system("becoming gid 0", io::Error::last_os_error()));
        }
        if libc::setresuid(0, 0, 0) != 0 {
            return Err(system("becoming uid 0", io::Error::last_os_error()));
        }
        // Changing credentials may make the process undumpable, which would give its /proc
        // files to the host's root; the sandbox writes its children's maps there.
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
    }
    Ok(*MODE.get_or_init(|| Mode::UserNamespace {
        uid,
        gid,
        subuid,
        subgid,
    }))
}

const SUBUID: &str = "/etc/subuid";
const SUBGID: &str = "/etc/subgid";

fn system(step: &'static str, source: io::Error) -> Error {
    let hint = match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " — the host refuses unprivileged user namespaces (a container runtime's seccomp \
             profile, or an LSM such as AppArmor's kernel.apparmor_restrict_unprivileged_userns \
             = 1): allow them for kiln, or run kiln as root"
        }
        Some(libc::ENOSPC) | Some(libc::EUSERS) => {
            " — too many user namespaces: raise the sysctl user.max_user_namespaces"
        }
        _ => "",
    };
    Error::System { step, source, hint }
}

/// Refuses early, with the setting to change, when the kernel forbids unprivileged user
/// namespaces. `read` returns a `/proc/sys` file's contents, or `None` when it is absent.
fn check_sysctls(read: &dyn Fn(&str) -> Option<String>) -> Result<(), Error> {
    let checks = [
        (
            "/proc/sys/kernel/unprivileged_userns_clone",
            "kernel.unprivileged_userns_clone",
            "run `sysctl kernel.unprivileged_userns_clone=1` (and set it in /etc/sysctl.d/ to \
             keep it)",
        ),
        (
            "/proc/sys/user/max_user_namespaces",
            "user.max_user_namespaces",
            "run `sysctl user.max_user_namespaces=15000` (and set it in /etc/sysctl.d/ to keep it)",
        ),
    ];
    for (file, setting, fix) in checks {
        if let Some(value) = read(file) {
            if value.trim() == "0" {
                return Err(Error::Disabled {
                    setting,
                    value: value.trim().to_string(),
                    fix,
                });
            }
        }
    }
    Ok(())
}

/// The number of threads of this process (1 when it cannot be told).
pub(crate) fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(1)
}

/// The user name of `uid` from the password database, if it has one.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: a zeroed passwd and a buffer of the given size for getpwuid_r to fill; the name
    // is copied out before the buffer goes.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// The range `file` (`/etc/subuid` or `/etc/subgid`) gives the user `name` or `uid`.
fn range_for(file: &'static str, name: Option<&str>, uid: u32) -> Result<IdRange, Error> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(Error::Read {
                path: file.into(),
                source,
            })
        }
    };
    find_range(file, &text, name, uid)
}

/// The first range in `text` (the contents of `file`: `owner:start:count` lines, the owner a
/// user name or a uid) of at least 65536 ids owned by `name` or `uid`.
fn find_range(
    file: &'static str,
    text: &str,
    name: Option<&str>,
    uid: u32,
) -> Result<IdRange, Error> {
    let uid_text = uid.to_string();
    let entries: Vec<(&str, u32, u32)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let owner = f.next()?;
            let start = f.next()?.trim().parse().ok()?;
            let count = f.next()?.trim().parse().ok()?;
            Some((owner, start, count))
        })
        .collect();
    let user = name.unwrap_or(&uid_text).to_string();
    let mine = entries
        .iter()
        .filter(|(owner, _, _)| Some(*owner) == name || *owner == uid_text);
    let mut small = None;
    for &(_, start, count) in mine {
        if count > IDS && start.checked_add(IDS).is_some() {
            return Ok(IdRange { start, count: IDS });
        }
        small.get_or_insert((start, count));
    }
    if let Some((start, count)) = small {
        return Err(Error::RangeTooSmall {
            file,
            user,
            start,
            count,
        });
    }
    // Suggest the first 65536 ids past every range already given, from 100000 (shadow-utils'
    // SUB_UID_MIN).
    let suggested = entries
        .iter()
        .map(|(_, start, count)| u64::from(*start) + u64::from(*count))
        .fold(100_000, u64::max);
    Err(Error::NoRange {
        file,
        user,
        suggested,
        suggested_end: suggested + u64::from(IDS),
    })
}

/// `program` found in `PATH`.
fn find_tool(program: &'static str) -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
        .ok_or(Error::MissingTool { tool: program })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// newuidmap's arguments after the pid: `0 <own id> 1 1 <start> <count>`.
fn map_args(own: u32, start: u32, count: u32) -> Vec<String> {
    [0, own, 1, 1, start, count]
        .iter()
        .map(u32::to_string)
        .collect()
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    let mut fds = [0; 2];
    // SAFETY: a two-element array for the new descriptors, owned below.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(system("making a pipe", io::Error::last_os_error()));
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// Enters a new user namespace, mapped by a helper forked before it with each of `maps`
/// (tool name, its path, its arguments after the pid).
fn unshare_mapped(maps: &[(&'static str, PathBuf, Vec<String>)]) -> Result<(), Error> {
    let (go_r, go_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let parent = std::process::id();
    // SAFETY: the process is single-threaded (checked by the caller), so the child may
    // allocate and spawn programs before it exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(system(
            "forking the id-mapping helper",
            io::Error::last_os_error(),
        ));
    }
    if pid == 0 {
        drop((go_w, report_r));
        helper(parent, maps, go_r, report_w);
    }
    drop((go_r, report_w));
    let reap = || {
        let mut st = 0;
        // SAFETY: our own child, reaped once.
        unsafe { libc::waitpid(pid, &mut st, 0) };
    };
    // SAFETY: unshare on our own, single-threaded process.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        let e = io::Error::last_os_error();
        drop(go_w); // the helper reads the end of the pipe and leaves
        reap();
        return Err(system("unshare(CLONE_NEWUSER)", e));
    }
    let mut go = std::fs::File::from(go_w);
    let sent = go.write_all(b"g");
    drop(go);
    let mut report = Vec::new();
    let read = std::fs::File::from(report_r).read_to_end(&mut report);
    reap();
    if let Err(e) = sent.and(read) {
        return Err(system("talking to the id-mapping helper", e));
    }
    match report.split_first() {
        Some((b'0', _)) => Ok(()),
        Some((&i, message)) if usize::from(i.wrapping_sub(b'1')) < maps.len() => {
            let (tool, _, args) = &maps[usize::from(i - b'1')];
            let message = String::from_utf8_lossy(message).trim().to_string();
            Err(Error::Map {
                tool,
                args: format!("{tool} {parent} {}", args.join(" ")),
                hint: if message.contains("not allowed") || message.contains("Permission") {
                    " — check the user's lines in /etc/subuid and /etc/subgid, and that \
                     newuidmap and newgidmap are setuid root (reinstall uidmap)"
                } else {
                    ""
                },
                message,
            })
        }
        _ => Err(system(
            "mapping ids",
            io::Error::other("the id-mapping helper ended without a report"),
        )),
    }
}

/// The forked helper: waits until the parent is in its new user namespace, maps it, reports
/// `0`, or the failed tool's number (`1`, `2`, …) and its output, and exits.
fn helper(
    parent: u32,
    maps: &[(&'static str, PathBuf, Vec<String>)],
    go: OwnedFd,
    report: OwnedFd,
) -> ! {
    let mut b = [0u8; 1];
    let mut go = std::fs::File::from(go);
    let mut report = std::fs::File::from(report);
    if go.read_exact(&mut b).is_err() {
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    for (i, (tool, path, args)) in maps.iter().enumerate() {
        let out = std::process::Command::new(path)
            .arg(parent.to_string())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output();
        let failure = match out {
            Ok(o) if o.status.success() => continue,
            Ok(o) => {
                let mut m = o.stderr;
                m.extend_from_slice(&o.stdout);
                if m.is_empty() {
                    m = format!("{tool} ended with {}", o.status).into_bytes();
                }
                m
            }
            Err(e) => format!("{tool} could not be run: {e}").into_bytes(),
        };
        let _ = report.write_all(&[b'1' + i as u8]);
        let _ = report.write_all(&failure);
        // SAFETY: as above.
        unsafe { libc::_exit(1) };
    }
    let _ = report.write_all(b"0");
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/subuid";

    #[test]
    fn a_range_is_found_by_user_name_or_uid_and_capped_at_65535_ids() {
        let start = |text: &str| find_range(FILE, text, Some("kiln"), 1000).map(|r| r.start);
        assert_eq!(
            start("# comment\nother:100000:65536\nkiln:165536:65536\n").unwrap(),
            165536
        );
        let text = "1000:200000:1000000\n";
        assert_eq!(
            find_range(FILE, text, Some("kiln"), 1000).unwrap(),
            IdRange {
                start: 200000,
                count: 65535
            },
            "matched by uid, capped at 65535 ids"
        );
        assert_eq!(
            find_range(FILE, text, None, 1000).unwrap().start,
            200000,
            "a user without a name is matched by uid"
        );
    }

    #[test]
    fn a_missing_range_names_the_file_and_the_line_to_add_after_existing_ranges() {
        let e = find_range(FILE, "other:100000:65536\n", Some("kiln"), 1000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/subuid gives kiln no range"), "{e}");
        assert!(e.contains("`kiln:165536:65536`"), "{e}");
        assert!(e.contains("--add-subuids 165536-231071"), "{e}");
        let e = find_range(FILE, "", Some("kiln"), 1000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`kiln:100000:65536`"), "{e}");
    }

    #[test]
    fn a_range_too_small_is_refused_with_its_size() {
        let e = find_range(FILE, "kiln:100000:1000\n", Some("kiln"), 1000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("(100000:1000) is smaller than the 65536"), "{e}");
        // A range that would run past the last id is no use either.
        assert!(find_range(FILE, "kiln:4294967000:65536\n", Some("kiln"), 1000).is_err());
    }

    #[test]
    fn disabled_user_namespaces_name_the_setting_to_change() {
        let read = |clone: &'static str, max: &'static str| {
            move |p: &str| Some(if p.ends_with("clone") { clone } else { max }.to_string() + "\n")
        };
        let e = check_sysctls(&read("0", "1000")).unwrap_err().to_string();
        assert!(e.contains("kernel.unprivileged_userns_clone is 0"), "{e}");
        assert!(
            e.contains("sysctl kernel.unprivileged_userns_clone=1"),
            "{e}"
        );
        let e = check_sysctls(&read("1", "0")).unwrap_err().to_string();
        assert!(e.contains("user.max_user_namespaces is 0"), "{e}");
        assert!(check_sysctls(&read("1", "1000")).is_ok());
        assert!(check_sysctls(&|_| None).is_ok(), "absent settings allow");
    }

    #[test]
    fn a_missing_tool_names_the_package() {
        let e = Error::MissingTool { tool: "newuidmap" }.to_string();
        assert!(e.contains("install the uidmap package"), "{e}");
    }

    #[test]
    fn as_root_nothing_changes() {
        // SAFETY: a plain getter.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(become_root().unwrap(), Mode::Root);
            assert_eq!(mode(), Some(Mode::Root));
        }
    }
}
