//! `gslbd.yaml` → server settings: listen addresses, directories, the admin API, RRL and TCP
//! limits, the user to run as; and whether `state_dir` can be written.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::diag::{Diagnostics, Loc, Reporter};
use super::format::{ServerFile, Spanned, from_yaml};
use super::read;
use super::values::{self, Zero};
use crate::model;

/// What `gslbd.yaml` gives: the settings, where `state_dir` is given (if it is), and the GeoIP
/// databases of `geoip:`, read.
pub(super) struct Settings {
    pub server: model::Server,
    pub state_dir_loc: Option<Loc>,
    pub geo: Option<std::sync::Arc<crate::geo::GeoDb>>,
}

/// `gslbd.yaml` → server settings. Relative paths in it are relative to the file's directory.
pub(super) fn server_file(path: &Path, diags: &mut Diagnostics) -> Option<Settings> {
    let text = read(path, diags)?;
    let mut r = Reporter::new(path, diags);
    let file: ServerFile = if text.trim().is_empty() {
        ServerFile::default()
    } else {
        match from_yaml(&text) {
            Ok(f) => f,
            Err(e) => {
                r.error(e.loc, "", e.message);
                return None;
            }
        }
    };
    values::version(file.version.as_ref(), &mut r);
    let base = path.parent().unwrap_or(Path::new("."));
    let mut server = model::Server::default();
    if let Some(listen) = &file.listen {
        server.listen.clear();
        if listen.is_empty() {
            r.error(Loc::FILE, "listen", "needs at least one ADDRESS:PORT");
        }
        for (i, a) in listen.iter().enumerate() {
            if let Some(addr) = socket_addr(a, &format!("listen[{i}]"), &mut r) {
                server.listen.push(addr);
            }
        }
    }
    if let Some(d) = &file.zones_dir {
        server.zones_dir = base.join(&d.value);
    }
    let mut state_dir_loc = None;
    if let Some(d) = &file.state_dir {
        server.state_dir = base.join(&d.value);
        state_dir_loc = Some(Loc::from_saphyr(d.referenced));
    }
    if let Some(api) = &file.api {
        if let Some(a) = &api.listen
            && let Some(addr) = socket_addr(a, "api.listen", &mut r)
        {
            server.api_listen = addr;
        }
        if let Some(t) = &api.token_file {
            server.api_token_file = Some(base.join(&t.value));
        }
    }
    if let Some(rrl) = &file.rrl {
        let d = &mut server.rrl;
        let rate = &rrl.responses_per_second;
        if let Some(n) = rate
            .as_ref()
            .and_then(|v| values::int(v, 0..=1_000_000, "rrl.responses_per_second", &mut r))
        {
            d.responses_per_second = n as u32;
        }
        if let Some(n) = rrl
            .slip
            .as_ref()
            .and_then(|v| values::int(v, 0..=100, "rrl.slip", &mut r))
        {
            d.slip = n as u32;
        }
        if let Some(n) = rrl
            .ipv4_prefix
            .as_ref()
            .and_then(|v| values::int(v, 0..=32, "rrl.ipv4_prefix", &mut r))
        {
            d.ipv4_prefix = n as u8;
        }
        if let Some(n) = rrl
            .ipv6_prefix
            .as_ref()
            .and_then(|v| values::int(v, 0..=128, "rrl.ipv6_prefix", &mut r))
        {
            d.ipv6_prefix = n as u8;
        }
        if let Some(b) = rrl.on_loopback {
            d.on_loopback = b;
        }
    }
    if let Some(u) = &file.user {
        if crate::privileges::lookup(&u.value).is_some() {
            server.user = Some(u.value.clone());
        } else {
            r.error(
                Loc::from_saphyr(u.referenced),
                "user",
                format!("there is no user {:?} on this system", u.value),
            );
        }
    }
    if let Some(tcp) = &file.tcp {
        let t = &mut server.tcp;
        let most = 1_000_000;
        if let Some(n) = tcp
            .max_connections
            .as_ref()
            .and_then(|v| values::int(v, 1..=most, "tcp.max_connections", &mut r))
        {
            t.max_connections = n as usize;
        }
        if let Some(n) = tcp
            .max_per_client
            .as_ref()
            .and_then(|v| values::int(v, 1..=most, "tcp.max_per_client", &mut r))
        {
            t.max_per_client = n as usize;
        }
        let mut duration = |v: &Option<Spanned<String>>, path: &str| {
            values::duration(v.as_ref()?, Zero::Refused, path, &mut r)
        };
        if let Some(d) = duration(&tcp.idle_timeout, "tcp.idle_timeout") {
            t.idle_timeout = d;
        }
        if let Some(d) = duration(&tcp.lifetime, "tcp.lifetime") {
            t.lifetime = d;
        }
    }
    if let Some(c) = &file.cluster {
        server.cluster = cluster(c, base, &mut r);
    }
    let geo = file.geoip.as_ref().and_then(|g| {
        let (config, db) = geoip(g, base, &mut r)?;
        server.geoip = Some(config);
        db
    });
    if let Some(x) = &file.xdp {
        server.xdp = xdp(x, &mut r);
    }
    Some(Settings {
        server,
        state_dir_loc,
        geo,
    })
}

/// `geoip:` → the database paths, and the databases read (an error names the file and why:
/// missing, damaged, or not the kind of database the key wants).
fn geoip(
    g: &Spanned<super::format::GeoIpFile>,
    base: &Path,
    r: &mut Reporter,
) -> Option<(model::GeoIp, Option<std::sync::Arc<crate::geo::GeoDb>>)> {
    let path = |v: &Option<Spanned<String>>| v.as_ref().map(|s| base.join(s.value.trim()));
    let config = model::GeoIp {
        database: path(&g.value.database),
        asn_database: path(&g.value.asn_database),
    };
    if config.database.is_none() && config.asn_database.is_none() {
        r.error(
            values::loc(g),
            "geoip",
            "give `database` (a City or Country database), `asn_database`, or both",
        );
        return None;
    }
    match crate::geo::GeoDb::open(config.database.as_deref(), config.asn_database.as_deref()) {
        Ok(db) => Some((config, Some(db))),
        Err(e) => {
            let (field, at) = if Some(&e.path) == config.asn_database.as_ref() {
                ("geoip.asn_database", g.value.asn_database.as_ref())
            } else {
                ("geoip.database", g.value.database.as_ref())
            };
            r.error(at.map_or(values::loc(g), values::loc), field, e.to_string());
            None
        }
    }
}

/// At most this many addresses per family: the XDP program's maps hold no more.
const XDP_MAX_ADDRESSES: usize = 64;

/// `xdp:` → the interface, addresses, queues and mode, each checked.
fn xdp(x: &Spanned<super::format::XdpFile>, r: &mut Reporter) -> Option<model::Xdp> {
    let at = values::loc(x);
    let f = &x.value;
    let interface = match &f.interface {
        None => {
            r.error(
                at,
                "xdp.interface",
                "missing: the network interface, e.g. eth0",
            );
            None
        }
        // IFNAMSIZ is 16 with the terminating zero.
        Some(i)
            if i.value.is_empty() || i.value.len() > 15 || i.value.contains(['/', ' ', '\0']) =>
        {
            r.error(
                values::loc(i),
                "xdp.interface",
                format!("{:?} is not an interface name", i.value),
            );
            None
        }
        Some(i) => Some(i.value.clone()),
    };
    let mut addresses = Vec::new();
    match &f.addresses {
        None => r.error(
            at,
            "xdp.addresses",
            "missing: the addresses whose UDP port 53 XDP takes, e.g. [192.0.2.53]",
        ),
        Some(list) if list.value.is_empty() => r.error(
            values::loc(list),
            "xdp.addresses",
            "needs at least one address",
        ),
        Some(list) => {
            for (i, a) in list.value.iter().enumerate() {
                match a.value.trim().parse::<IpAddr>() {
                    Ok(ip) if ip.is_unspecified() || ip.is_multicast() => r.error(
                        values::loc(a),
                        format!("xdp.addresses[{i}]"),
                        format!("{ip}: give the unicast address queries are sent to"),
                    ),
                    Ok(ip) if addresses.contains(&ip) => r.error(
                        values::loc(a),
                        format!("xdp.addresses[{i}]"),
                        format!("{ip} is listed twice"),
                    ),
                    Ok(ip) => addresses.push(ip),
                    Err(_) => r.error(
                        values::loc(a),
                        format!("xdp.addresses[{i}]"),
                        format!("{:?} is not an IP address", a.value),
                    ),
                }
            }
            for (v6, family) in [(false, "IPv4"), (true, "IPv6")] {
                if addresses.iter().filter(|a| a.is_ipv6() == v6).count() > XDP_MAX_ADDRESSES {
                    r.error(
                        values::loc(list),
                        "xdp.addresses",
                        format!("at most {XDP_MAX_ADDRESSES} {family} addresses"),
                    );
                }
            }
        }
    }
    let queues = f
        .queues
        .as_ref()
        .and_then(|q| values::int(q, 1..=i64::from(model::XDP_MAX_QUEUES), "xdp.queues", r))
        .map(|n| n as u32);
    let mode = f.mode.as_ref().map_or(model::XdpMode::Auto, |m| {
        m.value.trim().parse().unwrap_or_else(|e| {
            r.error(values::loc(m), "xdp.mode", e);
            model::XdpMode::Auto
        })
    });
    Some(model::Xdp {
        interface: interface?,
        addresses,
        queues,
        mode,
    })
}

/// The key prefix when none is given.
pub const DEFAULT_CLUSTER_PREFIX: &str = "/gslbd/";

/// `cluster:` → this node's settings. Every field is checked: a node that joins a cluster
/// with a wrong name, endpoint or source address would skew everyone's answers.
fn cluster(
    c: &Spanned<super::format::ClusterFile>,
    base: &Path,
    r: &mut Reporter,
) -> Option<model::Cluster> {
    let at = Loc::from_saphyr(c.referenced);
    let c = &c.value;
    let node = match &c.node {
        None => {
            r.error(
                at,
                "cluster.node",
                "missing: this node's name, unique in the cluster",
            );
            None
        }
        Some(n) => {
            let ok = !n.value.is_empty()
                && n.value.len() <= 63
                && n.value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok {
                r.error(
                    values::loc(n),
                    "cluster.node",
                    format!(
                        "{:?} is not a node name: 1 to 63 letters, digits, `-`, `_` or `.`",
                        n.value
                    ),
                );
            }
            ok.then(|| n.value.clone())
        }
    };
    let mut etcd = Vec::new();
    match &c.etcd {
        None => r.error(
            at,
            "cluster.etcd",
            "missing: the etcd endpoints, e.g. [\"http://127.0.0.1:2379\"]",
        ),
        Some(list) if list.value.is_empty() => r.error(
            values::loc(list),
            "cluster.etcd",
            "needs at least one endpoint",
        ),
        Some(list) => {
            for (i, e) in list.value.iter().enumerate() {
                match endpoint(&e.value) {
                    Ok(url) => etcd.push(url),
                    Err(m) => r.error(values::loc(e), format!("cluster.etcd[{i}]"), m),
                }
            }
        }
    }
    let prefix = match &c.prefix {
        None => DEFAULT_CLUSTER_PREFIX.to_string(),
        Some(p) if p.value.trim().is_empty() || p.value.contains(char::is_whitespace) => {
            r.error(
                values::loc(p),
                "cluster.prefix",
                format!("{:?} is not a key prefix (e.g. /gslbd/)", p.value),
            );
            String::new()
        }
        Some(p) if p.value.ends_with('/') => p.value.clone(),
        Some(p) => format!("{}/", p.value),
    };
    let probe_source = c.probe_source.as_ref().and_then(|s| {
        let Ok(ip) = s.value.trim().parse::<std::net::IpAddr>() else {
            r.error(
                values::loc(s),
                "cluster.probe_source",
                format!("{:?} is not an IP address", s.value),
            );
            return None;
        };
        // Probes from an address this host does not have would all fail.
        if let Err(e) = std::net::UdpSocket::bind((ip, 0)) {
            r.error(
                values::loc(s),
                "cluster.probe_source",
                format!("{ip} is not an address of this host ({e})"),
            );
            return None;
        }
        Some(ip)
    });
    let quorum = match &c.quorum {
        None => Some(model::Quorum::Majority),
        Some(q) => q
            .value
            .parse()
            .map_err(|m| r.error(values::loc(q), "cluster.quorum", m))
            .ok(),
    };
    let readable = |v: &Option<Spanned<String>>, field: &str, r: &mut Reporter| {
        let s = v.as_ref()?;
        let p = base.join(s.value.trim());
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => Some(p),
            Ok(_) => {
                r.error(
                    values::loc(s),
                    field,
                    format!("{} is not a file", p.display()),
                );
                None
            }
            Err(e) => {
                r.error(values::loc(s), field, format!("{}: {e}", p.display()));
                None
            }
        }
    };
    let password_file = readable(&c.password_file, "cluster.password_file", r);
    if c.username.is_some() != c.password_file.is_some() {
        r.error(
            at,
            "cluster.username",
            "username and password_file go together (etcd authentication)",
        );
    }
    let ca_file = readable(&c.ca_file, "cluster.ca_file", r);
    let cert_file = readable(&c.cert_file, "cluster.cert_file", r);
    let key_file = readable(&c.key_file, "cluster.key_file", r);
    if c.cert_file.is_some() != c.key_file.is_some() {
        r.error(
            at,
            "cluster.cert_file",
            "cert_file and key_file go together (a client certificate and its key)",
        );
    }
    let tls_files = c.ca_file.is_some() || c.cert_file.is_some();
    if tls_files && etcd.iter().any(|e| e.starts_with("http://")) {
        r.error(
            at,
            "cluster.etcd",
            "ca_file/cert_file are for TLS: write the endpoints as https://",
        );
    }
    Some(model::Cluster {
        node: node?,
        etcd,
        prefix,
        probe_source,
        quorum: quorum?,
        username: c.username.as_ref().map(|u| u.value.clone()),
        password_file,
        ca_file,
        cert_file,
        key_file,
    })
}

/// An etcd endpoint: `http://HOST:PORT` or `https://HOST:PORT` (a bare `HOST:PORT` is http).
fn endpoint(s: &str) -> Result<String, String> {
    let s = s.trim();
    let url = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            format!("{s:?}: an etcd endpoint is http://HOST:PORT or https://HOST:PORT")
        })?;
    let hostport = rest.trim_end_matches('/');
    let ok = hostport
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !ok || hostport.contains('/') {
        return Err(format!(
            "{s:?}: an etcd endpoint is http://HOST:PORT (e.g. http://127.0.0.1:2379)"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Why gslbd could not save its state in `dir`, if it could not: it must be a directory the
/// server can write, or be creatable (it is created on the first save). With `user:`, that is
/// the user the server runs as once it has bound its sockets; without, the one running this.
pub(super) fn state_dir_problem(dir: &Path, user: Option<&str>) -> Option<String> {
    use std::io::ErrorKind;
    // The nearest part of the path that exists; it must be a directory.
    let mut existing = dir;
    loop {
        match std::fs::metadata(existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) if existing == dir => {
                return Some(format!("{} is not a directory", dir.display()));
            }
            Ok(_) => {
                return Some(format!(
                    "{} cannot be created: {} is not a directory",
                    dir.display(),
                    existing.display()
                ));
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                existing = match existing.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
            }
            Err(e) => return Some(format!("{}: {e}", existing.display())),
        }
    }
    let who = match user.and_then(|u| crate::privileges::lookup(u).map(|ids| (u, ids))) {
        Some((name, ids)) => Identity::User(name, ids),
        None => Identity::Effective,
    };
    let problem = who.cannot_write(existing)?;
    let what = if existing == dir {
        format!("{} is not writable", dir.display())
    } else {
        format!(
            "{} cannot be created: {} is not writable",
            dir.display(),
            existing.display()
        )
    };
    Some(format!("{what} {problem}"))
}

/// Whose permissions count for `state_dir`.
enum Identity<'a> {
    /// The user this process runs as.
    Effective,
    /// `user:` from gslbd.yaml, which the server becomes after binding (no supplementary groups).
    User(&'a str, crate::privileges::Ids),
}

impl Identity<'_> {
    /// Why this identity cannot create files in the directory `dir`, or `None` if it can.
    fn cannot_write(&self, dir: &Path) -> Option<String> {
        let err = crate::sys::can_create_in(dir).err();
        let euid = crate::sys::euid();
        match self {
            Identity::User(name, ids) if ids.uid != euid => {
                // A read-only file system stops everyone.
                if let Some(e) = err.filter(|e| e.raw_os_error() == Some(libc::EROFS)) {
                    return Some(format!("({e})"));
                }
                use std::os::unix::fs::MetadataExt;
                let m = std::fs::metadata(dir).ok()?;
                let bits = if ids.uid == 0 {
                    0o3
                } else if m.uid() == ids.uid {
                    (m.mode() >> 6) & 0o3
                } else if m.gid() == ids.gid {
                    (m.mode() >> 3) & 0o3
                } else {
                    m.mode() & 0o3
                };
                (bits != 0o3).then(|| {
                    format!(
                        "by user {name} (uid {}), which gslbd runs as (`user:`); the directory is owned by uid {} with mode {:o}",
                        ids.uid,
                        m.uid(),
                        m.mode() & 0o7777
                    )
                })
            }
            _ => err.map(|e| format!("by uid {euid}: {e}")),
        }
    }
}

fn socket_addr(s: &Spanned<String>, path: &str, r: &mut Reporter) -> Option<SocketAddr> {
    match s.value.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            r.error(
                Loc::from_saphyr(s.referenced),
                path,
                format!(
                    "{:?} is not ADDRESS:PORT (e.g. 127.0.0.1:5353 or [::1]:5353)",
                    s.value
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<model::Cluster>, String) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("etcd.pass"), "secret\n").unwrap();
        let path = d.path().join("gslbd.yaml");
        std::fs::write(&path, text).unwrap();
        let mut diags = Diagnostics::default();
        let server = server_file(&path, &mut diags).map(|s| s.server);
        let text = diags.to_string();
        (server.and_then(|s| s.cluster), text)
    }

    #[test]
    fn a_cluster_is_described_in_full_or_refused_where_it_is_wrong() {
        let (c, diags) = parse(
            "cluster:\n  node: ns1\n  etcd: [\"127.0.0.1:2379\", \"http://[::1]:2379/\"]\n  probe_source: 127.0.0.1\n  quorum: 2\n  username: gslbd\n  password_file: etcd.pass\n",
        );
        let c = c.unwrap_or_else(|| panic!("{diags}"));
        assert_eq!(c.node, "ns1");
        assert_eq!(c.etcd, ["http://127.0.0.1:2379", "http://[::1]:2379"]);
        assert_eq!(c.prefix, DEFAULT_CLUSTER_PREFIX);
        assert_eq!(c.quorum, model::Quorum::AtLeast(2));
        assert!(c.password_file.unwrap().ends_with("etcd.pass"));

        let (c, diags) =
            parse("cluster: { node: ns1, etcd: [\"http://127.0.0.1:2379\"], prefix: /dc1 }\n");
        let c = c.unwrap_or_else(|| panic!("{diags}"));
        assert_eq!(
            (c.prefix.as_str(), c.quorum),
            ("/dc1/", model::Quorum::Majority)
        );

        for (text, want) in [
            (
                "cluster: { etcd: [\"http://127.0.0.1:2379\"] }\n",
                "gslbd.yaml:1:10: cluster.node: missing",
            ),
            (
                "cluster: { node: \"ns 1\", etcd: [\"http://127.0.0.1:2379\"] }\n",
                "1:18: cluster.node: \"ns 1\" is not a node name",
            ),
            (
                "cluster: { node: ns1, etcd: [] }\n",
                "cluster.etcd: needs at least one endpoint",
            ),
            (
                "cluster: { node: ns1, etcd: [\"ftp://x:1\"] }\n",
                "cluster.etcd[0]: \"ftp://x:1\": an etcd endpoint",
            ),
            (
                "cluster: { node: ns1, etcd: [\"h:1\"], quorum: most }\n",
                "cluster.quorum: \"most\" is not a quorum",
            ),
            (
                "cluster: { node: ns1, etcd: [\"h:1\"], probe_source: 192.0.2.77 }\n",
                "cluster.probe_source: 192.0.2.77 is not an address of this host",
            ),
            (
                "cluster: { node: ns1, etcd: [\"h:1\"], username: u }\n",
                "username and password_file go together",
            ),
            (
                "cluster: { node: ns1, etcd: [\"h:1\"], ca_file: etcd.pass }\n",
                "write the endpoints as https://",
            ),
            (
                "cluster: { node: ns1, etcd: [\"h:1\"], password_file: nope }\n",
                "cluster.password_file:",
            ),
        ] {
            let (c, diags) = parse(text);
            assert!(c.is_none() || !diags.is_empty(), "{text}");
            assert!(diags.contains(want), "{text}: want {want:?} in\n{diags}");
        }
    }
}
