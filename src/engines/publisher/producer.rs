//! The client's producer behind the publisher: how to build it again on a new connection, and
//! one type for both of its kinds (with and without deduplication).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rabbitmq_stream_client::error::{ProducerCreateError, ProducerPublishError};
use rabbitmq_stream_client::types::{Message, SubEntryBatch};
use rabbitmq_stream_client::{
    BatchConfirmCallback, Dedup, Environment, MetadataUpdateCallback, NoDedup, Producer,
    ProducerBuilder,
};

use super::confirms::ConfirmTracker;
use super::Batching;
use crate::broker::BrokerSettings;
use crate::entry::product_filter_value;
use crate::error::Result;

/// The broker sends a metadata update when the stream's leader moves (or the stream goes), after
/// dropping our publisher: the connection is alive but useless, so it counts as lost, and the
/// publisher reopens on the new leader and re-sends what was not confirmed.
fn metadata_watch(tracker: &Arc<ConfirmTracker>) -> MetadataUpdateCallback {
    let tracker = tracker.clone();
    let connection = tracker.connection.load(Ordering::Relaxed);
    Arc::new(move |stream, code| {
        tracing::info!(
            stream,
            ?code,
            "metadata update: the stream's leader moved or it is gone"
        );
        if tracker.connection.load(Ordering::Relaxed) == connection {
            tracker.mark_lost();
        }
    })
}

/// How long closing a producer whose connection is gone may take.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything needed to make the client's producer again after a lost connection.
pub(super) struct ProducerRecipe {
    pub(super) env: Environment,
    pub(super) broker: BrokerSettings,
    pub(super) stream: String,
    pub(super) batch_size: u64,
    pub(super) producer_name: String,
    pub(super) dedup: bool,
    pub(super) filter_values: bool,
    pub(super) batching: Batching,
}

impl ProducerRecipe {
    /// A producer on a new connection, under this publisher's name, and whether it tags
    /// messages with filter values.
    pub(super) async fn build(&self, tracker: &Arc<ConfirmTracker>) -> Result<(AnyProducer, bool)> {
        self.build_on(&self.env, tracker).await
    }

    /// `build` through `env` (a new environment, through whichever node answers, after a
    /// lost connection: the stream's leader may have moved to another node).
    pub(super) async fn build_on(
        &self,
        env: &Environment,
        tracker: &Arc<ConfirmTracker>,
    ) -> Result<(AnyProducer, bool)> {
        let builder = || {
            // Sub-entry batches are built by the publisher (`Entry::Batch`), not the client.
            env.producer()
                .batch_size(self.batch_size as usize)
                .client_provided_name("invstream-producer")
                .on_closed(Box::new(ConnectionWatch {
                    tracker: tracker.clone(),
                    connection: tracker.connection.load(Ordering::Relaxed),
                }))
                .on_metadata_update(metadata_watch(tracker))
        };
        let (filter_values, stream) = (self.filter_values, self.stream.as_str());
        let built = match self.dedup {
            true => build_producer(
                || builder().name(&self.producer_name),
                filter_values,
                stream,
            )
            .await
            .map(|(p, f)| (AnyProducer::Dedup(p), f)),
            false => build_producer(builder, filter_values, stream)
                .await
                .map(|(p, f)| (AnyProducer::Plain(p), f)),
        };
        built.map_err(|e| self.broker.producer_error(e, stream))
    }
}

/// Tells the tracker when the client sees the producer's connection close, unless that
/// connection was already replaced (closing the old one also ends up here).
struct ConnectionWatch {
    tracker: Arc<ConfirmTracker>,
    connection: u64,
}

#[async_trait::async_trait]
impl rabbitmq_stream_client::OnClosed for ConnectionWatch {
    async fn on_closed(&self, _unconfirmed: Vec<Message>) {
        if self.tracker.connection.load(Ordering::Relaxed) == self.connection {
            self.tracker.mark_lost();
        }
    }
}

/// The client's producer type depends on whether it deduplicates; one path serves both.
pub(super) enum AnyProducer {
    Plain(Producer<NoDedup>),
    Dedup(Producer<Dedup>),
}

impl AnyProducer {
    pub(super) async fn send_encoded_entries(
        &self,
        ids: &[u64],
        entries: Vec<u8>,
        version: u16,
        on_confirm: BatchConfirmCallback,
    ) -> std::result::Result<(), ProducerPublishError> {
        match self {
            AnyProducer::Plain(p) => {
                p.send_encoded_entries(ids, entries, version, on_confirm)
                    .await
            }
            AnyProducer::Dedup(p) => {
                p.send_encoded_entries(ids, entries, version, on_confirm)
                    .await
            }
        }
    }

    pub(super) async fn send_sub_entry_batches(
        &self,
        batches: Vec<SubEntryBatch>,
        on_confirm: BatchConfirmCallback,
    ) -> std::result::Result<(), ProducerPublishError> {
        match self {
            AnyProducer::Plain(p) => p.send_sub_entry_batches(batches, on_confirm).await,
            AnyProducer::Dedup(p) => p.send_sub_entry_batches(batches, on_confirm).await,
        }
    }

    /// The node (`host:port`) this producer publishes through.
    pub(super) fn node(&self) -> String {
        match self {
            AnyProducer::Plain(p) => p.node(),
            AnyProducer::Dedup(p) => p.node(),
        }
    }

    pub(super) async fn close(self) {
        let _ = match self {
            AnyProducer::Plain(p) => p.close().await,
            AnyProducer::Dedup(p) => p.close().await,
        };
    }
}

/// Builds a producer, with filter values if asked and the broker supports them.
async fn build_producer<T>(
    make: impl Fn() -> ProducerBuilder<T>,
    filter_values: bool,
    stream: &str,
) -> std::result::Result<(Producer<T>, bool), ProducerCreateError> {
    let first_try = match filter_values {
        true => {
            make()
                .filter_value_extractor(product_filter_value)
                .build(stream)
                .await
        }
        false => make().build(stream).await,
    };
    match first_try {
        Ok(producer) => Ok((producer, filter_values)),
        Err(ProducerCreateError::FilteringNotSupport) => Ok((make().build(stream).await?, false)),
        Err(e) => Err(e),
    }
}
