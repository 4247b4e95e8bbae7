//! Test harness: runs the real `gslbd` binary on a free loopback port and talks DNS to it over
//! real UDP and TCP sockets. The server's log is printed when a test fails.

#![allow(dead_code)]

pub mod backend;
pub mod cases;
pub mod etcd;
pub mod geo;
pub mod systemd;

use std::fmt::Display;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};

pub const BIN: &str = env!("CARGO_BIN_EXE_gslbd");

/// `gslbd check` run in `dir` (its gslbd.yaml and zones/): the exit code and stderr.
pub fn check_in(dir: &Path) -> (Option<i32>, String) {
    let o = Command::new(BIN)
        .current_dir(dir)
        .arg("check")
        .output()
        .expect("run gslbd check");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The repository root (for fixtures). Never a server's working directory: `gslbd serve`
/// writes its `state/` there.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled demo zones, `zones/` of the repository.
pub fn bundled_zones() -> PathBuf {
    root().join("zones")
}

/// A scratch directory holding a copy of the bundled `zones/`: `gslbd` run there with no flags
/// finds them as it does in the repository root, and keeps its `state/` out of the checkout.
pub fn bundled_copy() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    copy_dir(&bundled_zones(), &d.path().join("zones"));
    d
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// How often [`eventually`] asks.
pub const TICK: Duration = Duration::from_millis(50);

/// Asks `ready` every `every` until it returns `Some` and returns that, or `None` once `within`
/// has passed without it (it is asked once more at the end). [`eventually`] is the usual form;
/// this one is for waits that may fail, or whose failure tells what was seen last.
pub fn poll<T>(
    within: Duration,
    every: Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = ready() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Waits for something to happen: asks `ready` every 50 ms until it returns `Some` (a condition
/// is `cond.then_some(())`) and returns that; panics with `what` after `within`. A [`Server`]
/// prints its log when a test panics, so `what` needs no log.
#[track_caller]
pub fn eventually<T>(within: Duration, what: impl Display, ready: impl FnMut() -> Option<T>) -> T {
    match poll(within, TICK, ready) {
        Some(v) => v,
        // not in a closure: the panic names the caller's line
        None => panic!("{what} (waited {within:?})"),
    }
}

/// A running `gslbd serve`, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    /// The working directory of [`Server::start_in_tempdir`], removed after the server stopped.
    _cwd: Option<tempfile::TempDir>,
}

impl Server {
    /// Start `gslbd serve --listen 127.0.0.1:0 ARGS...` in `cwd` and wait until it listens.
    pub fn start(cwd: &Path, args: &[&str]) -> Server {
        Self::start_on("127.0.0.1:0", cwd, args)
    }

    pub fn start_on(listen: &str, cwd: &Path, args: &[&str]) -> Server {
        Self::start_with_env(listen, cwd, args, &[])
    }

    /// Start in a new temporary directory, removed with the server: for a server given its zones
    /// with `--zones`.
    pub fn start_in_tempdir(args: &[&str]) -> Server {
        let d = tempfile::tempdir().unwrap();
        let mut s = Self::start(d.path(), args);
        s._cwd = Some(d);
        s
    }

    /// Keep `dir` (the server's working directory) until the server is dropped.
    pub fn keep(&mut self, dir: tempfile::TempDir) {
        self._cwd = Some(dir);
    }

    /// Start with extra environment variables.
    pub fn start_with_env(listen: &str, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        assert!(
            !cwd.starts_with(root()),
            "gslbd serve in {} would write its state/ into the checkout: run it in a tempdir",
            cwd.display()
        );
        let mut child = Command::new(BIN)
            .current_dir(cwd)
            .args(["serve", "--listen", listen, "--api", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .env("GSLBD_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gslbd");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            // Ready when "serving N zone(s)" is logged, after every listener was announced.
            let mut first = None;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on udp and tcp ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("");
                    first = first.or(SocketAddr::from_str(addr).ok());
                }
                {
                    let mut l = log2.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                // the admin API is announced last, after every listener
                if line.contains("admin API on http://") {
                    let _ = tx.send(first);
                }
            }
            let _ = tx.send(None);
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(a)) => a,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "gslbd did not start ({other:?}); log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Server {
            child,
            addr,
            log,
            _cwd: None,
        }
    }

    /// The admin API's base URL (`http://127.0.0.1:PORT`).
    pub fn api(&self) -> String {
        self.log()
            .lines()
            .find_map(|l| l.split("admin API on ").nth(1))
            .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
            .expect("admin API address in the log")
    }

    /// One HTTP/1.1 request to the admin API: (status, body).
    pub fn http(&self, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
        http_request(
            self.api().trim_start_matches("http://"),
            method,
            path,
            body,
            token,
        )
    }

    /// Every address the server announced ("listening on udp and tcp ADDR").
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.log()
            .lines()
            .filter_map(|l| l.split("listening on udp and tcp ").nth(1))
            .filter_map(|r| r.split_whitespace().next()?.parse().ok())
            .collect()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Poll the log until it contains `needle` (or panic after `secs`).
    #[track_caller]
    pub fn wait_log(&self, needle: &str, secs: u64) {
        eventually(
            Duration::from_secs(secs),
            format!("log never showed {needle:?}"),
            || self.log().contains(needle).then_some(()),
        );
    }

    /// Whether the process has exited, waiting up to `secs`; returns its exit code.
    pub fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        poll(Duration::from_secs(secs), TICK, || {
            let status = self.child.try_wait().ok()??;
            Some(status.code().unwrap_or(-1))
        })
    }

    /// Send raw bytes over UDP; the reply, if one comes within 2 s.
    pub fn udp_raw(&self, packet: &[u8]) -> Option<Vec<u8>> {
        udp_exchange(self.addr, packet, Duration::from_secs(2))
    }

    /// Send one message over a new TCP connection; the reply.
    pub fn tcp_raw(&self, packet: &[u8]) -> Vec<u8> {
        let mut s = self.tcp_connect();
        tcp_send(&mut s, packet);
        tcp_recv(&mut s).expect("tcp reply")
    }

    pub fn tcp_connect(&self) -> TcpStream {
        let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    pub fn udp(&self, q: &Ask) -> Message {
        let reply = self
            .udp_raw(&q.bytes())
            .unwrap_or_else(|| panic!("no UDP reply to {q:?}; log:\n{}", self.log()));
        Message::from_vec(&reply).expect("parse reply")
    }

    pub fn tcp(&self, q: &Ask) -> Message {
        Message::from_vec(&self.tcp_raw(&q.bytes())).expect("parse reply")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        if self.wait_exit(10).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- gslbd log ----\n{}", self.log());
        }
    }
}

/// One HTTP/1.1 request to `addr` (`host:port`), with a bearer token if given: (status, body).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the admin API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the response");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

pub fn udp_exchange(addr: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let local = if addr.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let s = UdpSocket::bind(local).expect("bind");
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(packet, addr).expect("send");
    let mut buf = vec![0u8; 65535];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

pub fn tcp_send(s: &mut TcpStream, packet: &[u8]) {
    let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(packet);
    s.write_all(&framed).expect("tcp write");
}

pub fn tcp_recv(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// A question to ask.
#[derive(Debug, Clone)]
pub struct Ask {
    pub name: String,
    pub rtype: RecordType,
    pub id: u16,
    /// EDNS UDP payload size; `None` sends no OPT record.
    pub edns: Option<u16>,
    /// EDNS Client Subnet: address and source prefix length (RFC 7871).
    pub ecs: Option<(std::net::IpAddr, u8)>,
    pub edns_version: u8,
    pub dnssec_ok: bool,
    /// Ask for the server's NSID (RFC 5001).
    pub nsid: bool,
}

impl Ask {
    pub fn new(name: &str, rtype: &str) -> Ask {
        Ask {
            name: name.to_string(),
            rtype: match rtype.strip_prefix("TYPE") {
                // RFC 3597 §5 syntax for types hickory has no name for
                Some(n) if n.parse::<u16>().is_ok() => RecordType::from(n.parse::<u16>().unwrap()),
                _ => RecordType::from_str(rtype).expect("record type"),
            },
            id: 0x4242,
            edns: Some(1232),
            ecs: None,
            edns_version: 0,
            dnssec_ok: false,
            nsid: false,
        }
    }

    pub fn nsid(mut self) -> Ask {
        self.nsid = true;
        self
    }

    pub fn no_edns(mut self) -> Ask {
        self.edns = None;
        self
    }

    /// Ask on behalf of a client subnet, e.g. `ecs("10.1.2.0", 24)`.
    pub fn ecs(mut self, addr: &str, prefix: u8) -> Ask {
        self.ecs = Some((addr.parse().expect("address"), prefix));
        self
    }

    pub fn bufsize(mut self, n: u16) -> Ask {
        self.edns = Some(n);
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut m = Message::new(self.id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii(&self.name).expect("name"),
            self.rtype,
        ));
        if let Some(size) = self.edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            e.set_version(self.edns_version);
            e.set_dnssec_ok(self.dnssec_ok);
            if let Some((addr, prefix)) = self.ecs {
                e.options_mut()
                    .insert(hickory_proto::rr::rdata::opt::EdnsOption::Subnet(
                        hickory_proto::rr::rdata::opt::ClientSubnet::new(addr, prefix, 0),
                    ));
            }
            if self.nsid {
                use hickory_proto::rr::rdata::opt::{EdnsOption, NSIDPayload};
                let empty = NSIDPayload::new(Vec::new()).expect("empty NSID");
                e.options_mut().insert(EdnsOption::NSID(empty));
            }
            m.set_edns(e);
        }
        m.to_vec().expect("encode")
    }
}

/// The Debian python3 with dnspython (python3-dnspython, python3-cryptography), if present.
pub fn dnspython() -> Option<&'static str> {
    let ok = |p: &str| {
        Command::new(p)
            .args(["-c", "import dns.dnssec, cryptography"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let found = ["/usr/bin/python3", "python3"].into_iter().find(|p| ok(p));
    if found.is_none() {
        assert!(
            std::env::var_os("GSLBD_LAB_REQUIRED").is_none(),
            "dnspython is missing (apt-get install python3-dnspython python3-cryptography)"
        );
        eprintln!("SKIPPED: dnspython is missing (python3-dnspython)");
    }
    found
}

/// The NSID a response carries (RFC 5001), as text.
pub fn nsid_of(m: &Message) -> Option<String> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    match m.edns.as_ref()?.option(EdnsCode::NSID)? {
        EdnsOption::NSID(id) => Some(String::from_utf8_lossy(id.as_ref()).into_owned()),
        other => Some(format!("{other:?}")),
    }
}

/// A response as lines, for comparison with case files: first the RCODE and header flags,
/// then `an`, `ns` and `ar` records in presentation format (the OPT record is left out).
pub fn render(m: &Message) -> Vec<String> {
    let md = &m.metadata;
    let mut head = vec![format!("{:?}", md.response_code).to_uppercase()];
    for (on, flag) in [
        (md.message_type == MessageType::Response, "qr"),
        (md.authoritative, "aa"),
        (md.truncation, "tc"),
        (md.recursion_desired, "rd"),
        (md.recursion_available, "ra"),
    ] {
        if on {
            head.push(flag.to_string());
        }
    }
    let mut out = vec![head.join(" ")];
    for (tag, records) in [
        ("an", &m.answers),
        ("ns", &m.authorities),
        ("ar", &m.additionals),
    ] {
        for r in records {
            out.push(format!("{tag} {r}").trim_end().to_string());
        }
    }
    out
}

/// The A and AAAA addresses in the answer section, sorted.
pub fn addresses(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            RData::AAAA(a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// The Client Subnet option of a response: (address, source prefix, scope prefix).
pub fn ecs_of(m: &Message) -> Option<(std::net::IpAddr, u8, u8)> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some((s.addr(), s.source_prefix(), s.scope_prefix())),
        _ => None,
    }
}
