//! The validated configuration: what gslbd serves, with every check already passed.
//!
//! Built by `config::load`, consumed by `table::Snapshot::build`. No I/O and no file-format
//! details live here; a `Zone` in this module is known to be consistent (SOA and NS present,
//! every name inside the zone, no CNAME beside other data, glue where it is needed).

use std::net::SocketAddr;
use std::path::PathBuf;

use hickory_proto::rr::{Name, RData, RecordType};

/// Server settings from `gslbd.yaml` (all optional there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// UDP and TCP listen addresses.
    pub listen: Vec<SocketAddr>,
    pub zones_dir: PathBuf,
    /// Admin overrides and last-known health (used from the health issue on).
    pub state_dir: PathBuf,
    pub api_listen: SocketAddr,
    pub api_token_file: Option<PathBuf>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            zones_dir: PathBuf::from("zones"),
            state_dir: PathBuf::from("state"),
            api_listen: SocketAddr::from(([127, 0, 0, 1], 8053)),
            api_token_file: None,
        }
    }
}

/// Everything `serve` loads: server settings and the zones.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub zones: Vec<Zone>,
}

/// The SOA fields (RFC 1035 §3.3.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// Also the upper bound of negative-caching TTLs (RFC 2308 §4).
    pub minimum: u32,
}

/// One zone: its apex data and its static records.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Fully qualified, spelled as in the config.
    pub origin: Name,
    pub soa: Soa,
    /// The TTL of the SOA and apex NS records, and the default of static records.
    pub ttl: u32,
    pub ns: Vec<Name>,
    /// Static RRsets other than the apex SOA and NS, one per (name, type).
    pub rrsets: Vec<RRset>,
    /// The file the zone came from, for logs.
    pub source: PathBuf,
}

/// Records of one name and type.
#[derive(Debug, Clone, PartialEq)]
pub struct RRset {
    pub name: Name,
    pub rtype: RecordType,
    pub ttl: u32,
    pub rdata: Vec<RData>,
}

impl Zone {
    /// The negative-caching TTL: min(SOA TTL, SOA minimum) (RFC 2308 §5).
    pub fn negative_ttl(&self) -> u32 {
        self.ttl.min(self.soa.minimum)
    }
}
