//! GeoIP databases (MaxMind DB format: GeoIP2/GeoLite2 City or Country, DB-IP and IPinfo's
//! flat layouts, and ASN databases), read once per file into what the query path needs.
//!
//! ```text
//!  file ──verify, walk every network──▶ each distinct record decoded once ──▶ Location table
//!                                  └──▶ sorted address ranges ──▶ location id (ranges.rs)
//!  zone build: location id ──▶ the zone's site order; neighbouring ranges with the same
//!              order merged ──▶ the zone's own ranges (select/place.rs)
//!  query: a binary search of the zone's ranges (no tree walk, no decoding, no allocation)
//! ```
//! A lookup gives the id of the client's location (country, continent, subdivision,
//! coordinates) or ASN, and the shortest prefix around the address where that record holds:
//! every address in it has the same record, which is what the ECS scope is built from. The
//! file itself is not kept once read.

pub mod codes;
pub mod ranges;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use codes::Code;
use ranges::{Builder, Families};

/// Where a client is, as far as the database knows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Location {
    pub continent: Option<Code>,
    pub country: Option<Code>,
    /// The first (largest) subdivision: its code within the country (`CA` of `US-CA`).
    pub subdivision: Option<[u8; 3]>,
    /// Latitude and longitude, degrees.
    pub coords: Option<(f32, f32)>,
}

impl Location {
    /// Bits that identify the location, for interning.
    fn key(&self) -> LocationKey {
        (
            self.continent,
            self.country,
            self.subdivision,
            self.coords.map(|(a, b)| (a.to_bits(), b.to_bits())),
        )
    }
}

/// A [`Location`] as a hashable key (coordinates by their bits).
type LocationKey = (
    Option<Code>,
    Option<Code>,
    Option<[u8; 3]>,
    Option<(u32, u32)>,
);

/// A database that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct GeoError {
    pub path: PathBuf,
    pub reason: String,
}

/// "No record here" in a table's ranges.
pub const NO_RECORD: u32 = u32::MAX;

/// One database file, read: its networks as ranges of record ids, and the records.
struct Table<T> {
    path: PathBuf,
    /// The id of each address's record, or [`NO_RECORD`].
    ranges: Families,
    /// Whether IPv6 addresses can be looked up (an IPv6 database).
    v6: bool,
    values: Box<[T]>,
}

impl<T> Table<T> {
    /// The id of `addr`'s record (`None`: the database has none there) and the shortest
    /// prefix around it where that holds; `None` if the database cannot look the address up
    /// (IPv6 in an IPv4 database). Allocation-free: a binary search.
    #[inline]
    fn find(&self, addr: IpAddr) -> Option<(Option<u32>, u8)> {
        if addr.is_ipv6() && !self.v6 {
            return None;
        }
        let (id, prefix) = self.ranges.find(addr);
        Some(((id != NO_RECORD).then_some(id), prefix))
    }
}

/// The databases of `geoip:` in gslbd.yaml, loaded.
pub struct GeoDb {
    city: Option<Table<Location>>,
    asn: Option<Table<u32>>,
    /// The files and what they were when read (size, modification time): a reload reads a
    /// file again only if it changed.
    stamps: Vec<Stamp>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("files", &self.stamps)
            .field("locations", &self.locations().len())
            .field("asns", &self.asns().len())
            .field("bytes", &self.bytes())
            .finish()
    }
}

/// A file as it was when read: a new file renamed over it, or one rewritten in place, differs
/// in its inode or its change time even when size and modification time were kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub path: PathBuf,
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: (u64, u64),
    changed: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Result<Stamp, GeoError> {
        let meta = std::fs::metadata(path).map_err(|e| GeoError {
            path: path.to_path_buf(),
            reason: format!("cannot read it: {e}"),
        })?;
        use std::os::unix::fs::MetadataExt;
        Ok(Stamp {
            path: path.to_path_buf(),
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: (meta.dev(), meta.ino()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    /// The file as it is now (`None`: it cannot be read).
    pub fn now(&self) -> Option<Stamp> {
        Stamp::of(&self.path).ok()
    }
}

/// What explain shows of a client.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Described {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subdivision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<(f32, f32)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// The database networks that decided (city, ASN).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub networks: Vec<String>,
    /// Kilometres to each site with coordinates.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub distances: Vec<(String, f64)>,
}

impl GeoDb {
    /// Read the location database and the optional ASN database. A file that changed since
    /// the last read is read again; one that did not is shared with the last load.
    pub fn open(city: Option<&Path>, asn: Option<&Path>) -> Result<Arc<GeoDb>, GeoError> {
        let mut stamps = Vec::new();
        for p in city.iter().chain(asn.iter()) {
            stamps.push(Stamp::of(p)?);
        }
        static LAST: Mutex<Option<Arc<GeoDb>>> = Mutex::new(None);
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = last.as_ref()
            && db.stamps == stamps
            && db.city.as_ref().map(|t| t.path.as_path()) == city
            && db.asn.as_ref().map(|t| t.path.as_path()) == asn
        {
            return Ok(db.clone());
        }
        let db = Arc::new(GeoDb {
            city: city.map(load_city).transpose()?,
            asn: asn.map(load_asn).transpose()?,
            stamps,
        });
        *last = Some(db.clone());
        Ok(db)
    }

    /// The client's location id (`None`: unknown there) and the prefix of the network where
    /// that holds; `None` without a location database.
    #[inline]
    pub fn city(&self, addr: IpAddr) -> Option<(Option<u32>, u8)> {
        self.city.as_ref()?.find(addr)
    }

    /// The client's ASN id (an index into [`GeoDb::asns`]) and the prefix of its network.
    #[inline]
    pub fn asn(&self, addr: IpAddr) -> Option<(Option<u32>, u8)> {
        self.asn.as_ref()?.find(addr)
    }

    /// Every distinct location of the database, by id.
    pub fn locations(&self) -> &[Location] {
        self.city.as_ref().map_or(&[], |t| &t.values)
    }

    /// Every distinct ASN of the ASN database, by id.
    pub fn asns(&self) -> &[u32] {
        self.asn.as_ref().map_or(&[], |t| &t.values)
    }

    pub fn has_asn(&self) -> bool {
        self.asn.is_some()
    }

    /// Every address's location id (or [`NO_RECORD`]); `None` without a location database.
    pub fn city_ranges(&self) -> Option<&Families> {
        self.city.as_ref().map(|t| &t.ranges)
    }

    /// Every address's ASN id (or [`NO_RECORD`]); `None` without an ASN database.
    pub fn asn_ranges(&self) -> Option<&Families> {
        self.asn.as_ref().map(|t| &t.ranges)
    }

    /// Octets held for lookups (ranges and records), for the memory report.
    pub fn bytes(&self) -> usize {
        let city = self.city.as_ref().map_or(0, |t| {
            t.ranges.bytes() + t.values.len() * std::mem::size_of::<Location>()
        });
        let asn = self
            .asn
            .as_ref()
            .map_or(0, |t| t.ranges.bytes() + t.values.len() * 4);
        city + asn
    }

    /// The files read, for noticing when they change.
    pub fn stamps(&self) -> &[Stamp] {
        &self.stamps
    }

    /// Everything the databases say of `addr` (for explain).
    pub fn describe(&self, addr: IpAddr) -> Described {
        let mut d = Described::default();
        if let Some((Some(id), prefix)) = self.city(addr) {
            let l = self.locations()[id as usize];
            d.continent = l.continent.map(|c| codes::text(&c).to_string());
            d.country = l.country.map(|c| codes::text(&c).to_string());
            d.subdivision = l.subdivision.map(|s| codes::text(&s).to_string());
            d.coordinates = l.coords;
            d.networks.push(network(addr, prefix));
        }
        if let Some((Some(id), prefix)) = self.asn(addr) {
            d.asn = self.asns().get(id as usize).copied();
            d.networks.push(network(addr, prefix));
        }
        d
    }
}

/// `addr/prefix` with the host bits cleared.
fn network(addr: IpAddr, prefix: u8) -> String {
    ipnet::IpNet::new(addr, prefix).map_or_else(|_| addr.to_string(), |n| n.trunc().to_string())
}

/// Open, verify and read a database: every network, and each distinct record decoded once
/// by `decode` (`None`: nothing useful in it), equal ones (by `key`) sharing an id. The file's
/// bytes are not kept: queries need only the ranges.
fn load<T: Copy, K: std::hash::Hash + Eq>(
    path: &Path,
    decode: impl Fn(&maxminddb::LookupResult<'_, Vec<u8>>) -> Result<Option<T>, String>,
    key: impl Fn(&T) -> K,
) -> Result<Table<T>, GeoError> {
    let err = |reason: String| GeoError {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let reader = maxminddb::Reader::from_source(bytes)
        .map_err(|e| err(format!("not a MaxMind DB file: {e}")))?;
    reader
        .verify()
        .map_err(|e| err(format!("the database is damaged: {e}")))?;
    type Fast = foldhash::fast::RandomState;
    // Record ids by data offset, and by value: a City database has 3.4 million networks and
    // some 100,000 distinct records, and neighbouring networks often share one.
    let mut by_offset: HashMap<usize, u32, Fast> = HashMap::default();
    let mut by_key: HashMap<K, u32, Fast> = HashMap::default();
    let mut values = Vec::new();
    let mut last = (usize::MAX, NO_RECORD);
    let (mut v4, mut v6) = (Builder::default(), Builder::default());
    let networks = reader
        .networks(Default::default())
        .map_err(|e| err(format!("cannot walk its networks: {e}")))?;
    for n in networks {
        let n = n.map_err(|e| err(format!("the database is damaged: {e}")))?;
        let Some(offset) = n.offset() else {
            continue;
        };
        let id = if offset == last.0 {
            last.1
        } else if let Some(&id) = by_offset.get(&offset) {
            id
        } else {
            let id = match decode(&n).map_err(&err)? {
                Some(v) => *by_key.entry(key(&v)).or_insert_with(|| {
                    values.push(v);
                    (values.len() - 1) as u32
                }),
                None => NO_RECORD,
            };
            by_offset.insert(offset, id);
            id
        };
        last = (offset, id);
        let net = n
            .network()
            .map_err(|e| err(format!("the database is damaged: {e}")))?;
        let in_order = match net.ip() {
            IpAddr::V4(a) => v4.network(u32::from(a), net.prefix(), id, NO_RECORD),
            IpAddr::V6(a) => v6.network(u128::from(a), net.prefix(), id, NO_RECORD),
        };
        if !in_order {
            return Err(err(format!(
                "the database is damaged: network {net} overlaps another"
            )));
        }
    }
    Ok(Table {
        path: path.to_path_buf(),
        ranges: Families {
            v4: v4.finish(NO_RECORD),
            v6: v6.finish(NO_RECORD),
        },
        v6: reader.metadata().ip_version == 6,
        values: values.into(),
    })
}

fn load_city(path: &Path) -> Result<Table<Location>, GeoError> {
    let t = load(
        path,
        |n| {
            let r: Option<CityRecord> = n.decode().map_err(|e| format!("a bad record: {e}"))?;
            Ok(r.map(|r| r.location())
                .filter(|l| *l != Location::default()))
        },
        Location::key,
    )?;
    if t.values.is_empty() {
        return Err(GeoError {
            path: path.to_path_buf(),
            reason: "no record has a country, continent or coordinates: is it a City or Country database?".into(),
        });
    }
    Ok(t)
}

fn load_asn(path: &Path) -> Result<Table<u32>, GeoError> {
    let t = load(
        path,
        |n| {
            let r: Option<AsnRecord> = n.decode().map_err(|e| format!("a bad record: {e}"))?;
            Ok(r.and_then(|r| r.number()))
        },
        |a| *a,
    )?;
    if t.values.is_empty() {
        return Err(GeoError {
            path: path.to_path_buf(),
            reason: "no record has an autonomous system number: is it an ASN database?".into(),
        });
    }
    Ok(t)
}

/// The fields of a location record that sites are matched by, in GeoIP2's layout (nested
/// `country.iso_code`, `location.latitude`, ...) or the flat one of DB-IP Lite, IPinfo and
/// ip-location-db (`country_code`, `latitude`, ...). Everything else is skipped undecoded.
#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow, default)]
    continent: Option<Field<'a, Iso<'a>>>,
    #[serde(borrow, default)]
    country: Option<Field<'a, Iso<'a>>>,
    #[serde(borrow, default)]
    subdivisions: Option<Vec<Iso<'a>>>,
    #[serde(default)]
    location: Option<Coordinates>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    continent_code: Option<&'a str>,
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

/// A field that is a map (or a number) in one layout and text in another: GeoIP2's `country`
/// is a map, IPinfo's a name; GeoLite2's ASN a number, IPinfo's `"AS15169"`. Read by what the
/// data is, without buffering it (serde's untagged enums copy every record first, which made
/// reading a City database three times slower).
enum Field<'a, T> {
    Map(T),
    Text(&'a str),
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Field<'a, T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::value::{MapAccessDeserializer, U32Deserializer, U64Deserializer};
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Field<'de, T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map, a number or text")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Field::Text(v))
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Field::Text(""))
            }
            fn visit_u32<E: serde::de::Error>(self, v: u32) -> Result<Self::Value, E> {
                T::deserialize(U32Deserializer::new(v)).map(Field::Map)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(U64Deserializer::new(v)).map(Field::Map)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(m)).map(Field::Map)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Iso<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Coordinates {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

/// The ISO code of a GeoIP2 map (`iso_code`, or `code` for continents).
fn iso<'a>(f: &Option<Field<'a, Iso<'a>>>) -> Option<&'a str> {
    match f {
        Some(Field::Map(i)) => i.iso_code.or(i.code),
        _ => None,
    }
}

impl CityRecord<'_> {
    fn location(&self) -> Location {
        let country = iso(&self.country)
            .or(self.country_code)
            .and_then(codes::country);
        let continent = iso(&self.continent)
            .or(self.continent_code)
            .and_then(codes::continent);
        let subdivision = self
            .subdivisions
            .as_ref()
            .and_then(|s| s.first())
            .and_then(|s| s.iso_code)
            .and_then(codes::subdivision_part);
        let (lat, lon) = match &self.location {
            Some(l) => (l.latitude, l.longitude),
            None => (self.latitude, self.longitude),
        };
        let coords = match (lat, lon) {
            (Some(a), Some(b)) if (-90.0..=90.0).contains(&a) && (-180.0..=180.0).contains(&b) => {
                Some((a as f32, b as f32))
            }
            _ => None,
        };
        Location {
            continent,
            country,
            subdivision: subdivision.filter(|_| country.is_some()),
            coords,
        }
    }
}

/// An ASN record: GeoLite2-ASN's `autonomous_system_number`, or IPinfo's `asn` ("AS15169").
#[derive(Deserialize)]
struct AsnRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    asn: Option<Field<'a, u32>>,
}

impl AsnRecord<'_> {
    fn number(&self) -> Option<u32> {
        self.autonomous_system_number.or(match &self.asn {
            Some(Field::Map(n)) => Some(*n),
            Some(Field::Text(s)) => s.trim_start_matches("AS").parse().ok(),
            None => None,
        })
    }
}

/// Great-circle distance in kilometres (haversine, on a sphere of the Earth's mean radius).
pub fn distance_km(a: (f32, f32), b: (f32, f32)) -> f64 {
    let (la1, lo1) = (f64::from(a.0).to_radians(), f64::from(a.1).to_radians());
    let (la2, lo2) = (f64::from(b.0).to_radians(), f64::from(b.1).to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_between_known_cities() {
        let fra = (50.11, 8.68);
        let iad = (38.95, -77.45);
        let d = distance_km(fra, iad);
        assert!((6500.0..6600.0).contains(&d), "{d}");
        assert!(distance_km(fra, fra) < 0.001);
        // Across the date line: Fiji to Samoa, about 1,150 km, not 39,000.
        let d = distance_km((-18.1, 178.4), (-13.8, -171.8));
        assert!((1000.0..1300.0).contains(&d), "{d}");
    }
}
