//! Sorted address ranges that cover a whole address family, each with a value: how a GeoIP
//! database is held once read, and how a zone holds what each range means for it.
//!
//! ```text
//!  start  0.0.0.0   10.0.0.0   10.1.0.0   10.2.0.0   11.0.0.0
//!  value  none      US-CA      US-NY      US-CA      none
//! ```
//! A lookup is a binary search of the starts: no tree walk, no allocation. Neighbouring ranges
//! never have the same value, so the range of an address is the largest stretch around it
//! where the value holds, and the widest aligned block inside it is the ECS scope of
//! whatever the value decides (RFC 7871 §7.3.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address as an integer: `u32` for IPv4, `u128` for IPv6.
pub trait Addr: Copy + Ord + std::fmt::Debug {
    const ZERO: Self;
    fn leading_zeros(self) -> u32;
    fn xor(self, other: Self) -> Self;
    /// The address before this one (never called on zero).
    fn prev(self) -> Self;
    /// The address after `last` of a network of `prefix` bits that starts here (`None` past
    /// the end of the family).
    fn after(self, prefix: u8) -> Option<Self>;
    /// The first 16 bits, for the index.
    fn top16(self) -> usize;
    /// The first address whose first 16 bits are `h` (below 65,536).
    fn first16(h: usize) -> Self;
}

impl Addr for u32 {
    const ZERO: u32 = 0;
    fn leading_zeros(self) -> u32 {
        u32::leading_zeros(self)
    }
    fn xor(self, other: u32) -> u32 {
        self ^ other
    }
    fn prev(self) -> u32 {
        self.wrapping_sub(1)
    }
    fn after(self, prefix: u8) -> Option<u32> {
        let size = 1u64 << (32 - u32::from(prefix.min(32)));
        u32::try_from(u64::from(self) + size).ok()
    }
    fn top16(self) -> usize {
        (self >> 16) as usize
    }
    fn first16(h: usize) -> u32 {
        (h as u32) << 16
    }
}

impl Addr for u128 {
    const ZERO: u128 = 0;
    fn leading_zeros(self) -> u32 {
        u128::leading_zeros(self)
    }
    fn xor(self, other: u128) -> u128 {
        self ^ other
    }
    fn prev(self) -> u128 {
        self.wrapping_sub(1)
    }
    fn after(self, prefix: u8) -> Option<u128> {
        match prefix.min(128) {
            0 => None,
            p => self.checked_add(1u128 << (128 - u32::from(p))),
        }
    }
    fn top16(self) -> usize {
        (self >> 112) as usize
    }
    fn first16(h: usize) -> u128 {
        (h as u128) << 112
    }
}

/// Ranges past this many get an index by their first 16 bits (65,536 words, 256 KiB), so a
/// lookup searches only the few ranges that share the address's first 16 bits: a zone's IPv4
/// ranges on a full City database are some 90,000, which a plain binary search takes 17
/// dependent steps (and cache misses) through. Where one range covers all of a /16 (nine in
/// ten random public IPv4 addresses with three sites by distance), the word holds the answer
/// itself: one memory access a lookup, in an index small enough to stay mostly in cache.
const INDEXED: usize = 4096;

/// An index word that answers alone: [`UNIFORM`], the scope in the next 5 bits (at most 16),
/// the value in the low [`VALUE_BITS`]. Any other word is a position in `mixed`.
const UNIFORM: u32 = 1 << 31;
const VALUE_BITS: u32 = 26;

/// Ranges over one family: each is its first address and value, side by side (one cache line
/// for both); the first starts at the family's first address, and each runs up to the next.
#[derive(Debug, Clone)]
pub struct Ranges<A> {
    entries: Box<[(A, u32)]>,
    /// Empty, or a word for each value of the first 16 bits.
    index: Box<[u32]>,
    /// The ranges that start inside an index word's block: `first..end` in `entries`.
    mixed: Box<[(u32, u32)]>,
}

impl<A: Addr> Ranges<A> {
    /// Every address has `v`.
    pub fn all(v: u32) -> Self {
        Ranges {
            entries: [(A::ZERO, v)].into(),
            index: Box::default(),
            mixed: Box::default(),
        }
    }

    /// The value at `a`, and the shortest prefix whose block around `a` lies in `a`'s range.
    #[inline]
    pub fn find(&self, a: A) -> (u32, u8) {
        // The first start is zero, so at least one start is <= a: the slice searched holds it, or
        // begins past it (lo >= 1).
        let (lo, hi) = match self.index.get(a.top16()) {
            Some(&w) if w & UNIFORM != 0 => {
                let scope = (w >> VALUE_BITS) & 31;
                return (w & ((1 << VALUE_BITS) - 1), scope as u8);
            }
            Some(&w) => match self.mixed.get(w as usize) {
                Some(&(first, end)) => (first as usize, end as usize),
                None => (0, self.entries.len()),
            },
            None => (0, self.entries.len()),
        };
        self.search(a, lo, hi)
    }

    /// [`Ranges::find`] among the ranges `lo..hi` (and the one before `lo`).
    fn search(&self, a: A, lo: usize, hi: usize) -> (u32, u8) {
        let in_slice = self
            .entries
            .get(lo..hi)
            .map_or(0, |s| s.partition_point(|&(s, _)| s <= a));
        let i = (lo + in_slice).max(1) - 1;
        let (lo, v) = self.entries[i];
        // The block of prefix p lies in [lo, next) when it holds neither lo - 1 nor next:
        // when a differs from each within its first p bits.
        let from_lo = if lo == A::ZERO {
            0
        } else {
            lo.prev().xor(a).leading_zeros() + 1
        };
        let from_next = self
            .entries
            .get(i + 1)
            .map_or(0, |&(n, _)| n.xor(a).leading_zeros() + 1);
        (v, from_lo.max(from_next) as u8)
    }

    /// The ranges, as their first address and value.
    pub fn iter(&self) -> impl Iterator<Item = (A, u32)> + '_ {
        self.entries.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The same ranges with values mapped, neighbours that come out equal merged.
    pub fn map(&self, mut f: impl FnMut(u32) -> u32) -> Ranges<A> {
        let mut b = Builder::default();
        for (s, v) in self.iter() {
            b.extend(s, f(v));
        }
        b.done()
    }

    /// Two range sets over the same family laid over each other: each address gets `f` of
    /// its two values.
    pub fn overlay(&self, other: &Ranges<A>, mut f: impl FnMut(u32, u32) -> u32) -> Ranges<A> {
        let mut b = Builder::default();
        let (mut i, mut j) = (0, 0);
        loop {
            let ((a, v), (b_start, w)) = (self.entries[i], other.entries[j]);
            b.extend(a.max(b_start), f(v, w));
            match (
                self.entries.get(i + 1).map(|e| e.0),
                other.entries.get(j + 1).map(|e| e.0),
            ) {
                (None, None) => break,
                (Some(_), None) => i += 1,
                (None, Some(_)) => j += 1,
                (Some(x), Some(y)) => {
                    if x <= y {
                        i += 1;
                    }
                    if y <= x {
                        j += 1;
                    }
                }
            }
        }
        b.done()
    }

    /// Bytes held, for the memory report.
    pub fn bytes(&self) -> usize {
        self.entries.len() * std::mem::size_of::<(A, u32)>()
            + self.index.len() * 4
            + self.mixed.len() * 8
    }
}

/// Builds [`Ranges`] from networks in ascending order; what no network covers gets the
/// builder's `gap` value.
pub struct Builder<A> {
    entries: Vec<(A, u32)>,
    /// The first address after the last network (`None`: the family is covered to its end).
    next: Option<A>,
}

impl<A: Addr> Default for Builder<A> {
    fn default() -> Self {
        Builder {
            entries: Vec::new(),
            next: Some(A::ZERO),
        }
    }
}

impl<A: Addr> Builder<A> {
    /// Add the network `start/prefix` with value `v`, the stretch before it (if any) with
    /// `gap`. Networks that overlap or go backwards are refused (`false`).
    pub fn network(&mut self, start: A, prefix: u8, v: u32, gap: u32) -> bool {
        match self.next {
            Some(n) if start >= n => {
                if start > n {
                    self.extend(n, gap);
                }
                self.extend(start, v);
                self.next = start.after(prefix);
                true
            }
            _ => false,
        }
    }

    /// A range starting at `start` (after the last one) with value `v`.
    fn extend(&mut self, start: A, v: u32) {
        if self.entries.last().is_none_or(|e| e.1 != v) {
            self.entries.push((start, v));
        }
    }

    /// The ranges, the rest of the family after the last network with `gap`.
    pub fn finish(mut self, gap: u32) -> Ranges<A> {
        if let Some(n) = self.next {
            self.extend(n, gap);
        }
        self.done()
    }

    fn done(self) -> Ranges<A> {
        let mut r = Ranges {
            entries: self.entries.into(),
            index: Box::default(),
            mixed: Box::default(),
        };
        if r.entries.len() > INDEXED && u32::try_from(r.entries.len()).is_ok() {
            let (mut index, mut mixed) = (Vec::with_capacity(1 << 16), Vec::new());
            let mut below = 0;
            for h in 0..1usize << 16 {
                while r.entries.get(below).is_some_and(|e| e.0.top16() < h) {
                    below += 1;
                }
                let mut end = below;
                while r.entries.get(end).is_some_and(|e| e.0.top16() == h) {
                    end += 1;
                }
                // One range covers the block if none starts inside it, or one at its very
                // first address; then every address of the block has the same value and
                // scope (the range's ends differ from it within the first 16 bits).
                let at_start = r.entries.get(below).is_some_and(|e| e.0 == A::first16(h));
                let (value, scope) = r.search(A::first16(h), below, end);
                if (end == below || end == below + 1 && at_start) && value < 1 << VALUE_BITS {
                    index.push(UNIFORM | u32::from(scope) << VALUE_BITS | value);
                } else {
                    index.push(mixed.len() as u32);
                    mixed.push((below as u32, end as u32));
                }
            }
            r.index = index.into();
            r.mixed = mixed.into();
        }
        r
    }
}

/// IPv4 and IPv6 ranges.
#[derive(Debug, Clone)]
pub struct Families {
    pub v4: Ranges<u32>,
    pub v6: Ranges<u128>,
}

impl Families {
    pub fn all(v: u32) -> Self {
        Families {
            v4: Ranges::all(v),
            v6: Ranges::all(v),
        }
    }

    /// The value at `addr` and the shortest prefix (in `addr`'s family) where it holds. An
    /// IPv4-compatible (`::/96`), IPv4-mapped (`::ffff:0:0/96`) or 6to4 (`2002::/16`) address
    /// is looked up at the IPv4 address it carries, where MaxMind's databases keep (or alias)
    /// it.
    #[inline]
    pub fn find(&self, addr: IpAddr) -> (u32, u8) {
        match addr {
            IpAddr::V4(a) => self.v4.find(u32::from(a)),
            IpAddr::V6(a) => match carried_v4(a) {
                Some((v4, bits)) => {
                    let (v, p) = self.v4.find(u32::from(v4));
                    (v, bits + p)
                }
                None => self.v6.find(u128::from(a)),
            },
        }
    }

    pub fn map(&self, mut f: impl FnMut(u32) -> u32) -> Families {
        Families {
            v4: self.v4.map(&mut f),
            v6: self.v6.map(&mut f),
        }
    }

    pub fn overlay(&self, other: &Families, mut f: impl FnMut(u32, u32) -> u32) -> Families {
        Families {
            v4: self.v4.overlay(&other.v4, &mut f),
            v6: self.v6.overlay(&other.v6, &mut f),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.v4.bytes() + self.v6.bytes()
    }
}

/// The IPv4 address inside an IPv4-compatible, IPv4-mapped or 6to4 address, and how many
/// bits come before it.
fn carried_v4(a: Ipv6Addr) -> Option<(Ipv4Addr, u8)> {
    let s = a.segments();
    if let Some(v4) = a.to_ipv4_mapped() {
        return Some((v4, 96));
    }
    if u128::from(a) >> 32 == 0 {
        return Some((Ipv4Addr::from(u128::from(a) as u32), 96));
    }
    (s[0] == 0x2002).then(|| {
        let [a, b] = s[1].to_be_bytes();
        let [c, d] = s[2].to_be_bytes();
        (Ipv4Addr::new(a, b, c, d), 16)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    fn sample() -> Ranges<u32> {
        let mut b = Builder::default();
        assert!(b.network(v4("10.0.0.0"), 16, 1, 0));
        assert!(b.network(v4("10.1.0.0"), 16, 2, 0));
        assert!(b.network(v4("10.2.0.0"), 15, 1, 0));
        assert!(b.network(v4("10.4.0.0"), 14, 1, 0), "merged with the /15");
        assert!(!b.network(v4("10.5.0.0"), 16, 3, 0), "overlaps the /14");
        assert!(b.network(v4("192.0.2.0"), 24, 1, 0));
        b.finish(0)
    }

    #[test]
    fn values_and_scopes() {
        let r = sample();
        assert_eq!(r.len(), 7, "{r:?}");
        assert_eq!(
            r.find(v4("9.255.255.255")),
            (0, 7),
            "8.0.0.0/7 holds no network"
        );
        assert_eq!(r.find(v4("10.0.9.9")), (1, 16));
        assert_eq!(r.find(v4("10.1.0.0")), (2, 16));
        assert_eq!(r.find(v4("10.2.0.1")), (1, 15));
        assert_eq!(r.find(v4("10.4.0.1")), (1, 14));
        assert_eq!(r.find(v4("10.7.255.255")), (1, 14));
        assert_eq!(r.find(v4("10.8.0.0")), (0, 13));
        assert_eq!(r.find(v4("192.0.2.200")), (1, 24));
        assert_eq!(r.find(v4("255.255.255.255")), (0, 3), "224.0.0.0/3");
        assert_eq!(Ranges::<u32>::all(7).find(v4("1.2.3.4")), (7, 0));
    }

    #[test]
    fn overlay_and_map_merge_neighbours() {
        let r = sample();
        let mut b = Builder::default();
        assert!(b.network(v4("10.1.0.0"), 16, 1, 0));
        let other = b.finish(0);
        // 2 only where both agree; elsewhere 1 or 0
        let o = r.overlay(&other, |a, b| if b == 1 { a * 10 } else { a });
        assert_eq!(o.find(v4("10.1.2.3")), (20, 16));
        assert_eq!(o.find(v4("10.0.2.3")), (1, 16));
        let m = r.map(|v| v.min(1));
        assert_eq!(
            m.find(v4("10.1.2.3")),
            (1, 13),
            "10.0.0.0 to 10.7.255.255 is one range"
        );
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn mapped_and_6to4_addresses_use_their_ipv4_part() {
        let f = Families {
            v4: sample(),
            v6: Ranges::all(9),
        };
        let at = |s: &str| f.find(s.parse().unwrap());
        assert_eq!(at("::ffff:10.1.2.3"), (2, 112));
        assert_eq!(at("2002:0a01:0203::"), (2, 32));
        assert_eq!(at("::10.1.0.0"), (2, 112));
        assert_eq!(at("2001:db8::1"), (9, 0));
    }

    /// With enough ranges for the index, lookups find what a plain search of all ranges finds.
    #[test]
    fn the_index_finds_what_a_full_search_finds() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut starts: Vec<u32> = (0..20_000).map(|_| next() as u32 & 0xffff_ff00).collect();
        starts.sort_unstable();
        starts.dedup();
        let mut b = Builder::default();
        for (k, &s) in starts.iter().enumerate() {
            assert!(b.network(s, 24, (k % 5) as u32, 9));
        }
        let r = b.finish(9);
        assert!(r.len() > INDEXED && r.index.len() == 1 << 16);
        let uniform = r.index.iter().filter(|&&w| w & UNIFORM != 0).count();
        assert!(
            (10_000..60_000).contains(&uniform),
            "{uniform} slots answer alone"
        );
        let full = |a: u32| r.entries.partition_point(|&(s, _)| s <= a) - 1;
        for probe in (0..20_000)
            .map(|_| next() as u32)
            .chain(
                starts
                    .iter()
                    .flat_map(|&s| [s, s.wrapping_sub(1), s | 0xff]),
            )
            .chain([0, u32::MAX])
        {
            let (v, scope) = r.find(probe);
            assert_eq!(v, r.entries[full(probe)].1, "{probe:#x}");
            assert_eq!(scope, r.search(probe, 0, r.len()).1, "{probe:#x}");
        }
    }

    proptest! {
        /// Every address in the block of the scope that `find` gives has the same value, and
        /// the next shorter prefix's block does not.
        #[test]
        fn the_scope_is_the_widest_block_with_one_value(
            nets in proptest::collection::btree_map(any::<u32>().prop_map(|a| a & 0xffff_ff00), (8u8..=32, 0u32..3), 0..30),
            probes in proptest::collection::vec(any::<u32>(), 1..20),
        ) {
            let mut b = Builder::default();
            for (&start, &(prefix, v)) in &nets {
                let start = start & (u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0));
                b.network(start, prefix, v, 9);
            }
            let r = b.finish(9);
            let value = |a: u32| r.find(a).0;
            for a in probes {
                let (v, p) = r.find(a);
                let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
                let (lo, hi) = (a & mask, a | !mask);
                prop_assert_eq!(value(lo), v);
                prop_assert_eq!(value(hi), v);
                // ranges are contiguous and neighbours differ: checking the ends is enough
                let starts: Vec<u32> = r.iter().map(|e| e.0).collect();
                let i = starts.partition_point(|&s| s <= a) - 1;
                prop_assert!(starts[i] <= lo);
                prop_assert!(starts.get(i + 1).is_none_or(|&n| hi < n));
                if p > 0 {
                    let wider = u32::MAX.checked_shl(33 - u32::from(p)).unwrap_or(0);
                    let (wl, wh) = (a & wider, a | !wider);
                    prop_assert!(starts[i] > wl || starts.get(i + 1).is_some_and(|&n| wh >= n));
                }
            }
        }
    }
}
