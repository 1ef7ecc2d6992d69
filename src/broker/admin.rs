//! Stream administration and the requests the `Environment` does not offer: creating a stream,
//! finding its end, stored offsets and a producer's last publishing id.

use std::collections::HashMap;
use std::time::Duration;

use rabbitmq_stream_client::error::ClientError;
use rabbitmq_stream_client::types::{OffsetSpecification, ResponseCode, ResponseKind};

use rabbitmq_stream_client::Client;

use super::BrokerSettings;
use crate::error::{ConnectError, InvError, Result, StreamError};

/// How long an empty stream stays silent before we believe it is empty (see `stream_end_offset`).
const LAST_CHUNK_WAIT: Duration = Duration::from_secs(2);

/// Retention limits a stream is created with; `None` leaves the broker's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub max_length_bytes: Option<u64>,
    pub max_segment_size_bytes: Option<u64>,
    pub max_age: Option<Duration>,
}

impl Retention {
    /// The stream arguments for these limits; empty when none was given.
    pub fn arguments(&self) -> HashMap<String, String> {
        let mut arguments = HashMap::new();
        if let Some(bytes) = self.max_length_bytes {
            arguments.insert("max-length-bytes".to_string(), bytes.to_string());
        }
        if let Some(bytes) = self.max_segment_size_bytes {
            arguments.insert(
                "stream-max-segment-size-bytes".to_string(),
                bytes.to_string(),
            );
        }
        if let Some(age) = self.max_age {
            arguments.insert("max-age".to_string(), format!("{}s", age.as_secs().max(1)));
        }
        arguments
    }
}

/// Where a stream begins and ends, from its first and last chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamBounds {
    pub first_offset: u64,
    /// The first offset of the last chunk: the committed chunk id.
    pub committed_chunk_id: u64,
    pub last_offset: u64,
}

impl StreamBounds {
    /// From the first chunk's first offset and the last chunk's first offset and message count;
    /// `None` when either chunk was not seen (an empty stream).
    pub fn from_chunks(first: Option<u64>, last: Option<(u64, u64)>) -> Option<Self> {
        let (first_offset, (committed_chunk_id, count)) = (first?, last?);
        Some(StreamBounds {
            first_offset,
            committed_chunk_id,
            last_offset: committed_chunk_id + count.saturating_sub(1),
        })
    }
}

/// A stream's leader and replicas, as `host:port` (the stream protocol's metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMembers {
    pub leader: String,
    pub replicas: Vec<String>,
}

impl BrokerSettings {
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
                Err(StreamError::ArgumentsMismatch {
                    stream: stream.to_string(),
                }
                .into())
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
        match &outcome {
            Ok(true) => tracing::info!(stream, "stream created"),
            Ok(false) => tracing::debug!(stream, "stream exists"),
            Err(e) => tracing::debug!(stream, error = %e, "stream not ensured"),
        }
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

    /// Where `stream` begins and ends now (`None` for an empty stream): the first offset still
    /// stored, the first offset of the last chunk (the committed chunk id) and the last offset.
    ///
    /// Client 0.11 has no StreamStats request, so one connection subscribes twice, at `first`
    /// and at `last`, with one credit each: the first chunk sent on each says it. An empty
    /// stream sends nothing; after `LAST_CHUNK_WAIT` of silence it is taken as empty.
    pub async fn stream_bounds(&self, stream: &str) -> Result<Option<StreamBounds>> {
        let client = self.connect_client().await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u8, u64, u64)>(4);
        let handler = move |item: rabbitmq_stream_client::types::MessageResult| {
            let tx = tx.clone();
            async move {
                if let Some(Ok(response)) = item {
                    if let ResponseKind::Deliver(chunk) = response.kind_ref() {
                        let count = chunk.messages.len() as u64;
                        let _ =
                            tx.try_send((chunk.subscription_id, chunk.chunk_first_offset, count));
                    }
                }
                Ok(())
            }
        };
        client.set_handler(handler).await;
        const FIRST: u8 = 1;
        const LAST: u8 = 2;
        for (id, spec) in [
            (FIRST, OffsetSpecification::First),
            (LAST, OffsetSpecification::Last),
        ] {
            let response = client
                .subscribe(id, stream, spec, 1, HashMap::new())
                .await
                .map_err(|e| self.client_error(e, "looking for the bounds of the stream"))?;
            if response.code() != &ResponseCode::Ok {
                let _ = client.close().await;
                return Err(self.refused(response.code(), "read", stream));
            }
        }
        let (mut first, mut last) = (None, None);
        let deadline = tokio::time::Instant::now() + LAST_CHUNK_WAIT;
        while first.is_none() || last.is_none() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((FIRST, offset, _))) => first = first.or(Some(offset)),
                Ok(Some((_, offset, count))) => last = last.or(Some((offset, count))),
                Ok(None) | Err(_) => break,
            }
        }
        for id in [FIRST, LAST] {
            let _ = client.unsubscribe(id).await;
        }
        let _ = client.close().await;
        Ok(StreamBounds::from_chunks(first, last))
    }

    /// The node (`host:port`) that leads `stream` and those that hold its replicas, as the
    /// stream protocol's metadata names them; `None` when the stream does not exist or has no
    /// leader now.
    pub async fn stream_members(&self, stream: &str) -> Result<Option<StreamMembers>> {
        let client = self.connect_client().await?;
        let result = client.metadata(vec![stream.to_string()]).await;
        let _ = client.close().await;
        let mut metadata =
            result.map_err(|e| self.client_error(e, "asking for the stream's metadata"))?;
        Ok(metadata.remove(stream).map(|m| StreamMembers {
            leader: format!("{}:{}", m.leader.host, m.leader.port),
            replicas: m
                .replicas
                .iter()
                .map(|r| format!("{}:{}", r.host, r.port))
                .collect(),
        }))
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
            Ok(id) => {
                tracing::debug!(
                    stream,
                    producer = name,
                    last_publishing_id = id,
                    "producer sequence"
                );
                Ok(id)
            }
            Err(ClientError::RequestError(code)) => Err(self.refused(&code, "write to", stream)),
            Err(e) => Err(self.client_error(e, "querying the producer's last publishing id")),
        }
    }

    /// Deletes `stream` (a benchmark's own stream when it ends).
    pub async fn delete_stream(&self, stream: &str) -> Result<()> {
        let client = self.connect_client().await?;
        let result = client.delete_stream(stream).await;
        let _ = client.close().await;
        match result {
            Ok(response) if response.code() == &ResponseCode::Ok => Ok(()),
            Ok(response) => Err(self.refused(response.code(), "delete", stream)),
            Err(e) => Err(self.client_error(e, "deleting the stream")),
        }
    }
}

/// Asks the broker which partition of `super_stream` a routing key goes to (the first, if it is
/// bound to several); `None` when no partition is bound to it. `client`: a connection of the
/// router's own (`BrokerSettings::connect_client`), held for the run.
pub async fn route(client: &Client, super_stream: &str, key: &str) -> Result<Option<String>> {
    let response = client
        .route(key.to_string(), super_stream.to_string())
        .await
        .map_err(|e| {
            InvError::from(ConnectError::Client {
                message: format!("asking super stream '{super_stream}' where '{key}' goes: {e}"),
            })
        })?;
    Ok(response.streams.into_iter().next())
}
