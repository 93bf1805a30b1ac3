//! The `kiln` binary. Parses arguments, wires the library crates together, renders output.
//!
//! Invoked under an upstream tool's name (a symlink called `imageconfigvalidator`), it behaves
//! like that tool, with that tool's flags.

mod boot_test;
mod build;
mod cli;
mod compose;
mod fetch;
mod output;
mod plan;
mod resolve;
mod roast;
mod sources;
mod upstream;
mod validate;
mod verify;
mod why;
mod workdirs;

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
