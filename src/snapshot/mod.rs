//! The snapshot queries read, and the handle through which a new one is published.
//!
//! Everything a query needs is computed when the config or health changes ([`build`]): names
//! are lowercased wire-format keys, RRsets are pre-encoded records whose owner name is a
//! two-byte slot patched with a compression pointer per query, delegation cuts and glue are
//! marked, and empty non-terminals exist as nodes without data. The query path (`dns::answer`)
//! then does a few hash lookups and copies bytes.
//!
//! ```text
//!   model::Config ──build──▶ Snapshot ──Live::publish──▶ ArcSwap ◀──load── queries
//! ```

pub mod build;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;

use crate::dns::wire;
use crate::metrics::{Counters, Hits, ZoneStats};
use crate::model::Order;
use crate::select::order;
use crate::select::place::Placer;

pub use build::{BuildError, lower_wire};

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
    pub(crate) zones: Arc<Map<Box<[u8]>, Zone>>,
    /// The answers of every pool, by pool id (`Node::pool`); replaced when health changes.
    pub pools: Vec<PoolAnswer>,
    /// Counts up with every published config, for logs and metrics.
    pub generation: u64,
    /// What the query path counts into (kept across snapshots).
    pub counters: Arc<Counters>,
    /// This server's NSID (RFC 5001), sent to clients that ask: the cluster node's name.
    pub nsid: Option<Arc<[u8]>>,
}

/// What a pool answers right now, per address family; shared by the snapshots until the pool's
/// health changes. A pool without `topology` or `nearest` has one view. One with either has a
/// view per site that clients may be sent to (and one for every member), and `by_order` says
/// which serves the clients of each order of the zone's [`Placer`]. All precomputed here, so a
/// query only places its client and looks two numbers up.
#[derive(Clone)]
pub struct PoolAnswer {
    pub(crate) views: Arc<[View]>,
    pub(crate) by_order: Arc<[u16]>,
    pub(crate) placing: Placing,
}

/// Which of a client's orders a pool goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placing {
    None,
    Topology,
    Nearest,
}

impl PoolAnswer {
    /// Whether the answer depends on where the client is.
    pub fn placed(&self) -> bool {
        self.placing != Placing::None && self.views.len() > 1
    }

    /// The view for a client placed at `p` (`None`: not placed).
    pub fn view(&self, p: Option<&crate::select::place::Placement>) -> &View {
        let order = match (self.placing, p) {
            (Placing::Topology, Some(p)) => p.topology,
            (Placing::Nearest, Some(p)) => p.nearest,
            _ => 0,
        };
        let i = self.by_order.get(usize::from(order)).copied().unwrap_or(0);
        self.views.get(usize::from(i)).unwrap_or(&self.views[0])
    }

    /// The same answer (not recomputed since).
    #[cfg(test)]
    pub(crate) fn same(&self, other: &PoolAnswer) -> bool {
        Arc::ptr_eq(&self.views, &other.views)
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
        /// In a signed zone: the RRSIGs of the sets a query may emit, by (name the pool is
        /// bound to, mask of member indices), sorted for a binary search.
        sigs: Box<[SetSig]>,
    },
}

/// The RRSIGs of one answer set of a pool under one of its names.
pub struct SetSig {
    /// The name's `Node::binding`.
    pub binding: u16,
    pub mask: u64,
    pub rrsigs: RRset,
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
    pub topology: Option<std::sync::Arc<Placer>>,
    /// Query counters (metrics).
    pub stats: Arc<ZoneStats>,
    /// In a signed zone: what proofs for names that do not exist are signed with, online.
    pub signer: Option<Arc<OnlineSigner>>,
}

/// The keys of a signed zone and the validity of the signatures made with them: at load, at
/// publish (pool sets), and per query for the proofs that depend on the query name (compact
/// denial of a name that does not exist).
pub struct OnlineSigner {
    pub keys: Vec<crate::dnssec::Key>,
    pub validity: crate::dnssec::sign::Validity,
    /// The TTL of the proof: the zone's negative TTL.
    pub ttl: u32,
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
    /// In a signed zone: the compact-denial NSEC of this name (RFC 9824), with its RRSIGs,
    /// proving which types it has (NODATA, empty non-terminals, a delegation without DS).
    pub nsec: Option<Box<RRset>>,
    /// In a signed zone, for a pool name: the NSECs proving that it has no A (`[0]`) or no
    /// AAAA (`[1]`) records now, for a family without an answer.
    pub family_nsec: Option<Box<[RRset; 2]>>,
    /// Which of its pool's names this is (0, 1, ... in the zone's order): where its answer
    /// sets' signatures are.
    pub binding: u16,
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
    /// In a signed zone: the RRSIG records of the set, same owner, sent with DO=1.
    pub sigs: Option<Box<RRset>>,
}

pub struct Target {
    pub at: u16,
    pub name: Box<[u8]>,
}

impl RRset {
    pub fn count(&self) -> u16 {
        self.owners.len() as u16
    }

    /// Copy the pre-encoded records into `w`, each owner slot pointing at `owner_at`. Returns
    /// where they start.
    pub fn write(&self, w: &mut wire::Writer, owner_at: usize) -> Result<usize, wire::Full> {
        // A name past offset 0x3fff cannot be pointed to (RFC 1035 §4.1.4); only a very long
        // TCP answer gets there, and it is then reported as truncated.
        let ptr = wire::pointer(owner_at).ok_or(wire::Full)?;
        let start = w.pos();
        w.put(&self.wire)?;
        for &o in self.owners.iter() {
            w.patch_u16(start + o as usize, ptr);
        }
        Ok(start)
    }

    /// With DO (`dnssec_ok`), the RRSIGs of a signed set after it (same owner). Returns how
    /// many were written.
    pub fn write_sigs(
        &self,
        w: &mut wire::Writer,
        owner_at: usize,
        dnssec_ok: bool,
    ) -> Result<u16, wire::Full> {
        match &self.sigs {
            Some(sigs) if dnssec_ok => {
                sigs.write(w, owner_at)?;
                Ok(sigs.count())
            }
            _ => Ok(0),
        }
    }
}

impl Snapshot {
    pub(crate) fn clone_of(s: &Snapshot) -> Snapshot {
        Snapshot {
            zones: s.zones.clone(),
            pools: s.pools.clone(),
            generation: s.generation,
            counters: s.counters.clone(),
            nsid: s.nsid.clone(),
        }
    }

    pub fn empty() -> Snapshot {
        Snapshot {
            zones: Arc::new(Map::default()),
            pools: Vec::new(),
            generation: 0,
            counters: Arc::default(),
            nsid: None,
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
