//! `invstream consume`: one or many independent readers through the reading engine, each
//! counting, timing (and with `--verify` checking) what it reads; then one summary, with one per
//! reader in a fan-out.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::ReadFrom;
use crate::entry::{MessageView, PRODUCER_PROPERTY};
use crate::error::{ReadError, Result};
use crate::model::{BurstClock, InventoryUpdate};
use crate::reader::{self, MessageSink, ReadPlan, StartOffset, StopRule, SubscribeError, Take};
use crate::report::{MessagePrinter, Output};
use crate::settings::{CommonSettings, ConsumeSettings};
use crate::shutdown::Shutdown;
use crate::stats::{CommandDetails, LatencyHistogram, LatencyKind, RunSummary, Totals};
use crate::verify::SeqCheck;

/// Counts and latencies of what one reader read.
#[derive(Default)]
pub(crate) struct ReadTally {
    delivered: u64,
    messages: u64,
    bytes: u64,
    not_inventory_updates: u64,
    first_offset: Option<u64>,
    last_offset: Option<u64>,
    /// The offset of the first message delivered (whatever `products`).
    first_delivered: Option<u64>,
    /// Where this reader asked to start (0 for `first`), and where to say that the stream holds
    /// no messages there (retention removed them) when the first one delivered is further on.
    asked_start: Option<(u64, Output)>,
    latency: LatencyHistogram,
    /// With `--verify`.
    pub(crate) seq_check: Option<SeqCheck>,
    /// Times this reader lost its connection and subscribed again.
    pub(crate) reconnects: u64,
    /// Read time for latencies.
    clock: BurstClock,
    /// Taken off the end of producer names for `--verify`: a super stream partition's
    /// `-PARTITION`, so the partitions' updates verify together under the run's name.
    pub(crate) producer_suffix: Option<String>,
    /// Only these products count (checked on every message, whatever the broker filtered).
    products: Option<Arc<HashSet<u64>>>,
    /// `--print`: every message read goes to stdout as NDJSON.
    printer: Option<MessagePrinter>,
    /// Why `--print` could not write (a closed stdout ends the run quietly, anything else fails
    /// it).
    print_error: Option<std::io::Error>,
}

impl ReadTally {
    pub(crate) fn new(verify: bool) -> Self {
        ReadTally {
            seq_check: verify.then(SeqCheck::default),
            ..ReadTally::default()
        }
    }

    pub(crate) fn reading(
        verify: bool,
        products: Option<Arc<HashSet<u64>>>,
        printer: Option<MessagePrinter>,
    ) -> Self {
        ReadTally {
            products,
            printer,
            ..ReadTally::new(verify)
        }
    }

    /// Counts a delivered message (its AMQP encoding). Returns `None` if it does not count as
    /// read (it does not match `products`), else `Some` of its `produced_at_us` when it is an
    /// inventory update.
    fn record(&mut self, offset: u64, message: &[u8]) -> Option<Option<u64>> {
        let view = MessageView::parse(message).unwrap_or_default();
        let body = view.body().unwrap_or_default();
        if self.first_delivered.is_none() {
            self.first_delivered = Some(offset);
            self.note_a_later_start(offset);
        }
        self.delivered += 1;
        let update = InventoryUpdate::decode(body);
        if let Some(products) = &self.products {
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
                    // The producer name a message carries (see `entry::PRODUCER_PROPERTY`).
                    let producer = view.string_property(PRODUCER_PROPERTY).unwrap_or_default();
                    let producer = match &self.producer_suffix {
                        Some(suffix) => producer.strip_suffix(suffix.as_str()).unwrap_or(producer),
                        None => producer,
                    };
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

    /// Says so when the first message delivered is past the offset asked for: retention removed
    /// the segments that held it (a `--offset N` or stored offset below the stream's first).
    fn note_a_later_start(&self, first: u64) {
        let Some((asked, out)) = self.asked_start else {
            return;
        };
        if first > asked {
            let verify = match self.seq_check {
                Some(_) => "; --verify checks each producer from the first seq read",
                None => "",
            };
            out.status(&format!(
                "no messages at offsets {asked}…{} (removed by retention, or offset-tracking entries): reading from offset {first}{verify}",
                first - 1
            ));
        }
    }

    pub(crate) fn summary(
        &self,
        stream: &str,
        offset: &StartOffset,
        elapsed: Duration,
    ) -> RunSummary {
        let mut summary = RunSummary::new(
            "consume",
            stream,
            Totals {
                messages: self.messages,
                bytes: self.bytes,
                elapsed,
            },
            LatencyKind::EndToEnd,
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
            .map(|check| SeqCheck::report_parts(&[(check, self.read_whole(offset))]));
        summary
    }

    /// Whether this reader read its stream whole, from offset 0: only then does it hold each
    /// producer's seqs from 0 (a stream that retention truncated starts later, part way).
    pub(crate) fn read_whole(&self, start: &StartOffset) -> bool {
        *start == StartOffset::First && self.first_delivered == Some(0)
    }

    pub(crate) fn merge(&mut self, other: &ReadTally) {
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

impl MessageSink for ReadTally {
    fn chunk_start(&mut self) {
        self.clock.refresh();
    }

    fn take(&mut self, offset: u64, message: &[u8]) -> Take {
        let Some(produced_at_us) = self.record(offset, message) else {
            return Take::Passed;
        };
        if let Some(printer) = &mut self.printer {
            if let Err(e) = printer.print(offset, MessageView::body_of(message), produced_at_us) {
                // The reader of stdout is gone (e.g. `| head`), or it cannot take more (a full
                // disk): nothing left to do either way; `run` tells which.
                self.print_error = Some(e);
                return Take::Stop;
            }
        }
        Take::Counted
    }
}

/// `invstream consume`.
pub async fn run(
    common: &CommonSettings,
    settings: &ConsumeSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let (broker, stream) = (&common.broker, common.stream.as_str());
    let env = broker.connect().await?;
    let mut readers = settings.readers.clone();
    let end_offset = match settings.stop_rule {
        StopRule::AtEnd => {
            broker
                .while_starting(|| broker.stream_end_offset(stream))
                .await?
        }
        StopRule::Follow => None,
    };
    let products: Option<Arc<HashSet<u64>>> = (!settings.products.is_empty())
        .then(|| Arc::new(settings.products.iter().copied().collect()));
    if products.is_some() {
        out.status("--product: the broker skips chunks without these products where messages carry filter values (produce --filter-values); invstream checks every message it gets");
    }
    let mut plan = ReadPlan {
        stream: stream.to_string(),
        start: settings.start.clone(),
        count: settings.count,
        duration: settings.duration,
        end_offset,
        filter_products: products.as_deref().cloned(),
        single_active: settings.single_active,
        prefer_replica: settings.read_from == ReadFrom::Replica,
        store_every: settings.store_every,
        broker: broker.clone(),
        super_stream: None,
    };
    if settings.start == StartOffset::Stored && !settings.single_active {
        for reader in &mut readers {
            let Some(name) = reader.tracking_name.clone() else {
                continue;
            };
            match broker.stored_offset(&name, stream).await? {
                Some(offset) => reader.stored = Some(offset),
                None => {
                    return Err(ReadError::NoStoredOffset {
                        name,
                        stream: stream.to_string(),
                    }
                    .into())
                }
            }
        }
    }

    let readers_total = readers.len() as u64;
    let progress_total = match (settings.count, end_offset, &settings.start) {
        (Some(count), ..) => Some(count * readers_total),
        (None, Some(end), StartOffset::First) => Some((end + 1) * readers_total),
        (None, Some(end), StartOffset::Offset(start)) => {
            Some((end + 1).saturating_sub(*start) * readers_total)
        }
        _ => None,
    };
    let from_timestamp = timestamp_start(&env, broker, settings, stream, end_offset).await?;
    let mut subscriptions = Vec::new();
    let mut idle = Vec::new();
    for spec in readers {
        // A replay that starts past the end (or on an empty stream) has nothing to wait for.
        if past_end(settings, end_offset, &spec, from_timestamp) {
            idle.push((
                spec.label.clone(),
                ReadTally::new(settings.verify),
                Duration::ZERO,
            ));
            continue;
        }
        let subscription = subscribe_first(&env, &mut plan, &spec, out).await?;
        subscriptions.push((spec, subscription));
    }
    if subscriptions.is_empty() {
        out.status(&format!(
            "stream '{stream}' has nothing to read from offset {}",
            settings.start
        ));
        return Ok(aggregate(stream, settings, idle));
    }
    let until = match (settings.stop_rule, end_offset) {
        (StopRule::AtEnd, Some(end)) => format!("up to offset {end}, the end of the stream now"),
        _ if settings.count.is_some() || settings.duration.is_some() => {
            "until --count or --duration".to_string()
        }
        _ => "following new messages; Ctrl-C to stop".to_string(),
    };
    let who = match subscriptions.len() {
        1 => "reading".to_string(),
        n => format!("{n} consumers reading"),
    };
    out.status(&format!(
        "{who} stream '{stream}' from {} ({until})",
        settings.start
    ));

    let plan = Arc::new(plan);
    let starts = subscriptions
        .into_iter()
        .map(|(spec, subscription)| {
            let printer = settings
                .print
                .then(|| MessagePrinter::stdout(plan.end_offset.is_none()));
            let mut sink = ReadTally::reading(settings.verify, products.clone(), printer);
            // (The broker skips chunks without the `--product`s: no note then.)
            let asked = match settings.start {
                _ if products.is_some() => None,
                StartOffset::First => Some(0),
                _ => spec.start(&settings.start),
            };
            sink.asked_start = asked.map(|asked| (asked, out));
            reader::Start {
                plan: plan.clone(),
                spec,
                subscription,
                sink,
            }
        })
        .collect();
    let results = read_all(starts, idle, progress_total, shutdown, out).await?;
    let mut summary = aggregate(stream, settings, results);
    summary.interrupted = shutdown.received().is_some();
    Ok(summary)
}

/// Whether a replay starts past the end of its stream (or the stream is empty): nothing to read.
/// `from_timestamp`: where a replay from a timestamp starts (see [`timestamp_start`]).
pub(crate) fn past_end(
    settings: &ConsumeSettings,
    end_offset: Option<u64>,
    spec: &reader::ReaderSpec,
    from_timestamp: Option<u64>,
) -> bool {
    settings.stop_rule == StopRule::AtEnd
        && match (end_offset, spec.start(&settings.start).or(from_timestamp)) {
            (None, _) => true,
            (Some(end), Some(start)) => start > end,
            _ => false,
        }
}

/// Where a replay from a timestamp (`--offset 2026-11-24T10:00:00Z`) up to `end_offset` starts:
/// the first offset the broker delivers from it, or past the end when it delivers none (the
/// timestamp is after the last message: the broker would wait for new ones, and so the read,
/// forever). `None` for other reads.
pub(crate) async fn timestamp_start(
    env: &rabbitmq_stream_client::Environment,
    broker: &crate::broker::BrokerSettings,
    settings: &ConsumeSettings,
    stream: &str,
    end_offset: Option<u64>,
) -> Result<Option<u64>> {
    let (StartOffset::Timestamp { millis, .. }, StopRule::AtEnd, Some(end)) =
        (&settings.start, settings.stop_rule, end_offset)
    else {
        return Ok(None);
    };
    let first = reader::first_offset_from_timestamp(env, stream, *millis)
        .await
        .map_err(|e| broker.consumer_error(e, stream))?;
    Ok(Some(first.unwrap_or(end + 1)))
}

/// Subscribes a reader, waiting while the broker starts. A broker without stream filtering
/// (RabbitMQ < 3.13) is said once and read unfiltered from then on (`plan.filter_products`
/// cleared; the sink checks every message anyway).
pub(crate) async fn subscribe_first(
    env: &rabbitmq_stream_client::Environment,
    plan: &mut ReadPlan,
    spec: &reader::ReaderSpec,
    out: Output,
) -> Result<reader::Subscription> {
    let (broker, stream) = (&plan.broker, plan.stream.as_str());
    let first = broker
        .while_starting(|| async {
            match reader::subscribe(env, plan, spec, None).await {
                Err(SubscribeError::Create(e)) => Err(broker.consumer_error(e, stream)),
                other => Ok(other),
            }
        })
        .await?;
    match first {
        Ok(subscription) => Ok(subscription),
        Err(SubscribeError::NoFiltering) => {
            out.status("the broker has no stream filtering (RabbitMQ < 3.13): filtering --product in invstream");
            plan.filter_products = None;
            reader::subscribe(env, plan, spec, None)
                .await
                .map_err(|e| e.into_error(&plan.broker, &plan.stream))
        }
        Err(e) => Err(e.into_error(broker, stream)),
    }
}

/// Runs the readers to their end with a progress display (`total` messages, when known);
/// their tallies after `idle`'s, or the run's error (see `tallies`).
pub(crate) async fn read_all(
    starts: Vec<reader::Start<ReadTally>>,
    idle: Vec<(String, ReadTally, Duration)>,
    total: Option<u64>,
    shutdown: &Shutdown,
    out: Output,
) -> Result<Vec<(String, ReadTally, Duration)>> {
    let progress = out.progress(total, "consume");
    let events: reader::ReaderEvents = Arc::new(move |event| out.reader_event(&event));
    let outcomes = reader::spawn_all(starts, shutdown, &events)
        .join(|read| progress.set_position(read))
        .await;
    progress.finish_and_clear();
    tallies(idle, outcomes, out)
}

/// The readers' tallies after `idle` (the readers that had nothing to read), or the run's
/// error: a `--print` that could not write, else the last reader's failure (after saying how
/// much was read before it).
pub(crate) fn tallies(
    idle: Vec<(String, ReadTally, Duration)>,
    outcomes: Vec<(String, reader::ReadOutcome<ReadTally>)>,
    out: Output,
) -> Result<Vec<(String, ReadTally, Duration)>> {
    let mut results = idle;
    let mut last_failure = None;
    let mut print_failure = None;
    for (label, outcome) in outcomes {
        let mut tally = outcome.sink;
        tally.reconnects = outcome.reconnects;
        if let Some(printer) = &mut tally.printer {
            if let Err(e) = printer.flush() {
                tally.print_error.get_or_insert(e);
            }
        }
        if let Some(e) = tally.print_error.take() {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                print_failure.get_or_insert(e);
            }
        }
        last_failure = outcome.failure.or(last_failure);
        results.push((label, tally, outcome.elapsed));
    }
    if let Some(e) = print_failure {
        return Err(crate::error::InvError::Output(format!(
            "cannot write the messages (--print): {e} (is the disk full?)"
        )));
    }
    if let Some(failure) = last_failure {
        // What was read is not what was asked for: say how far it got, then fail.
        let read: u64 = results.iter().map(|(_, tally, _)| tally.messages).sum();
        if read > 0 {
            out.status(&format!("read {read} messages before this error:"));
        }
        return Err(failure);
    }
    Ok(results)
}

/// Sums the readers' tallies into the run's summary; several readers also get their own.
fn aggregate(
    stream: &str,
    settings: &ConsumeSettings,
    results: Vec<(String, ReadTally, Duration)>,
) -> RunSummary {
    let mut total = ReadTally::default();
    let mut elapsed = Duration::ZERO;
    let mut per_reader = Vec::new();
    for (label, tally, reader_elapsed) in &results {
        total.merge(tally);
        elapsed = elapsed.max(*reader_elapsed);
        let mut summary = tally.summary_with_verify(stream, &settings.start, *reader_elapsed);
        summary.consumer = Some(label.clone());
        per_reader.push(summary);
    }
    let mut summary = total.summary(stream, &settings.start, elapsed);
    match per_reader.len() {
        // One reader: its verdict is the run's.
        1 => summary.verify = per_reader.pop().and_then(|reader| reader.verify),
        _ => summary.consumers = per_reader,
    }
    summary
}
