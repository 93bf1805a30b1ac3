pub mod af;
pub mod error;
pub mod hash;
pub mod luks1;
pub mod pbkdf;
pub mod xts;
