//! The publisher every command drives: one `Publisher` per partition of its target behind a
//! router (a stream is the one-partition case, where nothing is routed). A batch is split by
//! partition and each part handed to its partition's publisher, so every update of a product
//! (hash routing) lands in one partition, in order. On a super stream every partition's
//! publisher uses the run's producer name (the broker deduplicates per stream), as the Java
//! client's super stream producer does; `Target::producer_name` says which.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use rabbitmq_stream_client::{Client, Environment};

use super::{
    BatchReceipt, EventSink, GroupSent, OnHandedBy, PublishOutcome, Publisher, PublisherOptions,
    PublisherStats,
};
use crate::broker::lock::NameLock;
use crate::broker::BrokerSettings;
use crate::error::{InvError, Result};
use crate::model::NumberedUpdate;
use crate::routing::partition_of_product;
use crate::shutdown::StopSignal;
use crate::target::Target;

/// How updates find their partition.
enum Router {
    /// A stream: its one publisher takes everything.
    Single,
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
    /// The highest publishing id handed to each partition's publisher by this run.
    last_sent: Vec<u64>,
}

impl PartitionedPublisher {
    /// Opens a publisher on each partition of `target`, named as [`Target::producer_name`]
    /// says; on a super stream, routes by product id, or with `by_warehouse` by the broker's
    /// `route` answers.
    pub async fn open(
        env: &Environment,
        broker: &BrokerSettings,
        target: &Target,
        options: PublisherOptions,
        by_warehouse: bool,
        events: EventSink,
    ) -> Result<Self> {
        let router = match (target.is_super_stream, by_warehouse) {
            (false, _) => Router::Single,
            (true, false) => Router::Hash,
            (true, true) => Router::Keys {
                super_stream: target.name.clone(),
                client: Box::new(broker.connect_client().await?),
                routes: HashMap::new(),
            },
        };
        let mut publishers = Vec::new();
        for partition in &target.partitions {
            let options = PublisherOptions {
                producer_name: target.producer_name(&options.producer_name, partition),
                carried_name: Some(options.producer_name.clone()),
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
            last_sent: vec![0; target.partitions.len()],
            partitions: target.partitions.clone(),
            publishers,
            router,
            resume_after: None,
            passed_over: 0,
        })
    }

    /// Every partition's publisher gives up reconnecting when `stop` comes.
    pub fn stop_on(&mut self, stop: &StopSignal) {
        for publisher in &mut self.publishers {
            publisher.stop_on(stop.clone());
        }
    }

    /// Each partition's publisher holds its own producer name's lock (`locks` in partition
    /// order, as `lock_producer_names` took them).
    pub fn hold_names(&mut self, locks: Vec<NameLock>) {
        for (publisher, lock) in self.publishers.iter_mut().zip(locks) {
            publisher.hold_name(lock);
        }
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

    /// The highest publishing id this run handed to each partition (0 where none).
    pub fn last_sent(&self) -> &[u64] {
        &self.last_sent
    }

    /// Reads the confirmed messages, all partitions together, while the publishers work.
    pub fn progress_counter(&self) -> impl Fn() -> u64 {
        let stats = self.stats();
        move || stats.iter().map(PublisherStats::confirmed).sum()
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
            Router::Single => Ok(vec![0; batch.len()]),
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
                    let partition =
                        crate::broker::admin::route(client, super_stream, &update.warehouse)
                            .await?;
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
        // A stream's batch goes out as it is (nothing to route, split or pass over).
        if let (Router::Single, None) = (&self.router, &self.resume_after) {
            let Some(&(last, _)) = batch.last() else {
                return Ok(Vec::new());
            };
            let receipt = self.publishers[0].send(&batch, stall_timeout).await?;
            self.last_sent[0] = last;
            return Ok(vec![receipt]);
        }
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
        for (index, (publisher, part)) in self.publishers.iter_mut().zip(parts).enumerate() {
            if let Some(&(last, _)) = part.last() {
                receipts.push(publisher.send(&part, stall_timeout).await?);
                self.last_sent[index] = last;
            }
        }
        Ok(receipts)
    }

    /// `Publisher::send_groups` across the partitions: each group split by partition (in
    /// order), each partition's parts sent in shared frames. For each group, what became of
    /// each part it has; and the first error, if any (a partition that fails does not stop the
    /// others). `on_handed` hears (partition, group, updates) of each frame that went out.
    pub async fn send_groups(
        &mut self,
        groups: Vec<Vec<NumberedUpdate>>,
        stall_timeout: Duration,
        on_handed: OnHandedBy<'_>,
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
        for (partition, (publisher, (parts, owners))) in
            self.publishers.iter_mut().zip(parts).enumerate()
        {
            if parts.is_empty() {
                continue;
            }
            let mut handed = |part: usize, count: usize| on_handed(partition, owners[part], count);
            let sent = publisher
                .send_groups(&parts, stall_timeout, &mut handed)
                .await;
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
