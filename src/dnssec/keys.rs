//! DNSSEC keys: generated with ring, kept in BIND's two files per key,
//! `K<zone>+<alg>+<tag>.key` (the DNSKEY record) and `.private` (mode 0600), and read back for
//! signing. A key is a combined signing key (flags 257: it signs the DNSKEY set and the zone's
//! data, and its DS goes into the parent).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use data_encoding::{BASE64, HEXUPPER};
use hickory_proto::rr::Name;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

/// DNSSEC algorithms gslbd signs with (RFC 8624 recommends both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// 13 (RFC 6605): the most widely validated; 64-octet signatures.
    EcdsaP256Sha256,
    /// 15 (RFC 8080).
    Ed25519,
}

impl Algorithm {
    pub const fn number(self) -> u8 {
        match self {
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    pub const fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }

    fn from_number(n: u8) -> Option<Algorithm> {
        match n {
            13 => Some(Algorithm::EcdsaP256Sha256),
            15 => Some(Algorithm::Ed25519),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mnemonic().to_ascii_lowercase())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Algorithm, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ecdsap256sha256" | "13" => Ok(Algorithm::EcdsaP256Sha256),
            "ed25519" | "15" => Ok(Algorithm::Ed25519),
            other => Err(format!(
                "{other:?} is not an algorithm gslbd signs with: ecdsap256sha256 or ed25519"
            )),
        }
    }
}

/// Why keys could not be made, written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} exists: a key is never overwritten (remove it first, or pick another directory)"
    )]
    Exists { path: PathBuf },
    #[error("{path}: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error(
        "{path}: mode {mode:o}: a private key must be readable by its owner only (chmod 600 {path})"
    )]
    Mode { path: PathBuf, mode: u32 },
    #[error("no key for {zone} in {dir}{others}")]
    None {
        zone: String,
        dir: PathBuf,
        others: String,
    },
    #[error("cannot generate a key: {0}")]
    Crypto(String),
}

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// One signing key of a zone.
pub struct Key {
    pub zone: Name,
    pub algorithm: Algorithm,
    /// 257: a key-signing (secure entry point) key, used to sign everything.
    flags: u16,
    /// The DNSKEY's public key field: X‖Y for P-256, the 32-octet key for Ed25519.
    pub public: Vec<u8>,
    signer: Signer,
    /// Worked out once, so that signing on the query path allocates nothing.
    tag: u16,
    /// The zone as RRSIG's signer name: lowercase wire format.
    signer_name: Vec<u8>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key({} {} tag {})",
            self.zone,
            self.algorithm.mnemonic(),
            self.tag()
        )
    }
}

/// The flags of a combined signing key: zone key + secure entry point.
pub const FLAGS_CSK: u16 = 257;

/// Octets of a signature, for both algorithms.
pub const SIGNATURE_LEN: usize = 64;

/// The DNSKEY RDATA (RFC 4034 §2.1): flags, protocol 3, algorithm, public key.
fn dnskey_rdata(flags: u16, algorithm: Algorithm, public: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + public.len());
    v.extend_from_slice(&flags.to_be_bytes());
    v.push(3);
    v.push(algorithm.number());
    v.extend_from_slice(public);
    v
}

/// The key tag of a DNSKEY RDATA (RFC 4034 Appendix B).
fn key_tag(rdata: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for (i, b) in rdata.iter().enumerate() {
        acc += if i & 1 == 0 {
            u32::from(*b) << 8
        } else {
            u32::from(*b)
        };
    }
    acc += (acc >> 16) & 0xffff;
    (acc & 0xffff) as u16
}

impl Key {
    /// A new key for `zone`, and its private part as BIND writes it (the private scalar for
    /// P-256, the seed for Ed25519).
    pub fn generate(zone: &Name, algorithm: Algorithm) -> Result<(Key, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let crypto = |e: ring::error::Unspecified| KeyError::Crypto(e.to_string());
        let (private, public) = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
                let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(crypto)?;
                let kp = EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng)
                    .map_err(|e| KeyError::Crypto(e.to_string()))?;
                // ECPrivateKey (RFC 5915) inside: version 1, then the 32-octet private key.
                let private = der_after(doc.as_ref(), &[0x02, 0x01, 0x01, 0x04, 0x20], 32);
                (private, kp.public_key().as_ref()[1..].to_vec())
            }
            Algorithm::Ed25519 => {
                let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(crypto)?;
                // CurvePrivateKey (RFC 8410): an OCTET STRING of the 32-octet seed.
                let seed = der_after(doc.as_ref(), &[0x04, 0x22, 0x04, 0x20], 32);
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(doc.as_ref())
                    .map_err(|e| KeyError::Crypto(e.to_string()))?;
                (seed, kp.public_key().as_ref().to_vec())
            }
        };
        let private =
            private.ok_or_else(|| KeyError::Crypto("unexpected PKCS#8 layout from ring".into()))?;
        let key = Key::from_parts(zone, algorithm, &private, &public)
            .map_err(|why| KeyError::Crypto(why.to_string()))?;
        Ok((key, private))
    }

    /// The key with this private part and public key (X‖Y for P-256); ring checks that they
    /// belong together.
    fn from_parts(
        zone: &Name,
        algorithm: Algorithm,
        private: &[u8],
        public: &[u8],
    ) -> Result<Key, &'static str> {
        const MISMATCH: &str = "the private key does not match the public key in the .key file";
        let signer = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(public);
                EcdsaKeyPair::from_private_key_and_public_key(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    private,
                    &point,
                    &SystemRandom::new(),
                )
                .map(Signer::Ecdsa)
                .map_err(|_| MISMATCH)?
            }
            Algorithm::Ed25519 => Ed25519KeyPair::from_seed_and_public_key(private, public)
                .map(Signer::Ed25519)
                .map_err(|_| MISMATCH)?,
        };
        let zone = zone.to_lowercase();
        let tag = key_tag(&dnskey_rdata(FLAGS_CSK, algorithm, public));
        Ok(Key {
            signer_name: name_wire(&zone),
            zone,
            algorithm,
            flags: FLAGS_CSK,
            public: public.to_vec(),
            signer,
            tag,
        })
    }

    /// The DNSKEY flags: 257, a combined signing key (zone key and secure entry point).
    pub fn flags(&self) -> u16 {
        self.flags
    }

    /// The zone as the signer name of RRSIGs: lowercase wire format.
    pub fn signer_name(&self) -> &[u8] {
        &self.signer_name
    }

    /// The DNSKEY RDATA (RFC 4034 §2.1): flags, protocol 3, algorithm, public key.
    pub fn dnskey_rdata(&self) -> Vec<u8> {
        dnskey_rdata(self.flags, self.algorithm, &self.public)
    }

    /// The key tag (RFC 4034 Appendix B).
    pub fn tag(&self) -> u16 {
        self.tag
    }

    /// The SHA-256 DS digest (RFC 4509): over the owner name (canonical wire form) and the
    /// DNSKEY RDATA.
    pub fn ds_sha256(&self) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&name_wire(&self.zone));
        ctx.update(&self.dnskey_rdata());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// The DS record for the parent, in presentation format.
    pub fn ds_record(&self) -> String {
        format!(
            "{} IN DS {} {} 2 {}",
            self.zone,
            self.tag(),
            self.algorithm.number(),
            HEXUPPER.encode(&self.ds_sha256())
        )
    }

    /// The DNSKEY record in presentation format.
    pub fn dnskey_record(&self) -> String {
        format!(
            "{} IN DNSKEY {} 3 {} {}",
            self.zone,
            self.flags,
            self.algorithm.number(),
            BASE64.encode(&self.public)
        )
    }

    /// Sign `data` (the RRSIG's signed data, RFC 4034 §3.1.8.1): 64 octets for both
    /// algorithms (r‖s for P-256, RFC 6605 §4).
    pub fn sign(&self, data: &[u8]) -> Result<[u8; SIGNATURE_LEN], KeyError> {
        let sig = match &self.signer {
            Signer::Ecdsa(kp) => kp
                .sign(&SystemRandom::new(), data)
                .map_err(|e| KeyError::Crypto(e.to_string()))?,
            Signer::Ed25519(kp) => kp.sign(data),
        };
        sig.as_ref()
            .try_into()
            .map_err(|_| KeyError::Crypto(format!("a signature of {} octets", sig.as_ref().len())))
    }

    /// The file name stem BIND uses: `K<zone>.+<alg>+<tag>` (with the zone's final dot).
    pub fn file_stem(&self) -> String {
        format!(
            "K{}+{:03}+{:05}",
            self.zone,
            self.algorithm.number(),
            self.tag()
        )
    }

    /// Write the key's two files into `dir` (created if need be): `.key` (0644) and
    /// `.private` (0600). An existing file is never overwritten.
    pub fn write(&self, dir: &Path, private: &[u8], created: &str) -> Result<PathBuf, KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let stem = dir.join(self.file_stem());
        let public_path = sibling(&stem, "key");
        let private_path = sibling(&stem, "private");
        for p in [&public_path, &private_path] {
            if p.exists() {
                return Err(KeyError::Exists { path: p.clone() });
            }
        }
        let public = format!(
            "; This is a key-signing key, keyid {}, for {}\n; Created: {created} (gslbd key generate)\n{}\n",
            self.tag(),
            self.zone,
            self.dnskey_record()
        );
        let private_text = format!(
            "Private-key-format: v1.3\nAlgorithm: {} ({})\nPrivateKey: {}\nCreated: {created}\nPublish: {created}\nActivate: {created}\n",
            self.algorithm.number(),
            self.algorithm.mnemonic(),
            BASE64.encode(private)
        );
        write_new(&private_path, private_text.as_bytes(), 0o600)?;
        write_new(&public_path, public.as_bytes(), 0o644)?;
        Ok(stem)
    }

    /// Every key of `zone` in `dir` (BIND's files, as `write` makes them): checked that the
    /// private file is the owner's only, that it matches its `.key`, and that it is for `zone`.
    pub fn load_dir(dir: &Path, zone: &Name) -> Result<Vec<Key>, KeyError> {
        let io = |source| KeyError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let zone = zone.to_lowercase();
        let zone_text = zone.to_string();
        let want = format!("K{zone_text}+");
        let mut keys = Vec::new();
        let mut others = std::collections::BTreeSet::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "private"))
            .collect();
        names.sort();
        for path in names {
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
            if !file
                .to_ascii_lowercase()
                .starts_with(&want.to_ascii_lowercase())
            {
                if let Some(z) = file.strip_prefix('K').and_then(|f| f.split('+').next()) {
                    others.insert(z.to_string());
                }
                continue;
            }
            keys.push(Key::load(&path, &zone)?);
        }
        if keys.is_empty() {
            let others = if others.is_empty() {
                String::new()
            } else {
                format!(
                    " (the keys there are for {})",
                    others.into_iter().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(KeyError::None {
                zone: zone_text,
                dir: dir.to_path_buf(),
                others,
            });
        }
        Ok(keys)
    }

    /// One key from its `.private` file (and the `.key` beside it).
    fn load(private_path: &Path, zone: &Name) -> Result<Key, KeyError> {
        let invalid = |why: String| KeyError::Invalid {
            path: private_path.to_path_buf(),
            why,
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Io { path, source }
        };
        let meta = std::fs::metadata(private_path).map_err(io(private_path))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Mode {
                path: private_path.to_path_buf(),
                mode,
            });
        }
        let text = std::fs::read_to_string(private_path).map_err(io(private_path))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
        };
        let algorithm = field("Algorithm")
            .and_then(|a| a.split_whitespace().next()?.parse::<u8>().ok())
            .and_then(Algorithm::from_number)
            .ok_or_else(|| invalid("no Algorithm: 13 or 15 (ECDSAP256SHA256 or ED25519)".into()))?;
        let private = field("PrivateKey")
            .and_then(|k| BASE64.decode(k.as_bytes()).ok())
            .ok_or_else(|| invalid("no PrivateKey: line in base64".into()))?;
        // The .key beside it holds the public key, for this zone.
        let stem = private_path.to_string_lossy();
        let public_path = sibling(Path::new(stem.trim_end_matches(".private")), "key");
        let public_text = std::fs::read_to_string(&public_path).map_err(io(&public_path))?;
        let bad_public = |why: String| KeyError::Invalid {
            path: public_path.clone(),
            why,
        };
        let record = public_text
            .lines()
            .map(str::trim)
            .find(|l| !l.starts_with(';') && l.contains("DNSKEY"))
            .ok_or_else(|| bad_public("no DNSKEY record".into()))?;
        let owner = record.split_whitespace().next().unwrap_or("");
        if !Name::from_ascii(owner).is_ok_and(|n| n.to_lowercase() == zone.to_lowercase()) {
            return Err(bad_public(format!("the key is for {owner}, not {zone}")));
        }
        let fields: Vec<&str> = record
            .split_once("DNSKEY")
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let public = fields
            .get(3..)
            .and_then(|b64| BASE64.decode(b64.concat().as_bytes()).ok())
            .ok_or_else(|| bad_public("the DNSKEY record has no public key in base64".into()))?;
        let key = Key::from_parts(zone, algorithm, &private, &public)
            .map_err(|w| bad_public(w.to_string()))?;
        Ok(key)
    }
}

/// `stem.ext` (a stem has dots of its own, so `with_extension` would cut it).
fn sibling(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// The `len` octets after the first occurrence of `marker` in a DER document.
fn der_after(doc: &[u8], marker: &[u8], len: usize) -> Option<Vec<u8>> {
    let at = doc.windows(marker.len()).position(|w| w == marker)? + marker.len();
    doc.get(at..at + len).map(<[u8]>::to_vec)
}

/// A name in canonical wire form (RFC 4034 §6.2): lowercase, uncompressed.
pub fn name_wire(name: &Name) -> Vec<u8> {
    let lower = name.to_lowercase();
    let mut out = Vec::with_capacity(lower.len() + 1);
    for label in lower.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: path.to_path_buf(),
            },
            _ => KeyError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    // The umask may have taken bits away from the public file; never added any.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        KeyError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn zone() -> Name {
        Name::from_str("GSLB.example.test.").unwrap()
    }

    #[test]
    fn keys_are_written_read_back_and_never_overwritten() {
        for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            let d = tempfile::tempdir().unwrap();
            let (key, private) = Key::generate(&zone(), alg).unwrap();
            assert_eq!(
                key.public.len(),
                if alg == Algorithm::Ed25519 { 32 } else { 64 }
            );
            let stem = key.write(d.path(), &private, "20261202000000").unwrap();
            let private_path = sibling(&stem, "private");
            let mode = std::fs::metadata(&private_path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let back = Key::load_dir(d.path(), &zone()).unwrap();
            assert_eq!(back.len(), 1);
            assert_eq!(back[0].public, key.public);
            assert_eq!(back[0].tag(), key.tag());
            assert!(matches!(
                key.write(d.path(), &private, "x"),
                Err(KeyError::Exists { .. })
            ));
            // A signature verifies with the public key.
            let sig = back[0].sign(b"data").unwrap();
            let ok = match alg {
                Algorithm::EcdsaP256Sha256 => {
                    let mut point = vec![4u8];
                    point.extend_from_slice(&key.public);
                    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                        .verify(b"data", &sig)
                }
                Algorithm::Ed25519 => {
                    signature::UnparsedPublicKey::new(&signature::ED25519, &key.public)
                        .verify(b"data", &sig)
                }
            };
            assert!(ok.is_ok(), "{alg}");
        }
    }

    #[test]
    fn bad_key_files_are_refused_with_their_reason() {
        let d = tempfile::tempdir().unwrap();
        let (key, private) = Key::generate(&zone(), Algorithm::EcdsaP256Sha256).unwrap();
        let stem = key.write(d.path(), &private, "20261202000000").unwrap();
        let other = Name::from_str("other.test.").unwrap();
        let e = Key::load_dir(d.path(), &other).unwrap_err().to_string();
        assert!(
            e.contains("no key for other.test.") && e.contains("gslb.example.test."),
            "{e}"
        );
        let private_path = sibling(&stem, "private");
        std::fs::set_permissions(&private_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Key::load_dir(d.path(), &zone()).unwrap_err().to_string();
        assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&private_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let public_path = sibling(&stem, "key");
        let (other_key, _) = Key::generate(&zone(), Algorithm::EcdsaP256Sha256).unwrap();
        std::fs::write(&public_path, other_key.dnskey_record()).unwrap();
        let e = Key::load_dir(d.path(), &zone()).unwrap_err().to_string();
        assert!(e.contains("does not match the public key"), "{e}");
    }

    /// RFC 4034 Appendix B's tag and RFC 4509's digest, for a known key: the DNSKEY of
    /// RFC 6605 §6.1's example and its DS.
    #[test]
    fn tag_and_digest_match_rfc_6605() {
        let public = BASE64
            .decode(b"GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==")
            .unwrap();
        let (k, _) = Key::generate(
            &Name::from_str("example.net.").unwrap(),
            Algorithm::EcdsaP256Sha256,
        )
        .unwrap();
        let known = Key {
            tag: key_tag(&dnskey_rdata(FLAGS_CSK, k.algorithm, &public)),
            public,
            ..k
        };
        assert_eq!(known.tag(), 55648);
        assert_eq!(
            known.ds_record(),
            "example.net. IN DS 55648 13 2 B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17"
        );
    }
}
