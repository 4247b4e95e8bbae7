//! What a signed zone adds to answers asked with DO (RFC 4035 §3.1): the signature of the
//! pool answer set a query got, the proof of a delegation's DS or of its absence, a name's
//! NSEC and RRSIGs when asked for, and the compact-denial proof of a missing name (RFC 9824),
//! the one signature made per query, on the stack.

use super::wire::{self, Full, Query, Writer};
use crate::dnssec::{denial, sets, sign};
use crate::select::order::{self, Picked};
use crate::snapshot::{Node, RRset, SetSig, Zone};

/// The RRSIGs of the set `picked` from a pool's `n` members under the name with `binding`;
/// when that set was not signed (more subsets than are kept), the rotation that starts at its
/// first member instead, which always is. Returns the set to send and its signatures.
pub(super) fn set_signature(
    sigs: &[SetSig],
    binding: u16,
    n: usize,
    picked: Picked,
) -> (Picked, Option<&SetSig>) {
    let find = |mask: u64| {
        sigs.binary_search_by_key(&(binding, mask), |s| (s.binding, s.mask))
            .ok()
            .map(|i| &sigs[i])
    };
    if let Some(s) = sets::mask(picked.iter()).and_then(find) {
        return (picked, Some(s));
    }
    let Some(first) = picked.iter().next() else {
        return (picked, None);
    };
    let rot = order::rotation(n, picked.len(), first);
    match sets::mask(rot.iter()).and_then(find) {
        Some(s) => (rot, Some(s)),
        None => (picked, None),
    }
}

/// RFC 4035 §3.1.4: with a referral, the child's DS and its RRSIGs, or the NSEC proving there
/// is none (an insecure delegation). Both must fit, or the referral is truncated. Returns how
/// many records it wrote (authority section).
pub(super) fn delegation_proof(cut: &Node, cut_at: usize, w: &mut Writer) -> Result<u16, Full> {
    let Some(set) = cut.get(wire::TYPE_DS).or(cut.nsec.as_deref()) else {
        return Ok(0);
    };
    set.write(w, cut_at)?;
    Ok(set.count() + set.write_sigs(w, cut_at, true)?)
}

/// A signed name asked for its NSEC (which every name of a signed zone has: compact denial)
/// or its RRSIGs (those of its static sets and of its NSEC; a pool's answer sets are signed
/// per set and come with the answers). Returns how many records it wrote.
pub(super) fn proof_records(
    node: &Node,
    nsec: &RRset,
    qtype: u16,
    owner_at: usize,
    dnssec_ok: bool,
    w: &mut Writer,
) -> Result<u16, Full> {
    if qtype == wire::TYPE_NSEC {
        nsec.write(w, owner_at)?;
        return Ok(nsec.count() + nsec.write_sigs(w, owner_at, dnssec_ok)?);
    }
    let mut n = 0;
    for set in node.rrsets.iter().chain(std::iter::once(nsec)) {
        n += set.write_sigs(w, owner_at, true)?;
    }
    Ok(n)
}

/// The compact-denial proof that the query name does not exist: its NSEC and RRSIGs, made
/// for this name now, on the stack. Returns how many records it wrote (authority section).
pub(super) fn nxname_proof(zone: &Zone, q: &Query, w: &mut Writer) -> Result<u16, Full> {
    let Some(s) = &zone.signer else {
        return Ok(0);
    };
    let owner = wire::pointer(wire::HEADER_LEN).ok_or(Full)?;
    let mut nsec = [0u8; denial::NXNAME_NSEC_MAX];
    let len = denial::nxname_nsec_into(q.name(), &mut nsec);
    let nsec = &nsec[..len];
    let record = |w: &mut Writer, rtype: u16, data: &[u8]| {
        let mut fixed = [0u8; 12];
        fixed[..2].copy_from_slice(&owner.to_be_bytes());
        fixed[2..4].copy_from_slice(&rtype.to_be_bytes());
        fixed[4..6].copy_from_slice(&wire::CLASS_IN.to_be_bytes());
        fixed[6..10].copy_from_slice(&s.ttl.to_be_bytes());
        fixed[10..12].copy_from_slice(&(data.len() as u16).to_be_bytes());
        w.put(&fixed)?;
        w.put(data)
    };
    record(w, wire::TYPE_NSEC, nsec)?;
    let mut n = 1;
    // RFC 4034 §3.1.3: the Labels field does not count a leading `*`.
    let wildcard = q.name().starts_with(b"\x01*");
    let labels = (q.label_count() - usize::from(wildcard)) as u8;
    let mut sig = [0u8; sign::RRSIG_MAX];
    for key in &s.keys {
        let Ok(len) = sign::rrsig_one_into(
            key,
            q.name(),
            labels,
            wire::TYPE_NSEC,
            s.ttl,
            nsec,
            s.validity,
            &mut sig,
        ) else {
            continue;
        };
        record(w, wire::TYPE_RRSIG, &sig[..len])?;
        n += 1;
    }
    Ok(n)
}
