//! Step 5 and 6 of the pipeline, per query: order the eligible members and take `max_answers`.
//! No allocation: the choice is a small array of indices on the stack.

/// Most answers a pool may give (`max_answers` is validated against it).
pub const MAX_PICK: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Consecutive members from a random start, wrapping around: over many queries every
    /// member leads equally often, and no counter is shared between UDP threads.
    Rotate,
    /// Sample without replacement, each draw proportional to weight, so weights hold across
    /// many resolvers even though each caches only the first few answers.
    Weighted,
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

/// Choose up to `max` of the members whose weights are given. `rng` supplies the randomness of
/// weighted sampling and the rotation start.
pub fn pick(order: Order, weights: &[u32], max: usize, rng: &mut fastrand::Rng) -> Picked {
    let n = weights.len().min(u16::MAX as usize);
    let k = max.min(n).min(MAX_PICK);
    let mut out = Picked {
        idx: [0; MAX_PICK],
        len: 0,
    };
    if k == 0 {
        return out;
    }
    let total: u64 = weights[..n].iter().map(|&w| u64::from(w)).sum();
    if order == Order::Rotate || total == 0 {
        let start = rng.usize(..n);
        for j in 0..k {
            out.push((start + j) % n);
        }
        return out;
    }
    let mut remaining = total;
    while out.len < k && remaining > 0 {
        let mut x = rng.u64(..remaining);
        for (i, &w) in weights[..n].iter().enumerate() {
            if out.contains(i) {
                continue;
            }
            let w = u64::from(w);
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
            let p = pick(Order::Rotate, &[1, 1, 1], 2, &mut rng);
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
            first[pick(Order::Weighted, &[100, 300, 0], 2, &mut rng)
                .iter()
                .next()
                .unwrap()] += 1;
        }
        // 1:3 between the first two; weight 0 is never first
        assert_eq!(first[2], 0);
        let ratio = first[1] as f64 / first[0] as f64;
        assert!((2.7..3.3).contains(&ratio), "{first:?}");
    }

    proptest! {
        #[test]
        fn picks_are_distinct_in_range_and_never_zero_weight(
            weights in proptest::collection::vec(0u32..1000, 0..40),
            max in 0usize..70,
            weighted in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut rng = fastrand::Rng::with_seed(seed);
            let order = if weighted { Order::Weighted } else { Order::Rotate };
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
