//! `kiln` subcommands.

use crate::output::ColorChoice;
use crate::render::{self, Renderer, Verbosity};
use crate::validate::{self, Format};
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// Build Linux OS images from Azure Linux image configs.
///
/// kiln reads the Azure Linux toolkit's JSON image configs unchanged. It also answers to the
/// upstream tool names: run it through a symlink named `imageconfigvalidator`,
/// `imagepkgfetcher`, `imager`, `roast` or `isomaker` (`make kiln` puts them in out/bin/; or run
/// `kiln imageconfigvalidator …`) and it takes that tool's flags.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// When to color output.
    #[arg(long, value_enum, global = true, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Print only errors and the final result.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Also print what programs run for the image print (rpm, scripts), on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check image configs as upstream's imageconfigvalidator does.
    ///
    /// Every mistake is reported at once with its line, column and JSON path.
    ///
    /// Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage or I/O error.
    Validate {
        /// The image config(s) (JSON). With several, each is checked and the exit status is that
        /// of the worst.
        #[arg(required = true, value_name = "CONFIG")]
        configs: Vec<PathBuf>,
        /// Directory relative paths in the config are resolved against (upstream's --dir;
        /// default: the config's directory).
        #[arg(long, value_name = "DIR")]
        base_dir: Option<PathBuf>,
        /// Output format. `json` prints one document:
        /// {"valid": bool, "diagnostics": [{"severity", "message", "path", "file", "line", "column"}]}.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Skip reading package lists (upstream's package checks).
        #[arg(long)]
        no_package_checks: bool,
    },
    /// Convert a disk image, or make a config's artifacts as upstream's roast does.
    ///
    /// Converts a raw, VHD, VHDX or QCOW2 disk, or builds a config's artifacts from imager's
    /// output.
    Roast(Box<crate::roast::RoastArgs>),
    /// Check the structure of a disk image (and Azure's rules with --azure).
    Verify(crate::verify::VerifyArgs),
    /// Resolve package strings as tdnf would and print the NEVRAs to install.
    ///
    /// Resolves against the given repositories for an empty root; prints the NEVRAs sorted, one
    /// per line.
    ///
    /// Exit status: 0 resolved, 1 unsatisfiable (the chain of requirements is printed), 2 usage
    /// or a repository that cannot be read.
    Resolve(crate::resolve::ResolveArgs),
    /// Build a config's image end to end, as upstream's `make image`.
    ///
    /// Validates, fetches the
    /// packages (tiered sources, as `kiln fetch`), composes the disk or root filesystem (as
    /// `kiln compose`), and makes the artifacts (as `kiln roast`) into out/images/<config name>/.
    /// Prints the output directory; the step timings and a log go to stderr and out/logs/.
    /// Runs as root, or as an ordinary user with a range in /etc/subuid and /etc/subgid (kiln
    /// is then root in a user namespace of its own; docs/security.md).
    Build(Box<crate::build::BuildArgs>),
    /// Build a config's ISO installer, as upstream's `make iso`.
    ///
    /// Builds the installer initrd (from --initrd-config, unless --initrd gives one), fetches
    /// the config's packages, and writes upstream's ISO (RPMS/, config/, isolinux/, boot/grub2/,
    /// efi/boot/) into out/images/<config name>/: BIOS and UEFI, CD and USB stick (hybrid),
    /// byte-identical for one SOURCE_DATE_EPOCH. Prints the ISO's path.
    Iso(Box<crate::iso::IsoArgs>),
    /// Boot an image in QEMU, log in and check what the console shows.
    ///
    /// QEMU runs with TCG (no KVM needed) from a throwaway snapshot; optionally kiln logs in on
    /// the serial console and runs commands.
    ///
    /// Exit status: 0 everything expected was seen, 1 otherwise (the console's last lines are
    /// printed).
    BootTest(crate::boot_test::BootTestArgs),
    /// Boot an image in QEMU with its serial console on this terminal, to look around.
    ///
    /// The firmware comes from the partition table; changes go to a throwaway snapshot unless
    /// --persist. Ctrl-A X quits.
    Qemu(crate::boot_test::QemuArgs),
    /// Fetch every package a config's image needs into a local repository (imagepkgfetcher).
    ///
    /// Packages are resolved with their dependencies as tdnf would, into a flat repository with
    /// `repodata/`, as upstream's imagepkgfetcher does. Sources are tried in tiers: --rpm-dir
    /// and --repo first, then RPMs already in the output directory, then remote repositories
    /// (--repo-file, and the Azure Linux 3.0 repositories unless --disable-upstream-repos or
    /// --disable-default-repos).
    Fetch(Box<crate::fetch::FetchArgs>),
    /// Build a config's image from local repositories, as upstream's imager does.
    ///
    /// Packages are resolved and installed with rpm, then users, files and scripts applied
    /// (everything that runs in the image runs in kiln's build sandbox); for a disk config the
    /// partition table, filesystems and bootloader are written into `<output-dir>/disk0.raw`
    /// (no loop device, no mount), for a root-filesystem config `<output-dir>/rootfs`. Runs as
    /// root, or as an ordinary user in kiln's user namespace (as `kiln build`).
    Compose(crate::compose::ComposeArgs),
    /// Look into a built image: its partitions and filesystems, files, installed packages.
    ///
    /// Nothing is mounted: ext2/3/4 is read with debugfs, FAT with mtools, the rpmdb with the
    /// host's rpm; VHD, VHDX and QCOW2 images are read natively. `--ls PATH`, `--cat PATH` and
    /// `--packages` read the largest ext or xfs partition unless `--partition N` says another.
    Inspect(crate::inspect::InspectArgs),
    /// Run a shell (or a command) inside an image root, in the build sandbox.
    ///
    /// The root is a folder such as `kiln compose`'s `<output-dir>/rootfs`; the shell sees it as
    /// `/` with a private /dev, /proc, read-only /sys and /run, no network unless --network, and
    /// cannot touch the host. Changes stay in the folder. Needs root (or kiln's user namespace).
    Shell(crate::shell::ShellArgs),
    /// Explain why a package is in a config's image.
    ///
    /// Prints the chain of requirements from the config's package lists to it.
    Why(crate::why::WhyArgs),
    /// Say what a build of a config would do, without doing it.
    ///
    /// No root needed: the packages it resolves to (versions and sizes), the partitions and filesystems, the artifacts and
    /// the host programs it needs.
    Summary(Box<crate::summary::SummaryArgs>),
    /// Print the JSON Schema of the image config format (for editors).
    Schema {
        /// Print the schema of package-list files instead.
        #[arg(long)]
        package_list: bool,
    },
    /// Print a shell completion script.
    ///
    /// E.g. `kiln completions bash > /etc/bash_completion.d/kiln`.
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
    /// Become root as a build does (as an ordinary user: in kiln's user namespace), print the
    /// ids kiln then has, and give FILE (created when missing) the owner 1000:1000, so tests
    /// can check from the host where image ids land.
    #[command(hide = true)]
    UsernsProbe {
        /// The file to give the owner 1000:1000.
        #[arg(long, value_name = "FILE")]
        chown: Option<PathBuf>,
    },
}

impl Command {
    /// Whether the command needs kiln to be root: it installs packages, runs the sandbox or
    /// writes files with an image's owners (or reads them, for a root filesystem's archive).
    fn needs_root(&self) -> bool {
        match self {
            Command::Build(_)
            | Command::Compose(_)
            | Command::Shell(_)
            | Command::UsernsProbe { .. } => true,
            Command::Roast(args) => args.reads_imager_output(),
            Command::Iso(args) => args.needs_root(),
            _ => false,
        }
    }
}

/// The flags every command takes.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    pub color: ColorChoice,
    pub verbosity: Verbosity,
}

impl Global {
    /// A renderer of kiln-build's events for this command.
    pub fn renderer(self, json: bool) -> Renderer {
        Renderer::new(render::Options::new(json, self.verbosity, self.color))
    }
}

pub fn run(args: Vec<OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap uses 2 for usage errors and 0 for --help/--version.
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    if cli.command.needs_root() {
        if let Err(code) = crate::become_root() {
            return code;
        }
    }
    let global = Global {
        color: cli.color,
        verbosity: if cli.quiet {
            Verbosity::Quiet
        } else if cli.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        },
    };
    match cli.command {
        Command::Validate {
            configs,
            base_dir,
            format,
            no_package_checks,
        } => validate::run(&configs, base_dir, format, !no_package_checks, cli.color),
        Command::Roast(args) => crate::roast::run(*args, global),
        Command::Verify(args) => crate::verify::run(args),
        Command::Resolve(args) => crate::resolve::run(args),
        Command::Compose(args) => crate::compose::run(args, global),
        Command::Fetch(args) => crate::fetch::run(*args, global),
        Command::Build(args) => crate::build::run(*args, global),
        Command::Iso(args) => crate::iso::run(*args, global),
        Command::Summary(args) => crate::summary::run(*args, global),
        Command::BootTest(args) => crate::boot_test::run(args),
        Command::Qemu(args) => crate::boot_test::run_interactive(args),
        Command::Shell(args) => crate::shell::run(args),
        Command::Inspect(args) => crate::inspect::run(args),
        Command::Why(args) => crate::why::run(args, global),
        Command::Schema { package_list } => {
            let schema = if package_list {
                kiln_config::schema::package_list_schema()
            } else {
                kiln_config::schema::json_schema()
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("schemas serialize")
            );
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::UsernsProbe { chown } => userns_probe(chown.as_deref()),
    }
}

fn userns_probe(chown: Option<&std::path::Path>) -> ExitCode {
    if let Some(mode) = kiln_sandbox::userns::mode() {
        println!("{mode}");
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in status
        .lines()
        .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:"))
    {
        println!("{line}");
    }
    if let Some(file) = chown {
        let made = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .and_then(|_| std::os::unix::fs::chown(file, Some(1000), Some(1000)));
        if let Err(e) = made {
            eprintln!("error: giving {} the owner 1000:1000: {e}", file.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
