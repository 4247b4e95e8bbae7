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
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::dns::wire::{self, CLASS_IN};
use crate::model;

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
    /// Zones by lowercased wire-format apex.
    zones: HashMap<Box<[u8]>, Zone>,
    /// Counts up with every published config, for logs and metrics.
    pub generation: u64,
}

/// One zone, ready for lookups.
pub struct Zone {
    pub origin: Name,
    /// Every name with data, every empty non-terminal, every delegation and glue name.
    pub nodes: HashMap<Box<[u8]>, Node>,
    /// The SOA with the negative-caching TTL, for the authority section of NXDOMAIN and NODATA
    /// (RFC 2308 §3).
    pub negative_soa: RRset,
    /// The answer to qtype ANY (RFC 8482 §4.2): a synthesized HINFO "RFC8482" "".
    pub any_hinfo: RRset,
    pub has_cuts: bool,
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
    pub fn build(zones: &[model::Zone], generation: u64) -> Result<Snapshot, BuildError> {
        let mut out = HashMap::with_capacity(zones.len());
        for z in zones {
            let apex = lower_wire(&z.origin);
            out.insert(apex.into_boxed_slice(), build_zone(z)?);
        }
        Ok(Snapshot {
            zones: out,
            generation,
        })
    }

    pub fn empty() -> Snapshot {
        Snapshot {
            zones: HashMap::new(),
            generation: 0,
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

fn build_zone(z: &model::Zone) -> Result<Zone, BuildError> {
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

    let mut nodes: HashMap<Box<[u8]>, Node> = HashMap::new();
    let mut pending: HashMap<Vec<u8>, Vec<RRset>> = HashMap::new();
    let mut cnames: HashMap<Vec<u8>, Box<[u8]>> = HashMap::new();
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
        nodes.insert(
            k.into_boxed_slice(),
            Node {
                kind,
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
    })
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
