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
//! unit without a word about it.
//!
//! Needs strace and systemd-analyze (Debian: strace, systemd). Without them the tests say so and
//! pass, unless GSLBD_LAB_REQUIRED is set (by .ci/run, which installs them).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::backend::{Backend, Mode};
use common::{Ask, BIN, TICK, eventually, poll};
use hickory_proto::op::{Message, ResponseCode};

/// The loopback network of this test's server and members.
const NET: &str = "127.0.64";
const TOKEN: &str = "s3cret";

fn unit_text() -> String {
    std::fs::read_to_string(common::root().join("contrib/gslbd.service"))
        .expect("read contrib/gslbd.service")
}

/// Whether the tools are here; when one is not, the test is skipped (`false`), or fails if it
/// must run (GSLBD_LAB_REQUIRED).
fn can_run(tools: &[&str]) -> bool {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(
                std::env::var_os("GSLBD_LAB_REQUIRED").is_none(),
                "cannot check the systemd unit: {tool} is not installed"
            );
            eprintln!("skipped: {tool} is not installed (apt-get install strace systemd)");
            return false;
        }
    }
    true
}

// ---- the unit ----

/// The values of every `key=` line of a unit, in order.
fn directives<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .collect()
}

/// A list setting of allow-list and `~` deny-list lines, merged as systemd merges
/// `SystemCallFilter=` and `RestrictAddressFamilies=` (systemd.exec(5)): the first line decides
/// whether the set holds what is allowed or what is denied; a later line of the same kind adds
/// to the set, of the other kind removes from it; an empty value starts over.
#[derive(Debug)]
struct ListSetting {
    allow_list: bool,
    set: BTreeSet<String>,
}

impl ListSetting {
    /// `implicit`: what an allow list holds from the start (systemd adds `@default` to a
    /// system call allow list); `expand`: the names one word stands for.
    fn parse(
        values: &[&str],
        implicit: &[&str],
        expand: &dyn Fn(&str) -> Result<BTreeSet<String>, String>,
    ) -> Result<Option<ListSetting>, String> {
        let mut setting: Option<ListSetting> = None;
        for value in values {
            if value.is_empty() {
                setting = None;
                continue;
            }
            let (deny, words) = match value.strip_prefix('~') {
                Some(rest) => (true, rest),
                None => (false, *value),
            };
            if setting.is_none() {
                let mut set = BTreeSet::new();
                if !deny {
                    for w in implicit {
                        set.extend(expand(w)?);
                    }
                }
                setting = Some(ListSetting {
                    allow_list: !deny,
                    set,
                });
            }
            let s = setting.as_mut().expect("set above");
            for word in words.split_whitespace() {
                // `name:ERRNO` (a deny-list entry's own error number) names the same calls
                let name = word.split_once(':').map_or(word, |(n, _)| n);
                let names = expand(name)?;
                if deny != s.allow_list {
                    s.set.extend(names);
                } else {
                    s.set.retain(|n| !names.contains(n));
                }
            }
        }
        Ok(setting)
    }

    fn allows(&self, name: &str) -> bool {
        self.set.contains(name) == self.allow_list
    }
}

/// systemd's system call groups as `systemd-analyze syscall-filter` lists them: each group's
/// calls and the groups it includes.
struct Groups(HashMap<String, Vec<String>>);

impl Groups {
    fn load() -> Groups {
        let o = Command::new("systemd-analyze")
            .arg("syscall-filter")
            .output()
            .expect("run systemd-analyze syscall-filter");
        assert!(
            o.status.success(),
            "systemd-analyze syscall-filter failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
        let mut current: Option<String> = None;
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let item = line.trim();
            if item.is_empty() {
                continue;
            }
            if !line.starts_with(char::is_whitespace) {
                // "@group" opens a group; anything else at the margin (the closing list of
                // calls in no group, commented out) closes it
                current = item.starts_with('@').then(|| item.to_string());
                if let Some(g) = &current {
                    groups.entry(g.clone()).or_default();
                }
            } else if let Some(g) = &current
                && !item.starts_with('#')
            {
                groups
                    .get_mut(g)
                    .expect("opened above")
                    .push(item.to_string());
            }
        }
        assert!(
            groups.contains_key("@system-service") && groups.contains_key("@default"),
            "systemd-analyze syscall-filter listed no @system-service or @default"
        );
        Groups(groups)
    }

    /// The calls `word` names: those of a group and of the groups it includes, or one call.
    fn expand(&self, word: &str) -> Result<BTreeSet<String>, String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![word.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(w) = todo.pop() {
            if !w.starts_with('@') {
                out.insert(w);
            } else if seen.insert(w.clone()) {
                let members = self
                    .0
                    .get(&w)
                    .ok_or_else(|| format!("{w} is not a system call group of this systemd"))?;
                todo.extend(members.iter().cloned());
            }
        }
        Ok(out)
    }
}

/// The unit's system call filter (`None`: it has none and allows everything).
fn syscall_filter(unit: &str, groups: &Groups) -> Option<ListSetting> {
    ListSetting::parse(&directives(unit, "SystemCallFilter"), &["@default"], &|w| {
        groups.expand(w)
    })
    .unwrap_or_else(|e| panic!("SystemCallFilter=: {e}"))
}

/// The calls among `calls` that the unit's `SystemCallFilter=` does not allow.
fn blocked<'a>(
    unit: &str,
    groups: &Groups,
    calls: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let Some(filter) = syscall_filter(unit, groups) else {
        return Vec::new();
    };
    let mut v: Vec<String> = calls
        .into_iter()
        .filter(|c| !filter.allows(c))
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    v
}

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

// ---- strace logs ----

/// The system calls of an `strace -f` log: (name, the line), in order.
fn calls_of(trace: &str) -> Vec<(&str, &str)> {
    trace
        .lines()
        .filter_map(|line| {
            let rest = match line.split_once(' ') {
                Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => rest.trim_start(),
                _ => line,
            };
            // "<... futex resumed>", "--- SIGHUP ...", "+++ exited ..." are not calls
            let (name, _) = rest.split_once('(')?;
            (!name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
            .then_some((name, rest))
        })
        .collect()
}

/// The quoted strings among a call's arguments (strace prints paths in full).
fn strings_of(call: &str) -> Vec<String> {
    let args = call.rsplit_once(") = ").map_or(call, |(a, _)| a);
    let mut out = Vec::new();
    let mut chars = args.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => s.extend(chars.next()),
                '"' => break,
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// The paths a call creates, truncates, opens for writing, renames or removes; relative ones
/// resolved against `cwd`, or shown as they are when relative to another directory's fd.
fn written_by(name: &str, call: &str, cwd: &Path) -> Vec<String> {
    let writes = match name {
        "open" | "openat" | "openat2" => ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
            .iter()
            .any(|f| call.contains(f)),
        "creat" | "mkdir" | "mkdirat" | "rename" | "renameat" | "renameat2" | "unlink"
        | "unlinkat" | "rmdir" | "link" | "linkat" | "symlink" | "symlinkat" | "truncate"
        | "mknod" | "mknodat" => true,
        _ => false,
    };
    if !writes {
        return Vec::new();
    }
    let at_call = matches!(
        name,
        "openat"
            | "openat2"
            | "mkdirat"
            | "renameat"
            | "renameat2"
            | "unlinkat"
            | "linkat"
            | "symlinkat"
            | "mknodat"
    );
    let at_cwd = !at_call || call.contains("AT_FDCWD");
    strings_of(call)
        .into_iter()
        .map(|p| {
            if p.starts_with('/') {
                p
            } else if at_cwd {
                cwd.join(p).display().to_string()
            } else {
                format!("{p} (relative to a directory fd: {call})")
            }
        })
        .collect()
}

/// The address family of a socket() or socketpair() call.
fn family_of(name: &str, call: &str) -> Option<String> {
    if name != "socket" && name != "socketpair" {
        return None;
    }
    let args = call.split_once('(')?.1;
    Some(args.split([',', ')']).next()?.trim().to_string())
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
        let pid = poll(Duration::from_secs(5), TICK, || child_of(parent))
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

/// The PID of `parent`'s child (strace has one: the command it runs).
fn child_of(parent: u32) -> Option<i32> {
    let parent = parent.to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            // "PID (COMM) STATE PPID ...": the command name may hold spaces and parentheses
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let (_, rest) = s.rsplit_once(')')?;
                    Some(rest.split_whitespace().nth(1)? == parent)
                })
                .unwrap_or(false)
        })
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

    let af = ListSetting::parse(&directives(&unit, "RestrictAddressFamilies"), &[], &|w| {
        Ok(BTreeSet::from([w.to_string()]))
    })
    .unwrap();
    if let Some(af) = af {
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
fn systemd_analyze_verify_accepts_the_unit() {
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
