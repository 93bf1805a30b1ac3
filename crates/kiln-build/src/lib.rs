//! kiln's pipeline: a config's image built stage by stage, each stage one function with a typed
//! request in, a typed result or [`Error`] out, and progress told as [`Event`]s.
//!
//! ```text
//! validate(&ValidateRequest, on_event)                 -> Validated   (config + its warnings)
//! fetch(&FetchRequest, &Validated, on_event)           -> Fetched     (a local repository)
//! compose(&ComposeRequest, &Validated, on_event)       -> Composed    (disk0.raw | rootfs/)
//! roast(&RoastRequest, &Validated, on_event)           -> Vec<Artifact>
//! build(&BuildRequest, on_event)                       -> Built       (all of the above)
//! make_iso(&IsoRequest, &Validated, on_event)          -> IsoMade     (isomaker)
//! iso(&IsoBuildRequest, on_event)                      -> IsoMade     (make iso: initrd, fetch, isomaker)
//! ```
//!
//! Commands (kiln-cli) turn their arguments into requests and render the events: on a terminal,
//! as plain lines, as JSON, or as upstream's `--emit-progress` protocol. Nothing here prints.
//! See docs/pipeline.md.

// An `Error` carries its stage, place and help inline (about 200 bytes): a build fails once,
// and a flat struct is easier to match and render than boxed parts.
#![allow(clippy::result_large_err)]

mod build;
pub mod cache;
mod compose;
mod convert;
mod error;
mod event;
mod fetch;
pub mod host;
pub mod inspect;
mod iso;
mod kickstart;
pub mod live;
mod plan;
mod roast;
pub mod sources;
mod summary;
pub mod test_copy;
pub mod uptodate;
mod validate;
pub mod workdirs;

pub use build::{build, BuildRequest, Built};
pub use compose::{compose, ComposeRequest, Composed, SandboxOptions};
pub use convert::{convert, ConvertRequest, Converted};
pub use error::{Error, ErrorKind};
pub use event::{Event, Location, Stage};
pub use fetch::{check_signatures, fetch, FetchRequest, Fetched};
pub use iso::{iso, make_iso, IsoBuildRequest, IsoMade, IsoRequest};
pub use plan::{load_local, local_pool, requested_paths, resolve_config};
pub use roast::{roast, Artifact, RoastRequest};
pub use sources::{SourceOptions, Sources};
pub use summary::{summary, Summary, SummaryRequest};
pub use validate::{validate, ValidateRequest, Validated};

/// Where events go: every entry point takes one.
pub type OnEvent<'a> = &'a mut dyn FnMut(Event);
