//! `explain` and per-site overrides against the real binary: the explanation's answer is the
//! one dig gets, every step shows what it kept and why, and draining a site moves its clients.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::backend::{Backend, Mode};
use common::{Ask, Server, addresses, eventually};
use serde_json::Value;

/// Two sites with two members each, checked over TCP; 127.0.31.4 has no listener.
fn zone(dir: &Path, port: u16) {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(
        dir.join("zones/x.yaml"),
        format!(
            "zone: x.test.
soa: {{ mname: ns1.x.test., rname: hostmaster.x.test. }}
ns: [ns1.x.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
  autodiscover: {{ CNAME: mail.x.test. }}
  static: {{ A: [192.0.2.80] }}
sites:
  fra: [10.1.0.0/16]
  ber: {{ nets: [10.2.0.0/16], fallback: [fra] }}
checks:
  smtp: {{ tcp: {{ port: {port} }}, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }}
pools:
  mail:
    policy: topology
    checks: [smtp]
    max_answers: 4
    ttl: 30
    members:
      - {{ address: 127.0.31.1, site: fra }}
      - {{ address: 127.0.31.2, site: fra }}
      - {{ address: 127.0.31.3, site: ber }}
      - {{ address: 127.0.31.4, site: ber }}
names:
  mail: {{ pool: mail }}
"
        ),
    )
    .unwrap();
}

fn start(d: &Path) -> (Server, Vec<Backend>) {
    let mut backends = vec![Backend::start("127.0.31.1", 0, Mode::Smtp)];
    let port = backends[0].addr.port();
    for i in 2..=3 {
        backends.push(Backend::start(&format!("127.0.31.{i}"), port, Mode::Smtp));
    }
    zone(d, port);
    let s = Server::start(d, &[]);
    for i in 1..=3 {
        s.wait_log(
            &format!("health: 127.0.31.{i} check smtp: unknown -> up"),
            5,
        );
    }
    s.wait_log("health: 127.0.31.4 check smtp: unknown -> down", 5);
    (s, backends)
}

fn explain(s: &Server, query: &str) -> Value {
    let (code, body) = s.http("GET", &format!("/v1/explain?{query}"), "", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn step<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {v:#}"))
}

fn strs(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn dig(s: &Server, subnet: &str, len: u8) -> BTreeSet<String> {
    addresses(&s.udp(&Ask::new("mail.x.test.", "A").ecs(subnet, len)))
        .into_iter()
        .collect()
}

#[test]
fn explain_shows_the_answer_dig_gets_and_every_step() {
    let d = tempfile::tempdir().unwrap();
    let (s, _backends) = start(d.path());

    // A Berlin client: 127.0.31.4 is down (health), so only 127.0.31.3 is left in its site.
    let v = explain(&s, "name=mail.x.test&client=10.2.3.4/24&type=A");
    let answer: BTreeSet<String> = v["answer"]["answer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().rsplit(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(answer, set(&["127.0.31.3"]), "{v:#}");
    assert_eq!(answer, dig(&s, "10.2.3.0", 24));
    assert_eq!(v["answer"]["rcode"], "NOERROR");
    assert_eq!(v["answer"]["ecs_scope"], 16, "{v:#}");
    assert_eq!(v["pool"], "mail");
    let health = step(&v, "health");
    assert_eq!(
        strs(&health["kept"]),
        set(&["127.0.31.1", "127.0.31.2", "127.0.31.3"])
    );
    assert_eq!(health["dropped"][0]["address"], "127.0.31.4");
    assert!(
        health["dropped"][0]["why"]
            .as_str()
            .unwrap()
            .starts_with("smtp: connect refused"),
        "{health:#}"
    );
    let topo = step(&v, "topology");
    assert_eq!(topo["client_site"], "ber");
    assert_eq!(topo["ecs_scope"], 16);
    assert_eq!(strs(&topo["kept"]), set(&["127.0.31.3"]));
    // degraded pool: the TTL is halved, in the explanation and in the answer
    assert_eq!(step(&v, "ttl")["ttl"], 15);
    assert!(
        v["answer"]["answer"][0]
            .as_str()
            .unwrap()
            .contains(" 15 IN A ")
    );
    let m4 = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == "127.0.31.4")
        .unwrap();
    assert_eq!(m4["status"], "down");
    assert_eq!(m4["site"], "ber");

    // A CNAME into the pool is followed; static data says so; outside the zones is REFUSED.
    let v = explain(&s, "name=autodiscover.x.test.&client=10.1.0.9");
    assert_eq!(v["pool"], "mail");
    assert!(
        v["cname_chain"][0]
            .as_str()
            .unwrap()
            .contains("CNAME mail.x.test.")
    );
    assert_eq!(step(&v, "topology")["client_site"], "fra");
    let v = explain(&s, "name=static.x.test&client=10.1.0.9");
    assert!(v["why"].as_str().unwrap().starts_with("static data"));
    assert!(
        v["answer"]["answer"][0]
            .as_str()
            .unwrap()
            .ends_with("192.0.2.80")
    );
    let v = explain(&s, "name=www.example.com&client=10.1.0.9");
    assert_eq!(v["answer"]["rcode"], "REFUSED");

    // Bad questions: 400 with a message naming the field.
    for (q, want) in [
        ("name=mail.x.test&client=10.1.0.9/33", "prefix length"),
        ("name=mail.x.test&client=nope", "client"),
        ("name=mail.x.test&client=10.1.0.9&type=BOGUS", "type"),
        ("name=mail.x.test", "client"),
    ] {
        let (code, body) = s.http("GET", &format!("/v1/explain?{q}"), "", None);
        assert_eq!(code, 400, "{q}: {body}");
        assert!(body.contains(want), "{q}: {body}");
    }

    // The command line shows the same, readably.
    let o = std::process::Command::new(common::BIN)
        .args(["explain", "mail.x.test", "--client", "10.2.3.4/24", "--api"])
        .arg(s.api())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for want in [
        "mail.x.test. A asked by 10.2.3.4/24",
        "answer: NOERROR, authoritative, ECS scope /16",
        "mail.x.test. 15 IN A 127.0.31.3",
        "dropped 127.0.31.4 (smtp: connect refused",
        "client site ber; ECS scope /16",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
}

#[test]
fn draining_a_site_moves_its_clients_and_survives_kill_9() {
    let d = tempfile::tempdir().unwrap();
    let (s, _backends) = start(d.path());
    assert_eq!(dig(&s, "10.1.0.0", 24), set(&["127.0.31.1", "127.0.31.2"]));

    let (code, body) = s.http(
        "POST",
        "/v1/sites/fra/drain",
        r#"{"reason": "datacenter move"}"#,
        None,
    );
    assert_eq!(code, 200, "{body}");
    // Frankfurt's members take no new answers while others can: its clients go to Berlin.
    assert_eq!(dig(&s, "10.1.0.0", 24), set(&["127.0.31.3"]));
    let v = explain(&s, "name=mail.x.test&client=10.1.0.1/24");
    assert_eq!(
        strs(&step(&v, "drain")["dropped"]),
        set(&["127.0.31.1", "127.0.31.2"])
    );
    let (_, status) = s.http("GET", "/v1/status", "", None);
    let st: Value = serde_json::from_str(&status).unwrap();
    let m1 = &st["zones"][0]["pools"][0]["members"][0];
    assert_eq!(m1["site_override"]["kind"], "drain", "{m1:#}");
    assert!(m1["override"].is_null());

    // Unknown sites and actions are refused whole.
    let (code, body) = s.http("POST", "/v1/sites/nowhere/drain", "", None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("not a site"), "{body}");

    // Health is saved at most once a second (overrides at once): wait for it, so the restart
    // below starts with 127.0.31.4 known down rather than unknown (and usable).
    let health = d.path().join("state/health.json");
    eventually(Duration::from_secs(5), "health never saved", || {
        std::fs::read_to_string(&health)
            .is_ok_and(|t| t.contains("127.0.31.4"))
            .then_some(())
    });
    let mut s = s;
    s.signal(libc::SIGKILL);
    assert!(s.wait_exit(5).is_some());
    drop(s);
    let s = Server::start(d.path(), &[]);
    assert!(
        s.log()
            .contains("override restored: site fra drain (datacenter move)"),
        "{}",
        s.log()
    );
    assert_eq!(dig(&s, "10.1.0.0", 24), set(&["127.0.31.3"]));

    // Cleared with the command line: Frankfurt answers its own clients again.
    let o = std::process::Command::new(common::BIN)
        .args(["ctl", "--api", &s.api(), "undrain", "--site", "fra"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("site fra: undrain done"));
    assert_eq!(dig(&s, "10.1.0.0", 24), set(&["127.0.31.1", "127.0.31.2"]));
}

/// explain runs the pipeline the answers were published with, and finds the client's site as
/// the query path does: for random clients (ECS sources of any length, site prefixes longer
/// than the /24 that ECS is cut to, and a resolver's own address), explain's candidates and ECS
/// scope are what dig gets.
#[test]
fn explain_agrees_with_dig_for_random_clients() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("zones")).unwrap();
    let mut rng = fastrand::Rng::with_seed(0x6e73);
    let mut sites = String::new();
    let mut members = String::new();
    let mut seen = BTreeSet::new();
    for i in 0..14 {
        let len = rng.u8(8..=28);
        let bits = (10u32 << 24) | (rng.u32(..) >> 8);
        let net = bits & (u32::MAX << (32 - u32::from(len)));
        if !seen.insert((net, len)) {
            continue;
        }
        let net = std::net::Ipv4Addr::from(net);
        sites.push_str(&format!("  s{i}: [{net}/{len}]\n"));
        members.push_str(&format!(
            "      - {{ address: 127.0.33.{}, site: s{i} }}\n",
            i + 1
        ));
    }
    // A resolver's own address (no ECS) is matched at full length: a /25 on loopback.
    sites.push_str("  lo: [127.0.66.128/25]\n");
    members.push_str("      - { address: 127.0.33.100, site: lo }\n");
    std::fs::write(
        d.path().join("zones/r.yaml"),
        format!(
            "zone: r.test.
soa: {{ mname: ns1.r.test., rname: hostmaster.r.test. }}
ns: [ns1.r.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
sites:
{sites}pools:
  geo:
    policy: topology
    max_answers: 16
    members:
{members}names:
  geo: {{ pool: geo }}
"
        ),
    )
    .unwrap();
    let s = Server::start(d.path(), &[]);
    for n in 0..200 {
        let addr = std::net::Ipv4Addr::from((10u32 << 24) | (rng.u32(..) >> 8));
        let len = [32u8, 28, 24, 20, 16, 12, 8][n % 7];
        // RFC 7871 §6: the option carries no bits past its prefix; explain takes any address.
        let net = std::net::Ipv4Addr::from(u32::from(addr) & (u32::MAX << (32 - u32::from(len))));
        let m = s.udp(&Ask::new("geo.r.test.", "A").ecs(&net.to_string(), len));
        let dug: BTreeSet<String> = addresses(&m).into_iter().collect();
        let scope = common::ecs_of(&m).map(|e| e.2);
        let v = explain(&s, &format!("name=geo.r.test&client={addr}/{len}"));
        assert_eq!(
            strs(&step(&v, "order")["candidates"]),
            dug,
            "{addr}/{len}: {v:#}"
        );
        assert_eq!(
            step(&v, "topology")["ecs_scope"].as_u64().map(|x| x as u8),
            scope,
            "{addr}/{len}: {v:#}"
        );
    }
    // Without ECS the resolver's address decides: from inside the /25, and from beside it.
    for (from, want) in [("127.0.66.130", "127.0.33.100"), ("127.0.66.2", "")] {
        let sock = std::net::UdpSocket::bind((from, 0)).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .unwrap();
        sock.send_to(&Ask::new("geo.r.test.", "A").bytes(), s.addrs()[0])
            .unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
        let dug: BTreeSet<String> = addresses(&m).into_iter().collect();
        let v = explain(&s, &format!("name=geo.r.test&client={from}"));
        assert_eq!(strs(&step(&v, "order")["candidates"]), dug, "{from}: {v:#}");
        if want.is_empty() {
            assert!(dug.len() > 1, "no site: every member, got {dug:?}");
        } else {
            assert_eq!(dug, set(&[want]), "{from}");
        }
        assert!(
            step(&v, "topology")["ecs_scope"].is_null(),
            "no ECS, no scope: {v:#}"
        );
    }
}
