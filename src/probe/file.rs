//! `file`: up or down as another tool wrote it, one `ADDRESS up|down` line per member
//! (`#` starts a comment). The file is re-read when its modification time or size changes;
//! a member it does not list, or a file that cannot be read, is down.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::SystemTime;

use super::{Failure, Outcome, down, up};

#[derive(Default)]
pub struct Cache {
    stamp: Option<(SystemTime, u64)>,
    states: HashMap<IpAddr, bool>,
}

pub async fn probe(path: &Path, addr: IpAddr, cache: &mut Cache) -> Outcome {
    let meta = match tokio::fs::metadata(path).await {
        Ok(m) => m,
        Err(e) => {
            return down(
                Failure::Other,
                format!("cannot read {}: {e}", path.display()),
            );
        }
    };
    let stamp = (
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    );
    if cache.stamp != Some(stamp) {
        let text = match tokio::fs::read_to_string(path).await {
            Ok(t) => t,
            Err(e) => {
                return down(
                    Failure::Other,
                    format!("cannot read {}: {e}", path.display()),
                );
            }
        };
        cache.states = parse(&text);
        cache.stamp = Some(stamp);
    }
    match cache.states.get(&addr) {
        Some(true) => up(format!("{} says up", path.display())),
        Some(false) => down(Failure::File, format!("{} says down", path.display())),
        None => down(Failure::File, format!("not listed in {}", path.display())),
    }
}

/// `ADDRESS up|down` lines; anything else is ignored.
pub fn parse(text: &str) -> HashMap<IpAddr, bool> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let (Some(a), Some(s)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(a) = a.parse::<IpAddr>() else { continue };
        match s.to_ascii_lowercase().as_str() {
            "up" => out.insert(a, true),
            "down" => out.insert(a, false),
            _ => None,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_lines_and_ignores_junk() {
        let m = super::parse(
            "# states\n10.0.0.1 up\n10.0.0.2 DOWN # maintenance\n::1 up\njunk\n10.0.0.3 maybe\n",
        );
        assert_eq!(m.len(), 3);
        assert!(!m[&"10.0.0.2".parse().unwrap()]);
        assert!(m[&"::1".parse().unwrap()]);
    }
}
