//! Where a client belongs among a zone's sites, for `topology` and `nearest`: an *order* of
//! sites to take members from, the first with any (then every member). Orders are computed when
//! the zone is built and numbered; a pool has a view per order, so a query only finds its
//! order's number.
//!
//! ```text
//!  client ─▶ nets (explicit prefixes) ─▶ ASN ─▶ subdivision ─▶ country ─▶ continent
//!             └ the first that matches names the client's site s:
//!                 topology: s, then s's fallbacks       nearest: s, then the rest by distance
//!             └ none matches:
//!                 topology: every member                nearest: the sites by distance from
//!                                                       the client's coordinates, if known
//! ```
//! The databases' part is compiled when the zone is built: every address range of the
//! databases gets its placement, and neighbouring ranges placed alike are merged, so a query
//! is one binary search and never decodes a record. The ECS scope is the longer of the nets
//! block (the widest prefix with one site, [`SiteMap`]) and the widest block inside the
//! client's merged range. Inside it every client is placed the same, so a resolver may cache the
//! answer for all of it (RFC 7871 §7.3.1).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

use super::sites::{ECS_MAX_V4, ECS_MAX_V6, SiteMap};
use crate::geo::ranges::Families;
use crate::geo::{GeoDb, Location, NO_RECORD, distance_km};
use crate::model::{Site, SiteRef};

/// "No site" in the tables below.
const NONE: u16 = u16::MAX;

/// Where a client is placed: the numbers of its orders, and the ECS scope of answers that
/// depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The order of `topology` pools.
    pub topology: u16,
    /// The order of `nearest` pools.
    pub nearest: u16,
    pub scope: u8,
    /// The site that matched the client, if one did.
    pub site: Option<usize>,
}

/// A zone's sites compiled for placing clients.
pub struct Placer {
    nets: SiteMap,
    /// `[0]`: no site (every member); `[1 + s]`: site `s` then its fallbacks; then the
    /// distance orders of `nearest`.
    orders: Box<[Box<[SiteRef]>]>,
    /// Per site: the `nearest` order that starts with it, then the others by distance from it.
    site_near: Box<[u16]>,
    geo: Option<GeoPlacer>,
}

/// The GeoIP part: every address's placement for this zone, as ranges compiled from the
/// databases when the zone is built.
struct GeoPlacer {
    /// For `describe`.
    db: Arc<GeoDb>,
    /// Each address's index into `placed`; neighbouring ranges placed alike are merged, so
    /// a range is the whole stretch where clients get the same answer.
    ranges: Families,
    placed: Box<[Placed]>,
    /// By site: whether some address is placed in it through the databases.
    reached: Box<[bool]>,
}

/// A [`Placement`] without its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Placed {
    topology: u16,
    nearest: u16,
    /// The site that matched, or [`NONE`].
    site: u16,
}

impl Placed {
    /// No site: every member.
    const NOWHERE: Placed = Placed {
        topology: 0,
        nearest: 0,
        site: NONE,
    };

    /// In site `s`: its topology order, and its `nearest` order from `site_near`.
    fn site(s: usize, site_near: &[u16]) -> Placed {
        Placed {
            topology: 1 + s as u16,
            nearest: site_near.get(s).copied().unwrap_or(0),
            site: s as u16,
        }
    }

    fn with_scope(self, scope: u8) -> Placement {
        Placement {
            topology: self.topology,
            nearest: self.nearest,
            scope,
            site: (self.site != NONE).then_some(usize::from(self.site)),
        }
    }
}

/// Orders, each stored once.
#[derive(Default)]
struct Interner {
    orders: Vec<Box<[SiteRef]>>,
    ids: HashMap<Box<[SiteRef]>, u16>,
}

impl Interner {
    fn id(&mut self, order: Vec<SiteRef>) -> u16 {
        if let Some(&id) = self.ids.get(order.as_slice()) {
            return id;
        }
        // Past 65,535 orders a client gets every member (order 0): never reached with the
        // sites a zone has in practice, but the number must fit.
        let Ok(id) = u16::try_from(self.orders.len()) else {
            return 0;
        };
        if id == NONE {
            return 0;
        }
        let order: Box<[SiteRef]> = order.into();
        self.ids.insert(order.clone(), id);
        self.orders.push(order);
        id
    }
}

impl Placer {
    /// `None` for a zone without sites. Compiling a full City database's ranges for a zone
    /// takes some 50 ms, so zones with the same sites on the same database share one placer
    /// (and a reload that changes neither reuses it).
    pub fn build(sites: &[Site], geo: Option<&Arc<GeoDb>>) -> Option<Arc<Placer>> {
        // A zone whose sites neither list places nor have coordinates needs no database.
        let Some(db) = geo.filter(|_| sites.iter().any(|s| s.by_geo() || s.coordinates.is_some()))
        else {
            return Placer::compile(sites, None).map(Arc::new);
        };
        static BUILT: Mutex<Vec<(Vec<Site>, Weak<Placer>)>> = Mutex::new(Vec::new());
        let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
        built.retain(|(_, p)| p.strong_count() > 0);
        // A live placer holds its database, so the pointer cannot be a new one's.
        let same = |p: &Arc<Placer>| p.geo.as_ref().is_some_and(|g| Arc::ptr_eq(&g.db, db));
        if let Some(p) = built
            .iter()
            .filter(|(s, _)| s == sites)
            .find_map(|(_, p)| p.upgrade().filter(same))
        {
            return Some(p);
        }
        let p = Arc::new(Placer::compile(sites, Some(db))?);
        built.push((sites.to_vec(), Arc::downgrade(&p)));
        Some(p)
    }

    fn compile(sites: &[Site], geo: Option<&Arc<GeoDb>>) -> Option<Placer> {
        let nets = SiteMap::build(sites)?;
        let mut orders = Interner::default();
        orders.id(Vec::new());
        for (s, site) in sites.iter().enumerate() {
            let mut o = vec![SiteRef::Site(s)];
            o.extend(site.fallback.iter().copied());
            // Two sites with the same order share it; `1 + s` must still be site s's.
            orders.orders.push(o.into());
        }
        let placed: Vec<usize> = (0..sites.len())
            .filter(|&s| sites[s].coordinates.is_some())
            .collect();
        // The sites with coordinates, nearest `from` first; `first` ahead of them all.
        let by_distance = |first: Option<usize>, from: Option<(f32, f32)>| -> Vec<SiteRef> {
            let mut rest: Vec<(f64, usize)> = match from {
                Some(at) => placed
                    .iter()
                    .filter(|&&s| Some(s) != first)
                    .filter_map(|&s| Some((distance_km(at, sites[s].coordinates?), s)))
                    .collect(),
                None => Vec::new(),
            };
            rest.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            first
                .into_iter()
                .chain(rest.into_iter().map(|(_, s)| s))
                .map(SiteRef::Site)
                .collect()
        };
        let site_near: Box<[u16]> = (0..sites.len())
            .map(|s| orders.id(by_distance(Some(s), sites[s].coordinates)))
            .collect();
        let geo = geo.map(|db| {
            let mut placed: Vec<Placed> = Vec::new();
            let mut ids: HashMap<Placed, u32> = HashMap::new();
            let mut intern = |p: Placed| {
                *ids.entry(p).or_insert_with(|| {
                    placed.push(p);
                    (placed.len() - 1) as u32
                })
            };
            let nowhere = intern(Placed::NOWHERE);
            let mut reached = vec![false; sites.len()];
            let by_location: Vec<u32> = db
                .locations()
                .iter()
                .map(|l| {
                    let site = matching(sites, l);
                    if let Some(s) = site {
                        reached[s] = true;
                    }
                    intern(Placed {
                        topology: site.map_or(0, |s| 1 + s as u16),
                        nearest: match (site, l.coords) {
                            (Some(s), None) => site_near[s],
                            (site, Some(at)) => orders.id(by_distance(site, Some(at))),
                            (None, None) => 0,
                        },
                        site: site.map_or(NONE, |s| s as u16),
                    })
                })
                .collect();
            let of = |table: &[u32], id: u32| table.get(id as usize).copied();
            let by_city = match db.city_ranges() {
                Some(r) => r.map(|id| of(&by_location, id).unwrap_or(nowhere)),
                None => Families::all(nowhere),
            };
            // The ASN comes first (nets are looked up apart, before both).
            let ranges = match db.asn_ranges() {
                Some(r) if sites.iter().any(|s| !s.asns.is_empty()) => {
                    let by_asn: Vec<u32> = db
                        .asns()
                        .iter()
                        .map(|n| match sites.iter().position(|s| s.asns.contains(n)) {
                            Some(s) => {
                                reached[s] = true;
                                intern(Placed::site(s, &site_near))
                            }
                            None => NO_RECORD,
                        })
                        .collect();
                    r.overlay(&by_city, |asn, city| match of(&by_asn, asn) {
                        Some(p) if p != NO_RECORD => p,
                        _ => city,
                    })
                }
                _ => by_city,
            };
            GeoPlacer {
                db: db.clone(),
                ranges,
                placed: placed.into(),
                reached: reached.into(),
            }
        });
        Some(Placer {
            nets,
            orders: orders.orders.into(),
            site_near,
            geo,
        })
    }

    /// Every order, by number.
    pub fn orders(&self) -> &[Box<[SiteRef]>] {
        &self.orders
    }

    /// Place the client `addr/prefix` (an ECS prefix, cut to /24 or /56, or a resolver's own
    /// full address). Allocation-free: the nets' trie, then a binary search of the ranges
    /// built with the zone.
    pub fn place(&self, addr: IpAddr, prefix: u8) -> Placement {
        let (site, mut scope) = self.nets.locate(addr, prefix);
        if let Some(s) = site {
            return Placed::site(s, &self.site_near).with_scope(scope);
        }
        let Some(g) = &self.geo else {
            return Placed::NOWHERE.with_scope(scope);
        };
        let cut = if addr.is_ipv4() {
            ECS_MAX_V4
        } else {
            ECS_MAX_V6
        };
        let (i, p) = g.ranges.find(addr);
        // Only an ECS client (at most /24 or /56) has a scope; a range narrower than that is
        // still one answer for every client of the /24 (/56), which is all we see.
        if prefix <= cut {
            scope = scope.max(p.min(cut));
        }
        let placed = g.placed.get(i as usize).copied();
        placed.unwrap_or(Placed::NOWHERE).with_scope(scope)
    }

    /// What the databases say of `addr`, and how far each site is (for explain).
    pub fn describe(&self, addr: IpAddr, sites: &[Site]) -> Option<crate::geo::Described> {
        let g = self.geo.as_ref()?;
        let mut d = g.db.describe(addr);
        if let Some(at) = d.coordinates {
            d.distances = sites
                .iter()
                .filter_map(|s| Some((s.name.clone(), distance_km(at, s.coordinates?).round())))
                .collect();
        }
        Some(d)
    }

    /// The sites that no record of the databases places a client in, although they list
    /// ASNs, subdivisions, countries or continents (`gslbd check` warns of them).
    pub fn unreachable(&self, sites: &[Site]) -> Vec<usize> {
        let Some(g) = &self.geo else {
            return Vec::new();
        };
        (0..sites.len())
            .filter(|&s| sites[s].by_geo() && !g.reached.get(s).copied().unwrap_or(false))
            .collect()
    }
}

/// The site a location is matched to: subdivision, then country, then continent (the ASN is
/// matched before, per client).
fn matching(sites: &[Site], l: &Location) -> Option<usize> {
    if let (Some(c), Some(sub)) = (l.country, l.subdivision)
        && let Some(s) = sites
            .iter()
            .position(|s| s.subdivisions.contains(&(c, sub)))
    {
        return Some(s);
    }
    if let Some(c) = l.country
        && let Some(s) = sites.iter().position(|s| s.countries.contains(&c))
    {
        return Some(s);
    }
    let c = l.continent?;
    sites.iter().position(|s| s.continents.contains(&c))
}
