//! The reading engine: subscribes one reader at an offset specification, hands every message to
//! a [`MessageSink`], stores the reader's offset when it is named, resubscribes after the last
//! offset read when the connection drops, and stops by the run's rules (count, duration, the
//! stream's end, a stop signal). Used by `consume` (one or many readers) and `bench`. It never
//! prints: it reports through [`ReaderEvent`]s and a shared progress counter.

mod offset;
mod shared_count;
mod spawn;

use std::collections::{HashMap, HashSet};
use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rabbitmq_stream_client::error::ConsumerCreateError;
use rabbitmq_stream_client::types::OffsetSpecification;
use rabbitmq_stream_client::{Chunk, ChunkConsumer, Environment, FilterConfiguration};

pub use offset::{first_offset_from_timestamp, offset_specification, StartOffset};
pub use shared_count::SharedCount;
pub use spawn::{spawn_all, Running, Start};

use crate::broker::BrokerSettings;
use crate::error::{ConnectError, InvError, Result};
use crate::shutdown::StopSignal;

/// With `--product`, the broker skips chunks without those products, so a replay may never see
/// the stream's last offset: after this long without a delivery it is over.
const FILTERED_IDLE_END: Duration = Duration::from_secs(2);

/// A named reader stores its offset at least this often (and every `store_every` messages).
const STORE_INTERVAL: Duration = Duration::from_secs(1);

/// A sink hears of quiet after this long without a chunk (to flush what it holds).
const IDLE_TICK: Duration = Duration::from_millis(200);

/// How long closing a consumer whose connection may be gone may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// After this long without a delivery, a reader asks the other nodes whether the node it reads
/// from is still one of the stream's members (and again every as long): a node that hangs, or
/// is cut off, keeps our connection open and silent, and the cluster drops it from the members
/// once it has noticed. A quiet stream costs one metadata request per node per interval.
const READ_STALL_BOUND: Duration = Duration::from_secs(5);

/// How long subscribing anew may take: the metadata request and the member's handshake have no
/// time limit of their own.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a single active consumer reading up to an end looks whether its activation put
/// it past that end (see `Reading::run`).
const ACTIVATION_CHECK: Duration = Duration::from_millis(100);

/// When a read stops by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRule {
    /// Read up to the last offset the stream had when we started.
    AtEnd,
    /// Keep reading until stopped, the count or the duration.
    Follow,
}

impl StopRule {
    /// Without a count, a duration or `follow`, a replay (first, an offset, a timestamp,
    /// stored) stops at the stream's current end, while last and next follow new messages.
    pub fn new(
        start: &StartOffset,
        count: Option<u64>,
        duration: Option<Duration>,
        follow: bool,
    ) -> Self {
        if start.is_replay() && count.is_none() && duration.is_none() && !follow {
            StopRule::AtEnd
        } else {
            StopRule::Follow
        }
    }
}

/// What a sink makes of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Read: it counts towards the count and the progress.
    Counted,
    /// Not one the run asked for (another product): passed over.
    Passed,
    /// Nothing more is wanted (the reader of the printed output went away).
    Stop,
}

/// Receives a reader's messages, still AMQP-encoded, in offset order.
pub trait MessageSink: Send {
    /// Called before each chunk's messages (one clock read per chunk, for instance).
    fn chunk_start(&mut self) {}
    fn take(&mut self, offset: u64, message: &[u8]) -> Take;
    /// No chunk arrived for a while: a chance to flush what the sink holds. Called only for a
    /// sink whose `wants_idle` says so (a timer per chunk costs a fast reader ~10%).
    fn idle(&mut self) {}
    fn wants_idle(&self) -> bool {
        false
    }
    /// The chunk's messages were all taken (or the read stops).
    fn chunk_end(&mut self) {}
    /// A single active consumer became active and starts at `offset`, right after the offset
    /// its group's previous active member stored: called before its first message.
    fn took_over_at(&mut self, _offset: u64) {}
}

/// What every reader of one stream in a run shares (each partition of a super stream has its
/// own).
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub stream: String,
    pub start: StartOffset,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// With [`StopRule::AtEnd`], the last offset to read.
    pub end_offset: Option<u64>,
    /// Ask the broker to deliver only chunks holding these products (RabbitMQ 3.13+).
    pub filter_products: Option<HashSet<u64>>,
    /// Form a single-active-consumer group under the reader's name.
    pub single_active: bool,
    /// Read from a replica when the stream has one (else its leader), like the Java client.
    pub prefer_replica: bool,
    pub store_every: u64,
    /// For errors, and for the single-active-consumer callback, which needs its own connection.
    pub broker: BrokerSettings,
    /// The super stream `stream` is a partition of: a single-active-consumer group then spreads
    /// the partitions over its members (the `super-stream` subscription property).
    pub super_stream: Option<String>,
}

impl ReadPlan {
    /// All of `stream` from its first offset, without end, filter or stored offsets (bench's
    /// consumers), from a replica where there is one.
    pub fn whole_stream(stream: &str, broker: &BrokerSettings) -> Self {
        ReadPlan {
            stream: stream.to_string(),
            start: StartOffset::First,
            count: None,
            duration: None,
            end_offset: None,
            filter_products: None,
            single_active: false,
            prefer_replica: true,
            store_every: u64::MAX,
            broker: broker.clone(),
            super_stream: None,
        }
    }
}

/// One reader: a label for reports, the name the broker tracks its offset under, its pace.
#[derive(Debug, Clone)]
pub struct ReaderSpec {
    pub label: String,
    pub tracking_name: Option<String>,
    /// A pause after each message read (a slow consumer, to show fan-out).
    pub slow: Option<Duration>,
    /// The offset the broker stored for `tracking_name`, for `--offset stored`.
    pub stored: Option<u64>,
}

impl ReaderSpec {
    /// The first offset this reader asks for, when it is known before subscribing.
    pub fn start(&self, offset: &StartOffset) -> Option<u64> {
        match (offset, self.stored) {
            (StartOffset::Offset(n), _) => Some(*n),
            (StartOffset::Stored, Some(stored)) => Some(stored + 1),
            _ => None,
        }
    }
}

/// What happens to a reader that a person may want to know about; the command renders it.
#[derive(Debug, Clone, PartialEq)]
pub enum ReaderEvent {
    /// Reading starts (or goes on after a reconnect) from this node: on a cluster, which
    /// member a reader picked is otherwise invisible.
    Subscribed {
        reader: String,
        stream: String,
        /// `host:port`, as the stream's metadata advertises the node.
        node: String,
        /// The stream's leader when subscribing (else a replica).
        leader: bool,
    },
    ConnectionLost {
        reader: String,
        addr: String,
        retry_for: Duration,
    },
    Reconnected {
        reader: String,
        after: Duration,
        /// The offset reading goes on from; `None`: where it first started.
        from: Option<u64>,
    },
}

/// Where a reader's events go.
pub type ReaderEvents = Arc<dyn Fn(ReaderEvent) + Send + Sync>;

/// A subscription, and the offset below which deliveries are skipped: delivery is by chunk, so
/// a subscription at offset N (asked for, resumed at, or where a single active consumer takes
/// over) first gets the messages before N in N's chunk.
pub struct Subscription {
    consumer: ChunkConsumer,
    skip_below: Arc<AtomicU64>,
    /// A single active consumer's start, one past the offset its predecessor stored, once it
    /// is activated there (0 until then, or when it starts where it asked).
    took_over_at: Arc<AtomicU64>,
}

/// Why a subscription failed.
pub enum SubscribeError {
    /// The broker has no stream filtering (RabbitMQ < 3.13).
    NoFiltering,
    Create(ConsumerCreateError),
}

impl SubscribeError {
    pub fn into_error(self, broker: &BrokerSettings, stream: &str) -> InvError {
        match self {
            SubscribeError::NoFiltering => ConnectError::Client {
                message: "the broker does not support stream filtering".to_string(),
            }
            .into(),
            SubscribeError::Create(e) => broker.consumer_error(e, stream),
        }
    }
}

/// How one reader's read ended.
pub struct ReadOutcome<S> {
    pub sink: S,
    /// From the first message read to the last (from subscribing to the stop, if it read
    /// nothing): the reading, without the wait for a producer.
    pub elapsed: Duration,
    /// From subscribing to the first message read (the whole run, if it read nothing).
    pub waited: Duration,
    /// Times the reader lost its connection and subscribed again.
    pub reconnects: u64,
    /// The error that ended the read early, if any.
    pub failure: Option<InvError>,
}

/// Subscribes `reader`: at the plan's offset, or at `resume_at` after a lost connection.
pub async fn subscribe(
    env: &Environment,
    plan: &ReadPlan,
    reader: &ReaderSpec,
    resume_at: Option<u64>,
) -> std::result::Result<Subscription, SubscribeError> {
    let offset = match resume_at {
        Some(next) => OffsetSpecification::Offset(next),
        None => offset_specification(&plan.start, reader.stored),
    };
    let skip_below = Arc::new(AtomicU64::new(match offset {
        OffsetSpecification::Offset(first) => first,
        _ => 0,
    }));
    let took_over_at = Arc::new(AtomicU64::new(0));
    let mut builder = env
        .consumer()
        .offset(offset)
        .client_provided_name(&format!("invstream-consumer-{}", reader.label))
        .name_optional(reader.tracking_name.clone())
        .prefer_replica(plan.prefer_replica)
        // The broker ends our subscription when the stream's leader moves: the consumer ends,
        // and the read loop subscribes again after the last offset read.
        .on_metadata_update(Arc::new(|stream: &str, code| {
            tracing::info!(stream, ?code, "metadata update: resubscribing");
        }));
    if let Some(products) = &plan.filter_products {
        let values = products.iter().map(u64::to_string).collect();
        // Chunks without filter values (streams written without --filter-values) come too: every
        // message is checked by the sink anyway.
        builder = builder.filter_input(Some(FilterConfiguration::new(values, true)));
    }
    if let (true, Some(super_stream)) = (plan.single_active, &plan.super_stream) {
        let property = ("super-stream".to_string(), super_stream.clone());
        builder = builder.properties(HashMap::from([property]));
    }
    if plan.single_active {
        // On activation, resume after the offset the previous active consumer stored. The
        // query needs its own connection: this callback runs inside the consumer's dispatcher.
        let fallback = offset_specification(&plan.start, None);
        let (stream, broker, skip_below, took_over_at) = (
            plan.stream.clone(),
            plan.broker.clone(),
            skip_below.clone(),
            took_over_at.clone(),
        );
        builder =
            builder
                .enable_single_active_consumer(true)
                .consumer_update(move |active, context| {
                    let (fallback, stream, broker, skip_below, took_over_at) = (
                        fallback.clone(),
                        stream.clone(),
                        broker.clone(),
                        skip_below.clone(),
                        took_over_at.clone(),
                    );
                    async move {
                        if active == 0 {
                            return fallback;
                        }
                        // Our own last read, after a reconnect, beats what was stored.
                        let resumed = skip_below.load(Ordering::Relaxed);
                        if resumed > 0 {
                            return OffsetSpecification::Offset(resumed);
                        }
                        match broker.stored_offset(&context.name(), &stream).await {
                            Ok(Some(stored)) => {
                                skip_below.store(stored + 1, Ordering::Relaxed);
                                took_over_at.store(stored + 1, Ordering::Relaxed);
                                OffsetSpecification::Offset(stored + 1)
                            }
                            _ => fallback,
                        }
                    }
                });
    }
    match builder.build_chunked(&plan.stream).await {
        Ok(consumer) => Ok(Subscription {
            consumer,
            skip_below,
            took_over_at,
        }),
        Err(ConsumerCreateError::FilteringNotSupport) => Err(SubscribeError::NoFiltering),
        Err(e) => Err(SubscribeError::Create(e)),
    }
}

/// Subscribes `reader` again after its connection dropped, right after `last_read` (or where
/// it started, if it read nothing yet), retrying with backoff for up to `--retry-for`.
/// Each attempt connects anew through whichever node answers (on a cluster the node we read
/// from may be the one that went away); the new environment is returned with the subscription,
/// to be kept while it reads.
async fn resubscribe(
    plan: &ReadPlan,
    reader: &ReaderSpec,
    last_read: Option<u64>,
    lost_node: &str,
    events: &ReaderEvents,
) -> Result<(Environment, Subscription)> {
    let lost_at = Instant::now();
    events(ReaderEvent::ConnectionLost {
        reader: reader.label.clone(),
        addr: lost_node.to_string(),
        retry_for: plan.broker.retry_for,
    });
    let resume_at = last_read.map(|offset| offset + 1);
    let advice = match (&reader.tracking_name, last_read) {
        (Some(_), Some(_)) => "; run it again with --offset stored to resume",
        _ => "",
    };
    // The node we lost last: one that hangs costs a handshake timeout to each request.
    let broker = plan.broker.preferring(None, Some(lost_node));
    let subscription = broker
        .with_retries(lost_at, "reading", advice, || async {
            let env = broker.connect().await?;
            let subscribing = subscribe(&env, plan, reader, resume_at);
            let subscription = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribing)
                .await
                .map_err(|_| ConnectError::Timeout {
                    addr: broker.addr(),
                    during: "subscribe to a member of the stream",
                    timeout: SUBSCRIBE_TIMEOUT,
                })?
                .map_err(|e| e.into_error(&plan.broker, &plan.stream))?;
            Ok((env, subscription))
        })
        .await?;
    events(ReaderEvent::Reconnected {
        reader: reader.label.clone(),
        after: lost_at.elapsed(),
        from: resume_at,
    });
    Ok(subscription)
}

/// Takes a place under a shared count for the message a reader holds: false once the count is
/// read. Every place taken but not yet counted is another reader's message in its sink, decided
/// on without a pause: asking again after a yield gets the answer.
async fn claim_place(count: &SharedCount) -> bool {
    loop {
        match count.claim() {
            shared_count::Claim::Got => return true,
            shared_count::Claim::Reached => return false,
            shared_count::Claim::Busy => tokio::task::yield_now().await,
        }
    }
}

/// `host:port` of the node `consumer` reads from, as the stream's metadata advertises it.
fn node_of(consumer: &ChunkConsumer) -> String {
    let node = consumer.node();
    format!("{}:{}", node.host, node.port)
}

/// Whether the other nodes say `node` is no longer a member of `stream` (it hangs, or is cut
/// off): true only when some node answered and none lists it.
async fn dropped_from_members(plan: &ReadPlan, node: &str) -> bool {
    let named = plan.broker.leaders_named(&plan.stream).await;
    !named.is_empty() && !named.iter().any(|answer| answer.lists(node))
}

/// Everything one reader's loop needs besides its subscription (a lost connection is replaced
/// through any node the plan's broker lists, so no environment is needed).
pub struct ReadContext<'a> {
    pub plan: &'a ReadPlan,
    pub reader: &'a ReaderSpec,
    pub stop: StopSignal,
    /// Messages read, across readers, for a progress display.
    pub progress: Arc<AtomicU64>,
    pub events: ReaderEvents,
    /// A `--count` this reader shares with others (one consumer's readers of a super stream's
    /// partitions): it stops once they read it among them.
    pub shared_count: Option<Arc<SharedCount>>,
}

/// One reader's loop, until a stop rule, the stop signal or an error that reconnecting cannot
/// mend.
pub async fn read<S: MessageSink>(
    context: ReadContext<'_>,
    subscription: Subscription,
    sink: S,
) -> ReadOutcome<S> {
    let mut reading = Reading::new(context, subscription, sink);
    reading.tell_subscribed();
    reading.run().await;
    reading.finish().await
}

/// One reader while it reads: its subscription, its sink, where it got to and what it counted,
/// which every arm of its loop (a chunk, a lost connection, the stop, the idle tick) shares.
struct Reading<'a, S> {
    context: ReadContext<'a>,
    subscription: Subscription,
    /// The environment of the latest resubscription, kept while its consumer reads.
    _reconnected_env: Option<Environment>,
    sink: S,
    started: Instant,
    /// When the first chunk with a message to read arrived.
    first_read_at: Option<Instant>,
    elapsed: Duration,
    read: u64,
    /// Of `read`, how much was added to `progress` already.
    reported: u64,
    /// Messages passed since a named reader last stored its offset.
    unstored: u64,
    last_store: Instant,
    last_delivered: Option<u64>,
    quiet_since: Instant,
    reconnects: u64,
    failure: Option<InvError>,
}

impl<'a, S: MessageSink> Reading<'a, S> {
    fn new(context: ReadContext<'a>, subscription: Subscription, sink: S) -> Self {
        let now = Instant::now();
        Reading {
            context,
            subscription,
            _reconnected_env: None,
            sink,
            started: now,
            first_read_at: None,
            elapsed: Duration::ZERO,
            read: 0,
            reported: 0,
            unstored: 0,
            last_store: now,
            last_delivered: None,
            quiet_since: now,
            reconnects: 0,
            failure: None,
        }
    }

    /// Tells which node the subscription reads from.
    fn tell_subscribed(&self) {
        let ReadContext {
            plan,
            reader,
            events,
            ..
        } = &self.context;
        events(ReaderEvent::Subscribed {
            reader: reader.label.clone(),
            stream: plan.stream.clone(),
            node: node_of(&self.subscription.consumer),
            leader: self.subscription.consumer.node().leader,
        });
    }

    /// Waits for whichever comes first, a chunk or a reason to stop, until the read is over.
    async fn run(&mut self) {
        let plan = self.context.plan;
        let label = &self.context.reader.label;
        let mut deadline = std::pin::pin!(async {
            match plan.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => pending().await,
            }
        });
        let idle_end = plan.end_offset.is_some() && plan.filter_products.is_some();
        let wants_idle = self.sink.wants_idle();
        // One timer for the whole read (a timer per chunk costs a fast reader ~10%).
        let mut stall_check = tokio::time::interval(READ_STALL_BOUND);
        stall_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A single active consumer learns where it starts only once activated (after the
        // offset its group stored): when that is past the end of a read that ends, no message
        // will ever come to say so.
        let watch_activation = plan.single_active && plan.end_offset.is_some();
        let mut activation_check = tokio::time::interval(ACTIVATION_CHECK);
        loop {
            // Set when the subscription must be replaced: its connection closed, or its node
            // hangs (`hangs`: closing would wait for a reply that never comes).
            let (mut lost, mut hangs) = (false, false);
            let quiet_since = self.quiet_since;
            let idle = async move {
                match idle_end {
                    true => {
                        tokio::time::sleep_until((quiet_since + FILTERED_IDLE_END).into()).await
                    }
                    false => pending().await,
                }
            };
            let shared_count = self.context.shared_count.as_deref();
            tokio::select! {
                biased;
                _ = self.context.stop.stopped() => {
                    tracing::debug!(reader = %label, "stopping: shutdown signal");
                    break;
                }
                _ = &mut deadline => {
                    tracing::debug!(reader = %label, "stopping: --duration reached");
                    break;
                }
                _ = idle => {
                    tracing::debug!(reader = %label, "stopping: no matching chunk came");
                    break;
                }
                _ = async {
                    match shared_count {
                        Some(count) => count.reached().await,
                        None => pending().await,
                    }
                } => {
                    tracing::debug!(reader = %label, "stopping: the shared --count was read");
                    break;
                }
                _ = async {
                    match wants_idle {
                        true => tokio::time::sleep(IDLE_TICK).await,
                        false => pending().await,
                    }
                } => self.sink.idle(),
                _ = activation_check.tick(), if watch_activation => {
                    let start = self.subscription.skip_below.load(Ordering::Relaxed);
                    if plan.end_offset.is_some_and(|end| start > end) {
                        tracing::debug!(reader = %label, "stopping: activated past the end");
                        break;
                    }
                }
                _ = stall_check.tick(), if !plan.broker.retry_for.is_zero() => {
                    let node = node_of(&self.subscription.consumer);
                    if quiet_since.elapsed() >= READ_STALL_BOUND && dropped_from_members(plan, &node).await {
                        tracing::info!(reader = %label, %node, quiet_ms = quiet_since.elapsed().as_millis() as u64, "no delivery, and the other nodes no longer list our node: resubscribing");
                        (lost, hangs) = (true, true);
                    }
                }
                chunk = self.subscription.consumer.next() => match chunk {
                    Some(Ok(chunk)) => {
                        if self.take_chunk(&chunk).await {
                            break;
                        }
                    }
                    Some(Err(e)) if plan.broker.retry_for.is_zero() => {
                        self.failure = Some(ConnectError::Client { message: format!("reading stream '{}': {e}", plan.stream) }.into());
                        break;
                    }
                    None if plan.broker.retry_for.is_zero() => {
                        self.failure = Some(ConnectError::Lost { addr: plan.broker.addr(), during: "reading" }.into());
                        break;
                    }
                    Some(Err(_)) | None => lost = true,
                },
            }
            if lost && !self.replace_subscription(hangs).await {
                break;
            }
        }
    }

    /// Hands a chunk's messages to the sink, from the first this reader has not read yet (a
    /// chunk may start below the offset subscribed at); true once the read is over: the count
    /// or the end reached, the sink done, the stop or the duration in a slow reader's pause.
    async fn take_chunk(&mut self, chunk: &Chunk) -> bool {
        let arrived = Instant::now();
        self.quiet_since = arrived;
        self.sink.chunk_start();
        let mut done = false;
        let read_before = self.read;
        let label = &self.context.reader.label;
        for (offset, message) in chunk.iter() {
            if offset < self.subscription.skip_below.load(Ordering::Relaxed) {
                continue;
            }
            if self.last_delivered.is_none() {
                let start = self.subscription.took_over_at.load(Ordering::Relaxed);
                if start > 0 {
                    self.sink.took_over_at(start);
                }
            }
            if let Some(count) = &self.context.shared_count {
                if !claim_place(count).await {
                    tracing::debug!(reader = %label, offset, "stopping: the shared --count was read");
                    done = true;
                    break;
                }
            }
            self.last_delivered = Some(offset);
            let taken = self.sink.take(offset, message);
            if let Some(count) = &self.context.shared_count {
                count.settle(taken == Take::Counted);
            }
            match taken {
                Take::Stop => {
                    tracing::debug!(reader = %label, offset, "stopping: the sink is done");
                    done = true;
                    break;
                }
                Take::Counted => {
                    self.read += 1;
                    if let Some(pause) = self.context.reader.slow {
                        if self.pause_slow(pause).await {
                            done = true;
                            break;
                        }
                    }
                }
                Take::Passed => {}
            }
            self.unstored += 1;
            if self.store_due() {
                self.store_offset(offset).await;
            }
            let plan = self.context.plan;
            let reached_count = plan.count.is_some_and(|c| self.read >= c)
                || self
                    .context
                    .shared_count
                    .as_ref()
                    .is_some_and(|c| c.is_reached());
            let reached_end = plan.end_offset.is_some_and(|end| offset >= end);
            if reached_count || reached_end {
                tracing::debug!(reader = %label, offset, reached_count, reached_end, "stopping");
                done = true;
                break;
            }
        }
        self.sink.chunk_end();
        if self.read > read_before {
            self.elapsed = self.first_read_at.get_or_insert(arrived).elapsed();
        }
        if self.read - self.reported >= 1024 || done {
            self.context
                .progress
                .fetch_add(self.read - self.reported, Ordering::Relaxed);
            self.reported = self.read;
        }
        done
    }

    /// A slow reader's pause after a message (`--slow email=1h`), cut short by the stop and the
    /// duration, which Ctrl-C must not wait out: true when either came, in the pause or before.
    async fn pause_slow(&mut self, pause: Duration) -> bool {
        let plan = self.context.plan;
        let left = plan
            .duration
            .map(|d| d.saturating_sub(self.started.elapsed()));
        let pause = left.map_or(pause, |left| pause.min(left));
        tokio::select! {
            _ = self.context.stop.stopped() => {}
            _ = tokio::time::sleep(pause) => {}
        }
        self.sink.chunk_start();
        self.context.stop.is_stopped() || plan.duration.is_some_and(|d| self.started.elapsed() >= d)
    }

    /// A named reader stores its offset every `store_every` messages, and at least every
    /// `STORE_INTERVAL`. (A check apart from the store: a future per message costs a fast
    /// reader.)
    fn store_due(&self) -> bool {
        self.context.reader.tracking_name.is_some()
            && (self.unstored >= self.context.plan.store_every
                || self.last_store.elapsed() >= STORE_INTERVAL)
    }

    async fn store_offset(&mut self, offset: u64) {
        let _ = self.subscription.consumer.store_offset(offset).await;
        self.unstored = 0;
        self.last_store = Instant::now();
    }

    /// Closes the lost subscription and subscribes again right after the last offset read,
    /// through any node the plan's broker lists: false when the read is over (the stop came,
    /// or reconnecting failed, which `failure` then holds).
    async fn replace_subscription(&mut self, hangs: bool) -> bool {
        let label = &self.context.reader.label;
        let lost_node = node_of(&self.subscription.consumer);
        let closing =
            tokio::time::timeout(CLOSE_TIMEOUT, self.subscription.consumer.handle().close());
        match hangs {
            // Closed aside: waiting for it would only add the timeout.
            true => drop(tokio::spawn(closing)),
            // Before subscribing again: a single active consumer's group must not see the old
            // one still there.
            false => drop(closing.await),
        }
        // Raced with the stop: reconnecting may go on for all of --retry-for.
        let resubscribed = tokio::select! {
            biased;
            _ = self.context.stop.stopped() => {
                tracing::debug!(reader = %label, "stopping while reconnecting: shutdown signal");
                return false;
            }
            resubscribed = resubscribe(self.context.plan, self.context.reader, self.last_delivered, &lost_node, &self.context.events) => resubscribed,
        };
        match resubscribed {
            Ok((new_env, subscription)) => {
                self._reconnected_env = Some(new_env);
                self.subscription = subscription;
                self.tell_subscribed();
                self.reconnects += 1;
                self.quiet_since = Instant::now();
                true
            }
            Err(e) => {
                self.failure = Some(e);
                false
            }
        }
    }

    /// Counts the rest of the progress, stores where a named reader got to (so `--offset
    /// stored` resumes right after it) and closes the subscription.
    async fn finish(mut self) -> ReadOutcome<S> {
        self.context
            .progress
            .fetch_add(self.read - self.reported, Ordering::Relaxed);
        // Elapsed runs from the first message read to the last, so a reader that waited for a
        // producer, or finished early and then idled until the duration, reports its reading
        // rate; one that read nothing, its wait.
        let waited = match self.first_read_at {
            Some(first) => first.duration_since(self.started),
            None => self.started.elapsed(),
        };
        if self.read == 0 {
            self.elapsed = self.started.elapsed();
        }
        let consumer = &mut self.subscription.consumer;
        if let (Some(_), Some(last)) = (&self.context.reader.tracking_name, self.last_delivered) {
            let _ = consumer.store_offset(last).await;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, consumer.handle().close()).await;
        ReadOutcome {
            sink: self.sink,
            elapsed: self.elapsed,
            waited,
            reconnects: self.reconnects,
            failure: self.failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_stop_at_the_end_and_live_reads_follow() {
        let rule = |start: StartOffset, count, duration, follow| {
            StopRule::new(&start, count, duration, follow)
        };
        assert_eq!(rule(StartOffset::First, None, None, false), StopRule::AtEnd);
        assert_eq!(
            rule(StartOffset::Offset(5), None, None, false),
            StopRule::AtEnd
        );
        assert_eq!(
            rule(StartOffset::Stored, None, None, false),
            StopRule::AtEnd
        );
        assert_eq!(
            rule(StartOffset::First, Some(10), None, false),
            StopRule::Follow
        );
        assert_eq!(
            rule(
                StartOffset::First,
                None,
                Some(Duration::from_secs(1)),
                false
            ),
            StopRule::Follow
        );
        assert_eq!(rule(StartOffset::First, None, None, true), StopRule::Follow);
        assert_eq!(rule(StartOffset::Next, None, None, false), StopRule::Follow);
        assert_eq!(rule(StartOffset::Last, None, None, false), StopRule::Follow);
    }

    #[test]
    fn a_reader_knows_its_start_when_it_is_a_number() {
        let mut spec = ReaderSpec {
            label: "r".into(),
            tracking_name: Some("r".into()),
            slow: None,
            stored: None,
        };
        assert_eq!(spec.start(&StartOffset::Offset(7)), Some(7));
        assert_eq!(spec.start(&StartOffset::Stored), None);
        spec.stored = Some(41);
        assert_eq!(spec.start(&StartOffset::Stored), Some(42));
        assert_eq!(spec.start(&StartOffset::First), None);
    }
}
