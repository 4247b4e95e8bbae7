//! Wiring: load the config, bind the sockets, start the UDP threads and the TCP tasks, and
//! handle signals (SIGHUP reloads, SIGTERM/SIGINT stop).
//!
//! A reload runs the same loader as start-up and `gslbd check`; a config with errors is refused
//! with its diagnostics and the running snapshot stays.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::config::{self, Sources};
use crate::dns::{tcp, udp};
use crate::model::Config;
use crate::table::{Live, Snapshot};

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
    let live = Live::new(Snapshot::build(&cfg.zones, 1)?);
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
        tracing::info!(
            zones = cfg.zones.len(),
            rrsets = cfg.zones.iter().map(|z| z.rrsets.len()).sum::<usize>(),
            "serving {} zone(s)",
            cfg.zones.len()
        );
        signals.wait(&opts.sources, &cfg, &live).await;
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
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

    /// SIGHUP reloads; SIGTERM and SIGINT return.
    async fn wait(mut self, sources: &Sources, running: &Config, live: &Live) {
        loop {
            tokio::select! {
                _ = self.hup.recv() => reload(sources, running, live).await,
                _ = self.term.recv() => { tracing::info!("SIGTERM: stopping"); return }
                _ = self.int.recv() => { tracing::info!("SIGINT: stopping"); return }
            }
        }
    }
}

/// Re-read the config; publish it if it is valid, keep the running one if not.
async fn reload(sources: &Sources, running: &Config, live: &Live) {
    let sources = sources.clone();
    let generation = live.load().generation + 1;
    let loaded = tokio::task::spawn_blocking(move || {
        let cfg = load(&sources)?;
        let snap = Snapshot::build(&cfg.zones, generation)?;
        Ok::<_, Error>((cfg, snap))
    })
    .await;
    match loaded {
        Ok(Ok((cfg, snap))) => {
            if cfg.server.listen != running.server.listen {
                tracing::warn!("reload: listen addresses changed; they take effect on restart");
            }
            live.publish(snap);
            tracing::info!(
                generation,
                zones = cfg.zones.len(),
                "reload: new configuration is live"
            );
        }
        Ok(Err(e)) => {
            tracing::error!("reload refused, still serving the previous configuration: {e}")
        }
        Err(e) => tracing::error!("reload failed: {e}"),
    }
}
