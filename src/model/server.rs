//! Server settings of `gslbd.yaml`: listeners, directories, RRL, TCP limits, the cluster,
//! GeoIP databases and AF_XDP.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

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
    pub rrl: Rrl,
    pub tcp: TcpLimits,
    /// Run as this user once every socket is bound (when started as root).
    pub user: Option<String>,
    /// Several name servers that share overrides and observations through etcd.
    pub cluster: Option<Cluster>,
    pub geoip: Option<GeoIp>,
    /// UDP queries through AF_XDP (kernel bypass) beside the sockets.
    pub xdp: Option<Xdp>,
}

/// `xdp:` in gslbd.yaml: UDP port 53 of `addresses` on `interface` is taken by AF_XDP
/// sockets, one per receive queue; everything else goes on to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xdp {
    pub interface: String,
    pub addresses: Vec<IpAddr>,
    /// The receive queues served (0..queues); `None`: all the interface has, up to
    /// `XDP_MAX_QUEUES`.
    pub queues: Option<u32>,
    pub mode: XdpMode,
}

/// The receive queues XDP can serve: the program's socket map has this many entries
/// (bpf/gslbd_xdp.c); queries on a queue beyond them pass to the kernel's sockets.
pub const XDP_MAX_QUEUES: u32 = 256;

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// In the driver if it can, else generic.
    #[default]
    Auto,
    /// In the driver: the fast one; an error if the driver cannot.
    Native,
    /// In the kernel's network stack, for any device: slower, copies every packet.
    Generic,
}

impl XdpMode {
    /// Each mode and its name in gslbd.yaml.
    const NAMES: [(XdpMode, &'static str); 3] = [
        (XdpMode::Auto, "auto"),
        (XdpMode::Native, "native"),
        (XdpMode::Generic, "generic"),
    ];
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (_, name) = XdpMode::NAMES
            .iter()
            .find(|(m, _)| m == self)
            .expect("every mode is named");
        f.write_str(name)
    }
}

impl std::str::FromStr for XdpMode {
    type Err = String;

    fn from_str(s: &str) -> Result<XdpMode, String> {
        XdpMode::NAMES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(m, _)| *m)
            .ok_or_else(|| format!("{s:?}: auto, native or generic"))
    }
}

/// `cluster:` in gslbd.yaml: this node, the etcd that the nodes share, and how their
/// observations combine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// This node's name, unique in the cluster; also its NSID (RFC 5001).
    pub node: String,
    /// etcd endpoints, `http://HOST:PORT` or `https://HOST:PORT`.
    pub etcd: Vec<String>,
    /// Every key gslbd writes starts with this; it ends with `/`.
    pub prefix: String,
    /// The source address of this node's probes: where it sees the members from.
    pub probe_source: Option<IpAddr>,
    pub quorum: Quorum,
    /// etcd authentication: a user and the file that holds its password.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// TLS to etcd: the CA that signed its certificate, and a client certificate and key when
    /// etcd asks for one.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// How the observations of live nodes combine into a member's health: how many of them must
/// see a check fail for it to count as down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quorum {
    /// One node seeing it down is enough (each node alone decides as without a cluster).
    #[default]
    Any,
    /// More than half of the nodes that have an observation.
    Majority,
    /// Every node that has an observation.
    All,
    /// At least this many (or all of them, when fewer have an observation).
    AtLeast(u16),
}

impl Quorum {
    /// Down votes that make a check down, out of `voters` nodes with an observation (≥ 1).
    pub fn down_needed(self, voters: usize) -> usize {
        match self {
            Quorum::Any => 1,
            Quorum::Majority => voters / 2 + 1,
            Quorum::All => voters,
            Quorum::AtLeast(n) => usize::from(n).min(voters),
        }
        .max(1)
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::Any => f.write_str("any"),
            Quorum::Majority => f.write_str("majority"),
            Quorum::All => f.write_str("all"),
            Quorum::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for Quorum {
    type Err = String;

    fn from_str(s: &str) -> Result<Quorum, String> {
        match s.trim() {
            "any" => Ok(Quorum::Any),
            "majority" => Ok(Quorum::Majority),
            "all" => Ok(Quorum::All),
            n => match n.parse::<u16>() {
                Ok(n) if n >= 1 => Ok(Quorum::AtLeast(n)),
                _ => Err(format!(
                    "{s:?} is not a quorum: any, majority, all, or a number of nodes (1 or more)"
                )),
            },
        }
    }
}

/// Limits of DNS over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Open connections at most; further ones are closed at once.
    pub max_connections: usize,
    /// Open connections per client address at most.
    pub max_per_client: usize,
    /// A query must arrive whole, and an answer be taken, within this (RFC 7766 §6.2.3).
    pub idle_timeout: Duration,
    /// No connection lives longer than this.
    pub lifetime: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: 512,
            max_per_client: 16,
            idle_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(120),
        }
    }
}

/// Response rate limiting of UDP answers (DESIGN §7, as Knot and NSD do it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rrl {
    /// Responses per second per client prefix and response class; 0 turns RRL off.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated (TC=1) so a real resolver retries
    /// over TCP; the others are dropped. 0: drop all; 1: truncate all.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Also limit on loopback listeners (off: local tools and tests are never limited).
    pub on_loopback: bool,
}

impl Default for Rrl {
    fn default() -> Self {
        Rrl {
            // NSD's default: a bucket is one client prefix and one response class.
            responses_per_second: 200,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            on_loopback: false,
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            zones_dir: PathBuf::from("zones"),
            state_dir: PathBuf::from("state"),
            api_listen: SocketAddr::from(([127, 0, 0, 1], 8053)),
            api_token_file: None,
            rrl: Rrl::default(),
            tcp: TcpLimits::default(),
            user: None,
            cluster: None,
            geoip: None,
            xdp: None,
        }
    }
}

/// `geoip:` in gslbd.yaml: a City or Country database, an ASN database.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GeoIp {
    pub database: Option<PathBuf>,
    pub asn_database: Option<PathBuf>,
}
