//! `checks:` → check specs: exactly one kind each, sane timing (timeout ≤ interval, rise and
//! fall ≥ 1), ports in range, regular expressions that compile, CA files that hold
//! certificates.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::diag::Reporter;
use super::format::{CheckFile, Entries, Spanned};
use super::values::{self, Zero, loc};
use crate::model::{
    CaCerts, Check, CheckKind, CheckSpec, HttpCheck, Pattern, Thresholds, default_fast_interval,
};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Successes in a row that bring a member up, failures in a row that take it down.
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;
/// A `ca_file:` larger than this is refused (the whole Mozilla bundle is about 220 KB).
const MAX_CA_FILE: u64 = 4 << 20;

/// Checks by name.
pub fn checks(
    entries: &Entries<Spanned<CheckFile>>,
    r: &mut Reporter,
) -> HashMap<String, Arc<Check>> {
    let mut out = HashMap::new();
    for (key, spec) in &entries.0 {
        let base = format!("checks.{}", key.value);
        if let Some(spec) = check(&base, key, &spec.value, r) {
            out.insert(
                key.value.clone(),
                Arc::new(Check {
                    name: key.value.clone(),
                    spec,
                }),
            );
        }
    }
    out
}

fn regex(s: &Spanned<String>, path: &str, r: &mut Reporter) -> Option<Pattern> {
    match Pattern::new(&s.value) {
        Ok(p) => Some(p),
        Err(e) => {
            // regex errors span several lines with a caret; the last line says what is wrong.
            let text = e.to_string();
            let why = text
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .trim_start_matches("error: ");
            r.error(
                loc(s),
                path,
                format!("{:?} is not a regular expression: {why}", s.value),
            );
            None
        }
    }
}

fn check(base: &str, key: &Spanned<String>, c: &CheckFile, r: &mut Reporter) -> Option<CheckSpec> {
    let kinds = [
        c.tcp.is_some(),
        c.http.is_some(),
        c.exec.is_some(),
        c.file.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        r.error(
            loc(key),
            base,
            "give exactly one kind of check: tcp, http, exec or file",
        );
        return None;
    }
    let errors = r.error_count();
    let interval = values::duration_or(
        c.interval.as_ref(),
        DEFAULT_INTERVAL,
        Zero::Allowed,
        &format!("{base}.interval"),
        r,
    );
    let timeout = values::duration_or(
        c.timeout.as_ref(),
        DEFAULT_TIMEOUT,
        Zero::Allowed,
        &format!("{base}.timeout"),
        r,
    );
    if let (Some(i), Some(spec)) = (interval, &c.interval)
        && i < MIN_INTERVAL
    {
        r.error(
            loc(spec),
            format!("{base}.interval"),
            "must be at least 100ms",
        );
    }
    if let (Some(i), Some(t)) = (interval, timeout)
        && t > i
    {
        let at = c.timeout.as_ref().map_or(loc(key), loc);
        r.error(
            at,
            format!("{base}.timeout"),
            format!(
                "{} is longer than the interval ({}); a probe must end before the next starts",
                humantime::format_duration(t),
                humantime::format_duration(i)
            ),
        );
    }
    let count = |v: &Option<Spanned<i64>>, what: &str, default: u32, r: &mut Reporter| match v {
        None => Some(default),
        Some(v) => values::int(v, 1..=1000, &format!("{base}.{what}"), r).map(|n| n as u32),
    };
    let rise = count(&c.rise, "rise", DEFAULT_RISE, r);
    let fall = count(&c.fall, "fall", DEFAULT_FALL, r);
    let fall_on_refused = c.fall_on_refused.as_ref().and_then(|v| {
        let most = fall.unwrap_or(1).max(1);
        values::int(
            v,
            1..=i64::from(most),
            &format!("{base}.fall_on_refused"),
            r,
        )
        .map(|n| n as u32)
    });
    // The paced intervals: at least 100 ms, and no longer than the interval they speed up
    // (fast) or at least the probe's timeout (down, like interval).
    let paced = |v: &Option<Spanned<String>>, what: &str, default: Duration, r: &mut Reporter| {
        let d = values::duration_or(
            v.as_ref(),
            default,
            Zero::Refused,
            &format!("{base}.{what}"),
            r,
        )?;
        if let Some(spec) = v {
            if d < MIN_INTERVAL {
                r.error(
                    loc(spec),
                    format!("{base}.{what}"),
                    "must be at least 100ms",
                );
                return None;
            }
            if let Some(t) = timeout
                && what == "down_interval"
                && t > d
            {
                r.error(
                    loc(spec),
                    format!("{base}.{what}"),
                    format!(
                        "{} is shorter than the timeout ({}); a probe must end before the next starts",
                        humantime::format_duration(d),
                        humantime::format_duration(t)
                    ),
                );
                return None;
            }
        }
        Some(d)
    };
    let fast_interval = interval.and_then(|i| {
        let fast = paced(&c.fast_interval, "fast_interval", default_fast_interval(i), r)?;
        if fast > i {
            let at = c.fast_interval.as_ref().map_or(loc(key), loc);
            r.error(
                at,
                format!("{base}.fast_interval"),
                format!(
                    "{} is longer than the interval ({}): it is the faster pace while a member is in transition",
                    humantime::format_duration(fast),
                    humantime::format_duration(i)
                ),
            );
            return None;
        }
        Some(fast)
    });
    let down_interval = interval.and_then(|i| paced(&c.down_interval, "down_interval", i, r));

    let kind = if let Some(t) = &c.tcp {
        let t = &t.value;
        let port = values::int(&t.port, 1..=65535, &format!("{base}.tcp.port"), r);
        let banner = t
            .expect_banner
            .as_ref()
            .map(|b| regex(b, &format!("{base}.tcp.expect_banner"), r));
        CheckKind::Tcp {
            port: port? as u16,
            expect_banner: banner.flatten(),
        }
    } else if let Some(h) = &c.http {
        let hp = format!("{base}.http");
        let h = &h.value;
        let tls = h.tls.unwrap_or(false);
        let port = match &h.port {
            Some(p) => values::int(p, 1..=65535, &format!("{hp}.port"), r).map(|p| p as u16),
            None => Some(if tls { 443 } else { 80 }),
        };
        let method = h
            .method
            .as_ref()
            .map_or("GET".to_string(), |m| m.value.to_ascii_uppercase());
        if !method.bytes().all(|b| b.is_ascii_uppercase()) || method.is_empty() {
            r.error(
                h.method.as_ref().map_or(loc(key), loc),
                format!("{hp}.method"),
                format!("{method:?} is not an HTTP method (GET, HEAD, ...)"),
            );
        }
        let path = h.path.as_ref().map_or("/".to_string(), |p| p.value.clone());
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            r.error(
                h.path.as_ref().map_or(loc(key), loc),
                format!("{hp}.path"),
                format!("{path:?} must start with / and hold no spaces"),
            );
        }
        if let Some(host) = &h.host
            && (host.value.is_empty() || host.value.chars().any(|c| c.is_whitespace() || c == '/'))
        {
            r.error(
                loc(host),
                format!("{hp}.host"),
                format!("{:?} is not a host name", host.value),
            );
        }
        let mut statuses = Vec::new();
        for (i, s) in h.expect_status.iter().flatten().enumerate() {
            if let Some(s) = values::int(s, 100..=599, &format!("{hp}.expect_status[{i}]"), r) {
                statuses.push(s as u16);
            }
        }
        if statuses.is_empty() {
            statuses.push(200);
        }
        let body_regex = h
            .expect_body_regex
            .as_ref()
            .and_then(|b| regex(b, &format!("{hp}.expect_body_regex"), r));
        let verify_tls = h.verify_tls.unwrap_or(true);
        let ca = match &h.ca_file {
            None => None,
            Some(f) if !tls => {
                r.error(
                    loc(f),
                    format!("{hp}.ca_file"),
                    "is for HTTPS checks: add `tls: true`",
                );
                None
            }
            Some(f) => {
                if !verify_tls {
                    r.warning(
                        loc(f),
                        format!("{hp}.ca_file"),
                        "has no effect with `verify_tls: false`",
                    );
                }
                ca_file(f, &format!("{hp}.ca_file"), r)
            }
        };
        CheckKind::Http(HttpCheck {
            port: port?,
            tls,
            host: h.host.as_ref().map(|h| h.value.clone()),
            method,
            path,
            expect_status: statuses,
            expect_body: h.expect_body.as_ref().map(|b| b.value.clone()),
            expect_body_regex: body_regex,
            verify_tls,
            ca,
        })
    } else if let Some(e) = &c.exec {
        if e.value.command.value.is_empty() || e.value.command.value[0].is_empty() {
            r.error(loc(&e.value.command), format!("{base}.exec.command"), "give the program and its arguments as a list, e.g. [/usr/local/bin/check, --quick]");
        }
        CheckKind::Exec {
            command: e.value.command.value.clone(),
        }
    } else {
        let f = &c.file.as_ref()?.value;
        let dir = r.file().parent().unwrap_or(Path::new(".")).to_path_buf();
        CheckKind::File {
            path: dir.join(&f.path.value),
        }
    };
    if r.error_count() > errors {
        return None;
    }
    Some(CheckSpec {
        kind,
        interval: interval?,
        fast_interval: fast_interval?,
        down_interval: down_interval?,
        timeout: timeout?,
        thresholds: Thresholds {
            rise: rise?,
            fall: fall?,
            fall_on_refused,
        },
    })
}

/// `ca_file:` of an HTTPS check: one or more PEM certificates, read now so that a probe never
/// reads a file. A relative path is relative to the zone file's directory, as for `file:` checks
/// and `records_file:`. Each certificate must be usable as a trust anchor.
fn ca_file(f: &Spanned<String>, path: &str, r: &mut Reporter) -> Option<CaCerts> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::{self, PemObject};
    use std::io::Read;

    let file = r.file().parent().unwrap_or(Path::new(".")).join(&f.value);
    let shown = file.display().to_string();
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(&file).and_then(|h| h.take(MAX_CA_FILE + 1).read_to_end(&mut bytes));
    let problem = match read {
        Err(e) => Some(format!("cannot read {shown}: {e}")),
        Ok(_) if bytes.len() as u64 > MAX_CA_FILE => Some(format!(
            "{shown} is larger than {} MiB; it should hold a few CA certificates",
            MAX_CA_FILE >> 20
        )),
        Ok(_) => None,
    };
    if let Some(p) = problem {
        r.error(loc(f), path, p);
        return None;
    }
    let mut der = Vec::new();
    for (i, c) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                let why = match e {
                    pem::Error::MissingSectionEnd { .. } => "a section has no END line".into(),
                    pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".into(),
                    pem::Error::Base64Decode(_) => "a section is not valid base64".into(),
                    other => other.to_string(),
                };
                r.error(loc(f), path, format!("{shown} is not valid PEM: {why}"));
                return None;
            }
        };
        if rustls::RootCertStore::empty().add(c.clone()).is_err() {
            r.error(
                loc(f),
                path,
                format!(
                    "{shown}: certificate {} is not a valid X.509 certificate",
                    i + 1
                ),
            );
            return None;
        }
        der.push(c.to_vec());
    }
    if der.is_empty() {
        let hint = if bytes.first() == Some(&0x30) {
            " (it looks like DER: convert it with `openssl x509 -inform der -out ca.pem`)"
        } else {
            ""
        };
        r.error(
            loc(f),
            path,
            format!("{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----){hint}"),
        );
        return None;
    }
    Some(CaCerts {
        path: file,
        der: der.into(),
    })
}
