//! Load reports for `least-loaded`: what a member says about its spare capacity.
//!
//! Two sources: the HAProxy agent-check text protocol on a TCP port (connect, read one line,
//! e.g. `up 75%`, `drain`, `down`; a percentage is the share of the configured weight the member
//! wants, as in HAProxy), or an HTTP endpoint whose body is the load in percent (`90` = busy,
//! 10 % spare). Like probes, a report only says what was found; the table smooths and expires.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::Failure;
use crate::model::LoadKind;

/// Why there is no load report (the member then counts as not reporting).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The member could not be asked: connect, read, HTTP status or timeout.
    #[error("{reason}")]
    Unreachable { class: Failure, reason: String },
    /// It answered with nothing that reads as a load.
    #[error("{0}")]
    Unreadable(String),
}

fn unreachable(class: Failure, reason: impl Into<String>) -> LoadError {
    LoadError::Unreachable {
        class,
        reason: reason.into(),
    }
}

/// One load source: an address and how to ask it. Pools that share it share its reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LoadKey {
    pub address: IpAddr,
    pub spec: crate::model::LoadSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    Up,
    /// No new answers while anything else is healthy.
    Drain,
    Down,
}

impl AgentState {
    /// As the history shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentState::Up => "up",
            AgentState::Drain => "drain",
            AgentState::Down => "down",
        }
    }
}

/// One report: spare capacity in 0..=1 and/or a state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub capacity: Option<f64>,
    pub state: Option<AgentState>,
}

#[derive(Debug)]
pub struct LoadReport {
    pub key: Arc<LoadKey>,
    /// `Err` with the reason when the member could not be asked (treated as no report).
    pub load: Result<Load, LoadError>,
}

/// HAProxy agent-check words, separated by spaces, commas or tabs: `75%`, `up`/`ready`,
/// `drain`, `down`/`fail`/`stopped`/`maint`; unknown words (`maxconn:30`) are ignored.
pub fn parse_agent(text: &str) -> Result<Load, LoadError> {
    let mut load = Load {
        capacity: None,
        state: None,
    };
    for word in text.split([' ', ',', '\t', '\r', '\n']) {
        let w = word.trim().to_ascii_lowercase();
        if let Some(p) = w.strip_suffix('%') {
            let v: f64 = p
                .parse()
                .map_err(|_| LoadError::Unreadable(format!("{word:?} is not a percentage")))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(LoadError::Unreadable(format!(
                    "{word:?} is not within 0%..100%"
                )));
            }
            load.capacity = Some(v / 100.0);
        } else {
            load.state = match w.as_str() {
                "up" | "ready" => Some(AgentState::Up),
                "drain" => Some(AgentState::Drain),
                "down" | "fail" | "failed" | "stopped" | "maint" => Some(AgentState::Down),
                _ => load.state,
            };
        }
    }
    if load.capacity.is_none() && load.state.is_none() {
        return Err(LoadError::Unreadable(format!(
            "nothing understood in {:?}",
            text.trim()
        )));
    }
    Ok(load)
}

/// An HTTP load endpoint's body: the load in percent, `90` or `90%` or `0.9`-style `90.0`.
pub fn parse_http_load(body: &str) -> Result<Load, LoadError> {
    let t = body.trim().trim_end_matches('%');
    let v: f64 = t.parse().map_err(|_| {
        LoadError::Unreadable(format!("{:?} is not a load in percent", body.trim()))
    })?;
    if !(0.0..=100.0).contains(&v) {
        return Err(LoadError::Unreadable(format!("{v} is not within 0..100")));
    }
    Ok(Load {
        capacity: Some(1.0 - v / 100.0),
        state: None,
    })
}

/// Octets of an HTTP load body that are looked at.
const MAX_HTTP_BODY: usize = 64;

/// An HTTP load endpoint's body as received: its first [`MAX_HTTP_BODY`] octets, cut as bytes
/// (never inside a `str`, where a multi-byte character would make the cut panic), then read
/// as text.
pub fn http_load_body(body: &[u8]) -> Result<Load, LoadError> {
    let head = &body[..body.len().min(MAX_HTTP_BODY)];
    parse_http_load(&String::from_utf8_lossy(head))
}

/// Ask a member for its load once, bounded by `timeout`.
pub async fn ask(kind: &LoadKind, addr: IpAddr, timeout: Duration) -> Result<Load, LoadError> {
    let work = async {
        match kind {
            LoadKind::Agent { port } => {
                let mut s = super::tcp::connect(SocketAddr::new(addr, *port))
                    .await
                    .map_err(|e| {
                        let (class, reason) = super::tcp::connect_error(&e);
                        unreachable(class, reason)
                    })?;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 256];
                while !buf.contains(&b'\n') && buf.len() < 512 {
                    match s.read(&mut chunk).await {
                        Ok(0) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        Err(e) => {
                            return Err(unreachable(Failure::Other, format!("read failed: {e}")));
                        }
                    }
                }
                parse_agent(&String::from_utf8_lossy(&buf))
            }
            LoadKind::Http { port, path } => {
                let url = match addr {
                    IpAddr::V4(a) => format!("http://{a}:{port}{path}"),
                    IpAddr::V6(a) => format!("http://[{a}]:{port}{path}"),
                };
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .pool_max_idle_per_host(0)
                    .no_proxy()
                    .local_address(super::source_for(addr))
                    .build()
                    .map_err(|e| unreachable(Failure::Other, e.to_string()))?;
                let mut resp = client
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| unreachable(Failure::Other, e.to_string()))?;
                if !resp.status().is_success() {
                    let code = resp.status().as_u16();
                    return Err(unreachable(Failure::Status, format!("http {code}")));
                }
                // Only the start of the body is read: a member cannot make us buffer more.
                let mut body = Vec::new();
                while body.len() < MAX_HTTP_BODY {
                    let chunk = resp.chunk().await;
                    match chunk.map_err(|e| unreachable(Failure::Body, e.to_string()))? {
                        Some(c) => {
                            let room = MAX_HTTP_BODY - body.len();
                            body.extend_from_slice(&c[..c.len().min(room)]);
                        }
                        None => break,
                    }
                }
                http_load_body(&body)
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(unreachable(
            Failure::Timeout,
            format!("timeout {}", humantime::format_duration(timeout)),
        )),
    }
}

/// Ask every interval (±10 %) until the writer goes away or the task is aborted.
pub fn spawn(
    key: Arc<LoadKey>,
    tx: mpsc::Sender<LoadReport>,
    rt: &tokio::runtime::Handle,
) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        let mut rng = fastrand::Rng::new();
        loop {
            let start = Instant::now();
            let load = ask(&key.spec.kind, key.address, key.spec.timeout).await;
            if tx
                .send(LoadReport {
                    key: key.clone(),
                    load,
                })
                .await
                .is_err()
            {
                return;
            }
            let jittered = key.spec.interval.as_secs_f64() * (0.9 + 0.2 * rng.f64());
            tokio::time::sleep_until((start + Duration::from_secs_f64(jittered)).into()).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_words() {
        assert_eq!(
            parse_agent("75%\n").unwrap(),
            Load {
                capacity: Some(0.75),
                state: None
            }
        );
        assert_eq!(
            parse_agent("up, 10% maxconn:30\n").unwrap(),
            Load {
                capacity: Some(0.1),
                state: Some(AgentState::Up)
            }
        );
        assert_eq!(parse_agent("drain").unwrap().state, Some(AgentState::Drain));
        assert_eq!(parse_agent("MAINT").unwrap().state, Some(AgentState::Down));
        assert!(parse_agent("150%").is_err());
        assert!(parse_agent("hello").is_err());
        assert!(parse_agent("").is_err());
    }

    #[test]
    fn http_load_is_busy_percent() {
        assert!((parse_http_load("90\n").unwrap().capacity.unwrap() - 0.1).abs() < 1e-9);
        assert_eq!(parse_http_load("0%").unwrap().capacity, Some(1.0));
        assert!(parse_http_load("-3").is_err());
        assert!(parse_http_load("lots").is_err());
    }

    /// A body whose 64th octet falls inside a character used to panic the prober's task.
    #[test]
    fn a_body_cut_inside_a_character_is_an_error_not_a_panic() {
        let mut body = vec![b' '; 63];
        body.extend_from_slice("é50".as_bytes());
        assert!(std::str::from_utf8(&body).unwrap().get(..64).is_none());
        assert!(http_load_body(&body).is_err());
        assert_eq!(
            http_load_body(b"  40%\n")
                .unwrap()
                .capacity
                .map(|c| (c * 100.0).round()),
            Some(60.0)
        );
    }
}
