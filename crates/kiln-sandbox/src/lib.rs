//! # kiln-sandbox
//!
//! Everything kiln runs inside an image, and every file it touches there, is confined to the
//! image: configs, packages and scripts control the image, never the machine that builds it.
//!
//! * [`Sandbox`] runs a program (an rpm transaction, a PostInstallScript, setfiles,
//!   grub2-mkconfig, dracut) in new namespaces with the image root as `/` and a private `/dev`,
//!   `/proc`, `/sys` and `/run`, no network unless asked, a timeout, and the whole process tree
//!   ended with the step.
//! * [`ImageRoot`] opens, writes, removes and copies files inside an image root with every path
//!   resolved by the kernel within the root (openat2 `RESOLVE_IN_ROOT`).
//! * [`userns::become_root`] lets an ordinary user build: kiln enters a user namespace mapped
//!   from the user's `/etc/subuid` and `/etc/subgid` ranges and is root there, so files keep
//!   the image's owners.
//! * [`mounts`] gives kiln a private mount namespace of its own, where a cached package root is
//!   mounted as an overlay (never on the host).
//!
//! Why kiln does this itself rather than call bubblewrap: bubblewrap maps a single id into its
//! user namespace, so rpm could not give an image's files their owners (a package owning files
//! by uid 0 and 1000 needs both mapped); kiln maps every id it has. Mount targets inside the
//! image must be resolved beneath the image root without following the image's symlinks, which
//! the file-descriptor-based mount API (open_tree, move_mount) does exactly; and the output
//! streaming, timeout and process-tree teardown belong to kiln's error reporting.

mod sys;

pub mod mounts;
pub mod nosync;

pub mod root;
pub mod run;
pub mod userns;

pub use root::ImageRoot;
pub use run::{DevEntry, Outcome, Sandbox, Status, View};
