//! AF_XDP: a second way in for UDP queries, beside the sockets (`xdp:` in gslbd.yaml).
//!
//! ```text
//!  NIC queue q ──▶ XDP program ──UDP to port 53 of our addresses──▶ AF_XDP socket q ──▶ thread q
//!                     │                                                 answer() + RRL
//!                     └──everything else: XDP_PASS──▶ the kernel (TCP, ARP, the sockets)
//! ```
//! The program (`bpf/gslbd_xdp.c`, committed prebuilt as `bpf/gslbd_xdp.o`) is loaded and
//! attached with aya through a bpf_link: the kernel detaches it when gslbd exits, however it
//! exits, so no stale program is left behind. Each queue gets a socket with its own frames and
//! a thread that answers in batches with the same code as the socket path; nothing on that
//! path allocates or waits on anything but the socket.
//!
//! Whatever fails here (no privileges, no such interface, a kernel or driver without XDP) is
//! logged once by the caller, and gslbd serves through its sockets as before.

pub mod frame;
mod serve;
mod socket;

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp as XdpProgram, XdpMode};

use crate::dns::rrl::Limiter;
use crate::model;
use crate::snapshot::Live;

/// The XDP program, built from `bpf/gslbd_xdp.c` by `bpf/build.sh`. Aligned as an ELF reader
/// wants it.
static PROGRAM: &AlignedProgram<[u8]> = &AlignedProgram(*include_bytes!("../../bpf/gslbd_xdp.o"));

#[repr(C, align(8))]
struct AlignedProgram<T: ?Sized>(T);

/// The program's name in the object, and as `bpftool prog` and `ip link` show it.
pub const PROGRAM_NAME: &str = "gslbd_xdp";

/// What each queue's thread counts; read by the metrics at scrape time.
#[derive(Default)]
pub struct QueueCounts {
    pub answered: AtomicU64,
    /// Packets dropped for want of a free frame or room in the tx ring.
    pub dropped: AtomicU64,
    /// Packets that were not plain queries (malformed frames, nothing to answer).
    pub ignored: AtomicU64,
    /// Packets the kernel dropped before we saw them: the socket's rings were full.
    pub ring_full: AtomicU64,
}

/// XDP's counters: the program's (per CPU, in a map) and each queue thread's.
pub struct Stats {
    pub interface: String,
    counts: PerCpuArray<MapData, u64>,
    pub queues: Vec<Arc<QueueCounts>>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "xdp::Stats({})", self.interface)
    }
}

impl Stats {
    /// Packets the program passed to the kernel, and redirected to our sockets (all CPUs).
    pub fn program_counts(&self) -> (u64, u64) {
        let total = |i: u32| {
            self.counts
                .get(&i, 0)
                .map_or(0, |per_cpu| per_cpu.iter().sum::<u64>())
        };
        (total(0), total(1))
    }

    /// Summed over the queues: (answered, dropped by us or by the kernel, ignored).
    pub fn queue_totals(&self) -> (u64, u64, u64) {
        self.queues.iter().fold((0, 0, 0), |(a, d, i), c| {
            (
                a + c.answered.load(Ordering::Relaxed),
                d + c.dropped.load(Ordering::Relaxed) + c.ring_full.load(Ordering::Relaxed),
                i + c.ignored.load(Ordering::Relaxed),
            )
        })
    }
}

/// XDP at work: the program attached, a thread per queue. Dropping it (after `stop` is set)
/// waits for the threads and detaches the program.
pub struct Running {
    /// The mode the program runs in, and whether the sockets copy frames.
    pub mode: model::XdpMode,
    pub copy_mode: bool,
    pub stats: Arc<Stats>,
    _xsks: XskMap<MapData>,
    /// Tells the queue threads to end (set when this is dropped).
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Holds the program and its link: dropped last.
    _ebpf: aya::Ebpf,
}

impl Drop for Running {
    /// Stop the queue threads and wait for them; the program goes with `_ebpf`.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Why XDP could not start, for the log line that says gslbd serves through sockets.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct XdpError(String);

fn err(what: impl std::fmt::Display) -> XdpError {
    XdpError(what.to_string())
}

/// An error and its sources, as one line: aya's say which call failed, their source why.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = s.source();
    }
    text
}

/// An aya error, with its sources and the privilege hint where it applies.
fn aya_error(e: impl std::error::Error) -> XdpError {
    with_hint(chain(&e))
}

/// The privilege hint for an error that smells of missing privileges.
fn with_hint(e: impl std::fmt::Display) -> XdpError {
    let text = e.to_string();
    if text.contains("Operation not permitted") || text.contains("EPERM") {
        err(format!(
            "{text} (XDP needs root, or CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW and CAP_IPC_LOCK)"
        ))
    } else {
        err(text)
    }
}

/// Load and attach the program on `cfg.interface`, open a socket and start a thread per
/// queue. Dropping the result stops the threads and detaches the program.
pub fn start(
    cfg: &model::Xdp,
    live: &Live,
    rrl: Option<Arc<Limiter>>,
) -> Result<Running, XdpError> {
    let name = std::ffi::CString::new(cfg.interface.as_str()).map_err(aya_error)?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(err(format!(
            "there is no network interface {:?}",
            cfg.interface
        )));
    }
    let queues = match cfg.queues {
        Some(n) => n,
        None => served_queues(&cfg.interface, rx_queues(&cfg.interface)),
    };
    // UMEM pages are locked memory; without CAP_IPC_LOCK they count against RLIMIT_MEMLOCK.
    raise_memlock();
    let mut ebpf = aya::Ebpf::load(&PROGRAM.0).map_err(aya_error)?;
    // Taken out of the object, the maps live as long as these handles or the program.
    let mut take = |name: &str| {
        ebpf.take_map(name)
            .ok_or_else(|| err(format!("the program has no map {name}")))
    };
    let mut v4: BpfHashMap<MapData, [u8; 4], u8> =
        BpfHashMap::try_from(take("v4")?).map_err(aya_error)?;
    let mut v6: BpfHashMap<MapData, [u8; 16], u8> =
        BpfHashMap::try_from(take("v6")?).map_err(aya_error)?;
    let counts: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(take("counts")?).map_err(aya_error)?;
    let mut xsks: XskMap<MapData> = XskMap::try_from(take("xsks")?).map_err(aya_error)?;
    for a in &cfg.addresses {
        match a {
            IpAddr::V4(a) => v4.insert(a.octets(), 1, 0),
            IpAddr::V6(a) => v6.insert(a.octets(), 1, 0),
        }
        .map_err(aya_error)?;
    }
    let program: &mut XdpProgram = ebpf
        .program_mut(PROGRAM_NAME)
        .ok_or_else(|| err("the object has no program gslbd_xdp"))?
        .try_into()
        .map_err(aya_error)?;
    program.load().map_err(aya_error)?;
    let mode = attach(program, &cfg.interface, cfg.mode)?;
    // Generic XDP hands over copies; zero-copy needs the driver's own XDP.
    let copy = mode == model::XdpMode::Generic;
    let mut sockets = Vec::new();
    for q in 0..queues {
        let x = socket::Xsk::open(ifindex, q, copy)
            .map_err(|e| with_hint(format!("{} queue {q}: {e}", cfg.interface)))?;
        xsks.set(q, x.as_fd(), 0).map_err(aya_error)?;
        sockets.push(x);
    }
    let copy_mode = sockets.iter().any(|x| x.copy_mode);
    let queue_counts: Vec<Arc<QueueCounts>> = sockets.iter().map(|_| Arc::default()).collect();
    let mut running = Running {
        mode,
        copy_mode,
        stats: Arc::new(Stats {
            interface: cfg.interface.clone(),
            counts,
            queues: queue_counts.clone(),
        }),
        _xsks: xsks,
        stop: Arc::new(AtomicBool::new(false)),
        threads: Vec::new(),
        _ebpf: ebpf,
    };
    for ((q, x), counts) in sockets.into_iter().enumerate().zip(queue_counts) {
        let (live, rrl, stop) = (live.clone(), rrl.clone(), running.stop.clone());
        let t = std::thread::Builder::new()
            .name(format!("xdp-{}-{q}", cfg.interface))
            .spawn(move || serve::serve(q as u32, x, live, rrl, stop, counts))
            .map_err(aya_error)?;
        running.threads.push(t);
    }
    Ok(running)
}

/// Attach in the mode asked for; `auto` tries native first. Returns the mode it runs in.
fn attach(
    program: &mut XdpProgram,
    interface: &str,
    mode: model::XdpMode,
) -> Result<model::XdpMode, XdpError> {
    let try_mode = |program: &mut XdpProgram, m: model::XdpMode| {
        let flags = match m {
            model::XdpMode::Generic => XdpMode::Skb,
            _ => XdpMode::Driver,
        };
        program.attach(interface, flags).map(|_| m)
    };
    match mode {
        model::XdpMode::Auto => try_mode(program, model::XdpMode::Native).or_else(|native| {
            tracing::info!(
                interface,
                "xdp: {interface} cannot run XDP in its driver ({native}); generic mode"
            );
            try_mode(program, model::XdpMode::Generic)
                .map_err(|e| with_hint(attach_error(interface, e)))
        }),
        m => try_mode(program, m).map_err(|e| {
            let why = attach_error(interface, e);
            if m == model::XdpMode::Native {
                with_hint(format!(
                    "{why}; `mode: generic` (or `auto`) runs XDP on any device, slower"
                ))
            } else {
                with_hint(why)
            }
        }),
    }
}

fn attach_error(interface: &str, e: aya::programs::ProgramError) -> String {
    let text = chain(&e);
    if text.contains("Device or resource busy") || text.contains("File exists") {
        format!(
            "cannot attach to {interface}: another XDP program is attached to it (`ip link show {interface}` names it; `ip link set dev {interface} xdp off` removes it, e.g. one knotd left behind, or gslbd_xdp of a gslbd killed on a kernel before 5.9, which has no bpf_link); gslbd does not replace it: {text}"
        )
    } else {
        format!("cannot attach to {interface}: {text}")
    }
}

/// The receive queues of an interface, from sysfs (1 when it cannot tell).
fn rx_queues(interface: &str) -> u32 {
    let dir = format!("/sys/class/net/{interface}/queues");
    std::fs::read_dir(dir).map_or(1, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
            .count()
            .max(1) as u32
    })
}

/// Of `found` receive queues, those served: the socket map's `XDP_MAX_QUEUES` at most (queries
/// on the others pass to the kernel, as the program's redirect falls back to XDP_PASS).
fn served_queues(interface: &str, found: u32) -> u32 {
    if found > model::XDP_MAX_QUEUES {
        tracing::warn!(
            "xdp: {interface} has {found} receive queues; AF_XDP serves the first {}, the kernel's sockets the rest (or set xdp.queues and steer queries to those queues)",
            model::XDP_MAX_QUEUES
        );
    }
    found.min(model::XDP_MAX_QUEUES)
}

fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit; failure (no privilege) leaves the limit as it was.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}

/// `Stats` as /metrics reads them.
impl prometheus_client::collector::Collector for Stats {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        let (passed, redirected) = self.program_counts();
        let (answered, dropped, ignored) = self.queue_totals();
        let mut family = encoder.encode_descriptor(
            "gslbd_xdp_packets",
            "Packets seen by XDP: passed to the kernel, redirected to gslbd, answered, dropped (rings full), ignored (not a query to answer)",
            None,
            MetricType::Counter,
        )?;
        for (result, v) in [
            ("passed", passed),
            ("redirected", redirected),
            ("answered", answered),
            ("dropped", dropped),
            ("ignored", ignored),
        ] {
            let labels = [("interface", self.interface.as_str()), ("result", result)];
            ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "gslbd_xdp_queue_answered",
            "Queries answered through AF_XDP, by receive queue (an idle queue next to a busy one: the NIC's flow hashing or RSS spreads poorly)",
            None,
            MetricType::Counter,
        )?;
        for (q, c) in self.queues.iter().enumerate() {
            let queue = q.to_string();
            let labels = [
                ("interface", self.interface.as_str()),
                ("queue", queue.as_str()),
            ];
            let v = c.answered.load(Ordering::Relaxed);
            ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_beyond_the_socket_map_are_left_to_the_kernel() {
        assert_eq!(served_queues("eth0", 1), 1);
        assert_eq!(served_queues("eth0", 256), 256);
        // a NIC with more queues than the map holds: the first 256, not a failing start
        assert_eq!(served_queues("eth0", 320), 256);
    }

    #[test]
    fn the_program_map_holds_as_many_sockets_as_queues_are_served() {
        let source = include_str!("../../bpf/gslbd_xdp.c");
        let xsks = source
            .lines()
            .find(|l| l.contains("SEC(\"maps\") xsks"))
            .expect("the xsks map in bpf/gslbd_xdp.c");
        assert!(
            xsks.contains(&format!(", {}, ", model::XDP_MAX_QUEUES)),
            "{xsks}"
        );
    }
}
