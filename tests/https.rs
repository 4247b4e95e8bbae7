//! HTTPS checks end to end: real TLS listeners on loopback with certificates made for each test
//! (rcgen), a real gslbd probing them. A failed handshake is reported in an operator's words
//! (`certificate: expired`), once per health change, and the TLS stack logs nothing of its own.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Server;
use common::backend::{Backend, Mode, TlsBackend};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const NAME: &str = "mail.example.test";

/// A test server's listener thread, stopped when dropped.
/// HTTPS on `ip:port` presenting `cert`, answering every request `200 OK`.
fn https(ip: &str, port: u16, cert: &Cert) -> TlsBackend {
    let key = PrivateKeyDer::try_from(cert.key.serialize_der()).expect("key");
    TlsBackend::with_cert(ip, port, cert.der.clone(), key)
}

/// A certificate and its key.
struct Cert {
    der: CertificateDer<'static>,
    pem: String,
    key: KeyPair,
}

impl Cert {
    fn new(cert: rcgen::Certificate, key: KeyPair) -> Cert {
        Cert {
            der: cert.der().clone(),
            pem: cert.pem(),
            key,
        }
    }
}

/// Parameters of a server certificate for `name`, with `name` as its common name too.
fn params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(vec![name.to_string()]).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p
}

/// Self-signed as `openssl req -x509` makes it: with the CA flag.
fn self_signed_ca_flagged(name: &str) -> Cert {
    let mut p = params(name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    Cert::new(p.self_signed(&key).unwrap(), key)
}

/// Self-signed without a basic-constraints extension (rcgen's default, some appliances).
fn self_signed_leaf(name: &str) -> Cert {
    let key = KeyPair::generate().unwrap();
    Cert::new(params(name).self_signed(&key).unwrap(), key)
}

/// A private CA.
fn private_ca(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// A server certificate for `name` from `ca`, valid from `from` to `to` (years).
fn signed(name: &str, ca: &CertifiedIssuer<'static, KeyPair>, from: i32, to: i32) -> Cert {
    let mut p = params(name);
    p.not_before = date_time_ymd(from, 1, 1);
    p.not_after = date_time_ymd(to, 1, 1);
    let key = KeyPair::generate().unwrap();
    Cert::new(p.signed_by(&key, ca).unwrap(), key)
}

/// A zone `h.test.` in `dir/zones/h.yaml` holding `body`.
fn zone(dir: &Path, body: &str) {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    let text = format!(
        "zone: h.test.\nsoa: {{ mname: ns1.h.test., rname: hostmaster.h.test., minimum: 5 }}\nns: [ns1.h.test.]\nrecords:\n  ns1: {{ A: [192.0.2.53] }}\n{body}"
    );
    std::fs::write(dir.join("zones/h.yaml"), text).unwrap();
}

/// A zone body with one HTTPS check per `(check, http extra keys, members)` on `port`, each
/// with its own pool and name.
fn https_checks(port: u16, checks: &[(&str, &str, &[&str])]) -> String {
    let (mut c, mut p, mut n) = (
        String::from("checks:\n"),
        String::from("pools:\n"),
        String::from("names:\n"),
    );
    for (check, extra, members) in checks {
        c.push_str(&format!(
            "  {check}: {{ http: {{ port: {port}, tls: true, host: {NAME}, path: /health{extra} }}, interval: 1s, timeout: 900ms, rise: 1, fall: 1 }}\n"
        ));
        let members: Vec<String> = members
            .iter()
            .map(|m| format!("{{ address: {m} }}"))
            .collect();
        p.push_str(&format!(
            "  {check}: {{ checks: [{check}], when_all_down: none, members: [{}] }}\n",
            members.join(", ")
        ));
        n.push_str(&format!("  {check}: {{ pool: {check} }}\n"));
    }
    format!("{c}{p}{n}")
}

/// The `last_result` of `member`'s check `check` in the status API, without its duration.
fn last_result(s: &Server, member: &str, check: &str) -> String {
    let (_, body) = s.http("GET", "/v1/status", "", None);
    let v: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    for p in v["zones"][0]["pools"].as_array().into_iter().flatten() {
        for m in p["members"].as_array().into_iter().flatten() {
            if m["address"] != member {
                continue;
            }
            for c in m["checks"].as_array().into_iter().flatten() {
                if c["check"] == check {
                    let r = c["last_result"].as_str().unwrap_or("");
                    // without the probe's duration (`... after 5 ms`)
                    return r.rsplit_once(" after ").map_or(r, |(r, _)| r).to_string();
                }
            }
        }
    }
    panic!("no check {check} of {member} in {body}")
}

/// The TLS stack's own lines stay out of the log: one line per health change is gslbd's.
fn assert_no_tls_stack_lines(s: &Server) {
    let log = s.log();
    for line in log.lines() {
        assert!(
            !line.contains("ERROR") && !line.contains("failed to verify TLS certificate"),
            "a dependency logged {line:?}:\n{log}"
        );
    }
}

#[test]
fn a_self_signed_certificate_is_said_to_be_self_signed() {
    // 127.0.140.1: self-signed the usual way (CA flag), 127.0.140.2: a bare self-signed leaf
    let a = https("127.0.140.1", 0, &self_signed_ca_flagged(NAME));
    let port = a.addr.port();
    let _b = https("127.0.140.2", port, &self_signed_leaf(NAME));
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        &https_checks(port, &[("owa", "", &["127.0.140.1", "127.0.140.2"])]),
    );
    let s = Server::start(d.path(), &[]);
    s.wait_log(
        "health: 127.0.140.1 check owa: unknown -> down: certificate: self-signed after",
        10,
    );
    // Without the CA flag webpki finds no issuer; the certificate names itself as its issuer.
    s.wait_log(
        "health: 127.0.140.2 check owa: unknown -> down: certificate: self-signed after",
        10,
    );
    assert_eq!(
        last_result(&s, "127.0.140.1", "owa"),
        "certificate: self-signed"
    );
    // several probes later: still one line per member, and nothing from rustls
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(s.log().matches("check owa: unknown -> down").count(), 2);
    assert_no_tls_stack_lines(&s);
}

#[test]
fn a_private_ca_in_ca_file_is_trusted_instead_of_the_system_store() {
    let ca = private_ca("gslbd test CA");
    let other = private_ca("another CA");
    let cert = signed(NAME, &ca, 2020, 4000);
    let a = https("127.0.141.1", 0, &cert);
    let port = a.addr.port();
    let d = tempfile::tempdir().unwrap();
    let absolute = format!(", ca_file: {}", d.path().join("other.pem").display());
    zone(
        d.path(),
        &https_checks(
            port,
            &[
                // relative to the zone file's directory
                ("private", ", ca_file: ca.pem", &["127.0.141.1"]),
                ("system", "", &["127.0.141.1"]),
                ("wrong", &absolute, &["127.0.141.1"]),
            ],
        ),
    );
    std::fs::write(d.path().join("zones/ca.pem"), ca.pem()).unwrap();
    std::fs::write(d.path().join("other.pem"), other.pem()).unwrap();
    let s = Server::start(d.path(), &[]);
    s.wait_log(
        "health: 127.0.141.1 check private: unknown -> up: http 200 after",
        10,
    );
    s.wait_log(
        "health: 127.0.141.1 check system: unknown -> down: certificate: unknown issuer after",
        10,
    );
    s.wait_log(
        "health: 127.0.141.1 check wrong: unknown -> down: certificate: unknown issuer after",
        10,
    );
    assert_eq!(last_result(&s, "127.0.141.1", "private"), "http 200");
    assert_no_tls_stack_lines(&s);
}

#[test]
fn expired_early_misnamed_and_plain_http_members_say_why() {
    let ca = private_ca("gslbd test CA");
    let expired = https("127.0.142.1", 0, &signed(NAME, &ca, 2020, 2021));
    let port = expired.addr.port();
    let _early = https("127.0.142.2", port, &signed(NAME, &ca, 3000, 4000));
    let _misnamed = https(
        "127.0.142.3",
        port,
        &signed("www.example.test", &ca, 2020, 4000),
    );
    let _plain = Backend::start("127.0.142.4", port, Mode::BadRequest);
    let _good = https("127.0.142.5", port, &signed(NAME, &ca, 2020, 4000));
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        &https_checks(
            port,
            &[(
                "owa",
                ", ca_file: ca.pem",
                &[
                    "127.0.142.1",
                    "127.0.142.2",
                    "127.0.142.3",
                    "127.0.142.4",
                    "127.0.142.5",
                ],
            )],
        ),
    );
    std::fs::write(d.path().join("zones/ca.pem"), ca.pem()).unwrap();
    let s = Server::start(d.path(), &[]);
    for (member, why) in [
        ("127.0.142.1", "down: certificate: expired"),
        ("127.0.142.2", "down: certificate: not yet valid"),
        (
            "127.0.142.3",
            "down: certificate: not valid for mail.example.test",
        ),
        (
            "127.0.142.4",
            "down: tls: the server does not speak TLS on this port",
        ),
        ("127.0.142.5", "up: http 200"),
    ] {
        s.wait_log(
            &format!("health: {member} check owa: unknown -> {why} after"),
            10,
        );
    }
    assert_eq!(
        last_result(&s, "127.0.142.1", "owa"),
        "certificate: expired"
    );
    assert_no_tls_stack_lines(&s);
}

#[test]
fn ca_file_problems_are_config_errors_at_the_ca_file_key() {
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("zones");
    std::fs::create_dir_all(z.join("sub")).unwrap();
    let ca = private_ca("gslbd test CA");
    std::fs::write(z.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(d.path().join("top.pem"), ca.pem()).unwrap();
    std::fs::write(z.join("empty.pem"), "").unwrap();
    std::fs::write(z.join("text.pem"), "not a certificate\n").unwrap();
    std::fs::write(z.join("ca.der"), ca.der().as_ref()).unwrap();
    let pem = ca.pem();
    std::fs::write(z.join("cut.pem"), &pem[..pem.len() / 2]).unwrap();
    std::fs::write(
        z.join("b64.pem"),
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        z.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        z.join("c.yaml"),
        "zone: c.test.
soa: { mname: ns1.c.test., rname: hostmaster.c.test. }
ns: [ns1.c.test.]
records:
  ns1: { A: [192.0.2.53] }
checks:
  missing: { http: { tls: true, ca_file: missing.pem } }
  empty: { http: { tls: true, ca_file: empty.pem } }
  text: { http: { tls: true, ca_file: text.pem } }
  der: { http: { tls: true, ca_file: ca.der } }
  cut: { http: { tls: true, ca_file: cut.pem } }
  b64: { http: { tls: true, ca_file: b64.pem } }
  garbage: { http: { tls: true, ca_file: garbage.pem } }
  dir: { http: { tls: true, ca_file: sub } }
  plain: { http: { ca_file: ca.pem } }
  lax: { http: { tls: true, verify_tls: false, ca_file: ca.pem } }
  good: { http: { tls: true, ca_file: ca.pem } }
  parent: { http: { tls: true, ca_file: ../top.pem } }
",
    )
    .unwrap();
    let (code, err) = common::check_in(d.path());
    assert_eq!(code, Some(1), "{err}");
    for want in [
        "zones/c.yaml:7:42: checks.missing.http.ca_file: cannot read zones/missing.pem: No such file or directory",
        "zones/c.yaml:8:40: checks.empty.http.ca_file: zones/empty.pem holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        "zones/c.yaml:9:39: checks.text.http.ca_file: zones/text.pem holds no PEM certificate",
        "zones/c.yaml:10:38: checks.der.http.ca_file: zones/ca.der holds no PEM certificate (-----BEGIN CERTIFICATE-----) (it looks like DER: convert it with `openssl x509 -inform der -out ca.pem`)",
        "zones/c.yaml:11:38: checks.cut.http.ca_file: zones/cut.pem is not valid PEM: a section has no END line",
        "zones/c.yaml:12:38: checks.b64.http.ca_file: zones/b64.pem is not valid PEM: a section is not valid base64",
        "zones/c.yaml:13:42: checks.garbage.http.ca_file: zones/garbage.pem: certificate 1 is not a valid X.509 certificate",
        "zones/c.yaml:14:38: checks.dir.http.ca_file: cannot read zones/sub: Is a directory",
        "zones/c.yaml:15:29: checks.plain.http.ca_file: is for HTTPS checks: add `tls: true`",
        "zones/c.yaml:16:57: warning: checks.lax.http.ca_file: has no effect with `verify_tls: false`",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // `good` and `parent` load: relative to the zone file's directory, `..` included
    assert!(!err.contains("checks.good"), "{err}");
    assert!(!err.contains("checks.parent"), "{err}");
    assert!(err.ends_with("9 error(s)\n"), "{err}");
}

#[test]
fn ca_file_can_pin_a_bare_self_signed_certificate_but_not_one_with_the_ca_flag() {
    let leaf = self_signed_leaf(NAME);
    let flagged = self_signed_ca_flagged(NAME);
    let a = https("127.0.143.1", 0, &leaf);
    let port = a.addr.port();
    let _b = https("127.0.143.2", port, &flagged);
    let d = tempfile::tempdir().unwrap();
    zone(
        d.path(),
        &https_checks(
            port,
            &[
                ("leaf", ", ca_file: leaf.pem", &["127.0.143.1"]),
                ("flagged", ", ca_file: flagged.pem", &["127.0.143.2"]),
            ],
        ),
    );
    std::fs::write(d.path().join("zones/leaf.pem"), &leaf.pem).unwrap();
    std::fs::write(d.path().join("zones/flagged.pem"), &flagged.pem).unwrap();
    let s = Server::start(d.path(), &[]);
    s.wait_log(
        "health: 127.0.143.1 check leaf: unknown -> up: http 200 after",
        10,
    );
    // webpki refuses a CA certificate as a server's own, trusted or not
    s.wait_log(
        "health: 127.0.143.2 check flagged: unknown -> down: certificate: self-signed after",
        10,
    );
}
