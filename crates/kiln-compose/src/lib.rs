//! # kiln-compose
//!
//! Composing an image's root filesystem (SPEC §3.3–§3.8). So far: paths confined to the image
//! root ([`paths`]), the password hashes written for the config's users ([`crypt`]), and groups
//! and users written into the image's account files ([`accounts`]), and a config's Groups and
//! Users applied to an image root ([`users`]); hostname, hosts and fstab ([`system`]);
//! AdditionalFiles ([`files`]); packages installed with rpm ([`install`]);
//! image-id, machine state, rpm manifests and scripts run in the root ([`finish`]); all of it in
//! upstream's order for a root filesystem ([`rootfs`]).

pub mod accounts;
pub mod crypt;
pub mod files;
pub mod finish;
pub mod install;
pub mod paths;
pub mod rootfs;
pub mod system;
pub mod users;

use std::path::{Path, PathBuf};

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
