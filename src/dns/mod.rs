//! DNS: the transport-free answer function and the UDP and TCP listeners that feed it.

pub mod answer;
pub mod rrl;
mod signed;
pub mod tcp;
pub mod udp;
pub mod wire;

pub use answer::{MAX_RESPONSE, Transport, answer};
