//! A real listener on a loopback address for health checks to probe: HTTP with a switchable
//! answer, or a TCP greeting. It can be stopped (connections refused) and started again on the
//! same address and port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// `HTTP/1.1 200 OK` with body `200 OK` (an Exchange health page).
    Ok = 0,
    /// `HTTP/1.1 503 Service Unavailable`.
    Unavailable = 1,
    /// Fails every third request with 503, answers 200 otherwise.
    FailOneInThree = 2,
    /// Accepts and never says anything.
    Silent = 3,
    /// Sends the status line and headers, then trickles the body one byte a second.
    SlowBody = 4,
    /// Greets like an SMTP server: `220 mail.test ESMTP ready`.
    Smtp = 5,
    /// Greets with a refusal: `554 no service`.
    SmtpRefuse = 6,
    /// An HAProxy agent: says the current text (`set_text`) as one line and closes.
    Agent = 7,
    /// HTTP `200 OK` with the current text as the body (a load endpoint).
    Text = 8,
    /// A plain HTTP server's answer to anything it cannot read, a TLS ClientHello too:
    /// `400 Bad Request` after the first read.
    BadRequest = 9,
    /// Fails every other request with 503 (never two successes in a row).
    FailOneInTwo = 10,
}

pub struct Backend {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    text: Arc<std::sync::Mutex<String>>,
    pub requests: Arc<AtomicUsize>,
    /// Clients (probe source addresses) answered `503` whatever the mode: a backend that one
    /// name server cannot reach, as a firewall would make it.
    refused: Arc<std::sync::Mutex<Vec<std::net::IpAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    /// Answer requests from these source addresses with `503` (empty: nobody).
    pub fn refuse_from(&self, sources: &[&str]) {
        *self.refused.lock().unwrap() = sources.iter().map(|s| s.parse().unwrap()).collect();
    }

    /// The text of `Agent` and `Text` modes.
    pub fn set_text(&self, text: &str) {
        *self.text.lock().unwrap() = text.to_string();
    }

    /// Listen on `ip:port` (port 0 picks one).
    pub fn start(ip: &str, port: u16, mode: Mode) -> Backend {
        let listener =
            TcpListener::bind((ip, port)).unwrap_or_else(|e| panic!("bind {ip}:{port}: {e}"));
        let addr = listener.local_addr().unwrap();
        let mut b = Backend {
            addr,
            mode: Arc::new(AtomicU8::new(mode as u8)),
            text: Arc::default(),
            requests: Arc::new(AtomicUsize::new(0)),
            refused: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        b.serve(listener);
        b
    }

    fn serve(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let (mode, requests, stop) = (self.mode.clone(), self.requests.clone(), self.stop.clone());
        let text = self.text.clone();
        let refused = self.refused.clone();
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, peer)) => {
                        let n = requests.fetch_add(1, Ordering::Relaxed);
                        let m = if refused.lock().unwrap().contains(&peer.ip()) {
                            Mode::Unavailable as u8
                        } else {
                            mode.load(Ordering::Relaxed)
                        };
                        let stop = stop.clone();
                        let t = text.lock().unwrap().clone();
                        std::thread::spawn(move || handle(s, m, n, &t, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }

    /// `count` backends on 127.0.`net`.1, .2, … all on one port (health checks use one port
    /// for every member).
    pub fn group(net: u8, count: u8, mode: Mode) -> Vec<Backend> {
        let first = Backend::start(&format!("127.0.{net}.1"), 0, mode);
        let port = first.addr.port();
        let mut v = vec![first];
        for i in 2..=count {
            v.push(Backend::start(&format!("127.0.{net}.{i}"), port, mode));
        }
        v
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Close the listener: connections are refused from now on.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Listen again on the same address and port.
    pub fn restart(&mut self) {
        self.stop();
        self.stop = Arc::new(AtomicBool::new(false));
        let listener = TcpListener::bind(self.addr).expect("rebind");
        self.serve(listener);
    }
}

/// What a TLS backend saw of each request: the TLS SNI and the HTTP Host header.
pub type Seen = Arc<std::sync::Mutex<Vec<(Option<String>, Option<String>)>>>;

/// An HTTPS backend with a self-signed certificate for `name`, answering `200 OK`.
pub struct TlsBackend {
    pub addr: SocketAddr,
    pub seen: Seen,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsBackend {
    /// With a fresh self-signed certificate for `name`.
    pub fn start(ip: &str, port: u16, name: &str) -> TlsBackend {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("certificate");
        let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
            .expect("key");
        TlsBackend::with_cert(ip, port, cert.cert.der().clone(), key)
    }

    /// HTTPS on `ip:port` presenting `cert`, answering every request `200 OK`.
    pub fn with_cert(
        ip: &str,
        port: u16,
        cert: rustls::pki_types::CertificateDer<'static>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> TlsBackend {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("tls config");
        let config = Arc::new(config);
        let listener = TcpListener::bind((ip, port)).expect("bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let (config, seen) = (config.clone(), seen2.clone());
                std::thread::spawn(move || {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(conn, s);
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).to_string();
                    let host = text
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("host: ")
                                .or_else(|| l.strip_prefix("Host: "))
                        })
                        .map(str::to_string);
                    let sni = tls.conn.server_name().map(str::to_string);
                    seen.lock().unwrap().push((sni, host));
                    let _ = tls.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n200 OK",
                    );
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        TlsBackend {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
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

fn handle(mut s: TcpStream, mode: u8, n: usize, text: &str, stop: &AtomicBool) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let greet = |s: &mut TcpStream, line: &str| {
        let _ = s.write_all(line.as_bytes());
        std::thread::sleep(Duration::from_millis(50));
    };
    if mode == Mode::Smtp as u8 {
        return greet(&mut s, "220 mail.test ESMTP ready\r\n");
    }
    if mode == Mode::SmtpRefuse as u8 {
        return greet(&mut s, "554 no service\r\n");
    }
    if mode == Mode::Agent as u8 {
        let _ = s.write_all(format!("{text}\n").as_bytes());
        return;
    }
    if mode == Mode::BadRequest as u8 {
        let _ = s.read(&mut [0u8; 4096]);
        let _ = s.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    // read the request head
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65536 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
    }
    let reply = |s: &mut TcpStream, status: &str, body: &str| {
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    match mode {
        m if m == Mode::Ok as u8 => reply(&mut s, "200 OK", "200 OK"),
        m if m == Mode::Unavailable as u8 => reply(&mut s, "503 Service Unavailable", "down"),
        m if m == Mode::Text as u8 => reply(&mut s, "200 OK", text),
        m if m == Mode::FailOneInThree as u8 => {
            if n % 3 == 2 {
                reply(&mut s, "503 Service Unavailable", "down")
            } else {
                reply(&mut s, "200 OK", "200 OK")
            }
        }
        m if m == Mode::FailOneInTwo as u8 => {
            if n.is_multiple_of(2) {
                reply(&mut s, "503 Service Unavailable", "down")
            } else {
                reply(&mut s, "200 OK", "200 OK")
            }
        }
        m if m == Mode::Silent as u8 => {
            for _ in 0..300 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        _ => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
            for _ in 0..30 {
                if stop.load(Ordering::Relaxed) || s.write_all(b"2").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}
