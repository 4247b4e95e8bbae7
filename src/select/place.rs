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
//! The ECS scope is the longest of the prefixes that decided: the nets block (the widest
//! prefix with one site, [`SiteMap`]), the ASN database's network and the location
//! database's network. Inside it every client is placed the same, so a resolver may cache the
//! answer for all of it (RFC 7871 §7.3.1).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::sites::{ECS_MAX_V4, ECS_MAX_V6, SiteMap};
use crate::geo::{GeoDb, Location, distance_km};
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

/// The GeoIP part: the databases, and what each of their records means for this zone.
struct GeoPlacer {
    db: Arc<GeoDb>,
    /// By ASN id: the site that lists it, or [`NONE`].
    asn_site: Box<[u16]>,
    /// By location id: the `topology` and `nearest` orders of its clients, and the site that
    /// matched (or [`NONE`]).
    loc_topology: Box<[u16]>,
    loc_nearest: Box<[u16]>,
    loc_site: Box<[u16]>,
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
    /// `None` for a zone without sites.
    pub fn build(sites: &[Site], geo: Option<&Arc<GeoDb>>) -> Option<Placer> {
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
            let asn_site: Box<[u16]> = db
                .asns()
                .iter()
                .map(|n| {
                    sites
                        .iter()
                        .position(|s| s.asns.contains(n))
                        .map_or(NONE, |s| s as u16)
                })
                .collect();
            let n = db.locations().len();
            let (mut loc_topology, mut loc_nearest, mut loc_site) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for l in db.locations() {
                let site = matching(sites, l);
                loc_site.push(site.map_or(NONE, |s| s as u16));
                loc_topology.push(site.map_or(0, |s| 1 + s as u16));
                loc_nearest.push(match (site, l.coords) {
                    (Some(s), None) => site_near[s],
                    (site, Some(at)) => orders.id(by_distance(site, Some(at))),
                    (None, None) => 0,
                });
            }
            GeoPlacer {
                db: db.clone(),
                asn_site,
                loc_topology: loc_topology.into(),
                loc_nearest: loc_nearest.into(),
                loc_site: loc_site.into(),
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
    /// full address). Allocation-free: lookups in tables built with the zone.
    pub fn place(&self, addr: IpAddr, prefix: u8) -> Placement {
        let (site, mut scope) = self.nets.locate(addr, prefix);
        if let Some(s) = site {
            return self.of_site(s, scope);
        }
        let Some(g) = &self.geo else {
            return Placement {
                topology: 0,
                nearest: 0,
                scope,
                site: None,
            };
        };
        let cut = if addr.is_ipv4() {
            ECS_MAX_V4
        } else {
            ECS_MAX_V6
        };
        // Only an ECS client (at most /24 or /56) has a scope; a database network longer than
        // that is still one answer for every client of the /24 (/56), which is all we see.
        let mut widen = |p: u8| {
            if prefix <= cut {
                scope = scope.max(p.min(cut));
            }
        };
        if let Some((id, p)) = g.db.asn(addr) {
            widen(p);
            if let Some(&s) = id.and_then(|i| g.asn_site.get(i as usize))
                && s != NONE
            {
                return self.of_site(usize::from(s), scope);
            }
        }
        if let Some((id, p)) = g.db.city(addr) {
            widen(p);
            if let Some(i) = id.map(|i| i as usize)
                && i < g.loc_topology.len()
            {
                let s = g.loc_site[i];
                return Placement {
                    topology: g.loc_topology[i],
                    nearest: g.loc_nearest[i],
                    scope,
                    site: (s != NONE).then_some(usize::from(s)),
                };
            }
        }
        Placement {
            topology: 0,
            nearest: 0,
            scope,
            site: None,
        }
    }

    fn of_site(&self, s: usize, scope: u8) -> Placement {
        Placement {
            topology: 1 + s as u16,
            nearest: self.site_near.get(s).copied().unwrap_or(0),
            scope,
            site: Some(s),
        }
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
            .filter(|&s| sites[s].by_geo())
            .filter(|&s| {
                let s = s as u16;
                !g.asn_site.contains(&s) && !g.loc_site.contains(&s)
            })
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
