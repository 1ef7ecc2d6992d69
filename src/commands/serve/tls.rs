//! HTTPS for the gateway itself (`--listen-tls-cert`/`--listen-tls-key`; the global
//! `--tls-cert`/`--tls-key` are the broker client's certificate): rustls with the aws-lc-rs
//! provider that the broker client already uses, HTTP/2 and HTTP/1.1 offered through ALPN.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::{InvError, Result};

fn tls_error(message: String) -> InvError {
    InvError::Usage(message)
}

/// The bytes of PEM file `path` (given as `option`), of a bounded size.
fn pem_file(path: &Path, option: &str) -> Result<Vec<u8>> {
    crate::files::read_bounded(path, crate::files::MAX_PEM_FILE_BYTES)
        .map_err(|e| tls_error(format!("cannot read {option} {}: {e}", path.display())))
}

/// Reads the certificate chain and its key (PEM; PKCS#8, PKCS#1 or SEC1) and builds the acceptor.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let cert_pem = pem_file(cert, "--listen-tls-cert")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            tls_error(format!(
                "--listen-tls-cert {}: cannot read a PEM certificate from it: {e}",
                cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(tls_error(format!(
            "--listen-tls-cert {} holds no certificate: give the PEM file (BEGIN CERTIFICATE) of the gateway's certificate, then its chain",
            cert.display()
        )));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&pem_file(key, "--listen-tls-key")?).map_err(|e| {
        tls_error(format!(
            "--listen-tls-key {}: cannot read a PEM private key from it: {e} (give the key of --listen-tls-cert, BEGIN PRIVATE KEY)",
            key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, private_key)
        })
        .map_err(|e| {
            tls_error(format!(
                "--listen-tls-cert {} and --listen-tls-key {} do not make a usable pair: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
