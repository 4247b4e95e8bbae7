//! Operators' overrides of members and sites (DESIGN §4): drain, force-up, force-down, each
//! with a reason and an optional expiry, kept in `state_dir/overrides.json`.

use std::net::IpAddr;

/// An operator's override of a member (DESIGN §4), set through the admin API and kept in
/// `state_dir/overrides.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverrideKind {
    /// No new answers while any other member can take them.
    Drain,
    /// Up whatever the checks say.
    ForceUp,
    /// Down whatever the checks say.
    ForceDown,
}

impl OverrideKind {
    /// The word operators use: in the API's paths, `gslbd ctl`, the status JSON and the logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            OverrideKind::Drain => "drain",
            OverrideKind::ForceUp => "force-up",
            OverrideKind::ForceDown => "force-down",
        }
    }
}

impl std::fmt::Display for OverrideKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OverrideKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "drain" => Ok(OverrideKind::Drain),
            "force-up" => Ok(OverrideKind::ForceUp),
            "force-down" => Ok(OverrideKind::ForceDown),
            other => Err(format!(
                "{other:?} is not an override: drain, force-up or force-down"
            )),
        }
    }
}

/// What an override applies to: one member address (in every pool), or every member placed
/// in a site of that name (in every zone). A member's own override wins over its site's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideTarget {
    Member(IpAddr),
    Site(String),
}

impl std::fmt::Display for OverrideTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverrideTarget::Member(a) => write!(f, "{a}"),
            OverrideTarget::Site(s) => write!(f, "site {s}"),
        }
    }
}

/// The overrides in force, as saved in `state_dir/overrides.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Overrides {
    pub members: std::collections::BTreeMap<IpAddr, Override>,
    #[serde(default)]
    pub sites: std::collections::BTreeMap<String, Override>,
}

impl Overrides {
    pub fn get(&self, t: &OverrideTarget) -> Option<&Override> {
        match t {
            OverrideTarget::Member(a) => self.members.get(a),
            OverrideTarget::Site(s) => self.sites.get(s),
        }
    }

    pub(crate) fn set(&mut self, t: &OverrideTarget, o: Option<Override>) {
        match (t, o) {
            (OverrideTarget::Member(a), Some(o)) => {
                self.members.insert(*a, o);
            }
            (OverrideTarget::Member(a), None) => {
                self.members.remove(a);
            }
            (OverrideTarget::Site(s), Some(o)) => {
                self.sites.insert(s.clone(), o);
            }
            (OverrideTarget::Site(s), None) => {
                self.sites.remove(s);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.members.len() + self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (OverrideTarget, &Override)> {
        self.members
            .iter()
            .map(|(a, o)| (OverrideTarget::Member(*a), o))
            .chain(
                self.sites
                    .iter()
                    .map(|(s, o)| (OverrideTarget::Site(s.clone()), o)),
            )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Override {
    pub kind: OverrideKind,
    pub reason: String,
    /// Seconds since the Unix epoch when it was set, and when it ends (if ever).
    pub set_unix: u64,
    pub expires_unix: Option<u64>,
    /// The cluster node that took it (none without a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Who set it: the name given with the request (`gslbd ctl` sends the user's login name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Override {
    /// For the logs: `drain (patching), expires in 10m` (`now_unix` in seconds since the epoch).
    pub fn describe(&self, now_unix: u64) -> String {
        let mut out = self.kind.to_string();
        if !self.reason.is_empty() {
            out.push_str(&format!(" ({})", self.reason));
        }
        if let Some(t) = self.expires_unix {
            let left = std::time::Duration::from_secs(t.saturating_sub(now_unix));
            out.push_str(&format!(
                ", expires in {}",
                humantime::format_duration(left)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_named_as_the_api_names_them() {
        for kind in [
            OverrideKind::Drain,
            OverrideKind::ForceUp,
            OverrideKind::ForceDown,
        ] {
            let word = kind.to_string();
            assert_eq!(word.parse::<OverrideKind>(), Ok(kind));
            // the same word as in overrides.json and the status JSON
            assert_eq!(serde_json::to_value(kind).unwrap(), word.as_str());
        }
        assert!("Drain".parse::<OverrideKind>().is_err());
        let o = Override {
            kind: OverrideKind::Drain,
            reason: "patching".into(),
            set_unix: 1000,
            expires_unix: Some(1600),
            node: None,
            by: None,
        };
        assert_eq!(o.describe(1000), "drain (patching), expires in 10m");
        let o = Override {
            kind: OverrideKind::ForceDown,
            reason: String::new(),
            set_unix: 1000,
            expires_unix: None,
            node: None,
            by: None,
        };
        assert_eq!(o.describe(1000), "force-down");
    }
}
