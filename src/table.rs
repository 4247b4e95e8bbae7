//! The writer's side of the live table: the config, the health of every probe, overrides and
//! load, and the pool answers derived from them. One task owns a [`Table`]; every change
//! publishes a new [`Snapshot`] through [`Live`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod explain;

pub use explain::Question;

use crate::api;
use crate::health::load::{LoadState, slow_start_factor};
use crate::health::overrides::{Override, OverrideKind, OverrideTarget, Overrides};
use crate::health::{self, Outcome, State, Status, Transition};
use crate::metrics::{Metrics, PoolCells, cell_of};
use crate::model::{self, Config, WhenAllDown};
use crate::probe::ProbeKey;
use crate::probe::load::{AgentState, Load, LoadKey};
use crate::select::pipeline::{self, NoTrace};
use crate::select::{self, Eligible, Family};
use crate::snapshot::{self, BuildError, Live, Map, PoolAnswer, Snapshot, View, Zone};

struct Probe {
    state: State,
    /// Pool ids whose answers depend on this probe.
    pools: Vec<u32>,
    /// The names of the checks with this spec, for logs.
    names: Vec<String>,
}

/// The writer's side of the live table: the config, the health of every probe, and the pool
/// answers derived from them. One task owns it; every change publishes a new [`Snapshot`].
pub struct Table {
    live: Live,
    /// The config without static records and bindings (see [`kept`]).
    config: Config,
    zones: Arc<Map<Box<[u8]>, Zone>>,
    /// Pool id → (zone index, pool index in the zone).
    pool_refs: Vec<(usize, usize)>,
    pool_answers: Vec<PoolAnswer>,
    /// Pool id → the metric cells of every address the pool may answer with (members and
    /// fallbacks), sorted by address. Holding them keeps them exported.
    pool_cells: Vec<PoolCells>,
    probes: HashMap<Arc<ProbeKey>, Probe>,
    loads: HashMap<Arc<LoadKey>, LoadState>,
    /// When each address last went from down to up (for slow start).
    came_up: HashMap<IpAddr, Instant>,
    overrides: Overrides,
    /// The time of the last event the table saw; answers are computed as of this time.
    now: Instant,
    generation: u64,
    metrics: Arc<Metrics>,
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
        let zones = Arc::new(snapshot::build::zones(&config.zones, &metrics.counters)?);
        let mut t = Table {
            live: Live::new(Snapshot::empty()),
            config: kept(config),
            zones,
            pool_refs: Vec::new(),
            pool_answers: Vec::new(),
            pool_cells: Vec::new(),
            probes: HashMap::new(),
            loads: HashMap::new(),
            came_up: HashMap::new(),
            overrides: Default::default(),
            now,
            generation: 1,
            metrics,
        };
        t.index_probes(|key| match restored(key) {
            Some(s) => State::with_status(s, now),
            None => State::new(now),
        });
        t.recompute_all();
        t.live.publish(t.snapshot());
        t.metrics.generation.set(t.generation as i64);
        Ok(t)
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
        self.probes
            .get(key)
            .map_or_else(String::new, |p| p.names.join("/"))
    }

    /// Every probe and its state.
    pub fn probe_state(&self, key: &ProbeKey) -> Option<&State> {
        self.probes.get(key).map(|p| &p.state)
    }

    /// Every probe and its state.
    pub fn probes(&self) -> impl Iterator<Item = (&Arc<ProbeKey>, &State)> {
        self.probes.iter().map(|(k, p)| (k, &p.state))
    }

    /// Take one probe outcome. On a change of status, the pools that use the probe are
    /// recomputed and a new snapshot is published.
    pub fn observe(
        &mut self,
        key: &ProbeKey,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Transition> {
        self.now = now;
        let probe = self.probes.get_mut(key)?;
        let tr = probe.state.observe(outcome, key.spec.thresholds, now)?;
        if tr.from == Status::Down && tr.to == Status::Up {
            self.came_up.insert(key.address, now);
        }
        let pools = probe.pools.clone();
        self.republish(&pools);
        Some(tr)
    }

    /// The overrides in force.
    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }

    /// The override that applies to a member of `zone` at `address` placed in `site`: its own,
    /// else its site's.
    pub fn override_for(
        &self,
        zone: &model::Zone,
        address: IpAddr,
        site: Option<usize>,
    ) -> Option<&Override> {
        self.overrides.members.get(&address).or_else(|| {
            let name = &zone.sites.get(site?)?.name;
            self.overrides.sites.get(name)
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
        self.overrides.set(target, o);
        self.recompute_all();
        self.live.publish(self.snapshot());
    }

    /// Drop overrides whose expiry has passed (`now_unix`, seconds since the epoch). Returns
    /// whether any was dropped.
    pub fn expire_overrides(&mut self, now_unix: u64) -> bool {
        let before = self.overrides.len();
        let live = |o: &Override| o.expires_unix.is_none_or(|t| t > now_unix);
        self.overrides.members.retain(|_, o| live(o));
        self.overrides.sites.retain(|_, o| live(o));
        let changed = self.overrides.len() != before;
        if changed {
            self.recompute_all();
            self.live.publish(self.snapshot());
        }
        changed
    }

    /// Whether every probe has reported at least once (the first round is done).
    pub fn first_round_done(&self) -> bool {
        self.probes.values().all(|p| p.state.last_at.is_some())
    }

    /// Every zone, pool and member as the admin API shows them.
    pub fn status(&self, now: Instant) -> api::StatusReport {
        let since = |t: Instant| now.saturating_duration_since(t).as_secs();
        let zones = self
            .config
            .zones
            .iter()
            .map(|z| {
                let pools = z
                    .pools
                    .iter()
                    .map(|p| {
                        let members = p
                            .members
                            .iter()
                            .map(|m| {
                                let checks = p
                                    .checks
                                    .iter()
                                    .map(|c| {
                                        let key = ProbeKey {
                                            address: m.address,
                                            spec: c.spec.clone(),
                                        };
                                        let state = self.probes.get(&key).map(|pr| &pr.state);
                                        api::CheckStatus {
                                            check: c.name.clone(),
                                            status: state.map_or(Status::Unknown, |s| s.status),
                                            since_seconds: state.map(|s| since(s.since)),
                                            last_result: state
                                                .and_then(|s| s.last.as_ref())
                                                .map(|o| o.reason.clone()),
                                            last_seconds_ago: state
                                                .and_then(|s| s.last_at)
                                                .map(since),
                                        }
                                    })
                                    .collect();
                                let site =
                                    m.site.and_then(|s| z.sites.get(s)).map(|s| s.name.clone());
                                api::MemberStatus {
                                    address: m.address,
                                    status: self.member_status(z, p, m),
                                    weight: m.weight,
                                    priority: m.priority,
                                    own_override: self.overrides.members.get(&m.address).cloned(),
                                    site_override: site
                                        .as_ref()
                                        .and_then(|s| self.overrides.sites.get(s))
                                        .cloned(),
                                    site,
                                    spare_capacity: self.load_of(p, m).and_then(|l| l.capacity),
                                    checks,
                                }
                            })
                            .collect();
                        api::PoolStatus {
                            pool: p.name.clone(),
                            members,
                        }
                    })
                    .collect();
                api::ZoneStatus {
                    zone: z.origin.to_string(),
                    pools,
                }
            })
            .collect();
        api::StatusReport {
            generation: self.generation,
            zones,
        }
    }

    /// Every load source.
    pub fn loads(&self) -> impl Iterator<Item = &Arc<LoadKey>> {
        self.loads.keys()
    }

    /// Take one load report: smooth it and republish the pools that use it.
    pub fn observe_load(&mut self, key: &LoadKey, load: Result<Load, String>, now: Instant) {
        self.now = now;
        let Some(l) = self.loads.get_mut(key) else {
            return;
        };
        let Ok(load) = load else { return };
        l.observe(&key.spec, load, now);
        let pools = l.pools.clone();
        self.republish(&pools);
    }

    /// Time passes: pools whose members are ramping up or whose load reports went stale are
    /// recomputed. Cheap when nothing depends on time.
    pub fn tick(&mut self, now: Instant) {
        self.now = now;
        // Stale reports are forgotten once (the member counts at full weight again) and their
        // pools recomputed once; nothing stays "due" forever.
        let mut due: Vec<u32> = Vec::new();
        for (key, l) in self.loads.iter_mut() {
            if l.expire(&key.spec, now) {
                due.extend(l.pools.iter().copied());
            }
        }
        for (id, &(zi, pi)) in self.pool_refs.iter().enumerate() {
            let pool = &self.config.zones[zi].pools[pi];
            let ramping = pool.slow_start.is_some_and(|w| {
                pool.members.iter().any(|m| {
                    self.came_up.get(&m.address).is_some_and(|t| {
                        now.saturating_duration_since(*t) <= w + Duration::from_secs(1)
                    })
                })
            });
            if ramping {
                due.push(id as u32);
            }
        }
        due.sort_unstable();
        due.dedup();
        if !due.is_empty() {
            self.republish(&due);
        }
    }

    fn republish(&mut self, pools: &[u32]) {
        for &id in pools {
            self.pool_answers[id as usize] = self.answer_of(id);
            self.gauge_pool(id);
        }
        self.live.publish(self.snapshot());
    }

    /// Set the `member_up` gauges of one pool.
    fn gauge_pool(&self, id: u32) {
        let (zi, pi) = self.pool_refs[id as usize];
        let zone = &self.config.zones[zi];
        let pool = &zone.pools[pi];
        let cells = &self.pool_cells[id as usize];
        for m in &pool.members {
            if let Some(cell) = cell_of(cells, m.address) {
                cell.set_up(self.member_status(zone, pool, m) != Status::Down);
            }
        }
    }

    /// The metrics this table reports into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Replace the config. Probes whose (address, spec) stays keep their state.
    pub fn reload(&mut self, config: Config, now: Instant) -> Result<ProbeChanges, BuildError> {
        let zones = Arc::new(snapshot::build::zones(
            &config.zones,
            &self.metrics.counters,
        )?);
        let old: HashMap<Arc<ProbeKey>, Probe> = std::mem::take(&mut self.probes);
        let old_loads: HashMap<Arc<LoadKey>, LoadState> = std::mem::take(&mut self.loads);
        self.now = now;
        self.config = kept(config);
        self.zones = zones;
        self.index_probes(|key| {
            old.get(key)
                .map_or_else(|| State::new(now), |p| p.state.clone())
        });
        let changes = ProbeChanges {
            added: self
                .probes
                .keys()
                .filter(|k| !old.contains_key(*k))
                .cloned()
                .collect(),
            removed: old
                .keys()
                .filter(|k| !self.probes.contains_key(*k))
                .cloned()
                .collect(),
            loads_added: self
                .loads
                .keys()
                .filter(|k| !old_loads.contains_key(*k))
                .cloned()
                .collect(),
            loads_removed: old_loads
                .keys()
                .filter(|k| !self.loads.contains_key(*k))
                .cloned()
                .collect(),
        };
        // Load sources that stay keep their smoothed reports.
        for (k, l) in self.loads.iter_mut() {
            if let Some(o) = old_loads.get(k) {
                let pools = std::mem::take(&mut l.pools);
                *l = LoadState { pools, ..o.clone() };
            }
        }
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
        }
    }

    /// Number the pools and collect the probes they need.
    fn index_probes(&mut self, mut state_of: impl FnMut(&ProbeKey) -> State) {
        self.pool_refs.clear();
        for (zi, z) in self.config.zones.iter().enumerate() {
            for pi in 0..z.pools.len() {
                self.pool_refs.push((zi, pi));
            }
        }
        for (id, &(zi, pi)) in self.pool_refs.iter().enumerate() {
            let pool = &self.config.zones[zi].pools[pi];
            for m in &pool.members {
                if let Some(spec) = &pool.load {
                    let key = LoadKey {
                        address: m.address,
                        spec: (**spec).clone(),
                    };
                    let l = self.loads.entry(Arc::new(key)).or_default();
                    if !l.pools.contains(&(id as u32)) {
                        l.pools.push(id as u32);
                    }
                }
                for c in &pool.checks {
                    let key = ProbeKey {
                        address: m.address,
                        spec: c.spec.clone(),
                    };
                    if let Some(p) = self.probes.get_mut(&key) {
                        if !p.pools.contains(&(id as u32)) {
                            p.pools.push(id as u32);
                        }
                        if !p.names.contains(&c.name) {
                            p.names.push(c.name.clone());
                        }
                        continue;
                    }
                    let state = state_of(&key);
                    self.probes.insert(
                        Arc::new(key),
                        Probe {
                            state,
                            pools: vec![id as u32],
                            names: vec![c.name.clone()],
                        },
                    );
                }
            }
        }
    }

    fn recompute_all(&mut self) {
        self.pool_cells = self
            .pool_refs
            .iter()
            .map(|&(zi, pi)| {
                let zone = &self.config.zones[zi];
                let pool = &zone.pools[pi];
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
        self.pool_answers = (0..self.pool_refs.len() as u32)
            .map(|id| self.answer_of(id))
            .collect();
        for id in 0..self.pool_refs.len() as u32 {
            self.gauge_pool(id);
        }
        let m = &self.metrics.overrides;
        m.clear();
        for (_, o) in self.overrides.iter() {
            let kind = o.kind.as_str();
            m.get_or_create(&crate::metrics::KindLabels { kind }).inc();
        }
    }

    /// The load source of a member, if its pool has one.
    fn load_of(&self, pool: &model::Pool, m: &model::Member) -> Option<&LoadState> {
        let spec = pool.load.as_ref()?;
        self.loads.get(&LoadKey {
            address: m.address,
            spec: (**spec).clone(),
        })
    }

    /// The status of a member of a pool: an operator's force-up/force-down first, then all of
    /// the pool's checks combined (no checks: up); an agent that says `down` or `maint` takes
    /// the member down too.
    pub(crate) fn member_status(
        &self,
        zone: &model::Zone,
        pool: &model::Pool,
        m: &model::Member,
    ) -> Status {
        match self.override_for(zone, m.address, m.site).map(|o| o.kind) {
            Some(OverrideKind::ForceUp) => return Status::Up,
            Some(OverrideKind::ForceDown) => return Status::Down,
            _ => {}
        }
        if let (Some(l), Some(spec)) = (self.load_of(pool, m), &pool.load)
            && l.state == Some(AgentState::Down)
            && l.fresh(spec, self.now)
        {
            return Status::Down;
        }
        health::combine(pool.checks.iter().map(|c| {
            let key = ProbeKey {
                address: m.address,
                spec: c.spec.clone(),
            };
            self.probes
                .get(&key)
                .map_or(Status::Unknown, |p| p.state.status)
        }))
    }

    /// Run the publish-time steps of the pipeline for one pool and encode the result: health,
    /// failover and `when_all_down` once per family, then topology once per site.
    fn answer_of(&self, id: u32) -> PoolAnswer {
        let (zi, pi) = self.pool_refs[id as usize];
        let zone = &self.config.zones[zi];
        let pool = &zone.pools[pi];
        let judge = self.judge(zone);
        let v4 = pipeline::family(pool, Family::V4, &judge, &mut NoTrace);
        let v6 = pipeline::family(pool, Family::V6, &judge, &mut NoTrace);
        let sites: Vec<Option<usize>> = if pool.policy.topology {
            std::iter::once(None)
                .chain((0..zone.sites.len()).map(Some))
                .collect()
        } else {
            vec![None]
        };
        let cells = &self.pool_cells[id as usize];
        // Every address a pool answers with has a cell (fallbacks too); a detached one would
        // only go uncounted.
        let hits = |address: IpAddr| cell_of(cells, address).cloned().unwrap_or_default();
        let encode = |e: &Eligible, site, f| {
            let e = pipeline::site(pool, e, site, &zone.sites, &mut NoTrace);
            snapshot::build::family(pool, &e, f, &hits)
        };
        PoolAnswer(
            sites
                .into_iter()
                .map(|site| View {
                    v4: encode(&v4, site, Family::V4),
                    v6: encode(&v6, site, Family::V6),
                })
                .collect(),
        )
    }

    /// The pipeline's view of this table for the pools of `zone`.
    pub(crate) fn judge<'a>(&'a self, zone: &'a model::Zone) -> Judge<'a> {
        Judge { table: self, zone }
    }
}

/// What the pipeline asks the writer: health, overrides and load of the members of one zone.
pub(crate) struct Judge<'a> {
    table: &'a Table,
    zone: &'a model::Zone,
}

impl pipeline::Judge for Judge<'_> {
    fn status(&self, pool: &model::Pool, m: &model::Member) -> Status {
        self.table.member_status(self.zone, pool, m)
    }

    fn drained(&self, c: &select::Candidate) -> bool {
        self.table
            .override_for(self.zone, c.address, c.site)
            .is_some_and(|o| o.kind == OverrideKind::Drain)
    }

    fn weight(&self, pool: &model::Pool, c: &select::Candidate) -> u32 {
        self.table.effective_weight(pool, c)
    }

    fn pool(&self, name: &str) -> Option<&model::Pool> {
        self.zone.pools.iter().find(|p| p.name == name)
    }
}

impl Table {
    /// Weight × spare capacity (fresh load reports, smoothed) × slow-start ramp. A drained
    /// member gets 0: weighted sampling then never picks it while another member has weight.
    /// Scaled by 100 so that small capacities keep their proportion.
    pub(crate) fn effective_weight(&self, pool: &model::Pool, c: &select::Candidate) -> u32 {
        let Some(m) = pool.members.iter().find(|m| m.address == c.address) else {
            return c.weight;
        };
        let mut w = f64::from(c.weight) * 100.0;
        if let (Some(l), Some(spec)) = (self.load_of(pool, m), &pool.load)
            && l.fresh(spec, self.now)
        {
            if l.state == Some(AgentState::Drain) {
                return 0;
            }
            w *= l.capacity.unwrap_or(1.0);
        }
        if let (Some(window), Some(t)) = (pool.slow_start, self.came_up.get(&m.address)) {
            w *= slow_start_factor(window, self.now.saturating_duration_since(*t));
        }
        // A member with some capacity never drops to 0: it keeps a small share.
        if w > 0.0 {
            (w.round() as u32).max(1)
        } else {
            0
        }
    }
}

impl Snapshot {
    /// A snapshot of a config with every member counted as up (no health known): for tests
    /// and tools that need the answers of a config without running probes.
    pub fn build(zones: &[model::Zone], generation: u64) -> Result<Snapshot, BuildError> {
        let config = Config {
            server: model::Server::default(),
            zones: zones.to_vec(),
        };
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
        assert_eq!(t.loads.get(&*key).unwrap().capacity, Some(0.2));
        // fresh: nothing to do
        let g = t.live.load().pools[0].clone();
        t.tick(t0 + Duration::from_secs(2));
        assert!(g.same(&t.live.load().pools[0]), "no republish while fresh");
        // three intervals later the report is forgotten and the pool recomputed, once
        t.tick(t0 + Duration::from_secs(4));
        assert_eq!(t.loads.get(&*key).unwrap().capacity, None);
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
