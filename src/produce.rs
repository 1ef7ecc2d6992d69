//! Publishing: the one producer path every source of updates goes through. Batches are handed to
//! the client without waiting for their confirms; a semaphore bounds the unconfirmed messages so
//! memory stays flat, and every confirm is timed into a histogram.

use std::collections::HashMap;
use std::future::{pending, ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rabbitmq_stream_client::error::{ProducerCreateError, ProducerPublishError};
use rabbitmq_stream_client::types::{Message, SimpleValue};
use rabbitmq_stream_client::{
    ConfirmationStatus, Dedup, Environment, NoDedup, Producer, ProducerBuilder,
};
use tokio::sync::{Notify, Semaphore};

use crate::broker::BrokerSettings;
use crate::cli::{ProduceArgs, RetentionArgs};
use crate::error::{InvError, Result};
use crate::input::{spawn_reader, InputEvent, InputSource, NumberedUpdate};
use crate::model::{now_us, InventoryUpdate, UpdateGenerator, CONTENT_TYPE};
use crate::report::Output;
use crate::stats::{CommandDetails, LatencyHistogram, RunSummary, Totals};

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
                Ok((size > 0).then(|| {
                    (0..size)
                        .map(|_| {
                            let update = generator.next_update(now_us());
                            (update.seq + 1, update)
                        })
                        .collect()
                }))
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

/// `invstream produce`: generate `--count` updates (or read `--input`), publish them, wait for
/// every confirm.
pub async fn run(
    broker: &BrokerSettings,
    stream: &str,
    args: &ProduceArgs,
    out: Output,
) -> Result<RunSummary> {
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
        true => broker.last_publishing_id(&producer_name, stream).await?,
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
    };
    let mut publisher = Publisher::open(&env, broker, stream, options).await?;
    let progress = out.progress(total, "produce");
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let mut interrupted = false;
    let mut invalid_lines = 0;
    let mut failure = None;

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
            sent = publisher.send(&batch, args.confirm_timeout) => {
                if let Err(e) = sent {
                    failure = Some(e);
                    break;
                }
            }
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
            publisher.outcome()
        }
    };
    progress.finish_and_clear();
    publisher.close().await;
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
    if broker
        .ensure_stream(stream, stream_arguments(retention))
        .await?
    {
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
    fn settle(&self, confirmed: bool) {
        if !confirmed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
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

/// Confirms as they arrive, shared with the client's confirm callbacks.
#[derive(Default)]
struct ConfirmTracker {
    /// Messages handed to the client.
    sent: AtomicU64,
    confirmed: AtomicU64,
    failed: AtomicU64,
    latency: Mutex<LatencyHistogram>,
    settled: Notify,
}

impl ConfirmTracker {
    /// Records one confirm (or rejection); returns whether the message was confirmed.
    fn settle(
        &self,
        result: &std::result::Result<ConfirmationStatus, ProducerPublishError>,
        sent_at: Instant,
    ) -> bool {
        let confirmed = matches!(result, Ok(status) if status.confirmed());
        if confirmed {
            let latency_us = sent_at.elapsed().as_micros() as u64;
            self.latency
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .record_us(latency_us);
            self.confirmed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.settled.notify_one();
        confirmed
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn settled(&self) -> u64 {
        self.confirmed.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

/// A producer with a bound on unconfirmed messages. Everything that publishes (generated
/// updates, `--input` files and stdin, the HTTP gateway) goes through `send`.
pub struct Publisher {
    producer: AnyProducer,
    max_in_flight: u64,
    producer_name: String,
    filtering: bool,
    in_flight: Arc<Semaphore>,
    tracker: Arc<ConfirmTracker>,
    broker: BrokerSettings,
    stream: String,
    bytes: u64,
    started: Instant,
}

/// What a publisher achieved, ready to become a summary.
pub struct PublishOutcome {
    pub sent: u64,
    pub bytes: u64,
    pub confirmed: u64,
    /// Rejected by the broker, or never confirmed before the timeout.
    pub failed: u64,
    pub elapsed: Duration,
    pub latency: LatencyHistogram,
}

impl PublishOutcome {
    /// `skipped`: updates not sent because the broker already held them (deduplication).
    /// `invalid_lines`: input lines that were not valid updates (not sent).
    pub fn into_summary(self, stream: &str, skipped: u64, invalid_lines: u64) -> RunSummary {
        RunSummary::new(
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
        )
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
}

/// The client's producer type depends on whether it deduplicates; one path serves both.
enum AnyProducer {
    Plain(Producer<NoDedup>),
    Dedup(Producer<Dedup>),
}

impl AnyProducer {
    async fn batch_send<Fut>(
        &mut self,
        messages: Vec<Message>,
        callback: impl Fn(std::result::Result<ConfirmationStatus, ProducerPublishError>) -> Fut
            + Send
            + Sync
            + 'static,
    ) -> std::result::Result<(), ProducerPublishError>
    where
        Fut: std::future::Future<Output = ()> + Send + Sync + 'static,
    {
        match self {
            AnyProducer::Plain(p) => p.batch_send(messages, callback).await,
            AnyProducer::Dedup(p) => p.batch_send(messages, callback).await,
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
        } = options;
        let builder = || {
            env.producer()
                .batch_size(batch_size as usize)
                .client_provided_name("invstream-producer")
        };
        let built = match dedup {
            true => build_producer(|| builder().name(producer_name), filter_values, stream)
                .await
                .map(|(p, f)| (AnyProducer::Dedup(p), f)),
            false => build_producer(builder, filter_values, stream)
                .await
                .map(|(p, f)| (AnyProducer::Plain(p), f)),
        };
        let (producer, filtering) = built.map_err(|e| broker.producer_error(e, stream))?;
        Ok(Publisher {
            max_in_flight,
            filtering,
            producer,
            producer_name: producer_name.to_string(),
            in_flight: Arc::new(Semaphore::new(
                max_in_flight.min(Semaphore::MAX_PERMITS as u64) as usize,
            )),
            tracker: Arc::new(ConfirmTracker::default()),
            broker: broker.clone(),
            stream: stream.to_string(),
            bytes: 0,
            started: Instant::now(),
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

    /// Counters and latencies that can be read while the publisher works (for `/metrics`).
    pub fn stats(&self) -> PublisherStats {
        PublisherStats {
            tracker: self.tracker.clone(),
            max_in_flight: self.max_in_flight,
            in_flight: self.in_flight.clone(),
        }
    }

    /// Hands a batch to the client once the in-flight bound allows it; does not wait for its
    /// confirms, but returns a receipt that resolves when all of them arrived. Fails if the
    /// bound stays full for `stall_timeout` (the broker stopped confirming) or the connection
    /// is gone.
    pub async fn send(
        &mut self,
        updates: &[NumberedUpdate],
        stall_timeout: Duration,
    ) -> Result<BatchReceipt> {
        let messages: Vec<Message> = updates
            .iter()
            .map(|(publishing_id, update)| to_message(update, &self.producer_name, *publishing_id))
            .collect();
        let bytes: u64 = messages
            .iter()
            .map(|m| m.data().map_or(0, |d| d.len() as u64))
            .sum();
        let count = messages.len() as u32;
        let acquire = self.in_flight.clone().acquire_many_owned(count);
        let permits = match tokio::time::timeout(stall_timeout, acquire).await {
            Ok(permits) => permits.expect("the semaphore is never closed"),
            Err(_) => return Err(self.stalled()),
        };
        permits.forget();
        let tracker = self.tracker.clone();
        let in_flight = self.in_flight.clone();
        let (receipt, waiter) = BatchReceipt::new(u64::from(count));
        let sent_at = Instant::now();
        self.producer
            .batch_send(messages, move |result| {
                let confirmed = tracker.settle(&result, sent_at);
                in_flight.add_permits(1);
                waiter.settle(confirmed);
                ready(())
            })
            .await
            .map_err(|e| self.publish_error(e))?;
        self.tracker
            .sent
            .fetch_add(u64::from(count), Ordering::Relaxed);
        self.bytes += bytes;
        Ok(receipt)
    }

    /// Waits up to `timeout` for every sent message to be confirmed or rejected. Messages still
    /// unconfirmed then are counted as failed.
    pub async fn finish(
        &self,
        timeout: Duration,
        progress: &indicatif::ProgressBar,
    ) -> PublishOutcome {
        let deadline = tokio::time::Instant::now() + timeout;
        let sent = self.tracker.sent();
        while self.tracker.settled() < sent {
            progress.set_position(self.confirmed());
            let notified = self.tracker.settled.notified();
            if self.tracker.settled() >= sent {
                break;
            }
            let tick = tokio::time::sleep(Duration::from_millis(100));
            tokio::select! {
                _ = notified => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.outcome()
    }

    /// Closes the producer; confirms that arrive later are ignored.
    pub async fn close(self) {
        self.producer.close().await;
    }

    /// What has been confirmed so far; anything sent and not confirmed counts as failed.
    pub fn outcome(&self) -> PublishOutcome {
        let sent = self.tracker.sent();
        let confirmed = self.confirmed();
        let latency = std::mem::take(
            &mut *self
                .tracker
                .latency
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        PublishOutcome {
            sent,
            bytes: self.bytes,
            confirmed,
            failed: sent - confirmed.min(sent),
            elapsed: self.started.elapsed(),
            latency,
        }
    }

    fn stalled(&self) -> InvError {
        InvError::ConnectionLost {
            addr: self.broker.addr(),
            during: "waiting for publisher confirms (none arrived within the confirm timeout)",
        }
    }

    fn publish_error(&self, error: ProducerPublishError) -> InvError {
        match error {
            ProducerPublishError::Client(e) => self.broker.client_error(e, "publishing"),
            ProducerPublishError::Create { status, .. } => {
                self.broker.refused(&status, "write to", &self.stream)
            }
            _ => InvError::ConnectionLost {
                addr: self.broker.addr(),
                during: "publishing",
            },
        }
    }
}
