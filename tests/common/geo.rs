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
