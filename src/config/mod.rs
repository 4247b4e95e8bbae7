//! Loading: files → file format (serde) → validation → [`model::Config`].
//!
//! ```text
//!   gslbd.yaml ──from_yaml──▶ ServerFile ──server.rs──▶ model::Server
//!   zones/*.yaml ──from_yaml──▶ ZoneFile ──zone::validate()──▶ model::Zone
//!                                        (+ records_file via hickory's RFC 1035 parser)
//! ```
//!
//! [`load`] is the one function behind `gslbd check`, start-up and reload, so what `check`
//! accepts is exactly what `serve` runs. It collects every problem it can find instead of
//! stopping at the first.

mod checks;
pub mod diag;
pub mod format;
mod names;
mod pools;
mod records;
mod server;
mod sites;
mod values;
pub(crate) mod zone;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::model;
use diag::{Diagnostics, Loc, Reporter};

/// Config files larger than this are refused before parsing (a zone of 100,000 names is ~5 MB).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The default server settings file, read from the working directory if present.
pub const DEFAULT_CONFIG: &str = "gslbd.yaml";

/// Where to load from, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config`: must exist when given. Without it, `gslbd.yaml` is read if present.
    pub config: Option<PathBuf>,
    /// `--zones`: overrides `zones_dir` from the config.
    pub zones_dir: Option<PathBuf>,
}

/// A loaded config and its warnings.
#[derive(Debug)]
pub struct Loaded {
    pub config: model::Config,
    pub warnings: Diagnostics,
}

/// Load and validate everything `serve` needs. On any error, every diagnostic found is returned.
pub fn load(sources: &Sources) -> Result<Loaded, Diagnostics> {
    let mut diags = Diagnostics::default();
    let config_path = match &sources.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    };
    let settings = config_path
        .as_ref()
        .map(|p| server::server_file(p, &mut diags));
    // Without readable settings, the defaults are not what the user meant: nothing to check.
    let settings_read = !matches!(settings, Some(None));
    let (mut server, state_dir_loc, geo) = settings
        .flatten()
        .map_or_else(Default::default, |s| (s.server, s.state_dir_loc, s.geo));
    if let Some(dir) = &sources.zones_dir {
        server.zones_dir = dir.clone();
    }
    // Overrides and last-known health are saved there: find out now, not when a drain fails.
    let unusable = settings_read
        .then(|| server::state_dir_problem(&server.state_dir, server.user.as_deref()))
        .flatten();
    if let Some(problem) = unusable {
        match (&config_path, state_dir_loc) {
            (Some(path), Some(loc)) => {
                Reporter::new(path, &mut diags).error(loc, "state_dir", problem)
            }
            _ => Reporter::new(&server.state_dir, &mut diags).error(
                Loc::FILE,
                "",
                format!("{problem} (the default state_dir; set `state_dir:` in gslbd.yaml)"),
            ),
        }
    }

    let mut zones: Vec<model::Zone> = Vec::new();
    let mut origins: HashMap<String, PathBuf> = HashMap::new();
    for path in zone_files(&server.zones_dir, &mut diags) {
        let Some(text) = read(&path, &mut diags) else {
            continue;
        };
        let mut r = Reporter::new(&path, &mut diags);
        let Some(loaded) = zone::load(&text, &mut r) else {
            continue;
        };
        let key = loaded.origin.to_lowercase().to_ascii();
        if let Some(first) = origins.get(&key) {
            r.error(
                loaded.origin_loc,
                "zone",
                format!(
                    "zone {} is already defined in {}; each zone must be in one file",
                    loaded.origin,
                    first.display()
                ),
            );
            continue;
        }
        origins.insert(key, path.clone());
        zones.extend(loaded.zone);
    }

    geo_checks(&zones, geo.as_ref(), &mut diags);

    // Report in file order, then by position, as a compiler would.
    diags.items.sort_by(|a, b| {
        (&a.file, a.loc.line, a.loc.column).cmp(&(&b.file, b.loc.line, b.loc.column))
    });
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Loaded {
        config: model::Config { server, zones, geo },
        warnings: diags,
    })
}

/// Sites that match by GeoIP need the databases of `geoip:`; a site that no record of them
/// reaches is a warning (a typo'd country, or a Country database where subdivisions are used).
fn geo_checks(
    zones: &[model::Zone],
    geo: Option<&std::sync::Arc<crate::geo::GeoDb>>,
    diags: &mut Diagnostics,
) {
    for z in zones {
        let mut r = Reporter::new(&z.source, diags);
        for s in &z.sites {
            let base = format!("sites.{}", s.name);
            let by_location =
                !(s.countries.is_empty() && s.continents.is_empty() && s.subdivisions.is_empty());
            if by_location && geo.is_none_or(|g| g.locations().is_empty()) {
                r.error(
                    Loc::FILE,
                    &base,
                    "countries, continents and subdivisions need `geoip: { database: ... }` in gslbd.yaml",
                );
            }
            if !s.asns.is_empty() && !geo.is_some_and(|g| g.has_asn()) {
                r.error(
                    Loc::FILE,
                    &base,
                    "asns need `geoip: { asn_database: ... }` in gslbd.yaml",
                );
            }
        }
        if let Some(p) = z.pools.iter().find(|p| p.policy.nearest)
            && geo.is_none_or(|g| g.locations().is_empty())
        {
            r.error(
                Loc::FILE,
                format!("pools.{}.policy", p.name),
                "nearest needs the clients' coordinates: `geoip: { database: ... }` in gslbd.yaml (a City database)",
            );
        }
        let Some(g) = geo else { continue };
        if let Some(placer) = crate::select::place::Placer::build(&z.sites, Some(g)) {
            for s in placer.unreachable(&z.sites) {
                r.warning(
                    Loc::FILE,
                    format!("sites.{}", z.sites[s].name),
                    "no network of the GeoIP databases is placed in this site: check its asns, subdivisions, countries and continents",
                );
            }
        }
    }
}

/// Read a config file as UTF-8 text, refusing huge files.
fn read(path: &Path, diags: &mut Diagnostics) -> Option<String> {
    let mut r = Reporter::new(path, diags);
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            r.error(Loc::FILE, "", format!("cannot read: {e}"));
            return None;
        }
    };
    if meta.len() > MAX_FILE_BYTES {
        r.error(
            Loc::FILE,
            "",
            format!(
                "file is {} bytes; the limit is {MAX_FILE_BYTES}",
                meta.len()
            ),
        );
        return None;
    }
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(e) => {
                r.error(
                    Loc::FILE,
                    "",
                    format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
                );
                None
            }
        },
        Err(e) => {
            r.error(Loc::FILE, "", format!("cannot read: {e}"));
            None
        }
    }
}

/// The zone files of a directory: `*.yaml` and `*.yml`, sorted by name.
fn zone_files(dir: &Path, diags: &mut Diagnostics) -> Vec<PathBuf> {
    let mut r = Reporter::new(dir, diags);
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            r.error(
                Loc::FILE,
                "",
                format!("cannot read the zones directory: {e}"),
            );
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        r.error(
            Loc::FILE,
            "",
            "no zone files (*.yaml) in the zones directory",
        );
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use format::{ServerFile, from_yaml};

    #[test]
    fn yaml_errors_carry_plain_messages_and_locations() {
        let e = from_yaml::<ServerFile>("listen: [\"a\"]\nbogus: 1\n").unwrap_err();
        assert_eq!(e.loc.line, 2, "{e:?}");
        assert!(e.message.contains("bogus"), "{e:?}");
        assert!(!e.message.contains(" at line "), "{e:?}");
    }

    /// `version: 1` is accepted in both kinds of file, anything else refused at its place.
    #[test]
    fn files_may_say_their_format_version() {
        let d = tempfile::tempdir().unwrap();
        let zones = d.path().join("zones");
        std::fs::create_dir(&zones).unwrap();
        let zone = |v: i64| {
            format!(
                "version: {v}\nzone: v.test.\nsoa: {{ mname: ns1.v.test., rname: h.v.test. }}\nns: [ns1.v.test.]\nrecords:\n  ns1: {{ A: [192.0.2.1] }}\n"
            )
        };
        std::fs::write(zones.join("v.yaml"), zone(1)).unwrap();
        let config = d.path().join("gslbd.yaml");
        std::fs::write(&config, "version: 1\nstate_dir: state\n").unwrap();
        let sources = Sources {
            config: Some(config.clone()),
            zones_dir: Some(zones.clone()),
        };
        assert!(load(&sources).is_ok());
        std::fs::write(zones.join("v.yaml"), zone(2)).unwrap();
        std::fs::write(&config, "version: 7\n").unwrap();
        let text = load(&sources).unwrap_err().to_string();
        assert!(
            text.contains("gslbd.yaml:1:10: version: 7 is not a version this gslbd reads"),
            "{text}"
        );
        assert!(
            text.contains("v.yaml:1:10: version: 2 is not a version"),
            "{text}"
        );
    }

    /// `xdp:` is read into the model, and every wrong field is named at its place.
    #[test]
    fn xdp_settings_are_checked_field_by_field() {
        let d = tempfile::tempdir().unwrap();
        let zones = d.path().join("zones");
        std::fs::create_dir(&zones).unwrap();
        std::fs::write(
            zones.join("x.yaml"),
            "zone: x.test.\nsoa: { mname: ns1.x.test., rname: h.x.test. }\nns: [ns1.x.test.]\nrecords:\n  ns1: { A: [192.0.2.1] }\n",
        )
        .unwrap();
        let config = d.path().join("gslbd.yaml");
        let sources = Sources {
            config: Some(config.clone()),
            zones_dir: Some(zones),
        };
        std::fs::write(
            &config,
            "state_dir: state\nxdp: { interface: eth0, addresses: [192.0.2.53, \"2001:db8::53\"], queues: 2, mode: native }\n",
        )
        .unwrap();
        let x = load(&sources).unwrap().config.server.xdp.unwrap();
        assert_eq!(x.interface, "eth0");
        assert_eq!(x.addresses.len(), 2);
        assert_eq!(x.queues, Some(2));
        assert_eq!(x.mode, model::XdpMode::Native);
        std::fs::write(
            &config,
            "state_dir: state\nxdp: { interface: eth0, addresses: [192.0.2.53] }\n",
        )
        .unwrap();
        let x = load(&sources).unwrap().config.server.xdp.unwrap();
        assert_eq!((x.queues, x.mode), (None, model::XdpMode::Auto));
        for (xdp, expected) in [
            (
                "{ addresses: [192.0.2.53] }",
                "gslbd.yaml:2:6: xdp.interface: missing",
            ),
            ("{ interface: eth0 }", "xdp.addresses: missing"),
            (
                "{ interface: eth0, addresses: [] }",
                "xdp.addresses: needs at least one address",
            ),
            (
                "{ interface: eth0, addresses: [192.0.2.300] }",
                "xdp.addresses[0]: \"192.0.2.300\" is not an IP address",
            ),
            (
                "{ interface: eth0, addresses: [0.0.0.0] }",
                "xdp.addresses[0]: 0.0.0.0: give the unicast address",
            ),
            (
                "{ interface: eth0, addresses: [192.0.2.1, 192.0.2.1] }",
                "xdp.addresses[1]: 192.0.2.1 is listed twice",
            ),
            (
                "{ interface: a-name-far-too-long, addresses: [192.0.2.1] }",
                "xdp.interface: \"a-name-far-too-long\" is not an interface name",
            ),
            (
                "{ interface: eth0, addresses: [192.0.2.1], queues: 0 }",
                "xdp.queues",
            ),
            (
                "{ interface: eth0, addresses: [192.0.2.1], queues: 257 }",
                "xdp.queues",
            ),
            (
                "{ interface: eth0, addresses: [192.0.2.1], mode: fast }",
                "xdp.mode: \"fast\": auto, native or generic",
            ),
            (
                "{ interface: eth0, addresses: [192.0.2.1], ring: 3 }",
                "ring",
            ),
        ] {
            std::fs::write(&config, format!("state_dir: state\nxdp: {xdp}\n")).unwrap();
            let text = load(&sources).unwrap_err().to_string();
            assert!(text.contains(expected), "{xdp}: {text}");
        }
    }
}
