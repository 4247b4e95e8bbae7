//! The TLS client configuration of HTTPS checks: the system's CA store (rustls-platform-verifier,
//! as reqwest would use it) or only a check's `ca_file:`, behind a verifier that tells a
//! self-signed certificate from one issued by an unknown CA. webpki reports both as
//! `UnknownIssuer`, and the error does not carry the certificate: the wrapper looks at it while
//! it still has it, so the operator reads `certificate: self-signed`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::model::HttpCheck;

/// The client configuration for a check with `tls: true` and verification on; `None` if it
/// cannot be built (no usable CA certificate, or no system store).
pub fn config(h: &HttpCheck) -> Option<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner: Arc<dyn ServerCertVerifier> = match &h.ca {
        // Instead of the system's store, like `curl --cacert`: a private CA is all a member
        // needs, and a public CA is then not enough.
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for der in ca.der.iter() {
                roots.add(CertificateDer::from(der.clone())).ok()?;
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .ok()?
        }
        None => Arc::new(rustls_platform_verifier::Verifier::new(provider.clone()).ok()?),
    };
    Some(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SaysSelfSigned(inner)))
            .with_no_client_auth(),
    )
}

/// The error a self-signed end-entity certificate gets (`certificate: self-signed`).
#[derive(Debug)]
pub struct SelfSigned;

impl std::fmt::Display for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("self-signed")
    }
}

impl std::error::Error for SelfSigned {}

/// Verifies with `.0`, and turns its `UnknownIssuer` into [`SelfSigned`] when the server sent
/// one certificate whose issuer is its own subject.
#[derive(Debug)]
struct SaysSelfSigned(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for SaysSelfSigned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                    if intermediates.is_empty() && self_issued(end_entity) =>
                {
                    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
                        Arc::new(SelfSigned),
                    )))
                }
                e => e,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Whether a DER certificate names itself as its issuer (RFC 5280 §4.1: Certificate ::=
/// SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
/// validity, subject, ... } ... }). The bytes come from the network: any malformation is `false`.
fn self_issued(der: &[u8]) -> bool {
    fn fields(der: &[u8]) -> Option<(&[u8], &[u8])> {
        let (cert, _) = tlv(der, 0x30)?;
        let (mut tbs, _) = tlv(cert, 0x30)?;
        if tbs.first() == Some(&0xa0) {
            tbs = tlv(tbs, 0xa0)?.1; // version
        }
        let rest = tlv(tbs, 0x02)?.1; // serialNumber
        let rest = tlv(rest, 0x30)?.1; // signature
        let (issuer, rest) = tlv(rest, 0x30)?;
        let rest = tlv(rest, 0x30)?.1; // validity
        let (subject, _) = tlv(rest, 0x30)?;
        Some((issuer, subject))
    }
    fields(der).is_some_and(|(issuer, subject)| issuer == subject)
}

/// One DER element of `tag` at the start of `der`: its contents and what follows it.
fn tlv(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = der.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_issued_certificates_are_told_from_issued_ones() {
        let ca = |cn: &str| {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().unwrap()).unwrap()
        };
        let ca = ca("test CA");
        assert!(self_issued(ca.der()));
        let params = || {
            let mut p = rcgen::CertificateParams::new(vec!["www.test".into()]).unwrap();
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "www.test");
            p
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = params().signed_by(&key, &ca).unwrap();
        assert!(!self_issued(leaf.der()));
        let own = params().self_signed(&key).unwrap();
        assert!(self_issued(own.der()));
        // Garbage and every truncation of a real certificate are "no", never a panic.
        assert!(!self_issued(b"\x30\x84\xff\xff\xff\xff"));
        for n in 0..own.der().len() {
            assert!(!self_issued(&own.der()[..n]));
        }
    }
}
