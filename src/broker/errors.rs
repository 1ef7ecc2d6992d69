//! The client's errors and the broker's response codes, turned into errors a user can act on.

use rabbitmq_stream_client::error::{ClientError, ConsumerCreateError, ProducerCreateError};
use rabbitmq_stream_client::types::ResponseCode;

use super::version::{version_at_least, VersionProbe};
use super::BrokerSettings;
use crate::error::{ConnectError, InvError, StreamError};

impl BrokerSettings {
    /// Maps a failed handshake to its cause. A bare "connection closed" is what the client
    /// reports when a broker older than 3.11 hangs up on its exchange-command-versions request,
    /// so then we ask the broker its version ourselves.
    pub(super) async fn explain_connect_error(&self, error: ClientError) -> InvError {
        match error {
            ClientError::Io(io) if self.tls.is_some() && is_tls_failure(&io) => {
                self.client_certificate_refused(&io).unwrap_or_else(|| {
                    ConnectError::TlsHandshake {
                        addr: self.addr(),
                        source: io,
                    }
                    .into()
                })
            }
            ClientError::Io(io) => ConnectError::Unreachable {
                addr: self.addr(),
                source: io,
            }
            .into(),
            ClientError::RequestError(ResponseCode::AuthenticationFailure)
            | ClientError::RequestError(ResponseCode::SaslError) => {
                ConnectError::AuthenticationFailed {
                    user: self.user.clone(),
                    addr: self.addr(),
                }
                .into()
            }
            ClientError::RequestError(ResponseCode::AuthenticationFailureLoopback) => {
                ConnectError::LoopbackOnly {
                    user: self.user.clone(),
                }
                .into()
            }
            ClientError::RequestError(ResponseCode::VirtualHostAccessFailure) => {
                ConnectError::VhostNotAccessible {
                    vhost: self.vhost.clone(),
                    user: self.user.clone(),
                    addr: self.addr(),
                }
                .into()
            }
            ClientError::ConnectionClosed | ClientError::AlreadyClosed if self.tls.is_some() => {
                // A broker that refuses our certificate (or its absence) sends a TLS alert the
                // client only reports as a closed connection: ask again ourselves to see it.
                let refused = match VersionProbe::new(self) {
                    Ok(probe) => probe.tls_failure().await,
                    Err(_) => None,
                };
                if let Some(error) = refused.and_then(|e| self.client_certificate_refused(&e)) {
                    return error;
                }
                ConnectError::HandshakeClosed {
                    addr: self.addr(),
                    hint: "; is this the broker's TLS stream port (5551 by default)?".to_string(),
                }
                .into()
            }
            ClientError::ConnectionClosed | ClientError::AlreadyClosed => {
                let version = match VersionProbe::new(self) {
                    Ok(probe) => probe.version().await,
                    Err(_) => None,
                };
                match version {
                    Some(version) if !version_at_least(&version, 3, 11) => ConnectError::BrokerTooOld {
                        addr: self.addr(),
                        version,
                    }.into(),
                    Some(version) => ConnectError::HandshakeClosed {
                        addr: self.addr(),
                        hint: format!(" (RabbitMQ {version}); see the broker's log"),
                    }.into(),
                    None => ConnectError::HandshakeClosed {
                        addr: self.addr(),
                        hint: "; is this a RabbitMQ stream port (5552 by default; a TLS port needs rabbitmq-stream+tls://)?".to_string(),
                    }.into(),
                }
            }
            other => ConnectError::Client {
                message: format!("connecting to {}: {other}", self.addr()),
            }
            .into(),
        }
    }

    /// The error for a TLS alert saying the broker wants a client certificate (none given) or
    /// does not accept the one given; `None` for any other failure.
    fn client_certificate_refused(&self, error: &std::io::Error) -> Option<InvError> {
        use rustls::AlertDescription as Alert;
        let Some(rustls::Error::AlertReceived(alert)) = rustls_error(error) else {
            return None;
        };
        let tls = self.tls.as_ref()?;
        let message = match (&tls.client_cert, alert) {
            // TLS 1.3 says CertificateRequired; TLS 1.2 only HandshakeFailure.
            (None, Alert::CertificateRequired | Alert::HandshakeFailure) => format!(
                "the broker at {} requires a client certificate: add --tls-cert FILE --tls-key FILE (PEM, the key in PKCS#8), a certificate signed by a CA the broker trusts",
                self.addr()
            ),
            (
                Some((cert, _)),
                Alert::BadCertificate
                | Alert::UnknownCA
                | Alert::CertificateUnknown
                | Alert::DecryptError
                | Alert::CertificateExpired,
            ) => format!(
                "the broker at {} refused the client certificate --tls-cert {} ({error}): use one signed by a CA the broker trusts, with its key in --tls-key",
                self.addr(),
                cert.display()
            ),
            _ => return None,
        };
        Some(ConnectError::Tls { message }.into())
    }

    /// A response code the broker gave for an operation on `stream`, as a user-facing error.
    pub fn refused(&self, code: &ResponseCode, action: &'static str, stream: &str) -> InvError {
        match code {
            ResponseCode::StreamDoesNotExist => StreamError::Missing {
                stream: stream.to_string(),
                vhost: self.vhost.clone(),
            }
            .into(),
            ResponseCode::AccessRefused => StreamError::AccessRefused {
                user: self.user.clone(),
                action,
                stream: stream.to_string(),
            }
            .into(),
            ResponseCode::StreamNotAvailable => StreamError::NotAvailable {
                stream: stream.to_string(),
            }
            .into(),
            code => StreamError::Refused {
                action,
                stream: stream.to_string(),
                code: code.clone(),
            }
            .into(),
        }
    }

    /// A client error after the handshake: almost always a lost connection.
    pub fn client_error(&self, error: ClientError, during: &'static str) -> InvError {
        match error {
            ClientError::Io(io) => ConnectError::Unreachable {
                addr: self.addr(),
                source: io,
            }
            .into(),
            ClientError::ConnectionClosed | ClientError::AlreadyClosed => ConnectError::Lost {
                addr: self.addr(),
                during,
            }
            .into(),
            ClientError::RequestError(code) => StreamError::RequestRefused { during, code }.into(),
            other => ConnectError::Client {
                message: format!("{during}: {other}"),
            }
            .into(),
        }
    }

    pub fn producer_error(&self, error: ProducerCreateError, stream: &str) -> InvError {
        match error {
            ProducerCreateError::StreamDoesNotExist { .. } => {
                self.refused(&ResponseCode::StreamDoesNotExist, "write to", stream)
            }
            ProducerCreateError::Create { status, .. } => self.refused(&status, "write to", stream),
            ProducerCreateError::Client(e) => self.client_error(e, "creating the producer"),
            other => ConnectError::Client {
                message: other.to_string(),
            }
            .into(),
        }
    }

    pub fn consumer_error(&self, error: ConsumerCreateError, stream: &str) -> InvError {
        match error {
            ConsumerCreateError::StreamDoesNotExist { .. } => {
                self.refused(&ResponseCode::StreamDoesNotExist, "read", stream)
            }
            ConsumerCreateError::Create { status, .. } => self.refused(&status, "read", stream),
            ConsumerCreateError::Client(e) => self.client_error(e, "subscribing"),
            other => ConnectError::Client {
                message: other.to_string(),
            }
            .into(),
        }
    }
}

/// The TLS error inside an I/O error, where tokio-rustls put it.
fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Whether an I/O error comes from TLS (certificates, protocol) rather than from the network:
/// tokio-rustls reports every TLS failure as `InvalidData` around a `rustls::Error`.
fn is_tls_failure(error: &std::io::Error) -> bool {
    rustls_error(error).is_some() || error.kind() == std::io::ErrorKind::InvalidData
}
