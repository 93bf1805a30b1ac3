//! # kiln-compose
//!
//! Composing an image's root filesystem (SPEC §3.3–§3.8). Every file kiln touches in the image
//! goes through [`kiln_sandbox::ImageRoot`] (resolved by the kernel inside the root) and every
//! program that runs for the image (rpm, scripts, setfiles) runs in [`kiln_sandbox::Sandbox`],
//! as [`RunOptions`] say. The modules: the password hashes written for the config's users ([`crypt`]), and groups
//! and users written into the image's account files ([`accounts`]), and a config's Groups and
//! Users applied to an image root ([`users`]); hostname, hosts and fstab ([`system`]);
//! AdditionalFiles ([`files`]); dracut told the image's planned disk during the build
//! ([`dracut`]); the key file, crypttab and initramfs of an encrypted root
//! ([`luks`]); packages installed with rpm ([`install`]), and the package root they make as an
//! incremental cache keys it ([`package_root`]);
//! image-id, machine state, rpm manifests and scripts run in the root ([`finish`]); all of it in
//! upstream's order for a root filesystem ([`rootfs`]).

pub mod accounts;
pub mod crypt;
pub mod dracut;
pub mod files;
pub mod finish;
pub mod install;
pub mod luks;
pub mod package_root;
pub mod rootfs;
pub mod system;
pub mod users;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How programs run for the image: the time a step may take and whether it gets the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// `--script-timeout`: a step still running after this is stopped with all it started.
    pub timeout: Duration,
    /// Whether scripts and scriptlets reach the host's network (off by default).
    pub network: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            timeout: kiln_sandbox::run::DEFAULT_TIMEOUT,
            network: false,
        }
    }
}

impl RunOptions {
    /// A sandbox over the image `root` with these options. Programs get a clean environment;
    /// `SOURCE_DATE_EPOCH` is passed on, since reproducible tools in the image (dracut, the
    /// sample initramfs, rpm) date their outputs by it.
    pub fn sandbox(&self, root: &Path, view: kiln_sandbox::View) -> kiln_sandbox::Sandbox {
        let sandbox = kiln_sandbox::Sandbox::new(root, view)
            .timeout(self.timeout)
            .network(self.network);
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(epoch) if !epoch.is_empty() => sandbox.env("SOURCE_DATE_EPOCH", &epoch),
            _ => sandbox,
        }
    }
}

/// A file operation on the image or its inputs that failed, with the path it was on.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct IoError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// For `map_err`: an `std::io::Error` on `path` as an [`IoError`].
pub(crate) fn at(path: &Path) -> impl FnOnce(std::io::Error) -> IoError {
    let path = path.to_path_buf();
    move |source| IoError { path, source }
}
