//! `produce --super-stream`: the command. Plans the run from what each partition holds for the
//! producer name (`--resume` passes over, per partition, what that partition already has), opens
//! a [`PartitionedPublisher`] and drives it with the produce loop, then renders one summary with
//! a line per partition.

use rabbitmq_stream_client::Environment;

use super::partitioned::{partition_producer, total, PartitionedPublisher};
use super::SuperStream;
use crate::broker::lock::{release_all, NameLock};
use crate::broker::BrokerSettings;
use crate::error::{InvError, Result};
use crate::produce::{self, Driven};
use crate::publisher::PublisherOptions;
use crate::report::Output;
pub use crate::settings::SuperStreamSettings;
use crate::settings::{CommonSettings, ProduceSettings, UpdateSourceSettings};
use crate::shutdown::Shutdown;
use crate::stats::RunSummary;

/// What a super-stream produce run sends, from what each partition holds for the name.
struct Plan {
    /// Updates (or input lines) before this publishing id are not generated (read) at all.
    after: u64,
    /// Of those, the ones this run counts as skipped: all of them when resuming, none when a
    /// new run goes on after the name's highest id.
    skipped: u64,
    /// Generated updates to make from there.
    to_send: Option<u64>,
    /// The name's total after this run (generated), for the resume command.
    total: Option<u64>,
    /// `--resume`: the last id each partition holds, passed over per partition.
    resume_after: Option<Vec<u64>>,
}

/// Each partition's producer holds its own part of the name's updates; a run that stopped
/// leaves them at different last ids. A new run goes on after the highest; `--resume` starts
/// after the lowest and passes over, per partition, what that partition already holds.
fn plan(
    settings: &ProduceSettings,
    stored: &[u64],
    producer_name: &str,
    name: &str,
    out: Output,
) -> Result<Plan> {
    let lowest = stored.iter().copied().min().unwrap_or(0);
    let highest = stored.iter().copied().max().unwrap_or(0);
    let holds = format!(
        "producer '{producer_name}' already stored up to publishing id {highest} in super stream '{name}'"
    );
    let resume_after = (settings.resume && highest > 0).then(|| stored.to_vec());
    match &settings.source {
        UpdateSourceSettings::Generated { count, .. } => match settings.resume {
            true => {
                let after = lowest.min(*count);
                if highest > 0 {
                    out.status(&format!(
                        "{holds}: sending the rest of {count} (each partition after its own last id)"
                    ));
                }
                Ok(Plan {
                    after,
                    skipped: after,
                    to_send: Some(count - after),
                    total: Some(*count),
                    resume_after,
                })
            }
            false => Ok(Plan {
                after: highest,
                skipped: 0,
                to_send: Some(*count),
                total: Some(highest + count),
                resume_after: None,
            }),
        },
        UpdateSourceSettings::Input { source, .. } => {
            if highest > 0 && !settings.resume {
                return Err(InvError::usage(format!(
                    "{holds}: add --resume to go on after the lines it holds, or leave out --producer-name to publish {source} again as new updates"
                )));
            }
            if highest > 0 {
                out.status(&format!(
                    "{holds}: resuming {source} (each partition after its own last line)"
                ));
            }
            Ok(Plan {
                after: lowest,
                skipped: lowest,
                to_send: None,
                total: None,
                resume_after,
            })
        }
    }
}

/// `invstream produce --super-stream NAME`.
pub async fn run(
    common: &CommonSettings,
    settings: &ProduceSettings,
    asked: &SuperStreamSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let broker = &common.broker;
    let env = super::connect(broker).await?;
    let super_stream = super::ensure(
        broker,
        &asked.name,
        asked.layout.as_ref(),
        settings.retention.arguments(),
        out,
    )
    .await?;
    let name = &super_stream.name;
    let producer_name = settings
        .producer_name
        .clone()
        .unwrap_or_else(|| produce::unique_producer_name(name));
    // A given name is held by one run at a time, partition by partition, and may hold updates.
    let given = settings.dedup && settings.producer_name.is_some();
    let mut locks = Vec::new();
    let mut stored = Vec::new();
    if given {
        let names: Vec<(String, String)> = super_stream
            .partitions
            .iter()
            .map(|partition| {
                (
                    partition_producer(&producer_name, partition),
                    partition.clone(),
                )
            })
            .collect();
        locks = broker.lock_producer_names(&env, &names).await?;
        for (producer, partition) in &names {
            let last = broker
                .while_starting(|| broker.last_publishing_id(producer, partition))
                .await;
            match last {
                Ok(last) => stored.push(last),
                Err(e) => {
                    release_all(locks).await;
                    return Err(e);
                }
            }
        }
    }
    publish(
        &env,
        broker,
        settings,
        asked,
        &super_stream,
        &producer_name,
        (&stored, locks),
        shutdown,
        out,
    )
    .await
}

/// The publishing part of a super-stream produce run, once the name is held.
#[allow(clippy::too_many_arguments)]
async fn publish(
    env: &Environment,
    broker: &BrokerSettings,
    settings: &ProduceSettings,
    asked: &SuperStreamSettings,
    super_stream: &SuperStream,
    producer_name: &str,
    (stored, locks): (&[u64], Vec<NameLock>),
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let name = &super_stream.name;
    let plan = match plan(settings, stored, producer_name, name, out) {
        Ok(plan) => plan,
        Err(e) => {
            release_all(locks).await;
            return Err(e);
        }
    };
    let mut source = produce::update_source(settings, plan.after, plan.to_send.unwrap_or(0));
    let options = PublisherOptions {
        batch_size: settings.publish.batch_size,
        max_in_flight: settings.publish.max_in_flight,
        filter_values: settings.publish.filter_values,
        producer_name: producer_name.to_string(),
        dedup: settings.dedup,
        batching: settings.publish.batching,
    };
    let events = move |event| out.publisher_event(&event);
    let opened = PartitionedPublisher::open(
        env,
        broker,
        super_stream,
        options,
        asked.by_warehouse(),
        std::sync::Arc::new(events),
    )
    .await;
    let mut publisher = match opened {
        Ok(publisher) => publisher,
        Err(e) => {
            release_all(locks).await;
            return Err(e);
        }
    };
    // Each partition's publisher holds its name from now on, and releases it on close.
    publisher.hold_names(locks);
    publisher.stop_on(&shutdown.signal());
    if let Some(stored) = plan.resume_after {
        publisher.resume_after(stored);
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let finish_with = settings.dedup.then(|| {
        format!(
            "invstream {}",
            produce::resume_command(&argv, producer_name, plan.total)
        )
    });
    if let Some(command) = &finish_with {
        publisher.set_give_up_advice(format!(": to send the rest exactly once, run: {command}"));
    }
    let what = match &settings.source {
        UpdateSourceSettings::Generated { .. } => {
            format!("{} updates", plan.to_send.unwrap_or(0))
        }
        UpdateSourceSettings::Input { source, .. } => format!("the updates in {source}"),
    };
    let by = match asked.by_warehouse() {
        true => "warehouse",
        false => "product id",
    };
    out.status(&format!(
        "publishing {what} to super stream '{name}' ({} partitions: {}, routed by {by}) as producer '{producer_name}'",
        super_stream.partitions.len(),
        super_stream.partitions.join(", ")
    ));
    let drive = produce::drive(
        &mut publisher,
        &mut source,
        settings,
        shutdown,
        out,
        plan.to_send,
        finish_with.as_deref(),
    )
    .await;
    let passed_over = publisher.passed_over();
    let partitions = publisher.partitions().to_vec();
    publisher.close().await;
    let Driven {
        outcome: outcomes,
        interrupted,
        invalid_lines,
    } = drive?;
    let total = total(&outcomes);
    if let (Some(command), true) = (&finish_with, interrupted || total.failed > 0) {
        out.status(&format!("to send the rest exactly once, run: {command}"));
    }
    let skipped = plan.skipped + passed_over;
    let mut summary = produce::summary(name, producer_name, total, skipped, invalid_lines);
    summary.interrupted = interrupted;
    summary.partitions = partitions
        .iter()
        .zip(outcomes)
        .map(|(partition, outcome)| {
            produce::summary(
                partition,
                &partition_producer(producer_name, partition),
                outcome,
                0,
                0,
            )
        })
        .collect();
    Ok(summary)
}
