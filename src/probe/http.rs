//! `http`: an HTTP or HTTPS request to the member's own address, with the configured Host header
//! and TLS SNI, method and path; checks the status and, optionally, the body. No redirects are
//! followed and no connection is reused between probes, so each probe sees the member as a new
//! client would.

use std::net::{IpAddr, SocketAddr};

use super::{down, excerpt, up};
use crate::health::Outcome;
use crate::model::HttpCheck;

/// Bodies are read up to this size; a check only needs the start of a health page.
const MAX_BODY: usize = 64 * 1024;

/// A client pinned to `addr` for the check's host name. `None` if it cannot be built (the probe
/// then reports why). The probe's timeout bounds each request from outside (`probe::run`).
pub fn client(h: &HttpCheck, addr: IpAddr) -> Option<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .no_proxy()
        .tls_danger_accept_invalid_certs(!h.verify_tls);
    if let Some(host) = &h.host {
        // Resolve the configured name to this member only: Host and SNI stay the name.
        b = b.resolve(host, SocketAddr::new(addr, h.port));
    }
    b.build().ok()
}

pub fn url(h: &HttpCheck, addr: IpAddr) -> String {
    let scheme = if h.tls { "https" } else { "http" };
    let host = match (&h.host, addr) {
        (Some(name), _) => name.clone(),
        (None, IpAddr::V6(a)) => format!("[{a}]"),
        (None, IpAddr::V4(a)) => a.to_string(),
    };
    format!("{scheme}://{host}:{}{}", h.port, h.path)
}

pub async fn probe(h: &HttpCheck, addr: IpAddr, client: Option<&reqwest::Client>) -> Outcome {
    let Some(client) = client else {
        return down("cannot build an HTTP client (TLS setup failed)");
    };
    let method = reqwest::Method::from_bytes(h.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut resp = match client.request(method, url(h, addr)).send().await {
        Ok(r) => r,
        Err(e) => return down(request_error(&e)),
    };
    let status = resp.status().as_u16();
    if !h.expect_status.contains(&status) {
        return down(format!("http {status} (expected {:?})", h.expect_status));
    }
    if h.expect_body.is_none() && h.expect_body_regex.is_none() {
        return up(format!("http {status}"));
    }
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            Ok(None) => break,
            Err(e) => {
                return down(format!(
                    "http {status}, body read failed: {}",
                    request_error(&e)
                ));
            }
        }
    }
    judge(h, status, &body)
}

/// The verdict on a response: its status, then the body (substring, then regular expression).
/// Pure, so it can be fuzzed on its own.
pub fn judge(h: &HttpCheck, status: u16, body: &[u8]) -> Outcome {
    if !h.expect_status.contains(&status) {
        return down(format!("http {status} (expected {:?})", h.expect_status));
    }
    let body = &body[..body.len().min(MAX_BODY)];
    let text = String::from_utf8_lossy(body);
    if let Some(want) = &h.expect_body
        && !text.contains(want.as_str())
    {
        return down(format!(
            "http {status}, body {:?} lacks {want:?}",
            excerpt(body)
        ));
    }
    if let Some(re) = &h.expect_body_regex
        && !re.is_match(&text)
    {
        return down(format!(
            "http {status}, body {:?} does not match {re:?}",
            excerpt(body)
        ));
    }
    up(format!("http {status}"))
}

fn request_error(e: &reqwest::Error) -> String {
    use std::error::Error;
    // The innermost cause says what happened (refused, reset, certificate...).
    let mut cause: &dyn Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    if e.is_timeout() {
        "timeout".into()
    } else if text.contains("Connection refused") {
        "connect refused".into()
    } else if e.is_connect() {
        format!("connect failed: {text}")
    } else {
        text
    }
}
