//! `invstream bench`: producers and consumers at once on a stream of their own, the way
//! RabbitMQ's stream-perf-test works: a line per second on stderr (published, confirmed and
//! consumed per second, confirm and end-to-end latency), then one summary. Producers go through
//! the same `Publisher` as `produce`; consumers parse every update as `consume` does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rabbitmq_stream_client::types::OffsetSpecification;
use rabbitmq_stream_client::Environment;

use crate::broker::BrokerSettings;
use crate::cli::{BenchArgs, RetentionArgs};
use crate::entry::MessageView;
use crate::error::Result;
use crate::model::{now_us, BurstClock, InventoryUpdate, UpdateGenerator};
use crate::plot::{write_hdr_log, write_plot, LoggedInterval};
use crate::produce::{
    connect_and_ensure_stream, generated_batch, Pace, PublishOutcome, Publisher, PublisherOptions,
};
use crate::report::{thousands, Output};
use crate::stats::{BenchSecond, CommandDetails, LatencyHistogram, RunSummary, Totals};

/// After the producers finish, consumers get this long to read what is left.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the reporter checks whether the run is over between its once-a-second lines.
const FINISH_POLL: Duration = Duration::from_millis(50);

/// A consumer folds its latencies into the shared histograms every this many messages.
const CONSUMER_FLUSH: u64 = 512;

/// What the consumers share with the reporter.
#[derive(Default)]
struct ConsumerStats {
    consumed: AtomicU64,
    end_to_end: Mutex<LatencyHistogram>,
    stop: AtomicBool,
}

impl ConsumerStats {
    fn end_to_end(&self) -> LatencyHistogram {
        self.end_to_end
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// `invstream bench`.
pub async fn run(
    broker: &BrokerSettings,
    stream: &str,
    args: &BenchArgs,
    out: Output,
) -> Result<RunSummary> {
    args.batching.check()?;
    let bench_stream = format!(
        "{stream}-bench-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let env =
        connect_and_ensure_stream(broker, &bench_stream, &RetentionArgs::default(), out).await?;
    let outcome = bench(&env, broker, &bench_stream, args, out).await;
    if !args.keep_stream {
        let _ = env.delete_stream(&bench_stream).await;
    }
    outcome
}

async fn bench(
    env: &Environment,
    broker: &BrokerSettings,
    stream: &str,
    args: &BenchArgs,
    out: Output,
) -> Result<RunSummary> {
    let consumer_stats = Arc::new(ConsumerStats::default());
    let mut consumers = Vec::new();
    for index in 0..args.consumers {
        let consumer = env
            .consumer()
            .offset(OffsetSpecification::First)
            .client_provided_name(&format!("invstream-bench-consumer-{index}"))
            .build_chunked(stream)
            .await
            .map_err(|e| broker.consumer_error(e, stream))?;
        consumers.push(tokio::spawn(read(consumer, consumer_stats.clone())));
    }

    let mut publishers = Vec::new();
    for index in 0..args.producers {
        let name = format!("invstream-bench-{index}");
        let options = PublisherOptions {
            batch_size: args.batch_size.min(args.max_in_flight),
            max_in_flight: args.max_in_flight,
            filter_values: !args.no_filter_values,
            producer_name: &name,
            dedup: false,
            batching: args.batching,
            out,
        };
        publishers.push(Publisher::open(env, broker, stream, options).await?);
    }
    let stats: Vec<_> = publishers.iter().map(Publisher::stats).collect();
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let per_producer_rate = args
        .rate
        .map(|r| (r as f64 / args.producers as f64).max(1.0));
    out.status(&format!(
        "bench on stream '{stream}': {} producers, {} consumers, {}",
        args.producers,
        args.consumers,
        match args.duration {
            Some(d) => format!("for {}", humantime::format_duration(d)),
            None => format!("{} messages", thousands(args.count)),
        }
    ));
    let mut producers = Vec::new();
    for (index, publisher) in publishers.into_iter().enumerate() {
        let index = index as u64;
        // The first producers take the remainder of an uneven split.
        let count = args.count / args.producers + u64::from(index < args.count % args.producers);
        let plan = ProducerPlan {
            count,
            deadline,
            rate: per_producer_rate,
            batch_size: args.batch_size.min(args.max_in_flight),
            pad: padding(args.message_size),
            seed: index + 1,
        };
        producers.push(tokio::spawn(publish(publisher, plan)));
    }

    // One line per second until the producers are done and the consumers caught up.
    let mut timeline = Vec::new();
    let mut intervals = Vec::new();
    let started_at = std::time::SystemTime::now();
    let mut previous = Sample::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut producers_done_at = None;
    loop {
        // A sample each second, and a last one as soon as the run is over (over its real,
        // shorter span: a run ending 0.3 s into a second must not look like a slow second).
        let on_tick = tokio::select! {
            _ = tick.tick() => true,
            _ = tokio::time::sleep(FINISH_POLL) => false,
        };
        let all_published = producers.iter().all(|p| p.is_finished());
        if all_published && producers_done_at.is_none() {
            producers_done_at = Some(Instant::now());
        }
        let confirmed: u64 = stats.iter().map(|s| s.confirmed()).sum();
        let caught_up =
            consumer_stats.consumed.load(Ordering::Relaxed) >= confirmed * args.consumers;
        let drained = producers_done_at.is_some_and(|t| caught_up || t.elapsed() > DRAIN_TIMEOUT);
        let over = all_published && drained;
        if !on_tick && !over {
            continue;
        }
        let sample = Sample::take(&stats, &consumer_stats, started.elapsed());
        let (second, confirm, end_to_end) = sample.since(&previous);
        out.status(&second_line(&second));
        timeline.push(second);
        intervals.push((previous.at, sample.at - previous.at, confirm, end_to_end));
        previous = sample;
        if over {
            break;
        }
    }
    // Consumers are done when they caught up, at the latest at this sample.
    let consume_elapsed = started.elapsed().as_secs_f64().max(f64::EPSILON);
    consumer_stats.stop.store(true, Ordering::Relaxed);
    let mut confirm_latency = LatencyHistogram::new();
    let (mut sent, mut confirmed, mut failed, mut bytes) = (0, 0, 0, 0);
    // Publishing took as long as the slowest producer, from its start to its last confirm.
    let mut elapsed = Duration::ZERO;
    for producer in producers {
        let outcome = producer.await.expect("a producer task does not panic")?;
        sent += outcome.sent;
        confirmed += outcome.confirmed;
        failed += outcome.failed;
        bytes += outcome.bytes;
        elapsed = elapsed.max(outcome.elapsed);
        confirm_latency.merge(&outcome.latency);
    }
    for consumer in consumers {
        let _ = consumer.await;
    }
    let consumed = consumer_stats.consumed.load(Ordering::Relaxed);
    let end_to_end = consumer_stats.end_to_end();
    if let Some(path) = &args.hdr_log {
        let logged: Vec<LoggedInterval> = intervals
            .iter()
            .flat_map(|(start, length, confirm, end_to_end)| {
                [("confirm", confirm), ("end_to_end", end_to_end)].map(|(tag, histogram)| {
                    LoggedInterval {
                        start: *start,
                        length: *length,
                        tag,
                        histogram,
                    }
                })
            })
            .collect();
        write_hdr_log(path, started_at, &logged)?;
        out.status(&format!("wrote {}", path.display()));
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "invstream bench: {} producers, {} consumers, {} messages",
            args.producers,
            args.consumers,
            thousands(sent)
        );
        write_plot(path, &title, &timeline, &confirm_latency, &end_to_end)?;
        out.status(&format!("wrote {}", path.display()));
    }
    Ok(RunSummary::new(
        "bench",
        stream,
        Totals {
            messages: sent,
            bytes,
            elapsed,
        },
        crate::produce::LATENCY_KIND,
        &confirm_latency,
        CommandDetails::Bench {
            producers: args.producers,
            consumers: args.consumers,
            confirmed,
            failed,
            consumed,
            consumed_per_s: (consumed as f64 / consume_elapsed * 100.0).round() / 100.0,
            end_to_end_us: end_to_end.summary(),
            timeline,
        },
    ))
}

/// What one producer publishes.
struct ProducerPlan {
    count: u64,
    deadline: Option<Instant>,
    /// Messages per second, for this producer.
    rate: Option<f64>,
    batch_size: u64,
    /// Characters added to each update's SKU to reach `--message-size`.
    pad: usize,
    seed: u64,
}

/// Publishes generated updates until the count or the deadline, paced by the rate.
async fn publish(mut publisher: Publisher, plan: ProducerPlan) -> Result<PublishOutcome> {
    let mut generator = UpdateGenerator::new(1_000, plan.seed);
    let mut pace = plan.rate.map(Pace::new);
    let mut sent = 0u64;
    let mut failure = None;
    loop {
        let size = match plan.deadline {
            Some(deadline) if Instant::now() >= deadline => break,
            Some(_) => plan.batch_size,
            None => plan.batch_size.min(plan.count - sent),
        };
        if size == 0 {
            break;
        }
        if let Some(pace) = &mut pace {
            pace.wait_for(size).await;
        }
        let mut batch = generated_batch(&mut generator, size);
        for (_, update) in &mut batch {
            update.sku.extend(std::iter::repeat_n('-', plan.pad));
        }
        if let Err(e) = publisher.send(&batch, Duration::from_secs(30)).await {
            failure = Some(e);
            break;
        }
        sent += size;
    }
    let outcome = publisher
        .finish(Duration::from_secs(30), &indicatif::ProgressBar::hidden())
        .await;
    publisher.close().await;
    match failure {
        Some(e) => Err(e),
        None => outcome,
    }
}

/// Reads every message from the start, parsing each update and timing it end to end.
async fn read(mut consumer: rabbitmq_stream_client::ChunkConsumer, stats: Arc<ConsumerStats>) {
    let mut local = LatencyHistogram::new();
    let mut unflushed = 0u64;
    let flush = |local: &mut LatencyHistogram, count: u64| {
        stats.consumed.fetch_add(count, Ordering::Relaxed);
        stats
            .end_to_end
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(local);
        *local = LatencyHistogram::new();
    };
    while !stats.stop.load(Ordering::Relaxed) {
        let chunk = match tokio::time::timeout(Duration::from_millis(200), consumer.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(Some(Err(_))) | Ok(None) => break,
            Err(_) => {
                if unflushed > 0 {
                    flush(&mut local, unflushed);
                    unflushed = 0;
                }
                continue;
            }
        };
        let mut clock = BurstClock::default();
        for message in chunk.messages().iter() {
            if let Some(update) = InventoryUpdate::decode(MessageView::body_of(message)) {
                local.record_us(clock.now_us().saturating_sub(update.produced_at_us));
            }
        }
        unflushed += chunk.messages().len() as u64;
        if unflushed >= CONSUMER_FLUSH {
            flush(&mut local, unflushed);
            unflushed = 0;
        }
    }
    flush(&mut local, unflushed);
    let _ = consumer.handle().close().await;
}

/// Characters to add to an update's SKU so its body reaches `message_size` bytes.
fn padding(message_size: Option<u64>) -> usize {
    let Some(size) = message_size else { return 0 };
    let mut body = Vec::new();
    UpdateGenerator::new(1_000, 1)
        .next_update(now_us())
        .encode_into(&mut body);
    (size as usize).saturating_sub(body.len())
}

/// Cumulative counters at one instant.
#[derive(Default)]
struct Sample {
    sent: u64,
    confirmed: u64,
    consumed: u64,
    confirm_latency: LatencyHistogram,
    end_to_end: LatencyHistogram,
    at: Duration,
}

impl Sample {
    fn take(
        producers: &[crate::produce::PublisherStats],
        consumers: &ConsumerStats,
        at: Duration,
    ) -> Self {
        let mut confirm_latency = LatencyHistogram::new();
        for stats in producers {
            confirm_latency.merge(&stats.latency());
        }
        Sample {
            sent: producers.iter().map(|s| s.sent()).sum(),
            confirmed: producers.iter().map(|s| s.confirmed()).sum(),
            consumed: consumers.consumed.load(Ordering::Relaxed),
            confirm_latency,
            end_to_end: consumers.end_to_end(),
            at,
        }
    }

    /// The second between `previous` and this sample, with its confirm and end-to-end
    /// latencies.
    fn since(&self, previous: &Sample) -> (BenchSecond, LatencyHistogram, LatencyHistogram) {
        let at = self.at;
        let span = (at - previous.at.min(at)).as_secs_f64().max(f64::EPSILON);
        let rate = |now: u64, before: u64| (now.saturating_sub(before) as f64 / span).round();
        let confirm_interval = self.confirm_latency.since(&previous.confirm_latency);
        let end_to_end_interval = self.end_to_end.since(&previous.end_to_end);
        let (confirm, end_to_end) = (confirm_interval.summary(), end_to_end_interval.summary());
        let second = BenchSecond {
            second: (at.as_secs_f64() * 10.0).round() / 10.0,
            published_per_s: rate(self.sent, previous.sent),
            confirmed_per_s: rate(self.confirmed, previous.confirmed),
            consumed_per_s: rate(self.consumed, previous.consumed),
            confirm_p50_us: confirm.p50,
            confirm_p99_us: confirm.p99,
            end_to_end_p50_us: end_to_end.p50,
            end_to_end_p99_us: end_to_end.p99,
        };
        (second, confirm_interval, end_to_end_interval)
    }
}

fn second_line(s: &BenchSecond) -> String {
    let ms = |us: u64| format!("{:.1}", us as f64 / 1000.0);
    format!(
        "{:>6.1}s  published {:>9}/s  confirmed {:>9}/s  consumed {:>9}/s  confirm p50 {} ms p99 {} ms  end-to-end p50 {} ms p99 {} ms",
        s.second,
        thousands(s.published_per_s as u64),
        thousands(s.confirmed_per_s as u64),
        thousands(s.consumed_per_s as u64),
        ms(s.confirm_p50_us),
        ms(s.confirm_p99_us),
        ms(s.end_to_end_p50_us),
        ms(s.end_to_end_p99_us),
    )
}
