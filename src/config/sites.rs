//! `sites:` and `nets_file:` → the zone's topology map: prefixes checked for host bits and
//! duplicates, fallbacks naming known sites or `any`; GeoIP matches (ASNs, subdivisions,
//! countries, continents) checked for valid codes and for being in one site only; coordinates
//! within range.

use std::collections::HashMap;
use std::path::Path;

use super::diag::{Loc, Reporter};
use super::format::SiteFile;
use super::format::{Entries, Spanned};
use super::values::loc;
use crate::model::{Site, SiteRef};

/// Sites of one zone: the compiled site map numbers them in 16 bits, with one value for "none".
pub const MAX_SITES: usize = u16::MAX as usize - 1;

/// `sites:` and `nets_file:` → the topology map. Prefixes are checked for host bits and
/// duplicates; fallbacks must name known sites or `any`.
pub fn sites(
    entries: Option<&Entries<Spanned<SiteFile>>>,
    nets_file: Option<&Spanned<String>>,
    r: &mut Reporter,
) -> Vec<Site> {
    let Some(entries) = entries else {
        if let Some(f) = nets_file {
            r.error(
                loc(f),
                "nets_file",
                "needs `sites:` naming the sites it maps to",
            );
        }
        return Vec::new();
    };
    let names: Vec<&str> = entries.0.iter().map(|(k, _)| k.value.as_str()).collect();
    if names.len() > MAX_SITES {
        let (key, _) = &entries.0[MAX_SITES];
        r.error(
            loc(key),
            "sites",
            format!("{} sites; a zone may have at most {MAX_SITES}", names.len()),
        );
        return Vec::new();
    }
    let mut seen: HashMap<ipnet::IpNet, String> = HashMap::new();
    let mut out: Vec<Site> = Vec::new();
    let mut add_net =
        |text: &str, site: usize, at: Loc, path: &str, out: &mut Vec<Site>, r: &mut Reporter| {
            let net: ipnet::IpNet = match text.trim().parse() {
                Ok(n) => n,
                Err(_) => {
                    return r.error(
                        at,
                        path,
                        format!("{text:?} is not a prefix (e.g. 10.1.0.0/16 or 2001:db8::/48)"),
                    );
                }
            };
            if net.trunc() != net {
                return r.error(
                    at,
                    path,
                    format!(
                        "{text:?} has bits set after the prefix; did you mean {}?",
                        net.trunc()
                    ),
                );
            }
            if let Some(other) = seen.get(&net) {
                return r.error(
                    at,
                    path,
                    format!("{net} is already mapped to site {other:?}"),
                );
            }
            seen.insert(net, names[site].to_string());
            out[site].nets.push(net);
        };
    for (key, _) in &entries.0 {
        out.push(Site {
            name: key.value.clone(),
            ..Site::default()
        });
    }
    let mut geo_seen: HashMap<String, String> = HashMap::new();
    for (i, (key, site)) in entries.0.iter().enumerate() {
        let base = format!("sites.{}", key.value);
        let at = loc(site);
        let (nets, fallback) = match &site.value {
            SiteFile::Nets(n) => (n.as_slice(), None),
            SiteFile::Full(m) => {
                geo_matches(m, &base, at, names[i], &mut geo_seen, &mut out[i], r);
                (m.nets.as_slice(), m.fallback.as_deref())
            }
        };
        for (j, n) in nets.iter().enumerate() {
            add_net(n, i, at, &format!("{base}.nets[{j}]"), &mut out, r);
        }
        for (j, f) in fallback.unwrap_or(&[]).iter().enumerate() {
            let path = format!("{base}.fallback[{j}]");
            match names.iter().position(|n| n == f) {
                _ if f == "any" => out[i].fallback.push(SiteRef::Any),
                Some(t) if t == i => r.error(at, path, "a site cannot fall back to itself"),
                Some(t) => out[i].fallback.push(SiteRef::Site(t)),
                None => r.error(
                    at,
                    path,
                    format!("no site named {f:?} (known: {}, or any)", names.join(", ")),
                ),
            }
        }
    }
    if let Some(f) = nets_file {
        let path = r.file().parent().unwrap_or(Path::new(".")).join(&f.value);
        match std::fs::read_to_string(&path) {
            Err(e) => r.error(
                loc(f),
                "nets_file",
                format!("cannot read {}: {e}", path.display()),
            ),
            Ok(text) => {
                for (n, line) in text.lines().enumerate() {
                    let line = line.split('#').next().unwrap_or("").trim();
                    if line.is_empty() {
                        continue;
                    }
                    let p = format!("nets_file ({} line {})", f.value, n + 1);
                    let mut words = line.split_whitespace();
                    let (Some(net), Some(site), None) = (words.next(), words.next(), words.next())
                    else {
                        r.error(loc(f), p, format!("{line:?} is not \"CIDR SITE\""));
                        continue;
                    };
                    match names.iter().position(|s| *s == site) {
                        Some(i) => add_net(net, i, loc(f), &p, &mut out, r),
                        None => r.error(loc(f), p, format!("no site named {site:?} in `sites:`")),
                    }
                }
            }
        }
    }
    out
}

/// One list of codes of a site (`kind`: countries, ...), each parsed, and kept if no other
/// site has it (`once`).
fn codes<T>(
    list: &[String],
    kind: &str,
    parse: fn(&str) -> Option<T>,
    example: &str,
    (base, at): (&str, Loc),
    once: &mut dyn FnMut(String, &str, &mut Reporter) -> bool,
    r: &mut Reporter,
) -> Vec<T> {
    let mut ok = Vec::new();
    for (j, c) in list.iter().enumerate() {
        let path = format!("{base}.{kind}[{j}]");
        match parse(c.trim()) {
            None => r.error(at, path, format!("{c:?} is not {example}")),
            Some(v) => {
                if once(
                    format!("{kind} {}", c.trim().to_ascii_uppercase()),
                    &path,
                    r,
                ) {
                    ok.push(v);
                }
            }
        }
    }
    ok
}

/// A site's GeoIP matches and coordinates. `seen` holds every match so far (`country DE`) and
/// its site: a match belongs to one site.
fn geo_matches(
    m: &super::format::SiteMapFile,
    base: &str,
    at: Loc,
    name: &str,
    seen: &mut HashMap<String, String>,
    site: &mut Site,
    r: &mut Reporter,
) {
    use crate::geo::codes;
    let mut once = |what: String, path: &str, r: &mut Reporter| {
        if let Some(other) = seen.get(&what) {
            r.error(at, path, format!("{what} is already in site {other:?}"));
            return false;
        }
        seen.insert(what, name.to_string());
        true
    };
    for (j, a) in m.asns.iter().enumerate() {
        let path = format!("{base}.asns[{j}]");
        let n = match a {
            super::format::AsnFile::Number(n) => u32::try_from(*n).ok(),
            super::format::AsnFile::Text(t) => t
                .trim()
                .strip_prefix("AS")
                .or(t.trim().strip_prefix("as"))
                .unwrap_or(t.trim())
                .parse()
                .ok(),
        };
        match n {
            Some(n) if n > 0 => {
                if once(format!("AS{n}"), &path, r) {
                    site.asns.push(n);
                }
            }
            _ => r.error(
                at,
                path,
                format!("{a:?} is not an AS number (e.g. 4773 or AS4773)"),
            ),
        }
    }
    site.subdivisions = codes(
        &m.subdivisions,
        "subdivisions",
        codes::subdivision,
        "an ISO 3166-2 subdivision (COUNTRY-CODE, e.g. US-CA or DE-BY)",
        (base, at),
        &mut once,
        r,
    );
    site.countries = codes(
        &m.countries,
        "countries",
        codes::country,
        "an ISO 3166-1 country code (two letters, e.g. DE, US, GB)",
        (base, at),
        &mut once,
        r,
    );
    site.continents = codes(
        &m.continents,
        "continents",
        codes::continent,
        "a continent code: AF, AN, AS, EU, NA, OC or SA",
        (base, at),
        &mut once,
        r,
    );
    if let Some(c) = &m.coordinates {
        let path = format!("{base}.coordinates");
        match c.as_slice() {
            [lat, lon] if (-90.0..=90.0).contains(lat) && (-180.0..=180.0).contains(lon) => {
                site.coordinates = Some((*lat as f32, *lon as f32));
            }
            [lat, lon] => r.error(
                at,
                path,
                format!("[{lat}, {lon}] is out of range: latitude -90..90, longitude -180..180"),
            ),
            _ => r.error(
                at,
                path,
                "give [latitude, longitude] in degrees, e.g. [50.11, 8.68]",
            ),
        }
    }
}
