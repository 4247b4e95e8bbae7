//! The file format: serde shapes of `gslbd.yaml` and `zones/*.yaml`, nothing more.
//!
//! Unknown keys are errors (`deny_unknown_fields`). Values that need checking beyond their YAML
//! type are kept as strings with their location (`Spanned`), so that `config::validate` can say
//! exactly where a bad address or name is. All YAML goes through [`from_yaml`], the one place that
//! knows which YAML crate we use.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
pub use serde_saphyr::Spanned;

use super::diag::Loc;

/// A YAML error: where, and what.
#[derive(Debug, Clone)]
pub struct YamlError {
    pub loc: Loc,
    pub message: String,
}

/// Parse YAML text into `T`. Duplicate keys are errors; aliases are bounded by the parser's
/// budget, so a hostile file cannot expand without limit.
pub fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    // `yes`/`no`/`on`/`off` are strings, not booleans, as in YAML 1.2.
    options.strict_booleans = true;
    // The default node budget (250,000) stops a zone near 50,000 names. Files are capped at
    // 64 MiB before parsing, and alias expansion keeps its own budget, so counting nodes and
    // events up to what such a file can hold only lets large zones through.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 16_000_000;
    budget.max_events = 32_000_000;
    options.budget = Some(budget);
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let loc = e.location().map(Loc::from_saphyr).unwrap_or_default();
        YamlError {
            loc,
            message: message(&e),
        }
    })
}

/// The parser's message in our words where its own speaks of its API (the duplicate-key one
/// says to "set DuplicateKeyPolicy in Options", which a user cannot do). The location is that
/// of the second occurrence.
fn message(e: &serde_saphyr::Error) -> String {
    match e {
        serde_saphyr::Error::DuplicateMappingKey { key: Some(k), .. } => {
            format!("duplicate key {k:?}: each key may appear once in a mapping")
        }
        serde_saphyr::Error::DuplicateMappingKey { key: None, .. } => {
            "duplicate key: each key may appear once in a mapping".into()
        }
        _ => plain_message(&e.to_string()),
    }
}

/// serde-saphyr appends " at line L, column C" to its messages; we print the location ourselves.
fn plain_message(m: &str) -> String {
    let m = m.trim();
    match m.rfind(" at line ") {
        Some(i) if m[i..].contains("column") => m[..i].to_string(),
        _ => m.to_string(),
    }
}

/// One value or a list of them: `A: 192.0.2.1` is `A: [192.0.2.1]`. Each value keeps its
/// location, a single one as well as those of a list.
#[derive(Debug, Default)]
pub struct OneOrMany(pub Vec<Spanned<String>>);

impl std::ops::Deref for OneOrMany {
    type Target = [Spanned<String>];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A scalar's text (its location is the wrapping `Spanned`'s), or the list.
        enum Raw {
            One(String),
            Many(Vec<Spanned<String>>),
        }
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::One(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::One(v))
            }
            // A plain scalar such as `TXT: 42` arrives typed; the list form would read its text.
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::One(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::One(v.to_string()))
            }
            // `TXT: 1.10` would come back as "1.1": refuse rather than change the data.
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Raw, E> {
                Err(E::custom(format!(
                    "YAML reads this value as the number {v}, which may not be how it is \
                     written: put it in quotes"
                )))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Spanned<String>>()? {
                    out.push(v);
                }
                Ok(Raw::Many(out))
            }
        }
        impl<'de> Deserialize<'de> for Raw {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(RawVisitor)
            }
        }
        // Through `Spanned`, the value is read by the YAML deserializer itself: list items keep
        // their own locations, and a single value takes the wrapper's.
        let s = Spanned::<Raw>::deserialize(d)?;
        Ok(OneOrMany(match s.value {
            Raw::Many(v) => v,
            Raw::One(v) => vec![Spanned::new(v, s.referenced, s.defined)],
        }))
    }
}

/// An ordered map whose keys keep their locations (serde maps lose them).
#[derive(Debug)]
pub struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V_<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V_<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    out.push((k, map.next_value()?));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V_(PhantomData))
    }
}

/// `gslbd.yaml`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// The file format's version: 1 (optional), so that the format can evolve.
    pub version: Option<Spanned<i64>>,
    pub listen: Option<Vec<Spanned<String>>>,
    pub zones_dir: Option<Spanned<String>>,
    pub state_dir: Option<Spanned<String>>,
    pub api: Option<ApiFile>,
    pub rrl: Option<RrlFile>,
    pub tcp: Option<TcpLimitsFile>,
    pub user: Option<Spanned<String>>,
    pub cluster: Option<Spanned<ClusterFile>>,
    pub geoip: Option<Spanned<GeoIpFile>>,
    pub xdp: Option<Spanned<XdpFile>>,
}

/// `xdp:` in gslbd.yaml: UDP queries to these addresses on this interface through AF_XDP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdpFile {
    pub interface: Option<Spanned<String>>,
    pub addresses: Option<Spanned<Vec<Spanned<String>>>>,
    pub queues: Option<Spanned<i64>>,
    /// `auto`, `native` or `generic`.
    pub mode: Option<Spanned<String>>,
}

/// `geoip:` in gslbd.yaml: the MaxMind DB files clients are located with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpFile {
    pub database: Option<Spanned<String>>,
    pub asn_database: Option<Spanned<String>>,
}

/// `cluster:` in gslbd.yaml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub node: Option<Spanned<String>>,
    pub etcd: Option<Spanned<Vec<Spanned<String>>>>,
    pub prefix: Option<Spanned<String>>,
    pub probe_source: Option<Spanned<String>>,
    /// `any`, `majority`, `all` or a number.
    pub quorum: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpLimitsFile {
    pub max_connections: Option<Spanned<i64>>,
    pub max_per_client: Option<Spanned<i64>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub lifetime: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RrlFile {
    pub responses_per_second: Option<Spanned<i64>>,
    pub slip: Option<Spanned<i64>>,
    pub ipv4_prefix: Option<Spanned<i64>>,
    pub ipv6_prefix: Option<Spanned<i64>>,
    pub on_loopback: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFile {
    pub listen: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
}

/// `zones/<zone>.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneFile {
    /// The file format's version: 1 (optional), so that the format can evolve.
    pub version: Option<Spanned<i64>>,
    pub zone: Spanned<String>,
    pub soa: Option<Spanned<SoaFile>>,
    pub ns: Option<Spanned<Vec<Spanned<String>>>>,
    pub ttl: Option<Spanned<i64>>,
    pub records: Option<Entries<Spanned<NameFile>>>,
    pub records_file: Option<Spanned<String>>,
    pub checks: Option<Entries<Spanned<CheckFile>>>,
    pub sites: Option<Entries<Spanned<SiteFile>>>,
    /// A plain `CIDR site` file, for maps too big to write in YAML.
    pub nets_file: Option<Spanned<String>>,
    pub pools: Option<Entries<Spanned<PoolFile>>>,
    pub names: Option<Entries<Spanned<BindingFile>>>,
    pub dnssec: Option<Spanned<DnssecFile>>,
}

/// `dnssec:` of a zone: where its keys are, and how long signatures last.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecFile {
    pub keys: Spanned<String>,
    pub signature_validity: Option<Spanned<String>>,
    pub refresh: Option<Spanned<String>>,
}

/// `checks.<name>`: exactly one kind, and its timing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    pub tcp: Option<Spanned<TcpFile>>,
    pub http: Option<Spanned<HttpFile>>,
    pub exec: Option<Spanned<ExecFile>>,
    pub file: Option<Spanned<FileCheckFile>>,
    pub interval: Option<Spanned<String>>,
    /// While a member is in transition (HAProxy's `fastinter`).
    pub fast_interval: Option<Spanned<String>>,
    /// While a member is down (HAProxy's `downinter`).
    pub down_interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub rise: Option<Spanned<i64>>,
    pub fall: Option<Spanned<i64>>,
    pub fall_on_refused: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpFile {
    pub port: Spanned<i64>,
    pub expect_banner: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub port: Option<Spanned<i64>>,
    pub tls: Option<bool>,
    pub host: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub expect_status: Option<Vec<Spanned<i64>>>,
    pub expect_body: Option<Spanned<String>>,
    pub expect_body_regex: Option<Spanned<String>>,
    pub verify_tls: Option<bool>,
    /// PEM file of the CAs to trust instead of the system's store; relative to the zone file.
    pub ca_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecFile {
    pub command: Spanned<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheckFile {
    pub path: Spanned<String>,
}

/// `sites.<name>`: a list of CIDR prefixes, or `{ nets: [...], fallback: [site, ..., any] }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SiteFile {
    Nets(Vec<String>),
    Full(SiteMapFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteMapFile {
    #[serde(default)]
    pub nets: Vec<String>,
    pub fallback: Option<Vec<String>>,
    #[serde(default)]
    pub asns: Vec<AsnFile>,
    #[serde(default)]
    pub subdivisions: Vec<String>,
    #[serde(default)]
    pub countries: Vec<String>,
    #[serde(default)]
    pub continents: Vec<String>,
    /// `[latitude, longitude]`.
    pub coordinates: Option<Vec<f64>>,
}

/// An autonomous system: `4773` or `AS4773`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum AsnFile {
    Number(i64),
    Text(String),
}

/// `policy: weighted` or `policy: [topology, weighted]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PolicyFile {
    One(String),
    Steps(Vec<String>),
}

/// `pools.<name>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFile {
    pub policy: Option<Spanned<PolicyFile>>,
    pub checks: Option<Vec<Spanned<String>>>,
    pub ttl: Option<Spanned<i64>>,
    pub max_answers: Option<Spanned<i64>>,
    pub when_all_down: Option<Spanned<String>>,
    pub fallback: Option<Spanned<FallbackFile>>,
    pub members: Option<Spanned<Vec<Spanned<MemberFile>>>>,
    pub load: Option<Spanned<LoadFile>>,
    pub slow_start: Option<Spanned<String>>,
}

/// `load: { agent: { port } | http: { port, path }, interval, timeout }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadFile {
    pub agent: Option<Spanned<AgentFile>>,
    pub http: Option<Spanned<LoadHttpFile>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    pub port: Spanned<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadHttpFile {
    pub port: Spanned<i64>,
    pub path: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackFile {
    pub addresses: Option<Vec<Spanned<String>>>,
    pub pool: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberFile {
    pub address: Spanned<String>,
    pub weight: Option<Spanned<i64>>,
    pub priority: Option<Spanned<i64>>,
    pub site: Option<Spanned<String>>,
}

/// `names.<name>: { pool: <pool> }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingFile {
    pub pool: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaFile {
    pub mname: Spanned<String>,
    pub rname: Spanned<String>,
    pub serial: Option<Spanned<i64>>,
    pub refresh: Option<Spanned<i64>>,
    pub retry: Option<Spanned<i64>>,
    pub expire: Option<Spanned<i64>>,
    pub minimum: Option<Spanned<i64>>,
}

/// The static records of one name: `www: { A: [...], AAAA: [...], ttl: 300 }`; a single
/// value may be written without the list (`A: 192.0.2.1`, `MX: "10 mail"`).
/// Values are presentation-format strings, checked by the validator.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NameFile {
    #[serde(rename = "A")]
    pub a: Option<OneOrMany>,
    #[serde(rename = "AAAA")]
    pub aaaa: Option<OneOrMany>,
    #[serde(rename = "CNAME")]
    pub cname: Option<Spanned<String>>,
    #[serde(rename = "MX")]
    pub mx: Option<OneOrMany>,
    #[serde(rename = "TXT")]
    pub txt: Option<OneOrMany>,
    #[serde(rename = "SRV")]
    pub srv: Option<OneOrMany>,
    #[serde(rename = "NS")]
    pub ns: Option<OneOrMany>,
    #[serde(rename = "CAA")]
    pub caa: Option<OneOrMany>,
    /// At a delegation of a signed zone: the child's DS records.
    #[serde(rename = "DS")]
    pub ds: Option<OneOrMany>,
    #[serde(rename = "PTR")]
    pub ptr: Option<OneOrMany>,
    pub ttl: Option<Spanned<i64>>,
}
