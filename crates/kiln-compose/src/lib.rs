//! # kiln-compose
//!
//! Composing an image's root filesystem (SPEC §3.3–§3.8). So far: the password hashes written
//! for the config's users ([`crypt`]).

pub mod crypt;
