//! Reading: subscribe at an offset specification, parse every update, stop by the rules the user
//! chose (count, duration, end of stream, Ctrl-C), and measure end-to-end latency.

use std::future::pending;
use std::time::Instant;

use futures::StreamExt;
use rabbitmq_stream_client::types::OffsetSpecification;

use crate::broker::BrokerSettings;
use crate::cli::{ConsumeArgs, StartOffset};
use crate::error::{InvError, Result};
use crate::model::{now_us, InventoryUpdate};
use crate::report::Output;
use crate::stats::{CommandDetails, LatencyHistogram, RunSummary, Totals};

/// What `latency_us` means in a consume summary: read time minus `produced_at_us`.
pub const LATENCY_KIND: &str = "end_to_end";

/// When a consume run stops by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRule {
    /// Read up to the last offset the stream had when we started.
    AtEnd,
    /// Keep reading until Ctrl-C, `--count` or `--duration`.
    Follow,
}

impl StopRule {
    /// Without `--count`, `--duration` or `--follow`, a replay (first, an offset, a timestamp)
    /// stops at the stream's current end, while last and next follow new messages.
    pub fn for_args(args: &ConsumeArgs) -> Self {
        let replay = matches!(
            args.offset,
            StartOffset::First | StartOffset::Offset(_) | StartOffset::Timestamp { .. }
        );
        if replay && args.count.is_none() && args.duration.is_none() && !args.follow {
            StopRule::AtEnd
        } else {
            StopRule::Follow
        }
    }
}

pub fn offset_specification(offset: &StartOffset) -> OffsetSpecification {
    match offset {
        StartOffset::First => OffsetSpecification::First,
        StartOffset::Last => OffsetSpecification::Last,
        StartOffset::Next => OffsetSpecification::Next,
        StartOffset::Offset(n) => OffsetSpecification::Offset(*n),
        StartOffset::Timestamp { millis, .. } => OffsetSpecification::Timestamp(*millis),
    }
}

/// Counts and latencies of what one consumer read.
#[derive(Default)]
struct ReadTally {
    messages: u64,
    bytes: u64,
    not_inventory_updates: u64,
    first_offset: Option<u64>,
    last_offset: Option<u64>,
    latency: LatencyHistogram,
}

impl ReadTally {
    fn record(&mut self, offset: u64, body: Option<&[u8]>) {
        let body = body.unwrap_or_default();
        self.messages += 1;
        self.bytes += body.len() as u64;
        self.first_offset.get_or_insert(offset);
        self.last_offset = Some(offset);
        match InventoryUpdate::decode(body) {
            Some(update) => self
                .latency
                .record_us(now_us().saturating_sub(update.produced_at_us)),
            None => self.not_inventory_updates += 1,
        }
    }
}

/// `invstream consume`.
pub async fn run(
    broker: &BrokerSettings,
    stream: &str,
    args: &ConsumeArgs,
    out: Output,
) -> Result<RunSummary> {
    let env = broker.connect().await?;
    let stop_rule = StopRule::for_args(args);
    let end_offset = match stop_rule {
        StopRule::AtEnd => broker.stream_end_offset(stream).await?,
        StopRule::Follow => None,
    };
    let mut tally = ReadTally::default();
    let started = Instant::now();
    let mut elapsed = started.elapsed();
    let summarize = |tally: ReadTally, elapsed, interrupted| {
        let mut summary = RunSummary::new(
            "consume",
            stream,
            Totals {
                messages: tally.messages,
                bytes: tally.bytes,
                elapsed,
            },
            LATENCY_KIND,
            &tally.latency,
            CommandDetails::Consume {
                offset: args.offset.to_string(),
                first_offset: tally.first_offset,
                last_offset: tally.last_offset,
                not_inventory_updates: tally.not_inventory_updates,
            },
        );
        summary.interrupted = interrupted;
        summary
    };

    let nothing_to_read = match (stop_rule, end_offset, &args.offset) {
        (StopRule::AtEnd, None, _) => true,
        (StopRule::AtEnd, Some(end), StartOffset::Offset(start)) => *start > end,
        _ => false,
    };
    if nothing_to_read {
        out.status(&format!(
            "stream '{stream}' has nothing to read from offset {}",
            args.offset
        ));
        return Ok(summarize(tally, elapsed, false));
    }

    let mut consumer = env
        .consumer()
        .offset(offset_specification(&args.offset))
        .client_provided_name("invstream-consumer")
        .build(stream)
        .await
        .map_err(|e| broker.consumer_error(e, stream))?;
    let until = match (stop_rule, end_offset) {
        (StopRule::AtEnd, Some(end)) => format!("up to offset {end}, the end of the stream now"),
        _ if args.count.is_some() || args.duration.is_some() => {
            "until --count or --duration".to_string()
        }
        _ => "following new messages; Ctrl-C to stop".to_string(),
    };
    out.status(&format!(
        "reading stream '{stream}' from {} ({until})",
        args.offset
    ));

    let progress_total = match (args.count, end_offset, &args.offset) {
        (Some(count), _, _) => Some(count),
        (None, Some(end), StartOffset::Offset(start)) => Some(end + 1 - start),
        (None, Some(end), StartOffset::First) => Some(end + 1),
        _ => None,
    };
    let progress = out.progress(progress_total, "consume");
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let mut deadline = std::pin::pin!(async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => pending().await,
        }
    });
    let mut interrupted = false;
    let mut failure = None;
    loop {
        tokio::select! {
            biased;
            _ = &mut interrupt => {
                interrupted = true;
                break;
            }
            _ = &mut deadline => break,
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => {
                    let offset = delivery.offset();
                    tally.record(offset, delivery.message().data());
                    elapsed = started.elapsed();
                    if tally.messages.is_multiple_of(1024) {
                        progress.set_position(tally.messages);
                    }
                    let reached_count = args.count.is_some_and(|c| tally.messages >= c);
                    let reached_end = end_offset.is_some_and(|end| offset >= end);
                    if reached_count || reached_end {
                        break;
                    }
                }
                Some(Err(e)) => {
                    failure = Some(InvError::Client { message: format!("reading stream '{stream}': {e}") });
                    break;
                }
                None => {
                    failure = Some(InvError::ConnectionLost { addr: broker.addr(), during: "reading" });
                    break;
                }
            },
        }
    }
    if args.duration.is_some() && tally.messages < args.count.unwrap_or(u64::MAX) && !interrupted {
        elapsed = started.elapsed();
    }
    progress.finish_and_clear();
    let _ = consumer.handle().close().await;
    if let Some(error) = failure {
        if tally.messages == 0 {
            return Err(error);
        }
        out.status(&format!("stopped early: {error}"));
    }
    Ok(summarize(tally, elapsed, interrupted))
}
