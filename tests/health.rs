//! Health-aware answers end to end: real HTTP and TCP listeners on loopback, a real gslbd
//! probing them, real DNS queries. Timing assertions poll with generous bounds.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::backend::{Backend, Mode, TlsBackend};
use common::{Ask, Server, TICK, addresses, eventually, poll};

/// Every address seen over `n` queries.
fn seen(s: &Server, name: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .flat_map(|_| addresses(&s.udp(&Ask::new(name, "A"))))
        .collect()
}

/// Poll until every one of 20 answers satisfies `ok`; returns how long it took.
fn wait_until(
    s: &Server,
    name: &str,
    secs: u64,
    ok: impl Fn(&BTreeSet<String>) -> bool,
) -> Duration {
    let start = Instant::now();
    let mut got = BTreeSet::new();
    poll(Duration::from_secs(secs), TICK, || {
        got = seen(s, name, 20);
        ok(&got).then(|| start.elapsed())
    })
    .unwrap_or_else(|| panic!("{name}: still {got:?} after {secs} s"))
}

/// Wait until the log shows the first probe of each member found it up (members are usable
/// while unknown, so answers alone cannot tell).
fn wait_known_up(s: &Server, check: &str, members: &[&str]) {
    for m in members {
        s.wait_log(&format!("health: {m} check {check}: unknown -> up"), 5);
    }
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A zone directory with one zone `h.test.` holding `body` (checks, pools, names).
fn zone(dir: &Path, body: &str) {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    let text = format!(
        "zone: h.test.\nsoa: {{ mname: ns1.h.test., rname: hostmaster.h.test., minimum: 5 }}\nns: [ns1.h.test.]\nrecords:\n  ns1: {{ A: [192.0.2.53] }}\n{body}"
    );
    std::fs::write(dir.join("zones/h.yaml"), text).unwrap();
}

/// Three HTTP backends on 127.0.<net>.1-3, all on one port.
fn backends(net: u8, mode: Mode) -> Vec<Backend> {
    Backend::group(net, 3, mode)
}

fn http_pool(net: u8, port: u16, interval: &str, rise: u32, fall: u32, extra: &str) -> String {
    format!(
        "checks:
  owa:
    http: {{ port: {port}, path: /owa/healthcheck.htm, expect_status: [200], expect_body: \"200 OK\", host: mail.example.test }}
    interval: {interval}
    timeout: 200ms
    rise: {rise}
    fall: {fall}
pools:
  exchange:
    checks: [owa]
    ttl: 20
    max_answers: 3
{extra}    members:
      - {{ address: 127.0.{net}.1 }}
      - {{ address: 127.0.{net}.2 }}
      - {{ address: 127.0.{net}.3 }}
names:
  mail: {{ pool: exchange }}
"
    )
}

#[test]
fn a_stopped_backend_disappears_and_returns() {
    let mut b = backends(11, Mode::Ok);
    let d = tempfile::tempdir().unwrap();
    // interval 300 ms, fall 3: gone within 3 × 300 ms + 1 s
    zone(
        d.path(),
        &http_pool(11, b[0].addr.port(), "300ms", 2, 3, ""),
    );
    let s = Server::start(d.path(), &[]);
    let all = set(&["127.0.11.1", "127.0.11.2", "127.0.11.3"]);
    wait_known_up(&s, "owa", &["127.0.11.1", "127.0.11.2", "127.0.11.3"]);
    wait_until(&s, "mail.h.test.", 5, |g| *g == all);
    // the answer is authoritative, with the pool's TTL
    let m = s.udp(&Ask::new("mail.h.test.", "A"));
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].ttl, 20);

    b[1].stop();
    let stopped = Instant::now();
    let detect = wait_until(&s, "mail.h.test.", 10, |g| !g.contains("127.0.11.2"));
    assert!(
        stopped.elapsed() < Duration::from_millis(3 * 300 + 1000) + Duration::from_millis(500),
        "detection took {detect:?}"
    );
    // degraded: the TTL is halved
    assert_eq!(s.udp(&Ask::new("mail.h.test.", "A")).answers[0].ttl, 10);
    let log = s.log();
    assert!(
        log.contains("health: 127.0.11.2 check owa: up -> down: connect refused"),
        "{log}"
    );

    b[1].restart();
    let back = Instant::now();
    let recover = wait_until(&s, "mail.h.test.", 10, |g| *g == all);
    // rise 2 at 300 ms: back within two intervals (plus jitter and the query loop)
    assert!(
        back.elapsed() < Duration::from_millis(2 * 330 + 1000),
        "recovery took {recover:?}"
    );
    eprintln!("detection {detect:?}, recovery {recover:?}");
}

#[test]
fn a_503_backend_disappears_and_a_one_in_three_flake_does_not_flap() {
    let b = backends(12, Mode::Ok);
    b[2].set(Mode::FailOneInThree);
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        &http_pool(12, b[0].addr.port(), "200ms", 2, 3, ""),
    );
    let s = Server::start(d.path(), &[]);
    wait_known_up(&s, "owa", &["127.0.12.1", "127.0.12.2", "127.0.12.3"]);
    wait_until(&s, "mail.h.test.", 5, |g| g.len() == 3);
    b[1].set(Mode::Unavailable);
    wait_until(&s, "mail.h.test.", 5, |g| !g.contains("127.0.12.2"));
    assert!(
        s.log()
            .contains("127.0.12.2 check owa: up -> down: http 503"),
        "{}",
        s.log()
    );
    // ~15 probes of the flaky member, a failure every third: it never goes down
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(
            seen(&s, "mail.h.test.", 5).contains("127.0.12.3"),
            "flaky member dropped:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(b[2].requests.load(std::sync::atomic::Ordering::Relaxed) >= 10);
    assert!(
        !s.log().contains("127.0.12.3 check owa: up -> down"),
        "{}",
        s.log()
    );
}

#[test]
fn when_all_down_modes_answer_as_documented() {
    // Nothing listens on 127.0.13.x: every member is down after the first probe.
    let d = tempfile::tempdir().unwrap();
    let pools = "checks:
  web: { tcp: { port: 9 }, interval: 200ms, timeout: 100ms }
pools:
  open:     { checks: [web], members: [{ address: 127.0.13.1 }, { address: 127.0.13.2 }] }
  nodata:   { checks: [web], when_all_down: none, members: [{ address: 127.0.13.1 }] }
  fail:     { checks: [web], when_all_down: servfail, members: [{ address: 127.0.13.1 }] }
  fixed:    { checks: [web], when_all_down: fallback, fallback: { addresses: [192.0.2.99] }, members: [{ address: 127.0.13.1 }] }
  backup:   { checks: [], members: [{ address: 192.0.2.77 }] }
  viapool:  { checks: [web], when_all_down: fallback, fallback: { pool: backup }, members: [{ address: 127.0.13.1 }] }
names:
  open: { pool: open }
  nodata: { pool: nodata }
  fail: { pool: fail }
  fixed: { pool: fixed }
  viapool: { pool: viapool }
";
    zone(d.path(), pools);
    let s = Server::start(d.path(), &[]);
    s.wait_log("127.0.13.2 check web: unknown -> down", 5);
    s.wait_log("127.0.13.1 check web: unknown -> down", 5);
    // all: fail open, every member, with the halved TTL
    assert_eq!(
        seen(&s, "open.h.test.", 20),
        set(&["127.0.13.1", "127.0.13.2"])
    );
    assert_eq!(s.udp(&Ask::new("open.h.test.", "A")).answers[0].ttl, 15);
    // none: NODATA with the SOA
    let m = s.udp(&Ask::new("nodata.h.test.", "A"));
    assert_eq!(u16::from(m.metadata.response_code), 0);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type().to_string(), "SOA");
    // servfail
    assert_eq!(
        u16::from(s.udp(&Ask::new("fail.h.test.", "A")).metadata.response_code),
        2
    );
    // fallback addresses, and fallback to another pool
    assert_eq!(seen(&s, "fixed.h.test.", 5), set(&["192.0.2.99"]));
    assert_eq!(seen(&s, "viapool.h.test.", 5), set(&["192.0.2.77"]));
    // a pool without IPv6 members answers AAAA with NODATA
    let m = s.tcp(&Ask::new("open.h.test.", "AAAA"));
    assert!(m.answers.is_empty() && m.metadata.authoritative);
}

#[test]
fn probes_end_within_their_timeout_whatever_the_peer_does() {
    let b = backends(14, Mode::Ok);
    b[1].set(Mode::Silent);
    b[2].set(Mode::SlowBody);
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        &http_pool(14, b[0].addr.port(), "500ms", 1, 1, ""),
    );
    let s = Server::start(d.path(), &[]);
    let t = wait_until(&s, "mail.h.test.", 5, |g| *g == set(&["127.0.14.1"]));
    assert!(t < Duration::from_secs(3), "{t:?}");
    let log = s.log();
    assert!(
        log.contains("127.0.14.2 check owa: unknown -> down: timeout 200ms"),
        "{log}"
    );
    assert!(
        log.contains("127.0.14.3 check owa: unknown -> down: timeout 200ms"),
        "{log}"
    );
}

#[test]
fn tcp_banner_exec_and_file_checks() {
    let smtp_ok = Backend::start("127.0.15.1", 0, Mode::Smtp);
    let port = smtp_ok.addr.port();
    let _smtp_bad = Backend::start("127.0.15.2", port, Mode::SmtpRefuse);
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("zones.state"),
        "127.0.16.1 up\n127.0.16.2 down\n",
    )
    .unwrap();
    zone(
        d.path(),
        &format!(
            "checks:
  smtp: {{ tcp: {{ port: {port}, expect_banner: \"^220 \" }}, interval: 300ms, timeout: 200ms, rise: 1, fall: 1 }}
  script: {{ exec: {{ command: [/bin/sh, -c, 'test \"$GSLBD_ADDRESS\" = 127.0.17.2'] }}, interval: 300ms, timeout: 200ms, rise: 1, fall: 1 }}
  flag: {{ file: {{ path: ../zones.state }}, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }}
pools:
  smtp: {{ checks: [smtp], members: [{{ address: 127.0.15.1 }}, {{ address: 127.0.15.2 }}] }}
  script: {{ checks: [script], members: [{{ address: 127.0.17.1 }}, {{ address: 127.0.17.2 }}] }}
  flag: {{ checks: [flag], members: [{{ address: 127.0.16.1 }}, {{ address: 127.0.16.2 }}, {{ address: 127.0.16.3 }}] }}
names:
  smtp: {{ pool: smtp }}
  script: {{ pool: script }}
  flag: {{ pool: flag }}
"
        ),
    );
    let s = Server::start(d.path(), &[]);
    wait_until(&s, "smtp.h.test.", 5, |g| *g == set(&["127.0.15.1"]));
    assert!(
        s.log().contains(
            "127.0.15.2 check smtp: unknown -> down: banner \"554 no service\" does not match"
        ),
        "{}",
        s.log()
    );
    wait_until(&s, "script.h.test.", 5, |g| *g == set(&["127.0.17.2"]));
    wait_until(&s, "flag.h.test.", 5, |g| *g == set(&["127.0.16.1"]));
    // another tool rewrites the file: gslbd follows
    std::fs::write(
        d.path().join("zones.state"),
        "127.0.16.1 down\n127.0.16.2 up\n127.0.16.3 up\n",
    )
    .unwrap();
    wait_until(&s, "flag.h.test.", 5, |g| {
        *g == set(&["127.0.16.2", "127.0.16.3"])
    });
}

#[test]
fn failover_and_weighted_policies() {
    let b = backends(18, Mode::Ok);
    let port = b[0].addr.port();
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        &format!(
            "checks:
  web: {{ tcp: {{ port: {port} }}, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }}
pools:
  fo:
    policy: failover
    checks: [web]
    members:
      - {{ address: 127.0.18.1, priority: 1 }}
      - {{ address: 127.0.18.2, priority: 2 }}
      - {{ address: 127.0.18.3, priority: 2 }}
  wt:
    policy: weighted
    max_answers: 1
    members:
      - {{ address: 192.0.2.1, weight: 100 }}
      - {{ address: 192.0.2.2, weight: 300 }}
names:
  fo: {{ pool: fo }}
  wt: {{ pool: wt }}
"
        ),
    );
    let mut b = b;
    let s = Server::start(d.path(), &[]);
    wait_known_up(&s, "web", &["127.0.18.1", "127.0.18.2", "127.0.18.3"]);
    wait_until(&s, "fo.h.test.", 5, |g| *g == set(&["127.0.18.1"]));
    b[0].stop();
    wait_until(&s, "fo.h.test.", 5, |g| {
        *g == set(&["127.0.18.2", "127.0.18.3"])
    });

    let mut first = [0u32; 2];
    for _ in 0..2000 {
        match addresses(&s.udp(&Ask::new("wt.h.test.", "A")))[0].as_str() {
            "192.0.2.1" => first[0] += 1,
            _ => first[1] += 1,
        }
    }
    let ratio = f64::from(first[1]) / f64::from(first[0]);
    assert!((2.4..3.8).contains(&ratio), "weights 1:3, got {first:?}");
}

#[test]
fn reload_keeps_health_and_restart_restores_it() {
    let b = backends(19, Mode::Ok);
    b[2].set(Mode::Silent);
    let port = b[0].addr.port();
    let d = tempfile::tempdir().unwrap();
    // a long timeout: a silent member takes 2 s to be found down by a fresh probe
    let body = |ttl: u32| {
        format!(
            "checks:
  owa: {{ http: {{ port: {port}, path: / }}, interval: 2500ms, timeout: 2s, rise: 1, fall: 1 }}
pools:
  p: {{ checks: [owa], ttl: {ttl}, members: [{{ address: 127.0.19.1 }}, {{ address: 127.0.19.2 }}, {{ address: 127.0.19.3 }}] }}
names:
  www: {{ pool: p }}
"
        )
    };
    zone(d.path(), &body(20));
    let healthy = set(&["127.0.19.1", "127.0.19.2"]);
    {
        let s = Server::start(d.path(), &[]);
        s.wait_log("health: 127.0.19.3 check owa: unknown -> down: timeout", 6);
        wait_until(&s, "www.h.test.", 6, |g| *g == healthy);

        // A bad file is refused and the pool keeps answering as before.
        std::fs::write(d.path().join("zones/h.yaml"), "zone: [").unwrap();
        s.signal(libc::SIGHUP);
        s.wait_log("reload refused", 5);
        assert_eq!(seen(&s, "www.h.test.", 10), healthy);

        // A good one that changes only the TTL: the checks keep their state, so the silent
        // member stays out at once (a reset to unknown would let it back in for 2 s).
        zone(d.path(), &body(40));
        s.signal(libc::SIGHUP);
        s.wait_log("reload: new configuration is live", 5);
        assert_eq!(seen(&s, "www.h.test.", 20), healthy, "{}", s.log());
        assert_eq!(
            s.udp(&Ask::new("www.h.test.", "A")).answers[0].ttl,
            20,
            "halved 40 while degraded"
        );
    }
    assert!(d.path().join("state/health.json").exists());
    // Restart: the last-known state is restored, so the silent member is out from the start,
    // before its first probe (2 s) could say so.
    let s = Server::start(d.path(), &[]);
    assert!(
        s.log().contains("3 last-known states restored"),
        "{}",
        s.log()
    );
    assert_eq!(seen(&s, "www.h.test.", 20), healthy, "{}", s.log());
}

#[test]
fn https_checks_pin_the_address_keep_host_and_sni_and_verify_by_default() {
    // Two HTTPS members with self-signed certificates for mail.example.test.
    let a = TlsBackend::start("127.0.20.1", 0, "mail.example.test");
    let port = a.addr.port();
    let b = TlsBackend::start("127.0.20.2", port, "mail.example.test");
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        &format!(
            "checks:
  owa-strict: {{ http: {{ port: {port}, tls: true, host: mail.example.test, path: /owa/healthcheck.htm, expect_body: \"200 OK\" }}, interval: 1s, timeout: 900ms, rise: 1, fall: 3 }}
  owa-selfsigned: {{ http: {{ port: {port}, tls: true, verify_tls: false, host: mail.example.test, path: /owa/healthcheck.htm, expect_body: \"200 OK\" }}, interval: 1s, timeout: 900ms, rise: 1, fall: 3 }}
pools:
  strict: {{ checks: [owa-strict], when_all_down: none, members: [{{ address: 127.0.20.1 }}, {{ address: 127.0.20.2 }}] }}
  relaxed: {{ checks: [owa-selfsigned], members: [{{ address: 127.0.20.1 }}, {{ address: 127.0.20.2 }}] }}
names:
  strict: {{ pool: strict }}
  relaxed: {{ pool: relaxed }}
"
        ),
    );
    let s = Server::start(d.path(), &[]);
    wait_known_up(&s, "owa-selfsigned", &["127.0.20.1", "127.0.20.2"]);
    assert_eq!(
        seen(&s, "relaxed.h.test.", 20),
        set(&["127.0.20.1", "127.0.20.2"])
    );
    // Verification is on by default: a self-signed certificate is a failed check.
    s.wait_log("127.0.20.1 check owa-strict: unknown -> down", 5);
    s.wait_log("127.0.20.2 check owa-strict: unknown -> down", 5);
    assert!(s.log().contains("certificate"), "{}", s.log());
    // Both are down (the table publishes right after logging the second transition).
    eventually(
        Duration::from_secs(5),
        "strict.h.test. still answered",
        || {
            s.udp(&Ask::new("strict.h.test.", "A"))
                .answers
                .is_empty()
                .then_some(())
        },
    );
    // Each member saw its own connection with the configured name as SNI and Host.
    for backend in [&a, &b] {
        let seen = backend.seen.lock().unwrap().clone();
        assert!(!seen.is_empty(), "{} was never probed", backend.addr);
        for (sni, host) in seen {
            assert_eq!(sni.as_deref(), Some("mail.example.test"));
            assert_eq!(host.as_deref(), Some(&*format!("mail.example.test:{port}")));
        }
    }
}

#[test]
fn an_exec_check_that_hangs_is_killed_at_its_timeout() {
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("still-running");
    zone(
        d.path(),
        &format!(
            "checks:
  slow: {{ exec: {{ command: [/bin/sh, -c, 'sleep 3; touch {}'] }}, interval: 2s, timeout: 200ms, rise: 1, fall: 1 }}
pools:
  p: {{ checks: [slow], when_all_down: none, members: [{{ address: 127.0.21.1 }}] }}
names:
  p: {{ pool: p }}
",
            marker.display()
        ),
    );
    let s = Server::start(d.path(), &[]);
    s.wait_log("127.0.21.1 check slow: unknown -> down: timeout 200ms", 5);
    // the shell was killed: its `touch` never runs
    std::thread::sleep(Duration::from_millis(3500));
    assert!(!marker.exists(), "the timed-out command kept running");
}
