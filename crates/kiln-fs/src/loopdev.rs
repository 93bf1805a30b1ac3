//! A loop device over a byte range of a block device, for the xfs and FAT tools (they read and
//! write no byte range). Used only when the disk is a block device — the live installer's
//! target, where a scratch file of the partition would sit in the installer's memory (an xfs
//! root twice over: its staged tree and the scratch); disk image files keep their scratch files.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop device (`/dev/loopN`) over `[offset, offset + size)` of a block device, detached when
/// dropped.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    /// Attaches one (`read_only`: writes refused by the kernel).
    pub fn attach(
        device: &Path,
        offset: u64,
        size: u64,
        read_only: bool,
    ) -> Result<LoopDevice, String> {
        // The loop driver may be a module nothing has loaded yet; losetup says so if this fails.
        let _ = Command::new("modprobe").args(["-q", "loop"]).output();
        let mut cmd = Command::new("losetup");
        cmd.args(["--find", "--show"]);
        if read_only {
            cmd.arg("--read-only");
        }
        let out = cmd
            .arg("--offset")
            .arg(offset.to_string())
            .arg("--sizelimit")
            .arg(size.to_string())
            .arg(device)
            .output()
            .map_err(|e| format!("cannot run losetup (package util-linux): {e}"))?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || path.is_empty() {
            return Err(format!(
                "losetup could not attach a loop device to bytes {offset}..{} of {} (the kernel \
                 needs the loop driver): {}",
                offset + size,
                device.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(LoopDevice {
            path: PathBuf::from(path),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup")
            .arg("--detach")
            .arg(&self.path)
            .output();
    }
}

/// Whether `path` is a block device.
pub fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}
