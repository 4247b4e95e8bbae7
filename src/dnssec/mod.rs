//! DNSSEC: the zone's keys (`gslbd key generate`, `gslbd ds`), in BIND's key file format so
//! that `dnssec-dsfromkey`, `dnssec-signzone` and ldns read them too.

pub mod denial;
pub mod keys;
pub mod sets;
pub mod sign;

pub use keys::{Algorithm, Key, KeyError};
