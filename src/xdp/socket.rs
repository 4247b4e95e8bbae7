//! One AF_XDP socket: its UMEM (the frames packets live in), and the four rings it shares
//! with the kernel: fill (frames for the kernel to receive into), rx (frames received),
//! tx (frames to send) and completion (frames sent, free again). Every ring is a
//! single-producer, single-consumer queue of a power-of-two size; the side that produces
//! publishes its index with release ordering after writing entries, the other reads it with
//! acquire ordering before reading them.
//!
//! One thread owns a socket for its life; nothing here allocates after `open`.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Frames per socket, and their size (a page: what every driver takes).
pub const FRAMES: u32 = 4096;
pub const FRAME_SIZE: u32 = 4096;
/// Entries of each ring. The fill ring starts full: half the frames wait for packets, the
/// other half are free for replies.
const RING: u32 = 2048;

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// An mmap'ed region, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize, fd: RawFd, offset: u64, what: &str) -> io::Result<Mapping> {
        let flags = if fd < 0 {
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS
        } else {
            libc::MAP_SHARED
        };
        // SAFETY: a fresh mapping of `len` bytes; the kernel checks fd and offset.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags | libc::MAP_POPULATE,
                fd,
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("mmap of the {what}: {e}")));
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).expect("mmap returned null without failing"),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nothing refers to it any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One ring as mapped: its indices, and its entries of type `T`.
struct Ring<T> {
    _map: Mapping,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    desc: NonNull<T>,
    mask: u32,
}

impl<T> Ring<T> {
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: u64,
        what: &str,
    ) -> io::Result<Ring<T>> {
        let len = off.desc as usize + size as usize * size_of::<T>();
        let map = Mapping::new(len, fd, pgoff, what)?;
        let at = |o: u64| {
            NonNull::new(map.ptr.as_ptr().wrapping_add(o as usize)).expect("in the mapping")
        };
        Ok(Ring {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            desc: at(off.desc).cast(),
            mask: size - 1,
            _map: map,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: the kernel keeps a u32 index at this offset of the mapping for its life.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.consumer.as_ref() }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as above, the ring's flags word.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Entry `i` (any index; it wraps).
    fn slot(&self, i: u32) -> *mut T {
        // SAFETY: `i & mask` is within the ring's `size` entries.
        unsafe { self.desc.as_ptr().add((i & self.mask) as usize) }
    }
}

/// An AF_XDP socket bound to one queue of an interface, with its own UMEM.
pub struct Xsk {
    fd: OwnedFd,
    umem: Mapping,
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    /// Frames that are neither in a ring nor in use: what replies are written into.
    free: Vec<u64>,
    /// Whether the kernel copies frames (no zero-copy support in the driver).
    pub copy_mode: bool,
}

// SAFETY: the raw pointers point into mappings the Xsk owns; one thread uses it at a time.
unsafe impl Send for Xsk {}

impl AsFd for Xsk {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Xsk {
    /// A socket on queue `queue` of interface `ifindex`. `copy`: ask for copy mode (generic
    /// XDP has nothing else); otherwise zero-copy where the driver can, copy where not.
    pub fn open(ifindex: u32, queue: u32, copy: bool) -> io::Result<Xsk> {
        // SAFETY: plain socket(2).
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check(raw, "AF_XDP socket")?;
        // SAFETY: a descriptor socket(2) just returned, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem = Mapping::new((FRAMES * FRAME_SIZE) as usize, -1, 0, "UMEM")?;
        // gslbd forks for exec checks: a child must not get (copy-on-write) the pinned frames,
        // else the parent's next write to a frame lands in a copy the kernel does not send.
        // SAFETY: advice on a mapping we own.
        let rc = unsafe { libc::madvise(umem.ptr.as_ptr().cast(), umem.len, libc::MADV_DONTFORK) };
        check(rc, "madvise(MADV_DONTFORK) of the UMEM")?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr.as_ptr() as u64,
            len: umem.len as u64,
            chunk_size: FRAME_SIZE,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(&fd, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        for (opt, what) in [
            (libc::XDP_UMEM_FILL_RING, "fill ring"),
            (libc::XDP_UMEM_COMPLETION_RING, "completion ring"),
            (libc::XDP_RX_RING, "rx ring"),
            (libc::XDP_TX_RING, "tx ring"),
        ] {
            setsockopt(&fd, opt, &RING, what)?;
        }
        let off: libc::xdp_mmap_offsets = getsockopt(
            &fd,
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            "XDP_MMAP_OFFSETS",
        )?;
        let raw = fd.as_raw_fd();
        let fill = Ring::map(
            raw,
            &off.fr,
            RING,
            libc::XDP_UMEM_PGOFF_FILL_RING,
            "fill ring",
        )?;
        let comp = Ring::map(
            raw,
            &off.cr,
            RING,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
            "completion ring",
        )?;
        let rx = Ring::map(
            raw,
            &off.rx,
            RING,
            libc::XDP_PGOFF_RX_RING as u64,
            "rx ring",
        )?;
        let tx = Ring::map(
            raw,
            &off.tx,
            RING,
            libc::XDP_PGOFF_TX_RING as u64,
            "tx ring",
        )?;
        let mut x = Xsk {
            fd,
            umem,
            fill,
            comp,
            rx,
            tx,
            free: (RING..FRAMES).map(|f| u64::from(f * FRAME_SIZE)).collect(),
            copy_mode: copy,
        };
        // The fill ring starts with the first RING frames.
        for f in 0..RING {
            // SAFETY: slot f of the fill ring, which no one else writes before we publish.
            unsafe { x.fill.slot(f).write(u64::from(f * FRAME_SIZE)) };
        }
        x.fill.producer().store(RING, Ordering::Release);
        let mut flags = libc::XDP_USE_NEED_WAKEUP;
        if copy {
            flags |= libc::XDP_COPY;
        }
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a valid sockaddr_xdp of the size given.
        let rc = unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_xdp).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        check(rc, &format!("bind to queue {queue}"))?;
        if !copy {
            x.copy_mode = !x.zero_copy();
        }
        Ok(x)
    }

    fn zero_copy(&self) -> bool {
        getsockopt::<libc::xdp_options>(&self.fd, libc::SOL_XDP, libc::XDP_OPTIONS, "XDP_OPTIONS")
            .is_ok_and(|o| o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
    }

    /// Wait up to `timeout_ms` for a packet. `Err`: the socket failed for good (its device
    /// went away).
    pub fn wait(&self, timeout_ms: i32) -> io::Result<()> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            let err: libc::c_int =
                getsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_ERROR, "SO_ERROR").unwrap_or(0);
            return Err(io::Error::from_raw_os_error(if err == 0 {
                libc::ENXIO
            } else {
                err
            }));
        }
        Ok(())
    }

    /// Frames the kernel has sent are free again.
    pub fn reclaim(&mut self) {
        let cons = self.comp.consumer().load(Ordering::Relaxed);
        let prod = self.comp.producer().load(Ordering::Acquire);
        let n = prod.wrapping_sub(cons);
        for i in 0..n {
            // SAFETY: entries cons..prod were published by the kernel.
            self.free
                .push(unsafe { self.comp.slot(cons.wrapping_add(i)).read() });
        }
        self.comp.consumer().store(prod, Ordering::Release);
    }

    /// Received packets, up to `max`: (first index, count). Give them back with `release`.
    pub fn received(&self, max: u32) -> (u32, u32) {
        let cons = self.rx.consumer().load(Ordering::Relaxed);
        let prod = self.rx.producer().load(Ordering::Acquire);
        (cons, prod.wrapping_sub(cons).min(max))
    }

    /// The packet at rx index `i` (one of those `received` gave), and a free frame for its
    /// reply: (query bytes, reply frame address, reply frame bytes). `None` when every frame
    /// is in flight.
    pub fn with_reply(&mut self, i: u32) -> Option<(&[u8], u64, &mut [u8])> {
        let reply = self.free.pop()?;
        // SAFETY: `i` was published by the kernel (see `received`).
        let d = unsafe { self.rx.slot(i).read() };
        let (qa, ql) = self.clamp(d.addr, d.len as usize);
        let (ra, rl) = self.clamp(reply, FRAME_SIZE as usize);
        debug_assert_ne!(qa / FRAME_SIZE as usize, ra / FRAME_SIZE as usize);
        let base = self.umem.ptr.as_ptr();
        // SAFETY: both ranges are inside the UMEM (clamped). The received frame is ours until
        // `release`; the free frame is in no ring. Frames are FRAME_SIZE apart and a free
        // frame is never one the rx ring holds, so the two slices do not overlap.
        unsafe {
            Some((
                std::slice::from_raw_parts(base.add(qa), ql),
                reply,
                std::slice::from_raw_parts_mut(base.add(ra), rl),
            ))
        }
    }

    /// An address and length the kernel gave, kept inside its frame (and so inside the UMEM)
    /// whatever it says.
    fn clamp(&self, addr: u64, len: usize) -> (usize, usize) {
        let addr = (addr as usize).min(self.umem.len - 1);
        let frame_end = (addr / FRAME_SIZE as usize + 1) * FRAME_SIZE as usize;
        (addr, len.min(frame_end - addr))
    }

    /// A frame taken with `take_free` that was not sent after all.
    pub fn put_free(&mut self, addr: u64) {
        self.free.push(addr);
    }

    /// Done with `count` received packets from index `first`: their frames go back to the
    /// fill ring for the kernel to receive into again.
    pub fn release(&mut self, first: u32, count: u32) {
        let prod = self.fill.producer().load(Ordering::Relaxed);
        for i in 0..count {
            // SAFETY: rx entries first..first+count are ours until we advance the consumer;
            // the fill ring has room, since every frame it lacks is one we hold.
            unsafe {
                let d = self.rx.slot(first.wrapping_add(i)).read();
                self.fill.slot(prod.wrapping_add(i)).write(d.addr);
            }
        }
        self.fill
            .producer()
            .store(prod.wrapping_add(count), Ordering::Release);
        self.rx
            .consumer()
            .store(first.wrapping_add(count), Ordering::Release);
    }

    /// Room in the tx ring.
    pub fn tx_room(&self) -> u32 {
        (self.tx.mask + 1) - self.tx_pending()
    }

    /// Queue `count` frames for sending: `frames[i]` = (address, length). The caller checked
    /// `tx_room`.
    pub fn send(&mut self, frames: &[(u64, u32)]) {
        if !frames.is_empty() {
            let prod = self.tx.producer().load(Ordering::Relaxed);
            for (i, &(addr, len)) in frames.iter().enumerate() {
                let d = libc::xdp_desc {
                    addr,
                    len,
                    options: 0,
                };
                // SAFETY: the caller made sure there is room for these entries.
                unsafe { self.tx.slot(prod.wrapping_add(i as u32)).write(d) };
            }
            self.tx
                .producer()
                .store(prod.wrapping_add(frames.len() as u32), Ordering::Release);
        }
        self.kick();
    }

    /// Have the kernel transmit what the tx ring holds. In copy mode it takes at most 32
    /// entries a call (and says EAGAIN when more are left), so call until the ring is empty
    /// or the kernel says it is busy for another reason; zero-copy drivers only when asked.
    fn kick(&self) {
        if !(self.copy_mode || self.tx.needs_wakeup()) {
            return;
        }
        // A ring of RING entries takes RING / 32 calls at most; a few more for a busy device.
        for _ in 0..(RING / 32 + 4) {
            if self.tx_pending() == 0 {
                return;
            }
            // SAFETY: sendto with no data is AF_XDP's "transmit now".
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if rc >= 0 {
                continue;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::EINTR) => continue,
                // ENOBUFS, ENETDOWN, ENXIO: the device cannot take them now; the next round
                // tries again.
                _ => return,
            }
        }
    }

    /// Entries of the tx ring the kernel has not taken yet.
    pub fn tx_pending(&self) -> u32 {
        let prod = self.tx.producer().load(Ordering::Relaxed);
        let cons = self.tx.consumer().load(Ordering::Acquire);
        prod.wrapping_sub(cons)
    }

    /// With XDP_USE_NEED_WAKEUP, a driver that ran out of fill entries waits to be told
    /// there are new ones.
    pub fn wake_rx_if_needed(&self) {
        if self.fill.needs_wakeup() {
            // SAFETY: a zero-length, non-blocking receive: AF_XDP's "look at the fill ring".
            unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        }
    }

    /// Packets the kernel dropped for this socket: no frame to receive into (the fill ring
    /// empty) or no room in the rx ring. (rx_fill_ring_empty_descs is not added: it counts
    /// the same drops again in copy mode, and refill attempts in zero-copy mode.)
    pub fn ring_full(&self) -> Option<u64> {
        getsockopt::<libc::xdp_statistics>(
            &self.fd,
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            "XDP_STATISTICS",
        )
        .ok()
        .map(|s| s.rx_dropped + s.rx_ring_full)
    }
}

/// A socket option of type `T`, one of the plain C structs or integers of <linux/if_xdp.h>
/// and <sys/socket.h>, for which all-zero bytes are a valid value.
fn getsockopt<T>(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, what: &str) -> io::Result<T> {
    // SAFETY: T is a plain C type (see above): all-zero is a valid value of it.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is writable for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    check(rc, what)?;
    Ok(value)
}

fn setsockopt<T>(fd: &OwnedFd, opt: libc::c_int, value: &T, what: &str) -> io::Result<()> {
    // SAFETY: `value` is a valid T, read by the kernel for size_of::<T>() bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    check(rc, what)
}
