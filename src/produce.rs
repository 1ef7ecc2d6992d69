//! Publishing: the one producer path every source of updates goes through. Batches are handed to
//! the client without waiting for their confirms; a semaphore bounds the unconfirmed messages so
//! memory stays flat, and every confirm is timed into a histogram.

use std::collections::HashMap;
use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rabbitmq_stream_client::error::{ProducerCreateError, ProducerPublishError};
use rabbitmq_stream_client::types::{Message, SimpleValue, SubEntryBatch};
use rabbitmq_stream_client::{
    BatchConfirmCallback, Dedup, Environment, NoDedup, Producer, ProducerBuilder,
};
use rustc_hash::FxBuildHasher;
use tokio::sync::{Notify, Semaphore};

use crate::broker::BrokerSettings;
use crate::cli::{ProduceArgs, RetentionArgs, SubEntryArgs};
use crate::entry::{EntryEncoder, WITHOUT_FILTER_VALUES, WITH_FILTER_VALUES};
use crate::error::{InvError, Result};
use crate::input::{spawn_reader, InputEvent, InputSource, NumberedUpdate};
use crate::model::{now_us, InventoryUpdate, UpdateGenerator, CONTENT_TYPE};
use crate::report::Output;
use crate::stats::{CommandDetails, LatencyHistogram, RunSummary, Totals};
use rayon::prelude::*;

/// What `latency_us` means in a produce summary.
pub const LATENCY_KIND: &str = "publish_to_confirm";

/// Where the updates of a produce run come from.
enum UpdateSource {
    /// The generator; `remaining` updates still to make.
    Generated {
        generator: UpdateGenerator,
        remaining: u64,
        batch_size: u64,
    },
    /// The user's NDJSON, read on another thread.
    Input {
        events: tokio::sync::mpsc::Receiver<InputEvent>,
        strict: bool,
    },
}

/// A bad input line is reported on stderr; past this many, they are only counted.
const INVALID_LINES_SHOWN: u64 = 20;

impl UpdateSource {
    /// The next batch of (publishing id, update), or `None` when the source is exhausted.
    /// Invalid input lines are counted in `invalid` and reported (or fatal with --strict).
    async fn next_batch(
        &mut self,
        invalid: &mut u64,
        out: Output,
    ) -> Result<Option<Vec<NumberedUpdate>>> {
        match self {
            UpdateSource::Generated {
                generator,
                remaining,
                batch_size,
            } => {
                let size = (*remaining).min(*batch_size);
                *remaining -= size;
                Ok((size > 0).then(|| generated_batch(generator, size)))
            }
            UpdateSource::Input { events, strict } => loop {
                match events.recv().await {
                    None => return Ok(None),
                    Some(InputEvent::Batch(batch)) => return Ok(Some(batch)),
                    Some(InputEvent::Failed(message)) => return Err(InvError::Input { message }),
                    Some(InputEvent::Invalid { line, reason }) => {
                        if *strict {
                            return Err(InvError::Input {
                                message: format!("line {line} is not a valid inventory update: {reason} (--strict)"),
                            });
                        }
                        *invalid += 1;
                        if *invalid <= INVALID_LINES_SHOWN {
                            out.status(&format!(
                                "line {line} skipped, not a valid inventory update: {reason}"
                            ));
                        }
                    }
                }
            },
        }
    }
}

/// Spaces batches so that at most `per_second` messages go out a second, on average since the
/// first: a batch waits until the messages before it are due.
pub struct Pace {
    started: Instant,
    per_second: f64,
    sent: u64,
}

impl Pace {
    pub fn new(per_second: f64) -> Self {
        Pace {
            started: Instant::now(),
            per_second,
            sent: 0,
        }
    }

    /// Waits until a batch of `count` may go out.
    pub async fn wait_for(&mut self, count: u64) {
        let due = self.started + Duration::from_secs_f64(self.sent as f64 / self.per_second);
        self.sent += count;
        tokio::time::sleep_until(due.into()).await;
    }
}

/// The next `size` generated updates, each under its publishing id `seq + 1`, stamped with
/// one production time (they are made, and sent, together; one clock read per batch).
pub fn generated_batch(generator: &mut UpdateGenerator, size: u64) -> Vec<NumberedUpdate> {
    let produced_at_us = now_us();
    (0..size)
        .map(|_| {
            let update = generator.next_update(produced_at_us);
            (update.seq + 1, update)
        })
        .collect()
}

/// `invstream produce`: generate `--count` updates (or read `--input`), publish them, wait for
/// every confirm.
pub async fn run(
    broker: &BrokerSettings,
    stream: &str,
    args: &ProduceArgs,
    out: Output,
) -> Result<RunSummary> {
    args.batching.check()?;
    let env = connect_and_ensure_stream(broker, stream, &args.retention, out).await?;
    // A batch larger than the in-flight bound could never be admitted.
    let batch_size = args.batch_size.min(args.max_in_flight);
    let input = args.input.as_deref().map(InputSource::parse);
    // Generated updates and each input file get their own producer name: their publishing ids
    // (seq + 1, or the line number) must not collide.
    let producer_name = args.producer_name.clone().unwrap_or_else(|| match &input {
        None => format!("invstream-{stream}"),
        Some(source) => format!("invstream-{stream}-{}", source.label()),
    });
    let dedup = !args.no_dedup;
    // With deduplication, what the broker holds for this name is not sent again: --count is the
    // total for the name, and an input file resumes after its last stored line.
    let already_stored = match dedup {
        true => {
            broker
                .while_starting(|| broker.last_publishing_id(&producer_name, stream))
                .await?
        }
        false => 0,
    };
    let (mut source, skipped, total) = match &input {
        None => {
            let skipped = already_stored.min(args.count);
            let mut generator = UpdateGenerator::new(args.products, args.seed);
            // The same seed regenerates the same updates: skip those already stored.
            for _ in 0..skipped {
                generator.next_update(0);
            }
            let remaining = args.count - skipped;
            let source = UpdateSource::Generated {
                generator,
                remaining,
                batch_size,
            };
            (source, skipped, Some(remaining))
        }
        Some(input) => {
            let events = spawn_reader(input.clone(), already_stored, batch_size as usize);
            let source = UpdateSource::Input {
                events,
                strict: args.strict,
            };
            (source, already_stored, None)
        }
    };
    if skipped > 0 {
        let what = match &input {
            None => format!("sending {} more", args.count - skipped),
            Some(input) => format!("resuming {input} after line {skipped}"),
        };
        out.status(&format!(
            "producer '{producer_name}' already stored {already_stored} updates in '{stream}': {what}"
        ));
    }
    let options = PublisherOptions {
        batch_size,
        max_in_flight: args.max_in_flight,
        filter_values: !args.no_filter_values,
        producer_name: &producer_name,
        dedup,
        batching: args.batching,
        out,
    };
    let mut publisher = Publisher::open(&env, broker, stream, options).await?;
    let what = match &input {
        None => format!("{} updates", args.count - skipped),
        Some(input) => format!("the updates in {input}"),
    };
    out.status(&format!(
        "publishing {what} to stream '{stream}' as producer '{producer_name}'"
    ));
    let progress = out.progress(total, "produce");
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let mut interrupted = false;
    let mut invalid_lines = 0;
    let mut failure = None;
    let mut pace = args.rate.map(|rate| Pace::new(rate as f64));

    loop {
        let batch = tokio::select! {
            biased;
            _ = &mut interrupt => {
                interrupted = true;
                break;
            }
            batch = source.next_batch(&mut invalid_lines, out) => batch,
        };
        let batch = match batch {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        tokio::select! {
            biased;
            _ = &mut interrupt => {
                interrupted = true;
                break;
            }
            _ = async {
                if let Some(pace) = &mut pace {
                    pace.wait_for(batch.len() as u64).await;
                }
                publisher.wait_for_room(batch.len() as u64, args.confirm_timeout).await
            } => {}
        }
        // Not raced with Ctrl-C: a send cut short would leave its batch half handed over.
        if let Err(e) = publisher.send(&batch, args.confirm_timeout).await {
            failure = Some(e);
            break;
        }
        progress.set_position(publisher.confirmed());
    }
    if let Some(failure) = failure {
        // Close explicitly: the client's producer blocks the runtime if dropped unclosed.
        progress.finish_and_clear();
        publisher.close().await;
        return Err(failure);
    }
    if invalid_lines > INVALID_LINES_SHOWN {
        out.status(&format!("{invalid_lines} invalid lines in all"));
    }

    let wait_for_confirms = if interrupted {
        args.confirm_timeout.min(Duration::from_secs(5))
    } else {
        args.confirm_timeout
    };
    let outcome = tokio::select! {
        outcome = publisher.finish(wait_for_confirms, &progress) => outcome,
        _ = async { if interrupted { pending().await } else { (&mut interrupt).await } } => {
            interrupted = true;
            Ok(publisher.outcome())
        }
    };
    progress.finish_and_clear();
    publisher.close().await;
    let outcome = outcome?;
    let mut summary = outcome.into_summary(stream, skipped, invalid_lines);
    summary.interrupted = interrupted;
    Ok(summary)
}

/// Connects and creates the stream if it is missing: the start of every command that publishes.
pub async fn connect_and_ensure_stream(
    broker: &BrokerSettings,
    stream: &str,
    retention: &RetentionArgs,
    out: Output,
) -> Result<Environment> {
    let env = broker.connect().await?;
    let arguments = stream_arguments(retention);
    let created = broker
        .while_starting(|| broker.ensure_stream(stream, arguments.clone()))
        .await?;
    if created {
        out.status(&format!("created stream '{stream}'"));
    }
    Ok(env)
}

/// Stream arguments from the retention options; empty when none was given.
pub fn stream_arguments(retention: &RetentionArgs) -> HashMap<String, String> {
    let mut arguments = HashMap::new();
    if let Some(bytes) = retention.max_length_bytes {
        arguments.insert("max-length-bytes".to_string(), bytes.to_string());
    }
    if let Some(bytes) = retention.max_segment_size_bytes {
        arguments.insert(
            "stream-max-segment-size-bytes".to_string(),
            bytes.to_string(),
        );
    }
    if let Some(age) = retention.max_age {
        arguments.insert("max-age".to_string(), format!("{}s", age.as_secs().max(1)));
    }
    arguments
}

/// Builds the stream message for an update: JSON body, content type, and the application
/// properties consumers filter and route on.
/// Publishing ids start at 1 (the broker reads 0 as "nothing stored yet"): `seq + 1` for
/// generated updates, the line number for input, so a named producer's last stored id is also
/// how many updates (or lines) it has stored.
pub fn to_message(update: &InventoryUpdate, producer: &str, publishing_id: u64) -> Message {
    let mut body = Vec::with_capacity(256);
    update.encode_into(&mut body);
    Message::builder()
        .body(body)
        .publishing_id(publishing_id)
        .properties()
        .content_type(CONTENT_TYPE)
        .message_builder()
        .application_properties()
        .insert("product_id", update.product_id.to_string().as_str())
        .insert("event", update.event.as_str())
        .insert(PRODUCER_PROPERTY, producer)
        .message_builder()
        .build()
}

/// The application property naming the producer of a message: `consume --verify` checks `seq`
/// per producer.
pub const PRODUCER_PROPERTY: &str = "producer";

/// The stream filter value of a message: its `product_id` application property.
pub fn product_filter_value(message: &Message) -> String {
    match message
        .application_properties()
        .and_then(|properties| properties.get("product_id"))
    {
        Some(SimpleValue::String(product_id)) => product_id.clone(),
        _ => String::new(),
    }
}

/// Resolves when every message of one `Publisher::send` was confirmed or rejected: how a
/// caller (an HTTP request) learns that its updates are stored.
pub struct BatchReceipt(tokio::sync::oneshot::Receiver<BatchOutcome>);

/// How one batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub confirmed: u64,
    pub failed: u64,
}

struct BatchWaiter {
    count: u64,
    remaining: AtomicU64,
    failed: AtomicU64,
    done: Mutex<Option<tokio::sync::oneshot::Sender<BatchOutcome>>>,
}

impl BatchReceipt {
    fn new(count: u64) -> (Self, Arc<BatchWaiter>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiter = BatchWaiter {
            count,
            remaining: AtomicU64::new(count),
            failed: AtomicU64::new(0),
            done: Mutex::new(Some(tx)),
        };
        (BatchReceipt(rx), Arc::new(waiter))
    }

    /// The batch's outcome, or `None` if the producer went away before it settled.
    pub async fn settled(self) -> Option<BatchOutcome> {
        self.0.await.ok()
    }
}

impl BatchWaiter {
    /// Counts the broker's answer for `count` of the batch's messages.
    fn settle(&self, confirmed: bool, count: u64) {
        if !confirmed {
            self.failed.fetch_add(count, Ordering::Relaxed);
        }
        if self.remaining.fetch_sub(count, Ordering::AcqRel) == count {
            let failed = self.failed.load(Ordering::Relaxed);
            let outcome = BatchOutcome {
                confirmed: self.count - failed,
                failed,
            };
            if let Some(tx) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(outcome);
            }
        }
    }
}

/// A read-only view of a publisher's counters, usable while it works.
#[derive(Clone)]
pub struct PublisherStats {
    tracker: Arc<ConfirmTracker>,
    in_flight: Arc<Semaphore>,
    max_in_flight: u64,
}

impl PublisherStats {
    /// Messages handed to the broker.
    pub fn sent(&self) -> u64 {
        self.tracker.sent()
    }

    pub fn confirmed(&self) -> u64 {
        self.tracker.confirmed.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.tracker.failed.load(Ordering::Relaxed)
    }

    /// Times the connection was lost and made again.
    pub fn reconnects(&self) -> u64 {
        self.tracker.reconnects.load(Ordering::Relaxed)
    }

    /// Resolves when the publisher's connection is lost (at once if it is now).
    pub async fn lost(&self) {
        let notified = self.tracker.lost_signal.notified();
        if !self.tracker.is_lost() {
            notified.await;
        }
    }

    /// Messages sent and not yet settled.
    pub fn in_flight(&self) -> u64 {
        self.max_in_flight
            .saturating_sub(self.in_flight.available_permits() as u64)
    }

    /// A copy of the publish-to-confirm latencies so far.
    pub fn latency(&self) -> LatencyHistogram {
        self.tracker
            .latency
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// What one publishing id stands for until the broker confirms it: kept so it can be sent
/// again, under the same id, on a new connection.
struct Unconfirmed {
    entry: Entry,
    /// Messages in `entry` (a sub-entry batch counts all of them).
    count: u64,
    sent_at: Instant,
    waiter: Arc<BatchWaiter>,
}

/// One stream entry as handed to the client, written by the publisher itself (no `Message`
/// per update): a simple entry laid out for its publish frame, or a sub-entry batch (one
/// confirm, one map entry and one callback for the whole batch).
#[derive(Clone)]
enum Entry {
    /// Publishing id, filter value (with `version` 2), size and AMQP message.
    Simple {
        version: u16,
        bytes: Vec<u8>,
    },
    Batch(SubEntryBatch),
}

/// An entry about to be sent, with the publishing id it is confirmed under and how many
/// messages it holds.
struct NumberedEntry {
    publishing_id: u64,
    count: u64,
    entry: Entry,
}

/// Confirms as they arrive, shared with the client's confirm callbacks.
#[derive(Default)]
struct ConfirmTracker {
    /// Messages handed to the client (each counted once, however often it is re-sent).
    sent: AtomicU64,
    confirmed: AtomicU64,
    failed: AtomicU64,
    reconnects: AtomicU64,
    latency: Mutex<LatencyHistogram>,
    settled: Notify,
    /// By publishing id (FxHash: ids are mostly sequential, and SipHash costs more on this
    /// per-message path). A confirm settles a message only if it is still here, so a confirm
    /// from a connection given up on cannot count twice.
    unconfirmed: Mutex<HashMap<u64, Unconfirmed, FxBuildHasher>>,
    /// Set when the producer's connection closed; cleared by a reconnect.
    lost: std::sync::atomic::AtomicBool,
    lost_signal: Notify,
    /// Numbers the producer's connections; only the current one may report a loss.
    connection: AtomicU64,
}

impl ConfirmTracker {
    /// Records the broker's answer for publishing ids (each a message, or a whole sub-entry
    /// batch), all those of one confirm frame at once; anything not ours (already settled) is
    /// ignored.
    fn settle(&self, publishing_ids: &[u64], confirmed: bool, in_flight: &Semaphore) {
        let entries: Vec<Unconfirmed> = {
            let mut unconfirmed = self.lock_unconfirmed();
            publishing_ids
                .iter()
                .filter_map(|id| unconfirmed.remove(id))
                .collect()
        };
        if entries.is_empty() {
            return;
        }
        let count: u64 = entries.iter().map(|entry| entry.count).sum();
        if confirmed {
            let now = Instant::now();
            let mut latency = self
                .latency
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for entry in &entries {
                let latency_us = now.duration_since(entry.sent_at).as_micros() as u64;
                latency.record_n_us(latency_us, entry.count);
            }
            drop(latency);
            self.confirmed.fetch_add(count, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(count, Ordering::Relaxed);
        }
        in_flight.add_permits(count as usize);
        for entry in entries {
            entry.waiter.settle(confirmed, entry.count);
        }
        self.settled.notify_one();
    }

    fn lock_unconfirmed(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, Unconfirmed, FxBuildHasher>> {
        self.unconfirmed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn mark_lost(&self) {
        self.lost.store(true, Ordering::Relaxed);
        self.lost_signal.notify_waiters();
        self.settled.notify_one();
    }

    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn settled(&self) -> u64 {
        self.confirmed.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
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

/// A producer with a bound on unconfirmed messages that survives lost connections. Everything
/// that publishes (generated updates, `--input` files and stdin, the HTTP gateway) goes through
/// `send`.
pub struct Publisher {
    /// `None` only while a lost connection is being replaced.
    producer: Option<AnyProducer>,
    recipe: ProducerRecipe,
    max_in_flight: u64,
    filtering: bool,
    in_flight: Arc<Semaphore>,
    tracker: Arc<ConfirmTracker>,
    out: Output,
    bytes: u64,
    started: Instant,
    /// Writes sub-entry batches without a `Message` per update.
    encoder: EntryEncoder,
}

/// Everything needed to make the client's producer again after a lost connection.
struct ProducerRecipe {
    env: Environment,
    broker: BrokerSettings,
    stream: String,
    batch_size: u64,
    producer_name: String,
    dedup: bool,
    filter_values: bool,
    batching: SubEntryArgs,
}

impl ProducerRecipe {
    /// A producer on a new connection, under this publisher's name, and whether it tags
    /// messages with filter values.
    async fn build(&self, tracker: &Arc<ConfirmTracker>) -> Result<(AnyProducer, bool)> {
        let builder = || {
            // Sub-entry batches are built by the publisher (`Entry::Batch`), not the client.
            self.env
                .producer()
                .batch_size(self.batch_size as usize)
                .client_provided_name("invstream-producer")
                .on_closed(Box::new(ConnectionWatch {
                    tracker: tracker.clone(),
                    connection: tracker.connection.load(Ordering::Relaxed),
                }))
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

/// What a publisher achieved, ready to become a summary.
pub struct PublishOutcome {
    pub sent: u64,
    pub bytes: u64,
    pub confirmed: u64,
    /// Rejected by the broker, or never confirmed before the timeout.
    pub failed: u64,
    pub reconnects: u64,
    pub elapsed: Duration,
    pub latency: LatencyHistogram,
}

impl PublishOutcome {
    /// `skipped`: updates not sent because the broker already held them (deduplication).
    /// `invalid_lines`: input lines that were not valid updates (not sent).
    pub fn into_summary(self, stream: &str, skipped: u64, invalid_lines: u64) -> RunSummary {
        let mut summary = RunSummary::new(
            "produce",
            stream,
            Totals {
                messages: self.sent,
                bytes: self.bytes,
                elapsed: self.elapsed,
            },
            LATENCY_KIND,
            &self.latency,
            CommandDetails::Produce {
                confirmed: self.confirmed,
                failed: self.failed,
                skipped,
                invalid_lines,
            },
        );
        summary.reconnects = self.reconnects;
        summary
    }
}

/// How a `Publisher` batches and bounds its messages.
#[derive(Debug, Clone, Copy)]
pub struct PublisherOptions<'a> {
    /// Messages per publish frame.
    pub batch_size: u64,
    /// Most messages sent and not yet confirmed.
    pub max_in_flight: u64,
    /// Tag every message with its product id as the stream filter value.
    pub filter_values: bool,
    /// With `dedup`, the name the broker deduplicates this producer's publishing ids under.
    pub producer_name: &'a str,
    /// Let the broker drop messages whose publishing id it already stored for `producer_name`.
    pub dedup: bool,
    /// Sub-entry batching and its compression.
    pub batching: SubEntryArgs,
    /// Where reconnects are reported.
    pub out: Output,
}

/// The client's producer type depends on whether it deduplicates; one path serves both.
enum AnyProducer {
    Plain(Producer<NoDedup>),
    Dedup(Producer<Dedup>),
}

impl AnyProducer {
    async fn send_encoded_entries(
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

    async fn send_sub_entry_batches(
        &self,
        batches: Vec<SubEntryBatch>,
        on_confirm: BatchConfirmCallback,
    ) -> std::result::Result<(), ProducerPublishError> {
        match self {
            AnyProducer::Plain(p) => p.send_sub_entry_batches(batches, on_confirm).await,
            AnyProducer::Dedup(p) => p.send_sub_entry_batches(batches, on_confirm).await,
        }
    }

    async fn close(self) {
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

/// How long closing a producer whose connection is gone may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

impl Publisher {
    /// Opens a producer. With `filter_values` it tags every message with its product id as the
    /// stream filter value (RabbitMQ 3.13+), so consumers of a few products get only the chunks
    /// holding them; on an older broker it publishes without, and `filtering()` says false.
    pub async fn open(
        env: &Environment,
        broker: &BrokerSettings,
        stream: &str,
        options: PublisherOptions<'_>,
    ) -> Result<Self> {
        let PublisherOptions {
            batch_size,
            max_in_flight,
            filter_values,
            producer_name,
            dedup,
            batching,
            out,
        } = options;
        let recipe = ProducerRecipe {
            env: env.clone(),
            broker: broker.clone(),
            stream: stream.to_string(),
            batch_size,
            producer_name: producer_name.to_string(),
            dedup,
            // Sub-entries carry no filter values.
            filter_values: filter_values && batching.sub_entry_size == 1,
            batching,
        };
        let tracker = Arc::new(ConfirmTracker::default());
        let (producer, filtering) = broker.while_starting(|| recipe.build(&tracker)).await?;
        Ok(Publisher {
            producer: Some(producer),
            recipe,
            max_in_flight,
            filtering,
            in_flight: Arc::new(Semaphore::new(
                max_in_flight.min(Semaphore::MAX_PERMITS as u64) as usize,
            )),
            tracker,
            out,
            bytes: 0,
            started: Instant::now(),
            encoder: EntryEncoder::default(),
        })
    }

    /// Whether messages carry filter values (the broker supports stream filtering).
    pub fn filtering(&self) -> bool {
        self.filtering
    }

    pub fn confirmed(&self) -> u64 {
        self.tracker.confirmed.load(Ordering::Relaxed)
    }

    /// Whether `count` more messages fit under the in-flight bound right now.
    pub fn has_room(&self, count: u64) -> bool {
        self.in_flight.available_permits() as u64 >= count
    }

    /// Resolves when the connection is lost (at once if it already is).
    pub async fn lost(&self) {
        self.stats().lost().await
    }

    /// Counters and latencies that can be read while the publisher works (for `/metrics`).
    pub fn stats(&self) -> PublisherStats {
        PublisherStats {
            tracker: self.tracker.clone(),
            max_in_flight: self.max_in_flight,
            in_flight: self.in_flight.clone(),
        }
    }

    /// Waits until `count` more messages fit under the in-flight bound, the connection is lost,
    /// or `timeout` passes. Unlike `send`, it may be cancelled (raced with Ctrl-C).
    pub async fn wait_for_room(&self, count: u64, timeout: Duration) {
        let room = self
            .in_flight
            .acquire_many(count.min(u64::from(u32::MAX)) as u32);
        tokio::select! {
            _ = tokio::time::timeout(timeout, room) => {}
            _ = self.lost() => {}
        }
    }

    /// Hands a batch to the client once the in-flight bound allows it; does not wait for its
    /// confirms, but returns a receipt that resolves when all of them arrived. If the
    /// connection drops, it reconnects (see `recover`); fails if the bound stays full for
    /// `stall_timeout` and no new connection helps, or `--retry-for` runs out.
    /// Run it to completion: cancelled half-way, part of the batch may be neither sent nor
    /// failed.
    pub async fn send(
        &mut self,
        updates: &[NumberedUpdate],
        stall_timeout: Duration,
    ) -> Result<BatchReceipt> {
        if self.tracker.is_lost() {
            self.recover().await?;
        }
        let (entries, bytes) = self.entries(updates)?;
        let count = updates.len() as u32;
        loop {
            let acquire = self.in_flight.clone().acquire_many_owned(count);
            tokio::select! {
                acquired = tokio::time::timeout(stall_timeout, acquire) => match acquired {
                    Ok(permits) => {
                        permits.expect("the semaphore is never closed").forget();
                        break;
                    }
                    // No confirm for a whole timeout: the connection may be dead without
                    // the client noticing. A new one re-sends what is unconfirmed.
                    Err(_) if !self.recipe.broker.retry_for.is_zero() => {
                        self.out.status("no confirm within the confirm timeout: reconnecting");
                        self.tracker.mark_lost();
                        self.recover().await?;
                    }
                    Err(_) => return Err(self.stalled()),
                },
                _ = self.lost() => self.recover().await?,
            }
        }
        let (receipt, waiter) = BatchReceipt::new(u64::from(count));
        let sent_at = Instant::now();
        {
            let mut unconfirmed = self.tracker.lock_unconfirmed();
            for numbered in &entries {
                let entry = Unconfirmed {
                    entry: numbered.entry.clone(),
                    count: numbered.count,
                    sent_at,
                    waiter: waiter.clone(),
                };
                unconfirmed.insert(numbered.publishing_id, entry);
            }
        }
        self.tracker
            .sent
            .fetch_add(u64::from(count), Ordering::Relaxed);
        self.bytes += bytes;
        let entries = entries
            .into_iter()
            .map(|numbered| (numbered.publishing_id, numbered.entry))
            .collect();
        if let Err(e) = self.hand_over(entries).await {
            // Kept as unconfirmed: a new connection sends them again.
            self.tracker.mark_lost();
            if self.recipe.broker.retry_for.is_zero() {
                return Err(e);
            }
            self.recover().await?;
        }
        Ok(receipt)
    }

    /// The stream entries for `updates`, each with its publishing id and message count, and
    /// the bytes of their bodies: a message per update, or sub-entry batches of
    /// `--sub-entry-size` written straight from the updates.
    fn entries(&mut self, updates: &[NumberedUpdate]) -> Result<(Vec<NumberedEntry>, u64)> {
        let producer = self.recipe.producer_name.as_str();
        let batching = self.recipe.batching;
        if batching.sub_entry_size <= 1 {
            let version = match self.filtering {
                true => WITH_FILTER_VALUES,
                false => WITHOUT_FILTER_VALUES,
            };
            let mut bytes = 0;
            let entries = updates
                .iter()
                .map(|numbered| {
                    let mut entry = Vec::with_capacity(320);
                    bytes += self
                        .encoder
                        .append_simple_entry(numbered, producer, version, &mut entry)
                        as u64;
                    NumberedEntry {
                        publishing_id: numbered.0,
                        count: 1,
                        entry: Entry::Simple {
                            version,
                            bytes: entry,
                        },
                    }
                })
                .collect();
            return Ok((entries, bytes));
        }
        // The batches are independent, and compressing them is most of the work: they are built
        // on every core (in order, so publishing ids still go out ascending).
        let codec = batching.compression.codec();
        let built: Vec<_> = updates
            .par_chunks(batching.sub_entry_size as usize)
            .map_init(EntryEncoder::default, |encoder, group| {
                encoder
                    .sub_entry_batch(group, producer, codec)
                    .map(|(batch, body_bytes)| (batch, group.len() as u64, body_bytes))
            })
            .collect::<std::io::Result<_>>()
            .map_err(|e| InvError::Compression(e.to_string()))?;
        let bytes = built.iter().map(|(_, _, body_bytes)| body_bytes).sum();
        let entries = built
            .into_iter()
            .map(|(batch, count, _)| NumberedEntry {
                publishing_id: batch.publishing_id,
                count,
                entry: Entry::Batch(batch),
            })
            .collect();
        Ok((entries, bytes))
    }

    /// Gives entries (with their publishing ids) to the client's producer in one frame; their
    /// confirms settle them in the tracker.
    async fn hand_over(&self, entries: Vec<(u64, Entry)>) -> Result<()> {
        let (tracker, in_flight) = (self.tracker.clone(), self.in_flight.clone());
        let on_confirm: BatchConfirmCallback = Arc::new(move |ids, confirmed| {
            tracker.settle(ids, confirmed, &in_flight);
        });
        let producer = self
            .producer
            .as_ref()
            .expect("a producer exists outside recover");
        // A frame has one layout: entries encoded for another one (before a reconnect to a
        // broker without filtering) go in a frame of their own.
        let mut batches = Vec::new();
        let mut frame: Option<(u16, Vec<u64>, Vec<u8>)> = None;
        for (id, entry) in entries {
            match entry {
                Entry::Batch(batch) => batches.push(batch),
                Entry::Simple { version, bytes } => {
                    if frame.as_ref().is_some_and(|(v, ..)| *v != version) {
                        let (v, ids, data) = frame.take().expect("checked above");
                        producer
                            .send_encoded_entries(&ids, data, v, on_confirm.clone())
                            .await
                            .map_err(|e| self.publish_error(e))?;
                    }
                    let (_, ids, data) = frame.get_or_insert_with(|| (version, vec![], vec![]));
                    ids.push(id);
                    data.extend_from_slice(&bytes);
                }
            }
        }
        if let Some((version, ids, data)) = frame {
            producer
                .send_encoded_entries(&ids, data, version, on_confirm.clone())
                .await
                .map_err(|e| self.publish_error(e))?;
        }
        if !batches.is_empty() {
            producer
                .send_sub_entry_batches(batches, on_confirm)
                .await
                .map_err(|e| self.publish_error(e))?;
        }
        Ok(())
    }

    /// Replaces a lost connection: reconnects with backoff for up to `--retry-for`, then sends
    /// every unconfirmed message again under its publishing id. With deduplication the broker
    /// drops those it had already stored; without it they may be stored twice.
    pub async fn recover(&mut self) -> Result<()> {
        if self.recipe.broker.retry_for.is_zero() {
            return Err(InvError::ConnectionLost {
                addr: self.recipe.broker.addr(),
                during: "publishing (--retry-for 0s: not reconnecting)",
            });
        }
        let lost_at = Instant::now();
        loop {
            self.tracker.connection.fetch_add(1, Ordering::Relaxed);
            if let Some(old) = self.producer.take() {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, old.close()).await;
            }
            self.out.status(&format!(
                "lost the connection to {}; reconnecting (up to {}, --retry-for)",
                self.recipe.broker.addr(),
                humantime::format_duration(self.recipe.broker.retry_for)
            ));
            let advice = format!(
                "; {} of {} confirmed: run the same command again to send the rest",
                self.confirmed(),
                self.tracker.sent()
            );
            // The window runs from the loss, across every attempt of this loop.
            let (recipe, tracker) = (&self.recipe, &self.tracker);
            let (producer, filtering) = recipe
                .broker
                .with_retries(lost_at, "publishing", &advice, || recipe.build(tracker))
                .await?;
            self.producer = Some(producer);
            self.filtering = filtering;
            self.tracker.lost.store(false, Ordering::Relaxed);
            self.tracker.reconnects.fetch_add(1, Ordering::Relaxed);
            if self.recipe.dedup {
                self.settle_stored().await;
            }
            let mut resend: Vec<(u64, Entry)> = self
                .tracker
                .lock_unconfirmed()
                .iter()
                .map(|(id, unconfirmed)| (*id, unconfirmed.entry.clone()))
                .collect();
            resend.sort_unstable_by_key(|(id, _)| *id);
            let per_frame = self.recipe.batch_size / self.recipe.batching.sub_entry_size.max(1);
            let note = match self.recipe.dedup {
                true => "the broker drops any it already stored",
                false => "without deduplication some may be stored twice",
            };
            self.out.status(&format!(
                "reconnected after {:.1}s; re-sending {} unconfirmed entries ({note})",
                lost_at.elapsed().as_secs_f64(),
                resend.len()
            ));
            let mut failed = false;
            for chunk in resend.chunks(per_frame.max(1) as usize) {
                let entries = chunk.to_vec();
                if self.hand_over(entries).await.is_err() {
                    failed = true;
                    break;
                }
            }
            if !failed {
                return Ok(());
            }
            self.tracker.mark_lost();
        }
    }

    /// Counts as confirmed the unconfirmed messages the broker says it stored (their publishing
    /// ids are at most its last one for our name): only the rest are sent again. A sub-entry
    /// batch is re-sent as it was first built, so it is stored whole or not at all.
    async fn settle_stored(&self) {
        let recipe = &self.recipe;
        let Ok(stored) = recipe
            .broker
            .last_publishing_id(&recipe.producer_name, &recipe.stream)
            .await
        else {
            return;
        };
        let ids: Vec<u64> = self
            .tracker
            .lock_unconfirmed()
            .keys()
            .copied()
            .filter(|id| *id <= stored)
            .collect();
        self.tracker.settle(&ids, true, &self.in_flight);
    }

    /// Waits up to `timeout` for every sent message to be confirmed or rejected, reconnecting
    /// if the connection drops. Messages still unconfirmed then are counted as failed.
    pub async fn finish(
        &mut self,
        timeout: Duration,
        progress: &indicatif::ProgressBar,
    ) -> Result<PublishOutcome> {
        let mut deadline = tokio::time::Instant::now() + timeout;
        let sent = self.tracker.sent();
        while self.tracker.settled() < sent {
            progress.set_position(self.confirmed());
            if self.tracker.is_lost() {
                self.recover().await?;
                deadline = tokio::time::Instant::now() + timeout;
            }
            let notified = self.tracker.settled.notified();
            if self.tracker.settled() >= sent || self.tracker.is_lost() {
                continue;
            }
            let tick = tokio::time::sleep(Duration::from_millis(100));
            tokio::select! {
                _ = notified => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        Ok(self.outcome())
    }

    /// Closes the producer; confirms that arrive later are ignored.
    pub async fn close(mut self) {
        self.tracker.connection.fetch_add(1, Ordering::Relaxed);
        if let Some(producer) = self.producer.take() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, producer.close()).await;
        }
    }

    /// What has been confirmed so far; anything sent and not confirmed counts as failed.
    pub fn outcome(&self) -> PublishOutcome {
        let sent = self.tracker.sent();
        let confirmed = self.confirmed();
        let latency = self
            .tracker
            .latency
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        PublishOutcome {
            sent,
            bytes: self.bytes,
            confirmed,
            failed: sent - confirmed.min(sent),
            reconnects: self.tracker.reconnects.load(Ordering::Relaxed),
            elapsed: self.started.elapsed(),
            latency,
        }
    }

    fn stalled(&self) -> InvError {
        InvError::ConnectionLost {
            addr: self.recipe.broker.addr(),
            during: "waiting for publisher confirms (none arrived within the confirm timeout)",
        }
    }

    fn publish_error(&self, error: ProducerPublishError) -> InvError {
        match error {
            ProducerPublishError::Client(e) => self.recipe.broker.client_error(e, "publishing"),
            ProducerPublishError::Create { status, .. } => {
                self.recipe
                    .broker
                    .refused(&status, "write to", &self.recipe.stream)
            }
            _ => InvError::ConnectionLost {
                addr: self.recipe.broker.addr(),
                during: "publishing",
            },
        }
    }
}
