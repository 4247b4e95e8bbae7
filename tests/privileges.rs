//! Privileges: started as root, gslbd binds port 53 and then runs as `user`, and its exec checks
//! run as that user without the server's environment.
//!
//! Needs root; without it the test says so and passes, unless GSLBD_LAB_REQUIRED=1 (CI).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Ask, Server, eventually, udp_exchange};

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
    eventually(Duration::from_secs(10), "the check never ran", || {
        out.exists().then_some(())
    });
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

#[test]
fn binding_a_privileged_port_without_the_right_says_how_to_get_it() {
    // Run as nobody, from root, with util-linux's setpriv (no capabilities are kept).
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let (Some(setpriv), true) = (setpriv, root) else {
        assert!(
            std::env::var_os("GSLBD_LAB_REQUIRED").is_none(),
            "needs root and setpriv (util-linux)"
        );
        eprintln!("skipped: needs root and setpriv (util-linux)");
        return;
    };
    let unprivileged_from: u16 =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1024);
    if unprivileged_from <= 53 {
        eprintln!("skipped: net.ipv4.ip_unprivileged_port_start lets anyone bind port 53");
        return;
    }
    let nobody = gslbd::privileges::lookup("nobody").expect("a nobody user");
    let d = tempfile::tempdir().unwrap();
    // nobody must read the zones, and be able to write state (the config is checked first)
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::create_dir_all(d.path().join("zones")).unwrap();
    std::fs::write(
        d.path().join("zones/u.yaml"),
        "zone: u.test.\nsoa: { mname: ns1.u.test., rname: hostmaster.u.test. }\nns: [ns1.u.test.]\nrecords:\n  ns1: { A: [192.0.2.53] }\n",
    )
    .unwrap();
    let o = std::process::Command::new(setpriv)
        .args([
            &format!("--reuid={}", nobody.uid),
            &format!("--regid={}", nobody.gid),
            "--clear-groups",
            "--inh-caps=-all",
            common::BIN,
            "serve",
            "--listen",
            "127.0.0.1:53",
            "--api",
            "127.0.0.1:0",
        ])
        .current_dir(d.path())
        .output()
        .expect("run setpriv");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let exe = std::fs::canonicalize(common::BIN).unwrap();
    assert!(
        err.contains(&format!(
            "binding 127.0.0.1:53 needs root or CAP_NET_BIND_SERVICE: run as root with `user:` in gslbd.yaml (gslbd drops to that user after binding), or grant the capability (setcap cap_net_bind_service=+ep {}, or AmbientCapabilities= in the systemd unit)",
            exe.display()
        )),
        "{err}"
    );
    assert!(!err.contains("stopped"), "{err}");
}
