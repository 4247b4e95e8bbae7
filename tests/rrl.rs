//! Response rate limiting through real sockets: a flood from one /24 is held to its rate, with
//! every second limited answer sent truncated (slip) so resolvers can retry over TCP; another
//! prefix, and TCP, are unaffected; loopback listeners are exempt unless asked. Buckets are per
//! prefix and response class (NSD, Knot): a busy resolver asking for many names is not limited.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Ask, Server, tcp_recv, tcp_send};
use hickory_proto::op::Message;

fn setup(dir: &Path, rrl: &str) {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(
        dir.join("zones/r.yaml"),
        "zone: r.test.
soa: { mname: ns1.r.test., rname: hostmaster.r.test. }
ns: [ns1.r.test.]
records:
  ns1: { A: [192.0.2.53] }
  www: { A: [192.0.2.1] }
"
        .to_string()
            + &(0..50)
                .map(|i| format!("  n{i}.many: {{ A: [192.0.2.2] }}\n"))
                .collect::<String>(),
    )
    .unwrap();
    std::fs::write(dir.join("gslbd.yaml"), rrl).unwrap();
}

/// Send `n` queries from `source` as fast as possible, then collect replies for a moment:
/// (full answers, truncated answers).
fn flood(server: std::net::SocketAddr, source: &str, n: u16) -> (usize, usize) {
    let sock = UdpSocket::bind((source, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for id in 0..n {
        let mut q = Ask::new("www.r.test.", "A");
        q.id = id;
        sock.send_to(&q.bytes(), server).unwrap();
    }
    let (mut full, mut tc) = (0, 0);
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let Ok((len, _)) = sock.recv_from(&mut buf) else {
            break;
        };
        let m = Message::from_vec(&buf[..len]).unwrap();
        if m.metadata.truncation {
            assert!(m.answers.is_empty(), "a slip carries no records");
            assert_eq!(m.queries.len(), 1, "a slip keeps the question");
            tc += 1;
        } else {
            assert_eq!(m.answers.len(), 1);
            full += 1;
        }
    }
    (full, tc)
}

#[test]
fn a_flooding_prefix_is_limited_with_slip_and_others_are_not() {
    let d = tempfile::tempdir().unwrap();
    setup(
        d.path(),
        "rrl: { responses_per_second: 10, slip: 2, on_loopback: true }\n",
    );
    let s = Server::start(d.path(), &[]);
    assert!(
        s.log().contains("response rate limiting on 127.0.0.1:"),
        "{}",
        s.log()
    );
    let server = s.addrs()[0];

    let (full, tc) = flood(server, "127.0.70.1", 200);
    // The burst (10) plus what the rate refills while the flood lasts.
    assert!((10..=14).contains(&full), "{full} full answers");
    // Every second limited answer slips: about (200 - full) / 2.
    let limited = 200 - full;
    assert!(
        tc.abs_diff(limited / 2) <= 2,
        "{tc} truncated of {limited} limited"
    );

    // Another /24 is untouched, even now.
    let (full, tc) = flood(server, "127.0.71.1", 8);
    assert_eq!((full, tc), (8, 0));
    // TCP is never limited: the retry a slip asks for gets the whole answer.
    let mut c = s.tcp_connect();
    tcp_send(&mut c, &Ask::new("www.r.test.", "A").bytes());
    let m = Message::from_vec(&tcp_recv(&mut c).unwrap()).unwrap();
    assert_eq!(m.answers.len(), 1);

    // The limited answers are counted.
    let (_, metrics) = s.http("GET", "/metrics", "", None);
    let count = |action: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("gslbd_rrl_limited_total{{action=\"{action}\"}} "))?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    assert!(count("slip") >= 90 && count("drop") >= 90, "{metrics}");

    // After a second the prefix has its rate again.
    std::thread::sleep(Duration::from_millis(1100));
    let (full, _) = flood(server, "127.0.70.9", 5);
    assert_eq!(full, 5);
}

#[test]
fn loopback_listeners_are_exempt_by_default() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), "rrl: { responses_per_second: 5 }\n");
    let s = Server::start(d.path(), &[]);
    assert!(
        !s.log().contains("response rate limiting on"),
        "{}",
        s.log()
    );
    assert_eq!(flood(s.addrs()[0], "127.0.72.1", 100), (100, 0));
}

#[test]
fn bad_rrl_settings_are_refused_with_their_place() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), "rrl:\n  slip: -1\n  ipv4_prefix: 33\n");
    let (code, err) = common::check_in(d.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("gslbd.yaml:2:9: rrl.slip: -1 is not in 0..=100"),
        "{err}"
    );
    assert!(
        err.contains("gslbd.yaml:3:16: rrl.ipv4_prefix: 33 is not in 0..=32"),
        "{err}"
    );
}

/// Send `per_second` queries a second for `secs` seconds from `source`, cycling over `names`
/// (`(name, type)`), while a second thread collects the replies until a second after the last
/// query: (queries sent, full answers, truncated answers).
fn paced(
    server: std::net::SocketAddr,
    source: &str,
    names: &[(String, &'static str)],
    per_second: u32,
    secs: u32,
) -> (usize, usize, usize) {
    let sock = UdpSocket::bind((source, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let rx = sock.try_clone().unwrap();
    let done = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    let sender_done = done.clone();
    let collector = std::thread::spawn(move || {
        let (mut full, mut tc) = (0, 0);
        let mut buf = [0u8; 1500];
        // Bounded: the sender runs `secs` seconds; then one more second for stragglers.
        let hard_stop = Instant::now() + Duration::from_secs(u64::from(secs) + 20);
        while Instant::now() < hard_stop {
            let finished = *done.lock().unwrap();
            if finished.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
                break;
            }
            let Ok((len, _)) = rx.recv_from(&mut buf) else {
                continue;
            };
            let m = Message::from_vec(&buf[..len]).unwrap();
            if m.metadata.truncation {
                assert!(m.answers.is_empty(), "a slip carries no records");
                tc += 1;
            } else {
                full += 1;
            }
        }
        (full, tc)
    });
    // Ticks of 10 ms, each sending its share.
    let per_tick = (per_second / 100).max(1) as usize;
    let start = Instant::now();
    let mut sent = 0;
    for tick in 0..(secs * 100) {
        for _ in 0..per_tick {
            let (name, rtype) = &names[sent % names.len()];
            let mut q = Ask::new(name, rtype);
            q.id = sent as u16;
            sock.send_to(&q.bytes(), server).unwrap();
            sent += 1;
        }
        let next = start + Duration::from_millis(u64::from(tick + 1) * 10);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    *sender_done.lock().unwrap() = Some(Instant::now());
    let (full, tc) = collector.join().unwrap();
    (sent, full, tc)
}

/// Names asked for their A records.
fn a(names: impl IntoIterator<Item = String>) -> Vec<(String, &'static str)> {
    names.into_iter().map(|n| (n, "A")).collect()
}

/// The defaults (200/s, slip 2) with a busy resolver: 500 queries a second over 50 names for
/// 3 s are all answered; one name flooded at 2,000 a second is limited, with slips; another
/// /24 asking for that very name meanwhile is not.
#[test]
fn a_busy_resolver_is_not_limited_but_a_flooded_name_is() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), "rrl: { on_loopback: true }\n");
    let s = Server::start(d.path(), &[]);
    let server = s.addrs()[0];

    let names = a((0..50).map(|i| format!("n{i}.many.r.test.")));
    let (sent, full, tc) = paced(server, "127.0.73.1", &names, 500, 3);
    eprintln!("50 names: {sent} sent, {full} full, {tc} slips");
    // Never limited: no slip at all (every second limited answer would be one); a datagram
    // lost on a busy machine is not a limit.
    assert_eq!(tc, 0, "{full} of {sent} queries over 50 names in full");
    assert!(full >= sent * 99 / 100, "{full} of {sent} answered");

    let www = a(["www.r.test.".to_string()]);
    let flood = std::thread::spawn(move || paced(server, "127.0.74.1", &www, 2000, 3));
    let www = a(["www.r.test.".to_string()]);
    let (other_sent, other_full, other_tc) = paced(server, "127.0.75.1", &www, 100, 3);
    let (sent, full, tc) = flood.join().unwrap();
    eprintln!(
        "flood: {sent} sent, {full} full, {tc} slips; other /24: {other_sent} sent, {other_full} full"
    );
    // The burst (200) and 200/s for 3 s: about 800 of 6,000, allowing for a slow machine.
    assert!(full <= 1500, "{full} of {sent} answered in full");
    assert!(
        tc >= (sent - full) / 2 - 100,
        "{tc} slips of {} limited",
        sent - full
    );
    assert_eq!(other_tc, 0, "another /24 is not limited");
    assert!(
        other_full >= other_sent * 99 / 100,
        "{other_full} of {other_sent}"
    );
}

/// A spoofed flood of random names with random types is one class (NXDOMAIN, keyed by the
/// zone): random types do not spread it over many buckets.
#[test]
fn random_names_and_types_are_one_bucket() {
    let d = tempfile::tempdir().unwrap();
    setup(d.path(), "rrl: { on_loopback: true }\n");
    let s = Server::start(d.path(), &[]);
    let mut rng = fastrand::Rng::with_seed(7);
    let types = [
        "A",
        "AAAA",
        "MX",
        "TXT",
        "SRV",
        "CAA",
        "NS",
        "PTR",
        "HINFO",
        "TYPE65000",
    ];
    let names: Vec<(String, &'static str)> = (0..2000)
        .map(|_| {
            (
                format!("x{}.r.test.", rng.u32(..)),
                types[rng.usize(..types.len())],
            )
        })
        .collect();
    let (sent, full, tc) = paced(s.addrs()[0], "127.0.76.1", &names, 2000, 1);
    eprintln!("random names: {sent} sent, {full} full, {tc} slips");
    // The burst (200) and 200/s for 1 s: about 400 of 2,000.
    assert!(full <= 900, "{full} of {sent} answered in full");
    assert!(tc >= 300, "{tc} slips");
}
