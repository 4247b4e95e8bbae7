//! The selection pipeline (DESIGN §4): a fixed, readable sequence of steps over candidates.
//!
//! ```text
//!  publish time (health or config changed)            query time (per answer)
//!  1 family ─▶ 2 health ─▶ 3 failover ─▶ when_all_down ─▶ 5 order (rotate | weighted) ─▶ 6 take
//! ```
//! Steps 1–3 do not depend on the query, so they run when the table is published ([`eligible`]);
//! only ordering and `max_answers` run per query ([`order`]), without allocating. Policies never
//! see probes or health state machines: they get a status per member.

pub mod order;

use std::net::IpAddr;

use crate::health::Status;
use crate::model::{Member, Pool, Site, SiteRef, WhenAllDown};

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

/// Steps 1–3 and `when_all_down` for one family. `status` gives a member's health as judged by
/// the checks of the pool it is asked for (the same address may be in several pools with
/// different checks); `fallback` resolves `when_all_down: { pool: NAME }` (it is called at most once, and the pool
/// it returns does not fall back again).
pub fn eligible<'p>(
    pool: &'p Pool,
    family: Family,
    status: &dyn Fn(&Pool, &Member) -> Status,
    fallback: &dyn Fn(&str) -> Option<&'p Pool>,
) -> Eligible {
    // 1. candidates of the query's family
    let family_members: Vec<&Member> = pool
        .members
        .iter()
        .filter(|m| Family::of(&m.address) == family)
        .collect();
    if family_members.is_empty() {
        return Eligible::NoData;
    }
    // 2. drop members that are down (unknown counts as usable: fail open at a cold start)
    let usable: Vec<&Member> = family_members
        .iter()
        .copied()
        .filter(|m| status(pool, m) != Status::Down)
        .collect();
    let degraded = usable.len() < family_members.len();
    if usable.is_empty() {
        return all_down(pool, family, &family_members, status, fallback);
    }
    // 3. failover: the first priority group that has a usable member
    let chosen: Vec<&Member> = if pool.policy.failover {
        let best = usable.iter().map(|m| m.priority).min().unwrap_or(0);
        usable.into_iter().filter(|m| m.priority == best).collect()
    } else {
        usable
    };
    Eligible::Members {
        members: chosen.into_iter().map(Candidate::from).collect(),
        degraded,
    }
}

/// Step 4, topology: the members of `site`, else of its fallback sites in order (`any`: all),
/// else all of them. `site` is `None` for clients no site covers.
pub fn topology(members: &[Candidate], site: Option<usize>, sites: &[Site]) -> Vec<Candidate> {
    let Some(site) = site else {
        return members.to_vec();
    };
    let of = |s: usize| -> Vec<Candidate> {
        members
            .iter()
            .copied()
            .filter(|m| m.site == Some(s))
            .collect()
    };
    let own = of(site);
    if !own.is_empty() {
        return own;
    }
    for f in sites.get(site).map_or(&[][..], |s| &s.fallback) {
        match f {
            SiteRef::Any => return members.to_vec(),
            SiteRef::Site(t) => {
                let v = of(*t);
                if !v.is_empty() {
                    return v;
                }
            }
        }
    }
    members.to_vec()
}

fn all_down<'p>(
    pool: &'p Pool,
    family: Family,
    members: &[&Member],
    status: &dyn Fn(&Pool, &Member) -> Status,
    fallback: &dyn Fn(&str) -> Option<&'p Pool>,
) -> Eligible {
    match &pool.when_all_down {
        WhenAllDown::All => Eligible::Members {
            members: members
                .iter()
                .map(|m| Candidate {
                    weight: m.weight.max(1),
                    ..Candidate::from(*m)
                })
                .collect(),
            degraded: true,
        },
        WhenAllDown::None => Eligible::NoData,
        WhenAllDown::ServFail => Eligible::ServFail,
        WhenAllDown::Addresses(addrs) => {
            let members: Vec<Candidate> = addrs
                .iter()
                .filter(|a| Family::of(a) == family)
                .map(|a| Candidate {
                    address: *a,
                    weight: 1,
                    site: None,
                })
                .collect();
            if members.is_empty() {
                Eligible::NoData
            } else {
                Eligible::Members {
                    members,
                    degraded: true,
                }
            }
        }
        WhenAllDown::Pool(name) => match fallback(name) {
            Some(other) => {
                // One level only: the fallback pool's own fallback is not followed.
                let no_further = |_: &str| None;
                match eligible(other, family, status, &no_further) {
                    Eligible::Members { members, .. } => Eligible::Members {
                        members,
                        degraded: true,
                    },
                    other => other,
                }
            }
            None => Eligible::NoData,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Member, Order, Policy};

    const RR: Policy = Policy::ROUND_ROBIN;
    const WEIGHTED: Policy = Policy {
        order: Order::Weighted,
        ..Policy::ROUND_ROBIN
    };
    const FAILOVER: Policy = Policy {
        failover: true,
        ..Policy::ROUND_ROBIN
    };
    use proptest::prelude::*;

    fn member(a: &str, priority: u32) -> Member {
        Member {
            address: a.parse().unwrap(),
            weight: 100,
            priority,
            site: None,
        }
    }

    fn pool(policy: Policy, when: WhenAllDown, members: Vec<Member>) -> Pool {
        Pool {
            name: "p".into(),
            policy,
            checks: Box::default(),
            ttl: 30,
            max_answers: 2,
            when_all_down: when,
            members: members.into(),
            load: None,
            slow_start: None,
        }
    }

    fn addrs(e: &Eligible) -> Vec<String> {
        match e {
            Eligible::Members { members, .. } => {
                members.iter().map(|c| c.address.to_string()).collect()
            }
            other => vec![format!("{other:?}")],
        }
    }

    fn none<'a>(_: &str) -> Option<&'a Pool> {
        None
    }

    #[test]
    fn health_filters_and_failover_picks_the_first_live_group() {
        let p = pool(
            FAILOVER,
            WhenAllDown::All,
            vec![
                member("10.0.0.1", 1),
                member("10.0.0.2", 1),
                member("10.0.0.3", 2),
                member("::1", 1),
            ],
        );
        let down = |set: &'static [&'static str]| {
            move |_: &Pool, m: &Member| {
                if set.contains(&m.address.to_string().as_str()) {
                    Status::Down
                } else {
                    Status::Up
                }
            }
        };
        assert_eq!(
            addrs(&eligible(&p, Family::V4, &down(&[]), &none)),
            ["10.0.0.1", "10.0.0.2"]
        );
        assert_eq!(
            addrs(&eligible(&p, Family::V4, &down(&["10.0.0.1"]), &none)),
            ["10.0.0.2"]
        );
        assert_eq!(
            addrs(&eligible(
                &p,
                Family::V4,
                &down(&["10.0.0.1", "10.0.0.2"]),
                &none
            )),
            ["10.0.0.3"]
        );
        assert_eq!(addrs(&eligible(&p, Family::V6, &down(&[]), &none)), ["::1"]);
        let e = eligible(
            &p,
            Family::V4,
            &down(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
            &none,
        );
        assert_eq!(addrs(&e), ["10.0.0.1", "10.0.0.2", "10.0.0.3"], "fail open");
    }

    #[test]
    fn when_all_down_modes() {
        let all_down = |_: &Pool, _: &Member| Status::Down;
        let ms = vec![member("10.0.0.1", 1)];
        assert_eq!(
            eligible(
                &pool(RR, WhenAllDown::None, ms.clone()),
                Family::V4,
                &all_down,
                &none
            ),
            Eligible::NoData
        );
        assert_eq!(
            eligible(
                &pool(RR, WhenAllDown::ServFail, ms.clone()),
                Family::V4,
                &all_down,
                &none
            ),
            Eligible::ServFail
        );
        let fb = pool(
            RR,
            WhenAllDown::Addresses(vec!["192.0.2.9".parse().unwrap()]),
            ms.clone(),
        );
        assert_eq!(
            addrs(&eligible(&fb, Family::V4, &all_down, &none)),
            ["192.0.2.9"]
        );
        assert_eq!(
            eligible(&fb, Family::V6, &all_down, &none),
            Eligible::NoData,
            "no member of the family"
        );
        let other = pool(RR, WhenAllDown::All, vec![member("10.9.9.9", 1)]);
        let via = pool(RR, WhenAllDown::Pool("other".into()), ms);
        let up_other = |_: &Pool, m: &Member| {
            if m.address.to_string() == "10.9.9.9" {
                Status::Up
            } else {
                Status::Down
            }
        };
        let find = |_: &str| Some(&other);
        assert_eq!(
            addrs(&eligible(&via, Family::V4, &up_other, &find)),
            ["10.9.9.9"]
        );
    }

    proptest! {
        /// No policy ever offers a down member while an up one of the family exists.
        #[test]
        fn never_a_down_member_while_an_up_one_exists(
            states in proptest::collection::vec((0u8..3, 0u32..3, 0u32..200), 1..12),
            policy in 0u8..3,
            max in 1usize..5,
            seed in any::<u64>(),
        ) {
            let policy = [RR, WEIGHTED, FAILOVER][policy as usize];
            let members: Vec<Member> = states.iter().enumerate().map(|(i, (_, prio, w))| Member {
                address: IpAddr::from([10, 0, 0, i as u8 + 1]), weight: *w, priority: *prio, site: None,
            }).collect();
            let status_of = |_: &Pool, m: &Member| {
                let i = members.iter().position(|x| x.address == m.address).unwrap();
                [Status::Up, Status::Down, Status::Unknown][states[i].0 as usize]
            };
            let p = pool(policy, WhenAllDown::All, members.clone());
            let any_up = members.iter().any(|m| status_of(&p, m) == Status::Up);
            let Eligible::Members { members: chosen, .. } = eligible(&p, Family::V4, &status_of, &none) else {
                panic!("fail-open pools always answer");
            };
            let weights: Vec<u32> = chosen.iter().map(|c| c.weight).collect();
            let mut rng = fastrand::Rng::with_seed(seed);
            let picked = order::pick(policy.order, &weights, max, &mut rng);
            for i in picked.iter() {
                let m = members.iter().find(|m| m.address == chosen[i].address).unwrap();
                if any_up {
                    prop_assert_ne!(status_of(&p, m), Status::Down);
                }
            }
        }
    }
}

#[cfg(test)]
mod topology_tests {
    use super::*;
    use crate::model::{Site, SiteRef};

    fn c(a: &str, site: Option<usize>) -> Candidate {
        Candidate {
            address: a.parse().unwrap(),
            weight: 1,
            site,
        }
    }

    #[test]
    fn own_site_then_fallbacks_in_order_then_all() {
        let sites = vec![
            Site {
                name: "fra".into(),
                nets: vec![],
                fallback: vec![SiteRef::Site(1)],
            },
            Site {
                name: "ber".into(),
                nets: vec![],
                fallback: vec![SiteRef::Site(2), SiteRef::Any],
            },
            Site {
                name: "muc".into(),
                nets: vec![],
                fallback: vec![],
            },
        ];
        let all = vec![
            c("10.0.0.1", Some(0)),
            c("10.0.0.2", Some(1)),
            c("10.0.0.3", None),
        ];
        let addrs = |v: Vec<Candidate>| v.iter().map(|c| c.address.to_string()).collect::<Vec<_>>();
        assert_eq!(addrs(topology(&all, Some(0), &sites)), ["10.0.0.1"]);
        assert_eq!(addrs(topology(&all, Some(1), &sites)), ["10.0.0.2"]);
        // fra down: its clients go to ber
        let no_fra = vec![all[1], all[2]];
        assert_eq!(addrs(topology(&no_fra, Some(0), &sites)), ["10.0.0.2"]);
        // ber down: muc has nobody, then any
        let no_ber = vec![all[0], all[2]];
        assert_eq!(
            addrs(topology(&no_ber, Some(1), &sites)),
            ["10.0.0.1", "10.0.0.3"]
        );
        // muc has no fallback: all; unknown clients: all
        assert_eq!(topology(&all, Some(2), &sites).len(), 3);
        assert_eq!(topology(&all, None, &sites).len(), 3);
    }
}
