//! Response rate limiting (RRL) of UDP answers, as Knot and NSD do it: a token bucket per client
//! prefix (/24 for IPv4, /56 for IPv6 by default) **and** response class (the query name for
//! data and NODATA; the zone for NXDOMAIN, referrals and errors; see `answer::class`), so a
//! spoofed flood cannot turn gslbd into an amplifier against one network, while a busy resolver
//! asking for many names is never held back. Over its rate a bucket's answers are dropped,
//! except every `slip`-th, which is sent truncated (TC=1, no records): a real resolver behind
//! that prefix retries over TCP, which cannot be spoofed, and still gets its answer.
//!
//! The buckets live in a fixed table of atomics shared by every UDP thread: a check is one hash
//! and a compare-and-swap, with no lock and no allocation. Two buckets that collide on a slot
//! evict each other (the newcomer starts with a full bucket): this errs towards answering.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::Rrl;

/// Table slots (a power of two): 256 Ki × 8 octets = 2 MiB, allocated only when RRL is on. A
/// bucket is a prefix and a response class, so there are more live buckets than prefixes.
const SLOTS: usize = 1 << 18;
const STAMP_BITS: u32 = 24;
const STAMP_MASK: u64 = (1 << STAMP_BITS) - 1;
const TOKEN_BITS: u32 = 16;
const TOKEN_MASK: u64 = (1 << TOKEN_BITS) - 1;
const TAG_SHIFT: u32 = STAMP_BITS + TOKEN_BITS;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Over the rate: send nothing.
    Drop,
    /// Over the rate, but this one goes out truncated (TC=1, no records).
    Slip,
}

pub struct Limiter {
    rate: u64,
    burst: u64,
    slip: u32,
    v4: u8,
    v6: u8,
    /// `tag (24 bits) | tokens (16) | stamp (24, milliseconds, wrapping)`; 0 is an empty slot.
    slots: Box<[AtomicU64]>,
    /// The clock every thread stamps with.
    epoch: std::time::Instant,
}

impl Limiter {
    /// `None` when the rate is 0 (RRL off).
    pub fn new(cfg: &Rrl) -> Option<Limiter> {
        if cfg.responses_per_second == 0 {
            return None;
        }
        let rate = u64::from(cfg.responses_per_second);
        Some(Limiter {
            rate,
            burst: rate.min(TOKEN_MASK),
            slip: cfg.slip,
            v4: cfg.ipv4_prefix.min(32),
            v6: cfg.ipv6_prefix.min(128),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: std::time::Instant::now(),
        })
    }

    /// Milliseconds on the limiter's clock (read once per batch of datagrams).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Take a token for one response of `class` to `peer` at `now_ms` (any monotonic
    /// millisecond clock). `limited` counts this thread's limited responses, for the slip.
    pub fn check(&self, peer: IpAddr, class: u64, now_ms: u64, limited: &mut u32) -> Verdict {
        let h = self.hash(peer, class);
        let slot = &self.slots[(h as usize) & (SLOTS - 1)];
        let tag = (h >> 40) | 1; // never 0, so an empty slot never matches
        let now = now_ms & STAMP_MASK;
        let mut pass = true;
        // A few tries against concurrent updates of the same slot; then let it through.
        for _ in 0..4 {
            let old = slot.load(Ordering::Relaxed);
            let (otag, tokens, stamp) = (
                old >> TAG_SHIFT,
                (old >> STAMP_BITS) & TOKEN_MASK,
                old & STAMP_MASK,
            );
            let (mut tokens, mut stamp) = if old == 0 || otag != tag {
                (self.burst, now)
            } else {
                (tokens, stamp)
            };
            let elapsed = now.wrapping_sub(stamp) & STAMP_MASK;
            let add = elapsed * self.rate / 1000;
            if add > 0 {
                tokens = (tokens + add).min(self.burst);
                // Keep the fraction of a token not yet earned.
                stamp = if tokens == self.burst {
                    now
                } else {
                    (stamp + add * 1000 / self.rate) & STAMP_MASK
                };
            }
            pass = tokens > 0;
            if pass {
                tokens -= 1;
            }
            let new = (tag << TAG_SHIFT) | (tokens << STAMP_BITS) | stamp;
            if slot
                .compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        if pass {
            return Verdict::Send;
        }
        *limited = limited.wrapping_add(1);
        if self.slip > 0 && (*limited).is_multiple_of(self.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    /// The hash of the client's prefix and the response class.
    fn hash(&self, peer: IpAddr, class: u64) -> u64 {
        let mut key = [0u8; 17];
        match peer {
            IpAddr::V4(a) => {
                let bits =
                    u32::from(a) & u32::MAX.checked_shl(32 - u32::from(self.v4)).unwrap_or(0);
                key[..4].copy_from_slice(&bits.to_be_bytes());
                key[16] = 4;
            }
            IpAddr::V6(a) => {
                let bits =
                    u128::from(a) & u128::MAX.checked_shl(128 - u32::from(self.v6)).unwrap_or(0);
                key[..16].copy_from_slice(&bits.to_be_bytes());
                key[16] = 6;
            }
        }
        xxhash_rust::xxh3::xxh3_64_with_seed(&key, class)
    }
}

/// Turn the response of `len` octets in `buf` into a truncated one: header and question only,
/// TC set, no records (and no OPT). Returns the new length, or `None` if it cannot be read.
pub fn truncate(buf: &mut [u8], len: usize) -> Option<usize> {
    let q = super::wire::parse_question(buf.get(..len)?)?.len();
    let end = super::wire::HEADER_LEN + q;
    buf[2] |= 0x02; // TC
    buf[6..12].fill(0); // ANCOUNT, NSCOUNT, ARCOUNT
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One response class (a name and type).
    const NAME: u64 = 0x5eed;

    fn limiter(rate: u32, slip: u32) -> Limiter {
        Limiter::new(&Rrl {
            responses_per_second: rate,
            slip,
            ..Rrl::default()
        })
        .unwrap()
    }

    #[test]
    fn a_prefix_gets_its_burst_then_its_rate() {
        let l = limiter(10, 0);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let same24: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        let mut n = 0;
        let sent = (0..100)
            .filter(|i| {
                let who = if i % 2 == 0 { a } else { same24 };
                l.check(who, NAME, 1000, &mut n) == Verdict::Send
            })
            .count();
        assert_eq!(sent, 10, "one bucket for the /24");
        assert_eq!(l.check(other, NAME, 1000, &mut n), Verdict::Send);
        // 500 ms later: 5 more tokens; a second later the bucket is full again, not fuller.
        assert_eq!(
            (0..20)
                .filter(|_| l.check(a, NAME, 1500, &mut n) == Verdict::Send)
                .count(),
            5
        );
        assert_eq!(
            (0..20)
                .filter(|_| l.check(a, NAME, 5000, &mut n) == Verdict::Send)
                .count(),
            10
        );
    }

    #[test]
    fn each_class_of_a_prefix_has_its_own_bucket() {
        let l = limiter(10, 0);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let mut n = 0;
        // 100 names, 5 answers each, in one instant: no bucket runs dry.
        let sent = (0..500u64)
            .filter(|i| l.check(a, i % 100, 1000, &mut n) == Verdict::Send)
            .count();
        assert_eq!(sent, 500);
        // One of them, flooded: its rate, and the others are untouched.
        let flooded = (0..50)
            .filter(|_| l.check(a, 7, 1000, &mut n) == Verdict::Send)
            .count();
        assert_eq!(flooded, 5, "10 in the bucket, 5 taken above");
        assert_eq!(l.check(a, 8, 1000, &mut n), Verdict::Send);
    }

    #[test]
    fn fractions_of_tokens_are_kept() {
        let l = limiter(10, 0);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let mut n = 0;
        for _ in 0..10 {
            l.check(a, NAME, 0, &mut n);
        }
        // A query every 30 ms earns a token every 100 ms: 1 in ~3.3 passes, not 0.
        let sent = (1..=100)
            .filter(|i| l.check(a, NAME, i * 30, &mut n) == Verdict::Send)
            .count();
        assert!((28..=31).contains(&sent), "{sent}");
    }

    #[test]
    fn every_slip_th_limited_response_is_truncated() {
        let l = limiter(1, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mut n = 0;
        let v: Vec<Verdict> = (0..7).map(|_| l.check(a, NAME, 0, &mut n)).collect();
        use Verdict::*;
        assert_eq!(v, [Send, Drop, Slip, Drop, Slip, Drop, Slip]);
    }

    #[test]
    fn the_clock_wrapping_does_not_starve_anyone() {
        let l = limiter(5, 0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mut n = 0;
        let t = STAMP_MASK - 100;
        for _ in 0..5 {
            l.check(a, NAME, t, &mut n);
        }
        assert_eq!(l.check(a, NAME, t, &mut n), Verdict::Drop);
        // 1.1 s later, past the wrap of the 24-bit stamp.
        assert_eq!(l.check(a, NAME, t + 1100, &mut n), Verdict::Send);
    }
}
