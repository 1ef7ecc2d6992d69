//! Failures a user can cause or meet, grouped by what failed (connecting, stream administration,
//! publishing, reading, input, output, usage). Each message is one line that names what went
//! wrong and, where there is one, the fix. Only errors that waiting can fix are retried
//! ([`InvError::is_transient`]).

use std::time::Duration;

use rabbitmq_stream_client::types::ResponseCode;

/// Everything that can stop an invstream command.
#[derive(Debug, thiserror::Error)]
pub enum InvError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Management(#[from] ManagementError),
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The user's updates (`--input`) could not be read or were refused (`--strict`).
    #[error("{0}")]
    Input(String),
    /// A report, plot or log file could not be written.
    #[error("{0}")]
    Output(String),
    /// A flag or a combination of flags that cannot work; found before anything connects.
    #[error("{0}")]
    Usage(String),
}

/// Reaching the broker, authenticating, or keeping the connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid --uri '{uri}': {reason} (expected rabbitmq-stream://USER:PASSWORD@HOST:PORT/VHOST)")]
    InvalidUri { uri: String, reason: String },

    #[error("cannot reach the broker at {addr}: {source}; is RabbitMQ running there with its stream plugin (rabbitmq-plugins enable rabbitmq_stream)? (to start one with Docker: the README's \"A broker\")")]
    Unreachable {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "authentication failed for user '{user}' at {addr}: check the user and password (--uri, or the password from --password-file or INVSTREAM_PASSWORD)"
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

    #[error("the broker at {addr} runs RabbitMQ {version}, which is too old: invstream needs RabbitMQ 3.11 or newer, e.g. the rabbitmq:4 image (the README's \"A broker\")")]
    BrokerTooOld { addr: String, version: String },

    #[error("TLS: {message}")]
    Tls { message: String },

    #[error("TLS handshake with {addr} failed: {source}; check that this is the broker's TLS port (5551 by default), that the CA that signed the broker's certificate is --tls-ca-cert's (or, without it, one of the system trust store), and that the URI's host is a name in that certificate")]
    TlsHandshake {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    #[error("the broker at {addr} closed the connection during the handshake{hint}")]
    HandshakeClosed { addr: String, hint: String },

    #[error("lost the connection to the broker at {addr} while {during}")]
    Lost { addr: String, during: &'static str },

    #[error("lost the connection to the broker at {addr} while {during} and could not reconnect within --retry-for {} (last error: {last_error}){advice}", humantime::format_duration(*retry_for))]
    RetryWindowEnded {
        addr: String,
        during: &'static str,
        retry_for: Duration,
        /// What the last attempt met (kept as the cause).
        #[source]
        last_error: Box<InvError>,
        advice: String,
    },

    #[error("timed out after {}s waiting for the broker at {addr} to {during}", timeout.as_secs())]
    Timeout {
        addr: String,
        during: &'static str,
        timeout: Duration,
    },

    /// Anything else the client reports: not known to pass with time, so not retried.
    #[error("{message}")]
    Client { message: String },
}

/// Creating, finding or using a stream: the broker answered, and said no.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("stream '{stream}' does not exist in virtual host '{vhost}': create it by publishing to it (invstream produce --stream {stream}) or check --stream")]
    Missing { stream: String, vhost: String },

    #[error("there is no stream or super stream named '{name}' in virtual host '{vhost}': see invstream streams list")]
    NoSuchName { name: String, vhost: String },

    #[error("stream '{stream}' is not available yet (the broker is starting or electing its leader): try again in a few seconds")]
    NotAvailable { stream: String },

    #[error("stream '{stream}' already exists with other arguments than asked (max length/segment/age): drop those options to use it as it is, or pick another --stream")]
    ArgumentsMismatch { stream: String },

    #[error("stream '{stream}' already exists, and a benchmark runs on a stream of its own (another bench made this one at the same instant): run it again")]
    BenchStreamTaken { stream: String },

    #[error("user '{user}' is not allowed to {action} stream '{stream}': grant the permission (rabbitmqctl set_permissions) or use another user")]
    AccessRefused {
        user: String,
        action: &'static str,
        stream: String,
    },

    #[error(
        "the broker refused to {action} stream '{stream}': {code:?}{}",
        refused_hint(action, code)
    )]
    Refused {
        action: &'static str,
        stream: String,
        code: ResponseCode,
    },

    /// A request that names no one stream (creating a super stream, a publish frame).
    #[error("the broker refused a request while {during}: {code:?}")]
    RequestRefused {
        during: &'static str,
        code: ResponseCode,
    },
}

/// Whether a refusal is a resource alarm's: a broker whose disk or memory limit is reached
/// refuses every new publisher with `PreconditionFailed` (the code alone does not say so).
fn refused_by_alarm(action: &str, code: &ResponseCode) -> bool {
    action == "write to" && *code == ResponseCode::PreconditionFailed
}

/// What a refusal may mean, where the code alone does not say.
fn refused_hint(action: &str, code: &ResponseCode) -> &'static str {
    match refused_by_alarm(action, code) {
        true => "; a broker under a disk or memory alarm refuses new publishers: see `rabbitmq-diagnostics alarms` and the broker's log",
        false => "",
    }
}

/// RabbitMQ's management HTTP API (`invstream streams`): what the stream protocol cannot list.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    #[error("invalid --management-url '{url}': {reason} (expected http://HOST:15672)")]
    InvalidUrl { url: String, reason: String },

    #[error("cannot reach RabbitMQ's management API at {url}: {reason}; enable it on the broker (rabbitmq-plugins enable rabbitmq_management) or give its address with --management-url (env INVSTREAM_MANAGEMENT_URL)")]
    Unreachable { url: String, reason: String },

    #[error("the management API at {url} refused user '{user}' (401): give it the management tag (rabbitmqctl set_user_tags {user} management) or other credentials in --management-url http://USER:PASSWORD@HOST:15672")]
    Unauthorized { url: String, user: String },

    #[error("the management API at {url} answered {status} while {during}: check --management-url and the broker's log")]
    Status {
        url: String,
        during: &'static str,
        status: String,
    },

    #[error("the management API at {url} gave an answer invstream cannot read while {during} ({reason}): is --management-url RabbitMQ's management API?")]
    Unexpected {
        url: String,
        during: &'static str,
        reason: String,
    },
}

/// Publishing itself, once connected.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("could not compress a sub-entry batch: {0}; try another --compression")]
    Compression(String),

    #[error("another invstream run is publishing as producer '{name}' on stream '{stream}' right now: wait for it to finish, or give this run its own --producer-name")]
    NameInUse { name: String, stream: String },
}

/// A benchmark run by several processes (`bench --instances N --group NAME`): forming the group
/// and keeping in touch through its coordination stream.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("group '{group}': {joined} of {expected} instances joined within --join-timeout {}: start the missing ones with the same --group and --instances, or lower --instances", humantime::format_duration(*timeout))]
    JoinTimeout {
        group: String,
        joined: usize,
        expected: u32,
        timeout: Duration,
    },

    #[error("group '{group}' started without this instance (it already had its {expected} instances): give this run another --group, or wait for that run to end")]
    NotInRoster { group: String, expected: u32 },

    #[error("group '{group}': the instance on {host} (pid {pid}) was started with other benchmark options ({theirs}) than this one ({ours}): start every instance with the same options")]
    PlanMismatch {
        group: String,
        host: String,
        pid: u32,
        theirs: String,
        ours: String,
    },

    #[error("group '{group}': lost the coordination stream '{stream}' while {during}: {reason}")]
    Coordination {
        group: String,
        stream: String,
        during: &'static str,
        reason: String,
    },
}

/// Reading, once connected.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("consumer '{name}' has no offset stored on stream '{stream}' (none stored yet, or retention removed the part of the stream it pointed into): start it with --offset first or --offset next (it stores its offset as it reads)")]
    NoStoredOffset { name: String, stream: String },
}

/// Whether a response code means "not yet": a restarting broker, a stream between leaders.
fn is_transient_code(code: &ResponseCode) -> bool {
    matches!(
        code,
        ResponseCode::InternalError | ResponseCode::StreamNotAvailable
    )
}

impl InvError {
    /// Whether trying again later may succeed: the broker is away or restarting, not refusing
    /// us for a reason that waiting cannot fix.
    pub fn is_transient(&self) -> bool {
        match self {
            InvError::Connect(e) => matches!(
                e,
                ConnectError::Unreachable { .. }
                    | ConnectError::HandshakeClosed { .. }
                    | ConnectError::Lost { .. }
                    | ConnectError::Timeout { .. }
            ),
            // A restarting broker (or a cluster electing a leader) briefly has no leader for
            // the stream, or does not know it yet.
            InvError::Stream(e) => match e {
                StreamError::Missing { .. } | StreamError::NotAvailable { .. } => true,
                // A resource alarm refuses new publishers until it clears. Seen when a producer
                // reconnects during a disk alarm (the chaos harness): it must wait for the
                // alarm, within --retry-for, not end the run.
                StreamError::Refused { action, code, .. } if refused_by_alarm(action, code) => true,
                StreamError::Refused { code, .. } | StreamError::RequestRefused { code, .. } => {
                    is_transient_code(code)
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether the broker is up but still starting: worth a few seconds' wait even when a
    /// command starts, where other connection errors are reported at once.
    pub fn is_broker_starting(&self) -> bool {
        match self {
            InvError::Stream(StreamError::NotAvailable { .. }) => true,
            InvError::Stream(
                StreamError::Refused { code, .. } | StreamError::RequestRefused { code, .. },
            ) => *code == ResponseCode::InternalError,
            _ => false,
        }
    }

    /// A usage error from a message.
    pub fn usage(message: impl Into<String>) -> Self {
        InvError::Usage(message.into())
    }
}

/// The result type of everything that talks to the broker.
pub type Result<T> = std::result::Result<T, InvError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_waiting_can_fix_is_transient() {
        let lost = InvError::from(ConnectError::Lost {
            addr: "a".into(),
            during: "reading",
        });
        assert!(lost.is_transient());
        let client = InvError::from(ConnectError::Client {
            message: "odd".into(),
        });
        assert!(!client.is_transient());
        let refused = |code: ResponseCode| {
            InvError::from(StreamError::Refused {
                action: "read",
                stream: "s".into(),
                code,
            })
        };
        assert!(refused(ResponseCode::InternalError).is_transient());
        assert!(!refused(ResponseCode::PreconditionFailed).is_transient());
        // A new publisher refused: a resource alarm, until it clears.
        let alarm = InvError::from(StreamError::Refused {
            action: "write to",
            stream: "s".into(),
            code: ResponseCode::PreconditionFailed,
        });
        assert!(alarm.is_transient());
        let during = InvError::from(StreamError::RequestRefused {
            during: "publishing",
            code: ResponseCode::StreamNotAvailable,
        });
        assert!(during.is_transient());
        assert_eq!(
            during.to_string(),
            "the broker refused a request while publishing: StreamNotAvailable"
        );
        assert!(!InvError::Output("disk full".into()).is_transient());
        assert!(!InvError::from(ConnectError::AuthenticationFailed {
            user: "u".into(),
            addr: "a".into()
        })
        .is_transient());
    }

    #[test]
    fn errors_keep_their_cause_as_source() {
        use std::error::Error;
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let away = ConnectError::Unreachable {
            addr: "a:1".into(),
            source: refused,
        };
        let io = away
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
        let gave_up = ConnectError::RetryWindowEnded {
            addr: "a:1".into(),
            during: "publishing",
            retry_for: Duration::from_secs(1),
            last_error: Box::new(away.into()),
            advice: String::new(),
        };
        let last = gave_up.source().expect("the last attempt's error");
        assert!(last
            .to_string()
            .starts_with("cannot reach the broker at a:1: refused"));
        assert!(gave_up
            .to_string()
            .contains("(last error: cannot reach the broker at a:1: refused"));
    }
}
