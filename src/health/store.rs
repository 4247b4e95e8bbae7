//! Everything the writer knows about members, as pure state with time passed in: each probe's
//! rise/fall state per vantage, load reports, when members came back up (slow start), and the
//! operators' overrides. Indexed by the plan's dense ids.
//!
//! A vantage is a place probes run from. One gslbd is the vantage [`Vantage::LOCAL`]; with
//! several name servers (the cluster), each node's observations are another vantage, and a
//! probe's status is a [`Quorum`] over the vantages that have one. Alone, that is the local
//! status.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use super::load::LoadState;
use super::overrides::Overrides;
use super::{State, Status, Thresholds, Transition};
use crate::model::Quorum;
use crate::plan::{LoadId, ProbeId};
use crate::probe::Outcome;

/// Where a probe ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vantage(pub u16);

impl Vantage {
    /// This gslbd.
    pub const LOCAL: Vantage = Vantage(0);
}

/// One probe's observations, per vantage.
#[derive(Debug, Clone)]
pub struct ProbeHealth {
    vantages: Vec<(Vantage, State)>,
}

impl ProbeHealth {
    pub fn new(local: State) -> ProbeHealth {
        ProbeHealth {
            vantages: vec![(Vantage::LOCAL, local)],
        }
    }

    /// This node's state of the probe.
    pub fn local(&self) -> &State {
        &self.vantages[0].1
    }

    /// Every vantage's state, this node's first.
    pub fn vantages(&self) -> &[(Vantage, State)] {
        &self.vantages
    }

    /// The probe's status for answers: down when at least `quorum` of the vantages that know
    /// it see it down, up when others know it, unknown when none does.
    pub fn status(&self, quorum: Quorum) -> Status {
        let (mut up, mut down) = (0, 0);
        for (_, s) in &self.vantages {
            match s.status {
                Status::Up => up += 1,
                Status::Down => down += 1,
                Status::Unknown => {}
            }
        }
        match up + down {
            0 => Status::Unknown,
            n if down >= quorum.down_needed(n) => Status::Down,
            _ => Status::Up,
        }
    }

    fn of_mut(&mut self, v: Vantage, now: Instant) -> &mut State {
        let i = match self.vantages.iter().position(|(w, _)| *w == v) {
            Some(i) => i,
            None => {
                self.vantages.push((v, State::new(now)));
                self.vantages.len() - 1
            }
        };
        &mut self.vantages[i].1
    }

    /// Set or forget another vantage's state (never the local one).
    fn set(&mut self, v: Vantage, state: Option<State>) {
        if v == Vantage::LOCAL {
            return;
        }
        let at = self.vantages.iter().position(|(w, _)| *w == v);
        match (at, state) {
            (Some(i), Some(s)) => self.vantages[i].1 = s,
            (None, Some(s)) => self.vantages.push((v, s)),
            (Some(i), None) => {
                self.vantages.remove(i);
            }
            (None, None) => {}
        }
    }
}

/// What one local probe outcome changed: this node's view, and the status for answers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub local: Option<Transition>,
    pub status: Option<Transition>,
    /// The first result of this probe here (a restored state may not change with it).
    pub first: bool,
}

#[derive(Default)]
pub struct HealthStore {
    probes: Vec<ProbeHealth>,
    loads: Vec<LoadState>,
    /// When each address last went from down to up (for slow start).
    came_up: HashMap<IpAddr, Instant>,
    pub overrides: Overrides,
    /// How vantages combine (one vantage: its status, whatever the quorum).
    pub quorum: Quorum,
}

impl HealthStore {
    /// A store for `probes` probes and `loads` load sources, with their states.
    pub fn new(probes: Vec<ProbeHealth>, loads: Vec<LoadState>) -> HealthStore {
        HealthStore {
            probes,
            loads,
            came_up: HashMap::new(),
            overrides: Overrides::default(),
            quorum: Quorum::Any,
        }
    }

    /// The same overrides and come-up times, with probes and loads renumbered for a new plan.
    pub fn renumbered(&mut self, probes: Vec<ProbeHealth>, loads: Vec<LoadState>) {
        self.probes = probes;
        self.loads = loads;
    }

    pub fn probe(&self, id: ProbeId) -> Option<&ProbeHealth> {
        self.probes.get(id as usize)
    }

    pub fn probes(&self) -> &[ProbeHealth] {
        &self.probes
    }

    pub fn status(&self, id: ProbeId) -> Status {
        self.probe(id)
            .map_or(Status::Unknown, |p| p.status(self.quorum))
    }

    /// Take one outcome of probe `id` (of a member at `address`) seen from `vantage`.
    pub fn observe(
        &mut self,
        id: ProbeId,
        address: IpAddr,
        vantage: Vantage,
        outcome: Outcome,
        t: Thresholds,
        now: Instant,
    ) -> Observed {
        let quorum = self.quorum;
        let Some(p) = self.probes.get_mut(id as usize) else {
            return Observed::default();
        };
        let before = p.status(quorum);
        let state = p.of_mut(vantage, now);
        let first = state.last_at.is_none();
        let local = state.observe(outcome, t, now);
        let status = self.changed(id, address, before, now);
        Observed {
            local,
            status,
            first,
        }
    }

    /// Set (or with `None` forget) what another vantage sees of probe `id`. Returns the change
    /// of the probe's status, if any.
    pub fn set_vantage(
        &mut self,
        id: ProbeId,
        address: IpAddr,
        vantage: Vantage,
        state: Option<State>,
        now: Instant,
    ) -> Option<Transition> {
        let quorum = self.quorum;
        let p = self.probes.get_mut(id as usize)?;
        let before = p.status(quorum);
        p.set(vantage, state);
        self.changed(id, address, before, now)
    }

    /// The transition of probe `id` from `before` to its status now, noting a comeback.
    fn changed(
        &mut self,
        id: ProbeId,
        address: IpAddr,
        before: Status,
        now: Instant,
    ) -> Option<Transition> {
        let after = self.status(id);
        if before == after {
            return None;
        }
        if before == Status::Down && after == Status::Up {
            self.came_up.insert(address, now);
        }
        Some(Transition {
            from: before,
            to: after,
        })
    }

    pub fn load(&self, id: LoadId) -> Option<&LoadState> {
        self.loads.get(id as usize)
    }

    pub fn load_mut(&mut self, id: LoadId) -> Option<&mut LoadState> {
        self.loads.get_mut(id as usize)
    }

    pub fn loads_mut(&mut self) -> impl Iterator<Item = (LoadId, &mut LoadState)> {
        self.loads
            .iter_mut()
            .enumerate()
            .map(|(i, l)| (i as LoadId, l))
    }

    /// When `address` last came back up.
    pub fn came_up(&self, address: IpAddr) -> Option<Instant> {
        self.came_up.get(&address).copied()
    }

    /// Drop overrides whose expiry has passed (`now_unix`, seconds since the epoch). Returns
    /// those dropped.
    pub fn expire_overrides(
        &mut self,
        now_unix: u64,
    ) -> Vec<(super::overrides::OverrideTarget, super::overrides::Override)> {
        use super::overrides::OverrideTarget;
        let ended = |o: &super::overrides::Override| o.expires_unix.is_some_and(|t| t <= now_unix);
        let mut gone = Vec::new();
        let o = &mut self.overrides;
        o.members.retain(|a, v| {
            let keep = !ended(v);
            if !keep {
                gone.push((OverrideTarget::Member(*a), v.clone()));
            }
            keep
        });
        o.sites.retain(|s, v| {
            let keep = !ended(v);
            if !keep {
                gone.push((OverrideTarget::Site(s.clone()), v.clone()));
            }
            keep
        });
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::overrides::{Override, OverrideKind, OverrideTarget};
    use crate::probe::Failure;
    use std::time::Duration;

    const T: Thresholds = Thresholds {
        rise: 2,
        fall: 2,
        fall_on_refused: None,
    };

    #[test]
    fn probes_rise_and_fall_by_id_and_remember_when_they_came_up() {
        let t0 = Instant::now();
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        let mut s = HealthStore::new(vec![ProbeHealth::new(State::new(t0))], vec![]);
        let at = |n: u64| t0 + Duration::from_secs(n);
        let down = || Outcome::down(Failure::Refused, "connect refused");
        let up = || Outcome::up("connected");
        let tr = s
            .observe(0, addr, Vantage::LOCAL, down(), T, at(1))
            .status
            .unwrap();
        assert_eq!((tr.from, tr.to), (Status::Unknown, Status::Down));
        assert_eq!(
            s.observe(0, addr, Vantage::LOCAL, up(), T, at(2)),
            Observed::default(),
            "rise 2"
        );
        assert!(s.observe(1, addr, Vantage::LOCAL, up(), T, at(2)) == Observed::default());
        let o = s.observe(0, addr, Vantage::LOCAL, up(), T, at(3));
        assert_eq!(o.status.unwrap().to, Status::Up);
        assert_eq!(o.local.unwrap().to, Status::Up);
        assert_eq!(s.came_up(addr), Some(at(3)));
        assert_eq!(s.status(0), Status::Up);
        assert_eq!(s.status(7), Status::Unknown, "no such probe");
    }

    /// Three nodes: with `majority`, one that sees a member down does not take it down; two
    /// do; a node that leaves no longer votes; `any` is each node for itself.
    #[test]
    fn vantages_vote_by_quorum() {
        let t0 = Instant::now();
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        let mut s = HealthStore::new(vec![ProbeHealth::new(State::new(t0))], vec![]);
        s.quorum = Quorum::Majority;
        let st = |status| Some(State::with_status(status, t0));
        let down = || Outcome::down(Failure::Refused, "connect refused");
        assert_eq!(s.status(0), Status::Unknown);
        let tr = s
            .set_vantage(0, addr, Vantage(1), st(Status::Up), t0)
            .unwrap();
        assert_eq!(tr.to, Status::Up, "one node's view is enough to know");
        s.set_vantage(0, addr, Vantage(2), st(Status::Up), t0);
        let o = s.observe(0, addr, Vantage::LOCAL, down(), T, t0);
        assert_eq!(o.local.unwrap().to, Status::Down);
        assert_eq!(o.status, None, "1 of 3 down: still up");
        let tr = s
            .set_vantage(0, addr, Vantage(2), st(Status::Down), t0)
            .unwrap();
        assert_eq!(tr.to, Status::Down, "2 of 3 down");
        // Node 2 leaves: 1 of 2 is not a majority.
        let tr = s.set_vantage(0, addr, Vantage(2), None, t0).unwrap();
        assert_eq!(tr.to, Status::Up);
        s.quorum = Quorum::Any;
        assert_eq!(s.status(0), Status::Down);
        s.quorum = Quorum::All;
        assert_eq!(s.status(0), Status::Up);
        // The local vantage cannot be forgotten.
        s.set_vantage(0, addr, Vantage::LOCAL, None, t0);
        s.set_vantage(0, addr, Vantage(1), None, t0);
        assert_eq!(s.status(0), Status::Down, "alone, this node decides");
    }

    #[test]
    fn overrides_expire_by_the_clock_given() {
        let mut s = HealthStore::default();
        let o = |expires| Override {
            kind: OverrideKind::Drain,
            reason: String::new(),
            set_unix: 100,
            expires_unix: expires,
            node: None,
            by: None,
        };
        s.overrides
            .set(&OverrideTarget::Site("fra".into()), Some(o(Some(160))));
        s.overrides.set(
            &OverrideTarget::Member("192.0.2.1".parse().unwrap()),
            Some(o(None)),
        );
        assert!(s.expire_overrides(159).is_empty());
        assert_eq!(s.expire_overrides(160).len(), 1);
        assert_eq!(s.overrides.len(), 1, "the one without expiry stays");
    }
}
