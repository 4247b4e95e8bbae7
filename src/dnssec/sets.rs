//! Which answer sets of a pool are signed when it is published. An RRSIG covers a set, not its
//! order, so rotation needs no signature of its own; what a query may emit is a choice of `k`
//! (`max_answers`) of the `n` eligible members:
//!
//! - `k ≥ n`: one set, every member.
//! - always: the `n` rotations, `k` consecutive members from each start: exactly what
//!   round robin emits, and the fallback of every other order.
//! - `weighted`, `least-loaded`, `sticky`: every `k`-subset as well when there are at most
//!   [`MAX_SUBSETS`] of them, so answers keep their exact choice.
//!
//! With more subsets than that, a query with DO=1 whose choice was not signed is answered with
//! the rotation that starts at its first choice: the member a client connects to first stays
//! what the policy chose, and a UDP thread never signs and never waits.

use crate::model::Order;

/// Subsets signed per family view at most, beyond the rotations.
pub const MAX_SUBSETS: u64 = 256;

/// A set of member indices (of at most 64 members) as a bit mask: how a query finds its
/// signature without allocating.
pub type SetMask = u64;

/// The mask of `members` (indices below 64; `None` if one is not).
pub fn mask(members: impl IntoIterator<Item = usize>) -> Option<SetMask> {
    members
        .into_iter()
        .try_fold(0u64, |m, i| (i < 64).then(|| m | 1 << i))
}

/// The rotation of `k` of `n` members that starts at `start`.
pub fn rotation(n: usize, k: usize, start: usize) -> impl Iterator<Item = usize> {
    let k = k.min(n);
    (0..k).map(move |j| (start + j) % n.max(1))
}

/// Every set to sign for `n` eligible members, `k` answers and `order`: each as the member
/// indices, without duplicates.
pub fn to_sign(n: usize, k: usize, order: Order) -> Vec<Vec<usize>> {
    if n == 0 {
        return Vec::new();
    }
    if k >= n {
        return vec![(0..n).collect()];
    }
    let mut sets: Vec<Vec<usize>> = (0..n)
        .map(|s| {
            let mut v: Vec<usize> = rotation(n, k, s).collect();
            v.sort_unstable();
            v
        })
        .collect();
    if order != Order::RoundRobin && n <= 64 && binomial(n as u64, k as u64) <= MAX_SUBSETS {
        let mut v: Vec<usize> = (0..k).collect();
        loop {
            sets.push(v.clone());
            // the next k-subset in lexicographic order
            let Some(i) = (0..k).rev().find(|&i| v[i] < n - k + i) else {
                break;
            };
            v[i] += 1;
            for j in i + 1..k {
                v[j] = v[j - 1] + 1;
            }
        }
    }
    sets.sort();
    sets.dedup();
    sets
}

/// n choose k, saturating at `u64::MAX`.
fn binomial(n: u64, k: u64) -> u64 {
    let k = k.min(n - k);
    let mut acc: u128 = 1;
    for i in 0..k {
        // C(n, i+1) = C(n, i) × (n − i) / (i + 1), exact at every step
        acc = acc * u128::from(n - i) / u128::from(i + 1);
        if acc > u128::from(u64::MAX) {
            return u64::MAX;
        }
    }
    acc as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_signs_its_rotations() {
        let sets = to_sign(4, 2, Order::RoundRobin);
        assert_eq!(sets, vec![vec![0, 1], vec![0, 3], vec![1, 2], vec![2, 3]]);
        assert_eq!(to_sign(3, 5, Order::RoundRobin), vec![vec![0, 1, 2]]);
        assert!(to_sign(0, 2, Order::Weighted).is_empty());
    }

    #[test]
    fn other_orders_sign_every_subset_while_there_are_few() {
        // C(5,2) = 10 subsets, the 5 rotations among them
        let sets = to_sign(5, 2, Order::Weighted);
        assert_eq!(sets.len(), 10);
        assert!(sets.contains(&vec![1, 3]));
        // C(40,3) = 9880: too many; only the rotations
        let sets = to_sign(40, 3, Order::Sticky);
        assert_eq!(sets.len(), 40);
        assert_eq!(binomial(40, 3), 9880);
        assert_eq!(binomial(64, 32), 1_832_624_140_942_590_534);
        assert_eq!(binomial(100, 50), u64::MAX, "saturates");
    }

    /// Every set round robin can emit is signed: each window of k from any start.
    #[test]
    fn every_rotation_is_among_the_signed_sets() {
        for n in 1..12 {
            for k in 1..=n {
                let signed: Vec<SetMask> = to_sign(n, k, Order::RoundRobin)
                    .into_iter()
                    .map(|s| mask(s).unwrap())
                    .collect();
                for start in 0..n {
                    let m = mask(rotation(n, k, start)).unwrap();
                    assert!(signed.contains(&m), "n {n} k {k} start {start}");
                }
            }
        }
        assert_eq!(mask([0, 63]), Some(1 | 1 << 63));
        // and what the real picker emits is among them, for every order
        let mut rng = fastrand::Rng::with_seed(3);
        for order in [Order::RoundRobin, Order::Weighted, Order::LeastLoaded] {
            for (n, k) in [(4usize, 2usize), (6, 3), (5, 5), (7, 1)] {
                let weights: Vec<u32> = (1..=n as u32).collect();
                let signed: Vec<SetMask> = to_sign(n, k, order)
                    .into_iter()
                    .map(|s| mask(s).unwrap())
                    .collect();
                for _ in 0..500 {
                    let p = crate::select::order::pick(order, &weights, k, &mut rng);
                    let m = mask(p.iter()).unwrap();
                    assert!(signed.contains(&m), "{order:?} n {n} k {k}: {m:b}");
                }
            }
        }
        assert_eq!(mask([64]), None);
    }
}
