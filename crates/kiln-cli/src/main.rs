//! The `kiln` binary. Parses arguments, wires the library crates together, renders output.
//!
//! Invoked under an upstream tool's name (a symlink called `imageconfigvalidator`), it behaves
//! like that tool, with that tool's flags.
//!
//! The commands that build (build, compose, roast of imager's output, the `imager` personality)
//! first make kiln root: started by an ordinary user, kiln enters a user namespace of its own
//! ([`kiln_sandbox::userns`]) before anything else runs.

// kiln_build::Error is a flat struct of about 200 bytes (stage, place, help): see kiln-build.
#![allow(clippy::result_large_err)]

mod boot_test;
mod build;
mod cli;
mod compose;
mod fetch;
mod inspect;
mod iso;
mod output;
mod render;
mod resolve;
mod roast;
mod shell;
mod sources;
mod summary;
mod upstream;
mod validate;
mod verify;
mod why;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("kiln")
        .to_string();
    if let Some(tool) = upstream::Tool::from_name(&invoked_as) {
        return upstream::run(tool, args);
    }
    // `kiln imageconfigvalidator --input=…` works too, without a symlink (`kiln roast` is a
    // subcommand of its own, with the same flags).
    if let Some(tool) = args
        .get(1)
        .and_then(|a| a.to_str())
        .and_then(upstream::Tool::from_name)
        .filter(|t| *t == upstream::Tool::ImageConfigValidator)
    {
        args.remove(0);
        return upstream::run(tool, args);
    }
    cli::run(args)
}

/// Makes kiln root for a command that builds (as an ordinary user, in its user namespace: see
/// [`kiln_sandbox::userns`]), in a mount namespace of its own (for the package-root cache's
/// overlays). Called right after the arguments are parsed, while kiln is still
/// single-threaded; on failure, prints what to change and returns exit status 2.
pub(crate) fn become_root() -> Result<kiln_sandbox::userns::Mode, ExitCode> {
    let mode = kiln_sandbox::userns::become_root().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    kiln_build::cache::enter_mount_namespace();
    Ok(mode)
}
