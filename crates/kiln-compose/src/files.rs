//! AdditionalFiles copied into the image (SPEC §1.7): `cp --preserve=mode <src> <root>/<dst>`,
//! parent directories created, then `chmod <Permissions>` when given. Destinations resolve
//! inside the image root only.

use crate::paths::{confined, Escape};
use indexmap::IndexMap;
use kiln_config::model::FileConfig;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why an additional file could not be copied; each names the source and destination.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("AdditionalFiles '{source_path}': source ({source_path}) is not a file")]
    NotAFile { source_path: String },
    #[error("AdditionalFiles '{source_path}' → '{destination}': destination ({destination}) already exists and is a directory")]
    DestinationIsDirectory {
        source_path: String,
        destination: String,
    },
    #[error("AdditionalFiles '{source_path}' → {escape}")]
    Escape { source_path: String, escape: Escape },
    #[error("AdditionalFiles '{source_path}' → '{destination}': {}: {error}", path.display())]
    Io {
        source_path: String,
        destination: String,
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Copies every `source → destinations` entry (sources already resolved against the config's
/// directory) into the image at `root`, in the config's order.
pub fn copy_additional_files(
    root: &Path,
    files: &IndexMap<String, Vec<FileConfig>>,
) -> Result<(), Error> {
    for (src, destinations) in files {
        let meta = fs::metadata(src).map_err(|_| Error::NotAFile {
            source_path: src.clone(),
        })?;
        if !meta.is_file() {
            return Err(Error::NotAFile {
                source_path: src.clone(),
            });
        }
        for dst in destinations {
            copy_one(root, src, meta.permissions().mode() & 0o7777, dst)?;
        }
    }
    Ok(())
}

fn copy_one(root: &Path, src: &str, mode: u32, dst: &FileConfig) -> Result<(), Error> {
    let target = confined(root, &dst.path).map_err(|escape| Error::Escape {
        source_path: src.into(),
        escape,
    })?;
    let io = |path: &Path| {
        let (source_path, destination, path) =
            (src.to_string(), dst.path.clone(), path.to_path_buf());
        move |error| Error::Io {
            source_path,
            destination,
            path,
            error,
        }
    };
    if target.is_dir() {
        return Err(Error::DestinationIsDirectory {
            source_path: src.into(),
            destination: dst.path.clone(),
        });
    }
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(io(parent))?;
    }
    fs::copy(src, &target).map_err(io(&target))?;
    let mode = dst.permissions.unwrap_or(mode);
    fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(io(&target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn entry(path: &str, permissions: Option<u32>) -> FileConfig {
        FileConfig {
            path: path.into(),
            permissions,
        }
    }

    #[test]
    fn files_land_with_their_modes_and_never_outside() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("etc/dir")).unwrap();
        symlink("/etc", root.join("etclink")).unwrap();
        let src = d.path().join("tool.sh");
        fs::write(&src, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o750)).unwrap();
        let src = src.display().to_string();

        let mut files = IndexMap::new();
        files.insert(
            src.clone(),
            vec![
                entry("/usr/local/bin/tool", None),
                entry("/etc/tool.conf", Some(0o600)),
                entry("/etclink/via-link", None),
            ],
        );
        copy_additional_files(&root, &files).unwrap();
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("usr/local/bin/tool"), 0o750);
        assert_eq!(mode("usr/local/bin"), 0o755);
        assert_eq!(mode("etc/tool.conf"), 0o600);
        assert_eq!(
            fs::read_to_string(root.join("etc/via-link")).unwrap(),
            "#!/bin/sh\n"
        );

        for (dst, want) in [
            ("/etc/dir", "already exists and is a directory"),
            ("../../escaped", "outside the image root"),
        ] {
            let mut files = IndexMap::new();
            files.insert(src.clone(), vec![entry(dst, None)]);
            let e = copy_additional_files(&root, &files)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("tool.sh"), "{e}");
        }
        assert!(!d.path().parent().unwrap().join("escaped").exists());
        let mut files = IndexMap::new();
        files.insert(d.path().display().to_string(), vec![entry("/x", None)]);
        let e = copy_additional_files(&root, &files)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("is not a file"), "{e}");
    }
}
