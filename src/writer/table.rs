//! The writer's side of the live table: the config compiled into a [`Plan`], what is known of
//! every member in a [`HealthStore`], and the pool answers derived from them. One task owns a
//! [`Table`]; every change publishes a new [`Snapshot`] through [`Live`].
//!
//! ```text
//!  Config ──Plan::compile──▶ Plan ─┐
//!  probe reports, load reports,    ├─▶ pipeline per pool ──snapshot::build──▶ Snapshot ──▶ Live
//!  overrides ──▶ HealthStore ──────┘
//! ```

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod explain;
mod judge;
mod publish;
mod status;
mod vantages;

use crate::health::load::LoadState;
use crate::health::overrides::{Override, OverrideKind, OverrideTarget, Overrides};
use crate::health::store::{HealthStore, Observed, ProbeHealth, Vantage};
use crate::health::{self, Outcome, State, Status};
use crate::metrics::{Metrics, PoolCells, cell_of};
use crate::model::{self, Config, WhenAllDown};
use crate::plan::{Plan, PoolId};
use crate::probe::ProbeKey;
use crate::probe::load::{AgentState, Load, LoadError, LoadKey};
use crate::snapshot::{self, BuildError, Live, Map, PoolAnswer, Snapshot, Zone};

/// The writer's side of the live table. Every change publishes a new [`Snapshot`].
pub struct Table {
    live: Live,
    /// The config without static records and bindings (see [`kept`]).
    config: Config,
    zones: Arc<Map<Box<[u8]>, Zone>>,
    plan: Plan,
    health: HealthStore,
    pool_answers: Vec<PoolAnswer>,
    /// Pool id → the metric cells of every address the pool may answer with (members and
    /// fallbacks), sorted by address. Holding them keeps them exported.
    pool_cells: Vec<PoolCells>,
    /// The time of the last event the table saw; answers are computed as of this time.
    now: Instant,
    generation: u64,
    metrics: Arc<Metrics>,
    /// With a cluster: every probe by the name nodes share, and the nodes' vantages.
    cluster: Option<vantages::Names>,
    /// In signed zones: the names each pool is bound to (binding index, name), to sign its
    /// answer sets under.
    pool_names: Vec<Vec<(u16, hickory_proto::rr::Name)>>,
}

/// What a reload changed in the set of probes.
#[derive(Debug, Default)]
pub struct ProbeChanges {
    pub added: Vec<Arc<ProbeKey>>,
    pub removed: Vec<Arc<ProbeKey>>,
    pub loads_added: Vec<Arc<LoadKey>>,
    pub loads_removed: Vec<Arc<LoadKey>>,
}

impl Table {
    /// Build the table for a config; `restored` gives last-known states (from `state_dir`).
    pub fn new(
        config: Config,
        restored: &dyn Fn(&ProbeKey) -> Option<Status>,
        now: Instant,
        metrics: Arc<Metrics>,
    ) -> Result<Table, BuildError> {
        let zones = Arc::new(snapshot::build::zones(
            &config.zones,
            config.geo.as_ref(),
            &metrics.counters,
        )?);
        let config = kept(config);
        let plan = Plan::compile(&config);
        let probes = plan
            .probes
            .iter()
            .map(|p| {
                ProbeHealth::new(match restored(&p.key) {
                    Some(s) => State::with_status(s, now),
                    None => State::new(now),
                })
            })
            .collect();
        let loads = vec![LoadState::default(); plan.loads.len()];
        let mut t = Table {
            live: Live::new(Snapshot::empty()),
            config,
            zones,
            health: HealthStore::new(probes, loads),
            plan,
            pool_answers: Vec::new(),
            pool_cells: Vec::new(),
            now,
            generation: 1,
            metrics,
            cluster: None,
            pool_names: Vec::new(),
        };
        t.recompute_all();
        t.live.publish(t.snapshot());
        t.metrics.generation.set(t.generation as i64);
        Ok(t)
    }

    /// Whether a signed zone's signatures must be made again at `now_unix` (less than its
    /// `refresh` left).
    pub fn signatures_due(&self, now_unix: u64) -> bool {
        self.config.zones.iter().any(|z| {
            let Some(d) = &z.dnssec else { return false };
            self.zones
                .get(snapshot::lower_wire(&z.origin).as_slice())
                .and_then(|sz| sz.signer.as_ref())
                .is_some_and(|s| s.validity.due(now_unix, d.refresh.as_secs()))
        })
    }

    /// The handle readers load snapshots from.
    pub fn live(&self) -> Live {
        self.live.clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The names of the checks a probe runs for, e.g. `owa` or `owa/web`.
    pub fn check_names(&self, key: &ProbeKey) -> String {
        self.plan.probe_id(key).map_or_else(String::new, |id| {
            self.plan.probes[id as usize].names.join("/")
        })
    }

    /// A probe's state (as seen from here).
    pub fn probe_state(&self, key: &ProbeKey) -> Option<&State> {
        let id = self.plan.probe_id(key)?;
        self.health.probe(id).map(ProbeHealth::local)
    }

    /// A probe's status for answers (the cluster's quorum, with one).
    pub fn probe_status(&self, key: &ProbeKey) -> Status {
        self.plan
            .probe_id(key)
            .map_or(Status::Unknown, |id| self.health.status(id))
    }

    /// Every probe and its state.
    pub fn probes(&self) -> impl Iterator<Item = (&Arc<ProbeKey>, &State)> {
        self.plan
            .probes
            .iter()
            .zip(self.health.probes())
            .map(|(p, h)| (&p.key, h.local()))
    }

    /// Take one probe outcome. On a change of status, the pools that use the probe are
    /// recomputed and a new snapshot is published.
    pub fn observe(&mut self, key: &ProbeKey, outcome: Outcome, now: Instant) -> Observed {
        self.now = now;
        let Some(id) = self.plan.probe_id(key) else {
            return Observed::default();
        };
        let o = self.health.observe(
            id,
            key.address,
            Vantage::LOCAL,
            outcome,
            key.spec.thresholds,
            now,
        );
        if o.status.is_some() {
            let pools = self.plan.probes[id as usize].pools.clone();
            self.republish(&pools);
        }
        o
    }

    /// The overrides in force.
    pub fn overrides(&self) -> &Overrides {
        &self.health.overrides
    }

    /// The override that applies to a member of `zone` at `address` placed in `site`: its own,
    /// else its site's.
    pub fn override_for(
        &self,
        zone: &model::Zone,
        address: IpAddr,
        site: Option<usize>,
    ) -> Option<&Override> {
        let overrides = &self.health.overrides;
        overrides.members.get(&address).or_else(|| {
            let name = &zone.sites.get(site?)?.name;
            overrides.sites.get(name)
        })
    }

    /// Whether any zone has a site of this name.
    pub fn is_site(&self, name: &str) -> bool {
        self.config
            .zones
            .iter()
            .flat_map(|z| &z.sites)
            .any(|s| s.name == name)
    }

    /// Every member address and site name of the config.
    pub fn members_and_sites(
        &self,
    ) -> (
        std::collections::HashSet<IpAddr>,
        std::collections::HashSet<&str>,
    ) {
        let zones = &self.config.zones;
        (
            zones
                .iter()
                .flat_map(|z| &z.pools)
                .flat_map(|p| &p.members)
                .map(|m| m.address)
                .collect(),
            zones
                .iter()
                .flat_map(|z| &z.sites)
                .map(|s| s.name.as_str())
                .collect(),
        )
    }

    /// Whether `addr` is a member of any pool.
    pub fn is_member(&self, addr: IpAddr) -> bool {
        self.config
            .zones
            .iter()
            .flat_map(|z| &z.pools)
            .flat_map(|p| &p.members)
            .any(|m| m.address == addr)
    }

    /// Set (`Some`) or clear (`None`) the override of a member or site and republish.
    /// Restored overrides of addresses or sites that are no longer configured are kept (a
    /// reload may bring them back); the API refuses new ones for unknown targets.
    pub fn set_override(&mut self, target: &OverrideTarget, o: Option<Override>) {
        self.health.overrides.set(target, o);
        self.count_overrides();
        // Only the pools the target is in are built again: in a signed zone that is signing,
        // and 1,000 signed pools took 110 ms to re-publish where one takes well under 1.
        let pools: Vec<PoolId> = (0..self.plan.pools.len() as PoolId)
            .filter(|&id| {
                let pool = self.pool(id);
                match target {
                    OverrideTarget::Member(a) => {
                        pool.members.iter().any(|m| m.address == *a)
                            || matches!(pool.when_all_down, WhenAllDown::Pool(_))
                    }
                    OverrideTarget::Site(_) => true,
                }
            })
            .collect();
        self.republish(&pools);
    }

    /// Drop overrides whose expiry has passed (`now_unix`, seconds since the epoch). Returns
    /// those dropped.
    pub fn expire_overrides(&mut self, now_unix: u64) -> Vec<(OverrideTarget, Override)> {
        let gone = self.health.expire_overrides(now_unix);
        if !gone.is_empty() {
            self.recompute_all();
            self.live.publish(self.snapshot());
        }
        gone
    }

    /// Whether every probe has reported at least once (the first round is done).
    pub fn first_round_done(&self) -> bool {
        self.health
            .probes()
            .iter()
            .all(|p| p.local().last_at.is_some())
    }

    /// Every load source.
    pub fn loads(&self) -> impl Iterator<Item = &Arc<LoadKey>> {
        self.plan.loads.iter().map(|l| &l.key)
    }

    /// Take one load report: smooth it and republish the pools that use it.
    /// Returns the agent's state change (before, after), if the report changed it.
    pub fn observe_load(
        &mut self,
        key: &LoadKey,
        load: Result<Load, LoadError>,
        now: Instant,
    ) -> Option<(Option<AgentState>, AgentState)> {
        self.now = now;
        let id = self.plan.load_id(key)?;
        let load = load.ok()?;
        let mut changed = None;
        if let Some(l) = self.health.load_mut(id) {
            let before = l.state;
            l.observe(&key.spec, load, now);
            changed = load
                .state
                .filter(|s| before != Some(*s))
                .map(|s| (before, s));
        }
        let pools = self.plan.loads[id as usize].pools.clone();
        self.republish(&pools);
        changed
    }

    /// Time passes: pools whose members are ramping up or whose load reports went stale are
    /// recomputed. Cheap when nothing depends on time.
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
        // Stale reports are forgotten once (the member counts at full weight again) and their
        // pools recomputed once; nothing stays "due" forever.
        let mut due: Vec<PoolId> = Vec::new();
        for (id, l) in self.health.loads_mut() {
            let planned = &self.plan.loads[id as usize];
            if l.expire(&planned.key.spec, now) {
                due.extend(planned.pools.iter().copied());
            }
        }
        for (id, pp) in self.plan.pools.iter().enumerate() {
            let pool = &self.config.zones[pp.zone].pools[pp.pool];
            let ramping = pool.slow_start.is_some_and(|w| {
                pool.members.iter().any(|m| {
                    self.health.came_up(m.address).is_some_and(|t| {
                        now.saturating_duration_since(t) <= w + Duration::from_secs(1)
                    })
                })
            });
            if ramping {
                due.push(id as PoolId);
            }
        }
        due.sort_unstable();
        due.dedup();
        if !due.is_empty() {
            self.republish(&due);
        }
    }

    fn republish(&mut self, pools: &[PoolId]) {
        for &id in pools {
            self.pool_answers[id as usize] = self.answer_of(id);
            self.gauge_pool(id);
        }
        self.live.publish(self.snapshot());
    }

    /// Set the `member_up` gauges of one pool.
    fn gauge_pool(&self, id: PoolId) {
        let pool = self.pool(id);
        let cells = &self.pool_cells[id as usize];
        for (mi, m) in pool.members.iter().enumerate() {
            if let Some(cell) = cell_of(cells, m.address) {
                cell.set_up(self.member_status(id, mi) != Status::Down);
            }
        }
    }

    /// The metrics this table reports into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Replace the config. Probes whose (address, spec) stays keep their state, load sources
    /// their reports; overrides stay as they are.
    pub fn reload(&mut self, config: Config, now: Instant) -> Result<ProbeChanges, BuildError> {
        let zones = Arc::new(snapshot::build::zones(
            &config.zones,
            config.geo.as_ref(),
            &self.metrics.counters,
        )?);
        self.now = now;
        let config = kept(config);
        let plan = Plan::compile(&config);
        let old = std::mem::replace(&mut self.plan, plan);
        let probes = self
            .plan
            .probes
            .iter()
            .map(
                |p| match old.probe_id(&p.key).and_then(|i| self.health.probe(i)) {
                    Some(h) => h.clone(),
                    None => ProbeHealth::new(State::new(now)),
                },
            )
            .collect();
        let loads = self
            .plan
            .loads
            .iter()
            .map(|l| {
                old.load_id(&l.key)
                    .and_then(|i| self.health.load(i))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        self.health.renumbered(probes, loads);
        if let Some(names) = &mut self.cluster {
            names.index(&self.plan);
        }
        let changes = ProbeChanges {
            added: self
                .plan
                .probes
                .iter()
                .filter(|p| old.probe_id(&p.key).is_none())
                .map(|p| p.key.clone())
                .collect(),
            removed: old
                .probes
                .iter()
                .filter(|p| self.plan.probe_id(&p.key).is_none())
                .map(|p| p.key.clone())
                .collect(),
            loads_added: self
                .plan
                .loads
                .iter()
                .filter(|l| old.load_id(&l.key).is_none())
                .map(|l| l.key.clone())
                .collect(),
            loads_removed: old
                .loads
                .iter()
                .filter(|l| self.plan.load_id(&l.key).is_none())
                .map(|l| l.key.clone())
                .collect(),
        };
        self.config = config;
        self.zones = zones;
        self.generation += 1;
        self.recompute_all();
        self.live.publish(self.snapshot());
        self.metrics.generation.set(self.generation as i64);
        // Zones and members the new config dropped stop being exported.
        self.metrics.counters.prune();
        Ok(changes)
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            zones: self.zones.clone(),
            pools: self.pool_answers.clone(),
            generation: self.generation,
            counters: self.metrics.counters.clone(),
            nsid: self.cluster.as_ref().map(|c| c.nsid.clone()),
        }
    }

    /// The zone of a pool, and the pool.
    fn zone_and_pool(&self, id: PoolId) -> (&model::Zone, &model::Pool) {
        let pp = &self.plan.pools[id as usize];
        let zone = &self.config.zones[pp.zone];
        (zone, &zone.pools[pp.pool])
    }

    fn pool(&self, id: PoolId) -> &model::Pool {
        self.zone_and_pool(id).1
    }

    fn recompute_all(&mut self) {
        self.pool_names = vec![Vec::new(); self.plan.pools.len()];
        for z in self.zones.values().filter(|z| z.signer.is_some()) {
            for (key, node) in &z.nodes {
                if let Some(p) = node.pool
                    && let Some(names) = self.pool_names.get_mut(p as usize)
                    && let Ok(name) = <hickory_proto::rr::Name as hickory_proto::serialize::binary::BinDecodable>::from_bytes(key)
                {
                    names.push((node.binding, name));
                }
            }
        }
        self.pool_cells = (0..self.plan.pools.len() as PoolId)
            .map(|id| {
                let (zone, pool) = self.zone_and_pool(id);
                let addresses = |p: &model::Pool| -> Vec<IpAddr> {
                    p.members.iter().map(|m| m.address).collect()
                };
                let fallbacks = match &pool.when_all_down {
                    WhenAllDown::Addresses(a) => a.clone(),
                    WhenAllDown::Pool(name) => zone
                        .pools
                        .iter()
                        .find(|p| p.name == *name)
                        .map(addresses)
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                self.metrics.counters.pool_cells(
                    &zone.origin.to_string(),
                    &pool.name,
                    &addresses(pool),
                    &fallbacks,
                )
            })
            .collect();
        self.pool_answers = (0..self.plan.pools.len() as PoolId)
            .map(|id| self.answer_of(id))
            .collect();
        for id in 0..self.plan.pools.len() as PoolId {
            self.gauge_pool(id);
        }
        self.count_overrides();
    }

    /// The `overrides` gauges: how many overrides of each kind are set.
    fn count_overrides(&self) {
        let m = &self.metrics.overrides;
        m.clear();
        for (_, o) in self.health.overrides.iter() {
            let kind = o.kind.as_str();
            m.get_or_create(&crate::metrics::KindLabels { kind }).inc();
        }
    }

    /// The load reports of member `mi` of pool `id`, if its pool has a load source.
    fn load_state(&self, id: PoolId, mi: usize) -> Option<&LoadState> {
        let lid = self.plan.pools[id as usize].load_of(mi)?;
        self.health.load(lid)
    }

    /// The status of member `mi` of pool `id`: an operator's force-up/force-down first, then
    /// all of the pool's checks combined (no checks: up); an agent that says `down` or `maint`
    /// takes the member down too.
    pub(crate) fn member_status(&self, id: PoolId, mi: usize) -> Status {
        let (zone, pool) = self.zone_and_pool(id);
        let Some(m) = pool.members.get(mi) else {
            return Status::Unknown;
        };
        match self.override_for(zone, m.address, m.site).map(|o| o.kind) {
            Some(OverrideKind::ForceUp) => return Status::Up,
            Some(OverrideKind::ForceDown) => return Status::Down,
            _ => {}
        }
        if let (Some(l), Some(spec)) = (self.load_state(id, mi), &pool.load)
            && l.state == Some(AgentState::Down)
            && l.fresh(spec, self.now)
        {
            return Status::Down;
        }
        let probes = self.plan.pools[id as usize].probes_of(mi);
        health::combine(probes.iter().map(|&pid| self.health.status(pid)))
    }
}

impl Snapshot {
    /// A snapshot of a config with every member counted as up (no health known): for tests
    /// and tools that need the answers of a config without running probes.
    pub fn build(zones: &[model::Zone], generation: u64) -> Result<Snapshot, BuildError> {
        Snapshot::of_config(
            &Config {
                server: model::Server::default(),
                zones: zones.to_vec(),
                geo: None,
            },
            generation,
        )
    }

    /// [`Snapshot::build`] of a whole config: its zones and GeoIP databases.
    pub fn of_config(config: &Config, generation: u64) -> Result<Snapshot, BuildError> {
        let config = config.clone();
        let table = Table::new(config, &|_| None, Instant::now(), Arc::new(Metrics::new()))?;
        let mut snap = Snapshot::clone_of(&table.live.load());
        snap.generation = generation;
        Ok(snap)
    }
}

/// What the table keeps of a config once its zones are built: static records and name
/// bindings live on in the snapshot's nodes only (a zone of 100,000 static names would
/// otherwise be held twice); pools, sites and settings stay, to recompute answers from.
///
/// The rest is copied, not moved: the parsed config lies scattered among the parser's freed
/// garbage, pinning those pages; the copy fills the holes and the original's pages go back to
/// the system (10,000 one-member pools: 17.2–18.9 MiB over ten reloads instead of 17.5–21.1).
fn kept(mut config: Config) -> Config {
    for z in &mut config.zones {
        z.rrsets = Vec::new();
        z.bindings = Vec::new();
    }
    config.clone()
}

#[cfg(test)]
mod table_tests {
    use super::*;
    use crate::model::Order;
    use crate::probe::load::Load;

    fn config() -> Config {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zones");
        let mut c = crate::config::load(&crate::config::Sources {
            config: None,
            zones_dir: Some(dir),
        })
        .expect("bundled zones")
        .config;
        let pool = &mut c.zones[0].pools[0];
        pool.policy.order = Order::LeastLoaded;
        pool.load = Some(Box::new(model::LoadSpec {
            kind: model::LoadKind::Agent { port: 9 },
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
        }));
        c
    }

    #[test]
    fn stale_load_reports_are_forgotten_once() {
        let t0 = Instant::now();
        let mut t = Table::new(config(), &|_| None, t0, Arc::default()).unwrap();
        let key = t.loads().next().unwrap().clone();
        let load = Load {
            capacity: Some(0.2),
            state: None,
        };
        t.observe_load(&key, Ok(load), t0);
        let lid = t.plan.load_id(&key).unwrap();
        assert_eq!(t.health.load(lid).unwrap().capacity, Some(0.2));
        // fresh: nothing to do
        let g = t.live.load().pools[0].clone();
        t.tick(t0 + Duration::from_secs(2));
        assert!(g.same(&t.live.load().pools[0]), "no republish while fresh");
        // three intervals later the report is forgotten and the pool recomputed, once
        t.tick(t0 + Duration::from_secs(4));
        assert_eq!(t.health.load(lid).unwrap().capacity, None);
        let g = t.live.load().pools[0].clone();
        t.tick(t0 + Duration::from_secs(5));
        assert!(g.same(&t.live.load().pools[0]), "not recomputed again");
    }

    #[test]
    fn member_up_is_exported_for_members_only_across_reloads() {
        let mut c = config();
        let pool = &mut c.zones[0].pools[0];
        pool.load = None;
        pool.policy.order = Order::RoundRobin;
        let member = pool.members[0].address;
        let spare: IpAddr = "192.0.2.99".parse().unwrap();
        pool.when_all_down = WhenAllDown::Addresses(vec![spare]);
        let name = pool.name.clone();
        let zone = c.zones[0].origin.to_string();
        let line =
            |a: IpAddr| format!(r#"gslbd_member_up{{zone="{zone}",pool="{name}",member="{a}"}}"#);
        let metrics = Arc::new(Metrics::new());
        let t0 = Instant::now();
        let mut t = Table::new(c.clone(), &|_| None, t0, metrics.clone()).unwrap();
        let text = metrics.encode();
        assert!(text.contains(&line(member)), "{text}");
        assert!(
            !text.contains(&line(spare)),
            "a fallback is not a member: {text}"
        );
        // The spare becomes a member, then only a fallback again.
        let mut with_spare = c.clone();
        let mut members = with_spare.zones[0].pools[0].members.to_vec();
        members.push(model::Member {
            address: spare,
            weight: 1,
            priority: 0,
            site: None,
        });
        with_spare.zones[0].pools[0].members = members.into();
        t.reload(with_spare, t0).unwrap();
        assert!(metrics.encode().contains(&line(spare)));
        t.reload(c, t0).unwrap();
        let text = metrics.encode();
        assert!(!text.contains(&line(spare)), "{text}");
        assert!(text.contains(&line(member)), "{text}");
    }
}
