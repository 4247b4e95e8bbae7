//! Turning a config into what queries read: zones into nodes of pre-encoded RRsets, and a
//! pool's pipeline result into pre-encoded address records.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::{FamilyAnswer, Map, Node, NodeKind, RRset, Slot, Target, Zone};
use crate::dns::wire::{self, CLASS_IN};
use crate::metrics::{Counters, Hits};
use crate::model::{self, Order};
use crate::select::place::Placer;
use crate::select::{self, Eligible, Family, order};

/// A config that cannot be turned into wire format (should not happen after validation).
#[derive(Debug, thiserror::Error)]
#[error("{zone}: {name} {rtype}: cannot encode record data: {reason}")]
pub struct BuildError {
    zone: String,
    name: String,
    rtype: RecordType,
    reason: String,
}

/// Build the static part of a config. Pools are numbered in config order (zone by zone);
/// their answers come from [`Table`], which knows the health.
pub(crate) fn zones(
    zones: &[model::Zone],
    geo: Option<&Arc<crate::geo::GeoDb>>,
    counters: &Counters,
) -> Result<Map<Box<[u8]>, Zone>, BuildError> {
    let mut out = Map::with_capacity_and_hasher(zones.len(), Default::default());
    let mut first_pool = 0u32;
    for z in zones {
        let apex = lower_wire(&z.origin);
        let mut zone = build_zone(z, first_pool, geo)?;
        zone.stats = counters.zone(&z.origin.to_string());
        out.insert(apex.into_boxed_slice(), zone);
        first_pool += z.pools.len() as u32;
    }
    Ok(out)
}

fn build_zone(
    z: &model::Zone,
    first_pool: u32,
    geo: Option<&Arc<crate::geo::GeoDb>>,
) -> Result<Zone, BuildError> {
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

    // A signed zone: its DNSKEY set at the apex, and an RRSIG set beside every set.
    let signer = super::OnlineSigner::of(z).map_err(|e| err(&z.origin, RecordType::DNSKEY, e))?;
    if let Some(s) = &signer {
        sets.push((&z.origin, RecordType::DNSKEY, z.ttl, s.dnskeys()));
    }

    // Delegation cuts: NS below the apex.
    let cuts: Vec<Vec<u8>> = sets
        .iter()
        .filter(|(_, t, ..)| *t == RecordType::NS)
        .map(|(n, ..)| lower_wire(n))
        .filter(|k| *k != apex)
        .collect();

    let mut nodes: Map<Box<[u8]>, Node> = Map::default();
    let mut pending: Map<Vec<u8>, Vec<RRset>> = Map::default();
    let mut cnames: Map<Vec<u8>, Box<[u8]>> = Map::default();
    for (name, rtype, ttl, rdata) in &sets {
        let mut rrset = encode(u16::from(*rtype), *ttl, rdata).map_err(|e| err(name, *rtype, e))?;
        let key = lower_wire(name);
        // RFC 4035 §2.2: the NS of a delegation and glue are not the parent's to sign; its
        // DS is.
        let authoritative = *rtype == RecordType::DS
            || !cuts
                .iter()
                .any(|c| *c == key || is_strict_descendant(&key, c));
        if let Some(s) = &signer
            && authoritative
        {
            rrset.sigs = Some(Box::new(
                s.sign(name, *rtype, *ttl, rdata)
                    .map_err(|e| err(name, *rtype, e))?,
            ));
        }
        // Only aliases into this zone are followed (RFC 1034 §4.3.2 step 3a).
        if *rtype == RecordType::CNAME
            && let Some(t) = rrset.targets.first()
            && (*t.name == *apex || is_strict_descendant(&t.name, &apex))
        {
            cnames.insert(key.clone(), t.name.clone());
        }
        pending.entry(key).or_default().push(rrset);
    }

    // Names bound to pools: nodes without static data, numbered per pool.
    let mut bound: Map<Vec<u8>, u32> = Map::default();
    let mut binding: Map<Vec<u8>, u16> = Map::default();
    let mut per_pool: Map<usize, u16> = Map::default();
    for b in &z.bindings {
        if b.pool < z.pools.len() {
            let key = lower_wire(&b.name);
            pending.entry(key.clone()).or_default();
            bound.insert(key.clone(), first_pool + b.pool as u32);
            let n = per_pool.entry(b.pool).or_default();
            binding.insert(key, *n);
            *n = n.saturating_add(1);
        }
    }

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
        let binding_index = binding.remove(&k).unwrap_or(0);
        // A signed zone proves which types a name has (and a delegation that it has no DS)
        // with the name's own NSEC; a pool name has one more per family, for when that
        // family has nothing to answer (`when_all_down: none`, or no member in a site).
        let (nsec, family_nsec) = match &signer {
            Some(s) if kind != NodeKind::Glue => {
                let mut types: Vec<u16> = rrsets.iter().map(|r| r.rtype).collect();
                let families = pool
                    .and_then(|p| z.pools.get((p - first_pool) as usize))
                    .map(|p| {
                        [
                            (wire::TYPE_A, p.members.iter().any(|m| m.address.is_ipv4())),
                            (
                                wire::TYPE_AAAA,
                                p.members.iter().any(|m| m.address.is_ipv6()),
                            ),
                        ]
                    });
                let with: Vec<u16> = families
                    .iter()
                    .flatten()
                    .filter(|(_, has)| *has)
                    .map(|(t, _)| *t)
                    .collect();
                let owner = name_of(&k).map_err(|e| err(&z.origin, RecordType::NSEC, e))?;
                let nsec_of = |types: &[u16]| {
                    s.nsec(&owner, types, z.negative_ttl())
                        .map_err(|e| err(&owner, RecordType::NSEC, e))
                };
                let family_nsec = if families.is_some() {
                    let without = |absent: u16| {
                        let mut t = types.clone();
                        t.extend(with.iter().filter(|f| **f != absent));
                        nsec_of(&t)
                    };
                    Some(Box::new([
                        without(wire::TYPE_A)?,
                        without(wire::TYPE_AAAA)?,
                    ]))
                } else {
                    None
                };
                types.extend(&with);
                (Some(Box::new(nsec_of(&types)?)), family_nsec)
            }
            _ => (None, None),
        };
        nodes.insert(
            k.into_boxed_slice(),
            Node {
                kind,
                pool,
                rrsets,
                cname,
                nsec,
                family_nsec,
                binding: binding_index,
            },
        );
    }

    let mut negative_soa = encode(wire::TYPE_SOA, z.negative_ttl(), std::slice::from_ref(&soa))
        .map_err(|e| err(&z.origin, RecordType::SOA, e))?;
    if let Some(s) = &signer {
        negative_soa.sigs = Some(Box::new(
            s.sign(&z.origin, RecordType::SOA, z.negative_ttl(), &[soa])
                .map_err(|e| err(&z.origin, RecordType::SOA, e))?,
        ));
    }
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
        topology: Placer::build(&z.sites, geo),
        stats: Arc::default(),
        signer: signer.map(Arc::new),
    })
}

/// Encode what one group of clients gets for one family (the pipeline's result for their
/// site) as A or AAAA records.
pub(crate) fn family(
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
        sigs: Box::default(),
    }
}

/// Sign the answer sets a query may emit from `fam` (`crate::dnssec::sets`) under each name
/// the pool is bound to (`names`: binding index and name).
pub(crate) fn sign_family(
    fam: &mut FamilyAnswer,
    signer: &super::OnlineSigner,
    names: &[(u16, Name)],
) {
    let FamilyAnswer::Records {
        order,
        max,
        rec_len,
        members,
        sigs,
    } = fam
    else {
        return;
    };
    if members.len() > 64 || names.is_empty() {
        return;
    }
    let rec_len = usize::from(*rec_len);
    let (rtype, ttl) = {
        let r = &members[0].record;
        (
            u16::from_be_bytes([r[2], r[3]]),
            u32::from_be_bytes([r[6], r[7], r[8], r[9]]),
        )
    };
    let mut out = Vec::new();
    for set in crate::dnssec::sets::to_sign(members.len(), usize::from(*max), *order) {
        let Some(mask) = crate::dnssec::sets::mask(set.iter().copied()) else {
            continue;
        };
        let rdatas: Vec<&[u8]> = set
            .iter()
            .map(|&i| &members[i].record[12..rec_len])
            .collect();
        for (binding, name) in names {
            let made: Vec<RData> = signer
                .keys
                .iter()
                .filter_map(|k| {
                    crate::dnssec::sign::rrsig(k, name, rtype, ttl, &rdatas, signer.validity).ok()
                })
                .map(|sig| raw(RecordType::RRSIG, sig))
                .collect();
            if let Ok(rrsigs) = encode(wire::TYPE_RRSIG, ttl, &made) {
                out.push(super::SetSig {
                    binding: *binding,
                    mask,
                    rrsigs,
                });
            }
        }
    }
    out.sort_by_key(|s| (s.binding, s.mask));
    *sigs = out.into_boxed_slice();
}

/// Encode the records of one RRset (see [`RRset`]).
/// Signing at load and publish, with the zone's [`super::OnlineSigner`] (the query path signs
/// with it too).
impl super::OnlineSigner {
    fn of(z: &model::Zone) -> Result<Option<Self>, String> {
        let Some(d) = &z.dnssec else { return Ok(None) };
        let keys = crate::dnssec::Key::load_dir(&d.keys, &z.origin).map_err(|e| e.to_string())?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Some(super::OnlineSigner {
            keys,
            validity: crate::dnssec::sign::Validity::from(now, d.validity.as_secs()),
            ttl: z.negative_ttl(),
        }))
    }

    fn dnskeys(&self) -> Vec<RData> {
        self.keys
            .iter()
            .map(|k| raw(RecordType::DNSKEY, k.dnskey_rdata()))
            .collect()
    }

    /// The compact-denial NSEC of `owner` with the types it has, signed.
    fn nsec(&self, owner: &Name, types: &[u16], ttl: u32) -> Result<RRset, String> {
        let rdata = vec![raw(
            RecordType::NSEC,
            crate::dnssec::denial::compact_nsec(owner, types),
        )];
        let mut set = encode(wire::TYPE_NSEC, ttl, &rdata)?;
        set.sigs = Some(Box::new(self.sign(owner, RecordType::NSEC, ttl, &rdata)?));
        Ok(set)
    }

    /// The RRSIG set of (`name`, `rtype`, `ttl`, `rdata`), pre-encoded.
    fn sign(
        &self,
        name: &Name,
        rtype: RecordType,
        ttl: u32,
        rdata: &[RData],
    ) -> Result<RRset, String> {
        let set = model::RRset {
            name: name.clone(),
            rtype,
            ttl,
            rdata: rdata.to_vec(),
        };
        let sigs = crate::dnssec::sign::sign_rrset(&self.keys, &set, self.validity)
            .map_err(|e| e.to_string())?;
        let sigs: Vec<RData> = sigs
            .into_iter()
            .map(|s| raw(RecordType::RRSIG, s))
            .collect();
        encode(wire::TYPE_RRSIG, ttl, &sigs)
    }
}

/// A name from its lowercased wire form.
fn name_of(wire_name: &[u8]) -> Result<Name, String> {
    use hickory_proto::serialize::binary::BinDecodable;
    Name::from_bytes(wire_name).map_err(|e| e.to_string())
}

/// Record data gslbd builds itself (DNSKEY, RRSIG), as opaque octets.
fn raw(rtype: RecordType, data: Vec<u8>) -> RData {
    RData::Unknown {
        code: rtype,
        rdata: hickory_proto::rr::rdata::NULL::with(data),
    }
}

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
        sigs: None,
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
