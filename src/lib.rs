//! gslbd: an authoritative DNS server that answers only with healthy servers.
//!
//! ```text
//!  zones/*.yaml ──config::load──▶ model::Config ──table + snapshot::build──▶ Snapshot
//!                                                                           │ Live (ArcSwap)
//!  UDP (one thread per core, recvmmsg) ─┐                                   ▼
//!  TCP (tokio, RFC 7766)  ──────────────┴──▶ dns::answer(snapshot, packet) ──▶ reply
//! ```
//!
//! Everything a query needs is computed when the config changes and published as one immutable
//! snapshot; the query path reads it without locks and allocates nothing.

#![warn(clippy::undocumented_unsafe_blocks)]

pub mod admin;
pub mod api;
pub mod cluster;
pub mod config;
pub mod console;
pub mod ctl;
pub mod daemon;
pub mod dns;
pub mod dnssec;
#[doc(hidden)]
pub mod fuzzing;
pub mod geo;
pub mod health;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod privileges;
pub mod probe;
pub mod select;
pub mod snapshot;
pub mod state;
pub mod sys;
pub mod writer;
pub mod xdp;
