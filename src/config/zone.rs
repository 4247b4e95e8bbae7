//! Validation of one zone file into a [`model::Zone`].
//!
//! What is checked (each problem is reported with its file:line:column and key path):
//! SOA and NS present; names valid and inside the zone; record data of the right shape; TTLs in
//! 0..=2^31-1 (RFC 2181 §8); no CNAME beside other data or at the apex (RFC 1034 §3.6.2);
//! delegations (NS below the apex) hold only NS, with glue for name servers below them, and no
//! other data below them; in-zone name servers have addresses.

use std::collections::{BTreeSet, HashMap, HashSet};

use hickory_proto::rr::rdata::NS;
use hickory_proto::rr::{LowerName, Name, RData, RecordType};

use super::diag::{Loc, Reporter};
use super::format::{Spanned, ZoneFile, from_yaml};
use super::records::{self, Records};
use super::values::{self, loc, name};
use crate::model::{self, Soa};

const DEFAULT_TTL: u32 = 3600;
/// SOA timers when not given: RFC 1912 §2.2's suggestions, and a short negative TTL that
/// suits names whose answers change with health.
const DEFAULT_SOA_SERIAL: u32 = 1;
const DEFAULT_SOA_REFRESH: u32 = 3600;
const DEFAULT_SOA_RETRY: u32 = 600;
const DEFAULT_SOA_EXPIRE: u32 = 86400;
const DEFAULT_SOA_MINIMUM: u32 = 30;

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

    let mut acc = Records::default();
    if let Some(records) = &file.records {
        for (key, spec) in &records.0 {
            records::names_records(key, &spec.value, &origin, ttl, &mut acc, r);
        }
    }
    if let Some(rf) = &file.records_file {
        records::records_file(rf, &origin, &mut acc, r);
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

    let dnssec = file.dnssec.as_ref().and_then(|d| dnssec(d, &origin, r));
    // Pool answer sets are signed per subset of members (a 64-bit mask); larger pools are
    // refused rather than served unsigned (validators would call them bogus).
    if let (Some(_), Some(d)) = (&dnssec, &file.dnssec) {
        let at = loc(&d.value.keys);
        for p in &pools {
            if p.members.len() > 64 {
                r.error(
                    at,
                    "dnssec",
                    format!(
                        "pool {} has {} members; a signed zone's pools have at most 64",
                        p.name,
                        p.members.len()
                    ),
                );
            }
        }
    }
    let zone = match soa {
        Some(soa) if r.error_count() == errors_before => Some(model::Zone {
            origin: origin.clone(),
            soa,
            ttl,
            ns,
            rrsets: records::in_file_order(acc),
            // Kept for the server's life: no spare capacity (10,000 pools left ~2 MB of it).
            pools: shrunk(pools),
            bindings: shrunk(bindings),
            sites,
            source: r.file().to_path_buf(),
            dnssec,
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
        serial: u32_field(&s.serial, DEFAULT_SOA_SERIAL, "soa.serial", r),
        refresh: u32_field(&s.refresh, DEFAULT_SOA_REFRESH, "soa.refresh", r),
        retry: u32_field(&s.retry, DEFAULT_SOA_RETRY, "soa.retry", r),
        expire: u32_field(&s.expire, DEFAULT_SOA_EXPIRE, "soa.expire", r),
        minimum: match &s.minimum {
            Some(m) => values::ttl(m, "soa.minimum", r)?,
            None => DEFAULT_SOA_MINIMUM,
        },
    };
    Some(soa)
}

/// Signatures last 14 days unless said otherwise.
const DEFAULT_SIGNATURE_VALIDITY: std::time::Duration = std::time::Duration::from_secs(14 * 86400);

/// `dnssec:` → where the keys are (relative to the zone file) and the signatures' timing; the
/// keys must load (owner-only private files, for this zone, matching public keys).
fn dnssec(
    d: &Spanned<super::format::DnssecFile>,
    origin: &Name,
    r: &mut Reporter,
) -> Option<model::ZoneDnssec> {
    let d = &d.value;
    let dir = r
        .file()
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(d.keys.value.trim());
    let keys_ok = match crate::dnssec::Key::load_dir(&dir, origin) {
        Ok(_) => true,
        Err(e) => {
            r.error(loc(&d.keys), "dnssec.keys", e.to_string());
            false
        }
    };
    let validity = values::duration_or(
        d.signature_validity.as_ref(),
        DEFAULT_SIGNATURE_VALIDITY,
        values::Zero::Refused,
        "dnssec.signature_validity",
        r,
    )?;
    let (hour, year) = (
        std::time::Duration::from_secs(3600),
        std::time::Duration::from_secs(366 * 86400),
    );
    if !(hour..=year).contains(&validity) {
        let at = d.signature_validity.as_ref().map_or(loc(&d.keys), loc);
        r.error(
            at,
            "dnssec.signature_validity",
            "must be between 1h and 366d",
        );
        return None;
    }
    let refresh = values::duration_or(
        d.refresh.as_ref(),
        validity / 4,
        values::Zero::Refused,
        "dnssec.refresh",
        r,
    )?;
    if refresh >= validity {
        let at = d.refresh.as_ref().map_or(loc(&d.keys), loc);
        r.error(
            at,
            "dnssec.refresh",
            format!(
                "{} is not shorter than the signature validity ({}): signatures would be made again all the time",
                humantime::format_duration(refresh),
                humantime::format_duration(validity)
            ),
        );
        return None;
    }
    keys_ok.then_some(model::ZoneDnssec {
        keys: dir,
        validity,
        refresh,
    })
}

fn shrunk<T>(mut v: Vec<T>) -> Vec<T> {
    v.shrink_to_fit();
    v
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
        } else if *rtype == RecordType::DS && !cuts.contains(owner) {
            // RFC 4034 §5: a DS is the parent's record of a child zone, at the cut.
            r.error(
                a.from.loc,
                &a.from.path,
                format!(
                    "{} has no NS records: a DS belongs at a delegation, beside its NS",
                    a.rrset.name
                ),
            );
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
