use futures::executor::block_on;
use std::future::Future;
use std::time::Duration;
use std::{
    marker::PhantomData,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
};

use dashmap::DashMap;
use futures::{future::BoxFuture, FutureExt};
use std::collections::HashMap;
use tokio::sync::mpsc::channel;
use tokio::sync::{mpsc, RwLock};
use tokio::time::sleep;
use tracing::{error, info, trace, warn};

use rabbitmq_stream_protocol::sub_entry::{CompressionType, SubEntryBatch};
use rabbitmq_stream_protocol::{message::Message, ResponseCode, ResponseKind};

use crate::client::message::BaseMessage;
use crate::client::ClientMessage;
use crate::MetricsCollector;
use crate::{client::MessageHandler, RabbitMQStreamResult};
use crate::{
    client::{Client, MessageResult},
    environment::Environment,
    error::{ClientError, ProducerCloseError, ProducerCreateError, ProducerPublishError},
};

type WaiterMap = Arc<DashMap<u64, (ClientMessage, ProducerMessageWaiter), BuildIdHasher>>;

/// Publishing ids are mostly sequential numbers: FxHash spreads them as well as SipHash does,
/// for a fraction of the cost on this per-message path.
type BuildIdHasher = rustc_hash::FxBuildHasher;
type FilterValueExtractor = Arc<dyn Fn(&Message) -> String + 'static + Send + Sync>;

#[derive(Debug)]
pub struct ConfirmationStatus {
    publishing_id: u64,
    confirmed: bool,
    status: ResponseCode,
    message: Message,
}

impl ConfirmationStatus {
    /// Get a reference to the confirmation status's confirmed.
    pub fn confirmed(&self) -> bool {
        self.confirmed
    }

    /// Get a reference to the confirmation status's publishing id.
    pub fn publishing_id(&self) -> u64 {
        self.publishing_id
    }

    /// Get a reference to the confirmation status's status.
    pub fn status(&self) -> &ResponseCode {
        &self.status
    }

    /// Get a reference to the confirmation status's message.
    pub fn message(&self) -> &Message {
        &self.message
    }
}

pub struct ProducerInternal {
    client: Arc<Client>,
    stream: String,
    producer_id: u8,
    publish_sequence: Arc<AtomicU64>,
    waiting_confirmations: WaiterMap,
    closed: Arc<AtomicBool>,
    sender: mpsc::Sender<ClientMessage>,
    filter_value_extractor: Option<FilterValueExtractor>,
    on_closed: Arc<RwLock<Option<Box<dyn OnClosed + Send + Sync>>>>,
    batch_waiters: BatchWaiters,
}

impl Drop for ProducerInternal {
    fn drop(&mut self) {
        block_on(async {
            if let Err(e) = self.close().await {
                warn!(error = ?e, "Error closing producer");
            }
        });
    }
}

impl ProducerInternal {
    pub async fn close(&self) -> Result<(), ProducerCloseError> {
        match self
            .closed
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(false) => {
                let response = self.client.delete_publisher(self.producer_id).await?;
                // The connection goes either way: after a metadata update the broker no longer
                // knows the publisher, and the connection would otherwise stay open.
                self.client.close().await?;
                if response.is_ok() {
                    Ok(())
                } else {
                    Err(ProducerCloseError::Close {
                        status: response.code().clone(),
                        stream: self.stream.clone(),
                    })
                }
            }
            _ => Ok(()), // Already closed
        }
    }
}

/// API for publising messages to RabbitMQ stream
#[derive(Clone)]
pub struct Producer<T>(Arc<ProducerInternal>, PhantomData<T>);

/// Builder for [`Producer`]
pub struct ProducerBuilder<T> {
    pub(crate) environment: Environment,
    pub(crate) name: Option<String>,
    pub batch_size: usize,
    pub(crate) data: PhantomData<T>,
    pub filter_value_extractor: Option<FilterValueExtractor>,
    pub(crate) client_provided_name: String,
    pub(crate) on_closed: Option<Box<dyn OnClosed + Send + Sync>>,
    pub(crate) on_metadata_update: Option<MetadataUpdateCallback>,
    pub(crate) overwrite_heartbeat: Option<u32>,
    /// Messages per sub-entry batch; 1 publishes simple entries.
    pub(crate) sub_entry_size: usize,
    pub(crate) compression: CompressionType,
}

/// The other publishing ids of each sub-entry batch, by the batch's own (its last message's):
/// the broker confirms a batch once, under that id.
type BatchMembers = Arc<DashMap<u64, Vec<u64>, BuildIdHasher>>;

/// Told the broker's answer for entries sent with `Producer::send_encoded_entries` or
/// `Producer::send_sub_entry_batches`: the publishing ids one confirm (or error) frame settles
/// (a few hundred at a time under load, so the callee can take its locks once), and whether they
/// were stored. Called on the connection's reader task: keep it short and do not block.
pub type BatchConfirmCallback = Arc<dyn Fn(&[u64], bool) + Send + Sync>;

/// Told of the broker's metadata update for a producer's or consumer's stream, with the stream
/// and the reason: `StreamNotAvailable` (its leader moved or is being elected, or, from RabbitMQ
/// 4.0, it was deleted) or `StreamDoesNotExist`. By then the broker has removed the producer or
/// consumer from that stream: a producer's sends are no longer stored, and a consumer ends (see
/// [`ConsumerBuilder::on_metadata_update`](crate::ConsumerBuilder::on_metadata_update)); the
/// caller builds a new one, after the new leader is elected. Called from the connection's
/// handler task: keep it short and do not block.
pub type MetadataUpdateCallback = Arc<dyn Fn(&str, ResponseCode) + Send + Sync>;

/// Who waits for each pre-built entry, by its publishing id: one lock per frame sent or
/// answered, where a `DashMap` took a shard lock per id.
type BatchWaiters = Arc<std::sync::Mutex<HashMap<u64, BatchConfirmCallback, BuildIdHasher>>>;

/// Locks `waiters`; a panic elsewhere while it was held leaves it usable.
fn lock_waiters(
    waiters: &BatchWaiters,
) -> std::sync::MutexGuard<'_, HashMap<u64, BatchConfirmCallback, BuildIdHasher>> {
    waiters
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone)]
pub struct NoDedup {}

pub struct Dedup {}

impl<T> ProducerBuilder<T> {
    pub async fn build(self, stream: &str) -> Result<Producer<T>, ProducerCreateError> {
        // Connect to the user specified node first, then look for the stream leader.
        // The leader is the recommended node for writing, because writing to a replica will redundantly pass these messages
        // to the leader anyway - it is the only one capable of writing.

        let metrics_collector = self.environment.options.client_options.collector.clone();

        let client = self
            .environment
            .create_producer_client(stream, self.client_provided_name.clone())
            .await?;

        if let Some(heartbeat) = self.overwrite_heartbeat {
            client.set_heartbeat(heartbeat).await;
        }

        let mut publish_version = 1;

        if self.filter_value_extractor.is_some() {
            if client.filtering_supported() {
                publish_version = 2
            } else {
                return Err(ProducerCreateError::FilteringNotSupport);
            }
        }

        let on_closed = Arc::new(RwLock::new(self.on_closed));

        let waiting_confirmations: WaiterMap = Arc::new(DashMap::default());
        let batch_members: BatchMembers = Arc::new(DashMap::default());
        let batch_waiters: BatchWaiters = Arc::default();
        // Sub-entries carry no filter values (publish version 1).
        if self.sub_entry_size > 1 {
            publish_version = 1;
        }

        let confirm_handler = ProducerConfirmHandler {
            waiting_confirmations: waiting_confirmations.clone(),
            batch_members: batch_members.clone(),
            batch_waiters: batch_waiters.clone(),
            metrics_collector,
            on_closed: on_closed.clone(),
            on_metadata_update: self.on_metadata_update,
            handler_failed: client.handler_failed_flag(),
        };

        client.set_handler(confirm_handler).await;

        let producer_id = 1;
        let response = client
            .declare_publisher(producer_id, self.name.clone(), stream)
            .await?;

        let publish_sequence = if let Some(name) = self.name {
            let sequence = client.query_publisher_sequence(&name, stream).await?;

            let first_sequence = if sequence == 0 { 0 } else { sequence + 1 };

            Arc::new(AtomicU64::new(first_sequence))
        } else {
            Arc::new(AtomicU64::new(0))
        };

        if response.is_ok() {
            let (sender, receiver) = mpsc::channel(self.batch_size);

            let client = Arc::new(client);
            let producer = ProducerInternal {
                producer_id,
                stream: stream.to_string(),
                client,
                publish_sequence,
                waiting_confirmations,
                closed: Arc::new(AtomicBool::new(false)),
                sender,
                filter_value_extractor: self.filter_value_extractor,
                on_closed,
                batch_waiters,
            };

            let internal_producer = Arc::new(producer);
            schedule_batch_send(
                self.batch_size,
                receiver,
                internal_producer.client.clone(),
                producer_id,
                publish_version,
                (self.sub_entry_size > 1).then_some(SubEntries {
                    size: self.sub_entry_size,
                    compression: self.compression,
                    members: batch_members,
                }),
            );
            let producer = Producer(internal_producer, PhantomData);

            Ok(producer)
        } else {
            Err(ProducerCreateError::Create {
                stream: stream.to_owned(),
                status: response.code().clone(),
            })
        }
    }

    pub fn on_closed(mut self, on_closed: Box<dyn OnClosed + Send + Sync>) -> ProducerBuilder<T> {
        self.on_closed = Some(on_closed);
        self
    }

    /// Calls `on_metadata_update` with the stream and the code when the broker sends a
    /// metadata update for the producer's stream (see [`MetadataUpdateCallback`]). The
    /// producer stays open; its sends are no longer stored, so the caller closes it and builds
    /// another.
    pub fn on_metadata_update(mut self, on_metadata_update: MetadataUpdateCallback) -> Self {
        self.on_metadata_update = Some(on_metadata_update);
        self
    }

    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Puts up to `size` messages in each stream entry (sub-entry batching): the broker then
    /// handles one entry per batch, for much higher throughput. Each batch is confirmed, and
    /// deduplicated, as a whole, under its last message's publishing id. Sub-entries carry no
    /// filter values. 1 (the default) publishes one message per entry.
    pub fn sub_entry_size(mut self, size: usize) -> Self {
        self.sub_entry_size = size.clamp(1, u16::MAX as usize);
        self
    }

    /// How sub-entry batches are compressed (only with `sub_entry_size` > 1).
    pub fn compression(mut self, compression: CompressionType) -> Self {
        self.compression = compression;
        self
    }

    /// Don't use this in production, it is only for testing purposes.
    pub fn overwrite_heartbeat(mut self, heartbeat: u32) -> ProducerBuilder<T> {
        self.overwrite_heartbeat = Some(heartbeat);
        self
    }

    pub fn client_provided_name(mut self, name: &str) -> Self {
        self.client_provided_name = String::from(name);
        self
    }

    pub fn name(mut self, name: &str) -> ProducerBuilder<Dedup> {
        self.name = Some(name.to_owned());
        ProducerBuilder {
            environment: self.environment,
            name: self.name,
            batch_size: self.batch_size,
            data: PhantomData,
            filter_value_extractor: self.filter_value_extractor,
            client_provided_name: self.client_provided_name,
            on_closed: self.on_closed,
            on_metadata_update: self.on_metadata_update,
            overwrite_heartbeat: self.overwrite_heartbeat,
            sub_entry_size: self.sub_entry_size,
            compression: self.compression,
        }
    }

    pub fn filter_value_extractor(
        mut self,
        filter_value_extractor: impl Fn(&Message) -> String + Send + Sync + 'static,
    ) -> Self {
        let f = Arc::new(filter_value_extractor);
        self.filter_value_extractor = Some(f);
        self
    }

    pub fn filter_value_extractor_arc(
        mut self,
        filter_value_extractor: Option<FilterValueExtractor>,
    ) -> Self {
        self.filter_value_extractor = filter_value_extractor;
        self
    }
}

/// How a producer groups its messages into sub-entry batches.
struct SubEntries {
    size: usize,
    compression: CompressionType,
    members: BatchMembers,
}

impl SubEntries {
    /// Groups `messages` into batches, each under its last message's publishing id, and
    /// records the other ids of each so their confirms can be given.
    fn batch(&self, messages: Vec<ClientMessage>) -> Result<Vec<SubEntryBatch>, ClientError> {
        let mut batches = Vec::with_capacity(messages.len().div_ceil(self.size));
        let mut group = Vec::with_capacity(self.size);
        let mut ids = Vec::with_capacity(self.size);
        let mut messages = messages.into_iter().peekable();
        while let Some(message) = messages.next() {
            ids.push(message.publishing_id().unwrap_or_default());
            group.push(message.to_message());
            if group.len() == self.size || messages.peek().is_none() {
                let id = ids.pop().expect("a batch is never empty");
                if !ids.is_empty() {
                    self.members.insert(id, std::mem::take(&mut ids));
                }
                let batch = SubEntryBatch::new(id, &group, self.compression)
                    .map_err(|e| ClientError::GenericError(format!("{e:?}").into()))?;
                batches.push(batch);
                group.clear();
            }
        }
        Ok(batches)
    }
}

fn schedule_batch_send(
    batch_size: usize,
    mut receiver: mpsc::Receiver<ClientMessage>,
    client: Arc<Client>,
    producer_id: u8,
    publish_version: u16,
    sub_entries: Option<SubEntries>,
) {
    tokio::task::spawn(async move {
        let mut buffer = Vec::with_capacity(batch_size);
        loop {
            let count = receiver.recv_many(&mut buffer, batch_size).await;

            if count == 0 || buffer.is_empty() {
                // Channel is closed, exit the loop
                break;
            }

            let messages: Vec<_> = buffer.drain(..count).collect();
            let published = match &sub_entries {
                Some(sub_entries) => match sub_entries.batch(messages) {
                    Ok(batches) => client.publish_sub_entries(producer_id, batches).await,
                    Err(e) => Err(e),
                },
                None => client
                    .publish(producer_id, messages, publish_version)
                    .await
                    .map(|_| ()),
            };
            match published {
                Ok(_) => {}
                Err(e) => {
                    warn!("Error publishing batch {:?}", e);

                    // If the underlying error is a broken pipe, we can assume the connection is closed
                    // In fact, BorkenPipe is not recoverable, so we can exit the loop.
                    // This will close the receiver, so, the next time a send is called, it will return an error.
                    if matches!(e, ClientError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
                    {
                        // If the error is a broken pipe, we can assume the connection is closed
                        break;
                    }
                }
            };
        }

        info!("Batch send task finished");
    });
}

impl Producer<NoDedup> {
    pub async fn send_with_confirm(
        &self,
        message: Message,
    ) -> Result<ConfirmationStatus, ProducerPublishError> {
        self.do_send_with_confirm(message).await
    }
    pub async fn batch_send_with_confirm(
        &self,
        messages: Vec<Message>,
    ) -> Result<Vec<ConfirmationStatus>, ProducerPublishError> {
        self.do_batch_send_with_confirm(messages).await
    }
    pub async fn batch_send<Fut>(
        &self,
        messages: Vec<Message>,
        cb: impl Fn(Result<ConfirmationStatus, ProducerPublishError>) -> Fut + Send + Sync + 'static,
    ) -> Result<(), ProducerPublishError>
    where
        Fut: Future<Output = ()> + Send + Sync + 'static,
    {
        self.do_batch_send(messages, cb).await
    }

    pub async fn send<Fut>(
        &self,
        message: Message,
        cb: impl FnOnce(Result<ConfirmationStatus, ProducerPublishError>) -> Fut + Send + Sync + 'static,
    ) -> Result<(), ProducerPublishError>
    where
        Fut: Future<Output = ()> + Send + Sync + 'static,
    {
        self.do_send(message, cb).await
    }
}

impl Producer<Dedup> {
    pub async fn send_with_confirm(
        &mut self,
        message: Message,
    ) -> Result<ConfirmationStatus, ProducerPublishError> {
        self.do_send_with_confirm(message).await
    }
    pub async fn batch_send_with_confirm(
        &mut self,
        messages: Vec<Message>,
    ) -> Result<Vec<ConfirmationStatus>, ProducerPublishError> {
        self.do_batch_send_with_confirm(messages).await
    }
    pub async fn batch_send<Fut>(
        &mut self,
        messages: Vec<Message>,
        cb: impl Fn(Result<ConfirmationStatus, ProducerPublishError>) -> Fut + Send + Sync + 'static,
    ) -> Result<(), ProducerPublishError>
    where
        Fut: Future<Output = ()> + Send + Sync + 'static,
    {
        self.do_batch_send(messages, cb).await
    }

    pub async fn send<Fut>(
        &mut self,
        message: Message,
        cb: impl FnOnce(Result<ConfirmationStatus, ProducerPublishError>) -> Fut + Send + Sync + 'static,
    ) -> Result<(), ProducerPublishError>
    where
        Fut: Future<Output = ()> + Send + Sync + 'static,
    {
        self.do_send(message, cb).await
    }
}

impl<T> Producer<T> {
    async fn do_send_with_confirm(
        &self,
        message: Message,
    ) -> Result<ConfirmationStatus, ProducerPublishError> {
        let (tx, mut rx) = channel(1);
        self.internal_send(message, move |status| {
            let cloned = tx.clone();
            async move {
                let _ = cloned.send(status).await;
            }
        })
        .await?;

        let r = tokio::select! {
            val = rx.recv() => {
                Ok(val)
            }
            _ = sleep(Duration::from_secs(1)) => {
                Err(ProducerPublishError::Timeout)
            }
        }?;
        r.ok_or_else(|| ProducerPublishError::Confirmation {
            stream: self.0.stream.clone(),
        })?
        .map_err(|err| ClientError::GenericError(Box::new(err)))
        .map(Ok)?
    }

    async fn do_batch_send_with_confirm(
        &self,
        messages: Vec<Message>,
    ) -> Result<Vec<ConfirmationStatus>, ProducerPublishError> {
        let messages_len = messages.len();
        let (tx, mut rx) = channel(messages_len);

        self.internal_batch_send(messages, move |status| {
            let cloned = tx.clone();
            async move {
                let _ = cloned.send(status).await;
            }
        })
        .await?;

        let mut confirmations = Vec::with_capacity(messages_len);

        while let Some(confirmation) = rx.recv().await {
            confirmations.push(confirmation?);
        }

        Ok(confirmations)
    }
    async fn do_batch_send<Fut>(
        &self,
        messages: Vec<Message>,
        cb: impl Fn(Result<ConfirmationStatus, ProducerPublishError>) -> Fut + Send + Sync + 'static,
    ) -> Result<(), ProducerPublishError>
    where
        Fut: Future<Output = ()> + Send + Sync + 'static,
    {
        self.internal_batch_send(messages, cb).await?;

        Ok(())
    }

    async fn do_send<Fut>(
        &self,
        message: Message,
        cb: impl FnOnce(Result<ConfirmationStatus, ProducerPublishError>) -> Fut + Send + Sync + 'static,
    ) -> Result<(), ProducerPublishError>
    where
        Fut: Future<Output = ()> + Send + Sync + 'static,
    {
        self.internal_send(message, cb).await?;
        Ok(())
    }

    async fn internal_send<Fut>(
        &self,
        message: Message,
        cb: impl FnOnce(Result<ConfirmationStatus, ProducerPublishError>) -> Fut + Send + Sync + 'static,
    ) -> Result<(), ProducerPublishError>
    where
        Fut: Future<Output = ()> + Send + Sync + 'static,
    {
        if self.is_closed() {
            return Err(ProducerPublishError::Closed);
        }
        let publishing_id = match message.publishing_id() {
            Some(publishing_id) => *publishing_id,
            None => self.0.publish_sequence.fetch_add(1, Ordering::Relaxed),
        };
        let mut msg = ClientMessage::new(publishing_id, message.clone(), None);

        if let Some(f) = self.0.filter_value_extractor.as_ref() {
            msg.filter_value_extract(f.as_ref())
        }

        let waiter = OnceProducerMessageWaiter::waiter_with_cb(cb, message);
        self.0.waiting_confirmations.insert(
            publishing_id,
            (msg.clone(), ProducerMessageWaiter::Once(waiter)),
        );

        if let Err(e) = self.0.sender.send(msg).await {
            // `send` fails only when the receiver is closed, which means the TCP connection is broken.
            // In this case, we forcefully close the producer and return an error.
            // The current message will not be sent, but it is not lost:
            // `on_closed` handler will be called, and it can resend the message if needed.
            if let Err(err) = self.0.close().await {
                error!(error = ?err, "Failed to close producer after send error");
            }
            return Err(ClientError::GenericError(Box::new(e)))?;
        }

        Ok(())
    }

    async fn internal_batch_send<Fut>(
        &self,
        messages: Vec<Message>,
        cb: impl Fn(Result<ConfirmationStatus, ProducerPublishError>) -> Fut + Send + Sync + 'static,
    ) -> Result<(), ProducerPublishError>
    where
        Fut: Future<Output = ()> + Send + Sync + 'static,
    {
        if self.is_closed() {
            return Err(ProducerPublishError::Closed);
        }

        let arc_cb = Arc::new(move |status| cb(status).boxed());

        for message in messages {
            let waiter =
                SharedProducerMessageWaiter::waiter_with_arc_cb(arc_cb.clone(), message.clone());

            let publishing_id = match message.publishing_id() {
                Some(publishing_id) => *publishing_id,
                None => self.0.publish_sequence.fetch_add(1, Ordering::Relaxed),
            };

            let mut client_message = ClientMessage::new(publishing_id, message, None);
            if let Some(f) = self.0.filter_value_extractor.as_ref() {
                client_message.filter_value_extract(f.as_ref())
            }

            self.0.waiting_confirmations.insert(
                publishing_id,
                (
                    client_message.clone(),
                    ProducerMessageWaiter::Shared(waiter.clone()),
                ),
            );

            // Queue the message for sending
            if let Err(e) = self.0.sender.send(client_message).await {
                return Err(ClientError::GenericError(Box::new(e)))?;
            }
        }

        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Relaxed)
    }

    /// The node this producer publishes through, `host:port` (its stream's leader when it
    /// was built), so the application can tell when other nodes name another leader.
    pub fn node(&self) -> String {
        let (host, port) = self.0.client.address();
        format!("{host}:{port}")
    }

    /// Publishes simple entries the caller laid out itself (`append_entry` of the protocol
    /// crate's `commands::publish`, for `version`: 2 carries filter values), under `ids`, in
    /// one frame, at once: no `Message`, waiter or boxed callback per message. `on_confirm`
    /// gets each id and its outcome. Like `send_sub_entry_batches`, it skips the batching task:
    /// do not mix it with `send`/`batch_send` on one producer.
    pub async fn send_encoded_entries(
        &self,
        ids: &[u64],
        entries: Vec<u8>,
        version: u16,
        on_confirm: BatchConfirmCallback,
    ) -> Result<(), ProducerPublishError> {
        if self.is_closed() {
            return Err(ProducerPublishError::Closed);
        }
        let publish =
            self.0
                .client
                .publish_encoded(self.0.producer_id, ids.len() as u32, entries, version);
        self.publish_awaited(ids, on_confirm, publish).await
    }

    /// Publishes sub-entry batches the caller built (`SubEntryBatch::from_framed`), in one
    /// frame, at once: no per-message waiter, callback or copy, one confirmation per batch.
    /// `on_confirm` gets each batch's publishing id and outcome. The batches skip the
    /// producer's batching task, so do not mix this with `send`/`batch_send` on one producer.
    /// On a lost connection, batches still unconfirmed get no callback (the caller keeps what
    /// it needs to send them again).
    pub async fn send_sub_entry_batches(
        &self,
        batches: Vec<SubEntryBatch>,
        on_confirm: BatchConfirmCallback,
    ) -> Result<(), ProducerPublishError> {
        if self.is_closed() {
            return Err(ProducerPublishError::Closed);
        }
        let ids: Vec<u64> = batches.iter().map(|b| b.publishing_id).collect();
        let publish = self
            .0
            .client
            .publish_sub_entries(self.0.producer_id, batches);
        self.publish_awaited(&ids, on_confirm, publish).await
    }

    /// Registers `on_confirm` for `ids` (under one lock), then runs `publish`; if it fails,
    /// nobody waits for them any more.
    async fn publish_awaited(
        &self,
        ids: &[u64],
        on_confirm: BatchConfirmCallback,
        publish: impl Future<Output = RabbitMQStreamResult<()>>,
    ) -> Result<(), ProducerPublishError> {
        {
            let mut waiters = lock_waiters(&self.0.batch_waiters);
            for id in ids {
                waiters.insert(*id, on_confirm.clone());
            }
        }
        if let Err(e) = publish.await {
            let mut waiters = lock_waiters(&self.0.batch_waiters);
            for id in ids {
                waiters.remove(id);
            }
            return Err(e.into());
        }
        Ok(())
    }

    pub async fn close(self) -> Result<(), ProducerCloseError> {
        self.0.close().await
    }

    pub async fn set_on_closed(&self, on_closed: Box<dyn OnClosed + Send + Sync>) {
        let mut on_closed_lock = self.0.on_closed.write().await;
        *on_closed_lock = Some(on_closed);
    }
}

#[async_trait::async_trait]
pub trait OnClosed {
    async fn on_closed(&self, unconfirmed: Vec<Message>);
}

struct ProducerConfirmHandler {
    waiting_confirmations: WaiterMap,
    batch_members: BatchMembers,
    batch_waiters: BatchWaiters,
    metrics_collector: Arc<dyn MetricsCollector>,
    on_closed: Arc<RwLock<Option<Box<dyn OnClosed + Send + Sync>>>>,
    on_metadata_update: Option<MetadataUpdateCallback>,
    handler_failed: Arc<AtomicBool>,
}

impl ProducerConfirmHandler {
    /// Gives the broker's answer for the pre-built entries among `ids` to their callbacks, one
    /// call per run of ids sharing a callback. Returns the other ids, in order.
    fn settle_pre_built(&self, ids: impl IntoIterator<Item = u64>, confirmed: bool) -> Vec<u64> {
        let mut others = Vec::new();
        let mut runs: Vec<(BatchConfirmCallback, Vec<u64>)> = Vec::new();
        {
            let mut waiters = lock_waiters(&self.batch_waiters);
            for id in ids {
                match waiters.remove(&id) {
                    Some(on_confirm) => match runs.last_mut() {
                        Some((last, run)) if Arc::ptr_eq(last, &on_confirm) => run.push(id),
                        _ => runs.push((on_confirm, vec![id])),
                    },
                    None => others.push(id),
                }
            }
        }
        for (on_confirm, run) in runs {
            on_confirm(&run, confirmed);
        }
        others
    }

    /// Gives the broker's answer for `id` to its waiter and, for a sub-entry batch, to the
    /// waiters of every message in it. An id nobody waits for (answered already) is skipped.
    /// Returns how many messages were settled.
    async fn settle(&self, id: u64, confirmed: bool, code: ResponseCode) -> usize {
        let members = self
            .batch_members
            .remove(&id)
            .map(|(_, members)| members)
            .unwrap_or_default();
        let mut settled = 0;
        for id in members.into_iter().chain(std::iter::once(id)) {
            let Some((_, (_, waiter))) = self.waiting_confirmations.remove(&id) else {
                continue;
            };
            settled += 1;
            match waiter {
                ProducerMessageWaiter::Once(waiter) => {
                    invoke_handler_once(waiter.cb, id, confirmed, code.clone(), waiter.msg).await;
                }
                ProducerMessageWaiter::Shared(waiter) => {
                    invoke_handler(waiter.cb, id, confirmed, code.clone(), waiter.msg).await;
                }
            }
        }
        settled
    }
}

#[async_trait::async_trait]
impl MessageHandler for ProducerConfirmHandler {
    async fn handle_message(&self, item: MessageResult) -> RabbitMQStreamResult<()> {
        match item {
            Some(Ok(response)) => {
                match response.kind() {
                    ResponseKind::PublishConfirm(confirm) => {
                        trace!("Got publish_confirm for {:?}", confirm.publishing_ids);
                        let ids = &confirm.publishing_ids;
                        let others = self.settle_pre_built(ids.iter().copied(), true);
                        let mut confirm_len = ids.len() - others.len();
                        for publishing_id in others {
                            confirm_len += self.settle(publishing_id, true, ResponseCode::Ok).await;
                        }
                        self.metrics_collector
                            .publish_confirm(confirm_len as u64)
                            .await;
                    }
                    ResponseKind::PublishError(error) => {
                        trace!("Got publish_error  {:?}", error);
                        let ids = error.publishing_errors.iter().map(|e| e.publishing_id);
                        let others = self.settle_pre_built(ids, false);
                        for err in &error.publishing_errors {
                            if others.contains(&err.publishing_id) {
                                self.settle(err.publishing_id, false, err.error_code.clone())
                                    .await;
                            }
                        }
                    }
                    ResponseKind::MetadataUpdate(update) => {
                        info!(
                            "Metadata update for stream {}: {:?}",
                            update.stream(),
                            update.code()
                        );
                        if let Some(on_metadata_update) = &self.on_metadata_update {
                            on_metadata_update(update.stream(), update.code().clone());
                        }
                    }
                    _ => {}
                };
            }
            Some(Err(error)) => {
                trace!(?error);
                // TODO clean all waiting for confirm
                self.handler_failed.store(true, Ordering::Relaxed);
                return Err(error);
            }
            None => {
                info!("Connection closed");
                let on_closed = self.on_closed.read().await;
                if let Some(on_close) = &*on_closed {
                    let mut unconfirmed: Vec<(u64, Message)> = self
                        .waiting_confirmations
                        .iter()
                        .map(|entry| (*entry.key(), entry.value().0.clone().into_message()))
                        .collect();
                    unconfirmed.sort_by_key(|(id, _)| *id);

                    let unconfirmed: Vec<Message> =
                        unconfirmed.into_iter().map(|(_, msg)| msg).collect();

                    on_close.on_closed(unconfirmed).await;
                } else {
                    warn!("No on_closed handler set, unconfirmed messages will be lost.");
                }
            }
        }
        Ok(())
    }
}

async fn invoke_handler(
    f: ArcConfirmCallback,
    publishing_id: u64,
    confirmed: bool,
    status: ResponseCode,
    message: Message,
) {
    f(Ok(ConfirmationStatus {
        publishing_id,
        confirmed,
        status,
        message,
    }))
    .await;
}
async fn invoke_handler_once(
    f: ConfirmCallback,
    publishing_id: u64,
    confirmed: bool,
    status: ResponseCode,
    message: Message,
) {
    f(Ok(ConfirmationStatus {
        publishing_id,
        confirmed,
        status,
        message,
    }))
    .await;
}

type ConfirmCallback = Box<
    dyn FnOnce(Result<ConfirmationStatus, ProducerPublishError>) -> BoxFuture<'static, ()>
        + Send
        + Sync,
>;

type ArcConfirmCallback = Arc<
    dyn Fn(Result<ConfirmationStatus, ProducerPublishError>) -> BoxFuture<'static, ()>
        + Send
        + Sync,
>;

enum ProducerMessageWaiter {
    Once(OnceProducerMessageWaiter),
    Shared(SharedProducerMessageWaiter),
}

struct OnceProducerMessageWaiter {
    cb: ConfirmCallback,
    msg: Message,
}
impl OnceProducerMessageWaiter {
    fn waiter_with_cb<Fut>(
        cb: impl FnOnce(Result<ConfirmationStatus, ProducerPublishError>) -> Fut + Send + Sync + 'static,
        msg: Message,
    ) -> Self
    where
        Fut: Future<Output = ()> + Send + Sync + 'static,
    {
        Self {
            cb: Box::new(move |confirm_status| cb(confirm_status).boxed()),
            msg,
        }
    }
}

#[derive(Clone)]
struct SharedProducerMessageWaiter {
    cb: ArcConfirmCallback,
    msg: Message,
}

impl SharedProducerMessageWaiter {
    fn waiter_with_arc_cb(confirm_callback: ArcConfirmCallback, msg: Message) -> Self {
        Self {
            cb: confirm_callback,
            msg,
        }
    }
}
