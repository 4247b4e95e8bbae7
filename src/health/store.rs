//! Everything the writer knows about members, as pure state with time passed in: each probe's
//! rise/fall state per vantage, load reports, when members came back up (slow start), and the
//! operators' overrides. Indexed by the plan's dense ids.
//!
//! A vantage is a place probes run from. One gslbd is the vantage [`Vantage::LOCAL`]; with
//! several name servers (the cluster), each reports its own observations and a member's health
//! becomes a quorum over vantages. Until then a probe's status is its local one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use super::load::LoadState;
use super::overrides::Overrides;
use super::{State, Status, Thresholds, Transition};
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

    /// The probe's status for answers: the local one (a quorum over vantages comes with the
    /// cluster).
    pub fn status(&self) -> Status {
        self.local().status
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
}

#[derive(Default)]
pub struct HealthStore {
    probes: Vec<ProbeHealth>,
    loads: Vec<LoadState>,
    /// When each address last went from down to up (for slow start).
    came_up: HashMap<IpAddr, Instant>,
    pub overrides: Overrides,
}

impl HealthStore {
    /// A store for `probes` probes and `loads` load sources, with their states.
    pub fn new(probes: Vec<ProbeHealth>, loads: Vec<LoadState>) -> HealthStore {
        HealthStore {
            probes,
            loads,
            came_up: HashMap::new(),
            overrides: Overrides::default(),
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
        self.probe(id).map_or(Status::Unknown, ProbeHealth::status)
    }

    /// Take one outcome of probe `id` (of a member at `address`) seen from `vantage`. Returns
    /// the transition of the probe's status, if it changed.
    pub fn observe(
        &mut self,
        id: ProbeId,
        address: IpAddr,
        vantage: Vantage,
        outcome: Outcome,
        t: Thresholds,
        now: Instant,
    ) -> Option<Transition> {
        let p = self.probes.get_mut(id as usize)?;
        let before = p.status();
        p.of_mut(vantage, now).observe(outcome, t, now);
        let after = p.status();
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
    /// whether any was dropped.
    pub fn expire_overrides(&mut self, now_unix: u64) -> bool {
        let before = self.overrides.len();
        let live = |o: &super::overrides::Override| o.expires_unix.is_none_or(|t| t > now_unix);
        self.overrides.members.retain(|_, o| live(o));
        self.overrides.sites.retain(|_, o| live(o));
        self.overrides.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::overrides::{Override, OverrideKind, OverrideTarget};
    use crate::probe::Failure;
    use std::time::Duration;

    const T: Thresholds = Thresholds { rise: 2, fall: 2 };

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
            .unwrap();
        assert_eq!((tr.from, tr.to), (Status::Unknown, Status::Down));
        assert!(
            s.observe(0, addr, Vantage::LOCAL, up(), T, at(2)).is_none(),
            "rise 2"
        );
        let tr = s.observe(0, addr, Vantage::LOCAL, up(), T, at(3)).unwrap();
        assert_eq!(tr.to, Status::Up);
        assert_eq!(s.came_up(addr), Some(at(3)));
        assert_eq!(s.status(0), Status::Up);
        assert_eq!(s.status(7), Status::Unknown, "no such probe");
        // Another vantage's observations are kept apart and do not decide (yet).
        assert!(s.observe(0, addr, Vantage(1), down(), T, at(4)).is_none());
        assert_eq!(s.status(0), Status::Up);
    }

    #[test]
    fn overrides_expire_by_the_clock_given() {
        let mut s = HealthStore::default();
        let o = |expires| Override {
            kind: OverrideKind::Drain,
            reason: String::new(),
            set_unix: 100,
            expires_unix: expires,
        };
        s.overrides
            .set(&OverrideTarget::Site("fra".into()), Some(o(Some(160))));
        s.overrides.set(
            &OverrideTarget::Member("192.0.2.1".parse().unwrap()),
            Some(o(None)),
        );
        assert!(!s.expire_overrides(159));
        assert!(s.expire_overrides(160));
        assert_eq!(s.overrides.len(), 1, "the one without expiry stays");
    }
}
