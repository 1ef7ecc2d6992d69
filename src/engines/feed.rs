//! The sample feed: what a run did in each interval (rates, the interval's latency histograms,
//! confirms outstanding, reconnects, each partition's position), taken from the engines'
//! counters by a [`Sampler`] and sent on a channel. Every view of a running benchmark reads the
//! feed and nothing else: the per-second lines, the timeline in `--json`, the plot and the HDR
//! log today, a live dashboard or a matrix runner next. Like oha's monitor, views never see the
//! engines and the engines never see a view.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::engines::publisher::PublisherStats;
use crate::stats::{BenchSecond, LatencyHistogram};

/// What the consumers of a run share with the sampler: messages read and their end-to-end
/// latencies, the messages per chunk they received (each consumer folds its own in every so
/// often), and each reader's position (stored once per chunk).
#[derive(Default)]
pub struct ConsumerCounters {
    pub consumed: AtomicU64,
    pub end_to_end: Mutex<LatencyHistogram>,
    /// Messages per chunk received (the values count messages, not microseconds).
    chunk_messages: Mutex<LatencyHistogram>,
    /// Each reader's next offset to read (0 before its first chunk), reader by reader.
    positions: Vec<AtomicU64>,
}

impl ConsumerCounters {
    /// Counters for `readers` readers (positions at 0).
    pub fn for_readers(readers: usize) -> Self {
        ConsumerCounters {
            positions: (0..readers).map(|_| AtomicU64::new(0)).collect(),
            ..ConsumerCounters::default()
        }
    }

    /// Reader `reader` has read everything before `next_offset`; one store per chunk.
    pub fn set_position(&self, reader: usize, next_offset: u64) {
        if let Some(position) = self.positions.get(reader) {
            position.store(next_offset, Ordering::Relaxed);
        }
    }

    /// Every reader's next offset to read, reader by reader.
    pub fn positions(&self) -> Vec<u64> {
        self.positions
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }

    /// Adds a consumer's chunk sizes (messages per chunk) since its last fold.
    pub fn fold_chunks(&self, chunk_messages: &LatencyHistogram) {
        self.chunk_messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(chunk_messages);
    }

    /// Every chunk size recorded so far.
    pub fn chunk_messages(&self) -> LatencyHistogram {
        self.chunk_messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    /// Every end-to-end latency recorded so far.
    pub fn end_to_end(&self) -> LatencyHistogram {
        self.end_to_end
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Adds a consumer's messages and latencies since its last fold.
    pub fn fold(&self, consumed: u64, end_to_end: &LatencyHistogram) {
        self.consumed.fetch_add(consumed, Ordering::Relaxed);
        self.end_to_end
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(end_to_end);
    }
}

/// One interval of a run.
#[derive(Debug, Clone)]
pub struct IntervalSample {
    /// Since the run started, at the start of this interval.
    pub start: Duration,
    pub length: Duration,
    /// Rates over the interval and its latency percentiles (the `--json` timeline's entry).
    pub second: BenchSecond,
    /// Publish-to-confirm latencies of the confirms that arrived in this interval.
    pub confirm: LatencyHistogram,
    /// Publish-to-read latencies of the messages read in this interval.
    pub end_to_end: LatencyHistogram,
    /// Messages sent and not confirmed yet, at the end of the interval.
    pub in_flight: u64,
    /// Connections replaced so far, all publishers together.
    pub reconnects: u64,
    /// Messages confirmed so far per partition (one entry for a stream), all producers together.
    pub confirmed_by_partition: Vec<u64>,
    /// Messages sent and read so far, all producers and consumers together.
    pub sent_total: u64,
    pub consumed_total: u64,
    /// Messages the broker refused or never confirmed so far, all producers together.
    pub failed_total: u64,
    /// Messages per chunk of the chunks the consumers received in this interval (values count
    /// messages).
    pub chunk_messages: LatencyHistogram,
    /// Each reader's next offset to read at the end of the interval: consumer by consumer, each
    /// consumer's partitions in order (a partition's lag is its confirmed count minus this).
    pub reader_positions: Vec<u64>,
    /// The run's last sample (taken when it ended, over a possibly shorter interval).
    pub last: bool,
}

/// The counters at one moment.
#[derive(Default)]
struct Reading {
    at: Duration,
    sent: u64,
    confirmed: u64,
    consumed: u64,
    confirm: LatencyHistogram,
    end_to_end: LatencyHistogram,
    chunk_messages: LatencyHistogram,
}

/// Takes interval samples from the engines' counters.
pub struct Sampler {
    /// Every publisher's counters, producer by producer, each producer's partitions in order.
    publishers: Vec<PublisherStats>,
    partitions: usize,
    consumers: Arc<ConsumerCounters>,
    previous: Reading,
}

impl Sampler {
    /// `publishers`: each producer's partitions' counters in partition order, producer after
    /// producer (`partitions` each).
    pub fn new(
        publishers: Vec<PublisherStats>,
        partitions: usize,
        consumers: Arc<ConsumerCounters>,
    ) -> Self {
        Sampler {
            publishers,
            partitions: partitions.max(1),
            consumers,
            previous: Reading::default(),
        }
    }

    /// Messages confirmed so far, all publishers together.
    pub fn confirmed(&self) -> u64 {
        self.publishers.iter().map(PublisherStats::confirmed).sum()
    }

    pub fn consumed(&self) -> u64 {
        self.consumers.consumed()
    }

    /// Messages handed to the broker so far, and their bodies' bytes, all publishers together.
    pub fn sent(&self) -> (u64, u64) {
        self.publishers.iter().fold((0, 0), |(messages, bytes), p| {
            (messages + p.sent(), bytes + p.bytes_sent())
        })
    }

    /// The interval since the previous sample (or the start), ending `at` into the run.
    pub fn sample(&mut self, at: Duration, last: bool) -> IntervalSample {
        let reading = self.read(at);
        let previous = std::mem::replace(&mut self.previous, reading);
        let now = &self.previous;
        let length = now.at.saturating_sub(previous.at);
        let span = length.as_secs_f64().max(f64::EPSILON);
        let rate = |now: u64, before: u64| (now.saturating_sub(before) as f64 / span).round();
        let confirm = now.confirm.since(&previous.confirm);
        let end_to_end = now.end_to_end.since(&previous.end_to_end);
        let chunk_messages = now.chunk_messages.since(&previous.chunk_messages);
        let (confirm_summary, end_to_end_summary) = (confirm.summary(), end_to_end.summary());
        let mut confirmed_by_partition = vec![0; self.partitions];
        for (index, stats) in self.publishers.iter().enumerate() {
            confirmed_by_partition[index % self.partitions] += stats.confirmed();
        }
        IntervalSample {
            start: previous.at,
            length,
            second: BenchSecond {
                second: (now.at.as_secs_f64() * 10.0).round() / 10.0,
                published_per_s: rate(now.sent, previous.sent),
                confirmed_per_s: rate(now.confirmed, previous.confirmed),
                consumed_per_s: rate(now.consumed, previous.consumed),
                confirm_p50_us: confirm_summary.p50,
                confirm_p99_us: confirm_summary.p99,
                end_to_end_p50_us: end_to_end_summary.p50,
                end_to_end_p99_us: end_to_end_summary.p99,
            },
            confirm,
            end_to_end,
            in_flight: self.publishers.iter().map(PublisherStats::in_flight).sum(),
            reconnects: self.publishers.iter().map(PublisherStats::reconnects).sum(),
            confirmed_by_partition,
            sent_total: now.sent,
            consumed_total: now.consumed,
            failed_total: self.publishers.iter().map(PublisherStats::failed).sum(),
            chunk_messages,
            reader_positions: self.consumers.positions(),
            last,
        }
    }

    fn read(&self, at: Duration) -> Reading {
        let mut confirm = LatencyHistogram::new();
        for stats in &self.publishers {
            confirm.merge(&stats.latency());
        }
        Reading {
            at,
            sent: self.publishers.iter().map(PublisherStats::sent).sum(),
            confirmed: self.confirmed(),
            consumed: self.consumers.consumed(),
            confirm,
            end_to_end: self.consumers.end_to_end(),
            chunk_messages: self.consumers.chunk_messages(),
        }
    }
}

/// The sending end of a feed; a run's samples go to every view that subscribed.
pub type FeedSender = mpsc::UnboundedSender<IntervalSample>;

/// A new feed: the sampler's side and the views' side.
pub fn channel() -> (FeedSender, mpsc::UnboundedReceiver<IntervalSample>) {
    mpsc::unbounded_channel()
}

/// Something that shows or keeps a run's samples as they come.
pub trait SampleView {
    fn on_sample(&mut self, sample: &IntervalSample);
}

/// Hands every sample of `feed` to each of `views`, in order, until the feed ends.
pub async fn show(
    mut feed: mpsc::UnboundedReceiver<IntervalSample>,
    views: &mut [&mut dyn SampleView],
) {
    while let Some(sample) = feed.recv().await {
        for view in views.iter_mut() {
            view.on_sample(&sample);
        }
    }
}

/// Keeps every sample: the run's timeline for `--json`, the plot and the HDR log.
#[derive(Default)]
pub struct Recorder {
    pub samples: Vec<IntervalSample>,
}

impl SampleView for Recorder {
    fn on_sample(&mut self, sample: &IntervalSample) {
        self.samples.push(sample.clone());
    }
}

impl Recorder {
    /// The timeline of the run's summary: one entry per sample.
    pub fn timeline(&self) -> Vec<BenchSecond> {
        self.samples.iter().map(|s| s.second.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_holds_only_its_interval() {
        let publisher = PublisherStats::for_tests(1_000, 0);
        let consumers = Arc::new(ConsumerCounters::default());
        let mut sampler = Sampler::new(vec![publisher], 1, consumers.clone());
        let mut latencies = LatencyHistogram::new();
        latencies.record_us(1_000);
        consumers.fold(100, &latencies);
        let first = sampler.sample(Duration::from_secs(1), false);
        assert_eq!(first.second.consumed_per_s, 100.0);
        assert_eq!(first.end_to_end.summary().count, 1);
        consumers.fold(50, &LatencyHistogram::new());
        let second = sampler.sample(Duration::from_millis(1_500), true);
        assert_eq!(second.start, Duration::from_secs(1));
        assert_eq!(second.length, Duration::from_millis(500));
        assert_eq!(second.second.consumed_per_s, 100.0, "50 in half a second");
        assert_eq!(
            second.end_to_end.summary().count,
            0,
            "nothing new in this interval"
        );
        assert!(second.last);
        assert_eq!(second.confirmed_by_partition, vec![0]);
    }

    #[test]
    fn positions_and_chunk_sizes_reach_the_sample() {
        let consumers = Arc::new(ConsumerCounters::for_readers(2));
        let mut sampler = Sampler::new(Vec::new(), 1, consumers.clone());
        let mut chunks = LatencyHistogram::new();
        chunks.record_us(100);
        consumers.fold_chunks(&chunks);
        consumers.set_position(1, 100);
        consumers.set_position(7, 5); // no such reader: ignored
        let first = sampler.sample(Duration::from_secs(1), false);
        assert_eq!(first.reader_positions, vec![0, 100]);
        assert_eq!(first.chunk_messages.summary().count, 1);
        let second = sampler.sample(Duration::from_secs(2), false);
        assert_eq!(
            second.chunk_messages.summary().count,
            0,
            "only this interval's"
        );
    }

    #[test]
    fn partitions_add_up_over_producers() {
        let stats: Vec<_> = (0..4).map(|_| PublisherStats::for_tests(10, 0)).collect();
        let mut sampler = Sampler::new(stats, 2, Arc::new(ConsumerCounters::default()));
        let sample = sampler.sample(Duration::from_secs(1), false);
        assert_eq!(sample.confirmed_by_partition.len(), 2);
    }

    #[test]
    fn every_view_sees_every_sample_in_order() {
        let (tx, rx) = channel();
        let mut sampler = Sampler::new(Vec::new(), 1, Arc::new(ConsumerCounters::default()));
        for at in 1..=3 {
            tx.send(sampler.sample(Duration::from_secs(at), at == 3))
                .unwrap();
        }
        drop(tx);
        let (mut a, mut b) = (Recorder::default(), Recorder::default());
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(show(rx, &mut [&mut a, &mut b]));
        let seconds: Vec<f64> = a.timeline().iter().map(|s| s.second).collect();
        assert_eq!(seconds, vec![1.0, 2.0, 3.0]);
        assert_eq!(b.samples.len(), 3);
        assert!(b.samples[2].last);
    }
}
