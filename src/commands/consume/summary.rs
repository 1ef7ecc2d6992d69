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

/// The tallies together, the longest of their readings (they read at the same time), and the
/// shortest wait for a first message among the readers that read one.
fn sum<'a>(results: impl Iterator<Item = &'a Tallied>) -> (ReadTally, ReadTiming) {
    let mut total = ReadTally::default();
    let mut elapsed = Duration::ZERO;
    let (mut first_read, mut longest_wait) = (None::<Duration>, Duration::ZERO);
    for result in results {
        total.merge(&result.tally);
        elapsed = elapsed.max(result.elapsed);
        longest_wait = longest_wait.max(result.waited);
        if result.tally.messages() > 0 {
            first_read = Some(first_read.map_or(result.waited, |w| w.min(result.waited)));
        }
    }
    let waited = first_read.unwrap_or(longest_wait);
    (total, ReadTiming { elapsed, waited })
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
