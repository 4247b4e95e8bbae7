//! Several gslbd nodes that agree through a real etcd: quorum health from each node's own
//! probes (each probes from its own source address), overrides taken on one node applied on
//! all, and answers that go on when etcd goes away.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::backend::{Backend, Mode};
use common::etcd::{self, Etcd};
use common::{Ask, Server, addresses, eventually};
use serde_json::Value;

/// A zone with a round-robin pool and a sticky one over the same members, checked over HTTP
/// every second (two failures take a member down, two successes bring it back).
fn zone(port: u16, members: &[&str]) -> String {
    let list: Vec<String> = members
        .iter()
        .map(|m| format!("{{ address: {m} }}"))
        .collect();
    let list = list.join(", ");
    format!(
        "zone: c.test.
soa: {{ mname: ns1.c.test., rname: h.c.test. }}
ns: [ns1.c.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
checks:
  web: {{ http: {{ port: {port}, path: / }}, interval: 1s, timeout: 500ms, rise: 2, fall: 2 }}
pools:
  web:
    policy: round-robin
    max_answers: 8
    checks: [web]
    members: [{list}]
  sticky:
    policy: sticky
    max_answers: 1
    checks: [web]
    members: [{list}]
names:
  www: {{ pool: web }}
  s: {{ pool: sticky }}
"
    )
}

/// The directory of node `n` (1-based): its gslbd.yaml (probing from 127.0.80.n) and zone.
fn node_dir(root: &Path, n: usize, etcd: &[&str], zone: &str) -> PathBuf {
    let dir = root.join(format!("ns{n}"));
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(dir.join("zones/c.yaml"), zone).unwrap();
    let endpoints: Vec<String> = etcd.iter().map(|e| format!("\"{e}\"")).collect();
    std::fs::write(
        dir.join("gslbd.yaml"),
        format!(
            "state_dir: state
cluster:
  node: ns{n}
  etcd: [{}]
  prefix: /test/
  probe_source: 127.0.80.{n}
  quorum: majority
",
            endpoints.join(", ")
        ),
    )
    .unwrap();
    dir
}

fn status(s: &Server) -> Value {
    let (code, body) = s.http("GET", "/v1/status", "", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn answers(s: &Server, name: &str) -> BTreeSet<String> {
    addresses(&s.udp(&Ask::new(name, "A")))
        .into_iter()
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Until every node answers `want` for www.c.test; returns how long that took.
fn all_answer(nodes: &[Server], want: &[&str], within: Duration, what: &str) -> Duration {
    let t = Instant::now();
    eventually(within, what, || {
        nodes
            .iter()
            .all(|s| answers(s, "www.c.test") == set(want))
            .then_some(())
    });
    t.elapsed()
}

/// Until every node has seen all `n` nodes live.
fn wait_cluster(nodes: &[Server], n: usize) {
    eventually(
        Duration::from_secs(20),
        "the nodes never saw each other",
        || {
            nodes
                .iter()
                .all(|s| {
                    let st = status(s);
                    st["cluster"]["connected"] == true
                        && st["cluster"]["nodes"].as_array().map(Vec::len) == Some(n)
                })
                .then_some(())
        },
    );
}

/// What node `s` itself sees of `member` (its own vote).
fn own_vote(s: &Server, node: &str, member: &str) -> Option<String> {
    let st = status(s);
    let m = st["zones"][0]["pools"][0]["members"]
        .as_array()?
        .iter()
        .find(|m| m["address"] == member)?
        .clone();
    m["checks"][0]["votes"]
        .as_array()?
        .iter()
        .find(|v| v["node"] == node)
        .and_then(|v| v["status"].as_str().map(str::to_string))
}

#[test]
fn three_nodes_vote_and_share_overrides() {
    if !etcd::available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let e = Etcd::start("127.0.79.1", d.path());
    let backends = Backend::group(81, 3, Mode::Ok);
    let port = backends[0].addr.port();
    let members = ["127.0.81.1", "127.0.81.2", "127.0.81.3"];
    let z = zone(port, &members);
    let dirs: Vec<PathBuf> = (1..=3)
        .map(|n| node_dir(d.path(), n, &[&e.client_url], &z))
        .collect();
    let mut nodes: Vec<Server> = dirs.iter().map(|p| Server::start(p, &[])).collect();
    wait_cluster(&nodes, 3);
    all_answer(
        &nodes,
        &members,
        Duration::from_secs(10),
        "not every member answered at first",
    );

    // NSID names the node that answers (RFC 5001).
    for (i, s) in nodes.iter().enumerate() {
        let m = s.udp(&Ask::new("www.c.test", "A").nsid());
        assert_eq!(common::nsid_of(&m), Some(format!("ns{}", i + 1)));
        let plain = s.udp(&Ask::new("www.c.test", "A"));
        assert_eq!(common::nsid_of(&plain), None, "only when asked");
    }

    // Node 1 alone cannot reach 127.0.81.1: its own vote says down, the majority keeps it.
    backends[0].refuse_from(&["127.0.80.1"]);
    eventually(
        Duration::from_secs(10),
        "ns1 never saw 127.0.81.1 down",
        || (own_vote(&nodes[0], "ns1", "127.0.81.1").as_deref() == Some("down")).then_some(()),
    );
    // Every node has ns1's vote (through etcd, a few ms later), and still answers it.
    eventually(
        Duration::from_secs(5),
        "ns1's vote did not reach every node",
        || {
            nodes
                .iter()
                .all(|s| own_vote(s, "ns1", "127.0.81.1").as_deref() == Some("down"))
                .then_some(())
        },
    );
    for s in &nodes {
        assert_eq!(answers(s, "www.c.test"), set(&members), "one vote of three");
    }

    // Two of three: gone from every node within interval × fall + 2 s (+ slack for CI).
    backends[0].refuse_from(&["127.0.80.1", "127.0.80.2"]);
    let took = all_answer(
        &nodes,
        &["127.0.81.2", "127.0.81.3"],
        Duration::from_secs(12),
        "a member two nodes see down stayed in some node's answers",
    );
    eprintln!("two votes down -> out of every node's answers after {took:?}");
    let st = status(&nodes[2]);
    let m1 = &st["zones"][0]["pools"][0]["members"][0];
    assert_eq!(m1["status"], "down", "{m1:#}");
    assert_eq!(
        m1["checks"][0]["votes"].as_array().unwrap().len(),
        3,
        "{m1:#}"
    );

    // Sticky and weighted choices agree across nodes: the same client gets the same member.
    for c in 0..40u8 {
        let ask = Ask::new("s.c.test", "A").ecs(&format!("10.{c}.7.0"), 24);
        let got: Vec<Vec<String>> = nodes.iter().map(|s| addresses(&s.udp(&ask))).collect();
        assert!(
            got.windows(2).all(|w| w[0] == w[1]),
            "client 10.{c}.7.0: {got:?}"
        );
    }

    // Back for everyone.
    backends[0].refuse_from(&[]);
    let took = all_answer(
        &nodes,
        &members,
        Duration::from_secs(12),
        "the member never came back",
    );
    eprintln!("back on every node after {took:?}");

    // A drain through node 1 reaches nodes 2 and 3 within a second (a watch, not polling).
    let t = Instant::now();
    let (code, body) = nodes[0].http(
        "POST",
        "/v1/members/127.0.81.3/drain",
        r#"{"reason": "patching"}"#,
        None,
    );
    assert_eq!(code, 200, "{body}");
    let took = all_answer(
        &nodes,
        &["127.0.81.1", "127.0.81.2"],
        Duration::from_secs(3),
        "the drain did not reach every node",
    );
    eprintln!(
        "drain on ns1 -> every node after {took:?} ({:?} from the request)",
        t.elapsed()
    );
    let st = status(&nodes[1]);
    let m3 = &st["zones"][0]["pools"][0]["members"][2];
    assert_eq!(m3["override"]["kind"], "drain", "{m3:#}");
    assert_eq!(m3["override"]["node"], "ns1", "{m3:#}");
    assert!(
        nodes[2]
            .log()
            .contains("override from the cluster: 127.0.81.3 drain (patching)"),
        "{}",
        nodes[2].log()
    );

    // Still drained after every node restarts.
    for s in nodes.drain(..) {
        drop(s);
    }
    let nodes: Vec<Server> = dirs.iter().map(|p| Server::start(p, &[])).collect();
    wait_cluster(&nodes, 3);
    all_answer(
        &nodes,
        &["127.0.81.1", "127.0.81.2"],
        Duration::from_secs(10),
        "the drain was lost in the restart",
    );

    // Cleared on node 3; an expiring force-down through node 2 ends everywhere on time.
    let (code, body) = nodes[2].http("POST", "/v1/members/127.0.81.3/undrain", "", None);
    assert_eq!(code, 200, "{body}");
    all_answer(
        &nodes,
        &members,
        Duration::from_secs(3),
        "the undrain did not reach every node",
    );
    let (code, body) = nodes[1].http(
        "POST",
        "/v1/members/127.0.81.2/force-down",
        r#"{"reason": "test", "expires": "3s"}"#,
        None,
    );
    assert_eq!(code, 200, "{body}");
    all_answer(
        &nodes,
        &["127.0.81.1", "127.0.81.3"],
        Duration::from_secs(3),
        "force-down did not reach every node",
    );
    let took = all_answer(
        &nodes,
        &members,
        Duration::from_secs(10),
        "the force-down never expired",
    );
    eprintln!("a 3 s force-down ended everywhere after {took:?}");
    drop(e);
}

#[test]
fn answers_go_on_without_etcd_and_agree_again_after() {
    if !etcd::available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mut e = Etcd::start("127.0.79.2", d.path());
    let mut backends = Backend::group(82, 2, Mode::Ok);
    let port = backends[0].addr.port();
    let members = ["127.0.82.1", "127.0.82.2"];
    let z = zone(port, &members);
    let nodes: Vec<Server> = (1..=3)
        .map(|n| Server::start(&node_dir(d.path(), n, &[&e.client_url], &z), &[]))
        .collect();
    wait_cluster(&nodes, 3);
    all_answer(
        &nodes,
        &members,
        Duration::from_secs(10),
        "not every member answered at first",
    );
    // Every node has every node's votes before etcd goes.
    eventually(
        Duration::from_secs(10),
        "the votes were never shared",
        || {
            nodes
                .iter()
                .all(|s| {
                    ["ns1", "ns2", "ns3"]
                        .iter()
                        .all(|n| own_vote(s, n, "127.0.82.1").as_deref() == Some("up"))
                })
                .then_some(())
        },
    );

    // A query loop against every node: not one answer may be lost.
    let addrs: Vec<_> = nodes.iter().map(|s| s.addr).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, lost) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let looper = {
        let (stop, sent, lost) = (stop.clone(), sent.clone(), lost.clone());
        std::thread::spawn(move || {
            let q = Ask::new("www.c.test", "A").bytes();
            let end = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                for a in &addrs {
                    sent.fetch_add(1, Ordering::Relaxed);
                    let ok =
                        common::udp_exchange(*a, &q, Duration::from_secs(1)).is_some_and(|r| {
                            hickory_proto::op::Message::from_vec(&r)
                                .is_ok_and(|m| !m.answers.is_empty())
                        });
                    if !ok {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    e.kill();
    eventually(
        Duration::from_secs(10),
        "no node noticed that etcd is gone",
        || {
            nodes
                .iter()
                .all(|s| status(s)["cluster"]["connected"] == false)
                .then_some(())
        },
    );
    // A backend dies meanwhile: each node's own observations take it out.
    backends[0].stop();
    let took = all_answer(
        &nodes,
        &["127.0.82.2"],
        Duration::from_secs(15),
        "a dead member stayed in the answers without etcd",
    );
    eprintln!("without etcd, a dead member left every node's answers after {took:?}");
    for s in &nodes {
        assert!(
            s.log().contains("cluster: lost the session with etcd"),
            "{}",
            s.log()
        );
        s.wait_log("this node decides from its own", 10);
    }

    // etcd back: connected and in agreement again within 5 s.
    backends[0].restart();
    let t = Instant::now();
    e.restart();
    eventually(
        Duration::from_secs(10),
        "the nodes did not reconnect",
        || {
            nodes
                .iter()
                .all(|s| {
                    let st = status(s);
                    st["cluster"]["connected"] == true
                        && st["cluster"]["nodes"].as_array().map(Vec::len) == Some(3)
                })
                .then_some(())
        },
    );
    eprintln!("reconnected to etcd after {:?}", t.elapsed());
    all_answer(
        &nodes,
        &members,
        Duration::from_secs(10),
        "the nodes do not agree again",
    );
    stop.store(true, Ordering::Relaxed);
    looper.join().unwrap();
    let (sent, lost) = (sent.load(Ordering::Relaxed), lost.load(Ordering::Relaxed));
    eprintln!("query loop: {sent} queries, {lost} without an answer");
    assert!(sent > 100, "{sent}");
    assert_eq!(lost, 0, "answers lost while etcd was away");
}

#[test]
fn an_etcd_cluster_that_loses_a_member_changes_nothing() {
    if !etcd::available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mut members_etcd = Etcd::cluster(["127.0.79.11", "127.0.79.12", "127.0.79.13"], d.path());
    let endpoints: Vec<String> = members_etcd.iter().map(|m| m.client_url.clone()).collect();
    let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let backends = Backend::group(83, 2, Mode::Ok);
    let port = backends[0].addr.port();
    let members = ["127.0.83.1", "127.0.83.2"];
    let z = zone(port, &members);
    let nodes: Vec<Server> = (1..=2)
        .map(|n| Server::start(&node_dir(d.path(), n, &endpoints, &z), &[]))
        .collect();
    wait_cluster(&nodes, 2);
    all_answer(
        &nodes,
        &members,
        Duration::from_secs(10),
        "not every member answered at first",
    );

    // The member the nodes talk to first dies; they go on with the others.
    members_etcd[0].kill();
    let (code, body) = nodes[1].http("POST", "/v1/members/127.0.83.1/drain", "", None);
    // If the dead member was the leader, the election and the client's move to another
    // member can outlast the API's 3 s wait on a loaded machine: the override then applies
    // on this node at once and is written to etcd when it answers (a 503 that says so).
    assert!(
        code == 200 || (code == 503 && body.contains("written to etcd when it answers")),
        "{code} {body}"
    );
    let took = all_answer(
        &nodes,
        &["127.0.83.2"],
        Duration::from_secs(15),
        "a drain did not propagate with one etcd member down",
    );
    eprintln!("with one of three etcd members down, a drain reached both nodes after {took:?}");
    assert_eq!(answers(&nodes[0], "www.c.test"), set(&["127.0.83.2"]));
    for s in &nodes {
        assert!(!s.log().contains("decides from its own"), "{}", s.log());
    }
}

#[test]
fn without_etcd_overrides_wait_and_a_restart_uses_the_state_file() {
    if !etcd::available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mut e = Etcd::start("127.0.79.3", d.path());
    let backends = Backend::group(84, 2, Mode::Ok);
    let members = ["127.0.84.1", "127.0.84.2"];
    let z = zone(backends[0].addr.port(), &members);
    let dirs: Vec<PathBuf> = (1..=2)
        .map(|n| node_dir(d.path(), n, &[&e.client_url], &z))
        .collect();
    let mut nodes: Vec<Server> = dirs.iter().map(|p| Server::start(p, &[])).collect();
    wait_cluster(&nodes, 2);
    let (code, body) = nodes[0].http(
        "POST",
        "/v1/members/127.0.84.2/drain",
        r#"{"reason": "r"}"#,
        None,
    );
    assert_eq!(code, 200, "{body}");
    all_answer(
        &nodes,
        &["127.0.84.1"],
        Duration::from_secs(3),
        "the drain did not reach ns2",
    );

    // etcd goes; ns2 restarts meanwhile and serves the overrides it kept in state_dir.
    e.kill();
    drop(nodes.pop());
    nodes.push(Server::start(&dirs[1], &[]));
    nodes[1].wait_log("override restored: 127.0.84.2 drain (r)", 5);
    assert_eq!(answers(&nodes[1], "www.c.test"), set(&["127.0.84.1"]));

    // An undrain on ns1 applies there at once; the API says etcd does not have it yet.
    let t = Instant::now();
    let (code, body) = nodes[0].http("POST", "/v1/members/127.0.84.2/undrain", "", None);
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("applies on this node and is written to etcd when it answers"),
        "{body}"
    );
    eprintln!("the API answered after {:?} without etcd", t.elapsed());
    assert_eq!(answers(&nodes[0], "www.c.test"), set(&members));
    assert_eq!(answers(&nodes[1], "www.c.test"), set(&["127.0.84.1"]));

    // etcd back: the pending undrain is written, and ns2 follows.
    e.restart();
    let took = all_answer(
        &nodes,
        &members,
        Duration::from_secs(10),
        "the undrain taken without etcd was lost",
    );
    eprintln!("etcd back: the undrain reached ns2 after {took:?}");
    nodes[0].wait_log("taken while etcd was unreachable is now written", 5);

    // etcd goes again; a drain on ns1, and ns1 restarts before etcd is back: the drain kept
    // in its state_dir is written when etcd returns, and reaches ns2.
    e.kill();
    let (code, body) = nodes[0].http("POST", "/v1/members/127.0.84.1/drain", "", None);
    assert_eq!(code, 503, "{body}");
    nodes.remove(0);
    nodes.insert(0, Server::start(&dirs[0], &[]));
    nodes[0].wait_log("override restored: 127.0.84.1 drain", 5);
    e.restart();
    all_answer(
        &nodes,
        &["127.0.84.2"],
        Duration::from_secs(10),
        "the drain taken before the restart was lost",
    );
    nodes[0].wait_log(
        "taken here before a restart, while etcd was away, is written now",
        5,
    );
}

/// etcd over TLS with client certificates and a user and password: the nodes connect with
/// `ca_file`, `cert_file`, `key_file`, `username` and `password_file`; a wrong password is
/// refused, said in the log and in `ctl status`.
#[test]
fn nodes_reach_an_etcd_with_tls_and_authentication() {
    if !etcd::available() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (e, tls) = Etcd::start_secure("127.0.79.4", d.path());
    let backends = Backend::group(85, 2, Mode::Ok);
    let members = ["127.0.85.1", "127.0.85.2"];
    let z = zone(backends[0].addr.port(), &members);
    let secure = |n: usize, password: &str| {
        let dir = node_dir(d.path(), n, &[&e.client_url], &z);
        std::fs::write(dir.join("etcd.password"), format!("{password}\n")).unwrap();
        let mut yaml = std::fs::read_to_string(dir.join("gslbd.yaml")).unwrap();
        yaml.push_str(&format!(
            "  username: gslbd\n  password_file: etcd.password\n  ca_file: {}\n  cert_file: {}\n  key_file: {}\n",
            tls.ca.display(),
            tls.cert.display(),
            tls.key.display()
        ));
        std::fs::write(dir.join("gslbd.yaml"), yaml).unwrap();
        dir
    };
    let nodes: Vec<Server> = (1..=2)
        .map(|n| Server::start(&secure(n, "secret"), &[]))
        .collect();
    wait_cluster(&nodes, 2);
    let (code, body) = nodes[0].http("POST", "/v1/members/127.0.85.1/drain", "", None);
    assert_eq!(code, 200, "{body}");
    all_answer(
        &nodes,
        &["127.0.85.2"],
        Duration::from_secs(3),
        "the drain did not reach ns2 over TLS",
    );

    let wrong = Server::start(&secure(3, "wrong"), &[]);
    wrong.wait_log("cluster: lost the session with etcd", 10);
    let st = status(&wrong);
    assert_eq!(st["cluster"]["connected"], false, "{st:#}");
    let problem = st["cluster"]["problem"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(problem.contains("auth"), "{problem}");
    eprintln!("a wrong etcd password: {problem}");
}
