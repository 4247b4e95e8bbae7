//! `gslbd ctl`: a thin client of the admin API. Every failure is one line on stderr and a
//! non-zero exit; `status` prints a table (or the JSON with `--json`).

use std::path::Path;

use serde_json::Value;

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
        name: String,
        client: String,
        qtype: String,
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
            Action::Explain {
                name,
                client: who,
                qtype,
                ..
            } => client.get(format!(
                "{base}/v1/explain?name={}&client={}&type={}",
                encode_segment(name),
                encode_segment(who),
                encode_segment(qtype)
            )),
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
                    table(&report)
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
                let body: Value = serde_json::from_str(&text).map_err(|_| parsed("JSON"))?;
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
fn explain_text(v: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let list = |v: &Value| -> String {
        let items: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| match x {
                Value::String(a) => a.clone(),
                Value::Object(o) => format!(
                    "{} ({})",
                    o.get("address").and_then(Value::as_str).unwrap_or("?"),
                    o.get("why").and_then(Value::as_str).unwrap_or("")
                ),
                other => other.to_string(),
            })
            .collect();
        if items.is_empty() {
            "-".into()
        } else {
            items.join(", ")
        }
    };
    let q = &v["question"];
    let a = &v["answer"];
    let mut out = vec![format!(
        "{} {} asked by {}",
        s(&q["name"]),
        s(&q["type"]),
        s(&q["client"])
    )];
    let mut head = format!("answer: {}", s(&a["rcode"]));
    if a["authoritative"] == Value::Bool(true) {
        head.push_str(", authoritative");
    }
    if let Some(scope) = a["ecs_scope"].as_u64() {
        head.push_str(&format!(", ECS scope /{scope}"));
    }
    out.push(head);
    for section in ["answer", "authority"] {
        for r in a[section].as_array().into_iter().flatten() {
            out.push(format!(
                "  {}{}",
                if section == "authority" {
                    "(authority) "
                } else {
                    ""
                },
                s(r)
            ));
        }
    }
    for c in v["cname_chain"].as_array().into_iter().flatten() {
        out.push(format!("via {}", s(c)));
    }
    if let Some(why) = v["why"].as_str() {
        out.push(format!("why: {why}"));
    }
    if v["pool"].is_string() {
        let p = &v["policy"];
        out.push(format!(
            "zone {}, pool {}: {}{}{}, at most {} answer(s), ttl {}",
            s(&v["zone"]),
            s(&v["pool"]),
            s(&p["order"]),
            if p["failover"] == Value::Bool(true) {
                " + failover"
            } else {
                ""
            },
            if p["topology"] == Value::Bool(true) {
                " + topology"
            } else {
                ""
            },
            p["max_answers"],
            p["ttl"]
        ));
    }
    if let Some(members) = v["members"].as_array() {
        out.push("members:".into());
        for m in members {
            let checks: Vec<String> = m["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    format!(
                        "{}={} ({})",
                        s(&c["check"]),
                        s(&c["status"]),
                        c["last_result"].as_str().unwrap_or("no result yet")
                    )
                })
                .collect();
            let mut line = format!("  {:<16} {:<7}", s(&m["address"]), s(&m["status"]));
            if let Some(site) = m["site"].as_str() {
                line.push_str(&format!(" site {site}"));
            }
            if let Some(k) = m["override"]["kind"].as_str() {
                line.push_str(&format!(" override {k}"));
            }
            if !checks.is_empty() {
                line.push_str(&format!(" {}", checks.join(", ")));
            }
            out.push(line);
        }
    }
    if let Some(steps) = v["steps"].as_array() {
        out.push("steps:".into());
        for st in steps {
            let mut line = format!("  {:<14}", s(&st["step"]));
            if !st["kept"].is_null() {
                line.push_str(&format!(" kept {}", list(&st["kept"])));
            }
            if !st["candidates"].is_null() {
                line.push_str(&format!(" from {}", list(&st["candidates"])));
            }
            if st["dropped"].as_array().is_some_and(|d| !d.is_empty()) {
                line.push_str(&format!("; dropped {}", list(&st["dropped"])));
            }
            if let Some(site) = st["client_site"].as_str() {
                line.push_str(&format!("; client site {site}"));
            }
            if let Some(scope) = st["ecs_scope"].as_u64() {
                line.push_str(&format!("; ECS scope /{scope}"));
            }
            if let Some(w) = st["weights"].as_object() {
                let ws: Vec<String> = w.iter().map(|(k, v)| format!("{k}={v}")).collect();
                line.push_str(&format!(" {}", ws.join(", ")));
            }
            if let Some(ttl) = st["ttl"].as_u64() {
                line.push_str(&format!(" {ttl}"));
            }
            if let Some(n) = st["note"].as_str() {
                line.push_str(&format!("  ({n})"));
            }
            out.push(line);
        }
    }
    out.join("\n")
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
                    .map(|c| {
                        let last = c.last_result.as_deref().unwrap_or("no result yet");
                        format!("{}={} ({last})", c.check, c.status)
                    })
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
