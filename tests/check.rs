//! `gslbd check`: the same loader as `serve`, every problem as file:line:column: path: message.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{BIN, bundled_copy, root};

/// Run `gslbd check ARGS` in `dir`.
fn check(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .arg("check")
        .args(args)
        .output()
        .expect("run gslbd check")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A scratch directory with `zones/NAME` files.
fn zones(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("zones")).unwrap();
    for (name, text) in files {
        std::fs::write(d.path().join("zones").join(name), text).unwrap();
    }
    d
}

const GOOD_HEAD: &str =
    "zone: t.test.\nsoa: { mname: ns1.t.test., rname: hostmaster.t.test. }\nns: [ns1.t.test.]\n";

#[test]
fn bundled_zones_are_valid() {
    // With no flags, where zones/ is (a copy of the repository's).
    let d = bundled_copy();
    let o = check(d.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("ok: "), "{out}");
    assert!(out.contains("zone(s)"), "{out}");
}

#[test]
fn example_zones_are_valid() {
    let d = tempfile::tempdir().unwrap();
    for dir in ["examples/exchange/zones", "examples/lab/zones"] {
        let zones = root().join(dir);
        let o = check(d.path(), &["--zones", zones.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{dir}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("ok: 1 zone(s)"));
    }
}

#[test]
fn every_problem_is_reported_with_file_line_column_and_key() {
    let d = zones(&[(
        "a.yaml",
        "zone: a.test.
soa: { mname: ns1.a.test., rname: hostmaster.a.test. }
ns: [ns1.a.test., ns.sub.a.test.]
ttl: 3600
records:
  ns1: { A: [192.0.2.53] }
  www:
    A: [10.0.0.1, 10.0.0.300]
    ttl: 4294967295
  alias: { CNAME: www, TXT: [x] }
  out.example.com.: { A: [10.0.0.3] }
  sub: { NS: [ns.sub.a.test.] }
  mx: { MX: [\"10\"] }
",
    )]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let expected = [
        "zones/a.yaml:3:19: ns[1]: ns.sub.a.test. is inside the zone but has no A or AAAA record in it",
        "zones/a.yaml:8:19: records.www.A[1]: \"10.0.0.300\" is not an IPv4 address",
        "zones/a.yaml:9:10: records.www.ttl: 4294967295 is not a valid TTL: use 0..=2147483647 seconds (RFC 2181 §8)",
        "zones/a.yaml:10:19: records.alias.CNAME: a CNAME cannot stand beside other data (TXT) at alias.a.test.",
        "zones/a.yaml:11:3: records.out.example.com.: out.example.com. is outside the zone a.test.",
        "zones/a.yaml:12:15: records.sub.NS: ns.sub.a.test. is below the delegation sub.a.test. and needs glue: add an A or AAAA record for it",
        "zones/a.yaml:13:14: records.mx.MX[0]: \"10\" is not MX data: \"PREFERENCE EXCHANGE\", e.g. \"10 mail\"",
        "7 error(s)",
    ];
    let got: Vec<&str> = err.lines().collect();
    assert_eq!(got, expected, "\n{err}");
}

#[test]
fn missing_soa_and_ns_are_errors() {
    let d = zones(&[(
        "m.yaml",
        "zone: m.test.\nrecords:\n  www: { A: [192.0.2.1] }\n",
    )]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("zones/m.yaml:1:7: soa: missing"), "{err}");
    assert!(err.contains("zones/m.yaml:1:7: ns: missing"), "{err}");
}

#[test]
fn duplicate_zones_are_errors_even_when_spelled_differently() {
    let second = GOOD_HEAD.replace("zone: t.test.", "zone: T.TEST");
    let d = zones(&[
        (
            "1.yaml",
            &format!("{GOOD_HEAD}records:\n  ns1: {{ A: [192.0.2.1] }}\n"),
        ),
        (
            "2.yaml",
            &format!("{second}records:\n  ns1: {{ A: [192.0.2.1] }}\n"),
        ),
    ]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("zones/2.yaml:1:7: zone: zone T.TEST. is already defined in zones/1.yaml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_keys_are_errors() {
    let d = zones(&[("u.yaml", &format!("{GOOD_HEAD}recrods: {{}}\n"))]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("zones/u.yaml:4:1: unknown field `recrods`"),
        "{err}"
    );
    assert!(err.contains("expected one of"), "{err}");
}

#[test]
fn records_file_is_read_as_a_master_file() {
    let d = zones(&[(
        "r.yaml",
        &format!("{GOOD_HEAD}records:\n  ns1: {{ A: [192.0.2.1] }}\nrecords_file: r.zone\n"),
    )]);
    std::fs::write(
        d.path().join("zones/r.zone"),
        "$TTL 300\n@ IN SOA x. y. 1 2 3 4 5\nhost IN A 192.0.2.7\nmail IN MX 10 host\n",
    )
    .unwrap();
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // the file's own SOA is ignored, with a warning that says why
    assert!(
        stderr(&o).contains("warning: records_file (r.zone): t.test. SOA: ignored"),
        "{}",
        stderr(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 static record(s)"));

    std::fs::write(d.path().join("zones/r.zone"), "host IN A 192.0.2.300\n").unwrap();
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("zones/r.yaml:6:15: records_file (r.zone): not a valid master file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn server_settings_are_checked() {
    let d = zones(&[(
        "t.yaml",
        &format!("{GOOD_HEAD}records:\n  ns1: {{ A: [192.0.2.1] }}\n"),
    )]);
    std::fs::write(
        d.path().join("gslbd.yaml"),
        "listen: [\"127.0.0.1:5353\", \"localhost\"]\n",
    )
    .unwrap();
    let o = check(d.path(), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("gslbd.yaml:1:28: listen[1]: \"localhost\" is not ADDRESS:PORT"),
        "{}",
        stderr(&o)
    );

    // --config must exist when given
    let o = check(d.path(), &["--config", "nope.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nope.yaml: cannot read"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn hostile_files_get_a_diagnostic_not_a_panic() {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    let deep = format!("zone: {}\n", "[".repeat(100_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("alias bomb", bomb.as_bytes().to_vec()),
        ("deep nesting", deep.into_bytes()),
        ("binary", (0..=255u8).cycle().take(4096).collect()),
        ("empty", Vec::new()),
        ("a list", b"- 1\n- 2\n".to_vec()),
        ("tabs", b"zone:\tx.\n\tsoa: 1\n".to_vec()),
    ];
    for (what, bytes) in cases {
        let d = zones(&[]);
        std::fs::write(d.path().join("zones/h.yaml"), bytes).unwrap();
        let o = check(d.path(), &["--zones", "zones"]);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("zones/h.yaml"),
            "{what}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{what}: {}", stderr(&o));
    }
}

#[test]
fn pools_checks_and_names_are_validated() {
    let d = zones(&[(
        "p.yaml",
        "zone: p.test.
soa: { mname: ns1.p.test., rname: hostmaster.p.test. }
ns: [ns1.p.test.]
records:
  ns1: { A: [192.0.2.53] }
  www: { A: [192.0.2.1] }
checks:
  web: { http: { port: 80, path: /health }, interval: 5s, timeout: 10s }
  both: { tcp: { port: 25 }, http: { port: 80 } }
  banner: { tcp: { port: 25, expect_banner: \"(220\" }, interval: soon }
pools:
  a:
    checks: [web, nope]
    members:
      - { address: 192.0.2.10 }
      - { address: 192.0.2.10 }
      - { address: 192.0.2.300 }
  empty: { members: [] }
  fb: { when_all_down: fallback, members: [{ address: 192.0.2.20 }] }
  self: { when_all_down: fallback, fallback: { pool: self }, members: [{ address: 192.0.2.21 }] }
names:
  www: { pool: a }
  mail: { pool: missing }
",
    )]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for want in [
        "zones/p.yaml:8:68: checks.web.timeout: 10s is longer than the interval (5s); a probe must end before the next starts",
        "zones/p.yaml:9:3: checks.both: give exactly one kind of check: tcp, http, exec or file",
        "zones/p.yaml:10:45: checks.banner.tcp.expect_banner: \"(220\" is not a regular expression: unclosed group",
        "zones/p.yaml:10:65: checks.banner.interval: \"soon\" is not a duration",
        "zones/p.yaml:13:19: pools.a.checks[1]: no check named \"nope\" in this zone (known: banner, both, web)",
        "zones/p.yaml:16:20: pools.a.members[1].address: 192.0.2.10 is already a member of this pool",
        "zones/p.yaml:17:20: pools.a.members[2].address: \"192.0.2.300\" is not an IPv4 or IPv6 address",
        "zones/p.yaml:18:21: pools.empty.members: empty: a pool needs at least one member",
        "zones/p.yaml:19:24: pools.fb.when_all_down: `fallback` needs",
        "zones/p.yaml:20:54: pools.self.fallback.pool: a pool cannot fall back to itself",
        "zones/p.yaml:22:3: names.www: www.p.test. also has static records; a name is either static or bound to a pool",
        "zones/p.yaml:23:17: names.mail.pool: no pool named \"missing\" in this zone",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // a pool naming a declared (if broken) check is not told it does not exist
    assert!(!err.contains("no check named \"web\""), "{err}");
    assert!(err.ends_with("12 error(s)\n"), "{err}");
}

#[test]
fn sites_and_policy_steps_are_validated() {
    let d = zones(&[(
        "s.yaml",
        "zone: s.test.
soa: { mname: ns1.s.test., rname: hostmaster.s.test. }
ns: [ns1.s.test.]
records:
  ns1: { A: [192.0.2.53] }
sites:
  fra: [10.1.2.3/16, 10.9.0.0/16]
  ber: { nets: [10.9.0.0/16], fallback: [ber, nowhere] }
pools:
  a: { policy: [weighted, topology], members: [{ address: 192.0.2.1, site: muc }] }
  b: { policy: [topology, least-loaded], members: [{ address: 192.0.2.2 }] }
",
    )]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for want in [
        "sites.fra.nets[0]: \"10.1.2.3/16\" has bits set after the prefix; did you mean 10.1.0.0/16?",
        "sites.ber.nets[0]: 10.9.0.0/16 is already mapped to site \"fra\"",
        "sites.ber.fallback[0]: a site cannot fall back to itself",
        "sites.ber.fallback[1]: no site named \"nowhere\" (known: fra, ber, or any)",
        "pools.a.policy: steps run in a fixed order: failover, topology or nearest, then one of round-robin, weighted, sticky",
        "pools.a.members[0].site: no site named \"muc\" in `sites:` (known: fra, ber)",
        "pools.b.load: least-loaded needs `load: { agent: { port: N } }` or `load: { http: { port: N, path: /load } }`",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn large_zones_load() {
    // 60,000 names: more YAML nodes than the parser's default budget allows.
    let mut text = String::from(GOOD_HEAD);
    text.push_str("records:\n  ns1: { A: [192.0.2.53] }\n");
    for i in 0..60_000u32 {
        text.push_str(&format!(
            "  h{i}: {{ A: [10.{}.{}.{}] }}\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    let d = zones(&[("t.yaml", &text)]);
    let o = check(d.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("60001 static record(s)"));
}

#[test]
fn duplicate_keys_name_the_key_and_its_second_place() {
    let d = zones(&[(
        "d.yaml",
        &format!(
            "{GOOD_HEAD}records:\n  ns1: {{ A: [192.0.2.1] }}\n  www: {{ A: [192.0.2.2] }}\n  www: {{ A: [192.0.2.3] }}\n"
        ),
    )]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(
            "zones/d.yaml:7:3: duplicate key \"www\": each key may appear once in a mapping"
        ),
        "{err}"
    );
    assert!(!err.contains("DuplicateKeyPolicy"), "{err}");
    assert!(!err.contains("Options"), "{err}");
}

#[test]
fn a_single_value_is_a_list_of_one_with_its_own_place() {
    let d = zones(&[(
        "s.yaml",
        &format!(
            "{GOOD_HEAD}records:\n  ns1: {{ A: 192.0.2.1 }}\n  www:\n    A: 192.0.2.300\n    MX: \"10\"\n    TXT: [a, b]\n"
        ),
    )]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for want in [
        "zones/s.yaml:7:8: records.www.A[0]: \"192.0.2.300\" is not an IPv4 address",
        "zones/s.yaml:8:9: records.www.MX[0]: \"10\" is not MX data",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(err.ends_with("2 error(s)\n"), "{err}");
    // a float would lose its spelling (1.10 → 1.1): quote it
    let d = zones(&[(
        "s.yaml",
        &format!("{GOOD_HEAD}records:\n  ns1: {{ A: 192.0.2.1 }}\n  v: {{ TXT: 1.10 }}\n"),
    )]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("put it in quotes"), "{}", stderr(&o));
    // a mapping is neither a value nor a list
    let d = zones(&[(
        "s.yaml",
        &format!("{GOOD_HEAD}records:\n  ns1: {{ A: {{ x: 1 }} }}\n"),
    )]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("a value or a list of values"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_state_dir_that_cannot_be_written_is_an_error() {
    let head = format!("{GOOD_HEAD}records:\n  ns1: {{ A: [192.0.2.1] }}\n");
    let d = zones(&[("t.yaml", &head)]);
    // A path under a regular file can be made by nobody, root included (tests run as root,
    // whom permission bits do not stop).
    std::fs::write(d.path().join("blocker"), "a file").unwrap();
    std::fs::write(
        d.path().join("gslbd.yaml"),
        "listen: [\"127.0.0.1:5353\"]\nstate_dir: blocker/state\n",
    )
    .unwrap();
    let o = check(d.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "gslbd.yaml:2:12: state_dir: blocker/state cannot be created: blocker is not a directory"
        ),
        "{}",
        stderr(&o)
    );
    // the state directory itself being a file
    std::fs::write(d.path().join("gslbd.yaml"), "state_dir: blocker\n").unwrap();
    let o = check(d.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("gslbd.yaml:1:12: state_dir: blocker is not a directory"),
        "{}",
        stderr(&o)
    );
    // one that does not exist yet but can be made is fine (serve makes it), and so is one that is
    std::fs::write(d.path().join("gslbd.yaml"), "state_dir: var/lib/state\n").unwrap();
    let o = check(d.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!d.path().join("var").exists(), "check must not create it");
    std::fs::create_dir(d.path().join("state")).unwrap();
    std::fs::write(d.path().join("gslbd.yaml"), "state_dir: state\n").unwrap();
    let o = check(d.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_state_dir_the_configured_user_cannot_write_is_an_error() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: judging for another user needs root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let head = format!("{GOOD_HEAD}records:\n  ns1: {{ A: [192.0.2.1] }}\n");
    let d = zones(&[("t.yaml", &head)]);
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        d.path().join("gslbd.yaml"),
        "user: nobody\nstate_dir: state\n",
    )
    .unwrap();
    let o = check(d.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("gslbd.yaml:2:12: state_dir: state is not writable by user nobody"),
        "{}",
        stderr(&o)
    );
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = check(d.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// The compiled site map numbers sites in 16 bits: one site too many is an error at its key,
/// not a site that silently aliases another.
#[test]
fn too_many_sites_are_refused_at_the_first_one_too_many() {
    let mut text = format!("{GOOD_HEAD}records:\n  ns1: {{ A: [192.0.2.1] }}\nsites:\n");
    for i in 0..65_535 {
        text.push_str(&format!("  s{i}: []\n"));
    }
    let d = zones(&[("t.yaml", &text)]);
    let o = check(d.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // The line of `s65534:`, the one too many.
    let line = text.lines().position(|l| l == "  s65534: []").unwrap() + 1;
    assert!(
        stderr(&o).contains(&format!(
            "t.yaml:{line}:3: sites: 65535 sites; a zone may have at most 65534"
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn paced_intervals_and_fall_on_refused_are_validated() {
    let d = zones(&[(
        "f.yaml",
        "zone: f.test.
soa: { mname: ns1.f.test., rname: hostmaster.f.test. }
ns: [ns1.f.test.]
records:
  ns1: { A: [192.0.2.53] }
checks:
  fast: { tcp: { port: 25 }, interval: 1s, timeout: 1s, fast_interval: 2s }
  tiny: { tcp: { port: 25 }, interval: 1s, timeout: 1s, fast_interval: 50ms }
  down: { tcp: { port: 25 }, interval: 1s, timeout: 800ms, down_interval: 500ms }
  refused: { tcp: { port: 25 }, fall: 2, fall_on_refused: 3 }
  good: { tcp: { port: 25 }, interval: 1s, timeout: 1s, fast_interval: 200ms, down_interval: 5s, fall_on_refused: 1 }
",
    )]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for want in [
        "zones/f.yaml:7:72: checks.fast.fast_interval: 2s is longer than the interval (1s)",
        "zones/f.yaml:8:72: checks.tiny.fast_interval: must be at least 100ms",
        "zones/f.yaml:9:75: checks.down.down_interval: 500ms is shorter than the timeout (800ms)",
        "zones/f.yaml:10:59: checks.refused.fall_on_refused: 3 is not in 1..=2",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("checks.good"), "{err}");
    assert!(err.ends_with("4 error(s)\n"), "{err}");
}

#[test]
fn dnssec_keys_and_timing_are_validated() {
    let head = "zone: s.test.\nsoa: { mname: ns1.s.test., rname: hostmaster.s.test. }\nns: [ns1.s.test.]\nrecords:\n  ns1: { A: [192.0.2.53] }\n";
    let d = zones(&[("s.yaml", &format!("{head}dnssec: {{ keys: keys }}\n"))]);
    // no keys yet
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("zones/s.yaml:6:17: dnssec.keys: zones/keys: No such file or directory"),
        "{}",
        stderr(&o)
    );
    // a key of the zone, next to the zone file: fine
    let keys = d.path().join("zones/keys");
    let g = Command::new(BIN)
        .args(["key", "generate", "--zone", "s.test", "--keys"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(g.status.success(), "{}", stderr(&g));
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // a private key others can read
    let private = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "private"))
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = check(d.path(), &["--zones", "zones"]);
    assert!(
        stderr(&o).contains("dnssec.keys:") && stderr(&o).contains("chmod 600"),
        "{}",
        stderr(&o)
    );
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    // delegations (with and without DS) and `when_all_down: none` are signed; a DS belongs at
    // a delegation and must be one; a pool of more than 64 members is not signed
    std::fs::write(
        d.path().join("zones/s.yaml"),
        format!("{head}  sub: {{ NS: [ns.sub.s.test.] }}\n  ns.sub: {{ A: [192.0.2.9] }}\n  sec: {{ NS: [ns1.s.test.], DS: [\"1 13 2 {}\"] }}\npools:\n  p: {{ when_all_down: none, members: [{{ address: 192.0.2.1 }}] }}\ndnssec: {{ keys: keys }}\n", "AB".repeat(32)),
    )
    .unwrap();
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let members: Vec<String> = (1..=65)
        .map(|i| format!("{{ address: 10.0.0.{i} }}"))
        .collect();
    std::fs::write(
        d.path().join("zones/s.yaml"),
        format!("{head}  www: {{ DS: [\"1 13 2 {}\"] }}\n  sec: {{ NS: [ns1.s.test.], DS: [\"1 13 2 ABCD\", \"1 13 9 AB\"] }}\npools:\n  big: {{ members: [{}] }}\ndnssec: {{ keys: keys }}\n", "AB".repeat(32), members.join(", ")),
    )
    .unwrap();
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    for want in [
        "zones/s.yaml:6:15: records.www.DS: www.s.test. has no NS records: a DS belongs at a delegation, beside its NS",
        "zones/s.yaml:7:34: records.sec.DS[0]: \"1 13 2 ABCD\": a digest of type 2 has 32 octets, this one 2",
        "records.sec.DS[1]: \"1 13 9 AB\": digest type 9 is not SHA-1 (1), SHA-256 (2) or SHA-384 (4)",
        "dnssec: pool big has 65 members; a signed zone's pools have at most 64",
    ] {
        assert!(stderr(&o).contains(want), "{want}: {}", stderr(&o));
    }
    // timing
    for (dnssec, want) in [
        (
            "{ keys: keys, signature_validity: 10m }",
            "dnssec.signature_validity: must be between 1h and 366d",
        ),
        (
            "{ keys: keys, signature_validity: 2d, refresh: 3d }",
            "dnssec.refresh: 3days is not shorter than the signature validity (2days)",
        ),
        ("{ keys: keys, algorithm: rsa }", "algorithm"),
    ] {
        std::fs::write(
            d.path().join("zones/s.yaml"),
            format!("{head}dnssec: {dnssec}\n"),
        )
        .unwrap();
        let o = check(d.path(), &["--zones", "zones"]);
        assert_eq!(o.status.code(), Some(1), "{dnssec}");
        assert!(stderr(&o).contains(want), "{dnssec}: {}", stderr(&o));
    }
}

/// GeoIP sites: codes and coordinates are checked where they are written; matching by
/// location or ASN needs the databases of `geoip:`; a site no record reaches is a warning.
#[test]
fn geoip_sites_are_validated_against_the_codes_and_the_databases() {
    let bad = format!(
        "{GOOD_HEAD}records:\n  ns1: {{ A: [192.0.2.53] }}\nsites:\n  fra: {{ countries: [DE, UK], continents: [EU], coordinates: [50.1, 8.7] }}\n  ber: {{ countries: [de], subdivisions: [DE-BE, XX-1], asns: [AS3320, -4], coordinates: [95, 13] }}\n  iad: {{ continents: [AM], coordinates: [38.9] }}\npools:\n  p:\n    policy: [nearest, topology]\n    members: [{{ address: 192.0.2.1, site: fra }}]\n  q:\n    policy: nearest\n    members: [{{ address: 192.0.2.1, site: iad }}]\n"
    );
    let d = zones(&[("t.yaml", &bad)]);
    let o = check(d.path(), &["--zones", "zones"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for want in [
        "sites.fra.countries[1]: \"UK\" is not an ISO 3166-1 country code",
        "sites.ber.countries[0]: countries DE is already in site \"fra\"",
        "sites.ber.subdivisions[1]: \"XX-1\" is not an ISO 3166-2 subdivision",
        "sites.ber.asns[1]: Number(-4) is not an AS number",
        "sites.ber.coordinates: [95, 13] is out of range",
        "sites.iad.continents[0]: \"AM\" is not a continent code",
        "sites.iad.coordinates: give [latitude, longitude]",
        "pools.p.policy: steps run in a fixed order",
        "pools.q.policy: nearest orders sites by distance: site iad has members here but no `coordinates`",
    ] {
        assert!(err.contains(want), "{want}:\n{err}");
    }

    // valid sites, but no databases to match them with
    let good = format!(
        "{GOOD_HEAD}records:\n  ns1: {{ A: [192.0.2.53] }}\nsites:\n  fra: {{ countries: [DE], coordinates: [50.1, 8.7] }}\n  sin: {{ asns: [4773], coordinates: [1.35, 103.8] }}\n  jp: {{ countries: [JP] }}\npools:\n  p:\n    policy: [nearest, round-robin]\n    members: [{{ address: 192.0.2.1, site: fra }}, {{ address: 192.0.2.2, site: sin }}]\n"
    );
    let d = zones(&[("t.yaml", &good)]);
    let o = check(d.path(), &["--zones", "zones"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for want in [
        "zones/t.yaml: sites.fra: countries, continents and subdivisions need `geoip: { database: ... }`",
        "zones/t.yaml: sites.sin: asns need `geoip: { asn_database: ... }`",
        "zones/t.yaml: pools.p.policy: nearest needs the clients' coordinates",
    ] {
        assert!(err.contains(want), "{want}:\n{err}");
    }

    // with the databases: fine, but nothing in them is in Japan
    let (city, asn) = common::geo::world_files(d.path());
    std::fs::write(
        d.path().join("gslbd.yaml"),
        format!(
            "geoip: {{ database: {}, asn_database: {} }}\n",
            city.file_name().unwrap().to_string_lossy(),
            asn.file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
    let o = check(d.path(), &["--zones", "zones"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: sites.jp: no network of the GeoIP databases is placed in this site"),
        "{err}"
    );
    // a damaged database: the error names gslbd.yaml's key and the file
    std::fs::write(&city, b"\x00\x01 not a database").unwrap();
    let o = check(d.path(), &["--zones", "zones"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("gslbd.yaml:1:")
            && err.contains("geoip.database: ")
            && err.contains("city.mmdb: not a MaxMind DB file"),
        "{err}"
    );
}
