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
/// The version written. Version 1 keyed a check by its Rust `Debug` text, which a renamed field
/// changes; version 2 by [`CheckSpec::canonical`]. Both are read.
const HEALTH_VERSION: u32 = 2;
const OVERRIDES_VERSION: u32 = 1;

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

/// The key of a check spec in a version 1 file: its `Debug` text as it was then, written out
/// here field by field (fields added since, like `fast_interval`, were not in it).
fn legacy_key(spec: &CheckSpec) -> String {
    format!(
        "CheckSpec {{ kind: {:?}, interval: {:?}, timeout: {:?}, thresholds: Thresholds {{ rise: {}, fall: {} }} }}",
        spec.kind, spec.interval, spec.timeout, spec.thresholds.rise, spec.thresholds.fall
    )
}

pub fn health_path(dir: &Path) -> PathBuf {
    dir.join(HEALTH_FILE)
}

/// Why a state file was not read (the server then starts without what it held).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: version {found} is not 1..={HEALTH_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

/// A state file's text; `None` when there is none yet.
fn read_state(path: &Path) -> Result<Option<String>, StateError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse_state<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, StateError> {
    serde_json::from_str(text).map_err(|source| StateError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Last-known states read from `state_dir`.
#[derive(Debug, Default)]
pub struct Restored {
    version: u32,
    states: HashMap<(IpAddr, String), Status>,
}

impl Restored {
    /// The saved state of a probe, if its spec is unchanged since it was saved.
    pub fn get(&self, key: &ProbeKey) -> Option<Status> {
        let spec = if self.version == 1 {
            legacy_key(&key.spec)
        } else {
            key.spec.canonical()
        };
        self.states.get(&(key.address, spec)).copied()
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

/// Last-known states. A missing file is nothing restored; an unreadable one is reported and
/// ignored (the probes will find the truth within one round).
pub fn load_health(dir: &Path) -> Result<Restored, StateError> {
    let path = health_path(dir);
    let Some(text) = read_state(&path)? else {
        return Ok(Restored::default());
    };
    let file: HealthFile = parse_state(&path, &text)?;
    if !(1..=HEALTH_VERSION).contains(&file.version) {
        return Err(StateError::Version {
            path,
            found: file.version,
        });
    }
    Ok(Restored {
        version: file.version,
        states: file
            .probes
            .into_iter()
            .filter_map(|e| Some(((e.address, e.check), e.status.parse().ok()?)))
            .collect(),
    })
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
            check: k.spec.canonical(),
            status: s.to_string(),
        })
        .collect();
    entries.sort_by(|a, b| (a.address, &a.check).cmp(&(b.address, &b.check)));
    let file = HealthFile {
        version: HEALTH_VERSION,
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
        version: OVERRIDES_VERSION,
        overrides: overrides.members.clone(),
        sites: overrides.sites.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
    write_atomic(&overrides_path(dir), &bytes)
}

/// Overrides saved by an earlier run (none if there is no file).
pub fn load_overrides(dir: &Path) -> Result<Overrides, StateError> {
    let path = overrides_path(dir);
    let Some(text) = read_state(&path)? else {
        return Ok(Overrides::default());
    };
    let file: OverridesFile = parse_state(&path, &text)?;
    Ok(Overrides {
        members: file.overrides,
        sites: file.sites,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CheckKind, Pattern, Thresholds};
    use std::time::Duration;

    fn smtp() -> ProbeKey {
        ProbeKey {
            address: "192.0.2.10".parse().unwrap(),
            spec: CheckSpec {
                kind: CheckKind::Tcp {
                    port: 25,
                    expect_banner: Pattern::new("^220 ").ok(),
                },
                interval: Duration::from_secs(5),
                fast_interval: crate::model::default_fast_interval(Duration::from_secs(5)),
                down_interval: Duration::from_secs(5),
                timeout: Duration::from_secs(2),
                thresholds: Thresholds {
                    rise: 2,
                    fall: 3,
                    fall_on_refused: None,
                },
            },
        }
    }

    /// The key is ours, field by field: a renamed Rust field cannot change it (this golden
    /// line would have to change by hand, with a new file version).
    #[test]
    fn the_key_of_a_check_is_a_line_of_our_own() {
        assert_eq!(
            smtp().spec.canonical(),
            r#"tcp port=25 banner="^220 " interval=5000ms timeout=2000ms rise=2 fall=3"#
        );
    }

    #[test]
    fn health_is_saved_and_restored_by_that_key() {
        let dir = tempfile::tempdir().unwrap();
        let k = smtp();
        save_health(dir.path(), [(&k, Status::Down)].into_iter()).unwrap();
        let text = std::fs::read_to_string(health_path(dir.path())).unwrap();
        assert!(text.contains(r#""version": 2"#), "{text}");
        let r = load_health(dir.path()).unwrap();
        assert_eq!(r.get(&k), Some(Status::Down));
        let mut changed = k.clone();
        changed.spec.timeout = Duration::from_secs(3);
        assert_eq!(r.get(&changed), None, "a changed spec starts afresh");
    }

    /// A file written by gslbd before version 2 (keys were the specs' Debug text) still loads.
    #[test]
    fn a_version_1_file_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = r#"{
  "version": 1,
  "probes": [
    {
      "address": "192.0.2.10",
      "check": "CheckSpec { kind: Tcp { port: 25, expect_banner: Some(\"^220 \") }, interval: 5s, timeout: 2s, thresholds: Thresholds { rise: 2, fall: 3 } }",
      "status": "down"
    }
  ]
}"#;
        std::fs::write(health_path(dir.path()), v1).unwrap();
        let r = load_health(dir.path()).unwrap();
        assert_eq!(r.get(&smtp()), Some(Status::Down));
        std::fs::write(
            health_path(dir.path()),
            v1.replace("\"version\": 1", "\"version\": 3"),
        )
        .unwrap();
        let e = load_health(dir.path()).unwrap_err().to_string();
        assert!(e.contains("version 3 is not 1..=2"), "{e}");
    }
}
