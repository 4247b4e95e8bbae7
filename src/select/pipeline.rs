//! The publish-time steps of the pipeline, as the one function that publishing and `explain`
//! both run: publishing passes [`NoTrace`], explain a recorder of the steps, so explain cannot
//! tell a different story from the answers.
//!
//! ```text
//!  family(): 1 family ─▶ 2 health ─▶ 3 failover | when_all_down ─▶ weights ─▶ drain
//!  site():   4 topology (once per site at publish time; the client's site for explain)
//! ```

use std::borrow::Cow;

use crate::health::Status;
use crate::model::{Member, Order, Pool, SiteRef, WhenAllDown};

use super::{Candidate, Eligible, Family};

/// What the writer knows about members right now: health, overrides, load.
pub trait Judge {
    /// The health of `pool.members[member]` as judged by the checks of `pool` (the same address
    /// may be in several pools with different checks), overrides and agents included.
    fn status(&self, pool: &Pool, member: usize) -> Status;
    /// Whether an operator drained this member or its site.
    fn drained(&self, c: &Candidate) -> bool;
    /// The member's weight now: weight × spare capacity × slow-start ramp.
    fn weight(&self, pool: &Pool, c: &Candidate) -> u32;
    /// A pool of the same zone, for `when_all_down: { pool: NAME }`.
    fn pool(&self, name: &str) -> Option<&Pool>;
}

/// One step and what it kept.
#[derive(Debug)]
pub enum Step<'a> {
    /// 1: the members of the query's family.
    Family { kept: &'a [&'a Member] },
    /// 2: down members dropped (unknown ones are kept: fail open at a cold start).
    Health {
        kept: &'a [&'a Member],
        dropped: &'a [&'a Member],
    },
    /// No member usable: the pool's `when_all_down` decided.
    WhenAllDown { mode: &'a WhenAllDown },
    /// 3: the first priority group with a usable member.
    Failover { kept: &'a [Candidate] },
    /// The weights the ordering step samples by (not for round-robin).
    Weights { members: &'a [Candidate] },
    /// Drained members dropped while another member can take the answers.
    Drain {
        kept: &'a [Candidate],
        dropped: &'a [Candidate],
    },
    /// 4: the members for the client's site (`None`: no site matched it) and order.
    Topology {
        site: Option<usize>,
        /// The step is `nearest` (the order is by distance), not `topology`.
        nearest: bool,
        kept: &'a [Candidate],
    },
}

/// Receives the steps as they run.
pub trait Trace {
    fn step(&mut self, step: Step<'_>);
}

/// Publishing: nobody listens.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline]
    fn step(&mut self, _: Step<'_>) {}
}

/// Everything up to topology for one family: what the clients of any site choose from.
pub fn family(pool: &Pool, family: Family, judge: &impl Judge, trace: &mut impl Trace) -> Eligible {
    let mut e = eligible(pool, family, judge, true, trace);
    if let Eligible::Members { members, .. } = &mut e {
        for c in members.iter_mut() {
            c.weight = judge.weight(pool, c);
        }
        if pool.policy.order != Order::RoundRobin {
            trace.step(Step::Weights { members });
        }
        let drained: Vec<bool> = members.iter().map(|c| judge.drained(c)).collect();
        if drained.contains(&true) && drained.contains(&false) {
            let (mut kept, mut dropped) = (Vec::new(), Vec::new());
            for (c, d) in members.iter().zip(drained) {
                if d { &mut dropped } else { &mut kept }.push(*c);
            }
            trace.step(Step::Drain {
                kept: &kept,
                dropped: &dropped,
            });
            *members = kept;
        }
    }
    e
}

/// Step 4 for clients whose sites come in `order` (their own `site` first, if one matched): a
/// topology or nearest pool keeps the members of the first site in the order that has any,
/// else all; any other pool keeps `e` as it is.
pub fn place<'e>(
    pool: &Pool,
    e: &'e Eligible,
    order: &[SiteRef],
    site: Option<usize>,
    trace: &mut impl Trace,
) -> Cow<'e, Eligible> {
    match e {
        Eligible::Members { members, degraded } if pool.policy.topology || pool.policy.nearest => {
            let kept = super::topology(members, order);
            trace.step(Step::Topology {
                site,
                nearest: pool.policy.nearest,
                kept: &kept,
            });
            Cow::Owned(Eligible::Members {
                members: kept,
                degraded: *degraded,
            })
        }
        other => Cow::Borrowed(other),
    }
}

/// The members of one site (`None`: all) of `e`: what [`place`] keeps, given the site it
/// found first ([`super::first_site`]). Publishing builds one view per such site.
pub fn keep_site(e: &Eligible, site: Option<usize>) -> Cow<'_, Eligible> {
    match (e, site) {
        (Eligible::Members { members, degraded }, Some(_)) => Cow::Owned(Eligible::Members {
            members: super::of_site(members, site),
            degraded: *degraded,
        }),
        (other, _) => Cow::Borrowed(other),
    }
}

/// The whole publish-time pipeline for clients whose sites come in `order`.
pub fn run(
    pool: &Pool,
    f: Family,
    order: &[SiteRef],
    client_site: Option<usize>,
    judge: &impl Judge,
    trace: &mut impl Trace,
) -> Eligible {
    let e = family(pool, f, judge, trace);
    place(pool, &e, order, client_site, trace).into_owned()
}

/// Steps 1–3 and `when_all_down`. The pool that `when_all_down: { pool }` names is asked once,
/// without a fallback of its own.
fn eligible(
    pool: &Pool,
    family: Family,
    judge: &impl Judge,
    may_fall_back: bool,
    trace: &mut impl Trace,
) -> Eligible {
    // 1. candidates of the query's family
    let of_family: Vec<&Member> = pool
        .members
        .iter()
        .filter(|m| Family::of(&m.address) == family)
        .collect();
    trace.step(Step::Family { kept: &of_family });
    if of_family.is_empty() {
        return Eligible::NoData;
    }
    // 2. drop members that are down (unknown counts as usable: fail open at a cold start)
    let mut usable: Vec<&Member> = Vec::with_capacity(of_family.len());
    let mut down: Vec<&Member> = Vec::new();
    for (i, m) in pool.members.iter().enumerate() {
        if Family::of(&m.address) != family {
            continue;
        }
        if judge.status(pool, i) == Status::Down {
            down.push(m);
        } else {
            usable.push(m);
        }
    }
    trace.step(Step::Health {
        kept: &usable,
        dropped: &down,
    });
    if usable.is_empty() {
        trace.step(Step::WhenAllDown {
            mode: &pool.when_all_down,
        });
        return all_down(pool, family, &of_family, judge, may_fall_back);
    }
    let degraded = !down.is_empty();
    // 3. failover: the first priority group that has a usable member
    let members: Vec<Candidate> = if pool.policy.failover {
        let best = usable.iter().map(|m| m.priority).min().unwrap_or(0);
        let kept: Vec<Candidate> = usable
            .into_iter()
            .filter(|m| m.priority == best)
            .map(Candidate::from)
            .collect();
        trace.step(Step::Failover { kept: &kept });
        kept
    } else {
        usable.into_iter().map(Candidate::from).collect()
    };
    Eligible::Members { members, degraded }
}

fn all_down(
    pool: &Pool,
    family: Family,
    members: &[&Member],
    judge: &impl Judge,
    may_fall_back: bool,
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
        WhenAllDown::Pool(name) => match judge.pool(name).filter(|_| may_fall_back) {
            // One level only: the fallback pool's own fallback is not followed.
            Some(other) => match eligible(other, family, judge, false, &mut NoTrace) {
                Eligible::Members { members, .. } => Eligible::Members {
                    members,
                    degraded: true,
                },
                other => other,
            },
            None => Eligible::NoData,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Policy;
    use crate::select::order;
    use proptest::prelude::*;
    use std::net::IpAddr;

    const RR: Policy = Policy::ROUND_ROBIN;
    const WEIGHTED: Policy = Policy {
        order: Order::Weighted,
        ..Policy::ROUND_ROBIN
    };
    const FAILOVER: Policy = Policy {
        failover: true,
        ..Policy::ROUND_ROBIN
    };

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

    /// A judge from closures: status by address, no drains, weights as configured.
    struct Fixed<'p, S: Fn(&Member) -> Status> {
        status: S,
        drained: Vec<IpAddr>,
        other: Option<&'p Pool>,
    }

    impl<S: Fn(&Member) -> Status> Judge for Fixed<'_, S> {
        fn status(&self, pool: &Pool, member: usize) -> Status {
            (self.status)(&pool.members[member])
        }
        fn drained(&self, c: &Candidate) -> bool {
            self.drained.contains(&c.address)
        }
        fn weight(&self, _: &Pool, c: &Candidate) -> u32 {
            c.weight
        }
        fn pool(&self, _: &str) -> Option<&Pool> {
            self.other
        }
    }

    fn down_set(set: &'static [&'static str]) -> Fixed<'static, impl Fn(&Member) -> Status> {
        Fixed {
            status: move |m: &Member| {
                if set.contains(&m.address.to_string().as_str()) {
                    Status::Down
                } else {
                    Status::Up
                }
            },
            drained: vec![],
            other: None,
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

    fn fam(p: &Pool, f: Family, j: &impl Judge) -> Eligible {
        family(p, f, j, &mut NoTrace)
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
        assert_eq!(
            addrs(&fam(&p, Family::V4, &down_set(&[]))),
            ["10.0.0.1", "10.0.0.2"]
        );
        assert_eq!(
            addrs(&fam(&p, Family::V4, &down_set(&["10.0.0.1"]))),
            ["10.0.0.2"]
        );
        assert_eq!(
            addrs(&fam(&p, Family::V4, &down_set(&["10.0.0.1", "10.0.0.2"]))),
            ["10.0.0.3"]
        );
        assert_eq!(addrs(&fam(&p, Family::V6, &down_set(&[]))), ["::1"]);
        let e = fam(
            &p,
            Family::V4,
            &down_set(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        );
        assert_eq!(addrs(&e), ["10.0.0.1", "10.0.0.2", "10.0.0.3"], "fail open");
    }

    #[test]
    fn drained_members_go_only_while_another_can_answer() {
        let p = pool(
            RR,
            WhenAllDown::All,
            vec![member("10.0.0.1", 1), member("10.0.0.2", 1)],
        );
        let mut j = down_set(&[]);
        j.drained = vec!["10.0.0.1".parse().unwrap()];
        assert_eq!(addrs(&fam(&p, Family::V4, &j)), ["10.0.0.2"]);
        j.drained.push("10.0.0.2".parse().unwrap());
        assert_eq!(addrs(&fam(&p, Family::V4, &j)), ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn when_all_down_modes() {
        let all_down = Fixed {
            status: |_: &Member| Status::Down,
            drained: vec![],
            other: None,
        };
        let ms = vec![member("10.0.0.1", 1)];
        assert_eq!(
            fam(
                &pool(RR, WhenAllDown::None, ms.clone()),
                Family::V4,
                &all_down
            ),
            Eligible::NoData
        );
        assert_eq!(
            fam(
                &pool(RR, WhenAllDown::ServFail, ms.clone()),
                Family::V4,
                &all_down
            ),
            Eligible::ServFail
        );
        let fb = pool(
            RR,
            WhenAllDown::Addresses(vec!["192.0.2.9".parse().unwrap()]),
            ms.clone(),
        );
        assert_eq!(addrs(&fam(&fb, Family::V4, &all_down)), ["192.0.2.9"]);
        assert_eq!(
            fam(&fb, Family::V6, &all_down),
            Eligible::NoData,
            "no member of the family"
        );
        let other = pool(RR, WhenAllDown::All, vec![member("10.9.9.9", 1)]);
        let via = pool(RR, WhenAllDown::Pool("other".into()), ms);
        let up_other = Fixed {
            status: |m: &Member| {
                if m.address.to_string() == "10.9.9.9" {
                    Status::Up
                } else {
                    Status::Down
                }
            },
            drained: vec![],
            other: Some(&other),
        };
        assert_eq!(addrs(&fam(&via, Family::V4, &up_other)), ["10.9.9.9"]);
    }

    /// Explain's recorder sees the steps in pipeline order.
    #[test]
    fn the_trace_follows_the_steps() {
        #[derive(Default)]
        struct Names(Vec<&'static str>);
        impl Trace for Names {
            fn step(&mut self, s: Step<'_>) {
                self.0.push(match s {
                    Step::Family { .. } => "family",
                    Step::Health { .. } => "health",
                    Step::WhenAllDown { .. } => "when_all_down",
                    Step::Failover { .. } => "failover",
                    Step::Weights { .. } => "weights",
                    Step::Drain { .. } => "drain",
                    Step::Topology { .. } => "topology",
                });
            }
        }
        let policy = Policy {
            topology: true,
            ..WEIGHTED
        };
        let mut p = pool(policy, WhenAllDown::All, vec![member("10.0.0.1", 1)]);
        p.policy.failover = true;
        let mut t = Names::default();
        run(&p, Family::V4, &[], None, &down_set(&[]), &mut t);
        assert_eq!(t.0, ["family", "health", "failover", "weights", "topology"]);
        let mut t = Names::default();
        run(&p, Family::V4, &[], None, &down_set(&["10.0.0.1"]), &mut t);
        assert_eq!(
            t.0,
            ["family", "health", "when_all_down", "weights", "topology"]
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
            let status_of = |m: &Member| {
                let i = members.iter().position(|x| x.address == m.address).unwrap();
                [Status::Up, Status::Down, Status::Unknown][states[i].0 as usize]
            };
            let judge = Fixed { status: status_of, drained: vec![], other: None };
            let p = pool(policy, WhenAllDown::All, members.clone());
            let any_up = members.iter().any(|m| status_of(m) == Status::Up);
            let Eligible::Members { members: chosen, .. } = fam(&p, Family::V4, &judge) else {
                panic!("fail-open pools always answer");
            };
            let weights: Vec<u32> = chosen.iter().map(|c| c.weight).collect();
            let mut rng = fastrand::Rng::with_seed(seed);
            let picked = order::pick(policy.order, &weights, max, &mut rng);
            for i in picked.iter() {
                let m = members.iter().find(|m| m.address == chosen[i].address).unwrap();
                if any_up {
                    prop_assert_ne!(status_of(m), Status::Down);
                }
            }
        }
    }
}
