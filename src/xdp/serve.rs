//! One queue's loop: take what the rx ring holds (up to a batch), answer each query into a
//! free frame with the socket path's own `respond`, give the received frames back to the fill
//! ring, queue the replies on the tx ring. Wait on the socket only when there is nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::QueueCounts;
use super::frame;
use super::socket::Xsk;
use crate::dns::rrl::Limiter;
use crate::dns::udp::respond;
use crate::dns::wire::MAX_UDP_PAYLOAD;
use crate::snapshot::Live;

/// Packets taken per round.
const BATCH: u32 = 64;
/// How long an idle thread sleeps before it looks at the stop flag again.
const POLL_MS: i32 = 200;

pub fn serve(
    queue: u32,
    mut x: Xsk,
    live: Live,
    rrl: Option<Arc<Limiter>>,
    stop: Arc<AtomicBool>,
    counts: Arc<QueueCounts>,
) {
    let mut out = [(0u64, 0u32); BATCH as usize];
    let mut limited = 0u32;
    let mut rounds = 0u32;
    while !stop.load(Ordering::Relaxed) {
        x.reclaim();
        let (first, n) = x.received(BATCH);
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(256) {
            // What the kernel dropped because our rings were full: read now and then.
            if let Some(full) = x.ring_full() {
                counts.ring_full.store(full, Ordering::Relaxed);
            }
        }
        if n == 0 {
            x.wake_rx_if_needed();
            // Replies the kernel has not sent yet go first; then sleep until a packet comes
            // (briefly while replies are still queued).
            x.send(&[]);
            let timeout = if x.tx_pending() > 0 { 1 } else { POLL_MS };
            if let Err(e) = x.wait(timeout) {
                tracing::error!(
                    queue,
                    "xdp: queue {queue}'s socket failed ({e}); its queries are no longer answered through XDP"
                );
                return;
            }
            continue;
        }
        let snap = live.load();
        let now_ms = rrl.as_ref().map_or(0, |l| l.now_ms());
        let room = x.tx_room().min(n) as usize;
        let (mut k, mut dropped, mut ignored) = (0, 0u64, 0u64);
        for i in 0..n {
            if k == room {
                dropped += 1;
                continue;
            }
            let Some((query, addr, reply)) = x.with_reply(first.wrapping_add(i)) else {
                dropped += 1;
                continue;
            };
            let sent = frame::parse(query).and_then(|q| {
                let room = reply.len().min(q.payload.0 + MAX_UDP_PAYLOAD as usize);
                let packet = &query[q.payload.0..q.payload.1];
                let body = &mut reply[q.payload.0..room];
                let len = respond(
                    &snap,
                    rrl.as_deref(),
                    now_ms,
                    &mut limited,
                    packet,
                    q.peer,
                    body,
                )?;
                Some(frame::reply(query, &q, reply, len))
            });
            match sent {
                Some(len) => {
                    out[k] = (addr, len as u32);
                    k += 1;
                }
                None => {
                    ignored += 1;
                    x.put_free(addr);
                }
            }
        }
        drop(snap);
        // Counted before the replies leave: whoever got an answer finds it counted.
        counts.answered.fetch_add(k as u64, Ordering::Relaxed);
        if dropped > 0 {
            counts.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if ignored > 0 {
            counts.ignored.fetch_add(ignored, Ordering::Relaxed);
        }
        x.release(first, n);
        x.send(&out[..k]);
        x.wake_rx_if_needed();
    }
}
