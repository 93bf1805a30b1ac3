//! # kiln-solve
//!
//! The package pool resolution works on: every candidate package from every source, indexed by
//! what it provides (capabilities with versions, and files), so that "what satisfies this
//! dependency?" is answered with RPM semantics.
//!
//! Status: the pool and its queries; the solver that picks an installable set is the next step.

pub mod pool;

pub use pool::{PackageId, Pool};
