//! Round robin versus health-aware answers, measured: three backends on loopback, one gslbd
//! serving the same three addresses two ways, clients that resolve (caching for the TTL) and
//! connect to the first address, and a scripted outage of backend 2.
//!
//! Shared by `cargo run --release --example compare` and `tests/compare.rs`.

#![allow(dead_code, reason = "the example and the test each use part of it")]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};

/// The ways the pool is served.
pub const MODES: [Mode; 4] = [
    Mode::RoundRobin,
    Mode::HealthAware,
    Mode::Fast,
    Mode::OneStrike,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    RoundRobin,
    /// Checked every interval, down after `fall` failures.
    HealthAware,
    /// The same, with `fast_interval`: once a probe fails, the next come sooner.
    Fast,
    /// Down on the first failed probe (`fall: 1`, as PowerDNS's ifurlup): the fastest
    /// detection, and a flap on every lost probe.
    OneStrike,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::RoundRobin => "round robin",
            Mode::HealthAware => "health-aware",
            Mode::Fast => "health-aware, fast_interval",
            Mode::OneStrike => "one-strike (fall 1)",
        }
    }

    fn qname(self) -> &'static str {
        match self {
            Mode::RoundRobin => "rr.cmp.test.",
            Mode::HealthAware => "ha.cmp.test.",
            Mode::Fast => "haf.cmp.test.",
            Mode::OneStrike => "one.cmp.test.",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Mode::RoundRobin => "#d62728",
            Mode::HealthAware => "#1f77b4",
            Mode::Fast => "#2ca02c",
            Mode::OneStrike => "#9467bd",
        }
    }

    /// Whether the mode checks the backends (and so has a detection time).
    pub fn checked(self) -> bool {
        self != Mode::RoundRobin
    }
}

/// The scenario. Times are from the start of the run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub duration: Duration,
    pub outage_start: Duration,
    pub outage_end: Duration,
    /// Clients per mode; each connects every `pause`.
    pub clients: usize,
    pub pause: Duration,
    pub ttl: u32,
    /// The health check: interval, fall and rise; `fast_interval` for [`Mode::Fast`].
    pub interval: Duration,
    pub fast_interval: Duration,
    pub fall: u32,
    pub rise: u32,
    /// The second octet-triple of the backends' addresses: 127.0.<net>.1-3.
    pub net: u8,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            duration: Duration::from_secs(30),
            outage_start: Duration::from_secs(5),
            outage_end: Duration::from_secs(20),
            clients: 60,
            pause: Duration::from_millis(500),
            ttl: 5,
            interval: Duration::from_secs(1),
            fast_interval: Duration::from_millis(200),
            fall: 2,
            rise: 2,
            net: 60,
        }
    }
}

/// The command line after `--`: `[--out DIR] [--quick]`, in any order. Returns the chart's
/// directory (default `target/compare`) and the plan.
pub fn args(args: impl IntoIterator<Item = String>) -> Result<(PathBuf, Plan), String> {
    let mut out_dir = PathBuf::from("target/compare");
    let mut plan = Plan::default();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => match args.next() {
                Some(d) => out_dir = PathBuf::from(d),
                None => return Err("--out needs a directory".into()),
            },
            "--quick" => {
                plan.duration = Duration::from_secs(15);
                plan.outage_start = Duration::from_secs(3);
                plan.outage_end = Duration::from_secs(11);
                plan.ttl = 2;
                plan.interval = Duration::from_millis(500);
                plan.fast_interval = Duration::from_millis(100);
            }
            "--" => return Err("one `--` is enough: cargo passes what follows it".into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((out_dir, plan))
}

/// One connect attempt.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub mode: Mode,
    pub at: Duration,
    pub ok: bool,
}

/// What one run found.
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub attempts: Vec<Attempt>,
    /// Per mode (by index in [`MODES`]): when its answers stopped containing backend 2, and
    /// when they had it again (from the run's start), if they did. Round robin never does.
    pub dropped_at: [Option<Duration>; 4],
    pub back_at: [Option<Duration>; 4],
}

/// One row of the table.
#[derive(Debug)]
pub struct Row {
    pub mode: Mode,
    pub attempts: usize,
    pub failures: usize,
    pub rate: f64,
    /// Failure rate in the outage once detection and one TTL have passed.
    pub after_detection: f64,
    pub after_detection_attempts: usize,
    pub detect: Option<Duration>,
    pub recover: Option<Duration>,
}

impl Outcome {
    /// The part of the outage in which every checked mode's answers are already clean
    /// everywhere: from the slowest detection plus one TTL (every cache has expired) to the
    /// end of the outage.
    pub fn settled_window(&self) -> (Duration, Duration) {
        let detect = MODES
            .iter()
            .filter(|m| m.checked())
            .map(|&m| self.dropped_at[m as usize].unwrap_or(self.plan.outage_end))
            .max()
            .unwrap_or(self.plan.outage_end);
        let start =
            (detect + Duration::from_secs(u64::from(self.plan.ttl))).min(self.plan.outage_end);
        (start, self.plan.outage_end)
    }

    pub fn rows(&self) -> Vec<Row> {
        let (w0, w1) = self.settled_window();
        MODES
            .iter()
            .map(|&mode| {
                let of: Vec<&Attempt> = self.attempts.iter().filter(|a| a.mode == mode).collect();
                let failures = of.iter().filter(|a| !a.ok).count();
                let window: Vec<&&Attempt> =
                    of.iter().filter(|a| a.at >= w0 && a.at < w1).collect();
                let window_failures = window.iter().filter(|a| !a.ok).count();
                let (detect, recover) = (
                    self.dropped_at[mode as usize]
                        .map(|t| t.saturating_sub(self.plan.outage_start)),
                    self.back_at[mode as usize].map(|t| t.saturating_sub(self.plan.outage_end)),
                );
                Row {
                    mode,
                    attempts: of.len(),
                    failures,
                    rate: ratio(failures, of.len()),
                    after_detection: ratio(window_failures, window.len()),
                    after_detection_attempts: window.len(),
                    detect,
                    recover,
                }
            })
            .collect()
    }

    /// Failed connects per second, per mode.
    pub fn failures_per_second(&self, mode: Mode) -> Vec<usize> {
        let secs = self.plan.duration.as_secs() as usize + 1;
        let mut v = vec![0; secs];
        for a in self.attempts.iter().filter(|a| a.mode == mode && !a.ok) {
            if let Some(slot) = v.get_mut(a.at.as_secs() as usize) {
                *slot += 1;
            }
        }
        v
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The table, as printed.
pub fn table(o: &Outcome) -> String {
    let (w0, w1) = o.settled_window();
    let secs =
        |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
    let mut out = format!(
        "{:<27} {:>8} {:>7} {:>8} {:>22} {:>9} {:>9}\n",
        "mode",
        "connects",
        "failed",
        "failed %",
        format!("outage {:.1}-{:.0} s %", w0.as_secs_f64(), w1.as_secs_f64()),
        "detect",
        "recover"
    );
    for r in o.rows() {
        out.push_str(&format!(
            "{:<27} {:>8} {:>7} {:>7.1}% {:>21.1}% {:>9} {:>9}\n",
            r.mode.label(),
            r.attempts,
            r.failures,
            100.0 * r.rate,
            100.0 * r.after_detection,
            secs(r.detect),
            secs(r.recover)
        ));
    }
    out
}

/// The chart: failed connects per second over time, one line per mode, the outage shaded.
pub fn svg(o: &Outcome) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 320.0, 56.0, 24.0, 36.0, 44.0);
    let series: Vec<(Mode, Vec<usize>, &str)> = MODES
        .iter()
        .map(|&m| (m, o.failures_per_second(m), m.color()))
        .collect();
    let max_y = series
        .iter()
        .flat_map(|(_, v, _)| v.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    let top_y = (max_y.div_ceil(5) * 5) as f64;
    let secs = o.plan.duration.as_secs_f64();
    let x = |t: f64| left + (w - left - right) * t / secs;
    let y = |v: f64| h - bottom - (h - top - bottom) * v / top_y;
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
<text x="{left}" y="20" font-size="14">Failed connects per second: backend 2 of 3 down from t={:.0} s to t={:.0} s</text>
<rect x="{:.1}" y="{top}" width="{:.1}" height="{:.1}" fill="#bbbbbb" fill-opacity="0.35"/>
"##,
        o.plan.outage_start.as_secs_f64(),
        o.plan.outage_end.as_secs_f64(),
        x(o.plan.outage_start.as_secs_f64()),
        x(o.plan.outage_end.as_secs_f64()) - x(o.plan.outage_start.as_secs_f64()),
        h - top - bottom,
    );
    // axes and ticks
    s.push_str(&format!(
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="black"/>
"##,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    ));
    let mut t = 0.0;
    while t <= secs + 0.01 {
        s.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t:.0}</text>
"##,
            x(t),
            h - bottom + 16.0
        ));
        t += 5.0;
    }
    s.push_str(&format!(
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds</text>
"##,
        left + (w - left - right) / 2.0,
        h - 8.0
    ));
    for i in 0..=5 {
        let v = top_y * f64::from(i) / 5.0;
        s.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text><line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#dddddd"/>
"##,
            left - 6.0,
            y(v) + 4.0,
            y(v),
            w - right,
            y(v)
        ));
    }
    for (i, (mode, v, color)) in series.iter().enumerate() {
        let points: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(sec, n)| format!("{:.1},{:.1}", x(sec as f64 + 0.5), y(*n as f64)))
            .collect();
        s.push_str(&format!(
            r##"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>
<rect x="{:.1}" y="{:.1}" width="14" height="4" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>
"##,
            points.join(" "),
            w - right - 190.0,
            top + 10.0 + 18.0 * i as f64,
            w - right - 170.0,
            top + 15.0 + 18.0 * i as f64,
            mode.label()
        ));
    }
    s.push_str("</svg>\n");
    s
}

/// A TCP listener that accepts and closes, and can be stopped (connections refused) and
/// started again on the same address.
pub struct Backend {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    pub fn start(addr: SocketAddr) -> std::io::Result<Backend> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => drop(conn),
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Ok(Backend {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The gslbd under test, stopped (SIGTERM, then kill) when dropped.
pub struct Gslbd {
    child: Child,
    pub dns: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Gslbd {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The zone: the same three addresses as `rr` (no checks, plain round robin) and `ha`.
fn zone_text(plan: &Plan, port: u16) -> String {
    let n = plan.net;
    let members = format!(
        "[{{ address: 127.0.{n}.1 }}, {{ address: 127.0.{n}.2 }}, {{ address: 127.0.{n}.3 }}]"
    );
    format!(
        "zone: cmp.test.
soa: {{ mname: ns1.cmp.test., rname: hostmaster.cmp.test. }}
ns: [ns1.cmp.test.]
records:
  ns1: {{ A: [127.0.0.1] }}
checks:
  port: {{ tcp: {{ port: {port} }}, interval: {i}ms, fast_interval: {i}ms, timeout: {t}ms, fall: {fall}, rise: {rise} }}
  fast: {{ tcp: {{ port: {port} }}, interval: {i}ms, fast_interval: {f}ms, timeout: {t}ms, fall: {fall}, rise: {rise} }}
  one: {{ tcp: {{ port: {port} }}, interval: {i}ms, fast_interval: {i}ms, timeout: {t}ms, fall: 1, rise: 1 }}
pools:
  rr: {{ ttl: {ttl}, max_answers: 3, members: {members} }}
  ha: {{ ttl: {ttl}, max_answers: 3, checks: [port], members: {members} }}
  haf: {{ ttl: {ttl}, max_answers: 3, checks: [fast], members: {members} }}
  one: {{ ttl: {ttl}, max_answers: 3, checks: [one], members: {members} }}
names:
  rr: {{ pool: rr }}
  ha: {{ pool: ha }}
  haf: {{ pool: haf }}
  one: {{ pool: one }}
",
        i = plan.interval.as_millis(),
        f = plan.fast_interval.as_millis(),
        t = (plan.interval.as_millis() / 2).max(100),
        fall = plan.fall,
        rise = plan.rise,
        ttl = plan.ttl,
    )
}

/// Start gslbd (the binary at `bin`) on a free loopback port with the comparison zone.
pub fn start_gslbd(bin: &Path, plan: &Plan, port: u16) -> Result<Gslbd, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.path().join("zones")).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("zones/cmp.yaml"), zone_text(plan, port))
        .map_err(|e| e.to_string())?;
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("GSLBD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on udp and tcp ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let mut g = Gslbd {
        child,
        dns: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        _dir: dir,
    };
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "gslbd did not start listening within 10 s".to_string())?;
    g.dns = addr
        .parse()
        .map_err(|_| format!("unexpected listen address {addr:?}"))?;
    Ok(g)
}

/// Ask `server` for the A records of `name` over UDP: (addresses in answer order, TTL).
pub fn resolve(sock: &UdpSocket, server: SocketAddr, name: &str) -> Option<(Vec<IpAddr>, u32)> {
    let id = fastrand::u16(..);
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).ok()?, RecordType::A));
    sock.send_to(&m.to_vec().ok()?, server).ok()?;
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            return None;
        };
        let Ok(r) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if from != server || r.metadata.id != id {
            continue;
        }
        let ttl = r.answers.first().map_or(0, |r| r.ttl);
        let addrs = r
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })
            .collect();
        return Some((addrs, ttl));
    }
    None
}

/// Run the plan. `progress` is called about twice a second with (elapsed, failures per mode).
pub fn run(
    bin: &Path,
    plan: &Plan,
    progress: &dyn Fn(Duration, [usize; 4]),
) -> Result<Outcome, String> {
    let n = plan.net;
    let ip = |i: u8| IpAddr::V4(Ipv4Addr::new(127, 0, n, i));
    let first = Backend::start(SocketAddr::new(ip(1), 0)).map_err(|e| format!("backend: {e}"))?;
    let port = first.addr.port();
    let mut backends = vec![first];
    for i in 2..=3 {
        backends.push(
            Backend::start(SocketAddr::new(ip(i), port)).map_err(|e| format!("backend: {e}"))?,
        );
    }
    let g = start_gslbd(bin, plan, port)?;

    // Wait until the health-aware pool has probed every backend (they start unknown).
    let probe = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    probe
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    std::thread::sleep(plan.interval * (plan.rise + 1));

    let start = Instant::now();
    let attempts = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let failed = Arc::new([(); 4].map(|_| AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for mode in MODES {
        for c in 0..plan.clients {
            let (attempts, stop, plan) = (attempts.clone(), stop.clone(), plan.clone());
            let failed = failed.clone();
            let server = g.dns;
            clients.push(std::thread::spawn(move || {
                let fails = &failed[mode as usize];
                client(mode, c, server, port, &plan, start, &stop, fails, &attempts)
            }));
        }
    }

    // The outage, and a watcher of the checked modes' answers.
    let mut dropped_at = [None; 4];
    let mut back_at = [None; 4];
    let mut last_progress = Duration::ZERO;
    let mut down = false;
    let mut restored = false;
    while start.elapsed() < plan.duration {
        let now = start.elapsed();
        if !down && now >= plan.outage_start {
            backends[1].stop();
            down = true;
        }
        if down && !restored && now >= plan.outage_end {
            backends[1] = Backend::start(SocketAddr::new(ip(2), port))
                .map_err(|e| format!("restarting backend 2: {e}"))?;
            restored = true;
        }
        for mode in MODES.into_iter().filter(|m| m.checked()) {
            let Some((addrs, _)) = resolve(&probe, g.dns, mode.qname()) else {
                continue;
            };
            let has2 = addrs.contains(&ip(2));
            let i = mode as usize;
            if down && !restored && !has2 && dropped_at[i].is_none() {
                dropped_at[i] = Some(start.elapsed());
            }
            if restored && has2 && back_at[i].is_none() {
                back_at[i] = Some(start.elapsed());
            }
        }
        if now >= last_progress + Duration::from_millis(500) {
            last_progress = now;
            progress(now, [0, 1, 2, 3].map(|m| failed[m].load(Ordering::Relaxed)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    drop(g);
    drop(backends);
    let mut attempts = std::mem::take(&mut *attempts.lock().unwrap_or_else(|e| e.into_inner()));
    attempts.sort_by_key(|a| a.at);
    Ok(Outcome {
        plan: plan.clone(),
        attempts,
        dropped_at,
        back_at,
    })
}

/// One client: resolve when its cache has expired (as its caching resolver would), connect to
/// the first address with a 1 s timeout, wait, repeat.
#[allow(clippy::too_many_arguments, reason = "one client's fixed setup")]
fn client(
    mode: Mode,
    id: usize,
    server: SocketAddr,
    port: u16,
    plan: &Plan,
    start: Instant,
    stop: &AtomicBool,
    failed: &AtomicUsize,
    out: &Mutex<Vec<Attempt>>,
) {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        return;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(500)));
    // Spread the clients over the pause so they do not move in lockstep.
    std::thread::sleep(plan.pause * id as u32 / plan.clients.max(1) as u32);
    let mut cache: Option<(IpAddr, Instant)> = None;
    let mut mine = Vec::new();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < plan.duration {
        let now = Instant::now();
        let target = match cache {
            Some((a, until)) if now < until => Some(a),
            _ => match resolve(&sock, server, mode.qname()) {
                Some((addrs, ttl)) if !addrs.is_empty() => {
                    cache = Some((addrs[0], now + Duration::from_secs(u64::from(ttl))));
                    Some(addrs[0])
                }
                _ => None,
            },
        };
        let at = start.elapsed();
        let ok = target.is_some_and(|a| {
            TcpStream::connect_timeout(&SocketAddr::new(a, port), Duration::from_secs(1)).is_ok()
        });
        if !ok {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        mine.push(Attempt { mode, at, ok });
        std::thread::sleep(plan.pause);
    }
    out.lock().unwrap_or_else(|e| e.into_inner()).extend(mine);
}

/// Where the gslbd binary of this build is: next to the example's own directory
/// (`target/<profile>/examples/compare` → `target/<profile>/gslbd`).
pub fn sibling_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    Some(profile_dir.join("gslbd"))
}
