//! Reading a raw disk image by its data: only allocated extents are read (`SEEK_DATA`/
//! `SEEK_HOLE`), and all-zero granules inside them are skipped, so a 2 TiB disk holding a few MiB
//! is read in milliseconds and its holes are never written anywhere.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::mpsc;

/// How much is read per system call. Bounded so that memory does not grow with image size.
const READ_CHUNK: usize = 4 << 20;

/// Called with (bytes of data read so far, bytes of data in the image).
pub type Progress = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Where a [`SparseInput`]'s guest bytes come from: a raw file, or an image format's reader
/// (see [`crate::image`]).
pub trait Source: Send + Sync {
    /// The guest (virtual disk) size in bytes.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Guest ranges `[start, end)` that may hold data, in increasing order; everything else
    /// reads as zeros.
    fn extents(&self) -> io::Result<Vec<(u64, u64)>>;
    /// Fills `buf` with the guest bytes at `offset` (`offset + buf.len() <= len()`).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// A raw file's first `len` bytes (a raw image, or the data of a fixed VHD).
pub struct RawSource {
    file: File,
    len: u64,
}

impl RawSource {
    pub fn new(file: File, len: u64) -> RawSource {
        RawSource { file, len }
    }
}

impl Source for RawSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn extents(&self) -> io::Result<Vec<(u64, u64)>> {
        file_extents(&self.file, self.len)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

/// A disk image opened for reading by its data.
pub struct SparseInput {
    source: Box<dyn Source>,
    len: u64,
    progress: Option<Progress>,
}

impl std::fmt::Debug for SparseInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SparseInput")
            .field("len", &self.len)
            .finish()
    }
}

impl SparseInput {
    /// Opens a raw image.
    pub fn open(path: &Path) -> io::Result<SparseInput> {
        let (file, len) = open_regular(path)?;
        Ok(SparseInput::from_source(Box::new(RawSource::new(
            file, len,
        ))))
    }

    /// Reads the guest bytes `source` gives.
    pub fn from_source(source: Box<dyn Source>) -> SparseInput {
        SparseInput {
            len: source.len(),
            source,
            progress: None,
        }
    }

    /// Reports reading progress to `progress` (data bytes, not holes).
    pub fn set_progress(&mut self, progress: Option<Progress>) {
        self.progress = progress;
    }

    /// Size of the image in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `buf` with the guest bytes at `offset` (it must lie inside the image).
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.source.read_exact_at(buf, offset)
    }

    /// The extents `[start, end)` that may hold data, in order.
    pub fn extents(&self) -> io::Result<Vec<(u64, u64)>> {
        self.source.extents()
    }

    /// Calls `f(offset, data)` for every run of consecutive `granule`-aligned granules that hold
    /// a non-zero byte, in increasing offset order. `granule` must be a power of two ≤ 4 MiB.
    /// A run never spans more than one read (4 MiB); the last granule of the image may be short.
    ///
    /// Reading and zero detection happen on a second thread, so they overlap with whatever `f`
    /// does (usually writing); at most three 4 MiB buffers are in flight.
    pub fn for_each_data_run(
        &self,
        granule: u64,
        mut f: impl FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        assert!(granule.is_power_of_two() && granule as usize <= READ_CHUNK);
        let extents = self.extents()?;
        let total: u64 = extents.iter().map(|(s, e)| e - s).sum();
        let (chunks_tx, chunks_rx) = mpsc::sync_channel::<io::Result<Chunk>>(1);
        let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut done: u64 = 0; // everything below this has been read
                let mut buffers = 0;
                for (start, end) in extents {
                    let mut pos = (start & !(granule - 1)).max(done);
                    let end = end.div_ceil(granule).saturating_mul(granule).min(self.len);
                    while pos < end {
                        let n = ((end - pos) as usize).min(READ_CHUNK);
                        let mut buf = match spare_rx.try_recv() {
                            Ok(b) => b,
                            Err(_) if buffers < 3 => {
                                buffers += 1;
                                vec![0u8; READ_CHUNK]
                            }
                            Err(_) => match spare_rx.recv() {
                                Ok(b) => b,
                                Err(_) => return, // the consumer stopped
                            },
                        };
                        let chunk = match self.source.read_exact_at(&mut buf[..n], pos) {
                            Ok(()) => Chunk {
                                runs: data_runs(&buf[..n], granule as usize),
                                pos,
                                len: n,
                                buf,
                            },
                            Err(e) => {
                                let _ = chunks_tx.send(Err(e));
                                return;
                            }
                        };
                        if chunks_tx.send(Ok(chunk)).is_err() {
                            return;
                        }
                        pos += n as u64;
                    }
                    done = done.max(end);
                }
            });
            let mut read: u64 = 0;
            for chunk in chunks_rx {
                let chunk = chunk?;
                for (a, b) in &chunk.runs {
                    f(chunk.pos + *a as u64, &chunk.buf[*a..*b])?;
                }
                if let Some(p) = &self.progress {
                    read = (read + chunk.len as u64).min(total);
                    p(read, total);
                }
                let _ = spare_tx.send(chunk.buf);
            }
            Ok(())
        })
    }
}

/// A piece of the input read ahead, with its data runs (byte ranges in `buf`).
struct Chunk {
    pos: u64,
    len: usize,
    buf: Vec<u8>,
    runs: Vec<(usize, usize)>,
}

/// The maximal runs of granules holding a non-zero byte.
fn data_runs(chunk: &[u8], granule: usize) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut run: Option<usize> = None;
    for (i, g) in chunk.chunks(granule).enumerate() {
        let at = i * granule;
        match (is_zero(g), run) {
            (false, None) => run = Some(at),
            (true, Some(r)) => {
                runs.push((r, at));
                run = None;
            }
            _ => {}
        }
    }
    if let Some(r) = run {
        runs.push((r, chunk.len()));
    }
    runs
}

/// The allocated extents `[start, end)` of the first `len` bytes of `file`, in order. On
/// filesystems without `SEEK_DATA` the whole range is one extent.
fn file_extents(file: &File, len: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let mut out = Vec::new();
    let mut pos: u64 = 0;
    while pos < len {
        // SAFETY: lseek on a file descriptor we own; no memory is passed.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENXIO) => break, // no data after pos
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) if out.is_empty() => {
                    return Ok(vec![(0, len)]);
                }
                _ => return Err(e),
            }
        }
        if data as u64 >= len {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let (start, end) = (data as u64, (hole as u64).min(len));
        if end > start {
            out.push((start, end));
        }
        pos = end.max(start + 1);
    }
    Ok(out)
}

/// Opens a regular file (not a directory, device or FIFO) and returns it with its length. The
/// file is opened non-blocking, so a FIFO with no writer is refused at once instead of hanging.
pub fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    Ok((file, meta.len()))
}

/// The error for a path that is a directory, a FIFO, a device or a socket, naming which.
pub(crate) fn not_regular(path: &Path, meta: &std::fs::Metadata) -> io::Error {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let kind = if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {kind}, not a regular file: give an image file",
            path.display()
        ),
    )
}

/// Whether a buffer is all zero bytes (word at a time).
pub fn is_zero(buf: &[u8]) -> bool {
    let (head, words, tail) = unsafe { buf.align_to::<u128>() };
    head.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn runs_skip_holes_and_zero_granules() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let f = File::create(&p).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(&[1u8; 5000], 10 << 20).unwrap(); // spans two 4 KiB granules, + a third
        f.write_all_at(&[0u8; 8192], 20 << 20).unwrap(); // allocated zeros: skipped
        f.write_all_at(b"x", (64 << 20) - 1).unwrap();
        drop(f);
        let input = SparseInput::open(&p).unwrap();
        let mut runs = Vec::new();
        input
            .for_each_data_run(4096, |off, data| {
                runs.push((off, data.len(), data.iter().filter(|&&b| b != 0).count()));
                Ok(())
            })
            .unwrap();
        assert_eq!(runs, [(10 << 20, 8192, 5000), ((64 << 20) - 4096, 4096, 1)]);
    }

    #[test]
    fn short_last_granule_and_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let mut f = File::create(&p).unwrap();
        f.write_all(&[7u8; 1000]).unwrap();
        drop(f);
        let input = SparseInput::open(&p).unwrap();
        let mut runs = Vec::new();
        input
            .for_each_data_run(4096, |off, d| {
                runs.push((off, d.len()));
                Ok(())
            })
            .unwrap();
        assert_eq!(runs, [(0, 1000)]);
        let e = dir.path().join("empty");
        File::create(&e).unwrap();
        let input = SparseInput::open(&e).unwrap();
        input
            .for_each_data_run(4096, |_, _| panic!("no data"))
            .unwrap();
    }

    #[test]
    fn zero_check() {
        assert!(is_zero(&[0u8; 1000]));
        let mut v = vec![0u8; 1000];
        v[999] = 1;
        assert!(!is_zero(&v));
        v[999] = 0;
        v[3] = 1;
        assert!(!is_zero(&v[1..]));
    }
}
