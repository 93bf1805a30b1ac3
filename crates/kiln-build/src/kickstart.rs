//! Kickstart installs (`IsKickStartBoot`, SPEC §1.13 and §3.1 step 3): the config's
//! PreInstallScripts run on the installer (they look at the machine's disks) and write
//! `/tmp/part-include`; its partition lines become the config's Disks and PartitionSettings,
//! and the config is validated again.
//!
//! Upstream runs the scripts with `sh -c "<path> <args>"` on whatever host imager runs on. kiln
//! runs them only for `--live-install` (on the installer, the machine being installed; a build
//! host's disks are not the config's business), and gives them a private `/tmp` (a folder of the
//! work directory, bind-mounted in a mount namespace of their own), so `/tmp/part-include` and
//! anything else they leave there stays out of the host's `/tmp`.

use crate::validate::Validated;
use kiln_config::kickstart::{parse_partitions, HostBoot, KickstartLayout, LAYOUT_CONFIG};
use kiln_config::model::{Disk, PartitionSetting};
use serde_json::{json, Value};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// Whether the config's (first) SystemConfig is a kickstart install.
pub(crate) fn is_kickstart(v: &Validated) -> bool {
    v.config()
        .system_configs
        .first()
        .is_some_and(|s| s.is_kick_start_boot)
}

/// Runs the PreInstallScripts with `work/tmp` as their `/tmp`, reads `part-include` from it and
/// returns the config validated again with the layout it describes.
pub(crate) fn apply(
    v: &Validated,
    work: &Path,
    report: &mut dyn FnMut(&str),
) -> Result<Validated, String> {
    let sc = &v.config().system_configs[0];
    let tmp = work.join("kickstart-tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let result = (|| {
        for script in &sc.pre_install_scripts {
            report(&format!("running the PreInstallScript {}", script.path));
            run_script(&script.path, &script.args, &tmp)?;
        }
        let include = tmp.join("part-include");
        let text = std::fs::read_to_string(&include).map_err(|e| {
            format!(
                "kickstart install: the PreInstallScripts wrote no /tmp/part-include ({e}); \
                 it must hold the partition lines (part / --fstype=ext4 --size=… --ondisk=…)"
            )
        })?;
        let layout = parse_partitions(&text, host_boot())
            .map_err(|e| format!("kickstart install: /tmp/part-include: {e}"))?;
        report(&format!(
            "kickstart: {} partitions on {}",
            layout.partition_settings.len(),
            layout
                .disks
                .iter()
                .map(|d| d.target_disk.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        revalidate(v, &layout, &work.join(LAYOUT_CONFIG))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// How the installer booted: the partition table type follows it (SPEC §1.13).
fn host_boot() -> HostBoot {
    HostBoot {
        efi: Path::new("/sys/firmware/efi").exists(),
        gpt_on_cmdline: std::fs::read_to_string("/proc/cmdline")
            .is_ok_and(|c| c.contains("--gpt=True")),
    }
}

/// `sh -c "<path> <args>"` (upstream's command line) in a mount namespace whose `/tmp` is `tmp`.
/// A script kept under the host's `/tmp` stays at its own path there: its folder (or, directly
/// in `/tmp`, the file itself) is bound into the private `/tmp` first.
fn run_script(path: &str, args: &str, tmp: &Path) -> Result<(), String> {
    let keep = host_tmp_entry(Path::new(path));
    if let Some(rel) = &keep {
        let at = tmp.join(rel);
        let made = if Path::new("/tmp").join(rel).is_dir() {
            std::fs::create_dir_all(&at)
        } else {
            std::fs::write(&at, b"")
        };
        made.map_err(|e| format!("cannot create {}: {e}", at.display()))?;
    }
    let line = if args.is_empty() {
        path.to_string()
    } else {
        format!("{path} {args}")
    };
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            r#"if [ -n "$2" ]; then mount --bind "/tmp/$2" "$0/$2" || exit; fi
               mount --rbind "$0" /tmp && exec sh -c "$1""#,
        )
        .arg(tmp)
        .arg(&line)
        .arg(keep.map(|r| r.display().to_string()).unwrap_or_default())
        .output()
        .map_err(|e| format!("cannot run unshare (util-linux) for the PreInstallScript: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the PreInstallScript `{line}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The config file with the kickstart layout as its Disks and the first SystemConfig's
/// PartitionSettings, validated again (upstream re-runs `Config.IsValid`), and kept at `keep`
/// (mode 0600: it may hold passwords).
fn revalidate(v: &Validated, layout: &KickstartLayout, keep: &Path) -> Result<Validated, String> {
    let path = &v.loaded.config_path;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    doc["Disks"] = Value::Array(layout.disks.iter().map(disk_json).collect());
    doc["SystemConfigs"][0]["PartitionSettings"] =
        Value::Array(layout.partition_settings.iter().map(setting_json).collect());
    let text = serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?;
    let opts = kiln_config::Options {
        base_dir: Some(v.loaded.base_dir.clone()),
        // The validator's checks ran on the file; these are the config-level ones.
        package_checks: false,
        file_checks: false,
    };
    let checked = kiln_config::validate_bytes(&text, path, &opts);
    match checked.config {
        Some(loaded) => {
            write_private(keep, &text)
                .map_err(|e| format!("cannot write {}: {e}", keep.display()))?;
            Ok(Validated {
                loaded,
                name: v.name.clone(),
                warnings: v.warnings.clone(),
            })
        }
        None => Err(format!(
            "kickstart install: the config with the layout of /tmp/part-include is invalid:\n{}",
            checked.report.render(false)
        )),
    }
}

/// `text` at `path`, readable by its owner only (replacing what was there).
fn write_private(path: &Path, text: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(text)
}

fn disk_json(d: &Disk) -> Value {
    let parts: Vec<Value> = d
        .partitions
        .iter()
        .map(|p| {
            json!({
                "ID": p.id,
                "Flags": p.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
                "Start": p.start,
                "End": p.end,
                "FsType": p.fs_type,
            })
        })
        .collect();
    json!({
        "PartitionTableType": d.partition_table_type.as_str(),
        "TargetDisk": {"Type": d.target_disk.ty, "Value": d.target_disk.value},
        "Partitions": parts,
    })
}

fn setting_json(s: &PartitionSetting) -> Value {
    json!({
        "ID": s.id,
        "MountPoint": s.mount_point,
        "MountOptions": s.mount_options,
        "MountIdentifier": s.mount_identifier.as_str(),
    })
}

/// What of the host's `/tmp` a script at `path` needs in the private one, relative to `/tmp`:
/// its folder, or the file itself when it lies directly in `/tmp`.
fn host_tmp_entry(path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix("/tmp").ok()?;
    // Only plain names: `..` would bind a folder from outside /tmp, or over one.
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let dir = rel.parent().filter(|d| !d.as_os_str().is_empty());
    Some(dir.unwrap_or(rel).to_path_buf()).filter(|r| !r.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_under_tmp_keeps_its_folder_or_itself() {
        let entry = |p: &str| host_tmp_entry(Path::new(p)).map(|r| r.display().to_string());
        assert_eq!(entry("/tmp/ks/pre.sh").as_deref(), Some("ks"));
        assert_eq!(entry("/tmp/a/b/pre.sh").as_deref(), Some("a/b"));
        assert_eq!(entry("/tmp/pre.sh").as_deref(), Some("pre.sh"));
        assert_eq!(entry("/srv/ks/pre.sh"), None);
        assert_eq!(entry("/tmpfoo/pre.sh"), None);
        assert_eq!(entry("/tmp/../etc/pre.sh"), None);
    }
}
