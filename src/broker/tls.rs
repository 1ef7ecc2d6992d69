//! The one rustls configuration a TLS connection to the broker uses, built from the TLS flags:
//! the client's connections (`TlsConfiguration::Custom`, vendor patch 0027) and the version
//! probe's alike, so both trust, present and skip the same things.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::TlsSettings;
use crate::error::{ConnectError, InvError, Result};

/// The system trust store's CAs (on Linux the distribution's bundle, `SSL_CERT_FILE` or
/// `SSL_CERT_DIR` where set): a broker with a certificate from a public CA, or from one the
/// machine trusts, needs no `--tls-ca-cert`.
fn system_roots() -> Result<RootCertStore> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = match loaded.errors.first() {
            Some(e) => format!(" ({e})"),
            None => String::new(),
        };
        return Err(ConnectError::Tls {
            message: format!("no --tls-ca-cert, and no CA certificate in the system trust store{why}: give --tls-ca-cert FILE (the CA that signed the broker's certificate), or install the ca-certificates package"),
        }
        .into());
    }
    Ok(roots)
}

/// The configuration for `settings` (its files were checked when the settings were made;
/// reading them again fails only if they changed since).
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>> {
    let failed = |what: String| InvError::from(ConnectError::Tls { message: what });
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(format!("TLS set-up failed: {e}")))?;
    let builder = match (&settings.ca_cert, settings.insecure) {
        (_, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
        (None, false) => builder.with_root_certificates(system_roots()?),
        (Some(ca), false) => {
            let mut roots = RootCertStore::empty();
            let pem = crate::files::read_bounded(ca, crate::files::MAX_PEM_FILE_BYTES)
                .map_err(|e| failed(format!("cannot read --tls-ca-cert {}: {e}", ca.display())))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    failed(format!("--tls-ca-cert {} is not PEM: {e}", ca.display()))
                })?;
                roots
                    .add(cert)
                    .map_err(|e| failed(format!("--tls-ca-cert {}: {e}", ca.display())))?;
            }
            builder.with_root_certificates(roots)
        }
    };
    match &settings.client_cert {
        None => Ok(Arc::new(builder.with_no_client_auth())),
        Some((cert, key)) => {
            let pem = |path: &std::path::Path, option: &str| {
                crate::files::read_bounded(path, crate::files::MAX_PEM_FILE_BYTES)
                    .map_err(|e| failed(format!("cannot read {option} {}: {e}", path.display())))
            };
            let certs = CertificateDer::pem_slice_iter(&pem(cert, "--tls-cert")?)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| failed(format!("--tls-cert {}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_slice(&pem(key, "--tls-key")?)
                .map_err(|e| failed(format!("--tls-key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(certs, key)
                .map(Arc::new)
                .map_err(|e| failed(format!("--tls-cert/--tls-key: {e}")))
        }
    }
}

/// `--tls-insecure`: any broker certificate is accepted (signatures still checked).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
