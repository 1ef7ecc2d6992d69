//! RabbitMQ's management HTTP API (the `rabbitmq_management` plugin), for what the stream
//! protocol cannot say: which streams and super streams a virtual host holds, their message
//! counts and segments, a super stream's binding keys, and (with `rabbitmq_stream_management`,
//! RabbitMQ 3.13+) the names a stream tracks: consumers' stored offsets and producers' last
//! publishing ids. Plain HTTP only; every failure is a [`ManagementError`] saying what to do.

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::BrokerSettings;
use crate::error::{InvError, ManagementError, Result};

/// The management API's port when `--management-url` is not given.
pub const DEFAULT_MANAGEMENT_PORT: u16 = 15672;

/// How long one request may take: the API answers in milliseconds when it is there.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the management API is and as whom to ask it. Its `Display` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Management {
    /// The API's base, ending in `/` (`http://HOST:15672/`, or a path the API is served under).
    base: url::Url,
    user: String,
    password: String,
    vhost: String,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Management({self})")
    }
}

impl std::fmt::Display for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let base = self.base.as_str();
        write!(f, "{}", base.strip_suffix('/').unwrap_or(base))
    }
}

/// A stream as the management API lists it (`GET /api/queues/VHOST`, `type: stream`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct QueueEntry {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Messages in the stream (the broker's count; absent until its first statistics).
    #[serde(default)]
    pub messages: Option<u64>,
    /// Segment files on the leader.
    #[serde(default)]
    pub segments: Option<u64>,
    /// The Erlang node that leads the stream (`rabbit@host`).
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
}

/// An exchange (`GET /api/exchanges/VHOST`): a super stream's is marked `x-super-stream`.
#[derive(Debug, Clone, Deserialize)]
struct ExchangeEntry {
    name: String,
    #[serde(default)]
    arguments: serde_json::Map<String, serde_json::Value>,
}

/// A binding (`GET /api/bindings/VHOST`): a super stream's exchange to one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BindingEntry {
    pub source: String,
    pub destination: String,
    pub routing_key: String,
    #[serde(default)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

impl BindingEntry {
    /// The partition's place in its super stream (`x-stream-partition-order`).
    pub fn partition_order(&self) -> Option<u64> {
        self.arguments
            .get("x-stream-partition-order")
            .and_then(serde_json::Value::as_u64)
    }
}

/// The names a stream tracks (`GET /api/stream/VHOST/STREAM/tracking`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Tracking {
    /// Consumer name → the offset it stored.
    #[serde(default)]
    pub offsets: BTreeMap<String, u64>,
    /// Producer name → its last publishing id.
    #[serde(default)]
    pub writers: BTreeMap<String, u64>,
}

impl Management {
    /// The API at `given` (`--management-url`), or at `http://HOST:15672/` with HOST from the
    /// first `--uri`; credentials from the URL when it has them, else the URI's.
    pub fn new(given: Option<&str>, broker: &BrokerSettings) -> Result<Self> {
        let invalid = |url: &str, reason: &str| -> InvError {
            ManagementError::InvalidUrl {
                url: super::redact_uri(url),
                reason: reason.to_string(),
            }
            .into()
        };
        let mut base = match given {
            Some(text) => url::Url::parse(text).map_err(|e| invalid(text, &e.to_string()))?,
            None => {
                let host = match broker.host.contains(':') {
                    true => format!("[{}]", broker.host),
                    false => broker.host.clone(),
                };
                let text = format!("http://{host}:{DEFAULT_MANAGEMENT_PORT}/");
                url::Url::parse(&text).map_err(|e| invalid(&text, &e.to_string()))?
            }
        };
        let shown = super::redact_uri(base.as_str());
        match base.scheme() {
            "http" => {}
            "https" => return Err(invalid(&shown, "https is not supported yet: give the API's plain http:// address (port 15672), e.g. through an SSH tunnel")),
            other => return Err(invalid(&shown, &format!("unknown scheme '{other}' (http://HOST:15672)"))),
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid(&shown, "no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(
                &shown,
                "a query string or fragment (?… or #…) is not used: leave it out",
            ));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid(&shown, "credentials not valid UTF-8 after percent-decoding"))
        };
        let (user, password) = match (base.username(), base.password()) {
            ("", _) => (broker.user.clone(), broker.password.clone()),
            (user, password) => (decode(user)?, decode(password.unwrap_or(""))?),
        };
        // Credentials travel in the Authorization header, never in the URL shown.
        let _ = base.set_username("");
        let _ = base.set_password(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Management {
            base,
            user,
            password,
            vhost: broker.vhost.clone(),
        })
    }

    /// The virtual host every request is about (the `--uri`'s).
    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    /// Every stream of the virtual host (classic and quorum queues left out).
    pub async fn streams(&self) -> Result<Vec<QueueEntry>> {
        let queues: Vec<QueueEntry> = self
            .get(&["queues", &self.vhost], "listing the streams")
            .await?
            .unwrap_or_default();
        Ok(queues
            .into_iter()
            .filter(|q| q.kind.as_deref() == Some("stream"))
            .collect())
    }

    /// One stream, or `None` when the virtual host has no such queue.
    pub async fn stream(&self, name: &str) -> Result<Option<QueueEntry>> {
        self.get(&["queues", &self.vhost, name], "asking for the stream")
            .await
    }

    /// The names of the virtual host's super streams (their exchanges).
    pub async fn super_streams(&self) -> Result<Vec<String>> {
        let exchanges: Vec<ExchangeEntry> = self
            .get(&["exchanges", &self.vhost], "listing the super streams")
            .await?
            .unwrap_or_default();
        Ok(exchanges
            .into_iter()
            .filter(|e| e.arguments.get("x-super-stream") == Some(&serde_json::Value::Bool(true)))
            .map(|e| e.name)
            .collect())
    }

    /// Every binding of the virtual host (a super stream's are its partitions).
    pub async fn bindings(&self) -> Result<Vec<BindingEntry>> {
        Ok(self
            .get(&["bindings", &self.vhost], "listing the bindings")
            .await?
            .unwrap_or_default())
    }

    /// The bindings of exchange `name` (a super stream's: its partitions and their keys), or
    /// `None` when there is no such exchange.
    pub async fn bindings_of(&self, name: &str) -> Result<Option<Vec<BindingEntry>>> {
        self.get(
            &["exchanges", &self.vhost, name, "bindings", "source"],
            "asking for the super stream's bindings",
        )
        .await
    }

    /// Whether exchange `name` exists.
    pub async fn exchange_exists(&self, name: &str) -> Result<bool> {
        let exchange: Option<serde_json::Value> = self
            .get(&["exchanges", &self.vhost, name], "asking for the exchange")
            .await?;
        Ok(exchange.is_some())
    }

    /// The names `stream` tracks, or `None` when the API has no such endpoint: it comes with the
    /// `rabbitmq_stream_management` plugin (RabbitMQ 3.13+). The stream must exist.
    pub async fn tracking(&self, stream: &str) -> Result<Option<Tracking>> {
        self.get(
            &["stream", &self.vhost, stream, "tracking"],
            "asking for the stream's tracking",
        )
        .await
    }

    /// `GET api/SEGMENTS…` as JSON; `None` on 404.
    async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        during: &'static str,
    ) -> Result<Option<T>> {
        let path: Vec<String> = segments
            .iter()
            .map(|s| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string())
            .collect();
        let url = format!("{}api/{}", self.base, path.join("/"));
        let shown = self.to_string();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ManagementError::Unreachable {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
        let response = client
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .map_err(|e| ManagementError::Unreachable {
                url: shown.clone(),
                reason: describe(&e),
            })?;
        let status = response.status();
        match status.as_u16() {
            404 => return Ok(None),
            401 => {
                return Err(ManagementError::Unauthorized {
                    url: shown,
                    user: self.user.clone(),
                }
                .into())
            }
            200..=299 => {}
            _ => {
                return Err(ManagementError::Status {
                    url: shown,
                    during,
                    status: status.to_string(),
                }
                .into())
            }
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| ManagementError::Unreachable {
                url: shown.clone(),
                reason: describe(&e),
            })?;
        serde_json::from_slice(&body).map(Some).map_err(|e| {
            ManagementError::Unexpected {
                url: shown,
                during,
                reason: e.to_string(),
            }
            .into()
        })
    }
}

/// A request error in a few words: reqwest's own message is "error sending request for url
/// (…)"; the innermost cause says what happened (connection refused, no such host).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
    }
    let mut root: &dyn std::error::Error = error;
    while let Some(cause) = root.source() {
        root = cause;
    }
    root.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(uri: &str) -> BrokerSettings {
        BrokerSettings::from_uri(uri).unwrap()
    }

    #[test]
    fn the_default_is_port_15672_on_the_uri_host_with_its_credentials() {
        let m = Management::new(
            None,
            &broker("rabbitmq-stream://ann:pw@mq.example:5552/shop"),
        )
        .unwrap();
        assert_eq!(m.to_string(), "http://mq.example:15672");
        assert_eq!((m.user.as_str(), m.password.as_str()), ("ann", "pw"));
        assert_eq!(m.vhost(), "shop");
    }

    #[test]
    fn a_given_url_keeps_its_path_and_credentials_hidden() {
        let b = broker("rabbitmq-stream://guest:guest@localhost:5552/%2f");
        let m = Management::new(Some("http://bob:s%40cret@proxy:8080/rabbitmq"), &b).unwrap();
        assert_eq!(m.to_string(), "http://proxy:8080/rabbitmq");
        assert_eq!((m.user.as_str(), m.password.as_str()), ("bob", "s@cret"));
        assert!(!format!("{m:?}").contains("cret"));
        assert_eq!(m.base.as_str(), "http://proxy:8080/rabbitmq/");
    }

    #[test]
    fn unusable_urls_are_refused_by_name() {
        let b = broker("rabbitmq-stream://localhost");
        for (url, says) in [
            ("https://h:15671", "https is not supported"),
            ("ftp://h", "unknown scheme 'ftp'"),
            ("not a url", "invalid --management-url"),
            ("http://h:15672/?x=1", "query string"),
        ] {
            let err = Management::new(Some(url), &b).unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
            assert!(err.starts_with("invalid --management-url"), "{url}: {err}");
        }
    }

    #[test]
    fn an_ipv6_host_is_bracketed() {
        let m = Management::new(None, &broker("rabbitmq-stream://[::1]:5552/%2f")).unwrap();
        assert_eq!(m.to_string(), "http://[::1]:15672");
    }

    #[test]
    fn api_answers_decode() {
        let queues: Vec<QueueEntry> = serde_json::from_str(
            r#"[{"name":"s","type":"stream","messages":1001,"segments":1,"leader":"rabbit@vm","members":["rabbit@vm"],"arguments":{"x-queue-type":"stream"}},
                {"name":"q","type":"classic","messages":3}]"#,
        )
        .unwrap();
        assert_eq!(queues[0].messages, Some(1001));
        assert_eq!(queues[0].leader.as_deref(), Some("rabbit@vm"));
        let bindings: Vec<BindingEntry> = serde_json::from_str(
            r#"[{"source":"ss","vhost":"/","destination":"ss-1","destination_type":"queue","routing_key":"1","arguments":{"x-stream-partition-order":1}}]"#,
        )
        .unwrap();
        assert_eq!(bindings[0].partition_order(), Some(1));
        let tracking: Tracking =
            serde_json::from_str(r#"{"writers":{"p":1000},"offsets":{"n1":999}}"#).unwrap();
        assert_eq!(tracking.offsets["n1"], 999);
        assert_eq!(tracking.writers["p"], 1000);
    }
}
