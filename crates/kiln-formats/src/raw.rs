//! Raw images: a sparse copy. Holes stay holes; zero blocks of the input become holes.

use crate::sparse::SparseInput;
use crate::Converted;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Granule below which zeros are not worth a hole (the usual filesystem block).
pub(crate) const GRANULE: u64 = 4096;

pub fn write(src: &SparseInput, out: &File) -> io::Result<Converted> {
    out.set_len(src.len())?;
    src.for_each_data_run(GRANULE, |off, data| out.write_all_at(data, off))?;
    Ok(Converted {
        virtual_size: src.len(),
        warnings: Vec::new(),
    })
}
