//! The writer's side of the cluster: this node's observations and overrides go to the etcd
//! task; the other nodes' come back as vantages of the table's probes; overrides from any
//! node are applied here and kept in `state_dir` as the cold-start cache.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::Writer;
use crate::cluster::{Change, Event, Observation, ProbeName, Publish, View};
use crate::health::overrides::{Override, OverrideTarget};
use crate::health::{State, Status, Transition};
use crate::metrics::{NodeLabels, ThisNode};
use crate::model;
use crate::probe::ProbeKey;
use crate::state;

/// How long an override request waits for etcd to confirm before the API answers.
const OVERRIDE_WAIT: Duration = Duration::from_secs(3);

/// How much longer than a lease this node trusts the others' observations after it lost
/// etcd: an etcd leader election (election timeout 1 s by default, drawn up to 2 s) and the
/// client's move to the next member. No lease expires while etcd has no leader (the new one
/// renews them all), so a node that waited out an election has not lost the others.
const ELECTION_ALLOWANCE: Duration = Duration::from_secs(3);

/// This node's membership, as the writer keeps it.
pub(super) struct Member {
    pub settings: model::Cluster,
    publish: mpsc::UnboundedSender<Publish>,
    /// How long observations outlive a node (its lease): with an election's allowance, also
    /// how long this node trusts the others' observations after it lost etcd.
    lease_ttl: Duration,
    /// The live nodes as etcd last said (this one included).
    nodes: Vec<String>,
    connected: bool,
    /// Since when, and why, etcd has been unreachable.
    lost: Option<(Instant, String)>,
    /// The others' observations were dropped: this node decides alone until etcd is back.
    alone: bool,
    /// Every observation of the others, to apply again after a reload.
    view: View,
    /// Whether a view came since the start.
    seen_view: bool,
}

/// The lease of this node's observations: three probe intervals (of the slowest check), at
/// least three seconds.
pub fn lease_ttl<'a>(probes: impl Iterator<Item = &'a ProbeKey>) -> Duration {
    let slowest = probes.map(|k| k.spec.interval).max().unwrap_or_default();
    (slowest * 3).max(Duration::from_secs(3))
}

impl Member {
    pub fn new(
        settings: model::Cluster,
        publish: mpsc::UnboundedSender<Publish>,
        lease_ttl: Duration,
    ) -> Member {
        Member {
            nodes: vec![settings.node.clone()],
            settings,
            publish,
            lease_ttl,
            connected: false,
            lost: None,
            alone: false,
            view: View::default(),
            seen_view: false,
        }
    }

    /// For the status API: whether etcd is reachable, why not, and the live nodes.
    pub fn status(&self) -> crate::api::ClusterStatus {
        crate::api::ClusterStatus {
            node: self.settings.node.clone(),
            quorum: self.settings.quorum.to_string(),
            connected: self.connected,
            problem: self.lost.as_ref().map(|(_, why)| why.clone()),
            nodes: self.nodes.clone(),
        }
    }
}

impl Writer {
    /// Tell etcd what this node now sees of a probe.
    pub(super) fn publish_observation(&self, key: &ProbeKey) {
        let Some(m) = &self.cluster else { return };
        let (Some(probe), Some(state)) = (self.table.probe_name(key), self.table.probe_state(key))
        else {
            return;
        };
        if state.status == Status::Unknown {
            return;
        }
        let since = self.clock.unix_of(state.since);
        let observation = Observation {
            check: self.table.check_names(key),
            status: state.status,
            reason: state
                .last
                .as_ref()
                .map_or_else(String::new, |o| o.reason.clone()),
            since_unix: since,
        };
        let _ = m.publish.send(Publish::Observation {
            probe,
            observation: Some(observation),
        });
    }

    /// Probes that are gone from the config are gone from etcd too.
    pub(super) fn unpublish(&self, keys: &[std::sync::Arc<ProbeKey>]) {
        let Some(m) = &self.cluster else { return };
        for k in keys {
            let _ = m.publish.send(Publish::Observation {
                probe: ProbeName::of(k),
                observation: None,
            });
        }
    }

    /// Write an override taken here to etcd; `reply` hears whether etcd has it (the writer
    /// does not wait for that).
    pub(super) fn share_override(
        &self,
        target: OverrideTarget,
        value: Option<Override>,
        reply: oneshot::Sender<Result<(), crate::admin::OverrideError>>,
    ) {
        let Some(m) = &self.cluster else {
            let _ = reply.send(Ok(()));
            return;
        };
        let (done, confirmed) = oneshot::channel();
        let _ = m.publish.send(Publish::Override {
            target,
            value,
            done,
        });
        tokio::spawn(async move {
            let r = match tokio::time::timeout(OVERRIDE_WAIT, confirmed).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(why))) => Err(why),
                Ok(Err(_)) => Err("the etcd task stopped".to_string()),
                Err(_) => Err(format!(
                    "etcd did not confirm within {}: the override applies on this node and is written to etcd when it answers",
                    humantime::format_duration(OVERRIDE_WAIT)
                )),
            };
            let _ = reply.send(r.map_err(crate::admin::OverrideError::NotShared));
        });
    }

    /// An event of the etcd task.
    pub(super) fn on_cluster(&mut self, ev: Event) {
        let now = self.clock.now();
        match ev {
            Event::View(view) => self.take_view(view, now),
            Event::Changes(changes) => {
                for c in changes {
                    self.take_change(c, now);
                }
            }
            Event::Lost { why, last_contact } => {
                let Some(m) = &mut self.cluster else { return };
                if m.connected || m.lost.is_none() {
                    tracing::warn!(
                        "cluster: lost the session with etcd ({why}); answering from the last cluster view while reconnecting; after {} without etcd, from this node's own observations",
                        humantime::format_duration(m.lease_ttl + ELECTION_ALLOWANCE)
                    );
                    // The others' leases run from when etcd last heard from them, at best
                    // from when it last answered this node.
                    m.lost = Some((last_contact.min(now), why));
                } else if let Some((_, last)) = &mut m.lost {
                    tracing::debug!("cluster: still no etcd: {why}");
                    *last = why;
                }
                m.connected = false;
            }
        }
        self.cluster_metrics();
    }

    /// Time passes: once this node has been without etcd for a lease, the others'
    /// observations are stale (their nodes may be gone) and this node decides alone.
    pub(super) fn cluster_tick(&mut self) {
        let now = self.clock.now();
        let Some(m) = &mut self.cluster else { return };
        let Some((since, _)) = &m.lost else { return };
        if m.alone || now.saturating_duration_since(*since) < m.lease_ttl + ELECTION_ALLOWANCE {
            return;
        }
        m.alone = true;
        let others: Vec<String> = m
            .nodes
            .iter()
            .filter(|n| **n != m.settings.node)
            .cloned()
            .collect();
        tracing::warn!(
            "cluster: etcd unreachable for {}: the other nodes' observations are stale; this node decides from its own until etcd is back",
            humantime::format_duration(m.lease_ttl + ELECTION_ALLOWANCE)
        );
        for n in others {
            self.forget_node(&n, now);
        }
        self.cluster_metrics();
    }

    fn take_view(&mut self, mut view: View, now: Instant) {
        let Some(m) = &mut self.cluster else { return };
        let me = m.settings.node.clone();
        // The first view after a start: overrides this node took (kept in state_dir) that
        // etcd does not have, or has older, were taken while etcd was away and the node was
        // restarted before it could write them: they stand, and go to etcd now.
        if !m.seen_view {
            m.seen_view = true;
            let now_unix = self.clock.unix();
            let mine: Vec<(OverrideTarget, Override)> = self
                .table
                .overrides()
                .iter()
                .filter(|(t, o)| {
                    o.node.as_deref() == Some(me.as_str())
                        && o.expires_unix.is_none_or(|e| e > now_unix)
                        && view
                            .overrides
                            .get(t)
                            .is_none_or(|e| e.set_unix < o.set_unix)
                })
                .map(|(t, o)| (t, o.clone()))
                .collect();
            for (target, o) in mine {
                tracing::info!(target = %target, "cluster: override of {target} taken here before a restart, while etcd was away, is written now");
                view.overrides.set(&target, Some(o.clone()));
                let (done, _) = oneshot::channel();
                let _ = m.publish.send(Publish::Override {
                    target,
                    value: Some(o),
                    done,
                });
            }
        }
        tracing::info!(
            "cluster: connected to etcd; live nodes: {}",
            view.nodes.join(", ")
        );
        m.connected = true;
        m.lost = None;
        m.alone = false;
        let before: HashSet<String> = m.nodes.iter().cloned().collect();
        m.nodes = view.nodes.clone();
        if !m.nodes.contains(&me) {
            m.nodes.push(me.clone());
            m.nodes.sort();
        }
        let old = std::mem::take(&mut m.view.observations);
        // Nodes that left while this one was away, and observations that are gone.
        for n in before
            .iter()
            .filter(|n| !view.nodes.contains(n) && **n != me)
        {
            self.forget_node(n, now);
        }
        for (node, probe) in old.keys() {
            if !view.observations.contains_key(&(node.clone(), *probe)) {
                self.remote(node, probe, None, now);
            }
        }
        // Only live nodes vote.
        for ((node, probe), o) in &view.observations {
            if *node != me && view.nodes.contains(node) {
                self.remote(node, probe, Some(o), now);
            }
        }
        if self.table.overrides() != &view.overrides {
            let mut changed = Vec::new();
            for (target, o) in view.overrides.iter() {
                let was = self.table.overrides().get(&target);
                if was != Some(o) {
                    tracing::info!(target = %target, "override from the cluster: {target} {}", o.describe(self.clock.unix()));
                    changed.push((target, was.cloned(), Some(o.clone())));
                }
            }
            for (target, o) in self.table.overrides().iter() {
                if view.overrides.get(&target).is_none() {
                    tracing::info!(target = %target, "override cleared in the cluster: {target}");
                    changed.push((target, Some(o.clone()), None));
                }
            }
            for (target, was, now) in changed {
                self.cluster_override_event(&target, was.as_ref(), now.as_ref());
            }
            self.table.replace_overrides(view.overrides.clone());
            self.save_overrides();
        }
        if let Some(m) = &mut self.cluster {
            m.view = view;
        }
    }

    fn take_change(&mut self, c: Change, now: Instant) {
        let Some(m) = &mut self.cluster else { return };
        let me = m.settings.node.clone();
        m.view.apply(c.clone());
        match c {
            Change::Node { node, live } if node != me => {
                let was = m.nodes.contains(&node);
                m.nodes.retain(|n| *n != node);
                if live {
                    m.nodes.push(node.clone());
                    m.nodes.sort();
                    if !was {
                        tracing::info!(node = %node, "cluster: node {node} joined");
                        // Observations of it that came before its node key now count.
                        let known: Vec<_> = m
                            .view
                            .observations
                            .iter()
                            .filter(|((n, _), _)| *n == node)
                            .map(|((_, p), o)| (*p, o.clone()))
                            .collect();
                        for (p, o) in known {
                            self.remote(&node, &p, Some(&o), now);
                        }
                    }
                } else {
                    tracing::warn!(node = %node, "cluster: node {node} left (its lease expired or it stopped); its observations no longer count");
                    m.view.observations.retain(|(n, _), _| *n != node);
                    self.forget_node(&node, now);
                }
            }
            Change::Node { .. } => {}
            Change::Observation {
                node,
                probe,
                observation,
            } => {
                // Only live nodes vote (a node's key comes before its observations).
                if node != me && m.nodes.contains(&node) {
                    self.remote(&node, &probe, observation.as_ref(), now);
                }
            }
            Change::Override { target, value } => {
                if self.table.overrides().get(&target) == value.as_ref() {
                    return;
                }
                match &value {
                    Some(o) => {
                        tracing::info!(target = %target, "override from the cluster: {target} {} (taken on {})", o.describe(self.clock.unix()), o.node.as_deref().unwrap_or("?"))
                    }
                    None => {
                        tracing::info!(target = %target, "override cleared in the cluster: {target}")
                    }
                }
                let previous = self.table.overrides().get(&target).cloned();
                self.cluster_override_event(&target, previous.as_ref(), value.as_ref());
                self.table.set_override(&target, value);
                self.save_overrides();
            }
        }
    }

    /// Another node's observation of a probe (or its end).
    fn remote(&mut self, node: &str, probe: &ProbeName, o: Option<&Observation>, now: Instant) {
        let Some(v) = self.table.vantage(node) else {
            tracing::warn!(node = %node, "cluster: too many node names seen; {node}'s observations are ignored");
            return;
        };
        let state = o.map(|o| {
            let age = self.clock.unix().saturating_sub(o.since_unix);
            let since = now.checked_sub(Duration::from_secs(age)).unwrap_or(now);
            State::reported(o.status, o.reason.clone(), since)
        });
        if let Some((key, tr)) = self.table.set_vantage(probe, v, state, now) {
            self.log_quorum(&key, &tr);
        }
    }

    fn forget_node(&mut self, node: &str, now: Instant) {
        let Some(v) = self.table.vantage(node) else {
            return;
        };
        for (key, tr) in self.table.forget_vantage(v, now) {
            self.log_quorum(&key, &tr);
        }
    }

    /// After a reload: the others' observations of the probes it added.
    pub(super) fn reapply_cluster(&mut self) {
        let Some(m) = &self.cluster else { return };
        if m.alone {
            return;
        }
        let me = m.settings.node.clone();
        let observations: Vec<_> = m
            .view
            .observations
            .iter()
            .filter(|((n, _), _)| *n != me && m.nodes.contains(n))
            .map(|((n, p), o)| (n.clone(), *p, o.clone()))
            .collect();
        let now = self.clock.now();
        for (node, probe, o) in observations {
            self.remote(&node, &probe, Some(&o), now);
        }
    }

    /// A change of a probe's status that the quorum made (not this node's own probe).
    pub(super) fn log_quorum(&mut self, key: &ProbeKey, tr: &Transition) {
        let (check, votes) = (self.table.check_names(key), self.table.votes_text(key));
        tracing::info!(
            member = %key.address,
            from = %tr.from,
            to = %tr.to,
            "health: {} check {}: {} -> {} by the cluster's votes ({votes})",
            key.address,
            check,
            tr.from,
            tr.to,
        );
        let reason = format!("the cluster's votes: {votes}");
        self.health_event(key.address, check, (tr.from, tr.to), reason);
    }

    /// An override that came from etcd, in the history. Who: the operator's name if one was
    /// given, else the node that took it.
    fn cluster_override_event(
        &mut self,
        target: &OverrideTarget,
        previous: Option<&Override>,
        value: Option<&Override>,
    ) {
        let to = value.map_or("cleared", |o| o.kind.as_str());
        let by = value
            .and_then(|o| o.by.clone().or_else(|| o.node.clone()))
            .unwrap_or_else(|| "the cluster".to_string());
        let reason = value.map(|o| o.reason.clone());
        self.override_event(target, previous, to, reason, Some(by));
    }

    pub(super) fn save_overrides(&self) {
        if let Err(e) = state::save_overrides(&self.state_dir, self.table.overrides()) {
            let path = state::overrides_path(&self.state_dir);
            tracing::warn!("cannot save overrides to {}: {e}", path.display());
        }
    }

    /// `gslbd_cluster_*`: whether etcd is reachable, the live nodes, and per node how many
    /// probes it sees up and down.
    pub(super) fn cluster_metrics(&self) {
        let Some(m) = &self.cluster else { return };
        let metrics = self.table.metrics();
        let me = ThisNode {
            node: m.settings.node.clone(),
        };
        metrics
            .cluster_connected
            .get_or_create(&me)
            .set(i64::from(m.connected));
        metrics
            .cluster_nodes
            .get_or_create(&me)
            .set(m.nodes.len() as i64);
        metrics.cluster_observations.clear();
        for ((node, status), n) in self.table.vote_counts() {
            metrics
                .cluster_observations
                .get_or_create(&NodeLabels {
                    node: node.to_string(),
                    status: status.to_string(),
                })
                .set(n);
        }
    }
}
