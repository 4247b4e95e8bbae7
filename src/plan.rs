//! What the config compiles to for the writer: every (address, check spec) to probe and every
//! load source numbered densely, and each pool's members pointing at them by number. Judging a
//! member is then a few array reads, not hashing cloned check specs; the specs are looked up by
//! key only when a prober reports and when a reload matches old probes to new ones.
//!
//! ```text
//!  Config ──compile──▶ Plan { probes[ProbeId], loads[LoadId], pools[PoolId] → member ids }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Config, Pool};
use crate::probe::ProbeKey;
use crate::probe::load::LoadKey;

/// Index of a probe in [`Plan::probes`] (and in the health store).
pub type ProbeId = u32;
/// Index of a load source in [`Plan::loads`].
pub type LoadId = u32;
/// Index of a pool in [`Plan::pools`]: zones in config order, then pools in file order; also the
/// index of its answer in the snapshot.
pub type PoolId = u32;

/// One (address, check spec): probed once however many pools use it.
pub struct PlannedProbe {
    pub key: Arc<ProbeKey>,
    /// The names of the checks with this spec, for logs (`owa` or `owa/web`).
    pub names: Vec<String>,
    /// Pools whose answers depend on it.
    pub pools: Vec<PoolId>,
}

/// One load source (address, how to ask).
pub struct PlannedLoad {
    pub key: Arc<LoadKey>,
    pub pools: Vec<PoolId>,
}

/// Where a pool is, and the ids its members use.
pub struct PlannedPool {
    pub zone: usize,
    pub pool: usize,
    /// Member `m`'s probe for check `c` is `probes[m * checks + c]`.
    probes: Box<[ProbeId]>,
    checks: usize,
    /// Member `m`'s load source, if the pool has one.
    loads: Box<[LoadId]>,
}

impl PlannedPool {
    /// The probes of member `m`, one per check of the pool, in check order.
    pub fn probes_of(&self, m: usize) -> &[ProbeId] {
        self.probes
            .get(m * self.checks..(m + 1) * self.checks)
            .unwrap_or(&[])
    }

    /// The load source of member `m`.
    pub fn load_of(&self, m: usize) -> Option<LoadId> {
        self.loads.get(m).copied()
    }
}

#[derive(Default)]
pub struct Plan {
    pub probes: Vec<PlannedProbe>,
    pub loads: Vec<PlannedLoad>,
    pub pools: Vec<PlannedPool>,
    probe_ids: HashMap<Arc<ProbeKey>, ProbeId>,
    load_ids: HashMap<Arc<LoadKey>, LoadId>,
    /// The id of each zone's first pool (a zone's pools are numbered in a row).
    first_pool: Vec<PoolId>,
}

impl Plan {
    pub fn compile(config: &Config) -> Plan {
        let mut plan = Plan::default();
        for (zi, zone) in config.zones.iter().enumerate() {
            plan.first_pool.push(plan.pools.len() as PoolId);
            for (pi, pool) in zone.pools.iter().enumerate() {
                let id = plan.pools.len() as PoolId;
                let planned = plan.pool(zi, pi, pool, id);
                plan.pools.push(planned);
            }
        }
        plan
    }

    fn pool(&mut self, zone: usize, index: usize, pool: &Pool, id: PoolId) -> PlannedPool {
        let mut probes = Vec::with_capacity(pool.members.len() * pool.checks.len());
        let mut loads = Vec::new();
        for m in pool.members.iter() {
            for c in pool.checks.iter() {
                let key = ProbeKey {
                    address: m.address,
                    spec: c.spec.clone(),
                };
                let pid = intern(&mut self.probe_ids, &mut self.probes, key, |key| {
                    PlannedProbe {
                        key,
                        names: Vec::new(),
                        pools: Vec::new(),
                    }
                });
                let p = &mut self.probes[pid as usize];
                if !p.names.contains(&c.name) {
                    p.names.push(c.name.clone());
                }
                if p.pools.last() != Some(&id) {
                    p.pools.push(id);
                }
                probes.push(pid);
            }
            if let Some(spec) = &pool.load {
                let key = LoadKey {
                    address: m.address,
                    spec: (**spec).clone(),
                };
                let lid = intern(&mut self.load_ids, &mut self.loads, key, |key| {
                    PlannedLoad {
                        key,
                        pools: Vec::new(),
                    }
                });
                let l = &mut self.loads[lid as usize];
                if l.pools.last() != Some(&id) {
                    l.pools.push(id);
                }
                loads.push(lid);
            }
        }
        PlannedPool {
            zone,
            pool: index,
            probes: probes.into(),
            checks: pool.checks.len(),
            loads: loads.into(),
        }
    }

    pub fn probe_id(&self, key: &ProbeKey) -> Option<ProbeId> {
        self.probe_ids.get(key).copied()
    }

    pub fn load_id(&self, key: &LoadKey) -> Option<LoadId> {
        self.load_ids.get(key).copied()
    }

    /// The pool named `name` in `zone` (the zone of index `zi`): linear in the zone's pools,
    /// which only `when_all_down: { pool }` and explain ask for. No map of names is kept:
    /// with 10,000 one-pool names it would cost a megabyte.
    pub fn pool_named(&self, zi: usize, zone: &crate::model::Zone, name: &str) -> Option<PoolId> {
        let i = zone.pools.iter().position(|p| p.name == name)?;
        Some(self.first_pool.get(zi)? + i as PoolId)
    }
}

/// The id of `key` in `ids`, numbering it next (and pushing `make(key)` to `items`) if new.
fn intern<K: std::hash::Hash + Eq, T>(
    ids: &mut HashMap<Arc<K>, u32>,
    items: &mut Vec<T>,
    key: K,
    make: impl FnOnce(Arc<K>) -> T,
) -> u32 {
    if let Some(&id) = ids.get(&key) {
        return id;
    }
    let id = items.len() as u32;
    let key = Arc::new(key);
    ids.insert(key.clone(), id);
    items.push(make(key));
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Sources};

    fn config(text: &str) -> Config {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("zones")).unwrap();
        std::fs::write(d.path().join("zones/p.yaml"), text).unwrap();
        std::fs::write(d.path().join("gslbd.yaml"), "state_dir: state\n").unwrap();
        config::load(&Sources {
            config: Some(d.path().join("gslbd.yaml")),
            zones_dir: Some(d.path().join("zones")),
        })
        .unwrap()
        .config
    }

    #[test]
    fn shared_probes_are_numbered_once_and_members_point_at_them() {
        let c = config(
            "zone: p.test.
soa: { mname: ns1.p.test., rname: h.p.test. }
ns: [ns1.p.test.]
records:
  ns1: { A: [192.0.2.53] }
checks:
  web: { tcp: { port: 80 } }
  smtp: { tcp: { port: 25 } }
pools:
  a:
    checks: [web, smtp]
    members: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }]
  b:
    checks: [web]
    members: [{ address: 192.0.2.2 }, { address: 192.0.2.3 }]
names:
  a: { pool: a }
  b: { pool: b }
",
        );
        let plan = Plan::compile(&c);
        // 192.0.2.2 port 80 is one probe for both pools: 2×2 + 1 new.
        assert_eq!(plan.probes.len(), 5);
        let a = &plan.pools[0];
        let b = &plan.pools[1];
        assert_eq!(a.probes_of(1).len(), 2);
        assert_eq!(a.probes_of(1)[0], b.probes_of(0)[0], "shared web probe");
        let shared = &plan.probes[a.probes_of(1)[0] as usize];
        assert_eq!(shared.pools, [0, 1]);
        assert_eq!(shared.names, ["web"]);
        assert_eq!(plan.probe_id(&shared.key), Some(a.probes_of(1)[0]));
        assert_eq!(plan.pool_named(0, &c.zones[0], "b"), Some(1));
        assert!(b.load_of(0).is_none());
    }
}
