//! The admin API's messages, one set of types for the server (`admin`) and its client (`ctl`):
//! what `/v1/status` returns, what an override request carries, and how errors look. JSON
//! field names are the API's contract (README, "Operating: the admin API").

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::health::Status;
use crate::health::overrides::{Override, OverrideKind};

pub mod explain;

/// `POST /v1/{members/ADDR | sites/NAME}/{action}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Set(OverrideKind),
    /// `undrain` or `clear`: whatever override there is goes.
    Clear,
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Action, String> {
        match s {
            "undrain" | "clear" => Ok(Action::Clear),
            other => other.parse().map(Action::Set).map_err(|_| {
                format!("{other:?} is not an action: drain, undrain, force-up, force-down, clear")
            }),
        }
    }
}

/// The optional body of an override request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A duration (`30m`, `2h`) after which the override ends by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Who asks (an operator's name), for the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The longest reason and name an override request may carry (they are saved, logged and shown).
pub const MAX_REASON: usize = 500;
pub const MAX_BY: usize = 64;

/// Free text from a request: bounded, and no control characters (they would forge log lines)
/// nor invisible formatting (bidirectional overrides, line separators, zero-width marks) that
/// would make it read differently on the page or in a log than it is.
pub fn check_text(field: &str, text: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!("{field}: longer than {max} bytes"));
    }
    let invisible = |c: char| {
        matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}')
    };
    if text.chars().any(|c| c.is_control() || invisible(c)) {
        return Err(format!(
            "{field}: control characters and invisible formatting characters are not allowed"
        ));
    }
    Ok(())
}

/// The answer to a done override request: the target and the action as asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OverrideDone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub action: String,
}

/// `POST /v1/reload` done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reloaded {
    pub reloaded: String,
}

/// Every error: a 4xx for a bad request, 500 when the server could not do what was asked,
/// 503 while it shuts down.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// Counts up with every published config.
    pub generation: u64,
    /// With `cluster:`: this node, etcd, the live nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
    pub zones: Vec<ZoneStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This node.
    pub node: String,
    pub quorum: String,
    /// Whether etcd is reachable now.
    pub connected: bool,
    /// Why not, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The live nodes, this one included.
    pub nodes: Vec<String>,
}

/// `ns1=down ns2=up`: votes as the logs, `ctl` and explain show them.
pub fn votes_text(votes: &[Vote]) -> String {
    let each: Vec<String> = votes
        .iter()
        .map(|v| format!("{}={}", v.node, v.status))
        .collect();
    each.join(" ")
}

/// One node's observation of a check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vote {
    pub node: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZoneStatus {
    pub zone: String,
    pub pools: Vec<PoolStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolStatus {
    pub pool: String,
    /// `healthy`, `degraded` (a member is down: the TTL is halved) or `all-down`. (Defaults
    /// keep `ctl` reading the status of a server from before the console.)
    #[serde(default)]
    pub state: PoolState,
    /// The TTL answered with now.
    #[serde(default)]
    pub ttl: u32,
    /// Per address family (A, AAAA: each is judged alone, as the answers are); `state` and
    /// `ttl` above are the worst family's.
    #[serde(default)]
    pub families: Vec<FamilyState>,
    /// What the pool answers when every member is down (`when_all_down`).
    #[serde(default)]
    pub all_down_answer: String,
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FamilyState {
    /// `A` or `AAAA`.
    pub family: String,
    pub state: PoolState,
    pub ttl: u32,
}

/// Ordered from good to bad.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolState {
    #[default]
    Healthy,
    Degraded,
    AllDown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberStatus {
    pub address: IpAddr,
    /// After checks, agents and force-up/down (a drained member stays up).
    pub status: Status,
    pub weight: u32,
    pub priority: u32,
    pub site: Option<String>,
    /// The member's own override.
    #[serde(rename = "override")]
    pub own_override: Option<Override>,
    /// Its site's override (a member's own wins).
    pub site_override: Option<Override>,
    /// Smoothed spare capacity from load reports (least-loaded), 0..=1.
    pub spare_capacity: Option<f64>,
    /// Address records of this member handed out in answers of this pool (a counter).
    #[serde(default)]
    pub answers: u64,
    /// The member's latest event in the history: the last change and why.
    #[serde(default)]
    pub last_change: Option<Event>,
    pub checks: Vec<CheckStatus>,
}

/// `GET /v1/history`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryReport {
    pub events: Vec<Event>,
}

/// A health transition of a member's check, or an operator's action on a member or a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Orders the events of one server.
    pub seq: u64,
    pub unix: u64,
    pub member: Option<IpAddr>,
    pub site: Option<String>,
    pub kind: EventKind,
    /// The check that changed (health events).
    pub check: Option<String>,
    /// Health: `up`, `down`, `unknown`; overrides: `none`, `drain`, `force-up`, `force-down`,
    /// `cleared`, `expired`.
    pub from: String,
    pub to: String,
    pub reason: String,
    /// Who acted (overrides): the name given with the request, or the cluster node.
    pub by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Health,
    Override,
}

/// `GET /v1/rates`: answers per member per second, sampled by the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RatesReport {
    pub interval_seconds: u32,
    /// Samples taken so far; `?after=` this gives only the ones taken since.
    pub taken: u64,
    pub members: Vec<MemberRate>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberRate {
    pub zone: String,
    pub pool: String,
    pub address: IpAddr,
    /// Oldest first, one per interval.
    pub per_second: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckStatus {
    pub check: String,
    pub status: Status,
    /// Seconds in this status.
    #[serde(default)]
    pub since_seconds: Option<u64>,
    /// The last probe's result, e.g. `http 200 after 12 ms`.
    #[serde(default)]
    pub last_result: Option<String>,
    #[serde(default)]
    pub last_seconds_ago: Option<u64>,
    /// With a cluster: each live node's view; `status` is their quorum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<Vote>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_the_words_of_the_paths() {
        assert_eq!("drain".parse(), Ok(Action::Set(OverrideKind::Drain)));
        assert_eq!("force-up".parse(), Ok(Action::Set(OverrideKind::ForceUp)));
        assert_eq!("undrain".parse(), Ok(Action::Clear));
        assert_eq!("clear".parse(), Ok(Action::Clear));
        assert!(
            "Drain"
                .parse::<Action>()
                .unwrap_err()
                .contains("not an action")
        );
    }

    #[test]
    fn status_reads_back_what_it_writes() {
        let m = MemberStatus {
            address: "192.0.2.1".parse().unwrap(),
            status: Status::Down,
            weight: 100,
            priority: 1,
            site: Some("fra".into()),
            own_override: None,
            site_override: Some(Override {
                kind: OverrideKind::Drain,
                reason: "move".into(),
                set_unix: 1,
                expires_unix: None,
                node: None,
                by: None,
            }),
            spare_capacity: None,
            answers: 0,
            last_change: None,
            checks: vec![CheckStatus {
                check: "web".into(),
                status: Status::Down,
                since_seconds: Some(3),
                last_result: Some("connect refused".into()),
                last_seconds_ago: Some(1),
                votes: Vec::new(),
            }],
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["status"], "down");
        assert_eq!(v["override"], serde_json::Value::Null);
        assert_eq!(v["site_override"]["kind"], "drain");
        let back: MemberStatus = serde_json::from_value(v).unwrap();
        assert_eq!(
            back.checks[0].last_result.as_deref(),
            Some("connect refused")
        );
    }
}
