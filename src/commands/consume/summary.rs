//! The run's summary from its readers' tallies, the same for a stream and a super stream: the
//! total; each consumer's own (its partitions together, with its `--verify` verdict), listed
//! under `consumers` when there are several, else its verdict is the run's; and, on a super
//! stream, each partition's own (its consumers together) under `partitions`. A plain stream has
//! no `partitions`: its one partition is the stream, which the total already is.

use std::time::Duration;

use super::readers::Tallied;
use super::tally::{ReadTally, ReadTiming};
use crate::settings::ConsumeSettings;
use crate::stats::RunSummary;
use crate::target::Target;
use crate::verify::SeqCheck;

/// The run's summary (its `interrupted` is the caller's to say).
pub(super) fn summarize(
    target: &Target,
    settings: &ConsumeSettings,
    results: &[Tallied],
) -> RunSummary {
    let (total, timing) = sum(results.iter());
    let mut summary = total.summary(&target.name, &settings.start, timing);
    if target.is_super_stream {
        summary.partitions = target
            .partitions
            .iter()
            .enumerate()
            .map(|(index, partition)| {
                let (tally, timing) = sum(results.iter().filter(|r| r.slot.partition == index));
                tally.summary(partition, &settings.start, timing)
            })
            .collect();
    }
    let mut consumers: Vec<RunSummary> = settings
        .readers
        .iter()
        .enumerate()
        .map(|(index, consumer)| {
            let results: Vec<&Tallied> = results
                .iter()
                .filter(|r| r.slot.consumer == index)
                .collect();
            consumer_summary(target, settings, &consumer.label, &results)
        })
        .collect();
    match consumers.len() {
        // One consumer: its verdict is the run's.
        1 => summary.verify = consumers.pop().and_then(|consumer| consumer.verify),
        _ => summary.consumers = consumers,
    }
    summary
}

/// The tallies together, timed from the first message any of them read to the last one (their
/// readers started together, so each one's wait places its reading on one time line), and the
/// shortest wait for a first message among the readers that read one. Without a message read,
/// the longest of their waits.
fn sum<'a>(results: impl Iterator<Item = &'a Tallied>) -> (ReadTally, ReadTiming) {
    let mut total = ReadTally::default();
    let mut waited_longest = Duration::ZERO;
    // From the start of reading: the earliest first message and the latest last one.
    let mut reading: Option<(Duration, Duration)> = None;
    for result in results {
        total.merge(&result.tally);
        waited_longest = waited_longest.max(result.waited);
        if result.tally.messages() > 0 {
            let (first, last) = (result.waited, result.waited + result.elapsed);
            reading = Some(reading.map_or((first, last), |(f, l)| (f.min(first), l.max(last))));
        }
    }
    let timing = match reading {
        Some((first, last)) => ReadTiming {
            elapsed: last - first,
            waited: first,
        },
        None => ReadTiming {
            elapsed: waited_longest,
            waited: waited_longest,
        },
    };
    (total, timing)
}

/// One consumer's summary: its partitions together, with their `--verify` checks taken together
/// (each partition's producers already without their `-PARTITION`) under the one start rule: a
/// partition that was not read whole from offset 0 holds each producer's seqs only from some
/// point on (see `SeqCheck::report_parts`).
fn consumer_summary(
    target: &Target,
    settings: &ConsumeSettings,
    label: &str,
    results: &[&Tallied],
) -> RunSummary {
    let (total, timing) = sum(results.iter().copied());
    let mut summary = total.summary(&target.name, &settings.start, timing);
    summary.consumer = Some(label.to_string());
    let parts: Vec<(&SeqCheck, bool)> = results
        .iter()
        .filter_map(|r| Some((r.tally.seq_check()?, r.tally.read_whole(&settings.start))))
        .collect();
    summary.verify = settings.verify.then(|| SeqCheck::report_parts(&parts));
    summary
}

#[cfg(test)]
mod tests {
    use super::super::readers::Slot;
    use super::*;

    fn tallied(messages: u64, waited_ms: u64, elapsed_ms: u64) -> Tallied {
        Tallied {
            slot: Slot {
                consumer: 0,
                partition: 0,
            },
            tally: ReadTally::of_messages(messages),
            elapsed: Duration::from_millis(elapsed_ms),
            waited: Duration::from_millis(waited_ms),
        }
    }

    /// Readers that start reading at different times (a partition whose producer came later):
    /// the total's reading runs from the first message of any to the last, not the longest
    /// single reading, and a reader that read nothing (it waited all along) is no part of it.
    #[test]
    fn the_total_reading_spans_the_first_message_to_the_last() {
        let results = [
            tallied(1_000, 1_000, 2_000),
            tallied(1_000, 2_000, 2_000),
            tallied(0, 5_000, 5_000),
        ];
        let (total, timing) = sum(results.iter());
        assert_eq!(total.messages(), 2_000);
        assert_eq!(timing.waited, Duration::from_millis(1_000));
        assert_eq!(timing.elapsed, Duration::from_millis(3_000));
    }

    #[test]
    fn readers_that_read_nothing_report_their_wait() {
        let results = [tallied(0, 4_000, 4_000), tallied(0, 2_000, 2_000)];
        let (_, timing) = sum(results.iter());
        assert_eq!(timing.waited, Duration::from_millis(4_000));
        assert_eq!(timing.elapsed, Duration::from_millis(4_000));
    }
}
