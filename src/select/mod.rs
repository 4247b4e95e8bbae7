//! The selection pipeline (DESIGN §4): a fixed, readable sequence of steps over candidates.
//!
//! ```text
//!  publish time (health or config changed)                          query time (per answer)
//!  1 family ─▶ 2 health ─▶ 3 failover | when_all_down ─▶ 4 topology ─▶ 5 order ─▶ 6 take
//! ```
//! Steps 1–4 do not depend on the query, so they run when the table is published
//! ([`pipeline`], once per site for topology pools); only ordering and `max_answers` run per
//! query ([`order`]), without allocating. Policies never see probes or health state machines:
//! they get a status per member. [`sites`] finds a client's site and the ECS scope.

pub mod order;
pub mod pipeline;
pub mod place;
pub mod sites;

use std::net::IpAddr;

use crate::model::{Member, SiteRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(a: &IpAddr) -> Family {
        if a.is_ipv4() { Family::V4 } else { Family::V6 }
    }
}

/// A member that may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub address: IpAddr,
    pub weight: u32,
    pub site: Option<usize>,
}

impl From<&Member> for Candidate {
    fn from(m: &Member) -> Candidate {
        Candidate {
            address: m.address,
            weight: m.weight,
            site: m.site,
        }
    }
}

/// What a pool answers for one address family, before per-query ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligible {
    /// The members to choose from; `degraded` when some member of the family is down (the TTL
    /// is then halved).
    Members {
        members: Vec<Candidate>,
        degraded: bool,
    },
    /// No member of this family, or `when_all_down: none`: NODATA.
    NoData,
    ServFail,
}

/// Step 4, topology or nearest: the first site of the client's `order` (its own site, then its
/// fallbacks or the rest by distance; see [`place`]) that has members here; `None`: no site in
/// the order has any, or the order says `any`, or the client has no order: every member.
pub fn first_site(members: &[Candidate], order: &[SiteRef]) -> Option<usize> {
    for r in order {
        match r {
            SiteRef::Any => return None,
            SiteRef::Site(t) if members.iter().any(|m| m.site == Some(*t)) => return Some(*t),
            SiteRef::Site(_) => {}
        }
    }
    None
}

/// The members of `site` (`None`: all of them).
pub fn of_site(members: &[Candidate], site: Option<usize>) -> Vec<Candidate> {
    match site {
        Some(s) => members
            .iter()
            .copied()
            .filter(|m| m.site == Some(s))
            .collect(),
        None => members.to_vec(),
    }
}

/// Step 4 for a client whose sites come in `order`.
pub fn topology(members: &[Candidate], order: &[SiteRef]) -> Vec<Candidate> {
    of_site(members, first_site(members, order))
}

#[cfg(test)]
mod topology_tests {
    use super::*;
    use crate::model::SiteRef;

    fn c(a: &str, site: Option<usize>) -> Candidate {
        Candidate {
            address: a.parse().unwrap(),
            weight: 1,
            site,
        }
    }

    #[test]
    fn own_site_then_fallbacks_in_order_then_all() {
        // fra falls back to ber; ber to muc, then any; muc has no fallback
        let fra = [SiteRef::Site(0), SiteRef::Site(1)];
        let ber = [SiteRef::Site(1), SiteRef::Site(2), SiteRef::Any];
        let muc = [SiteRef::Site(2)];
        let all = vec![
            c("10.0.0.1", Some(0)),
            c("10.0.0.2", Some(1)),
            c("10.0.0.3", None),
        ];
        let addrs = |v: Vec<Candidate>| v.iter().map(|c| c.address.to_string()).collect::<Vec<_>>();
        assert_eq!(addrs(topology(&all, &fra)), ["10.0.0.1"]);
        assert_eq!(addrs(topology(&all, &ber)), ["10.0.0.2"]);
        // fra down: its clients go to ber
        let no_fra = vec![all[1], all[2]];
        assert_eq!(addrs(topology(&no_fra, &fra)), ["10.0.0.2"]);
        // ber down: muc has nobody, then any
        let no_ber = vec![all[0], all[2]];
        assert_eq!(addrs(topology(&no_ber, &ber)), ["10.0.0.1", "10.0.0.3"]);
        // muc has no fallback: all; unknown clients: all
        assert_eq!(topology(&all, &muc).len(), 3);
        assert_eq!(topology(&all, &[]).len(), 3);
        assert_eq!(first_site(&no_fra, &fra), Some(1));
        assert_eq!(first_site(&no_ber, &ber), None);
    }
}
