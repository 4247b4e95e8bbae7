//! The one writer: owns the [`Table`], runs the probers, turns their reports into health,
//! applies overrides and reloads, lets time pass (slow start, stale load reports, override
//! expiry), keeps the writer-side metrics, and saves state (health at most once a second;
//! overrides before the API answers). Its time is tokio's clock, so tests run it paused.
//!
//! ```text
//!  probers ─reports─┐
//!  admin API ───────┼─▶ writer ─▶ Table ─▶ Snapshot ─▶ Live
//!  signals ─reload──┘        └─▶ state_dir, metrics
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::admin;
use crate::config::{self, Sources};
use crate::health::Status;
use crate::health::overrides::{Override, OverrideKind, OverrideTarget};
use crate::metrics::{CheckLabels, ResultLabels, TransitionLabels};
use crate::probe;
use crate::probe::ProbeKey;
use crate::probe::load::LoadKey;
use crate::state;

mod cluster;
mod history;
mod rates;
mod table;

pub use cluster::lease_ttl;
pub use table::{ProbeChanges, Table};

/// Requests to the writer.
pub enum Command {
    Reload,
}

/// Probe reports queued for the writer at most; a prober waits when the writer is behind.
const REPORT_QUEUE: usize = 1024;

/// How often the GeoIP database files are looked at for a new release.
pub const GEO_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// The one writer: owns the table, runs the probers, turns their reports into health, applies
/// overrides and reloads, and saves state (health at most once a second; overrides before the
/// API answers).
struct Writer {
    table: Table,
    settings: Settings,
    state_dir: std::path::PathBuf,
    probers: HashMap<Arc<ProbeKey>, tokio::task::JoinHandle<()>>,
    load_probers: HashMap<Arc<LoadKey>, tokio::task::JoinHandle<()>>,
    report_tx: mpsc::Sender<probe::Report>,
    load_tx: mpsc::Sender<probe::load::LoadReport>,
    clock: Clock,
    /// With `cluster:`: this node's membership.
    cluster: Option<cluster::Member>,
    /// Recent health transitions and operator actions, for the console.
    history: history::History,
    /// Answers per member per second, sampled once a second.
    rates: rates::Rates,
}

/// How the writer runs.
pub struct Settings {
    /// Where a reload reads the config from.
    pub sources: Sources,
    /// The addresses listened on, which a reload cannot change.
    pub listen: Vec<SocketAddr>,
    /// `--listen`: when given, it replaced the config's `listen`, and does so on reload too.
    pub cli_listen: Vec<SocketAddr>,
    /// Where probers run (the low-priority probe runtime); `None`: no probers, reports come
    /// only through [`Inbox`] (tests).
    pub probers: Option<tokio::runtime::Handle>,
    /// With `cluster:`: the etcd task (the table has joined the cluster already).
    pub cluster: Option<crate::cluster::Link>,
}

/// The writer's time, read from tokio's clock so that tests can run it paused; the Unix time
/// of overrides follows it from the moment the writer started.
struct Clock {
    start: tokio::time::Instant,
    start_unix: u64,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            start: tokio::time::Instant::now(),
            start_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }

    fn unix(&self) -> u64 {
        self.start_unix + self.start.elapsed().as_secs()
    }

    /// The Unix time (seconds) of an instant of this clock.
    fn unix_of(&self, t: std::time::Instant) -> u64 {
        let start = self.start.into_std();
        match t.checked_duration_since(start) {
            Some(d) => self.start_unix + d.as_secs(),
            None => self
                .start_unix
                .saturating_sub(start.duration_since(t).as_secs()),
        }
    }
}

impl Writer {
    /// Re-read the config; make it live if it is valid. `Ok` says what changed; `Err` holds the
    /// diagnostics.
    async fn reload(&mut self) -> Result<String, admin::ReloadError> {
        let sources = self.settings.sources.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&sources))
            .await
            .map_err(|e| admin::ReloadError::Loader(e.to_string()))?;
        let mut cfg = match loaded {
            Ok(l) => {
                for w in &l.warnings.items {
                    tracing::warn!("{w}");
                }
                l.config
            }
            Err(diags) => return Err(admin::ReloadError::Invalid(diags.to_string())),
        };
        // Compare what a restart with the same command line would listen on.
        let s = &self.settings;
        let wanted = if s.cli_listen.is_empty() {
            &cfg.server.listen
        } else {
            &s.cli_listen
        };
        if *wanted != s.listen {
            tracing::warn!("reload: listen addresses changed; they take effect on restart");
        }
        cfg.server.listen = s.listen.clone();
        if let Some(m) = &self.cluster
            && cfg.server.cluster.as_ref() != Some(&m.settings)
        {
            tracing::warn!("reload: cluster settings changed; they take effect on restart");
        }
        if cfg.server.xdp != self.table.config().server.xdp {
            tracing::warn!("reload: xdp settings changed; they take effect on restart");
        }
        let state_dir = cfg.server.state_dir.clone();
        let changes = self.table.reload(cfg, self.clock.now())?;
        for k in &changes.removed {
            if let Some(h) = self.probers.remove(k) {
                h.abort();
            }
        }
        if let Some(rt) = &self.settings.probers {
            for k in &changes.added {
                let known = known_status(&self.table, k);
                let h = probe::spawn(k.clone(), known, self.report_tx.clone(), rt);
                self.probers.insert(k.clone(), h);
            }
        }
        for k in &changes.loads_removed {
            if let Some(h) = self.load_probers.remove(k) {
                h.abort();
            }
        }
        if let Some(rt) = &self.settings.probers {
            for k in &changes.loads_added {
                let h = probe::load::spawn(k.clone(), self.load_tx.clone(), rt);
                self.load_probers.insert(k.clone(), h);
            }
        }
        self.state_dir = state_dir;
        self.unpublish(&changes.removed);
        self.reapply_cluster();
        let (members, sites) = self.table.members_and_sites();
        self.history
            .retain(|a| members.contains(&a), |s| sites.contains(s));
        crate::sys::release_freed_memory();
        Ok(format!(
            "generation {}: {} probe(s) added, {} removed",
            self.table.generation(),
            changes.added.len(),
            changes.removed.len()
        ))
    }

    /// Set or clear an override, then save all of them (atomically) before confirming.
    fn set_override(
        &mut self,
        target: OverrideTarget,
        change: Option<(OverrideKind, String, Option<std::time::Duration>)>,
        by: Option<String>,
    ) -> Result<Option<Override>, admin::OverrideError> {
        use admin::OverrideError::{NotFound, NotSaved};
        if change.is_some() {
            match &target {
                OverrideTarget::Member(a) if !self.table.is_member(*a) => {
                    return Err(NotFound(format!("{a} is not a member of any pool")));
                }
                OverrideTarget::Site(s) if !self.table.is_site(s) => {
                    return Err(NotFound(format!("{s:?} is not a site of any zone")));
                }
                _ => {}
            }
        }
        let previous = self.table.overrides().get(&target).cloned();
        if change.is_none() && previous.is_none() {
            return Err(NotFound(format!("{target} has no override")));
        }
        let now = self.clock.unix();
        let ov = change.map(|(kind, reason, expires)| Override {
            kind,
            reason,
            set_unix: now,
            expires_unix: expires.map(|d| now + d.as_secs().max(1)),
            node: self.cluster.as_ref().map(|m| m.settings.node.clone()),
            by: by.clone(),
        });
        self.table.set_override(&target, ov.clone());
        if let Err(e) = state::save_overrides(&self.state_dir, self.table.overrides()) {
            // Not saved means not done: put the previous one back.
            self.table.set_override(&target, previous);
            let msg = format!(
                "cannot save overrides to {}: {e}; the override was not applied",
                state::overrides_path(&self.state_dir).display()
            );
            tracing::error!(target = %target, "override of {target} refused: {msg}");
            return Err(NotSaved(msg));
        }
        let who = by
            .as_deref()
            .map_or_else(String::new, |b| format!(" by {b}"));
        match &ov {
            Some(o) => {
                tracing::info!(target = %target, "override: {target} {}{who}", o.describe(now))
            }
            None => tracing::info!(target = %target, "override: {target} cleared{who}"),
        }
        let to = ov.as_ref().map_or("cleared", |o| o.kind.as_str());
        let reason = ov.as_ref().map(|o| o.reason.clone());
        self.override_event(&target, previous.as_ref(), to, reason, by);
        Ok(ov)
    }

    /// Put a health transition of a member's check (or its load agent's state) in the history.
    fn health_event(
        &mut self,
        member: std::net::IpAddr,
        check: String,
        (from, to): (impl std::fmt::Display, impl std::fmt::Display),
        reason: String,
    ) {
        self.history.push(crate::api::Event {
            seq: 0,
            unix: self.clock.unix(),
            member: Some(member),
            site: None,
            kind: crate::api::EventKind::Health,
            check: Some(check),
            from: from.to_string(),
            to: to.to_string(),
            reason,
            by: None,
        });
    }

    /// Put an operator's action (or an override's expiry) in the history.
    fn override_event(
        &mut self,
        target: &OverrideTarget,
        previous: Option<&Override>,
        to: &str,
        reason: Option<String>,
        by: Option<String>,
    ) {
        let (member, site) = match target {
            OverrideTarget::Member(a) => (Some(*a), None),
            OverrideTarget::Site(s) => (None, Some(s.clone())),
        };
        self.history.push(crate::api::Event {
            seq: 0,
            unix: self.clock.unix(),
            member,
            site,
            kind: crate::api::EventKind::Override,
            check: None,
            from: previous.map_or("none", |o| o.kind.as_str()).to_string(),
            to: to.to_string(),
            reason: reason.unwrap_or_default(),
            by,
        });
    }

    /// One probe report: health, logs, metrics, and this node's observation for the cluster.
    /// Returns whether health changed (to be saved).
    fn on_report(&mut self, r: probe::Report) -> bool {
        let names = self.table.check_names(&r.key);
        let metrics = self.table.metrics().clone();
        metrics.probe(&names, r.outcome.failure, r.elapsed);
        let o = self
            .table
            .observe(&r.key, r.outcome.clone(), self.clock.now());
        // A changed status is in the snapshot now: how long after the probe ended.
        let published = o.status.as_ref().map(|_| r.finished.elapsed());
        if let Some(d) = published {
            metrics.publish_delay.observe(d.as_secs_f64());
        }
        set_check_gauge(&self.table, &r.key);
        if o.local.is_some() || o.first {
            self.publish_observation(&r.key);
            self.cluster_metrics();
        }
        if let (Some(status), true) = (&o.status, self.cluster.is_some())
            && o.local.as_ref().is_none_or(|l| l.to != status.to)
        {
            self.log_quorum(&r.key, status);
        }
        let Some(tr) = o.local else {
            tracing::debug!(
                member = %r.key.address,
                check = %names,
                "probe: {} check {}: {}",
                r.key.address, names, r.outcome.reason
            );
            return false;
        };
        // In a cluster this node's view is one vote: say whose.
        let reason = match &self.cluster {
            Some(m) => format!("{} saw: {}", m.settings.node, r.outcome.reason),
            None => r.outcome.reason.clone(),
        };
        self.health_event(r.key.address, names.clone(), (tr.from, tr.to), reason);
        metrics
            .transitions
            .get_or_create(&TransitionLabels {
                member: r.key.address.to_string(),
                check: names.clone(),
                to: tr.to.to_string(),
            })
            .inc();
        let published = published.map_or_else(String::new, |d| {
            format!(" (published {} µs after the probe)", d.as_micros())
        });
        tracing::info!(
            member = %r.key.address,
            check = %names,
            from = %tr.from,
            to = %tr.to,
            "health: {} check {}: {} -> {}: {}{published}",
            r.key.address, names, tr.from, tr.to, r.outcome.reason
        );
        let status = self.table.probe_status(&r.key);
        if self.cluster.is_some() && o.status.is_none() && status != tr.to {
            tracing::info!(
                member = %r.key.address,
                "health: {} check {}: the cluster's votes keep it {} ({})",
                r.key.address,
                names,
                status,
                self.table.votes_text(&r.key)
            );
        }
        true
    }
}

/// What the writer hears from: signals, the admin API, and the stop flag; and where it tells
/// that the first round of probes is done.
pub struct Inbox {
    pub commands: mpsc::Receiver<Command>,
    pub api: mpsc::Receiver<admin::Request>,
    pub ready: watch::Sender<bool>,
    pub stop: watch::Receiver<bool>,
}

/// Run the writer until `inbox.stop` turns true: start the probers, take their reports, the
/// API's requests and reloads, let time pass, and save state.
pub async fn run(table: Table, settings: Settings, inbox: Inbox) {
    let (report_tx, reports) = mpsc::channel::<probe::Report>(REPORT_QUEUE);
    run_with(table, settings, inbox, report_tx, reports).await
}

/// [`run`], with the probe report channel given (tests send reports through it).
pub async fn run_with(
    table: Table,
    mut settings: Settings,
    inbox: Inbox,
    report_tx: mpsc::Sender<probe::Report>,
    mut reports: mpsc::Receiver<probe::Report>,
) {
    let Inbox {
        mut commands,
        mut api,
        ready,
        mut stop,
    } = inbox;
    let (load_tx, mut load_reports) = mpsc::channel::<probe::load::LoadReport>(REPORT_QUEUE);
    let mut probers = HashMap::new();
    let mut load_probers = HashMap::new();
    if let Some(rt) = &settings.probers {
        for (k, _) in table.probes() {
            let known = known_status(&table, k);
            probers.insert(
                k.clone(),
                probe::spawn(k.clone(), known, report_tx.clone(), rt),
            );
        }
        for k in table.loads() {
            load_probers.insert(
                k.clone(),
                probe::load::spawn(k.clone(), load_tx.clone(), rt),
            );
        }
    }
    let state_dir = table.config().server.state_dir.clone();
    let (member, mut cluster_events) =
        match (settings.cluster.take(), &table.config().server.cluster) {
            (Some(link), Some(c)) => {
                let ttl = lease_ttl(table.probes().map(|(k, _)| &**k));
                (
                    Some(cluster::Member::new(c.clone(), link.publish, ttl)),
                    Some(link.events),
                )
            }
            _ => (None, None),
        };
    let mut w = Writer {
        table,
        settings,
        state_dir,
        probers,
        load_probers,
        report_tx,
        load_tx,
        clock: Clock::new(),
        cluster: member,
        history: history::History::default(),
        rates: rates::Rates::default(),
    };
    w.cluster_metrics();
    let _ = ready.send(w.table.first_round_done());
    let mut dirty = false;
    let mut flush = tokio::time::interval(std::time::Duration::from_secs(1));
    // After a stall (a long reload), one tick late rather than a burst: rates are per second.
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Slow-start ramps, stale load reports and expiring overrides change answers over time.
    let mut clock = tokio::time::interval(std::time::Duration::from_millis(250));
    let mut resign_after = 0u64;
    // GeoIP databases are read again when their files change (a new monthly release put in
    // place); a file that fails to load is not tried again until it changes once more.
    let mut geo_poll = tokio::time::interval(GEO_POLL);
    let mut geo_failed: Option<Vec<Option<crate::geo::Stamp>>> = None;
    loop {
        tokio::select! {
            Some(r) = reports.recv() => {
                dirty |= w.on_report(r);
                if !*ready.borrow() && w.table.first_round_done() {
                    let _ = ready.send(true);
                    tracing::info!("ready: the first probe round has finished");
                }
            }
            Some(ev) = next_event(&mut cluster_events) => w.on_cluster(ev),
            Some(r) = load_reports.recv() => {
                if let Err(e) = &r.load {
                    tracing::debug!(member = %r.key.address, "load report failed: {e}");
                }
                if let Some((from, to)) = w.table.observe_load(&r.key, r.load, w.clock.now()) {
                    // An agent that says down (or drain) changes answers: the history says so.
                    let tr = (from.map_or("none", |s| s.as_str()), to.as_str());
                    tracing::info!(member = %r.key.address, "load agent: {}: {} -> {}", r.key.address, tr.0, tr.1);
                    let reason = format!("the agent reports {}", tr.1);
                    w.health_event(r.key.address, "load agent".into(), tr, reason);
                }
            }
            _ = clock.tick() => {
                w.table.tick(w.clock.now());
                w.cluster_tick();
                // Signed zones are signed again (a reload) before their signatures run out; a
                // reload that fails is tried again a minute later, not at every tick.
                let now_unix = w.clock.unix();
                if now_unix >= resign_after && w.table.signatures_due(now_unix) {
                    tracing::info!("dnssec: signatures are due for renewal: reloading to sign again");
                    let r = w.reload().await;
                    if r.is_err() {
                        resign_after = now_unix + 60;
                    }
                    dirty |= r.is_ok();
                    log_reload(&w.table, &r);
                }
                let expired = w.table.expire_overrides(w.clock.unix());
                for (target, o) in &expired {
                    tracing::info!(target = %target, "override: {target} {} expired", o.kind);
                    w.override_event(target, Some(o), "expired", Some(o.reason.clone()), o.by.clone());
                }
                if !expired.is_empty()
                    && let Err(e) = state::save_overrides(&w.state_dir, w.table.overrides())
                {
                    let path = state::overrides_path(&w.state_dir);
                    tracing::warn!("cannot save overrides to {}: {e}", path.display());
                }
            }
            _ = geo_poll.tick() => {
                let Some(g) = w.table.config().geo.clone() else { continue };
                let now: Vec<Option<crate::geo::Stamp>> = g.stamps().iter().map(|s| s.now()).collect();
                let changed = g.stamps().iter().zip(&now).any(|(was, is)| is.as_ref() != Some(was));
                if changed && geo_failed.as_ref() != Some(&now) {
                    let files: Vec<String> = g.stamps().iter().map(|s| s.path.display().to_string()).collect();
                    tracing::info!("geoip: {} changed: reloading", files.join(", "));
                    let r = w.reload().await;
                    geo_failed = r.is_err().then_some(now);
                    dirty |= r.is_ok();
                    log_reload(&w.table, &r);
                }
            }
            Some(Command::Reload) = commands.recv() => {
                let r = w.reload().await;
                dirty |= r.is_ok();
                log_reload(&w.table, &r);
            }
            Some(req) = api.recv() => match req {
                admin::Request::Status(reply) => {
                    let mut report = w.table.status(w.clock.now());
                    report.cluster = w.cluster.as_ref().map(cluster::Member::status);
                    for m in report.zones.iter_mut().flat_map(|z| &mut z.pools).flat_map(|p| &mut p.members) {
                        m.last_change = w.history.last_of(m.address).cloned();
                    }
                    let _ = reply.send(report);
                }
                admin::Request::History { limit, member, reply } => {
                    let _ = reply.send(crate::api::HistoryReport { events: w.history.latest(limit, member) });
                }
                admin::Request::Rates(after, reply) => { let _ = reply.send(w.rates.report(after)); }
                admin::Request::Override { target, change, by, reply } => {
                    match w.set_override(target.clone(), change, by) {
                        Ok(value) => w.share_override(target, value, reply),
                        Err(e) => { let _ = reply.send(Err(e)); }
                    }
                }
                admin::Request::Explain(q, reply) => { let _ = reply.send(w.table.explain(&q)); }
                admin::Request::Reload(reply) => {
                    let r = w.reload().await;
                    dirty |= r.is_ok();
                    log_reload(&w.table, &r);
                    let _ = reply.send(r);
                }
            },
            _ = flush.tick() => {
                let counts = w.table.answer_counts();
                w.rates.sample(w.clock.now(), counts.iter().map(|(z, p, a, n)| (z.as_str(), *p, *a, *n)));
                if dirty {
                    dirty = false;
                    save(&w.table, &w.state_dir);
                }
            }
            _ = stop.changed() => {
                for (_, h) in w.probers.drain() { h.abort(); }
                for (_, h) in w.load_probers.drain() { h.abort(); }
                save(&w.table, &w.state_dir);
                return;
            }
        }
    }
}

/// A probe's state as the table has it (restored from `state_dir`): up, down or not known.
fn known_status(table: &Table, key: &ProbeKey) -> Option<bool> {
    match table.probe_state(key)?.status {
        Status::Up => Some(true),
        Status::Down => Some(false),
        Status::Unknown => None,
    }
}

/// The next event of the etcd task; never, without a cluster.
async fn next_event(
    events: &mut Option<mpsc::Receiver<crate::cluster::Event>>,
) -> Option<crate::cluster::Event> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Log a reload and count it; after a good one, the check gauges follow the new probe set.
fn log_reload(table: &Table, r: &Result<String, admin::ReloadError>) {
    let m = table.metrics();
    let result = match r {
        Ok(msg) => {
            tracing::info!("reload: new configuration is live ({msg})");
            m.check_up.clear();
            for (k, _) in table.probes() {
                set_check_gauge(table, k);
            }
            "ok"
        }
        Err(e) => {
            tracing::error!("reload refused, still serving the previous configuration:\n{e}");
            "rejected"
        }
    };
    m.reloads.get_or_create(&ResultLabels { result }).inc();
}

/// `gslbd_check_up` of one probe: 1 up, 0 down, -1 not known yet.
fn set_check_gauge(table: &Table, key: &ProbeKey) {
    let Some(state) = table.probe_state(key) else {
        return;
    };
    let v = match state.status {
        Status::Up => 1,
        Status::Down => 0,
        Status::Unknown => -1,
    };
    table
        .metrics()
        .check_up
        .get_or_create(&CheckLabels {
            member: key.address.to_string(),
            check: table.check_names(key),
        })
        .set(v);
}

fn save(table: &Table, dir: &std::path::Path) {
    if let Err(e) = state::save_health(dir, table.probes().map(|(k, s)| (&**k, s.status))) {
        let path = state::health_path(dir);
        tracing::warn!("cannot save last-known health to {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;
    use crate::api::StatusReport;
    use crate::probe::{Failure, Outcome};

    const ZONE: &str = "zone: w.test.
soa: { mname: ns1.w.test., rname: h.w.test. }
ns: [ns1.w.test.]
records:
  ns1: { A: [192.0.2.53] }
checks:
  web: { tcp: { port: 9 }, interval: 1s, timeout: 500ms, rise: 2, fall: 2 }
pools:
  web:
    policy: weighted
    checks: [web]
    slow_start: 10s
    members: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }]
names:
  www: { pool: web }
";

    /// A writer on a paused clock with no probers: the test sends the reports.
    struct Harness {
        _dir: tempfile::TempDir,
        api: mpsc::Sender<admin::Request>,
        reports: mpsc::Sender<probe::Report>,
        keys: Vec<Arc<ProbeKey>>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Harness {
        fn start() -> Harness {
            Harness::with("state_dir: state\n", None)
        }

        /// A writer on this gslbd.yaml; `cluster`: the test plays the etcd task.
        fn with(gslbd_yaml: &str, cluster: Option<crate::cluster::Link>) -> Harness {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("zones")).unwrap();
            std::fs::write(dir.path().join("zones/w.yaml"), ZONE).unwrap();
            let yaml = dir.path().join("gslbd.yaml");
            std::fs::write(&yaml, gslbd_yaml).unwrap();
            let sources = Sources {
                config: Some(yaml),
                zones_dir: Some(dir.path().join("zones")),
            };
            let config = config::load(&sources).unwrap().config;
            let now = tokio::time::Instant::now().into_std();
            let cluster_config = config.server.cluster.clone();
            let mut table = Table::new(config, &|_| None, now, Arc::default()).unwrap();
            if let Some(c) = cluster_config {
                table.join_cluster(&c.node, c.quorum);
            }
            let mut keys: Vec<Arc<ProbeKey>> = table.probes().map(|(k, _)| k.clone()).collect();
            keys.sort_by_key(|k| k.address);
            let (api_tx, api) = mpsc::channel(8);
            let (_commands_tx, commands) = mpsc::channel(1);
            let (ready, _) = watch::channel(false);
            let (stop_tx, stop) = watch::channel(false);
            let (reports_tx, reports) = mpsc::channel(8);
            let settings = Settings {
                sources,
                listen: Vec::new(),
                cli_listen: Vec::new(),
                probers: None,
                cluster,
            };
            let inbox = Inbox {
                commands,
                api,
                ready,
                stop,
            };
            let task = tokio::spawn(run_with(
                table,
                settings,
                inbox,
                reports_tx.clone(),
                reports,
            ));
            Harness {
                _dir: dir,
                api: api_tx,
                reports: reports_tx,
                keys,
                stop: stop_tx,
                task,
            }
        }

        async fn report(&self, member: usize, ok: bool) {
            let outcome = if ok {
                Outcome::up("connected")
            } else {
                Outcome::down(Failure::Refused, "connect refused")
            };
            let r = probe::Report {
                key: self.keys[member].clone(),
                outcome,
                elapsed: Duration::from_millis(1),
                finished: std::time::Instant::now(),
            };
            self.reports.send(r).await.unwrap();
            // The writer takes reports and API requests in random order: wait until it has
            // taken this one (it is handled before the writer looks at anything else).
            for _ in 0..1000 {
                if self.reports.capacity() == self.reports.max_capacity() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            panic!("the writer never took the report");
        }

        async fn status(&self) -> StatusReport {
            let (tx, rx) = oneshot::channel();
            self.api.send(admin::Request::Status(tx)).await.unwrap();
            rx.await.unwrap()
        }

        async fn member(&self, i: usize) -> crate::api::MemberStatus {
            self.status().await.zones[0].pools[0].members[i].clone()
        }

        /// The weights explain shows for an A query.
        async fn weights(&self) -> Vec<u64> {
            let (tx, rx) = oneshot::channel();
            let q = crate::api::explain::Question {
                name: "www.w.test".into(),
                qtype: None,
                client: "192.0.2.200".into(),
            };
            self.api.send(admin::Request::Explain(q, tx)).await.unwrap();
            let v = rx.await.unwrap().unwrap();
            let weights = v
                .steps
                .iter()
                .find_map(|s| match s {
                    crate::api::explain::Step::Weights { weights, .. } => Some(weights),
                    _ => None,
                })
                .unwrap();
            ["192.0.2.1", "192.0.2.2"]
                .iter()
                .map(|a| u64::from(weights[&a.parse().unwrap()]))
                .collect()
        }

        async fn stop(self) {
            let _ = self.stop.send(true);
            let _ = self.task.await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rise_and_fall_count_reports() {
        let h = Harness::start();
        h.report(0, false).await;
        assert_eq!(
            h.member(0).await.status,
            Status::Down,
            "the first result decides"
        );
        h.report(0, true).await;
        assert_eq!(h.member(0).await.status, Status::Down, "rise is 2");
        h.report(0, true).await;
        assert_eq!(h.member(0).await.status, Status::Up);
        h.report(0, false).await;
        assert_eq!(h.member(0).await.status, Status::Up, "fall is 2");
        h.report(0, false).await;
        assert_eq!(h.member(0).await.status, Status::Down);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_override_expires_when_its_time_has_passed() {
        let h = Harness::start();
        let address: IpAddr = "192.0.2.2".parse().unwrap();
        let (tx, rx) = oneshot::channel();
        let change = Some((
            OverrideKind::Drain,
            "patching".to_string(),
            Some(Duration::from_secs(10)),
        ));
        let req = admin::Request::Override {
            target: OverrideTarget::Member(address),
            change,
            by: Some("alice".into()),
            reply: tx,
        };
        h.api.send(req).await.unwrap();
        rx.await.unwrap().unwrap();
        assert!(h.member(1).await.own_override.is_some());
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(h.member(1).await.own_override.is_some(), "9 s: still there");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(h.member(1).await.own_override.is_none(), "gone after 10 s");
        // The history has both: who set it and why, then its expiry.
        let (tx, rx) = oneshot::channel();
        let member = Some(address);
        let req = admin::Request::History {
            limit: 10,
            member,
            reply: tx,
        };
        h.api.send(req).await.unwrap();
        let events = rx.await.unwrap().events;
        let seen: Vec<(&str, &str, Option<&str>)> = events
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str(), e.by.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("drain", "expired", Some("alice")),
                ("none", "drain", Some("alice"))
            ]
        );
        assert_eq!(events[1].reason, "patching");
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_that_comes_back_ramps_up_over_slow_start() {
        let h = Harness::start();
        for i in 0..2 {
            h.report(i, true).await;
        }
        assert_eq!(h.weights().await, [10_000, 10_000]);
        h.report(0, false).await;
        h.report(0, false).await;
        h.report(0, true).await;
        h.report(0, true).await;
        assert_eq!(h.member(0).await.status, Status::Up);
        // Back up now: a tenth of its weight, then a straight ramp over the 10 s window.
        assert_eq!(h.weights().await, [1_000, 10_000]);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let w = h.weights().await;
        // 5 s of 10: 0.1 + 0.9 × 0.5 = 0.55, as of the writer's last tick (every 250 ms).
        assert!((5_275..=5_500).contains(&w[0]), "half way: {w:?}");
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(h.weights().await, [10_000, 10_000]);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn without_etcd_the_others_count_until_a_lease_and_an_election_have_passed() {
        use crate::cluster::{Event, Link, Observation, ProbeName, View};
        let (publish, _published) = mpsc::unbounded_channel();
        let (events, link_events) = mpsc::channel(8);
        let link = Link {
            publish,
            events: link_events,
        };
        let yaml = "state_dir: state
cluster: { node: ns1, etcd: [\"http://127.0.0.1:2379\"], quorum: majority }
";
        let h = Harness::with(yaml, Some(link));
        h.report(0, true).await;
        // ns1 sees 192.0.2.1 up, ns2 and ns3 see it down: the majority takes it out.
        let mut view = View {
            nodes: vec!["ns1".into(), "ns2".into(), "ns3".into()],
            ..View::default()
        };
        for node in ["ns2", "ns3"] {
            let down = Observation {
                check: "web".into(),
                status: Status::Down,
                reason: "connect refused".into(),
                since_unix: 0,
            };
            let probe = ProbeName::of(&h.keys[0]);
            view.observations.insert((node.into(), probe), down);
        }
        events.send(Event::View(view)).await.unwrap();
        let mut status = Status::Up;
        for _ in 0..100 {
            status = h.member(0).await.status;
            if status == Status::Down {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(status, Status::Down, "the majority's vote");

        // etcd is gone. The others' votes stand through the lease (3 s: three probe
        // intervals) and an etcd election (3 s more), then this node decides alone.
        let lost = Event::Lost {
            why: "connection reset".into(),
            last_contact: std::time::Instant::now(),
        };
        events.send(lost).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        assert_eq!(h.member(0).await.status, Status::Down, "5.5 s without etcd");
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert_eq!(h.member(0).await.status, Status::Up, "6.5 s: alone");
        h.stop().await;
    }
}
