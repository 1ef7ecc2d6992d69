//! What is known of each partition before its readers subscribe: where a replay ends, where a
//! replay from a timestamp starts, and each consumer's stored offset (`--offset stored`). From
//! those follow, per reader, where it asked to start, whether it has anything to read at all,
//! and how much it will read (the progress bar's length): the same rules on a plain stream and
//! on every partition of a super stream.

use rabbitmq_stream_client::Environment;

use crate::broker::BrokerSettings;
use crate::engines::reader::{self, ReaderSpec, StartOffset, StopRule};
use crate::error::{ReadError, Result};
use crate::settings::ConsumeSettings;
use crate::target::Target;

/// One partition's reading, as far as it is known before subscribing.
pub(super) struct PartitionPlan {
    pub partition: String,
    /// With [`StopRule::AtEnd`], the partition's last offset now (`None`: it is empty).
    pub end_offset: Option<u64>,
    /// Where a replay from a timestamp starts (see [`timestamp_start`]).
    from_timestamp: Option<u64>,
    /// The run's consumers, in their order, each with the offset stored for its name on this
    /// partition (`--offset stored`).
    pub readers: Vec<ReaderSpec>,
}

/// Every partition of `target`, in its order, planned.
pub(super) async fn plan(
    env: &Environment,
    broker: &BrokerSettings,
    settings: &ConsumeSettings,
    target: &Target,
) -> Result<Vec<PartitionPlan>> {
    let mut plans = Vec::with_capacity(target.partitions.len());
    for partition in &target.partitions {
        let end_offset = match settings.stop_rule {
            StopRule::AtEnd => {
                broker
                    .while_starting(|| broker.stream_end_offset(partition))
                    .await?
            }
            StopRule::Follow => None,
        };
        plans.push(PartitionPlan {
            partition: partition.clone(),
            end_offset,
            readers: stored_offsets(broker, settings, partition).await?,
            from_timestamp: timestamp_start(env, broker, settings, partition, end_offset).await?,
        });
    }
    Ok(plans)
}

/// The consumers with the offsets the broker stored for their names on `partition`, for
/// `--offset stored`; a name with nothing stored there is an error (it would read everything
/// again). A single-active group asks when one of its members becomes active instead.
async fn stored_offsets(
    broker: &BrokerSettings,
    settings: &ConsumeSettings,
    partition: &str,
) -> Result<Vec<ReaderSpec>> {
    let mut readers = settings.readers.clone();
    if settings.start != StartOffset::Stored || settings.single_active {
        return Ok(readers);
    }
    for reader in &mut readers {
        let Some(name) = &reader.tracking_name else {
            continue;
        };
        match broker.stored_offset(name, partition).await? {
            Some(offset) => reader.stored = Some(offset),
            None => {
                return Err(ReadError::NoStoredOffset {
                    name: name.clone(),
                    stream: partition.to_string(),
                }
                .into())
            }
        }
    }
    Ok(readers)
}

/// Where a replay from a timestamp (`--offset 2026-11-24T10:00:00Z`) up to `end_offset` starts:
/// the first offset the broker delivers from it, or past the end when it delivers none (the
/// timestamp is after the last message: the broker would wait for new ones, and so the read,
/// forever). `None` for other reads.
async fn timestamp_start(
    env: &Environment,
    broker: &BrokerSettings,
    settings: &ConsumeSettings,
    partition: &str,
    end_offset: Option<u64>,
) -> Result<Option<u64>> {
    let (StartOffset::Timestamp { millis, .. }, StopRule::AtEnd, Some(end)) =
        (&settings.start, settings.stop_rule, end_offset)
    else {
        return Ok(None);
    };
    let first = reader::first_offset_from_timestamp(env, partition, *millis)
        .await
        .map_err(|e| broker.consumer_error(e, partition))?;
    Ok(Some(first.unwrap_or(end + 1)))
}

/// Where `spec` asked to start, when that is a number before subscribing: 0 from `first`, the
/// offset asked for, right after the stored one. (Not a timestamp's: the broker starts a
/// timestamp read where messages are, so a later first message says nothing there.)
pub(super) fn asked_start(settings: &ConsumeSettings, spec: &ReaderSpec) -> Option<u64> {
    match settings.start {
        StartOffset::First => Some(0),
        _ => spec.start(&settings.start),
    }
}

impl PartitionPlan {
    /// The first offset `spec` reads on this partition, when known before subscribing.
    fn first_offset(&self, settings: &ConsumeSettings, spec: &ReaderSpec) -> Option<u64> {
        asked_start(settings, spec).or(self.from_timestamp)
    }

    /// Whether `spec`'s replay starts past the end of this partition (or the partition is
    /// empty): it has nothing to read, and nothing to wait for.
    pub fn past_end(&self, settings: &ConsumeSettings, spec: &ReaderSpec) -> bool {
        settings.stop_rule == StopRule::AtEnd
            && match (self.end_offset, self.first_offset(settings, spec)) {
                (None, _) => true,
                (Some(end), Some(start)) => start > end,
                _ => false,
            }
    }

    /// How many messages `spec` will read here, when that is known: `--count`, or a replay's
    /// offsets from its start to the end. Unknown with `--product` (only some of them count)
    /// and for live reads.
    pub fn expected(&self, settings: &ConsumeSettings, spec: &ReaderSpec) -> Option<u64> {
        if let Some(count) = settings.count {
            return Some(count);
        }
        if !settings.products.is_empty() {
            return None;
        }
        let end = self.end_offset?;
        Some((end + 1).saturating_sub(self.first_offset(settings, spec)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ReadFrom;

    fn settings(start: StartOffset, count: Option<u64>, products: Vec<u64>) -> ConsumeSettings {
        ConsumeSettings {
            stop_rule: StopRule::new(&start, count, None, false),
            start,
            count,
            count_per_partition: false,
            duration: None,
            readers: vec![spec(None)],
            store_every: 1,
            single_active: false,
            read_from: ReadFrom::Leader,
            print: false,
            verify: false,
            products,
            super_stream: None,
        }
    }

    fn spec(stored: Option<u64>) -> ReaderSpec {
        ReaderSpec {
            label: "r".into(),
            tracking_name: Some("r".into()),
            slow: None,
            stored,
        }
    }

    fn partition(end_offset: Option<u64>, from_timestamp: Option<u64>) -> PartitionPlan {
        PartitionPlan {
            partition: "p".into(),
            end_offset,
            from_timestamp,
            readers: vec![],
        }
    }

    #[test]
    fn a_replay_reads_from_where_it_asked_to_the_end() {
        let first = settings(StartOffset::First, None, vec![]);
        assert_eq!(
            partition(Some(99), None).expected(&first, &spec(None)),
            Some(100)
        );
        let at = settings(StartOffset::Offset(40), None, vec![]);
        assert_eq!(
            partition(Some(99), None).expected(&at, &spec(None)),
            Some(60)
        );
        let stored = settings(StartOffset::Stored, None, vec![]);
        assert_eq!(
            partition(Some(99), None).expected(&stored, &spec(Some(89))),
            Some(10)
        );
        let timestamp = StartOffset::Timestamp {
            millis: 0,
            text: "t".into(),
        };
        let from = settings(timestamp, None, vec![]);
        assert_eq!(
            partition(Some(99), Some(95)).expected(&from, &spec(None)),
            Some(5)
        );
        // --count bounds each reader; --product counts only some of the offsets.
        let counted = settings(StartOffset::First, Some(7), vec![]);
        assert_eq!(
            partition(None, None).expected(&counted, &spec(None)),
            Some(7)
        );
        let filtered = settings(StartOffset::First, None, vec![1]);
        assert_eq!(
            partition(Some(99), None).expected(&filtered, &spec(None)),
            None
        );
    }

    #[test]
    fn a_replay_past_the_end_or_of_an_empty_partition_has_nothing_to_read() {
        let first = settings(StartOffset::First, None, vec![]);
        assert!(partition(None, None).past_end(&first, &spec(None)));
        assert!(!partition(Some(0), None).past_end(&first, &spec(None)));
        let stored = settings(StartOffset::Stored, None, vec![]);
        assert!(partition(Some(9), None).past_end(&stored, &spec(Some(9))));
        assert!(!partition(Some(10), None).past_end(&stored, &spec(Some(9))));
        let live = settings(StartOffset::First, Some(5), vec![]);
        assert!(!partition(None, None).past_end(&live, &spec(None)));
    }
}
