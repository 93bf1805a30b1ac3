//! A small front end to kiln-iso for tests and benchmarks (kiln's isomaker will call the library).
//!
//!   mkiso [-V VOLID] [-J] [-b BIOS_IMAGE [--grub2-boot-info] [--no-boot-info-table]]
//!         [-e EFI_IMAGE] [-c CATALOG] [--hybrid [--mbr FILE] [--grub2-mbr]]
//!         [--epoch SECONDS] [--seed TEXT] STAGED_DIR OUTPUT.iso
//!   mkiso efiboot EFI_BOOT_DIR OUTPUT.img [--epoch SECONDS] [--seed TEXT]
//!
//! Paths of boot images are inside the staged tree. Without --epoch, SOURCE_DATE_EPOCH is used
//! if set, else the current time (and random ids).

use kiln_iso::{BiosBoot, Hybrid, Identity, IsoOptions};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkiso: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut it = args.into_iter();
    let mut opts = IsoOptions::new("CDROM", Identity::seeded(b"", 0));
    let (mut epoch, mut seed) = (None::<u64>, String::from("kiln-iso"));
    let (mut bios, mut grub2_info, mut info_table) = (None, false, true);
    let (mut hybrid, mut mbr, mut grub2_mbr) = (false, None, false);
    let mut positional = Vec::new();
    let need = |it: &mut std::vec::IntoIter<String>, flag: &str| {
        it.next().ok_or_else(|| format!("{flag} needs a value"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "-V" => opts.volume_id = need(&mut it, &a)?,
            "-J" | "--joliet" => opts.joliet = true,
            "-b" => bios = Some(need(&mut it, &a)?),
            "--grub2-boot-info" => grub2_info = true,
            "--no-boot-info-table" => info_table = false,
            "-e" => opts.efi_image = Some(need(&mut it, &a)?),
            "-c" => opts.catalog = Some(need(&mut it, &a)?),
            "--hybrid" => hybrid = true,
            "--mbr" => mbr = Some(PathBuf::from(need(&mut it, &a)?)),
            "--grub2-mbr" => grub2_mbr = true,
            "--epoch" => {
                let v = need(&mut it, &a)?;
                epoch = Some(
                    v.parse()
                        .map_err(|_| format!("--epoch {v}: not a number"))?,
                );
            }
            "--seed" => seed = need(&mut it, &a)?,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => positional.push(a),
        }
    }
    let epoch = epoch.or_else(|| {
        std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse().ok())
    });
    opts.identity = match epoch {
        Some(t) => Identity::seeded(seed.as_bytes(), t),
        None => Identity::random(),
    };
    if positional.first().map(String::as_str) == Some("efiboot") {
        let [_, dir, out] = positional.as_slice() else {
            return Err("usage: mkiso efiboot EFI_BOOT_DIR OUTPUT.img".into());
        };
        let made = kiln_iso::efi_boot_image(dir.as_ref(), out.as_ref(), &opts.identity)
            .map_err(|e| e.to_string())?;
        println!(
            "{out}: {} bytes, FAT volume id {}",
            made.size, made.volume_id
        );
        return Ok(());
    }
    let [staged, out] = positional.as_slice() else {
        return Err("usage: mkiso [options] STAGED_DIR OUTPUT.iso".into());
    };
    opts.bios = bios.map(|image| BiosBoot {
        grub2_boot_info: grub2_info,
        boot_info_table: info_table,
        ..BiosBoot::new(&image)
    });
    if hybrid {
        let mbr_code = match mbr {
            Some(p) => Some(std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?),
            None => None,
        };
        opts.hybrid = Some(Hybrid {
            mbr_code,
            grub2_mbr,
            isolinux_mbr: false,
        });
    }
    let report =
        kiln_iso::write_iso(staged.as_ref(), out.as_ref(), &opts).map_err(|e| e.to_string())?;
    println!(
        "{out}: {} bytes, {} directories, {} files{}",
        report.size,
        report.directories,
        report.files,
        if report.multi_extent {
            ", multi-extent (level 3)"
        } else {
            ""
        }
    );
    Ok(())
}
