//! RawBinaries written into the disk file (upstream: `dd bs=BlockSize seek=Seek conv=notrunc`),
//! after [`kiln_config::rawbin::placement`] has checked, against the planned layout and the
//! binary's real size, that the range lies inside the disk and outside the partition table and
//! every partition. The binary is opened with [`kiln_config::input::open_regular`] (a FIFO or a
//! device is refused, never read) and exactly the size `fstat` gave is copied.

use kiln_config::model::Disk;
use kiln_config::rawbin::{placement, DiskGeometry};
use kiln_disk::Layout;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The geometry of the planned layout: its size, table and every partition (the extended
/// container included, so the EBRs inside it are covered).
fn geometry(disk: &Disk, layout: &Layout) -> DiskGeometry {
    let partitions = layout
        .partitions
        .iter()
        .map(|p| {
            let name = match p.config_index.and_then(|i| disk.partitions.get(i)) {
                Some(c) => format!("partition {} ({})", p.number, c.id),
                None => format!("partition {} (the extended partition)", p.number),
            };
            (name, p.offset(), p.offset() + p.size())
        })
        .collect();
    DiskGeometry {
        size: Some(layout.size),
        table: layout.table,
        partitions,
    }
}

/// Writes each of `disk`'s RawBinaries (paths relative to `base_dir`) into the disk image at
/// `disk_path`; an error names `RawBinaries[i]`.
pub(crate) fn write_raw_binaries(
    disk: &Disk,
    layout: &Layout,
    disk_path: &Path,
    base_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let geometry = geometry(disk, layout);
    for (i, rb) in disk.raw_binaries.iter().enumerate() {
        progress(&format!("writing {}", rb.bin_path));
        let at = |e: &dyn std::fmt::Display| format!("RawBinaries[{i}] ({}): {e}", rb.bin_path);
        let path = base_dir.join(&rb.bin_path);
        let bin = kiln_config::input::open_regular(&path, "raw binary").map_err(|e| at(&e))?;
        let len = bin.metadata().map_err(|e| at(&e))?.len();
        let (start, _) = placement(rb, Some(len), &geometry).map_err(|e| at(&e))?;
        let out = std::fs::OpenOptions::new()
            .write(true)
            .open(disk_path)
            .map_err(|e| at(&e))?;
        copy_at(bin.take(len), &out, start).map_err(|e| at(&e))?;
    }
    Ok(())
}

/// Copies `from` into `to` at byte `offset`, a MiB at a time.
fn copy_at(mut from: impl Read, to: &std::fs::File, offset: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = offset;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all_at(&buf[..n], at)?;
        at += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_config::model::{Partition, PartitionTableType, RawBinary};

    /// A 16 MiB GPT disk with one partition from 2 MiB to the end, planned and written.
    fn disk_with(rb: RawBinary) -> (tempfile::TempDir, Disk, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk {
            partition_table_type: PartitionTableType::Gpt,
            max_size: 16,
            partitions: vec![Partition {
                id: "root".into(),
                start: 2,
                fs_type: "ext4".into(),
                ..Partition::default()
            }],
            raw_binaries: vec![rb],
            ..Disk::default()
        };
        let identity = kiln_formats::ident::Identity::seeded(b"raw", 0);
        let layout = kiln_disk::plan(&disk, &identity).unwrap();
        let f = std::fs::File::create(dir.path().join("disk.raw")).unwrap();
        f.set_len(layout.size).unwrap();
        kiln_disk::write_table(&layout, &f).unwrap();
        (dir, disk, layout)
    }

    fn write(bs: u64, seek: u64, data: &[u8]) -> (Result<(), String>, Vec<u8>) {
        let rb = RawBinary {
            bin_path: "b.bin".into(),
            block_size: bs,
            seek,
        };
        let (dir, disk, layout) = disk_with(rb);
        std::fs::write(dir.path().join("b.bin"), data).unwrap();
        let disk_path = dir.path().join("disk.raw");
        let before = std::fs::read(&disk_path).unwrap();
        let r = write_raw_binaries(&disk, &layout, &disk_path, dir.path(), &mut |_| {});
        let after = std::fs::read(&disk_path).unwrap();
        if r.is_err() {
            assert_eq!(before, after, "a refused binary writes nothing");
        }
        (r, after)
    }

    #[test]
    fn a_binary_in_the_gap_is_written_at_seek_times_block_size() {
        let (r, disk) = write(512, 64, b"UBOOT");
        assert_eq!(r, Ok(()));
        assert_eq!(&disk[32768..32773], b"UBOOT");
    }

    #[test]
    fn a_wrapping_offset_never_overwrites_the_partition_table() {
        // 2^55 × 512 = 2^64: unchecked, it wrapped to 0 and overwrote the protective MBR.
        let (r, _) = write(512, 1 << 55, b"X");
        let e = r.unwrap_err();
        assert!(e.starts_with("RawBinaries[0] (b.bin): Seek"), "{e}");
        assert!(e.contains("does not fit in 64 bits"), "{e}");
    }

    #[test]
    fn the_table_partitions_and_the_disk_end_are_refused() {
        for (bs, seek, len, what) in [
            (512, 1, 16, "overlap the GPT"),
            (512, 16 * 2048 - 1, 16, "the backup GPT"),
            (512, 64, 2 << 20, "overlap partition 1 (root)"),
            (1 << 20, 16, 1, "do not fit on the disk"),
        ] {
            let (r, _) = write(bs, seek, &vec![7u8; len]);
            let e = r.unwrap_err();
            assert!(e.contains(what), "{e}");
        }
    }

    #[test]
    fn a_device_as_binary_is_refused_without_reading_it() {
        let rb = RawBinary {
            bin_path: "/dev/zero".into(),
            block_size: 512,
            seek: 64,
        };
        let (dir, disk, layout) = disk_with(rb);
        let e = write_raw_binaries(
            &disk,
            &layout,
            &dir.path().join("disk.raw"),
            dir.path(),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            e.contains("is a character device, not a regular file"),
            "{e}"
        );
    }
}
