//! The checks every setting shares, written once: where a value is, a number in range, a TTL,
//! a duration, a domain name. Messages say what was written and what is allowed.

use std::ops::RangeInclusive;
use std::time::Duration;

use hickory_proto::rr::Name;

use super::diag::{Loc, Reporter};
use super::format::Spanned;

/// The largest TTL (RFC 2181 §8).
pub const MAX_TTL: i64 = 0x7fff_ffff;

/// The only version of the file formats so far.
pub const FORMAT_VERSION: i64 = 1;

/// A file's optional `version:`: this gslbd reads version 1.
pub fn version(v: Option<&Spanned<i64>>, r: &mut Reporter) {
    if let Some(v) = v
        && v.value != FORMAT_VERSION
    {
        r.error(
            loc(v),
            "version",
            format!(
                "{} is not a version this gslbd reads: write version: {FORMAT_VERSION} (or leave it out)",
                v.value
            ),
        );
    }
}

/// Where a value was written.
pub fn loc<T>(s: &Spanned<T>) -> Loc {
    Loc::from_saphyr(s.referenced)
}

/// An integer within `range`; a diagnostic at its place otherwise.
pub fn int(
    v: &Spanned<i64>,
    range: RangeInclusive<i64>,
    path: &str,
    r: &mut Reporter,
) -> Option<i64> {
    if range.contains(&v.value) {
        return Some(v.value);
    }
    r.error(
        loc(v),
        path,
        format!("{} is not in {}..={}", v.value, range.start(), range.end()),
    );
    None
}

/// A TTL: 0..=[`MAX_TTL`] seconds.
pub fn ttl(v: &Spanned<i64>, path: &str, r: &mut Reporter) -> Option<u32> {
    if (0..=MAX_TTL).contains(&v.value) {
        return Some(v.value as u32);
    }
    r.error(loc(v), path, bad_ttl(v.value));
    None
}

/// What is wrong with a TTL out of range (also for master files, which have no `Spanned`).
pub fn bad_ttl(t: i64) -> String {
    format!("{t} is not a valid TTL: use 0..={MAX_TTL} seconds (RFC 2181 §8)")
}

/// Whether a duration may be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zero {
    Allowed,
    Refused,
}

/// A duration as people write it (`500ms`, `5s`, `1m`; spaces around it do not matter).
pub fn duration(v: &Spanned<String>, zero: Zero, path: &str, r: &mut Reporter) -> Option<Duration> {
    let text = v.value.trim();
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() && zero == Zero::Refused => {
            r.error(
                loc(v),
                path,
                format!("{text:?} is not a duration above 0; write e.g. 500ms, 5s, 1m"),
            );
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            r.error(
                loc(v),
                path,
                format!("{text:?} is not a duration ({e}); write e.g. 500ms, 5s, 1m"),
            );
            None
        }
    }
}

/// An optional duration: `default` when not given.
pub fn duration_or(
    v: Option<&Spanned<String>>,
    default: Duration,
    zero: Zero,
    path: &str,
    r: &mut Reporter,
) -> Option<Duration> {
    v.map_or(Some(default), |v| duration(v, zero, path, r))
}

/// A domain name: `@` is the origin; a name ending in `.` is absolute; anything else is relative
/// to the origin (as in RFC 1035 master files).
pub fn name(s: &str, origin: Option<&Name>) -> Result<Name, String> {
    let s = s.trim();
    if s == "@" {
        return origin
            .cloned()
            .ok_or_else(|| "\"@\" needs an origin".to_string());
    }
    if s.is_empty() {
        return Err("empty name".into());
    }
    let n = Name::from_ascii(s).map_err(|e| format!("{s:?} is not a domain name: {e}"))?;
    if n.is_fqdn() {
        return Ok(n);
    }
    match origin {
        Some(o) => n
            .append_domain(o)
            .map_err(|e| format!("{s:?} is too long within {o}: {e}")),
        None => {
            let mut n = n;
            n.set_fqdn(true);
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diag::Diagnostics;

    fn spanned<T>(value: T) -> Spanned<T> {
        let at = serde_saphyr::Location::UNKNOWN;
        Spanned::new(value, at, at)
    }

    #[test]
    fn durations_and_numbers_say_what_is_allowed() {
        let mut d = Diagnostics::default();
        let mut r = Reporter::new(std::path::Path::new("x.yaml"), &mut d);
        assert_eq!(
            duration(&spanned(" 5s ".into()), Zero::Refused, "a", &mut r),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            duration(&spanned("0s".into()), Zero::Allowed, "b", &mut r),
            Some(Duration::ZERO)
        );
        assert_eq!(
            duration(&spanned("0s".into()), Zero::Refused, "c", &mut r),
            None
        );
        assert_eq!(
            duration(&spanned("soon".into()), Zero::Allowed, "d", &mut r),
            None
        );
        assert_eq!(int(&spanned(7), 1..=9, "e", &mut r), Some(7));
        assert_eq!(int(&spanned(0), 1..=9, "f", &mut r), None);
        assert_eq!(ttl(&spanned(-1), "g", &mut r), None);
        let text = d.to_string();
        for want in [
            "c: \"0s\" is not a duration above 0",
            "d: \"soon\" is not a duration (",
            "f: 0 is not in 1..=9",
            "g: -1 is not a valid TTL",
        ] {
            assert!(text.contains(want), "{want:?} missing from {text}");
        }
        assert_eq!(d.error_count(), 4, "{text}");
    }
}
