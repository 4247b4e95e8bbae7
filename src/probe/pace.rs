//! How often a prober probes: `interval` while its member is settled up (or not known yet),
//! `fast_interval` while in transition (after a failure of an up member, or a success of a
//! down one, until `fall` or `rise` settles it either way: HAProxy's `fastinter`), and
//! `down_interval` while settled down (`downinter`). Hysteresis stays: it still takes `fall`
//! failures, they just come sooner.
//!
//! The prober follows its own results with the writer's counting (the first result decides;
//! `fall` failures, or `fall_on_refused` refusals, in a row take it down; `rise` successes
//! bring it up), only to pace itself: the writer's state is the one answers use.

use std::time::Duration;

use super::Failure;
use crate::model::CheckSpec;

#[derive(Debug, Default)]
pub struct Pace {
    /// The settled state: up, down, or not known yet.
    up: Option<bool>,
    /// Results in a row against it.
    streak: u32,
}

impl From<Option<bool>> for Pace {
    /// A pace that starts from a known state (restored from `state_dir`: up, down) or none.
    fn from(up: Option<bool>) -> Pace {
        Pace { up, streak: 0 }
    }
}

impl Pace {
    /// Take one result (`failure`: why it failed, `None` if it passed); returns how long to
    /// wait before the next probe.
    pub fn next(&mut self, failure: Option<Failure>, spec: &CheckSpec) -> Duration {
        let ok = failure.is_none();
        match self.up {
            None => self.settle(ok),
            Some(up) if up == ok => self.streak = 0,
            Some(up) => {
                self.streak += 1;
                let t = &spec.thresholds;
                let refused = failure == Some(Failure::Refused);
                let needed = if up { t.fall_after(refused) } else { t.rise };
                if self.streak >= needed.max(1) {
                    self.settle(ok);
                }
            }
        }
        match (self.streak, self.up) {
            (1.., _) => spec.fast_interval,
            (0, Some(false)) => spec.down_interval,
            _ => spec.interval,
        }
    }

    fn settle(&mut self, up: bool) {
        self.up = Some(up);
        self.streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CheckKind, Thresholds};

    fn spec(fall_on_refused: Option<u32>) -> CheckSpec {
        CheckSpec {
            kind: CheckKind::Tcp {
                port: 9,
                expect_banner: None,
            },
            interval: Duration::from_secs(1),
            fast_interval: Duration::from_millis(200),
            down_interval: Duration::from_secs(3),
            timeout: Duration::from_millis(500),
            thresholds: Thresholds {
                rise: 2,
                fall: 3,
                fall_on_refused,
            },
        }
    }

    const FAST: Duration = Duration::from_millis(200);
    const STABLE: Duration = Duration::from_secs(1);
    const DOWN: Duration = Duration::from_secs(3);

    #[test]
    fn transitions_are_probed_fast_and_settle_by_rise_and_fall() {
        let s = spec(None);
        let mut p = Pace::default();
        let timeout = Some(Failure::Timeout);
        // up; a failure starts a transition, a success ends it
        assert_eq!(p.next(None, &s), STABLE);
        assert_eq!(p.next(timeout, &s), FAST);
        assert_eq!(p.next(None, &s), STABLE);
        // three failures in a row: fast, fast, then down
        assert_eq!(p.next(timeout, &s), FAST);
        assert_eq!(p.next(timeout, &s), FAST);
        assert_eq!(p.next(timeout, &s), DOWN);
        assert_eq!(p.next(timeout, &s), DOWN);
        // a success of a down member: fast until rise (2) brings it up
        assert_eq!(p.next(None, &s), FAST);
        assert_eq!(p.next(None, &s), STABLE);
    }

    #[test]
    fn a_refusal_may_count_for_more_than_a_timeout() {
        let s = spec(Some(1));
        let mut p = Pace::default();
        assert_eq!(p.next(None, &s), STABLE);
        assert_eq!(p.next(Some(Failure::Timeout), &s), FAST);
        assert_eq!(
            p.next(Some(Failure::Refused), &s),
            DOWN,
            "one refusal is enough"
        );
        let mut q = Pace::default();
        assert_eq!(
            q.next(Some(Failure::Refused), &spec(None)),
            DOWN,
            "first result decides"
        );
    }
}
