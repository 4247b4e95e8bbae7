//! What happened to each member and site lately, for the console and `/v1/history`: health
//! transitions (time, check, old → new, the probe's reason) and operator actions (who, why),
//! kept in memory, a bounded number per member or site, so a flapping member cannot push the
//! others out.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::api::Event;

/// Events kept per member or site.
pub const PER_TARGET: usize = 50;
/// At most this many events in one `/v1/history` answer.
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Member(IpAddr),
    Site(String),
}

/// The recent events, a ring per member or site.
#[derive(Default)]
pub struct History {
    rings: HashMap<Key, VecDeque<Event>>,
    /// Orders events across rings.
    seq: u64,
}

impl History {
    /// Record an event; the oldest of its member's (or site's) ring goes when it is full.
    pub fn push(&mut self, mut e: Event) {
        self.seq += 1;
        e.seq = self.seq;
        let key = match (&e.member, &e.site) {
            (Some(a), _) => Key::Member(*a),
            (None, Some(s)) => Key::Site(s.clone()),
            (None, None) => return,
        };
        let ring = self.rings.entry(key).or_default();
        if ring.len() == PER_TARGET {
            ring.pop_front();
        }
        ring.push_back(e);
    }

    /// The latest `limit` events (newest first), of one member if given.
    pub fn latest(&self, limit: usize, member: Option<IpAddr>) -> Vec<Event> {
        let limit = limit.min(MAX_LIMIT);
        let mut all: Vec<&Event> = match member {
            Some(a) => self
                .rings
                .get(&Key::Member(a))
                .map(|r| r.iter().collect())
                .unwrap_or_default(),
            None => self.rings.values().flatten().collect(),
        };
        all.sort_unstable_by_key(|e| std::cmp::Reverse(e.seq));
        all.into_iter().take(limit).cloned().collect()
    }

    /// A member's last event.
    pub fn last_of(&self, member: IpAddr) -> Option<&Event> {
        self.rings.get(&Key::Member(member))?.back()
    }

    /// Forget members and sites no longer configured (after a reload).
    pub fn retain(&mut self, is_member: impl Fn(IpAddr) -> bool, is_site: impl Fn(&str) -> bool) {
        self.rings.retain(|k, _| match k {
            Key::Member(a) => is_member(*a),
            Key::Site(s) => is_site(s),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EventKind;

    fn event(member: Option<&str>, site: Option<&str>, to: &str) -> Event {
        Event {
            seq: 0,
            unix: 1,
            member: member.map(|m| m.parse().unwrap()),
            site: site.map(str::to_string),
            kind: EventKind::Health,
            check: None,
            from: "up".into(),
            to: to.into(),
            reason: String::new(),
            by: None,
        }
    }

    #[test]
    fn a_flapping_member_does_not_push_the_others_out() {
        let mut h = History::default();
        h.push(event(Some("192.0.2.1"), None, "down"));
        h.push(event(None, Some("fra"), "drain"));
        for i in 0..3 * PER_TARGET {
            h.push(event(
                Some("192.0.2.2"),
                None,
                if i % 2 == 0 { "down" } else { "up" },
            ));
        }
        let all = h.latest(MAX_LIMIT, None);
        assert_eq!(all.len(), PER_TARGET + 2);
        assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
        assert_eq!(
            all.last().unwrap().member,
            Some("192.0.2.1".parse().unwrap())
        );
        let one = h.latest(5, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(one.len(), 1);
        assert_eq!(h.latest(3, None).len(), 3);
        assert_eq!(
            h.last_of("192.0.2.2".parse().unwrap())
                .map(|e| e.to.as_str()),
            Some("up")
        );
        h.retain(|a| a == "192.0.2.1".parse::<IpAddr>().unwrap(), |_| false);
        assert_eq!(h.latest(MAX_LIMIT, None).len(), 1);
    }
}
