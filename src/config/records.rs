//! Static records: the `records:` map (values in presentation format, a list or one value) and
//! `records_file:` (an RFC 1035 master file, read with hickory's parser), collected by (owner,
//! type) and handed to the model in file order.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;

use super::diag::{Loc, Reporter};
use super::format::{NameFile, Spanned};
use super::values::{self, MAX_TTL, loc, name};
use crate::model::RRset;

/// Where a record came from, for diagnostics that are found after collection.
#[derive(Clone)]
pub(super) struct Origin {
    pub loc: Loc,
    pub path: String,
}

pub(super) struct Acc {
    pub rrset: RRset,
    pub from: Origin,
}

/// The records of a zone by (owner, type). Hashed, not ordered: hickory's `Name` orders by the
/// DNSSEC canonical order, label by label from the right, which made comparing dominate the
/// load of large zones. The model gets them back in file order.
pub(super) type Records = HashMap<(LowerName, RecordType), Acc, foldhash::fast::RandomState>;

/// The records of one `records:` entry.
pub(super) fn names_records(
    key: &Spanned<String>,
    spec: &NameFile,
    origin: &Name,
    zone_ttl: u32,
    acc: &mut Records,
    r: &mut Reporter,
) {
    let base = format!("records.{}", key.value);
    let owner = match name(&key.value, Some(origin)) {
        Ok(n) => n,
        Err(m) => return r.error(loc(key), base, m),
    };
    if !origin.zone_of(&owner) {
        return r.error(
            loc(key),
            base,
            format!("{owner} is outside the zone {origin}"),
        );
    }
    if owner.is_wildcard() || owner.iter().any(|l| l == b"*") {
        return r.error(
            loc(key),
            base,
            "wildcard names are not supported; list each name",
        );
    }
    // A bad TTL is reported; the records are still checked (with the zone's TTL).
    let ttl = spec
        .ttl
        .as_ref()
        .and_then(|t| values::ttl(t, &format!("{base}.ttl"), r))
        .unwrap_or(zone_ttl);

    let mut any = false;
    let mut add = |rtype: RecordType,
                   values: &[&Spanned<String>],
                   parse: &dyn Fn(&str) -> Result<RData, String>,
                   r: &mut Reporter| {
        any = true;
        let type_path = format!("{base}.{rtype}");
        if values.is_empty() {
            return r.error(loc(key), type_path, "empty list: give at least one value");
        }
        let mut rdata: Vec<RData> = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let path = if rtype == RecordType::CNAME {
                type_path.clone()
            } else {
                format!("{type_path}[{i}]")
            };
            match parse(&v.value) {
                Ok(d) if rdata.contains(&d) => {
                    r.error(loc(v), path, format!("{:?} is listed twice", v.value))
                }
                Ok(d) => rdata.push(d),
                Err(m) => r.error(loc(v), path, m),
            }
        }
        if rdata.is_empty() {
            return;
        }
        acc.insert(
            (LowerName::new(&owner), rtype),
            Acc {
                rrset: RRset {
                    name: owner.clone(),
                    rtype,
                    ttl,
                    rdata,
                },
                from: Origin {
                    loc: loc(values[0]),
                    path: type_path,
                },
            },
        );
    };

    let target = |s: &str| name(s, Some(origin));
    if let Some(v) = &spec.a {
        add(
            RecordType::A,
            &refs(v),
            &|s| {
                s.parse::<Ipv4Addr>()
                    .map(|a| RData::A(A(a)))
                    .map_err(|_| format!("{s:?} is not an IPv4 address"))
            },
            r,
        );
    }
    if let Some(v) = &spec.aaaa {
        add(
            RecordType::AAAA,
            &refs(v),
            &|s| {
                s.parse::<Ipv6Addr>()
                    .map(|a| RData::AAAA(AAAA(a)))
                    .map_err(|_| format!("{s:?} is not an IPv6 address"))
            },
            r,
        );
    }
    if let Some(v) = &spec.cname {
        add(
            RecordType::CNAME,
            &[v],
            &|s| target(s).map(|n| RData::CNAME(CNAME(n))),
            r,
        );
    }
    if let Some(v) = &spec.ns {
        if owner == *origin {
            r.error(
                loc(key),
                format!("{base}.NS"),
                "the apex name servers are set with the zone's `ns:` key",
            );
        } else {
            add(
                RecordType::NS,
                &refs(v),
                &|s| target(s).map(|n| RData::NS(NS(n))),
                r,
            );
        }
    }
    if let Some(v) = &spec.ptr {
        add(
            RecordType::PTR,
            &refs(v),
            &|s| target(s).map(|n| RData::PTR(PTR(n))),
            r,
        );
    }
    if let Some(v) = &spec.mx {
        add(RecordType::MX, &refs(v), &|s| mx(s, origin), r);
    }
    if let Some(v) = &spec.srv {
        add(RecordType::SRV, &refs(v), &|s| srv(s, origin), r);
    }
    if let Some(v) = &spec.txt {
        add(RecordType::TXT, &refs(v), &|s| Ok(txt(s)), r);
    }
    if let Some(v) = &spec.caa {
        add(
            RecordType::CAA,
            &refs(v),
            &|s| {
                RData::try_from_str(RecordType::CAA, s)
                    .map_err(|e| format!("{s:?} is not CAA data (flags tag \"value\"): {e}"))
            },
            r,
        );
    }
    if let Some(v) = &spec.ds {
        add(RecordType::DS, &refs(v), &ds, r);
    }
    if !any {
        r.error(
            loc(key),
            base,
            "no records: give at least one type (A, AAAA, CNAME, MX, TXT, SRV, NS, CAA, PTR, DS)",
        );
    }
}

fn refs(v: &[Spanned<String>]) -> Vec<&Spanned<String>> {
    v.iter().collect()
}

fn fields<'s, const N: usize>(s: &'s str, what: &str) -> Result<[&'s str; N], String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    parts.try_into().map_err(|_| format!("{s:?} is not {what}"))
}

fn number<T: std::str::FromStr>(s: &str, field: &str, whole: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{whole:?}: {field} {s:?} is not a number in range"))
}

/// `"10 mail.example.com."` (RFC 1035 §3.3.9).
fn mx(s: &str, origin: &Name) -> Result<RData, String> {
    let [pref, exchange] = fields::<2>(s, "MX data: \"PREFERENCE EXCHANGE\", e.g. \"10 mail\"")?;
    Ok(RData::MX(MX::new(
        number(pref, "preference", s)?,
        name(exchange, Some(origin))?,
    )))
}

/// `"10 60 5060 sip.example.com."` (RFC 2782).
fn srv(s: &str, origin: &Name) -> Result<RData, String> {
    let [prio, weight, port, tgt] = fields::<4>(
        s,
        "SRV data: \"PRIORITY WEIGHT PORT TARGET\", e.g. \"10 60 5060 sip\"",
    )?;
    Ok(RData::SRV(SRV::new(
        number(prio, "priority", s)?,
        number(weight, "weight", s)?,
        number(port, "port", s)?,
        name(tgt, Some(origin))?,
    )))
}

/// `"12345 13 2 49FD46E6C4B45C55D4AC..."` (RFC 4034 §5.3): key tag, algorithm, digest type and
/// the digest in hexadecimal, as `gslbd ds` or `dnssec-dsfromkey` print it (spaces inside the
/// digest allowed). Kept as opaque RDATA: hickory parses DS only with its DNSSEC features.
fn ds(s: &str) -> Result<RData, String> {
    let what = "DS data: \"KEYTAG ALGORITHM DIGESTTYPE DIGEST\", e.g. \"12345 13 2 49FD...\"";
    let mut parts = s.split_whitespace();
    let (Some(tag), Some(alg), Some(dtype)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("{s:?} is not {what}"));
    };
    let hex: String = parts.collect();
    let digest = data_encoding::HEXUPPER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|_| format!("{s:?}: the digest {hex:?} is not hexadecimal"))?;
    let dtype: u8 = number(dtype, "digest type", s)?;
    let want = match dtype {
        1 => 20,
        2 => 32,
        4 => 48,
        _ => {
            return Err(format!(
                "{s:?}: digest type {dtype} is not SHA-1 (1), SHA-256 (2) or SHA-384 (4)"
            ));
        }
    };
    if digest.len() != want {
        return Err(format!(
            "{s:?}: a digest of type {dtype} has {want} octets, this one {}",
            digest.len()
        ));
    }
    let mut rdata = Vec::with_capacity(4 + digest.len());
    rdata.extend_from_slice(&number::<u16>(tag, "key tag", s)?.to_be_bytes());
    rdata.push(number(alg, "algorithm", s)?);
    rdata.push(dtype);
    rdata.extend_from_slice(&digest);
    Ok(RData::Unknown {
        code: RecordType::DS,
        rdata: hickory_proto::rr::rdata::NULL::with(rdata),
    })
}

/// One TXT record holding the whole string, split into 255-octet character-strings
/// (RFC 1035 §3.3.14, RFC 7208 §3.3).
fn txt(s: &str) -> RData {
    let bytes = s.as_bytes();
    let chunks: Vec<&[u8]> = if bytes.is_empty() {
        vec![bytes]
    } else {
        bytes.chunks(255).collect()
    };
    RData::TXT(TXT::from_bytes(chunks))
}

/// `records_file:` — an RFC 1035 master file, for users coming from BIND or Windows DNS.
pub(super) fn records_file(
    rf: &Spanned<String>,
    origin: &Name,
    acc: &mut Records,
    r: &mut Reporter,
) {
    let at = loc(rf);
    let path = r.file().parent().unwrap_or(Path::new(".")).join(&rf.value);
    let base = format!("records_file ({})", rf.value);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            return r.error(
                at,
                "records_file",
                format!("cannot read {}: {e}", path.display()),
            );
        }
    };
    let parsed = Parser::new(text, Some(path.clone()), Some(origin.clone())).parse();
    let (_, sets) = match parsed {
        Ok(x) => x,
        Err(e) => return r.error(at, base, format!("not a valid master file: {e}")),
    };
    for (key, set) in sets {
        let owner = set.name().clone();
        let rtype = set.record_type();
        let path = format!("{base}: {owner} {rtype}");
        if !origin.zone_of(&owner) {
            r.error(at, path, format!("{owner} is outside the zone {origin}"));
            continue;
        }
        if owner == *origin && matches!(rtype, RecordType::SOA | RecordType::NS) {
            r.warning(
                at,
                path,
                "ignored: the zone's SOA and apex NS come from its `soa:` and `ns:` keys",
            );
            continue;
        }
        if rtype == RecordType::SOA {
            r.error(at, path, "an SOA record belongs at the zone apex only");
            continue;
        }
        if owner.iter().any(|l| l == b"*") {
            r.error(at, path, "wildcard names are not supported; list each name");
            continue;
        }
        if i64::from(set.ttl()) > MAX_TTL {
            r.error(at, &path, values::bad_ttl(i64::from(set.ttl())));
            continue;
        }
        let k = (key.name.clone(), rtype);
        if let Some(prev) = acc.get(&k) {
            r.error(
                at,
                path,
                format!(
                    "also defined in the YAML as {}; define each name and type once",
                    prev.from.path
                ),
            );
            continue;
        }
        let rdata: Vec<RData> = set
            .records_without_rrsigs()
            .map(|rec| rec.data.clone())
            .collect();
        acc.insert(
            k,
            Acc {
                rrset: RRset {
                    name: owner,
                    rtype,
                    ttl: set.ttl(),
                    rdata,
                },
                from: Origin { loc: at, path },
            },
        );
    }
}

/// The record sets in the order the zone file gives them (records from a `records_file` in
/// canonical order at that key).
pub(super) fn in_file_order(acc: Records) -> Vec<RRset> {
    let mut sets: Vec<Acc> = acc.into_values().collect();
    sets.sort_by(|a, b| {
        (a.from.loc.line, a.from.loc.column)
            .cmp(&(b.from.loc.line, b.from.loc.column))
            .then_with(|| a.rrset.name.cmp(&b.rrset.name))
            .then_with(|| a.rrset.rtype.cmp(&b.rrset.rtype))
    });
    sets.into_iter().map(|a| a.rrset).collect()
}
