//! The site map of a zone, compiled for the query path: which site a client is in, and the ECS
//! scope of an answer that depends on it (DESIGN §4, client identity).
//!
//! The scope is not the length of the matched site prefix. With sites `10.0.0.0/8` and
//! `10.1.0.0/16`, a client in 10.2.7.0/24 is in the /8's site, but a scope of /8 would let a
//! resolver's ECS cache (RFC 7871 §7.3.1) hand that answer to 10.1.x clients, who belong to the
//! /16's site. The right scope is the shortest prefix of the client's address inside which
//! every client is in the same site: 10.2.0.0/15 there. Unmapped space gets the widest prefix
//! that holds no site (gdnsd does the same).
//!
//! ```text
//!  sites ──blocks()──▶ maximal prefixes whose every /24 (/56) has one site ──▶ LPM per query
//! ```
//! The blocks partition the address space, so one longest-prefix match gives the site and the
//! scope at once; they are computed when the config is loaded, never per query.

use std::net::IpAddr;

use ipnet::{Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

use crate::model::Site;

/// The longest ECS prefix used (DESIGN §4): longer sources are cut to these.
pub const ECS_MAX_V4: u8 = 24;
pub const ECS_MAX_V6: u8 = 56;

/// Who a client is for the site map (DESIGN §4): the ECS source prefix, cut to /24 (/56), or
/// without one (or with source 0) the resolver's own address.
pub fn client(addr: IpAddr, ecs_source: Option<u8>) -> (IpAddr, u8) {
    match ecs_source {
        Some(len) if len > 0 => ecs_cut(addr, len),
        _ => (addr, if addr.is_ipv4() { 32 } else { 128 }),
    }
}

/// An ECS source prefix as used: cut to /24 (/56), and the address masked to it. The query
/// path (`wire::Ecs::client`) and explain both go through here.
pub fn ecs_cut(addr: IpAddr, source: u8) -> (IpAddr, u8) {
    let cut = if addr.is_ipv4() {
        ECS_MAX_V4
    } else {
        ECS_MAX_V6
    };
    let len = source.min(cut);
    let masked = ipnet::IpNet::new(addr, len).map_or(addr, |n| n.trunc().addr());
    (masked, len)
}

/// "No site covers this block."
const NONE: u16 = u16::MAX;

/// A zone's site map.
#[derive(Default)]
pub struct SiteMap {
    /// The sites' prefixes as configured: longest-prefix match of a resolver's full address.
    v4: PrefixMap<Ipv4Net, u16>,
    v6: PrefixMap<Ipv6Net, u16>,
    /// Maximal uniform blocks at /24 and /56: the ECS clients' map (site or [`NONE`]).
    v4_blocks: PrefixMap<Ipv4Net, u16>,
    v6_blocks: PrefixMap<Ipv6Net, u16>,
}

impl SiteMap {
    /// `None` for a zone without sites.
    pub fn build(sites: &[Site]) -> Option<SiteMap> {
        if sites.is_empty() {
            return None;
        }
        let mut m = SiteMap::default();
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (i, s) in sites.iter().enumerate() {
            let i = i as u16;
            for net in &s.nets {
                match net {
                    ipnet::IpNet::V4(n) => {
                        m.v4.insert(*n, i);
                        v4.push(Prefix::v4(*n, i));
                    }
                    ipnet::IpNet::V6(n) => {
                        m.v6.insert(*n, i);
                        v6.push(Prefix::v6(*n, i));
                    }
                }
            }
        }
        for b in blocks(v4, ECS_MAX_V4) {
            // Blocks are aligned prefixes of at most 24 bits: always valid.
            if let Ok(n) = Ipv4Net::new(std::net::Ipv4Addr::from((b.addr >> 96) as u32), b.len) {
                m.v4_blocks.insert(n, b.site);
            }
        }
        for b in blocks(v6, ECS_MAX_V6) {
            if let Ok(n) = Ipv6Net::new(std::net::Ipv6Addr::from(b.addr), b.len) {
                m.v6_blocks.insert(n, b.site);
            }
        }
        Some(m)
    }

    /// The site of the client `addr/prefix` (`None`: no site covers it) and the ECS scope of an
    /// answer that depends on the site. A prefix of at most /24 (/56) is an ECS client, looked up
    /// in the blocks; a longer one is a resolver's own address, matched against the sites'
    /// prefixes (its scope is the prefix, and no ECS option carries it).
    pub fn locate(&self, addr: IpAddr, prefix: u8) -> (Option<usize>, u8) {
        // No prefix in the family (sites placed by GeoIP only): no site, for the whole space.
        let (empty, cut) = match addr {
            IpAddr::V4(_) => (self.v4.is_empty(), ECS_MAX_V4),
            IpAddr::V6(_) => (self.v6.is_empty(), ECS_MAX_V6),
        };
        if empty {
            return (None, if prefix <= cut { 0 } else { prefix });
        }
        match addr {
            IpAddr::V4(a) => match Ipv4Net::new(a, prefix.min(32)) {
                Ok(net) => find(&self.v4, &self.v4_blocks, net.trunc(), ECS_MAX_V4),
                Err(_) => (None, prefix),
            },
            IpAddr::V6(a) => match Ipv6Net::new(a, prefix.min(128)) {
                Ok(net) => find(&self.v6, &self.v6_blocks, net.trunc(), ECS_MAX_V6),
                Err(_) => (None, prefix),
            },
        }
    }
}

/// [`SiteMap::locate`] in one family's maps.
fn find<P: prefix_trie::Prefix>(
    sites: &PrefixMap<P, u16>,
    blocks: &PrefixMap<P, u16>,
    net: P,
    cut: u8,
) -> (Option<usize>, u8) {
    let site = |s: u16| (s != NONE).then_some(usize::from(s));
    if net.prefix_len() <= cut
        && let Some((block, s)) = blocks.get_lpm(&net)
    {
        return (site(*s), block.prefix_len());
    }
    // Wider than the blocks here (an ECS source shorter than /24 that spans several), or a full
    // address: what covers it, valid for the whole prefix.
    let s = sites.get_lpm(&net).map(|(_, s)| *s);
    (s.and_then(site), net.prefix_len())
}

/// A prefix with its address left-aligned in 128 bits, so both families share one walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prefix {
    addr: u128,
    len: u8,
    site: u16,
}

impl Prefix {
    fn v4(n: Ipv4Net, site: u16) -> Prefix {
        Prefix {
            addr: u128::from(u32::from(n.network())) << 96,
            len: n.prefix_len(),
            site,
        }
    }

    fn v6(n: Ipv6Net, site: u16) -> Prefix {
        Prefix {
            addr: u128::from(n.network()),
            len: n.prefix_len(),
            site,
        }
    }
}

/// The maximal prefixes (at most `resolution` bits long) inside which every `/resolution`
/// network has the same longest-matching site. They partition the address space; a block's
/// parent always holds two different sites, so its length is the shortest valid ECS scope.
/// O(prefixes × resolution).
fn blocks(mut prefixes: Vec<Prefix>, resolution: u8) -> Vec<Prefix> {
    // Longer prefixes never cover a /resolution client.
    prefixes.retain(|p| p.len <= resolution);
    prefixes.sort_by_key(|p| (p.addr, p.len));
    prefixes.dedup_by_key(|p| (p.addr, p.len));
    let mut out = Vec::new();
    if let Some(site) = walk(0, 0, NONE, &prefixes, resolution, &mut out) {
        out.push(Prefix {
            addr: 0,
            len: 0,
            site,
        });
    }
    out
}

/// The site every `/resolution` network inside `addr/len` has, if they all have one; otherwise
/// the uniform halves below are pushed to `out` as blocks and the result is `None`.
/// `inside` holds the prefixes inside `addr/len` (itself included), sorted by address and
/// length; `inherited` is the site of the longest prefix above.
fn walk(
    addr: u128,
    len: u8,
    inherited: u16,
    inside: &[Prefix],
    resolution: u8,
    out: &mut Vec<Prefix>,
) -> Option<u16> {
    let (site, below) = match inside.first() {
        Some(p) if p.len == len => (p.site, &inside[1..]),
        _ => (inherited, inside),
    };
    if below.is_empty() || len >= resolution {
        return Some(site);
    }
    let upper = addr | (1u128 << (127 - len));
    let split = below.partition_point(|p| p.addr < upper);
    let halves = [(addr, &below[..split]), (upper, &below[split..])];
    let [lo, hi] = halves.map(|(a, ps)| walk(a, len + 1, site, ps, resolution, out));
    match (lo, hi) {
        (Some(a), Some(b)) if a == b => Some(a),
        _ => {
            for ((a, _), s) in halves.iter().zip([lo, hi]) {
                if let Some(site) = s {
                    out.push(Prefix {
                        addr: *a,
                        len: len + 1,
                        site,
                    });
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn site(name: &str, nets: &[&str]) -> Site {
        Site {
            name: name.into(),
            nets: nets.iter().map(|n| n.parse().unwrap()).collect(),
            ..Site::default()
        }
    }

    fn v4(a: u32) -> IpAddr {
        IpAddr::V4(a.into())
    }

    fn v6(a: u128) -> IpAddr {
        IpAddr::V6(a.into())
    }

    fn at(m: &SiteMap, client: &str) -> (Option<usize>, u8) {
        let (a, l) = client.split_once('/').unwrap();
        m.locate(a.parse().unwrap(), l.parse().unwrap())
    }

    #[test]
    fn nested_sites_give_the_scope_that_excludes_the_inner_one() {
        let m = SiteMap::build(&[
            site("outer", &["10.0.0.0/8"]),
            site("inner", &["10.1.0.0/16"]),
        ])
        .unwrap();
        // The issue's example: 10.2.0.0/15 holds no more specific site.
        assert_eq!(at(&m, "10.2.7.0/24"), (Some(0), 15));
        assert_eq!(at(&m, "10.1.7.0/24"), (Some(1), 16));
        assert_eq!(at(&m, "10.128.0.0/24"), (Some(0), 9));
        assert_eq!(at(&m, "10.0.0.0/24"), (Some(0), 16));
        // A resolver's own address: the longest match, scope unused.
        assert_eq!(at(&m, "10.1.2.3/32"), (Some(1), 32));
        // A /12 client spans both: the /8 covers it, valid for exactly that /12.
        assert_eq!(at(&m, "10.0.0.0/12"), (Some(0), 12));
    }

    #[test]
    fn unmapped_space_gets_the_widest_prefix_without_a_site() {
        let m =
            SiteMap::build(&[site("a", &["10.1.0.0/16"]), site("b", &["10.2.0.0/16"])]).unwrap();
        assert_eq!(at(&m, "10.9.7.0/24"), (None, 13));
        assert_eq!(at(&m, "192.0.2.0/24"), (None, 1));
        assert_eq!(at(&m, "11.0.0.0/24"), (None, 8));
        let m6 = SiteMap::build(&[site("a", &["2001:db8:1::/48"])]).unwrap();
        assert_eq!(at(&m6, "2001:db8:2::/56"), (None, 47));
        assert_eq!(at(&m6, "2001:db8:1:ff00::/56"), (Some(0), 48));
        // no IPv4 prefix at all: no site, for all of the IPv4 space
        assert_eq!(at(&m6, "192.0.2.0/24"), (None, 0));
        assert_eq!(at(&m6, "192.0.2.1/32"), (None, 32));
        assert_eq!(at(&m, "2001:db8::/56"), (None, 0));
    }

    #[test]
    fn prefixes_that_cover_their_parent_merge() {
        // Two halves of 10/8 in one site, inside a /7 of another: 10/8 is one block.
        let m = SiteMap::build(&[
            site("x", &["10.0.0.0/9", "10.128.0.0/9"]),
            site("y", &["10.0.0.0/7"]),
        ])
        .unwrap();
        assert_eq!(at(&m, "10.200.0.0/24"), (Some(0), 8));
        assert_eq!(at(&m, "11.0.0.0/24"), (Some(1), 8));
    }

    /// The site a `/24` (`/56`) ECS client is in, by a plain scan of the sites.
    fn naive(sites: &[Site], addr: IpAddr) -> Option<usize> {
        let cut = if addr.is_ipv4() {
            ECS_MAX_V4
        } else {
            ECS_MAX_V6
        };
        let client = ipnet::IpNet::new(addr, cut).unwrap().trunc();
        sites
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.nets.iter().map(move |n| (i, n)))
            .filter(|(_, n)| n.contains(&client))
            .max_by_key(|(_, n)| n.prefix_len())
            .map(|(i, _)| i)
    }

    fn nth_in(net: ipnet::IpNet, i: u128) -> IpAddr {
        match net {
            ipnet::IpNet::V4(n) => {
                let host = 32 - u32::from(n.prefix_len());
                let off = if host == 0 {
                    0
                } else {
                    (i as u32) & (u32::MAX >> (32 - host))
                };
                v4(u32::from(n.network()) | off)
            }
            ipnet::IpNet::V6(n) => {
                let host = 128 - u32::from(n.prefix_len());
                let off = if host == 0 {
                    0
                } else {
                    i & (u128::MAX >> (128 - host))
                };
                v6(u128::from(n.network()) | off)
            }
        }
    }

    /// Random site maps clustered in 10/8 (or 2001:db8::/32), so that they nest.
    fn site_maps(v6: bool) -> impl Strategy<Value = Vec<Site>> {
        let net = move |(bits, len): (u128, u8)| -> ipnet::IpNet {
            if v6 {
                let len = 32 + len * 2;
                let a = (0x2001_0db8u128 << 96) | (bits << 40);
                ipnet::IpNet::V6(Ipv6Net::new(a.into(), len).unwrap().trunc())
            } else {
                let len = 8 + len;
                let a = (10u32 << 24) | ((bits as u32) & 0x00ff_ffff);
                ipnet::IpNet::V4(Ipv4Net::new(a.into(), len).unwrap().trunc())
            }
        };
        proptest::collection::vec(
            proptest::collection::vec((0u128..(1 << 24), 0u8..20), 1..4),
            1..5,
        )
        .prop_map(move |sites| {
            let mut seen = std::collections::BTreeSet::new();
            sites
                .into_iter()
                .enumerate()
                .map(|(i, nets)| Site {
                    name: format!("s{i}"),
                    nets: nets
                        .into_iter()
                        .map(net)
                        .filter(|n| seen.insert(*n))
                        .collect(),
                    ..Site::default()
                })
                .collect()
        })
    }

    /// Where the site of a client may change inside `net`: its first address, and the first
    /// address of every site prefix and the one after its last, that lie inside `net`. Between two
    /// of these every client has the same longest match, so checking them checks all of `net`.
    fn change_points(sites: &[Site], net: ipnet::IpNet) -> Vec<IpAddr> {
        let next = |a: IpAddr| -> Option<IpAddr> {
            match a {
                IpAddr::V4(a) => u32::from(a).checked_add(1).map(v4),
                IpAddr::V6(a) => u128::from(a).checked_add(1).map(v6),
            }
        };
        sites
            .iter()
            .flat_map(|s| &s.nets)
            .flat_map(|n| [Some(n.network()), next(n.broadcast())])
            .flatten()
            .chain([net.network()])
            .filter(|a| net.contains(a))
            .collect()
    }

    fn check_scope(sites: &[Site], client: IpAddr, samples: &[u128]) -> Result<(), TestCaseError> {
        let m = SiteMap::build(sites).unwrap();
        let cut = if client.is_ipv4() {
            ECS_MAX_V4
        } else {
            ECS_MAX_V6
        };
        let (site, scope) = m.locate(client, cut);
        prop_assert_eq!(site, naive(sites, client));
        prop_assert!(scope <= cut);
        // Every address inside client/scope is in the same site.
        let block = ipnet::IpNet::new(client, scope).unwrap().trunc();
        let probes = change_points(sites, block)
            .into_iter()
            .chain(samples.iter().map(|&i| nth_in(block, i)));
        for a in probes {
            prop_assert_eq!(naive(sites, a), site, "{} inside {}", a, block);
        }
        // scope − 1 would break that: the other half of client/(scope − 1) has a client of
        // another site.
        if scope > 0 {
            let parent = ipnet::IpNet::new(client, scope - 1).unwrap().trunc();
            let other = parent
                .subnets(scope)
                .unwrap()
                .find(|n| *n != block)
                .unwrap();
            let differs = change_points(sites, other)
                .into_iter()
                .any(|a| naive(sites, a) != site);
            prop_assert!(differs, "{}/{} is no wider than needed", client, scope);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn scope_is_the_shortest_prefix_with_one_site_v4(
            sites in site_maps(false),
            client in 0u32..(1 << 24),
            samples in proptest::collection::vec(any::<u128>(), 8),
        ) {
            check_scope(&sites, v4((10u32 << 24) | client), &samples)?;
        }

        #[test]
        fn scope_is_the_shortest_prefix_with_one_site_v6(
            sites in site_maps(true),
            client in 0u128..(1 << 24),
            samples in proptest::collection::vec(any::<u128>(), 8),
        ) {
            let a = (0x2001_0db8u128 << 96) | (client << 40);
            check_scope(&sites, v6(a), &samples)?;
        }
    }
}
