//! `GET /v1/explain`: the question, and the explanation the server gives back: the real answer,
//! the pool and its members, and each step of the pipeline with what it kept.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::health::Status;
use crate::health::overrides::Override;
use crate::model::Order;

/// What to explain: a name, a type (A by default) and a client `IP` or `IP/LEN` (with a
/// length, the client is an EDNS Client Subnet; without, it is the resolver's own address).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Question {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub qtype: Option<String>,
    pub client: String,
}

/// Why there is no explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// The question is not one (400).
    #[error("{0}")]
    Question(String),
    /// The query path could not be asked (500; should not happen).
    #[error("{0}")]
    Internal(String),
}

/// The answer to a question, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explanation {
    /// The question as understood: the name made absolute, the type in upper case.
    pub question: Asked,
    /// What the query path answers now.
    pub answer: RealAnswer,
    /// The zone that holds the name (none: REFUSED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// `NAME CNAME TARGET` links followed inside the zone to the pooled name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cname_chain: Vec<String>,
    /// Why there are no steps: not in a zone, static data, or not A/AAAA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Asked {
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    pub client: String,
}

/// The response of the query path, records in presentation format.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealAnswer {
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`, ...
    pub rcode: String,
    pub authoritative: bool,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    /// The ECS scope the response carries (only for an ECS client).
    pub ecs_scope: Option<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policy {
    pub order: Order,
    pub failover: bool,
    pub topology: bool,
    #[serde(default)]
    pub nearest: bool,
    pub max_answers: u8,
    pub ttl: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub address: IpAddr,
    pub status: Status,
    pub priority: u32,
    pub weight: u32,
    pub site: Option<String>,
    /// The override in force: the member's own, else its site's.
    #[serde(rename = "override")]
    pub own_override: Option<Override>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub check: String,
    /// The status answers use: with a cluster, the quorum of the votes.
    pub status: Status,
    pub last_result: Option<String>,
    /// With a cluster: each live node's view, which the quorum counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<crate::api::Vote>,
}

/// A member the health step dropped, and why it is down.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dropped {
    pub address: IpAddr,
    pub why: String,
}

/// One step of the pipeline, in the order they run; `note` says what the step does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    Family {
        kept: Vec<IpAddr>,
        note: String,
    },
    Health {
        kept: Vec<IpAddr>,
        dropped: Vec<Dropped>,
        note: String,
    },
    WhenAllDown {
        note: String,
    },
    Failover {
        kept: Vec<IpAddr>,
        note: String,
    },
    /// The effective weight of each candidate.
    Weights {
        weights: BTreeMap<IpAddr, u32>,
        note: String,
    },
    Drain {
        kept: Vec<IpAddr>,
        dropped: Vec<IpAddr>,
        note: String,
    },
    Topology {
        client_site: Option<String>,
        ecs_scope: Option<u8>,
        /// The sites in the order the client is served from (`topology`: its site and
        /// fallbacks; `nearest`: its site, then by distance).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        order: Vec<String>,
        /// What the GeoIP databases say of the client: country, continent, subdivision,
        /// coordinates, ASN, the networks that decided, and the distance to each site.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<crate::geo::Described>,
        kept: Vec<IpAddr>,
        note: String,
    },
    /// The ordering step, which runs per query over these candidates.
    Order {
        candidates: Vec<IpAddr>,
        max_answers: u8,
        note: String,
    },
    Ttl {
        ttl: u32,
        note: String,
    },
    /// No member to order: NODATA or SERVFAIL.
    Answer {
        note: String,
    },
}

impl Step {
    /// The step's name in the API (`health`, `when_all_down`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Step::Family { .. } => "family",
            Step::Health { .. } => "health",
            Step::WhenAllDown { .. } => "when_all_down",
            Step::Failover { .. } => "failover",
            Step::Weights { .. } => "weights",
            Step::Drain { .. } => "drain",
            Step::Topology { .. } => "topology",
            Step::Order { .. } => "order",
            Step::Ttl { .. } => "ttl",
            Step::Answer { .. } => "answer",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_tagged_by_name_and_read_back() {
        let steps = vec![
            Step::Weights {
                weights: [("192.0.2.1".parse().unwrap(), 100)].into(),
                note: "w".into(),
            },
            Step::WhenAllDown { note: "n".into() },
        ];
        let v = serde_json::to_value(&steps).unwrap();
        assert_eq!(v[0]["step"], "weights");
        assert_eq!(v[0]["weights"]["192.0.2.1"], 100);
        assert_eq!(v[1]["step"], "when_all_down");
        let back: Vec<Step> = serde_json::from_value(v).unwrap();
        assert_eq!(back[1].name(), "when_all_down");
        assert!(matches!(&back[0], Step::Weights { weights, .. } if weights.len() == 1));
    }
}
