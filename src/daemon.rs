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
use tokio::sync::{mpsc, watch};

use crate::admin;
use crate::config::{self, Sources};
use crate::dns::{tcp, udp};
use crate::health::Status;
use crate::metrics::Metrics;
use crate::model::Config;
use crate::probe;
use crate::probe::ProbeKey;
use crate::state;
use crate::writer;
use crate::writer::Table;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub sources: Sources,
    /// `--listen`: replaces the config's `listen` when not empty.
    pub listen: Vec<SocketAddr>,
    /// UDP threads (and sockets) per listen address; default: one per CPU.
    pub udp_threads: Option<usize>,
    /// `--api`: replaces the config's `api.listen`.
    pub api: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the configuration has errors (see above)")]
    Config,
    #[error("{0}")]
    Build(#[from] crate::snapshot::BuildError),
    #[error("cannot listen on {addr} ({proto}): {source}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        source: std::io::Error,
    },
    /// EACCES on a port below `net.ipv4.ip_unprivileged_port_start`: say how to get the right.
    #[error(
        "binding {addr} needs root or CAP_NET_BIND_SERVICE: run as root with `user:` in gslbd.yaml (gslbd drops to that user after binding), or grant the capability (setcap cap_net_bind_service=+ep {exe}, or AmbientCapabilities= in the systemd unit)"
    )]
    PrivilegedPort { addr: SocketAddr, exe: String },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Api(String),
    #[error("cannot drop privileges: {0}")]
    Privileges(#[from] crate::privileges::PrivilegeError),
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

/// Why `addr` could not be bound. Permission denied on a privileged port is not a puzzle:
/// the error says how to get the right (the kernel checks it before whether the port is free).
fn bind_error(addr: SocketAddr, proto: &'static str, source: std::io::Error) -> Error {
    let unprivileged_from =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .unwrap_or(1024);
    if source.kind() == std::io::ErrorKind::PermissionDenied
        && addr.port() != 0
        && addr.port() < unprivileged_from
    {
        let exe = std::env::current_exe()
            .map_or_else(|_| "/path/to/gslbd".into(), |p| p.display().to_string());
        return Error::PrivilegedPort { addr, exe };
    }
    Error::Bind {
        addr,
        proto,
        source,
    }
}

/// Bind TCP first (port 0 picks a free port), then the UDP group on the same port.
fn bind(addr: SocketAddr, threads: usize) -> Result<Bound, Error> {
    let err = |proto| move |source| bind_error(addr, proto, source);
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
    crate::sys::fixed_malloc_thresholds();
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
    let metrics = Arc::new(Metrics::new());
    let zone_count = cfg.zones.len();
    let pools: usize = cfg.zones.iter().map(|z| z.pools.len()).sum();
    // The table owns the zones from here on; this copy keeps only the server settings.
    let zones = std::mem::take(&mut cfg.zones);
    let table = Table::new(
        Config {
            server: cfg.server.clone(),
            zones,
            geo: cfg.geo.clone(),
        },
        &|k: &ProbeKey| restored.get(k),
        now,
        metrics.clone(),
    )?;
    let mut table = table;
    if let Some(c) = &cfg.server.cluster {
        table.join_cluster(&c.node, c.quorum);
        if let Some(source) = c.probe_source {
            probe::set_source(source);
        }
    }
    match state::load_overrides(&state_dir) {
        Ok(saved) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            for (target, o) in saved.iter() {
                tracing::info!(target = %target, "override restored: {target} {}", o.describe(now));
                table.set_override(&target, Some(o.clone()));
            }
        }
        Err(e) => tracing::warn!("overrides not restored: {e}"),
    }
    let api_addr = opts.api.unwrap_or(cfg.server.api_listen);
    let token = match &cfg.server.api_token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| {
                    Error::Api(format!(
                        "cannot read the API token file {}: {e}",
                        f.display()
                    ))
                })?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    if !api_addr.ip().is_loopback() && token.is_none() {
        return Err(Error::Api(format!(
            "refusing to serve the admin API on {api_addr} without a token: set api.token_file, or listen on loopback"
        )));
    }
    crate::sys::release_freed_memory();
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
    let mut xdp: Option<crate::xdp::Running> = None;
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
        // One limiter for every listener it applies to: the budget is per client prefix. Its
        // table (2 MiB) is made only when some listener is limited (loopback ones are not,
        // unless asked).
        let limited = |ip: std::net::IpAddr| cfg.server.rrl.on_loopback || !ip.is_loopback();
        let xdp_limited = cfg
            .server
            .xdp
            .as_ref()
            .is_some_and(|x| x.addresses.iter().any(|a| limited(*a)));
        let limiter = (bound.iter().any(|b| limited(b.addr.ip())) || xdp_limited)
            .then(|| crate::dns::rrl::Limiter::new(&cfg.server.rrl).map(Arc::new))
            .flatten();
        for b in bound {
            let rrl = limiter.clone().filter(|_| limited(b.addr.ip()));
            if rrl.is_some() {
                tracing::info!(
                    addr = %b.addr,
                    "response rate limiting on {}: {}/s per /{} (IPv4) or /{} (IPv6) prefix, slip {}",
                    b.addr,
                    cfg.server.rrl.responses_per_second,
                    cfg.server.rrl.ipv4_prefix,
                    cfg.server.rrl.ipv6_prefix,
                    cfg.server.rrl.slip
                );
            }
            for (i, s) in b.udp.into_iter().enumerate() {
                let (live, stop, rrl) = (live.clone(), stop.clone(), rrl.clone());
                let h = std::thread::Builder::new()
                    .name(format!("udp-{}-{i}", b.addr))
                    .spawn(move || udp::serve(s, live, rrl, stop))
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
                cfg.server.tcp,
                stop_rx.clone(),
            )));
            tracing::info!(addr = %b.addr, udp_threads = threads, "listening on udp and tcp {}", b.addr);
        }
        // AF_XDP beside the sockets, set up while we still have the privileges it needs.
        if let Some(x) = &cfg.server.xdp {
            let rrl = limiter.clone().filter(|_| xdp_limited);
            xdp = start_xdp(x, &live, rrl, &metrics);
        }
        tracing::info!(
            zones = zone_count,
            pools,
            probes = table.probes().count(),
            restored = restored_count,
            "serving {} zone(s), {pools} pool(s), {} probe(s) ({restored_count} last-known states restored)",
            zone_count,
            table.probes().count(),
        );
        let api_listener = tokio::net::TcpListener::bind(api_addr)
            .await
            .map_err(|source| bind_error(api_addr, "tcp (admin API)", source))?;
        let api_bound = api_listener.local_addr().map_err(Error::Runtime)?;
        // Every socket is bound: no more need for root, and no prober has started yet.
        if let Some(user) = &cfg.server.user {
            let ids = crate::privileges::drop_to(user)?;
            tracing::info!(user = %user, uid = ids.uid, gid = ids.gid, "running as user {user} (uid {}, gid {})", ids.uid, ids.gid);
        }
        // Probers get their own low-priority threads, started as the user we run as.
        let probe_rt = probe::runtime().map_err(Error::Runtime)?;
        let (cmd_tx, cmd_rx) = mpsc::channel(8);
        let (api_tx, api_rx) = mpsc::channel(64);
        let (ready_tx, ready_rx) = watch::channel(false);
        tasks.push(tokio::spawn(admin::serve(api_listener, api_tx, token, metrics.clone(), ready_rx, stop_rx.clone())));
        tracing::info!("admin API on http://{api_bound}");
        // systemd Type=notify: everything is listening now (no-op without NOTIFY_SOCKET).
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        // With `cluster:`, the etcd task starts beside the writer; nothing waits for etcd.
        let cluster = cfg.server.cluster.as_ref().map(|c| {
            let ttl = writer::lease_ttl(table.probes().map(|(k, _)| &**k));
            tracing::info!(
                node = %c.node,
                "cluster: node {} of {} (quorum {}), etcd {}",
                c.node,
                c.prefix,
                c.quorum,
                c.etcd.join(", ")
            );
            crate::cluster::spawn(c, ttl)
        });
        let writer = tokio::spawn(writer::run(
            table,
            writer::Settings {
                sources: opts.sources.clone(),
                listen: cfg.server.listen.clone(),
                cli_listen: opts.listen.clone(),
                probers: Some(probe_rt.handle().clone()),
                cluster,
            },
            writer::Inbox {
                commands: cmd_rx,
                api: api_rx,
                ready: ready_tx,
                stop: stop_rx.clone(),
            },
        ));
        signals.wait(&cmd_tx).await;
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        let _ = writer.await;
        probe_rt.shutdown_background();
        Ok(())
    });
    stop.store(true, Ordering::Relaxed);
    for h in udp_threads {
        let _ = h.join();
    }
    // Its threads end, then the program is detached.
    drop(xdp);
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    // An error is logged by the caller, and it was no orderly stop: say nothing that claims one
    // (a "stopped" line before the error would send an operator looking for who stopped it).
    if result.is_ok() {
        tracing::info!("stopped");
    }
    result
}

/// Start AF_XDP as `x` says; if it cannot, say why once: the sockets serve on as before.
fn start_xdp(
    x: &crate::model::Xdp,
    live: &crate::snapshot::Live,
    rrl: Option<Arc<crate::dns::rrl::Limiter>>,
    metrics: &Metrics,
) -> Option<crate::xdp::Running> {
    let addresses: Vec<String> = x.addresses.iter().map(ToString::to_string).collect();
    let addresses = addresses.join(", ");
    match crate::xdp::start(x, live, rrl) {
        Ok(r) => {
            let copy = if r.copy_mode { "copy" } else { "zero-copy" };
            tracing::info!(
                interface = %x.interface,
                mode = %r.mode,
                queues = r.stats.queues.len(),
                "xdp: UDP port 53 of {addresses} on {} through AF_XDP ({} mode, {copy}, {} queue(s)); everything else goes to the kernel",
                x.interface,
                r.mode,
                r.stats.queues.len()
            );
            metrics.set_xdp(Box::new(r.stats.clone()));
            Some(r)
        }
        Err(e) => {
            tracing::error!(interface = %x.interface, "xdp: not used on {}: {e}; UDP is answered through the sockets", x.interface);
            None
        }
    }
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
    async fn wait(mut self, to_writer: &mpsc::Sender<writer::Command>) {
        loop {
            tokio::select! {
                _ = self.hup.recv() => { let _ = to_writer.send(writer::Command::Reload).await; }
                _ = self.term.recv() => { tracing::info!("SIGTERM: stopping"); return }
                _ = self.int.recv() => { tracing::info!("SIGINT: stopping"); return }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_privileged_port_says_how_to_get_the_right() {
        let addr: SocketAddr = "0.0.0.0:53".parse().unwrap();
        let e = Error::PrivilegedPort {
            addr,
            exe: "/usr/local/bin/gslbd".into(),
        };
        assert_eq!(
            e.to_string(),
            "binding 0.0.0.0:53 needs root or CAP_NET_BIND_SERVICE: run as root with `user:` in \
             gslbd.yaml (gslbd drops to that user after binding), or grant the capability \
             (setcap cap_net_bind_service=+ep /usr/local/bin/gslbd, or AmbientCapabilities= in \
             the systemd unit)"
        );
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        // Whatever the sysctl says, port 1 is privileged unless it is 0 (then EACCES is not
        // about the port, and the plain error is right).
        let low: SocketAddr = "127.0.0.1:1".parse().unwrap();
        match bind_error(low, "udp", denied()) {
            Error::PrivilegedPort { addr, exe } => {
                assert_eq!(addr, low);
                assert!(exe.contains("daemon") || exe.contains("gslbd"), "{exe}");
            }
            Error::Bind { .. } => {
                let start =
                    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start");
                assert_eq!(start.ok().map(|s| s.trim().to_string()), Some("0".into()));
            }
            other => panic!("{other}"),
        }
        // A high port, or another error, is reported as it is.
        let high: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        assert!(matches!(
            bind_error(high, "udp", denied()),
            Error::Bind { .. }
        ));
        let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        assert!(matches!(bind_error(low, "tcp", in_use), Error::Bind { .. }));
    }
}
