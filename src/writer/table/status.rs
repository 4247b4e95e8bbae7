//! `GET /v1/status`: every zone, pool and member as the writer knows them.

use std::time::Instant;

use std::net::IpAddr;

use super::Table;
use crate::api::{self, PoolState};
use crate::health::Status;
use crate::metrics::cell_of;
use crate::model::{self, WhenAllDown};
use crate::plan::PoolId;

impl Table {
    /// Every zone, pool and member as the admin API shows them.
    pub fn status(&self, now: Instant) -> api::StatusReport {
        let since = |t: Instant| now.saturating_duration_since(t).as_secs();
        let mut zones = Vec::with_capacity(self.config.zones.len());
        let mut id: PoolId = 0;
        for z in &self.config.zones {
            let mut pools = Vec::with_capacity(z.pools.len());
            for p in z.pools.iter() {
                let members = p
                    .members
                    .iter()
                    .enumerate()
                    .map(|(mi, m)| {
                        let probes = self.plan.pools[id as usize].probes_of(mi);
                        let checks = p
                            .checks
                            .iter()
                            .zip(probes)
                            .map(|(c, &pid)| {
                                let h = self.health.probe(pid);
                                let state = h.map(|h| h.local());
                                api::CheckStatus {
                                    check: c.name.clone(),
                                    status: self.health.status(pid),
                                    since_seconds: state.map(|s| since(s.since)),
                                    last_result: state
                                        .and_then(|s| s.last.as_ref())
                                        .map(|o| o.reason.clone()),
                                    last_seconds_ago: state.and_then(|s| s.last_at).map(since),
                                    votes: h.map_or_else(Vec::new, |h| self.votes_of(h)),
                                }
                            })
                            .collect();
                        let site = m.site.and_then(|s| z.sites.get(s)).map(|s| s.name.clone());
                        let overrides = &self.health.overrides;
                        api::MemberStatus {
                            address: m.address,
                            status: self.member_status(id, mi),
                            weight: m.weight,
                            priority: m.priority,
                            own_override: overrides.members.get(&m.address).cloned(),
                            site_override: site
                                .as_ref()
                                .and_then(|s| overrides.sites.get(s))
                                .cloned(),
                            site,
                            spare_capacity: self.load_state(id, mi).and_then(|l| l.capacity),
                            answers: self.answers(id, m.address),
                            last_change: None,
                            checks,
                        }
                    })
                    .collect::<Vec<_>>();
                let families = families(p.ttl, &members);
                // The pool as its worst family's answers are.
                let worst = families.iter().max_by_key(|f| f.state);
                pools.push(api::PoolStatus {
                    pool: p.name.clone(),
                    state: worst.map_or(PoolState::Healthy, |f| f.state),
                    ttl: worst.map_or(p.ttl, |f| f.ttl),
                    families,
                    all_down_answer: when_all_down(p),
                    members,
                });
                id += 1;
            }
            zones.push(api::ZoneStatus {
                zone: z.origin.to_string(),
                pools,
            });
        }
        api::StatusReport {
            generation: self.generation,
            cluster: None,
            zones,
        }
    }

    /// Address records of `address` handed out in answers of pool `id`.
    fn answers(&self, id: PoolId, address: IpAddr) -> u64 {
        self.pool_cells
            .get(id as usize)
            .and_then(|c| cell_of(c, address))
            .map_or(0, |c| c.hits())
    }

    /// Every member's answer counter: (zone, pool, member, answers), for the console's rates.
    pub fn answer_counts(&self) -> Vec<(String, &str, IpAddr, u64)> {
        let mut out = Vec::new();
        let mut id: PoolId = 0;
        for z in &self.config.zones {
            let zone = z.origin.to_string();
            for p in z.pools.iter() {
                for m in p.members.iter() {
                    out.push((
                        zone.clone(),
                        p.name.as_str(),
                        m.address,
                        self.answers(id, m.address),
                    ));
                }
                id += 1;
            }
        }
        out
    }

    /// Each node's view of a probe (none without a cluster).
    pub(crate) fn votes_of(&self, h: &crate::health::store::ProbeHealth) -> Vec<api::Vote> {
        if self.cluster.is_none() {
            return Vec::new();
        }
        h.vantages()
            .iter()
            .filter_map(|(v, s)| {
                Some(api::Vote {
                    node: self.node_of(*v)?.to_string(),
                    status: s.status,
                    last_result: s.last.as_ref().map(|o| o.reason.clone()),
                })
            })
            .collect()
    }
}

/// Each address family's answers, as the pipeline decides them (`select::pipeline`): down
/// members of the family are dropped; some down → degraded, and the TTL is halved (DESIGN §4);
/// all down → `when_all_down` answers (with the halved TTL too, when it gives addresses).
fn families(ttl: u32, members: &[api::MemberStatus]) -> Vec<api::FamilyState> {
    [("A", true), ("AAAA", false)]
        .into_iter()
        .filter_map(|(family, v4)| {
            let of: Vec<Status> = members
                .iter()
                .filter(|m| m.address.is_ipv4() == v4)
                .map(|m| m.status)
                .collect();
            let down = of.iter().filter(|s| **s == Status::Down).count();
            let state = match down {
                _ if of.is_empty() => return None,
                0 => PoolState::Healthy,
                d if d == of.len() => PoolState::AllDown,
                _ => PoolState::Degraded,
            };
            let ttl = if state == PoolState::Healthy {
                ttl
            } else {
                ttl / 2
            };
            Some(api::FamilyState {
                family: family.to_string(),
                state,
                ttl,
            })
        })
        .collect()
}

/// What a pool answers when every member is down, as the console shows it.
fn when_all_down(p: &model::Pool) -> String {
    match &p.when_all_down {
        WhenAllDown::All => "every member (fail open)".to_string(),
        WhenAllDown::None => "no address (NODATA)".to_string(),
        WhenAllDown::ServFail => "SERVFAIL".to_string(),
        WhenAllDown::Addresses(a) => {
            let each: Vec<String> = a.iter().map(ToString::to_string).collect();
            format!("the fallback addresses {}", each.join(", "))
        }
        WhenAllDown::Pool(name) => format!("what pool {name} answers"),
    }
}
