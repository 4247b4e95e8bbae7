//! RRSIGs (RFC 4034 §3): what a signature covers, in canonical form, and its RDATA. The
//! signing itself is the key's ([`Key::sign`]).
//!
//! ```text
//!  signed data = RRSIG RDATA without the signature
//!              ‖ for each RR, sorted by RDATA: owner ‖ type ‖ class IN ‖ original TTL ‖ RDLENGTH ‖ RDATA
//! ```
//! Owner and signer names are lowercase and uncompressed; RDATA must come in canonical form
//! (RFC 4034 §6.2: names inside RDATA lowercased for the older types), which the caller
//! encodes.

use hickory_proto::rr::{Name, RData};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::keys::{Key, KeyError, name_wire};

/// Class IN.
const CLASS_IN: u16 = 1;

/// The validity of a signature, in seconds since the Unix epoch (serial number arithmetic
/// takes care of 2106).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub inception: u32,
    pub expiration: u32,
}

/// A record's RDATA in canonical form (RFC 4034 §6.2): names inside it uncompressed and, for
/// the types the RFC lists (NS, CNAME, SOA, MX, SRV, ...), lowercased.
pub fn canonical_rdata(rdata: &RData) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut e = BinEncoder::new(&mut buf);
    e.set_canonical_form(true);
    rdata.emit(&mut e).ok()?;
    Some(buf)
}

impl Validity {
    /// Signatures made at `now` (Unix seconds) for `valid` seconds: valid from an hour before
    /// (resolvers whose clocks are behind), RFC 6781 §4.4.2's usual margin.
    pub fn from(now: u64, valid: u64) -> Validity {
        Validity {
            inception: now.saturating_sub(3600) as u32,
            expiration: now.saturating_add(valid) as u32,
        }
    }

    /// Whether signatures of this validity must be made again at `now`: when less than
    /// `refresh` seconds are left.
    pub fn due(&self, now: u64, refresh: u64) -> bool {
        u64::from(self.expiration) < now.saturating_add(refresh)
    }
}

/// The RRSIG RDATA of every key for a configured RRset (static records of a zone).
pub fn sign_rrset(
    keys: &[Key],
    rrset: &crate::model::RRset,
    validity: Validity,
) -> Result<Vec<Vec<u8>>, KeyError> {
    let rdatas: Vec<Vec<u8>> = rrset
        .rdata
        .iter()
        .map(|r| {
            canonical_rdata(r).ok_or_else(|| {
                KeyError::Crypto(format!(
                    "cannot encode {} {} for signing",
                    rrset.name, rrset.rtype
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let rdatas: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
    keys.iter()
        .map(|k| {
            rrsig(
                k,
                &rrset.name,
                rrset.rtype.into(),
                rrset.ttl,
                &rdatas,
                validity,
            )
        })
        .collect()
}

/// The RRSIG RDATA of the RRset (`owner`, `rtype`, `ttl`, `rdatas`) signed by `key`.
pub fn rrsig(
    key: &Key,
    owner: &Name,
    rtype: u16,
    ttl: u32,
    rdatas: &[&[u8]],
    validity: Validity,
) -> Result<Vec<u8>, KeyError> {
    rrsig_wire(
        key,
        &name_wire(owner),
        labels(owner),
        rtype,
        ttl,
        rdatas,
        validity,
    )
}

/// [`rrsig`] for an owner given as lowercase wire format and its Labels field.
pub fn rrsig_wire(
    key: &Key,
    owner: &[u8],
    owner_labels: u8,
    rtype: u16,
    ttl: u32,
    rdatas: &[&[u8]],
    validity: Validity,
) -> Result<Vec<u8>, KeyError> {
    let mut head = [0u8; HEAD_MAX];
    let head = rrsig_head(key, owner_labels, rtype, ttl, validity, &mut head)?;
    let data = signed_data(head, owner, rtype, ttl, rdatas);
    let mut rdata = head.to_vec();
    rdata.extend_from_slice(&key.sign(&data)?);
    Ok(rdata)
}

/// The most octets of an RRSIG head (fixed fields and signer name).
const HEAD_MAX: usize = 18 + 255;

/// The most octets of an RRSIG RDATA made by [`rrsig_one_into`].
pub const RRSIG_MAX: usize = HEAD_MAX + super::keys::SIGNATURE_LEN;

/// The RRSIG RDATA of one record (`owner`, lowercase wire format, with `owner_labels`
/// labels), written into `out` without allocating: the query path's online signatures.
/// Returns its length.
#[allow(
    clippy::too_many_arguments,
    reason = "the fields of the RRSIG; a struct would only rename them"
)]
pub fn rrsig_one_into(
    key: &Key,
    owner: &[u8],
    owner_labels: u8,
    rtype: u16,
    ttl: u32,
    rdata: &[u8],
    validity: Validity,
    out: &mut [u8; RRSIG_MAX],
) -> Result<usize, KeyError> {
    let too_long = || KeyError::Crypto("a record too long to sign online".into());
    let head = rrsig_head(key, owner_labels, rtype, ttl, validity, out)?.len();
    let mut data = [0u8; HEAD_MAX + 255 + 10 + 512];
    let mut c = Cursor::new(&mut data);
    c.put(&out[..head])
        .and_then(|c| c.put(owner))
        .and_then(|c| c.put(&rtype.to_be_bytes()))
        .and_then(|c| c.put(&CLASS_IN.to_be_bytes()))
        .and_then(|c| c.put(&ttl.to_be_bytes()))
        .and_then(|c| c.put(&u16::try_from(rdata.len()).unwrap_or(u16::MAX).to_be_bytes()))
        .and_then(|c| c.put(rdata))
        .ok_or_else(too_long)?;
    let len = c.len;
    let sig = key.sign(&data[..len])?;
    out[head..head + sig.len()].copy_from_slice(&sig);
    Ok(head + sig.len())
}

/// Appends to a fixed buffer; `None` when it is full.
struct Cursor<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Cursor<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        Cursor { buf, len: 0 }
    }

    fn put(&mut self, data: &[u8]) -> Option<&mut Self> {
        let end = self.len.checked_add(data.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(data);
        self.len = end;
        Some(self)
    }
}

/// The RRSIG RDATA up to the signature, written at the start of `out`.
fn rrsig_head<'o>(
    key: &Key,
    owner_labels: u8,
    rtype: u16,
    ttl: u32,
    v: Validity,
    out: &'o mut [u8],
) -> Result<&'o [u8], KeyError> {
    let mut c = Cursor::new(out);
    c.put(&rtype.to_be_bytes())
        .and_then(|c| c.put(&[key.algorithm.number(), owner_labels]))
        .and_then(|c| c.put(&ttl.to_be_bytes()))
        .and_then(|c| c.put(&v.expiration.to_be_bytes()))
        .and_then(|c| c.put(&v.inception.to_be_bytes()))
        .and_then(|c| c.put(&key.tag().to_be_bytes()))
        .and_then(|c| c.put(key.signer_name()))
        .ok_or_else(|| KeyError::Crypto("signer name too long".into()))?;
    let len = c.len;
    Ok(&out[..len])
}

/// The Labels field: the owner's labels, not counting the root or a leading `*` (hickory's
/// `num_labels` already leaves both out).
fn labels(owner: &Name) -> u8 {
    owner.num_labels()
}

/// What the signature covers (RFC 4034 §3.1.8.1), RRs in canonical order, duplicates once.
fn signed_data(head: &[u8], owner: &[u8], rtype: u16, ttl: u32, rdatas: &[&[u8]]) -> Vec<u8> {
    let mut sorted: Vec<&[u8]> = rdatas.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut data = Vec::with_capacity(
        head.len()
            + sorted
                .iter()
                .map(|r| owner.len() + 10 + r.len())
                .sum::<usize>(),
    );
    data.extend_from_slice(head);
    for r in sorted {
        data.extend_from_slice(owner);
        data.extend_from_slice(&rtype.to_be_bytes());
        data.extend_from_slice(&CLASS_IN.to_be_bytes());
        data.extend_from_slice(&ttl.to_be_bytes());
        data.extend_from_slice(&(r.len() as u16).to_be_bytes());
        data.extend_from_slice(r);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::Algorithm;
    use std::str::FromStr;

    #[test]
    fn names_in_rdata_are_lowercase_and_uncompressed() {
        use hickory_proto::rr::rdata::{MX, TXT};
        let mx = RData::MX(MX::new(10, Name::from_str("MAIL.Example.Test.").unwrap()));
        assert_eq!(
            canonical_rdata(&mx).unwrap(),
            b"\x00\x0a\x04mail\x07example\x04test\x00"
        );
        // TXT has no names: its case stays.
        let txt = RData::TXT(TXT::new(vec!["Hi".into()]));
        assert_eq!(canonical_rdata(&txt).unwrap(), b"\x02Hi");
    }

    #[test]
    fn signatures_are_made_again_a_quarter_before_they_expire() {
        let v = Validity::from(1_000_000, 14 * 86400);
        assert_eq!(v.inception, 1_000_000 - 3600);
        assert!(!v.due(1_000_000, 14 * 86400 / 4));
        let late = 1_000_000 + 11 * 86400;
        assert!(v.due(late, 14 * 86400 / 4), "3 days left of 14: due");
    }

    #[test]
    fn the_labels_field_does_not_count_a_wildcard() {
        assert_eq!(labels(&Name::from_str("www.example.test.").unwrap()), 3);
        assert_eq!(labels(&Name::from_str("*.example.test.").unwrap()), 2);
        assert_eq!(labels(&Name::root()), 0);
    }

    /// The query path's signer makes the same RRSIG as the load-time one (Ed25519 is
    /// deterministic).
    #[test]
    fn online_signatures_are_the_same_rrsig() {
        let (key, _) =
            Key::generate(&Name::from_str("Z.test.").unwrap(), Algorithm::Ed25519).unwrap();
        let owner = name_wire(&Name::from_str("nope.z.test.").unwrap());
        let v = Validity::from(1_700_000_000, 86400);
        let rdata: &[u8] = b"\x01\x00\x04nope\x01z\x04test\x00\x00\x01\x40";
        let mut out = [0u8; RRSIG_MAX];
        let n = rrsig_one_into(&key, &owner, 3, 47, 300, rdata, v, &mut out).unwrap();
        assert_eq!(
            &out[..n],
            rrsig_wire(&key, &owner, 3, 47, 300, &[rdata], v).unwrap()
        );
        // The signer is the zone, lowercased.
        assert!(out[..n].windows(8).any(|w| w == b"\x01z\x04test\x00"));
        // A record too long for the online buffer is an error, not a panic.
        let huge = [0u8; 2000];
        assert!(rrsig_one_into(&key, &owner, 3, 47, 300, &huge, v, &mut out).is_err());
    }

    /// The RDATA order and duplicates do not change what is signed.
    #[test]
    fn rrs_are_signed_in_canonical_order() {
        let (key, _) =
            Key::generate(&Name::from_str("z.test.").unwrap(), Algorithm::Ed25519).unwrap();
        let owner = Name::from_str("WWW.z.test.").unwrap();
        let v = Validity {
            inception: 1,
            expiration: 2,
        };
        let mut head = [0u8; HEAD_MAX];
        let head = rrsig_head(&key, labels(&owner), 1, 30, v, &mut head).unwrap();
        let a: [&[u8]; 3] = [&[192, 0, 2, 2], &[192, 0, 2, 1], &[192, 0, 2, 2]];
        let b: [&[u8]; 2] = [&[192, 0, 2, 1], &[192, 0, 2, 2]];
        let wire = name_wire(&owner);
        assert_eq!(
            signed_data(head, &wire, 1, 30, &a),
            signed_data(head, &wire, 1, 30, &b)
        );
        // Ed25519 is deterministic: the same data, the same signature.
        assert_eq!(
            rrsig(&key, &owner, 1, 30, &a, v).unwrap(),
            rrsig(&key, &owner, 1, 30, &b, v).unwrap()
        );
    }
}
