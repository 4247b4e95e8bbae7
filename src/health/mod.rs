//! Health of one (member, check) pair: a pure state machine; time is a parameter.
//!
//! ```text
//!            first success                 `fall` failures in a row
//!   Unknown ───────────────▶ Up ───────────────────────────────▶ Down
//!      │                      ▲                                   │
//!      └── first failure ─────┼──────────────────────▶ Down       │
//!                             └──── `rise` successes in a row ────┘
//! ```
//! The first result decides at once (so a cold start knows every state after one probe round);
//! after that, hysteresis keeps one lost probe from moving clients. Probes report outcomes;
//! this module turns them into states; policies only ever see the states.

pub mod load;
pub mod overrides;
pub mod store;

use std::fmt;
use std::time::Instant;

pub use crate::model::Thresholds;
pub use crate::probe::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Unknown,
    Up,
    Down,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Unknown => "unknown",
            Status::Up => "up",
            Status::Down => "down",
        })
    }
}

impl std::str::FromStr for Status {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "unknown" => Ok(Status::Unknown),
            "up" => Ok(Status::Up),
            "down" => Ok(Status::Down),
            _ => Err(()),
        }
    }
}

/// The state of one (member, check) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub status: Status,
    /// When `status` last changed (or when the state was created).
    pub since: Instant,
    /// Consecutive results against the current status (successes while down, failures while up).
    streak: u32,
    pub last: Option<Outcome>,
    pub last_at: Option<Instant>,
}

/// A change of status, to log and publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
}

impl State {
    pub fn new(now: Instant) -> State {
        State::with_status(Status::Unknown, now)
    }

    /// A state restored from disk: it counts as known until the probes say otherwise.
    pub fn with_status(status: Status, now: Instant) -> State {
        State {
            status,
            since: now,
            streak: 0,
            last: None,
            last_at: None,
        }
    }

    /// What another node reports: its status since `since`, and the result that decided.
    pub fn reported(status: Status, reason: String, since: Instant) -> State {
        let failure = (status == Status::Down).then_some(crate::probe::Failure::Other);
        State {
            status,
            since,
            streak: 0,
            last: Some(Outcome { failure, reason }),
            last_at: None,
        }
    }

    /// Take one probe outcome. Returns the transition if the status changed.
    pub fn observe(&mut self, outcome: Outcome, t: Thresholds, now: Instant) -> Option<Transition> {
        let ok = outcome.ok();
        let fall = t.fall_after(outcome.failure == Some(crate::probe::Failure::Refused));
        self.last = Some(outcome);
        self.last_at = Some(now);
        let next = match (self.status, ok) {
            (Status::Unknown, true) => Some(Status::Up),
            (Status::Unknown, false) => Some(Status::Down),
            (Status::Up, true) | (Status::Down, false) => {
                self.streak = 0;
                None
            }
            (Status::Up, false) => self.count(fall, Status::Down),
            (Status::Down, true) => self.count(t.rise, Status::Up),
        }?;
        let from = self.status;
        self.status = next;
        self.since = now;
        self.streak = 0;
        Some(Transition { from, to: next })
    }

    fn count(&mut self, needed: u32, to: Status) -> Option<Status> {
        self.streak += 1;
        (self.streak >= needed.max(1)).then_some(to)
    }
}

/// A member is up when all its checks are up, down when any is down, unknown otherwise.
pub fn combine(statuses: impl IntoIterator<Item = Status>) -> Status {
    let mut all_up = true;
    for s in statuses {
        match s {
            Status::Down => return Status::Down,
            Status::Unknown => all_up = false,
            Status::Up => {}
        }
    }
    if all_up { Status::Up } else { Status::Unknown }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Failure;
    use std::time::Duration;

    const T: Thresholds = Thresholds {
        rise: 2,
        fall: 3,
        fall_on_refused: None,
    };

    fn run(s: &mut State, results: &[bool], start: Instant) -> Vec<(usize, Status)> {
        let mut out = Vec::new();
        for (i, ok) in results.iter().enumerate() {
            let now = start + Duration::from_secs(i as u64);
            let o = if *ok {
                Outcome::up("")
            } else {
                Outcome::down(Failure::Other, "")
            };
            if let Some(tr) = s.observe(o, T, now) {
                assert_eq!(s.since, now);
                out.push((i, tr.to));
            }
        }
        out
    }

    #[test]
    fn a_refusal_may_take_a_member_down_sooner_than_timeouts() {
        let t0 = Instant::now();
        let t = Thresholds {
            rise: 2,
            fall: 3,
            fall_on_refused: Some(1),
        };
        let timeout = || Outcome::down(Failure::Timeout, "timeout 2s");
        let refused = || Outcome::down(Failure::Refused, "connect refused");
        let mut s = State::new(t0);
        s.observe(Outcome::up("ok"), t, t0);
        assert_eq!(s.observe(timeout(), t, t0), None);
        assert_eq!(s.observe(timeout(), t, t0), None, "two timeouts of three");
        let tr = s.observe(refused(), t, t0).expect("a refusal decides");
        assert_eq!(tr.to, Status::Down);
        // without it, a refusal is a failure like any other
        let plain = Thresholds {
            fall_on_refused: None,
            ..t
        };
        let mut s = State::new(t0);
        s.observe(Outcome::up("ok"), plain, t0);
        assert_eq!(s.observe(refused(), plain, t0), None);
        assert_eq!(s.observe(refused(), plain, t0), None);
        assert!(s.observe(refused(), plain, t0).is_some());
    }

    #[test]
    fn first_result_decides() {
        let t0 = Instant::now();
        let mut s = State::new(t0);
        assert_eq!(run(&mut s, &[true], t0), [(0, Status::Up)]);
        let mut s = State::new(t0);
        assert_eq!(run(&mut s, &[false], t0), [(0, Status::Down)]);
    }

    #[test]
    fn fall_needs_consecutive_failures() {
        let t0 = Instant::now();
        let mut s = State::new(t0);
        // up, then two failures (not enough), a success resets, then three failures
        let seen = run(&mut s, &[true, false, false, true, false, false, false], t0);
        assert_eq!(seen, [(0, Status::Up), (6, Status::Down)]);
    }

    #[test]
    fn rise_needs_consecutive_successes() {
        let t0 = Instant::now();
        let mut s = State::new(t0);
        let seen = run(&mut s, &[false, true, false, true, true], t0);
        assert_eq!(seen, [(0, Status::Down), (4, Status::Up)]);
    }

    #[test]
    fn one_failure_in_three_never_flaps_with_fall_3() {
        let t0 = Instant::now();
        let mut s = State::new(t0);
        let pattern: Vec<bool> = (0..300).map(|i| i % 3 != 2).collect();
        assert_eq!(run(&mut s, &pattern, t0), [(0, Status::Up)]);
    }

    #[test]
    fn restored_state_counts_until_probes_disagree() {
        let t0 = Instant::now();
        let mut s = State::with_status(Status::Down, t0);
        assert_eq!(run(&mut s, &[true, true], t0), [(1, Status::Up)]);
    }

    #[test]
    fn member_status_combines_checks() {
        use Status::*;
        assert_eq!(combine([Up, Up]), Up);
        assert_eq!(combine([Up, Unknown]), Unknown);
        assert_eq!(combine([Unknown, Down]), Down);
        assert_eq!(combine([]), Up);
    }
}
