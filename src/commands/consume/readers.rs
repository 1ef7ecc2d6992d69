//! Every reader of a consume run, one per consumer on each partition: its sink, label and plan
//! built, subscribed in turn, then all read together through `reader::spawn_all` under one
//! progress bar, each tally kept with the consumer and the partition it belongs to.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rabbitmq_stream_client::Environment;

use super::partitions;
use super::plan::{self, PartitionPlan};
use super::tally::{AskedStart, ReadTally};
use crate::broker::BrokerSettings;
use crate::cli::ReadFrom;
use crate::engines::reader::{
    self, ReadOutcome, ReadPlan, ReaderSpec, SharedCount, SubscribeError,
};
use crate::error::{InvError, Result};
use crate::report::{MessagePrinter, Output};
use crate::settings::ConsumeSettings;
use crate::shutdown::Shutdown;
use crate::target::Target;

/// Which consumer (of `settings.readers`) read which partition (of the target's): where a
/// reader's tally goes in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub consumer: usize,
    pub partition: usize,
}

/// A reader's tally once it is done, and how long it read.
pub(super) struct Tallied {
    pub slot: Slot,
    pub tally: ReadTally,
    pub elapsed: Duration,
    /// Until its first message (see `ReadOutcome::waited`).
    pub waited: Duration,
}

/// The run's readers, subscribed.
pub(super) struct Readers {
    starts: Vec<(Slot, reader::Start<ReadTally>)>,
    /// Readers with nothing to read (a replay past the end, or of an empty partition): their
    /// empty tallies still count in the summary, as that consumer's reading of that partition.
    idle: Vec<Tallied>,
    /// Messages the readers will read together, when every reader's share is known.
    total: Option<u64>,
}

/// What building and subscribing a reader needs: the same for every reader of the run.
pub(super) struct Subscriber<'a> {
    env: &'a Environment,
    broker: &'a BrokerSettings,
    settings: &'a ConsumeSettings,
    target: &'a Target,
    /// `--product`, shared by every sink.
    products: Option<Arc<HashSet<u64>>>,
    out: Output,
}

impl<'a> Subscriber<'a> {
    pub fn new(
        env: &'a Environment,
        broker: &'a BrokerSettings,
        settings: &'a ConsumeSettings,
        target: &'a Target,
        out: Output,
    ) -> Self {
        let products = (!settings.products.is_empty())
            .then(|| Arc::new(settings.products.iter().copied().collect()));
        Subscriber {
            env,
            broker,
            settings,
            target,
            products,
            out,
        }
    }

    /// Subscribes every consumer on every partition, in that order, but those with nothing to
    /// read. Partitions go one after the other so that a broker without stream filtering is
    /// found (and said) once, and the partitions after it are read unfiltered too.
    pub async fn subscribe(&self, plans: &[PartitionPlan]) -> Result<Readers> {
        let mut readers = Readers {
            starts: Vec::new(),
            idle: Vec::new(),
            total: Some(0),
        };
        let mut filter = self.products.as_deref().cloned();
        let consumers = self.settings.readers.len();
        let shared = self.shared_count();
        let shared_counts: Vec<Option<Arc<SharedCount>>> = (0..consumers)
            .map(|_| shared.map(|count| Arc::new(SharedCount::new(count))))
            .collect();
        for (index, partition) in plans.iter().enumerate() {
            let mut plan = self.read_plan(partition, filter);
            let mut subscribed = Vec::new();
            for (consumer, spec) in partition.readers.iter().enumerate() {
                let slot = Slot {
                    consumer,
                    partition: index,
                };
                let spec = ReaderSpec {
                    label: partitions::label(self.target, spec, &partition.partition, consumers),
                    ..spec.clone()
                };
                let sink = self.sink(partition, &spec);
                if partition.past_end(self.settings, &spec) {
                    readers.idle.push(Tallied {
                        slot,
                        tally: sink,
                        elapsed: Duration::ZERO,
                        waited: Duration::ZERO,
                    });
                    continue;
                }
                let expected = partition.expected(self.settings, &spec);
                readers.total = readers.total.zip(expected).map(|(sum, more)| sum + more);
                let subscription = subscribe_first(self.env, &mut plan, &spec, self.out).await?;
                subscribed.push((slot, spec, subscription, sink));
            }
            filter = plan.filter_products.clone();
            let plan = Arc::new(plan);
            let starts = subscribed
                .into_iter()
                .map(|(slot, spec, subscription, sink)| {
                    let plan = plan.clone();
                    let start = reader::Start {
                        plan,
                        spec,
                        subscription,
                        sink,
                        shared_count: shared_counts[slot.consumer].clone(),
                    };
                    (slot, start)
                });
            readers.starts.extend(starts);
        }
        if let Some(count) = shared {
            // Each consumer reads the count over all its partitions.
            let consumers = readers.consumers_reading() as u64;
            readers.total = Some(count * consumers);
        }
        Ok(readers)
    }

    /// `--count` on a super stream: each consumer's total over all partitions, which its
    /// readers share (not with `--count-per-partition`; a plain stream's one reader per
    /// consumer counts alone).
    fn shared_count(&self) -> Option<u64> {
        let settings = self.settings;
        match self.target.is_super_stream && !settings.count_per_partition {
            true => settings.count,
            false => None,
        }
    }

    /// What a partition's readers share (`filter_products`: `--product`, unless the broker
    /// turned out to have no stream filtering).
    fn read_plan(
        &self,
        partition: &PartitionPlan,
        filter_products: Option<HashSet<u64>>,
    ) -> ReadPlan {
        let settings = self.settings;
        ReadPlan {
            stream: partition.partition.clone(),
            start: settings.start.clone(),
            // A shared count stops the readers of all partitions together instead.
            count: match self.shared_count() {
                Some(_) => None,
                None => settings.count,
            },
            duration: settings.duration,
            end_offset: partition.end_offset,
            filter_products,
            single_active: settings.single_active,
            prefer_replica: settings.read_from == ReadFrom::Replica,
            store_every: settings.store_every,
            broker: self.broker.clone(),
            super_stream: partitions::super_stream_name(self.target).map(str::to_string),
        }
    }

    /// A reader's sink on `partition`: `--print` lines (naming a super stream's partition,
    /// flushed at each line when following), `--verify` under producer names without their
    /// `-PARTITION`, and the note when the first message delivered is past where the reader
    /// asked to start (not with `--product`: the broker skips chunks without those products, so
    /// a later first message is no news then).
    fn sink(&self, partition: &PartitionPlan, spec: &ReaderSpec) -> ReadTally {
        let following = partition.end_offset.is_none();
        let named = partitions::partition_name(self.target, &partition.partition);
        let printer = self.settings.print.then(|| match named {
            Some(name) => MessagePrinter::for_partition(following, name),
            None => MessagePrinter::stdout(following),
        });
        let asked = match self.products {
            Some(_) => None,
            None => plan::asked_start(self.settings, spec),
        };
        let asked = asked.map(|offset| AskedStart {
            offset,
            out: self.out,
            partition: named.map(str::to_string),
        });
        let tally = ReadTally::reading(self.settings.verify, self.products.clone(), printer)
            .with_asked_start(asked);
        match named {
            Some(name) => tally.with_producer_suffix(format!("-{name}")),
            None => tally,
        }
    }
}

/// Subscribes a reader, waiting while the broker starts. A broker without stream filtering
/// (RabbitMQ < 3.13) is said once and read unfiltered from then on (`plan.filter_products`
/// cleared; the sink checks every message anyway).
async fn subscribe_first(
    env: &Environment,
    plan: &mut ReadPlan,
    spec: &ReaderSpec,
    out: Output,
) -> Result<reader::Subscription> {
    let (broker, stream) = (&plan.broker, plan.stream.as_str());
    let first = broker
        .while_starting(|| async {
            match reader::subscribe(env, plan, spec, None).await {
                Err(SubscribeError::Create(e)) => Err(broker.consumer_error(e, stream)),
                other => Ok(other),
            }
        })
        .await?;
    match first {
        Ok(subscription) => Ok(subscription),
        Err(SubscribeError::NoFiltering) => {
            out.status("the broker has no stream filtering (RabbitMQ < 3.13): filtering --product in invstream");
            plan.filter_products = None;
            reader::subscribe(env, plan, spec, None)
                .await
                .map_err(|e| e.into_error(&plan.broker, &plan.stream))
        }
        Err(e) => Err(e.into_error(broker, stream)),
    }
}

impl Readers {
    /// Whether no reader has anything to read.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// How many consumers read at least one partition.
    pub fn consumers_reading(&self) -> usize {
        let mut consumers: Vec<usize> = self.starts.iter().map(|(s, _)| s.consumer).collect();
        consumers.sort_unstable();
        consumers.dedup();
        consumers.len()
    }

    /// The tallies of the readers with nothing to read: the whole result of a run where no
    /// reader reads.
    pub fn into_idle(self) -> Vec<Tallied> {
        self.idle
    }

    /// Runs the readers to their end with a progress display; their tallies after the idle
    /// ones', or the run's error (see [`tallies`]).
    pub async fn read(self, shutdown: &Shutdown, out: Output) -> Result<Vec<Tallied>> {
        let progress = out.progress(self.total, "consume");
        let events: reader::ReaderEvents = Arc::new(move |event| out.reader_event(&event));
        let (slots, starts): (Vec<Slot>, Vec<_>) = self.starts.into_iter().unzip();
        // `join` gives the outcomes in the order the readers were started.
        let outcomes = reader::spawn_all(starts, shutdown, &events)
            .join(|read| progress.set_position(read))
            .await;
        progress.finish_and_clear();
        let outcomes = slots.into_iter().zip(outcomes.into_iter().map(|(_, o)| o));
        tallies(self.idle, outcomes, out)
    }
}

/// The readers' tallies after `idle`, or the run's error: a `--print` that could not write, else
/// the last reader's failure (after saying how much was read before it).
fn tallies(
    idle: Vec<Tallied>,
    outcomes: impl Iterator<Item = (Slot, ReadOutcome<ReadTally>)>,
    out: Output,
) -> Result<Vec<Tallied>> {
    let mut results = idle;
    let mut last_failure = None;
    let mut print_failure = None;
    for (slot, outcome) in outcomes {
        let mut tally = outcome.sink;
        tally.set_reconnects(outcome.reconnects);
        if let Some(e) = tally.finish_printing() {
            print_failure.get_or_insert(e);
        }
        last_failure = outcome.failure.or(last_failure);
        results.push(Tallied {
            slot,
            tally,
            elapsed: outcome.elapsed,
            waited: outcome.waited,
        });
    }
    if let Some(e) = print_failure {
        return Err(InvError::Output(format!(
            "cannot write the messages (--print): {e} (is the disk full?)"
        )));
    }
    if let Some(failure) = last_failure {
        // What was read is not what was asked for: say how far it got, then fail.
        let read: u64 = results.iter().map(|r| r.tally.messages()).sum();
        if read > 0 {
            out.status(&format!("read {read} messages before this error:"));
        }
        return Err(failure);
    }
    Ok(results)
}
