//! Soak with faults: several clients query without pause while backends flap, the config is
//! reloaded every second (a bad file every other time), and overrides are set and cleared
//! through the API. Asserts: no timeout and no SERVFAIL, no answer with a down member once the
//! check had time to notice, bounded memory; then a `kill -9` at a random moment and a restart
//! that restores the overrides and the last-known health.
//!
//! `soak_short` runs in CI (20 s); `soak_long` is ignored by default:
//!     GSLBD_SOAK_SECS=600 cargo test --release --test soak -- --ignored --nocapture

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::backend::{Backend, Mode};
use common::{Ask, Server, eventually};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;

const MEMBERS: [&str; 3] = ["127.0.95.1", "127.0.95.2", "127.0.95.3"];
/// A member leaves the answers within interval × fall + a probe's timeout; with slack.
const DETECTION: Duration = Duration::from_millis(1500);

fn zone_text(port: u16, ttl: u32) -> String {
    format!(
        "zone: s.test.
soa: {{ mname: ns1.s.test., rname: hostmaster.s.test. }}
ns: [ns1.s.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
  static: {{ A: [192.0.2.80] }}
checks:
  port: {{ tcp: {{ port: {port} }}, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }}
pools:
  web:
    checks: [port]
    ttl: {ttl}
    max_answers: 3
    members: [{{ address: {} }}, {{ address: {} }}, {{ address: {} }}]
names:
  www: {{ pool: web }}
",
        MEMBERS[0], MEMBERS[1], MEMBERS[2]
    )
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Times, from the start, at which a member was down: [from, to).
type Outages = Arc<Mutex<BTreeMap<String, Vec<(Duration, Duration)>>>>;

/// Bring member `i`'s backend back and record its outage from `from` to `to`.
fn end_outage(backends: &mut [Backend], outages: &Outages, i: usize, from: Duration, to: Duration) {
    backends[i].restart();
    outages
        .lock()
        .unwrap()
        .entry(MEMBERS[i].into())
        .or_default()
        .push((from, to));
}

struct Tally {
    queries: AtomicU64,
    timeouts: AtomicU64,
    servfail: AtomicU64,
    answers: Mutex<Vec<(Duration, Vec<String>)>>,
}

fn client(server: SocketAddr, start: Instant, until: Duration, stop: &AtomicBool, t: &Tally) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 1500];
    let mut id = 0u16;
    while start.elapsed() < until && !stop.load(Ordering::Relaxed) {
        id = id.wrapping_add(1);
        let name = if id.is_multiple_of(5) {
            "static.s.test."
        } else {
            "www.s.test."
        };
        let mut q = Ask::new(name, "A");
        q.id = id;
        let sent_at = start.elapsed();
        sock.send_to(&q.bytes(), server).unwrap();
        t.queries.fetch_add(1, Ordering::Relaxed);
        let reply = loop {
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => match Message::from_vec(&buf[..n]) {
                    Ok(m) if m.metadata.id == id => break Some(m),
                    _ => continue,
                },
                Err(_) => break None,
            }
        };
        let Some(m) = reply else {
            t.timeouts.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if m.metadata.response_code == ResponseCode::ServFail {
            t.servfail.fetch_add(1, Ordering::Relaxed);
        }
        if name.starts_with("www") {
            let addrs = m
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.to_string()),
                    _ => None,
                })
                .collect();
            t.answers.lock().unwrap().push((sent_at, addrs));
        }
    }
}

fn soak(duration: Duration) {
    let d = tempfile::tempdir().unwrap();
    let mut backends: Vec<Backend> = Vec::new();
    backends.push(Backend::start(MEMBERS[0], 0, Mode::Ok));
    let port = backends[0].addr.port();
    for m in &MEMBERS[1..] {
        backends.push(Backend::start(m, port, Mode::Ok));
    }
    std::fs::create_dir_all(d.path().join("zones")).unwrap();
    let good = zone_text(port, 5);
    std::fs::write(d.path().join("zones/s.yaml"), &good).unwrap();
    let s = Server::start(d.path(), &[]);
    for m in MEMBERS {
        s.wait_log(&format!("health: {m} check port: unknown -> up"), 5);
    }
    let server = s.addrs()[0];
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    let tally = Tally {
        queries: AtomicU64::new(0),
        timeouts: AtomicU64::new(0),
        servfail: AtomicU64::new(0),
        answers: Mutex::new(Vec::new()),
    };
    let outages: Outages = Arc::default();
    let rss_start = rss_kib(s.pid());
    let mut rss_max = rss_start;
    let (mut reloads, mut overrides) = (0, 0);

    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| client(server, start, duration, &stop, &tally));
        }
        // The conductor: flaps, reloads and overrides on a fixed beat.
        let mut tick = 0u64;
        let mut down: Option<(usize, Duration)> = None;
        while start.elapsed() < duration {
            std::thread::sleep(Duration::from_millis(500));
            tick += 1;
            let now = start.elapsed();
            // Every 2 s one backend goes down for 2 s, in turn.
            if tick.is_multiple_of(4) {
                if let Some((i, from)) = down.take() {
                    end_outage(&mut backends, &outages, i, from, now);
                } else {
                    let i = (tick / 8) as usize % MEMBERS.len();
                    backends[i].stop();
                    down = Some((i, start.elapsed()));
                }
            }
            // Every second a reload, a broken file every other time (refused; the last good
            // config keeps serving).
            if tick.is_multiple_of(2) {
                let broken = tick.is_multiple_of(4);
                let text = if broken {
                    "zone: [".to_string()
                } else {
                    zone_text(port, 5 + (tick % 3) as u32)
                };
                std::fs::write(d.path().join("zones/s.yaml"), text).unwrap();
                let (code, body) = s.http("POST", "/v1/reload", "", None);
                assert_eq!(code, if broken { 422 } else { 200 }, "{body}");
                reloads += 1;
            }
            // Overrides: drain a member, then clear it.
            let member = MEMBERS[(tick as usize / 3) % MEMBERS.len()];
            let action = if tick.is_multiple_of(3) {
                "drain"
            } else if tick % 3 == 1 {
                "clear"
            } else {
                ""
            };
            if !action.is_empty() {
                let (code, body) = s.http(
                    "POST",
                    &format!("/v1/members/{member}/{action}"),
                    r#"{"reason": "soak"}"#,
                    None,
                );
                assert!(
                    code == 200 || (action == "clear" && code == 404),
                    "{action}: {code} {body}"
                );
                overrides += 1;
            }
            rss_max = rss_max.max(rss_kib(s.pid()));
        }
        stop.store(true, Ordering::Relaxed);
        if let Some((i, from)) = down.take() {
            end_outage(&mut backends, &outages, i, from, start.elapsed());
        }
    });
    // Leave the good config in place.
    std::fs::write(d.path().join("zones/s.yaml"), &good).unwrap();
    assert_eq!(s.http("POST", "/v1/reload", "", None).0, 200);

    let queries = tally.queries.load(Ordering::Relaxed);
    let timeouts = tally.timeouts.load(Ordering::Relaxed);
    let servfail = tally.servfail.load(Ordering::Relaxed);
    let answers = tally.answers.lock().unwrap();
    let outages = outages.lock().unwrap();
    let mut stale = Vec::new();
    for (at, addrs) in answers.iter() {
        for a in addrs {
            let down_then = outages
                .get(a)
                .into_iter()
                .flatten()
                .any(|(from, to)| *at >= *from + DETECTION && *at < *to);
            if down_then {
                stale.push((*at, a.clone()));
            }
        }
    }
    eprintln!(
        "soak {:?}: {queries} queries, {timeouts} timeouts, {servfail} SERVFAIL, {} stale, {reloads} reloads, {overrides} override changes, RSS {rss_start} → max {rss_max} KiB",
        duration,
        stale.len()
    );
    assert!(queries > 1000, "{queries} queries");
    assert_eq!(timeouts, 0);
    assert_eq!(servfail, 0);
    assert!(
        stale.is_empty(),
        "down members answered after detection: {:?}",
        &stale[..stale.len().min(10)]
    );
    assert!(
        rss_max < rss_start + 32 * 1024 && rss_max < 128 * 1024,
        "RSS {rss_start} → {rss_max} KiB"
    );
    drop(answers);

    // kill -9 at a random moment, with an override in force and a member known down. First
    // clear what the loop may have left (a drain of another member would change the answer).
    for m in MEMBERS {
        let code = s
            .http("POST", &format!("/v1/members/{m}/clear"), "", None)
            .0;
        assert!(code == 200 || code == 404, "clear {m}: {code}");
    }
    assert_eq!(
        s.http(
            "POST",
            "/v1/members/127.0.95.3/drain",
            r#"{"reason": "before the crash"}"#,
            None
        )
        .0,
        200
    );
    // The loop's outages logged this line before: wait until 127.0.95.2 is up again (the
    // loop may have ended in its outage), then for a new one.
    let went_down = "health: 127.0.95.2 check port: up -> down";
    eventually(Duration::from_secs(5), "127.0.95.2 never came back", || {
        let log = s.log();
        let last = log
            .lines()
            .rfind(|l| l.contains("health: 127.0.95.2 check port: "))
            .unwrap_or("-> up");
        last.contains("-> up").then_some(())
    });
    let before = s.log().matches(went_down).count();
    backends[1].stop();
    eventually(Duration::from_secs(5), "127.0.95.2 never went down", || {
        (s.log().matches(went_down).count() > before).then_some(())
    });
    let saved = d.path().join("state/health.json");
    let saved_down = |member: &str| -> bool {
        let Ok(text) = std::fs::read_to_string(&saved) else {
            return false;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            return false;
        };
        v["probes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["address"] == member && p["status"] == "down")
    };
    // The saved health must be the state at the crash: .2 down, the others (back) up.
    eventually(Duration::from_secs(5), "health never saved", || {
        (saved_down("127.0.95.2") && !saved_down("127.0.95.1") && !saved_down("127.0.95.3"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(fastrand::u64(0..1000)));
    let mut s = s;
    s.signal(libc::SIGKILL);
    assert!(s.wait_exit(5).is_some());
    drop(s);
    let s = Server::start(d.path(), &[]);
    let log = s.log();
    assert!(
        log.contains("override restored: 127.0.95.3 drain (before the crash)"),
        "{log}"
    );
    assert!(log.contains("(3 last-known states restored)"), "{log}");
    // At once, before any probe could tell: .2 is down (restored), .3 drained.
    let m = s.udp(&Ask::new("www.s.test.", "A"));
    let addrs: Vec<String> = common::addresses(&m);
    assert_eq!(
        addrs,
        ["127.0.95.1"],
        "{}",
        std::fs::read_to_string(&saved).unwrap_or_default()
    );
}

#[test]
fn soak_short() {
    soak(Duration::from_secs(20));
}

#[test]
#[ignore = "long: GSLBD_SOAK_SECS (default 600)"]
fn soak_long() {
    let secs = std::env::var("GSLBD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    soak(Duration::from_secs(secs));
}
