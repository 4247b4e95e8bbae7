//! The shipped systemd unit, `contrib/gslbd.service`, against the real binary.
//!
//! systemd kills a service with SIGSYS at the first system call its `SystemCallFilter=` does not
//! allow (or fails the call, with `SystemCallErrorNumber=`), so a filter that misses a call gslbd
//! makes breaks it in production only. Here every system call of a realistic run is recorded
//! with strace — the unit's `ExecStartPre=`, its `ExecStart=` serving with tcp, http and exec
//! checks, UDP and TCP queries, admin API writes, its `ExecReload=` (SIGHUP) and SIGTERM — and
//! checked against the filter the unit declares, with systemd's groups as
//! `systemd-analyze syscall-filter` lists them. So are the address families of the sockets it
//! opened (`RestrictAddressFamilies=`) and the paths it wrote (only the state directory, the one
//! writable place under `ProtectSystem=strict`). And `systemd-analyze verify` must accept the
//! unit, and its XDP drop-in `contrib/gslbd-xdp.conf`, without a word about them (tests/xdp.rs
//! checks an XDP run's system calls against the two, as root).
//!
//! Needs strace and systemd-analyze (Debian: strace, systemd). Without them the tests say so and
//! pass, unless GSLBD_LAB_REQUIRED is set (by .ci/run, which installs them).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::backend::{Backend, Mode};
use common::systemd::{
    Groups, address_families, blocked, calls_of, child_of, directives, family_of, written_by,
};
use common::{Ask, BIN, TICK, eventually, poll};
use hickory_proto::op::{Message, ResponseCode};

/// The loopback network of this test's server and members.
const NET: &str = "127.0.64";
const TOKEN: &str = "s3cret";

fn unit_text() -> String {
    std::fs::read_to_string(common::root().join("contrib/gslbd.service"))
        .expect("read contrib/gslbd.service")
}

/// Whether strace and systemd's tools are here (Debian: strace, systemd); without them the
/// tests are skipped, unless GSLBD_LAB_REQUIRED is set.
fn can_run(tools: &[&str]) -> bool {
    common::systemd::installed(tools, "GSLBD_LAB_REQUIRED")
}

// ---- the unit, as this test runs it ----

/// A path of the unit as this test has it: `etc` and `var` for /etc/gslbd and /var/lib/gslbd.
fn local(word: &str, etc: &Path, var: &Path) -> String {
    let under = |prefix: &str, dir: &Path| {
        word.strip_prefix(prefix)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| format!("{}{rest}", dir.display()))
    };
    under("/etc/gslbd", etc)
        .or_else(|| under("/var/lib/gslbd", var))
        .unwrap_or_else(|| word.to_string())
}

/// The unit's command line `key=` (the first) as this test runs it: the built binary for the
/// installed one, `etc` and `var` for /etc/gslbd and /var/lib/gslbd, `pid` for $MAINPID.
fn command_of(unit: &str, key: &str, etc: &Path, var: &Path, pid: Option<i32>) -> Vec<String> {
    let line = *directives(unit, key)
        .first()
        .unwrap_or_else(|| panic!("the unit has no {key}="));
    assert!(
        !line.starts_with('+'),
        "{key}={line} would run outside the sandbox"
    );
    line.trim_start_matches(['-', ':', '!'])
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| match w {
            _ if i == 0 && w.ends_with("/gslbd") => BIN.to_string(),
            "$MAINPID" | "${MAINPID}" => pid.expect("a PID for $MAINPID").to_string(),
            _ => local(w, etc, var),
        })
        .collect()
}

// ---- running gslbd under strace ----

/// Run `argv` under `strace -f -qq -o trace` in `cwd` and wait for it (at most 30 s): whether it
/// succeeded, and what it said on stderr.
fn run_traced(trace: &Path, argv: &[String], cwd: &Path) -> (bool, String) {
    let err = trace.with_extension("stderr");
    let mut child = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(trace)
        .args(argv)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("create the stderr file"))
        .spawn()
        .expect("run strace");
    let status = poll(Duration::from_secs(30), Duration::from_millis(20), || {
        child.try_wait().expect("wait")
    })
    .unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{argv:?} did not end within 30 s");
    });
    (
        status.success(),
        std::fs::read_to_string(&err).unwrap_or_default(),
    )
}

/// `gslbd serve` under strace: the strace process, gslbd's own PID, its log.
struct Traced {
    strace: Child,
    pid: i32,
    log: Arc<Mutex<String>>,
    dns: SocketAddr,
    api: String,
}

impl Traced {
    /// `strace -f -qq -o trace OPTIONS ARGV` in `cwd` with `env` added, once gslbd listens.
    fn start(
        trace: &Path,
        options: &[&str],
        argv: &[String],
        cwd: &Path,
        env: &[(&str, &str)],
    ) -> Traced {
        let mut strace = Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(trace)
            .args(options)
            .args(argv)
            .current_dir(cwd)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gslbd under strace");
        let stderr = strace.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let (mut dns, mut api) = (None, None);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let word_after = |s: &str| {
                    line.split(s)
                        .nth(1)
                        .and_then(|r| r.split_whitespace().next())
                        .map(str::to_string)
                };
                dns = dns.or_else(|| word_after("listening on udp and tcp ")?.parse().ok());
                api = api.or_else(|| word_after("admin API on http://"));
                {
                    let mut l = log2.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                // the admin API is announced last, after every listener
                if let (Some(d), Some(a)) = (dns, &api) {
                    let _ = tx.send(Some((d, a.clone())));
                }
            }
            let _ = tx.send(None);
        });
        let (dns, api) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(ready)) => ready,
            other => {
                let _ = strace.kill();
                let _ = strace.wait();
                panic!(
                    "gslbd did not start under strace ({other:?}); log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        let parent = strace.id();
        let pid = poll(Duration::from_secs(5), TICK, || child_of(parent, "gslbd"))
            .expect("gslbd's PID (strace's child)");
        Traced {
            strace,
            pid,
            log,
            dns,
            api,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a signal to gslbd, the child of our own strace child.
        unsafe {
            libc::kill(self.pid, sig);
        }
    }

    /// SIGTERM to gslbd; its exit code (strace exits with it), if it exits within 20 s.
    fn stop(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        poll(Duration::from_secs(20), TICK, || {
            let status = self.strace.try_wait().ok()??;
            Some(status.code().unwrap_or(-1))
        })
    }

    /// Poll the log until it contains `needle` (or panic after `secs`).
    #[track_caller]
    fn wait_log(&self, needle: &str, secs: u64) {
        eventually(
            Duration::from_secs(secs),
            format!("log never showed {needle:?}"),
            || self.log().contains(needle).then_some(()),
        );
    }

    /// Ask `name` A over UDP until the answer's addresses are `want` (or panic after `secs`).
    fn wait_answer(&self, name: &str, want: &[&str], secs: u64) {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        let mut got = None;
        poll(
            Duration::from_secs(secs),
            Duration::from_millis(100),
            || {
                got = common::udp_exchange(
                    self.dns,
                    &Ask::new(name, "A").bytes(),
                    Duration::from_secs(2),
                )
                .and_then(|r| Message::from_vec(&r).ok())
                .map(|m| common::addresses(&m).into_iter().collect::<BTreeSet<_>>());
                (got.as_ref() == Some(&want)).then_some(())
            },
        )
        .unwrap_or_else(|| panic!("{name} never answered {want:?} (last: {got:?})"));
    }

    fn tcp(&self, q: &Ask) -> Message {
        let mut s = TcpStream::connect_timeout(&self.dns, Duration::from_secs(2)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        common::tcp_send(&mut s, &q.bytes());
        Message::from_vec(&common::tcp_recv(&mut s).expect("tcp reply")).expect("parse reply")
    }

    /// One HTTP/1.1 request to the admin API: (status, body).
    fn http(&self, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
        common::http_request(&self.api, method, path, body, token)
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Ok(None) = self.strace.try_wait() {
            self.signal(libc::SIGKILL);
            let _ = self.strace.kill();
            let _ = self.strace.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- gslbd log ----\n{}", self.log());
        }
    }
}
/// The next sd_notify message, within 10 s.
fn notified(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("a message on NOTIFY_SOCKET within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn zone(checks_port: (u16, u16), extra: &str) -> String {
    let (smtp, web) = checks_port;
    format!(
        "zone: u.test.
soa: {{ mname: ns1.u.test., rname: hostmaster.u.test. }}
ns: [ns1.u.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
  \"@\": {{ TXT: [\"gslbd under strace\"], MX: [\"10 mail\"] }}
{extra}checks:
  smtp: {{ tcp: {{ port: {smtp}, expect_banner: \"^220 \" }}, interval: 1s, timeout: 900ms, rise: 1, fall: 1 }}
  web: {{ http: {{ port: {web}, path: /health, expect_status: [200], expect_body: \"200 OK\" }}, interval: 1s, timeout: 900ms, rise: 1, fall: 1 }}
  script: {{ exec: {{ command: [/bin/sh, -c, 'test \"$GSLBD_ADDRESS\" = {NET}.31'] }}, interval: 1s, timeout: 900ms, rise: 1, fall: 1 }}
pools:
  mail: {{ checks: [smtp], members: [{{ address: {NET}.11 }}, {{ address: {NET}.12 }}] }}
  web: {{ checks: [web], members: [{{ address: {NET}.21 }}, {{ address: {NET}.22 }}] }}
  script: {{ checks: [script], members: [{{ address: {NET}.31 }}, {{ address: {NET}.32 }}] }}
names:
  mail: {{ pool: mail }}
  www: {{ pool: web }}
  script: {{ pool: script }}
"
    )
}

/// A production-like setup in `dir`: stand-ins for /etc/gslbd (the config, read-only under
/// ProtectSystem=strict) and /var/lib/gslbd (StateDirectory= and WorkingDirectory=), configured
/// as the unit's header says, and the members' backends.
struct Setup {
    etc: PathBuf,
    var: PathBuf,
    ports: (u16, u16),
    _backends: [Backend; 2],
}

impl Setup {
    fn new(dir: &Path) -> Setup {
        let etc = dir.join("etc/gslbd");
        let var = dir.join("var/lib/gslbd");
        std::fs::create_dir_all(etc.join("zones")).unwrap();
        std::fs::create_dir_all(&var).unwrap();
        let smtp = Backend::start(&format!("{NET}.11"), 0, Mode::Smtp);
        let web = Backend::start(&format!("{NET}.21"), 0, Mode::Ok);
        let ports = (smtp.addr.port(), web.addr.port());
        std::fs::write(
            etc.join("gslbd.yaml"),
            format!(
                "listen: [\"{NET}.1:0\"]\nzones_dir: zones\nstate_dir: {}\napi: {{ listen: \"{NET}.1:0\", token_file: api.token }}\n",
                var.display()
            ),
        )
        .unwrap();
        std::fs::write(etc.join("api.token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(etc.join("zones/u.yaml"), zone(ports, "")).unwrap();
        Setup {
            etc,
            var,
            ports,
            _backends: [smtp, web],
        }
    }

    /// The unit's `key=` command line for this setup.
    fn command(&self, unit: &str, key: &str, pid: Option<i32>) -> Vec<String> {
        command_of(unit, key, &self.etc, &self.var, pid)
    }

    /// The unit's `WorkingDirectory=` for this setup.
    fn workdir(&self, unit: &str) -> PathBuf {
        let dir = directives(unit, "WorkingDirectory");
        let dir = dir.first().map_or("/", |d| d.trim_start_matches('-'));
        PathBuf::from(local(dir, &self.etc, &self.var))
    }

    /// Wait until every kind of check has settled: up where the backend answers, down where
    /// it does not.
    fn wait_settled(&self, g: &Traced) {
        g.wait_answer("mail.u.test.", &[&format!("{NET}.11")], 20);
        g.wait_answer("www.u.test.", &[&format!("{NET}.21")], 20);
        g.wait_answer("script.u.test.", &[&format!("{NET}.31")], 20);
        g.wait_log("ready: the first probe round has finished", 20);
    }
}

#[test]
fn every_system_call_of_a_realistic_run_passes_the_units_filter() {
    if !can_run(&["strace", "systemd-analyze"]) {
        return;
    }
    let started = Instant::now();
    let unit = unit_text();
    let groups = Groups::load();
    let d = tempfile::tempdir().unwrap();
    let site = Setup::new(d.path());
    let (etc, var) = (&site.etc, &site.var);
    let cwd = site.workdir(&unit);

    // ExecStartPre=: the check
    let pre_trace = d.path().join("pre.trace");
    let (ok, stderr) = run_traced(&pre_trace, &site.command(&unit, "ExecStartPre", None), &cwd);
    assert!(ok, "ExecStartPre failed: {stderr}");

    // ExecStart=: serve, Type=notify
    let notify_path = d.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let serve_trace = d.path().join("serve.trace");
    let mut g = Traced::start(
        &serve_trace,
        &[],
        &site.command(&unit, "ExecStart", None),
        &cwd,
        &[("NOTIFY_SOCKET", notify_path.to_str().expect("a UTF-8 path"))],
    );
    assert_eq!(notified(&notify).trim(), "READY=1");
    site.wait_settled(&g);

    // queries over TCP, and answers that are not pooled
    let m = g.tcp(&Ask::new("www.u.test.", "A"));
    assert_eq!(common::addresses(&m), [format!("{NET}.21")]);
    assert_eq!(
        g.tcp(&Ask::new("u.test.", "MX")).answers.len(),
        1,
        "{}",
        g.log()
    );
    let nx = g.tcp(&Ask::new("nothing.u.test.", "A").no_edns());
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    let reply = common::udp_exchange(
        g.dns,
        &Ask::new("u.test.", "TXT").bytes(),
        Duration::from_secs(2),
    )
    .expect("a UDP reply");
    assert_eq!(Message::from_vec(&reply).unwrap().answers.len(), 1);

    // the admin API: reads, and writes that are saved in the state directory
    assert_eq!(g.http("GET", "/readyz", "", None).0, 200);
    assert_eq!(g.http("GET", "/v1/status", "", None).0, 200);
    assert_eq!(g.http("GET", "/metrics", "", None).0, 200);
    let drain = format!("/v1/members/{NET}.11/drain");
    assert_eq!(g.http("POST", &drain, "", None).0, 401);
    let (code, body) = g.http(
        "POST",
        &drain,
        r#"{"reason": "patching", "expires": "1h"}"#,
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{body}");
    assert!(var.join("overrides.json").exists(), "{}", g.log());
    let undrain = format!("/v1/members/{NET}.11/undrain");
    let (code, body) = g.http("POST", &undrain, "", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    let (code, body) = g.http("POST", "/v1/reload", "", Some(TOKEN));
    assert_eq!(code, 200, "{body}");

    // ExecReload=: SIGHUP with a changed zone
    std::fs::write(
        etc.join("zones/u.yaml"),
        zone(site.ports, "  new: { A: [192.0.2.77] }\n"),
    )
    .unwrap();
    let reload_trace = d.path().join("reload.trace");
    let (ok, stderr) = run_traced(
        &reload_trace,
        &site.command(&unit, "ExecReload", Some(g.pid)),
        &cwd,
    );
    assert!(ok, "ExecReload failed: {stderr}");
    g.wait_answer("new.u.test.", &["192.0.2.77"], 10);
    g.wait_log("reload: new configuration is live", 5);
    g.wait_answer("www.u.test.", &[&format!("{NET}.21")], 10);

    // SIGTERM (systemctl stop): STOPPING=1, last-known health saved, exit 0
    let code = g.stop();
    assert_eq!(code, Some(0), "gslbd did not stop cleanly:\n{}", g.log());
    assert_eq!(notified(&notify).trim(), "STOPPING=1");
    assert!(var.join("health.json").exists(), "{}", g.log());
    let log = g.log();
    drop(g);

    // every call of every command the unit runs, and where it happened
    let mut seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut families = BTreeSet::new();
    let mut writes = BTreeSet::new();
    let mut total = 0;
    for (what, trace) in [
        ("ExecStartPre", &pre_trace),
        ("ExecStart", &serve_trace),
        ("ExecReload", &reload_trace),
    ] {
        let text = std::fs::read_to_string(trace).expect("read the strace log");
        let calls = calls_of(&text);
        assert!(!calls.is_empty(), "no calls recorded for {what}");
        for (name, call) in calls {
            total += 1;
            seen.entry(name.to_string())
                .or_insert_with(|| (0, format!("{what}: {call}")))
                .0 += 1;
            families.extend(family_of(name, call));
            writes.extend(written_by(name, call, &cwd));
        }
    }
    // the run did what it should: probes, exec checks, both nice and slice, UDP batches, the
    // notify socket, saved state
    assert!(
        families.contains("AF_INET") && families.contains("AF_UNIX"),
        "{families:?}"
    );
    for file in ["health.json", "overrides.json"] {
        assert!(
            writes.contains(&var.join(file).display().to_string()),
            "no write of {file} seen: {writes:#?}"
        );
    }
    for call in [
        "setpriority",
        "sched_setattr",
        "execve",
        "recvmmsg",
        "connect",
        "accept4",
    ] {
        assert!(seen.contains_key(call), "no {call} recorded; log:\n{log}");
    }

    let service = groups.expand("@system-service").unwrap();
    let outside: Vec<&String> = seen.keys().filter(|c| !service.contains(*c)).collect();
    eprintln!(
        "{} distinct system calls ({total} in all) in {:.1} s: {}\noutside @system-service: {outside:?}",
        seen.len(),
        started.elapsed().as_secs_f64(),
        seen.keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let blocked = blocked(&unit, &groups, seen.keys().map(String::as_str));
    assert!(
        blocked.is_empty(),
        "contrib/gslbd.service's SystemCallFilter= would block {} call(s) gslbd makes: {}\n{}",
        blocked.len(),
        blocked.join(" "),
        blocked
            .iter()
            .map(|c| format!("  {c} (x{}), first: {}", seen[c].0, seen[c].1))
            .collect::<Vec<_>>()
            .join("\n")
    );

    if let Some(af) = address_families(&unit) {
        let refused: Vec<&String> = families.iter().filter(|f| !af.allows(f)).collect();
        assert!(
            refused.is_empty(),
            "RestrictAddressFamilies= refuses sockets gslbd opens: {refused:?}"
        );
    }

    // ProtectSystem=strict: nothing but the state directory is writable (and /dev/null)
    let outside_state: Vec<&String> = writes
        .iter()
        .filter(|p| *p != "/dev/null" && !Path::new(p.as_str()).starts_with(var))
        .collect();
    assert!(
        outside_state.is_empty(),
        "writes outside the state directory {}: {outside_state:#?}",
        var.display()
    );
}

#[test]
fn the_checker_reports_what_the_old_filter_blocked() {
    if !can_run(&["systemd-analyze"]) {
        return;
    }
    let groups = Groups::load();
    let unit = unit_text();
    let calls = [
        "read",
        "recvmmsg",
        "setpriority",
        "sched_setattr",
        "execve",
        "exit_group",
    ];
    assert_eq!(blocked(&unit, &groups, calls), Vec::<String>::new());
    // the filter as it was shipped: @resources (setpriority, sched_setattr) denied, and no
    // SystemCallErrorNumber=, so systemd killed gslbd at start
    let old =
        "[Service]\nSystemCallFilter=@system-service\nSystemCallFilter=~@privileged @resources\n";
    assert_eq!(
        blocked(old, &groups, calls),
        ["sched_setattr", "setpriority"]
    );
    // later allow lines add back; an empty value starts over; a deny list first denies only
    // what it names (with or without an error number of its own)
    let back = format!("{old}SystemCallFilter=setpriority\n");
    assert_eq!(blocked(&back, &groups, calls), ["sched_setattr"]);
    let reset = format!("{old}SystemCallFilter=\nSystemCallFilter=read\n");
    assert_eq!(
        blocked(&reset, &groups, calls),
        ["recvmmsg", "sched_setattr", "setpriority"]
    );
    let deny = "SystemCallFilter=~@resources:EPERM\nSystemCallFilter=setpriority\n";
    assert_eq!(blocked(deny, &groups, calls), ["sched_setattr"]);
    // the unit says what happens to a call it missed
    assert_eq!(directives(&unit, "SystemCallErrorNumber"), ["EPERM"]);
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_and_its_xdp_drop_in() {
    if !can_run(&["systemd-analyze"]) {
        return;
    }
    let unit = unit_text();
    // verify wants the commands to exist: the built binary stands in for the installed one
    let d = tempfile::tempdir().unwrap();
    let text: String = unit
        .lines()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if k.starts_with("Exec") => {
                let (bin, rest) = v.split_once(' ').unwrap_or((v, ""));
                let bin = if bin.ends_with("/gslbd") { BIN } else { bin };
                format!("{k}={bin} {rest}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    assert!(text.contains(&format!("ExecStart={BIN} serve")), "{text}");
    let path = d.path().join("gslbd.service");
    std::fs::write(&path, text).unwrap();
    // with the XDP drop-in beside it, where verify reads drop-ins (a word about it fails too)
    let drop_ins = d.path().join("gslbd.service.d");
    std::fs::create_dir(&drop_ins).unwrap();
    std::fs::copy(
        common::root().join("contrib/gslbd-xdp.conf"),
        drop_ins.join("xdp.conf"),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&o.stderr);
    // verify exits 0 after warnings it ignores (a bad URL, an unknown system call or errno):
    // any word about the unit is a failure too
    let about: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("gslbd.service"))
        .collect();
    assert!(
        o.status.success() && about.is_empty(),
        "systemd-analyze verify {} ({}):\n{stderr}",
        path.display(),
        o.status
    );
}

#[test]
fn gslbd_serves_when_the_filter_refuses_its_resource_calls() {
    if !can_run(&["strace"]) {
        return;
    }
    // What SystemCallErrorNumber=EPERM does to a call the filter misses, done by strace: the
    // @resources calls gslbd makes fail, and it serves all the same, without what it asked for.
    let unit = unit_text();
    let d = tempfile::tempdir().unwrap();
    let site = Setup::new(d.path());
    let trace = d.path().join("serve.trace");
    let mut g = Traced::start(
        &trace,
        &["-e", "inject=setpriority,sched_setattr:error=EPERM"],
        &site.command(&unit, "ExecStart", None),
        &site.workdir(&unit),
        &[("GSLBD_LOG", "debug")],
    );
    site.wait_settled(&g);
    g.wait_log("no short time slice for the UDP thread", 5);
    assert_eq!(
        g.stop(),
        Some(0),
        "gslbd did not stop cleanly:\n{}",
        g.log()
    );
    drop(g);
    let text = std::fs::read_to_string(&trace).expect("read the strace log");
    for call in ["setpriority", "sched_setattr"] {
        // "sched_setattr(...) = -1 EPERM ... (INJECTED)", or the end of an unfinished one
        assert!(
            text.lines()
                .any(|l| l.contains(call) && l.contains("EPERM") && l.contains("(INJECTED)")),
            "{call} was not refused"
        );
    }
}
