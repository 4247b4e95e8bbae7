//! Several gslbd name servers that agree, through etcd: overrides taken on any node apply on
//! every node, and each node's observations are a vantage of a quorum (`cluster:` in
//! gslbd.yaml).
//!
//! ```text
//!  writer ──Publish (own observations, overrides)──▶ etcd task ──▶ etcd
//!  writer ◀──View (after connecting), Changes (watch), Lost──── etcd task ◀── watch
//! ```
//! The etcd task is the only part that talks to etcd; the writer never waits on it, and the
//! query path never hears of it. Keys, under `prefix`:
//!
//! ```text
//!  nodes/NODE                   {"started_unix":…}                  (NODE's lease: it is live)
//!  health/NODE/ADDRESS/CHECK    {"check":…,"status":"down",…}       (NODE's lease)
//!  overrides/member/ADDRESS     {"kind":"drain","reason":…,"node":…} (a lease if it expires)
//!  overrides/site/NAME
//! ```
//! CHECK is a hash of the check's canonical text ([`crate::model::CheckSpec::canonical`]):
//! nodes with the same config name the same probe the same way, whatever it is called.

mod etcd;

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::health::Status;
use crate::health::overrides::{Override, OverrideTarget, Overrides};

pub use etcd::spawn;

/// One probe, named the same on every node: the member's address and its check's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeName {
    pub address: IpAddr,
    pub check: u64,
}

impl ProbeName {
    pub fn of(key: &crate::probe::ProbeKey) -> ProbeName {
        ProbeName {
            address: key.address,
            check: xxhash_rust::xxh3::xxh3_64(key.spec.canonical().as_bytes()),
        }
    }

    fn path(&self) -> String {
        format!("{}/{:016x}", self.address, self.check)
    }

    fn parse(s: &str) -> Option<ProbeName> {
        let (a, c) = s.rsplit_once('/')?;
        Some(ProbeName {
            address: a.parse().ok()?,
            check: u64::from_str_radix(c, 16).ok()?,
        })
    }
}

/// What one node sees of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The check's name(s) on that node, for people reading etcd.
    pub check: String,
    pub status: Status,
    /// The probe result that decided, e.g. `connect refused`.
    pub reason: String,
    /// When the status last changed, in seconds since the Unix epoch.
    pub since_unix: u64,
}

/// A node's entry: it is live while its key exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NodeEntry {
    started_unix: u64,
    version: String,
}

/// The cluster as etcd holds it.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Live nodes (this one included once its entry is written).
    pub nodes: Vec<String>,
    pub observations: HashMap<(String, ProbeName), Observation>,
    pub overrides: Overrides,
}

/// One change seen by the watch.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Node {
        node: String,
        live: bool,
    },
    Observation {
        node: String,
        probe: ProbeName,
        observation: Option<Observation>,
    },
    Override {
        target: OverrideTarget,
        value: Option<Override>,
    },
}

/// From the etcd task to the writer.
#[derive(Debug)]
pub enum Event {
    /// Connected (again): the whole view; it replaces what the writer had.
    View(View),
    /// What changed since.
    Changes(Vec<Change>),
    /// The session to etcd is gone (why, and when etcd last answered); the task keeps trying.
    Lost {
        why: String,
        last_contact: std::time::Instant,
    },
}

/// From the writer to the etcd task.
#[derive(Debug)]
pub enum Publish {
    /// This node's observation of a probe changed (`None`: the probe is gone).
    Observation {
        probe: ProbeName,
        observation: Option<Observation>,
    },
    /// An operator set or cleared an override here; `done` hears whether etcd has it.
    Override {
        target: OverrideTarget,
        value: Option<Override>,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// The writer's end of the etcd task.
pub struct Link {
    pub publish: mpsc::UnboundedSender<Publish>,
    pub events: mpsc::Receiver<Event>,
}

/// The keys of one deployment.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

/// What a key under the prefix is.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Node(String),
    Observation(String, ProbeName),
    Override(OverrideTarget),
}

impl Keys {
    fn node(&self, node: &str) -> String {
        format!("{}nodes/{node}", self.prefix)
    }

    fn observation(&self, node: &str, p: &ProbeName) -> String {
        format!("{}health/{node}/{}", self.prefix, p.path())
    }

    fn override_of(&self, t: &OverrideTarget) -> String {
        match t {
            OverrideTarget::Member(a) => format!("{}overrides/member/{a}", self.prefix),
            OverrideTarget::Site(s) => format!("{}overrides/site/{s}", self.prefix),
        }
    }

    fn parse(&self, key: &[u8]) -> Option<Key> {
        let key = std::str::from_utf8(key).ok()?.strip_prefix(&self.prefix)?;
        let (kind, rest) = key.split_once('/')?;
        match kind {
            "nodes" => Some(Key::Node(rest.to_string())),
            "health" => {
                let (node, probe) = rest.split_once('/')?;
                Some(Key::Observation(node.to_string(), ProbeName::parse(probe)?))
            }
            "overrides" => match rest.split_once('/')? {
                ("member", a) => Some(Key::Override(OverrideTarget::Member(a.parse().ok()?))),
                ("site", s) if !s.is_empty() => Some(Key::Override(OverrideTarget::Site(s.into()))),
                _ => None,
            },
            _ => None,
        }
    }

    /// A key and its value (`None`: deleted) as a change. Keys gslbd does not write are
    /// skipped (logged by the caller); an unreadable value counts as deleted.
    fn change(&self, key: &[u8], value: Option<&[u8]>) -> Result<Change, String> {
        let shown = || String::from_utf8_lossy(key).into_owned();
        let parsed = self
            .parse(key)
            .ok_or_else(|| format!("{}: not a key gslbd writes", shown()))?;
        Ok(match parsed {
            Key::Node(node) => Change::Node {
                node,
                live: value.is_some(),
            },
            // A value that does not read is as good as none: the old one must not stay.
            Key::Observation(node, probe) => Change::Observation {
                node,
                probe,
                observation: value.and_then(|v| readable(v, &shown())),
            },
            Key::Override(target) => Change::Override {
                target,
                value: value.and_then(|v| readable(v, &shown())),
            },
        })
    }
}

/// A value gslbd wrote, or `None` (logged) if it does not read as one.
fn readable<T: serde::de::DeserializeOwned>(v: &[u8], key: &str) -> Option<T> {
    serde_json::from_slice(v)
        .map_err(|e| tracing::warn!("cluster: {key}: unreadable value ({e}); taken as deleted"))
        .ok()
}

impl View {
    pub fn apply(&mut self, c: Change) {
        match c {
            Change::Node { node, live } => {
                self.nodes.retain(|n| *n != node);
                if live {
                    self.nodes.push(node);
                    self.nodes.sort();
                }
            }
            Change::Observation {
                node,
                probe,
                observation,
            } => match observation {
                Some(o) => {
                    self.observations.insert((node, probe), o);
                }
                None => {
                    self.observations.remove(&(node, probe));
                }
            },
            Change::Override { target, value } => self.overrides.set(&target, value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_as_what_they_name() {
        let k = Keys {
            prefix: "/gslbd/".into(),
        };
        let p = ProbeName {
            address: "2001:db8::1".parse().unwrap(),
            check: 0xfeed,
        };
        let obs = Observation {
            check: "web".into(),
            status: Status::Down,
            reason: "connect refused".into(),
            since_unix: 7,
        };
        let key = k.observation("ns2", &p);
        assert_eq!(key, "/gslbd/health/ns2/2001:db8::1/000000000000feed");
        let value = serde_json::to_vec(&obs).unwrap();
        assert_eq!(
            k.change(key.as_bytes(), Some(&value)),
            Ok(Change::Observation {
                node: "ns2".into(),
                probe: p,
                observation: Some(obs),
            })
        );
        let site = OverrideTarget::Site("fra".into());
        assert_eq!(
            k.change(k.override_of(&site).as_bytes(), None),
            Ok(Change::Override {
                target: site,
                value: None
            })
        );
        assert_eq!(
            k.change(k.node("ns1").as_bytes(), None),
            Ok(Change::Node {
                node: "ns1".into(),
                live: false
            })
        );
        for bad in [
            "/gslbd/other/x",
            "/gslbd/health/ns1/notanip/00",
            "/gslbd/overrides/member/nope",
            "/other/nodes/ns1",
        ] {
            assert!(k.change(bad.as_bytes(), None).is_err(), "{bad}");
        }
        // An unreadable value is taken as a deletion, not skipped (the old value must go).
        assert_eq!(
            k.change(key.as_bytes(), Some(b"{not json")),
            Ok(Change::Observation {
                node: "ns2".into(),
                probe: p,
                observation: None,
            })
        );
    }
}
