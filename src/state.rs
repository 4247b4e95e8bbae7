//! What survives a restart, in `state_dir`: the last-known health of every probe
//! (`health.json`). Written atomically — temp file, fsync, rename, fsync of the directory — so
//! a crash at any moment leaves either the old file or the new one, never a torn one.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::health::Status;
use crate::health::overrides::Overrides;
use crate::model::CheckSpec;
use crate::probe::ProbeKey;

const HEALTH_FILE: &str = "health.json";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct HealthFile {
    version: u32,
    probes: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    address: IpAddr,
    /// The check's spec as text: a probe restores its state only if its spec is unchanged.
    check: String,
    status: String,
}

/// Identifies a check spec across restarts of the same version of gslbd.
pub fn fingerprint(spec: &CheckSpec) -> String {
    format!("{spec:?}")
}

pub fn health_path(dir: &Path) -> PathBuf {
    dir.join(HEALTH_FILE)
}

/// Last-known states by (address, fingerprint). A missing file is an empty map; an unreadable
/// one is reported and ignored (the probes will find the truth within one round).
pub fn load_health(dir: &Path) -> Result<HashMap<(IpAddr, String), Status>, String> {
    let path = health_path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let file: HealthFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if file.version != VERSION {
        return Err(format!(
            "{}: version {} is not {VERSION}",
            path.display(),
            file.version
        ));
    }
    Ok(file
        .probes
        .into_iter()
        .filter_map(|e| Some(((e.address, e.check), e.status.parse().ok()?)))
        .collect())
}

/// Save the known states (unknown ones are left out).
pub fn save_health<'a>(
    dir: &Path,
    probes: impl Iterator<Item = (&'a ProbeKey, Status)>,
) -> std::io::Result<()> {
    let mut entries: Vec<Entry> = probes
        .filter(|(_, s)| *s != Status::Unknown)
        .map(|(k, s)| Entry {
            address: k.address,
            check: fingerprint(&k.spec),
            status: s.to_string(),
        })
        .collect();
    entries.sort_by(|a, b| (a.address, &a.check).cmp(&(b.address, &b.check)));
    let file = HealthFile {
        version: VERSION,
        probes: entries,
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    write_atomic(&health_path(dir), &bytes)
}

/// Replace `path` with `bytes` so that readers and crashes see the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // create_dir_all would say "File exists", which sends an operator looking in the wrong place.
    if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("{} is not a directory", dir.display()),
        ));
    }
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

const OVERRIDES_FILE: &str = "overrides.json";

pub fn overrides_path(dir: &Path) -> PathBuf {
    dir.join(OVERRIDES_FILE)
}

#[derive(Serialize, Deserialize)]
struct OverridesFile {
    version: u32,
    /// Member overrides by address.
    overrides: std::collections::BTreeMap<IpAddr, crate::health::overrides::Override>,
    /// Site overrides by site name.
    #[serde(default)]
    sites: std::collections::BTreeMap<String, crate::health::overrides::Override>,
}

/// The overrides in force, written atomically before the API confirms a change.
pub fn save_overrides(dir: &Path, overrides: &Overrides) -> std::io::Result<()> {
    let file = OverridesFile {
        version: VERSION,
        overrides: overrides.members.clone(),
        sites: overrides.sites.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    write_atomic(&overrides_path(dir), &bytes)
}

/// Overrides saved by an earlier run (none if there is no file).
pub fn load_overrides(dir: &Path) -> Result<Overrides, String> {
    let path = overrides_path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let file: OverridesFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Overrides {
        members: file.overrides,
        sites: file.sites,
    })
}
