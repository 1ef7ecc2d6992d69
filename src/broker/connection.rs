//! Connecting: the client's `Environment` and single protocol connections, with time limits,
//! and the two retry loops (a lost connection mid-run; a broker still starting).

use std::time::Duration;

use rabbitmq_stream_client::{Client, Environment};

use super::BrokerSettings;
use crate::error::{ConnectError, InvError, Result, StreamError};

pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The first wait between reconnect attempts; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Short: a cluster's new leader is usually there within seconds, and a user waits on it.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long a command waits at its start for a broker that is still starting.
const STARTING_WAIT: Duration = Duration::from_secs(10);

/// How long a command believes "stream does not exist" only after asking again: a RabbitMQ
/// 4.0.5 node that has just restarted reports its existing streams missing for up to ~0.5 s
/// (measured), so a command started right after a restart would otherwise fail falsely.
const MISSING_STREAM_GRACE: Duration = Duration::from_secs(2);

impl BrokerSettings {
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
                    return Err(ConnectError::RetryWindowEnded {
                        addr: self.addr(),
                        during,
                        retry_for: self.retry_for,
                        last_error: Box::new(e),
                        advice: advice.to_string(),
                    }
                    .into())
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
                Err(InvError::Stream(StreamError::Missing { .. }))
                    if since.elapsed() < MISSING_STREAM_GRACE =>
                {
                    tokio::time::sleep(FIRST_BACKOFF).await
                }
                outcome => return outcome,
            }
        }
    }

    /// Opens the client's `Environment` (the factory of producers and consumers) through the
    /// first node that answers, turning every handshake failure into a message that says what
    /// to fix. A node that refuses us for good (credentials, TLS) ends it at once.
    pub async fn connect(&self) -> Result<Environment> {
        let mut first_failure = None;
        for node in self.each_node() {
            match node.connect_node().await {
                Ok(env) => return Ok(env),
                Err(e) if e.is_transient() => {
                    tracing::debug!(addr = %node.addr(), error = %e, "node did not answer; trying the next");
                    first_failure.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_failure.expect("there is at least one node"))
    }

    /// `connect` to this node alone.
    async fn connect_node(&self) -> Result<Environment> {
        let builder = Environment::builder()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(&self.password)
            .virtual_host(&self.vhost)
            .client_provided_name("invstream")
            .tls(self.tls_configuration()?);
        tracing::debug!(addr = %self.addr(), "connecting");
        match tokio::time::timeout(CONNECT_TIMEOUT, builder.build()).await {
            Ok(Ok(env)) => {
                tracing::debug!(addr = %self.addr(), "connected");
                Ok(env)
            }
            Ok(Err(e)) => Err(self.explain_connect_error(e).await),
            Err(_) => Err(self.timeout("complete the handshake")),
        }
    }

    /// A protocol connection of our own through the first node that answers (handshake
    /// failures explained like `connect`'s), for requests the `Environment` does not offer.
    pub async fn connect_client(&self) -> Result<Client> {
        let mut first_failure = None;
        for node in self.each_node() {
            match node.connect_client_node().await {
                Ok(client) => return Ok(client),
                Err(e) if e.is_transient() => {
                    first_failure.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_failure.expect("there is at least one node"))
    }

    async fn connect_client_node(&self) -> Result<Client> {
        let options = self.client_options()?;
        match tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(options)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(self.explain_connect_error(e).await),
            Err(_) => Err(self.timeout("complete the handshake")),
        }
    }

    pub(super) fn timeout(&self, during: &'static str) -> InvError {
        ConnectError::Timeout {
            addr: self.addr(),
            during,
            timeout: CONNECT_TIMEOUT,
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::DEFAULT_URI;

    #[tokio::test]
    async fn retries_stop_at_errors_waiting_cannot_fix_and_at_the_window() {
        let mut s = BrokerSettings::from_uri(DEFAULT_URI).unwrap();
        s.retry_for = Duration::from_millis(500);
        let mut calls = 0;
        let refused: Result<()> = s
            .with_retries(std::time::Instant::now(), "publishing", "", || {
                calls += 1;
                async {
                    Err(ConnectError::AuthenticationFailed {
                        user: "u".into(),
                        addr: "a".into(),
                    }
                    .into())
                }
            })
            .await;
        assert!(matches!(
            refused,
            Err(InvError::Connect(ConnectError::AuthenticationFailed { .. }))
        ));
        assert_eq!(calls, 1);

        let mut calls = 0;
        let away: Result<()> = s
            .with_retries(std::time::Instant::now(), "publishing", "; advice", || {
                calls += 1;
                async {
                    Err(ConnectError::Unreachable {
                        addr: "a".into(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::ConnectionRefused,
                            "refused",
                        ),
                    }
                    .into())
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
}
