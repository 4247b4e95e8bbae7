//! Wiring: load the config, bind the sockets, start the UDP threads and the TCP tasks, and
//! handle signals (SIGHUP reloads, SIGTERM/SIGINT stop).
//!
//! A reload runs the same loader as start-up and `gslbd check`; a config with errors is refused
//! with its diagnostics and the running snapshot stays.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use std::collections::HashMap;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::config::{self, Sources};
use crate::dns::{tcp, udp};
use crate::health::Status;
use crate::model::Config;
use crate::probe;
use crate::state;
use crate::table::{LoadKey, ProbeKey, Table};

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub sources: Sources,
    /// `--listen`: replaces the config's `listen` when not empty.
    pub listen: Vec<SocketAddr>,
    /// UDP threads (and sockets) per listen address; default: one per CPU.
    pub udp_threads: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the configuration has errors (see above)")]
    Config,
    #[error("{0}")]
    Build(#[from] crate::table::BuildError),
    #[error("cannot listen on {addr} ({proto}): {source}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Load the config, logging warnings; errors are logged one per line.
fn load(sources: &Sources) -> Result<Config, Error> {
    match config::load(sources) {
        Ok(l) => {
            for w in &l.warnings.items {
                tracing::warn!("{w}");
            }
            Ok(l.config)
        }
        Err(diags) => {
            for d in &diags.items {
                tracing::error!("{d}");
            }
            Err(Error::Config)
        }
    }
}

/// A bound address: the TCP listener and the UDP sockets of its SO_REUSEPORT group.
struct Bound {
    addr: SocketAddr,
    tcp: std::net::TcpListener,
    udp: Vec<std::net::UdpSocket>,
}

/// Bind TCP first (port 0 picks a free port), then the UDP group on the same port.
fn bind(addr: SocketAddr, threads: usize) -> Result<Bound, Error> {
    let err = |proto| {
        move |source| Error::Bind {
            addr,
            proto,
            source,
        }
    };
    let tcp = tcp::bind(addr).map_err(err("tcp"))?;
    let addr = tcp.local_addr().map_err(err("tcp"))?;
    let udp = (0..threads)
        .map(|_| udp::bind(addr))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err("udp"))?;
    Ok(Bound { addr, tcp, udp })
}

/// Run the server until SIGTERM or SIGINT.
pub fn run(opts: Options) -> Result<(), Error> {
    let mut cfg = load(&opts.sources)?;
    if !opts.listen.is_empty() {
        cfg.server.listen = opts.listen.clone();
    }
    // reqwest needs a TLS provider; ring is ours (fast to build, see Cargo.toml).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let state_dir = cfg.server.state_dir.clone();
    let restored = match state::load_health(&state_dir) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("last-known health not restored: {e}");
            Default::default()
        }
    };
    let now = std::time::Instant::now();
    let table = Table::new(
        cfg.clone(),
        &|k: &ProbeKey| {
            restored
                .get(&(k.address, state::fingerprint(&k.spec)))
                .copied()
        },
        now,
    )?;
    let restored_count = table
        .probes()
        .filter(|(_, s)| s.status != Status::Unknown)
        .count();
    let live = table.live();
    let threads = opts
        .udp_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut udp_threads: Vec<JoinHandle<()>> = Vec::new();
    let result = rt.block_on(async {
        // Signal handlers first: a SIGHUP or SIGTERM right after "listening" must not kill us.
        let signals = Signals::new()?;
        let bound = cfg
            .server
            .listen
            .iter()
            .map(|a| bind(*a, threads))
            .collect::<Result<Vec<_>, _>>()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for b in bound {
            for (i, s) in b.udp.into_iter().enumerate() {
                let (live, stop) = (live.clone(), stop.clone());
                let h = std::thread::Builder::new()
                    .name(format!("udp-{}-{i}", b.addr))
                    .spawn(move || udp::serve(s, live, stop))
                    .map_err(Error::Runtime)?;
                udp_threads.push(h);
            }
            let l = tokio::net::TcpListener::from_std(b.tcp).map_err(|source| Error::Bind {
                addr: b.addr,
                proto: "tcp",
                source,
            })?;
            tasks.push(tokio::spawn(tcp::serve(
                l,
                live.clone(),
                tcp::Limits::default(),
                stop_rx.clone(),
            )));
            tracing::info!(addr = %b.addr, udp_threads = threads, "listening on udp and tcp {}", b.addr);
        }
        let pools: usize = cfg.zones.iter().map(|z| z.pools.len()).sum();
        tracing::info!(
            zones = cfg.zones.len(),
            pools,
            probes = table.probes().count(),
            restored = restored_count,
            "serving {} zone(s), {pools} pool(s), {} probe(s) ({restored_count} last-known states restored)",
            cfg.zones.len(),
            table.probes().count(),
        );
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let writer = tokio::spawn(writer(table, opts.sources.clone(), cfg.server.listen.clone(), cmd_rx, stop_rx.clone()));
        signals.wait(&cmd_tx).await;
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        let _ = writer.await;
        Ok(())
    });
    stop.store(true, Ordering::Relaxed);
    for h in udp_threads {
        let _ = h.join();
    }
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    tracing::info!("stopped");
    result
}

/// Requests to the writer.
enum Command {
    Reload,
}

/// The signals we act on, registered before any socket is announced.
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, Error> {
        let sig = |k| signal(k).map_err(Error::Runtime);
        Ok(Signals {
            hup: sig(SignalKind::hangup())?,
            term: sig(SignalKind::terminate())?,
            int: sig(SignalKind::interrupt())?,
        })
    }

    /// SIGHUP asks the writer to reload; SIGTERM and SIGINT return.
    async fn wait(mut self, writer: &mpsc::Sender<Command>) {
        loop {
            tokio::select! {
                _ = self.hup.recv() => { let _ = writer.send(Command::Reload).await; }
                _ = self.term.recv() => { tracing::info!("SIGTERM: stopping"); return }
                _ = self.int.recv() => { tracing::info!("SIGINT: stopping"); return }
            }
        }
    }
}

/// Probe reports queued for the writer at most; a prober waits when the writer is behind.
const REPORT_QUEUE: usize = 1024;

/// The one writer: owns the table, runs the probers, turns their reports into health, reloads,
/// and saves the last-known health (at most once a second, and at exit).
async fn writer(
    mut table: Table,
    sources: Sources,
    listen: Vec<SocketAddr>,
    mut commands: mpsc::Receiver<Command>,
    mut stop: watch::Receiver<bool>,
) {
    let (report_tx, mut reports) = mpsc::channel::<probe::Report>(REPORT_QUEUE);
    let (load_tx, mut load_reports) = mpsc::channel::<probe::load::LoadReport>(REPORT_QUEUE);
    let mut probers: HashMap<Arc<ProbeKey>, tokio::task::JoinHandle<()>> = table
        .probes()
        .map(|(k, _)| (k.clone(), probe::spawn(k.clone(), report_tx.clone())))
        .collect();
    let mut load_probers: HashMap<Arc<LoadKey>, tokio::task::JoinHandle<()>> = table
        .loads()
        .map(|k| (k.clone(), probe::load::spawn(k.clone(), load_tx.clone())))
        .collect();
    // Slow-start ramps and stale load reports change answers as time passes.
    let mut clock = tokio::time::interval(std::time::Duration::from_millis(250));
    let mut state_dir = table.config().server.state_dir.clone();
    let mut dirty = false;
    let mut flush = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            Some(r) = reports.recv() => {
                match table.observe(&r.key, r.outcome.clone(), std::time::Instant::now()) {
                    Some(tr) => {
                        dirty = true;
                        tracing::info!(
                            member = %r.key.address,
                            check = %table.check_names(&r.key),
                            from = %tr.from,
                            to = %tr.to,
                            "health: {} check {}: {} -> {}: {}",
                            r.key.address, table.check_names(&r.key), tr.from, tr.to, r.outcome.reason
                        );
                    }
                    None => tracing::debug!(
                        member = %r.key.address,
                        check = %table.check_names(&r.key),
                        "probe: {} check {}: {}",
                        r.key.address, table.check_names(&r.key), r.outcome.reason
                    ),
                }
            }
            Some(r) = load_reports.recv() => {
                if let Err(e) = &r.load {
                    tracing::debug!(member = %r.key.address, "load report failed: {e}");
                }
                table.observe_load(&r.key, r.load, std::time::Instant::now());
            }
            _ = clock.tick() => table.tick(std::time::Instant::now()),
            Some(Command::Reload) = commands.recv() => {
                let sources = sources.clone();
                let loaded = tokio::task::spawn_blocking(move || load(&sources)).await;
                let cfg = match loaded {
                    Ok(Ok(cfg)) => cfg,
                    Ok(Err(e)) => { tracing::error!("reload refused, still serving the previous configuration: {e}"); continue }
                    Err(e) => { tracing::error!("reload failed: {e}"); continue }
                };
                let mut cfg = cfg;
                if cfg.server.listen != listen {
                    tracing::warn!("reload: listen addresses changed; they take effect on restart");
                }
                cfg.server.listen = listen.clone();
                let new_state_dir = cfg.server.state_dir.clone();
                match table.reload(cfg, std::time::Instant::now()) {
                    Ok(changes) => {
                        for k in &changes.removed {
                            if let Some(h) = probers.remove(k) { h.abort(); }
                        }
                        for k in &changes.added {
                            probers.insert(k.clone(), probe::spawn(k.clone(), report_tx.clone()));
                        }
                        for k in &changes.loads_removed {
                            if let Some(h) = load_probers.remove(k) { h.abort(); }
                        }
                        for k in &changes.loads_added {
                            load_probers.insert(k.clone(), probe::load::spawn(k.clone(), load_tx.clone()));
                        }
                        state_dir = new_state_dir;
                        dirty = true;
                        tracing::info!(
                            generation = table.generation(),
                            probes_added = changes.added.len(),
                            probes_removed = changes.removed.len(),
                            "reload: new configuration is live"
                        );
                    }
                    Err(e) => tracing::error!("reload refused, still serving the previous configuration: {e}"),
                }
            }
            _ = flush.tick() => {
                if dirty {
                    dirty = false;
                    save(&table, &state_dir);
                }
            }
            _ = stop.changed() => {
                for (_, h) in probers.drain() { h.abort(); }
                for (_, h) in load_probers.drain() { h.abort(); }
                save(&table, &state_dir);
                return;
            }
        }
    }
}

fn save(table: &Table, dir: &std::path::Path) {
    if let Err(e) = state::save_health(dir, table.probes().map(|(k, s)| (&**k, s.status))) {
        tracing::warn!("cannot save last-known health in {}: {e}", dir.display());
    }
}
