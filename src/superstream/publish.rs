//! `produce --super-stream`: one `Publisher` per partition behind a router. A batch is split by
//! partition and each part handed to its partition's publisher, so every update of a product
//! (hash routing) lands in one partition, in order. Each publisher has its own producer name,
//! `NAME-PARTITION`, which the broker deduplicates under on that partition.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use rabbitmq_stream_client::{Client, Environment};

use super::SuperStream;
use crate::broker::BrokerSettings;
use crate::error::{InvError, Result};
use crate::input::NumberedUpdate;
use crate::produce::{self, Driven, Publishing};
use crate::publisher::{
    BatchReceipt, EventSink, GroupSent, PublishOutcome, Publisher, PublisherOptions, PublisherStats,
};
use crate::report::Output;
use crate::routing::partition_of_product;
pub use crate::settings::SuperStreamSettings;
use crate::settings::{CommonSettings, ProduceSettings, UpdateSourceSettings};
use crate::shutdown::Shutdown;
use crate::stats::RunSummary;

/// How updates find their partition.
enum Router {
    /// By a hash of the product id, as the Java client's `HashRoutingStrategy`.
    Hash,
    /// By the warehouse, asking the broker once per warehouse (`route`).
    Keys {
        super_stream: String,
        client: Box<Client>,
        routes: HashMap<String, usize>,
    },
}

/// One publisher per partition.
pub struct PartitionedPublisher {
    partitions: Vec<String>,
    publishers: Vec<Publisher>,
    router: Router,
    /// `--resume`: the last publishing id each partition holds; updates at or below it are
    /// passed over (the partitions of one name hold different amounts when a run stops).
    resume_after: Option<Vec<u64>>,
    /// Updates passed over for `resume_after`.
    passed_over: u64,
}

/// The producer name a partition's publisher uses.
pub fn partition_producer(name: &str, partition: &str) -> String {
    format!("{name}-{partition}")
}

impl PartitionedPublisher {
    /// Opens a publisher on each partition of `super_stream`, named `options.producer_name`
    /// followed by `-PARTITION`; with `by_warehouse`, routes by the broker's `route` answers.
    pub async fn open(
        env: &Environment,
        broker: &BrokerSettings,
        super_stream: &SuperStream,
        options: PublisherOptions,
        by_warehouse: bool,
        events: EventSink,
    ) -> Result<Self> {
        let router = match by_warehouse {
            false => Router::Hash,
            true => Router::Keys {
                super_stream: super_stream.name.clone(),
                client: Box::new(super::routing_client(broker).await?),
                routes: HashMap::new(),
            },
        };
        let mut publishers = Vec::new();
        for partition in &super_stream.partitions {
            let options = PublisherOptions {
                producer_name: partition_producer(&options.producer_name, partition),
                ..options.clone()
            };
            match Publisher::open(env, broker, partition, options, events.clone()).await {
                Ok(publisher) => publishers.push(publisher),
                Err(e) => {
                    for publisher in publishers {
                        publisher.close().await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(PartitionedPublisher {
            partitions: super_stream.partitions.clone(),
            publishers,
            router,
            resume_after: None,
            passed_over: 0,
        })
    }

    /// Passes over the updates each partition already holds: `stored[i]` is the last publishing
    /// id partition `i` holds for its producer name.
    pub fn resume_after(&mut self, stored: Vec<u64>) {
        self.resume_after = Some(stored);
    }

    /// Updates passed over because their partition already held them (`resume_after`).
    pub fn passed_over(&self) -> u64 {
        self.passed_over
    }

    pub fn partitions(&self) -> &[String] {
        &self.partitions
    }

    /// Each partition's counters, readable while the publishers work.
    pub fn stats(&self) -> Vec<PublisherStats> {
        self.publishers.iter().map(Publisher::stats).collect()
    }

    /// Confirmed messages, all partitions together.
    pub fn confirmed(&self) -> u64 {
        self.publishers.iter().map(Publisher::confirmed).sum()
    }

    /// What to tell the user when reconnecting gives up.
    pub fn set_give_up_advice(&mut self, advice: String) {
        for publisher in &mut self.publishers {
            publisher.set_give_up_advice(advice.clone());
        }
    }

    /// Waits until `count` more messages fit under every partition's in-flight bound (a part of
    /// a batch is never larger than the batch), a connection is lost, or `timeout` passes.
    pub async fn wait_for_room(&self, count: u64, timeout: Duration) {
        join_all(
            self.publishers
                .iter()
                .map(|publisher| publisher.wait_for_room(count, timeout)),
        )
        .await;
    }

    /// The partition index of each update, in order.
    async fn route(&mut self, batch: &[NumberedUpdate]) -> Result<Vec<usize>> {
        let count = self.partitions.len() as u32;
        match &mut self.router {
            Router::Hash => Ok(batch
                .iter()
                .map(|(_, update)| partition_of_product(update.product_id, count) as usize)
                .collect()),
            Router::Keys {
                super_stream,
                client,
                routes,
            } => {
                let mut indexes = Vec::with_capacity(batch.len());
                for (_, update) in batch {
                    if let Some(index) = routes.get(&update.warehouse) {
                        indexes.push(*index);
                        continue;
                    }
                    let partition = super::route(client, super_stream, &update.warehouse).await?;
                    let index = partition
                        .and_then(|p| self.partitions.iter().position(|known| *known == p))
                        .ok_or_else(|| {
                            InvError::usage(format!(
                                "update seq {} has warehouse '{}', which no partition of super stream '{super_stream}' is bound to (partitions {}): publish it with hash routing (leave out --partition-keys) or add a partition for it",
                                update.seq,
                                update.warehouse,
                                self.partitions.join(", ")
                            ))
                        })?;
                    routes.insert(update.warehouse.clone(), index);
                    indexes.push(index);
                }
                Ok(indexes)
            }
        }
    }

    /// Splits `batch` by partition and hands each part to its partition's publisher (see
    /// `Publisher::send`; run it to completion).
    pub async fn send(
        &mut self,
        batch: Vec<NumberedUpdate>,
        stall_timeout: Duration,
    ) -> Result<()> {
        self.send_with_receipts(batch, stall_timeout)
            .await
            .map(|_| ())
    }

    /// `send`, with a receipt per partition the batch touched: the batch is stored once all of
    /// them settled.
    pub async fn send_with_receipts(
        &mut self,
        batch: Vec<NumberedUpdate>,
        stall_timeout: Duration,
    ) -> Result<Vec<BatchReceipt>> {
        let indexes = self.route(&batch).await?;
        let mut parts: Vec<Vec<NumberedUpdate>> = vec![Vec::new(); self.partitions.len()];
        for (update, index) in batch.into_iter().zip(indexes) {
            if let Some(stored) = &self.resume_after {
                if update.0 <= stored[index] {
                    self.passed_over += 1;
                    continue;
                }
            }
            parts[index].push(update);
        }
        let mut receipts = Vec::new();
        for (publisher, part) in self.publishers.iter_mut().zip(parts) {
            if !part.is_empty() {
                receipts.push(publisher.send(&part, stall_timeout).await?);
            }
        }
        Ok(receipts)
    }

    /// `Publisher::send_groups` across the partitions: each group split by partition (in
    /// order), each partition's parts sent in shared frames. For each group, what became of
    /// each part it has; and the first error, if any (a partition that fails does not stop the
    /// others).
    pub async fn send_groups(
        &mut self,
        groups: Vec<Vec<NumberedUpdate>>,
        stall_timeout: Duration,
    ) -> (Vec<Vec<GroupSent>>, Option<InvError>) {
        let mut fates: Vec<Vec<GroupSent>> = (0..groups.len()).map(|_| Vec::new()).collect();
        let mut first_error = None;
        // Per partition: the parts, and the group each belongs to.
        let mut parts: Vec<(Vec<Vec<NumberedUpdate>>, Vec<usize>)> =
            vec![(Vec::new(), Vec::new()); self.partitions.len()];
        for (group, updates) in groups.into_iter().enumerate() {
            let indexes = match self.route(&updates).await {
                Ok(indexes) => indexes,
                Err(e) => {
                    fates[group].push(GroupSent::Unsent);
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let mut split: Vec<Vec<NumberedUpdate>> = vec![Vec::new(); self.partitions.len()];
            for (update, index) in updates.into_iter().zip(indexes) {
                split[index].push(update);
            }
            for (index, part) in split.into_iter().enumerate() {
                if !part.is_empty() {
                    parts[index].0.push(part);
                    parts[index].1.push(group);
                }
            }
        }
        for (publisher, (parts, owners)) in self.publishers.iter_mut().zip(parts) {
            if parts.is_empty() {
                continue;
            }
            let sent = publisher.send_groups(&parts, stall_timeout).await;
            for (fate, group) in sent.groups.into_iter().zip(owners) {
                fates[group].push(fate);
            }
            if let Some(e) = sent.error {
                first_error.get_or_insert(e);
            }
        }
        (fates, first_error)
    }

    /// Whether updates go to partitions by a hash of their product id (not by the broker's
    /// routing of their warehouse).
    pub fn routes_by_product(&self) -> bool {
        matches!(self.router, Router::Hash)
    }

    /// Whether updates of `products` (one entry per update) fit under the in-flight bound of
    /// the partitions they go to right now (with key routing, where finding those takes the
    /// broker: whether they fit in every partition).
    pub fn has_room_for(&self, products: &[u64]) -> bool {
        let count = self.partitions.len() as u32;
        match self.router {
            Router::Hash => {
                let mut parts = vec![0u64; self.partitions.len()];
                for product in products {
                    parts[partition_of_product(*product, count) as usize] += 1;
                }
                self.publishers
                    .iter()
                    .zip(parts)
                    .all(|(publisher, part)| publisher.has_room(part))
            }
            Router::Keys { .. } => self
                .publishers
                .iter()
                .all(|publisher| publisher.has_room(products.len() as u64)),
        }
    }

    /// Replaces the lost connections of any partition's publisher (see `Publisher::recover`).
    pub async fn recover(&mut self) -> Result<()> {
        for publisher in &mut self.publishers {
            if publisher.is_lost() {
                publisher.recover().await?;
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` for every partition's confirms; each partition's outcome.
    pub async fn finish(&mut self, timeout: Duration) -> Result<Vec<PublishOutcome>> {
        join_all(
            self.publishers
                .iter_mut()
                .map(|publisher| publisher.finish(timeout)),
        )
        .await
        .into_iter()
        .collect()
    }

    /// What each partition's publisher achieved so far.
    pub fn outcomes(&self) -> Vec<PublishOutcome> {
        self.publishers.iter().map(Publisher::outcome).collect()
    }

    /// Closes every publisher (and the routing connection).
    pub async fn close(self) {
        join_all(self.publishers.into_iter().map(Publisher::close)).await;
        if let Router::Keys { client, .. } = self.router {
            let _ = client.close().await;
        }
    }
}

impl Publishing for PartitionedPublisher {
    type Outcome = Vec<PublishOutcome>;

    async fn wait_for_room(&self, count: u64, timeout: Duration) {
        PartitionedPublisher::wait_for_room(self, count, timeout).await
    }

    async fn send_batch(
        &mut self,
        batch: Vec<NumberedUpdate>,
        stall_timeout: Duration,
    ) -> Result<()> {
        self.send(batch, stall_timeout).await
    }

    fn progress_counter(&self) -> Box<dyn Fn() -> u64> {
        let stats = self.stats();
        Box::new(move || stats.iter().map(PublisherStats::confirmed).sum())
    }

    async fn finish(&mut self, timeout: Duration) -> Result<Vec<PublishOutcome>> {
        PartitionedPublisher::finish(self, timeout).await
    }

    fn outcome(&self) -> Vec<PublishOutcome> {
        self.outcomes()
    }
}

/// The partitions' outcomes as one.
pub fn total(outcomes: &[PublishOutcome]) -> PublishOutcome {
    let mut total = PublishOutcome {
        sent: 0,
        bytes: 0,
        confirmed: 0,
        failed: 0,
        reconnects: 0,
        elapsed: Duration::ZERO,
        latency: Default::default(),
        max_stall: Duration::ZERO,
    };
    for outcome in outcomes {
        total.sent += outcome.sent;
        total.bytes += outcome.bytes;
        total.confirmed += outcome.confirmed;
        total.failed += outcome.failed;
        total.reconnects += outcome.reconnects;
        total.elapsed = total.elapsed.max(outcome.elapsed);
        total.latency.merge(&outcome.latency);
        total.max_stall = total.max_stall.max(outcome.max_stall);
    }
    total
}

/// What a super-stream produce run sends, from what each partition holds for the name.
struct Plan {
    /// Updates (or input lines) before this publishing id are not generated (read) at all.
    after: u64,
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
                    to_send: Some(count - after),
                    total: Some(*count),
                    resume_after,
                })
            }
            false => Ok(Plan {
                after: highest,
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
    super::check_broker_supports(broker).await?;
    let env = broker.connect().await?;
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
        for partition in &super_stream.partitions {
            let producer = partition_producer(&producer_name, partition);
            let lock = broker.lock_producer_name(&env, partition, &producer).await;
            match lock {
                Ok(lock) => locks.push(lock),
                Err(e) => {
                    release(locks).await;
                    return Err(e);
                }
            }
            let last = broker
                .while_starting(|| broker.last_publishing_id(&producer, partition))
                .await;
            match last {
                Ok(last) => stored.push(last),
                Err(e) => {
                    release(locks).await;
                    return Err(e);
                }
            }
        }
    }
    let summary = publish(
        &env,
        broker,
        settings,
        asked,
        &super_stream,
        &producer_name,
        &stored,
        shutdown,
        out,
    )
    .await;
    release(locks).await;
    summary
}

async fn release(locks: Vec<crate::broker::lock::NameLock>) {
    join_all(locks.into_iter().map(|lock| lock.release())).await;
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
    stored: &[u64],
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let name = &super_stream.name;
    let plan = plan(settings, stored, producer_name, name, out)?;
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
    let mut publisher = PartitionedPublisher::open(
        env,
        broker,
        super_stream,
        options,
        asked.by_warehouse(),
        std::sync::Arc::new(events),
    )
    .await?;
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
    let skipped = plan.after + passed_over;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_add_up() {
        let one = PublishOutcome {
            sent: 3,
            bytes: 30,
            confirmed: 2,
            failed: 1,
            reconnects: 1,
            elapsed: Duration::from_secs(2),
            latency: Default::default(),
            max_stall: Duration::from_millis(300),
        };
        let sum = total(&[one.clone(), one]);
        assert_eq!((sum.sent, sum.bytes, sum.confirmed), (6, 60, 4));
        assert_eq!((sum.failed, sum.reconnects), (2, 2));
        assert_eq!(sum.max_stall, Duration::from_millis(300));
        assert_eq!(sum.elapsed, Duration::from_secs(2));
    }
}
