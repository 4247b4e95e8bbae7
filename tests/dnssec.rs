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
