//! The broker connection: URI parsing, connecting with errors a user can act on, the broker
//! version check, creating and inspecting streams.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::percent_decode_str;
use rabbitmq_stream_client::error::{ClientError, ConsumerCreateError, ProducerCreateError};
use rabbitmq_stream_client::types::{OffsetSpecification, ResponseCode, ResponseKind};
use rabbitmq_stream_client::{Client, ClientOptions, Environment, TlsConfiguration};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::{GlobalArgs, TlsArgs};
use crate::error::{InvError, Result};

/// The URI used when neither `--uri` nor `INVSTREAM_URI` is given: a local broker's defaults.
pub const DEFAULT_URI: &str = "rabbitmq-stream://guest:guest@localhost:5552/%2f";

const DEFAULT_PORT: u16 = 5552;
const DEFAULT_TLS_PORT: u16 = 5551;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait between reconnect attempts; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a command waits at its start for a broker that is still starting.
const STARTING_WAIT: Duration = Duration::from_secs(10);

/// How long a command believes "stream does not exist" only after asking again: a RabbitMQ
/// 4.0.5 node that has just restarted reports its existing streams missing for up to ~0.5 s
/// (measured), so a command started right after a restart would otherwise fail falsely.
const MISSING_STREAM_GRACE: Duration = Duration::from_secs(2);

/// How long an empty stream stays silent before we believe it is empty (see `stream_end_offset`).
const LAST_CHUNK_WAIT: Duration = Duration::from_secs(2);

/// Where and as whom to connect; shared by every command. Its `Display` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    password: String,
    pub vhost: String,
    /// Set for `rabbitmq-stream+tls://` URIs.
    pub tls: Option<TlsSettings>,
    /// How long a command keeps reconnecting after the connection drops mid-run.
    pub retry_for: Duration,
}

/// How to check the broker's certificate and, optionally, present ours.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// CA certificates (PEM) the broker's certificate must chain to; `None` only with `insecure`.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate and PKCS#8 key (PEM).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Skip the broker certificate check.
    pub insecure: bool,
}

impl TlsSettings {
    /// Checks the files before the client reads them: it panics on some malformed ones.
    fn from_args(args: &TlsArgs) -> Result<Self> {
        if let Some(ca) = &args.tls_ca_cert {
            check_pem(ca, "--tls-ca-cert", &["CERTIFICATE"])?;
        }
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            check_pem(cert, "--tls-cert", &["CERTIFICATE"])?;
            check_pem(key, "--tls-key", &["PRIVATE KEY"])?;
        }
        if args.tls_ca_cert.is_none() && !args.tls_insecure {
            return Err(InvError::Tls {
                message: "a rabbitmq-stream+tls:// URI needs --tls-ca-cert FILE (the CA that signed the broker's certificate; for a public CA, /etc/ssl/certs/ca-certificates.crt), or --tls-insecure to skip the check".to_string(),
            });
        }
        Ok(TlsSettings {
            ca_cert: args.tls_ca_cert.clone(),
            client_cert: args.tls_cert.clone().zip(args.tls_key.clone()),
            insecure: args.tls_insecure,
        })
    }

    fn configuration(&self) -> TlsConfiguration {
        let mut builder = TlsConfiguration::builder().enable(true);
        if let Some(ca) = &self.ca_cert {
            builder = builder.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.client_cert {
            builder = builder.add_client_certificates_keys(cert.clone(), key.clone());
        }
        builder
            .build()
            .expect("from_args requires a CA for client certificates")
    }
}

/// Fails unless `path` is a readable PEM file with a block of one of `kinds` (the client only
/// reads PKCS#8 keys, "BEGIN PRIVATE KEY").
fn check_pem(path: &Path, option: &str, kinds: &[&str]) -> Result<()> {
    let text = std::fs::read(path).map_err(|e| InvError::Tls {
        message: format!("cannot read {option} {}: {e}", path.display()),
    })?;
    let text = String::from_utf8_lossy(&text);
    if kinds
        .iter()
        .any(|kind| text.contains(&format!("-----BEGIN {kind}-----")))
    {
        return Ok(());
    }
    let hint = match kinds.contains(&"PRIVATE KEY") && text.contains("PRIVATE KEY-----") {
        true => " (convert the key to PKCS#8: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8)",
        false => "",
    };
    Err(InvError::Tls {
        message: format!(
            "{option} {} holds no PEM \"BEGIN {}\" block{hint}",
            path.display(),
            kinds[0]
        ),
    })
}

impl fmt::Debug for BrokerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerSettings({self})")
    }
}

impl fmt::Display for BrokerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vhost =
            percent_encoding::utf8_percent_encode(&self.vhost, percent_encoding::NON_ALPHANUMERIC);
        write!(
            f,
            "rabbitmq-stream://{}:***@{}:{}/{}",
            self.user, self.host, self.port, vhost
        )
    }
}

impl BrokerSettings {
    /// Parses `rabbitmq-stream://USER:PASSWORD@HOST:PORT/VHOST`; the vhost is percent-decoded
    /// (`%2f` is the default vhost `/`), a missing port is 5552, missing credentials are guest.
    pub fn from_uri(uri: &str) -> Result<Self> {
        let invalid = |reason: &str| InvError::InvalidUri {
            uri: redact_uri(uri),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(uri).map_err(|e| invalid(&e.to_string()))?;
        let tls = match url.scheme() {
            "rabbitmq-stream" => None,
            // Completed by `from_args` with the certificate options.
            "rabbitmq-stream+tls" => Some(TlsSettings::default()),
            other => {
                return Err(invalid(&format!(
                    "unknown scheme '{other}' (rabbitmq-stream:// or rabbitmq-stream+tls://)"
                )))
            }
        };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => return Err(invalid("no host")),
        };
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid("not valid UTF-8 after percent-decoding"))
        };
        let user = match url.username() {
            "" => "guest".to_string(),
            u => decode(u)?,
        };
        let password = match url.password() {
            None if url.username().is_empty() => "guest".to_string(),
            None => String::new(),
            Some(p) => decode(p)?,
        };
        let path = url.path().strip_prefix('/').unwrap_or(url.path());
        if path.contains('/') {
            return Err(invalid(
                "the path must be a single vhost name (write '/' as %2f)",
            ));
        }
        let vhost = match path {
            "" => "/".to_string(),
            p => decode(p)?,
        };
        let default_port = match tls {
            Some(_) => DEFAULT_TLS_PORT,
            None => DEFAULT_PORT,
        };
        Ok(BrokerSettings {
            host: host.to_string(),
            port: url.port().unwrap_or(default_port),
            user,
            password,
            vhost,
            tls,
            retry_for: Duration::ZERO,
        })
    }

    /// The settings every command starts from: `--uri`, the TLS options and `--retry-for`.
    pub fn from_args(args: &GlobalArgs) -> Result<Self> {
        let mut settings = Self::from_uri(&args.uri)?;
        settings.retry_for = args.retry_for;
        let tls = &args.tls;
        let tls_options_given =
            tls.tls_ca_cert.is_some() || tls.tls_cert.is_some() || tls.tls_insecure;
        match &mut settings.tls {
            Some(settings) => *settings = TlsSettings::from_args(tls)?,
            None if tls_options_given => {
                return Err(InvError::Tls {
                    message: "TLS options need a rabbitmq-stream+tls:// URI (the broker's TLS port, 5551 by default)".to_string(),
                })
            }
            None => {}
        }
        Ok(settings)
    }

    fn tls_configuration(&self) -> TlsConfiguration {
        match &self.tls {
            Some(tls) => tls.configuration(),
            None => TlsConfiguration::default(),
        }
    }

    /// Calls `attempt` until it succeeds, fails for good, or `retry_for` has passed since
    /// `lost_at`, sleeping between tries with doubling backoff. Errors that waiting cannot fix
    /// (credentials, permissions, TLS) end it at once; `advice` ends the message when the
    /// window runs out.
    pub async fn with_retries<T, Fut>(
        &self,
        lost_at: std::time::Instant,
        during: &'static str,
        advice: &str,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) if !e.is_transient() => return Err(e),
                Err(e) if lost_at.elapsed() + backoff > self.retry_for => {
                    return Err(InvError::RetryWindowEnded {
                        addr: self.addr(),
                        during,
                        retry_for: self.retry_for,
                        last_error: e.to_string(),
                        advice: advice.to_string(),
                    })
                }
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Calls `attempt` again while the broker says it is still starting (a stream without a
    /// leader yet, an internal error right after boot), for up to `STARTING_WAIT`, and while
    /// it says the stream is missing, for up to `MISSING_STREAM_GRACE`; any other outcome is
    /// returned at once. For the first requests of a command.
    pub async fn while_starting<T, Fut>(&self, mut attempt: impl FnMut() -> Fut) -> Result<T>
    where
        Fut: std::future::Future<Output = Result<T>>,
    {
        let since = std::time::Instant::now();
        loop {
            match attempt().await {
                Err(e) if e.is_broker_starting() && since.elapsed() < STARTING_WAIT => {
                    tokio::time::sleep(FIRST_BACKOFF).await
                }
                Err(InvError::StreamMissing { .. }) if since.elapsed() < MISSING_STREAM_GRACE => {
                    tokio::time::sleep(FIRST_BACKOFF).await
                }
                outcome => return outcome,
            }
        }
    }

    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn client_options(&self) -> ClientOptions {
        ClientOptions::builder()
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .v_host(&self.vhost)
            .client_provided_name("invstream".to_string())
            .tls(self.tls_configuration())
            .build()
    }

    /// Opens the client's `Environment` (the factory of producers and consumers), turning every
    /// handshake failure into a message that says what to fix.
    pub async fn connect(&self) -> Result<Environment> {
        let builder = Environment::builder()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(&self.password)
            .virtual_host(&self.vhost)
            .client_provided_name("invstream")
            .tls(self.tls_configuration());
        match tokio::time::timeout(CONNECT_TIMEOUT, builder.build()).await {
            Ok(Ok(env)) => Ok(env),
            Ok(Err(e)) => Err(self.explain_connect_error(e).await),
            Err(_) => Err(self.timeout("complete the handshake")),
        }
    }

    /// A single protocol connection, for the few requests the `Environment` does not offer.
    async fn connect_client(&self) -> Result<Client> {
        match tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(self.client_options())).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(self.explain_connect_error(e).await),
            Err(_) => Err(self.timeout("complete the handshake")),
        }
    }

    fn timeout(&self, during: &'static str) -> InvError {
        InvError::Timeout {
            addr: self.addr(),
            during,
            timeout: CONNECT_TIMEOUT,
        }
    }

    /// Maps a failed handshake to its cause. A bare "connection closed" is what the client
    /// reports when a broker older than 3.11 hangs up on its exchange-command-versions request,
    /// so then we ask the broker its version ourselves.
    async fn explain_connect_error(&self, error: ClientError) -> InvError {
        match error {
            ClientError::Io(io) if self.tls.is_some() && is_tls_failure(&io) => {
                InvError::TlsHandshake {
                    addr: self.addr(),
                    reason: io.to_string(),
                }
            }
            ClientError::Io(io) => InvError::BrokerUnreachable {
                addr: self.addr(),
                reason: io.to_string(),
            },
            ClientError::RequestError(ResponseCode::AuthenticationFailure)
            | ClientError::RequestError(ResponseCode::SaslError) => {
                InvError::AuthenticationFailed {
                    user: self.user.clone(),
                    addr: self.addr(),
                }
            }
            ClientError::RequestError(ResponseCode::AuthenticationFailureLoopback) => {
                InvError::LoopbackOnly {
                    user: self.user.clone(),
                }
            }
            ClientError::RequestError(ResponseCode::VirtualHostAccessFailure) => {
                InvError::VhostNotAccessible {
                    vhost: self.vhost.clone(),
                    user: self.user.clone(),
                    addr: self.addr(),
                }
            }
            ClientError::ConnectionClosed | ClientError::AlreadyClosed if self.tls.is_some() => {
                InvError::HandshakeClosed {
                    addr: self.addr(),
                    hint: "; is this the broker's TLS stream port (5551 by default)?".to_string(),
                }
            }
            ClientError::ConnectionClosed | ClientError::AlreadyClosed => {
                match probe_server_version(&self.host, self.port).await {
                    Some(version) if !version_at_least(&version, 3, 11) => InvError::BrokerTooOld {
                        addr: self.addr(),
                        version,
                    },
                    Some(version) => InvError::HandshakeClosed {
                        addr: self.addr(),
                        hint: format!(" (RabbitMQ {version}); see the broker's log"),
                    },
                    None => InvError::HandshakeClosed {
                        addr: self.addr(),
                        hint: "; is this a RabbitMQ stream port (5552 by default; a TLS port needs rabbitmq-stream+tls://)?".to_string(),
                    },
                }
            }
            other => InvError::Client {
                message: format!("connecting to {}: {other}", self.addr()),
            },
        }
    }

    /// Creates `stream` if it does not exist. With no `arguments` an existing stream is used as
    /// it is; with arguments, an existing stream must have been created with the same ones.
    /// Returns whether the stream was created.
    pub async fn ensure_stream(
        &self,
        stream: &str,
        arguments: HashMap<String, String>,
    ) -> Result<bool> {
        let client = self.connect_client().await?;
        let asked_for_arguments = !arguments.is_empty();
        let response = client
            .create_stream(stream, arguments)
            .await
            .map_err(|e| self.client_error(e, "creating the stream"))?;
        let outcome = match response.code() {
            ResponseCode::Ok => Ok(true),
            ResponseCode::StreamAlreadyExists => Ok(false),
            ResponseCode::PreconditionFailed if asked_for_arguments => {
                Err(InvError::StreamArgumentsMismatch {
                    stream: stream.to_string(),
                })
            }
            ResponseCode::PreconditionFailed => Ok(false),
            // A user who may write but not configure is refused the creation even of a stream
            // that exists: then it is used as it is.
            ResponseCode::AccessRefused => match client.metadata(vec![stream.to_string()]).await {
                Ok(metadata) if metadata.contains_key(stream) => Ok(false),
                _ => Err(self.refused(&ResponseCode::AccessRefused, "create", stream)),
            },
            code => Err(self.refused(code, "create", stream)),
        };
        let _ = client.close().await;
        outcome
    }

    /// The offset of the last message in `stream` now, or `None` if the stream is empty.
    ///
    /// Client 0.11 has no StreamStats request, so we subscribe at `last`: the broker then sends
    /// the last chunk, whose first offset plus its message count gives the end. An empty stream
    /// sends nothing; after `LAST_CHUNK_WAIT` of silence we take it as empty.
    pub async fn stream_end_offset(&self, stream: &str) -> Result<Option<u64>> {
        let client = self.connect_client().await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(4);
        let handler = move |item: rabbitmq_stream_client::types::MessageResult| {
            let tx = tx.clone();
            async move {
                if let Some(Ok(response)) = item {
                    if let ResponseKind::Deliver(chunk) = response.kind_ref() {
                        if let Some(count) = (chunk.messages.len() as u64).checked_sub(1) {
                            let _ = tx.try_send(chunk.chunk_first_offset + count);
                        }
                    }
                }
                Ok(())
            }
        };
        client.set_handler(handler).await;
        let response = client
            .subscribe(1, stream, OffsetSpecification::Last, 1, HashMap::new())
            .await
            .map_err(|e| self.client_error(e, "looking for the end of the stream"))?;
        let end = match response.code() {
            ResponseCode::Ok => tokio::time::timeout(LAST_CHUNK_WAIT, rx.recv())
                .await
                .ok()
                .flatten(),
            code => {
                let _ = client.close().await;
                return Err(self.refused(code, "read", stream));
            }
        };
        let _ = client.unsubscribe(1).await;
        let _ = client.close().await;
        Ok(end)
    }

    /// The offset the broker stores for consumer `name` on `stream`, or `None` if it has none.
    pub async fn stored_offset(&self, name: &str, stream: &str) -> Result<Option<u64>> {
        let client = self.connect_client().await?;
        let result = client.query_offset(name.to_string(), stream).await;
        let _ = client.close().await;
        match result {
            Ok(offset) => Ok(Some(offset)),
            Err(ClientError::RequestError(ResponseCode::OffsetNotFound)) => Ok(None),
            Err(ClientError::RequestError(code)) => Err(self.refused(&code, "read", stream)),
            Err(e) => Err(self.client_error(e, "querying the stored offset")),
        }
    }

    /// The last publishing id the broker stored for producer `name` on `stream` (0 for none).
    pub async fn last_publishing_id(&self, name: &str, stream: &str) -> Result<u64> {
        let client = self.connect_client().await?;
        let result = client.query_publisher_sequence(name, stream).await;
        let _ = client.close().await;
        match result {
            Ok(id) => Ok(id),
            Err(ClientError::RequestError(code)) => Err(self.refused(&code, "write to", stream)),
            Err(e) => Err(self.client_error(e, "querying the producer's last publishing id")),
        }
    }

    /// A response code the broker gave for an operation on `stream`, as a user-facing error.
    pub fn refused(&self, code: &ResponseCode, action: &'static str, stream: &str) -> InvError {
        match code {
            ResponseCode::StreamDoesNotExist => InvError::StreamMissing {
                stream: stream.to_string(),
                vhost: self.vhost.clone(),
            },
            ResponseCode::AccessRefused => InvError::AccessRefused {
                user: self.user.clone(),
                action,
                stream: stream.to_string(),
            },
            ResponseCode::StreamNotAvailable => InvError::StreamNotAvailable {
                stream: stream.to_string(),
            },
            code => InvError::BrokerRefused {
                action,
                stream: stream.to_string(),
                code: format!("{code:?}"),
            },
        }
    }

    /// A client error after the handshake: almost always a lost connection.
    pub fn client_error(&self, error: ClientError, during: &'static str) -> InvError {
        match error {
            ClientError::Io(io) => InvError::BrokerUnreachable {
                addr: self.addr(),
                reason: io.to_string(),
            },
            ClientError::ConnectionClosed | ClientError::AlreadyClosed => {
                InvError::ConnectionLost {
                    addr: self.addr(),
                    during,
                }
            }
            ClientError::RequestError(code) => InvError::BrokerRefused {
                action: during,
                stream: String::new(),
                code: format!("{code:?}"),
            },
            other => InvError::Client {
                message: format!("{during}: {other}"),
            },
        }
    }

    pub fn producer_error(&self, error: ProducerCreateError, stream: &str) -> InvError {
        match error {
            ProducerCreateError::StreamDoesNotExist { .. } => {
                self.refused(&ResponseCode::StreamDoesNotExist, "write to", stream)
            }
            ProducerCreateError::Create { status, .. } => self.refused(&status, "write to", stream),
            ProducerCreateError::Client(e) => self.client_error(e, "creating the producer"),
            other => InvError::Client {
                message: other.to_string(),
            },
        }
    }

    pub fn consumer_error(&self, error: ConsumerCreateError, stream: &str) -> InvError {
        match error {
            ConsumerCreateError::StreamDoesNotExist { .. } => {
                self.refused(&ResponseCode::StreamDoesNotExist, "read", stream)
            }
            ConsumerCreateError::Create { status, .. } => self.refused(&status, "read", stream),
            ConsumerCreateError::Client(e) => self.client_error(e, "subscribing"),
            other => InvError::Client {
                message: other.to_string(),
            },
        }
    }
}

/// Whether an I/O error comes from TLS (certificates, protocol) rather than from the network.
fn is_tls_failure(error: &std::io::Error) -> bool {
    let text = error.to_string().to_ascii_lowercase();
    error.kind() == std::io::ErrorKind::InvalidData
        || text.contains("tls")
        || text.contains("certificate")
}

/// Replaces the password in a URI-like string, for error messages about unparsable URIs.
fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let Some(at) = rest.rfind('@') else {
        return uri.to_string();
    };
    let (credentials, host) = rest.split_at(at);
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{host}"),
        None => uri.to_string(),
    }
}

/// Whether a RabbitMQ version string such as `3.10.8` or `4.0.5` is at least `major.minor`.
pub fn version_at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (v_major, v_minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (v_major, v_minor) >= (major, minor)
}

/// Asks a stream port for the broker's version with a bare PeerProperties request, the first
/// step of every handshake, which every broker version answers. `None` if it does not answer.
pub async fn probe_server_version(host: &str, port: u16) -> Option<String> {
    let exchange = async {
        let mut socket = TcpStream::connect((host, port)).await.ok()?;
        socket.write_all(&peer_properties_request()).await.ok()?;
        let size = socket.read_u32().await.ok()? as usize;
        if size > 1 << 20 {
            return None;
        }
        let mut frame = vec![0u8; size];
        socket.read_exact(&mut frame).await.ok()?;
        parse_peer_properties_response(&frame).and_then(|props| props.get("version").cloned())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

const PEER_PROPERTIES_KEY: u16 = 0x0011;

/// A PeerProperties request (protocol version 1, correlation id 1) with no client properties.
fn peer_properties_request() -> Vec<u8> {
    let mut frame = Vec::with_capacity(16);
    frame.extend_from_slice(&12u32.to_be_bytes());
    frame.extend_from_slice(&PEER_PROPERTIES_KEY.to_be_bytes());
    frame.extend_from_slice(&1u16.to_be_bytes());
    frame.extend_from_slice(&1u32.to_be_bytes());
    frame.extend_from_slice(&0i32.to_be_bytes());
    frame
}

/// Reads the server properties from a PeerProperties response frame (without its size prefix).
fn parse_peer_properties_response(frame: &[u8]) -> Option<HashMap<String, String>> {
    let mut cursor = frame;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (cursor.get(..n)?, cursor.get(n..)?);
        cursor = tail;
        Some(head)
    };
    let key = u16::from_be_bytes(take(2)?.try_into().ok()?);
    if key != PEER_PROPERTIES_KEY | 0x8000 {
        return None;
    }
    take(2 + 4 + 2)?; // version, correlation id, response code
    let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let mut properties = HashMap::new();
    for _ in 0..count.max(0) {
        let mut string = || -> Option<String> {
            let len = i16::from_be_bytes(take(2)?.try_into().ok()?).max(0) as usize;
            Some(String::from_utf8_lossy(take(len)?).into_owned())
        };
        let (k, v) = (string()?, string()?);
        properties.insert(k, v);
    }
    Some(properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_uri_is_the_local_broker() {
        let s = BrokerSettings::from_uri(DEFAULT_URI).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("localhost", 5552));
        assert_eq!((s.user.as_str(), s.password.as_str()), ("guest", "guest"));
        assert_eq!(s.vhost, "/");
    }

    #[test]
    fn every_part_comes_from_the_uri() {
        let s = BrokerSettings::from_uri(
            "rabbitmq-stream://al%40ice:p%3Ass@broker.example:6000/shop%2Feu",
        )
        .unwrap();
        assert_eq!(s.host, "broker.example");
        assert_eq!(s.port, 6000);
        assert_eq!(s.user, "al@ice");
        assert_eq!(s.password, "p:ss");
        assert_eq!(s.vhost, "shop/eu");
        let s = BrokerSettings::from_uri("rabbitmq-stream://127.0.0.1").unwrap();
        assert_eq!(
            (s.port, s.vhost.as_str(), s.user.as_str()),
            (5552, "/", "guest")
        );
        let s = BrokerSettings::from_uri("rabbitmq-stream://u:p@[::1]:5552/v").unwrap();
        assert_eq!((s.host.as_str(), s.vhost.as_str()), ("::1", "v"));
    }

    #[test]
    fn display_and_debug_hide_the_password() {
        let s = BrokerSettings::from_uri("rabbitmq-stream://u:s3cret@h:1/%2f").unwrap();
        assert_eq!(s.to_string(), "rabbitmq-stream://u:***@h:1/%2F");
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn bad_uris_are_rejected_without_leaking_the_password() {
        for uri in [
            "amqp://u:s3cret@h:5672/",
            "rabbitmq-stream://u:s3cret@h:notaport/",
            "not a uri s3cret",
            "rabbitmq-stream://u:s3cret@h/a/b",
            "rabbitmq-stream+tls://u:s3cret@h:bad/",
        ] {
            let err = BrokerSettings::from_uri(uri).unwrap_err().to_string();
            assert!(err.starts_with("invalid --uri"), "{err}");
            assert!(
                !err.contains("s3cret") || uri.starts_with("not a uri"),
                "{err}"
            );
        }
    }

    fn settings(args: &[&str]) -> Result<BrokerSettings> {
        use clap::Parser;
        let cli =
            crate::cli::Cli::try_parse_from(["invstream"].iter().chain(args).chain(&["consume"]))
                .expect("the arguments parse");
        BrokerSettings::from_args(&cli.global)
    }

    #[test]
    fn tls_needs_a_tls_uri_and_a_ca_or_insecure() {
        let dir = std::env::temp_dir().join(format!("invstream-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let rsa_key = dir.join("rsa.key");
        std::fs::write(&rsa_key, "-----BEGIN RSA PRIVATE KEY-----\nAA==\n").unwrap();
        let ca = ca.to_str().unwrap();
        let tls_uri = "rabbitmq-stream+tls://u:p@h/%2f";

        let s = settings(&["--uri", tls_uri, "--tls-ca-cert", ca]).unwrap();
        assert_eq!(s.port, 5551);
        assert_eq!(
            s.tls.as_ref().unwrap().ca_cert.as_deref(),
            Some(Path::new(ca))
        );
        assert!(
            settings(&["--uri", tls_uri, "--tls-insecure"])
                .unwrap()
                .tls
                .unwrap()
                .insecure
        );

        let err = settings(&["--uri", tls_uri]).unwrap_err().to_string();
        assert!(err.contains("needs --tls-ca-cert"), "{err}");
        let err = settings(&["--tls-ca-cert", ca]).unwrap_err().to_string();
        assert!(err.contains("need a rabbitmq-stream+tls:// URI"), "{err}");
        let err = settings(&["--uri", tls_uri, "--tls-ca-cert", "/nonexistent/ca.pem"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read --tls-ca-cert"), "{err}");
        let key = rsa_key.to_str().unwrap();
        let err = settings(&[
            "--uri",
            tls_uri,
            "--tls-ca-cert",
            ca,
            "--tls-cert",
            ca,
            "--tls-key",
            key,
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("openssl pkcs8 -topk8"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn retry_for_comes_from_the_arguments() {
        assert_eq!(settings(&[]).unwrap().retry_for, Duration::from_secs(60));
        assert_eq!(
            settings(&["--retry-for", "0s"]).unwrap().retry_for,
            Duration::ZERO
        );
    }

    #[tokio::test]
    async fn retries_stop_at_errors_waiting_cannot_fix_and_at_the_window() {
        let mut s = BrokerSettings::from_uri(DEFAULT_URI).unwrap();
        s.retry_for = Duration::from_millis(500);
        let mut calls = 0;
        let refused: Result<()> = s
            .with_retries(std::time::Instant::now(), "publishing", "", || {
                calls += 1;
                async {
                    Err(InvError::AuthenticationFailed {
                        user: "u".into(),
                        addr: "a".into(),
                    })
                }
            })
            .await;
        assert!(matches!(
            refused,
            Err(InvError::AuthenticationFailed { .. })
        ));
        assert_eq!(calls, 1);

        let mut calls = 0;
        let away: Result<()> = s
            .with_retries(std::time::Instant::now(), "publishing", "; advice", || {
                calls += 1;
                async {
                    Err(InvError::BrokerUnreachable {
                        addr: "a".into(),
                        reason: "refused".into(),
                    })
                }
            })
            .await;
        let message = away.unwrap_err().to_string();
        assert!(
            message.contains("could not reconnect within --retry-for 500ms"),
            "{message}"
        );
        assert!(message.ends_with("; advice"), "{message}");
        assert!(calls >= 2, "{calls}");
    }

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(!version_at_least("3.10.8", 3, 11));
        assert!(version_at_least("3.11.0", 3, 11));
        assert!(version_at_least("3.13.7", 3, 11));
        assert!(version_at_least("4.0.5", 3, 11));
        assert!(version_at_least("4.1.0-rc.1", 3, 11));
        assert!(!version_at_least("garbage", 3, 11));
    }

    #[test]
    fn peer_properties_frames() {
        let request = peer_properties_request();
        assert_eq!(request.len(), 16);
        assert_eq!(&request[4..6], &[0x00, 0x11]);
        let mut response = vec![0x80, 0x11, 0, 1, 0, 0, 0, 1, 0, 1];
        response.extend_from_slice(&2i32.to_be_bytes());
        for s in ["product", "RabbitMQ", "version", "3.10.8"] {
            response.extend_from_slice(&(s.len() as i16).to_be_bytes());
            response.extend_from_slice(s.as_bytes());
        }
        let props = parse_peer_properties_response(&response).unwrap();
        assert_eq!(props["version"], "3.10.8");
        assert_eq!(parse_peer_properties_response(&response[..12]), None);
    }
}
