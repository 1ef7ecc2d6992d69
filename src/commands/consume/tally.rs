//! `ReadTally`, the sink every consume reader hands its messages to: it counts, times and (with
//! `--verify`) checks what one reader read on one partition (a plain stream is its own one
//! partition), prints it with `--print`, and says so when the first message delivered is past
//! the offset asked for. It lives with the command, not in the reading engine, because it
//! writes to the user (`Output`, stdout) and the engine never does.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::engines::reader::{MessageSink, StartOffset, Take};
use crate::entry::{MessageView, PRODUCER_PROPERTY};
use crate::model::{BurstClock, InventoryUpdate};
use crate::report::{MessagePrinter, Output};
use crate::stats::{CommandDetails, LatencyHistogram, LatencyKind, RunSummary, Totals};
use crate::verify::SeqCheck;

/// Where a reader asked to start (0 for `first`), so that it can say the stream holds no
/// messages there (retention removed them, or offset-tracking entries hold those offsets) when
/// the first one delivered is further on: otherwise a read that starts late looks like loss.
#[derive(Debug, Clone)]
pub(super) struct AskedStart {
    pub offset: u64,
    pub out: Output,
    /// The partition to name, on a super stream (its readers would otherwise say the same line
    /// for different partitions); `None` on a plain stream, which the run already named.
    pub partition: Option<String>,
}

/// Counts and latencies of what one reader read.
#[derive(Default)]
pub(super) struct ReadTally {
    delivered: u64,
    messages: u64,
    bytes: u64,
    not_inventory_updates: u64,
    first_offset: Option<u64>,
    last_offset: Option<u64>,
    /// The offset of the first message delivered (whatever `products`).
    first_delivered: Option<u64>,
    asked_start: Option<AskedStart>,
    /// A single active consumer activated after its predecessor: where the broker started it
    /// (one past the offset the predecessor stored).
    took_over_at: Option<u64>,
    latency: LatencyHistogram,
    /// With `--verify`.
    seq_check: Option<SeqCheck>,
    /// Times this reader lost its connection and subscribed again.
    reconnects: u64,
    /// Read time for latencies.
    clock: BurstClock,
    /// Taken off the end of producer names for `--verify`: a super stream partition's
    /// `-PARTITION`, so the partitions' updates verify together under the run's name.
    producer_suffix: Option<String>,
    /// Only these products count (checked on every message, whatever the broker filtered).
    products: Option<Arc<HashSet<u64>>>,
    /// `--print`: every message read goes to stdout as NDJSON.
    printer: Option<MessagePrinter>,
    /// Why `--print` could not write (a closed stdout ends the run quietly, anything else fails
    /// it).
    print_error: Option<std::io::Error>,
}

impl ReadTally {
    /// A reader's sink: `verify` keeps a `SeqCheck`, `products` passes over other products,
    /// `printer` prints what is read.
    pub(super) fn reading(
        verify: bool,
        products: Option<Arc<HashSet<u64>>>,
        printer: Option<MessagePrinter>,
    ) -> Self {
        ReadTally {
            seq_check: verify.then(SeqCheck::default),
            products,
            printer,
            ..ReadTally::default()
        }
    }

    /// Producer names end in `suffix` on this partition (see `producer_suffix`).
    pub(super) fn with_producer_suffix(mut self, suffix: String) -> Self {
        self.producer_suffix = Some(suffix);
        self
    }

    /// The reader asked to start at `asked` (see [`AskedStart`]).
    pub(super) fn with_asked_start(mut self, asked: Option<AskedStart>) -> Self {
        self.asked_start = asked;
        self
    }

    /// A tally of `messages` read (of 100 bytes each), for tests of what is made of tallies.
    #[cfg(test)]
    pub(super) fn of_messages(messages: u64) -> Self {
        ReadTally {
            delivered: messages,
            messages,
            bytes: messages * 100,
            ..ReadTally::default()
        }
    }

    /// Messages read (those that count: of the `--product`s asked for).
    pub(super) fn messages(&self) -> u64 {
        self.messages
    }

    pub(super) fn seq_check(&self) -> Option<&SeqCheck> {
        self.seq_check.as_ref()
    }

    /// The engine counts reconnects; the summary shows them per reader.
    pub(super) fn set_reconnects(&mut self, reconnects: u64) {
        self.reconnects = reconnects;
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
                    check.record_update(producer, update.product_id, update.seq);
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
    /// the segments that held it (a `--offset N` or stored offset below the stream's first), or
    /// offset-tracking entries hold those offsets.
    fn note_a_later_start(&self, first: u64) {
        let Some(asked) = &self.asked_start else {
            return;
        };
        if let Some(line) =
            later_start_line(asked, self.took_over_at, first, self.seq_check.is_some())
        {
            asked.out.status(&line);
        }
    }

    /// This tally as a summary of `stream` (without `--verify`'s verdict: that may take several
    /// tallies together, see `summary.rs`).
    pub(super) fn summary(
        &self,
        stream: &str,
        offset: &StartOffset,
        timing: ReadTiming,
    ) -> RunSummary {
        let mut summary = RunSummary::new(
            crate::stats::CommandName::Consume,
            stream,
            Totals {
                messages: self.messages,
                bytes: self.bytes,
                elapsed: timing.elapsed,
            },
            LatencyKind::EndToEnd,
            &self.latency,
            CommandDetails::Consume {
                offset: offset.to_string(),
                first_offset: self.first_offset,
                last_offset: self.last_offset,
                not_inventory_updates: self.not_inventory_updates,
                delivered: self.delivered,
                waited_s: (timing.waited.as_secs_f64() * 1000.0).round() / 1000.0,
            },
        );
        summary.reconnects = self.reconnects;
        summary
    }

    /// Whether this reader read its stream whole, from offset 0: only then does it hold each
    /// producer's seqs from 0 (a stream that retention truncated starts later, part way).
    pub(super) fn read_whole(&self, start: &StartOffset) -> bool {
        *start == StartOffset::First && self.first_delivered == Some(0)
    }

    /// Adds `other`'s counts and latencies (a consumer's partitions, a partition's consumers,
    /// the run's total).
    pub(super) fn merge(&mut self, other: &ReadTally) {
        self.delivered += other.delivered;
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.not_inventory_updates += other.not_inventory_updates;
        self.reconnects += other.reconnects;
        self.first_offset = min_some(self.first_offset, other.first_offset);
        self.last_offset = self.last_offset.max(other.last_offset);
        self.latency.merge(&other.latency);
    }

    /// Writes out what `--print` still holds, and returns why printing failed, if that is worth
    /// failing the run for: a reader of stdout that went away (`| head`) is not.
    pub(super) fn finish_printing(&mut self) -> Option<std::io::Error> {
        if let Some(printer) = &mut self.printer {
            if let Err(e) = printer.flush() {
                self.print_error.get_or_insert(e);
            }
        }
        self.print_error
            .take()
            .filter(|e| e.kind() != std::io::ErrorKind::BrokenPipe)
    }
}

/// What to say when a reader's first message is at `first`: a single active consumer that took
/// over from its predecessor (`took_over_at`) starts where the predecessor stopped, which is
/// said as such, not as a gap; otherwise, or past even that start, the offsets from where it
/// asked to `first` hold no messages. `None` when it starts where it asked.
fn later_start_line(
    asked: &AskedStart,
    took_over_at: Option<u64>,
    first: u64,
    verify: bool,
) -> Option<String> {
    let partition = match &asked.partition {
        Some(partition) => format!("partition '{partition}': "),
        None => String::new(),
    };
    let verify = match verify {
        true => "; --verify checks each producer from the first seq read",
        false => "",
    };
    let gap = |from: u64| {
        format!(
            "no messages at offsets {from}…{} (removed by retention, or offset-tracking entries)",
            first - 1
        )
    };
    match took_over_at {
        Some(start) if start > asked.offset => Some(match first > start {
            false => format!("{partition}active now: reading from offset {first}, right after the offset the previous active consumer stored{verify}"),
            true => format!(
                "{partition}active now after the previous active consumer, which stored offset {}; {}: reading from offset {first}{verify}",
                start - 1,
                gap(start)
            ),
        }),
        _ if first > asked.offset => Some(format!(
            "{partition}{}: reading from offset {first}{verify}",
            gap(asked.offset)
        )),
        _ => None,
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

    fn took_over_at(&mut self, offset: u64) {
        self.took_over_at = Some(offset);
    }

    fn take(&mut self, offset: u64, message: &[u8]) -> Take {
        let Some(produced_at_us) = self.record(offset, message) else {
            return Take::Passed;
        };
        if let Some(printer) = &mut self.printer {
            if let Err(e) = printer.print(offset, MessageView::body_of(message), produced_at_us) {
                // The reader of stdout is gone (e.g. `| head`), or it cannot take more (a full
                // disk): nothing left to do either way; `finish_printing` tells which.
                self.print_error = Some(e);
                return Take::Stop;
            }
        }
        Take::Counted
    }
}
/// How long a reading took, and how long it waited for its first message before (apart, so
/// a wait for a producer does not lower the rate).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ReadTiming {
    pub elapsed: Duration,
    pub waited: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(offset: u64) -> AskedStart {
        AskedStart {
            offset,
            out: Output {
                json: false,
                quiet: true,
                summary_to_stderr: false,
            },
            partition: None,
        }
    }

    #[test]
    fn a_start_past_the_asked_offset_is_said_as_a_gap() {
        assert_eq!(later_start_line(&asked(0), None, 0, false), None);
        assert_eq!(
            later_start_line(&asked(0), None, 3_000, true).as_deref(),
            Some("no messages at offsets 0…2999 (removed by retention, or offset-tracking entries): reading from offset 3000; --verify checks each producer from the first seq read")
        );
    }

    /// A single active consumer taking over starts after its predecessor's stored offset: that
    /// is no gap in the stream, and is not said as one (only what lies past that start is).
    #[test]
    fn a_takeover_is_said_as_one_not_as_retention() {
        let line = later_start_line(&asked(0), Some(3_000), 3_000, false).unwrap();
        assert_eq!(
            line,
            "active now: reading from offset 3000, right after the offset the previous active consumer stored"
        );
        let mut partition = asked(0);
        partition.partition = Some("orders-1".into());
        let line = later_start_line(&partition, Some(3_000), 3_005, false).unwrap();
        assert_eq!(
            line,
            "partition 'orders-1': active now after the previous active consumer, which stored offset 2999; no messages at offsets 3000…3004 (removed by retention, or offset-tracking entries): reading from offset 3005"
        );
    }
}
