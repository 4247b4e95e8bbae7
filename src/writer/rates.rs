//! Answers per member per second over the last minutes, for the console's charts: the writer
//! samples the counters the query path keeps (`gslbd_pool_answers`) once a second and keeps
//! the differences. Nothing on the query path changes.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use crate::api::{MemberRate, RatesReport};

/// Samples kept per member: five minutes at one a second.
pub const SAMPLES: usize = 300;

struct Series {
    /// The counter at the last sample.
    last: u64,
    per_second: VecDeque<u32>,
    /// Seen at the last sample (members gone after a reload are dropped).
    seen: bool,
}

/// Per (zone, pool, member): the rate at each of the last [`SAMPLES`] samples.
#[derive(Default)]
pub struct Rates {
    series: HashMap<(String, String, IpAddr), Series>,
    at: Option<Instant>,
    /// Samples taken so far: a client that has seen `n` asks for the ones after it.
    taken: u64,
}

impl Rates {
    /// Take one sample of every member's answer counter at `now`. The first sample of a member
    /// only sets its base.
    pub fn sample<'a>(
        &mut self,
        now: Instant,
        counts: impl Iterator<Item = (&'a str, &'a str, IpAddr, u64)>,
    ) {
        let secs = self
            .at
            .map_or(1.0, |t| now.saturating_duration_since(t).as_secs_f64());
        // After a stall the ticks come in a burst: a sample so soon would turn a few answers
        // into a spike.
        if secs < 0.5 {
            return;
        }
        self.at = Some(now);
        self.taken += 1;
        for s in self.series.values_mut() {
            s.seen = false;
        }
        for (zone, pool, address, count) in counts {
            let key = (zone.to_string(), pool.to_string(), address);
            match self.series.get_mut(&key) {
                Some(s) => {
                    let rate = (count.saturating_sub(s.last) as f64 / secs).round();
                    if s.per_second.len() == SAMPLES {
                        s.per_second.pop_front();
                    }
                    s.per_second.push_back(rate.min(u32::MAX as f64) as u32);
                    s.last = count;
                    s.seen = true;
                }
                None => {
                    self.series.insert(
                        key,
                        Series {
                            last: count,
                            per_second: VecDeque::new(),
                            seen: true,
                        },
                    );
                }
            }
        }
        self.series.retain(|_, s| s.seen);
    }

    /// Every member's samples, or only those taken after the `after`-th (a client polling for
    /// what is new: a few numbers per member instead of five minutes' worth).
    pub fn report(&self, after: Option<u64>) -> RatesReport {
        let new = after.map_or(SAMPLES as u64, |a| self.taken.saturating_sub(a));
        let mut members: Vec<MemberRate> = self
            .series
            .iter()
            .map(|((zone, pool, address), s)| {
                let skip = s.per_second.len().saturating_sub(new as usize);
                MemberRate {
                    zone: zone.clone(),
                    pool: pool.clone(),
                    address: *address,
                    per_second: s.per_second.iter().skip(skip).copied().collect(),
                }
            })
            .collect();
        members.sort_by(|a, b| (&a.zone, &a.pool, a.address).cmp(&(&b.zone, &b.pool, b.address)));
        RatesReport {
            interval_seconds: 1,
            taken: self.taken,
            members,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_are_differences_per_second_and_forget_members_that_went() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        let mut r = Rates::default();
        r.sample(t0, [("z.", "web", a, 100), ("z.", "web", b, 7)].into_iter());
        r.sample(
            t0 + Duration::from_secs(1),
            [("z.", "web", a, 150), ("z.", "web", b, 7)].into_iter(),
        );
        // Two seconds later: 100 more answers is 50 a second.
        r.sample(
            t0 + Duration::from_secs(3),
            [("z.", "web", a, 250)].into_iter(),
        );
        // A burst of ticks after a stall: no sample.
        r.sample(
            t0 + Duration::from_millis(3100),
            [("z.", "web", a, 260)].into_iter(),
        );
        let rep = r.report(None);
        assert_eq!(rep.members.len(), 1, "b left the config");
        assert_eq!(rep.members[0].address, a);
        assert_eq!(rep.members[0].per_second, vec![50, 50]);
        assert_eq!(rep.taken, 3);
        // What is new since the second sample: the third only.
        assert_eq!(r.report(Some(2)).members[0].per_second, vec![50]);
        assert!(r.report(Some(3)).members[0].per_second.is_empty());
        for i in 0..SAMPLES as u64 + 10 {
            r.sample(
                t0 + Duration::from_secs(4 + i),
                [("z.", "web", a, 250 + i)].into_iter(),
            );
        }
        assert_eq!(r.report(None).members[0].per_second.len(), SAMPLES);
        assert_eq!(r.report(Some(0)).members[0].per_second.len(), SAMPLES);
    }
}
