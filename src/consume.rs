//! Reading: one or many independent readers, each subscribing with its own connection at an
//! offset specification, parsing every update, storing its offset when named, and stopping by
//! the rules the user chose (count, duration, end of stream, Ctrl-C).

use std::collections::{HashMap, HashSet};
use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rabbitmq_stream_client::error::ConsumerCreateError;
use rabbitmq_stream_client::types::OffsetSpecification;
use rabbitmq_stream_client::{ChunkConsumer, Environment, FilterConfiguration};
use tokio::sync::watch;

use crate::broker::BrokerSettings;
use crate::cli::{ConsumeArgs, StartOffset};
use crate::entry::MessageView;
use crate::error::{InvError, Result};
use crate::model::{BurstClock, InventoryUpdate};
use crate::produce::PRODUCER_PROPERTY;
use crate::report::{MessagePrinter, Output};
use crate::stats::{CommandDetails, LatencyHistogram, RunSummary, Totals};
use crate::verify::SeqCheck;

/// What `latency_us` means in a consume summary: read time minus `produced_at_us`.
pub const LATENCY_KIND: &str = "end_to_end";

/// With `--product`, the broker skips chunks without those products, so a replay may never see
/// the stream's last offset: after this long without a delivery it is over.
const FILTERED_IDLE_END: Duration = Duration::from_secs(2);

/// A named consumer stores its offset at least this often (and every `--store-every` messages).
const STORE_INTERVAL: Duration = Duration::from_secs(1);

/// When a consume run stops by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRule {
    /// Read up to the last offset the stream had when we started.
    AtEnd,
    /// Keep reading until Ctrl-C, `--count` or `--duration`.
    Follow,
}

impl StopRule {
    /// Without `--count`, `--duration` or `--follow`, a replay (first, an offset, a timestamp,
    /// stored) stops at the stream's current end, while last and next follow new messages.
    pub fn for_args(args: &ConsumeArgs) -> Self {
        let replay = !matches!(args.offset, StartOffset::Last | StartOffset::Next);
        if replay && args.count.is_none() && args.duration.is_none() && !args.follow {
            StopRule::AtEnd
        } else {
            StopRule::Follow
        }
    }
}

/// The broker's offset specification for a start offset; `stored` must have been resolved.
pub fn offset_specification(offset: &StartOffset, stored: Option<u64>) -> OffsetSpecification {
    match (offset, stored) {
        (StartOffset::First, _) => OffsetSpecification::First,
        (StartOffset::Last, _) => OffsetSpecification::Last,
        (StartOffset::Next, _) => OffsetSpecification::Next,
        (StartOffset::Offset(n), _) => OffsetSpecification::Offset(*n),
        (StartOffset::Timestamp { millis, .. }, _) => OffsetSpecification::Timestamp(*millis),
        (StartOffset::Stored, Some(stored)) => OffsetSpecification::Offset(stored + 1),
        (StartOffset::Stored, None) => OffsetSpecification::First,
    }
}

/// Counts and latencies of what one reader read.
#[derive(Default)]
struct ReadTally {
    delivered: u64,
    messages: u64,
    bytes: u64,
    not_inventory_updates: u64,
    first_offset: Option<u64>,
    last_offset: Option<u64>,
    latency: LatencyHistogram,
    /// With `--verify`.
    seq_check: Option<SeqCheck>,
    /// Times this reader lost its connection and subscribed again.
    reconnects: u64,
    /// Read time for latencies.
    clock: BurstClock,
}

impl ReadTally {
    fn new(verify: bool) -> Self {
        ReadTally {
            seq_check: verify.then(SeqCheck::default),
            ..ReadTally::default()
        }
    }

    /// Counts a delivered message (its AMQP encoding). Returns `None` if it does not count as
    /// read (it does not match `products`), else `Some` of its `produced_at_us` when it is an
    /// inventory update.
    fn record(
        &mut self,
        offset: u64,
        message: &[u8],
        products: Option<&HashSet<u64>>,
    ) -> Option<Option<u64>> {
        let view = MessageView::parse(message).unwrap_or_default();
        let body = view.body().unwrap_or_default();
        self.delivered += 1;
        let update = InventoryUpdate::decode(body);
        if let Some(products) = products {
            if !update
                .as_ref()
                .is_some_and(|u| products.contains(&u.product_id))
            {
                return None;
            }
        }
        self.messages += 1;
        self.bytes += body.len() as u64;
        self.first_offset.get_or_insert(offset);
        self.last_offset = Some(offset);
        match update {
            Some(update) => {
                let now_us = self.clock.now_us();
                self.latency
                    .record_us(now_us.saturating_sub(update.produced_at_us));
                if let Some(check) = &mut self.seq_check {
                    // The producer name a message carries (see `produce::PRODUCER_PROPERTY`).
                    let producer = view.string_property(PRODUCER_PROPERTY).unwrap_or_default();
                    check.record(producer, update.seq);
                }
                Some(Some(update.produced_at_us))
            }
            None => {
                self.not_inventory_updates += 1;
                Some(None)
            }
        }
    }

    fn summary(&self, stream: &str, offset: &StartOffset, elapsed: Duration) -> RunSummary {
        let mut summary = RunSummary::new(
            "consume",
            stream,
            Totals {
                messages: self.messages,
                bytes: self.bytes,
                elapsed,
            },
            LATENCY_KIND,
            &self.latency,
            CommandDetails::Consume {
                offset: offset.to_string(),
                first_offset: self.first_offset,
                last_offset: self.last_offset,
                not_inventory_updates: self.not_inventory_updates,
                delivered: self.delivered,
            },
        );
        summary.reconnects = self.reconnects;
        summary
    }

    fn summary_with_verify(
        &self,
        stream: &str,
        offset: &StartOffset,
        elapsed: Duration,
    ) -> RunSummary {
        let mut summary = self.summary(stream, offset, elapsed);
        summary.verify = self
            .seq_check
            .as_ref()
            .map(|check| check.report(*offset == StartOffset::First));
        summary
    }

    fn merge(&mut self, other: &ReadTally) {
        self.delivered += other.delivered;
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.not_inventory_updates += other.not_inventory_updates;
        self.reconnects += other.reconnects;
        self.first_offset = min_some(self.first_offset, other.first_offset);
        self.last_offset = self.last_offset.max(other.last_offset);
        self.latency.merge(&other.latency);
    }
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What every reader of one run shares.
struct ReadPlan {
    stream: String,
    offset: StartOffset,
    count: Option<u64>,
    duration: Option<Duration>,
    end_offset: Option<u64>,
    products: Option<HashSet<u64>>,
    /// Whether the broker filters for `products` (RabbitMQ 3.13+).
    broker_filters: bool,
    single_active: bool,
    store_every: u64,
    verify: bool,
    /// Write every message read to stdout as NDJSON.
    print: bool,
    /// For errors, and for the single-active-consumer callback, which needs its own connection.
    broker: BrokerSettings,
    /// Where reconnects are reported.
    out: Output,
}

/// One reader: a label for reports, the name the broker tracks its offset under, its pace.
struct Reader {
    label: String,
    tracking_name: Option<String>,
    slow: Option<Duration>,
    /// The offset the broker stored for `tracking_name`, for `--offset stored`.
    stored: Option<u64>,
}

impl Reader {
    /// The first offset this reader asks for, when it is known before subscribing.
    fn start(&self, offset: &StartOffset) -> Option<u64> {
        match (offset, self.stored) {
            (StartOffset::Offset(n), _) => Some(*n),
            (StartOffset::Stored, Some(stored)) => Some(stored + 1),
            _ => None,
        }
    }
}

/// mimalloc's `purge_delay` option (its position in `mi_option_t`, in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// A reader frees a chunk buffer of up to several MB every few milliseconds; mimalloc 3 keeps
/// freed memory for 1 s before returning it, so a fast replay held more of them resident the
/// longer it ran (32 MB for 100,000 updates, 62–81 MB for 10,000,000). After 10 ms (mimalloc 2's
/// delay) it stays flat (30 vs 39–43 MB) for ~15% of consume's speed; at 0 ms produce would pay
/// ~40% more CPU, so only `consume` asks for it.
fn return_freed_memory_soon() {
    // SAFETY: sets one of mimalloc's options; any value is valid for this one, at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) }
}

/// `invstream consume`.
pub async fn run(
    broker: &BrokerSettings,
    stream: &str,
    args: &ConsumeArgs,
    out: Output,
) -> Result<RunSummary> {
    return_freed_memory_soon();
    let env = broker.connect().await?;
    let stop_rule = StopRule::for_args(args);
    let mut readers = readers_for(args)?;
    let end_offset = match stop_rule {
        StopRule::AtEnd => {
            broker
                .while_starting(|| broker.stream_end_offset(stream))
                .await?
        }
        StopRule::Follow => None,
    };
    let mut plan = Arc::new(ReadPlan {
        stream: stream.to_string(),
        offset: args.offset.clone(),
        count: args.count,
        duration: args.duration,
        end_offset,
        products: (!args.product.is_empty()).then(|| args.product.iter().copied().collect()),
        broker_filters: !args.product.is_empty(),
        single_active: args.single_active,
        store_every: args.store_every,
        verify: args.verify,
        print: args.print,
        broker: broker.clone(),
        out,
    });
    if args.offset == StartOffset::Stored && !args.single_active {
        for reader in &mut readers {
            let name = reader
                .tracking_name
                .clone()
                .expect("--offset stored requires --name");
            match broker.stored_offset(&name, stream).await? {
                Some(offset) => reader.stored = Some(offset),
                None => {
                    return Err(InvError::NoStoredOffset {
                        name,
                        stream: stream.to_string(),
                    })
                }
            }
        }
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let readers_total = readers.len() as u64;
    let progress_total = match (args.count, end_offset, &args.offset) {
        (Some(count), ..) => Some(count * readers_total),
        (None, Some(end), StartOffset::First) => Some((end + 1) * readers_total),
        (None, Some(end), StartOffset::Offset(start)) => {
            Some((end + 1).saturating_sub(*start) * readers_total)
        }
        _ => None,
    };
    let progress = out.progress(progress_total, "consume");
    let mut tasks = Vec::new();
    let mut idle = Vec::new();
    for reader in readers {
        // A replay that starts past the end (or on an empty stream) has nothing to wait for.
        let past_end = stop_rule == StopRule::AtEnd
            && match (end_offset, reader.start(&args.offset)) {
                (None, _) => true,
                (Some(end), Some(start)) => start > end,
                _ => false,
            };
        if past_end {
            idle.push((
                reader.label.clone(),
                ReadTally::new(plan.verify),
                Duration::ZERO,
            ));
            continue;
        }
        let first_subscription = broker
            .while_starting(|| async {
                match subscribe(&env, &plan, &reader, None).await {
                    Err(SubscribeError::Create(e)) => Err(broker.consumer_error(e, stream)),
                    other => Ok(other),
                }
            })
            .await?;
        let subscription = match first_subscription {
            Ok(subscription) => subscription,
            Err(SubscribeError::NoFiltering) => {
                out.status("the broker has no stream filtering (RabbitMQ < 3.13): filtering --product in invstream");
                Arc::get_mut(&mut plan)
                    .expect("no reader started yet")
                    .broker_filters = false;
                subscribe(&env, &plan, &reader, None)
                    .await
                    .map_err(|e| e.into_error(broker, stream))?
            }
            Err(e) => return Err(e.into_error(broker, stream)),
        };
        let (plan, stop_rx, progress) = (plan.clone(), stop_rx.clone(), progress.clone());
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            let label = reader.label.clone();
            let (tally, elapsed, failure) =
                read(&env, subscription, &plan, &reader, stop_rx, progress).await;
            (label, tally, elapsed, failure)
        }));
    }
    if tasks.is_empty() {
        out.status(&format!(
            "stream '{stream}' has nothing to read from offset {}",
            args.offset
        ));
        return Ok(aggregate(&plan, idle));
    }
    let until = match (stop_rule, end_offset) {
        (StopRule::AtEnd, Some(end)) => format!("up to offset {end}, the end of the stream now"),
        _ if args.count.is_some() || args.duration.is_some() => {
            "until --count or --duration".to_string()
        }
        _ => "following new messages; Ctrl-C to stop".to_string(),
    };
    let who = if tasks.len() > 1 {
        format!("{} consumers reading", tasks.len())
    } else {
        "reading".to_string()
    };
    out.status(&format!(
        "{who} stream '{stream}' from {} ({until})",
        args.offset
    ));

    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let mut results = idle;
    let mut last_failure = None;
    for task in tasks {
        let (label, tally, elapsed, failure) = task.await.expect("a reader task does not panic");
        last_failure = failure.or(last_failure);
        results.push((label, tally, elapsed));
    }
    let interrupted = *stop_rx.borrow();
    interrupt.abort();
    progress.finish_and_clear();

    if let Some(failure) = last_failure {
        // What was read is not what was asked for: say how far it got, then fail.
        let read: u64 = results.iter().map(|(_, tally, _)| tally.messages).sum();
        if read > 0 {
            out.status(&format!("read {read} messages before this error:"));
        }
        return Err(failure);
    }
    let mut summary = aggregate(&plan, results);
    summary.interrupted = interrupted;
    Ok(summary)
}

/// The readers `args` asks for: one, or one per `--consumers` entry, each maybe slowed down.
fn readers_for(args: &ConsumeArgs) -> Result<Vec<Reader>> {
    let labels = match (&args.consumers, &args.name) {
        (Some(labels), _) => labels.0.clone(),
        (None, Some(name)) => vec![name.clone()],
        (None, None) => vec!["consumer".to_string()],
    };
    let slow: HashMap<&str, Duration> = args.slow.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    if let Some(unknown) = slow.keys().find(|n| !labels.iter().any(|l| l == *n)) {
        return Err(InvError::Usage {
            message: format!(
                "--slow names '{unknown}', which is not a consumer: the consumers are {}",
                labels.join(", ")
            ),
        });
    }
    if args.offset == StartOffset::Stored && args.name.is_none() {
        return Err(InvError::Usage {
            message:
                "--offset stored needs --name NAME: the broker stores offsets per consumer name"
                    .to_string(),
        });
    }
    let several = labels.len() > 1 || args.consumers.is_some();
    Ok(labels
        .into_iter()
        .map(|label| Reader {
            // With --consumers, --name is a prefix: each consumer keeps its own offset.
            tracking_name: match (&args.name, several) {
                (Some(name), true) => Some(format!("{name}-{label}")),
                (name, _) => name.clone(),
            },
            slow: slow.get(label.as_str()).copied(),
            stored: None,
            label,
        })
        .collect())
}

/// Sums the readers' tallies into the run's summary; several readers also get their own.
fn aggregate(plan: &ReadPlan, results: Vec<(String, ReadTally, Duration)>) -> RunSummary {
    let mut total = ReadTally::default();
    let mut elapsed = Duration::ZERO;
    let mut per_reader = Vec::new();
    for (label, tally, reader_elapsed) in &results {
        total.merge(tally);
        elapsed = elapsed.max(*reader_elapsed);
        let mut summary = tally.summary_with_verify(&plan.stream, &plan.offset, *reader_elapsed);
        summary.consumer = Some(label.clone());
        per_reader.push(summary);
    }
    let mut summary = total.summary(&plan.stream, &plan.offset, elapsed);
    match per_reader.len() {
        // One reader: its verdict is the run's.
        1 => summary.verify = per_reader.pop().and_then(|reader| reader.verify),
        _ => summary.consumers = per_reader,
    }
    summary
}

enum SubscribeError {
    NoFiltering,
    Create(ConsumerCreateError),
}

impl SubscribeError {
    fn into_error(self, broker: &BrokerSettings, stream: &str) -> InvError {
        match self {
            SubscribeError::NoFiltering => InvError::Client {
                message: "the broker does not support stream filtering".to_string(),
            },
            SubscribeError::Create(e) => broker.consumer_error(e, stream),
        }
    }
}

/// A subscription, and the offset below which deliveries are skipped: delivery is by chunk, so
/// a subscription at offset N (asked for, resumed at, or where a single active consumer takes
/// over) first gets the messages before N in N's chunk.
struct Subscription {
    consumer: ChunkConsumer,
    skip_below: Arc<AtomicU64>,
}

/// Subscribes `reader`: at the plan's offset, or at `resume_at` after a lost connection.
async fn subscribe(
    env: &Environment,
    plan: &ReadPlan,
    reader: &Reader,
    resume_at: Option<u64>,
) -> std::result::Result<Subscription, SubscribeError> {
    let offset = match resume_at {
        Some(next) => OffsetSpecification::Offset(next),
        None => offset_specification(&plan.offset, reader.stored),
    };
    let skip_below = Arc::new(AtomicU64::new(match offset {
        OffsetSpecification::Offset(first) => first,
        _ => 0,
    }));
    let mut builder = env
        .consumer()
        .offset(offset)
        .client_provided_name(&format!("invstream-consumer-{}", reader.label))
        .name_optional(reader.tracking_name.clone());
    if let (Some(products), true) = (&plan.products, plan.broker_filters) {
        let values = products.iter().map(u64::to_string).collect();
        builder = builder.filter_input(Some(FilterConfiguration::new(values, false)));
    }
    if plan.single_active {
        // On activation, resume after the offset the previous active consumer stored. The
        // query needs its own connection: this callback runs inside the consumer's dispatcher.
        let fallback = offset_specification(&plan.offset, None);
        let (stream, broker, skip_below) =
            (plan.stream.clone(), plan.broker.clone(), skip_below.clone());
        builder =
            builder
                .enable_single_active_consumer(true)
                .consumer_update(move |active, context| {
                    let (fallback, stream, broker, skip_below) = (
                        fallback.clone(),
                        stream.clone(),
                        broker.clone(),
                        skip_below.clone(),
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
        }),
        Err(ConsumerCreateError::FilteringNotSupport) => Err(SubscribeError::NoFiltering),
        Err(e) => Err(SubscribeError::Create(e)),
    }
}

/// Subscribes `reader` again after its connection dropped, right after `last_read` (or where
/// it started, if it read nothing yet), retrying with backoff for up to `--retry-for`.
async fn resubscribe(
    env: &Environment,
    plan: &ReadPlan,
    reader: &Reader,
    last_read: Option<u64>,
) -> Result<Subscription> {
    let lost_at = Instant::now();
    plan.out.status(&format!(
        "{}: lost the connection to {}; reconnecting (up to {}, --retry-for)",
        reader.label,
        plan.broker.addr(),
        humantime::format_duration(plan.broker.retry_for)
    ));
    let resume_at = last_read.map(|offset| offset + 1);
    let advice = match (&reader.tracking_name, last_read) {
        (Some(_), Some(_)) => "; run it again with --offset stored to resume",
        _ => "",
    };
    let subscription = plan
        .broker
        .with_retries(lost_at, "reading", advice, || async {
            subscribe(env, plan, reader, resume_at)
                .await
                .map_err(|e| e.into_error(&plan.broker, &plan.stream))
        })
        .await?;
    plan.out.status(&format!(
        "{}: reconnected after {:.1}s; reading on from offset {}",
        reader.label,
        lost_at.elapsed().as_secs_f64(),
        resume_at.map_or_else(|| plan.offset.to_string(), |o| o.to_string())
    ));
    Ok(subscription)
}

/// One reader's loop. Returns what it read, the time from subscribing to its last message (or
/// to the stop), and the error that ended it early, if any.
async fn read(
    env: &Environment,
    subscription: Subscription,
    plan: &ReadPlan,
    reader: &Reader,
    mut stop: watch::Receiver<bool>,
    progress: indicatif::ProgressBar,
) -> (ReadTally, Duration, Option<InvError>) {
    let Subscription {
        mut consumer,
        mut skip_below,
    } = subscription;
    let mut printer = plan
        .print
        .then(|| MessagePrinter::stdout(plan.end_offset.is_none()));
    let mut tally = ReadTally::new(plan.verify);
    let started = Instant::now();
    let mut elapsed = Duration::ZERO;
    let mut deadline = std::pin::pin!(async {
        match plan.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => pending().await,
        }
    });
    let idle_end = plan.end_offset.is_some() && plan.broker_filters;
    let mut unstored = 0u64;
    let mut last_store = Instant::now();
    let mut last_delivered = None;
    let mut failure = None;
    let mut reported = 0u64;
    loop {
        let idle = async {
            match idle_end {
                true => tokio::time::sleep(FILTERED_IDLE_END).await,
                false => pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = async {
                // Only Ctrl-C changes it; if the sender is gone, nothing ever will.
                if stop.changed().await.is_err() {
                    pending::<()>().await;
                }
            } => break,
            _ = &mut deadline => break,
            _ = idle => break,
            chunk = consumer.next() => match chunk {
                Some(Ok(chunk)) => {
                    tally.clock.refresh();
                    let mut done = false;
                    let counted_before = tally.messages;
                    for (offset, message) in chunk.iter() {
                        if offset < skip_below.load(Ordering::Relaxed) {
                            continue;
                        }
                        last_delivered = Some(offset);
                        if let Some(produced_at_us) = tally.record(offset, message, plan.products.as_ref()) {
                            if let Some(printer) = &mut printer {
                                if printer.print(offset, MessageView::body_of(message), produced_at_us).is_err() {
                                    // The reader of stdout is gone (e.g. `| head`): nothing left to do.
                                    done = true;
                                    break;
                                }
                            }
                            if let Some(pause) = reader.slow {
                                tokio::time::sleep(pause).await;
                                tally.clock.refresh();
                                // A slow reader takes long over a chunk: heed Ctrl-C and --duration in it.
                                if *stop.borrow() || plan.duration.is_some_and(|d| started.elapsed() >= d) {
                                    done = true;
                                    break;
                                }
                            }
                        }
                        unstored += 1;
                        if reader.tracking_name.is_some() && (unstored >= plan.store_every || last_store.elapsed() >= STORE_INTERVAL) {
                            let _ = consumer.store_offset(offset).await;
                            unstored = 0;
                            last_store = Instant::now();
                        }
                        let reached_count = plan.count.is_some_and(|c| tally.messages >= c);
                        let reached_end = plan.end_offset.is_some_and(|end| offset >= end);
                        if reached_count || reached_end {
                            done = true;
                            break;
                        }
                    }
                    if tally.messages > counted_before {
                        elapsed = started.elapsed();
                    }
                    if tally.messages - reported >= 1024 || done {
                        progress.inc(tally.messages - reported);
                        reported = tally.messages;
                    }
                    if done {
                        break;
                    }
                }
                Some(Err(e)) if plan.broker.retry_for.is_zero() => {
                    failure = Some(InvError::Client { message: format!("reading stream '{}': {e}", plan.stream) });
                    break;
                }
                None if plan.broker.retry_for.is_zero() => {
                    failure = Some(InvError::ConnectionLost { addr: plan.broker.addr(), during: "reading" });
                    break;
                }
                Some(Err(_)) | None => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), consumer.handle().close()).await;
                    match resubscribe(env, plan, reader, last_delivered).await {
                        Ok(subscription) => {
                            consumer = subscription.consumer;
                            skip_below = subscription.skip_below;
                            tally.reconnects += 1;
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            },
        }
    }
    // Elapsed runs from subscribing to the last message read, so a consumer that finished early
    // and then idled until --duration reports its reading rate; one that read nothing, its wait.
    if tally.messages == 0 {
        elapsed = started.elapsed();
    }
    if let Some(printer) = &mut printer {
        let _ = printer.flush();
    }
    // Where this consumer got to, so `--offset stored` resumes right after it.
    if let (Some(_), Some(last)) = (&reader.tracking_name, last_delivered) {
        let _ = consumer.store_offset(last).await;
    }
    let _ = consumer.handle().close().await;
    (tally, elapsed, failure)
}
