//! Validation of `checks`, `pools` and `names` into the model.
//!
//! Checked: each check has exactly one kind, sane timing (timeout ≤ interval, rise/fall ≥ 1),
//! ports in range and regular expressions that compile; each pool has members, no duplicate
//! member, known checks and policy, and a `when_all_down` that makes sense; each name is inside
//! the zone, bound to a known pool, and not also a static name.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};

use super::diag::{Loc, Reporter};
use super::format::{CheckFile, Entries, PoolFile, Spanned};
use super::format::{PolicyFile, SiteFile};
use super::values::{self, Zero, loc, name};
use crate::model::{
    Binding, CaCerts, Check, CheckKind, CheckSpec, HttpCheck, Member, Order, Pattern, Policy, Pool,
    Site, SiteRef, Thresholds, WhenAllDown,
};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_POOL_TTL: u32 = 30;
pub const DEFAULT_MAX_ANSWERS: u8 = 2;
pub const DEFAULT_WEIGHT: u32 = 100;
/// Sites of one zone: the compiled site map numbers them in 16 bits, with one value for "none".
pub const MAX_SITES: usize = u16::MAX as usize - 1;
/// A `ca_file:` larger than this is refused (the whole Mozilla bundle is about 220 KB).
const MAX_CA_FILE: u64 = 4 << 20;

/// `sites:` and `nets_file:` → the topology map. Prefixes are checked for host bits and
/// duplicates; fallbacks must name known sites or `any`.
pub fn sites(
    entries: Option<&Entries<Spanned<SiteFile>>>,
    nets_file: Option<&Spanned<String>>,
    r: &mut Reporter,
) -> Vec<Site> {
    let Some(entries) = entries else {
        if let Some(f) = nets_file {
            r.error(
                loc(f),
                "nets_file",
                "needs `sites:` naming the sites it maps to",
            );
        }
        return Vec::new();
    };
    let names: Vec<&str> = entries.0.iter().map(|(k, _)| k.value.as_str()).collect();
    if names.len() > MAX_SITES {
        let (key, _) = &entries.0[MAX_SITES];
        r.error(
            loc(key),
            "sites",
            format!("{} sites; a zone may have at most {MAX_SITES}", names.len()),
        );
        return Vec::new();
    }
    let mut seen: HashMap<ipnet::IpNet, String> = HashMap::new();
    let mut out: Vec<Site> = Vec::new();
    let mut add_net =
        |text: &str, site: usize, at: Loc, path: &str, out: &mut Vec<Site>, r: &mut Reporter| {
            let net: ipnet::IpNet = match text.trim().parse() {
                Ok(n) => n,
                Err(_) => {
                    return r.error(
                        at,
                        path,
                        format!("{text:?} is not a prefix (e.g. 10.1.0.0/16 or 2001:db8::/48)"),
                    );
                }
            };
            if net.trunc() != net {
                return r.error(
                    at,
                    path,
                    format!(
                        "{text:?} has bits set after the prefix; did you mean {}?",
                        net.trunc()
                    ),
                );
            }
            if let Some(other) = seen.get(&net) {
                return r.error(
                    at,
                    path,
                    format!("{net} is already mapped to site {other:?}"),
                );
            }
            seen.insert(net, names[site].to_string());
            out[site].nets.push(net);
        };
    for (key, _) in &entries.0 {
        out.push(Site {
            name: key.value.clone(),
            nets: Vec::new(),
            fallback: Vec::new(),
        });
    }
    for (i, (key, site)) in entries.0.iter().enumerate() {
        let base = format!("sites.{}", key.value);
        let at = loc(site);
        let (nets, fallback) = match &site.value {
            SiteFile::Nets(n) => (n.as_slice(), None),
            SiteFile::Full(m) => (m.nets.as_slice(), m.fallback.as_deref()),
        };
        for (j, n) in nets.iter().enumerate() {
            add_net(n, i, at, &format!("{base}.nets[{j}]"), &mut out, r);
        }
        for (j, f) in fallback.unwrap_or(&[]).iter().enumerate() {
            let path = format!("{base}.fallback[{j}]");
            match names.iter().position(|n| n == f) {
                _ if f == "any" => out[i].fallback.push(SiteRef::Any),
                Some(t) if t == i => r.error(at, path, "a site cannot fall back to itself"),
                Some(t) => out[i].fallback.push(SiteRef::Site(t)),
                None => r.error(
                    at,
                    path,
                    format!("no site named {f:?} (known: {}, or any)", names.join(", ")),
                ),
            }
        }
    }
    if let Some(f) = nets_file {
        let path = r.file().parent().unwrap_or(Path::new(".")).join(&f.value);
        match std::fs::read_to_string(&path) {
            Err(e) => r.error(
                loc(f),
                "nets_file",
                format!("cannot read {}: {e}", path.display()),
            ),
            Ok(text) => {
                for (n, line) in text.lines().enumerate() {
                    let line = line.split('#').next().unwrap_or("").trim();
                    if line.is_empty() {
                        continue;
                    }
                    let p = format!("nets_file ({} line {})", f.value, n + 1);
                    let mut words = line.split_whitespace();
                    let (Some(net), Some(site), None) = (words.next(), words.next(), words.next())
                    else {
                        r.error(loc(f), p, format!("{line:?} is not \"CIDR SITE\""));
                        continue;
                    };
                    match names.iter().position(|s| *s == site) {
                        Some(i) => add_net(net, i, loc(f), &p, &mut out, r),
                        None => r.error(loc(f), p, format!("no site named {site:?} in `sites:`")),
                    }
                }
            }
        }
    }
    out
}

fn policy(p: Option<&Spanned<PolicyFile>>, base: &str, r: &mut Reporter) -> Policy {
    let Some(p) = p else {
        return Policy::ROUND_ROBIN;
    };
    let steps: Vec<&str> = match &p.value {
        PolicyFile::One(s) => vec![s.as_str()],
        PolicyFile::Steps(v) => v.iter().map(String::as_str).collect(),
    };
    let path = format!("{base}.policy");
    let mut policy = Policy::ROUND_ROBIN;
    let mut rank = 0; // failover (1) < topology (2) < ordering (3): the fixed pipeline order
    let mut ordered = false;
    for step in steps {
        let (r_step, order) = match step {
            "failover" => (1, None),
            "topology" => (2, None),
            "round-robin" => (3, Some(Order::RoundRobin)),
            "weighted" => (3, Some(Order::Weighted)),
            "sticky" => (3, Some(Order::Sticky)),
            "least-loaded" => (3, Some(Order::LeastLoaded)),
            other => {
                r.error(loc(p), &path, format!("{other:?} is not a policy step: use failover, topology, round-robin, weighted, sticky or least-loaded"));
                continue;
            }
        };
        if r_step < rank || (r_step == 3 && ordered) || (r_step == rank && r_step < 3) {
            r.error(loc(p), &path, "steps run in a fixed order: failover, topology, then one of round-robin, weighted, sticky, least-loaded; list each once, in that order");
            return policy;
        }
        rank = r_step;
        match step {
            "failover" => policy.failover = true,
            "topology" => policy.topology = true,
            _ => {}
        }
        if let Some(o) = order {
            policy.order = o;
            ordered = true;
        }
    }
    policy
}

fn load(
    l: &Spanned<super::format::LoadFile>,
    base: &str,
    r: &mut Reporter,
) -> Option<crate::model::LoadSpec> {
    use crate::model::{LoadKind, LoadSpec};
    let f = &l.value;
    let kind = match (&f.agent, &f.http) {
        (Some(a), None) => LoadKind::Agent {
            port: values::int(&a.value.port, 1..=65535, &format!("{base}.agent.port"), r)? as u16,
        },
        (None, Some(h)) => {
            let path = h
                .value
                .path
                .as_ref()
                .map_or("/".to_string(), |p| p.value.clone());
            if !path.starts_with('/') {
                r.error(
                    loc(l),
                    format!("{base}.http.path"),
                    format!("{path:?} must start with /"),
                );
            }
            LoadKind::Http {
                port: values::int(&h.value.port, 1..=65535, &format!("{base}.http.port"), r)?
                    as u16,
                path,
            }
        }
        _ => {
            r.error(
                loc(l),
                base,
                "give exactly one source: agent: { port: N } or http: { port: N, path: /load }",
            );
            return None;
        }
    };
    let interval = values::duration_or(
        f.interval.as_ref(),
        DEFAULT_INTERVAL,
        Zero::Allowed,
        &format!("{base}.interval"),
        r,
    )?;
    let timeout = values::duration_or(
        f.timeout.as_ref(),
        DEFAULT_TIMEOUT.min(interval),
        Zero::Allowed,
        &format!("{base}.timeout"),
        r,
    )?;
    if timeout > interval || interval < MIN_INTERVAL {
        r.error(
            loc(l),
            base,
            "the timeout must not exceed the interval, which must be at least 100ms",
        );
        return None;
    }
    Some(LoadSpec {
        kind,
        interval,
        timeout,
    })
}

/// Checks by name.
pub fn checks(
    entries: &Entries<Spanned<CheckFile>>,
    r: &mut Reporter,
) -> HashMap<String, Arc<Check>> {
    let mut out = HashMap::new();
    for (key, spec) in &entries.0 {
        let base = format!("checks.{}", key.value);
        if let Some(spec) = check(&base, key, &spec.value, r) {
            out.insert(
                key.value.clone(),
                Arc::new(Check {
                    name: key.value.clone(),
                    spec,
                }),
            );
        }
    }
    out
}

fn regex(s: &Spanned<String>, path: &str, r: &mut Reporter) -> Option<Pattern> {
    match Pattern::new(&s.value) {
        Ok(p) => Some(p),
        Err(e) => {
            // regex errors span several lines with a caret; the last line says what is wrong.
            let text = e.to_string();
            let why = text
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .trim_start_matches("error: ");
            r.error(
                loc(s),
                path,
                format!("{:?} is not a regular expression: {why}", s.value),
            );
            None
        }
    }
}

fn check(base: &str, key: &Spanned<String>, c: &CheckFile, r: &mut Reporter) -> Option<CheckSpec> {
    let kinds = [
        c.tcp.is_some(),
        c.http.is_some(),
        c.exec.is_some(),
        c.file.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        r.error(
            loc(key),
            base,
            "give exactly one kind of check: tcp, http, exec or file",
        );
        return None;
    }
    let errors = r.error_count();
    let interval = values::duration_or(
        c.interval.as_ref(),
        DEFAULT_INTERVAL,
        Zero::Allowed,
        &format!("{base}.interval"),
        r,
    );
    let timeout = values::duration_or(
        c.timeout.as_ref(),
        DEFAULT_TIMEOUT,
        Zero::Allowed,
        &format!("{base}.timeout"),
        r,
    );
    if let (Some(i), Some(spec)) = (interval, &c.interval)
        && i < MIN_INTERVAL
    {
        r.error(
            loc(spec),
            format!("{base}.interval"),
            "must be at least 100ms",
        );
    }
    if let (Some(i), Some(t)) = (interval, timeout)
        && t > i
    {
        let at = c.timeout.as_ref().map_or(loc(key), loc);
        r.error(
            at,
            format!("{base}.timeout"),
            format!(
                "{} is longer than the interval ({}); a probe must end before the next starts",
                humantime::format_duration(t),
                humantime::format_duration(i)
            ),
        );
    }
    let count = |v: &Option<Spanned<i64>>, what: &str, r: &mut Reporter| match v {
        None => Some(if what == "rise" { 2 } else { 3 }),
        Some(v) => values::int(v, 1..=1000, &format!("{base}.{what}"), r).map(|n| n as u32),
    };
    let rise = count(&c.rise, "rise", r);
    let fall = count(&c.fall, "fall", r);

    let kind = if let Some(t) = &c.tcp {
        let t = &t.value;
        let port = values::int(&t.port, 1..=65535, &format!("{base}.tcp.port"), r);
        let banner = t
            .expect_banner
            .as_ref()
            .map(|b| regex(b, &format!("{base}.tcp.expect_banner"), r));
        CheckKind::Tcp {
            port: port? as u16,
            expect_banner: banner.flatten(),
        }
    } else if let Some(h) = &c.http {
        let hp = format!("{base}.http");
        let h = &h.value;
        let tls = h.tls.unwrap_or(false);
        let port = match &h.port {
            Some(p) => values::int(p, 1..=65535, &format!("{hp}.port"), r).map(|p| p as u16),
            None => Some(if tls { 443 } else { 80 }),
        };
        let method = h
            .method
            .as_ref()
            .map_or("GET".to_string(), |m| m.value.to_ascii_uppercase());
        if !method.bytes().all(|b| b.is_ascii_uppercase()) || method.is_empty() {
            r.error(
                h.method.as_ref().map_or(loc(key), loc),
                format!("{hp}.method"),
                format!("{method:?} is not an HTTP method (GET, HEAD, ...)"),
            );
        }
        let path = h.path.as_ref().map_or("/".to_string(), |p| p.value.clone());
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            r.error(
                h.path.as_ref().map_or(loc(key), loc),
                format!("{hp}.path"),
                format!("{path:?} must start with / and hold no spaces"),
            );
        }
        if let Some(host) = &h.host
            && (host.value.is_empty() || host.value.chars().any(|c| c.is_whitespace() || c == '/'))
        {
            r.error(
                loc(host),
                format!("{hp}.host"),
                format!("{:?} is not a host name", host.value),
            );
        }
        let mut statuses = Vec::new();
        for (i, s) in h.expect_status.iter().flatten().enumerate() {
            if let Some(s) = values::int(s, 100..=599, &format!("{hp}.expect_status[{i}]"), r) {
                statuses.push(s as u16);
            }
        }
        if statuses.is_empty() {
            statuses.push(200);
        }
        let body_regex = h
            .expect_body_regex
            .as_ref()
            .and_then(|b| regex(b, &format!("{hp}.expect_body_regex"), r));
        let verify_tls = h.verify_tls.unwrap_or(true);
        let ca = match &h.ca_file {
            None => None,
            Some(f) if !tls => {
                r.error(
                    loc(f),
                    format!("{hp}.ca_file"),
                    "is for HTTPS checks: add `tls: true`",
                );
                None
            }
            Some(f) => {
                if !verify_tls {
                    r.warning(
                        loc(f),
                        format!("{hp}.ca_file"),
                        "has no effect with `verify_tls: false`",
                    );
                }
                ca_file(f, &format!("{hp}.ca_file"), r)
            }
        };
        CheckKind::Http(HttpCheck {
            port: port?,
            tls,
            host: h.host.as_ref().map(|h| h.value.clone()),
            method,
            path,
            expect_status: statuses,
            expect_body: h.expect_body.as_ref().map(|b| b.value.clone()),
            expect_body_regex: body_regex,
            verify_tls,
            ca,
        })
    } else if let Some(e) = &c.exec {
        if e.value.command.value.is_empty() || e.value.command.value[0].is_empty() {
            r.error(loc(&e.value.command), format!("{base}.exec.command"), "give the program and its arguments as a list, e.g. [/usr/local/bin/check, --quick]");
        }
        CheckKind::Exec {
            command: e.value.command.value.clone(),
        }
    } else {
        let f = &c.file.as_ref()?.value;
        let dir = r.file().parent().unwrap_or(Path::new(".")).to_path_buf();
        CheckKind::File {
            path: dir.join(&f.path.value),
        }
    };
    if r.error_count() > errors {
        return None;
    }
    Some(CheckSpec {
        kind,
        interval: interval?,
        timeout: timeout?,
        thresholds: Thresholds {
            rise: rise?,
            fall: fall?,
        },
    })
}

/// `ca_file:` of an HTTPS check: one or more PEM certificates, read now so that a probe never
/// reads a file. A relative path is relative to the zone file's directory, as for `file:` checks
/// and `records_file:`. Each certificate must be usable as a trust anchor.
fn ca_file(f: &Spanned<String>, path: &str, r: &mut Reporter) -> Option<CaCerts> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::{self, PemObject};
    use std::io::Read;

    let file = r.file().parent().unwrap_or(Path::new(".")).join(&f.value);
    let shown = file.display().to_string();
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(&file).and_then(|h| h.take(MAX_CA_FILE + 1).read_to_end(&mut bytes));
    let problem = match read {
        Err(e) => Some(format!("cannot read {shown}: {e}")),
        Ok(_) if bytes.len() as u64 > MAX_CA_FILE => Some(format!(
            "{shown} is larger than {} MiB; it should hold a few CA certificates",
            MAX_CA_FILE >> 20
        )),
        Ok(_) => None,
    };
    if let Some(p) = problem {
        r.error(loc(f), path, p);
        return None;
    }
    let mut der = Vec::new();
    for (i, c) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                let why = match e {
                    pem::Error::MissingSectionEnd { .. } => "a section has no END line".into(),
                    pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".into(),
                    pem::Error::Base64Decode(_) => "a section is not valid base64".into(),
                    other => other.to_string(),
                };
                r.error(loc(f), path, format!("{shown} is not valid PEM: {why}"));
                return None;
            }
        };
        if rustls::RootCertStore::empty().add(c.clone()).is_err() {
            r.error(
                loc(f),
                path,
                format!(
                    "{shown}: certificate {} is not a valid X.509 certificate",
                    i + 1
                ),
            );
            return None;
        }
        der.push(c.to_vec());
    }
    if der.is_empty() {
        let hint = if bytes.first() == Some(&0x30) {
            " (it looks like DER: convert it with `openssl x509 -inform der -out ca.pem`)"
        } else {
            ""
        };
        r.error(
            loc(f),
            path,
            format!("{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----){hint}"),
        );
        return None;
    }
    Some(CaCerts {
        path: file,
        der: der.into(),
    })
}

/// Pools by name, in file order.
/// `declared` holds every check name in the file, valid or not, so that a pool naming a check
/// with errors is not told the check does not exist.
pub fn pools(
    entries: &Entries<Spanned<PoolFile>>,
    checks: &HashMap<String, Arc<Check>>,
    declared: &BTreeSet<String>,
    sites: &[Site],
    r: &mut Reporter,
) -> Vec<Pool> {
    let names: BTreeSet<&str> = entries.0.iter().map(|(k, _)| k.value.as_str()).collect();
    let mut out = Vec::new();
    for (key, p) in &entries.0 {
        let base = format!("pools.{}", key.value);
        if let Some(pool) = pool(&base, key, &p.value, checks, declared, sites, &names, r) {
            out.push(pool);
        }
    }
    out
}

#[allow(
    clippy::too_many_arguments,
    reason = "validation context; a struct would only rename it"
)]
fn pool(
    base: &str,
    key: &Spanned<String>,
    p: &PoolFile,
    checks: &HashMap<String, Arc<Check>>,
    declared: &BTreeSet<String>,
    sites: &[Site],
    pool_names: &BTreeSet<&str>,
    r: &mut Reporter,
) -> Option<Pool> {
    let errors = r.error_count();
    let policy = policy(p.policy.as_ref(), base, r);
    let mut pool_checks = Vec::new();
    for (i, c) in p.checks.iter().flatten().enumerate() {
        match checks.get(&c.value) {
            Some(check) if pool_checks.contains(check) => r.error(
                loc(c),
                format!("{base}.checks[{i}]"),
                format!("{:?} is listed twice", c.value),
            ),
            Some(check) => pool_checks.push(check.clone()),
            // Declared but invalid: its own diagnostic says why; the pool is rejected with it.
            None if declared.contains(&c.value) => {}
            None => {
                let known: Vec<&str> = declared.iter().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                };
                r.error(
                    loc(c),
                    format!("{base}.checks[{i}]"),
                    format!("no check named {:?} in this zone (known: {known})", c.value),
                );
            }
        }
    }
    let ttl = match &p.ttl {
        Some(t) => values::ttl(t, &format!("{base}.ttl"), r)
            .map(i64::from)
            .map_or(DEFAULT_POOL_TTL, |t| t as u32),
        None => DEFAULT_POOL_TTL,
    };
    let max_answers = match &p.max_answers {
        Some(m) => values::int(m, 1..=64, &format!("{base}.max_answers"), r)
            .map_or(DEFAULT_MAX_ANSWERS, |m| m as u8),
        None => DEFAULT_MAX_ANSWERS,
    };

    let mut members: Vec<Member> = Vec::new();
    match &p.members {
        None => r.error(
            loc(key),
            format!("{base}.members"),
            "missing: a pool needs at least one member",
        ),
        Some(list) if list.value.is_empty() => r.error(
            loc(list),
            format!("{base}.members"),
            "empty: a pool needs at least one member",
        ),
        Some(list) => {
            for (i, m) in list.value.iter().enumerate() {
                let mp = format!("{base}.members[{i}]");
                let m = &m.value;
                let Ok(address) = m.address.value.trim().parse::<IpAddr>() else {
                    r.error(
                        loc(&m.address),
                        format!("{mp}.address"),
                        format!("{:?} is not an IPv4 or IPv6 address", m.address.value),
                    );
                    continue;
                };
                if members.iter().any(|x| x.address == address) {
                    r.error(
                        loc(&m.address),
                        format!("{mp}.address"),
                        format!("{address} is already a member of this pool"),
                    );
                    continue;
                }
                let weight = m.weight.as_ref().map_or(Some(DEFAULT_WEIGHT as i64), |w| {
                    values::int(w, 0..=1_000_000, &format!("{mp}.weight"), r)
                });
                let priority = m.priority.as_ref().map_or(Some(1), |w| {
                    values::int(w, 0..=1_000_000, &format!("{mp}.priority"), r)
                });
                let site = match &m.site {
                    None => None,
                    Some(s) => match sites.iter().position(|x| x.name == s.value) {
                        Some(i) => Some(i),
                        None => {
                            let known: Vec<&str> = sites.iter().map(|x| x.name.as_str()).collect();
                            r.error(
                                loc(s),
                                format!("{mp}.site"),
                                format!(
                                    "no site named {:?} in `sites:` (known: {})",
                                    s.value,
                                    if known.is_empty() {
                                        "none".into()
                                    } else {
                                        known.join(", ")
                                    }
                                ),
                            );
                            None
                        }
                    },
                };
                members.push(Member {
                    address,
                    weight: weight.unwrap_or(0) as u32,
                    priority: priority.unwrap_or(1) as u32,
                    site,
                });
            }
            if policy.topology && sites.is_empty() {
                r.error(
                    loc(list),
                    format!("{base}.policy"),
                    "topology needs a `sites:` map",
                );
            }
            if policy.order != Order::RoundRobin
                && !members.is_empty()
                && members.iter().all(|m| m.weight == 0)
            {
                r.error(
                    loc(list),
                    format!("{base}.members"),
                    "every weight is 0: nothing could ever be chosen",
                );
            }
        }
    }

    let mode = p
        .when_all_down
        .as_ref()
        .map(|s| s.value.as_str())
        .unwrap_or("all");
    let wad_loc = p.when_all_down.as_ref().map_or(loc(key), loc);
    let when_all_down = match (mode, &p.fallback) {
        ("all", None) => WhenAllDown::All,
        ("none", None) => WhenAllDown::None,
        ("servfail", None) => WhenAllDown::ServFail,
        ("fallback", Some(f)) => match (&f.value.addresses, &f.value.pool) {
            (Some(addrs), None) if !addrs.is_empty() => {
                let mut v = Vec::new();
                for (i, a) in addrs.iter().enumerate() {
                    match a.value.trim().parse::<IpAddr>() {
                        Ok(ip) => v.push(ip),
                        Err(_) => r.error(
                            loc(a),
                            format!("{base}.fallback.addresses[{i}]"),
                            format!("{:?} is not an IPv4 or IPv6 address", a.value),
                        ),
                    }
                }
                v.shrink_to_fit();
                WhenAllDown::Addresses(v)
            }
            (None, Some(other)) if other.value == key.value => {
                r.error(
                    loc(other),
                    format!("{base}.fallback.pool"),
                    "a pool cannot fall back to itself",
                );
                WhenAllDown::All
            }
            (None, Some(other)) if !pool_names.contains(other.value.as_str()) => {
                r.error(
                    loc(other),
                    format!("{base}.fallback.pool"),
                    format!("no pool named {:?} in this zone", other.value),
                );
                WhenAllDown::All
            }
            (None, Some(other)) => WhenAllDown::Pool(other.value.clone()),
            _ => {
                r.error(
                    loc(f),
                    format!("{base}.fallback"),
                    "give either `addresses: [...]` or `pool: NAME`",
                );
                WhenAllDown::All
            }
        },
        ("fallback", None) => {
            r.error(
                wad_loc,
                format!("{base}.when_all_down"),
                "`fallback` needs `fallback: { addresses: [...] }` or `fallback: { pool: NAME }`",
            );
            WhenAllDown::All
        }
        (m @ ("all" | "none" | "servfail"), Some(f)) => {
            r.error(
                loc(f),
                format!("{base}.fallback"),
                format!("only used with `when_all_down: fallback` (it is {m:?})"),
            );
            WhenAllDown::All
        }
        (other, _) => {
            r.error(
                wad_loc,
                format!("{base}.when_all_down"),
                format!("{other:?} is not allowed: use all, none, servfail or fallback"),
            );
            WhenAllDown::All
        }
    };
    if r.error_count() > errors {
        return None;
    }
    let load = p
        .load
        .as_ref()
        .and_then(|l| load(l, &format!("{base}.load"), r));
    if policy.order == Order::LeastLoaded && p.load.is_none() {
        r.error(loc(key), format!("{base}.load"), "least-loaded needs `load: { agent: { port: N } }` or `load: { http: { port: N, path: /load } }`");
    }
    let slow_start = values::duration_or(
        p.slow_start.as_ref(),
        Duration::ZERO,
        Zero::Allowed,
        &format!("{base}.slow_start"),
        r,
    );
    if r.error_count() > errors {
        return None;
    }
    Some(Pool {
        name: key.value.clone(),
        policy,
        checks: pool_checks.into(),
        ttl,
        max_answers,
        when_all_down,
        // Boxed slices: kept for the server's life, without spare room (a one-member pool
        // kept room for four, 1.4 MB over 10,000 pools).
        members: members.into(),
        load: load.map(Box::new),
        slow_start: slow_start.filter(|d| !d.is_zero()),
    })
}

/// `names:`; `pool_names` are the declared pools, `pools` the valid ones (a binding to a declared
/// but invalid pool is left out: that pool's own error rejects the zone), `statics` are the
/// owners of static records, `cuts` the delegation points.
pub fn bindings(
    entries: &Entries<Spanned<super::format::BindingFile>>,
    origin: &Name,
    pool_names: &HashSet<String>,
    pools: &[Pool],
    statics: &HashSet<LowerName>,
    cuts: &HashSet<LowerName>,
    r: &mut Reporter,
) -> Vec<Binding> {
    let mut out: Vec<Binding> = Vec::new();
    let mut bound: HashSet<LowerName> = HashSet::new();
    let index: HashMap<&str, usize> = pools
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    for (key, b) in &entries.0 {
        let base = format!("names.{}", key.value);
        let owner = match name(&key.value, Some(origin)) {
            Ok(n) => n,
            Err(m) => {
                r.error(loc(key), base, m);
                continue;
            }
        };
        let lower = LowerName::new(&owner);
        let at: Loc = loc(key);
        if !origin.zone_of(&owner) {
            r.error(at, base, format!("{owner} is outside the zone {origin}"));
        } else if statics.contains(&lower) {
            r.error(
                at,
                base,
                format!(
                    "{owner} also has static records; a name is either static or bound to a pool"
                ),
            );
        } else if !cuts.is_empty() && cuts.iter().any(|c| c.zone_of(&lower)) {
            r.error(
                at,
                base,
                format!("{owner} is at or below a delegation; gslbd is not authoritative there"),
            );
        } else if bound.contains(&lower) {
            r.error(at, base, format!("{owner} is bound twice"));
        } else if !pool_names.contains(&b.value.pool.value) {
            r.error(
                loc(&b.value.pool),
                format!("{base}.pool"),
                format!("no pool named {:?} in this zone", b.value.pool.value),
            );
        } else if let Some(&pool) = index.get(b.value.pool.value.as_str()) {
            bound.insert(lower);
            out.push(Binding { name: owner, pool });
        }
    }
    out
}
