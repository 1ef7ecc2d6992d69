//! `consume --super-stream`: one reader per partition through the reading engine, each with
//! its own `ReadTally`; then the total, with one summary per partition. `--verify` checks the
//! partitions' updates together per producer (each partition's producer is named
//! `NAME-PARTITION`: the suffix is taken off). With `--name` each partition keeps its offset under
//! that name; with `--single-active` each partition has its own group, which the broker spreads
//! over the instances of the name.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use super::SuperStream;
use crate::consume::ReadTally;
use crate::error::{ReadError, Result};
use crate::reader::{
    self, ReadContext, ReadPlan, ReaderSpec, StartOffset, StopRule, SubscribeError,
};
use crate::report::Output;
use crate::routing::partition_of_product;
use crate::settings::{CommonSettings, ConsumeSettings};
use crate::shutdown::Shutdown;
use crate::stats::RunSummary;
use crate::verify::SeqCheck;

/// The partitions that hold `products`: by hash routing when the partitions are the hash
/// layout (`NAME-0` … `NAME-(N-1)`), every partition otherwise (a key-routed super stream).
pub fn partitions_holding(super_stream: &SuperStream, products: &[u64]) -> Vec<String> {
    let count = super_stream.partitions.len() as u32;
    let hash_layout = super_stream
        .partitions
        .iter()
        .enumerate()
        .all(|(i, p)| *p == format!("{}-{i}", super_stream.name));
    if products.is_empty() || !hash_layout {
        return super_stream.partitions.clone();
    }
    let wanted: HashSet<usize> = products
        .iter()
        .map(|p| partition_of_product(*p, count) as usize)
        .collect();
    super_stream
        .partitions
        .iter()
        .enumerate()
        .filter(|(i, _)| wanted.contains(i))
        .map(|(_, p)| p.clone())
        .collect()
}

/// `invstream consume --super-stream NAME`.
pub async fn run(
    common: &CommonSettings,
    settings: &ConsumeSettings,
    name: &str,
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let broker = &common.broker;
    super::check_broker_supports(broker).await?;
    let env = broker.connect().await?;
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
    let tracking_name = settings
        .readers
        .first()
        .and_then(|r| r.tracking_name.clone());
    let mut filter_products = products.as_deref().cloned();

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
        let mut spec = ReaderSpec {
            label: partition.clone(),
            tracking_name: tracking_name.clone(),
            slow: None,
            stored: None,
        };
        if let (StartOffset::Stored, false, Some(name)) =
            (&settings.start, settings.single_active, &tracking_name)
        {
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
        let plan = ReadPlan {
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
        let past_end = settings.stop_rule == StopRule::AtEnd
            && match (end_offset, spec.start(&settings.start)) {
                (None, _) => true,
                (Some(end), Some(start)) => start > end,
                _ => false,
            };
        if past_end {
            idle.push((
                spec.label.clone(),
                tally(settings, &products, partition),
                Duration::ZERO,
            ));
            continue;
        }
        let first = broker
            .while_starting(|| async {
                match reader::subscribe(&env, &plan, &spec, None).await {
                    Err(SubscribeError::Create(e)) => Err(broker.consumer_error(e, partition)),
                    other => Ok(other),
                }
            })
            .await?;
        let (plan, subscription) = match first {
            Ok(subscription) => (plan, subscription),
            Err(SubscribeError::NoFiltering) => {
                out.status("the broker has no stream filtering (RabbitMQ < 3.13): filtering --product in invstream");
                filter_products = None;
                let plan = ReadPlan {
                    filter_products: None,
                    ..plan
                };
                let subscription = reader::subscribe(&env, &plan, &spec, None)
                    .await
                    .map_err(|e| e.into_error(broker, partition))?;
                (plan, subscription)
            }
            Err(e) => return Err(e.into_error(broker, partition)),
        };
        subscriptions.push((plan, spec, subscription));
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
    out.status(&format!(
        "reading super stream '{name}' ({} partition{}{group}) from {} ({until})",
        partitions.len(),
        if partitions.len() == 1 { "" } else { "s" },
        settings.start
    ));

    let progress = out.progress(None, "consume");
    let read_count = Arc::new(AtomicU64::new(0));
    let events: reader::ReaderEvents = Arc::new(move |event| out.reader_event(&event));
    let mut tasks = Vec::new();
    for (plan, spec, subscription) in subscriptions {
        let sink = tally(settings, &products, &plan.stream);
        let (env, events, stop, read_count) = (
            env.clone(),
            events.clone(),
            shutdown.signal(),
            read_count.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let context = ReadContext {
                env: &env,
                plan: &plan,
                reader: &spec,
                stop,
                progress: read_count,
                events,
            };
            let outcome = reader::read(context, subscription, sink).await;
            (spec.label, outcome)
        }));
    }
    let ticker = {
        let (progress, read_count) = (progress.clone(), read_count.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                progress.set_position(read_count.load(std::sync::atomic::Ordering::Relaxed));
            }
        })
    };
    let mut results = idle;
    let mut last_failure = None;
    for task in tasks {
        match task.await {
            Ok((label, outcome)) => {
                let mut tally = outcome.sink;
                tally.reconnects = outcome.reconnects;
                last_failure = outcome.failure.or(last_failure);
                results.push((label, tally, outcome.elapsed));
            }
            Err(e) => {
                last_failure = Some(crate::error::InvError::Output(format!(
                    "a partition reader stopped unexpectedly: {e}"
                )))
            }
        }
    }
    ticker.abort();
    progress.finish_and_clear();
    if let Some(failure) = last_failure {
        let read: u64 = results
            .iter()
            .map(|(_, tally, _)| {
                tally
                    .summary(name, &settings.start, Duration::ZERO)
                    .messages
            })
            .sum();
        if read > 0 {
            out.status(&format!("read {read} messages before this error:"));
        }
        return Err(failure);
    }
    // Partitions in the super stream's order.
    results.sort_by_key(|(label, ..)| partitions.iter().position(|p| p == label));
    let mut summary = aggregate(name, settings, results);
    summary.interrupted = shutdown.received().is_some();
    Ok(summary)
}

/// A partition's sink: `--verify` under the producer names without `-PARTITION`.
fn tally(
    settings: &ConsumeSettings,
    products: &Option<Arc<HashSet<u64>>>,
    partition: &str,
) -> ReadTally {
    let mut tally = ReadTally::reading(settings.verify, products.clone(), None);
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
    let mut check = settings.verify.then(SeqCheck::default);
    let mut elapsed = Duration::ZERO;
    let mut partitions = Vec::new();
    for (partition, tally, partition_elapsed) in &results {
        total.merge(tally);
        if let (Some(check), Some(theirs)) = (&mut check, &tally.seq_check) {
            check.merge(theirs);
        }
        elapsed = elapsed.max(*partition_elapsed);
        partitions.push(tally.summary(partition, &settings.start, *partition_elapsed));
    }
    let mut summary = total.summary(name, &settings.start, elapsed);
    summary.verify = check.map(|check| check.report(settings.start == StartOffset::First));
    summary.partitions = partitions;
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn super_stream(partitions: &[&str]) -> SuperStream {
        SuperStream {
            name: "s".into(),
            partitions: partitions.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn products_pick_their_partition_in_the_hash_layout_only() {
        let hashed = super_stream(&["s-0", "s-1", "s-2"]);
        // routing.rs pins product 1 to partition 2 and 42 to partition 0 of three.
        assert_eq!(partitions_holding(&hashed, &[1]), ["s-2"]);
        assert_eq!(partitions_holding(&hashed, &[42, 1]), ["s-0", "s-2"]);
        assert_eq!(partitions_holding(&hashed, &[]).len(), 3);
        let keyed = super_stream(&["s-AMS-1", "s-BER-2"]);
        assert_eq!(partitions_holding(&keyed, &[1]).len(), 2);
    }
}
