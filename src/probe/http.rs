//! `http`: an HTTP or HTTPS request to the member's own address, with the configured Host header
//! and TLS SNI, method and path; checks the status and, optionally, the body. No redirects are
//! followed and no connection is reused between probes, so each probe sees the member as a new
//! client would.
//!
//! HTTPS verifies the server's certificate as [`super::tls`] configures it (the system's CA
//! store, or only the check's `ca_file:`). A failed handshake is reported in an operator's
//! words (`certificate: expired`), not rustls's.

use std::net::{IpAddr, SocketAddr};

use super::{Failure, Outcome, down, excerpt, up};
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
        .local_address(super::source_for(addr))
        .tls_danger_accept_invalid_certs(!h.verify_tls);
    if h.tls && h.verify_tls {
        b = b.tls_backend_preconfigured(super::tls::config(h)?);
    }
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
        return down(
            Failure::Tls,
            "cannot build an HTTP client (TLS setup failed)",
        );
    };
    let method = reqwest::Method::from_bytes(h.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut resp = match client.request(method, url(h, addr)).send().await {
        Ok(r) => r,
        Err(e) => {
            let (failure, reason) = request_error(&e, h, addr);
            return down(failure, reason);
        }
    };
    let status = resp.status().as_u16();
    if !h.expect_status.contains(&status) {
        return down(
            Failure::Status,
            format!("http {status} (expected {:?})", h.expect_status),
        );
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
                let (_, why) = request_error(&e, h, addr);
                return down(
                    Failure::Body,
                    format!("http {status}, body read failed: {why}"),
                );
            }
        }
    }
    judge(h, status, &body)
}

/// The verdict on a response: its status, then the body (substring, then regular expression).
/// Pure, so it can be fuzzed on its own.
pub fn judge(h: &HttpCheck, status: u16, body: &[u8]) -> Outcome {
    if !h.expect_status.contains(&status) {
        return down(
            Failure::Status,
            format!("http {status} (expected {:?})", h.expect_status),
        );
    }
    let body = &body[..body.len().min(MAX_BODY)];
    let text = String::from_utf8_lossy(body);
    if let Some(want) = &h.expect_body
        && !text.contains(want.as_str())
    {
        return down(
            Failure::Body,
            format!("http {status}, body {:?} lacks {want:?}", excerpt(body)),
        );
    }
    if let Some(re) = &h.expect_body_regex
        && !re.is_match(&text)
    {
        return down(
            Failure::Body,
            format!(
                "http {status}, body {:?} does not match {re:?}",
                excerpt(body)
            ),
        );
    }
    up(format!("http {status}"))
}

fn request_error(e: &reqwest::Error, h: &HttpCheck, addr: IpAddr) -> (Failure, String) {
    use std::error::Error;
    if let Some(tls) = rustls_error(e) {
        let name = h.host.clone().unwrap_or_else(|| addr.to_string());
        return (Failure::Tls, tls_reason(tls, &name));
    }
    // The innermost cause says what happened (refused, reset, ...).
    let mut cause: &dyn Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    if e.is_timeout() {
        (Failure::Timeout, "timeout".into())
    } else if text.contains("Connection refused") {
        (Failure::Refused, "connect refused".into())
    } else if text.contains("Connection reset") {
        (Failure::Refused, "connection reset".into())
    } else if e.is_connect() {
        (Failure::Other, format!("connect failed: {text}"))
    } else {
        (Failure::Other, text)
    }
}

/// The rustls error behind a failed request, if the TLS handshake is what failed. It sits in
/// reqwest's chain of causes inside `io::Error`s (two, nested), and `io::Error::source` skips
/// the error it wraps: so an `io::Error` is opened with `get_ref` instead.
fn rustls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        cause = match c.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => c.source(),
        };
    }
    None
}

/// A failed handshake as an operator says it: `certificate: expired`, `certificate: not valid
/// for mail.example.com`, `tls: ...`. `name` is what the certificate had to be valid for (the
/// check's host, else the member's address). Bounded and stable from probe to probe, so it
/// reads well in a health transition and in the status API.
pub(crate) fn tls_reason(e: &rustls::Error, name: &str) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = e else {
        return match e {
            // A plain HTTP server answers a ClientHello with an HTTP error page.
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                "tls: the server does not speak TLS on this port".into()
            }
            other => format!("tls: {}", short(&other.to_string())),
        };
    };
    let what = match c {
        C::UnknownIssuer => "unknown issuer".into(),
        C::Expired | C::ExpiredContext { .. } => "expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "not yet valid".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!("not valid for {name}"),
        C::Revoked => "revoked".into(),
        C::UnknownRevocationStatus => "unknown revocation status".into(),
        C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
            "revocation list expired".into()
        }
        C::BadEncoding => "malformed".into(),
        C::BadSignature => "bad signature".into(),
        C::UnhandledCriticalExtension => "unhandled critical extension".into(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "not for server authentication".into()
        }
        #[allow(deprecated)]
        C::UnsupportedSignatureAlgorithm
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "unsupported signature algorithm".into()
        }
        // webpki's errors without a rustls variant, by their `Debug` names. `CaUsedAsEndEntity`:
        // the server sent a CA certificate as its own, which is what a self-signed certificate
        // made the usual way (`openssl req -x509`) is. One without the CA flag comes as
        // `UnknownIssuer`, which `probe::tls` turns into its `SelfSigned` error.
        C::Other(o) => match o.0.to_string().as_str() {
            "CaUsedAsEndEntity" => "self-signed".into(),
            // probe::tls found a bare self-signed certificate behind `UnknownIssuer`.
            "self-signed" => "self-signed".into(),
            // rustls-platform-verifier's words for a certificate without the serverAuth purpose
            "certificate had invalid extensions" => "not for server authentication".into(),
            other => short(&words(other)),
        },
        other => short(&words(&format!("{other:?}"))),
    };
    format!("certificate: {what}")
}

/// `CertNotValidForName` → `cert not valid for name`: webpki and rustls name errors in CamelCase.
fn words(name: &str) -> String {
    if name.contains(' ') || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return name.to_string();
    }
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// At most 120 characters, cut at a character boundary.
fn short(s: &str) -> String {
    const MAX: usize = 120;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::{CertificateError as C, Error as E, OtherError};

    use super::tls_reason;

    /// webpki's errors reach us as text inside `OtherError`, as `Debug` names.
    #[derive(Debug)]
    struct Webpki(&'static str);

    impl std::fmt::Display for Webpki {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Webpki {}

    fn other(name: &'static str) -> E {
        E::InvalidCertificate(C::Other(OtherError(Arc::new(Webpki(name)))))
    }

    #[test]
    fn certificate_failures_read_as_an_operator_says_them() {
        let name = "mail.example.test";
        for (e, want) in [
            (other("CaUsedAsEndEntity"), "certificate: self-signed"),
            (C::UnknownIssuer.into(), "certificate: unknown issuer"),
            (C::Expired.into(), "certificate: expired"),
            (C::NotValidYet.into(), "certificate: not yet valid"),
            (
                C::NotValidForName.into(),
                "certificate: not valid for mail.example.test",
            ),
            (C::Revoked.into(), "certificate: revoked"),
            (C::BadSignature.into(), "certificate: bad signature"),
            (
                other("certificate had invalid extensions"),
                "certificate: not for server authentication",
            ),
            (
                other("PathLenConstraintViolated"),
                "certificate: path len constraint violated",
            ),
            (
                E::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                "tls: the server does not speak TLS on this port",
            ),
            (
                E::AlertReceived(rustls::AlertDescription::HandshakeFailure),
                "tls: received fatal alert: HandshakeFailure",
            ),
        ] {
            assert_eq!(tls_reason(&e, name), want, "{e:?}");
        }
    }

    #[test]
    fn a_long_reason_is_cut() {
        let long: &'static str = "x".repeat(500).leak();
        let r = tls_reason(&other(long), "n");
        assert!(r.len() < 140, "{r}");
        assert!(r.ends_with("..."), "{r}");
    }
}
