//! `consume --super-stream`: one reader per partition through the reading engine, each with
//! its own `ReadTally`; then the total, with one summary per partition. With `--consumers`,
//! every consumer reads every partition, and each gets its own summary too. `--verify` checks the
//! partitions' updates together per producer (each partition's producer is named
//! `NAME-PARTITION`: the suffix is taken off). With `--name` each partition keeps its offset under
//! that name; with `--single-active` each partition has its own group, which the broker spreads
//! over the instances of the name.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::partitions_holding;
use crate::consume::{self, ReadTally};
use crate::error::{ReadError, Result};
use crate::reader::{self, ReadPlan, ReaderSpec, StartOffset, StopRule};
use crate::report::{MessagePrinter, Output};
use crate::settings::{CommonSettings, ConsumeSettings};
use crate::shutdown::Shutdown;
use crate::stats::RunSummary;
use crate::verify::SeqCheck;

/// `invstream consume --super-stream NAME`.
pub async fn run(
    common: &CommonSettings,
    settings: &ConsumeSettings,
    name: &str,
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let broker = &common.broker;
    let env = super::connect(broker).await?;
    let super_stream = super::existing(broker, name).await?;
    let partitions = partitions_holding(&super_stream, &settings.products);
    if partitions.len() < super_stream.partitions.len() {
        out.status(&format!(
            "--product: reading partition {} of super stream '{name}', which holds those products",
            partitions.join(", ")
        ));
    }
    let products: Option<Arc<HashSet<u64>>> = (!settings.products.is_empty())
        .then(|| Arc::new(settings.products.iter().copied().collect()));
    let mut filter_products = products.as_deref().cloned();
    // With --consumers, every consumer reads every partition (a reader each).
    let fan_out = settings.readers.len() > 1;
    let label = |consumer: &ReaderSpec, partition: &str| match fan_out {
        true => format!("{}@{partition}", consumer.label),
        false => partition.to_string(),
    };

    let mut subscriptions = Vec::new();
    let mut idle = Vec::new();
    for partition in &partitions {
        let end_offset = match settings.stop_rule {
            StopRule::AtEnd => {
                broker
                    .while_starting(|| broker.stream_end_offset(partition))
                    .await?
            }
            StopRule::Follow => None,
        };
        let from_timestamp =
            consume::timestamp_start(&env, broker, settings, partition, end_offset).await?;
        for consumer in &settings.readers {
            let mut spec = ReaderSpec {
                label: label(consumer, partition),
                ..consumer.clone()
            };
            if let (StartOffset::Stored, false, Some(name)) = (
                &settings.start,
                settings.single_active,
                &consumer.tracking_name,
            ) {
                match broker.stored_offset(name, partition).await? {
                    Some(offset) => spec.stored = Some(offset),
                    None => {
                        return Err(ReadError::NoStoredOffset {
                            name: name.clone(),
                            stream: partition.clone(),
                        }
                        .into())
                    }
                }
            }
            if consume::past_end(settings, end_offset, &spec, from_timestamp) {
                idle.push((
                    spec.label,
                    tally(settings, &products, partition, false),
                    Duration::ZERO,
                ));
                continue;
            }
            let mut plan = ReadPlan {
                stream: partition.clone(),
                start: settings.start.clone(),
                count: settings.count,
                duration: settings.duration,
                end_offset,
                filter_products: filter_products.clone(),
                single_active: settings.single_active,
                prefer_replica: settings.read_from == crate::cli::ReadFrom::Replica,
                store_every: settings.store_every,
                broker: broker.clone(),
                super_stream: Some(name.to_string()),
            };
            let subscription = consume::subscribe_first(&env, &mut plan, &spec, out).await?;
            filter_products = plan.filter_products.clone();
            subscriptions.push((plan, spec, subscription));
        }
    }
    let until = match settings.stop_rule {
        StopRule::AtEnd => "up to the end of each partition now",
        _ if settings.count.is_some() || settings.duration.is_some() => {
            "until --count (per partition) or --duration"
        }
        _ => "following new messages; Ctrl-C to stop",
    };
    let group = match settings.single_active {
        true => ", one active instance per partition",
        false => "",
    };
    let who = match fan_out {
        true => format!("{} consumers reading", settings.readers.len()),
        false => "reading".to_string(),
    };
    match subscriptions.is_empty() {
        // Every partition's replay starts past its end (as a stream's does: consume::run).
        true => out.status(&format!(
            "super stream '{name}' has nothing to read from offset {}",
            settings.start
        )),
        false => out.status(&format!(
            "{who} super stream '{name}' ({} partition{}{group}) from {} ({until})",
            partitions.len(),
            if partitions.len() == 1 { "" } else { "s" },
            settings.start
        )),
    }

    let starts = subscriptions
        .into_iter()
        .map(|(plan, spec, subscription)| {
            let sink = tally(settings, &products, &plan.stream, plan.end_offset.is_none());
            reader::Start {
                plan: Arc::new(plan),
                spec,
                subscription,
                sink,
            }
        })
        .collect();
    let results = consume::read_all(starts, idle, None, shutdown, out).await?;
    // Consumers in their order, and in each the partitions in the super stream's order.
    let mut by_consumer: Vec<Vec<(String, ReadTally, Duration)>> =
        settings.readers.iter().map(|_| Vec::new()).collect();
    for (reader_label, tally, elapsed) in results {
        let (consumer, partition) = partitions
            .iter()
            .find_map(|partition| {
                settings
                    .readers
                    .iter()
                    .position(|consumer| label(consumer, partition) == reader_label)
                    .map(|consumer| (consumer, partition.clone()))
            })
            .expect("every reader is a consumer's on a partition");
        by_consumer[consumer].push((partition, tally, elapsed));
    }
    for results in &mut by_consumer {
        results.sort_by_key(|(partition, ..)| partitions.iter().position(|p| p == partition));
    }
    let mut summary = match fan_out {
        false => aggregate(name, settings, by_consumer.pop().unwrap_or_default()),
        true => fan_out_summary(name, settings, by_consumer),
    };
    summary.interrupted = shutdown.received().is_some();
    Ok(summary)
}

/// A partition's sink: `--verify` under the producer names without `-PARTITION`; `--print`
/// lines name the partition (flushed at each line when following).
fn tally(
    settings: &ConsumeSettings,
    products: &Option<Arc<HashSet<u64>>>,
    partition: &str,
    following: bool,
) -> ReadTally {
    let printer = settings
        .print
        .then(|| MessagePrinter::for_partition(following, partition));
    let mut tally = ReadTally::reading(settings.verify, products.clone(), printer);
    tally.producer_suffix = Some(format!("-{partition}"));
    tally
}

/// The partitions' tallies as the run's summary (their verify checks merged), with one per
/// partition.
fn aggregate(
    name: &str,
    settings: &ConsumeSettings,
    results: Vec<(String, ReadTally, Duration)>,
) -> RunSummary {
    let mut total = ReadTally::new(false);
    let mut elapsed = Duration::ZERO;
    let mut partitions = Vec::new();
    for (partition, tally, partition_elapsed) in &results {
        total.merge(tally);
        elapsed = elapsed.max(*partition_elapsed);
        partitions.push(tally.summary(partition, &settings.start, *partition_elapsed));
    }
    let mut summary = total.summary(name, &settings.start, elapsed);
    // The partitions' checks together, under the one start rule (a truncated partition holds
    // each producer's seqs only from some point on).
    let parts: Vec<(&SeqCheck, bool)> = results
        .iter()
        .filter_map(|(_, tally, _)| {
            let check = tally.seq_check.as_ref()?;
            Some((check, tally.read_whole(&settings.start)))
        })
        .collect();
    summary.verify = settings.verify.then(|| SeqCheck::report_parts(&parts));
    summary.partitions = partitions;
    summary
}

/// `--consumers` on a super stream: the total, one summary per consumer (its partitions
/// together, with its own `--verify`), and one per partition (its consumers together).
fn fan_out_summary(
    name: &str,
    settings: &ConsumeSettings,
    by_consumer: Vec<Vec<(String, ReadTally, Duration)>>,
) -> RunSummary {
    let mut total = ReadTally::new(false);
    let mut per_partition: Vec<(String, ReadTally, Duration)> = Vec::new();
    let mut elapsed = Duration::ZERO;
    let mut consumers = Vec::new();
    for (consumer, results) in settings.readers.iter().zip(by_consumer) {
        for (partition, tally, partition_elapsed) in &results {
            total.merge(tally);
            elapsed = elapsed.max(*partition_elapsed);
            match per_partition.iter_mut().find(|(p, ..)| p == partition) {
                Some((_, sum, sum_elapsed)) => {
                    sum.merge(tally);
                    *sum_elapsed = (*sum_elapsed).max(*partition_elapsed);
                }
                None => {
                    let mut sum = ReadTally::new(false);
                    sum.merge(tally);
                    per_partition.push((partition.clone(), sum, *partition_elapsed));
                }
            }
        }
        let mut summary = aggregate(name, settings, results);
        summary.partitions.clear();
        summary.consumer = Some(consumer.label.clone());
        consumers.push(summary);
    }
    let mut summary = total.summary(name, &settings.start, elapsed);
    summary.partitions = per_partition
        .iter()
        .map(|(partition, tally, elapsed)| tally.summary(partition, &settings.start, *elapsed))
        .collect();
    summary.consumers = consumers;
    summary
}
