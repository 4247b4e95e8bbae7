//! Fast detection without giving up hysteresis (`fast_interval`, `down_interval`,
//! `fall_on_refused`), against the real binary and real HTTP backends: a killed backend leaves
//! the answers within a fraction of a second more than one interval, comes back within `rise`
//! fast probes, and flaky backends still do not flap.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::backend::{Backend, Mode};
use common::{Ask, Server, addresses, eventually};

fn zone(port: u16, net: u8, check: &str) -> String {
    format!(
        "zone: d.test.
soa: {{ mname: ns1.d.test., rname: h.d.test. }}
ns: [ns1.d.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
checks:
  web: {{ http: {{ port: {port}, path: / }}, {check} }}
pools:
  web:
    max_answers: 8
    checks: [web]
    members: [{{ address: 127.0.{net}.1 }}, {{ address: 127.0.{net}.2 }}]
names:
  www: {{ pool: web }}
"
    )
}

fn start(zone: &str) -> Server {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("zones")).unwrap();
    std::fs::write(d.path().join("zones/d.yaml"), zone).unwrap();
    let mut s = Server::start(d.path(), &[]);
    s.keep(d);
    s
}

/// Until the first probe of both members has found them up (unknown members are answered
/// too, so the answers alone cannot say).
fn wait_up(s: &Server, net: u8) {
    for m in 1..=2 {
        s.wait_log(&format!("127.0.{net}.{m} check web: unknown -> up"), 10);
    }
}

fn answers(s: &Server) -> BTreeSet<String> {
    addresses(&s.udp(&Ask::new("www.d.test", "A")))
        .into_iter()
        .collect()
}

/// How long until `cond` holds, polled every 10 ms (at most `within`).
fn time_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    eventually(within, what, || cond().then_some(()));
    t.elapsed()
}

fn spread(v: &mut [Duration]) -> String {
    v.sort();
    let ms = |d: Duration| d.as_millis();
    format!(
        "min {} ms, median {} ms, max {} ms over {}",
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1]),
        v.len()
    )
}

/// `interval: 1s, fall: 2, fast_interval: 200ms`: killed, the backend leaves the answers
/// within 1.5 s (two probes: the next regular one, then a fast one); back, it returns within
/// a down interval and `rise` fast probes. GSLBD_DETECTION_TRIALS (default 5) sets the trials.
#[test]
fn a_killed_backend_leaves_the_answers_within_a_fast_probe_of_the_first_failure() {
    let trials: usize = std::env::var("GSLBD_DETECTION_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut backends = Backend::group(86, 2, Mode::Ok);
    let s = start(&zone(
        backends[0].addr.port(),
        86,
        "interval: 1s, timeout: 500ms, fall: 2, rise: 2, fast_interval: 200ms",
    ));
    let both: BTreeSet<String> = ["127.0.86.1", "127.0.86.2"].map(String::from).into();
    let one: BTreeSet<String> = ["127.0.86.2"].map(String::from).into();
    wait_up(&s, 86);
    let (mut gone, mut back) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        // A random phase against the probes.
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..1000)));
        backends[0].stop();
        gone.push(time_until(
            Duration::from_secs(5),
            "the killed member stayed",
            || answers(&s) == one,
        ));
        backends[0].restart();
        back.push(time_until(
            Duration::from_secs(5),
            "the member never came back",
            || answers(&s) == both,
        ));
    }
    let (g, b) = (spread(&mut gone), spread(&mut back));
    eprintln!("gone: {g}\nback: {b}");
    // Generous bounds (a loaded machine); the note reports the distribution.
    assert!(
        gone.iter().all(|d| *d < Duration::from_millis(2000)),
        "gone: {g}"
    );
    assert!(
        back.iter().all(|d| *d < Duration::from_millis(2500)),
        "back: {b}"
    );
    // The verdict is published at once: the log says how long after the deciding probe.
    let log = s.log();
    let delays: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("-> down") && l.contains("published "))
        .filter_map(|l| {
            l.split("published ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(delays.len(), trials, "{log}");
    assert!(delays.iter().all(|&us| us < 50_000), "{delays:?} µs");
    eprintln!("published after the deciding probe: {delays:?} µs");
}

/// A refusal is a definite answer: with `fall_on_refused: 1` one is enough, where two
/// timeouts or 503s are needed.
#[test]
fn one_refusal_is_enough_with_fall_on_refused() {
    let mut backends = Backend::group(87, 2, Mode::Ok);
    let s = start(&zone(
        backends[0].addr.port(),
        87,
        "interval: 1s, timeout: 500ms, fall: 3, rise: 2, fast_interval: 1s, fall_on_refused: 1",
    ));
    wait_up(&s, 87);
    backends[0].stop();
    // fall 3 at 1 s would take 2–3 s; one refusal takes at most one interval (+ jitter).
    let took = time_until(Duration::from_secs(5), "the refused member stayed", || {
        answers(&s).len() == 1
    });
    assert!(took < Duration::from_millis(1500), "{took:?}");
    s.wait_log("up -> down: connect refused", 5);
}

/// Flaky backends: failing one probe in three never takes a member down with `fall: 2`; one
/// that fails every other probe never comes back with `rise: 2`. Over 100 probes or more,
/// each paced fast (100 ms) after every failure.
#[test]
fn flaky_backends_do_not_flap() {
    let backends = Backend::group(88, 2, Mode::FailOneInThree);
    backends[1].set(Mode::Unavailable);
    let s = start(&zone(
        backends[0].addr.port(),
        88,
        "interval: 100ms, timeout: 80ms, fall: 2, rise: 2, fast_interval: 100ms",
    ));
    // 127.0.88.2 goes down on its first probe, then fails every other one.
    s.wait_log("127.0.88.2 check web: unknown -> down", 5);
    backends[1].set(Mode::FailOneInTwo);
    let start = Instant::now();
    let mut samples = 0;
    while backends[0]
        .requests
        .load(std::sync::atomic::Ordering::Relaxed)
        < 105
        || backends[1]
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
            < 105
    {
        assert!(start.elapsed() < Duration::from_secs(60), "too few probes");
        let a = answers(&s);
        assert_eq!(
            a,
            ["127.0.88.1"].map(String::from).into(),
            "after {samples} samples"
        );
        samples += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = s.log();
    assert!(!log.contains("127.0.88.1 check web: up -> down"), "{log}");
    assert!(!log.contains("127.0.88.2 check web: down -> up"), "{log}");
}
