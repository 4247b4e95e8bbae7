//! Validation of one zone file into a [`model::Zone`].
//!
//! What is checked (each problem is reported with its file:line:column and key path):
//! SOA and NS present; names valid and inside the zone; record data of the right shape; TTLs in
//! 0..=2^31-1 (RFC 2181 §8); no CNAME beside other data or at the apex (RFC 1034 §3.6.2);
//! delegations (NS below the apex) hold only NS, with glue for name servers below them, and no
//! other data below them; in-zone name servers have addresses.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, PTR, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;

use super::diag::{Loc, Reporter};
use super::format::{NameFile, Spanned, ZoneFile, from_yaml};
use super::values::{self, MAX_TTL, loc, name};
use crate::model::{self, RRset, Soa};

const DEFAULT_TTL: u32 = 3600;

/// Where a record came from, for diagnostics that are found after collection.
#[derive(Clone)]
struct Origin {
    loc: Loc,
    path: String,
}

struct Acc {
    rrset: RRset,
    from: Origin,
}

/// The records of a zone by (owner, type). Hashed, not ordered: hickory's `Name` orders by the
/// DNSSEC canonical order, label by label from the right, which made comparing dominate the
/// load of large zones. The model gets them back in file order.
type Records = HashMap<(LowerName, RecordType), Acc, foldhash::fast::RandomState>;

/// What loading one zone file gave: its origin (known as soon as `zone:` parses, so duplicates
/// are found even in files with other errors) and the zone if it had no errors.
pub struct Loaded {
    pub origin: Name,
    pub origin_loc: Loc,
    pub zone: Option<model::Zone>,
}

/// Parse and validate one zone file.
pub fn load(text: &str, r: &mut Reporter) -> Option<Loaded> {
    let file: ZoneFile = match from_yaml(text) {
        Ok(f) => f,
        Err(e) => {
            r.error(e.loc, "", e.message);
            return None;
        }
    };
    values::version(file.version.as_ref(), r);
    let zone_loc = loc(&file.zone);
    let origin = match name(&file.zone.value, None) {
        Ok(n) => n,
        Err(m) => {
            r.error(zone_loc, "zone", m);
            return None;
        }
    };
    let errors_before = r.error_count();
    let ttl = file
        .ttl
        .as_ref()
        .and_then(|t| values::ttl(t, "ttl", r))
        .unwrap_or(DEFAULT_TTL);

    let soa = match &file.soa {
        Some(s) => soa(&s.value, &origin, r),
        None => {
            r.error(
                zone_loc,
                "soa",
                "missing: every zone needs `soa: { mname: ..., rname: ... }`",
            );
            None
        }
    };
    let mut ns = Vec::new();
    let mut ns_locs = Vec::new();
    match &file.ns {
        Some(list) if !list.value.is_empty() => {
            for (i, n) in list.value.iter().enumerate() {
                match name(&n.value, Some(&origin)) {
                    Ok(name) => {
                        ns.push(name);
                        ns_locs.push(loc(n));
                    }
                    Err(m) => r.error(loc(n), format!("ns[{i}]"), m),
                }
            }
        }
        Some(list) => r.error(loc(list), "ns", "needs at least one name server"),
        None => r.error(
            zone_loc,
            "ns",
            "missing: every zone needs `ns: [ns1.example.com.]`",
        ),
    }

    let mut acc: Records = Records::default();
    if let Some(records) = &file.records {
        for (key, spec) in &records.0 {
            names_records(key, &spec.value, &origin, ttl, &mut acc, r);
        }
    }
    if let Some(rf) = &file.records_file {
        records_file(rf, &origin, &mut acc, r);
    }

    check_structure(&origin, &ns, &ns_locs, &acc, r);

    let checks = file
        .checks
        .as_ref()
        .map(|c| super::checks::checks(c, r))
        .unwrap_or_default();
    let declared_checks: BTreeSet<String> = file
        .checks
        .iter()
        .flat_map(|c| c.0.iter().map(|(k, _)| k.value.clone()))
        .collect();
    let sites = super::sites::sites(file.sites.as_ref(), file.nets_file.as_ref(), r);
    let pools = file
        .pools
        .as_ref()
        .map(|p| super::pools::pools(p, &checks, &declared_checks, &sites, r))
        .unwrap_or_default();
    let bindings = match &file.names {
        Some(entries) => {
            let declared: HashSet<String> = file
                .pools
                .iter()
                .flat_map(|p| p.0.iter().map(|(k, _)| k.value.clone()))
                .collect();
            let statics: HashSet<LowerName> = acc.keys().map(|(n, _)| n.clone()).collect();
            let apex = LowerName::new(&origin);
            let cuts: HashSet<LowerName> = acc
                .keys()
                .filter(|(n, t)| *t == RecordType::NS && *n != apex)
                .map(|(n, _)| n.clone())
                .collect();
            super::names::bindings(entries, &origin, &declared, &pools, &statics, &cuts, r)
        }
        None => Vec::new(),
    };

    let zone = match soa {
        Some(soa) if r.error_count() == errors_before => Some(model::Zone {
            origin: origin.clone(),
            soa,
            ttl,
            ns,
            rrsets: in_file_order(acc),
            // Kept for the server's life: no spare capacity (10,000 pools left ~2 MB of it).
            pools: shrunk(pools),
            bindings: shrunk(bindings),
            sites,
            source: r.file().to_path_buf(),
        }),
        _ => None,
    };
    Some(Loaded {
        origin,
        origin_loc: zone_loc,
        zone,
    })
}

fn u32_field(v: &Option<Spanned<i64>>, default: u32, path: &str, r: &mut Reporter) -> u32 {
    match v {
        None => default,
        Some(s) if (0..=u32::MAX as i64).contains(&s.value) => s.value as u32,
        Some(s) => {
            r.error(
                loc(s),
                path,
                format!("{} is out of range: use 0..={}", s.value, u32::MAX),
            );
            default
        }
    }
}

fn soa(s: &super::format::SoaFile, origin: &Name, r: &mut Reporter) -> Option<Soa> {
    let mname =
        name(&s.mname.value, Some(origin)).map_err(|m| r.error(loc(&s.mname), "soa.mname", m));
    let rname = if s.rname.value.contains('@') {
        r.error(
            loc(&s.rname),
            "soa.rname",
            format!(
                "{:?}: write the mailbox as a name, with the @ as a dot (hostmaster.example.com.)",
                s.rname.value
            ),
        );
        Err(())
    } else {
        name(&s.rname.value, Some(origin)).map_err(|m| r.error(loc(&s.rname), "soa.rname", m))
    };
    let soa = Soa {
        mname: mname.ok()?,
        rname: rname.ok()?,
        serial: u32_field(&s.serial, 1, "soa.serial", r),
        refresh: u32_field(&s.refresh, 3600, "soa.refresh", r),
        retry: u32_field(&s.retry, 600, "soa.retry", r),
        expire: u32_field(&s.expire, 86400, "soa.expire", r),
        minimum: match &s.minimum {
            Some(m) => values::ttl(m, "soa.minimum", r)?,
            None => 30,
        },
    };
    Some(soa)
}

/// The records of one `records:` entry.
fn names_records(
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
    if !any {
        r.error(
            loc(key),
            base,
            "no records: give at least one type (A, AAAA, CNAME, MX, TXT, SRV, NS, CAA, PTR)",
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
fn records_file(rf: &Spanned<String>, origin: &Name, acc: &mut Records, r: &mut Reporter) {
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

fn shrunk<T>(mut v: Vec<T>) -> Vec<T> {
    v.shrink_to_fit();
    v
}

/// The record sets in the order the zone file gives them (records from a `records_file` in
/// canonical order at that key).
fn in_file_order(acc: Records) -> Vec<RRset> {
    let mut sets: Vec<Acc> = acc.into_values().collect();
    sets.sort_by(|a, b| {
        (a.from.loc.line, a.from.loc.column)
            .cmp(&(b.from.loc.line, b.from.loc.column))
            .then_with(|| a.rrset.name.cmp(&b.rrset.name))
            .then_with(|| a.rrset.rtype.cmp(&b.rrset.rtype))
    });
    sets.into_iter().map(|a| a.rrset).collect()
}

/// Checks across records: CNAME exclusivity, delegations, glue.
fn check_structure(origin: &Name, ns: &[Name], ns_locs: &[Loc], acc: &Records, r: &mut Reporter) {
    let mut types: HashMap<&LowerName, Vec<RecordType>, foldhash::fast::RandomState> =
        HashMap::default();
    for (owner, rtype) in acc.keys() {
        types.entry(owner).or_default().push(*rtype);
    }
    let apex = LowerName::new(origin);

    // RFC 1034 §3.6.2: a CNAME owner has no other data; the apex always has SOA and NS.
    for ((owner, rtype), a) in acc {
        if *rtype != RecordType::CNAME {
            continue;
        }
        if *owner == apex {
            r.error(
                a.from.loc,
                &a.from.path,
                "a CNAME cannot be at the zone apex, which holds the SOA and NS records",
            );
        } else if types[owner].len() > 1 {
            let others: Vec<String> = types[owner]
                .iter()
                .filter(|t| **t != RecordType::CNAME)
                .map(|t| t.to_string())
                .collect();
            r.error(
                a.from.loc,
                &a.from.path,
                format!(
                    "a CNAME cannot stand beside other data ({}) at {}",
                    others.join(", "),
                    a.rrset.name
                ),
            );
        } else if a.rrset.rdata.len() > 1 {
            r.error(a.from.loc, &a.from.path, "a name has at most one CNAME");
        }
    }

    // Delegations: NS below the apex. The parent holds only NS (and DS) at the cut, and only
    // glue addresses below it (RFC 1034 §4.2.1).
    let cuts: HashSet<&LowerName> = acc
        .keys()
        .filter(|(o, t)| *t == RecordType::NS && *o != apex)
        .map(|(o, _)| o)
        .collect();
    // The closest delegation strictly above `n`: walk its ancestors up to the apex.
    let cut_above = |n: &LowerName| -> Option<LowerName> {
        if cuts.is_empty() {
            return None;
        }
        let mut up = Name::from(n).base_name();
        while up.num_labels() > origin.num_labels() {
            let l = LowerName::new(&up);
            if cuts.contains(&l) {
                return Some(l);
            }
            up = up.base_name();
        }
        None
    };
    for ((owner, rtype), a) in acc {
        if let Some(cut) = cut_above(owner) {
            if !matches!(rtype, RecordType::A | RecordType::AAAA) {
                r.error(
                    a.from.loc,
                    &a.from.path,
                    format!(
                        "{} is below the delegation {}; only glue (A, AAAA) may be there",
                        a.rrset.name, cut
                    ),
                );
            }
        } else if cuts.contains(owner) && !matches!(rtype, RecordType::NS | RecordType::DS) {
            r.error(a.from.loc, &a.from.path, format!("{} is delegated (it has NS records); other data there would not be authoritative", a.rrset.name));
        }
    }

    let has_address = |n: &Name| {
        let l = LowerName::new(n);
        acc.contains_key(&(l.clone(), RecordType::A)) || acc.contains_key(&(l, RecordType::AAAA))
    };
    // In-zone name servers need addresses; those below a cut need glue.
    for (i, n) in ns.iter().enumerate() {
        if origin.zone_of(n) && !has_address(n) {
            r.error(
                ns_locs[i],
                format!("ns[{i}]"),
                format!("{n} is inside the zone but has no A or AAAA record in it"),
            );
        }
    }
    for ((owner, rtype), a) in acc {
        if *rtype != RecordType::NS || *owner == apex {
            continue;
        }
        for d in &a.rrset.rdata {
            let RData::NS(NS(target)) = d else { continue };
            let lt = LowerName::new(target);
            if owner.zone_of(&lt) && !has_address(target) {
                r.error(a.from.loc, &a.from.path, format!("{target} is below the delegation {} and needs glue: add an A or AAAA record for it", a.rrset.name));
            } else if origin.zone_of(target) && cut_above(&lt).is_none() && !has_address(target) {
                r.error(
                    a.from.loc,
                    &a.from.path,
                    format!("{target} is inside the zone but has no A or AAAA record in it"),
                );
            }
        }
    }
}
