//! A real etcd (Debian `etcd-server`) on loopback with a temporary data directory, for the
//! cluster tests: one member, or three that form a cluster. Stopped by PID when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Whether etcd is installed; without it the cluster tests skip, unless
/// `GSLBD_ETCD_REQUIRED=1` (CI installs it and sets that).
pub fn available() -> bool {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("GSLBD_ETCD_REQUIRED").is_none(),
            "GSLBD_ETCD_REQUIRED is set but etcd is not installed (Debian: etcd-server)"
        );
        eprintln!("SKIPPED: etcd is not installed (Debian: apt-get install etcd-server)");
    }
    found
}

/// TLS files of a secured etcd: the CA, and a client certificate (CN gslbd) and key.
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One etcd member.
pub struct Etcd {
    pub name: String,
    /// `http://IP:2379`.
    pub client_url: String,
    peer_url: String,
    cluster: String,
    dir: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    /// Server certificate and key, and the CA that client certificates must be signed by.
    secure: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl Etcd {
    /// A single-member etcd on `ip` (a loopback address of its own, ports 2379 and 2380).
    pub fn start(ip: &str, dir: &std::path::Path) -> Etcd {
        let mut e = Etcd::member("e1", ip, dir, &format!("e1=http://{ip}:2380"));
        e.run();
        e.wait_healthy();
        e
    }

    /// A cluster of three members on `ips`.
    pub fn cluster(ips: [&str; 3], dir: &std::path::Path) -> Vec<Etcd> {
        let initial: Vec<String> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| format!("e{}=http://{ip}:2380", i + 1))
            .collect();
        let initial = initial.join(",");
        let mut members: Vec<Etcd> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| Etcd::member(&format!("e{}", i + 1), ip, dir, &initial))
            .collect();
        for m in &mut members {
            m.run();
        }
        for m in &members {
            m.wait_healthy();
        }
        members
    }

    /// A single-member etcd on `ip` that speaks TLS only (client certificates required) and
    /// has authentication on: user `gslbd`, password `secret`, allowed to read and write under
    /// `/test/`.
    pub fn start_secure(ip: &str, dir: &std::path::Path) -> (Etcd, Tls) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "gslbd test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let issue = |san: Vec<String>, cn: &str, base: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(san).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            let cert = params.signed_by(&key, &ca).unwrap();
            (
                write(&format!("{base}.pem"), cert.pem()),
                write(&format!("{base}.key"), key.serialize_pem()),
            )
        };
        let ca_file = write("ca.pem", ca.pem());
        let (server_cert, server_key) = issue(vec![ip.to_string()], "etcd", "etcd-server");
        let (cert, key) = issue(Vec::new(), "gslbd", "client");
        let mut e = Etcd::member("e1", ip, dir, &format!("e1=http://{ip}:2380"));
        e.client_url = format!("https://{ip}:2379");
        e.secure = Some((server_cert, server_key, ca_file.clone()));
        e.run();
        let tls = Tls {
            ca: ca_file,
            cert,
            key,
        };
        let ok = super::poll(Duration::from_secs(20), Duration::from_millis(200), || {
            e.ctl(&tls, &["endpoint", "health"]).then_some(())
        });
        assert!(ok.is_some(), "etcd (TLS) is not healthy:\n{}", e.log_text());
        for args in [
            &["user", "add", "root:rootpw"][..],
            &["role", "add", "gslbd"],
            &[
                "role",
                "grant-permission",
                "--prefix=true",
                "gslbd",
                "readwrite",
                "/test/",
            ],
            &["user", "add", "gslbd:secret"],
            &["user", "grant-role", "gslbd", "gslbd"],
            &["auth", "enable"],
        ] {
            assert!(
                e.ctl(&tls, args),
                "etcdctl {args:?} failed:\n{}",
                e.log_text()
            );
        }
        (e, tls)
    }

    /// `etcdctl` against this member over TLS (as root once authentication is on).
    fn ctl(&self, tls: &Tls, args: &[&str]) -> bool {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.client_url))
            .arg(format!("--cacert={}", tls.ca.display()))
            .arg(format!("--cert={}", tls.cert.display()))
            .arg(format!("--key={}", tls.key.display()))
            .args(["--user", "root:rootpw", "--dial-timeout=2s"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn member(name: &str, ip: &str, dir: &std::path::Path, cluster: &str) -> Etcd {
        Etcd {
            secure: None,
            name: name.to_string(),
            client_url: format!("http://{ip}:2379"),
            peer_url: format!("http://{ip}:2380"),
            cluster: cluster.to_string(),
            dir: dir.join(format!("etcd-{name}")),
            child: None,
            log: dir.join(format!("etcd-{name}.log")),
        }
    }

    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("etcd")
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--listen-client-urls", &self.client_url])
            .args(["--advertise-client-urls", &self.client_url])
            .args(["--listen-peer-urls", &self.peer_url])
            .args(["--initial-advertise-peer-urls", &self.peer_url])
            .args(["--initial-cluster", &self.cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "gslbd-test"])
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .args(self.secure.iter().flat_map(|(cert, key, ca)| {
                [
                    "--cert-file".into(),
                    cert.as_os_str().to_owned(),
                    "--key-file".into(),
                    key.as_os_str().to_owned(),
                    "--trusted-ca-file".into(),
                    ca.as_os_str().to_owned(),
                    "--client-cert-auth".into(),
                ]
            }))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
    }

    /// Wait (20 s at most) until `/health` says true.
    pub fn wait_healthy(&self) {
        let addr = self.client_url.trim_start_matches("http://").to_string();
        let ok = super::poll(Duration::from_secs(20), Duration::from_millis(100), || {
            let s = std::net::TcpStream::connect_timeout(
                &addr.parse().unwrap(),
                Duration::from_millis(200),
            )
            .ok()?;
            drop(s);
            let (code, body) = super::http_request(&addr, "GET", "/health", "", None);
            (code == 200 && body.contains("true")).then_some(())
        });
        assert!(
            ok.is_some(),
            "etcd {} is not healthy; its log:\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Stop it (SIGKILL: as a crash or a partition would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on its data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
        self.wait_healthy();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
