//! The UDP fast path: one thread and one SO_REUSEPORT socket per core, each a tight loop of
//! `recvmmsg` → answer every packet of the batch → `sendmmsg`.
//!
//! Why not tokio: a tokio `UdpSocket` loop costs more CPU per query than gdnsd spends in total
//! (DESIGN §9), and the kernel's share per packet dominates, so batching syscalls is what pays.
//! Each thread owns its buffers for its whole life: the loop allocates nothing. It reads the
//! live snapshot once per batch and never waits for anything but the socket.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::answer::{Transport, answer, answer_for_rrl};
use super::rrl::{self, Limiter, Verdict};
use super::wire::MAX_UDP_PAYLOAD;
use crate::snapshot::Live;

/// Datagrams taken per `recvmmsg`.
pub const BATCH: usize = 32;
/// Larger queries are dropped: a real query with EDNS options is a few hundred octets.
const RECV_BUF: usize = 4096;
/// How often a blocked thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);

/// Bind one socket of a SO_REUSEPORT group. Every socket of the group binds the same address;
/// the kernel spreads datagrams over them by flow hash.
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_port(true)?;
    // Bigger receive queue for bursts; the kernel caps it at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    s.set_read_timeout(Some(POLL))?;
    Ok(s.into())
}

/// Serve until `stop` is set, rate-limiting answers with `rrl` if given.
pub fn serve(sock: UdpSocket, live: Live, rrl: Option<Arc<Limiter>>, stop: Arc<AtomicBool>) {
    short_slice();
    let mut b = Batch::new();
    let fd = sock.as_raw_fd();
    let mut limited = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let n = match b.recv(fd) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "udp receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let snap = live.load();
        let now_ms = rrl.as_ref().map_or(0, |l| l.now_ms());
        let mut out = 0;
        for i in 0..n {
            let Some(len) = b.packet_len(i) else { continue };
            let peer = peer_ip(&b.addrs[i]);
            let (packet, reply) = (&b.recv_bufs[i][..len], &mut b.send_bufs[out][..]);
            let Some(len) = respond(
                &snap,
                rrl.as_deref(),
                now_ms,
                &mut limited,
                packet,
                peer,
                reply,
            ) else {
                continue;
            };
            b.stage(out, i, len);
            out += 1;
        }
        drop(snap);
        b.send(fd, out);
    }
}

/// The reply to one UDP query into `reply`, rate-limited by `rrl` if given: its length, or
/// `None` when nothing is sent (a query not worth an answer, or dropped by RRL). The socket
/// and the AF_XDP paths share it: they differ only in how packets come and go.
#[inline]
pub fn respond(
    snap: &crate::snapshot::Snapshot,
    rrl: Option<&Limiter>,
    now_ms: u64,
    limited: &mut u32,
    packet: &[u8],
    peer: std::net::IpAddr,
    reply: &mut [u8],
) -> Option<usize> {
    let Some(l) = rrl else {
        return answer(snap, packet, Transport::Udp, peer, reply).filter(|&n| n > 0);
    };
    let (len, class) = answer_for_rrl(snap, packet, Transport::Udp, peer, reply)?;
    let len = match l.check(peer, class, now_ms, limited) {
        Verdict::Send => len,
        Verdict::Drop => {
            snap.counters.rrl_limited(false);
            return None;
        }
        Verdict::Slip => {
            snap.counters.rrl_limited(true);
            rrl::truncate(reply, len)?
        }
    };
    (len > 0).then_some(len)
}

/// Ask the scheduler for a short time slice (Linux ≥ 6.12, EEVDF): a waking UDP thread then gets
/// an earlier deadline than a running prober or reload and preempts it at once, instead of
/// waiting for the end of its slice. Older kernels refuse or ignore it; either is fine.
fn short_slice() {
    #[cfg(target_os = "linux")]
    {
        /// `struct sched_attr` of sched_setattr(2).
        #[repr(C)]
        struct SchedAttr {
            size: u32,
            policy: u32,
            flags: u64,
            nice: i32,
            priority: u32,
            runtime: u64,
            deadline: u64,
            period: u64,
        }
        // SAFETY: getpriority has no pointer arguments.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let attr = SchedAttr {
            size: size_of::<SchedAttr>() as u32,
            policy: libc::SCHED_OTHER as u32,
            flags: 0,
            nice,
            priority: 0,
            runtime: SLICE_NS,
            deadline: 0,
            period: 0,
        };
        // SAFETY: `attr` is a valid sched_attr of the size it declares, read by the kernel only
        // during the call; pid 0 is the calling thread.
        let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
        if rc != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "no short time slice for the UDP thread");
        }
    }
}

/// The time slice UDP threads ask for: the shortest the kernel accepts.
const SLICE_NS: u64 = 100_000;

/// The sender's address from what `recvmmsg` filled in.
fn peer_ip(ss: &libc::sockaddr_storage) -> std::net::IpAddr {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET; sockaddr_storage is larger and
            // suitably aligned for it.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            std::net::IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes())
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for AF_INET6 and sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            std::net::IpAddr::from(sin6.sin6_addr.s6_addr)
        }
        _ => std::net::IpAddr::from([0u8, 0, 0, 0]),
    }
}

/// Buffers and message headers for one batch, set up once per thread.
struct Batch {
    recv_bufs: Box<[[u8; RECV_BUF]]>,
    send_bufs: Box<[[u8; MAX_UDP_PAYLOAD as usize]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    recv_iov: Box<[libc::iovec]>,
    send_iov: Box<[libc::iovec]>,
    recv_hdr: Box<[libc::mmsghdr]>,
    send_hdr: Box<[libc::mmsghdr]>,
}

impl Batch {
    fn new() -> Batch {
        // SAFETY: all-zero bytes are a valid value of these plain C structs.
        let zeroed = || unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() };
        let mut b = Batch {
            recv_bufs: vec![[0u8; RECV_BUF]; BATCH].into_boxed_slice(),
            send_bufs: vec![[0u8; MAX_UDP_PAYLOAD as usize]; BATCH].into_boxed_slice(),
            // SAFETY: as above.
            addrs: vec![
                unsafe { MaybeUninit::<libc::sockaddr_storage>::zeroed().assume_init() };
                BATCH
            ]
            .into_boxed_slice(),
            recv_iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ]
            .into_boxed_slice(),
            send_iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ]
            .into_boxed_slice(),
            recv_hdr: (0..BATCH).map(|_| zeroed()).collect(),
            send_hdr: (0..BATCH).map(|_| zeroed()).collect(),
        };
        // The boxed slices never move or resize, so these pointers stay valid for `b`'s life.
        for i in 0..BATCH {
            b.recv_iov[i] = libc::iovec {
                iov_base: b.recv_bufs[i].as_mut_ptr().cast(),
                iov_len: RECV_BUF,
            };
            b.send_iov[i].iov_base = b.send_bufs[i].as_mut_ptr().cast();
            let h = &mut b.recv_hdr[i].msg_hdr;
            h.msg_iov = &mut b.recv_iov[i];
            h.msg_iovlen = 1;
            h.msg_name = (&mut b.addrs[i] as *mut libc::sockaddr_storage).cast();
            let s = &mut b.send_hdr[i].msg_hdr;
            s.msg_iov = &mut b.send_iov[i];
            s.msg_iovlen = 1;
        }
        b
    }

    /// Wait for at least one datagram, take up to BATCH.
    fn recv(&mut self, fd: i32) -> io::Result<usize> {
        for h in self.recv_hdr.iter_mut() {
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: recv_hdr holds BATCH headers whose iovecs and names point into buffers owned
        // by self, of the lengths given; the kernel writes only within them.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.recv_hdr.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// The length of the i-th datagram received, unless it was cut short by our buffer.
    fn packet_len(&self, i: usize) -> Option<usize> {
        let h = &self.recv_hdr[i];
        let len = h.msg_len as usize;
        (h.msg_hdr.msg_flags & libc::MSG_TRUNC == 0 && len <= RECV_BUF).then_some(len)
    }

    /// Queue send slot `slot` (already filled with `len` bytes) back to the sender of datagram `i`.
    fn stage(&mut self, slot: usize, i: usize, len: usize) {
        self.send_iov[slot].iov_len = len;
        let s = &mut self.send_hdr[slot].msg_hdr;
        s.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
        s.msg_namelen = self.recv_hdr[i].msg_hdr.msg_namelen;
    }

    /// Send the first `count` staged replies. A reply the kernel refuses is skipped, not retried.
    fn send(&mut self, fd: i32, count: usize) {
        let mut sent = 0;
        while sent < count {
            // SAFETY: send_hdr[sent..count] are headers staged above, pointing into self.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.send_hdr[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    0,
                )
            };
            if n <= 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::debug!(error = %e, "udp send failed; reply dropped");
                    sent += 1;
                }
            } else {
                sent += n as usize;
            }
        }
    }
}
