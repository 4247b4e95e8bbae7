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

    fn member(name: &str, ip: &str, dir: &std::path::Path, cluster: &str) -> Etcd {
        Etcd {
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
