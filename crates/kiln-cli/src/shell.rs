//! `kiln shell`: a shell (or a command) inside an image root, in the build sandbox.

use clap::Args;
use kiln_sandbox::{Sandbox, Status, View};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The image root: a folder such as `kiln compose`'s `<output-dir>/rootfs`.
    #[arg(value_name = "ROOT")]
    root: PathBuf,
    /// The command to run (default: /bin/sh, interactive).
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    command: Vec<String>,
    /// Give the shell the build host's network (it has none by default).
    #[arg(long)]
    network: bool,
}

pub fn run(args: ShellArgs) -> ExitCode {
    if !args.root.join("bin").exists() && !args.root.join("usr/bin").exists() {
        eprintln!(
            "error: {} does not look like an image root (no bin/ or usr/bin/): give the rootfs \
             folder kiln compose made",
            args.root.display()
        );
        return ExitCode::from(2);
    }
    let argv = if args.command.is_empty() {
        vec!["/bin/sh".to_string()]
    } else {
        args.command
    };
    let sandbox = Sandbox::new(&args.root, View::Image)
        .interactive(true)
        .network(args.network)
        .env(
            "TERM",
            &std::env::var("TERM").unwrap_or_else(|_| "vt100".into()),
        );
    match sandbox.run(&argv, &mut |_| {}) {
        Ok(o) => match o.status {
            Status::Exited(c) => ExitCode::from(c.clamp(0, 255) as u8),
            Status::Signaled(s) => ExitCode::from((128 + s).clamp(0, 255) as u8),
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(125)
        }
    }
}
