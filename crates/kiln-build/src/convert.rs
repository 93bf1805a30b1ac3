//! Roast's direct form: one disk image converted into another format.

use crate::error::{Error, ErrorKind};
use crate::event::{staged, Event, Stage};
use kiln_formats::ConvertOptions;
use std::path::{Path, PathBuf};

/// One disk image (raw, VHD, VHDX or QCOW2, told by its magic) into `output`.
#[derive(Debug)]
pub struct ConvertRequest {
    pub input: PathBuf,
    pub output: PathBuf,
    /// Format, subformat, compression and identity (its `progress` is set here).
    pub options: ConvertOptions,
}

/// What converting made.
#[derive(Debug, Clone)]
pub struct Converted {
    pub virtual_size: u64,
    /// Bytes the output takes on disk.
    pub on_disk: u64,
}

const STAGE: Stage = Stage::Roast;

/// Converts one disk; bytes read are told as [`Event::Convert`] (1 artifact), notes (e.g.
/// padding for Azure) as warnings. Temporaries a killed kiln left beside the output go first.
pub fn convert(req: ConvertRequest, on_event: &mut dyn FnMut(Event)) -> Result<Converted, Error> {
    staged(STAGE, on_event, |on_event| {
        let beside = match req.output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut say = |line: &str| {
            on_event(Event::Step {
                stage: STAGE,
                message: line.to_string(),
            })
        };
        crate::workdirs::sweep(beside, &mut say).map_err(Error::of(STAGE, ErrorKind::Io))?;
        let artifact = req.output.display().to_string();
        let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
        let mut options = req.options;
        let tx = std::sync::Mutex::new(tx);
        options.progress = Some(std::sync::Arc::new(move |done, total| {
            let _ = tx.lock().expect("no panic while held").send((done, total));
        }));
        let (input, output) = (&req.input, &req.output);
        let result = std::thread::scope(|s| {
            let worker = s.spawn(move || {
                let result = kiln_formats::convert(input, output, &options);
                drop(options); // the progress sender: ends the loop below
                result
            });
            for (bytes, total_bytes) in rx.iter() {
                on_event(Event::Convert {
                    done: 0,
                    count: 1,
                    artifact: artifact.clone(),
                    bytes,
                    total_bytes,
                });
            }
            worker.join().expect("the conversion thread does not panic")
        });
        let done = result.map_err(Error::of(STAGE, ErrorKind::Artifact))?;
        for w in done.warnings {
            on_event(Event::Warning {
                stage: STAGE,
                message: w,
                at: None,
            });
        }
        on_event(Event::Convert {
            done: 1,
            count: 1,
            artifact,
            bytes: 0,
            total_bytes: 0,
        });
        let on_disk = std::fs::metadata(output)
            .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
            .unwrap_or(0);
        Ok(Converted {
            virtual_size: done.virtual_size,
            on_disk,
        })
    })
}
