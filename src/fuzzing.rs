//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz) and for the replay of their corpus
//! as a normal test (`tests/fuzz_corpus.rs`), so CI on stable Rust runs every input the fuzzers
//! kept. Each takes arbitrary bytes and checks what must hold whatever they are; a panic is a
//! finding.

use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use crate::config::diag::{Diagnostics, Reporter};
use crate::config::zone;
use crate::dns::answer::{MAX_RESPONSE, Transport, answer};
use crate::dns::wire::MAX_UDP_PAYLOAD;
use crate::model::HttpCheck;
use crate::snapshot::Snapshot;

/// The zones the query target answers from: every kind of data, a delegation, and pools with
/// every policy and a site map; and [`SIGNED`].
const ZONES: [&str; 2] = [
    include_str!("../tests/zones/authority/auth.test.yaml"),
    include_str!("../tests/zones/pools/p.test.yaml"),
];

/// A signed zone, answered with and without DO (its key is made when the snapshot is).
const SIGNED: &str = include_str!("../tests/zones/signed/sig.test.yaml");

fn load_zone(text: &str) -> Option<crate::model::Zone> {
    load_zone_at(text, Path::new("fuzz.yaml"))
}

fn load_zone_at(text: &str, path: &Path) -> Option<crate::model::Zone> {
    let mut diags = Diagnostics::default();
    let mut r = Reporter::new(path, &mut diags);
    zone::load(text, &mut r)?.zone
}

/// The signed zone, with a new key in `dir/keys/` (the caller removes `dir` once the snapshot
/// is built: it holds the key).
fn signed_zone(dir: &Path) -> crate::model::Zone {
    use crate::dnssec::{Algorithm, Key};
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).expect("a temporary directory for the fuzz zone's key");
    let origin = "sig.test.".parse().expect("a name");
    let (key, private) = Key::generate(&origin, Algorithm::EcdsaP256Sha256).expect("a key");
    key.write(&keys, &private, "20261202000000")
        .expect("the fuzz zone's key written");
    load_zone_at(SIGNED, &dir.join("sig.test.yaml")).expect("the signed fuzz zone loads")
}

fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let mut zones: Vec<_> = ZONES
            .iter()
            .map(|t| load_zone(t).expect("the fuzz zones load"))
            .collect();
        let dir = std::env::temp_dir().join(format!("gslbd-fuzz-{}", std::process::id()));
        zones.push(signed_zone(&dir));
        let snap = Snapshot::build(&zones, 1);
        let _ = std::fs::remove_dir_all(&dir);
        snap.expect("the fuzz zones build")
    })
}

/// Answer `packet` as it came, over UDP and TCP, from an IPv4 and an IPv6 resolver.
fn ask(snap: &Snapshot, packet: &[u8], out: &mut [u8]) {
    let peers: [IpAddr; 2] = [
        IpAddr::from([10, 2, 3, 4]),
        IpAddr::from([0x2001, 0xdb8, 2, 0, 0, 0, 0, 1]),
    ];
    for peer in peers {
        for t in [Transport::Udp, Transport::Tcp] {
            let Some(n) = answer(snap, packet, t, peer, out) else {
                continue;
            };
            if t == Transport::Udp {
                assert!(n <= usize::from(MAX_UDP_PAYLOAD), "{n} octets over UDP");
            }
            if n > 0 {
                assert!(n >= 12, "a reply shorter than a header");
                assert_eq!(out[..2], packet[..2], "the reply has another ID");
                assert!(out[2] & 0x80 != 0, "the reply is not a response");
            }
        }
    }
}

/// The query path: any packet gets a well-formed reply or none, never a panic.
pub fn query(data: &[u8]) {
    let mut out = vec![0u8; MAX_RESPONSE];
    ask(snapshot(), data, &mut out);
}

/// The zone loader: any bytes as a zone file give a zone or diagnostics, never a panic; a zone
/// that loads also builds into a snapshot and answers queries for its own names.
pub fn zone_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Some(z) = load_zone(&text) else {
        return;
    };
    let names: Vec<_> = z.rrsets.iter().map(|s| s.name.clone()).collect();
    let snap = Snapshot::build(std::slice::from_ref(&z), 1)
        .expect("a zone that passed validation must build");
    let mut out = vec![0u8; MAX_RESPONSE];
    for name in names.iter().chain(std::iter::once(&z.origin)).take(16) {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.iter() {
            q.push(label.len() as u8);
            q.extend_from_slice(label);
        }
        q.extend_from_slice(&[0, 0, 255, 0, 1]);
        ask(&snap, &q, &mut out);
    }
}

/// The load reports of `least-loaded`: the first byte picks the HAProxy agent format or the
/// HTTP body (raw bytes, as received); what parses is within bounds.
pub fn load_report(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let parsed = if kind & 1 == 0 {
        crate::probe::load::parse_agent(&text)
    } else {
        // The HTTP body as the prober gets it: bytes, cut before they are read as text.
        crate::probe::load::http_load_body(rest)
    };
    if let Ok(l) = parsed
        && let Some(c) = l.capacity
    {
        assert!((0.0..=1.0).contains(&c), "capacity {c} from {text:?}");
    }
}

/// The HTTP probe's verdict on a response: two octets of status, then the body.
pub fn http_response(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]);
    let check = HttpCheck {
        port: 80,
        tls: false,
        host: None,
        method: "GET".into(),
        path: "/".into(),
        expect_status: vec![200, 204],
        expect_body: Some("200 OK".into()),
        expect_body_regex: crate::model::Pattern::new("(?i)^\\s*(ok|healthy)").ok(),
        verify_tls: true,
        ca: None,
    };
    let o = crate::probe::http::judge(&check, status, &data[2..]);
    assert!(!o.reason.is_empty());
    assert!(
        o.reason.len() < 512,
        "an unbounded reason: {} octets",
        o.reason.len()
    );
}
