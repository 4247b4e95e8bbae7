//! `GET /v1/status`: every zone, pool and member as the writer knows them.

use std::time::Instant;

use super::Table;
use crate::api;
use crate::health::Status;
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
                        let checks = self
                            .check_states(id, mi)
                            .map(|(c, state)| api::CheckStatus {
                                check: c.name.clone(),
                                status: state.map_or(Status::Unknown, |s| s.status),
                                since_seconds: state.map(|s| since(s.since)),
                                last_result: state
                                    .and_then(|s| s.last.as_ref())
                                    .map(|o| o.reason.clone()),
                                last_seconds_ago: state.and_then(|s| s.last_at).map(since),
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
            zones,
        }
    }
}
