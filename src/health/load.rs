//! Load reports of one source, smoothed (DESIGN §4): spare capacity as an EWMA, the agent's
//! word (`up`, `drain`, `down`), and when the last good report came; stale reports are
//! forgotten. Slow start ramps a member that came back up. Pure state: time is a parameter.

use std::time::{Duration, Instant};

use crate::model::LoadSpec;
use crate::probe::load::{AgentState, Load};

/// Weight of a new report in the smoothed capacity.
const ALPHA: f64 = 0.5;
/// A load report older than this many intervals is forgotten (the member counts as idle).
const STALE_INTERVALS: u32 = 3;
/// Where a member starts when it comes back up with `slow_start`.
const SLOW_START_FLOOR: f64 = 0.1;

/// Smoothed load reports of one source.
#[derive(Debug, Clone, Default)]
pub struct LoadState {
    /// Spare capacity, smoothed: `c ← c + α (report − c)`.
    pub capacity: Option<f64>,
    pub state: Option<AgentState>,
    /// When the last good report arrived; older than three intervals is stale.
    pub at: Option<Instant>,
    /// Pool ids whose answers depend on this source.
    pub pools: Vec<u32>,
}

impl LoadState {
    /// Whether the last report is recent enough to count.
    pub fn fresh(&self, spec: &LoadSpec, now: Instant) -> bool {
        self.at
            .is_some_and(|t| now.saturating_duration_since(t) <= spec.interval * STALE_INTERVALS)
    }

    /// Take one good report at `now`.
    pub fn observe(&mut self, spec: &LoadSpec, load: Load, now: Instant) {
        if let Some(c) = load.capacity {
            let prev = if self.fresh(spec, now) {
                self.capacity
            } else {
                None
            };
            self.capacity = Some(prev.map_or(c, |p| p + ALPHA * (c - p)));
        }
        if load.state.is_some() {
            self.state = load.state;
        }
        self.at = Some(now);
    }

    /// Forget a report that went stale, once: `true` if it did (its pools need recomputing).
    pub fn expire(&mut self, spec: &LoadSpec, now: Instant) -> bool {
        if self.at.is_none() || self.fresh(spec, now) {
            return false;
        }
        self.capacity = None;
        self.state = None;
        self.at = None;
        true
    }
}

/// The share of its weight a member gets `since` it came back up, with `slow_start`.
pub fn slow_start_factor(window: Duration, since: Duration) -> f64 {
    if window.is_zero() || since >= window {
        return 1.0;
    }
    SLOW_START_FLOOR + (1.0 - SLOW_START_FLOOR) * since.as_secs_f64() / window.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LoadKind;

    fn spec() -> LoadSpec {
        LoadSpec {
            kind: LoadKind::Agent { port: 1 },
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
        }
    }

    fn busy(percent: f64) -> Load {
        Load {
            capacity: Some(1.0 - percent / 100.0),
            state: None,
        }
    }

    #[test]
    fn reports_are_smoothed_and_forgotten_once_stale() {
        let (s, t0) = (spec(), Instant::now());
        let mut l = LoadState::default();
        l.observe(&s, busy(0.0), t0);
        assert_eq!(l.capacity, Some(1.0));
        l.observe(&s, busy(100.0), t0 + Duration::from_secs(1));
        assert_eq!(l.capacity, Some(0.5), "half way: α = 0.5");
        assert!(
            !l.expire(&s, t0 + Duration::from_secs(4)),
            "3 intervals: still fresh"
        );
        assert!(l.expire(&s, t0 + Duration::from_secs(5)));
        assert_eq!((l.capacity, l.at), (None, None));
        assert!(!l.expire(&s, t0 + Duration::from_secs(6)), "once");
        // a report after a stale one starts afresh, not from the old average
        l.observe(&s, busy(80.0), t0 + Duration::from_secs(7));
        assert!((l.capacity.unwrap() - 0.2).abs() < 1e-9);
    }

    #[test]
    fn slow_start_ramps_from_a_tenth() {
        let w = Duration::from_secs(10);
        assert_eq!(slow_start_factor(w, Duration::ZERO), 0.1);
        assert!((slow_start_factor(w, Duration::from_secs(5)) - 0.55).abs() < 1e-9);
        assert_eq!(slow_start_factor(w, w), 1.0);
        assert_eq!(slow_start_factor(Duration::ZERO, Duration::ZERO), 1.0);
    }
}
