//! The admin API against the real binary: overrides take effect at once, survive `kill -9`,
//! bad requests are refused whole, writes need the token when one is set.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::backend::{Backend, Mode};
use common::{Ask, Server, addresses, eventually};

fn zone(dir: &Path, token: bool) {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(
        dir.join("zones/a.yaml"),
        "zone: a.test.
soa: { mname: ns1.a.test., rname: hostmaster.a.test. }
ns: [ns1.a.test.]
records:
  ns1: { A: [192.0.2.53] }
pools:
  web: { max_answers: 3, members: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }] }
names:
  www: { pool: web }
",
    )
    .unwrap();
    if token {
        std::fs::write(dir.join("token"), "s3cret\n").unwrap();
        std::fs::write(dir.join("gslbd.yaml"), "api: { token_file: token }\n").unwrap();
    }
}

fn seen(s: &Server) -> BTreeSet<String> {
    (0..10)
        .flat_map(|_| addresses(&s.udp(&Ask::new("www.a.test.", "A"))))
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn drain_takes_effect_at_once_and_survives_kill_9() {
    let d = tempfile::tempdir().unwrap();
    zone(d.path(), false);
    let mut s = Server::start(d.path(), &[]);
    assert_eq!(s.http("GET", "/livez", "", None).0, 200);
    assert_eq!(seen(&s), set(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]));

    let (code, body) = s.http(
        "POST",
        "/v1/members/192.0.2.2/drain",
        r#"{"reason": "patching", "expires": "2h"}"#,
        None,
    );
    assert_eq!(code, 200, "{body}");
    // no waiting: the answer changed before the API answered
    assert_eq!(seen(&s), set(&["192.0.2.1", "192.0.2.3"]));
    let (_, status) = s.http("GET", "/v1/status", "", None);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let m = &v["zones"][0]["pools"][0]["members"][1];
    assert_eq!(m["address"], "192.0.2.2");
    assert_eq!(m["override"]["kind"], "drain");
    assert_eq!(m["override"]["reason"], "patching");
    assert!(m["override"]["expires_unix"].as_u64().is_some());

    // kill -9 right after the API answered: nothing is lost
    s.signal(libc::SIGKILL);
    assert!(s.wait_exit(5).is_some());
    drop(s);
    let s = Server::start(d.path(), &[]);
    assert!(
        s.log()
            .contains("override restored: 192.0.2.2 drain (patching), expires in "),
        "{}",
        s.log()
    );
    assert_eq!(seen(&s), set(&["192.0.2.1", "192.0.2.3"]));

    // force-down, then clear: back to every member
    assert_eq!(
        s.http("POST", "/v1/members/192.0.2.1/force-down", "", None)
            .0,
        200
    );
    assert_eq!(seen(&s), set(&["192.0.2.3"]));
    assert_eq!(
        s.http("POST", "/v1/members/192.0.2.1/clear", "", None).0,
        200
    );
    assert_eq!(
        s.http("POST", "/v1/members/192.0.2.2/undrain", "", None).0,
        200
    );
    assert_eq!(seen(&s), set(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]));
}

#[test]
fn a_drained_member_still_answers_when_nothing_else_can() {
    let d = tempfile::tempdir().unwrap();
    zone(d.path(), false);
    let s = Server::start(d.path(), &[]);
    for a in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        assert_eq!(
            s.http("POST", &format!("/v1/members/{a}/drain"), "", None)
                .0,
            200
        );
    }
    assert_eq!(seen(&s), set(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]));
}

#[test]
fn overrides_expire_on_time() {
    let d = tempfile::tempdir().unwrap();
    zone(d.path(), false);
    let s = Server::start(d.path(), &[]);
    assert_eq!(
        s.http(
            "POST",
            "/v1/members/192.0.2.3/force-down",
            r#"{"expires": "1s"}"#,
            None
        )
        .0,
        200
    );
    assert_eq!(seen(&s), set(&["192.0.2.1", "192.0.2.2"]));
    eventually(Duration::from_secs(5), "192.0.2.3 never came back", || {
        (seen(&s) == set(&["192.0.2.1", "192.0.2.2", "192.0.2.3"])).then_some(())
    });
}

#[test]
fn bad_requests_are_refused_whole() {
    let d = tempfile::tempdir().unwrap();
    zone(d.path(), true);
    let s = Server::start(d.path(), &[]);
    let t = Some("s3cret");
    // the token guards writes, not reads
    assert_eq!(
        s.http("POST", "/v1/members/192.0.2.1/drain", "", None).0,
        401
    );
    assert_eq!(
        s.http("POST", "/v1/members/192.0.2.1/drain", "", Some("wrong"))
            .0,
        401
    );
    assert_eq!(s.http("GET", "/v1/status", "", None).0, 200);
    for (path, body, code, says) in [
        ("/v1/members/192.0.2.9/drain", "", 404, "not a member"),
        ("/v1/members/not-an-ip/drain", "", 400, "not an IP address"),
        ("/v1/members/192.0.2.1/explode", "", 404, "not an action"),
        (
            "/v1/members/192.0.2.1/drain",
            "{\"reason\": ",
            400,
            "the body is not",
        ),
        (
            "/v1/members/192.0.2.1/drain",
            r#"{"expires": "soon"}"#,
            400,
            "not a duration",
        ),
        (
            "/v1/members/192.0.2.1/drain",
            r#"{"color": "red"}"#,
            400,
            "the body is not",
        ),
        ("/v1/members/192.0.2.1/clear", "", 404, "no override"),
    ] {
        let (c, b) = s.http("POST", path, body, t);
        assert_eq!(c, code, "{path} {body}: {b}");
        assert!(
            b.contains(says) && b.contains("\"error\""),
            "{path} {body}: {b}"
        );
    }
    // nothing above changed anything
    assert_eq!(seen(&s), set(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]));
    assert!(!d.path().join("state/overrides.json").exists());
    assert_eq!(s.http("POST", "/v1/members/192.0.2.1/drain", "", t).0, 200);
    assert_eq!(seen(&s), set(&["192.0.2.2", "192.0.2.3"]));
}

#[test]
fn reload_through_the_api_answers_when_live_or_with_the_diagnostics() {
    let d = tempfile::tempdir().unwrap();
    zone(d.path(), false);
    let s = Server::start(d.path(), &[]);
    let text = std::fs::read_to_string(d.path().join("zones/a.yaml")).unwrap();
    std::fs::write(
        d.path().join("zones/a.yaml"),
        text.replace("192.0.2.3 }", "192.0.2.300 }"),
    )
    .unwrap();
    let (code, body) = s.http("POST", "/v1/reload", "", None);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("is not an IPv4 or IPv6 address"), "{body}");
    assert_eq!(seen(&s).len(), 3);
    std::fs::write(
        d.path().join("zones/a.yaml"),
        text.replace("192.0.2.3 }", "192.0.2.4 }"),
    )
    .unwrap();
    let (code, body) = s.http("POST", "/v1/reload", "", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(seen(&s), set(&["192.0.2.1", "192.0.2.2", "192.0.2.4"]));
}

#[test]
fn readyz_waits_for_the_first_probe_round() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("zones")).unwrap();
    // a probe that takes 1.5 s (a command that sleeps) keeps the server unready until it ends
    std::fs::write(
        d.path().join("zones/a.yaml"),
        "zone: a.test.
soa: { mname: ns1.a.test., rname: hostmaster.a.test. }
ns: [ns1.a.test.]
records:
  ns1: { A: [192.0.2.53] }
checks:
  slow: { exec: { command: [/bin/sh, -c, 'sleep 1.5'] }, interval: 5s, timeout: 3s }
pools:
  web: { checks: [slow], members: [{ address: 192.0.2.1 }] }
names:
  www: { pool: web }
",
    )
    .unwrap();
    let s = Server::start(d.path(), &[]);
    assert_eq!(s.http("GET", "/readyz", "", None).0, 503);
    s.wait_log("ready: the first probe round has finished", 5);
    assert_eq!(s.http("GET", "/readyz", "", None).0, 200);
}

fn ctl(args: &[&str]) -> (i32, String, String) {
    let o = std::process::Command::new(common::BIN)
        .arg("ctl")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn ctl_drains_shows_and_fails_clearly() {
    let d = tempfile::tempdir().unwrap();
    zone(d.path(), true);
    let s = Server::start(d.path(), &[]);
    let api = s.api();
    let token = d.path().join("token");
    let token = token.to_str().unwrap();

    let (code, out, err) = ctl(&[
        "--api",
        &api,
        "--token-file",
        token,
        "drain",
        "192.0.2.2",
        "--reason",
        "patching",
        "--expires",
        "2h",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("192.0.2.2: drain done"), "{out}");
    assert_eq!(seen(&s), set(&["192.0.2.1", "192.0.2.3"]));

    // logged in the words of the command line, with when it ends
    s.wait_log("override: 192.0.2.2 drain (patching), expires in 2h", 5);
    let (code, out, _) = ctl(&["--api", &api, "status"]);
    assert_eq!(code, 0);
    let row = out
        .lines()
        .find(|l| l.contains("192.0.2.2"))
        .expect("a row for the member");
    // e.g. `drain (patching, expires 2026-12-01T23:10:00Z, 1h 59m left)`
    assert!(row.contains("drain (patching, expires 20"), "{out}");
    assert!(
        row.contains("Z, 1h 59m left)") || row.contains("Z, 2h left)"),
        "{out}"
    );
    assert!(out.lines().next().unwrap().starts_with("ZONE"), "{out}");
    let (_, json, _) = ctl(&["--api", &api, "status", "--json"]);
    assert!(
        serde_json::from_str::<serde_json::Value>(&json).is_ok(),
        "{json}"
    );

    // a wrong token, an unknown member, a server that is not there: one line, non-zero exit
    std::fs::write(d.path().join("bad"), "nope").unwrap();
    let bad = d.path().join("bad");
    let (code, _, err) = ctl(&[
        "--api",
        &api,
        "--token-file",
        bad.to_str().unwrap(),
        "undrain",
        "192.0.2.2",
    ]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("Bearer") && err.contains("401"), "{err}");
    let (code, _, err) = ctl(&["--api", &api, "--token-file", token, "drain", "192.0.2.99"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a member of any pool"), "{err}");
    let (code, _, err) = ctl(&["--api", "http://127.0.0.1:9", "status"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("is gslbd serve running?"), "{err}");
}

#[test]
fn ctl_and_explain_take_the_api_as_addr_port_like_serve() {
    let d = tempfile::tempdir().unwrap();
    zone(d.path(), false);
    let s = Server::start(d.path(), &[]);
    // `serve --api 127.0.0.1:8053` style, not a URL
    let addr = s.api().trim_start_matches("http://").to_string();
    let (code, out, err) = ctl(&["--api", &addr, "status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ZONE"), "{out}");
    assert!(out.contains("192.0.2.1"), "{out}");
    let (code, out, err) = ctl(&[
        "--api",
        &addr,
        "force-down",
        "192.0.2.1",
        "--reason",
        "test",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("192.0.2.1: force-down done"), "{out}");
    s.wait_log("override: 192.0.2.1 force-down (test)", 5);
    let o = std::process::Command::new(common::BIN)
        .args([
            "explain",
            "www.a.test.",
            "--client",
            "192.0.2.99",
            "--api",
            &addr,
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("www.a.test."), "{out}");
    // something that is neither: a usage error that says what is wanted
    let (code, _, err) = ctl(&["--api", "not an address", "status"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ADDR:PORT"), "{err}");
}

#[test]
fn an_override_that_cannot_be_saved_is_a_server_error_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    zone(d.path(), false);
    std::fs::write(d.path().join("gslbd.yaml"), "state_dir: var/state\n").unwrap();
    let s = Server::start(d.path(), &[]);
    // After the start (which checks state_dir), `var` becomes a regular file: no directory can
    // be made under it, whoever we are (the tests run as root, whom modes do not stop).
    let var = d.path().join("var");
    if var.exists() {
        std::fs::remove_dir_all(&var).unwrap();
    }
    std::fs::write(&var, "not a directory").unwrap();
    let (code, body) = s.http(
        "POST",
        "/v1/members/192.0.2.2/drain",
        r#"{"reason": "patching"}"#,
        None,
    );
    assert_eq!(code, 500, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.starts_with("cannot save overrides to var/state/overrides.json: ")
            && msg.contains("Not a directory")
            && msg.contains("not applied"),
        "{msg}"
    );
    // not applied, and the server goes on
    assert_eq!(seen(&s), set(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]));
    let (code, status) = s.http("GET", "/v1/status", "", None);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        v["zones"][0]["pools"][0]["members"][1]["override"].is_null(),
        "{v:#}"
    );
    s.wait_log("override of 192.0.2.2 refused", 5);
    // the command line says so in one line, with the status
    let (code, _, err) = ctl(&["--api", &s.api(), "drain", "192.0.2.2"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(
        err.contains("var/state/overrides.json") && err.contains("(500)"),
        "{err}"
    );
    // once the directory can be made again, the same request works
    std::fs::remove_file(&var).unwrap();
    assert_eq!(
        s.http("POST", "/v1/members/192.0.2.2/drain", "", None).0,
        200
    );
    assert_eq!(seen(&s), set(&["192.0.2.1", "192.0.2.3"]));
}

/// The value of one sample line of the text exposition, 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn metrics_count_queries_answers_probes_and_reloads() {
    let d = tempfile::tempdir().unwrap();
    let up = Backend::start("127.0.30.1", 0, Mode::Smtp);
    let port = up.addr.port();
    // 127.0.30.2 has no listener: its check fails with "connect refused".
    std::fs::create_dir_all(d.path().join("zones")).unwrap();
    std::fs::write(
        d.path().join("zones/m.yaml"),
        format!(
            "zone: m.test.
soa: {{ mname: ns1.m.test., rname: hostmaster.m.test. }}
ns: [ns1.m.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
checks:
  smtp: {{ tcp: {{ port: {port} }}, interval: 200ms, timeout: 100ms, rise: 1, fall: 1 }}
pools:
  mail: {{ checks: [smtp], members: [{{ address: 127.0.30.1 }}, {{ address: 127.0.30.2 }}] }}
names:
  mail: {{ pool: mail }}
"
        ),
    )
    .unwrap();
    let s = Server::start(d.path(), &[]);
    s.wait_log("health: 127.0.30.2 check smtp: unknown -> down", 5);
    s.wait_log("health: 127.0.30.1 check smtp: unknown -> up", 5);

    let metrics = |s: &Server| {
        let (code, text) = s.http("GET", "/metrics", "", None);
        assert_eq!(code, 200, "{text}");
        text
    };
    let q = r#"gslbd_dns_queries_total{zone="m.test.",qtype="A",rcode="NOERROR",transport="udp"}"#;
    let nx =
        r#"gslbd_dns_queries_total{zone="m.test.",qtype="AAAA",rcode="NXDOMAIN",transport="tcp"}"#;
    let refused = r#"gslbd_dns_queries_total{zone="",qtype="A",rcode="REFUSED",transport="udp"}"#;
    let hits1 = r#"gslbd_pool_answers_total{zone="m.test.",pool="mail",member="127.0.30.1"}"#;
    let hits2 = r#"gslbd_pool_answers_total{zone="m.test.",pool="mail",member="127.0.30.2"}"#;
    let before = metrics(&s);
    for _ in 0..5 {
        assert_eq!(
            addresses(&s.udp(&Ask::new("mail.m.test.", "A"))),
            ["127.0.30.1"]
        );
    }
    s.tcp(&Ask::new("nope.m.test.", "AAAA"));
    s.udp(&Ask::new("www.example.com.", "A"));
    let after = metrics(&s);
    assert_eq!(sample(&after, q) - sample(&before, q), 5.0, "{after}");
    assert_eq!(sample(&after, nx) - sample(&before, nx), 1.0, "{after}");
    assert_eq!(
        sample(&after, refused) - sample(&before, refused),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, hits1) - sample(&before, hits1),
        5.0,
        "{after}"
    );
    assert_eq!(sample(&after, hits2), 0.0, "{after}");
    for (series, value) in [
        (
            r#"gslbd_member_up{zone="m.test.",pool="mail",member="127.0.30.1"}"#,
            1.0,
        ),
        (
            r#"gslbd_member_up{zone="m.test.",pool="mail",member="127.0.30.2"}"#,
            0.0,
        ),
        (r#"gslbd_check_up{member="127.0.30.1",check="smtp"}"#, 1.0),
        (r#"gslbd_check_up{member="127.0.30.2",check="smtp"}"#, 0.0),
        (
            r#"gslbd_health_transitions_total{member="127.0.30.2",check="smtp",to="down"}"#,
            1.0,
        ),
        ("gslbd_config_generation", 1.0),
    ] {
        assert_eq!(sample(&after, series), value, "{series} in\n{after}");
    }
    assert!(
        sample(
            &after,
            r#"gslbd_probe_duration_seconds_count{check="smtp"}"#
        ) >= 2.0
    );
    assert!(
        sample(
            &after,
            r#"gslbd_probe_failures_total{check="smtp",reason="refused"}"#
        ) >= 1.0,
        "{after}"
    );
    // Never labelled by query name or client address.
    assert!(!after.contains("www.example.com") && !after.contains("nope.m.test"));

    // Probes keep running: their count moves between scrapes.
    let probes = |t: &str| sample(t, r#"gslbd_probe_duration_seconds_count{check="smtp"}"#);
    eventually(
        Duration::from_secs(5),
        "the probe count never moved",
        || (probes(&metrics(&s)) > probes(&after)).then_some(()),
    );

    // A rejected reload and a good one are counted; the generation moves with the good one.
    let good = std::fs::read_to_string(d.path().join("zones/m.yaml")).unwrap();
    std::fs::write(d.path().join("zones/m.yaml"), "zone: [").unwrap();
    assert_eq!(s.http("POST", "/v1/reload", "", None).0, 422);
    std::fs::write(d.path().join("zones/m.yaml"), good).unwrap();
    assert_eq!(s.http("POST", "/v1/reload", "", None).0, 200);
    let text = metrics(&s);
    assert_eq!(
        sample(&text, r#"gslbd_config_reloads_total{result="rejected"}"#),
        1.0
    );
    assert_eq!(
        sample(&text, r#"gslbd_config_reloads_total{result="ok"}"#),
        1.0
    );
    assert_eq!(sample(&text, "gslbd_config_generation"), 2.0);
    // The zone's counters survive the reload.
    assert!(sample(&text, q) >= 5.0, "{text}");
    drop(up);
}

/// The raw response (status line, headers, body) to a GET of `path`.
fn raw_get(s: &Server, path: &str) -> String {
    let addr = s.api().trim_start_matches("http://").to_string();
    raw(s, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n"))
}

/// The raw response to `head` (request line and headers, each ending in CRLF).
fn raw(s: &Server, head: &str) -> String {
    use std::io::{Read, Write};
    let addr = s.api().trim_start_matches("http://").to_string();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "{head}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

/// What a web page elsewhere could make the operator's browser send is refused: a write from
/// another origin (CSRF), and, without a token, a request for a host name (DNS rebinding).
#[test]
fn requests_a_foreign_page_could_send_are_refused() {
    let d = tempfile::tempdir().unwrap();
    zone(d.path(), false);
    let s = Server::start(d.path(), &[]);
    let addr = s.api().trim_start_matches("http://").to_string();
    let status = |r: String| r.split_whitespace().nth(1).unwrap_or("").to_string();
    let rebound = raw(&s, "GET /v1/status HTTP/1.1\r\nHost: evil.example:8053\r\n");
    assert_eq!(status(rebound.clone()), "403", "{rebound}");
    assert!(rebound.contains("api.token_file"), "{rebound}");
    // Probes may use any name: liveness and readiness tell nothing.
    let probe = raw(&s, "GET /livez HTTP/1.1\r\nHost: lab\r\n");
    assert_eq!(status(probe), "200");
    for host in [
        addr.clone(),
        format!("localhost:{}", s.api().rsplit(':').next().unwrap()),
    ] {
        let r = raw(&s, &format!("GET /v1/status HTTP/1.1\r\nHost: {host}\r\n"));
        assert_eq!(status(r), "200", "{host}");
    }
    let post = |origin: &str| {
        raw(
            &s,
            &format!(
                "POST /v1/members/192.0.2.1/drain HTTP/1.1\r\nHost: {addr}\r\n\
                 Origin: {origin}\r\nContent-Length: 0\r\n"
            ),
        )
    };
    let forged = post("http://evil.example");
    assert_eq!(status(forged.clone()), "403", "{forged}");
    assert_eq!(
        seen(&s),
        set(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]),
        "applied anyway"
    );
    // The console's own writes carry its origin.
    assert_eq!(status(post(&format!("http://{addr}"))), "200");
    assert_eq!(seen(&s), set(&["192.0.2.2", "192.0.2.3"]));
}

#[test]
fn the_console_is_served_with_a_strict_policy_and_history_says_who_and_why() {
    let d = tempfile::tempdir().unwrap();
    zone(d.path(), true);
    let s = Server::start(d.path(), &[]);
    for (path, kind) in [
        ("/", "text/html"),
        ("/console.js", "text/javascript"),
        ("/console.css", "text/css"),
    ] {
        let r = raw_get(&s, path).to_ascii_lowercase();
        let r = r.split("\r\n\r\n").next().unwrap();
        assert!(r.starts_with("http/1.1 200"), "{path}: {r}");
        assert!(r.contains(&format!("content-type: {kind}")), "{path}");
        assert!(r.contains("x-content-type-options: nosniff"), "{path}");
        assert!(r.contains("content-security-policy: default-src 'none'; script-src 'self';"));
        assert!(!r.contains("unsafe-inline"), "{path}");
    }
    let page = raw_get(&s, "/");
    assert!(
        page.contains("<script src=\"/console.js\""),
        "the page loads its script"
    );
    assert!(!page.contains("<script>"), "no inline script");
    // The API's answers carry the headers too.
    assert!(
        raw_get(&s, "/v1/status")
            .to_ascii_lowercase()
            .contains("x-content-type-options: nosniff")
    );

    // Free text is bounded and has no control characters (they would forge log lines).
    let body = r#"{"reason": "x", "by": "mallory\nINFO fake line"}"#;
    let (code, err) = s.http("POST", "/v1/members/192.0.2.1/drain", body, Some("s3cret"));
    assert_eq!(code, 400, "{err}");
    assert!(err.contains("by: control characters"), "{err}");
    let body = "{\"reason\": \"ok \u{202e}txt.exe\"}";
    let (code, err) = s.http("POST", "/v1/members/192.0.2.1/drain", body, Some("s3cret"));
    assert_eq!(code, 400, "a bidirectional override: {err}");
    let long = format!(r#"{{"reason": "{}"}}"#, "r".repeat(501));
    let (code, err) = s.http("POST", "/v1/members/192.0.2.1/drain", &long, Some("s3cret"));
    assert_eq!(code, 400, "{err}");
    assert!(err.contains("reason: longer than 500"), "{err}");
    // Refused without the token, and not in the history.
    let body = r#"{"reason": "patching", "by": "alice", "expires": "1h"}"#;
    assert_eq!(
        s.http("POST", "/v1/members/192.0.2.1/drain", body, None).0,
        401
    );
    let (_, h) = s.http("GET", "/v1/history", "", None);
    assert_eq!(h, r#"{"events":[]}"#);

    let (code, out) = s.http("POST", "/v1/members/192.0.2.1/drain", body, Some("s3cret"));
    assert_eq!(code, 200, "{out}");
    let (code, out) = s.http("POST", "/v1/members/192.0.2.1/clear", "", Some("s3cret"));
    assert_eq!(code, 200, "{out}");
    let (code, h) = s.http("GET", "/v1/history?limit=10&member=192.0.2.1", "", None);
    assert_eq!(code, 200, "{h}");
    let h: serde_json::Value = serde_json::from_str(&h).unwrap();
    let events = h["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{h}");
    // Newest first: the clear, then the drain with who and why.
    assert_eq!(
        (events[0]["from"].as_str(), events[0]["to"].as_str()),
        (Some("drain"), Some("cleared"))
    );
    assert_eq!(events[1]["kind"], "override");
    assert_eq!(
        (events[1]["from"].as_str(), events[1]["to"].as_str()),
        (Some("none"), Some("drain"))
    );
    assert_eq!(events[1]["reason"], "patching");
    assert_eq!(events[1]["by"], "alice");
    let (code, err) = s.http("GET", "/v1/history?member=nope", "", None);
    assert_eq!(code, 400, "{err}");

    // Status: the pool's state and TTL, each member's answers and last change.
    for _ in 0..5 {
        seen(&s);
    }
    let (_, st) = s.http("GET", "/v1/status", "", None);
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    let pool = &st["zones"][0]["pools"][0];
    assert_eq!(pool["state"], "healthy", "{pool}");
    assert_eq!(pool["families"][0]["family"], "A", "{pool}");
    assert_eq!(
        pool["families"].as_array().unwrap().len(),
        1,
        "no IPv6 member"
    );
    assert_eq!(pool["all_down_answer"], "every member (fail open)");
    let m = &pool["members"][0];
    assert_eq!(m["address"], "192.0.2.1");
    assert_eq!(m["last_change"]["to"], "cleared");
    assert!(m["answers"].as_u64().unwrap() >= 5, "{m}");
    // Rates: sampled once a second, the first sample only sets the base.
    eventually(Duration::from_secs(5), "a rate sample", || {
        let (_, r) = s.http("GET", "/v1/rates", "", None);
        let r: serde_json::Value = serde_json::from_str(&r).ok()?;
        (r["members"].as_array()?.len() == 3
            && !r["members"][0]["per_second"].as_array()?.is_empty())
        .then_some(())
    });
}
