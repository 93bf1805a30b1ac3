//! Diff-disk builds (`OverlayBaseImage`, SPEC §3.9) without a loop device or an overlay mount.
//!
//! Upstream loop-mounts the base image as the lower layer of an overlay mounted at the
//! partition's mount point, builds, and tars the overlay's upper directory into
//! `disk0.partition<i>.diff`; the partition itself stays an empty filesystem, and fstab (and,
//! for `/`, the bootloader, hostname and `rpm --initdb`) leave the overlay out. kiln reads the
//! base image's tree out twice (kiln-fs, `debugfs`): into the staged root at the mount point,
//! where the build sees and changes it, and into a pristine lower copy. After the build, the
//! difference of the two trees is what the upper directory would hold: every entry that is new
//! or differs (type, mode, owner, time, contents, link target, device), the directories on the
//! way to them, and a whiteout (character device 0/0, as overlayfs writes it) for every entry
//! the build removed.

use crate::BuiltPartition;
use kiln_formats::tar::TarWriter;
use kiln_sandbox::ImageRoot;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// An overlay mount point of the build.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Index of the partition in the config's `Partitions`.
    pub index: usize,
    pub mount_point: String,
    /// The base image's tree as it was (the lower layer).
    pub lower: PathBuf,
}

/// Copies each overlay's base image into the staged `root` (still empty: nothing in it can be
/// a symlink yet) at its mount point, and into `work/lower/<id>`. `bases` are (partition,
/// base image path) pairs; parents go first.
pub fn prepare(
    root: &ImageRoot,
    bases: &[(&BuiltPartition, &str)],
    work: &Path,
) -> Result<Vec<Overlay>, String> {
    let mut order: Vec<&(&BuiltPartition, &str)> = bases.iter().collect();
    order.sort_by_key(|(p, _)| p.mount_point.matches('/').count());
    let mut overlays = Vec::new();
    for (p, base) in order {
        let base = Path::new(base);
        if !base.is_file() {
            return Err(format!(
                "partition {} ({}): OverlayBaseImage {} is not a file",
                p.number,
                p.id,
                base.display()
            ));
        }
        let lower = work.join("lower").join(&p.id);
        std::fs::create_dir_all(&lower).map_err(|e| format!("{}: {e}", lower.display()))?;
        let scratch = work.join(format!("lower-{}.debugfs", p.id));
        let fail = |e: kiln_fs::Error| {
            format!(
                "partition {} ({}): reading OverlayBaseImage {}: {e}",
                p.number,
                p.id,
                base.display()
            )
        };
        kiln_fs::extract::extract_ext(base, &lower, &scratch).map_err(fail)?;
        root.create_dir_all(&p.mount_point, 0o755)
            .map_err(|e| e.to_string())?;
        let staged = root.path().join(p.mount_point.trim_start_matches('/'));
        let nonempty = std::fs::read_dir(&staged)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if nonempty {
            return Err(format!(
                "partition {} ({}): {} already holds files of another overlay's base image",
                p.number, p.id, p.mount_point
            ));
        }
        kiln_fs::extract::extract_ext(base, &staged, &scratch).map_err(fail)?;
        overlays.push(Overlay {
            index: p.index,
            mount_point: p.mount_point.clone(),
            lower,
        });
    }
    Ok(overlays)
}

/// What the upper directory holds, in tar order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The entry of the final tree at this relative path (a directory: just itself).
    Entry(PathBuf),
    /// A whiteout: the build removed this lower entry.
    Whiteout(PathBuf),
}

/// The changes from `lower` to `upper` (the final tree), directories before their contents,
/// names sorted.
pub fn changes(lower: &Path, upper: &Path) -> std::io::Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_dir(lower, upper, Path::new(""), &mut out)?;
    Ok(out)
}

fn lstat(p: &Path) -> std::io::Result<Option<Metadata>> {
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn diff_dir(lower: &Path, upper: &Path, rel: &Path, out: &mut Vec<Change>) -> std::io::Result<()> {
    let mut names = kiln_formats::tree::sorted_names(&upper.join(rel))?;
    if let Ok(lower_names) = kiln_formats::tree::sorted_names(&lower.join(rel)) {
        names.extend(lower_names);
        names.sort();
        names.dedup();
    }
    for name in names {
        let r = rel.join(&name);
        let (u, l) = (lstat(&upper.join(&r))?, lstat(&lower.join(&r))?);
        match (u, l) {
            (None, Some(_)) => out.push(Change::Whiteout(r)),
            (Some(u), Some(l)) if u.is_dir() && l.is_dir() => {
                let mut below = Vec::new();
                diff_dir(lower, upper, &r, &mut below)?;
                if !below.is_empty() || !same_meta(&u, &l) {
                    out.push(Change::Entry(r));
                    out.extend(below);
                }
            }
            (Some(u), Some(l)) if !u.is_dir() && !l.is_dir() => {
                if !same_entry(&upper.join(&r), &u, &lower.join(&r), &l)? {
                    out.push(Change::Entry(r));
                }
            }
            (Some(u), _) => {
                // New, or a directory where there was none (or the reverse): all of it.
                out.push(Change::Entry(r.clone()));
                if u.is_dir() {
                    whole(upper, &r, out)?;
                }
            }
            (None, None) => {}
        }
    }
    Ok(())
}

/// Everything below the new directory `rel` of `upper`.
fn whole(upper: &Path, rel: &Path, out: &mut Vec<Change>) -> std::io::Result<()> {
    for name in kiln_formats::tree::sorted_names(&upper.join(rel))? {
        let r = rel.join(&name);
        let is_dir = std::fs::symlink_metadata(upper.join(&r))?.is_dir();
        out.push(Change::Entry(r.clone()));
        if is_dir {
            whole(upper, &r, out)?;
        }
    }
    Ok(())
}

fn same_meta(a: &Metadata, b: &Metadata) -> bool {
    (a.mode(), a.uid(), a.gid(), a.mtime(), a.rdev())
        == (b.mode(), b.uid(), b.gid(), b.mtime(), b.rdev())
}

fn same_entry(up: &Path, u: &Metadata, lp: &Path, l: &Metadata) -> std::io::Result<bool> {
    if !same_meta(u, l) || u.len() != l.len() {
        return Ok(false);
    }
    if u.file_type().is_symlink() {
        return Ok(std::fs::read_link(up)? == std::fs::read_link(lp)?);
    }
    if !u.is_file() {
        return Ok(true);
    }
    let (mut a, mut b) = (std::fs::File::open(up)?, std::fs::File::open(lp)?);
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = a.read(&mut x)?;
        if n == 0 {
            return Ok(true);
        }
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
    }
}

/// Writes the diff artifact of `overlay` (upstream's `tar cvf <out> -C <upper> .`): `./` (the
/// final tree's top), then [`changes`]. Times are clamped to `clamp` when given.
pub fn write_diff(
    overlay: &Overlay,
    upper: &Path,
    out: &Path,
    clamp: Option<u64>,
) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", out.display());
    let list = changes(&overlay.lower, upper)
        .map_err(|e| format!("comparing {} with its base image: {e}", overlay.mount_point))?;
    let mut tmp = kiln_formats::OutFile::create(out).map_err(fail)?;
    let mut tar = TarWriter::new(std::io::BufWriter::new(tmp.file()), clamp);
    let top = std::fs::symlink_metadata(upper).map_err(fail)?;
    tar.append(upper, "./", &top).map_err(fail)?;
    for change in &list {
        match change {
            Change::Entry(rel) => {
                let path = upper.join(rel);
                let meta = std::fs::symlink_metadata(&path).map_err(fail)?;
                let mut name = format!("./{}", rel.display());
                if meta.is_dir() {
                    name.push('/');
                }
                tar.append(&path, &name, &meta).map_err(fail)?;
            }
            Change::Whiteout(rel) => {
                let mtime = clamp.unwrap_or(top.mtime().max(0) as u64);
                tar.append_whiteout(&format!("./{}", rel.display()), mtime)
                    .map_err(fail)?;
            }
        }
    }
    use std::io::Write;
    tar.finish().and_then(|mut w| w.flush()).map_err(fail)?;
    tmp.commit().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_new_differing_and_removed_entries_with_their_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = (dir.path().join("l"), dir.path().join("u"));
        for t in [&lower, &upper] {
            std::fs::create_dir_all(t.join("etc/sub")).unwrap();
            std::fs::create_dir_all(t.join("usr/bin")).unwrap();
            std::fs::write(t.join("etc/same"), "x").unwrap();
            std::fs::write(t.join("usr/bin/tool"), "tool").unwrap();
        }
        std::fs::write(lower.join("etc/changed"), "old").unwrap();
        std::fs::write(upper.join("etc/changed"), "new").unwrap();
        std::fs::write(lower.join("etc/sub/gone"), "bye").unwrap();
        std::fs::create_dir_all(upper.join("opt/app")).unwrap();
        std::fs::write(upper.join("opt/app/run"), "run").unwrap();
        // Same times everywhere: only contents and presence differ.
        kiln_compose::finish::clamp_times(&lower, 1000).unwrap();
        kiln_compose::finish::clamp_times(&upper, 1000).unwrap();
        let got = changes(&lower, &upper).unwrap();
        let e = |p: &str| Change::Entry(p.into());
        assert_eq!(
            got,
            [
                e("etc"),
                e("etc/changed"),
                e("etc/sub"),
                Change::Whiteout("etc/sub/gone".into()),
                e("opt"),
                e("opt/app"),
                e("opt/app/run"),
            ]
        );
    }
}
