//! `gslbd ctl`: a thin client of the admin API. Every failure is one line on stderr and a
//! non-zero exit; `status` prints a table (or the JSON with `--json`).

use std::path::Path;

use crate::api::explain::{Explanation, Question, Step};
use crate::api::{ErrorBody, OverrideRequest, Reloaded, StatusReport};
use crate::health::overrides::{Override, OverrideTarget};

/// What to ask the running server.
pub enum Action {
    Status {
        json: bool,
    },
    Member {
        /// The word typed (`drain`, `undrain`, ...): it names the request and its answer.
        action: &'static str,
        target: OverrideTarget,
        reason: Option<String>,
        expires: Option<String>,
    },
    Reload,
    Explain {
        question: Question,
        json: bool,
    },
}

/// The admin API's base URL from what an operator types: a URL (`http://127.0.0.1:8053`), or
/// `ADDR:PORT` as `serve --api` and `api.listen` take it (`127.0.0.1:8053`, `[::1]:8053`).
pub fn api_url(api: &str) -> Result<String, String> {
    let given = api.trim();
    let url = if given.contains("://") {
        given.to_string()
    } else {
        format!("http://{given}")
    };
    match reqwest::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(format!(
            "{given:?} is not the admin API's address: give ADDR:PORT (127.0.0.1:8053, \
             [::1]:8053) or a URL (http://127.0.0.1:8053)"
        )),
    }
}

/// Run one action against `api` (e.g. `http://127.0.0.1:8053` or `127.0.0.1:8053`). Returns
/// the text to print.
/// Why `gslbd ctl` could not do what was asked: one line for stderr.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Address(String),
    #[error("cannot read the token file {path}: {source}")]
    Token {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start: {0}")]
    Runtime(String),
    #[error("cannot reach the admin API at {0}: is gslbd serve running?")]
    Unreachable(String),
    #[error("request to {base} failed: {source}")]
    Request {
        base: String,
        source: reqwest::Error,
    },
    /// The server said no: its message and HTTP status.
    #[error("{message} ({status})")]
    Refused { message: String, status: u16 },
    #[error("the admin API answered with unreadable {what}: {text}")]
    Unreadable { what: &'static str, text: String },
}

pub fn run(api: &str, token_file: Option<&Path>, action: Action) -> Result<String, CtlError> {
    let api = api_url(api).map_err(CtlError::Address)?;
    let token = match token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|source| CtlError::Token {
                    path: f.to_path_buf(),
                    source,
                })?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CtlError::Runtime(e.to_string()))?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| CtlError::Runtime(e.to_string()))?;
        let base = api.as_str();
        let req = match &action {
            Action::Status { .. } => client.get(format!("{base}/v1/status")),
            Action::Member {
                action,
                target,
                reason,
                expires,
            } => {
                let body = OverrideRequest {
                    reason: reason.clone(),
                    expires: expires.clone(),
                    by: login_name(),
                };
                let path = match target {
                    OverrideTarget::Member(a) => format!("members/{a}"),
                    OverrideTarget::Site(s) => format!("sites/{}", encode_segment(s)),
                };
                client
                    .post(format!("{base}/v1/{path}/{action}"))
                    .header("content-type", "application/json")
                    .body(serde_json::to_string(&body).unwrap_or_default())
            }
            Action::Reload => client.post(format!("{base}/v1/reload")),
            Action::Explain { question: q, .. } => {
                let mut url = format!(
                    "{base}/v1/explain?name={}&client={}",
                    encode_segment(&q.name),
                    encode_segment(&q.client)
                );
                if let Some(t) = &q.qtype {
                    url.push_str(&format!("&type={}", encode_segment(t)));
                }
                client.get(url)
            }
        };
        let req = match &token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let failed = |source: reqwest::Error| {
            if source.is_connect() {
                CtlError::Unreachable(base.to_string())
            } else {
                CtlError::Request {
                    base: base.to_string(),
                    source,
                }
            }
        };
        let resp = req.send().await.map_err(failed)?;
        let status = resp.status();
        let text = resp.text().await.map_err(failed)?;
        if !status.is_success() {
            let msg = serde_json::from_str::<ErrorBody>(&text).map_or(text, |e| e.error);
            return Err(CtlError::Refused {
                message: msg.trim().to_string(),
                status: status.as_u16(),
            });
        }
        let parsed = |what: &'static str| CtlError::Unreadable {
            what,
            text: text.clone(),
        };
        Ok(match action {
            Action::Status { json } => {
                let report: StatusReport =
                    serde_json::from_str(&text).map_err(|_| parsed("status"))?;
                if json {
                    serde_json::to_string_pretty(&report).unwrap_or(text)
                } else {
                    match &report.cluster {
                        Some(c) => format!("{}\n{}", cluster_line(c), table(&report)),
                        None => table(&report),
                    }
                }
            }
            Action::Member { action, target, .. } => {
                let what = match target {
                    OverrideTarget::Member(a) => a.to_string(),
                    OverrideTarget::Site(s) => format!("site {s}"),
                };
                format!("{what}: {action} done")
            }
            Action::Reload => {
                let r: Reloaded = serde_json::from_str(&text).map_err(|_| parsed("JSON"))?;
                format!("reloaded: {}", r.reloaded)
            }
            Action::Explain { json, .. } => {
                let body: Explanation =
                    serde_json::from_str(&text).map_err(|_| parsed("explanation"))?;
                if json {
                    serde_json::to_string_pretty(&body).unwrap_or(text)
                } else {
                    explain_text(&body)
                }
            }
        })
    })
}

/// `/v1/explain` as text: the answer, the members, then one line per step.
fn explain_text(v: &Explanation) -> String {
    fn list<T: std::fmt::Display>(items: &[T]) -> String {
        if items.is_empty() {
            "-".into()
        } else {
            items
                .iter()
                .map(T::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
    let (q, a) = (&v.question, &v.answer);
    let mut out = vec![format!("{} {} asked by {}", q.name, q.qtype, q.client)];
    let mut head = format!("answer: {}", a.rcode);
    if a.authoritative {
        head.push_str(", authoritative");
    }
    if let Some(scope) = a.ecs_scope {
        head.push_str(&format!(", ECS scope /{scope}"));
    }
    out.push(head);
    out.extend(a.answer.iter().map(|r| format!("  {r}")));
    out.extend(a.authority.iter().map(|r| format!("  (authority) {r}")));
    out.extend(v.cname_chain.iter().map(|c| format!("via {c}")));
    if let Some(why) = &v.why {
        out.push(format!("why: {why}"));
    }
    if let (Some(pool), Some(p)) = (&v.pool, &v.policy) {
        out.push(format!(
            "zone {}, pool {pool}: {}{}{}{}, at most {} answer(s), ttl {}",
            v.zone.as_deref().unwrap_or("?"),
            p.order,
            if p.failover { " + failover" } else { "" },
            if p.topology { " + topology" } else { "" },
            if p.nearest { " + nearest" } else { "" },
            p.max_answers,
            p.ttl
        ));
    }
    if !v.members.is_empty() {
        out.push("members:".into());
    }
    for m in &v.members {
        let checks: Vec<String> = m
            .checks
            .iter()
            .map(|c| check_text(&c.check, c.status, c.last_result.as_deref(), &c.votes))
            .collect();
        let mut line = format!(
            "  {:<16} {:<7}",
            m.address.to_string(),
            m.status.to_string()
        );
        if let Some(site) = &m.site {
            line.push_str(&format!(" site {site}"));
        }
        if let Some(o) = &m.own_override {
            line.push_str(&format!(" override {}", o.kind));
        }
        if !checks.is_empty() {
            line.push_str(&format!(" {}", checks.join(", ")));
        }
        out.push(line);
    }
    if !v.steps.is_empty() {
        out.push("steps:".into());
    }
    for st in &v.steps {
        let mut line = format!("  {:<14}", st.name());
        let note = match st {
            Step::Family { kept, note } | Step::Failover { kept, note } => {
                line.push_str(&format!(" kept {}", list(kept)));
                note
            }
            Step::Health {
                kept,
                dropped,
                note,
            } => {
                line.push_str(&format!(" kept {}", list(kept)));
                if !dropped.is_empty() {
                    let d: Vec<String> = dropped
                        .iter()
                        .map(|d| format!("{} ({})", d.address, d.why))
                        .collect();
                    line.push_str(&format!("; dropped {}", d.join(", ")));
                }
                note
            }
            Step::Drain {
                kept,
                dropped,
                note,
            } => {
                line.push_str(&format!(" kept {}", list(kept)));
                if !dropped.is_empty() {
                    line.push_str(&format!("; dropped {}", list(dropped)));
                }
                note
            }
            Step::Topology {
                client_site,
                ecs_scope,
                order,
                client,
                kept,
                note,
            } => {
                line.push_str(&format!(" kept {}", list(kept)));
                if let Some(site) = client_site {
                    line.push_str(&format!("; client site {site}"));
                }
                if let Some(scope) = ecs_scope {
                    line.push_str(&format!("; ECS scope /{scope}"));
                }
                if order.len() > 1 {
                    line.push_str(&format!("; order {}", order.join(" > ")));
                }
                if let Some(c) = client {
                    line.push_str(&format!("; client {}", geo_text(c)));
                }
                note
            }
            Step::Weights { weights, note } => {
                let ws: Vec<String> = weights.iter().map(|(a, w)| format!("{a}={w}")).collect();
                line.push_str(&format!(" {}", ws.join(", ")));
                note
            }
            Step::Order {
                candidates, note, ..
            } => {
                line.push_str(&format!(" from {}", list(candidates)));
                note
            }
            Step::Ttl { ttl, note } => {
                line.push_str(&format!(" {ttl}"));
                note
            }
            Step::WhenAllDown { note } | Step::Answer { note } => note,
        };
        line.push_str(&format!("  ({note})"));
        out.push(line);
    }
    out.join("\n")
}

/// Who runs `ctl`, for the server's history: the user behind `sudo`, else the login name.
fn login_name() -> Option<String> {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|n| !n.is_empty() && crate::api::check_text("by", n, crate::api::MAX_BY).is_ok())
}

/// A path segment with everything but unreserved characters percent-encoded.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// When an override ends: `expires 2026-12-01T22:10:00Z, 9m left` (UTC, whole seconds).
fn expiry(expires_unix: u64, now_unix: u64) -> String {
    use std::time::{Duration, UNIX_EPOCH};
    let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(expires_unix));
    match expires_unix.checked_sub(now_unix) {
        Some(left) if left > 0 => {
            // Minutes are enough once there are some; the seconds would only be noise.
            let left = if left >= 60 { left - left % 60 } else { left };
            format!(
                "expires {at}, {} left",
                humantime::format_duration(Duration::from_secs(left))
            )
        }
        _ => format!("expires {at}, due now"),
    }
}

/// `/v1/status` as a table an operator can read.
fn table(report: &StatusReport) -> String {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut rows = vec![
        ["ZONE", "POOL", "MEMBER", "STATUS", "OVERRIDE", "CHECKS"]
            .map(String::from)
            .to_vec(),
    ];
    let describe = |o: &Override, by: &str| {
        let mut notes = Vec::new();
        match (o.reason.is_empty(), by.is_empty()) {
            (true, true) => {}
            (true, false) => notes.push(by.to_string()),
            (false, true) => notes.push(o.reason.clone()),
            (false, false) => notes.push(format!("{by}: {}", o.reason)),
        }
        if let Some(t) = o.expires_unix {
            notes.push(expiry(t, now_unix));
        }
        if notes.is_empty() {
            o.kind.to_string()
        } else {
            format!("{} ({})", o.kind, notes.join(", "))
        }
    };
    for z in &report.zones {
        for p in &z.pools {
            for m in &p.members {
                let ov = match (&m.own_override, &m.site_override) {
                    (Some(o), _) => describe(o, ""),
                    (None, Some(o)) => {
                        describe(o, &format!("site {}", m.site.as_deref().unwrap_or("?")))
                    }
                    (None, None) => "-".into(),
                };
                let checks: Vec<String> = m
                    .checks
                    .iter()
                    .map(|c| check_text(&c.check, c.status, c.last_result.as_deref(), &c.votes))
                    .collect();
                rows.push(vec![
                    z.zone.clone(),
                    p.pool.clone(),
                    m.address.to_string(),
                    m.status.to_string(),
                    ov,
                    if checks.is_empty() {
                        "-".into()
                    } else {
                        checks.join(", ")
                    },
                ]);
            }
        }
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i == 5 {
                        c.clone()
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One check as `status` and `explain` print it: `web=down (connect refused)`, and with a
/// cluster each node's vote (`votes ns1=down ns2=up`).
fn check_text(
    check: &str,
    status: crate::health::Status,
    last: Option<&str>,
    votes: &[crate::api::Vote],
) -> String {
    let mut text = format!("{check}={status} ({})", last.unwrap_or("no result yet"));
    if !votes.is_empty() {
        text.push_str(&format!(" votes {}", crate::api::votes_text(votes)));
    }
    text
}

/// The cluster line above the table: this node, etcd, the live nodes.
fn cluster_line(c: &crate::api::ClusterStatus) -> String {
    let etcd = match (&c.problem, c.connected) {
        (_, true) => "etcd connected".to_string(),
        (Some(p), false) => format!("etcd UNREACHABLE ({p})"),
        (None, false) => "etcd not connected yet".to_string(),
    };
    format!(
        "cluster: node {}, {etcd}, quorum {}, live nodes: {}",
        c.node,
        c.quorum,
        c.nodes.join(" ")
    )
}

/// What the GeoIP databases say of a client, on one line.
fn geo_text(c: &crate::geo::Described) -> String {
    let mut parts = Vec::new();
    let place: Vec<&str> = [&c.country, &c.subdivision, &c.continent]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if !place.is_empty() {
        parts.push(place.join("/"));
    }
    if let Some((lat, lon)) = c.coordinates {
        parts.push(format!("at {lat:.2},{lon:.2}"));
    }
    if let Some(a) = c.asn {
        parts.push(format!("AS{a}"));
    }
    if !c.networks.is_empty() {
        parts.push(format!("from {}", c.networks.join(", ")));
    }
    if !c.distances.is_empty() {
        let d: Vec<String> = c
            .distances
            .iter()
            .map(|(s, km)| format!("{s} {km:.0} km"))
            .collect();
        parts.push(format!("distances {}", d.join(", ")));
    }
    if parts.is_empty() {
        "not in the GeoIP databases".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_is_a_url_or_addr_port() {
        for (given, want) in [
            ("127.0.0.1:8053", "http://127.0.0.1:8053"),
            ("[::1]:8053", "http://[::1]:8053"),
            ("http://127.0.0.1:8053/", "http://127.0.0.1:8053"),
            ("https://gslb.example:8443", "https://gslb.example:8443"),
            ("localhost:8053", "http://localhost:8053"),
        ] {
            assert_eq!(api_url(given).as_deref(), Ok(want), "{given}");
        }
        for bad in ["", "ftp://x:1", "::1:8053:x", "http://"] {
            let e = api_url(bad).unwrap_err();
            assert!(e.contains("ADDR:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn status_shows_when_an_override_ends() {
        let v = serde_json::json!({ "generation": 1, "zones": [{ "zone": "a.test.", "pools": [{ "pool": "web",
            "members": [
                { "address": "192.0.2.1", "status": "up", "checks": [], "weight": 100, "priority": 1,
                  "override": { "kind": "drain", "reason": "patching", "set_unix": 1,
                                "expires_unix": 4_000_000_000u64 } },
                { "address": "192.0.2.2", "status": "up", "checks": [], "site": "fra",
                  "weight": 100, "priority": 1,
                  "site_override": { "kind": "force-down", "reason": "", "set_unix": 1,
                                     "expires_unix": null } },
            ] }] }] });
        let t = table(&serde_json::from_value(v).unwrap());
        assert!(
            t.contains("drain (patching, expires 2096-10-02T07:06:40Z, "),
            "{t}"
        );
        assert!(t.contains("force-down (site fra)  "), "{t}");
        assert_eq!(
            expiry(1_000, 1_000 - 599),
            "expires 1970-01-01T00:16:40Z, 9m left"
        );
        assert_eq!(
            expiry(1_000, 1_000 - 59),
            "expires 1970-01-01T00:16:40Z, 59s left"
        );
        assert_eq!(
            expiry(1_000, 2_000),
            "expires 1970-01-01T00:16:40Z, due now"
        );
    }
}
