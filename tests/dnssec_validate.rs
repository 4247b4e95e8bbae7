//! Every kind of answer of a signed zone, asked over UDP and over TCP of the real server and
//! validated by an independent library as a resolver would (dnspython's `dns.dnssec`, driven
//! by `tests/dnssec_check.py`): static data, the DNSKEY set against the parent's DS, SOA, NS,
//! pools before and after a backend dies, a CNAME into a pool, topology answers with ECS,
//! NODATA, an empty non-terminal, names that do not exist, `when_all_down: none`, and
//! delegations with and without DS. Two name servers with the same key both validate. Keys roll
//! over and signatures are made again without a restart; a DNSKEY set too large for UDP is
//! truncated and comes whole over TCP.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::backend::{Backend, Mode};
use common::{Ask, Server, addresses, eventually};
use serde_json::{Value, json};

/// A new key for `zone` in `keys`; its DS (the RDATA: tag, algorithm, digest type, digest).
fn generate(zone: &str, keys: &Path, algorithm: &str) -> String {
    let o = Command::new(common::BIN)
        .args([
            "key",
            "generate",
            "--zone",
            zone,
            "--algorithm",
            algorithm,
            "--keys",
        ])
        .arg(keys)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f[2], "DS", "{out}");
    f[3..7].join(" ")
}

/// Run `tests/dnssec_check.py` over `cases` against `s`, anchored at `ds`.
fn check(py: &str, s: &Server, ds: &str, cases: &[Value]) -> (Vec<String>, Value) {
    let input = json!({
        "server": s.addr.ip().to_string(), "port": s.addr.port(),
        "zone": "s.test.", "ds": ds, "cases": cases,
    });
    let mut child = Command::new(py)
        .arg(common::root().join("tests/dnssec_check.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("the script's JSON");
    let fails = v["fails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    (fails, v["seen"].clone())
}

/// Each (name, type, expectation[, ECS]) over UDP and over TCP.
fn cases(list: &[(&str, &str, &str)], ecs: &[(&str, &str, &str)]) -> Vec<Value> {
    let mut out = Vec::new();
    for proto in ["udp", "tcp"] {
        for (name, rtype, expect) in list {
            out.push(json!({"name": name, "type": rtype, "proto": proto, "expect": expect}));
        }
        for (name, rtype, subnet) in ecs {
            out.push(json!({"name": name, "type": rtype, "proto": proto, "expect": "answer", "ecs": subnet}));
        }
    }
    out
}

const ZONE: &str = "zone: s.test.
soa: { mname: ns1.s.test., rname: hostmaster.s.test. }
ns: [ns1.s.test.]
records:
  ns1: { A: [192.0.2.53] }
  www: { A: [192.0.2.1, 192.0.2.2], TXT: [\"hello world\"] }
  a.deep: { TXT: [leaf] }
  mail: { CNAME: web.s.test. }
  child: { NS: [ns.child.s.test.] }
  ns.child: { A: [192.0.2.60] }
  secure: { NS: [ns1.s.test.], DS: [\"12345 13 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE5BDF3DDB0DE8E2B1E2A8A49A\"] }
checks:
  web: { http: { port: PORT, path: / }, interval: 200ms, timeout: 100ms, fall: 1, rise: 1 }
sites:
  fra: [10.1.0.0/16]
  ber: { nets: [10.2.0.0/16], fallback: [fra] }
pools:
  web:
    max_answers: 2
    checks: [web]
    members: [{ address: 127.0.91.1 }, { address: 127.0.91.2 }, { address: 127.0.91.3 }]
  heavy:
    policy: weighted
    max_answers: 2
    members: [{ address: 192.0.2.21, weight: 10 }, { address: 192.0.2.22 }, { address: 192.0.2.23 }]
  geo:
    policy: [topology, round-robin]
    members: [{ address: 192.0.2.31, site: fra }, { address: 192.0.2.32, site: ber }]
  gone:
    when_all_down: none
    checks: [web]
    members: [{ address: 127.0.91.3 }]
names:
  web: { pool: web }
  heavy: { pool: heavy }
  geo: { pool: geo }
  gone: { pool: gone }
dnssec: { keys: keys }
";

#[test]
fn every_answer_validates_with_dnspython_over_udp_and_tcp() {
    let Some(py) = common::dnspython() else {
        return;
    };
    let backends = Backend::group(91, 3, Mode::Ok);
    let d = tempfile::tempdir().unwrap();
    let zones = d.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let port = backends[0].addr.port().to_string();
    std::fs::write(zones.join("s.yaml"), ZONE.replace("PORT", &port)).unwrap();
    let ds = generate("s.test", &zones.join("keys"), "ecdsap256sha256");
    let mut a = Server::start(d.path(), &[]);
    a.keep(d);
    // A second name server with the same zone and key, as a cluster's nodes are.
    let zones_arg = zones.to_str().unwrap().to_string();
    let b = Server::start_in_tempdir(&["--zones", &zones_arg]);
    for s in [&a, &b] {
        for m in 1..=3 {
            s.wait_log(&format!("127.0.91.{m} check web: unknown -> up"), 10);
        }
    }

    let both = [
        ("www.s.test", "A", "answer"),
        ("www.s.test", "TXT", "answer"),
        ("s.test", "SOA", "answer"),
        ("s.test", "NS", "answer"),
        ("s.test", "DNSKEY", "answer"),
        ("web.s.test", "A", "answer"),
        ("heavy.s.test", "A", "answer"),
        ("mail.s.test", "A", "answer"),
        ("secure.s.test", "DS", "answer"),
        ("www.s.test", "NSEC", "answer"),
        ("web.s.test", "NSEC", "answer"),
        ("www.s.test", "DNSKEY", "nodata"),
        ("www.s.test", "MX", "nodata"),
        ("deep.s.test", "A", "nodata"),
        ("web.s.test", "AAAA", "nodata"),
        ("gone.s.test", "AAAA", "nodata"),
        ("child.s.test", "DS", "nodata"),
        ("nope.s.test", "A", "nxname"),
        ("x.nope.s.test", "AAAA", "nxname"),
        ("*.nope.s.test", "A", "nxname"),
        ("x.child.s.test", "A", "referral-insecure"),
        ("child.s.test", "NS", "referral-insecure"),
        ("x.secure.s.test", "A", "referral-secure"),
    ];
    let ecs = [
        ("geo.s.test", "A", "10.1.0.0/24"),
        ("geo.s.test", "A", "10.2.0.0/24"),
    ];
    let mut before = cases(&both, &ecs);
    before.extend(cases(&[("gone.s.test", "A", "answer")], &[]));
    for (node, s) in [("a", &a), ("b", &b)] {
        let (fails, seen) = check(py, s, &ds, &before);
        assert!(fails.is_empty(), "node {node}, all up: {fails:#?}");
        // ECS picked the client's site, and that answer validated too.
        assert_eq!(
            seen["geo.s.test A udp ecs 10.1.0.0/24"],
            json!(["192.0.2.31"]),
            "{seen}"
        );
        assert_eq!(
            seen["geo.s.test A tcp ecs 10.2.0.0/24"],
            json!(["192.0.2.32"]),
            "{seen}"
        );
        assert_eq!(seen["child.s.test DS udp"], json!(["NS", "NSEC", "RRSIG"]));
    }

    // Asked for its RRSIGs, a name gives those of its static sets and of its NSEC.
    let m = a.udp(&Ask::new("www.s.test", "RRSIG"));
    assert!(m.metadata.authoritative);
    let mut covered: Vec<String> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            hickory_proto::rr::RData::Unknown { rdata, .. } => {
                let b = &rdata.anything;
                hickory_proto::rr::RecordType::from(u16::from_be_bytes([b[0], b[1]])).to_string()
            }
            other => panic!("not an RRSIG: {other:?}"),
        })
        .collect();
    covered.sort();
    assert_eq!(covered, ["A", "NSEC", "TXT"], "{m:?}");

    // The proof for `*.nope` is signed with Labels 3: a leading `*` is not counted
    // (RFC 4034 §3.1.3), which validators use to tell a wildcard expansion.
    let mut q = Ask::new("*.nope.s.test", "A");
    q.dnssec_ok = true;
    let m = a.udp(&q);
    let labels: Vec<u8> = m
        .authorities
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::Unknown { code, rdata }
                if *code == hickory_proto::rr::RecordType::RRSIG =>
            {
                Some(rdata.anything[3])
            }
            _ => None,
        })
        .collect();
    assert_eq!(labels, [2, 3], "SOA's RRSIG (s.test) and the NSEC's: {m:?}");

    // Malformed OPT records with DO set: FORMERR or silence, and the server goes on.
    let mut q = Ask::new("nope.s.test", "A");
    q.dnssec_ok = true;
    let good = q.bytes();
    let mut past_end = good.clone();
    let n = past_end.len();
    past_end[n - 2..].copy_from_slice(&40u16.to_be_bytes());
    let mut two_opts = good.clone();
    two_opts[11] = 2;
    two_opts.extend_from_slice(&good[good.len() - 11..]);
    let mut short_ecs = good.clone();
    short_ecs[n - 2..].copy_from_slice(&6u16.to_be_bytes());
    short_ecs.extend_from_slice(&[0, 8, 0, 8, 0, 1]);
    for (what, p) in [
        ("OPT longer than the packet", past_end),
        ("two OPT records", two_opts),
        ("a truncated ECS option", short_ecs),
    ] {
        if let Some(reply) = a.udp_raw(&p) {
            let m = hickory_proto::op::Message::from_vec(&reply).unwrap();
            assert_eq!(
                m.metadata.response_code,
                hickory_proto::op::ResponseCode::FormErr,
                "{what}: {m:?}"
            );
        }
    }
    let (fails, _) = check(py, &a, &ds, &cases(&[("nope.s.test", "A", "nxname")], &[]));
    assert!(fails.is_empty(), "after malformed OPT records: {fails:#?}");

    // A backend dies: its member leaves the pool answers and `gone` has no A any more; all of
    // it still validates.
    let mut backends = backends;
    backends[2].stop();
    for s in [&a, &b] {
        eventually(Duration::from_secs(5), "the dead member stayed", || {
            let m = s.udp(&Ask::new("gone.s.test", "A"));
            m.answers.is_empty().then_some(())
        });
    }
    let mut after = cases(&both, &ecs);
    after.extend(cases(&[("gone.s.test", "A", "nodata")], &[]));
    for (node, s) in [("a", &a), ("b", &b)] {
        let (fails, seen) = check(py, s, &ds, &after);
        assert!(fails.is_empty(), "node {node}, a backend down: {fails:#?}");
        for proto in ["udp", "tcp"] {
            let web = seen[format!("web.s.test A {proto}")].to_string();
            assert!(!web.contains("127.0.91.3"), "{web}");
        }
        // The proof for `gone` says it has no A now.
        assert_eq!(seen["gone.s.test A udp"], json!(["NSEC", "RRSIG"]));
    }
}

/// What `s` has in its DNSKEY set (key tags, sorted), asked over TCP.
fn dnskey_count(s: &Server) -> usize {
    let mut q = Ask::new("s.test", "DNSKEY");
    q.dnssec_ok = true;
    s.tcp(&q)
        .answers
        .iter()
        .filter(|r| r.record_type() == hickory_proto::rr::RecordType::DNSKEY)
        .count()
}

/// The RRSIG of the SOA, as text (its validity period changes when the zone is signed again).
fn soa_rrsig(s: &Server) -> String {
    let mut q = Ask::new("s.test", "SOA");
    q.dnssec_ok = true;
    let m = s.udp(&q);
    let sig = m
        .answers
        .iter()
        .find(|r| r.record_type() == hickory_proto::rr::RecordType::RRSIG)
        .unwrap_or_else(|| panic!("no RRSIG: {m:?}"));
    sig.data.to_string()
}

#[test]
fn keys_roll_over_and_signatures_are_made_again_without_a_restart() {
    let Some(py) = common::dnspython() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let zones = d.path().join("zones");
    let keys = zones.join("keys");
    std::fs::create_dir(&zones).unwrap();
    // Signatures valid for an hour, made again when less than 3599 s are left: every second.
    std::fs::write(
        zones.join("s.yaml"),
        "zone: s.test.
soa: { mname: ns1.s.test., rname: hostmaster.s.test. }
ns: [ns1.s.test.]
records:
  ns1: { A: [192.0.2.53] }
  www: { A: [192.0.2.1] }
pools:
  web: { members: [{ address: 192.0.2.10 }, { address: 192.0.2.11 }] }
names:
  web: { pool: web }
dnssec: { keys: keys, signature_validity: 1h, refresh: 3599s }
",
    )
    .unwrap();
    let old_ds = generate("s.test", &keys, "ecdsap256sha256");
    let mut s = Server::start(d.path(), &[]);
    let cases = cases(
        &[
            ("www.s.test", "A", "answer"),
            ("web.s.test", "A", "answer"),
            ("s.test", "DNSKEY", "answer"),
            ("www.s.test", "TXT", "nodata"),
            ("nope.s.test", "A", "nxname"),
        ],
        &[],
    );

    // Re-signing: the signatures' validity moves on, with no restart and no reload asked for.
    let first = soa_rrsig(&s);
    s.wait_log("dnssec: signatures are due for renewal", 10);
    eventually(
        Duration::from_secs(10),
        "the SOA was not signed again",
        || (soa_rrsig(&s) != first).then_some(()),
    );
    let (fails, _) = check(py, &s, &old_ds, &cases);
    assert!(fails.is_empty(), "after re-signing: {fails:#?}");

    // Rollover, step 1: pre-publish a new key. Both keys are in the DNSKEY set and sign, so
    // the old DS and the new one both validate.
    let new_ds = generate("s.test", &keys, "ed25519");
    s.signal(libc::SIGHUP);
    eventually(
        Duration::from_secs(10),
        "the new key was not published",
        || (dnskey_count(&s) == 2).then_some(()),
    );
    for ds in [&old_ds, &new_ds] {
        let (fails, _) = check(py, &s, ds, &cases);
        assert!(fails.is_empty(), "both keys, DS {ds}: {fails:#?}");
    }

    // Step 3 (after the parent has the new DS): the old key is removed; the new DS validates.
    let old_tag = old_ds.split_whitespace().next().unwrap();
    for f in std::fs::read_dir(&keys).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().contains(&format!("+013+{old_tag:0>5}")) {
            std::fs::remove_file(p).unwrap();
        }
    }
    s.signal(libc::SIGHUP);
    eventually(Duration::from_secs(10), "the old key stayed", || {
        (dnskey_count(&s) == 1).then_some(())
    });
    let (fails, _) = check(py, &s, &new_ds, &cases);
    assert!(fails.is_empty(), "new key only: {fails:#?}");
    let (fails, _) = check(py, &s, &old_ds, &cases[..1]);
    assert!(
        fails.iter().any(|f| f.contains("no DNSKEY matches")),
        "the old DS still matched: {fails:?}"
    );

    // A DNSKEY set too big for a small UDP buffer: truncated, then whole over TCP.
    for _ in 0..3 {
        generate("s.test", &keys, "ecdsap256sha256");
    }
    s.signal(libc::SIGHUP);
    eventually(Duration::from_secs(10), "four keys", || {
        (dnskey_count(&s) == 4).then_some(())
    });
    let mut q = Ask::new("s.test", "DNSKEY").bufsize(512);
    q.dnssec_ok = true;
    let m = s.udp(&q);
    assert!(m.metadata.truncation, "{m:?}");
    assert!(m.answers.is_empty());
    let m = s.tcp(&q);
    assert_eq!(m.answers.len(), 8, "four DNSKEYs and four RRSIGs: {m:?}");
    let (fails, _) = check(py, &s, &new_ds, &cases);
    assert!(fails.is_empty(), "four keys: {fails:#?}");
    // Without DO the same small buffer holds the keys alone.
    let m = s.udp(&Ask::new("s.test", "DNSKEY").bufsize(512));
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 4);
    assert!(addresses(&s.udp(&Ask::new("web.s.test", "A"))).len() == 2);
    s.keep(d);
}
