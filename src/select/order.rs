//! Step 5 and 6 of the pipeline, per query: order the eligible members and take `max_answers`.
//! No allocation: the choice is a small array of indices on the stack.

/// Most answers a pool may give (`max_answers` is validated against it).
pub const MAX_PICK: usize = 64;

pub use crate::model::Order;

/// The seed of the sticky hash. Fixed forever: every gslbd node and every restart must map a
/// client to the same member.
pub const STICKY_SEED: u64 = 0x6773_6c62_6473_7469; // "gslbdsti"

/// A member as ordering sees it: its weight and, for `sticky`, its hash key ([`member_key`]).
/// The table's pre-encoded answers implement it, so a pool's answer is one block of members.
pub trait Pickable {
    fn weight(&self) -> u32;
    fn key(&self) -> u64;
}

/// A bare weight (no hash key): for `pick`.
impl Pickable for u32 {
    fn weight(&self) -> u32 {
        *self
    }
    fn key(&self) -> u64 {
        0
    }
}

/// (hash key, weight): for `sticky`.
impl Pickable for (u64, u32) {
    fn weight(&self) -> u32 {
        self.1
    }
    fn key(&self) -> u64 {
        self.0
    }
}

/// The hash key of a member for sticky ordering (computed when the table is published).
pub fn member_key(addr: &std::net::IpAddr) -> u64 {
    match addr {
        std::net::IpAddr::V4(a) => xxhash_rust::xxh3::xxh3_64_with_seed(&a.octets(), STICKY_SEED),
        std::net::IpAddr::V6(a) => xxhash_rust::xxh3::xxh3_64_with_seed(&a.octets(), STICKY_SEED),
    }
}

/// Step 5 for `sticky`: weighted rendezvous hashing (highest random weight) of the client
/// prefix over the members. Each member scores `-weight / ln(u)` with `u` uniform in (0, 1) from
/// a hash of (client, member); the best `max` scores win. A member that leaves takes only its own
/// clients with it; one that returns takes back exactly those. `client` is the prefix's octets
/// followed by its length.
pub fn sticky<C: Pickable>(members: &[C], client: &[u8], max: usize) -> Picked {
    let n = members.len().min(u16::MAX as usize);
    let k = max.min(n).min(MAX_PICK);
    let mut out = Picked {
        idx: [0; MAX_PICK],
        len: 0,
    };
    let mut scores = [0f64; MAX_PICK];
    for (i, m) in members[..n].iter().enumerate() {
        let w = f64::from(m.weight().max(1));
        let h = xxhash_rust::xxh3::xxh3_64_with_seed(client, m.key());
        // (h + 0.5) / 2^64 is in (0, 1): ln is finite and negative.
        let u = (h as f64 + 0.5) / 18_446_744_073_709_551_616.0;
        let score = -w / u.ln();
        // insert into the top-k, kept sorted by score (k is small)
        let mut at = out.len;
        while at > 0 && scores[at - 1] < score {
            at -= 1;
        }
        if at >= k {
            continue;
        }
        let end = out.len.min(k - 1);
        for j in (at..end).rev() {
            scores[j + 1] = scores[j];
            out.idx[j + 1] = out.idx[j];
        }
        scores[at] = score;
        out.idx[at] = i as u16;
        out.len = (out.len + 1).min(k);
    }
    out
}

/// `k` of `n` members, consecutive from `start` (wrapping): a round-robin choice.
pub fn rotation(n: usize, k: usize, start: usize) -> Picked {
    let mut out = Picked {
        idx: [0; MAX_PICK],
        len: 0,
    };
    for j in 0..k.min(n).min(MAX_PICK) {
        out.push((start + j) % n);
    }
    out
}

/// Indices chosen for one answer, in answer order.
#[derive(Debug, Clone, Copy)]
pub struct Picked {
    idx: [u16; MAX_PICK],
    len: usize,
}

impl Picked {
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.idx[..self.len].iter().map(|&i| i as usize)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, i: usize) {
        self.idx[self.len] = i as u16;
        self.len += 1;
    }

    fn contains(&self, i: usize) -> bool {
        self.idx[..self.len].contains(&(i as u16))
    }
}

/// Choose up to `max` of the members, for `round-robin` (rotation) and `weighted`; `sticky` uses
/// [`sticky`]. `rng` supplies the randomness of weighted sampling and the rotation start.
pub fn pick<C: Pickable>(
    order: Order,
    members: &[C],
    max: usize,
    rng: &mut fastrand::Rng,
) -> Picked {
    let n = members.len().min(u16::MAX as usize);
    let k = max.min(n).min(MAX_PICK);
    let mut out = Picked {
        idx: [0; MAX_PICK],
        len: 0,
    };
    if k == 0 {
        return out;
    }
    let total: u64 = members[..n].iter().map(|m| u64::from(m.weight())).sum();
    if !matches!(order, Order::Weighted | Order::LeastLoaded) || total == 0 {
        let start = rng.usize(..n);
        for j in 0..k {
            out.push((start + j) % n);
        }
        return out;
    }
    let mut remaining = total;
    while out.len < k && remaining > 0 {
        let mut x = rng.u64(..remaining);
        for (i, m) in members[..n].iter().enumerate() {
            if out.contains(i) {
                continue;
            }
            let w = u64::from(m.weight());
            if x < w {
                out.push(i);
                remaining -= w;
                break;
            }
            x -= w;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rotation_covers_every_member_evenly() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut first = [0u32; 3];
        for _ in 0..3000 {
            let p = pick(Order::RoundRobin, &[1u32, 1, 1], 2, &mut rng);
            let v: Vec<usize> = p.iter().collect();
            assert_eq!(v.len(), 2);
            assert_eq!(v[1], (v[0] + 1) % 3, "consecutive in rotation");
            first[v[0]] += 1;
        }
        assert!(first.iter().all(|&c| (800..1200).contains(&c)), "{first:?}");
    }

    #[test]
    fn weighted_first_answers_follow_weights() {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut first = [0u32; 3];
        for _ in 0..20_000 {
            first[pick(Order::Weighted, &[100u32, 300, 0], 2, &mut rng)
                .iter()
                .next()
                .unwrap()] += 1;
        }
        // 1:3 between the first two; weight 0 is never first
        assert_eq!(first[2], 0);
        let ratio = first[1] as f64 / first[0] as f64;
        assert!((2.7..3.3).contains(&ratio), "{first:?}");
    }

    fn client(a: [u8; 3]) -> [u8; 4] {
        [a[0], a[1], a[2], 24]
    }

    /// (key, weight) of each member, as `sticky` takes them.
    fn with_keys(members: &[std::net::IpAddr], weights: &[u32]) -> Vec<(u64, u32)> {
        members
            .iter()
            .map(member_key)
            .zip(weights.iter().copied())
            .collect()
    }

    #[test]
    fn sticky_is_pinned_across_versions_and_nodes() {
        // A golden mapping: if this changes, every deployed client moves. Never update it
        // without a migration note.
        let members: Vec<std::net::IpAddr> = ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let keys = with_keys(&members, &[100, 100, 100]);
        let picks: Vec<usize> = (0..12u8)
            .map(|i| sticky(&keys, &client([10, i, 0]), 1).iter().next().unwrap())
            .collect();
        assert_eq!(picks, GOLDEN);
    }

    const GOLDEN: [usize; 12] = [0, 0, 1, 1, 1, 2, 0, 1, 1, 0, 2, 0];

    #[test]
    fn sticky_moves_only_the_failed_members_clients() {
        let members: Vec<std::net::IpAddr> = (1..=5u8)
            .map(|i| std::net::IpAddr::from([192, 0, 2, i]))
            .collect();
        let keys = with_keys(&members, &[100; 5]);
        let clients: Vec<[u8; 4]> = (0..10_000u32)
            .map(|i| client([(i >> 16) as u8 + 10, (i >> 8) as u8, i as u8]))
            .collect();
        let before: Vec<usize> = clients
            .iter()
            .map(|c| sticky(&keys, c, 1).iter().next().unwrap())
            .collect();
        // member 2 fails: the table drops it from the eligible list
        let keep: Vec<usize> = vec![0, 1, 3, 4];
        let keys2: Vec<(u64, u32)> = keep.iter().map(|&i| keys[i]).collect();
        let after: Vec<usize> = clients
            .iter()
            .map(|c| keep[sticky(&keys2, c, 1).iter().next().unwrap()])
            .collect();
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let owned_by_2 = before.iter().filter(|&&b| b == 2).count();
        assert_eq!(moved, owned_by_2, "only member 2's clients move");
        assert!(before.iter().zip(&after).all(|(b, a)| b == a || *b == 2));
        // shares are even (5 members: ~2000 each)
        for m in 0..5 {
            let share = before.iter().filter(|&&b| b == m).count();
            assert!((1700..2300).contains(&share), "member {m}: {share}");
        }
    }

    proptest! {
        /// For any member set, weights and client: the sticky choice is deterministic, distinct,
        /// and removing one member changes the choice only for clients whose first pick it was.
        #[test]
        fn sticky_removal_moves_only_the_removed_members_clients(
            n in 2usize..12,
            weights in proptest::collection::vec(1u32..500, 12),
            gone in 0usize..12,
            clients in proptest::collection::vec(any::<[u8; 4]>(), 1..50),
        ) {
            let gone = gone % n;
            let members: Vec<std::net::IpAddr> = (0..n).map(|i| std::net::IpAddr::from([198, 51, 100, i as u8])).collect();
            let keys = with_keys(&members, &weights[..n]);
            let kept: Vec<usize> = (0..n).filter(|&i| i != gone).collect();
            let keys2: Vec<(u64, u32)> = kept.iter().map(|&i| keys[i]).collect();
            for c in &clients {
                let a = sticky(&keys, c, 3);
                let b = sticky(&keys, c, 3);
                prop_assert_eq!(a.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
                let first = a.iter().next().unwrap();
                let after = kept[sticky(&keys2, c, 1).iter().next().unwrap()];
                if first != gone {
                    prop_assert_eq!(after, first);
                }
                let mut v: Vec<usize> = a.iter().collect();
                v.sort();
                v.dedup();
                prop_assert_eq!(v.len(), a.len());
            }
        }

        #[test]
        fn picks_are_distinct_in_range_and_never_zero_weight(
            weights in proptest::collection::vec(0u32..1000, 0..40),
            max in 0usize..70,
            weighted in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut rng = fastrand::Rng::with_seed(seed);
            let order = if weighted { Order::Weighted } else { Order::RoundRobin };
            let p = pick(order, &weights, max, &mut rng);
            let v: Vec<usize> = p.iter().collect();
            let mut sorted = v.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), v.len(), "distinct");
            prop_assert!(v.iter().all(|&i| i < weights.len()));
            prop_assert!(v.len() <= max.min(MAX_PICK));
            let positive = weights.iter().filter(|&&w| w > 0).count();
            if weighted && positive > 0 {
                prop_assert!(v.iter().all(|&i| weights[i] > 0));
                prop_assert_eq!(v.len(), max.min(positive).min(MAX_PICK));
            } else {
                prop_assert_eq!(v.len(), max.min(weights.len()).min(MAX_PICK));
            }
        }
    }
}
