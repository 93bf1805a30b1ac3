//! `kiln inspect`: renders what kiln-build's inspect module reads from an image.

use clap::Args;
use kiln_build::inspect::Image;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: raw, vhd, vhdx or qcow2.
    #[arg(value_name = "ARTIFACT")]
    image: PathBuf,
    /// List the directory PATH (`ls -l`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["cat", "packages"])]
    ls: Option<String>,
    /// Print the file PATH.
    #[arg(long, value_name = "PATH", conflicts_with = "packages")]
    cat: Option<String>,
    /// List the installed packages (the image's rpmdb).
    #[arg(long)]
    packages: bool,
    /// The partition to read (its number; default: the largest ext or xfs partition).
    #[arg(long, value_name = "N")]
    partition: Option<u32>,
    /// The table and partitions as one JSON document.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> ExitCode {
    match inspect(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn inspect(args: &InspectArgs) -> Result<(), kiln_build::inspect::InspectError> {
    let image = Image::open(&args.image)?;
    let mut out = std::io::stdout().lock();
    if let Some(path) = &args.ls {
        let _ = out.write_all(image.list(args.partition, path)?.as_bytes());
    } else if let Some(path) = &args.cat {
        let _ = out.write_all(&image.cat(args.partition, path)?);
    } else if args.packages {
        for p in image.packages(args.partition)? {
            let _ = writeln!(out, "{p}");
        }
    } else if args.json {
        let _ = writeln!(out, "{}", image.info().to_json());
    } else {
        let i = image.info();
        let _ = writeln!(
            out,
            "{}: {}, {} bytes, {}",
            i.image.display(),
            i.format,
            i.virtual_size,
            i.table.map_or("no partition table".into(), |t| format!(
                "{t} partition table"
            ))
        );
        for p in &i.partitions {
            let _ = writeln!(
                out,
                "  {:>2}  {:>12}  {:>12}  {:<18} {:<8} {}",
                p.number,
                p.start,
                p.size,
                p.kind,
                p.filesystem.unwrap_or("-"),
                p.name
            );
        }
    }
    Ok(())
}
