//! AF_XDP (`xdp:`), for real: each test makes a network namespace for the client and a veth
//! pair into it, runs gslbd with XDP on the host's end, and asks over the wire. Answers must be
//! byte for byte what the socket path gives; what is not a UDP query to our addresses must
//! still reach the kernel; a SIGKILL leaves no program behind.
//!
//! Needs root (CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN for namespaces) and `ip` (iproute2).
//! Without them each test says so and passes, unless GSLBD_XDP_REQUIRED=1 (as `.ci/run`
//! sets), where it fails.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cases::{cases, hostile_packets};
use common::systemd::{
    Groups, address_families, blocked, calls_of, child_of, family_of, installed,
};
use common::{Ask, Server, eventually, poll, root, tcp_recv, tcp_send, udp_exchange};

/// Whether XDP can be tried here; if not and it must, fail.
fn available() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && ip {
        return true;
    }
    let why = if root {
        "no `ip` command (iproute2)"
    } else {
        "not root"
    };
    assert!(
        std::env::var("GSLBD_XDP_REQUIRED").is_err(),
        "GSLBD_XDP_REQUIRED is set, but XDP cannot be tested: {why}"
    );
    eprintln!("skipped: {why}");
    false
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client namespace and a veth pair: the host's end (`host`) with `v4`/`v6` and
/// `other_v4` (an address XDP does not take), the client's end with `client_v4`/`client_v6`.
/// Removed when dropped.
struct Net {
    ns: String,
    host: String,
    v4: IpAddr,
    v6: IpAddr,
    other_v4: IpAddr,
}

impl Net {
    /// Net number `n` (1..=250) of this test process: 198.18.n.0/24 and 2001:2:0:n::/64
    /// (benchmarking ranges, RFC 2544 and 5180).
    fn new(n: u8) -> Net {
        Net::with_queues(n, 1)
    }

    /// As `new`, with `queues` receive and transmit queues on each end.
    fn with_queues(n: u8, queues: u8) -> Net {
        let pid = std::process::id() % 100_000;
        let net = Net {
            ns: format!("gslbd-xdp-{pid}-{n}"),
            host: format!("gx{pid}h{n}"),
            v4: format!("198.18.{n}.1").parse().unwrap(),
            v6: format!("2001:2:0:{n}::1").parse().unwrap(),
            other_v4: format!("198.18.{n}.3").parse().unwrap(),
        };
        let peer = format!("gx{pid}c{n}");
        ip(&["netns", "add", &net.ns]);
        let q = queues.to_string();
        ip(&[
            "link",
            "add",
            &net.host,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ]);
        ip(&["link", "set", &peer, "netns", &net.ns]);
        for a in [format!("198.18.{n}.1/24"), format!("198.18.{n}.3/24")] {
            ip(&["addr", "add", &a, "dev", &net.host]);
        }
        ip(&[
            "addr",
            "add",
            &format!("2001:2:0:{n}::1/64"),
            "dev",
            &net.host,
            "nodad",
        ]);
        ip(&["link", "set", &net.host, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &net.ns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("198.18.{n}.2/24"), "dev", &peer]);
        inside(&[
            "addr",
            "add",
            &format!("2001:2:0:{n}::2/64"),
            "dev",
            &peer,
            "nodad",
        ]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        net
    }

    /// A UDP socket in the client's namespace (a socket stays in the namespace it was made in).
    fn client_udp(&self, v6: bool) -> UdpSocket {
        let bind = if v6 { "[::]:0" } else { "0.0.0.0:0" };
        self.inside(move || UdpSocket::bind(bind).unwrap())
    }

    /// A TCP connection from the client's namespace.
    fn client_tcp(&self, to: SocketAddr) -> TcpStream {
        let s =
            self.inside(move || TcpStream::connect_timeout(&to, Duration::from_secs(3)).unwrap());
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Run `f` on a thread that entered the client's namespace.
    fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on a namespace file we opened; it changes only this thread.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }

    /// The XDP program attached to the host's end, as `ip link` shows it.
    fn attached(&self) -> Option<String> {
        let out = Command::new("ip")
            .args(["-d", "link", "show", "dev", &self.host])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .find(|l| l.contains("prog/xdp"))
            .map(|l| l.trim().to_string())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Removing the namespace removes the peer, and with it the host's end.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// gslbd serving `zones` through sockets on loopback (its `addr`) and on the veth's
/// addresses, with XDP on the host's end for `v4` and `v6`. `xdp_extra`: more keys of `xdp:`;
/// `more`: further top-level settings (`rrl:` at least).
fn start(net: &Net, zones: &Path, xdp_extra: &str, more: &str) -> (Server, tempfile::TempDir) {
    let (d, args) = configure(net, zones, xdp_extra, more);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start(d.path(), &args);
    (s, d)
}

/// A working directory with the gslbd.yaml `start` describes, and the arguments of
/// `gslbd serve` for it.
fn configure(
    net: &Net,
    zones: &Path,
    xdp_extra: &str,
    more: &str,
) -> (tempfile::TempDir, Vec<String>) {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("gslbd.yaml"),
        format!(
            "state_dir: state
zones_dir: {zones}
{more}
xdp: {{ interface: {host}, addresses: [{v4}, \"{v6}\"]{xdp_extra} }}
",
            zones = zones.display(),
            v4 = net.v4,
            v6 = net.v6,
            host = net.host,
        ),
    )
    .unwrap();
    let args = [
        "--config".to_string(),
        "gslbd.yaml".to_string(),
        "--listen".to_string(),
        format!("{}:53", net.v4),
        "--listen".to_string(),
        format!("[{}]:53", net.v6),
        "--listen".to_string(),
        format!("{}:53", net.other_v4),
    ];
    (d, args.to_vec())
}

fn exchange(sock: &UdpSocket, to: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(packet, to).unwrap();
    let mut buf = [0u8; 4096];
    let (n, from) = sock.recv_from(&mut buf).ok()?;
    assert_eq!(from, to, "the reply comes from the address asked");
    Some(buf[..n].to_vec())
}

/// The addresses of a reply's answer, sorted (round robin varies their order).
fn sorted_addresses(reply: &[u8]) -> Vec<String> {
    let mut a = common::addresses(&hickory_proto::op::Message::from_vec(reply).unwrap());
    a.sort();
    a
}

fn metric(s: &Server, result: &str) -> u64 {
    let (_, body) = s.http("GET", "/metrics", "", None);
    let needle = format!("result=\"{result}\"}} ");
    body.lines()
        .filter(|l| l.starts_with("gslbd_xdp_packets_total"))
        .find_map(|l| l.split(&needle).nth(1)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no gslbd_xdp_packets_total result={result} in\n{body}"))
}

/// Start on `net`, and wait until XDP runs (the log says so, with the mode).
fn start_xdp(net: &Net, zones: &Path, more: &str) -> (Server, tempfile::TempDir) {
    let (s, d) = start(net, zones, "", more);
    s.wait_log("xdp: UDP port 53 of", 10);
    assert!(
        net.attached().is_some_and(|l| l.contains("gslbd_xdp")),
        "{:?}",
        net.attached()
    );
    (s, d)
}

/// A temporary zones directory with the authority fixtures and the pools zone.
fn fixture_zones() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in [
        "authority/auth.test.yaml",
        "authority/child.auth.test.yaml",
        "pools/p.test.yaml",
    ] {
        let from = root().join("tests/zones").join(f);
        std::fs::copy(&from, d.path().join(from.file_name().unwrap())).unwrap();
    }
    d
}

const NO_RRL: &str = "rrl: { responses_per_second: 0 }";

#[test]
fn authority_cases_and_hostile_packets_answer_as_over_sockets() {
    if !available() {
        return;
    }
    let net = Net::new(1);
    let zones = fixture_zones();
    let (s, _d) = start_xdp(&net, zones.path(), NO_RRL);
    let (c4, c6) = (net.client_udp(false), net.client_udp(true));
    let (x4, x6) = (SocketAddr::new(net.v4, 53), SocketAddr::new(net.v6, 53));
    let wait = Duration::from_secs(2);
    let mut compared = 0;
    for c in cases().iter().filter(|c| c.udp) {
        let q = c.ask.bytes();
        let over_sockets = udp_exchange(s.addr, &q, wait)
            .unwrap_or_else(|| panic!("authority.cases:{}: no answer over sockets", c.line));
        for (sock, to) in [(&c4, x4), (&c6, x6)] {
            let over_xdp = exchange(sock, to, &q, wait)
                .unwrap_or_else(|| panic!("authority.cases:{}: no answer from {to}", c.line));
            assert_eq!(over_xdp, over_sockets, "authority.cases:{}: {to}", c.line);
            compared += 1;
        }
    }
    assert!(compared > 60, "{compared}");
    let redirected = metric(&s, "redirected");
    assert!(
        redirected >= compared,
        "{redirected} redirected of {compared}"
    );
    assert_eq!(metric(&s, "answered"), redirected);

    // Hostile packets: the same reply or the same silence. The first ones are made by hand
    // and asked one at a time; the random ones go in bursts and the replies are compared as
    // sorted lists (the order of a burst's replies is not fixed).
    let packets = hostile_packets();
    let (made, random): (Vec<_>, Vec<_>) =
        packets.iter().partition(|(w, _)| !w.starts_with("random"));
    let short = Duration::from_millis(300);
    for (what, p) in &made {
        let over_sockets = udp_exchange(s.addr, p, short);
        let over_xdp = exchange(&c4, x4, p, short);
        assert_eq!(over_xdp, over_sockets, "{what}");
    }
    let burst = |sock: &UdpSocket, to: SocketAddr, chunk: &[&(String, Vec<u8>)]| {
        for (_, p) in chunk {
            sock.send_to(p, to).unwrap();
        }
        sock.set_read_timeout(Some(short)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got.sort();
        got
    };
    let loopback = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut replies = 0;
    for chunk in random.chunks(250) {
        let over_sockets = burst(&loopback, s.addr, chunk);
        let over_xdp = burst(&c4, x4, chunk);
        assert_eq!(over_xdp.len(), over_sockets.len());
        assert_eq!(over_xdp, over_sockets);
        replies += over_xdp.len();
    }
    assert!(
        replies > 100,
        "FORMERR for the random packets with a header: {replies}"
    );
    assert_eq!(metric(&s, "dropped"), 0);
    // Still serving.
    let q = Ask::new("www.auth.test.", "A").bytes();
    assert!(exchange(&c4, x4, &q, wait).is_some());
    assert_eq!(s.log().matches(" ERROR ").count(), 0, "{}", s.log());
}

#[test]
fn ecs_and_pools_answer_as_over_sockets() {
    if !available() {
        return;
    }
    let net = Net::new(2);
    let zones = fixture_zones();
    let (s, _d) = start_xdp(&net, zones.path(), NO_RRL);
    let (c4, c6) = (net.client_udp(false), net.client_udp(true));
    let (x4, x6) = (SocketAddr::new(net.v4, 53), SocketAddr::new(net.v6, 53));
    let wait = Duration::from_secs(2);
    // Deterministic for a given client subnet: topology by ECS, sticky, failover.
    for (name, subnet) in [
        ("geo.p.test.", "10.1.2.0"),
        ("geo.p.test.", "10.2.3.0"),
        ("geo.p.test.", "2001:db8:2::"),
        ("sticky.p.test.", "10.9.9.0"),
        ("sticky.p.test.", "10.9.10.0"),
        ("failover.p.test.", "10.1.2.0"),
    ] {
        let prefix = if subnet.contains(':') { 56 } else { 24 };
        let q = Ask::new(name, "A").ecs(subnet, prefix).bytes();
        let over_sockets = udp_exchange(s.addr, &q, wait).unwrap();
        for (sock, to) in [(&c4, x4), (&c6, x6)] {
            let over_xdp = exchange(sock, to, &q, wait).unwrap();
            assert_eq!(over_xdp, over_sockets, "{name} from {subnet} via {to}");
        }
    }
    // Round robin: the same members, in any order.
    let q = Ask::new("rr.p.test.", "A").bytes();
    let got = sorted_addresses(&exchange(&c4, x4, &q, wait).unwrap());
    assert_eq!(got, ["192.0.2.1", "192.0.2.2"]);
    // Topology by the resolver's own address (no ECS): 198.18.2.2 is in no site: every member
    // of the pool, as over sockets from 127.0.0.1, also in no site.
    let q = Ask::new("geo.p.test.", "A").bytes();
    let over_xdp = exchange(&c4, x4, &q, wait).unwrap();
    let over_sockets = udp_exchange(s.addr, &q, wait).unwrap();
    assert_eq!(sorted_addresses(&over_xdp), sorted_addresses(&over_sockets));
}

/// `nearest` and `topology` on a database the test writes (common::geo's small world): over XDP
/// the same answers and ECS scopes as over the sockets.
#[test]
fn closest_by_geography_answers_as_over_sockets() {
    if !available() {
        return;
    }
    let net = Net::new(10);
    let zones = tempfile::tempdir().unwrap();
    std::fs::write(zones.path().join("geo.test.yaml"), common::geo::ZONE).unwrap();
    let (city, asn) = common::geo::world_files(zones.path());
    let more = format!("{NO_RRL}\n{}", common::geo::geoip_setting(&city, &asn));
    let (s, _d) = start_xdp(&net, zones.path(), &more);
    let (c4, c6) = (net.client_udp(false), net.client_udp(true));
    let (x4, x6) = (SocketAddr::new(net.v4, 53), SocketAddr::new(net.v6, 53));
    let wait = Duration::from_secs(2);
    let answered = metric(&s, "answered");
    // Germany by country, the US by continent, AS 4773 by ASN, Brazil by distance (iad), an
    // IPv6 network in Germany, and space the database does not know (every member).
    let mut asked = 0;
    for (name, subnet, prefix, want) in [
        ("near.geo.test.", "5.1.2.0", 24, "192.0.2.1"),
        ("near.geo.test.", "12.1.2.0", 24, "192.0.2.2"),
        ("near.geo.test.", "12.34.56.0", 24, "192.0.2.3"),
        ("near.geo.test.", "177.1.0.0", 24, "192.0.2.2"),
        ("near.geo.test.", "2001:db8:de:1::", 56, "192.0.2.1"),
        (
            "near.geo.test.",
            "192.168.1.0",
            24,
            "192.0.2.1 192.0.2.2 192.0.2.3",
        ),
        ("topo.geo.test.", "5.1.2.0", 24, "192.0.2.1"),
        ("topo.geo.test.", "12.1.2.0", 24, "192.0.2.2"),
    ] {
        let q = Ask::new(name, "A").ecs(subnet, prefix).bytes();
        let over_sockets = udp_exchange(s.addr, &q, wait).unwrap();
        let got = sorted_addresses(&over_sockets);
        assert_eq!(got.join(" "), want, "{name} from {subnet} over sockets");
        for (sock, to) in [(&c4, x4), (&c6, x6)] {
            let over_xdp = exchange(sock, to, &q, wait).unwrap();
            asked += 1;
            if want.contains(' ') {
                // round robin among every member: the same set, the same scope
                assert_eq!(
                    sorted_addresses(&over_xdp),
                    got,
                    "{name} from {subnet} via {to}"
                );
                let ecs =
                    |b: &[u8]| common::ecs_of(&hickory_proto::op::Message::from_vec(b).unwrap());
                assert_eq!(ecs(&over_xdp), ecs(&over_sockets), "{subnet} via {to}");
            } else {
                assert_eq!(over_xdp, over_sockets, "{name} from {subnet} via {to}");
            }
        }
    }
    assert!(
        metric(&s, "answered") >= answered + asked,
        "every geographic answer above came through XDP"
    );
}

#[test]
fn what_is_not_ours_reaches_the_kernel() {
    if !available() {
        return;
    }
    let net = Net::new(3);
    let zones = fixture_zones();
    let (s, _d) = start_xdp(&net, zones.path(), NO_RRL);
    let q = Ask::new("www.auth.test.", "A");
    let wait = Duration::from_secs(2);
    let (passed, redirected) = (metric(&s, "passed"), metric(&s, "redirected"));
    // TCP to the address XDP takes UDP for: the kernel's, answered by the TCP listener.
    for addr in [net.v4, net.v6] {
        let mut t = net.client_tcp(SocketAddr::new(addr, 53));
        tcp_send(&mut t, &q.bytes());
        let m =
            hickory_proto::op::Message::from_vec(&tcp_recv(&mut t).expect("a TCP answer")).unwrap();
        assert_eq!(m.answers.len(), 2, "over TCP to {addr}");
    }
    // UDP to an address of the same interface that XDP does not take: the sockets answer.
    let c4 = net.client_udp(false);
    let other = SocketAddr::new(net.other_v4, 53);
    assert!(exchange(&c4, other, &q.bytes(), wait).is_some());
    // UDP to another port of ours: the kernel says no one listens there (ICMP), no answer.
    let c = net.client_udp(false);
    assert!(
        exchange(
            &c,
            SocketAddr::new(net.v4, 5300),
            &q.bytes(),
            Duration::from_millis(300)
        )
        .is_none()
    );
    assert_eq!(
        metric(&s, "redirected"),
        redirected,
        "nothing of that went to XDP"
    );
    // TCP segments, ARP or ND, the UDP datagrams: all passed by the program.
    let now = metric(&s, "passed");
    assert!(now >= passed + 8, "passed {passed} -> {now}");
    // ICMP: ping from the client gets its echo reply.
    assert!(ping(&net, net.v4), "no echo reply from {}", net.v4);
}

/// An ICMP echo request from the client's namespace to `to`; whether the reply came back.
fn ping(net: &Net, to: IpAddr) -> bool {
    net.inside(move || {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut echo = [8u8, 0, 0, 0, 0x67, 0x78, 0, 1, b'g', b'x'];
        let sum: u32 = echo
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let folded = !(((sum & 0xffff) + (sum >> 16)) as u16);
        echo[2..4].copy_from_slice(&folded.to_be_bytes());
        s.send_to(&echo, &SocketAddr::new(to, 0).into()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 256];
            let Ok((n, _)) = s.recv_from(&mut buf) else {
                continue;
            };
            // SAFETY: recv_from initialised the first n bytes.
            let b: Vec<u8> = buf[..n]
                .iter()
                .map(|x| unsafe { x.assume_init() })
                .collect();
            // A raw socket gets the IP header too: the ICMP message starts after it.
            let icmp = &b[usize::from(b[0] & 0x0f) * 4..];
            if icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == [0x67, 0x78] {
                return true;
            }
        }
        false
    })
}

#[test]
fn rate_limiting_applies_over_xdp() {
    if !available() {
        return;
    }
    let net = Net::new(4);
    let zones = fixture_zones();
    let (s, _d) = start_xdp(
        &net,
        zones.path(),
        "rrl: { responses_per_second: 5, slip: 2 }",
    );
    let c4 = net.client_udp(false);
    let to = SocketAddr::new(net.v4, 53);
    let q = Ask::new("www.auth.test.", "A").bytes();
    for _ in 0..60 {
        c4.send_to(&q, to).unwrap();
    }
    c4.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = c4.recv_from(&mut buf) {
        let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
        if m.metadata.truncation {
            truncated += 1;
        } else {
            full += 1;
        }
    }
    // 5/s with a burst allowance: far fewer than 60 full answers; every 2nd limited one slips.
    assert!((1..=20).contains(&full), "{full} full answers");
    assert!(truncated >= 10, "{truncated} truncated");
    let (_, body) = s.http("GET", "/metrics", "", None);
    assert!(
        body.contains("gslbd_rrl_limited_total{action=\"slip\"}"),
        "{body}"
    );
}

#[test]
fn a_killed_gslbd_leaves_no_program_and_the_next_attaches() {
    if !available() {
        return;
    }
    let net = Net::new(5);
    let zones = fixture_zones();
    let (mut s, d) = start_xdp(&net, zones.path(), NO_RRL);
    // A second gslbd on the same interface finds the first one's program and leaves it be.
    let other = tempfile::tempdir().unwrap();
    let yaml = format!(
        "state_dir: state\nzones_dir: {}\nxdp: {{ interface: {}, addresses: [{}] }}\n",
        zones.path().display(),
        net.host,
        net.v4
    );
    std::fs::write(other.path().join("gslbd.yaml"), yaml).unwrap();
    let second = Server::start(other.path(), &["--config", "gslbd.yaml"]);
    second.wait_log("another XDP program is attached to it", 5);
    drop(second);
    let c4 = net.client_udp(false);
    let q = Ask::new("www.auth.test.", "A").bytes();
    let before = metric(&s, "answered");
    assert!(exchange(&c4, SocketAddr::new(net.v4, 53), &q, Duration::from_secs(2)).is_some());
    assert_eq!(
        metric(&s, "answered"),
        before + 1,
        "the first one's XDP still answers"
    );
    s.signal(libc::SIGKILL);
    assert!(s.wait_exit(5).is_some());
    // The program was attached through a bpf_link: the kernel took it off with the process.
    eventually(
        Duration::from_secs(5),
        "the program stayed attached",
        || net.attached().is_none().then_some(()),
    );
    drop(s);
    let args = [
        "--config",
        "gslbd.yaml",
        "--listen",
        &format!("{}:53", net.v4),
        "--listen",
        &format!("[{}]:53", net.v6),
    ];
    let s = Server::start(d.path(), &args);
    s.wait_log("xdp: UDP port 53 of", 10);
    assert!(exchange(&c4, SocketAddr::new(net.v4, 53), &q, Duration::from_secs(2)).is_some());
    assert!(metric(&s, "answered") >= 1);
    // A clean stop takes it off too.
    drop(s);
    assert_eq!(net.attached(), None);
}

/// A device without XDP in its driver: a bridge without ports (every kernel has bridges;
/// not every one has dummy devices).
struct NoNativeXdp(String);

impl NoNativeXdp {
    fn new() -> NoNativeXdp {
        let name = format!("gx{}b", std::process::id() % 100_000);
        ip(&["link", "add", &name, "type", "bridge"]);
        ip(&["addr", "add", "198.18.250.1/24", "dev", &name]);
        ip(&["link", "set", &name, "up"]);
        NoNativeXdp(name)
    }
}

impl Drop for NoNativeXdp {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

#[test]
fn where_xdp_cannot_run_it_says_why_and_the_sockets_serve() {
    if !available() {
        return;
    }
    let device = NoNativeXdp::new();
    let d = tempfile::tempdir().unwrap();
    let zones = fixture_zones();
    let run = |xdp: &str| {
        let yaml = format!(
            "state_dir: state\nzones_dir: {}\nxdp: {xdp}\n",
            zones.path().display()
        );
        std::fs::write(d.path().join("gslbd.yaml"), yaml).unwrap();
        let s = Server::start(d.path(), &["--config", "gslbd.yaml"]);
        let m = s.udp(&Ask::new("www.auth.test.", "A"));
        assert_eq!(m.answers.len(), 2, "the sockets answer");
        s
    };
    // Native on a device whose driver has no XDP: refused, with what to do instead.
    let s = run(&format!(
        "{{ interface: {}, addresses: [198.18.250.1], mode: native }}",
        device.0
    ));
    s.wait_log("xdp: not used on", 5);
    assert!(s.log().contains("mode: generic"), "{}", s.log());
    drop(s);
    // No such interface.
    let s = run("{ interface: gx-nonesuch, addresses: [198.18.250.1] }");
    s.wait_log("there is no network interface \"gx-nonesuch\"", 5);
    drop(s);
    // auto: generic, since native cannot.
    let s = run(&format!(
        "{{ interface: {}, addresses: [198.18.250.1] }}",
        device.0
    ));
    s.wait_log("(generic mode", 5);
    drop(s);
}

#[test]
fn the_committed_program_is_built_from_its_source() {
    let clang = Command::new("clang-14")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !clang {
        assert!(
            std::env::var("GSLBD_XDP_REQUIRED").is_err(),
            "GSLBD_XDP_REQUIRED is set, but clang-14 is missing to check bpf/gslbd_xdp.o"
        );
        eprintln!("skipped: no clang-14");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("gslbd_xdp.o");
    let status = Command::new(root().join("bpf/build.sh"))
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let built = std::fs::read(&out).unwrap();
    let committed = std::fs::read(root().join("bpf/gslbd_xdp.o")).unwrap();
    assert!(
        built == committed,
        "bpf/gslbd_xdp.o is not what bpf/gslbd_xdp.c builds to: run bpf/build.sh and commit it"
    );
}

#[test]
fn set_up_as_root_it_answers_on_as_the_configured_user() {
    if !available() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let net = Net::new(6);
    let zones = fixture_zones();
    let d = tempfile::tempdir().unwrap();
    // nobody reads the zones and writes state.
    for p in [zones.path(), d.path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let yaml = format!(
        "user: nobody\nstate_dir: state\nzones_dir: {}\nxdp: {{ interface: {}, addresses: [{}] }}\n",
        zones.path().display(),
        net.host,
        net.v4
    );
    std::fs::write(d.path().join("gslbd.yaml"), yaml).unwrap();
    let s = Server::start(d.path(), &["--config", "gslbd.yaml"]);
    s.wait_log("xdp: UDP port 53 of", 10);
    s.wait_log("running as user nobody", 10);
    let c4 = net.client_udp(false);
    let q = Ask::new("www.auth.test.", "A").bytes();
    for _ in 0..3 {
        assert!(exchange(&c4, SocketAddr::new(net.v4, 53), &q, Duration::from_secs(2)).is_some());
    }
    // Its threads answered after root was gone, and the program's counters still read.
    assert_eq!(metric(&s, "answered"), 3);
    assert!(metric(&s, "redirected") >= 3);
}

#[test]
fn every_receive_queue_gets_a_socket_and_answers() {
    if !available() {
        return;
    }
    let net = Net::with_queues(7, 2);
    let zones = fixture_zones();
    let (s, _d) = start_xdp(&net, zones.path(), NO_RRL);
    assert!(s.log().contains("2 queue(s)"), "{}", s.log());
    // Many flows (a socket each, so a source port each): the sender's queue choice spreads
    // them over both queues; every one is answered through XDP.
    let q = Ask::new("www.auth.test.", "A").bytes();
    let to = SocketAddr::new(net.v4, 53);
    for _ in 0..40 {
        let c = net.client_udp(false);
        assert!(exchange(&c, to, &q, Duration::from_secs(2)).is_some());
    }
    assert_eq!(metric(&s, "answered"), 40);
    let (_, body) = s.http("GET", "/metrics", "", None);
    for queue in ["0", "1"] {
        let n: u64 = body
            .lines()
            .filter(|l| l.starts_with("gslbd_xdp_queue_answered_total"))
            .find(|l| l.contains(&format!("queue=\"{queue}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no count for queue {queue} in\n{body}"));
        assert!(n > 0, "queue {queue} answered nothing:\n{body}");
    }
    // Both queues' threads exist (named after the interface and queue).
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", s.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .filter(|c| c.starts_with("xdp-"))
        .collect();
    assert_eq!(threads.len(), 2, "{threads:?}");
}

#[test]
fn a_burst_is_answered_at_once() {
    if !available() {
        return;
    }
    let net = Net::new(8);
    let zones = fixture_zones();
    let (s, _d) = start_xdp(&net, zones.path(), NO_RRL);
    let c4 = net.client_udp(false);
    let to = SocketAddr::new(net.v4, 53);
    // 1000 queries wait in the rx ring while gslbd is stopped, and come in rounds of 64 when
    // it goes on: more than the kernel transmits per kick in copy mode (32). Every reply must
    // leave promptly, not 32 per idle wake-up (up to 200 ms apart).
    let mut q = Ask::new("www.auth.test.", "A").bytes();
    let burst = 1000u16;
    let big: libc::c_int = 8 << 20;
    // SAFETY: setsockopt on our socket with a c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&c4),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&big as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    s.signal(libc::SIGSTOP);
    for id in 0..burst {
        q[0..2].copy_from_slice(&id.to_be_bytes());
        c4.send_to(&q, to).unwrap();
    }
    // the kernel puts them in the rx ring at once (microseconds); a generous wait
    std::thread::sleep(Duration::from_millis(300));
    s.signal(libc::SIGCONT);
    let started = std::time::Instant::now();
    c4.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut buf = [0u8; 2048];
    while seen.len() < usize::from(burst) {
        let Ok((n, _)) = c4.recv_from(&mut buf) else {
            break;
        };
        assert!(n > 2);
        seen.insert(u16::from_be_bytes([buf[0], buf[1]]));
    }
    let took = started.elapsed();
    eprintln!("{} of {burst} answered in {took:?}", seen.len());
    assert_eq!(seen.len(), usize::from(burst), "after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(metric(&s, "dropped"), 0);
}

/// contrib/gslbd-xdp.conf, the drop-in for XDP, on contrib/gslbd.service: every system call
/// and socket family of a run that answers through XDP passes the two together (systemd reads
/// a drop-in's list settings after the unit's, so the unit's text followed by the drop-in's
/// merges as systemd merges them), while the unit alone would refuse what XDP needs.
#[test]
fn the_systemd_drop_in_lets_every_call_of_an_xdp_run_through() {
    if !available() || !installed(&["strace", "systemd-analyze"], "GSLBD_XDP_REQUIRED") {
        return;
    }
    let unit = std::fs::read_to_string(root().join("contrib/gslbd.service")).unwrap();
    let drop_in = std::fs::read_to_string(root().join("contrib/gslbd-xdp.conf")).unwrap();
    let both = format!("{unit}\n{drop_in}");
    let groups = Groups::load();
    let net = Net::new(9);
    let zones = fixture_zones();
    let (d, args) = configure(&net, zones.path(), "", NO_RRL);
    let (trace, log) = (d.path().join("xdp.trace"), d.path().join("gslbd.log"));
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .arg(common::BIN)
        .arg("serve")
        .args(&args)
        .current_dir(d.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("run strace");
    let pid = eventually(
        Duration::from_secs(5),
        "gslbd's PID (strace's child)",
        || child_of(strace.id(), "gslbd"),
    );
    let stop = |sig| {
        // SAFETY: a signal to gslbd, the child of our own strace child.
        unsafe { libc::kill(pid, sig) };
    };
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let ran = poll(Duration::from_secs(20), Duration::from_millis(50), || {
        log_text().contains("xdp: UDP port 53 of").then_some(())
    });
    let answered = ran.and_then(|()| {
        let c4 = net.client_udp(false);
        let q = Ask::new("www.auth.test.", "A").bytes();
        exchange(&c4, SocketAddr::new(net.v4, 53), &q, Duration::from_secs(5))
    });
    stop(libc::SIGTERM);
    let ended = poll(Duration::from_secs(20), Duration::from_millis(50), || {
        strace.try_wait().unwrap()
    });
    if ended.is_none() {
        stop(libc::SIGKILL);
        let _ = strace.kill();
        let _ = strace.wait();
    }
    assert!(
        ran.is_some() && answered.is_some(),
        "gslbd under strace did not answer through XDP; log:\n{}",
        log_text()
    );
    assert!(
        ended.is_some(),
        "gslbd did not stop on SIGTERM; log:\n{}",
        log_text()
    );

    let text = std::fs::read_to_string(&trace).unwrap();
    let calls = calls_of(&text);
    let names: BTreeSet<&str> = calls.iter().map(|(name, _)| *name).collect();
    let families: BTreeSet<String> = calls
        .iter()
        .filter_map(|(name, call)| family_of(name, call))
        .collect();
    assert!(
        names.contains("bpf") && families.contains("AF_XDP"),
        "no bpf(2) or AF_XDP socket recorded: {names:?} {families:?}"
    );
    let refused = blocked(&both, &groups, names.iter().copied());
    assert!(
        refused.is_empty(),
        "the unit with contrib/gslbd-xdp.conf would block {refused:?}"
    );
    assert!(
        blocked(&unit, &groups, ["bpf"]) == ["bpf"],
        "the unit alone lets bpf(2) through: the drop-in's SystemCallFilter= is not needed"
    );
    let af = |text: &str| address_families(text).expect("a RestrictAddressFamilies= setting");
    let (af_unit, af_both) = (af(&unit), af(&both));
    let refused: Vec<&String> = families.iter().filter(|f| !af_both.allows(f)).collect();
    assert!(
        refused.is_empty(),
        "the unit with contrib/gslbd-xdp.conf refuses sockets of {refused:?}"
    );
    assert!(!af_unit.allows("AF_XDP"), "the unit alone allows AF_XDP");
}
