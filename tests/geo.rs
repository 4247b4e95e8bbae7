//! GeoIP databases as gslbd reads them: written here with a MaxMind DB writer (GeoIP2's layout
//! and the flat one, ASN records, IPv4 and IPv6, nested networks), then looked up: the
//! location, and the prefix of the network that decided. Damaged files are refused with what
//! is wrong and where.

mod common;

use std::net::IpAddr;

use common::geo::{asn, city, write};
use gslbd::geo::GeoDb;
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn locations_and_networks_are_looked_up() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("city.mmdb");
    write(
        &path,
        "GeoIP2-City",
        &[
            (
                "81.2.69.0/24",
                city("EU", "GB", Some("ENG"), Some((51.5, -0.12))),
            ),
            (
                "10.0.0.0/8",
                city("NA", "US", Some("CA"), Some((37.7, -122.4))),
            ),
            (
                "10.1.0.0/16",
                city("NA", "US", Some("NY"), Some((40.7, -74.0))),
            ),
            (
                "2001:db8::/32",
                city("EU", "DE", Some("BY"), Some((48.1, 11.6))),
            ),
            // DB-IP / IPinfo style: flat fields, no continent
            (
                "192.0.2.0/24",
                json!({"country_code": "SG", "latitude": 1.35, "longitude": 103.8}),
            ),
            // a country without coordinates
            ("198.51.100.0/24", city("OC", "AU", None, None)),
        ],
    );
    let db = GeoDb::open(Some(&path), None).unwrap();
    let at = |a: &str| {
        let (id, prefix) = db.city(ip(a)).unwrap();
        let id = id.unwrap_or_else(|| panic!("{a} not found"));
        (db.locations()[id as usize], prefix)
    };
    let (l, p) = at("81.2.69.142");
    assert_eq!(
        (l.country, l.continent, p),
        (Some(*b"GB"), Some(*b"EU"), 24)
    );
    assert_eq!(l.subdivision, Some(*b"ENG"));
    // In the /8 beside the nested /16, the network is the largest block of the tree that
    // holds the address and not the /16: 10.2.0.0/15, where every address has this record.
    let (l, p) = at("10.2.3.4");
    assert_eq!((l.subdivision, p), (Some(*b"CA\0"), 15));
    let (_, p) = at("10.128.0.1");
    assert_eq!(p, 9);
    // nested: the longer network decides, with its prefix
    let (l, p) = at("10.1.200.1");
    assert_eq!((l.subdivision, p), (Some(*b"NY\0"), 16));
    let (l, p) = at("2001:db8:1::5");
    assert_eq!((l.country, p), (Some(*b"DE"), 32));
    assert_eq!(l.coords, Some((48.1, 11.6)));
    let (l, _) = at("192.0.2.77");
    assert_eq!((l.country, l.continent), (Some(*b"SG"), None));
    assert_eq!(l.coords, Some((1.35, 103.8)));
    let (l, _) = at("198.51.100.1");
    assert_eq!((l.country, l.coords), (Some(*b"AU"), None));
    // not in the database
    assert_eq!(db.city(ip("172.16.0.1")).unwrap().0, None);
    assert_eq!(db.city(ip("2001:db9::1")).unwrap().0, None);
    // a network without data still has a prefix: 128.0.0.0/2 holds no record here
    assert_eq!(db.city(ip("172.16.0.1")).unwrap().1, 2);
    // equal records share one id; every record here is different
    assert_eq!(db.locations().len(), 6, "{:?}", db.locations());
    let d2 = db.describe(ip("10.1.2.3"));
    assert_eq!(d2.country.as_deref(), Some("US"));
    assert_eq!(d2.subdivision.as_deref(), Some("NY"));
    assert_eq!(d2.networks, ["10.1.0.0/16"]);
}

#[test]
fn asns_are_looked_up() {
    let d = tempfile::tempdir().unwrap();
    let (c, a) = (d.path().join("city.mmdb"), d.path().join("asn.mmdb"));
    write(
        &c,
        "GeoIP2-City",
        &[("10.0.0.0/8", city("NA", "US", None, None))],
    );
    write(
        &a,
        "GeoLite2-ASN",
        &[
            ("10.0.0.0/8", asn(64500)),
            ("10.1.0.0/16", asn(64501)),
            ("2001:db8::/48", asn(64502)),
        ],
    );
    let db = GeoDb::open(Some(&c), Some(&a)).unwrap();
    let number = |s: &str| {
        db.asn(ip(s))
            .and_then(|(id, prefix)| Some((db.asns()[id? as usize], prefix)))
    };
    assert_eq!(
        number("10.9.9.9"),
        Some((64500, 13)),
        "10.8.0.0/13: not the /16"
    );
    assert_eq!(number("10.1.9.9"), Some((64501, 16)));
    assert_eq!(number("2001:db8:0:1::1"), Some((64502, 48)));
    assert_eq!(number("11.0.0.1"), None);
    assert_eq!(db.describe(ip("10.1.0.1")).asn, Some(64501));
}

#[test]
fn bad_databases_are_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("city.mmdb");
    write(
        &good,
        "GeoIP2-City",
        &[("10.0.0.0/8", city("NA", "US", None, None))],
    );
    let bytes = std::fs::read(&good).unwrap();

    let missing = d.path().join("missing.mmdb");
    let e = GeoDb::open(Some(&missing), None).err().unwrap().to_string();
    assert!(
        e.contains("missing.mmdb: cannot read it: No such file"),
        "{e}"
    );

    let cut = d.path().join("cut.mmdb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = GeoDb::open(Some(&cut), None).err().unwrap().to_string();
    assert!(e.contains("cut.mmdb: not a MaxMind DB file"), "{e}");

    // the tree intact, the data section overwritten
    let mut damaged = bytes.clone();
    let n = damaged.len();
    for b in &mut damaged[n / 3..n - 200] {
        *b = 0xff;
    }
    let bad = d.path().join("damaged.mmdb");
    std::fs::write(&bad, &damaged).unwrap();
    let e = GeoDb::open(Some(&bad), None).err().unwrap().to_string();
    assert!(e.contains("damaged.mmdb: "), "{e}");

    let text = d.path().join("text.mmdb");
    std::fs::write(&text, "not a database\n").unwrap();
    let e = GeoDb::open(Some(&text), None).err().unwrap().to_string();
    assert!(e.contains("not a MaxMind DB file"), "{e}");

    // an ASN database where the location database belongs, and the other way round
    let asn_db = d.path().join("asn.mmdb");
    write(&asn_db, "GeoLite2-ASN", &[("10.0.0.0/8", asn(64500))]);
    let e = GeoDb::open(Some(&asn_db), None).err().unwrap().to_string();
    assert!(e.contains("no record has a country"), "{e}");
    let e = GeoDb::open(Some(&good), Some(&good))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("no record has an autonomous system number"),
        "{e}"
    );
}

/// A release moved into place with the same size and modification time as the file it
/// replaces (as `rsync -t` or an unpacked archive can leave it) is still read again: the
/// inode and change time differ.
#[test]
fn a_replaced_file_with_the_same_size_and_time_is_read_again() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("city.mmdb");
    let next = d.path().join("city.mmdb.new");
    write(
        &path,
        "GeoIP2-City",
        &[("10.0.0.0/8", city("NA", "US", None, None))],
    );
    write(
        &next,
        "GeoIP2-City",
        &[("10.0.0.0/8", city("EU", "DE", None, None))],
    );
    let (old, new) = (
        std::fs::metadata(&path).unwrap(),
        std::fs::metadata(&next).unwrap(),
    );
    assert_eq!(
        old.len(),
        new.len(),
        "the two releases should be the same size"
    );
    let country = |db: &GeoDb| db.describe(ip("10.1.2.3")).country;
    let db = GeoDb::open(Some(&path), None).unwrap();
    assert_eq!(country(&db).as_deref(), Some("US"));
    std::fs::File::options()
        .write(true)
        .open(&next)
        .unwrap()
        .set_modified(old.modified().unwrap())
        .unwrap();
    std::fs::rename(&next, &path).unwrap();
    let db = GeoDb::open(Some(&path), None).unwrap();
    assert_eq!(country(&db).as_deref(), Some("DE"));
}

#[test]
fn clients_are_placed_by_prefix_asn_subdivision_country_continent_then_distance() {
    use gslbd::model::SiteRef;
    use gslbd::select::place::Placer;
    let d = tempfile::tempdir().unwrap();
    let (db, sites) = common::geo::world(d.path());
    let p = Placer::build(&sites, Some(&db)).unwrap();
    let names = |order: u16| -> Vec<&str> {
        p.orders()[usize::from(order)]
            .iter()
            .map(|r| match r {
                SiteRef::Site(s) => sites[*s].name.as_str(),
                SiteRef::Any => "any",
            })
            .collect()
    };
    let at = |client: &str| {
        let (a, l) = client.split_once('/').unwrap();
        p.place(a.parse().unwrap(), l.parse().unwrap())
    };
    // Germany: fra by country, then the rest nearest Frankfurt first
    let de = at("5.1.2.0/24");
    assert_eq!(de.site, Some(0));
    assert_eq!(names(de.topology), ["fra"]);
    assert_eq!(names(de.nearest), ["fra", "lon", "iad", "sin"]);
    assert_eq!(de.scope, 8, "5.0.0.0/8 decided (city and ASN)");
    // England: lon by subdivision; Germany by IPv6
    assert_eq!(at("81.2.69.0/24").site, Some(3));
    assert_eq!(at("2001:db8:de:1::/56").site, Some(0));
    // The US: iad by continent (its topology order has its fallback), California nearest iad
    let us = at("12.1.2.0/24");
    assert_eq!(us.site, Some(1));
    assert_eq!(names(us.topology), ["iad", "fra"]);
    assert_eq!(names(us.nearest), ["iad", "lon", "fra", "sin"]);
    // AS 4773 inside that network: sin by ASN, before the continent... but 12.34/16 is the
    // lab's prefix, and an explicit prefix comes first.
    assert_eq!(at("12.34.56.0/24").site, Some(4));
    assert_eq!(at("12.34.57.0/24").site, Some(4));
    // Brazil matches no site: topology gives every member, nearest the sites by distance
    let br = at("177.1.0.0/24");
    assert_eq!((br.site, br.topology), (None, 0));
    assert_eq!(names(br.nearest), ["iad", "lon", "fra", "sin"]);
    // South Africa without coordinates, and space the database does not know: every member
    for c in ["41.1.1.0/24", "192.168.1.0/24", "2001:db9::/56"] {
        let x = at(c);
        assert_eq!((x.site, x.topology, x.nearest), (None, 0, 0), "{c}");
    }
    // Unknown space still gets a scope: the longest of the empty blocks of the prefixes
    // (128.0.0.0/1), the ASN database (128.0.0.0/1) and the city database (192.0.0.0/5,
    // beside 202.0.0.0/8)
    assert_eq!(at("192.168.1.0/24").scope, 5);
    assert!(p.unreachable(&sites).is_empty());
}

#[test]
fn an_asn_beats_the_location() {
    use gslbd::model::Site;
    use gslbd::select::place::Placer;
    let d = tempfile::tempdir().unwrap();
    let (db, mut sites) = common::geo::world(d.path());
    // without the lab's prefix, AS 4773's /24 goes to sin, the rest of 12.34/16 to iad
    sites.pop();
    sites.push(Site {
        name: "nowhere".into(),
        countries: vec![*b"JP"],
        ..Site::default()
    });
    let p = Placer::build(&sites, Some(&db)).unwrap();
    let at = |a: &str| p.place(a.parse().unwrap(), 24);
    assert_eq!(at("12.34.56.0").site, Some(2));
    assert_eq!(at("12.34.56.0").scope, 24);
    assert_eq!(at("12.34.57.0").site, Some(1));
    // no record of the database is in Japan
    assert_eq!(p.unreachable(&sites), [4]);
}

proptest::proptest! {
    /// Every client inside the scope of an answer is placed the same: what lets a resolver
    /// cache it for the whole scope (RFC 7871 §7.3.1). Clients are drawn where the test
    /// database has networks, nested ones and holes.
    #[test]
    fn every_client_inside_the_scope_is_placed_the_same(
        first in proptest::sample::select(vec![5u32, 12, 41, 81, 177, 192, 202]),
        rest in 0u32..(1 << 24),
        others in proptest::collection::vec(0u32..(1 << 24), 16),
    ) {
        use gslbd::select::place::Placer;
        static WORLD: std::sync::OnceLock<(tempfile::TempDir, std::sync::Arc<Placer>)> =
            std::sync::OnceLock::new();
        let (_, p) = WORLD.get_or_init(|| {
            let d = tempfile::tempdir().unwrap();
            let (db, sites) = common::geo::world(d.path());
            let p = Placer::build(&sites, Some(&db)).unwrap();
            (d, p)
        });
        let client = (first << 24) | (rest & 0x00ff_ff00);
        let a = p.place(IpAddr::V4(client.into()), 24);
        proptest::prop_assert!(a.scope <= 24);
        let mask = if a.scope == 0 { 0 } else { u32::MAX << (32 - a.scope) };
        for o in others {
            // another /24 inside client/scope
            let b = (client & mask) | ((o << 8) & !mask);
            let pb = p.place(IpAddr::V4(b.into()), 24);
            proptest::prop_assert_eq!(
                (pb.topology, pb.nearest, pb.site),
                (a.topology, a.nearest, a.site),
                "{} and {} in {}/{}",
                std::net::Ipv4Addr::from(client),
                std::net::Ipv4Addr::from(b),
                std::net::Ipv4Addr::from(client & mask),
                a.scope
            );
        }
    }
}

/// The real, full-size database (`contrib/geoip-db.sh`, GeoLite2-City from PyPI), when
/// GSLBD_GEOIP_DB names it (.ci/run does): it loads, its records are resolved, and well-known
/// addresses are where the world knows them to be.
#[test]
fn the_full_city_database_loads_and_locates() {
    let Some(path) = std::env::var_os("GSLBD_GEOIP_DB") else {
        assert!(
            std::env::var_os("GSLBD_LAB_REQUIRED").is_none(),
            "GSLBD_GEOIP_DB is not set (contrib/geoip-db.sh prints it)"
        );
        eprintln!("SKIPPED: GSLBD_GEOIP_DB is not set (contrib/geoip-db.sh)");
        return;
    };
    let t = std::time::Instant::now();
    let db = GeoDb::open(Some(std::path::Path::new(&path)), None).unwrap();
    eprintln!(
        "{} distinct locations in {:?}",
        db.locations().len(),
        t.elapsed()
    );
    assert!(db.locations().len() > 50_000);
    let country = |a: &str| db.describe(ip(a)).country;
    assert_eq!(country("8.8.8.8").as_deref(), Some("US"));
    assert_eq!(country("81.2.69.142").as_deref(), Some("GB"));
    assert_eq!(country("2a00:1450:4001::1").as_deref(), Some("DE"));
    let d = db.describe(ip("81.2.69.142"));
    assert_eq!(d.continent.as_deref(), Some("EU"));
    assert!(d.coordinates.is_some());
    assert_eq!(db.describe(ip("10.1.2.3")).country, None);
    eprintln!(
        "{} octets held for lookups; the file has {}",
        db.bytes(),
        std::fs::metadata(&path).unwrap().len()
    );
    same_as_the_reader(&db, std::path::Path::new(&path), 50_000);
    same_inside_the_scope(&db);
}

/// On the full database (whose ranges are many enough to be indexed), every /24 inside an
/// answer's scope is placed the same, for /24s spread over the IPv4 space and IPv6 /56s in
/// 2a00::/12.
fn same_inside_the_scope(db: &std::sync::Arc<GeoDb>) {
    use gslbd::model::Site;
    let site = |name: &str, countries: &[&[u8; 2]], at: (f32, f32)| Site {
        name: name.into(),
        countries: countries.iter().map(|c| **c).collect(),
        coordinates: Some(at),
        ..Site::default()
    };
    let sites = [
        site("fra", &[b"DE"], (50.11, 8.68)),
        site("iad", &[b"US"], (38.95, -77.45)),
        site("sin", &[], (1.35, 103.82)),
    ];
    let p = gslbd::select::place::Placer::build(&sites, Some(db)).unwrap();
    let mut next = xorshift(0x0123_4567_89ab_cdef);
    let (mut wide, mut placed) = (0, 0);
    for _ in 0..3_000 {
        let v4 = next() as u32 & 0xffff_ff00;
        let a = p.place(IpAddr::V4(v4.into()), 24);
        placed += usize::from(a.site.is_some() || a.nearest != 0);
        wide += usize::from(a.scope <= 16);
        let mask = u32::MAX.checked_shl(32 - u32::from(a.scope)).unwrap_or(0);
        for _ in 0..4 {
            let other = (v4 & mask) | (next() as u32 & !mask & 0xffff_ff00);
            let b = p.place(IpAddr::V4(other.into()), 24);
            assert_eq!(
                (b.topology, b.nearest, b.site),
                (a.topology, a.nearest, a.site),
                "{} and {} in /{}",
                std::net::Ipv4Addr::from(v4),
                std::net::Ipv4Addr::from(other),
                a.scope
            );
        }
        let v6 = (0x2a00u128 << 112)
            | (u128::from(next() as u32 & 0xfff0_0000) << 80)
            | (u128::from(next() as u16 & 0xff00) << 64);
        let a = p.place(IpAddr::V6(v6.into()), 56);
        let mask = u128::MAX.checked_shl(128 - u32::from(a.scope)).unwrap_or(0);
        let other = (v6 & mask) | ((u128::from(next()) << 72) & !mask & (u128::MAX << 72));
        let b = p.place(IpAddr::V6(other.into()), 56);
        assert_eq!(
            (b.topology, b.nearest),
            (a.topology, a.nearest),
            "{v6:x} /{}",
            a.scope
        );
    }
    assert!(placed > 2_000, "{placed} of 3,000 placed");
    assert!(wide > 500, "{wide} of 3,000 with a scope of /16 or wider");
}

/// For `n` addresses spread over both families (IPv4-mapped and 6to4 ones too), gslbd's
/// ranges give the record that MaxMind's own reader finds, and a network that holds the
/// reader's.
fn same_as_the_reader(db: &GeoDb, path: &std::path::Path, n: u32) {
    let reader = maxminddb::Reader::open_readfile(path).unwrap();
    #[derive(serde::Deserialize)]
    struct Country<'a> {
        #[serde(borrow)]
        iso_code: Option<&'a str>,
    }
    #[derive(serde::Deserialize)]
    struct Record<'a> {
        #[serde(borrow)]
        country: Option<Country<'a>>,
    }
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let (mut found, mut checked) = (0, 0);
    for i in 0..n {
        let r = next();
        let a: IpAddr = match i % 4 {
            0 | 1 => std::net::Ipv4Addr::from(r as u32).into(),
            2 => std::net::Ipv6Addr::from((0x2a00u128 << 112) | (u128::from(r) << 48)).into(),
            _ if i % 8 == 3 => std::net::Ipv4Addr::from(r as u32).to_ipv6_mapped().into(),
            _ => {
                std::net::Ipv6Addr::from((0x2002u128 << 112) | (u128::from(r as u32) << 80)).into()
            }
        };
        let hit = reader.lookup(a).unwrap();
        let theirs: Option<Record> = hit.decode().unwrap();
        let theirs = theirs.and_then(|r| r.country?.iso_code.map(str::to_string));
        let ours = db.describe(a);
        assert_eq!(ours.country, theirs, "{a}");
        let their_net = hit.network().unwrap();
        let (_, our_prefix) = db.city(a).unwrap();
        checked += 1;
        if theirs.is_some() {
            found += 1;
            // an IPv4 network of the reader is within the mapped/6to4 address's IPv4 part
            let their_prefix = match (a, their_net.ip()) {
                (IpAddr::V6(v6), IpAddr::V4(_)) if v6.to_ipv4_mapped().is_some() => {
                    96 + their_net.prefix()
                }
                (IpAddr::V6(_), IpAddr::V4(_)) => 16 + their_net.prefix(),
                _ => their_net.prefix(),
            };
            assert!(
                our_prefix <= their_prefix,
                "{a}: /{our_prefix} inside {their_net}"
            );
        }
    }
    assert!(found > checked / 4, "{found} of {checked} addresses found");
}

/// Pseudo-random numbers from a fixed seed, so a failure can be run again.
fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
