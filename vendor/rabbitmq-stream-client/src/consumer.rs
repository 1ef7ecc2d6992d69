use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        atomic::{
            AtomicBool,
            Ordering::{Relaxed, SeqCst},
        },
        Arc,
    },
    task::{Context, Poll},
};

use rabbitmq_stream_protocol::{
    commands::{
        consumer_update::ConsumerUpdateCommand, deliver::DeliverCommand,
        metadata_update::MetadataUpdateCommand, subscribe::OffsetSpecification,
    },
    message::Message,
    sub_entry::ChunkMessages,
    ResponseKind,
};

use core::option::Option::None;
use futures::FutureExt;
use std::future::Future;
use tokio::sync::mpsc::{channel, Receiver, Sender};
use tracing::trace;

use crate::error::ConsumerStoreOffsetError;

use crate::{
    client::{MessageHandler, MessageResult},
    error::{ClientError, ConsumerCloseError, ConsumerCreateError, ConsumerDeliveryError},
    Client, Environment, MetadataUpdateCallback, MetricsCollector,
};
use futures::{future::BoxFuture, task::AtomicWaker, Stream};

type FilterPredicate = Option<Arc<dyn Fn(&Message) -> bool + Send + Sync>>;

pub type ConsumerUpdateListener =
    Arc<dyn Fn(u8, MessageContext) -> BoxFuture<'static, OffsetSpecification> + Send + Sync>;

/// API for consuming RabbitMQ stream messages
pub struct Consumer {
    // Mandatory in case of manual offset tracking
    name: Option<String>,
    receiver: Receiver<Result<Delivery, ConsumerDeliveryError>>,
    internal: Arc<ConsumerInternal>,
}

struct ConsumerInternal {
    name: Option<String>,
    client: Client,
    stream: String,
    offset_specification: OffsetSpecification,
    subscription_id: u8,
    sink: DeliverySink,
    closed: Arc<AtomicBool>,
    waker: AtomicWaker,
    metrics_collector: Arc<dyn MetricsCollector>,
    filter_configuration: Option<FilterConfiguration>,
    consumer_update_listener: Option<ConsumerUpdateListener>,
    on_metadata_update: Option<MetadataUpdateCallback>,
    node: ConsumerNode,
}

/// The node a consumer reads from, as the stream's metadata advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerNode {
    pub host: String,
    pub port: u16,
    /// Whether it led the stream when the consumer subscribed (else a replica).
    pub leader: bool,
}

/// Where a subscription's deliveries go: one item per message, or one per chunk.
enum DeliverySink {
    Messages(Sender<Result<Delivery, ConsumerDeliveryError>>),
    Chunks(Sender<Result<Chunk, ConsumerDeliveryError>>),
}

impl DeliverySink {
    /// Hands `err` to the consumer, if it is still there.
    async fn send_error(&self, err: ClientError) {
        let _ = match self {
            DeliverySink::Messages(sender) => sender.send(Err(err.into())).await.is_ok(),
            DeliverySink::Chunks(sender) => sender.send(Err(err.into())).await.is_ok(),
        };
    }
}

/// A [`ChunkConsumer`] holds this many chunks that it has not read yet; the broker gets credit
/// for the next chunk only when one fits, so memory stays bounded by chunks, not messages.
const CHUNK_CHANNEL_CAPACITY: usize = 4;

impl ConsumerInternal {
    fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    async fn store_offset(&self, offset: u64) -> Result<(), ConsumerStoreOffsetError> {
        match &self.name {
            Some(name) => self
                .client
                .store_offset(name.as_str(), self.stream.as_str(), offset)
                .await
                .map(Ok)?,
            None => Err(ConsumerStoreOffsetError::NameMissing),
        }
    }

    /// Marks the consumer closed after its receiver or connection went away.
    fn fail(&self) -> ClientError {
        self.closed.store(true, Relaxed);
        self.client.handler_failed_flag().store(true, Relaxed);
        self.waker.wake();
        ClientError::ConnectionClosed
    }
}

#[derive(Clone)]
pub struct FilterConfiguration {
    filter_values: Vec<String>,
    pub predicate: FilterPredicate,
    match_unfiltered: bool,
}

impl FilterConfiguration {
    pub fn new(filter_values: Vec<String>, match_unfiltered: bool) -> Self {
        Self {
            filter_values,
            match_unfiltered,
            predicate: None,
        }
    }

    pub fn post_filter(
        mut self,
        predicate: impl Fn(&Message) -> bool + 'static + Send + Sync,
    ) -> FilterConfiguration {
        self.predicate = Some(Arc::new(predicate));
        self
    }
}

#[derive(Clone)]
pub struct MessageContext {
    name: String,
    stream: String,
    client: Client,
}

impl MessageContext {
    pub fn name(&self) -> String {
        self.name.clone()
    }

    pub fn stream(&self) -> String {
        self.stream.clone()
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }
}

/// Builder for [`Consumer`]
pub struct ConsumerBuilder {
    pub(crate) consumer_name: Option<String>,
    pub(crate) environment: Environment,
    pub(crate) offset_specification: OffsetSpecification,
    pub(crate) filter_configuration: Option<FilterConfiguration>,
    pub(crate) consumer_update_listener: Option<ConsumerUpdateListener>,
    pub(crate) client_provided_name: String,
    pub(crate) properties: HashMap<String, String>,
    pub(crate) is_single_active_consumer: bool,
    pub(crate) on_metadata_update: Option<MetadataUpdateCallback>,
    pub(crate) prefer_replica: bool,
}

impl ConsumerBuilder {
    pub async fn build(self, stream: &str) -> Result<Consumer, ConsumerCreateError> {
        let (tx, rx) = channel(10000);
        let name = self.consumer_name.clone();
        let internal = self.subscribe(stream, DeliverySink::Messages(tx)).await?;
        Ok(Consumer {
            name,
            receiver: rx,
            internal,
        })
    }

    /// Like [`build`](Self::build), but delivers whole chunks with their messages still
    /// encoded, for consumers that read only part of each message (the body, say) and would
    /// waste most of their time decoding the rest. `FilterConfiguration::post_filter` is not
    /// applied: the caller sees every message of a chunk.
    pub async fn build_chunked(self, stream: &str) -> Result<ChunkConsumer, ConsumerCreateError> {
        let (tx, rx) = channel(CHUNK_CHANNEL_CAPACITY);
        let internal = self.subscribe(stream, DeliverySink::Chunks(tx)).await?;
        Ok(ChunkConsumer {
            receiver: rx,
            internal,
        })
    }

    async fn subscribe(
        mut self,
        stream: &str,
        sink: DeliverySink,
    ) -> Result<Arc<ConsumerInternal>, ConsumerCreateError> {
        if (self.is_single_active_consumer
            || self.properties.contains_key("single-active-consumer"))
            && self.consumer_name.is_none()
        {
            return Err(ConsumerCreateError::SingleActiveConsumerNotSupported);
        }

        let collector = self.environment.options.client_options.collector.clone();

        let (client, node) = self
            .environment
            .create_consumer_client(
                stream,
                self.client_provided_name.clone(),
                self.prefer_replica,
            )
            .await?;

        let subscription_id = 1;
        let consumer = Arc::new(ConsumerInternal {
            name: self.consumer_name.clone(),
            subscription_id,
            stream: stream.to_string(),
            client: client.clone(),
            offset_specification: self.offset_specification.clone(),
            sink,
            closed: Arc::new(AtomicBool::new(false)),
            waker: AtomicWaker::new(),
            metrics_collector: collector,
            filter_configuration: self.filter_configuration.clone(),
            consumer_update_listener: self.consumer_update_listener.clone(),
            on_metadata_update: self.on_metadata_update.clone(),
            node,
        });
        let msg_handler = ConsumerMessageHandler(consumer.clone());
        client.set_handler(msg_handler).await;

        if let Some(filter_input) = self.filter_configuration {
            if !client.filtering_supported() {
                return Err(ConsumerCreateError::FilteringNotSupport);
            }
            for (index, item) in filter_input.filter_values.iter().enumerate() {
                let key = format!("filter.{index}");
                self.properties.insert(key, item.to_owned());
            }

            let match_unfiltered_key = "match-unfiltered".to_string();
            self.properties.insert(
                match_unfiltered_key,
                filter_input.match_unfiltered.to_string(),
            );
        }

        if self.is_single_active_consumer {
            self.properties
                .insert("single-active-consumer".to_string(), "true".to_string());
            self.properties
                .insert("name".to_string(), self.consumer_name.clone().unwrap());
        }

        let response = client
            .subscribe(
                subscription_id,
                stream,
                self.offset_specification,
                1,
                self.properties.clone(),
            )
            .await?;

        if response.is_ok() {
            Ok(consumer)
        } else {
            Err(ConsumerCreateError::Create {
                stream: stream.to_owned(),
                status: response.code().clone(),
            })
        }
    }

    pub fn offset(mut self, offset_specification: OffsetSpecification) -> Self {
        self.offset_specification = offset_specification;
        self
    }

    pub fn client_provided_name(mut self, name: &str) -> Self {
        self.client_provided_name = String::from(name);
        self
    }

    pub fn name(mut self, consumer_name: &str) -> Self {
        self.consumer_name = Some(String::from(consumer_name));
        self
    }

    pub fn name_optional(mut self, consumer_name: Option<String>) -> Self {
        self.consumer_name = consumer_name;
        self
    }

    pub fn enable_single_active_consumer(mut self, is_single_active_consumer: bool) -> Self {
        self.is_single_active_consumer = is_single_active_consumer;
        self
    }

    pub fn filter_input(mut self, filter_configuration: Option<FilterConfiguration>) -> Self {
        self.filter_configuration = filter_configuration;
        self
    }

    pub fn consumer_update<Fut>(
        mut self,
        consumer_update_listener: impl Fn(u8, MessageContext) -> Fut + Send + Sync + 'static,
    ) -> Self
    where
        Fut: Future<Output = OffsetSpecification> + Send + Sync + 'static,
    {
        let f = Arc::new(move |a, b| consumer_update_listener(a, b).boxed());
        self.consumer_update_listener = Some(f);
        self
    }

    pub fn consumer_update_arc(
        mut self,
        consumer_update_listener: Option<crate::consumer::ConsumerUpdateListener>,
    ) -> Self {
        self.consumer_update_listener = consumer_update_listener;
        self
    }

    pub fn properties(mut self, properties: HashMap<String, String>) -> Self {
        self.properties = properties;
        self
    }

    /// Calls `on_metadata_update` with the stream and the code when the broker sends a
    /// metadata update for the consumer's stream (see [`MetadataUpdateCallback`]), for
    /// consumers from [`build`](Self::build) and [`build_chunked`](Self::build_chunked) alike.
    ///
    /// Whether or not this is set, such an update ends the consumer, because the broker has
    /// removed its subscription: it is closed as when its connection closes (`is_closed()` is
    /// true, `close()` gives `AlreadyClosed`), its stream yields the deliveries it already
    /// holds and then `None`, and its connection is closed. The callback runs first, so the
    /// caller knows why the stream ended; it subscribes again from the offset after the last
    /// one it read.
    pub fn on_metadata_update(mut self, on_metadata_update: MetadataUpdateCallback) -> Self {
        self.on_metadata_update = Some(on_metadata_update);
        self
    }

    /// Which node the consumer reads from. `true` (the default): a random replica of the
    /// stream, or, when it has none, the node the environment connects to (on a single node,
    /// the leader). `false`: the stream's leader, found as a producer finds it.
    pub fn prefer_replica(mut self, prefer_replica: bool) -> Self {
        self.prefer_replica = prefer_replica;
        self
    }
}

impl Consumer {
    /// Return an handle for current [`Consumer`]
    pub fn handle(&self) -> ConsumerHandle {
        ConsumerHandle(self.internal.clone())
    }

    /// Check if the consumer is closed
    pub fn is_closed(&self) -> bool {
        self.internal.is_closed()
    }

    pub async fn store_offset(&self, offset: u64) -> Result<(), ConsumerStoreOffsetError> {
        self.internal.store_offset(offset).await
    }

    pub async fn query_offset(&self) -> Result<u64, ConsumerStoreOffsetError> {
        if let Some(name) = &self.name {
            self.internal
                .client
                .query_offset(name.clone(), self.internal.stream.as_str())
                .await
                .map(Ok)?
        } else {
            Err(ConsumerStoreOffsetError::NameMissing)
        }
    }
}

impl Stream for Consumer {
    type Item = Result<Delivery, ConsumerDeliveryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        poll_deliveries(&this.internal, &mut this.receiver, cx)
    }
}

/// The next item of a consumer's deliveries; the end once it is closed and nothing is left.
fn poll_deliveries<T>(
    internal: &ConsumerInternal,
    receiver: &mut Receiver<T>,
    cx: &mut Context<'_>,
) -> Poll<Option<T>> {
    internal.waker.register(cx.waker());
    let poll = receiver.poll_recv(cx);
    match (internal.is_closed(), poll.is_ready()) {
        (true, false) => Poll::Ready(None),
        _ => poll,
    }
}

/// A consumer that receives whole chunks (see [`ConsumerBuilder::build_chunked`]).
pub struct ChunkConsumer {
    receiver: Receiver<Result<Chunk, ConsumerDeliveryError>>,
    internal: Arc<ConsumerInternal>,
}

impl ChunkConsumer {
    /// Return an handle for current [`ChunkConsumer`]
    pub fn handle(&self) -> ConsumerHandle {
        ConsumerHandle(self.internal.clone())
    }

    /// Check if the consumer is closed
    pub fn is_closed(&self) -> bool {
        self.internal.is_closed()
    }

    pub async fn store_offset(&self, offset: u64) -> Result<(), ConsumerStoreOffsetError> {
        self.internal.store_offset(offset).await
    }

    /// The node this consumer reads from.
    pub fn node(&self) -> &ConsumerNode {
        &self.internal.node
    }
}

impl Stream for ChunkConsumer {
    type Item = Result<Chunk, ConsumerDeliveryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        poll_deliveries(&this.internal, &mut this.receiver, cx)
    }
}

/// One delivered chunk: consecutive offsets from `first_offset`, messages still encoded.
#[derive(Debug)]
pub struct Chunk {
    first_offset: u64,
    messages: ChunkMessages,
}

impl Chunk {
    /// The offset of the chunk's first message. A subscription at offset N starts with the
    /// chunk holding N, so this can be below N.
    pub fn first_offset(&self) -> u64 {
        self.first_offset
    }

    /// The messages, each in its AMQP 1.0 encoding ([`Message::decode`] reads one).
    pub fn messages(&self) -> &ChunkMessages {
        &self.messages
    }

    /// Each message with its offset.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u64, &[u8])> + '_ {
        let first_offset = self.first_offset;
        self.messages
            .iter()
            .enumerate()
            .map(move |(index, message)| (first_offset + index as u64, message))
    }
}

/// Handler API for [`Consumer`]
pub struct ConsumerHandle(Arc<ConsumerInternal>);

impl ConsumerHandle {
    /// Close the [`Consumer`] associated to this handle
    pub async fn close(self) -> Result<(), ConsumerCloseError> {
        self.internal_close().await
    }

    pub(crate) async fn internal_close(&self) -> Result<(), ConsumerCloseError> {
        match self.0.closed.compare_exchange(false, true, SeqCst, SeqCst) {
            Ok(false) => {
                let response = self.0.client.unsubscribe(self.0.subscription_id).await?;
                if response.is_ok() {
                    self.0.waker.wake();
                    self.0.client.close().await?;
                    Ok(())
                } else {
                    Err(ConsumerCloseError::Close {
                        stream: self.0.stream.clone(),
                        status: response.code().clone(),
                    })
                }
            }
            _ => Err(ConsumerCloseError::AlreadyClosed),
        }
    }
    /// Check if the consumer is closed
    pub async fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

struct ConsumerMessageHandler(Arc<ConsumerInternal>);

#[async_trait::async_trait]
impl MessageHandler for ConsumerMessageHandler {
    async fn handle_message(&self, item: MessageResult) -> crate::RabbitMQStreamResult<()> {
        match item {
            Some(Ok(response)) => match response.kind() {
                ResponseKind::Deliver(delivery) => self.deliver(delivery).await?,
                ResponseKind::ConsumerUpdate(update) => self.consumer_update(update).await,
                ResponseKind::MetadataUpdate(update) => self.metadata_update(update).await,
                _ => {}
            },
            Some(Err(err)) => {
                self.0.sink.send_error(err).await;
            }
            None => {
                trace!("Closing consumer");
                self.0.closed.store(true, Relaxed);
                self.0.waker.wake();
            }
        }
        Ok(())
    }
}

impl ConsumerMessageHandler {
    /// Hands a chunk to the consumer, then asks the broker for the next one.
    async fn deliver(&self, delivery: DeliverCommand) -> crate::RabbitMQStreamResult<()> {
        let len = delivery.messages.len();
        trace!("Got delivery with messages {}", len);
        let delivered = match &self.0.sink {
            DeliverySink::Chunks(sender) => sender
                .send(Ok(Chunk {
                    first_offset: delivery.chunk_first_offset,
                    messages: delivery.messages,
                }))
                .await
                .is_ok(),
            DeliverySink::Messages(sender) => self.deliver_messages(sender, delivery).await,
        };
        if !delivered {
            tracing::warn!("Consumer receiver dropped, stopping message handler");
            return Err(self.0.fail());
        }

        if let Err(err) = self.0.client.credit(self.0.subscription_id, 1).await {
            tracing::warn!(
                "Failed to send credit for subscription {}: {}. Closing consumer.",
                self.0.subscription_id,
                err
            );
            self.0.sink.send_error(err).await;
            return Err(self.0.fail());
        }
        self.0.metrics_collector.consume(len as u64).await;
        Ok(())
    }

    /// Decodes a chunk's messages and sends each on its own. Returns false if the receiver is
    /// gone.
    async fn deliver_messages(
        &self,
        sender: &Sender<Result<Delivery, ConsumerDeliveryError>>,
        delivery: DeliverCommand,
    ) -> bool {
        let messages = match delivery.messages.decode() {
            Ok(messages) => messages,
            Err(err) => {
                return sender
                    .send(Err(ClientError::from(err).into()))
                    .await
                    .is_ok()
            }
        };
        let messages = match self
            .0
            .filter_configuration
            .as_ref()
            .and_then(|filter| filter.predicate.as_ref())
        {
            Some(predicate) => messages
                .into_iter()
                .filter(|message| predicate(message))
                .collect::<Vec<Message>>(),
            None => messages,
        };

        let mut offset = delivery.chunk_first_offset;
        for message in messages {
            if let OffsetSpecification::Offset(offset_) = self.0.offset_specification {
                if offset_ > offset {
                    offset += 1;
                    continue;
                }
            }
            let delivery = Delivery {
                name: self.0.name.clone(),
                stream: self.0.stream.clone(),
                subscription_id: self.0.subscription_id,
                message,
                offset,
            };
            if sender.send(Ok(delivery)).await.is_err() {
                return false;
            }
            offset += 1;
        }
        true
    }

    /// The broker has removed the subscription (its stream's leader moved, or the stream was
    /// deleted): tells the callback, then ends the consumer as a closed connection does and
    /// closes the connection, which has nothing left to carry.
    async fn metadata_update(&self, update: MetadataUpdateCommand) {
        if update.stream() != self.0.stream {
            trace!("Metadata update for another stream: {:?}", update);
            return;
        }
        tracing::info!(
            "Metadata update for stream {}: {:?}, closing consumer",
            update.stream(),
            update.code()
        );
        if let Some(on_metadata_update) = &self.0.on_metadata_update {
            on_metadata_update(update.stream(), update.code().clone());
        }
        if self
            .0
            .closed
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_ok()
        {
            self.0.waker.wake();
            if let Err(err) = self.0.client.close().await {
                trace!("Closing the connection after a metadata update: {}", err);
            }
        }
    }

    /// Answers the broker's question of where a newly active single active consumer starts:
    /// the user's callback decides, or `next` by the protocol's default.
    async fn consumer_update(&self, update: ConsumerUpdateCommand) {
        trace!("Received a ConsumerUpdate message");
        let offset_specification = match &self.0.consumer_update_listener {
            None => OffsetSpecification::Next,
            Some(listener) => {
                let context = MessageContext {
                    name: self.0.name.clone().unwrap(),
                    stream: self.0.stream.clone(),
                    client: self.0.client.clone(),
                };
                listener(update.is_active(), context).await
            }
        };
        let _ = self
            .0
            .client
            .consumer_update(update.get_correlation_id(), offset_specification)
            .await;
    }
}

/// Envelope from incoming message
#[derive(Debug)]
pub struct Delivery {
    name: Option<String>,
    stream: String,
    subscription_id: u8,
    message: Message,
    offset: u64,
}

impl Delivery {
    /// Get a reference to the delivery's subscription id.
    pub fn subscription_id(&self) -> u8 {
        self.subscription_id
    }

    /// Get a reference to the delivery's stream name.
    pub fn stream(&self) -> &String {
        &self.stream
    }

    /// Get a reference to the delivery's message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Get a reference to the delivery's offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn consumer_name(&self) -> Option<String> {
        self.name.clone()
    }
}
