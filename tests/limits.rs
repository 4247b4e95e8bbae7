//! TCP resource limits through real sockets: connections per client, a slow-loris client, a
//! connection's lifetime, oversized queries; and their settings refused when wrong.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Ask, Server, eventually, tcp_recv, tcp_send};

fn setup(dir: &Path, settings: &str) {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(
        dir.join("zones/l.yaml"),
        "zone: l.test.
soa: { mname: ns1.l.test., rname: hostmaster.l.test. }
ns: [ns1.l.test.]
records:
  ns1: { A: [192.0.2.53] }
  www: { A: [192.0.2.1] }
",
    )
    .unwrap();
    std::fs::write(dir.join("gslbd.yaml"), settings).unwrap();
}

/// A TCP connection from `source` (any 127.0.0.0/8 address).
fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{source}:0").parse().unwrap();
    s.bind(&src.into()).unwrap();
    s.connect_timeout(&server.into(), Duration::from_secs(2))
        .unwrap();
    let t: TcpStream = s.into();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    t
}

/// Whether the connection answers a query.
fn answers(c: &mut TcpStream) -> bool {
    let q = Ask::new("www.l.test.", "A").bytes();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    c.write_all(&framed).is_ok() && tcp_recv(c).is_some()
}

/// Seconds until the server closes `c` (reads EOF or an error), at most `max`.
fn closed_after(c: &mut TcpStream, max: Duration) -> Option<Duration> {
    let start = Instant::now();
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 512];
    while start.elapsed() < max {
        match c.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

const SETTINGS: &str = "tcp: { max_per_client: 4, idle_timeout: 1s, lifetime: 3s }\n";

#[test]
fn connections_per_client_are_capped() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), SETTINGS);
    let s = Server::start(d.path(), &[]);
    let server = s.addrs()[0];
    let mut open: Vec<TcpStream> = (0..4).map(|_| connect_from("127.0.80.1", server)).collect();
    for c in open.iter_mut() {
        assert!(answers(c));
    }
    // The fifth from the same address is closed at once; another address is served.
    let mut fifth = connect_from("127.0.80.1", server);
    assert!(closed_after(&mut fifth, Duration::from_secs(2)).is_some());
    let mut other = connect_from("127.0.80.2", server);
    assert!(answers(&mut other));
    // A slot comes back when a connection ends.
    drop(open.pop());
    eventually(Duration::from_secs(3), "the slot never came back", || {
        answers(&mut connect_from("127.0.80.1", server)).then_some(())
    });
}

#[test]
fn slow_clients_and_old_connections_are_closed() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), SETTINGS);
    let s = Server::start(d.path(), &[]);
    let server = s.addrs()[0];

    // Slow loris: a 29-octet query, one octet every 300 ms (it would take 9 s).
    let mut slow = connect_from("127.0.81.1", server);
    let q = Ask::new("www.l.test.", "A").bytes();
    slow.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    let start = Instant::now();
    for b in &q {
        if slow.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        slow.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1];
        let eof = matches!(slow.read(&mut buf), Ok(0));
        slow.set_nonblocking(false).unwrap();
        if eof {
            break;
        }
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "slow client kept for {took:?}"
    );

    // Busy but old: a query every 400 ms is answered, until the 3 s lifetime ends it.
    let mut busy = connect_from("127.0.81.2", server);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) && answers(&mut busy) {
        std::thread::sleep(Duration::from_millis(400));
    }
    let lived = start.elapsed();
    assert!(
        lived >= Duration::from_millis(2500) && lived < Duration::from_secs(5),
        "lived {lived:?}"
    );

    // A query longer than 4096 octets closes the connection without an answer.
    let mut big = connect_from("127.0.81.3", server);
    let mut framed = 5000u16.to_be_bytes().to_vec();
    framed.extend(std::iter::repeat_n(0u8, 5000));
    let _ = big.write_all(&framed);
    assert!(closed_after(&mut big, Duration::from_secs(2)).is_some());

    // The server is fine.
    let mut c = s.tcp_connect();
    tcp_send(&mut c, &Ask::new("www.l.test.", "A").bytes());
    assert!(tcp_recv(&mut c).is_some());
}

#[test]
fn bad_tcp_settings_are_refused_with_their_place() {
    let d = tempfile::tempdir().unwrap();
    setup(
        d.path(),
        "tcp:\n  max_per_client: 0\n  idle_timeout: soon\n",
    );
    let (code, err) = common::check_in(d.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("gslbd.yaml:2:19: tcp.max_per_client: 0 is not in 1..=1000000"),
        "{err}"
    );
    assert!(
        err.contains("gslbd.yaml:3:17: tcp.idle_timeout: \"soon\" is not a duration"),
        "{err}"
    );
}

#[test]
fn probes_in_flight_are_capped() {
    // 300 members whose exec check takes 3 s: without a cap all 300 would run at once.
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("probes.log");
    let members: Vec<String> = (0..300u32)
        .map(|i| format!("{{ address: 127.0.{}.{} }}", 90 + i / 200, 1 + i % 200))
        .collect();
    std::fs::create_dir_all(d.path().join("zones")).unwrap();
    std::fs::write(
        d.path().join("zones/p.yaml"),
        format!(
            "zone: p.test.
soa: {{ mname: ns1.p.test., rname: hostmaster.p.test. }}
ns: [ns1.p.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
checks:
  slow: {{ exec: {{ command: [/bin/sh, -c, 'echo + >> {log}; /bin/sleep 3; echo - >> {log}'] }}, interval: 30s, timeout: 10s }}
pools:
  many: {{ checks: [slow], members: [{}] }}
names:
  many: {{ pool: many }}
",
            members.join(", "),
            log = log.display()
        ),
    )
    .unwrap();
    let _s = Server::start(d.path(), &[]);
    // Wait for the first round to finish: 300 starts and 300 ends.
    let text = eventually(
        Duration::from_secs(30),
        "the first round never finished",
        || {
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            (t.lines().filter(|l| *l == "-").count() >= 300).then_some(t)
        },
    );
    let (mut running, mut most) = (0i64, 0i64);
    for l in text.lines() {
        running += if l == "+" { 1 } else { -1 };
        most = most.max(running);
    }
    assert!(most <= 256, "{most} probes ran at once");
    assert!(
        most >= 128,
        "only {most} at once: the test did not load the cap"
    );
}

#[test]
fn a_flood_of_probe_reports_does_not_starve_the_api_or_queries() {
    // 400 members refused at once, probed every 100 ms: ~4000 reports a second into the writer.
    let d = tempfile::tempdir().unwrap();
    let members: Vec<String> = (0..400u32)
        .map(|i| format!("{{ address: 127.0.{}.{} }}", 96 + i / 200, 1 + i % 200))
        .collect();
    std::fs::create_dir_all(d.path().join("zones")).unwrap();
    std::fs::write(
        d.path().join("zones/f.yaml"),
        format!(
            "zone: f.test.
soa: {{ mname: ns1.f.test., rname: hostmaster.f.test. }}
ns: [ns1.f.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
checks:
  port: {{ tcp: {{ port: 9 }}, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }}
pools:
  many: {{ checks: [port], members: [{}] }}
names:
  many: {{ pool: many }}
",
            members.join(", ")
        ),
    )
    .unwrap();
    let s = Server::start(d.path(), &[]);
    s.wait_log("ready: the first probe round has finished", 10);
    let probes = || -> f64 {
        let (_, metrics) = s.http("GET", "/metrics", "", None);
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("gslbd_probe_duration_seconds_count{check=\"port\"} ")?
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    // API calls, TCP and UDP queries while the reports flood in: at least 10 rounds, and on
    // until 2,000 probes have reported (a fast build gets through 10 rounds in 0.2 s).
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for i in 0..200 {
        if i >= 10 && (probes() >= 2000.0 || started.elapsed() > Duration::from_secs(10)) {
            break;
        }
        let t = Instant::now();
        let (code, body) = s.http("GET", "/v1/status", "", None);
        assert_eq!(code, 200);
        assert!(body.contains("127.0.97.200"));
        let member = format!("127.0.96.{}", 1 + i % 100);
        assert_eq!(
            s.http("POST", &format!("/v1/members/{member}/drain"), "", None)
                .0,
            200
        );
        slowest = slowest.max(t.elapsed());
        let mut c = s.tcp_connect();
        tcp_send(&mut c, &Ask::new("ns1.f.test.", "A").bytes());
        assert!(tcp_recv(&mut c).is_some());
        assert!(s.udp(&Ask::new("many.f.test.", "A")).answers.len() == 2);
    }
    assert!(
        slowest < Duration::from_secs(2),
        "an API call took {slowest:?}"
    );
    // The probes really were flooding in.
    let probes = probes();
    eprintln!("flood: {probes} probes so far; slowest API call {slowest:?}");
    assert!(probes >= 2000.0, "only {probes} probes");
}

/// Whether the running kernel is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

/// (thread name, nice value) of every thread of a process, from /proc.
fn thread_nices(pid: i32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(t.unwrap().path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // After "pid (comm) ": state is field 3, nice field 19.
        if let Some(nice) = fields.get(16).and_then(|n| n.parse().ok()) {
            out.push((stat[open + 1..close].to_string(), nice));
        }
    }
    out
}

#[test]
fn probers_run_below_the_priority_of_queries() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), "");
    let marker = d.path().join("nice.txt");
    let mut zone = std::fs::read_to_string(d.path().join("zones/l.yaml")).unwrap();
    zone.push_str(&format!(
        "checks:
  own-nice: {{ exec: {{ command: [/bin/sh, -c, 'nice > {}'] }}, interval: 1s, timeout: 900ms }}
pools:
  p: {{ checks: [own-nice], members: [{{ address: 127.0.0.1 }}] }}
names:
  p: {{ pool: p }}
",
        marker.display()
    ));
    std::fs::write(d.path().join("zones/l.yaml"), zone).unwrap();
    let s = Server::start(d.path(), &[]);
    eventually(Duration::from_secs(10), "the exec check never ran", || {
        (marker.exists() && !std::fs::read_to_string(&marker).unwrap().trim().is_empty())
            .then_some(())
    });
    let threads = thread_nices(s.pid());
    let probers: Vec<_> = threads
        .iter()
        .filter(|(n, _)| n.starts_with("gslbd-probe"))
        .collect();
    let udp: Vec<_> = threads
        .iter()
        .filter(|(n, _)| n.starts_with("udp-"))
        .collect();
    assert!(!probers.is_empty() && !udp.is_empty(), "{threads:?}");
    // Ten steps below whatever priority gslbd was started with (0 normally).
    let base = udp[0].1;
    assert!(udp.iter().all(|(_, nice)| *nice == base), "{threads:?}");
    let lowered = (base + 10).min(19);
    assert!(
        probers.iter().all(|(_, nice)| *nice == lowered),
        "{threads:?}"
    );
    // An exec check inherits the probers' priority.
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        lowered.to_string()
    );
    // On kernels with custom EEVDF slices (6.12+), UDP threads ask for the shortest one, so a
    // query preempts a running prober at once.
    if kernel_at_least(6, 12) {
        for t in std::fs::read_dir(format!("/proc/{}/task", s.pid())).unwrap() {
            let t = t.unwrap().path();
            let comm = std::fs::read_to_string(t.join("comm")).unwrap_or_default();
            let sched = std::fs::read_to_string(t.join("sched")).unwrap_or_default();
            let slice = sched
                .lines()
                .find(|l| l.starts_with("se.slice"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string());
            // (se.slice is only shown by kernels built with scheduler debugging.)
            if let (true, Some(slice)) = (comm.starts_with("udp-"), slice) {
                assert_eq!(slice, "100000", "{comm}: {sched}");
            }
        }
    }
    // Queries are answered meanwhile.
    assert_eq!(
        common::addresses(&s.udp(&Ask::new("p.l.test.", "A"))),
        ["127.0.0.1"]
    );
}
