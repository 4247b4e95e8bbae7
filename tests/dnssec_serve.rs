//! A signed zone served by the real binary and checked by a real validator (BIND's `delv`,
//! with the zone's DS as trust anchor): static answers, the DNSKEY set, pool answers before
//! and after a backend dies, NODATA, names that do not exist (compact denial) and a CNAME
//! into a pool all validate; without DO the answers carry no signatures.

mod common;

use std::process::Command;
use std::time::Duration;

use common::backend::{Backend, Mode};
use common::{Ask, Server, addresses, eventually};

fn delv_found() -> bool {
    let ok = Command::new("delv").arg("-v").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("GSLBD_LAB_REQUIRED").is_none(),
            "delv is missing (apt-get install bind9-dnsutils)"
        );
        eprintln!("SKIPPED: delv is missing (bind9-dnsutils)");
    }
    ok
}

/// What delv says of NAME TYPE, validating from the anchor.
fn delv(s: &Server, anchor: &std::path::Path, name: &str, rtype: &str) -> String {
    let o = Command::new("delv")
        .arg(format!("@{}", s.addr.ip()))
        .args(["-p", &s.addr.port().to_string(), "-a"])
        .arg(anchor)
        .args(["+root=s.test", name, rtype])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_signed_zone_validates_with_delv() {
    if !delv_found() {
        return;
    }
    let backends = Backend::group(89, 3, Mode::Ok);
    let port = backends[0].addr.port();
    let d = tempfile::tempdir().unwrap();
    let zones = d.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    std::fs::write(
        zones.join("s.yaml"),
        format!(
            "zone: s.test.
soa: {{ mname: ns1.s.test., rname: hostmaster.s.test. }}
ns: [ns1.s.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
  www: {{ A: [192.0.2.1, 192.0.2.2], TXT: [\"hello world\"] }}
  mail: {{ CNAME: web.s.test. }}
checks:
  web: {{ http: {{ port: {port}, path: / }}, interval: 200ms, timeout: 100ms, fall: 1, rise: 1 }}
pools:
  web:
    max_answers: 2
    checks: [web]
    members: [{{ address: 127.0.89.1 }}, {{ address: 127.0.89.2 }}, {{ address: 127.0.89.3 }}]
  heavy:
    policy: weighted
    max_answers: 2
    members: [{{ address: 192.0.2.21, weight: 10 }}, {{ address: 192.0.2.22 }}, {{ address: 192.0.2.23 }}]
names:
  web: {{ pool: web }}
  heavy: {{ pool: heavy }}
dnssec: {{ keys: keys }}
"
        ),
    )
    .unwrap();
    let g = Command::new(common::BIN)
        .args(["key", "generate", "--zone", "s.test", "--keys"])
        .arg(zones.join("keys"))
        .output()
        .unwrap();
    assert!(g.status.success());
    let ds = String::from_utf8_lossy(&g.stdout).to_string();
    let f: Vec<&str> = ds.split_whitespace().collect();
    let anchor = d.path().join("anchor.conf");
    std::fs::write(
        &anchor,
        format!(
            "trust-anchors {{ s.test. static-ds {} {} {} \"{}\"; }};\n",
            f[3], f[4], f[5], f[6]
        ),
    )
    .unwrap();
    let mut s = Server::start(d.path(), &[]);
    s.keep(d);
    for m in 1..=3 {
        s.wait_log(&format!("127.0.89.{m} check web: unknown -> up"), 10);
    }

    let positive = [
        ("www.s.test", "A"),
        ("www.s.test", "TXT"),
        ("s.test", "DNSKEY"),
        ("s.test", "SOA"),
        ("s.test", "NS"),
        ("web.s.test", "A"),
        ("heavy.s.test", "A"),
        ("mail.s.test", "A"),
    ];
    let negative = [
        ("www.s.test", "MX"),
        ("nope.s.test", "A"),
        ("deep.nope.s.test", "AAAA"),
        // a wildcard-looking name: the RRSIG's Labels field must not count the `*`
        ("*.nope.s.test", "A"),
        ("web.s.test", "AAAA"),
    ];
    let check_all = |s: &Server, round: &str| {
        for _ in 0..3 {
            for (name, t) in positive {
                let out = delv(s, &anchor, name, t);
                assert!(
                    out.contains("; fully validated"),
                    "{round}: {name} {t}:\n{out}"
                );
            }
            for (name, t) in negative {
                let out = delv(s, &anchor, name, t);
                assert!(
                    out.contains("negative response, fully validated"),
                    "{round}: {name} {t}:\n{out}"
                );
            }
        }
    };
    check_all(&s, "all up");

    // A backend dies: its member leaves the answers, which still validate.
    let mut backends = backends;
    backends[0].stop();
    eventually(Duration::from_secs(5), "the dead member stayed", || {
        (!addresses(&s.udp(&Ask::new("web.s.test", "A"))).contains(&"127.0.89.1".to_string()))
            .then_some(())
    });
    check_all(&s, "after a backend died");

    // Without DO nothing is signed: the same records as an unsigned zone.
    let m = s.udp(&Ask::new("www.s.test", "A"));
    assert_eq!(m.answers.len(), 2, "{m:?}");
    assert!(m.authorities.is_empty());
    let m = s.udp(&Ask::new("nope.s.test", "A"));
    assert_eq!(
        m.metadata.response_code,
        hickory_proto::op::ResponseCode::NXDomain
    );
    assert_eq!(m.authorities.len(), 1, "only the SOA: {m:?}");
}
