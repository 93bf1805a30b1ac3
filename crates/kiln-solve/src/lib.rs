//! # kiln-solve
//!
//! The package pool resolution works on: every candidate package from every source, indexed by
//! what it provides (capabilities with versions, and files), so that "what satisfies this
//! dependency?" is answered with RPM semantics ([`pool`]); and resolution: from a config's
//! package strings to the set dnf/tdnf would install into an empty root ([`solve`]).

mod engine;
pub mod pool;
pub mod solve;

pub use pool::{PackageId, Pool};
