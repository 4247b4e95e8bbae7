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
pub mod pace;
mod tcp;
mod tls;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

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
    /// When the probe ended: the writer measures how soon its verdict is published.
    pub finished: Instant,
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

/// Nice +10 for the calling thread.
fn lower_priority() {
    crate::sys::lower_thread_priority(PROBE_NICE);
}

/// The nice value of prober threads.
pub const PROBE_NICE: i32 = 10;

/// The source address of probes (`cluster.probe_source`): set once at start, before any
/// prober runs, and never changed (a reload cannot change it either).
static SOURCE: std::sync::OnceLock<IpAddr> = std::sync::OnceLock::new();

/// Probe from `source` (an address of this host). Only the first call counts.
pub fn set_source(source: IpAddr) {
    let _ = SOURCE.set(source);
}

/// The source address for probing `to`: the configured one when it is of the same family.
pub fn source_for(to: IpAddr) -> Option<IpAddr> {
    SOURCE
        .get()
        .copied()
        .filter(|s| s.is_ipv4() == to.is_ipv4())
}

/// Start the prober of one key: probe at once, then at the pace its results set ([`pace`]:
/// `interval`, `fast_interval` in transition, `down_interval` while down) with ±10 % jitter
/// so that probes of many members do not fire together. `known`: the state restored for it
/// (up or down), so that the pace starts from it. Stops when the writer's channel closes or
/// the task is aborted. Runs on `rt`, the probers' own runtime (see [`runtime`]).
pub fn spawn(
    key: Arc<ProbeKey>,
    known: Option<bool>,
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
        let mut pace = pace::Pace::from(known);
        loop {
            let start = Instant::now();
            let outcome = {
                // The semaphore is never closed, so this cannot fail.
                let _slot = IN_FLIGHT.acquire().await;
                run(&key.spec.kind, key.address, key.spec.timeout, &mut kit).await
            };
            let wait = pace.next(outcome.failure, &key.spec);
            let report = Report {
                key: key.clone(),
                outcome,
                elapsed: start.elapsed(),
                finished: Instant::now(),
            };
            if tx.send(report).await.is_err() {
                return;
            }
            let jittered = wait.as_secs_f64() * (0.9 + 0.2 * rng.f64());
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
            _ => down(
                Failure::Other,
                "internal: probe kit does not match the check",
            ),
        }
    };
    match tokio::time::timeout(timeout, probe).await {
        Ok(mut o) => {
            o.reason = format!("{} after {} ms", o.reason, started.elapsed().as_millis());
            o
        }
        Err(_) => down(
            Failure::Timeout,
            format!("timeout {}", humantime::format_duration(timeout)),
        ),
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Why it failed; `None`: it passed.
    pub failure: Option<Failure>,
    /// For logs and the status API: `http 200 after 12 ms`, `connect refused`, `timeout 2s`.
    pub reason: String,
}

impl Outcome {
    pub fn up(reason: impl Into<String>) -> Outcome {
        Outcome {
            failure: None,
            reason: reason.into(),
        }
    }

    pub fn down(failure: Failure, reason: impl Into<String>) -> Outcome {
        Outcome {
            failure: Some(failure),
            reason: reason.into(),
        }
    }

    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Why a probe failed, in a few classes: the `reason` label of
/// `gslbd_probe_failures_total`. Set where the failure is found, never read back from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No result within the check's timeout.
    Timeout,
    /// The connection was refused or reset: a definite answer from the host.
    Refused,
    /// The greeting did not match, or the peer closed before it did.
    Banner,
    /// An HTTP status not expected.
    Status,
    /// The HTTP body lacks what was expected, or could not be read.
    Body,
    /// TLS: the handshake or the certificate.
    Tls,
    /// A command failed or could not run.
    Exit,
    /// A state file says down, or does not list the member.
    File,
    /// Anything else (connect errors other than refused, reads that fail, ...).
    Other,
}

impl Failure {
    pub const ALL: [Failure; 9] = [
        Failure::Timeout,
        Failure::Refused,
        Failure::Banner,
        Failure::Status,
        Failure::Body,
        Failure::Tls,
        Failure::Exit,
        Failure::File,
        Failure::Other,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Refused => "refused",
            Failure::Banner => "banner",
            Failure::Status => "status",
            Failure::Body => "body",
            Failure::Tls => "tls",
            Failure::Exit => "exit",
            Failure::File => "file",
            Failure::Other => "other",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Failure {
    type Err = String;

    fn from_str(s: &str) -> Result<Failure, String> {
        Failure::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a probe failure class"))
    }
}

fn down(failure: Failure, reason: impl Into<String>) -> Outcome {
    Outcome::down(failure, reason)
}

fn up(reason: impl Into<String>) -> Outcome {
    Outcome::up(reason)
}

/// A short, printable excerpt of what a peer sent.
fn excerpt(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]);
    s.trim_end().escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The class is set where the failure is found: a file check whose path says "tls" is a
    /// `file` failure (the class used to be guessed from the text).
    #[tokio::test]
    async fn failures_are_classed_where_they_happen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tls-members.txt");
        std::fs::write(&path, "192.0.2.1 down\n").unwrap();
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        let o = file::probe(&path, addr, &mut file::Cache::default()).await;
        assert_eq!(o.failure, Some(Failure::File), "{o:?}");

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let o = tcp::probe("127.0.0.1".parse().unwrap(), port, None).await;
        assert_eq!(o.failure, Some(Failure::Refused), "{o:?}");

        let o = exec::probe(&["/bin/false".to_string()], addr).await;
        assert_eq!(o.failure, Some(Failure::Exit), "{o:?}");

        // nothing answers within the timeout
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let kind = CheckKind::Tcp {
            port,
            expect_banner: crate::model::Pattern::new("^220").ok(),
        };
        let o = run(
            &kind,
            "127.0.0.1".parse().unwrap(),
            Duration::from_millis(200),
            &mut Kit::None,
        )
        .await;
        assert_eq!(o.failure, Some(Failure::Timeout), "{o:?}");
        assert!(o.reason.starts_with("timeout"), "{o:?}");
    }

    #[test]
    fn failure_classes_read_back() {
        for f in Failure::ALL {
            assert_eq!(f.to_string().parse::<Failure>(), Ok(f));
        }
        assert!("tls-ish".parse::<Failure>().is_err());
    }
}
