//! The super-stream publisher: one `Publisher` per partition behind a router. A batch is split
//! by partition and each part handed to its partition's publisher, so every update of a product
//! (hash routing) lands in one partition, in order. Each publisher has its own producer name,
//! `NAME-PARTITION`, which the broker deduplicates under on that partition. `produce`, `serve`
//! and `bench` drive it like one stream's `Publisher`.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use rabbitmq_stream_client::{Client, Environment};

use super::SuperStream;
use crate::broker::BrokerSettings;
use crate::error::{InvError, Result};
use crate::input::NumberedUpdate;
use crate::produce::Publishing;
use crate::publisher::{
    BatchReceipt, EventSink, GroupSent, OnHandedBy, PublishOutcome, Publisher, PublisherOptions,
    PublisherStats,
};
use crate::routing::partition_of_product;

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

    /// Every partition's publisher gives up reconnecting when `stop` comes.
    pub fn stop_on(&mut self, stop: &crate::shutdown::StopSignal) {
        for publisher in &mut self.publishers {
            publisher.stop_on(stop.clone());
        }
    }

    /// Each partition's publisher holds its own producer name's lock (`locks` in partition
    /// order, as `lock_producer_names` took them).
    pub fn hold_names(&mut self, locks: Vec<crate::broker::lock::NameLock>) {
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
