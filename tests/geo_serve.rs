//! Closest by geography through the real server: `geoip:` in gslbd.yaml names databases the
//! test writes, a `nearest` pool and a `topology` pool match countries, continents and an AS,
//! and ECS queries over UDP from a German, a US, an AS 4773, a Brazilian and an unknown client
//! get their site's member with the scope of the networks that decided. A site's member goes
//! down and its clients move to the next nearest; a new database file is picked up without a
//! restart, and a damaged one is refused while the last good one keeps serving.

mod common;

use std::time::Duration;

use common::backend::{Backend, Mode};
use common::{Ask, Server, addresses, ecs_of, eventually};

const ZONE: &str = "zone: g.test.
soa: { mname: ns1.g.test., rname: hostmaster.g.test. }
ns: [ns1.g.test.]
records:
  ns1: { A: [192.0.2.53] }
checks:
  web: { http: { port: PORT, path: / }, interval: 200ms, timeout: 100ms, fall: 1, rise: 1 }
sites:
  fra: { countries: [DE], coordinates: [50.11, 8.68] }
  iad: { continents: [NA], coordinates: [38.95, -77.45] }
  sin: { asns: [4773], coordinates: [1.35, 103.82] }
pools:
  web:
    policy: [nearest, round-robin]
    max_answers: 3
    checks: [web]
    members:
      - { address: 127.0.92.1, site: fra }
      - { address: 127.0.92.2, site: iad }
      - { address: 127.0.92.3, site: sin }
  geo:
    policy: [topology, round-robin]
    members:
      - { address: 192.0.2.1, site: fra }
      - { address: 192.0.2.2, site: iad }
names:
  web: { pool: web }
  geo: { pool: geo }
";

/// The members `s` answers `name` with for a client in `subnet`, and the ECS scope.
fn ask(s: &Server, name: &str, subnet: &str) -> (Vec<String>, u8) {
    let (a, l) = subnet.split_once('/').unwrap();
    let m = s.udp(&Ask::new(name, "A").ecs(a, l.parse().unwrap()));
    let scope = ecs_of(&m).map_or(255, |e| e.2);
    (addresses(&m), scope)
}

#[test]
fn ecs_clients_get_their_nearest_healthy_site_with_the_deciding_scope() {
    let backends = Backend::group(92, 3, Mode::Ok);
    let d = tempfile::tempdir().unwrap();
    let (_, _, asn) = common::geo::world_config(d.path());
    std::fs::create_dir(d.path().join("zones")).unwrap();
    let port = backends[0].addr.port().to_string();
    std::fs::write(d.path().join("zones/g.yaml"), ZONE.replace("PORT", &port)).unwrap();
    let mut s = Server::start(d.path(), &[]);
    for m in 1..=3 {
        s.wait_log(&format!("127.0.92.{m} check web: unknown -> up"), 10);
    }
    let (fra, iad, sin) = ("127.0.92.1", "127.0.92.2", "127.0.92.3");
    // Germany by country, the US by continent, AS 4773 by ASN (inside a US network), Brazil
    // (no site) by distance: iad is nearest São Paulo; unknown space gets every member.
    assert_eq!(ask(&s, "web.g.test", "5.1.2.0/24"), (vec![fra.into()], 8));
    assert_eq!(ask(&s, "web.g.test", "12.1.2.0/24"), (vec![iad.into()], 11));
    assert_eq!(
        ask(&s, "web.g.test", "12.34.56.0/24"),
        (vec![sin.into()], 24)
    );
    assert_eq!(ask(&s, "web.g.test", "177.1.0.0/24"), (vec![iad.into()], 8));
    let (mut all, scope) = ask(&s, "web.g.test", "192.168.1.0/24");
    all.sort();
    assert_eq!(
        (all, scope),
        (vec![fra.to_string(), iad.into(), sin.into()], 5)
    );
    assert_eq!(ask(&s, "web.g.test", "2001:db8:de:1::/56").0, [fra]);
    // A /16 source with an AS network inside it (12.34.56.0/24): the answer holds for
    // 12.34.0.0/19 only, a scope longer than the source (RFC 7871 §7.2.1).
    assert_eq!(
        ask(&s, "web.g.test", "12.34.0.0/16"),
        (vec![iad.into()], 19)
    );
    // A source of 0 asks for no tailoring: scope 0.
    assert_eq!(ask(&s, "web.g.test", "0.0.0.0/0").1, 0);
    // topology by the same matches: Brazil matches no site, so every member
    assert_eq!(ask(&s, "geo.g.test", "5.1.2.0/24").0, ["192.0.2.1"]);
    assert_eq!(ask(&s, "geo.g.test", "12.1.2.0/24").0, ["192.0.2.2"]);
    assert_eq!(ask(&s, "geo.g.test", "177.1.0.0/24").0.len(), 2);
    // Without ECS the resolver's own address (127.0.0.1, not in the database) decides.
    assert_eq!(addresses(&s.udp(&Ask::new("web.g.test", "A"))).len(), 3);

    // explain tells where the client is and how far each site is
    let (code, body) = s.http(
        "GET",
        "/v1/explain?name=web.g.test&client=5.1.2.0/24&type=A",
        "",
        None,
    );
    assert_eq!(code, 200, "{body}");
    for want in [
        "\"country\":\"DE\"",
        "\"continent\":\"EU\"",
        "\"asn\":3320",
        "\"order\":[\"fra\",\"iad\",\"sin\"]",
        "\"fra\",",
    ] {
        assert!(body.contains(want), "{want} in {body}");
    }

    // Frankfurt's member dies: German clients go to the next nearest site, iad.
    let mut backends = backends;
    backends[0].stop();
    eventually(
        Duration::from_secs(5),
        "German clients stayed on fra",
        || (ask(&s, "web.g.test", "5.1.2.0/24").0 == [iad]).then_some(()),
    );
    assert_eq!(ask(&s, "web.g.test", "12.34.56.0/24").0, [sin]);

    // A new release of the database (Germany now in AS 4773's hands) is picked up by itself.
    common::geo::write(
        &asn,
        "GeoLite2-ASN",
        &[("5.0.0.0/8", common::geo::asn(4773))],
    );
    eventually(
        Duration::from_secs(15),
        "the new database was not read",
        || (ask(&s, "web.g.test", "5.1.2.0/24").0 == [sin]).then_some(()),
    );
    s.wait_log("geoip: ", 1);
    // A damaged file is refused; the last good database keeps answering.
    let bytes = std::fs::read(&asn).unwrap();
    std::fs::write(&asn, &bytes[..bytes.len() / 2]).unwrap();
    s.wait_log("not a MaxMind DB file", 15);
    assert_eq!(ask(&s, "web.g.test", "5.1.2.0/24").0, [sin]);
    assert_eq!(ask(&s, "web.g.test", "12.1.2.0/24").0, [iad]);
    s.keep(d);
}

#[test]
fn a_missing_database_stops_the_start_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("gslbd.yaml"),
        "geoip: { database: /nonexistent/GeoLite2-City.mmdb }\n",
    )
    .unwrap();
    std::fs::create_dir(d.path().join("zones")).unwrap();
    let o = std::process::Command::new(common::BIN)
        .current_dir(d.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("gslbd.yaml:1:")
            && err.contains("geoip.database: /nonexistent/GeoLite2-City.mmdb: cannot read it"),
        "{err}"
    );
}
