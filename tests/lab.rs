//! The delegation lab (examples/lab/lab.sh) end to end: a name resolved through a recursive
//! resolver (unbound) and a parent authority's delegation (NSD) to two gslbd name servers of
//! one cluster (etcd) is their pooled answer, the same from both, and follows a backend going
//! down; with one name server gone, the resolver goes on through the other. The parent and the
//! subzone are signed and unbound validates from the parent's DS: the pool name, a missing
//! name and NODATA come with the `ad` flag (and BIND's delv agrees), before and after a health
//! flip, after both nodes signed again, and through either node.
//!
//! Needs nsd, unbound, python3, dig, delv, BIND's dnssec tools and etcd, and root for port 53.
//! Without them the test says so and passes, unless GSLBD_LAB_REQUIRED=1 (set by .ci/run,
//! which installs them).

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};

const RESOLVER: &str = "127.0.53.3:53";
const GSLBD: &str = "127.0.53.1:53";
const GSLBD2: &str = "127.0.53.4:53";

/// What is missing to run the lab here, if anything.
fn missing() -> Option<String> {
    for tool in [
        "nsd",
        "unbound",
        "python3",
        "dig",
        "delv",
        "dnssec-signzone",
        "etcd",
    ] {
        let found = Command::new("sh")
            .args([
                "-c",
                &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("port 53 needs root".into());
    }
    None
}

/// The lab, brought down (by PID, through the script) when dropped.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    /// Run the script as README shows it: it builds gslbd itself and runs what cargo built.
    /// CARGO_TARGET_DIR points elsewhere than `target/` (the script used to run
    /// `target/release/gslbd` whatever cargo did). Its `debug` shares this test build's
    /// compiled crates (so the dev-profile build the script asks for is nearly done) but not its
    /// binaries: the tests' own gslbd stays as it is.
    fn script(&self, action: &str) -> std::process::Output {
        let profile_dir = std::path::Path::new(env!("CARGO_BIN_EXE_gslbd"))
            .parent()
            .expect("the binary's directory");
        let target = self.dir.path().join("target");
        if !target.exists() {
            let debug = target.join("debug");
            std::fs::create_dir_all(&debug).unwrap();
            for shared in ["deps", "build", ".fingerprint"] {
                std::os::unix::fs::symlink(profile_dir.join(shared), debug.join(shared)).unwrap();
            }
        }
        let mut cmd = Command::new(common::root().join("examples/lab/lab.sh"));
        if let Some(db) = std::env::var_os("GSLBD_GEOIP_DB") {
            cmd.env("GEOIP_DB", db);
        }
        cmd.arg(action)
            .env_remove("GSLBD")
            .env("CARGO_TARGET_DIR", &target)
            .env("LAB_PROFILE", "dev")
            .env("LAB_DIR", self.dir.path())
            .output()
            .expect("run lab.sh")
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// The PID the script recorded for `name`.
    fn pid(&self, name: &str) -> i32 {
        self.log("pids")
            .lines()
            .find_map(|l| {
                let (pid, n) = l.split_once(' ')?;
                (n == name).then(|| pid.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no PID for {name}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let o = self.script("down");
        if !o.status.success() {
            eprintln!("lab down: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

/// Ask `server` for `name` A, with RD set.
fn ask(server: &str, name: &str) -> Option<Message> {
    ask_from(server, name, None)
}

/// Ask `server` for `name` A, with RD set and, if given, an EDNS Client Subnet `(addr, len)`.
fn ask_from(server: &str, name: &str, subnet: Option<(&str, u8)>) -> Option<Message> {
    let mut m = Message::new(0x5151, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).ok()?, RecordType::A));
    if let Some((addr, len)) = subnet {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            addr.parse().ok()?,
            len,
            0,
        )));
        m.set_edns(e);
    }
    exchange(server, &m)
}

/// Send `m` to `server` over UDP; its reply, if one comes within 3 s.
fn exchange(server: &str, m: &Message) -> Option<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let server: SocketAddr = server.parse().ok()?;
    sock.send_to(&m.to_vec().ok()?, server).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
}

/// Ask `server` for `name` `rtype` as `dig +dnssec` does: RD, AD and EDNS with DO.
fn ask_dnssec(server: &str, name: &str, rtype: RecordType) -> Option<Message> {
    let mut m = Message::new(0x5353, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.authentic_data = true;
    m.add_query(Query::query(Name::from_ascii(name).ok()?, rtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.set_dnssec_ok(true);
    m.set_edns(e);
    exchange(server, &m)
}

/// Through the validating resolver: the pool name (via the parent's CNAME and directly), a
/// missing name and NODATA are answered NOERROR with `ad` (validated); the pool's members are
/// returned. delv, validating on its own from the same anchor, agrees.
fn assert_validated(lab: &Lab, members: &BTreeSet<String>, when: &str) {
    for (name, rtype, has_answer) in [
        ("www.example.test.", RecordType::A, true),
        ("www.gslb.example.test.", RecordType::A, true),
        ("nope.gslb.example.test.", RecordType::A, false),
        ("www.gslb.example.test.", RecordType::TXT, false),
    ] {
        // The resolver may still hold an answer from before a change for its TTL (10 s, 5 s
        // while a member is down): wait for the current members, then check it all.
        let mut r = ask_dnssec(RESOLVER, name, rtype).expect("no answer from unbound");
        if has_answer {
            common::poll(Duration::from_secs(15), Duration::from_millis(250), || {
                r = ask_dnssec(RESOLVER, name, rtype).expect("no answer from unbound");
                (&addresses(&r) == members).then_some(())
            });
        }
        assert_eq!(
            r.metadata.response_code,
            ResponseCode::NoError,
            "{when}: {name} {rtype}: {r:?}\nunbound:\n{}",
            lab.log("unbound.log")
        );
        assert!(
            r.metadata.authentic_data,
            "{when}: {name} {rtype} not validated: {r:?}\nunbound:\n{}",
            lab.log("unbound.log")
        );
        if has_answer {
            assert_eq!(&addresses(&r), members, "{when}: {name}");
            assert!(
                r.answers
                    .iter()
                    .any(|rr| rr.record_type() == RecordType::RRSIG),
                "{when}: {name}: {r:?}"
            );
        } else {
            assert!(addresses(&r).is_empty(), "{when}: {name} {rtype}: {r:?}");
        }
    }
    let anchor = lab.dir.path().join("anchor.conf");
    for (name, want) in [
        ("www.gslb.example.test", "; fully validated"),
        (
            "nope.gslb.example.test",
            "; negative response, fully validated",
        ),
    ] {
        let o = Command::new("delv")
            .args(["@127.0.53.3", "-a"])
            .arg(&anchor)
            .args(["+root=example.test", name, "A"])
            .output()
            .expect("run delv");
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains(want), "{when}: delv {name}:\n{out}");
    }
}

/// `near.gslb.example.test` through unbound with ECS for clients the real database places: the
/// first German and the first US /24 among well-known networks, and one it does not know.
fn nearest_through_the_resolver(lab: &Lab, db: &std::path::Path) {
    let geo = gslbd::geo::GeoDb::open(Some(db), None).expect("the GeoIP database");
    let country = |a: &str| geo.describe(a.parse().unwrap()).country;
    let german = ["80.128.0.1", "217.0.0.1", "91.0.0.1", "62.224.0.1"]
        .into_iter()
        .find(|a| country(a).as_deref() == Some("DE"))
        .expect("a German network among the candidates");
    let american = ["8.8.8.8", "4.2.2.2", "12.0.0.1"]
        .into_iter()
        .find(|a| country(a).as_deref() == Some("US"))
        .expect("a US network among the candidates");
    let near = "near.gslb.example.test.";
    for (client, want) in [
        (german, set(&["192.0.2.11"])),
        (american, set(&["192.0.2.12"])),
        (
            "192.0.2.1",
            set(&["192.0.2.11", "192.0.2.12", "192.0.2.13"]),
        ),
    ] {
        let subnet = format!("{}.0", client.rsplit_once('.').unwrap().0);
        let r = ask_from(RESOLVER, near, Some((&subnet, 24))).expect("no answer from unbound");
        assert_eq!(
            addresses(&r),
            want,
            "client {subnet}/24 ({:?}): {r:?}\ngslbd:\n{}",
            geo.describe(client.parse().unwrap()),
            lab.log("gslbd-ns1.log")
        );
        // gslbd's own answer has a scope inside which every client gets it: the last /24 of
        // the scope's block does.
        let direct = ask_from(GSLBD, near, Some((&subnet, 24))).expect("no answer from gslbd");
        assert_eq!(addresses(&direct), want);
        let scope = common::ecs_of(&direct).map(|e| e.2).unwrap();
        assert!(scope <= 24, "scope /{scope} for {subnet}/24");
        let first = u32::from(subnet.parse::<std::net::Ipv4Addr>().unwrap());
        let last = first | (u32::MAX.checked_shr(u32::from(scope)).unwrap_or(0) & !0xff);
        let other = std::net::Ipv4Addr::from(last).to_string();
        let far = ask_from(GSLBD, near, Some((&other, 24))).expect("no answer from gslbd");
        assert_eq!(addresses(&far), want, "{other}/24 inside {subnet}/{scope}");
    }
    eprintln!("nearest through unbound: {german} -> fra, {american} -> iad");
}

/// The inception of the RRSIG over `name` A that `server` gives.
fn inception(server: &str, name: &str) -> Option<u32> {
    let r = ask_dnssec(server, name, RecordType::A)?;
    r.answers.iter().find_map(|rr| match &rr.data {
        RData::Unknown { code, rdata } if *code == RecordType::RRSIG => {
            let b = &rdata.anything;
            Some(u32::from_be_bytes([b[12], b[13], b[14], b[15]]))
        }
        _ => None,
    })
}

fn addresses(m: &Message) -> BTreeSet<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_delegated_name_resolves_through_the_resolver_to_gslbds_healthy_members() {
    if let Some(why) = missing() {
        assert!(
            std::env::var_os("GSLBD_LAB_REQUIRED").is_none(),
            "the lab cannot run: {why}"
        );
        eprintln!(
            "skipped: {why} (apt-get install nsd unbound python3 bind9-dnsutils; run as root)"
        );
        return;
    }
    let lab = Lab {
        dir: tempfile::tempdir().unwrap(),
    };
    let o = lab.script("up");
    assert!(
        o.status.success(),
        "lab up failed:\n{}\ngslbd:\n{}\n{}\nnsd:\n{}\nunbound:\n{}",
        String::from_utf8_lossy(&o.stderr),
        lab.log("gslbd-ns1.log"),
        lab.log("gslbd-ns2.log"),
        lab.log("nsd.log"),
        lab.log("unbound.log")
    );
    // It ran the binary cargo built, and kept talking after the ready check.
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("building gslbd"), "{said}");
    assert!(said.contains("up; stop with"), "{said}");
    let all = set(&["127.0.53.11", "127.0.53.12", "127.0.53.13"]);

    // Through unbound: the parent's CNAME, then gslbd's pool, with RA and without AA.
    let r = ask(RESOLVER, "www.example.test.").expect("no answer from unbound");
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{r:?}");
    assert!(r.metadata.recursion_available && !r.metadata.authoritative);
    let cname = r.answers.iter().find_map(|rr| match &rr.data {
        RData::CNAME(c) => Some(c.0.to_string()),
        _ => None,
    });
    assert_eq!(cname.as_deref(), Some("www.gslb.example.test."));
    assert_eq!(addresses(&r), all);
    // The A records came from gslbd: its pool TTL (10), not the parent's 3600.
    assert!(
        r.answers
            .iter()
            .filter(|rr| rr.record_type() == RecordType::A)
            .all(|rr| rr.ttl <= 10),
        "{r:?}"
    );
    // Each gslbd node answers with authority, the same members.
    for node in [GSLBD, GSLBD2] {
        let direct = ask(node, "www.gslb.example.test.").expect("no answer from gslbd");
        assert!(direct.metadata.authoritative);
        assert_eq!(addresses(&direct), all);
    }
    // 1,000 queries to each node: the same answer sets (only the order rotates).
    let sets = |node: &str| -> BTreeSet<BTreeSet<String>> {
        (0..1000)
            .filter_map(|_| ask(node, "www.gslb.example.test."))
            .map(|m| addresses(&m))
            .collect()
    };
    let (one, two) = (sets(GSLBD), sets(GSLBD2));
    assert_eq!(one, two);
    assert_eq!(one, BTreeSet::from([all.clone()]));
    assert_validated(&lab, &all, "all up");

    // Topology through the resolver's ECS cache (unbound's subnetcache): a 10.2.x client first
    // gets the outer site, cached for the scope gslbd returns (/15). A 10.1.x client then must
    // get the inner site, not that cached answer (with the old scope of /8 it got the outer one).
    let geo = "geo.gslb.example.test.";
    let direct = ask_from(GSLBD, geo, Some(("10.2.7.0", 24))).expect("no answer from gslbd");
    let scope = common::ecs_of(&direct).map(|e| e.2);
    assert_eq!(scope, Some(15), "{direct:?}");
    for (client, want) in [
        ("10.2.7.0", "192.0.2.1"),
        ("10.1.7.0", "192.0.2.2"),
        ("10.2.9.0", "192.0.2.1"),
        ("10.1.200.0", "192.0.2.2"),
    ] {
        let r = ask_from(RESOLVER, geo, Some((client, 24))).expect("no answer from unbound");
        assert_eq!(addresses(&r), set(&[want]), "client {client}/24: {r:?}");
    }

    // Closest by geography, with the full GeoLite2-City database (GSLBD_GEOIP_DB, as .ci/run
    // gives it): through unbound's ECS cache a German client gets Frankfurt's member, an
    // American one Virginia's, one the database does not know every member; validated.
    if let Some(db) = std::env::var_os("GSLBD_GEOIP_DB") {
        nearest_through_the_resolver(&lab, std::path::Path::new(&db));
    } else {
        assert!(
            std::env::var_os("GSLBD_LAB_REQUIRED").is_none(),
            "GSLBD_GEOIP_DB is not set (contrib/geoip-db.sh prints it)"
        );
    }

    // A backend goes down: gslbd drops it, and once the resolver's cache has run out (TTL ≤ 10 s)
    // the resolved answer no longer has it either.
    // SAFETY: kill(2) of a PID the lab script started.
    unsafe { libc::kill(lab.pid("www-127.0.53.12"), libc::SIGTERM) };
    let healthy = set(&["127.0.53.11", "127.0.53.13"]);
    let mut last = BTreeSet::new();
    common::poll(Duration::from_secs(25), Duration::from_millis(250), || {
        last = ask(RESOLVER, "www.example.test.").map_or_else(BTreeSet::new, |m| addresses(&m));
        (last == healthy).then_some(())
    });
    assert_eq!(last, healthy, "gslbd:\n{}", lab.log("gslbd-ns1.log"));
    // Both nodes see it, and log it (poll: the answer may change before the line is flushed).
    let transition = "health: 127.0.53.12 check web: up -> down";
    for log in ["gslbd-ns1.log", "gslbd-ns2.log"] {
        common::poll(Duration::from_secs(5), common::TICK, || {
            lab.log(log).contains(transition).then_some(())
        })
        .unwrap_or_else(|| panic!("no {transition:?} in {log}:\n{}", lab.log(log)));
        let direct = ask(
            if log.contains("ns1") { GSLBD } else { GSLBD2 },
            "www.gslb.example.test.",
        );
        assert_eq!(
            direct.map(|m| addresses(&m)),
            Some(healthy.clone()),
            "{log}"
        );
    }

    // The name still validates after the health flip (the cache ran out above).
    assert_validated(&lab, &healthy, "a backend down");

    // Both nodes sign again (a reload signs everything anew): new signatures, still validated
    // once the resolver's cache has run out.
    let before = inception(GSLBD, "www.gslb.example.test.").expect("an RRSIG from ns1");
    std::thread::sleep(Duration::from_millis(1100));
    for node in ["gslbd-ns1", "gslbd-ns2"] {
        // SAFETY: kill(2) of a PID the lab script started.
        unsafe { libc::kill(lab.pid(node), libc::SIGHUP) };
    }
    for node in [GSLBD, GSLBD2] {
        common::poll(Duration::from_secs(10), common::TICK, || {
            inception(node, "www.gslb.example.test.")
                .is_some_and(|i| i > before)
                .then_some(())
        })
        .unwrap_or_else(|| panic!("{node} did not sign again"));
    }
    std::thread::sleep(Duration::from_secs(11));
    assert_validated(&lab, &healthy, "after signing again");

    // ns1 goes away: once the resolver's cache has run out, it resolves through ns2.
    // SAFETY: kill(2) of a PID the lab script started.
    unsafe { libc::kill(lab.pid("gslbd-ns1"), libc::SIGTERM) };
    std::thread::sleep(Duration::from_secs(11));
    let r = ask(RESOLVER, "www.example.test.").expect("no answer from unbound");
    assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{r:?}");
    assert_eq!(addresses(&r), healthy, "{r:?}");
    // ns2's signatures (same key) validate as ns1's did.
    assert_validated(&lab, &healthy, "through ns2 alone");
}
