//! Small MaxMind DB files written by the tests themselves (with `maxminddb-writer`): location
//! records in GeoIP2's layout or the flat one, and ASN records, for IPv4 and IPv6 networks,
//! nested ones too.

use std::net::IpAddr;
use std::path::Path;

use maxminddb_writer::Database;
use maxminddb_writer::metadata::IpVersion;
use maxminddb_writer::paths::IpAddrWithMask;
use serde::Serialize;
use serde_json::{Value, json};

/// A GeoIP2 City record: continent, country, optional subdivision and coordinates.
pub fn city(
    continent: &str,
    country: &str,
    subdivision: Option<&str>,
    coords: Option<(f64, f64)>,
) -> Value {
    let mut r = json!({
        "continent": { "code": continent, "names": { "en": "somewhere" } },
        "country": { "iso_code": country, "names": { "en": "some country" } },
        "city": { "names": { "en": "some city" } },
    });
    if let Some(s) = subdivision {
        r["subdivisions"] = json!([{ "iso_code": s }]);
    }
    if let Some((lat, lon)) = coords {
        r["location"] = json!({ "latitude": lat, "longitude": lon, "time_zone": "UTC" });
    }
    r
}

/// A GeoLite2-ASN record.
#[derive(Serialize, Clone)]
pub struct Asn {
    pub autonomous_system_number: u32,
    pub autonomous_system_organization: String,
}

pub fn asn(number: u32) -> Asn {
    Asn {
        autonomous_system_number: number,
        autonomous_system_organization: format!("AS{number} network"),
    }
}

/// Write an IPv6 database (IPv4 networks in its ::/96 subtree, as MaxMind's are) of
/// `entries`, network text and record. Shorter networks are written first, so longer ones
/// nested in them override them.
pub fn write<T: Serialize + Clone>(path: &Path, kind: &str, entries: &[(&str, T)]) {
    let mut db = Database::default();
    db.metadata.ip_version = IpVersion::V6;
    db.metadata.database_type = kind.to_string();
    db.metadata.binary_format_major_version = 2;
    db.metadata.languages = vec!["en".into()];
    db.metadata.build_epoch = 1_700_000_000;
    db.metadata.description = [("en".to_string(), format!("{kind} written by a test"))].into();
    let mut nets: Vec<(IpAddrWithMask, T)> = entries
        .iter()
        .map(|(net, rec)| {
            let (addr, len) = net.split_once('/').expect("a network with a prefix length");
            let addr: IpAddr = addr.parse().expect("an address");
            let len: u8 = len.parse().expect("a prefix length");
            let at = match addr {
                IpAddr::V4(a) => IpAddrWithMask::new(IpAddr::V6(a.to_ipv6_compatible()), 96 + len),
                v6 => IpAddrWithMask::new(v6, len),
            };
            (at, rec.clone())
        })
        .collect();
    nets.sort_by_key(|(n, _)| n.mask);
    for (net, rec) in nets {
        let data = db.insert_value(rec).expect("a record");
        db.insert_node(net, data);
    }
    let file = std::fs::File::create(path).expect("create the database file");
    db.write_to(std::io::BufWriter::new(file))
        .expect("write the database");
}

/// A zone on the world's sites (`world_files`): matched by country, continent and ASN, with
/// coordinates for `nearest` (pool and name `near`, up to 3 answers, so a client the database
/// does not place gets every member) and `topology` (`topo`).
pub const ZONE: &str = "zone: geo.test.
soa: { mname: ns1.geo.test., rname: hostmaster.geo.test. }
ns: [ns1.geo.test.]
records:
  ns1: { A: [192.0.2.53] }
sites:
  fra: { countries: [DE], coordinates: [50.11, 8.68] }
  iad: { continents: [NA], coordinates: [38.95, -77.45] }
  sin: { asns: [4773], coordinates: [1.35, 103.82] }
pools:
  near:
    policy: [nearest, round-robin]
    max_answers: 3
    members: [{ address: 192.0.2.1, site: fra }, { address: 192.0.2.2, site: iad }, { address: 192.0.2.3, site: sin }]
  topo:
    policy: [topology, weighted]
    members: [{ address: 192.0.2.1, site: fra }, { address: 192.0.2.2, site: iad }]
names:
  near: { pool: near }
  topo: { pool: topo }
";

/// A world in small: a database with German, English, US, Brazilian and Singaporean networks
/// (one US network in AS 4773), and sites matched by country, subdivision, continent, ASN and
/// prefix, with coordinates.
pub fn world(d: &std::path::Path) -> (std::sync::Arc<gslbd::geo::GeoDb>, Vec<gslbd::model::Site>) {
    use gslbd::model::{Site, SiteRef};
    let (c, a) = world_files(d);
    let db = gslbd::geo::GeoDb::open(Some(&c), Some(&a)).unwrap();
    let site = |name: &str, f: &dyn Fn(&mut Site)| {
        let mut s = Site {
            name: name.into(),
            ..Site::default()
        };
        f(&mut s);
        s
    };
    let sites = vec![
        site("fra", &|s| {
            s.countries = vec![*b"DE"];
            s.coordinates = Some((50.11, 8.68));
        }),
        site("iad", &|s| {
            s.continents = vec![*b"NA"];
            s.coordinates = Some((38.95, -77.45));
            s.fallback = vec![SiteRef::Site(0)];
        }),
        site("sin", &|s| {
            s.asns = vec![4773];
            s.coordinates = Some((1.35, 103.82));
        }),
        site("lon", &|s| {
            s.subdivisions = vec![(*b"GB", *b"ENG")];
            s.coordinates = Some((51.5, -0.13));
        }),
        site("lab", &|s| s.nets = vec!["12.34.0.0/16".parse().unwrap()]),
    ];
    (db, sites)
}

/// The world's databases, written into `d`: `city.mmdb` and `asn.mmdb`.
pub fn world_files(d: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (c, a) = (d.join("city.mmdb"), d.join("asn.mmdb"));
    write(
        &c,
        "GeoIP2-City",
        &[
            (
                "81.2.69.0/24",
                city("EU", "GB", Some("ENG"), Some((51.5, -0.12))),
            ),
            ("5.0.0.0/8", city("EU", "DE", Some("HE"), Some((50.1, 8.7)))),
            (
                "2001:db8:de::/48",
                city("EU", "DE", None, Some((52.5, 13.4))),
            ),
            (
                "12.0.0.0/8",
                city("NA", "US", Some("CA"), Some((37.7, -122.4))),
            ),
            (
                "12.34.0.0/16",
                city("NA", "US", Some("NY"), Some((40.7, -74.0))),
            ),
            ("177.0.0.0/8", city("SA", "BR", None, Some((-23.5, -46.6)))),
            ("202.0.0.0/8", city("AS", "SG", None, Some((1.35, 103.8)))),
            ("41.0.0.0/8", city("AF", "ZA", None, None)),
        ],
    );
    write(
        &a,
        "GeoLite2-ASN",
        &[("12.34.56.0/24", asn(4773)), ("5.0.0.0/8", asn(3320))],
    );
    (c, a)
}

/// The `geoip:` setting of gslbd.yaml naming the databases `city` and `asn`.
pub fn geoip_setting(city: &Path, asn: &Path) -> String {
    format!(
        "geoip: {{ database: {}, asn_database: {} }}\n",
        city.display(),
        asn.display()
    )
}

/// The world's databases written into `d`, and `d/gslbd.yaml` naming them under `geoip:`.
pub fn world_config(d: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let (city, asn) = world_files(d);
    let config = d.join("gslbd.yaml");
    std::fs::write(&config, geoip_setting(&city, &asn)).expect("write gslbd.yaml");
    (config, city, asn)
}
