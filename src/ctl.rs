//! `gslbd ctl`: a thin client of the admin API. Every failure is one line on stderr and a
//! non-zero exit; `status` prints a table (or the JSON with `--json`).

use std::path::Path;

use serde_json::Value;

/// What to ask the running server.
pub enum Action {
    Status {
        json: bool,
    },
    Member {
        action: &'static str,
        address: String,
        reason: Option<String>,
        expires: Option<String>,
    },
    Reload,
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
                address,
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
                client
                    .post(format!("{base}/v1/members/{address}/{action}"))
                    .header("content-type", "application/json")
                    .body(Value::Object(body).to_string())
            }
            Action::Reload => client.post(format!("{base}/v1/reload")),
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
            Action::Member {
                action, address, ..
            } => format!("{address}: {action} done"),
            Action::Reload => format!("reloaded: {}", body["reloaded"].as_str().unwrap_or("")),
        })
    })
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
                let ov = match &m["override"] {
                    Value::Object(o) => {
                        let reason = o.get("reason").and_then(Value::as_str).unwrap_or("");
                        let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
                        if reason.is_empty() {
                            kind.to_string()
                        } else {
                            format!("{kind} ({reason})")
                        }
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
