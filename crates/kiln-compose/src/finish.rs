//! The last touches of an image root (SPEC §3.3 step 7, §3.5 steps 13–19): `/etc/image-id`,
//! machine-id and systemd first-boot state, the rpm manifests and RemoveRpmDb, the tdnf cache,
//! and PostInstallScripts/FinalizeImageScripts run inside the root, in the build sandbox.

use crate::RunOptions;
use kiln_formats::ident::Identity;
use kiln_sandbox::root::{self, ImageRoot};
use kiln_sandbox::View;
use std::path::Path;

/// Why a finishing step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] root::Error),
    #[error(transparent)]
    Io(#[from] crate::IoError),
    #[error("directory /etc does not exist in the install root")]
    NoEtc,
    #[error("{what} failed:\n{output}")]
    Tool { what: String, output: String },
    #[error("{what}: {source}")]
    Sandbox {
        what: String,
        source: kiln_sandbox::run::Error,
    },
    #[error("{what}: {source}")]
    Input {
        what: String,
        source: kiln_config::input::InputError,
    },
}

/// Removes `path` in the image; a missing one is nothing to do.
fn remove_if_there(root: &ImageRoot, path: &str) -> Result<(), Error> {
    match root.remove_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Runs `argv` in the sandbox; a failure or a non-zero status is an error naming `what` with
/// the end of the output.
pub(crate) fn run_in(
    sandbox: &kiln_sandbox::Sandbox,
    argv: &[&str],
    what: &str,
    log: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    let outcome = sandbox
        .run_lines(argv, log)
        .map_err(|source| Error::Sandbox {
            what: what.into(),
            source,
        })?;
    if !outcome.status.success() {
        return Err(Error::Tool {
            what: format!("{what} ({})", outcome.status),
            output: outcome.tail,
        });
    }
    Ok(())
}

/// `YYYYMMDDHHMMSS` (UTC) of a Unix time.
pub fn utc_stamp(unix: u64) -> String {
    let (days, secs) = (unix / 86400, unix % 86400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `/etc/image-id` (0444): the build number (`local` when none), the build date and the image
/// UUID, both from the build identity.
pub fn write_image_id(
    root: &ImageRoot,
    build_number: &str,
    identity: &Identity,
) -> Result<(), Error> {
    if !root.is_dir("/etc") {
        return Err(Error::NoEtc);
    }
    let u = identity.uuid("image-id");
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    let number = if build_number.is_empty() {
        "local"
    } else {
        build_number
    };
    let text = format!(
        "BUILD_NUMBER={number}\nIMAGE_BUILD_DATE={}\nIMAGE_UUID={uuid}\n",
        utc_stamp(identity.unix_time())
    );
    root.replace("/etc/image-id", text, 0o444)?;
    Ok(())
}

/// An empty `/etc/machine-id` (0444) — or `uninitialized` for systemd's first-boot logic — and
/// no random seed, credential secret or host-dependent cache baked into the image.
pub fn reset_machine_state(root: &ImageRoot, systemd_firstboot: bool) -> Result<(), Error> {
    let text = if systemd_firstboot {
        "uninitialized\n"
    } else {
        ""
    };
    // Replaced, not opened for writing: machine-id is read-only (0444).
    root.replace("/etc/machine-id", text, 0o444)?;
    for p in [
        "/var/lib/systemd/random-seed",
        "/boot/efi/loader/random-seed",
        "/var/lib/systemd/credential.secret",
        // ldconfig's cache of the build host's inode numbers and times: meaningless in the
        // image, different in every build; ldconfig remakes it.
        "/var/cache/ldconfig/aux-cache",
    ] {
        remove_if_there(root, p)?;
    }
    Ok(())
}

/// A machine-id for the time the packages are installed, derived from the build's identity:
/// systemd's `%post` (systemd-machine-id-setup) would make a random one, which scriptlets copy
/// into what they build (dracut puts it into the initramfs), so two builds with one
/// `SOURCE_DATE_EPOCH` would differ. [`reset_machine_state`] empties it afterwards, as upstream.
pub fn seed_machine_id(
    root: &ImageRoot,
    identity: &kiln_formats::ident::Identity,
) -> Result<(), Error> {
    let id: String = identity
        .uuid("machine-id")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    root.replace("/etc/machine-id", format!("{id}\n"), 0o444)?;
    Ok(())
}

/// The query format of `container-manifest-2`, exactly upstream's.
pub const MANIFEST_2_FORMAT: &str = "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{INSTALLTIME}\\t%{BUILDTIME}\\t%{VENDOR}\\t(none)\\t%{SIZE}\\t%{ARCH}\\t%{EPOCHNUM}\\t%{SOURCERPM}\\n";

/// `/var/lib/rpmmanifest/container-manifest-1` (`rpm -qa`) and `-2` (upstream's query format),
/// written before RemoveRpmDb deletes the database. rpm runs in the sandbox and writes straight
/// into the manifest file kiln opened inside the image.
pub fn write_rpm_manifests(
    root: &ImageRoot,
    run: &RunOptions,
    log: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    let dir = Path::new("/var/lib/rpmmanifest");
    root.create_dir_all(dir, 0o755)?;
    let host_root = std::fs::canonicalize(root.path()).map_err(|e| Error::Tool {
        what: "rpm -qa".into(),
        output: e.to_string(),
    })?;
    let sandbox = run.sandbox(&host_root, View::Host);
    for (name, extra) in [
        ("container-manifest-1", vec![]),
        ("container-manifest-2", vec!["--qf", MANIFEST_2_FORMAT]),
    ] {
        let file = root.create(dir.join(name), 0o644)?;
        let mut argv = vec!["rpm", "--root", host_root.to_str().unwrap_or("/")];
        argv.extend(["--dbpath", "/var/lib/rpm", "-qa"]);
        argv.extend(extra);
        let what = format!("rpm -qa for {name}");
        let outcome = sandbox
            .run_with_stdout(&argv, &file, &mut |b| {
                log(String::from_utf8_lossy(b).trim_end())
            })
            .map_err(|source| Error::Sandbox {
                what: what.clone(),
                source,
            })?;
        if !outcome.status.success() {
            return Err(Error::Tool {
                what,
                output: outcome.tail,
            });
        }
    }
    Ok(())
}

/// With `--repo-snapshot-time`: `snapshottime=<t>` appended to the image's
/// `/etc/tdnf/tdnf.conf` when it has one (SPEC §3.3 step 8).
pub fn add_tdnf_snapshot_time(root: &ImageRoot, time: u64) -> Result<(), Error> {
    let conf = "/etc/tdnf/tdnf.conf";
    if root.metadata(conf).is_ok_and(|m| m.is_file()) {
        root.append(conf, format!("snapshottime={time}\n"), 0o644)?;
    }
    Ok(())
}

/// RemoveRpmDb: the image's `/var/lib/rpm` removed.
pub fn remove_rpm_db(root: &ImageRoot) -> Result<(), Error> {
    remove_if_there(root, "/var/lib/rpm")
}

/// Unless PreserveTdnfCache: the contents of `/var/cache/tdnf` removed (the directory stays).
pub fn clean_tdnf_cache(root: &ImageRoot) -> Result<(), Error> {
    let cache = Path::new("/var/cache/tdnf");
    let Ok(entries) = root.read_dir(cache) else {
        return Ok(());
    };
    for e in entries {
        root.remove_all(cache.join(&e.name))?;
    }
    Ok(())
}

/// A PostInstallScript or FinalizeImageScript: copied into the image's `/tmp/kiln-scripts/`,
/// run there as `/bin/sh -c "<path> <args>"` in the build sandbox with the image as `/`, then
/// removed with its directory (upstream copies it to its build-host path inside the image,
/// leaving those directories behind). Its output goes to `log` as it comes; a failure carries
/// its end. A script still running after the timeout is stopped with all it started.
pub fn run_script(
    root: &ImageRoot,
    script: &Path,
    args: &str,
    run: &RunOptions,
    log: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "script".into());
    let inside = format!("/tmp/kiln-scripts/{name}");
    let input = |source| Error::Input {
        what: format!("the script {}", script.display()),
        source,
    };
    let mut file = kiln_config::input::open_regular(script, "script").map_err(input)?;
    root.create_dir_all("/tmp/kiln-scripts", 0o755)?;
    root.copy_in(&mut file, &inside, 0o755)?;
    let command = if args.is_empty() {
        inside.clone()
    } else {
        format!("{inside} {args}")
    };
    let result = run_in(
        &run.sandbox(root.path(), View::Image),
        &["/bin/sh", "-c", &command],
        &format!("the script {} ({inside})", script.display()),
        log,
    );
    remove_if_there(root, "/tmp/kiln-scripts")?;
    result
}

/// Leaves the rpm database as one file when rpm left its write-ahead log empty: the sqlite
/// shared-memory index beside it is scratch state that differs from build to build.
pub fn settle_rpm_db(root: &ImageRoot) -> Result<(), Error> {
    let wal = "/var/lib/rpm/rpmdb.sqlite-wal";
    if root
        .symlink_metadata(wal)
        .is_ok_and(|m| m.is_file() && m.len() == 0)
    {
        for scratch in [wal, "/var/lib/rpm/rpmdb.sqlite-shm"] {
            remove_if_there(root, scratch)?;
        }
    }
    Ok(())
}

/// Sets the access and modification times of everything under `dir` (symlinks themselves,
/// not their targets) that is newer than `unix_time` to `unix_time`, so that filesystems built
/// from the tree do not depend on when the build ran.
pub fn clamp_times(dir: &Path, unix_time: u64) -> Result<(), Error> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(crate::at(&path))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(crate::at(&path))? {
                stack.push(entry.map_err(crate::at(&path))?.path());
            }
        }
        if meta.mtime() as u64 <= unix_time && meta.atime() as u64 <= unix_time {
            continue;
        }
        let t = libc::timespec {
            tv_sec: unix_time as libc::time_t,
            tv_nsec: 0,
        };
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("paths have no NUL");
        // SAFETY: a valid C path and two timespecs; utimensat does not keep the pointers.
        let rc = unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                [t, t].as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(crate::at(&path)(std::io::Error::last_os_error()).into());
        }
    }
    Ok(())
}

/// Labels every file of the image with the policy's file contexts, as upstream's imager does
/// after the install (SPEC §3.7): `setfiles` from the image, run inside it over the whole root
/// (kiln's staged tree holds every partition's files at once, so one pass covers every mount).
/// The labels are `security.selinux` attributes that kiln-fs carries into ext and xfs filesystems.
pub fn label_selinux(
    root: &ImageRoot,
    policy: &str,
    run: &RunOptions,
    log: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    if policy.is_empty() {
        return Err(Error::Tool {
            what: "SELinux labelling".into(),
            output: "/etc/selinux/config names no SELINUXTYPE".into(),
        });
    }
    let contexts = format!("/etc/selinux/{policy}/contexts/files/file_contexts");
    if !root.metadata(&contexts).is_ok_and(|m| m.is_file()) {
        return Err(Error::Tool {
            what: "SELinux labelling".into(),
            output: format!(
                "{contexts} is not in the image: install the policy package (SELinuxPolicy, \
                 selinux-policy by default)"
            ),
        });
    }
    if !["/usr/sbin/setfiles", "/sbin/setfiles"]
        .iter()
        .any(|p| root.exists(p))
    {
        return Err(Error::Tool {
            what: "SELinux labelling".into(),
            output: "setfiles is not in the image (policycoreutils)".into(),
        });
    }
    // The sandbox's /dev, /proc, /sys and /run are other filesystems, not the image's: left out
    // by name (-e), since setfiles before 3.6 has no -x.
    run_in(
        &run.sandbox(root.path(), View::Image),
        &[
            "setfiles", "-m", "-F", "-e", "/dev", "-e", "/proc", "-e", "/sys", "-e", "/run", "-r",
            "/", &contexts, "/",
        ],
        "setfiles",
        log,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(utc_stamp(0), "19700101000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114221320");
        assert_eq!(utc_stamp(951_782_400), "20000229000000"); // a leap day
        assert_eq!(utc_stamp(4_102_444_799), "20991231235959");
    }

    #[test]
    fn image_id_and_machine_state() {
        use std::fs;
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let image = ImageRoot::open(root).unwrap();
        let id = Identity::seeded(b"finish", 1_700_000_000);
        assert!(matches!(write_image_id(&image, "", &id), Err(Error::NoEtc)));
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("var/lib/systemd")).unwrap();
        fs::write(root.join("var/lib/systemd/random-seed"), "seed").unwrap();
        write_image_id(&image, "", &id).unwrap();
        let text = fs::read_to_string(root.join("etc/image-id")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..2],
            ["BUILD_NUMBER=local", "IMAGE_BUILD_DATE=20231114221320"]
        );
        assert!(lines[2].starts_with("IMAGE_UUID=") && lines[2].len() == 11 + 36);
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("etc/image-id"), 0o444);

        reset_machine_state(&image, true).unwrap();
        reset_machine_state(&image, true).unwrap(); // again, over the read-only file
        add_tdnf_snapshot_time(&image, 1700000000).unwrap(); // no tdnf.conf: nothing
        assert!(!root.join("etc/tdnf").exists());
        fs::create_dir_all(root.join("etc/tdnf")).unwrap();
        fs::write(root.join("etc/tdnf/tdnf.conf"), "[main]\ngpgcheck=1\n").unwrap();
        add_tdnf_snapshot_time(&image, 1700000000).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("etc/tdnf/tdnf.conf")).unwrap(),
            "[main]\ngpgcheck=1\nsnapshottime=1700000000\n"
        );
        assert_eq!(
            fs::read_to_string(root.join("etc/machine-id")).unwrap(),
            "uninitialized\n"
        );
        assert_eq!(mode("etc/machine-id"), 0o444);
        assert!(!root.join("var/lib/systemd/random-seed").exists());
    }
}
