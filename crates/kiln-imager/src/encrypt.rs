//! The encrypted root of a disk image (`Encryption.Enable`, SPEC §3.4), without device-mapper:
//! the LUKS1 volume is formatted before the root is populated (crypttab, fstab and the kernel
//! command line name its UUID), the root filesystem is made into a sparse scratch file of the
//! logical volume's size, and kiln-crypt streams LUKS header, LVM metadata and the encrypted
//! filesystem into the partition's byte range of the disk.

use crate::BuiltPartition;
use kiln_compose::luks::EncryptedRoot;
use kiln_config::model::SystemConfig;
use kiln_crypt::{EncryptedVolume, LuksOptions, VolumeOptions};
use kiln_formats::ident::Identity;
use kiln_fs::FsKind;
use rand_core::RngCore;
use std::path::Path;
use zeroize::Zeroizing;

/// Upstream's key file: `dd bs=512 count=4 if=/dev/urandom`.
const KEYFILE_BYTES: usize = 2048;

/// A formatted volume and what the image must know of it.
pub struct Prepared {
    pub volume: EncryptedVolume,
    pub root: EncryptedRoot,
}

/// Formats the LUKS1 volume of the root partition `part`: slot 0 opens with the config's
/// password, slot 1 with a new 2048-byte key file. Every random byte comes from
/// [`kiln_crypt::volume_rng`]: the system's random source, or with `SOURCE_DATE_EPOCH` a
/// generator keyed by PBKDF2 of the password (so the same config and password give the same
/// partition, and the build's public seed does not give away the master key).
pub fn prepare(
    part: &BuiltPartition,
    sc: &SystemConfig,
    identity: &Identity,
) -> Result<Prepared, String> {
    let password = sc.encryption.password.as_bytes();
    let salt = identity.uuid(&format!("luks.{}", part.id));
    let mut rng = kiln_crypt::volume_rng(password, &salt).map_err(|e| e.to_string())?;
    let mut keyfile = Zeroizing::new(vec![0u8; KEYFILE_BYTES]);
    rng.fill_bytes(&mut keyfile);
    let host = if sc.hostname.is_empty() {
        "localhost"
    } else {
        sc.hostname.as_str()
    };
    let opts = VolumeOptions {
        luks: LuksOptions::default(),
        password: password.to_vec(),
        keyfile: Some(keyfile.to_vec()),
        creation_host: host.into(),
        system: format!("Linux {host}"),
        creation_time: identity.unix_time(),
    };
    let volume = EncryptedVolume::new(part.size, &opts, &mut rng).map_err(|e| {
        format!(
            "partition {} ({}) cannot hold the encrypted root: {e}",
            part.number, part.id
        )
    })?;
    let root = EncryptedRoot {
        luks_uuid: volume.luks().uuid().to_string(),
        keyfile,
    };
    Ok(Prepared { volume, root })
}

/// Makes the `kind` filesystem of `part` from `content` into a sparse scratch file of the
/// logical volume's size in `work`, then writes the whole partition into `disk`: the LUKS
/// header and key slots, and the payload (LVM label, metadata, the filesystem) encrypted.
/// Returns the filesystem as made (its UUID).
pub fn write(
    prepared: &Prepared,
    disk: &Path,
    part: &BuiltPartition,
    kind: FsKind,
    content: Option<&Path>,
    identity: &Identity,
    work: &Path,
) -> Result<kiln_fs::Made, String> {
    let lv_size = prepared.volume.layout().lv_size;
    let (held, scratch) = kiln_formats::files::create_temp_file(&work.join("encrypted-root"))
        .map_err(|e| format!("a scratch file in {}: {e}", work.display()))?;
    let result = (|| {
        held.set_len(lv_size)
            .map_err(|e| format!("{}: {e}", scratch.display()))?;
        let made = kiln_fs::make(&scratch, kind, 0, lv_size, content, identity, &part.id)
            .map_err(|e| e.to_string())?;
        let mut image =
            std::fs::File::open(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let target = std::fs::OpenOptions::new()
            .write(true)
            .open(disk)
            .map_err(|e| format!("{}: {e}", disk.display()))?;
        prepared
            .volume
            .write_at(&target, part.offset, &mut image)
            .map_err(|e| e.to_string())?;
        target
            .sync_data()
            .map_err(|e| format!("{}: {e}", disk.display()))?;
        Ok(made)
    })();
    let _ = std::fs::remove_file(&scratch);
    drop(held);
    result
}
