//! Prometheus metrics (`GET /metrics`), with prometheus-client and no global registry.
//!
//! The query path only adds to atomics that already exist: every zone has a [`ZoneStats`]
//! (queries by transport × qtype × rcode, sharded per thread so two UDP threads do not fight
//! over one cache line) and every pool member a hit counter, both created when a snapshot is
//! built and found through it. They are read at scrape time by a [`Collector`]. Everything else
//! (health, probes, reloads) is written by the one writer task into ordinary metric families.
//! Never labelled by query name or client address: the label sets are bounded by the config.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::dns::wire::{self, RCODE_BADVERS, Transport};
use crate::probe::Failure;

/// Query types counted by name; everything else is `other`.
const QTYPES: [(u16, &str); 17] = [
    (wire::TYPE_A, "A"),
    (wire::TYPE_NS, "NS"),
    (5, "CNAME"),
    (wire::TYPE_SOA, "SOA"),
    (12, "PTR"),
    (wire::TYPE_MX, "MX"),
    (16, "TXT"),
    (wire::TYPE_AAAA, "AAAA"),
    (wire::TYPE_SRV, "SRV"),
    (43, "DS"),
    (48, "DNSKEY"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (wire::TYPE_IXFR, "IXFR"),
    (wire::TYPE_AXFR, "AXFR"),
    (wire::TYPE_ANY, "ANY"),
    (257, "CAA"),
];
const QTYPE_SLOTS: usize = QTYPES.len() + 1;

/// Response codes counted by name (BADVERS is the extended code 16); everything else `other`.
const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other",
];

const TRANSPORTS: [&str; 2] = ["udp", "tcp"];
const CELLS: usize = TRANSPORTS.len() * QTYPE_SLOTS * RCODES.len();
const SHARDS: usize = 4;

fn qtype_slot(qtype: u16) -> usize {
    QTYPES
        .iter()
        .position(|(t, _)| *t == qtype)
        .unwrap_or(QTYPES.len())
}

fn rcode_slot(rcode: u8) -> usize {
    match rcode {
        0..=5 => rcode as usize,
        RCODE_BADVERS => 6,
        _ => 7,
    }
}

fn transport_slot(t: Transport) -> usize {
    match t {
        Transport::Udp => 0,
        Transport::Tcp => 1,
    }
}

/// The shard of the calling thread: threads take shards in turn, once.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

#[repr(align(64))]
struct Shard([AtomicU64; CELLS]);

/// Query counters of one zone (or of queries no zone took).
pub struct ZoneStats {
    shards: Box<[Shard; SHARDS]>,
}

impl Default for ZoneStats {
    fn default() -> Self {
        ZoneStats {
            shards: Box::new(std::array::from_fn(|_| {
                Shard(std::array::from_fn(|_| AtomicU64::new(0)))
            })),
        }
    }
}

impl ZoneStats {
    /// Count one response. An atomic add; no allocation, no lock.
    pub fn count(&self, transport: Transport, qtype: u16, rcode: u8) {
        let cell = (transport_slot(transport) * QTYPE_SLOTS + qtype_slot(qtype)) * RCODES.len()
            + rcode_slot(rcode);
        self.shards[shard()].0[cell].fetch_add(1, Relaxed);
    }

    fn get(&self, cell: usize) -> u64 {
        self.shards.iter().map(|s| s.0[cell].load(Relaxed)).sum()
    }
}

/// What is known of one address of one pool: how often the query path handed it out, and
/// whether it is usable (for `gslbd_member_up`; unset for an address that is only a fallback).
#[derive(Debug)]
pub struct MemberCell {
    hits: AtomicU64,
    /// 1 usable, 0 down, -1 not a member (a fallback address).
    up: AtomicI8,
}

impl Default for MemberCell {
    fn default() -> Self {
        MemberCell {
            hits: AtomicU64::new(0),
            up: AtomicI8::new(-1),
        }
    }
}

impl MemberCell {
    /// One answer carried this address. An atomic add: no allocation, no lock.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Relaxed);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Relaxed)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(i8::from(up), Relaxed);
    }

    /// Not a member (any more): no `gslbd_member_up` line.
    pub fn clear_up(&self) {
        self.up.store(-1, Relaxed);
    }
}

/// A member's cell, shared by the writer's table and the snapshots that answer with it.
pub type Hits = Arc<MemberCell>;

/// The cells of one pool, sorted by address (see [`Counters::pool_cells`]).
pub type PoolCells = Box<[(IpAddr, Hits)]>;

/// The cell of `address` among a pool's cells.
pub fn cell_of(cells: &[(IpAddr, Hits)], address: IpAddr) -> Option<&Hits> {
    cells
        .binary_search_by_key(&address, |(a, _)| *a)
        .ok()
        .map(|i| &cells[i].1)
}

/// The counters the query path adds to, kept across snapshots and reloads: a zone or member
/// that stays keeps counting from where it was.
#[derive(Default)]
pub struct Counters {
    /// Queries outside every zone, malformed ones, and those refused before a zone was found.
    pub unzoned: ZoneStats,
    /// Packets dropped without an answer (not a DNS query, or a response), by transport.
    pub dropped: [AtomicU64; 2],
    /// UDP answers held back by response rate limiting: dropped, and sent truncated (slip).
    rrl: [AtomicU64; 2],
    zones: Mutex<BTreeMap<String, Arc<ZoneStats>>>,
    /// zone → pool → cells sorted by address. Names are stored once per zone and pool, not per
    /// member: a config of 10,000 one-member pools costs ~100 bytes per member here.
    members: Mutex<BTreeMap<Arc<str>, ZoneCells>>,
}

/// pool → its cells, sorted by address.
type ZoneCells = BTreeMap<Arc<str>, Vec<(IpAddr, Hits)>>;

/// Encodes one member's line of a metric family.
type EncodeMember<'a> =
    dyn FnMut(&str, &str, &str, &MemberCell) -> Result<(), std::fmt::Error> + 'a;

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counters")
    }
}

impl Counters {
    pub fn dropped(&self, transport: Transport) {
        self.dropped[transport_slot(transport)].fetch_add(1, Relaxed);
    }

    /// One answer limited by RRL: sent truncated (`slip`) or dropped.
    pub fn rrl_limited(&self, slip: bool) {
        self.rrl[usize::from(slip)].fetch_add(1, Relaxed);
    }

    /// The counters of a zone, created on first use (at snapshot build time).
    pub fn zone(&self, zone: &str) -> Arc<ZoneStats> {
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        zones.entry(zone.to_string()).or_default().clone()
    }

    /// The cells of the addresses a pool may answer with, its members and its fallbacks, created
    /// on first use, sorted by address (find one with [`cell_of`]). A cell that stays in the
    /// config keeps counting; an address that is only a fallback has no `member_up`.
    pub fn pool_cells(
        &self,
        zone: &str,
        pool: &str,
        members: &[IpAddr],
        fallbacks: &[IpAddr],
    ) -> PoolCells {
        let mut zones = self.members.lock().unwrap_or_else(|e| e.into_inner());
        if !zones.contains_key(zone) {
            zones.insert(Arc::from(zone), BTreeMap::new());
        }
        let pools = zones.get_mut(zone).expect("inserted above");
        if !pools.contains_key(pool) {
            pools.insert(Arc::from(pool), Vec::new());
        }
        let cells = pools.get_mut(pool).expect("inserted above");
        let mut get_or_create =
            |address: IpAddr| match cells.binary_search_by_key(&address, |(a, _)| *a) {
                Ok(i) => cells[i].1.clone(),
                Err(i) => {
                    let cell = Hits::default();
                    cells.insert(i, (address, cell.clone()));
                    cell
                }
            };
        let mut out: Vec<(IpAddr, Hits)> = members.iter().map(|&a| (a, get_or_create(a))).collect();
        out.sort_unstable_by_key(|(a, _)| *a);
        out.dedup_by_key(|(a, _)| *a);
        let member_count = out.len();
        for &a in fallbacks {
            if out[..member_count]
                .binary_search_by_key(&a, |(m, _)| *m)
                .is_err()
            {
                let cell = get_or_create(a);
                cell.clear_up();
                out.push((a, cell));
            }
        }
        cells.shrink_to_fit();
        out.sort_unstable_by_key(|(a, _)| *a);
        out.dedup_by_key(|(a, _)| *a);
        out.into_boxed_slice()
    }

    /// Forget counters no snapshot uses any more (after a reload removed their zone or member).
    pub fn prune(&self) {
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        zones.retain(|_, z| Arc::strong_count(z) > 1);
        drop(zones);
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.retain(|_, pools| {
            pools.retain(|_, cells| {
                cells.retain(|(_, c)| Arc::strong_count(c) > 1);
                !cells.is_empty()
            });
            !pools.is_empty()
        });
    }
}

impl Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let zones: Vec<(String, Arc<ZoneStats>)> = self
            .zones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut family = encoder.encode_descriptor(
            "gslbd_dns_queries",
            "DNS responses sent, by zone (empty: none of ours), query type, response code and transport",
            None,
            MetricType::Counter,
        )?;
        let all = std::iter::once(("", &self.unzoned))
            .chain(zones.iter().map(|(name, z)| (name.as_str(), &**z)));
        for (zone, stats) in all {
            for (ti, transport) in TRANSPORTS.iter().enumerate() {
                for qi in 0..QTYPE_SLOTS {
                    let qtype = QTYPES.get(qi).map_or("other", |(_, n)| n);
                    for (ri, rcode) in RCODES.iter().enumerate() {
                        let v = stats.get((ti * QTYPE_SLOTS + qi) * RCODES.len() + ri);
                        if v == 0 {
                            continue;
                        }
                        let labels = [
                            ("zone", zone),
                            ("qtype", qtype),
                            ("rcode", rcode),
                            ("transport", transport),
                        ];
                        ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }

        let mut family = encoder.encode_descriptor(
            "gslbd_dns_dropped",
            "Packets dropped without a response (not a query, or unparseable header)",
            None,
            MetricType::Counter,
        )?;
        for (ti, transport) in TRANSPORTS.iter().enumerate() {
            let v = self.dropped[ti].load(Relaxed);
            ConstCounter::new(v).encode(family.encode_family(&[("transport", *transport)])?)?;
        }

        let mut family = encoder.encode_descriptor(
            "gslbd_rrl_limited",
            "UDP answers held back by response rate limiting: dropped, or sent truncated (slip)",
            None,
            MetricType::Counter,
        )?;
        for (i, action) in ["drop", "slip"].iter().enumerate() {
            let v = self.rrl[i].load(Relaxed);
            ConstCounter::new(v).encode(family.encode_family(&[("action", *action)])?)?;
        }

        // Encoded under the lock: only the writer's publishes wait for it, never a query.
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let each = |f: &mut EncodeMember| {
            for (zone, pools) in members.iter() {
                for (pool, cells) in pools {
                    for (address, cell) in cells {
                        f(zone, pool, &address.to_string(), cell)?;
                    }
                }
            }
            Ok(())
        };
        let mut family = encoder.encode_descriptor(
            "gslbd_pool_answers",
            "Address records of a pool member handed out in answers",
            None,
            MetricType::Counter,
        )?;
        each(&mut |zone, pool, member, cell| {
            let labels = [("zone", zone), ("pool", pool), ("member", member)];
            ConstCounter::new(cell.hits()).encode(family.encode_family(&labels)?)
        })?;
        let mut family = encoder.encode_descriptor(
            "gslbd_member_up",
            "Whether a pool member is usable (1) or down (0), after checks and force-up/force-down (drained members stay 1)",
            None,
            MetricType::Gauge,
        )?;
        each(&mut |zone, pool, member, cell| {
            let up = cell.up.load(Relaxed);
            if up < 0 {
                return Ok(());
            }
            let labels = [("zone", zone), ("pool", pool), ("member", member)];
            ConstGauge::new(i64::from(up)).encode(family.encode_family(&labels)?)
        })?;
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub member: String,
    pub check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub member: String,
    pub check: String,
    pub to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub check: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn probe_histogram() -> Histogram {
    // 1 ms … ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric gslbd exports, registered once at start.
pub struct Metrics {
    registry: Registry,
    /// AF_XDP's counters, once it runs.
    xdp: Arc<XdpSlot>,
    pub counters: Arc<Counters>,
    /// 1 up, 0 down, -1 not yet known.
    pub check_up: Family<CheckLabels, Gauge>,
    pub transitions: Family<TransitionLabels, Counter>,
    pub probe_seconds: HistogramFamily<ProbeLabels>,
    pub probe_failures: Family<FailureLabels, Counter>,
    pub reloads: Family<ResultLabels, Counter>,
    pub generation: Gauge,
    pub overrides: Family<KindLabels, Gauge>,
    /// From the end of the probe that changed a health status to the new snapshot.
    pub publish_delay: Histogram,
    /// With a cluster (labelled with this node, so that nothing shows without one): 1 while
    /// etcd is reachable, and the live nodes.
    pub cluster_connected: Family<ThisNode, Gauge>,
    pub cluster_nodes: Family<ThisNode, Gauge>,
    /// Probes each node sees up and down (its observations that count here).
    pub cluster_observations: Family<NodeLabels, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThisNode {
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub node: String,
    pub status: String,
}

/// Where XDP's counters are found once it runs (nothing is encoded before).
#[derive(Debug, Default)]
struct XdpSlot(std::sync::OnceLock<Box<dyn Collector>>);

impl Collector for XdpSlot {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        match self.0.get() {
            Some(s) => s.encode(encoder),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let counters = Arc::new(Counters::default());
        registry.register_collector(Box::new(counters.clone()));
        let xdp = Arc::new(XdpSlot::default());
        registry.register_collector(Box::new(xdp.clone()));
        let m = Metrics {
            counters,
            check_up: Family::default(),
            transitions: Family::default(),
            probe_seconds: Family::new_with_constructor(probe_histogram),
            probe_failures: Family::default(),
            reloads: Family::default(),
            generation: Gauge::default(),
            overrides: Family::default(),
            // 10 µs … ~0.3 s.
            publish_delay: Histogram::new(exponential_buckets(0.00001, 2.0, 15)),
            cluster_connected: Family::default(),
            cluster_nodes: Family::default(),
            cluster_observations: Family::default(),
            registry: Registry::default(),
            xdp,
        };
        registry.register(
            "gslbd_check_up",
            "Health of one check of one member: 1 up, 0 down, -1 not known yet",
            m.check_up.clone(),
        );
        registry.register(
            "gslbd_health_transitions",
            "Health changes of a member's check, by the state it went to",
            m.transitions.clone(),
        );
        registry.register(
            "gslbd_probe_duration_seconds",
            "Time a health probe took, by check",
            m.probe_seconds.clone(),
        );
        registry.register(
            "gslbd_probe_failures",
            "Failed health probes, by check and kind of failure",
            m.probe_failures.clone(),
        );
        registry.register(
            "gslbd_config_reloads",
            "Configuration reloads, by result (ok, rejected)",
            m.reloads.clone(),
        );
        registry.register(
            "gslbd_config_generation",
            "Generation of the configuration being served (1 at start, +1 per reload)",
            m.generation.clone(),
        );
        registry.register(
            "gslbd_overrides",
            "Operator overrides in force, by kind",
            m.overrides.clone(),
        );
        registry.register(
            "gslbd_health_publish_delay_seconds",
            "From the end of the probe that changed a health status to the snapshot answers use",
            m.publish_delay.clone(),
        );
        registry.register(
            "gslbd_cluster_connected",
            "1 while this node reaches etcd, 0 while it answers from its last cluster view",
            m.cluster_connected.clone(),
        );
        registry.register(
            "gslbd_cluster_nodes",
            "Live nodes of the cluster, this one included",
            m.cluster_nodes.clone(),
        );
        registry.register(
            "gslbd_cluster_observations",
            "Probes each live node sees up or down, as this node counts their votes",
            m.cluster_observations.clone(),
        );
        registry.register(
            "gslbd_build",
            "The version of gslbd",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics { registry, ..m }
    }

    /// XDP runs: its counters (a collector of its own) are scraped from now on.
    pub fn set_xdp(&self, stats: Box<dyn Collector>) {
        let _ = self.xdp.0.set(stats);
    }

    /// The text exposition (OpenMetrics) of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Record one probe: its duration, and its failure class if it failed.
    pub fn probe(&self, check: &str, failure: Option<Failure>, elapsed: std::time::Duration) {
        let check = check.to_string();
        self.probe_seconds
            .get_or_create(&ProbeLabels {
                check: check.clone(),
            })
            .observe(elapsed.as_secs_f64());
        if let Some(f) = failure {
            self.probe_failures
                .get_or_create(&FailureLabels {
                    check,
                    reason: f.as_str(),
                })
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_cells_and_reach_the_text() {
        let m = Metrics::new();
        let z = m.counters.zone("gslb.example.test");
        for _ in 0..3 {
            z.count(Transport::Udp, wire::TYPE_A, 0);
        }
        z.count(Transport::Tcp, wire::TYPE_AAAA, 3);
        z.count(Transport::Udp, 99, 200);
        m.counters.unzoned.count(Transport::Udp, wire::TYPE_A, 5);
        let cells = m.counters.pool_cells(
            "gslb.example.test",
            "web",
            &["192.0.2.2".parse().unwrap(), "192.0.2.1".parse().unwrap()],
            &[],
        );
        for _ in 0..7 {
            cell_of(&cells, "192.0.2.1".parse().unwrap()).unwrap().hit();
        }
        cells[1].1.set_up(false);
        let text = m.encode();
        for want in [
            r#"gslbd_dns_queries_total{zone="gslb.example.test",qtype="A",rcode="NOERROR",transport="udp"} 3"#,
            r#"gslbd_dns_queries_total{zone="gslb.example.test",qtype="AAAA",rcode="NXDOMAIN",transport="tcp"} 1"#,
            r#"gslbd_dns_queries_total{zone="gslb.example.test",qtype="other",rcode="other",transport="udp"} 1"#,
            r#"gslbd_dns_queries_total{zone="",qtype="A",rcode="REFUSED",transport="udp"} 1"#,
            r#"gslbd_pool_answers_total{zone="gslb.example.test",pool="web",member="192.0.2.1"} 7"#,
            r#"gslbd_pool_answers_total{zone="gslb.example.test",pool="web",member="192.0.2.2"} 0"#,
            r#"gslbd_member_up{zone="gslb.example.test",pool="web",member="192.0.2.2"} 0"#,
            r#"gslbd_build_info{version=""#,
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        // 192.0.2.1's health was never set: no member_up line for it.
        assert!(!text.contains(
            r#"gslbd_member_up{zone="gslb.example.test",pool="web",member="192.0.2.1"}"#
        ));
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let z = Arc::new(ZoneStats::default());
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let z = z.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        z.count(Transport::Udp, wire::TYPE_A, 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(z.get(0), 6000);
    }

    #[test]
    fn pruning_keeps_what_is_used() {
        let c = Counters::default();
        let kept = c.zone("a.test");
        let _ = c.zone("b.test");
        c.prune();
        let zones: Vec<String> = c.zones.lock().unwrap().keys().cloned().collect();
        assert_eq!(zones, ["a.test"]);
        drop(kept);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let held = c.pool_cells("a.test", "web", &[a, b], &[]);
        held[0].1.hit();
        drop(c.pool_cells("a.test", "gone", &[a], &[]));
        let again = c.pool_cells("a.test", "web", &[b, a], &[]);
        assert_eq!(again[0].1.hits(), 1, "a cell that stays keeps its count");
        drop(again);
        c.prune();
        let pools: Vec<String> = c.members.lock().unwrap()["a.test"]
            .keys()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(pools, ["web"]);
        drop(held);
        c.prune();
        assert!(c.members.lock().unwrap().is_empty());
    }
}
