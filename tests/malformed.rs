//! Hostile input: garbage, truncated headers, compression loops, oversized labels and broken TCP
//! framing never stop the server; a good query afterwards is still answered.

mod common;

use std::io::Write;
use std::time::Duration;

use common::cases::hostile_packets;
use common::{Ask, Server, root, tcp_recv, tcp_send};
use gslbd::config::{self, Sources};
use gslbd::dns::{MAX_RESPONSE, Transport, answer};
use gslbd::snapshot::Snapshot;
use hickory_proto::op::Message;
use proptest::prelude::*;

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn zones() -> std::path::PathBuf {
    root().join("tests/zones/authority")
}

fn snapshot() -> Snapshot {
    let loaded = config::load(&Sources {
        config: None,
        zones_dir: Some(zones()),
    })
    .expect("fixture zones load");
    Snapshot::build(&loaded.config.zones, 1).unwrap()
}

fn assert_alive(s: &Server) {
    let m = s.udp(&Ask::new("www.auth.test.", "A"));
    assert_eq!(m.answers.len(), 2, "UDP still answers");
    let m = s.tcp(&Ask::new("www.auth.test.", "A"));
    assert_eq!(m.answers.len(), 2, "TCP still answers");
}

#[test]
fn garbage_over_udp_and_tcp_never_stops_the_server() {
    let mut s = Server::start_in_tempdir(&["--zones", zones().to_str().unwrap()]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (_, p) in hostile_packets() {
        sock.send_to(&p, s.addr).unwrap();
    }
    // drain whatever came back; every reply must be a well-formed DNS message
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut replies = 0;
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        Message::from_vec(&buf[..n]).expect("a reply that parses");
        assert!(n <= 512, "no EDNS in garbage, so at most 512 octets");
        replies += 1;
    }
    assert!(replies > 0, "FORMERR replies for readable headers");
    assert_alive(&s);

    // TCP: hostile messages, one per connection (the server may close after garbage)
    for (what, p) in hostile_packets().into_iter().step_by(25) {
        let mut c = s.tcp_connect();
        tcp_send(&mut c, &p);
        if let Some(reply) = tcp_recv(&mut c) {
            Message::from_vec(&reply).unwrap_or_else(|e| panic!("{what}: bad reply {e}"));
        }
    }
    // a length prefix promising more than is sent, then the client goes away
    let mut c = s.tcp_connect();
    c.write_all(&[0x01, 0x00, 1, 2, 3]).unwrap();
    drop(c);
    // a zero-length message
    let mut c = s.tcp_connect();
    c.write_all(&[0, 0]).unwrap();
    assert!(
        tcp_recv(&mut c).is_none(),
        "closed after a zero-length message"
    );

    assert_alive(&s);
    assert_eq!(s.wait_exit(0), None, "still running");
}

#[test]
fn malformed_queries_get_formerr_or_silence() {
    let snap = snapshot();
    let mut out = vec![0u8; MAX_RESPONSE];
    for (what, p) in hostile_packets().into_iter().take(40) {
        if let Some(n) = answer(&snap, &p, Transport::Udp, LOOPBACK, &mut out) {
            let m = Message::from_vec(&out[..n]).unwrap_or_else(|e| panic!("{what}: {e}"));
            let rcode = u16::from(m.metadata.response_code);
            assert!(rcode == 1 || rcode == 0, "{what}: rcode {rcode}");
            assert_eq!(out[..2], p[..2], "{what}: id echoed");
        } else {
            assert!(
                p.len() < 12 || p[2] & 0x80 != 0,
                "{what}: dropped though it has a header"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, .. ProptestConfig::default() })]

    /// Any bytes in: no panic, and any reply is a message hickory can read, within the UDP limit.
    #[test]
    fn answer_never_panics(packet in proptest::collection::vec(any::<u8>(), 0..700), tcp in any::<bool>()) {
        let snap = snapshot_once();
        let mut out = vec![0u8; MAX_RESPONSE];
        let transport = if tcp { Transport::Tcp } else { Transport::Udp };
        if let Some(n) = answer(snap, &packet, transport, LOOPBACK, &mut out) {
            prop_assert!(Message::from_vec(&out[..n]).is_ok());
            prop_assert!(tcp || n <= 1232);
        }
    }

    /// Mutations of a valid query (the interesting neighbourhood of the parser).
    #[test]
    fn mutated_queries_never_panic(flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..6), cut in 0usize..80) {
        let snap = snapshot_once();
        let mut p = Ask::new("a.host.deep.auth.test.", "TXT").bytes();
        for (at, v) in flips {
            let i = at % p.len();
            p[i] = v;
        }
        p.truncate(cut.max(1).min(p.len()));
        let mut out = vec![0u8; MAX_RESPONSE];
        if let Some(n) = answer(snap, &p, Transport::Udp, LOOPBACK, &mut out) {
            prop_assert!(Message::from_vec(&out[..n]).is_ok());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Mutations of DO queries for a signed zone (its answers carry signatures and proofs,
    /// and a missing name's proof is signed per query): the fuzz target's checks hold.
    #[test]
    fn mutated_signed_queries_never_panic(flips in proptest::collection::vec((0usize..80, any::<u8>()), 1..6), cut in 0usize..100, name in 0usize..4) {
        let names = ["nope.sig.test.", "web.sig.test.", "x.child.sig.test.", "secure.sig.test."];
        let mut q = Ask::new(names[name], "A");
        q.dnssec_ok = true;
        let mut p = q.bytes();
        for (at, v) in flips {
            let i = at % p.len();
            p[i] = v;
        }
        p.truncate(cut.max(1).min(p.len()));
        gslbd::fuzzing::query(&p);
    }
}

fn snapshot_once() -> &'static Snapshot {
    static SNAP: std::sync::OnceLock<Snapshot> = std::sync::OnceLock::new();
    SNAP.get_or_init(snapshot)
}
