//! Client-dependent answers end to end: topology by EDNS Client Subnet (or the resolver's
//! address), site fallback, the ECS scope that decided the answer, and sticky clients.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::backend::{Backend, Mode};
use common::{Ask, Server, addresses, ecs_of, eventually, poll};

fn zone(dir: &Path, body: &str) {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    let text = format!(
        "zone: t.test.\nsoa: {{ mname: ns1.t.test., rname: hostmaster.t.test. }}\nns: [ns1.t.test.]\nrecords:\n  ns1: {{ A: [192.0.2.53] }}\n{body}"
    );
    std::fs::write(dir.join("zones/t.yaml"), text).unwrap();
}

fn geo_zone(dir: &Path, port: u16) {
    std::fs::write(dir.join("zones.nets"), "# CIDR site\n10.3.0.0/16 muc\n").unwrap();
    zone(
        dir,
        &format!(
            "sites:
  fra: [10.1.0.0/16, 2001:db8:1::/48]
  ber: {{ nets: [10.2.0.0/16], fallback: [fra] }}
  muc: []
  local: [127.0.0.0/8]
nets_file: ../zones.nets
checks:
  web: {{ tcp: {{ port: {port} }}, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }}
pools:
  geo:
    policy: topology
    checks: [web]
    max_answers: 4
    members:
      - {{ address: 127.0.22.1, site: fra }}
      - {{ address: 127.0.22.2, site: ber }}
      - {{ address: 127.0.22.3, site: muc }}
      - {{ address: 127.0.22.4, site: local }}
names:
  geo: {{ pool: geo }}
"
        ),
    );
}

/// (addresses, ECS scope) of one answer.
fn ask(s: &Server, subnet: Option<(&str, u8)>) -> (Vec<String>, Option<u8>) {
    let mut q = Ask::new("geo.t.test.", "A");
    if let Some((a, p)) = subnet {
        q = q.ecs(a, p);
    }
    let m = s.udp(&q);
    (addresses(&m), ecs_of(&m).map(|e| e.2))
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Nested sites: the scope must keep the inner site's clients out of the outer site's cached
/// answer (RFC 7871 §7.3.1: a resolver reuses an answer for every client inside the scope).
#[test]
fn nested_sites_get_a_scope_that_excludes_the_inner_site() {
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        "sites:
  outer: [10.0.0.0/8, 2001:db8::/32]
  inner: [10.1.0.0/16, 2001:db8:1::/48]
pools:
  geo:
    policy: topology
    members:
      - { address: 192.0.2.1, site: outer }
      - { address: 192.0.2.2, site: inner }
names:
  geo: { pool: geo }
",
    );
    let s = Server::start(d.path(), &[]);
    let outer = strs(&["192.0.2.1"]);
    let inner = strs(&["192.0.2.2"]);
    // 10.2.0.0/15 is the shortest prefix of the client with no more specific site in it.
    assert_eq!(ask(&s, Some(("10.2.7.0", 24))), (outer.clone(), Some(15)));
    assert_eq!(ask(&s, Some(("10.1.7.0", 24))), (inner.clone(), Some(16)));
    assert_eq!(ask(&s, Some(("10.200.0.0", 24))), (outer.clone(), Some(9)));
    assert_eq!(ask(&s, Some(("10.0.3.0", 24))), (outer.clone(), Some(16)));
    // The same for IPv6: 2001:db8:2::/47 holds no inner prefix.
    assert_eq!(
        ask(&s, Some(("2001:db8:2::", 56))),
        (outer.clone(), Some(47))
    );
    assert_eq!(ask(&s, Some(("2001:db8:1:5500::", 56))), (inner, Some(48)));
    // A source shorter than the inner site, spanning it: valid for exactly that prefix.
    assert_eq!(ask(&s, Some(("10.0.0.0", 12))), (outer, Some(12)));
}

#[test]
fn topology_answers_by_client_subnet_with_the_deciding_scope() {
    // one port for all four members
    let mut backends = Backend::group(22, 4, Mode::Ok);
    let port = backends[0].addr.port();
    let d = tempfile::tempdir().unwrap();
    geo_zone(d.path(), port);
    let s = Server::start(d.path(), &[]);
    for i in 1..=4 {
        s.wait_log(&format!("health: 127.0.22.{i} check web: unknown -> up"), 5);
    }

    // Each site's clients get their site's member; the scope is the site prefix that matched,
    // so a resolver caches the answer for the whole /16, not per /24.
    assert_eq!(
        ask(&s, Some(("10.1.2.0", 24))),
        (strs(&["127.0.22.1"]), Some(16))
    );
    assert_eq!(
        ask(&s, Some(("10.2.9.0", 24))),
        (strs(&["127.0.22.2"]), Some(16))
    );
    // from nets_file
    assert_eq!(
        ask(&s, Some(("10.3.4.0", 24))),
        (strs(&["127.0.22.3"]), Some(16))
    );
    // a /32 source is used as its /24; the scope never exceeds what decided
    assert_eq!(
        ask(&s, Some(("10.1.2.3", 32))),
        (strs(&["127.0.22.1"]), Some(16))
    );
    // IPv6 client in fra
    assert_eq!(
        ask(&s, Some(("2001:db8:1:2::", 56))),
        (strs(&["127.0.22.1"]), Some(48))
    );
    // No site covers 192.0.2.0/24: every member, valid for the widest prefix that holds no
    // site: 128.0.0.0/1 (the sites are all in 10/8 and 127/8).
    let (all, scope) = ask(&s, Some(("192.0.2.0", 24)));
    assert_eq!(all.len(), 4);
    assert_eq!(scope, Some(1));
    // Between the sites 10.1-10.3/16: 10.8.0.0/13 holds none (gdnsd answers /13 there too).
    let (all, scope) = ask(&s, Some(("10.9.7.0", 24)));
    assert_eq!((all.len(), scope), (4, Some(13)));
    // No ECS: the resolver's own address decides (127.0.0.1 is in "local"), and no ECS
    // option is returned.
    assert_eq!(ask(&s, None), (strs(&["127.0.22.4"]), None));

    // ber goes down: its clients fall back to fra, in the order the site lists.
    backends[1].stop();
    eventually(
        Duration::from_secs(5),
        "ber's clients never moved to fra",
        || (ask(&s, Some(("10.2.9.0", 24))).0 == strs(&["127.0.22.1"])).then_some(()),
    );
    assert_eq!(ask(&s, Some(("10.2.9.0", 24))).1, Some(16));
    // muc has no fallback list: when it is down, its clients get every healthy member.
    backends[2].stop();
    let mut got = Vec::new();
    poll(Duration::from_secs(5), common::TICK, || {
        got = ask(&s, Some(("10.3.4.0", 24))).0;
        (got == strs(&["127.0.22.1", "127.0.22.4"])).then_some(())
    })
    .unwrap_or_else(|| panic!("muc's clients still get {got:?}"));
}

#[test]
fn sticky_clients_keep_their_member_and_only_a_failed_members_clients_move() {
    let mut backends = Backend::group(23, 4, Mode::Ok);
    let port = backends[0].addr.port();
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        &format!(
            "checks:
  web: {{ tcp: {{ port: {port} }}, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }}
pools:
  s:
    policy: sticky
    checks: [web]
    max_answers: 1
    members: [{{ address: 127.0.23.1 }}, {{ address: 127.0.23.2 }}, {{ address: 127.0.23.3 }}, {{ address: 127.0.23.4 }}]
names:
  s: {{ pool: s }}
"
        ),
    );
    let s = Server::start(d.path(), &[]);
    for i in 1..=4 {
        s.wait_log(&format!("health: 127.0.23.{i} check web: unknown -> up"), 5);
    }
    let prefixes: Vec<String> = (0..400u32)
        .map(|i| format!("10.{}.{}.0", i / 256 + 40, i % 256))
        .collect();
    let map = |s: &Server| -> Vec<String> {
        prefixes
            .iter()
            .map(|p| {
                let m = s.udp(&Ask::new("s.t.test.", "A").ecs(p, 24));
                // the hashed prefix decided: scope 24
                assert_eq!(ecs_of(&m).map(|e| e.2), Some(24));
                addresses(&m).remove(0)
            })
            .collect()
    };
    let before = map(&s);
    assert_eq!(
        before,
        map(&s),
        "the same client always gets the same member"
    );
    let used: BTreeSet<&String> = before.iter().collect();
    assert_eq!(used.len(), 4, "clients spread over every member");

    backends[3].stop();
    s.wait_log("127.0.23.4 check web: up -> down", 5);
    let during = map(&s);
    for (i, (b, a)) in before.iter().zip(&during).enumerate() {
        if b == "127.0.23.4" {
            assert_ne!(a, "127.0.23.4", "{}", prefixes[i]);
        } else {
            assert_eq!(a, b, "{} moved though its member is up", prefixes[i]);
        }
    }
    backends[3].restart();
    s.wait_log("127.0.23.4 check web: down -> up", 5);
    assert_eq!(map(&s), before, "clients return to their member");
}

/// Share of first answers per address over `n` queries.
fn shares(s: &Server, name: &str, n: usize) -> std::collections::BTreeMap<String, f64> {
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        let m = s.udp(&Ask::new(name, "A"));
        if let Some(r) = m.answers.first() {
            *counts.entry(r.data.to_string()).or_insert(0usize) += 1;
        }
    }
    counts
        .into_iter()
        .map(|(k, v)| (k, v as f64 / n as f64))
        .collect()
}

#[test]
fn least_loaded_shifts_answers_away_from_a_busy_member_without_herding() {
    // Three members reporting load over HTTP (busy percent), and three HAProxy agents.
    let http = Backend::group(24, 3, Mode::Text);
    let port = http[0].addr.port();
    for b in &http {
        b.set_text("10");
    }
    let a1 = Backend::start("127.0.25.1", 0, Mode::Agent);
    let aport = a1.addr.port();
    let agents = [a1, Backend::start("127.0.25.2", aport, Mode::Agent)];
    agents[0].set_text("up 100%");
    agents[1].set_text("up 100%");
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        &format!(
            "pools:
  api:
    policy: least-loaded
    max_answers: 1
    load: {{ http: {{ port: {port}, path: /load }}, interval: 300ms, timeout: 200ms }}
    members: [{{ address: 127.0.24.1 }}, {{ address: 127.0.24.2 }}, {{ address: 127.0.24.3 }}]
  agent:
    policy: least-loaded
    max_answers: 1
    load: {{ agent: {{ port: {aport} }}, interval: 300ms, timeout: 200ms }}
    members: [{{ address: 127.0.25.1 }}, {{ address: 127.0.25.2 }}]
names:
  api: {{ pool: api }}
  agent: {{ pool: agent }}
"
        ),
    );
    let s = Server::start(d.path(), &[]);
    std::thread::sleep(Duration::from_millis(700));
    let even = shares(&s, "api.t.test.", 600);
    for (m, share) in &even {
        assert!(
            (0.2..0.47).contains(share),
            "even load, uneven share: {m} {share} in {even:?}"
        );
    }
    // Member 1 reports 90 % load: within two report intervals it gets a small share, and the
    // others share the rest — nobody gets everything.
    http[0].set_text("90");
    std::thread::sleep(Duration::from_millis(2 * 330 + 100));
    let after = shares(&s, "api.t.test.", 600);
    let busy = after.get("127.0.24.1").copied().unwrap_or(0.0);
    assert!(busy < 0.2, "busy member still gets {busy}: {after:?}");
    for other in ["127.0.24.2", "127.0.24.3"] {
        let sh = after.get(other).copied().unwrap_or(0.0);
        assert!((0.3..0.62).contains(&sh), "{other}: {sh} in {after:?}");
    }
    // An agent saying "drain" gets no new answers while the other member is up; "down" likewise.
    agents[0].set_text("drain");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        shares(&s, "agent.t.test.", 100).get("127.0.25.2"),
        Some(&1.0)
    );
    agents[0].set_text("up 100%");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        shares(&s, "agent.t.test.", 300)
            .get("127.0.25.1")
            .copied()
            .unwrap_or(0.0)
            > 0.3
    );
    agents[1].set_text("down");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        shares(&s, "agent.t.test.", 100).get("127.0.25.1"),
        Some(&1.0)
    );
    // The history says why: each change of an agent's state, in order.
    let (_, h) = s.http("GET", "/v1/history?member=127.0.25.1", "", None);
    let h: serde_json::Value = serde_json::from_str(&h).unwrap();
    let changes: Vec<(String, String)> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["check"] == "load agent")
        .map(|e| (e["from"].to_string(), e["to"].to_string()))
        .collect();
    let want = [("\"drain\"", "\"up\""), ("\"up\"", "\"drain\"")];
    assert!(
        changes
            .iter()
            .zip(want)
            .all(|((f, t), (wf, wt))| f == wf && t == wt),
        "{changes:?}"
    );
    let (_, h) = s.http("GET", "/v1/history?member=127.0.25.2", "", None);
    assert!(h.contains("the agent reports down"), "{h}");
}

#[test]
fn slow_start_ramps_a_returning_member() {
    let mut b = Backend::group(26, 3, Mode::Ok);
    let port = b[0].addr.port();
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        &format!(
            "checks:
  web: {{ tcp: {{ port: {port} }}, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }}
pools:
  w:
    policy: weighted
    max_answers: 1
    checks: [web]
    slow_start: 4s
    members: [{{ address: 127.0.26.1 }}, {{ address: 127.0.26.2 }}, {{ address: 127.0.26.3 }}]
names:
  w: {{ pool: w }}
"
        ),
    );
    let s = Server::start(d.path(), &[]);
    for i in 1..=3 {
        s.wait_log(&format!("health: 127.0.26.{i} check web: unknown -> up"), 5);
    }
    b[0].stop();
    s.wait_log("127.0.26.1 check web: up -> down", 5);
    b[0].restart();
    s.wait_log("127.0.26.1 check web: down -> up", 5);
    let back = Instant::now();
    // just back: about 10 % of the weight (≈ 5 % of first answers), well below its full third
    let early = shares(&s, "w.t.test.", 400)
        .get("127.0.26.1")
        .copied()
        .unwrap_or(0.0);
    assert!(early < 0.15, "{early}");
    // after the window it has its full share again
    std::thread::sleep(
        Duration::from_secs(4).saturating_sub(back.elapsed()) + Duration::from_millis(500),
    );
    let late = shares(&s, "w.t.test.", 600)
        .get("127.0.26.1")
        .copied()
        .unwrap_or(0.0);
    assert!((0.25..0.42).contains(&late), "{late}");
}

/// A load body whose 64th octet falls inside a character used to panic the member's load
/// prober, silently: its reports stopped for good. Now the report is refused and the prober
/// goes on, so a later "90" still moves answers away from the member.
#[test]
fn a_load_body_cut_inside_a_character_does_not_stop_the_prober() {
    let http = Backend::group(27, 2, Mode::Text);
    let port = http[0].addr.port();
    http[0].set_text(&format!("{}é50", " ".repeat(63)));
    http[1].set_text("10");
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        &format!(
            "pools:
  api:
    policy: least-loaded
    max_answers: 1
    load: {{ http: {{ port: {port}, path: /load }}, interval: 200ms, timeout: 150ms }}
    members: [{{ address: 127.0.27.1 }}, {{ address: 127.0.27.2 }}]
names:
  api: {{ pool: api }}
"
        ),
    );
    let s = Server::start(d.path(), &[]);
    // Several reports with the broken body.
    eventually(Duration::from_secs(10), "no load requests", || {
        (http[0].requests.load(std::sync::atomic::Ordering::Relaxed) >= 3).then_some(())
    });
    http[0].set_text("90");
    let mut busy = 0.0;
    poll(Duration::from_secs(10), Duration::from_millis(200), || {
        busy = shares(&s, "api.t.test.", 300)
            .get("127.0.27.1")
            .copied()
            .unwrap_or(0.0);
        (busy < 0.3).then_some(())
    })
    .unwrap_or_else(|| panic!("the prober stopped: 127.0.27.1 still gets {busy}"));
    assert!(!s.log().contains("panicked"), "{}", s.log());
}
