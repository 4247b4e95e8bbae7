//! The table's side of the cluster: other nodes' observations as vantages of the probes, found
//! by the names every node gives them ([`ProbeName`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::Table;
use crate::cluster::ProbeName;
use crate::health::overrides::Overrides;
use crate::health::store::Vantage;
use crate::health::{State, Transition};
use crate::model::Quorum;
use crate::plan::{Plan, PoolId, ProbeId};
use crate::probe::ProbeKey;

/// Probes by their shared name, and who each vantage is.
pub(super) struct Names {
    probes: HashMap<ProbeName, ProbeId>,
    /// This node first ([`Vantage::LOCAL`]), then the others in the order they were seen.
    nodes: Vec<String>,
    /// This node's name as its NSID.
    pub(super) nsid: Arc<[u8]>,
}

impl Names {
    pub(super) fn index(&mut self, plan: &Plan) {
        self.probes = plan
            .probes
            .iter()
            .enumerate()
            .map(|(id, p)| (ProbeName::of(&p.key), id as ProbeId))
            .collect();
    }
}

impl Table {
    /// Take part in a cluster as `node`: probes get their shared names, and health is the
    /// `quorum` over the vantages that have an observation.
    pub fn join_cluster(&mut self, node: &str, quorum: Quorum) {
        let mut names = Names {
            probes: HashMap::new(),
            nodes: vec![node.to_string()],
            nsid: Arc::from(node.as_bytes()),
        };
        names.index(&self.plan);
        self.cluster = Some(names);
        self.health.quorum = quorum;
        self.live.publish(self.snapshot());
    }

    /// The vantage of `node` (one is made for a node not seen before); `None` without a
    /// cluster, or past 65,535 node names (no two nodes ever share a vantage).
    pub fn vantage(&mut self, node: &str) -> Option<Vantage> {
        let names = self.cluster.as_mut()?;
        let i = match names.nodes.iter().position(|n| n == node) {
            Some(i) => i,
            None if names.nodes.len() < usize::from(u16::MAX) => {
                names.nodes.push(node.to_string());
                names.nodes.len() - 1
            }
            None => return None,
        };
        Some(Vantage(i as u16))
    }

    /// The node a vantage is.
    pub fn node_of(&self, v: Vantage) -> Option<&str> {
        let names = self.cluster.as_ref()?;
        names.nodes.get(v.0 as usize).map(String::as_str)
    }

    /// The shared name of a probe (with a cluster).
    pub fn probe_name(&self, key: &ProbeKey) -> Option<ProbeName> {
        self.cluster.as_ref().map(|_| ProbeName::of(key))
    }

    /// Set or forget what `vantage` sees of the probe named `probe`, and republish if that
    /// changes its status. Returns the probe and the change.
    pub fn set_vantage(
        &mut self,
        probe: &ProbeName,
        vantage: Vantage,
        state: Option<State>,
        now: Instant,
    ) -> Option<(Arc<ProbeKey>, Transition)> {
        let id = *self.cluster.as_ref()?.probes.get(probe)?;
        let tr = self
            .health
            .set_vantage(id, probe.address, vantage, state, now)?;
        let pools = self.plan.probes[id as usize].pools.clone();
        self.republish(&pools);
        Some((self.plan.probes[id as usize].key.clone(), tr))
    }

    /// Forget everything `vantage` saw (its node left, or cannot be heard). Returns the probes
    /// whose status changed.
    pub fn forget_vantage(
        &mut self,
        vantage: Vantage,
        now: Instant,
    ) -> Vec<(Arc<ProbeKey>, Transition)> {
        let mut changed = Vec::new();
        let mut pools: Vec<PoolId> = Vec::new();
        for (id, p) in self.plan.probes.iter().enumerate() {
            let id = id as ProbeId;
            if let Some(tr) = self
                .health
                .set_vantage(id, p.key.address, vantage, None, now)
            {
                pools.extend(p.pools.iter().copied());
                changed.push((p.key.clone(), tr));
            }
        }
        pools.sort_unstable();
        pools.dedup();
        if !pools.is_empty() {
            self.republish(&pools);
        }
        changed
    }

    /// Replace every override (the cluster's view of them) and republish.
    pub fn replace_overrides(&mut self, overrides: Overrides) {
        self.health.overrides = overrides;
        self.recompute_all();
        self.live.publish(self.snapshot());
    }

    /// How many probes each node sees in each status.
    pub fn vote_counts(&self) -> HashMap<(&str, crate::health::Status), i64> {
        let mut counts = HashMap::new();
        for h in self.health.probes() {
            for (v, s) in h.vantages() {
                if let Some(node) = self.node_of(*v) {
                    *counts.entry((node, s.status)).or_default() += 1;
                }
            }
        }
        counts
    }

    /// Each node's vote on probe `key`, as logs show it (`ns1=down ns2=up`).
    pub fn votes_text(&self, key: &ProbeKey) -> String {
        self.plan
            .probe_id(key)
            .and_then(|id| self.health.probe(id))
            .map_or_else(String::new, |h| crate::api::votes_text(&self.votes_of(h)))
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use proptest::prelude::*;

    use super::*;
    use crate::dns::answer::{self, Transport};
    use crate::health::Status;
    use crate::model::Config;
    use crate::probe::{Failure, Outcome};

    const ZONE: &str = "zone: q.test.
soa: { mname: ns1.q.test., rname: h.q.test. }
ns: [ns1.q.test.]
records:
  ns1: { A: [192.0.2.53] }
checks:
  web: { tcp: { port: 9 }, interval: 1s, timeout: 500ms }
pools:
  sticky:
    policy: sticky
    max_answers: 2
    checks: [web]
    members: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }, { address: 192.0.2.4, weight: 300 }]
  rr:
    policy: [failover, round-robin]
    max_answers: 8
    checks: [web]
    members: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3, priority: 2 }, { address: 192.0.2.4, priority: 2 }]
names:
  s: { pool: sticky }
  r: { pool: rr }
";

    fn config() -> Config {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("q.yaml"), ZONE).unwrap();
        crate::config::load(&crate::config::Sources {
            config: None,
            zones_dir: Some(d.path().to_path_buf()),
        })
        .unwrap()
        .config
    }

    fn query(name: &str) -> Vec<u8> {
        use hickory_proto::op::{Message, MessageType, OpCode, Query};
        use hickory_proto::rr::{Name, RecordType};
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    /// The node `me` of three, fed `seen[node][member]` (true: up): its own through probe
    /// results, the others' as reported, in the order `order`.
    fn node(me: usize, seen: &[[bool; 4]; 3], order: &[usize]) -> Table {
        let now = Instant::now();
        let mut t = Table::new(config(), &|_| None, now, Arc::default()).unwrap();
        t.join_cluster(&format!("ns{me}"), Quorum::Majority);
        let mut keys: Vec<Arc<ProbeKey>> = t.probes().map(|(k, _)| k.clone()).collect();
        keys.sort_by_key(|k| k.address);
        for &n in order {
            for (m, key) in keys.iter().enumerate() {
                let up = seen[n][m];
                if n == me {
                    let o = if up {
                        Outcome::up("ok")
                    } else {
                        Outcome::down(Failure::Refused, "connect refused")
                    };
                    t.observe(key, o, now);
                } else {
                    let v = t.vantage(&format!("ns{n}")).unwrap();
                    let status = if up { Status::Up } else { Status::Down };
                    let state = State::reported(status, String::new(), now);
                    t.set_vantage(&ProbeName::of(key), v, Some(state), now);
                }
            }
        }
        t
    }

    /// The answer for `name` from `client`, with the records in a fixed order (round robin
    /// rotates them per query).
    fn answer(t: &Table, name: &str, client: IpAddr) -> Vec<String> {
        let mut buf = vec![0u8; answer::MAX_RESPONSE];
        let n = answer::answer(
            &t.live.load(),
            &query(name),
            Transport::Udp,
            client,
            &mut buf,
        )
        .unwrap();
        let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
        let mut out: Vec<String> = m.answers.iter().map(|r| r.to_string()).collect();
        if name.starts_with('r') {
            out.sort();
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Nodes with the same observations publish the same answer sets, and sticky picks
        /// the same members for the same client, whichever node they are and whatever order
        /// the observations came in.
        #[test]
        fn nodes_that_see_the_same_answer_the_same(
            seen in proptest::array::uniform3(proptest::array::uniform4(any::<bool>())),
            order_a in Just(vec![0usize, 1, 2]).prop_shuffle(),
            order_b in Just(vec![0usize, 1, 2]).prop_shuffle(),
            clients in proptest::collection::vec(any::<u32>(), 1..20),
        ) {
            let a = node(0, &seen, &order_a);
            let b = node(2, &seen, &order_b);
            let mut keys: Vec<&Arc<ProbeKey>> = a.probes().map(|(k, _)| k).collect();
            keys.sort_by_key(|k| k.address);
            for (m, key) in keys.into_iter().enumerate() {
                prop_assert_eq!(a.probe_status(key), b.probe_status(key), "{}", key.address);
                let downs = seen.iter().filter(|s| !s[m]).count();
                let want = if downs >= 2 { Status::Down } else { Status::Up };
                prop_assert_eq!(a.probe_status(key), want, "majority of {:?}", seen);
            }
            for c in clients {
                let client = IpAddr::from(c.to_be_bytes());
                for name in ["s.q.test", "r.q.test"] {
                    prop_assert_eq!(answer(&a, name, client), answer(&b, name, client), "{} from {}", name, client);
                }
            }
        }
    }
}
