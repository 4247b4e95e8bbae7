//! Query → response, over one snapshot, with no I/O, no locks and no heap allocation.
//!
//! ```text
//!  parse ─▶ class/type gate ─▶ zone (longest suffix) ─▶ delegation cut? ─▶ referral (AA clear)
//!                                                    └▶ node? ─▶ data │ CNAME chain │ NODATA
//!                                                             └▶ NXDOMAIN
//! ```
//! The rules are those of RFC 1034 §4.3.2 as NSD, Knot and gdnsd apply them; each rule names its
//! RFC where it is enforced. Responses are minimal (no NS in the authority section of positive
//! answers); addresses of NS, MX and SRV targets in the zone go into the additional section when
//! they fit.

use std::net::IpAddr;

use super::signed;
pub use super::wire::Transport;
use super::wire::{self, Full, Parsed, Query, Writer};
use crate::select::order;
use crate::snapshot::{FamilyAnswer, Node, NodeKind, RRset, Snapshot, Zone};

/// A buffer big enough for any response on any transport.
pub const MAX_RESPONSE: usize = u16::MAX as usize;

/// RFC 1034 §3.6.2 allows chains; we follow at most this many CNAMEs inside a zone.
const MAX_CNAME_CHAIN: usize = 8;

/// Answer one packet from `peer` (the resolver's address) into `out`. Returns the response
/// length, or `None` to send nothing. `out` must hold [`MAX_RESPONSE`] bytes for TCP and
/// [`wire::MAX_UDP_PAYLOAD`] for UDP.
pub fn answer(
    snap: &Snapshot,
    packet: &[u8],
    transport: Transport,
    peer: IpAddr,
    out: &mut [u8],
) -> Option<usize> {
    answer_classified(snap, packet, transport, peer, out, false).map(|(n, _)| n)
}

/// [`answer`], and the response's class for rate limiting (see [`class`]).
pub fn answer_for_rrl(
    snap: &Snapshot,
    packet: &[u8],
    transport: Transport,
    peer: IpAddr,
    out: &mut [u8],
) -> Option<(usize, u64)> {
    answer_classified(snap, packet, transport, peer, out, true)
}

fn answer_classified(
    snap: &Snapshot,
    packet: &[u8],
    transport: Transport,
    peer: IpAddr,
    out: &mut [u8],
    classify: bool,
) -> Option<(usize, u64)> {
    let unzoned = &snap.counters.unzoned;
    match wire::parse(packet) {
        Parsed::Drop => {
            snap.counters.dropped(transport);
            None
        }
        Parsed::FormErr { id, flags } => {
            unzoned.count(transport, 0, wire::RCODE_FORMERR);
            let n = error_reply(out, id, flags, wire::RCODE_FORMERR, None);
            Some((n, class(Class::Error, &[])))
        }
        Parsed::NotImp { id, flags } => {
            unzoned.count(transport, 0, wire::RCODE_NOTIMP);
            let question = wire::parse_question(packet);
            let n = error_reply(out, id, flags, wire::RCODE_NOTIMP, question);
            Some((n, class(Class::Error, &[])))
        }
        Parsed::Query(q) => Some(respond(snap, &q, transport, peer, out, classify)),
    }
}

/// Kinds of response that rate limiting tells apart (as NSD and Knot do).
#[derive(Clone, Copy)]
enum Class {
    /// Data for the query name.
    Answer = 1,
    /// NODATA: keyed by the query name too (only names that exist get one).
    NoData = 5,
    /// NXDOMAIN: keyed by the zone, so a flood of random names is one class.
    NxDomain = 2,
    /// A referral: keyed by the zone too.
    Referral = 3,
    /// REFUSED, SERVFAIL, FORMERR, NOTIMP, BADVERS: keyed by the zone if any.
    Error = 4,
}

/// The class of a response for RRL (NSD's and Knot's keying): its kind and a name (the query
/// name for data and NODATA, the zone's apex otherwise). A resolver asking for many names
/// spreads over many buckets; a flood of one name, or of random names in one zone, fills one.
/// The query type is left out, so random types do not split a flood either, and names are
/// lowercased, so 0x20 case games do not.
fn class(kind: Class, name: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(name, kind as u64)
}

/// A header-only error (plus the question when it could be read).
fn error_reply(out: &mut [u8], id: u16, flags: u16, rcode: u8, question: Option<&[u8]>) -> usize {
    let mut w = Writer::new(out, wire::MIN_UDP_PAYLOAD as usize);
    // Keep the opcode and RD of the query (RFC 1035 §4.1.1).
    let flags = wire::FLAG_QR | (flags & (0x7800 | wire::FLAG_RD)) | u16::from(rcode);
    if w.header(id, flags).is_err() {
        return 0;
    }
    if let Some(q) = question
        && w.put(q).is_ok()
    {
        w.set_count(0, 1);
    }
    w.len()
}

/// Section counts and header bits decided while answering.
#[derive(Default)]
struct Reply<'z> {
    /// The zone that took the query (for its counters).
    zone: Option<&'z Zone>,
    /// Labels of the query name above the zone's apex (for the RRL class).
    apex_labels: Option<usize>,
    rcode: u8,
    aa: bool,
    an: u16,
    ns: u16,
    ar: u16,
    /// The ECS scope: how much of the client's address decided the answer (RFC 7871 §7.2.1).
    /// 0 unless a policy used the client, so resolvers cache the answer for everyone.
    scope: u8,
    /// The client set DO (RFC 3225): signed sets go out with their RRSIGs.
    dnssec_ok: bool,
}

/// Who is asking, as far as the answer may depend on it (DESIGN §4): the ECS source prefix if
/// present (truncated to /24 or /56), else the resolver's own address.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: IpAddr,
    /// Significant leading bits of `addr`.
    pub prefix: u8,
}

impl Client {
    /// The prefix as hashed by `sticky`: its octets (zeroed past the prefix) and its length.
    fn key(&self) -> [u8; 17] {
        let mut k = [0u8; 17];
        match self.addr {
            IpAddr::V4(a) => {
                let bits = u32::from(a)
                    & u32::MAX
                        .checked_shl(32 - u32::from(self.prefix.min(32)))
                        .unwrap_or(0);
                k[..4].copy_from_slice(&bits.to_be_bytes());
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a)
                    & u128::MAX
                        .checked_shl(128 - u32::from(self.prefix.min(128)))
                        .unwrap_or(0);
                k[..16].copy_from_slice(&bits.to_be_bytes());
            }
        }
        k[16] = self.prefix;
        k
    }

    fn of(q: &Query, peer: IpAddr) -> Client {
        match q.edns.and_then(|e| e.ecs) {
            Some(ecs) if ecs.source > 0 => {
                let (addr, prefix) = ecs.client();
                Client { addr, prefix }
            }
            _ => Client {
                addr: peer,
                prefix: if peer.is_ipv4() { 32 } else { 128 },
            },
        }
    }
}

fn respond(
    snap: &Snapshot,
    q: &Query,
    transport: Transport,
    peer: IpAddr,
    out: &mut [u8],
    classify: bool,
) -> (usize, u64) {
    let size = match transport {
        Transport::Tcp => MAX_RESPONSE,
        // RFC 6891 §6.2.5: below 512 means 512; we never send more than 1232 over UDP.
        Transport::Udp => match q.edns {
            Some(e) => {
                e.payload
                    .clamp(wire::MIN_UDP_PAYLOAD, wire::MAX_UDP_PAYLOAD) as usize
            }
            None => wire::MIN_UDP_PAYLOAD as usize,
        },
    };
    let nsid = snap.nsid.as_deref();
    let reserve = q.edns.as_ref().map_or(0, |e| wire::opt_len(e, nsid));
    let nsid = nsid.filter(|_| q.edns.is_some_and(|e| e.nsid));
    let mut w = Writer::new(out, size - reserve);
    // RFC 6840 §5.9: CD is copied; RD is copied (RFC 1035 §4.1.1); RA stays clear.
    let mut flags = wire::FLAG_QR | (q.flags & (wire::FLAG_RD | wire::FLAG_CD));
    // The header and a question of at most 259 octets always fit in 512 - 11.
    if w.header(q.id, flags).is_err() || w.put(q.question).is_err() {
        return (0, 0);
    }
    w.set_count(0, 1);
    let question_end = w.pos();

    if let Some(e) = q.edns
        && e.version != 0
    {
        // RFC 6891 §6.1.3: an unknown version gets BADVERS and our version (0).
        w.set_flags(flags);
        w.set_count(3, 1);
        w.opt(wire::EXT_RCODE_BADVERS, e.dnssec_ok, None, None);
        snap.counters
            .unzoned
            .count(transport, q.qtype, wire::RCODE_BADVERS);
        return (w.len(), class(Class::Error, &[]));
    }

    let client = Client::of(q, peer);
    let mut r = Reply {
        dnssec_ok: q.edns.is_some_and(|e| e.dnssec_ok),
        ..Reply::default()
    };
    if resolve(snap, q, client, &mut w, &mut r).is_err() {
        // RFC 2181 §9 / RFC 1035 §4.2.1: what must be sent did not fit; say so and let the
        // client retry over TCP.
        w.truncate(question_end);
        r.an = 0;
        r.ns = 0;
        r.ar = 0;
        flags |= wire::FLAG_TC;
    }
    if r.aa {
        flags |= wire::FLAG_AA;
    }
    flags |= u16::from(r.rcode);
    w.set_flags(flags);
    w.set_count(1, r.an);
    w.set_count(2, r.ns);
    w.set_count(3, r.ar + u16::from(q.edns.is_some()));
    if let Some(e) = &q.edns {
        w.opt(
            0,
            e.dnssec_ok,
            // RFC 7871 §7.2.1: a scope longer than the source says the source was not
            // specific enough (a GeoIP network inside it decided); a source of 0 asks for no
            // tailoring and gets scope 0.
            e.ecs
                .as_ref()
                .map(|ecs| (ecs, if ecs.source == 0 { 0 } else { r.scope })),
            nsid,
        );
    }
    let stats = r.zone.map_or(&snap.counters.unzoned, |z| &*z.stats);
    stats.count(transport, q.qtype, r.rcode);
    let class = if classify {
        let apex = r.apex_labels.map_or(&[][..], |i| q.suffix(i));
        match r.rcode {
            wire::RCODE_NOERROR if r.aa && r.an > 0 => class(Class::Answer, q.name()),
            wire::RCODE_NOERROR if r.aa => class(Class::NoData, q.name()),
            wire::RCODE_NOERROR => class(Class::Referral, apex),
            wire::RCODE_NXDOMAIN => class(Class::NxDomain, apex),
            _ => class(Class::Error, apex),
        }
    } else {
        0
    };
    (w.len(), class)
}

fn resolve<'s>(
    snap: &'s Snapshot,
    q: &Query,
    client: Client,
    w: &mut Writer,
    r: &mut Reply<'s>,
) -> Result<(), Full> {
    if q.qclass != wire::CLASS_IN {
        r.rcode = wire::RCODE_REFUSED;
        return Ok(());
    }
    match q.qtype {
        // Zone transfers are not offered.
        wire::TYPE_AXFR | wire::TYPE_IXFR => {
            r.rcode = wire::RCODE_REFUSED;
            return Ok(());
        }
        // RFC 3425 obsoletes these query types.
        wire::TYPE_MAILA | wire::TYPE_MAILB => {
            r.rcode = wire::RCODE_NOTIMP;
            return Ok(());
        }
        _ => {}
    }
    let Some((zone, apex_labels_below)) = snap.find_zone(q) else {
        // Not ours: REFUSED, as authoritative-only servers do (RFC 8906 §3.1.4).
        r.rcode = wire::RCODE_REFUSED;
        return Ok(());
    };
    // Owner names are pointers into the question (offset 12), so they echo the client's case.
    let apex_at = wire::HEADER_LEN + q.suffix_offset(apex_labels_below);
    r.aa = true;
    r.zone = Some(zone);
    r.apex_labels = Some(apex_labels_below);

    if zone.has_cuts {
        // RFC 1034 §4.3.2 step 3b: the topmost cut above or at the name makes a referral.
        for i in (0..apex_labels_below).rev() {
            // RFC 4035 §3.1.4.1: the DS of a cut is the parent's data, answered here.
            if i == 0 && q.qtype == wire::TYPE_DS {
                break;
            }
            if let Some(node) = zone.nodes.get(q.suffix(i))
                && node.kind == NodeKind::Cut
            {
                r.aa = false;
                return referral(zone, node, wire::HEADER_LEN + q.suffix_offset(i), w, r);
            }
        }
    }
    match zone.nodes.get(q.name()) {
        Some(node) => answer_node(
            snap,
            zone,
            node,
            q.qtype,
            client,
            wire::HEADER_LEN,
            apex_at,
            w,
            r,
        ),
        None if r.dnssec_ok && zone.signer.is_some() => {
            // A signed zone denies the name compactly (RFC 9824): NODATA with an NSEC at the
            // name itself whose bitmap says NXNAME, signed now (it depends on the name).
            negative(zone, None, apex_at, w, r)?;
            r.ns += signed::nxname_proof(zone, q, w)?;
            Ok(())
        }
        None => {
            // RFC 2308 §2.1: NXDOMAIN with the SOA in the authority section.
            r.rcode = wire::RCODE_NXDOMAIN;
            negative(zone, None, apex_at, w, r)
        }
    }
}

/// Data for a name that exists, following CNAMEs inside the zone.
#[allow(
    clippy::too_many_arguments,
    reason = "the pieces of one answer; a struct would only rename them"
)]
fn answer_node<'z>(
    snap: &Snapshot,
    zone: &'z Zone,
    mut node: &'z Node,
    qtype: u16,
    client: Client,
    mut owner_at: usize,
    apex_at: usize,
    w: &mut Writer,
    r: &mut Reply,
) -> Result<(), Full> {
    for _ in 0..MAX_CNAME_CHAIN {
        if matches!(qtype, wire::TYPE_NSEC | wire::TYPE_RRSIG)
            && let Some(nsec) = &node.nsec
        {
            r.an += signed::proof_records(node, nsec, qtype, owner_at, r.dnssec_ok, w)?;
            return Ok(());
        }
        if let Some(id) = node.pool
            && let Some(pool) = snap.pools.get(id as usize)
        {
            return match qtype {
                wire::TYPE_A | wire::TYPE_AAAA => {
                    // Step 4 (topology) was applied per site when the table was published;
                    // here the client's site only picks the view. The answer is the same for
                    // every client of the block the site map finds: that is the ECS scope
                    // (RFC 7871 §7.2.1).
                    let placed = match (&zone.topology, pool.placed()) {
                        (Some(t), true) => {
                            let p = t.place(client.addr, client.prefix);
                            r.scope = r.scope.max(p.scope);
                            Some(p)
                        }
                        _ => None,
                    };
                    let fam = pool.view(placed.as_ref()).family(qtype);
                    pool_records(fam, zone, client, node, qtype, owner_at, apex_at, w, r)
                }
                wire::TYPE_ANY => {
                    zone.any_hinfo.write(w, owner_at)?;
                    r.an += 1;
                    Ok(())
                }
                _ => negative(
                    zone,
                    node.nsec.as_deref().map(|n| (n, owner_at)),
                    apex_at,
                    w,
                    r,
                ),
            };
        }
        if let Some(set) = node.get(qtype) {
            let at = set.write(w, owner_at)?;
            r.an += set.count();
            r.an += set.write_sigs(w, owner_at, r.dnssec_ok)?;
            if matches!(qtype, wire::TYPE_NS | wire::TYPE_MX | wire::TYPE_SRV) {
                additional(zone, set, at, false, w, r)?;
            }
            return Ok(());
        }
        let Some(cname) = node.get(wire::TYPE_CNAME) else {
            if qtype == wire::TYPE_ANY && !node.rrsets.is_empty() {
                // RFC 8482 §4.2: one synthesized HINFO instead of everything.
                zone.any_hinfo.write(w, owner_at)?;
                r.an += 1;
                return Ok(());
            }
            // RFC 2308 §2.2: NODATA (also for empty non-terminals, RFC 4592 §2.2.2).
            return negative(
                zone,
                node.nsec.as_deref().map(|n| (n, owner_at)),
                apex_at,
                w,
                r,
            );
        };
        // RFC 1034 §3.6.2 / §4.3.2 step 3a: the alias, then what it points to.
        let at = cname.write(w, owner_at)?;
        r.an += 1;
        r.an += cname.write_sigs(w, owner_at, r.dnssec_ok)?;
        if qtype == wire::TYPE_ANY {
            // RFC 8482 §4.2: the CNAME alone is a complete minimal answer.
            return Ok(());
        }
        let (Some(target), Some(t)) = (&node.cname, cname.targets.first()) else {
            // The target is outside the zone: the resolver continues from here.
            return Ok(());
        };
        match zone.nodes.get(&**target) {
            // RFC 6604 §2.1: the RCODE is that of the last name in the chain.
            None if !(zone.has_cuts && zone.below_cut(target)) => {
                r.rcode = wire::RCODE_NXDOMAIN;
                return negative(zone, None, apex_at, w, r);
            }
            Some(next) if next.kind == NodeKind::Auth => {
                node = next;
                owner_at = at + t.at as usize;
            }
            // Into or below a delegation: the resolver follows it from here.
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// The answer of a pool for one family: the members chosen for this query, or NODATA, or
/// SERVFAIL (`when_all_down`).
#[allow(
    clippy::too_many_arguments,
    reason = "the pieces of one answer; a struct would only rename them"
)]
fn pool_records(
    fam: &FamilyAnswer,
    zone: &Zone,
    client: Client,
    node: &Node,
    qtype: u16,
    owner_at: usize,
    apex_at: usize,
    w: &mut Writer,
    r: &mut Reply,
) -> Result<(), Full> {
    match fam {
        FamilyAnswer::NoData => {
            // The proof that the name has no records of this family now.
            let nsec = node
                .family_nsec
                .as_deref()
                .map(|[no_a, no_aaaa]| if qtype == wire::TYPE_A { no_a } else { no_aaaa });
            negative(zone, nsec.map(|n| (n, owner_at)), apex_at, w, r)
        }
        FamilyAnswer::ServFail => {
            r.rcode = wire::RCODE_SERVFAIL;
            r.aa = false;
            Ok(())
        }
        FamilyAnswer::Records {
            order,
            max,
            rec_len,
            members,
            sigs,
        } => {
            let ptr = wire::pointer(owner_at).ok_or(Full)?;
            let (max, rec_len) = (usize::from(*max), usize::from(*rec_len));
            let picked = if *order == order::Order::Sticky {
                // The hashed prefix decided the answer.
                r.scope = r.scope.max(client.prefix);
                order::sticky(members, &client.key(), max)
            } else {
                order::pick(*order, members, max, &mut fastrand::Rng::new())
            };
            let (picked, set_sig) = if r.dnssec_ok && !sigs.is_empty() {
                signed::set_signature(sigs, node.binding, members.len(), picked)
            } else {
                (picked, None)
            };
            for i in picked.iter() {
                let m = &members[i];
                let start = w.pos();
                w.put(&m.record[..rec_len])?;
                w.patch_u16(start, ptr);
                r.an += 1;
                m.hits.hit();
            }
            if let Some(s) = set_sig {
                s.rrsigs.write(w, owner_at)?;
                r.an += s.rrsigs.count();
            }
            Ok(())
        }
    }
}

/// NS of the cut in the authority section, glue in the additional section (RFC 1034 §4.3.2
/// step 3b). Glue for name servers below the cut must fit, or the referral is useless
/// (RFC 9471 §3); other addresses are optional.
fn referral(
    zone: &Zone,
    cut: &Node,
    cut_at: usize,
    w: &mut Writer,
    r: &mut Reply,
) -> Result<(), Full> {
    let Some(ns) = cut.get(wire::TYPE_NS) else {
        return Ok(());
    };
    let at = ns.write(w, cut_at)?;
    r.ns += ns.count();
    if r.dnssec_ok && zone.signer.is_some() {
        r.ns += signed::delegation_proof(cut, cut_at, w)?;
    }
    additional(zone, ns, at, true, w, r)
}

/// Address records of the names inside `set`'s data that are in this zone.
/// With `glue_required`, addresses of names below a cut must fit; everything else is dropped
/// quietly when full.
fn additional(
    zone: &Zone,
    set: &RRset,
    set_at: usize,
    glue_required: bool,
    w: &mut Writer,
    r: &mut Reply,
) -> Result<(), Full> {
    for t in set.targets.iter() {
        let Some(node) = zone.nodes.get(&*t.name) else {
            continue;
        };
        let required = glue_required && node.kind == NodeKind::Glue;
        for rtype in [wire::TYPE_A, wire::TYPE_AAAA] {
            let Some(addrs) = node.get(rtype) else {
                continue;
            };
            let before = w.pos();
            // With DO, a signed address set goes with its RRSIGs or not at all (RFC 4035
            // §3.1.1); glue is not signed.
            let owner_at = set_at + t.at as usize;
            match addrs
                .write(w, owner_at)
                .and_then(|_| addrs.write_sigs(w, owner_at, r.dnssec_ok))
            {
                Ok(sigs) => r.ar += addrs.count() + sigs,
                Err(Full) if required => return Err(Full),
                Err(Full) => {
                    w.truncate(before);
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// NXDOMAIN or NODATA: the SOA with the negative TTL in the authority section (RFC 2308 §3); with DO in a signed
/// zone, its RRSIG and the name's NSEC proof (`proof`: the NSEC set and where its owner is).
fn negative(
    zone: &Zone,
    proof: Option<(&RRset, usize)>,
    apex_at: usize,
    w: &mut Writer,
    r: &mut Reply,
) -> Result<(), Full> {
    zone.negative_soa.write(w, apex_at)?;
    r.ns += 1;
    r.ns += zone.negative_soa.write_sigs(w, apex_at, r.dnssec_ok)?;
    if r.dnssec_ok
        && let Some((nsec, owner_at)) = proof
    {
        nsec.write(w, owner_at)?;
        r.ns += nsec.count();
        r.ns += nsec.write_sigs(w, owner_at, true)?;
    }
    Ok(())
}
