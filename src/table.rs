//! The snapshot queries read, and the handle through which a new one is published.
//!
//! Everything a query needs is computed here, when the config (later: health) changes: names are
//! lowercased wire-format keys, RRsets are pre-encoded records whose owner name is a two-byte
//! slot patched with a compression pointer per query, delegation cuts and glue are marked, and
//! empty non-terminals exist as nodes without data. The query path (`dns::answer`) then does a
//! few hash lookups and copies bytes.
//!
//! ```text
//!   model::Config ──Snapshot::build──▶ Snapshot ──Live::publish──▶ ArcSwap ◀──load── queries
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod explain;

pub use explain::Question;

use arc_swap::ArcSwap;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::dns::wire::{self, CLASS_IN};
use crate::health::{self, Outcome, State, Status, Transition};
use crate::metrics::{Counters, Hits, Metrics, PoolCells, ZoneStats, cell_of};
use crate::model::{self, Config, Order, WhenAllDown};
use crate::probe::ProbeKey;
use crate::probe::load::LoadKey;
use crate::probe::load::{AgentState, Load};
use crate::select::order;
use crate::select::pipeline::{self, NoTrace};
use crate::select::sites::SiteMap;
use crate::select::{self, Eligible, Family};

/// The hash map of the lookup tables (see Cargo.toml for why foldhash).
pub type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The live table: one writer publishes, any number of readers load without locks.
#[derive(Clone)]
pub struct Live(Arc<ArcSwap<Snapshot>>);

impl Live {
    pub fn new(s: Snapshot) -> Self {
        Live(Arc::new(ArcSwap::from_pointee(s)))
    }

    /// The current snapshot. Cheap and lock-free; hold it only for one query or one batch.
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.0.load()
    }

    pub fn publish(&self, s: Snapshot) {
        self.0.store(Arc::new(s));
    }
}

/// An immutable view of everything served.
pub struct Snapshot {
    /// Zones by lowercased wire-format apex; shared between snapshots until the config changes.
    zones: Arc<Map<Box<[u8]>, Zone>>,
    /// The answers of every pool, by pool id (`Node::pool`); replaced when health changes.
    pub pools: Vec<PoolAnswer>,
    /// Counts up with every published config, for logs and metrics.
    pub generation: u64,
    /// What the query path counts into (kept across snapshots).
    pub counters: Arc<Counters>,
}

/// What a pool answers right now, per address family; shared by the snapshots until the pool's
/// health changes. Its views: `[0]` serves clients no site covers (and every client of a pool
/// without the topology step); `[1 + s]` serves the clients of site `s`. All precomputed here,
/// so a query only looks its site up.
#[derive(Clone)]
pub struct PoolAnswer(Arc<[View]>);

impl PoolAnswer {
    /// Whether the answer depends on the client's site: a topology pool has a view per site
    /// (and topology needs at least one site), any other pool only `[0]`.
    pub fn topology(&self) -> bool {
        self.0.len() > 1
    }

    pub fn view(&self, site: Option<usize>) -> &View {
        site.and_then(|s| self.0.get(s + 1)).unwrap_or(&self.0[0])
    }

    /// The same answer (not recomputed since).
    #[cfg(test)]
    fn same(&self, other: &PoolAnswer) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A pool's answer for one group of clients.
pub struct View {
    pub v4: FamilyAnswer,
    pub v6: FamilyAnswer,
}

impl View {
    pub fn family(&self, qtype: u16) -> &FamilyAnswer {
        if qtype == wire::TYPE_AAAA {
            &self.v6
        } else {
            &self.v4
        }
    }
}

pub enum FamilyAnswer {
    /// NODATA with the SOA: no member of the family, or `when_all_down: none`.
    NoData,
    ServFail,
    /// Eligible members, to be ordered and cut to `max` per query. One allocation per family:
    /// 10,000 one-member pools are 10,000 small blocks, not 40,000.
    Records {
        order: Order,
        /// `max_answers` (at most `order::MAX_PICK`); small types keep every pool's views small.
        max: u8,
        /// Octets of each `Slot::record` in use: 16 for A, 28 for AAAA.
        rec_len: u8,
        members: Box<[Slot]>,
    },
}

/// One eligible member of a family answer.
pub struct Slot {
    /// The pre-encoded record (owner slot, fixed fields with the TTL, address); the first
    /// `rec_len` octets are used.
    pub record: [u8; 28],
    pub weight: u32,
    /// Sticky hash key (0 unless the order is sticky).
    pub key: u64,
    /// How often this member was handed out (metrics).
    pub hits: Hits,
}

impl order::Pickable for Slot {
    fn weight(&self) -> u32 {
        self.weight
    }
    fn key(&self) -> u64 {
        self.key
    }
}

/// One zone, ready for lookups.
pub struct Zone {
    pub origin: Name,
    /// Every name with data, every empty non-terminal, every delegation and glue name.
    pub nodes: Map<Box<[u8]>, Node>,
    /// The SOA with the negative-caching TTL, for the authority section of NXDOMAIN and NODATA
    /// (RFC 2308 §3).
    pub negative_soa: RRset,
    /// The answer to qtype ANY (RFC 8482 §4.2): a synthesized HINFO "RFC8482" "".
    pub any_hinfo: RRset,
    pub has_cuts: bool,
    /// The site map, if the zone has one.
    pub topology: Option<SiteMap>,
    /// Query counters (metrics).
    pub stats: Arc<ZoneStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Authoritative data (or an empty non-terminal).
    Auth,
    /// A delegation point: NS records below the apex.
    Cut,
    /// Below a delegation: only glue, never answered directly.
    Glue,
}

pub struct Node {
    pub kind: NodeKind,
    /// A name bound to a pool: index into `Snapshot::pools`.
    pub pool: Option<u32>,
    pub rrsets: Box<[RRset]>,
    /// The lowercased CNAME target, if this name is an alias.
    pub cname: Option<Box<[u8]>>,
}

impl Zone {
    /// Whether a name (lowercased wire format, inside this zone) is at or below a delegation.
    pub fn below_cut(&self, name: &[u8]) -> bool {
        let mut at = 0;
        while at < name.len() && name[at] != 0 {
            if self
                .nodes
                .get(&name[at..])
                .is_some_and(|n| n.kind == NodeKind::Cut)
            {
                return true;
            }
            at += 1 + name[at] as usize;
        }
        false
    }
}

impl Node {
    pub fn get(&self, rtype: u16) -> Option<&RRset> {
        self.rrsets.iter().find(|r| r.rtype == rtype)
    }
}

/// Pre-encoded records of one name and type.
///
/// `wire` holds, for each record, a two-byte owner slot followed by TYPE, CLASS, TTL, RDLENGTH
/// and RDATA (names in RDATA uncompressed). The slot offsets are in `owners`.
pub struct RRset {
    pub rtype: u16,
    pub wire: Box<[u8]>,
    pub owners: Box<[u16]>,
    /// Names inside RDATA that want address records in the additional section (NS, MX, SRV
    /// targets) or that a CNAME points to: where they are in `wire`, and their lowercased form.
    pub targets: Box<[Target]>,
}

pub struct Target {
    pub at: u16,
    pub name: Box<[u8]>,
}

impl RRset {
    pub fn count(&self) -> u16 {
        self.owners.len() as u16
    }
}

/// A config that cannot be turned into wire format (should not happen after validation).
#[derive(Debug, thiserror::Error)]
#[error("{zone}: {name} {rtype}: cannot encode record data: {reason}")]
pub struct BuildError {
    zone: String,
    name: String,
    rtype: RecordType,
    reason: String,
}

impl Snapshot {
    /// Build the static part of a config. Pools are numbered in config order (zone by zone);
    /// their answers come from [`Table`], which knows the health.
    fn build_zones(
        zones: &[model::Zone],
        counters: &Counters,
    ) -> Result<Map<Box<[u8]>, Zone>, BuildError> {
        let mut out = Map::with_capacity_and_hasher(zones.len(), Default::default());
        let mut first_pool = 0u32;
        for z in zones {
            let apex = lower_wire(&z.origin);
            let mut zone = build_zone(z, first_pool)?;
            zone.stats = counters.zone(&z.origin.to_string());
            out.insert(apex.into_boxed_slice(), zone);
            first_pool += z.pools.len() as u32;
        }
        Ok(out)
    }

    /// A snapshot of a config with every member counted as up (no health known): for tests
    /// and tools that need the answers of a config without running probes.
    pub fn build(zones: &[model::Zone], generation: u64) -> Result<Snapshot, BuildError> {
        let config = Config {
            server: model::Server::default(),
            zones: zones.to_vec(),
        };
        let table = Table::new(config, &|_| None, Instant::now(), Arc::new(Metrics::new()))?;
        let mut snap = Snapshot::clone_of(&table.live.load());
        snap.generation = generation;
        Ok(snap)
    }

    fn clone_of(s: &Snapshot) -> Snapshot {
        Snapshot {
            zones: s.zones.clone(),
            pools: s.pools.clone(),
            generation: s.generation,
            counters: s.counters.clone(),
        }
    }

    pub fn empty() -> Snapshot {
        Snapshot {
            zones: Arc::new(Map::default()),
            pools: Vec::new(),
            generation: 0,
            counters: Arc::default(),
        }
    }

    /// The most specific zone holding `name` (lowercased wire format, with its label offsets),
    /// and how many labels of `name` lie below its apex.
    pub fn find_zone(&self, q: &wire::Query) -> Option<(&Zone, usize)> {
        (0..=q.label_count()).find_map(|i| self.zones.get(q.suffix(i)).map(|z| (z, i)))
    }

    pub fn zone_count(&self) -> usize {
        self.zones.len()
    }
}

fn build_zone(z: &model::Zone, first_pool: u32) -> Result<Zone, BuildError> {
    let err = |name: &Name, rtype: RecordType, reason: String| BuildError {
        zone: z.origin.to_string(),
        name: name.to_string(),
        rtype,
        reason,
    };
    let soa = RData::SOA(hickory_proto::rr::rdata::SOA::new(
        z.soa.mname.clone(),
        z.soa.rname.clone(),
        z.soa.serial,
        z.soa.refresh as i32,
        z.soa.retry as i32,
        z.soa.expire as i32,
        z.soa.minimum,
    ));
    let ns: Vec<RData> =
        z.ns.iter()
            .map(|n| RData::NS(hickory_proto::rr::rdata::NS(n.clone())))
            .collect();

    let apex = lower_wire(&z.origin);
    let mut sets: Vec<(&Name, RecordType, u32, Vec<RData>)> = vec![
        (&z.origin, RecordType::SOA, z.ttl, vec![soa.clone()]),
        (&z.origin, RecordType::NS, z.ttl, ns),
    ];
    for s in &z.rrsets {
        sets.push((&s.name, s.rtype, s.ttl, s.rdata.clone()));
    }

    let mut nodes: Map<Box<[u8]>, Node> = Map::default();
    let mut pending: Map<Vec<u8>, Vec<RRset>> = Map::default();
    let mut cnames: Map<Vec<u8>, Box<[u8]>> = Map::default();
    for (name, rtype, ttl, rdata) in &sets {
        let rrset = encode(u16::from(*rtype), *ttl, rdata).map_err(|e| err(name, *rtype, e))?;
        let key = lower_wire(name);
        // Only aliases into this zone are followed (RFC 1034 §4.3.2 step 3a).
        if *rtype == RecordType::CNAME
            && let Some(t) = rrset.targets.first()
            && (*t.name == *apex || is_strict_descendant(&t.name, &apex))
        {
            cnames.insert(key.clone(), t.name.clone());
        }
        pending.entry(key).or_default().push(rrset);
    }

    // Names bound to pools: nodes without static data.
    let mut bound: Map<Vec<u8>, u32> = Map::default();
    for b in &z.bindings {
        if b.pool < z.pools.len() {
            let key = lower_wire(&b.name);
            pending.entry(key.clone()).or_default();
            bound.insert(key, first_pool + b.pool as u32);
        }
    }

    // Delegation cuts: NS below the apex.
    let cuts: Vec<Vec<u8>> = pending
        .iter()
        .filter(|(k, sets)| **k != apex && sets.iter().any(|s| s.rtype == wire::TYPE_NS))
        .map(|(k, _)| k.clone())
        .collect();

    // Every ancestor of a name, up to the apex, exists (empty non-terminals, RFC 4592 §2.2.2).
    let mut names: Vec<Vec<u8>> = pending.keys().cloned().collect();
    for k in pending.keys() {
        for off in label_offsets(k).into_iter().skip(1) {
            let anc = &k[off..];
            if anc.len() <= apex.len() {
                break;
            }
            names.push(anc.to_vec());
        }
    }
    for k in names {
        if nodes.contains_key(k.as_slice()) {
            continue;
        }
        let kind = if cuts.iter().any(|c| is_strict_descendant(&k, c)) {
            NodeKind::Glue
        } else if cuts.contains(&k) {
            NodeKind::Cut
        } else {
            NodeKind::Auth
        };
        let rrsets = pending.remove(&k).unwrap_or_default().into_boxed_slice();
        let cname = cnames.remove(&k);
        let pool = bound.remove(&k);
        nodes.insert(
            k.into_boxed_slice(),
            Node {
                kind,
                pool,
                rrsets,
                cname,
            },
        );
    }

    let negative_soa = encode(wire::TYPE_SOA, z.negative_ttl(), &[soa])
        .map_err(|e| err(&z.origin, RecordType::SOA, e))?;
    let hinfo = RData::HINFO(hickory_proto::rr::rdata::HINFO::new(
        "RFC8482".into(),
        String::new(),
    ));
    let any_hinfo = encode(wire::TYPE_HINFO, z.ttl, &[hinfo])
        .map_err(|e| err(&z.origin, RecordType::HINFO, e))?;
    Ok(Zone {
        origin: z.origin.clone(),
        nodes,
        negative_soa,
        any_hinfo,
        has_cuts: !cuts.is_empty(),
        topology: SiteMap::build(&z.sites),
        stats: Arc::default(),
    })
}

/// An operator's override of a member (DESIGN §4), set through the admin API and kept in
/// `state_dir/overrides.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverrideKind {
    /// No new answers while any other member can take them.
    Drain,
    /// Up whatever the checks say.
    ForceUp,
    /// Down whatever the checks say.
    ForceDown,
}

impl OverrideKind {
    /// The word operators use: in the API's paths, `gslbd ctl`, the status JSON and the logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            OverrideKind::Drain => "drain",
            OverrideKind::ForceUp => "force-up",
            OverrideKind::ForceDown => "force-down",
        }
    }
}

impl std::fmt::Display for OverrideKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OverrideKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "drain" => Ok(OverrideKind::Drain),
            "force-up" => Ok(OverrideKind::ForceUp),
            "force-down" => Ok(OverrideKind::ForceDown),
            other => Err(format!(
                "{other:?} is not an override: drain, force-up or force-down"
            )),
        }
    }
}

/// What an override applies to: one member address (in every pool), or every member placed
/// in a site of that name (in every zone). A member's own override wins over its site's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideTarget {
    Member(IpAddr),
    Site(String),
}

impl std::fmt::Display for OverrideTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverrideTarget::Member(a) => write!(f, "{a}"),
            OverrideTarget::Site(s) => write!(f, "site {s}"),
        }
    }
}

/// The overrides in force, as saved in `state_dir/overrides.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Overrides {
    pub members: std::collections::BTreeMap<IpAddr, Override>,
    #[serde(default)]
    pub sites: std::collections::BTreeMap<String, Override>,
}

impl Overrides {
    pub fn get(&self, t: &OverrideTarget) -> Option<&Override> {
        match t {
            OverrideTarget::Member(a) => self.members.get(a),
            OverrideTarget::Site(s) => self.sites.get(s),
        }
    }

    fn set(&mut self, t: &OverrideTarget, o: Option<Override>) {
        match (t, o) {
            (OverrideTarget::Member(a), Some(o)) => {
                self.members.insert(*a, o);
            }
            (OverrideTarget::Member(a), None) => {
                self.members.remove(a);
            }
            (OverrideTarget::Site(s), Some(o)) => {
                self.sites.insert(s.clone(), o);
            }
            (OverrideTarget::Site(s), None) => {
                self.sites.remove(s);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.members.len() + self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (OverrideTarget, &Override)> {
        self.members
            .iter()
            .map(|(a, o)| (OverrideTarget::Member(*a), o))
            .chain(
                self.sites
                    .iter()
                    .map(|(s, o)| (OverrideTarget::Site(s.clone()), o)),
            )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Override {
    pub kind: OverrideKind,
    pub reason: String,
    /// Seconds since the Unix epoch when it was set, and when it ends (if ever).
    pub set_unix: u64,
    pub expires_unix: Option<u64>,
}

impl Override {
    /// For the logs: `drain (patching), expires in 10m` (`now_unix` in seconds since the epoch).
    pub fn describe(&self, now_unix: u64) -> String {
        let mut out = self.kind.to_string();
        if !self.reason.is_empty() {
            out.push_str(&format!(" ({})", self.reason));
        }
        if let Some(t) = self.expires_unix {
            let left = std::time::Duration::from_secs(t.saturating_sub(now_unix));
            out.push_str(&format!(
                ", expires in {}",
                humantime::format_duration(left)
            ));
        }
        out
    }
}

/// Smoothed load reports of one source.
#[derive(Debug, Clone, Default)]
struct LoadState {
    /// Spare capacity, smoothed: `c ← c + α (report − c)`.
    capacity: Option<f64>,
    state: Option<AgentState>,
    /// When the last good report arrived; older than three intervals is stale.
    at: Option<Instant>,
    pools: Vec<u32>,
}

/// Weight of a new report in the smoothed capacity.
const LOAD_ALPHA: f64 = 0.5;
/// A load report older than this many intervals is forgotten (the member counts as idle).
const LOAD_STALE_INTERVALS: u32 = 3;
/// Where a member starts when it comes back up with `slow_start`.
const SLOW_START_FLOOR: f64 = 0.1;

impl LoadState {
    fn fresh(&self, spec: &model::LoadSpec, now: Instant) -> bool {
        self.at.is_some_and(|t| {
            now.saturating_duration_since(t) <= spec.interval * LOAD_STALE_INTERVALS
        })
    }
}

/// The share of its weight a member gets `since` it came back up, with `slow_start`.
pub fn slow_start_factor(window: Duration, since: Duration) -> f64 {
    if window.is_zero() || since >= window {
        return 1.0;
    }
    SLOW_START_FLOOR + (1.0 - SLOW_START_FLOOR) * since.as_secs_f64() / window.as_secs_f64()
}

struct Probe {
    state: State,
    /// Pool ids whose answers depend on this probe.
    pools: Vec<u32>,
    /// The names of the checks with this spec, for logs.
    names: Vec<String>,
}

/// The writer's side of the live table: the config, the health of every probe, and the pool
/// answers derived from them. One task owns it; every change publishes a new [`Snapshot`].
pub struct Table {
    live: Live,
    /// The config without static records and bindings (see [`kept`]).
    config: Config,
    zones: Arc<Map<Box<[u8]>, Zone>>,
    /// Pool id → (zone index, pool index in the zone).
    pool_refs: Vec<(usize, usize)>,
    pool_answers: Vec<PoolAnswer>,
    /// Pool id → the metric cells of every address the pool may answer with (members and
    /// fallbacks), sorted by address. Holding them keeps them exported.
    pool_cells: Vec<PoolCells>,
    probes: HashMap<Arc<ProbeKey>, Probe>,
    loads: HashMap<Arc<LoadKey>, LoadState>,
    /// When each address last went from down to up (for slow start).
    came_up: HashMap<IpAddr, Instant>,
    overrides: Overrides,
    /// The time of the last event the table saw; answers are computed as of this time.
    now: Instant,
    generation: u64,
    metrics: Arc<Metrics>,
}

/// What a reload changed in the set of probes.
#[derive(Debug, Default)]
pub struct ProbeChanges {
    pub added: Vec<Arc<ProbeKey>>,
    pub removed: Vec<Arc<ProbeKey>>,
    pub loads_added: Vec<Arc<LoadKey>>,
    pub loads_removed: Vec<Arc<LoadKey>>,
}

impl Table {
    /// Build the table for a config; `restored` gives last-known states (from `state_dir`).
    pub fn new(
        config: Config,
        restored: &dyn Fn(&ProbeKey) -> Option<Status>,
        now: Instant,
        metrics: Arc<Metrics>,
    ) -> Result<Table, BuildError> {
        let zones = Arc::new(Snapshot::build_zones(&config.zones, &metrics.counters)?);
        let mut t = Table {
            live: Live::new(Snapshot::empty()),
            config: kept(config),
            zones,
            pool_refs: Vec::new(),
            pool_answers: Vec::new(),
            pool_cells: Vec::new(),
            probes: HashMap::new(),
            loads: HashMap::new(),
            came_up: HashMap::new(),
            overrides: Default::default(),
            now,
            generation: 1,
            metrics,
        };
        t.index_probes(|key| match restored(key) {
            Some(s) => State::with_status(s, now),
            None => State::new(now),
        });
        t.recompute_all();
        t.live.publish(t.snapshot());
        t.metrics.generation.set(t.generation as i64);
        Ok(t)
    }

    /// The handle readers load snapshots from.
    pub fn live(&self) -> Live {
        self.live.clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The names of the checks a probe runs for, e.g. `owa` or `owa/web`.
    pub fn check_names(&self, key: &ProbeKey) -> String {
        self.probes
            .get(key)
            .map_or_else(String::new, |p| p.names.join("/"))
    }

    /// Every probe and its state.
    pub fn probe_state(&self, key: &ProbeKey) -> Option<&State> {
        self.probes.get(key).map(|p| &p.state)
    }

    /// Every probe and its state.
    pub fn probes(&self) -> impl Iterator<Item = (&Arc<ProbeKey>, &State)> {
        self.probes.iter().map(|(k, p)| (k, &p.state))
    }

    /// Take one probe outcome. On a change of status, the pools that use the probe are
    /// recomputed and a new snapshot is published.
    pub fn observe(
        &mut self,
        key: &ProbeKey,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Transition> {
        self.now = now;
        let probe = self.probes.get_mut(key)?;
        let tr = probe.state.observe(outcome, key.spec.thresholds, now)?;
        if tr.from == Status::Down && tr.to == Status::Up {
            self.came_up.insert(key.address, now);
        }
        let pools = probe.pools.clone();
        self.republish(&pools);
        Some(tr)
    }

    /// The overrides in force.
    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }

    /// The override that applies to a member of `zone` at `address` placed in `site`: its own,
    /// else its site's.
    pub fn override_for(
        &self,
        zone: &model::Zone,
        address: IpAddr,
        site: Option<usize>,
    ) -> Option<&Override> {
        self.overrides.members.get(&address).or_else(|| {
            let name = &zone.sites.get(site?)?.name;
            self.overrides.sites.get(name)
        })
    }

    /// Whether any zone has a site of this name.
    pub fn is_site(&self, name: &str) -> bool {
        self.config
            .zones
            .iter()
            .flat_map(|z| &z.sites)
            .any(|s| s.name == name)
    }

    /// Whether `addr` is a member of any pool.
    pub fn is_member(&self, addr: IpAddr) -> bool {
        self.config
            .zones
            .iter()
            .flat_map(|z| &z.pools)
            .flat_map(|p| &p.members)
            .any(|m| m.address == addr)
    }

    /// Set (`Some`) or clear (`None`) the override of a member or site and republish.
    /// Restored overrides of addresses or sites that are no longer configured are kept (a
    /// reload may bring them back); the API refuses new ones for unknown targets.
    pub fn set_override(&mut self, target: &OverrideTarget, o: Option<Override>) {
        self.overrides.set(target, o);
        self.recompute_all();
        self.live.publish(self.snapshot());
    }

    /// Drop overrides whose expiry has passed (`now_unix`, seconds since the epoch). Returns
    /// whether any was dropped.
    pub fn expire_overrides(&mut self, now_unix: u64) -> bool {
        let before = self.overrides.len();
        let live = |o: &Override| o.expires_unix.is_none_or(|t| t > now_unix);
        self.overrides.members.retain(|_, o| live(o));
        self.overrides.sites.retain(|_, o| live(o));
        let changed = self.overrides.len() != before;
        if changed {
            self.recompute_all();
            self.live.publish(self.snapshot());
        }
        changed
    }

    /// Whether every probe has reported at least once (the first round is done).
    pub fn first_round_done(&self) -> bool {
        self.probes.values().all(|p| p.state.last_at.is_some())
    }

    /// Every zone, pool and member as the admin API shows them.
    pub fn status(&self, now: Instant) -> serde_json::Value {
        use serde_json::json;
        let zones: Vec<_> = self.config.zones.iter().map(|z| {
            let pools: Vec<_> = z.pools.iter().map(|p| {
                let members: Vec<_> = p.members.iter().map(|m| {
                    let checks: Vec<_> = p.checks.iter().map(|c| {
                        let key = ProbeKey { address: m.address, spec: c.spec.clone() };
                        match self.probes.get(&key) {
                            Some(pr) => json!({
                                "check": c.name,
                                "status": pr.state.status.to_string(),
                                "since_seconds": now.saturating_duration_since(pr.state.since).as_secs(),
                                "last_result": pr.state.last.as_ref().map(|o| o.reason.clone()),
                                "last_seconds_ago": pr.state.last_at.map(|t| now.saturating_duration_since(t).as_secs()),
                            }),
                            None => json!({ "check": c.name, "status": "unknown" }),
                        }
                    }).collect();
                    let load = self.load_of(p, m).and_then(|l| l.capacity);
                    json!({
                        "address": m.address,
                        "status": self.member_status(z, p, m).to_string(),
                        "weight": m.weight,
                        "priority": m.priority,
                        "site": m.site.map(|s| z.sites[s].name.clone()),
                        "override": self.overrides.members.get(&m.address),
                        "site_override": m.site.and_then(|s| self.overrides.sites.get(&z.sites[s].name)),
                        "spare_capacity": load,
                        "checks": checks,
                    })
                }).collect();
                json!({ "pool": p.name, "members": members })
            }).collect();
            json!({ "zone": z.origin.to_string(), "pools": pools })
        }).collect();
        json!({ "generation": self.generation, "zones": zones })
    }

    /// Every load source.
    pub fn loads(&self) -> impl Iterator<Item = &Arc<LoadKey>> {
        self.loads.keys()
    }

    /// Take one load report: smooth it and republish the pools that use it.
    pub fn observe_load(&mut self, key: &LoadKey, load: Result<Load, String>, now: Instant) {
        self.now = now;
        let Some(l) = self.loads.get_mut(key) else {
            return;
        };
        let Ok(load) = load else { return };
        if let Some(c) = load.capacity {
            let prev = if l.fresh(&key.spec, now) {
                l.capacity
            } else {
                None
            };
            l.capacity = Some(prev.map_or(c, |p| p + LOAD_ALPHA * (c - p)));
        }
        if load.state.is_some() {
            l.state = load.state;
        }
        l.at = Some(now);
        let pools = l.pools.clone();
        self.republish(&pools);
    }

    /// Time passes: pools whose members are ramping up or whose load reports went stale are
    /// recomputed. Cheap when nothing depends on time.
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
        // Stale reports are forgotten once (the member counts at full weight again) and their
        // pools recomputed once; nothing stays "due" forever.
        let mut due: Vec<u32> = Vec::new();
        for (key, l) in self.loads.iter_mut() {
            if l.at.is_some() && !l.fresh(&key.spec, now) {
                l.capacity = None;
                l.state = None;
                l.at = None;
                due.extend(l.pools.iter().copied());
            }
        }
        for (id, &(zi, pi)) in self.pool_refs.iter().enumerate() {
            let pool = &self.config.zones[zi].pools[pi];
            let ramping = pool.slow_start.is_some_and(|w| {
                pool.members.iter().any(|m| {
                    self.came_up.get(&m.address).is_some_and(|t| {
                        now.saturating_duration_since(*t) <= w + Duration::from_secs(1)
                    })
                })
            });
            if ramping {
                due.push(id as u32);
            }
        }
        due.sort_unstable();
        due.dedup();
        if !due.is_empty() {
            self.republish(&due);
        }
    }

    fn republish(&mut self, pools: &[u32]) {
        for &id in pools {
            self.pool_answers[id as usize] = self.answer_of(id);
            self.gauge_pool(id);
        }
        self.live.publish(self.snapshot());
    }

    /// Set the `member_up` gauges of one pool.
    fn gauge_pool(&self, id: u32) {
        let (zi, pi) = self.pool_refs[id as usize];
        let zone = &self.config.zones[zi];
        let pool = &zone.pools[pi];
        let cells = &self.pool_cells[id as usize];
        for m in &pool.members {
            if let Some(cell) = cell_of(cells, m.address) {
                cell.set_up(self.member_status(zone, pool, m) != Status::Down);
            }
        }
    }

    /// The metrics this table reports into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Replace the config. Probes whose (address, spec) stays keep their state.
    pub fn reload(&mut self, config: Config, now: Instant) -> Result<ProbeChanges, BuildError> {
        let zones = Arc::new(Snapshot::build_zones(
            &config.zones,
            &self.metrics.counters,
        )?);
        let old: HashMap<Arc<ProbeKey>, Probe> = std::mem::take(&mut self.probes);
        let old_loads: HashMap<Arc<LoadKey>, LoadState> = std::mem::take(&mut self.loads);
        self.now = now;
        self.config = kept(config);
        self.zones = zones;
        self.index_probes(|key| {
            old.get(key)
                .map_or_else(|| State::new(now), |p| p.state.clone())
        });
        let changes = ProbeChanges {
            added: self
                .probes
                .keys()
                .filter(|k| !old.contains_key(*k))
                .cloned()
                .collect(),
            removed: old
                .keys()
                .filter(|k| !self.probes.contains_key(*k))
                .cloned()
                .collect(),
            loads_added: self
                .loads
                .keys()
                .filter(|k| !old_loads.contains_key(*k))
                .cloned()
                .collect(),
            loads_removed: old_loads
                .keys()
                .filter(|k| !self.loads.contains_key(*k))
                .cloned()
                .collect(),
        };
        // Load sources that stay keep their smoothed reports.
        for (k, l) in self.loads.iter_mut() {
            if let Some(o) = old_loads.get(k) {
                let pools = std::mem::take(&mut l.pools);
                *l = LoadState { pools, ..o.clone() };
            }
        }
        self.generation += 1;
        self.recompute_all();
        self.live.publish(self.snapshot());
        self.metrics.generation.set(self.generation as i64);
        // Zones and members the new config dropped stop being exported.
        self.metrics.counters.prune();
        Ok(changes)
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            zones: self.zones.clone(),
            pools: self.pool_answers.clone(),
            generation: self.generation,
            counters: self.metrics.counters.clone(),
        }
    }

    /// Number the pools and collect the probes they need.
    fn index_probes(&mut self, mut state_of: impl FnMut(&ProbeKey) -> State) {
        self.pool_refs.clear();
        for (zi, z) in self.config.zones.iter().enumerate() {
            for pi in 0..z.pools.len() {
                self.pool_refs.push((zi, pi));
            }
        }
        for (id, &(zi, pi)) in self.pool_refs.iter().enumerate() {
            let pool = &self.config.zones[zi].pools[pi];
            for m in &pool.members {
                if let Some(spec) = &pool.load {
                    let key = LoadKey {
                        address: m.address,
                        spec: (**spec).clone(),
                    };
                    let l = self.loads.entry(Arc::new(key)).or_default();
                    if !l.pools.contains(&(id as u32)) {
                        l.pools.push(id as u32);
                    }
                }
                for c in &pool.checks {
                    let key = ProbeKey {
                        address: m.address,
                        spec: c.spec.clone(),
                    };
                    if let Some(p) = self.probes.get_mut(&key) {
                        if !p.pools.contains(&(id as u32)) {
                            p.pools.push(id as u32);
                        }
                        if !p.names.contains(&c.name) {
                            p.names.push(c.name.clone());
                        }
                        continue;
                    }
                    let state = state_of(&key);
                    self.probes.insert(
                        Arc::new(key),
                        Probe {
                            state,
                            pools: vec![id as u32],
                            names: vec![c.name.clone()],
                        },
                    );
                }
            }
        }
    }

    fn recompute_all(&mut self) {
        self.pool_cells = self
            .pool_refs
            .iter()
            .map(|&(zi, pi)| {
                let zone = &self.config.zones[zi];
                let pool = &zone.pools[pi];
                let addresses = |p: &model::Pool| -> Vec<IpAddr> {
                    p.members.iter().map(|m| m.address).collect()
                };
                let fallbacks = match &pool.when_all_down {
                    WhenAllDown::Addresses(a) => a.clone(),
                    WhenAllDown::Pool(name) => zone
                        .pools
                        .iter()
                        .find(|p| p.name == *name)
                        .map(addresses)
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                self.metrics.counters.pool_cells(
                    &zone.origin.to_string(),
                    &pool.name,
                    &addresses(pool),
                    &fallbacks,
                )
            })
            .collect();
        self.pool_answers = (0..self.pool_refs.len() as u32)
            .map(|id| self.answer_of(id))
            .collect();
        for id in 0..self.pool_refs.len() as u32 {
            self.gauge_pool(id);
        }
        let m = &self.metrics.overrides;
        m.clear();
        for (_, o) in self.overrides.iter() {
            let kind = o.kind.as_str();
            m.get_or_create(&crate::metrics::KindLabels { kind }).inc();
        }
    }

    /// The load source of a member, if its pool has one.
    fn load_of(&self, pool: &model::Pool, m: &model::Member) -> Option<&LoadState> {
        let spec = pool.load.as_ref()?;
        self.loads.get(&LoadKey {
            address: m.address,
            spec: (**spec).clone(),
        })
    }

    /// The status of a member of a pool: an operator's force-up/force-down first, then all of
    /// the pool's checks combined (no checks: up); an agent that says `down` or `maint` takes
    /// the member down too.
    pub(crate) fn member_status(
        &self,
        zone: &model::Zone,
        pool: &model::Pool,
        m: &model::Member,
    ) -> Status {
        match self.override_for(zone, m.address, m.site).map(|o| o.kind) {
            Some(OverrideKind::ForceUp) => return Status::Up,
            Some(OverrideKind::ForceDown) => return Status::Down,
            _ => {}
        }
        if let (Some(l), Some(spec)) = (self.load_of(pool, m), &pool.load)
            && l.state == Some(AgentState::Down)
            && l.fresh(spec, self.now)
        {
            return Status::Down;
        }
        health::combine(pool.checks.iter().map(|c| {
            let key = ProbeKey {
                address: m.address,
                spec: c.spec.clone(),
            };
            self.probes
                .get(&key)
                .map_or(Status::Unknown, |p| p.state.status)
        }))
    }

    /// Run the publish-time steps of the pipeline for one pool and encode the result: health,
    /// failover and `when_all_down` once per family, then topology once per site.
    fn answer_of(&self, id: u32) -> PoolAnswer {
        let (zi, pi) = self.pool_refs[id as usize];
        let zone = &self.config.zones[zi];
        let pool = &zone.pools[pi];
        let judge = self.judge(zone);
        let v4 = pipeline::family(pool, Family::V4, &judge, &mut NoTrace);
        let v6 = pipeline::family(pool, Family::V6, &judge, &mut NoTrace);
        let sites: Vec<Option<usize>> = if pool.policy.topology {
            std::iter::once(None)
                .chain((0..zone.sites.len()).map(Some))
                .collect()
        } else {
            vec![None]
        };
        let cells = &self.pool_cells[id as usize];
        // Every address a pool answers with has a cell (fallbacks too); a detached one would
        // only go uncounted.
        let hits = |address: IpAddr| cell_of(cells, address).cloned().unwrap_or_default();
        let encode = |e: &Eligible, site, f| {
            let e = pipeline::site(pool, e, site, &zone.sites, &mut NoTrace);
            encode_family(pool, &e, f, &hits)
        };
        PoolAnswer(
            sites
                .into_iter()
                .map(|site| View {
                    v4: encode(&v4, site, Family::V4),
                    v6: encode(&v6, site, Family::V6),
                })
                .collect(),
        )
    }

    /// The pipeline's view of this table for the pools of `zone`.
    pub(crate) fn judge<'a>(&'a self, zone: &'a model::Zone) -> Judge<'a> {
        Judge { table: self, zone }
    }
}

/// What the pipeline asks the writer: health, overrides and load of the members of one zone.
pub(crate) struct Judge<'a> {
    table: &'a Table,
    zone: &'a model::Zone,
}

impl pipeline::Judge for Judge<'_> {
    fn status(&self, pool: &model::Pool, m: &model::Member) -> Status {
        self.table.member_status(self.zone, pool, m)
    }

    fn drained(&self, c: &select::Candidate) -> bool {
        self.table
            .override_for(self.zone, c.address, c.site)
            .is_some_and(|o| o.kind == OverrideKind::Drain)
    }

    fn weight(&self, pool: &model::Pool, c: &select::Candidate) -> u32 {
        self.table.effective_weight(pool, c)
    }

    fn pool(&self, name: &str) -> Option<&model::Pool> {
        self.zone.pools.iter().find(|p| p.name == name)
    }
}

impl Table {
    /// Weight × spare capacity (fresh load reports, smoothed) × slow-start ramp. A drained
    /// member gets 0: weighted sampling then never picks it while another member has weight.
    /// Scaled by 100 so that small capacities keep their proportion.
    pub(crate) fn effective_weight(&self, pool: &model::Pool, c: &select::Candidate) -> u32 {
        let Some(m) = pool.members.iter().find(|m| m.address == c.address) else {
            return c.weight;
        };
        let mut w = f64::from(c.weight) * 100.0;
        if let (Some(l), Some(spec)) = (self.load_of(pool, m), &pool.load)
            && l.fresh(spec, self.now)
        {
            if l.state == Some(AgentState::Drain) {
                return 0;
            }
            w *= l.capacity.unwrap_or(1.0);
        }
        if let (Some(window), Some(t)) = (pool.slow_start, self.came_up.get(&m.address)) {
            w *= slow_start_factor(window, self.now.saturating_duration_since(*t));
        }
        // A member with some capacity never drops to 0: it keeps a small share.
        if w > 0.0 {
            (w.round() as u32).max(1)
        } else {
            0
        }
    }
}

/// Encode what one group of clients gets for one family (the pipeline's result for their
/// site) as A or AAAA records.
fn encode_family(
    pool: &model::Pool,
    e: &Eligible,
    f: Family,
    hits: &dyn Fn(IpAddr) -> Hits,
) -> FamilyAnswer {
    let (members, degraded) = match e {
        Eligible::NoData => return FamilyAnswer::NoData,
        Eligible::ServFail => return FamilyAnswer::ServFail,
        Eligible::Members { members, degraded } => (members, *degraded),
    };
    // DESIGN §4: the TTL is halved while the pool is degraded, so clients come back sooner.
    let ttl = if degraded { pool.ttl / 2 } else { pool.ttl };
    let (rtype, alen) = match f {
        Family::V4 => (wire::TYPE_A, 4usize),
        Family::V6 => (wire::TYPE_AAAA, 16usize),
    };
    let rec_len = 2 + 10 + alen;
    let slot = |m: &select::Candidate| {
        let mut record = [0u8; 28];
        // [0..2] is the owner slot, patched per query.
        record[2..4].copy_from_slice(&rtype.to_be_bytes());
        record[4..6].copy_from_slice(&CLASS_IN.to_be_bytes());
        record[6..10].copy_from_slice(&ttl.to_be_bytes());
        record[10..12].copy_from_slice(&(alen as u16).to_be_bytes());
        match m.address {
            IpAddr::V4(a) => record[12..16].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => record[12..28].copy_from_slice(&a.octets()),
        }
        Slot {
            record,
            weight: m.weight,
            key: if pool.policy.order == Order::Sticky {
                order::member_key(&m.address)
            } else {
                0
            },
            hits: hits(m.address),
        }
    };
    FamilyAnswer::Records {
        order: pool.policy.order,
        max: pool.max_answers.min(order::MAX_PICK as u8),
        rec_len: rec_len as u8,
        members: members.iter().map(slot).collect(),
    }
}

/// Encode the records of one RRset (see [`RRset`]).
fn encode(rtype: u16, ttl: u32, rdata: &[RData]) -> Result<RRset, String> {
    let mut wire_out = Vec::new();
    let mut owners = Vec::new();
    let mut targets = Vec::new();
    for d in rdata {
        let mut buf = Vec::new();
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_name_encoding(NameEncoding::Uncompressed);
        d.emit(&mut enc).map_err(|e| e.to_string())?;
        let rdlen =
            u16::try_from(buf.len()).map_err(|_| "record data over 65535 octets".to_string())?;
        owners.push(wire_out.len() as u16);
        wire_out.extend_from_slice(&[0, 0]);
        wire_out.extend_from_slice(&rtype.to_be_bytes());
        wire_out.extend_from_slice(&CLASS_IN.to_be_bytes());
        wire_out.extend_from_slice(&ttl.to_be_bytes());
        wire_out.extend_from_slice(&rdlen.to_be_bytes());
        let rdata_at = wire_out.len();
        wire_out.extend_from_slice(&buf);
        let target = match d {
            RData::NS(n) => Some((0, &n.0)),
            RData::CNAME(n) => Some((0, &n.0)),
            RData::MX(mx) => Some((2, &mx.exchange)),
            RData::SRV(srv) => Some((6, &srv.target)),
            _ => None,
        };
        if let Some((off, name)) = target {
            targets.push(Target {
                at: u16::try_from(rdata_at + off)
                    .map_err(|_| "RRset over 65535 octets".to_string())?,
                name: lower_wire(name).into_boxed_slice(),
            });
        }
    }
    if wire_out.len() > u16::MAX as usize {
        return Err("RRset over 65535 octets".into());
    }
    Ok(RRset {
        rtype,
        wire: wire_out.into_boxed_slice(),
        owners: owners.into_boxed_slice(),
        targets: targets.into_boxed_slice(),
    })
}

/// What the table keeps of a config once its zones are built: static records and name
/// bindings live on in the snapshot's nodes only (a zone of 100,000 static names would
/// otherwise be held twice); pools, sites and settings stay, to recompute answers from.
///
/// The rest is copied, not moved: the parsed config lies scattered among the parser's freed
/// garbage, pinning those pages; the copy fills the holes and the original's pages go back to
/// the system (10,000 one-member pools: 17.2–18.9 MiB over ten reloads instead of 17.5–21.1).
fn kept(mut config: Config) -> Config {
    for z in &mut config.zones {
        z.rrsets = Vec::new();
        z.bindings = Vec::new();
    }
    config.clone()
}

/// A name in wire format, lowercased (RFC 4343: comparisons are case-insensitive).
pub fn lower_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// Offsets of the labels of a wire-format name (0 first), not counting the root.
fn label_offsets(wire: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < wire.len() && wire[at] != 0 {
        out.push(at);
        at += 1 + wire[at] as usize;
    }
    out
}

/// `name` lies strictly below `ancestor` (both lowercased wire format).
fn is_strict_descendant(name: &[u8], ancestor: &[u8]) -> bool {
    name.len() > ancestor.len()
        && label_offsets(name)
            .into_iter()
            .any(|off| &name[off..] == ancestor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_named_as_the_api_names_them() {
        for kind in [
            OverrideKind::Drain,
            OverrideKind::ForceUp,
            OverrideKind::ForceDown,
        ] {
            let word = kind.to_string();
            assert_eq!(word.parse::<OverrideKind>(), Ok(kind));
            // the same word as in overrides.json and the status JSON
            assert_eq!(serde_json::to_value(kind).unwrap(), word.as_str());
        }
        assert!("Drain".parse::<OverrideKind>().is_err());
        let o = Override {
            kind: OverrideKind::Drain,
            reason: "patching".into(),
            set_unix: 1000,
            expires_unix: Some(1600),
        };
        assert_eq!(o.describe(1000), "drain (patching), expires in 10m");
        let o = Override {
            kind: OverrideKind::ForceDown,
            reason: String::new(),
            set_unix: 1000,
            expires_unix: None,
        };
        assert_eq!(o.describe(1000), "force-down");
    }

    #[test]
    fn wire_names_and_descendants() {
        let n = Name::from_ascii("WWW.Example.").unwrap();
        assert_eq!(lower_wire(&n), b"\x03www\x07example\x00");
        assert_eq!(label_offsets(b"\x01a\x02bc\x00"), vec![0, 2]);
        assert!(is_strict_descendant(b"\x01a\x02bc\x00", b"\x02bc\x00"));
        assert!(!is_strict_descendant(b"\x02bc\x00", b"\x02bc\x00"));
        // a suffix of bytes that is not at a label boundary is not an ancestor
        assert!(!is_strict_descendant(b"\x03abc\x00", b"\x02bc\x00"));
    }

    #[test]
    fn encodes_records_with_owner_slots_and_targets() {
        let mx = RData::MX(hickory_proto::rr::rdata::MX::new(
            10,
            Name::from_ascii("Mail.example.").unwrap(),
        ));
        let r = encode(wire::TYPE_MX, 300, &[mx]).unwrap();
        assert_eq!(r.count(), 1);
        assert_eq!(&r.wire[..12], &[0, 0, 0, 15, 0, 1, 0, 0, 1, 44, 0, 16]);
        assert_eq!(r.targets[0].at, 14);
        assert_eq!(&*r.targets[0].name, b"\x04mail\x07example\x00");
        // the exchange keeps its case in the data
        assert_eq!(&r.wire[14..19], b"\x04Mail");
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;
    use crate::probe::load::Load;

    fn config() -> Config {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zones");
        let mut c = crate::config::load(&crate::config::Sources {
            config: None,
            zones_dir: Some(dir),
        })
        .expect("bundled zones")
        .config;
        let pool = &mut c.zones[0].pools[0];
        pool.policy.order = Order::LeastLoaded;
        pool.load = Some(Box::new(model::LoadSpec {
            kind: model::LoadKind::Agent { port: 9 },
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
        }));
        c
    }

    #[test]
    fn stale_load_reports_are_forgotten_once() {
        let t0 = Instant::now();
        let mut t = Table::new(config(), &|_| None, t0, Arc::default()).unwrap();
        let key = t.loads().next().unwrap().clone();
        let load = Load {
            capacity: Some(0.2),
            state: None,
        };
        t.observe_load(&key, Ok(load), t0);
        assert_eq!(t.loads.get(&*key).unwrap().capacity, Some(0.2));
        // fresh: nothing to do
        let g = t.live.load().pools[0].clone();
        t.tick(t0 + Duration::from_secs(2));
        assert!(g.same(&t.live.load().pools[0]), "no republish while fresh");
        // three intervals later the report is forgotten and the pool recomputed, once
        t.tick(t0 + Duration::from_secs(4));
        assert_eq!(t.loads.get(&*key).unwrap().capacity, None);
        let g = t.live.load().pools[0].clone();
        t.tick(t0 + Duration::from_secs(5));
        assert!(g.same(&t.live.load().pools[0]), "not recomputed again");
    }

    #[test]
    fn member_up_is_exported_for_members_only_across_reloads() {
        let mut c = config();
        let pool = &mut c.zones[0].pools[0];
        pool.load = None;
        pool.policy.order = Order::RoundRobin;
        let member = pool.members[0].address;
        let spare: IpAddr = "192.0.2.99".parse().unwrap();
        pool.when_all_down = WhenAllDown::Addresses(vec![spare]);
        let name = pool.name.clone();
        let zone = c.zones[0].origin.to_string();
        let line =
            |a: IpAddr| format!(r#"gslbd_member_up{{zone="{zone}",pool="{name}",member="{a}"}}"#);
        let metrics = Arc::new(Metrics::new());
        let t0 = Instant::now();
        let mut t = Table::new(c.clone(), &|_| None, t0, metrics.clone()).unwrap();
        let text = metrics.encode();
        assert!(text.contains(&line(member)), "{text}");
        assert!(
            !text.contains(&line(spare)),
            "a fallback is not a member: {text}"
        );
        // The spare becomes a member, then only a fallback again.
        let mut with_spare = c.clone();
        let mut members = with_spare.zones[0].pools[0].members.to_vec();
        members.push(model::Member {
            address: spare,
            weight: 1,
            priority: 0,
            site: None,
        });
        with_spare.zones[0].pools[0].members = members.into();
        t.reload(with_spare, t0).unwrap();
        assert!(metrics.encode().contains(&line(spare)));
        t.reload(c, t0).unwrap();
        let text = metrics.encode();
        assert!(!text.contains(&line(spare)), "{text}");
        assert!(text.contains(&line(member)), "{text}");
    }
}
