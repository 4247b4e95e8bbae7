//! `gslbd serve` as a user runs it: the bundled zones, reload on SIGHUP, clean exit on SIGTERM,
//! refusal of a bad config.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Ask, BIN, Server, addresses, bundled_copy, bundled_zones, eventually};

#[test]
fn serves_the_bundled_zones_with_no_config() {
    // As in the README: run where zones/ is (the repository root there; a copy of it here, so
    // that the state/ it writes stays out of the checkout), and it is found by default.
    let d = bundled_copy();
    let s = Server::start(d.path(), &[]);
    let m = s.udp(&Ask::new("www.gslb.example.test.", "A"));
    assert!(m.metadata.authoritative);
    assert_eq!(addresses(&m), ["127.0.1.1", "127.0.1.2"]);
    // a record from the bundled master file (records_file)
    let m = s.tcp(&Ask::new("legacy.gslb.example.test.", "A"));
    assert_eq!(addresses(&m), ["127.0.1.20"]);
    let log = s.log();
    assert!(log.contains("listening on udp and tcp 127.0.0.1:"), "{log}");
    assert!(log.contains("serving 1 zone(s)"), "{log}");
}

#[test]
fn listens_on_several_addresses_including_ipv6() {
    let zones = bundled_zones();
    let mut args = vec![
        "--zones",
        zones.to_str().unwrap(),
        "--listen",
        "127.0.0.2:0",
    ];
    let v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    if v6 {
        args.extend(["--listen", "[::1]:0"]);
    }
    let s = Server::start_in_tempdir(&args);
    let addrs = s.addrs();
    assert_eq!(addrs.len(), if v6 { 3 } else { 2 }, "{}", s.log());
    for addr in addrs {
        let q = Ask::new("www.gslb.example.test.", "AAAA").bytes();
        let reply = common::udp_exchange(addr, &q, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("no UDP answer on {addr}"));
        let m = hickory_proto::op::Message::from_vec(&reply).unwrap();
        assert_eq!(addresses(&m), ["::1"], "on {addr}");
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        common::tcp_send(&mut c, &q);
        assert!(common::tcp_recv(&mut c).is_some(), "TCP answer on {addr}");
    }
}

const ZONE_V1: &str = "zone: r.test.
soa: { mname: ns1.r.test., rname: hostmaster.r.test. }
ns: [ns1.r.test.]
records:
  ns1: { A: [192.0.2.53] }
  www: { A: [192.0.2.1] }
";

#[test]
fn sighup_reloads_a_good_config_and_refuses_a_bad_one() {
    let d = tempfile::tempdir().unwrap();
    let zones = d.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    std::fs::write(zones.join("r.yaml"), ZONE_V1).unwrap();
    let s = Server::start(d.path(), &[]);
    let www = Ask::new("www.r.test.", "A");
    assert_eq!(addresses(&s.udp(&www)), ["192.0.2.1"]);

    // A broken file: refused with its diagnostic, the old data keeps being served.
    std::fs::write(
        zones.join("r.yaml"),
        ZONE_V1.replace("192.0.2.1]", "192.0.2.300]"),
    )
    .unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("reload refused", 10);
    assert!(
        s.log()
            .contains("records.www.A[0]: \"192.0.2.300\" is not an IPv4 address"),
        "{}",
        s.log()
    );
    assert_eq!(addresses(&s.udp(&www)), ["192.0.2.1"]);

    // A good file replaces the data.
    std::fs::write(
        zones.join("r.yaml"),
        ZONE_V1.replace("192.0.2.1]", "192.0.2.2, 192.0.2.3]"),
    )
    .unwrap();
    s.signal(libc::SIGHUP);
    eventually(Duration::from_secs(10), "reload never took effect", || {
        (addresses(&s.udp(&www)) == ["192.0.2.2", "192.0.2.3"]).then_some(())
    });
    assert!(s.log().contains("reload: new configuration is live"));
}

#[test]
fn sigterm_exits_cleanly() {
    let zones = bundled_zones();
    let mut s = Server::start_in_tempdir(&["--zones", zones.to_str().unwrap()]);
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(10), Some(0), "{}", s.log());
}

#[test]
fn a_bad_config_is_refused_at_start() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("zones")).unwrap();
    std::fs::write(
        d.path().join("zones/r.yaml"),
        ZONE_V1.replace("ns: [ns1.r.test.]\n", ""),
    )
    .unwrap();
    let o = Command::new(BIN)
        .current_dir(d.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("zones/r.yaml:1:7: ns: missing"), "{err}");
    assert!(!err.contains("listening"), "{err}");
}

#[test]
fn tells_systemd_when_ready_and_when_stopping() {
    use std::os::unix::net::UnixDatagram;
    let d = tempfile::tempdir().unwrap();
    let sock_path = d.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    /// Kills the child even when an assertion fails, so no server outlives the test.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reap(
        Command::new(BIN)
            .current_dir(d.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
            .arg("--zones")
            .arg(bundled_zones())
            .env("NOTIFY_SOCKET", &sock_path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 within 20 s");
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "READY=1");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(String::from_utf8_lossy(&buf[..n]).trim(), "STOPPING=1");
    let status = eventually(
        Duration::from_secs(10),
        "did not exit after SIGTERM",
        || child.0.try_wait().unwrap(),
    );
    assert!(status.success(), "{status}");
}

#[test]
fn sighup_with_listen_on_the_command_line_does_not_warn_about_listen() {
    // The config says nothing of `listen` (default 127.0.0.1:5353); `--listen` replaced it.
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("zones")).unwrap();
    std::fs::write(d.path().join("zones/r.yaml"), ZONE_V1).unwrap();
    let s = Server::start(d.path(), &[]);
    s.signal(libc::SIGHUP);
    s.wait_log("reload: new configuration is live", 10);
    assert!(!s.log().contains("listen addresses changed"), "{}", s.log());
    assert_eq!(
        addresses(&s.udp(&Ask::new("www.r.test.", "A"))),
        ["192.0.2.1"]
    );
}

#[test]
fn a_taken_listen_address_fails_with_the_error_first() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("zones")).unwrap();
    std::fs::write(d.path().join("zones/r.yaml"), ZONE_V1).unwrap();
    // Someone else holds the port, on UDP and TCP.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let _udp = std::net::UdpSocket::bind(addr).unwrap();
    let o = Command::new(BIN)
        .current_dir(d.path())
        .args([
            "serve",
            "--listen",
            &addr.to_string(),
            "--api",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let error_at = err
        .find(&format!("cannot listen on {addr}"))
        .unwrap_or_else(|| panic!("no error naming {addr}:\n{err}"));
    assert!(err[error_at..].contains("in use"), "{err}");
    // Nothing claims an orderly stop, before the error or after it.
    assert!(!err.contains("stopped"), "{err}");
    drop(tcp);
}

#[test]
fn single_values_need_no_list() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("zones")).unwrap();
    std::fs::write(
        d.path().join("zones/r.yaml"),
        "zone: r.test.
soa: { mname: ns1.r.test., rname: hostmaster.r.test. }
ns: [ns1.r.test.]
records:
  ns1: { A: 192.0.2.53 }
  www:
    A: 192.0.2.1
    AAAA: 2001:db8::1
  mail: { A: [192.0.2.25], MX: \"10 mail\" }
  \"@\": { TXT: \"hello\", MX: \"10 mail.r.test.\" }
  txt: { TXT: 42 }
",
    )
    .unwrap();
    let (code, err) = common::check_in(d.path());
    assert_eq!(code, Some(0), "{err}");
    let s = Server::start(d.path(), &[]);
    assert_eq!(
        addresses(&s.udp(&Ask::new("www.r.test.", "A"))),
        ["192.0.2.1"]
    );
    assert_eq!(
        addresses(&s.udp(&Ask::new("www.r.test.", "AAAA"))),
        ["2001:db8::1"]
    );
    let rendered = |name: &str, t: &str| common::render(&s.udp(&Ask::new(name, t))).join("\n");
    let mx = rendered("mail.r.test.", "MX");
    assert!(mx.contains("MX 10 mail.r.test."), "{mx}");
    let txt = rendered("r.test.", "TXT");
    assert!(txt.ends_with("TXT hello"), "{txt}");
    let txt = rendered("txt.r.test.", "TXT");
    assert!(txt.ends_with("TXT 42"), "{txt}");
}
