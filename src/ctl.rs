//! `gslbd ctl`: a thin client of the admin API. Every failure is one line on stderr and a
//! non-zero exit; `status` prints a table (or the JSON with `--json`).

use std::path::Path;

use serde_json::Value;

/// What an override is for.
pub enum Target {
    Member(String),
    Site(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Member(a) => write!(f, "{a}"),
            Target::Site(s) => write!(f, "site {s}"),
        }
    }
}

/// What to ask the running server.
pub enum Action {
    Status {
        json: bool,
    },
    Member {
        action: &'static str,
        target: Target,
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

/// Run one action against `api` (e.g. `http://127.0.0.1:8053`). Returns the text to print.
pub fn run(api: &str, token_file: Option<&Path>, action: Action) -> Result<String, String> {
    let token = match token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read the token file {}: {e}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let base = api.trim_end_matches('/');
        let req = match &action {
            Action::Status { .. } => client.get(format!("{base}/v1/status")),
            Action::Member {
                action,
                target,
                reason,
                expires,
            } => {
                let mut body = serde_json::Map::new();
                if let Some(r) = reason {
                    body.insert("reason".into(), Value::from(r.as_str()));
                }
                if let Some(e) = expires {
                    body.insert("expires".into(), Value::from(e.as_str()));
                }
                let path = match target {
                    Target::Member(a) => format!("members/{}", encode_segment(a)),
                    Target::Site(s) => format!("sites/{}", encode_segment(s)),
                };
                client
                    .post(format!("{base}/v1/{path}/{action}"))
                    .header("content-type", "application/json")
                    .body(Value::Object(body).to_string())
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
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                format!("cannot reach the admin API at {base}: is gslbd serve running?")
            } else {
                format!("request to {base} failed: {e}")
            }
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if !status.is_success() {
            let msg = body["error"].as_str().map(str::to_string).unwrap_or(text);
            return Err(format!("{} ({})", msg.trim(), status.as_u16()));
        }
        Ok(match action {
            Action::Status { json: true } => serde_json::to_string_pretty(&body).unwrap_or(text),
            Action::Status { json: false } => table(&body),
            Action::Member { action, target, .. } => format!("{target}: {action} done"),
            Action::Reload => format!("reloaded: {}", body["reloaded"].as_str().unwrap_or("")),
            Action::Explain { json: true, .. } => {
                serde_json::to_string_pretty(&body).unwrap_or(text)
            }
            Action::Explain { json: false, .. } => explain_text(&body),
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

/// `/v1/status` as a table an operator can read.
fn table(v: &Value) -> String {
    let mut rows = vec![
        ["ZONE", "POOL", "MEMBER", "STATUS", "OVERRIDE", "CHECKS"]
            .map(String::from)
            .to_vec(),
    ];
    for z in v["zones"].as_array().into_iter().flatten() {
        for p in z["pools"].as_array().into_iter().flatten() {
            for m in p["members"].as_array().into_iter().flatten() {
                let describe = |o: &serde_json::Map<String, Value>, by: &str| {
                    let reason = o.get("reason").and_then(Value::as_str).unwrap_or("");
                    let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
                    match (reason.is_empty(), by.is_empty()) {
                        (true, true) => kind.to_string(),
                        (true, false) => format!("{kind} ({by})"),
                        (false, true) => format!("{kind} ({reason})"),
                        (false, false) => format!("{kind} ({by}: {reason})"),
                    }
                };
                let ov = match (&m["override"], &m["site_override"]) {
                    (Value::Object(o), _) => describe(o, ""),
                    (_, Value::Object(o)) => {
                        describe(o, &format!("site {}", m["site"].as_str().unwrap_or("?")))
                    }
                    _ => "-".into(),
                };
                let checks: Vec<String> = m["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let last = c["last_result"].as_str().unwrap_or("no result yet");
                        format!(
                            "{}={} ({last})",
                            c["check"].as_str().unwrap_or("?"),
                            c["status"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                rows.push(vec![
                    z["zone"].as_str().unwrap_or("").to_string(),
                    p["pool"].as_str().unwrap_or("").to_string(),
                    m["address"].as_str().unwrap_or("").to_string(),
                    m["status"].as_str().unwrap_or("").to_string(),
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
