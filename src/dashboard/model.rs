//! What the dashboard shows, kept from the feed's samples: the last minute of rates, the last
//! second's and the whole run's latencies and chunk sizes, what is outstanding, each reader's
//! position and lag, and the events held while the screen is up. No terminal here.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::engines::feed::IntervalSample;
use crate::stats::{LatencyHistogram, LatencySummary};

/// How much of the rates' history the chart shows.
pub const HISTORY: Duration = Duration::from_secs(60);

/// Events kept for the events panel (the newest).
const EVENTS_KEPT: usize = 200;

/// What the run was asked to do, for the title, the gauge and the readers' labels.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The run in one line ("bench on stream 'S': 1 producers, 1 consumers, 1,000 messages").
    pub title: String,
    /// `--count`, when the run publishes a count.
    pub count: Option<u64>,
    /// `--duration`, when the run publishes for a time.
    pub duration: Option<Duration>,
    /// Streams the consumers read: 1 for a stream, the partitions of a super stream.
    pub partitions: usize,
    pub consumers: u64,
    /// When the producers started.
    pub started: Instant,
}

/// Rates of one sample, messages per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePoint {
    /// Seconds into the run, at the end of the sample.
    pub at_s: f64,
    pub published: f64,
    pub confirmed: f64,
    pub consumed: f64,
}

/// A reader's row: which consumer, which partition, where it is and how far behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderRow {
    pub consumer: u64,
    pub partition: usize,
    /// Next offset to read.
    pub position: u64,
    /// Messages confirmed on its partition that it has not read yet.
    pub lag: u64,
}

/// The dashboard's state.
#[derive(Debug)]
pub struct Model {
    pub plan: RunPlan,
    pub rates: VecDeque<RatePoint>,
    pub confirm_second: LatencySummary,
    pub end_to_end_second: LatencySummary,
    pub confirm_run: LatencyHistogram,
    pub end_to_end_run: LatencyHistogram,
    pub chunks_second: LatencySummary,
    pub chunks_run: LatencyHistogram,
    pub in_flight: u64,
    pub reconnects: u64,
    pub confirmed: u64,
    pub readers: Vec<ReaderRow>,
    pub events: VecDeque<String>,
    /// Events seen in all (the panel keeps only the newest).
    pub events_seen: usize,
    /// Samples received so far.
    pub samples: u64,
    /// The user asked to stop (the run is finishing).
    pub stopping: bool,
    /// The run's last sample came.
    pub over: bool,
}

impl Model {
    pub fn new(plan: RunPlan) -> Self {
        Model {
            plan,
            rates: VecDeque::new(),
            confirm_second: LatencySummary::default(),
            end_to_end_second: LatencySummary::default(),
            confirm_run: LatencyHistogram::new(),
            end_to_end_run: LatencyHistogram::new(),
            chunks_second: LatencySummary::default(),
            chunks_run: LatencyHistogram::new(),
            in_flight: 0,
            reconnects: 0,
            confirmed: 0,
            readers: Vec::new(),
            events: VecDeque::new(),
            events_seen: 0,
            samples: 0,
            stopping: false,
            over: false,
        }
    }

    /// Takes one sample of the feed in.
    pub fn on_sample(&mut self, sample: &IntervalSample) {
        let at_s = (sample.start + sample.length).as_secs_f64();
        let s = &sample.second;
        self.rates.push_back(RatePoint {
            at_s,
            published: s.published_per_s,
            confirmed: s.confirmed_per_s,
            consumed: s.consumed_per_s,
        });
        while self
            .rates
            .front()
            .is_some_and(|p| p.at_s < at_s - HISTORY.as_secs_f64())
        {
            self.rates.pop_front();
        }
        self.confirm_second = sample.confirm.summary();
        self.end_to_end_second = sample.end_to_end.summary();
        self.chunks_second = sample.chunk_messages.summary();
        self.confirm_run.merge(&sample.confirm);
        self.end_to_end_run.merge(&sample.end_to_end);
        self.chunks_run.merge(&sample.chunk_messages);
        self.in_flight = sample.in_flight;
        self.reconnects = sample.reconnects;
        self.confirmed = sample.confirmed_by_partition.iter().sum();
        self.readers = self.reader_rows(sample);
        self.samples += 1;
        self.over |= sample.last;
    }

    /// Reader `i` is consumer `i / partitions` on partition `i % partitions` (the order bench
    /// subscribes them in); its lag is its partition's confirmed count minus its position.
    fn reader_rows(&self, sample: &IntervalSample) -> Vec<ReaderRow> {
        let partitions = self.plan.partitions.max(1);
        sample
            .reader_positions
            .iter()
            .enumerate()
            .map(|(i, &position)| {
                let partition = i % partitions;
                let confirmed = sample
                    .confirmed_by_partition
                    .get(partition)
                    .copied()
                    .unwrap_or(0);
                ReaderRow {
                    consumer: (i / partitions) as u64,
                    partition,
                    position,
                    lag: confirmed.saturating_sub(position),
                }
            })
            .collect()
    }

    /// Adds events (status lines held while the screen is up), keeping the newest.
    pub fn push_events(&mut self, lines: Vec<String>) {
        for line in lines {
            self.events_seen += 1;
            if self.events.len() == EVENTS_KEPT {
                self.events.pop_front();
            }
            self.events.push_back(line);
        }
    }

    /// How far the run is, 0 to 1: confirmed of `--count`, or time of `--duration`.
    pub fn progress(&self, elapsed: Duration) -> f64 {
        let ratio = match (self.plan.count, self.plan.duration) {
            (_, Some(duration)) => elapsed.as_secs_f64() / duration.as_secs_f64().max(f64::EPSILON),
            (Some(count), None) => self.confirmed as f64 / count.max(1) as f64,
            (None, None) => 0.0,
        };
        ratio.clamp(0.0, 1.0)
    }

    /// Time left to publish: what `--duration` leaves, or the messages left at the last
    /// second's confirm rate; `None` when it cannot be told (nothing confirmed yet).
    pub fn remaining(&self, elapsed: Duration) -> Option<Duration> {
        if let Some(duration) = self.plan.duration {
            return Some(duration.saturating_sub(elapsed));
        }
        let left = self.plan.count?.saturating_sub(self.confirmed);
        if left == 0 {
            return Some(Duration::ZERO);
        }
        let rate = self.rates.back().map_or(0.0, |p| p.confirmed);
        (rate >= 1.0).then(|| Duration::from_secs_f64(left as f64 / rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::BenchSecond;

    fn plan(count: Option<u64>, duration: Option<Duration>, partitions: usize) -> RunPlan {
        RunPlan {
            title: "bench".into(),
            count,
            duration,
            partitions,
            consumers: 2,
            started: Instant::now(),
        }
    }

    fn sample(
        second: u64,
        confirmed_by_partition: Vec<u64>,
        positions: Vec<u64>,
    ) -> IntervalSample {
        let mut confirm = LatencyHistogram::new();
        confirm.record_us(2_000);
        IntervalSample {
            start: Duration::from_secs(second - 1),
            length: Duration::from_secs(1),
            second: BenchSecond {
                second: second as f64,
                published_per_s: 100.0,
                confirmed_per_s: 50.0,
                consumed_per_s: 25.0,
                confirm_p50_us: 2_000,
                confirm_p99_us: 2_000,
                end_to_end_p50_us: 0,
                end_to_end_p99_us: 0,
            },
            confirm,
            end_to_end: LatencyHistogram::new(),
            in_flight: 7,
            reconnects: 1,
            confirmed_by_partition,
            chunk_messages: LatencyHistogram::new(),
            reader_positions: positions,
            sent_total: 0,
            consumed_total: 0,
            failed_total: 0,
            last: false,
        }
    }

    #[test]
    fn readers_get_their_partition_and_lag() {
        let mut model = Model::new(plan(Some(1_000), None, 2));
        model.on_sample(&sample(1, vec![100, 40], vec![90, 40, 10, 50]));
        let rows: Vec<_> = model
            .readers
            .iter()
            .map(|r| (r.consumer, r.partition, r.position, r.lag))
            .collect();
        assert_eq!(
            rows,
            [(0, 0, 90, 10), (0, 1, 40, 0), (1, 0, 10, 90), (1, 1, 50, 0)]
        );
        assert_eq!(model.confirmed, 140);
        assert_eq!(model.in_flight, 7);
    }

    #[test]
    fn the_chart_keeps_the_last_minute_and_the_run_keeps_everything() {
        let mut model = Model::new(plan(Some(1_000), None, 1));
        for second in 1..=90 {
            model.on_sample(&sample(second, vec![second * 10], vec![0, 0]));
        }
        assert_eq!(model.rates.front().map(|p| p.at_s), Some(30.0));
        assert_eq!(model.rates.len(), 61);
        assert_eq!(model.confirm_run.count(), 90);
        assert_eq!(model.confirm_second.count, 1);
    }

    #[test]
    fn progress_and_remaining_by_count_and_by_duration() {
        let mut by_count = Model::new(plan(Some(1_000), None, 1));
        by_count.on_sample(&sample(1, vec![250], vec![0]));
        assert_eq!(by_count.progress(Duration::from_secs(1)), 0.25);
        // 750 left at 50 confirmed/s.
        assert_eq!(
            by_count.remaining(Duration::from_secs(1)),
            Some(Duration::from_secs(15))
        );
        let by_time = Model::new(plan(None, Some(Duration::from_secs(10)), 1));
        assert_eq!(by_time.progress(Duration::from_secs(5)), 0.5);
        assert_eq!(
            by_time.remaining(Duration::from_secs(12)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn events_keep_the_newest() {
        let mut model = Model::new(plan(Some(1), None, 1));
        model.push_events((0..250).map(|i| format!("event {i}")).collect());
        assert_eq!(model.events.len(), EVENTS_KEPT);
        assert_eq!(model.events.front().map(String::as_str), Some("event 50"));
        assert_eq!(model.events_seen, 250);
    }
}
