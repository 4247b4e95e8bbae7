//! `GET /v1/status`: every zone, pool and member as the writer knows them.

use std::time::Instant;

use super::Table;
use crate::api;
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
                            checks,
                        }
                    })
                    .collect();
                pools.push(api::PoolStatus {
                    pool: p.name.clone(),
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
