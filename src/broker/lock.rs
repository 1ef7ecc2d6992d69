//! A producer name held by one process at a time, through the broker: a single-active-consumer
//! group named after the producer name, on the stream itself. The broker activates exactly one
//! member of a group, so of two runs that start under one `--producer-name` (even at the same
//! instant) one gets the name and the other learns at once that it is taken. The broker drops
//! the holder's subscription with its connection, so a crashed run frees the name by itself.
//!
//! The subscription asks for a filter value no message carries and not for unfiltered chunks,
//! so the broker sends it nothing (on a broker without filtering it may get a few chunks, which
//! are never read: the client stops granting credit).

use std::time::Duration;

use rabbitmq_stream_client::types::OffsetSpecification;
use rabbitmq_stream_client::{ChunkConsumer, Environment, FilterConfiguration};
use tokio::sync::mpsc;

use super::BrokerSettings;
use crate::error::{PublishError, Result};

/// How long a run waits to be made the active member before it takes the name as held.
const ACTIVATION_WAIT: Duration = Duration::from_secs(3);

/// The filter value the lock subscription asks for: no message carries it.
const NO_MESSAGE_HAS_THIS: &str = "invstream-producer-lock";

/// The name this process holds; release it when the run is over.
pub struct NameLock {
    consumer: ChunkConsumer,
    stream: String,
    name: String,
}

impl NameLock {
    pub async fn release(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.consumer.handle().close()).await;
    }

    /// The lock's connection went away (a broker restart, a cut connection): the broker no
    /// longer holds the name for us, and another run may take it.
    pub fn is_lost(&self) -> bool {
        self.consumer.is_closed()
    }
}

/// Releases every name in `locks` (at the end of a run, or when a later name could not be had).
pub async fn release_all(locks: Vec<NameLock>) {
    futures::future::join_all(locks.into_iter().map(NameLock::release)).await;
}

impl BrokerSettings {
    /// Takes every (producer name, stream) in `names` for this process, in order, or none: a
    /// name already held releases those taken before it and fails with
    /// `PublishError::NameInUse`. Take the names before asking what they hold.
    pub async fn lock_producer_names(
        &self,
        env: &Environment,
        names: &[(String, String)],
    ) -> Result<Vec<NameLock>> {
        let mut locks = Vec::with_capacity(names.len());
        for (name, stream) in names {
            // Just after the stream is declared it may not be available yet.
            let lock = self
                .while_starting(|| self.lock_producer_name(env, stream, name))
                .await;
            match lock {
                Ok(lock) => locks.push(lock),
                Err(e) => {
                    release_all(locks).await;
                    return Err(e);
                }
            }
        }
        Ok(locks)
    }

    /// Takes a lost lock's name again, or fails with `PublishError::NameInUse` when another
    /// run took it meanwhile. Retried within `--retry-for` from `lost_at`, like the reconnect it
    /// follows: on a cluster the stream's metadata may still name a node that just died.
    pub async fn retake(
        &self,
        env: &Environment,
        lost: &NameLock,
        lost_at: std::time::Instant,
    ) -> Result<NameLock> {
        self.with_retries(lost_at, "taking the producer name again", "", || {
            self.lock_producer_name(env, &lost.stream, &lost.name)
        })
        .await
    }

    /// Takes `name` on `stream` for this process, or fails with `PublishError::NameInUse`.
    pub async fn lock_producer_name(
        &self,
        env: &Environment,
        stream: &str,
        name: &str,
    ) -> Result<NameLock> {
        let (activated_tx, mut activated) = mpsc::channel::<()>(1);
        let filter = FilterConfiguration::new(vec![NO_MESSAGE_HAS_THIS.to_string()], false);
        let group = format!("invstream-producer-lock:{name}");
        let builder = || {
            let activated_tx = activated_tx.clone();
            env.consumer()
                .offset(OffsetSpecification::Next)
                .client_provided_name("invstream-producer-lock")
                // On the leader, found as the producer finds it: a random replica may be a node
                // that just died and is still listed (taking the name again after a failover
                // then tried it for all of --retry-for).
                .prefer_replica(false)
                .name(&group)
                .enable_single_active_consumer(true)
                .consumer_update(move |active, _context| {
                    let activated_tx = activated_tx.clone();
                    async move {
                        if active == 1 {
                            let _ = activated_tx.try_send(());
                        }
                        OffsetSpecification::Next
                    }
                })
        };
        let filtered = builder()
            .filter_input(Some(filter))
            .build_chunked(stream)
            .await;
        let consumer = match filtered {
            Ok(consumer) => consumer,
            // A broker without filtering (before 3.13): the same lock, unfiltered.
            Err(rabbitmq_stream_client::error::ConsumerCreateError::FilteringNotSupport) => {
                builder()
                    .build_chunked(stream)
                    .await
                    .map_err(|e| self.consumer_error(e, stream))?
            }
            Err(e) => return Err(self.consumer_error(e, stream)),
        };
        match tokio::time::timeout(ACTIVATION_WAIT, activated.recv()).await {
            Ok(Some(())) => {
                tracing::debug!(name, stream, "holding the producer name");
                Ok(NameLock {
                    consumer,
                    stream: stream.to_string(),
                    name: name.to_string(),
                })
            }
            _ => {
                let _ = consumer.handle().close().await;
                Err(PublishError::NameInUse {
                    name: name.to_string(),
                    stream: stream.to_string(),
                }
                .into())
            }
        }
    }
}
