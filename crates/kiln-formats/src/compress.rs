//! gzip (parallel) and xz compression of files.
//!
//! gzip output is a sequence of gzip members, each compressing 4 MiB of input independently, so
//! all cores work at once; every gzip reader (gzip, pigz, zcat, Go's compress/gzip) reads
//! multi-member files as one stream. Headers carry no timestamp or name: output is reproducible.

use std::fs::File;
use std::io::{self, Read, Write};

/// Input per gzip member.
const MEMBER: usize = 4 << 20;

/// A writer that gzip-compresses into `out`, a member per 4 MiB, `threads` members at a time.
pub struct GzWriter<W: Write> {
    out: W,
    threads: usize,
    pending: Vec<u8>,
    wrote_member: bool,
}

impl<W: Write> GzWriter<W> {
    pub fn new(out: W, threads: usize) -> GzWriter<W> {
        let threads = threads.max(1);
        GzWriter {
            out,
            threads,
            pending: Vec::with_capacity(threads * MEMBER),
            wrote_member: false,
        }
    }

    /// Compresses `pending` (all of it, or only whole batches) in parallel and writes it out.
    fn drain(&mut self, all: bool) -> io::Result<()> {
        while self.pending.len() >= self.threads * MEMBER || (all && !self.pending.is_empty()) {
            let n = self.pending.len().min(self.threads * MEMBER);
            let compressed: Vec<io::Result<Vec<u8>>> = std::thread::scope(|s| {
                let handles: Vec<_> = self.pending[..n]
                    .chunks(MEMBER)
                    .map(|chunk| s.spawn(move || gzip_member(chunk)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("compression threads do not panic"))
                    .collect()
            });
            for c in compressed {
                self.out.write_all(&c?)?;
                self.wrote_member = true;
            }
            self.pending.drain(..n);
        }
        Ok(())
    }

    /// Compresses what is left and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.drain(true)?;
        if !self.wrote_member {
            // An empty input still makes a valid (empty) gzip stream.
            self.out.write_all(&gzip_member(&[])?)?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for GzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.drain(false)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compresses everything `input` yields into `out` as gzip, using `threads` cores.
pub fn gzip(mut input: impl Read, out: &mut impl Write, threads: usize) -> io::Result<()> {
    let mut w = GzWriter::new(out, threads);
    io::copy(&mut input, &mut w)?;
    w.finish()?;
    Ok(())
}

fn gzip_member(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut e = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::default(),
    );
    e.write_all(data)?;
    e.finish()
}

/// Compresses `input` into `out` as xz (preset 6, CRC-64), as `xz` does by default.
pub fn xz(mut input: impl Read, out: &mut impl Write) -> io::Result<()> {
    let mut e = liblzma::write::XzEncoder::new(out, 6);
    io::copy(&mut input, &mut e)?;
    e.finish()?;
    Ok(())
}

/// The number of threads to compress with.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// gzip-compresses the file `input` into the open file `out`.
pub fn gzip_file(input: &File, out: &mut File) -> io::Result<()> {
    let mut w = io::BufWriter::with_capacity(1 << 20, out);
    gzip(
        io::BufReader::with_capacity(1 << 20, input),
        &mut w,
        threads(),
    )?;
    w.flush()
}

/// xz-compresses the file `input` into the open file `out`.
pub fn xz_file(input: &File, out: &mut File) -> io::Result<()> {
    let mut w = io::BufWriter::with_capacity(1 << 20, out);
    xz(io::BufReader::with_capacity(1 << 20, input), &mut w)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn gzip_round_trips_across_members() {
        let data: Vec<u8> = (0..10_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        gzip(&data[..], &mut out, 3).unwrap();
        assert_eq!(gunzip(&out), data);
        // Deterministic: same bytes with any thread count.
        let mut again = Vec::new();
        gzip(&data[..], &mut again, 1).unwrap();
        assert_eq!(out, again);
        let mut empty = Vec::new();
        gzip(&[][..], &mut empty, 2).unwrap();
        assert_eq!(gunzip(&empty), b"");
    }

    #[test]
    fn xz_round_trips() {
        let data = b"kiln".repeat(100_000);
        let mut out = Vec::new();
        xz(&data[..], &mut out).unwrap();
        let mut back = Vec::new();
        liblzma::read::XzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }
}
