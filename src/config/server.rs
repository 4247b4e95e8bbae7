//! `gslbd.yaml` → server settings: listen addresses, directories, the admin API, RRL and TCP
//! limits, the user to run as; and whether `state_dir` can be written.

use std::net::SocketAddr;
use std::path::Path;

use super::diag::{Diagnostics, Loc, Reporter};
use super::format::{ServerFile, Spanned, from_yaml};
use super::read;
use super::values::{self, Zero};
use crate::model;

/// `gslbd.yaml` → server settings. Relative paths in it are relative to the file's directory.
/// The settings, and where `state_dir` is given (if it is).
pub(super) fn server_file(
    path: &Path,
    diags: &mut Diagnostics,
) -> Option<(model::Server, Option<Loc>)> {
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
    Some((server, state_dir_loc))
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
