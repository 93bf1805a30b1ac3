//! Paths inside the image root. A config's destination (an AdditionalFiles target, a home
//! directory) is resolved the way the image will resolve it at run time — symlinks in the image
//! followed relative to the image root, absolute ones re-rooted — and refused if it would lead
//! outside the root, so nothing is ever written on the build host.

use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Escape {
    #[error("'{0}' leads outside the image root through '..'")]
    Parent(String),
    #[error("'{path}' leads outside the image root through the symlink {link} in the image")]
    Symlink { path: String, link: String },
    #[error("'{0}' goes through too many symlinks")]
    Loop(String),
    #[error("'{0}' is not a valid path in the image")]
    Invalid(String),
}

/// The host path for the image path `path` (absolute, or relative to the image's `/`) under
/// `root`. Components that do not exist yet are taken as they are.
pub fn confined(root: &Path, path: &str) -> Result<PathBuf, Escape> {
    if path.contains('\0') {
        return Err(Escape::Invalid(path.into()));
    }
    // What is left to walk, and where we are (components below the root).
    let mut pending: Vec<String> = Vec::new();
    push_components(&mut pending, Path::new(path), path)?;
    pending.reverse();
    let mut at: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            if at.pop().is_none() {
                return Err(Escape::Parent(path.into()));
            }
            continue;
        }
        at.push(name);
        let host = host_path(root, &at);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if !meta.is_symlink() {
            continue;
        }
        hops += 1;
        if hops > 40 {
            return Err(Escape::Loop(path.into()));
        }
        let target = std::fs::read_link(&host).map_err(|_| Escape::Invalid(path.into()))?;
        let link = format!("/{}", at.join("/"));
        at.pop();
        if target.is_absolute() {
            at.clear();
        }
        let mut more = Vec::new();
        push_components(&mut more, &target, path)?;
        // A relative target may climb out of the root: that is the link's doing.
        let mut depth = at.len() as isize;
        for c in &more {
            depth += if c == ".." { -1 } else { 1 };
            if depth < 0 {
                return Err(Escape::Symlink {
                    path: path.into(),
                    link,
                });
            }
        }
        pending.extend(more.into_iter().rev());
    }
    Ok(host_path(root, &at))
}

fn push_components(out: &mut Vec<String>, p: &Path, whole: &str) -> Result<(), Escape> {
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => out.push("..".into()),
            Component::Normal(n) => out.push(
                n.to_str()
                    .ok_or_else(|| Escape::Invalid(whole.into()))?
                    .to_string(),
            ),
            Component::Prefix(_) => return Err(Escape::Invalid(whole.into())),
        }
    }
    Ok(())
}

fn host_path(root: &Path, at: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(at);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_stay_in_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/usr/lib", root.join("abs")).unwrap();
        symlink("../../..", root.join("usr/out")).unwrap();
        symlink("/etc/passwd", root.join("usr/hostish")).unwrap();
        symlink("loop", root.join("loop")).unwrap();

        assert_eq!(confined(root, "/etc/x").unwrap(), root.join("etc/x"));
        assert_eq!(confined(root, "etc/x").unwrap(), root.join("etc/x"));
        assert_eq!(
            confined(root, "/lib/m.so").unwrap(),
            root.join("usr/lib/m.so")
        );
        assert_eq!(
            confined(root, "/abs/m.so").unwrap(),
            root.join("usr/lib/m.so")
        );
        // An absolute link re-rooted: the image's /etc/passwd, not the host's.
        assert_eq!(
            confined(root, "/usr/hostish").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(confined(root, "/a/../b").unwrap(), root.join("b"));
        assert!(matches!(
            confined(root, "../../etc/x"),
            Err(Escape::Parent(_))
        ));
        assert!(matches!(
            confined(root, "/usr/out/etc/shadow"),
            Err(Escape::Symlink { .. })
        ));
        assert!(matches!(confined(root, "/loop/x"), Err(Escape::Loop(_))));
        assert!(matches!(confined(root, "/a\0b"), Err(Escape::Invalid(_))));
    }
}
