//! `pools:` → pools: members (no duplicates), known checks and policy steps in their fixed
//! order, a `when_all_down` that makes sense, a load source for least-loaded.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::checks::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT, MIN_INTERVAL};
use super::diag::Reporter;
use super::format::PolicyFile;
use super::format::{Entries, PoolFile, Spanned};
use super::values::{self, Zero, loc};
use crate::model::{Check, Member, Order, Policy, PolicyStep, Pool, Site, WhenAllDown};

pub const DEFAULT_POOL_TTL: u32 = 30;
pub const DEFAULT_MAX_ANSWERS: u8 = 2;
pub const DEFAULT_WEIGHT: u32 = 100;
/// Failover tries lower numbers first; members without one share the first group.
pub const DEFAULT_PRIORITY: u32 = 1;

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
        let step: PolicyStep = match step.parse() {
            Ok(s) => s,
            Err(e) => {
                r.error(loc(p), &path, e);
                continue;
            }
        };
        let r_step = step.rank();
        if r_step < rank || (r_step == 3 && ordered) || (r_step == rank && r_step < 3) {
            r.error(loc(p), &path, "steps run in a fixed order: failover, topology or nearest, then one of round-robin, weighted, sticky, least-loaded; list each once, in that order");
            return policy;
        }
        rank = r_step;
        match step {
            PolicyStep::Failover => policy.failover = true,
            PolicyStep::Topology => policy.topology = true,
            PolicyStep::Nearest => policy.nearest = true,
            PolicyStep::Order(o) => {
                policy.order = o;
                ordered = true;
            }
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
                let priority = m
                    .priority
                    .as_ref()
                    .map_or(Some(i64::from(DEFAULT_PRIORITY)), |w| {
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
                    priority: priority.map_or(DEFAULT_PRIORITY, |p| p as u32),
                    site,
                });
            }
            if (policy.topology || policy.nearest) && sites.is_empty() {
                r.error(
                    loc(list),
                    format!("{base}.policy"),
                    format!(
                        "{} needs a `sites:` map",
                        if policy.nearest {
                            "nearest"
                        } else {
                            "topology"
                        }
                    ),
                );
            }
            if policy.nearest {
                let mut used: Vec<usize> = members.iter().filter_map(|m| m.site).collect();
                used.sort_unstable();
                used.dedup();
                for s in used {
                    if sites[s].coordinates.is_none() {
                        r.error(
                            loc(list),
                            format!("{base}.policy"),
                            format!(
                                "nearest orders sites by distance: site {} has members here but no `coordinates`",
                                sites[s].name
                            ),
                        );
                    }
                }
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
