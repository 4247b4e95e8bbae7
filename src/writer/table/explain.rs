//! `GET /v1/explain`: the answer a client would get now, and why.
//!
//! The answer itself comes from the real query path (`dns::answer` over the live snapshot, with
//! the client as ECS option), so it cannot disagree with what resolvers get. The steps are
//! recomputed from the writer's view (config, health, overrides, load) with the same pipeline
//! functions the snapshot was built with, keeping at each step the candidates that survived.

use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinDecodable;

use super::Table;
use crate::api::explain::{self as api, Asked, ExplainError, Explanation, Question, RealAnswer};
use crate::dns::answer::{self, Transport};
use crate::health::Status;
use crate::model::{self, Order, WhenAllDown};
use crate::plan::PoolId;
use crate::select::pipeline::{self, Step, Trace};
use crate::select::sites;
use crate::select::{Candidate, Eligible, Family};

/// CNAMEs inside a zone that explain follows to a pooled name.
const MAX_CHAIN: usize = 8;

impl Table {
    /// Explain `q`, or say what is wrong with it.
    pub fn explain(&self, q: &Question) -> Result<Explanation, ExplainError> {
        let name = Name::from_str(q.name.trim())
            .map_err(|e| {
                ExplainError::Question(format!("name: {:?} is not a domain name: {e}", q.name))
            })?
            .to_lowercase();
        let name = if name.is_fqdn() {
            name
        } else {
            let mut n = name;
            n.set_fqdn(true);
            n
        };
        let qtype_text = q.qtype.as_deref().unwrap_or("A").to_ascii_uppercase();
        let qtype = RecordType::from_str(&qtype_text).map_err(|_| {
            ExplainError::Question(format!("type: {qtype_text:?} is not a record type"))
        })?;
        let (client, ecs_len) = parse_client(&q.client).map_err(ExplainError::Question)?;

        let mut out = Explanation {
            question: Asked {
                name: name.to_string(),
                qtype: qtype.to_string(),
                client: q.client.clone(),
            },
            answer: self.real_answer(&name, qtype, client, ecs_len)?,
            zone: None,
            cname_chain: Vec::new(),
            why: None,
            pool: None,
            policy: None,
            members: Vec::new(),
            steps: Vec::new(),
        };
        let Some(zone) = self
            .config
            .zones
            .iter()
            .filter(|z| z.origin.zone_of(&name))
            .max_by_key(|z| z.origin.num_labels())
        else {
            out.why = Some("no zone of this server holds the name: REFUSED".into());
            return Ok(out);
        };
        out.zone = Some(zone.origin.to_string());

        // Follow CNAMEs inside the zone to the name that is bound to a pool, through the nodes
        // the query path reads (the table keeps no static records of its own).
        let nodes = self
            .zones
            .get(crate::snapshot::lower_wire(&zone.origin).as_slice())
            .map(|z| &z.nodes);
        let mut at = name.clone();
        let pool_id = loop {
            let node = nodes.and_then(|n| n.get(crate::snapshot::lower_wire(&at).as_slice()));
            if let Some(id) = node.and_then(|n| n.pool) {
                break Some(id);
            }
            // Only aliases into this zone have a target here.
            let target = node
                .and_then(|n| n.cname.as_deref())
                .and_then(|t| Name::from_bytes(t).ok());
            match target {
                Some(target) if out.cname_chain.len() < MAX_CHAIN => {
                    out.cname_chain.push(format!("{at} CNAME {target}"));
                    at = target;
                }
                _ => break None,
            }
        };
        let Some(id) = pool_id else {
            out.why = Some("static data of the zone (no pool): answered as configured".into());
            return Ok(out);
        };
        if self.plan.pools.get(id as usize).is_none() {
            return Ok(out);
        }
        let pool = self.pool(id);
        out.pool = Some(pool.name.clone());
        let family = match qtype {
            RecordType::A => Family::V4,
            RecordType::AAAA => Family::V6,
            _ => {
                out.why = Some(format!(
                    "{at} is bound to pool {}, which answers only A and AAAA: {qtype} is NODATA",
                    pool.name
                ));
                return Ok(out);
            }
        };
        out.policy = Some(api::Policy {
            order: pool.policy.order,
            failover: pool.policy.failover,
            topology: pool.policy.topology,
            nearest: pool.policy.nearest,
            max_answers: pool.max_answers,
            ttl: pool.ttl,
        });
        out.members = pool
            .members
            .iter()
            .enumerate()
            .map(|(mi, m)| self.explain_member(zone, id, mi, m))
            .collect();
        out.steps = self.steps(zone, id, family, client, ecs_len);
        Ok(out)
    }

    fn explain_member(
        &self,
        zone: &model::Zone,
        id: PoolId,
        mi: usize,
        m: &model::Member,
    ) -> api::Member {
        api::Member {
            address: m.address,
            status: self.member_status(id, mi),
            priority: m.priority,
            weight: m.weight,
            site: m
                .site
                .and_then(|s| zone.sites.get(s))
                .map(|s| s.name.clone()),
            own_override: self.override_for(zone, m.address, m.site).cloned(),
            checks: {
                let probes = self.plan.pools[id as usize].probes_of(mi);
                let pool = self.pool(id);
                pool.checks
                    .iter()
                    .zip(probes)
                    .map(|(c, &pid)| {
                        let h = self.health.probe(pid);
                        api::Check {
                            check: c.name.clone(),
                            status: self.health.status(pid),
                            last_result: h
                                .and_then(|h| h.local().last.as_ref())
                                .map(|o| o.reason.clone()),
                            votes: h.map_or_else(Vec::new, |h| self.votes_of(h)),
                        }
                    })
                    .collect()
            },
        }
    }

    /// The pipeline for one family, step by step: the very function the snapshot was
    /// published with, with a recorder instead of no trace.
    fn steps(
        &self,
        zone: &model::Zone,
        id: PoolId,
        family: Family,
        client: IpAddr,
        ecs_len: Option<u8>,
    ) -> Vec<api::Step> {
        // The client's site as the query path finds it: the same site map, the same cut of
        // the ECS prefix.
        let pool = self.pool(id);
        let (addr, prefix) = sites::client(client, ecs_len);
        let placer = self
            .zones
            .get(crate::snapshot::lower_wire(&zone.origin).as_slice())
            .and_then(|z| z.topology.as_ref())
            .filter(|_| pool.policy.topology || pool.policy.nearest);
        let placed = placer.map(|t| t.place(addr, prefix));
        let order: &[model::SiteRef] = match (placer, placed) {
            (Some(t), Some(p)) => {
                let n = if pool.policy.nearest {
                    p.nearest
                } else {
                    p.topology
                };
                t.orders().get(usize::from(n)).map_or(&[], |o| o)
            }
            _ => &[],
        };
        let mut rec = Recorder {
            table: self,
            zone,
            id,
            family,
            // Only an ECS client gets a scope back.
            ecs_scope: placed
                .filter(|_| ecs_len.is_some_and(|l| l > 0))
                .map(|p| p.scope),
            order: order
                .iter()
                .map(|r| match r {
                    model::SiteRef::Site(s) => zone.sites[*s].name.clone(),
                    model::SiteRef::Any => "any".to_string(),
                })
                .collect(),
            geo: placer.and_then(|t| t.describe(addr, &zone.sites)),
            steps: Vec::new(),
        };
        let site = placed.and_then(|p| p.site);
        let judge = self.judge(id);
        let e = pipeline::run(pool, family, order, site, &judge, &mut rec);
        let mut steps = rec.steps;
        let (members, degraded) = match e {
            Eligible::Members { members, degraded } => (members, degraded),
            Eligible::NoData => {
                steps.push(api::Step::Answer {
                    note: "NODATA (SOA in the authority section)".into(),
                });
                return steps;
            }
            Eligible::ServFail => {
                steps.push(api::Step::Answer {
                    note: "SERVFAIL".into(),
                });
                return steps;
            }
        };
        let note = match pool.policy.order {
            Order::RoundRobin => "round-robin: a random rotation per query",
            Order::Weighted => "weighted: sampled without replacement by weight, per query",
            Order::LeastLoaded => {
                "least-loaded: sampled by spare capacity (the weights above), per query"
            }
            Order::Sticky => {
                "sticky: rendezvous hash of the client prefix; the same client keeps its member"
            }
        };
        steps.push(api::Step::Order {
            candidates: list(&members),
            max_answers: pool.max_answers,
            note: note.into(),
        });
        steps.push(api::Step::Ttl {
            ttl: if degraded { pool.ttl / 2 } else { pool.ttl },
            note: if degraded {
                "halved: some member of the family is down"
            } else {
                "the pool's ttl"
            }
            .into(),
        });
        steps
    }

    /// Why a member counts as down: an override, an agent, or its failing checks.
    fn why_down(&self, zone: &model::Zone, id: PoolId, m: &model::Member) -> String {
        if let Some(o) = self.override_for(zone, m.address, m.site)
            && o.kind == super::OverrideKind::ForceDown
        {
            return format!("force-down by an operator ({})", o.reason);
        }
        let mi = self
            .pool(id)
            .members
            .iter()
            .position(|x| std::ptr::eq(x, m));
        let probes = mi.map_or(&[][..], |mi| self.plan.pools[id as usize].probes_of(mi));
        let failing: Vec<String> = self
            .pool(id)
            .checks
            .iter()
            .zip(probes)
            .filter(|(_, pid)| self.health.status(**pid) == Status::Down)
            .filter_map(|(c, &pid)| {
                let h = self.health.probe(pid)?;
                let local = h.local();
                if local.status == Status::Down || self.cluster.is_none() {
                    let last = local.last.as_ref().map_or("", |o| o.reason.as_str());
                    return Some(format!("{}: {last}", c.name));
                }
                Some(format!(
                    "{}: down by the cluster's votes ({})",
                    c.name,
                    crate::api::votes_text(&self.votes_of(h))
                ))
            })
            .collect();
        if failing.is_empty() {
            "its load agent reports down".to_string()
        } else {
            failing.join("; ")
        }
    }

    /// Ask the live snapshot, exactly as a resolver would.
    fn real_answer(
        &self,
        name: &Name,
        qtype: RecordType,
        client: IpAddr,
        ecs_len: Option<u8>,
    ) -> Result<RealAnswer, ExplainError> {
        let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(name.clone(), qtype));
        let mut e = Edns::new();
        e.set_max_payload(1232);
        if let Some(len) = ecs_len {
            // RFC 7871 §6: no bits past the source prefix (the query path refuses them).
            let net = ipnet::IpNet::new(client, len).map_or(client, |n| n.trunc().addr());
            e.options_mut()
                .insert(EdnsOption::Subnet(ClientSubnet::new(net, len, 0)));
        }
        m.set_edns(e);
        let packet = m
            .to_vec()
            .map_err(|e| ExplainError::Internal(format!("cannot build the query: {e}")))?;
        let mut buf = vec![0u8; answer::MAX_RESPONSE];
        let snap = self.live.load();
        let n = answer::answer(&snap, &packet, Transport::Tcp, client, &mut buf)
            .ok_or_else(|| ExplainError::Internal("the query path dropped the query".into()))?;
        let r = Message::from_vec(&buf[..n])
            .map_err(|e| ExplainError::Internal(format!("unreadable response: {e}")))?;
        let records = |rs: &[hickory_proto::rr::Record]| -> Vec<String> {
            rs.iter().map(|r| r.to_string()).collect()
        };
        let scope = r
            .edns
            .as_ref()
            .and_then(|e| e.option(EdnsCode::Subnet))
            .and_then(|o| match o {
                EdnsOption::Subnet(s) => Some(s.scope_prefix()),
                _ => None,
            });
        Ok(RealAnswer {
            rcode: format!("{:?}", r.metadata.response_code).to_uppercase(),
            authoritative: r.metadata.authoritative,
            answer: records(&r.answers),
            authority: records(&r.authorities),
            ecs_scope: scope,
        })
    }
}

/// `IP` or `IP/LEN`.
fn parse_client(s: &str) -> Result<(IpAddr, Option<u8>), String> {
    let s = s.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("client: {s:?} is not IP or IP/LEN"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => None,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => Some(n),
            _ => return Err(format!("client: prefix length {l:?} is not 0..={max}")),
        },
    };
    Ok((addr, len))
}

fn list(c: &[Candidate]) -> Vec<IpAddr> {
    c.iter().map(|c| c.address).collect()
}

fn addresses(ms: &[&model::Member]) -> Vec<IpAddr> {
    ms.iter().map(|m| m.address).collect()
}

/// Turns the pipeline's steps into explain's.
struct Recorder<'a> {
    table: &'a Table,
    zone: &'a model::Zone,
    id: PoolId,
    family: Family,
    /// The ECS scope of a topology answer, as the query path computes it.
    ecs_scope: Option<u8>,
    /// The client's order of sites, by name.
    order: Vec<String>,
    /// What the GeoIP databases say of the client.
    geo: Option<crate::geo::Described>,
    steps: Vec<api::Step>,
}

impl Trace for Recorder<'_> {
    fn step(&mut self, step: Step<'_>) {
        let v = match step {
            Step::Family { kept } => api::Step::Family {
                kept: addresses(kept),
                note: match self.family {
                    Family::V4 => "A: the IPv4 members",
                    Family::V6 => "AAAA: the IPv6 members",
                }
                .into(),
            },
            Step::Health { kept, dropped } => api::Step::Health {
                kept: addresses(kept),
                dropped: dropped
                    .iter()
                    .map(|m| api::Dropped {
                        address: m.address,
                        why: self.table.why_down(self.zone, self.id, m),
                    })
                    .collect(),
                note: "down members are dropped; not-yet-probed (unknown) members count as usable"
                    .into(),
            },
            Step::WhenAllDown { mode } => api::Step::WhenAllDown {
                note: match mode {
                    WhenAllDown::All => "all: every member (fail open)".to_string(),
                    WhenAllDown::None => "none: NODATA".to_string(),
                    WhenAllDown::ServFail => "servfail: SERVFAIL".to_string(),
                    WhenAllDown::Addresses(a) => format!("fallback addresses {a:?}"),
                    WhenAllDown::Pool(p) => format!("fallback pool {p}"),
                },
            },
            Step::Failover { kept } => api::Step::Failover {
                kept: list(kept),
                note: "the first priority group that has a usable member".into(),
            },
            Step::Weights { members } => api::Step::Weights {
                weights: members.iter().map(|c| (c.address, c.weight)).collect(),
                note: "weight × 100 × spare capacity (least-loaded) × slow-start ramp".into(),
            },
            Step::Drain { kept, dropped } => api::Step::Drain {
                kept: list(kept),
                dropped: list(dropped),
                note: "drained members get no new answers while another member can take them"
                    .into(),
            },
            Step::Topology {
                site,
                nearest,
                kept,
            } => api::Step::Topology {
                client_site: site
                    .and_then(|s| self.zone.sites.get(s))
                    .map(|s| s.name.clone()),
                ecs_scope: self.ecs_scope,
                order: self.order.clone(),
                client: self.geo.clone(),
                kept: list(kept),
                note: match (nearest, site.is_some(), self.order.is_empty()) {
                    (true, _, false) => {
                        "nearest: the members of the first site in the client's order (its matched site, then by distance) that has any"
                    }
                    (false, true, _) => {
                        "the members of the client's site, else of its fallback sites in order"
                    }
                    _ => "no site covers the client and its location is unknown: every member",
                }
                .into(),
            },
        };
        self.steps.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients() {
        assert_eq!(
            parse_client("10.1.2.3/24").unwrap(),
            ("10.1.2.3".parse().unwrap(), Some(24))
        );
        assert_eq!(
            parse_client("2001:db8::1").unwrap(),
            ("2001:db8::1".parse().unwrap(), None)
        );
        assert!(parse_client("10.1.2.3/33").is_err());
        assert!(parse_client("nope").is_err());
    }
}
