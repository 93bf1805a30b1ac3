//! AdditionalFiles copied into the image (SPEC §1.7): `cp --preserve=mode <src> <root>/<dst>`,
//! parent directories created, then `chmod <Permissions>` when given. Destinations resolve
//! inside the image root only.

use indexmap::IndexMap;
use kiln_config::input::{open_regular, InputError};
use kiln_config::model::FileConfig;
use kiln_sandbox::root::{self, ImageRoot};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why an additional file could not be copied; each names the source and destination.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("AdditionalFiles '{source_path}': source ({source_path}) is not a file: {error}")]
    NotAFile {
        source_path: String,
        error: InputError,
    },
    #[error("AdditionalFiles '{source_path}' → '{destination}': destination ({destination}) already exists and is a directory")]
    DestinationIsDirectory {
        source_path: String,
        destination: String,
    },
    #[error("AdditionalFiles '{source_path}' → '{destination}': {error}")]
    Image {
        source_path: String,
        destination: String,
        error: root::Error,
    },
}

/// Copies every `source → destinations` entry (sources already resolved against the config's
/// directory) into the image `root`, in the config's order.
pub fn copy_additional_files(
    root: &ImageRoot,
    files: &IndexMap<String, Vec<FileConfig>>,
) -> Result<(), Error> {
    for (src, destinations) in files {
        let not_a_file = |error| Error::NotAFile {
            source_path: src.clone(),
            error,
        };
        let mode = open_regular(Path::new(src), "AdditionalFiles source")
            .and_then(|f| {
                f.metadata().map_err(|source| InputError::Io {
                    what: "AdditionalFiles source".into(),
                    path: src.into(),
                    source,
                })
            })
            .map_err(not_a_file)?
            .permissions()
            .mode()
            & 0o7777;
        for dst in destinations {
            copy_one(root, src, mode, dst)?;
        }
    }
    Ok(())
}

fn copy_one(root: &ImageRoot, src: &str, mode: u32, dst: &FileConfig) -> Result<(), Error> {
    let image = |error| Error::Image {
        source_path: src.into(),
        destination: dst.path.clone(),
        error,
    };
    if root.is_dir(&dst.path) {
        return Err(Error::DestinationIsDirectory {
            source_path: src.into(),
            destination: dst.path.clone(),
        });
    }
    if let Some(parent) = Path::new(&dst.path).parent() {
        root.create_dir_all(parent, 0o755).map_err(image)?;
    }
    // Opened again for each destination: the source is read whole each time.
    let mut file = open_regular(Path::new(src), "AdditionalFiles source").map_err(|error| {
        Error::NotAFile {
            source_path: src.into(),
            error,
        }
    })?;
    let mode = dst.permissions.unwrap_or(mode);
    root.copy_in(&mut file, &dst.path, mode).map_err(image)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
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
        let image = ImageRoot::open(&root).unwrap();
        copy_additional_files(&image, &files).unwrap();
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
            let e = copy_additional_files(&image, &files)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("tool.sh"), "{e}");
        }
        assert!(!d.path().parent().unwrap().join("escaped").exists());
        let mut files = IndexMap::new();
        files.insert(d.path().display().to_string(), vec![entry("/x", None)]);
        let e = copy_additional_files(&image, &files)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a file"), "{e}");
    }
}
