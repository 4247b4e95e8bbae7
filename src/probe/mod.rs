//! Probes: run one check against one address and report an [`Outcome`]; nothing else.
//!
//! ```text
//!  prober task (one per ProbeKey) ── every interval ± 10 % ──▶ probe::run ──Report──▶ writer
//! ```
//! A probe never touches the table: it sends what it found, and the health state machine in
//! the writer decides. Every probe ends within its timeout, whatever the peer does (accepts and
//! never speaks, trickles a body, ignores the connection): the whole probe runs under
//! `tokio::time::timeout`.

mod exec;
mod file;
pub(crate) mod http;
pub mod load;
mod tcp;
mod tls;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::health::Outcome;
use crate::model::CheckKind;

/// One probe: an address and a check spec. Pools that share it share its state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub address: IpAddr,
    pub spec: crate::model::CheckSpec,
}

/// Probes in flight at most, over all members and checks: a config with thousands of members
/// whose checks all time out must not open thousands of sockets at once. A probe waits for a
/// slot before its timeout starts.
pub const MAX_IN_FLIGHT: usize = 256;

static IN_FLIGHT: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_IN_FLIGHT);

/// One probe result on its way to the writer.
#[derive(Debug)]
pub struct Report {
    pub key: Arc<ProbeKey>,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// State a prober keeps between runs (an HTTP client pinned to the member, a parsed file).
pub(crate) enum Kit {
    None,
    Http(Option<reqwest::Client>),
    File(file::Cache),
}

/// The probers' runtime: its own threads, at a lower scheduling priority (nice +10) than the
/// UDP threads and the runtime that serves TCP, the API and the writer (and UDP threads ask for a
/// short time slice, see `dns::udp`): however many members are probed, a query that arrives
/// preempts the probing at once. Probing costs CPU, not query latency. Exec checks inherit the
/// priority.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get() / 4)
        .clamp(1, 4);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("gslbd-probe")
        .on_thread_start(lower_priority)
        .enable_all()
        .build()
}

/// Nice +10 for the calling thread (on Linux, the nice value is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls without pointers, on the calling thread's own id.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, PROBE_NICE);
    }
}

/// The nice value of prober threads.
pub const PROBE_NICE: i32 = 10;

/// Start the prober of one key: probe at once, then every interval with ±10 % jitter so that
/// probes of many members do not fire together. Stops when the writer's channel closes or
/// the task is aborted. Runs on `rt`, the probers' own runtime (see [`runtime`]).
pub fn spawn(
    key: Arc<ProbeKey>,
    tx: mpsc::Sender<Report>,
    rt: &tokio::runtime::Handle,
) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        let mut kit = match &key.spec.kind {
            CheckKind::Http(h) => Kit::Http(http::client(h, key.address)),
            CheckKind::File { .. } => Kit::File(file::Cache::default()),
            _ => Kit::None,
        };
        let mut rng = fastrand::Rng::new();
        loop {
            let start = Instant::now();
            let outcome = {
                // The semaphore is never closed, so this cannot fail.
                let _slot = IN_FLIGHT.acquire().await;
                run(&key.spec.kind, key.address, key.spec.timeout, &mut kit).await
            };
            let report = Report {
                key: key.clone(),
                outcome,
                elapsed: start.elapsed(),
            };
            if tx.send(report).await.is_err() {
                return;
            }
            let interval = key.spec.interval.as_secs_f64();
            let jittered = interval * (0.9 + 0.2 * rng.f64());
            tokio::time::sleep_until((start + Duration::from_secs_f64(jittered)).into()).await;
        }
    })
}

/// Run one probe, bounded by `timeout`.
pub(crate) async fn run(
    kind: &CheckKind,
    addr: IpAddr,
    timeout: Duration,
    kit: &mut Kit,
) -> Outcome {
    let started = Instant::now();
    let probe = async {
        match (kind, kit) {
            (
                CheckKind::Tcp {
                    port,
                    expect_banner,
                },
                _,
            ) => tcp::probe(addr, *port, expect_banner.as_ref()).await,
            (CheckKind::Http(h), Kit::Http(client)) => http::probe(h, addr, client.as_ref()).await,
            (CheckKind::Exec { command }, _) => exec::probe(command, addr).await,
            (CheckKind::File { path }, Kit::File(cache)) => file::probe(path, addr, cache).await,
            _ => Outcome {
                ok: false,
                reason: "internal: probe kit does not match the check".into(),
            },
        }
    };
    match tokio::time::timeout(timeout, probe).await {
        Ok(mut o) => {
            o.reason = format!("{} after {} ms", o.reason, started.elapsed().as_millis());
            o
        }
        Err(_) => Outcome {
            ok: false,
            reason: format!("timeout {}", humantime::format_duration(timeout)),
        },
    }
}

fn down(reason: impl Into<String>) -> Outcome {
    Outcome {
        ok: false,
        reason: reason.into(),
    }
}

fn up(reason: impl Into<String>) -> Outcome {
    Outcome {
        ok: true,
        reason: reason.into(),
    }
}

/// A short, printable excerpt of what a peer sent.
fn excerpt(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]);
    s.trim_end().escape_debug().to_string()
}
