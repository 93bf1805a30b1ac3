//! Runs a command in the build sandbox over an image root, as kiln runs scripts:
//! `cargo run --example sandbox-run -- [--host] ROOT COMMAND [ARG]...` (as root). Its output
//! goes to stdout; the exit status is the command's. For trying the sandbox by hand and for
//! measuring its cost (`scripts/bench-sandbox.sh`).

use kiln_sandbox::{Sandbox, Status, View};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let view = if args.first().map(String::as_str) == Some("--host") {
        args.remove(0);
        View::Host
    } else {
        View::Image
    };
    if args.len() < 2 {
        eprintln!("usage: sandbox-run [--host] ROOT COMMAND [ARG]...");
        return ExitCode::from(2);
    }
    let root = std::path::PathBuf::from(args.remove(0));
    let mut out = std::io::stdout();
    match Sandbox::new(&root, view).run(&args, &mut |b| {
        let _ = out.write_all(b);
    }) {
        Ok(o) => match o.status {
            Status::Exited(c) => ExitCode::from(c as u8),
            Status::Signaled(s) => ExitCode::from(128 + s as u8),
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(125)
        }
    }
}
