//! Privileges: started as root, gslbd binds port 53 and then runs as `user`, and its exec checks
//! run as that user without the server's environment.
//!
//! Needs root; without it the test says so and passes, unless GSLBD_LAB_REQUIRED=1 (CI).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Ask, Server, udp_exchange};

#[test]
fn binds_port_53_as_root_then_runs_as_the_configured_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("GSLBD_LAB_REQUIRED").is_none(),
            "needs root to bind port 53"
        );
        eprintln!("skipped: needs root to bind port 53");
        return;
    }
    let nobody = gslbd::privileges::lookup("nobody").expect("a nobody user");
    let d = tempfile::tempdir().unwrap();
    // The unprivileged user must reach the directory: state, and what the check writes.
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = d.path().join("check.out");
    std::fs::create_dir_all(d.path().join("zones")).unwrap();
    std::fs::write(
        d.path().join("zones/u.yaml"),
        format!(
            "zone: u.test.
soa: {{ mname: ns1.u.test., rname: hostmaster.u.test. }}
ns: [ns1.u.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
checks:
  who: {{ exec: {{ command: [/bin/sh, -c, 'env > {out}.env; mv {out}.env {out}'] }}, interval: 1s, timeout: 1s }}
pools:
  web: {{ checks: [who], members: [{{ address: 127.0.54.9 }}] }}
names:
  www: {{ pool: web }}
",
            out = out.display()
        ),
    )
    .unwrap();
    std::fs::write(d.path().join("gslbd.yaml"), "user: nobody\n").unwrap();
    // A secret in the server's environment must not reach the check.
    let s = Server::start_with_env(
        "127.0.54.1:53",
        d.path(),
        &[],
        &[("GSLBD_TEST_SECRET", "s3cret")],
    );
    assert!(
        s.log()
            .contains(&format!("running as user nobody (uid {}", nobody.uid)),
        "{}",
        s.log()
    );

    // Every uid of the process (real, effective, saved, filesystem) is nobody's now.
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let uids: Vec<u32> = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(uids, [nobody.uid; 4], "{status}");
    let groups = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap();
    assert!(
        groups.trim().is_empty() || groups.trim() == nobody.gid.to_string(),
        "{groups}"
    );

    // It still answers on port 53.
    let server: std::net::SocketAddr = "127.0.54.1:53".parse().unwrap();
    let reply = udp_exchange(
        server,
        &Ask::new("ns1.u.test.", "A").bytes(),
        Duration::from_secs(2),
    )
    .expect("an answer on port 53");
    assert!(reply.len() > 12);

    // The exec check ran as nobody, without the secret.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !out.exists() {
        assert!(
            Instant::now() < deadline,
            "the check never ran\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(!env.contains("s3cret"), "{env}");
    // The file the check wrote belongs to the user it ran as.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&out).unwrap().uid(), nobody.uid);
}

#[test]
fn an_unknown_user_is_a_config_error() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("zones")).unwrap();
    std::fs::write(
        d.path().join("zones/u.yaml"),
        "zone: u.test.\nsoa: { mname: ns1.u.test., rname: hostmaster.u.test. }\nns: [ns1.u.test.]\nrecords:\n  ns1: { A: [192.0.2.53] }\n",
    )
    .unwrap();
    std::fs::write(d.path().join("gslbd.yaml"), "user: no-such-user-here\n").unwrap();
    let (code, err) = common::check_in(d.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("gslbd.yaml:1:7: user: there is no user \"no-such-user-here\" on this system"),
        "{err}"
    );
}
