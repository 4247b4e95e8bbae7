//! The validated configuration: what gslbd serves, with every check already passed.
//!
//! Built by `config::load`, consumed by `writer::Table` (and `Snapshot::build`). No I/O and no file-format
//! details live here; a `Zone` in this module is known to be consistent (SOA and NS present,
//! every name inside the zone, no CNAME beside other data, glue where it is needed).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};

mod server;

pub use server::*;

/// Everything `serve` loads: server settings and the zones.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub zones: Vec<Zone>,
    /// The GeoIP databases of `server.geoip`, read.
    pub geo: Option<Arc<crate::geo::GeoDb>>,
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
    /// Health-aware pools, by name within the zone.
    pub pools: Vec<Pool>,
    /// Names answered from a pool (A from its IPv4 members, AAAA from its IPv6 members).
    pub bindings: Vec<Binding>,
    /// The topology map: who is near what.
    pub sites: Vec<Site>,
    /// The file the zone came from, for logs.
    pub source: PathBuf,
    /// Signed with the keys in a directory (`dnssec:`), or not.
    pub dnssec: Option<ZoneDnssec>,
}

/// `dnssec:` of a zone, checked: its keys load (`dnssec::Key::load_dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneDnssec {
    pub keys: PathBuf,
    /// How long a signature is valid.
    pub validity: Duration,
    /// Signatures are made again when less than this is left.
    pub refresh: Duration,
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

/// The hysteresis of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thresholds {
    /// Consecutive successes to go from down to up.
    pub rise: u32,
    /// Consecutive failures to go from up to down.
    pub fall: u32,
    /// Fewer failures suffice when the last one is a refused or reset connection, a definite
    /// answer from the host (a timeout may be the network): `fall_on_refused:`.
    pub fall_on_refused: Option<u32>,
}

impl Thresholds {
    /// Failures in a row that take a member down, when the last one was a refused (or reset)
    /// connection or not.
    pub fn fall_after(&self, refused: bool) -> u32 {
        match self.fall_on_refused {
            Some(n) if refused => n.min(self.fall),
            _ => self.fall,
        }
    }
}

/// A named, reusable health check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Check {
    pub name: String,
    pub spec: CheckSpec,
}

/// Everything that defines a probe except its name: two checks with equal specs on the same
/// address are probed once, and a reload keeps the state of every spec that did not change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// Between probes while the state is settled and up (or not known yet).
    pub interval: Duration,
    /// Between probes while the state is in transition: after a failure of an up member, or
    /// a success of a down one, until `fall` or `rise` settles it either way.
    pub fast_interval: Duration,
    /// Between probes while the member is down (and settled).
    pub down_interval: Duration,
    pub timeout: Duration,
    pub thresholds: Thresholds,
}

/// `fast_interval` when not given: a quarter of `interval`, at least 100 ms (and never more
/// than `interval`).
pub fn default_fast_interval(interval: Duration) -> Duration {
    (interval / 4).max(Duration::from_millis(100)).min(interval)
}

impl CheckSpec {
    /// The spec as a line of text with names of our own choosing, not Rust's: the key of its
    /// last-known health in `state_dir`. Renaming a field in the code cannot change it; a
    /// change of what is probed, or how, does (and the state is then not restored).
    pub fn canonical(&self) -> String {
        let q = |s: &str| format!("{s:?}");
        let what = match &self.kind {
            CheckKind::Tcp {
                port,
                expect_banner,
            } => {
                let banner = expect_banner
                    .as_ref()
                    .map_or(String::new(), |p| format!(" banner={}", q(p.as_str())));
                format!("tcp port={port}{banner}")
            }
            CheckKind::Http(h) => {
                let mut s = format!(
                    "http port={} tls={} method={} path={} status={:?} verify={}",
                    h.port,
                    h.tls,
                    q(&h.method),
                    q(&h.path),
                    h.expect_status,
                    h.verify_tls
                );
                if let Some(host) = &h.host {
                    s.push_str(&format!(" host={}", q(host)));
                }
                if let Some(b) = &h.expect_body {
                    s.push_str(&format!(" body={}", q(b)));
                }
                if let Some(r) = &h.expect_body_regex {
                    s.push_str(&format!(" regex={}", q(r.as_str())));
                }
                if let Some(ca) = &h.ca {
                    s.push_str(&format!(" ca={:016x}", ca.digest()));
                }
                s
            }
            CheckKind::Exec { command } => format!("exec command={command:?}"),
            CheckKind::File { path } => format!("file path={}", q(&path.to_string_lossy())),
        };
        let mut s = format!(
            "{what} interval={}ms timeout={}ms rise={} fall={}",
            self.interval.as_millis(),
            self.timeout.as_millis(),
            self.thresholds.rise,
            self.thresholds.fall
        );
        // Only what differs from the defaults: keys written before these existed still match.
        if self.fast_interval != default_fast_interval(self.interval) {
            s.push_str(&format!(" fast={}ms", self.fast_interval.as_millis()));
        }
        if self.down_interval != self.interval {
            s.push_str(&format!(" down={}ms", self.down_interval.as_millis()));
        }
        if let Some(n) = self.thresholds.fall_on_refused {
            s.push_str(&format!(" fall_on_refused={n}"));
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// Connect; optionally read the greeting and match it (`220 ` for SMTP).
    Tcp {
        port: u16,
        expect_banner: Option<Pattern>,
    },
    Http(HttpCheck),
    /// Run a command with the member's address in `GSLBD_ADDRESS`; exit 0 = up.
    Exec {
        command: Vec<String>,
    },
    /// A file of `ADDRESS up|down` lines written by another tool.
    File {
        path: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpCheck {
    pub port: u16,
    pub tls: bool,
    /// Host header and TLS SNI; the connection still goes to the member's address.
    pub host: Option<String>,
    pub method: String,
    pub path: String,
    pub expect_status: Vec<u16>,
    /// A substring the body must contain.
    pub expect_body: Option<String>,
    /// A regular expression the body must match.
    pub expect_body_regex: Option<Pattern>,
    pub verify_tls: bool,
    /// `ca_file:` — trust these CAs instead of the system's store (like `curl --cacert`).
    pub ca: Option<CaCerts>,
}

/// The CA certificates of a `ca_file:`, read and checked when the config is loaded, so a probe
/// never reads a file. Compared and hashed by content: a reload that finds a renewed CA rebuilds
/// the probe's client. Shown by path, count and a digest, not by its bytes; the digest is part
/// of the check's key in `state_dir`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CaCerts {
    /// As resolved against the zone file's directory.
    pub path: PathBuf,
    /// Each certificate in DER, in file order; never empty.
    pub der: Arc<[Vec<u8>]>,
}

impl CaCerts {
    /// A digest of the certificates (xxh3, fixed seed): their identity in logs and state.
    pub fn digest(&self) -> u64 {
        self.der
            .iter()
            .fold(0u64, |acc, d| xxhash_rust::xxh3::xxh3_64_with_seed(d, acc))
    }
}

impl fmt::Debug for CaCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = self.digest();
        write!(
            f,
            "CaCerts({:?}, {} certificate(s), {digest:016x})",
            self.path,
            self.der.len()
        )
    }
}

/// A regular expression of a check, compiled once when the config is loaded (not per probe).
/// Compared, hashed and shown by its text, so a check spec keeps its identity across reloads and
/// its key in `state_dir` ([`CheckSpec::canonical`]).
#[derive(Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, regex::Error> {
        regex::Regex::new(text).map(Pattern)
    }

    pub fn is_match(&self, haystack: &str) -> bool {
        self.0.is_match(haystack)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl std::hash::Hash for Pattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Pattern {
    /// As the text it was written as (`"^220 "`), like the `String` it replaced.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A pool's selection pipeline (DESIGN §4): health, then the optional `failover` and
/// `topology` steps, then one ordering step, then `max_answers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Keep the first priority group (lowest `priority`) that has a healthy member.
    pub failover: bool,
    /// Keep the members of the client's site, else of its fallback sites, else all.
    pub topology: bool,
    /// Keep the members of the site nearest the client (by distance, after explicit matches)
    /// that has any, else all.
    pub nearest: bool,
    pub order: Order,
}

impl Policy {
    pub const ROUND_ROBIN: Policy = Policy {
        failover: false,
        topology: false,
        nearest: false,
        order: Order::RoundRobin,
    };
}

/// The ordering step of a pipeline (`round-robin`, ... in config and API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Consecutive members from a rotating start.
    RoundRobin,
    /// Sample without replacement by weight.
    Weighted,
    /// Weighted rendezvous hash of the client prefix: a client keeps its member, and only a
    /// failed member's clients move.
    Sticky,
    /// Sample without replacement by spare capacity (weight × smoothed load report).
    LeastLoaded,
}

/// A step of `policy:` as written: `failover`, `topology`, or an ordering step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyStep {
    Failover,
    Topology,
    Nearest,
    Order(Order),
}

impl PolicyStep {
    pub const ALL: [PolicyStep; 7] = [
        PolicyStep::Failover,
        PolicyStep::Topology,
        PolicyStep::Nearest,
        PolicyStep::Order(Order::RoundRobin),
        PolicyStep::Order(Order::Weighted),
        PolicyStep::Order(Order::Sticky),
        PolicyStep::Order(Order::LeastLoaded),
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            PolicyStep::Failover => "failover",
            PolicyStep::Topology => "topology",
            PolicyStep::Nearest => "nearest",
            PolicyStep::Order(o) => o.as_str(),
        }
    }

    /// Where the step runs in the fixed pipeline: failover, then topology, then ordering.
    pub const fn rank(self) -> u8 {
        match self {
            PolicyStep::Failover => 1,
            PolicyStep::Topology | PolicyStep::Nearest => 2,
            PolicyStep::Order(_) => 3,
        }
    }
}

impl fmt::Display for PolicyStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PolicyStep {
    type Err = String;

    fn from_str(s: &str) -> Result<PolicyStep, String> {
        PolicyStep::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a policy step: use failover, topology, nearest, round-robin, weighted, sticky or least-loaded"
                )
            })
    }
}

impl Order {
    pub const fn as_str(self) -> &'static str {
        match self {
            Order::RoundRobin => "round-robin",
            Order::Weighted => "weighted",
            Order::Sticky => "sticky",
            Order::LeastLoaded => "least-loaded",
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a pool's members report their load (for `least-loaded`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoadSpec {
    pub kind: LoadKind,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LoadKind {
    /// HAProxy agent-check text on a TCP port: `75%` (share of the weight to use), `up`,
    /// `down`, `drain`, `maint`, combined with spaces or commas.
    Agent { port: u16 },
    /// An HTTP endpoint whose body is the load in percent (`90` = 90 % busy).
    Http { port: u16, path: String },
}

/// A site of the topology map.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Site {
    pub name: String,
    pub nets: Vec<ipnet::IpNet>,
    /// Where this site's clients go when it has no healthy member, in order.
    pub fallback: Vec<SiteRef>,
    /// GeoIP matches: autonomous systems, subdivisions, countries, continents (uppercase).
    pub asns: Vec<u32>,
    pub subdivisions: Vec<([u8; 2], [u8; 3])>,
    pub countries: Vec<[u8; 2]>,
    pub continents: Vec<[u8; 2]>,
    /// Latitude and longitude in degrees, for `nearest`.
    pub coordinates: Option<(f32, f32)>,
}

impl Site {
    /// Whether clients are placed here by GeoIP (not only by prefix).
    pub fn by_geo(&self) -> bool {
        !(self.asns.is_empty()
            && self.subdivisions.is_empty()
            && self.countries.is_empty()
            && self.continents.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SiteRef {
    Site(usize),
    /// Every healthy member.
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhenAllDown {
    /// Fail open: answer with every member.
    All,
    /// NODATA with the SOA.
    None,
    ServFail,
    /// A fixed set of addresses.
    Addresses(Vec<IpAddr>),
    /// Whatever another pool of the zone answers.
    Pool(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub policy: Policy,
    /// Checks every member must pass.
    pub checks: Box<[Arc<Check>]>,
    /// TTL of the answers; halved while the pool is degraded.
    pub ttl: u32,
    /// 1 to `order::MAX_PICK` (64).
    pub max_answers: u8,
    pub when_all_down: WhenAllDown,
    pub members: Box<[Member]>,
    /// Load reports, for `least-loaded`.
    /// Boxed: most pools have none, and the config keeps every pool for the table's life.
    pub load: Option<Box<LoadSpec>>,
    /// A member that comes back up ramps from 10 % to its full weight over this window.
    pub slow_start: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub address: IpAddr,
    pub weight: u32,
    /// Failover order: lower first.
    pub priority: u32,
    /// Index into the zone's `sites`.
    pub site: Option<usize>,
}

/// A name answered from a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub name: Name,
    /// Index into the zone's `pools`.
    pub pool: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorums_count_down_votes_of_the_nodes_that_have_one() {
        let q = |s: &str| s.parse::<Quorum>().unwrap();
        assert_eq!(q("majority").down_needed(3), 2);
        assert_eq!(q("majority").down_needed(2), 2);
        assert_eq!(q("majority").down_needed(1), 1);
        assert_eq!(q("any").down_needed(3), 1);
        assert_eq!(q("all").down_needed(3), 3);
        assert_eq!(q("2").down_needed(3), 2);
        assert_eq!(q("2").down_needed(1), 1, "a node alone decides alone");
        for bad in ["0", "most", "-1", ""] {
            assert!(bad.parse::<Quorum>().is_err(), "{bad}");
        }
        for s in ["any", "majority", "all", "3"] {
            assert_eq!(q(s).to_string(), s);
        }
    }

    #[test]
    fn orders_are_the_same_words_in_config_and_api() {
        for step in PolicyStep::ALL {
            if let PolicyStep::Order(o) = step {
                let json = serde_json::to_value(o).unwrap();
                assert_eq!(json, o.as_str());
                assert_eq!(serde_json::from_value::<Order>(json).unwrap(), o);
            }
        }
    }

    #[test]
    fn policy_steps_read_back_as_written() {
        for step in PolicyStep::ALL {
            assert_eq!(step.to_string().parse::<PolicyStep>(), Ok(step));
        }
        assert_eq!(
            "least-loaded".parse::<PolicyStep>(),
            Ok(PolicyStep::Order(Order::LeastLoaded))
        );
        assert!(
            "fastest"
                .parse::<PolicyStep>()
                .unwrap_err()
                .contains("not a policy step")
        );
        assert!(PolicyStep::Failover.rank() < PolicyStep::Topology.rank());
    }
}
