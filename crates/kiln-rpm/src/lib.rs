//! # kiln-rpm
//!
//! RPM semantics that do not need a package database: version comparison (`rpmvercmp`, EVR
//! triples, dependency range overlap as `rpmdsCompare`) and dependency expressions, including
//! rich (boolean) dependencies.

pub mod dep;
pub mod evr;

pub use dep::{Dep, DepError};
pub use evr::{ranges_overlap, rpmvercmp, Evr, Op};
