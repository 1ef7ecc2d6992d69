//! Failures a user can cause or meet, each with a message that says what to do about it.

use std::time::Duration;

/// Everything that can stop an invstream command. Each message is one line meant for the user:
/// it names the thing that went wrong and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum InvError {
    #[error("invalid --uri '{uri}': {reason} (expected rabbitmq-stream://USER:PASSWORD@HOST:PORT/VHOST)")]
    InvalidUri { uri: String, reason: String },

    #[error("cannot reach the broker at {addr}: {reason}; is RabbitMQ running with the stream plugin? (scripts/broker.sh up starts one)")]
    BrokerUnreachable { addr: String, reason: String },

    #[error(
        "authentication failed for user '{user}' at {addr}: check the user and password in --uri"
    )]
    AuthenticationFailed { user: String, addr: String },

    #[error("user '{user}' may only connect from localhost (RabbitMQ's loopback_users); use another user or set loopback_users.guest = false on the broker")]
    LoopbackOnly { user: String },

    #[error("virtual host '{vhost}' does not exist at {addr} or user '{user}' has no access to it: create it (rabbitmqctl add_vhost) or fix the vhost in --uri")]
    VhostNotAccessible {
        vhost: String,
        user: String,
        addr: String,
    },

    #[error("the broker at {addr} runs RabbitMQ {version}, which is too old: invstream needs RabbitMQ 3.11 or newer (scripts/broker.sh up starts a current one)")]
    BrokerTooOld { addr: String, version: String },

    #[error("TLS: {message}")]
    Tls { message: String },

    #[error("TLS handshake with {addr} failed: {reason}; check that this is the broker's TLS port (5551 by default), that --tls-ca-cert is the CA that signed the broker's certificate, and that the URI's host is a name in that certificate")]
    TlsHandshake { addr: String, reason: String },

    #[error("the broker at {addr} closed the connection during the handshake{hint}")]
    HandshakeClosed { addr: String, hint: String },

    #[error("stream '{stream}' does not exist in virtual host '{vhost}': create it by publishing to it (invstream produce --stream {stream}) or check --stream")]
    StreamMissing { stream: String, vhost: String },

    #[error("stream '{stream}' is not available yet (the broker is starting or electing its leader): try again in a few seconds")]
    StreamNotAvailable { stream: String },

    #[error("stream '{stream}' already exists with other arguments than asked (max length/segment/age): drop those options to use it as it is, or pick another --stream")]
    StreamArgumentsMismatch { stream: String },

    #[error("user '{user}' is not allowed to {action} stream '{stream}': grant the permission (rabbitmqctl set_permissions) or use another user")]
    AccessRefused {
        user: String,
        action: &'static str,
        stream: String,
    },

    #[error("the broker refused to {action} stream '{stream}': {code}")]
    BrokerRefused {
        action: &'static str,
        stream: String,
        code: String,
    },

    #[error("lost the connection to the broker at {addr} while {during}")]
    ConnectionLost { addr: String, during: &'static str },

    #[error("lost the connection to the broker at {addr} while {during} and could not reconnect within --retry-for {} (last error: {last_error}){advice}", humantime::format_duration(*retry_for))]
    RetryWindowEnded {
        addr: String,
        during: &'static str,
        retry_for: Duration,
        last_error: String,
        advice: String,
    },

    #[error("timed out after {}s waiting for the broker at {addr} to {during}", timeout.as_secs())]
    Timeout {
        addr: String,
        during: &'static str,
        timeout: Duration,
    },

    #[error("consumer '{name}' has no offset stored on stream '{stream}': start it with --offset first or --offset next (it stores its offset as it reads)")]
    NoStoredOffset { name: String, stream: String },

    #[error("{message}")]
    Usage { message: String },

    #[error("{message}")]
    Input { message: String },

    #[error("{message}")]
    Client { message: String },

    #[error("could not compress a sub-entry batch: {0}; try another --compression")]
    Compression(String),
}

impl InvError {
    /// Whether trying again later may succeed: the broker is away or restarting, not refusing
    /// us for a reason that waiting cannot fix.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            InvError::BrokerUnreachable { .. }
                | InvError::HandshakeClosed { .. }
                | InvError::ConnectionLost { .. }
                | InvError::Timeout { .. }
                | InvError::Client { .. }
                // A restarting broker briefly has no leader for the stream, or no stream yet.
                | InvError::BrokerRefused { .. }
                | InvError::StreamMissing { .. }
                | InvError::StreamNotAvailable { .. }
        )
    }

    /// Whether the broker is up but still starting: worth a few seconds' wait even when a
    /// command starts, where other connection errors are reported at once.
    pub fn is_broker_starting(&self) -> bool {
        match self {
            InvError::StreamNotAvailable { .. } => true,
            InvError::BrokerRefused { code, .. } => code == "InternalError",
            _ => false,
        }
    }
}

/// The result type of everything that talks to the broker.
pub type Result<T> = std::result::Result<T, InvError>;
