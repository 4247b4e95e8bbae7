//! DNSSEC keys through the real binary: `gslbd key generate` writes BIND's key files (the
//! private one 0600, never overwritten), `gslbd ds` prints the DS records, and both agree with
//! BIND's own tools (`dnssec-dsfromkey` on our keys, `dnssec-keygen`'s keys read by us).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn gslbd(args: &[&str]) -> Output {
    Command::new(common::BIN).args(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// BIND's tools (Debian bind9-utils), required in CI (GSLBD_LAB_REQUIRED).
fn bind_tools() -> bool {
    let found = Command::new("dnssec-dsfromkey").arg("-h").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("GSLBD_LAB_REQUIRED").is_none(),
            "dnssec-dsfromkey is missing (apt-get install bind9-utils)"
        );
        eprintln!("SKIPPED the BIND cross-checks: dnssec-dsfromkey is missing (bind9-utils)");
    }
    found
}

/// `dnssec-dsfromkey -2` of every .key file in `dir`, sorted.
fn bind_ds(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "key"))
        .map(|p| {
            let o = Command::new("dnssec-dsfromkey")
                .arg("-2")
                .arg(&p)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", text(&o).1);
            text(&o).0.trim().to_string()
        })
        .collect();
    out.sort();
    out
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn keys_are_generated_once_and_their_ds_is_the_one_bind_computes() {
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    let keys_arg = keys.to_str().unwrap();
    for alg in ["ecdsap256sha256", "ed25519"] {
        let o = gslbd(&[
            "key",
            "generate",
            "--zone",
            "gslb.example.test",
            "--keys",
            keys_arg,
            "--algorithm",
            alg,
        ]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{err}");
        assert!(out.starts_with("gslb.example.test. IN DS "), "{out}");
        assert!(err.contains("generated"), "{err}");
    }
    let mut modes: Vec<(String, u32)> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            (e.file_name().to_string_lossy().into_owned(), mode)
        })
        .collect();
    modes.sort();
    assert_eq!(modes.len(), 4, "{modes:?}");
    for (name, mode) in &modes {
        assert!(name.starts_with("Kgslb.example.test.+01"), "{name}");
        let want = if name.ends_with(".private") {
            0o600
        } else {
            0o644
        };
        assert_eq!(*mode, want, "{name}");
    }

    let o = gslbd(&["ds", "--zone", "gslb.example.test.", "--keys", keys_arg]);
    let (ds, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(ds.lines().count(), 2, "{ds}");
    if bind_tools() {
        assert_eq!(sorted_lines(&ds), bind_ds(&keys));
    }

    // The wrong zone, and a private key others can read, are refused with the reason.
    let o = gslbd(&["ds", "--zone", "other.test", "--keys", keys_arg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("no key for other.test. in"),
        "{}",
        text(&o).1
    );
    let private = keys.join(
        &modes
            .iter()
            .find(|(n, _)| n.ends_with(".private"))
            .unwrap()
            .0,
    );
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = gslbd(&["ds", "--zone", "gslb.example.test", "--keys", keys_arg]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("mode 640"), "{}", text(&o).1);
}

/// An algorithm gslbd does not sign with is a usage error (exit 2) that names the two it does.
/// (That an existing key file is never overwritten is `dnssec::keys`' unit test: a new key's
/// file name cannot be known before it is made.)
#[test]
fn an_unknown_algorithm_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().to_str().unwrap();
    let o = gslbd(&[
        "key",
        "generate",
        "--zone",
        "x.test",
        "--keys",
        keys,
        "--algorithm",
        "rsasha1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("ecdsap256sha256 or ed25519"),
        "{}",
        text(&o).1
    );
}

#[test]
fn keys_made_by_bind_are_read() {
    if !bind_tools() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for alg in ["ECDSAP256SHA256", "ED25519"] {
        let o = Command::new("dnssec-keygen")
            .args(["-q", "-a", alg, "-f", "KSK", "-K"])
            .arg(d.path())
            .arg("bind.test")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o).1);
    }
    let o = gslbd(&[
        "ds",
        "--zone",
        "bind.test",
        "--keys",
        d.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(sorted_lines(&text(&o).0), bind_ds(d.path()));
}

/// Signatures made by gslbd validate with an independent implementation (dnspython's
/// `dns.dnssec.validate`): A, AAAA and TXT sets and the DNSKEY set, for both algorithms; and
/// a changed record or an expired signature does not.
#[test]
fn signatures_validate_with_dnspython() {
    use gslbd::dnssec::denial::{TYPE_NXNAME, compact_nsec};
    use gslbd::dnssec::sign::{Validity, canonical_rdata, rrsig};
    use gslbd::dnssec::{Algorithm, Key};
    use hickory_proto::rr::rdata::{MX, SOA};
    use hickory_proto::rr::{Name, RData};
    use std::str::FromStr;
    let name = |s: &str| Name::from_str(s).unwrap();
    let canonical = |r: RData| canonical_rdata(&r).unwrap();

    let Some(py) = common::dnspython() else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let valid = Validity {
        inception: now - 3600,
        expiration: now + 14 * 86400,
    };
    let expired = Validity {
        inception: now - 7200,
        expiration: now - 3600,
    };
    let zone = Name::from_str("Sig.Test.").unwrap();
    let mut cases = Vec::new();
    for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
        let (key, _) = Key::generate(&zone, alg).unwrap();
        let dnskey_text = key.dnskey_record();
        let dnskey_rdata = key.dnskey_rdata();
        // (owner, type, mnemonic, rdata texts, wire rdatas)
        type Set<'a> = (&'a str, u16, &'a str, Vec<&'a str>, Vec<Vec<u8>>);
        let sets: Vec<Set> = vec![
            (
                "WWW.sig.test.",
                1,
                "A",
                vec!["192.0.2.2", "192.0.2.1"],
                vec![vec![192, 0, 2, 2], vec![192, 0, 2, 1]],
            ),
            (
                "www.sig.test.",
                28,
                "AAAA",
                vec!["2001:db8::1"],
                vec![{
                    let mut v = vec![0x20, 0x01, 0x0d, 0xb8];
                    v.extend_from_slice(&[0; 11]);
                    v.push(1);
                    v
                }],
            ),
            (
                "txt.sig.test.",
                16,
                "TXT",
                vec!["\"hello\""],
                vec![b"\x05hello".to_vec()],
            ),
            (
                "sig.test.",
                48,
                "DNSKEY",
                vec![],
                vec![dnskey_rdata.clone()],
            ),
            // Names inside RDATA: signed in canonical form (lowercase), whatever the case.
            (
                "sig.test.",
                6,
                "SOA",
                vec!["NS1.Sig.Test. Hostmaster.sig.test. 7 3600 600 86400 30"],
                vec![canonical(RData::SOA(SOA::new(
                    name("NS1.Sig.Test."),
                    name("Hostmaster.sig.test."),
                    7,
                    3600,
                    600,
                    86400,
                    30,
                )))],
            ),
            (
                "mx.sig.test.",
                15,
                "MX",
                vec!["10 MAIL.Sig.Test.", "20 b.sig.test."],
                vec![
                    canonical(RData::MX(MX::new(10, name("MAIL.Sig.Test.")))),
                    canonical(RData::MX(MX::new(20, name("b.sig.test.")))),
                ],
            ),
            // Compact denial (RFC 9824): a name that does not exist, and one without AAAA.
            (
                "nope.sig.test.",
                47,
                "NSEC",
                vec!["\\000.nope.sig.test. RRSIG NSEC TYPE128"],
                vec![compact_nsec(&name("nope.sig.test."), &[TYPE_NXNAME])],
            ),
            (
                "www.sig.test.",
                47,
                "NSEC",
                vec!["\\000.www.sig.test. A RRSIG NSEC"],
                vec![compact_nsec(&name("www.sig.test."), &[1])],
            ),
        ];
        for (owner, rtype, mnemonic, texts, wires) in sets {
            let name = Name::from_str(owner).unwrap();
            let rdatas: Vec<&[u8]> = wires.iter().map(Vec::as_slice).collect();
            for (validity, good) in [(valid, true), (expired, false)] {
                let sig = rrsig(&key, &name, rtype, 30, &rdatas, validity).unwrap();
                let signer_at = 18;
                let signature = &sig[signer_at + 10..]; // after the signer "sig.test." (10 octets)
                let rrsig_text = format!(
                    "{mnemonic} {} {} 30 {} {} {} sig.test. {}",
                    alg.number(),
                    name.num_labels(),
                    validity.expiration,
                    validity.inception,
                    key.tag(),
                    data_encoding::BASE64.encode(signature)
                );
                let records: Vec<String> = if rtype == 48 {
                    vec![dnskey_text.split_once("DNSKEY ").unwrap().1.to_string()]
                } else {
                    texts.iter().map(|t| t.to_string()).collect()
                };
                cases.push(serde_json::json!({
                    "zone": "sig.test.", "ttl": 30,
                    "owner": owner, "type": mnemonic, "rdatas": records,
                    "rrsig": rrsig_text, "good": good,
                    "dnskey": dnskey_text.split_once("DNSKEY ").unwrap().1,
                }));
                if good && rtype == 1 {
                    // a record the signature does not cover
                    cases.push(serde_json::json!({
                        "zone": "sig.test.", "ttl": 30,
                        "owner": owner, "type": mnemonic, "rdatas": ["192.0.2.1", "192.0.2.3"],
                        "rrsig": rrsig_text, "good": false,
                        "dnskey": dnskey_text.split_once("DNSKEY ").unwrap().1,
                    }));
                }
            }
        }
    }
    let out = dnspython_validate(py, &cases);
    assert!(
        out.starts_with("0 "),
        "{} cases; failures: {out}",
        cases.len()
    );
    assert!(cases.len() >= 34, "{}", cases.len());
}

/// Run dnspython's `dns.dnssec.validate` over `cases` (zone, ttl, owner, type, rdatas, rrsig,
/// dnskey, good): prints the number of cases whose outcome differs from `good`, and them.
fn dnspython_validate(py: &str, cases: &[serde_json::Value]) -> String {
    let script = r#"
import sys, json, dns.dnssec, dns.rrset, dns.name
fails = []
for c in json.load(sys.stdin):
    zone = dns.name.from_text(c["zone"])
    keys = {zone: dns.rrset.from_text_list(zone, 30, "IN", "DNSKEY", [c["dnskey"]])}
    name = dns.name.from_text(c["owner"])
    rrset = dns.rrset.from_text_list(name, c["ttl"], "IN", c["type"], c["rdatas"])
    sig = dns.rrset.from_text_list(name, c["ttl"], "IN", "RRSIG", [c["rrsig"]])
    try:
        dns.dnssec.validate(rrset, sig, keys)
        ok = True
    except dns.dnssec.ValidationFailure:
        ok = False
    if ok != c["good"]:
        fails.append((c["owner"], c["type"], c["rrsig"][:40], ok))
print(len(fails), fails)
"#;
    let mut child = Command::new(py)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(cases).unwrap().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    out
}

/// Every static RRset of the bundled and example zones (SOA, NS, A, AAAA, MX, TXT, SRV, CNAME,
/// CAA, ...), and their apex SOA and NS, signed as a signed zone will be at load, validates
/// with dnspython.
#[test]
fn the_example_zones_sign_and_validate() {
    use gslbd::dnssec::sign::{Validity, sign_rrset};
    use gslbd::dnssec::{Algorithm, Key};
    use gslbd::model::RRset;
    use hickory_proto::rr::rdata::{NS, SOA};
    use hickory_proto::rr::{RData, RecordType};

    let Some(py) = common::dnspython() else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let validity = Validity::from(now, 14 * 86400);
    let mut cases = Vec::new();
    for dir in ["zones", "examples/exchange/zones", "examples/lab/zones"] {
        let loaded = gslbd::config::load(&gslbd::config::Sources {
            config: None,
            zones_dir: Some(common::root().join(dir)),
        })
        .unwrap_or_else(|e| panic!("{dir}: {e}"));
        for zone in &loaded.config.zones {
            let (key, _) = Key::generate(&zone.origin, Algorithm::EcdsaP256Sha256).unwrap();
            let dnskey = key.dnskey_record();
            let dnskey = dnskey.split_once("DNSKEY ").unwrap().1.to_string();
            let soa = &zone.soa;
            let mut sets: Vec<RRset> = zone.rrsets.clone();
            sets.push(RRset {
                name: zone.origin.clone(),
                rtype: RecordType::SOA,
                ttl: zone.ttl,
                rdata: vec![RData::SOA(SOA::new(
                    soa.mname.clone(),
                    soa.rname.clone(),
                    soa.serial,
                    soa.refresh as i32,
                    soa.retry as i32,
                    soa.expire as i32,
                    soa.minimum,
                ))],
            });
            sets.push(RRset {
                name: zone.origin.clone(),
                rtype: RecordType::NS,
                ttl: zone.ttl,
                rdata: zone.ns.iter().map(|n| RData::NS(NS(n.clone()))).collect(),
            });
            for set in &sets {
                let sigs = sign_rrset(std::slice::from_ref(&key), set, validity).unwrap();
                let sig = &sigs[0];
                let signer_len = gslbd::dnssec::keys::name_wire(&zone.origin).len();
                let signature = &sig[18 + signer_len..];
                let rrsig_text = format!(
                    "{} 13 {} {} {} {} {} {} {}",
                    set.rtype,
                    set.name.num_labels(),
                    set.ttl,
                    validity.expiration,
                    validity.inception,
                    key.tag(),
                    zone.origin,
                    data_encoding::BASE64.encode(signature)
                );
                // Presentation format dnspython reads: TXT strings quoted (hickory writes them
                // bare, and a space would split them).
                let rdatas: Vec<String> = set
                    .rdata
                    .iter()
                    .map(|r| match r {
                        RData::TXT(t) => t
                            .txt_data
                            .iter()
                            .map(|s| {
                                format!("\"{}\"", String::from_utf8_lossy(s).replace('"', "\\\""))
                            })
                            .collect::<Vec<_>>()
                            .join(" "),
                        other => other.to_string(),
                    })
                    .collect();
                cases.push(serde_json::json!({
                    "zone": zone.origin.to_string(), "ttl": set.ttl,
                    "owner": set.name.to_string(), "type": set.rtype.to_string(),
                    "rdatas": rdatas, "rrsig": rrsig_text, "good": true, "dnskey": dnskey,
                }));
            }
        }
    }
    let out = dnspython_validate(py, &cases);
    assert!(
        out.starts_with("0 "),
        "{} sets; failures: {out}",
        cases.len()
    );
    assert!(cases.len() >= 10, "{}", cases.len());
    eprintln!("{} RRsets of the example zones validate", cases.len());
}

/// Without DO, a signed zone answers byte for byte as the same zone unsigned: static data,
/// NODATA, missing names, referrals, DS at a cut, the apex, over UDP and TCP, with and without
/// EDNS and ECS; pool answers (whose members are picked at random) have the same shape.
#[test]
fn without_do_a_signed_zone_answers_as_an_unsigned_one() {
    use gslbd::dns::{MAX_RESPONSE, Transport, answer};
    use gslbd::dnssec::{Algorithm, Key};
    use hickory_proto::op::Message;

    let text =
        std::fs::read_to_string(common::root().join("tests/zones/signed/sig.test.yaml")).unwrap();
    let build = |signed: bool| {
        let d = tempfile::tempdir().unwrap();
        if signed {
            std::fs::write(d.path().join("sig.test.yaml"), &text).unwrap();
            let keys = d.path().join("keys");
            std::fs::create_dir(&keys).unwrap();
            let (key, private) =
                Key::generate(&"sig.test.".parse().unwrap(), Algorithm::EcdsaP256Sha256).unwrap();
            key.write(&keys, &private, "20261202000000").unwrap();
        } else {
            let unsigned = text.replace("dnssec: { keys: keys }", "");
            assert_ne!(unsigned, text);
            std::fs::write(d.path().join("sig.test.yaml"), unsigned).unwrap();
        }
        let loaded = gslbd::config::load(&gslbd::config::Sources {
            config: None,
            zones_dir: Some(d.path().to_path_buf()),
        })
        .unwrap();
        gslbd::snapshot::Snapshot::build(&loaded.config.zones, 1).unwrap()
    };
    let (signed, unsigned) = (build(true), build(false));
    let peer = "10.1.0.7".parse().unwrap();
    let (mut a, mut b) = (vec![0u8; MAX_RESPONSE], vec![0u8; MAX_RESPONSE]);
    // With DO they differ: the signed zone's answer has its RRSIG.
    let mut with_do = common::Ask::new("www.sig.test.", "A");
    with_do.dnssec_ok = true;
    let n = answer(&signed, &with_do.bytes(), Transport::Udp, peer, &mut a).unwrap();
    let m = answer(&unsigned, &with_do.bytes(), Transport::Udp, peer, &mut b).unwrap();
    assert_eq!(Message::from_vec(&a[..n]).unwrap().answers.len(), 3);
    assert_eq!(Message::from_vec(&b[..m]).unwrap().answers.len(), 2);
    let mut compared = 0;
    for (name, rtype, pool) in [
        ("www.sig.test.", "A", false),
        ("www.sig.test.", "MX", false),
        ("sig.test.", "SOA", false),
        ("sig.test.", "NS", false),
        ("sig.test.", "ANY", false),
        ("ns1.sig.test.", "A", false),
        ("deep.sig.test.", "TXT", false),
        ("a.deep.sig.test.", "TXT", false),
        ("nope.sig.test.", "A", false),
        ("x.child.sig.test.", "A", false),
        ("x.secure.sig.test.", "AAAA", false),
        ("child.sig.test.", "DS", false),
        ("secure.sig.test.", "DS", false),
        ("gone.sig.test.", "AAAA", false),
        ("web.sig.test.", "MX", false),
        ("web.sig.test.", "A", true),
        ("alias.sig.test.", "A", true),
        ("gone.sig.test.", "A", true),
    ] {
        let asks = [
            common::Ask::new(name, rtype),
            common::Ask::new(name, rtype).no_edns(),
            common::Ask::new(name, rtype).ecs("10.2.3.0", 24),
        ];
        for ask in asks {
            for t in [Transport::Udp, Transport::Tcp] {
                let q = ask.bytes();
                let n = answer(&signed, &q, t, peer, &mut a).unwrap();
                let m = answer(&unsigned, &q, t, peer, &mut b).unwrap();
                if pool {
                    // Which members is random (2 of 3): the same shape, addresses aside.
                    let sorted = |buf: &[u8]| {
                        let mut r: Vec<String> = common::render(&Message::from_vec(buf).unwrap())
                            .into_iter()
                            .map(|l| match l.rsplit_once(" A ") {
                                Some((head, _)) => format!("{head} A ADDRESS"),
                                None => l,
                            })
                            .collect();
                        r.sort();
                        r
                    };
                    assert_eq!(sorted(&a[..n]), sorted(&b[..m]), "{name} {rtype} {t:?}");
                } else {
                    assert_eq!(a[..n], b[..m], "{name} {rtype} {t:?} {ask:?}");
                }
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 18 * 6);
}
