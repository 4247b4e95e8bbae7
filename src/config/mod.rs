//! Loading: files → file format (serde) → validation → [`model::Config`].
//!
//! ```text
//!   gslbd.yaml ──from_yaml──▶ ServerFile ──server()──▶ model::Server
//!   zones/*.yaml ──from_yaml──▶ ZoneFile ──zone::validate()──▶ model::Zone
//!                                        (+ records_file via hickory's RFC 1035 parser)
//! ```
//!
//! [`load`] is the one function behind `gslbd check`, start-up and reload, so what `check`
//! accepts is exactly what `serve` runs. It collects every problem it can find instead of
//! stopping at the first.

mod checks;
pub mod diag;
pub mod format;
mod names;
mod pools;
mod sites;
mod values;
pub(crate) mod zone;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::model;
use diag::{Diagnostics, Loc, Reporter};
use format::{ServerFile, Spanned, from_yaml};
use values::Zero;

/// Config files larger than this are refused before parsing (a zone of 100,000 names is ~5 MB).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The default server settings file, read from the working directory if present.
pub const DEFAULT_CONFIG: &str = "gslbd.yaml";

/// Where to load from, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config`: must exist when given. Without it, `gslbd.yaml` is read if present.
    pub config: Option<PathBuf>,
    /// `--zones`: overrides `zones_dir` from the config.
    pub zones_dir: Option<PathBuf>,
}

/// A loaded config and its warnings.
#[derive(Debug)]
pub struct Loaded {
    pub config: model::Config,
    pub warnings: Diagnostics,
}

/// Load and validate everything `serve` needs. On any error, every diagnostic found is returned.
pub fn load(sources: &Sources) -> Result<Loaded, Diagnostics> {
    let mut diags = Diagnostics::default();
    let config_path = match &sources.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    };
    let settings = config_path.as_ref().map(|p| server_file(p, &mut diags));
    // Without readable settings, the defaults are not what the user meant: nothing to check.
    let settings_read = !matches!(settings, Some(None));
    let (mut server, state_dir_loc) = settings.flatten().unwrap_or_default();
    if let Some(dir) = &sources.zones_dir {
        server.zones_dir = dir.clone();
    }
    // Overrides and last-known health are saved there: find out now, not when a drain fails.
    let unusable = settings_read
        .then(|| state_dir_problem(&server.state_dir, server.user.as_deref()))
        .flatten();
    if let Some(problem) = unusable {
        match (&config_path, state_dir_loc) {
            (Some(path), Some(loc)) => {
                Reporter::new(path, &mut diags).error(loc, "state_dir", problem)
            }
            _ => Reporter::new(&server.state_dir, &mut diags).error(
                Loc::FILE,
                "",
                format!("{problem} (the default state_dir; set `state_dir:` in gslbd.yaml)"),
            ),
        }
    }

    let mut zones: Vec<model::Zone> = Vec::new();
    let mut origins: HashMap<String, PathBuf> = HashMap::new();
    for path in zone_files(&server.zones_dir, &mut diags) {
        let Some(text) = read(&path, &mut diags) else {
            continue;
        };
        let mut r = Reporter::new(&path, &mut diags);
        let Some(loaded) = zone::load(&text, &mut r) else {
            continue;
        };
        let key = loaded.origin.to_lowercase().to_ascii();
        if let Some(first) = origins.get(&key) {
            r.error(
                loaded.origin_loc,
                "zone",
                format!(
                    "zone {} is already defined in {}; each zone must be in one file",
                    loaded.origin,
                    first.display()
                ),
            );
            continue;
        }
        origins.insert(key, path.clone());
        zones.extend(loaded.zone);
    }

    // Report in file order, then by position, as a compiler would.
    diags.items.sort_by(|a, b| {
        (&a.file, a.loc.line, a.loc.column).cmp(&(&b.file, b.loc.line, b.loc.column))
    });
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Loaded {
        config: model::Config { server, zones },
        warnings: diags,
    })
}

/// Read a config file as UTF-8 text, refusing huge files.
fn read(path: &Path, diags: &mut Diagnostics) -> Option<String> {
    let mut r = Reporter::new(path, diags);
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            r.error(Loc::FILE, "", format!("cannot read: {e}"));
            return None;
        }
    };
    if meta.len() > MAX_FILE_BYTES {
        r.error(
            Loc::FILE,
            "",
            format!(
                "file is {} bytes; the limit is {MAX_FILE_BYTES}",
                meta.len()
            ),
        );
        return None;
    }
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(e) => {
                r.error(
                    Loc::FILE,
                    "",
                    format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
                );
                None
            }
        },
        Err(e) => {
            r.error(Loc::FILE, "", format!("cannot read: {e}"));
            None
        }
    }
}

/// The zone files of a directory: `*.yaml` and `*.yml`, sorted by name.
fn zone_files(dir: &Path, diags: &mut Diagnostics) -> Vec<PathBuf> {
    let mut r = Reporter::new(dir, diags);
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            r.error(
                Loc::FILE,
                "",
                format!("cannot read the zones directory: {e}"),
            );
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        r.error(
            Loc::FILE,
            "",
            "no zone files (*.yaml) in the zones directory",
        );
    }
    files
}

/// `gslbd.yaml` → server settings. Relative paths in it are relative to the file's directory.
/// The settings, and where `state_dir` is given (if it is).
fn server_file(path: &Path, diags: &mut Diagnostics) -> Option<(model::Server, Option<Loc>)> {
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
fn state_dir_problem(dir: &Path, user: Option<&str>) -> Option<String> {
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

    #[test]
    fn yaml_errors_carry_plain_messages_and_locations() {
        let e = from_yaml::<ServerFile>("listen: [\"a\"]\nbogus: 1\n").unwrap_err();
        assert_eq!(e.loc.line, 2, "{e:?}");
        assert!(e.message.contains("bogus"), "{e:?}");
        assert!(!e.message.contains(" at line "), "{e:?}");
    }

    /// `version: 1` is accepted in both kinds of file, anything else refused at its place.
    #[test]
    fn files_may_say_their_format_version() {
        let d = tempfile::tempdir().unwrap();
        let zones = d.path().join("zones");
        std::fs::create_dir(&zones).unwrap();
        let zone = |v: i64| {
            format!(
                "version: {v}\nzone: v.test.\nsoa: {{ mname: ns1.v.test., rname: h.v.test. }}\nns: [ns1.v.test.]\nrecords:\n  ns1: {{ A: [192.0.2.1] }}\n"
            )
        };
        std::fs::write(zones.join("v.yaml"), zone(1)).unwrap();
        let config = d.path().join("gslbd.yaml");
        std::fs::write(&config, "version: 1\nstate_dir: state\n").unwrap();
        let sources = Sources {
            config: Some(config.clone()),
            zones_dir: Some(zones.clone()),
        };
        assert!(load(&sources).is_ok());
        std::fs::write(zones.join("v.yaml"), zone(2)).unwrap();
        std::fs::write(&config, "version: 7\n").unwrap();
        let text = load(&sources).unwrap_err().to_string();
        assert!(
            text.contains("gslbd.yaml:1:10: version: 7 is not a version this gslbd reads"),
            "{text}"
        );
        assert!(
            text.contains("v.yaml:1:10: version: 2 is not a version"),
            "{text}"
        );
    }
}
