//! The last touches of an image root (SPEC §3.3 step 7, §3.5 steps 13–19): `/etc/image-id`,
//! machine-id and systemd first-boot state, the rpm manifests and RemoveRpmDb, the tdnf cache,
//! and PostInstallScripts/FinalizeImageScripts run inside the root.

use crate::at;
use crate::paths::confined;
use kiln_formats::ident::Identity;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Why a finishing step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] crate::IoError),
    #[error("directory /etc does not exist in the install root")]
    NoEtc,
    #[error("{0}")]
    Escape(#[from] crate::paths::Escape),
    #[error("{what} failed:\n{output}")]
    Tool { what: String, output: String },
}

fn write_mode(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    if let Ok(m) = fs::symlink_metadata(path) {
        if !m.is_dir() {
            // A read-only file (machine-id is 0444) is replaced, not opened for writing.
            fs::remove_file(path).map_err(at(path))?;
        }
    }
    fs::write(path, text).map_err(at(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(at(path))?;
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
pub fn write_image_id(root: &Path, build_number: &str, identity: &Identity) -> Result<(), Error> {
    let etc = confined(root, "/etc")?;
    if !etc.is_dir() {
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
    write_mode(&etc.join("image-id"), &text, 0o444)
}

/// An empty `/etc/machine-id` (0444) — or `uninitialized` for systemd's first-boot logic — and
/// no random seed or credential secret baked into the image.
pub fn reset_machine_state(root: &Path, systemd_firstboot: bool) -> Result<(), Error> {
    let id = confined(root, "/etc/machine-id")?;
    let text = if systemd_firstboot {
        "uninitialized\n"
    } else {
        ""
    };
    write_mode(&id, text, 0o444)?;
    for p in [
        "/var/lib/systemd/random-seed",
        "/boot/efi/loader/random-seed",
        "/var/lib/systemd/credential.secret",
    ] {
        let p = confined(root, p)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(at(&p)(e).into()),
            _ => {}
        }
    }
    Ok(())
}

/// The query format of `container-manifest-2`, exactly upstream's.
pub const MANIFEST_2_FORMAT: &str = "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{INSTALLTIME}\\t%{BUILDTIME}\\t%{VENDOR}\\t(none)\\t%{SIZE}\\t%{ARCH}\\t%{EPOCHNUM}\\t%{SOURCERPM}\\n";

/// `/var/lib/rpmmanifest/container-manifest-1` (`rpm -qa`) and `-2` (upstream's query format),
/// written before RemoveRpmDb deletes the database.
pub fn write_rpm_manifests(root: &Path) -> Result<(), Error> {
    let dir = confined(root, "/var/lib/rpmmanifest")?;
    fs::create_dir_all(&dir).map_err(at(&dir))?;
    for (name, extra) in [
        ("container-manifest-1", vec![]),
        ("container-manifest-2", vec!["--qf", MANIFEST_2_FORMAT]),
    ] {
        let out = Command::new("rpm")
            .arg("--root")
            .arg(root)
            .args(["--dbpath", "/var/lib/rpm", "-qa"])
            .args(extra)
            .output()
            .map_err(at(Path::new("rpm")))?;
        if !out.status.success() {
            return Err(Error::Tool {
                what: format!("rpm -qa for {name}"),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let p = dir.join(name);
        fs::write(&p, out.stdout).map_err(at(&p))?;
    }
    Ok(())
}

/// RemoveRpmDb: the image's `/var/lib/rpm` removed.
pub fn remove_rpm_db(root: &Path) -> Result<(), Error> {
    let db = confined(root, "/var/lib/rpm")?;
    match fs::remove_dir_all(&db) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(at(&db)(e).into()),
        _ => Ok(()),
    }
}

/// Unless PreserveTdnfCache: the contents of `/var/cache/tdnf` removed (the directory stays).
pub fn clean_tdnf_cache(root: &Path) -> Result<(), Error> {
    let cache = confined(root, "/var/cache/tdnf")?;
    let Ok(entries) = fs::read_dir(&cache) else {
        return Ok(());
    };
    for e in entries {
        let p = e.map_err(at(&cache))?.path();
        let r = if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        r.map_err(at(&p))?;
    }
    Ok(())
}

/// A PostInstallScript or FinalizeImageScript: copied into the image's `/tmp/kiln-scripts/`,
/// run there as `/bin/sh -c "<path> <args>"` chrooted into the image root, then removed with
/// its directory (upstream copies it to its build-host path inside the image, leaving those
/// directories behind). Its output is returned for the build log; a failure carries it.
pub fn run_script(root: &Path, script: &Path, args: &str) -> Result<String, Error> {
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "script".into());
    let inside = format!("/tmp/kiln-scripts/{name}");
    let dir = confined(root, "/tmp/kiln-scripts")?;
    let copy = dir.join(&name);
    fs::create_dir_all(&dir).map_err(at(&dir))?;
    fs::copy(script, &copy).map_err(at(script))?;
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).map_err(at(&copy))?;
    let command = if args.is_empty() {
        inside.clone()
    } else {
        format!("{inside} {args}")
    };
    let out = Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", &command])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .output();
    let _ = fs::remove_dir_all(&dir);
    let out = out.map_err(at(Path::new("chroot")))?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(Error::Tool {
            what: format!("the script {inside} ({})", out.status),
            output,
        });
    }
    Ok(output)
}

/// Leaves the rpm database as one file when rpm left its write-ahead log empty: the sqlite
/// shared-memory index beside it is scratch state that differs from build to build.
pub fn settle_rpm_db(root: &Path) -> Result<(), Error> {
    let dir = root.join("var/lib/rpm");
    let wal = dir.join("rpmdb.sqlite-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() == 0) {
        for scratch in [wal, dir.join("rpmdb.sqlite-shm")] {
            match std::fs::remove_file(&scratch) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(crate::at(&scratch)(e).into())
                }
                _ => {}
            }
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
/// The labels are `security.selinux` attributes that mke2fs -d carries into ext filesystems.
pub fn label_selinux(root: &Path, policy: &str) -> Result<(), Error> {
    if policy.is_empty() {
        return Err(Error::Tool {
            what: "SELinux labelling".into(),
            output: "/etc/selinux/config names no SELINUXTYPE".into(),
        });
    }
    let contexts = format!("/etc/selinux/{policy}/contexts/files/file_contexts");
    if !root.join(&contexts[1..]).is_file() {
        return Err(Error::Tool {
            what: "SELinux labelling".into(),
            output: format!(
                "{contexts} is not in the image: install the policy package (SELinuxPolicy, \
                 selinux-policy by default)"
            ),
        });
    }
    if !["usr/sbin/setfiles", "sbin/setfiles"]
        .iter()
        .any(|p| root.join(p).exists())
    {
        return Err(Error::Tool {
            what: "SELinux labelling".into(),
            output: "setfiles is not in the image (policycoreutils)".into(),
        });
    }
    let out = Command::new("chroot")
        .arg(root)
        .args(["setfiles", "-m", "-F", "-r", "/", &contexts, "/"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .map_err(|e| Error::Tool {
            what: "setfiles".into(),
            output: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Tool {
            what: "setfiles".into(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
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
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let id = Identity::seeded(b"finish", 1_700_000_000);
        assert!(matches!(write_image_id(root, "", &id), Err(Error::NoEtc)));
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("var/lib/systemd")).unwrap();
        fs::write(root.join("var/lib/systemd/random-seed"), "seed").unwrap();
        write_image_id(root, "", &id).unwrap();
        let text = fs::read_to_string(root.join("etc/image-id")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..2],
            ["BUILD_NUMBER=local", "IMAGE_BUILD_DATE=20231114221320"]
        );
        assert!(lines[2].starts_with("IMAGE_UUID=") && lines[2].len() == 11 + 36);
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("etc/image-id"), 0o444);

        reset_machine_state(root, true).unwrap();
        reset_machine_state(root, true).unwrap(); // again, over the read-only file
        assert_eq!(
            fs::read_to_string(root.join("etc/machine-id")).unwrap(),
            "uninitialized\n"
        );
        assert_eq!(mode("etc/machine-id"), 0o444);
        assert!(!root.join("var/lib/systemd/random-seed").exists());
    }
}
