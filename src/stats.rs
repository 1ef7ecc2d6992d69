//! Measurements of one run: counters, an HDR latency histogram, and `RunSummary`, the one result
//! model every command returns and every renderer (text, JSON) reads.

use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies in microseconds, from 1 µs to one hour, at three significant digits (0.1% error).
#[derive(Clone, Debug)]
pub struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .expect("the bounds are valid constants");
        LatencyHistogram(histogram)
    }

    /// Records one latency; values outside the range are clamped rather than lost, so the count
    /// always matches the number of messages measured.
    pub fn record_us(&mut self, latency_us: u64) {
        self.0.saturating_record(latency_us.max(1));
    }

    /// Records the same latency for `count` messages (a sub-entry batch confirmed at once).
    pub fn record_n_us(&mut self, latency_us: u64, count: u64) {
        self.0.saturating_record_n(latency_us.max(1), count);
    }

    /// Adds another worker's measurements to these.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.0
            .add(&other.0)
            .expect("histograms with the same bounds always merge");
    }

    /// How many latencies were at most `bound_us`: the cumulative buckets of Prometheus.
    pub fn count_at_most(&self, bound_us: u64) -> u64 {
        self.0.count_between(0, bound_us)
    }

    /// The sum of all recorded latencies (approximate, from the histogram's buckets).
    pub fn sum_us(&self) -> f64 {
        self.0.mean() * self.0.len() as f64
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at `quantile` (0.0 to 1.0), in microseconds.
    pub fn value_at_quantile(&self, quantile: f64) -> u64 {
        self.0.value_at_quantile(quantile)
    }

    /// The HdrHistogram itself, for serialization.
    pub fn inner(&self) -> &Histogram<u64> {
        &self.0
    }

    /// The histogram in HdrHistogram's compressed V2 format, base64-encoded: how the instances
    /// of a group (`bench --instances`) send their latencies, so the group's percentiles are
    /// exact rather than averaged.
    pub fn to_base64(&self) -> String {
        use base64::Engine;
        use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .expect("a histogram serializes into memory");
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// A histogram from [`LatencyHistogram::to_base64`]'s text; `None` when it is not one.
    pub fn from_base64(text: &str) -> Option<LatencyHistogram> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        let decoded: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(bytes))
            .ok()?;
        // Into our own bounds, so it merges with every other histogram of ours.
        let mut histogram = LatencyHistogram::new();
        histogram.0.add(&decoded).ok()?;
        Some(histogram)
    }

    /// What was recorded after `earlier`, a copy of this histogram taken before.
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        let mut interval = self.clone();
        if interval.0.subtract(&earlier.0).is_err() {
            interval.0.reset();
        }
        interval
    }

    pub fn summary(&self) -> LatencySummary {
        let h = &self.0;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Percentiles of a latency distribution, in microseconds (all 0 when nothing was measured).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// The outcome of a command, independent of how it is shown. Its JSON form (`--json`) is a
/// documented contract: keys are only ever added.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub command: CommandName,
    pub stream: String,
    /// Which consumer this is, in the per-consumer summaries of a fan-out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    pub messages: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub msg_per_s: f64,
    /// Megabytes (10^6 bytes) of message bodies per second.
    pub mb_per_s: f64,
    /// What `latency_us` measures: it differs by command.
    pub latency_kind: LatencyKind,
    pub latency_us: LatencySummary,
    /// True when Ctrl-C ended the run early.
    pub interrupted: bool,
    /// Times the connection dropped and was made again (`--retry-for`).
    pub reconnects: u64,
    #[serde(flatten)]
    pub details: CommandDetails,
    /// `consume --verify`: gaps and duplicates of `seq` per producer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::verify::VerifyReport>,
    /// With several consumers: each one's own summary (this one is their aggregate).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<RunSummary>,
    /// A super stream's partitions: each one's own summary (this one is their total).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<RunSummary>,
    /// `bench --instances N --group NAME`: the group this summary is of (the whole group's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// With `group`: how many processes ran the benchmark together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// With `group`: each instance's own figures, in the group's order (the leader first).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instance_summaries: Vec<RunSummary>,
    /// In `instance_summaries`: which instance this one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<GroupInstance>,
}

/// One process of a group benchmark, as its summary names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupInstance {
    /// 1 to N, in the group's order; 1 is the leader.
    pub number: u32,
    /// The random id it joined with.
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// Seconds into its run of its last sample, when it stopped sending samples (it died or
    /// lost the broker) and the others finished without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_at_s: Option<f64>,
}

/// Which command a summary is of (`"command"` in `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandName {
    Produce,
    Consume,
    Serve,
    Bench,
}

impl CommandName {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandName::Produce => "produce",
            CommandName::Consume => "consume",
            CommandName::Serve => "serve",
            CommandName::Bench => "bench",
        }
    }

    /// Whether it publishes a set of messages and ends (a signal then cuts it short), unlike
    /// consume and serve, for which a signal is the normal end.
    pub fn publishes_a_run(self) -> bool {
        matches!(self, CommandName::Produce | CommandName::Bench)
    }
}

impl std::fmt::Display for CommandName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run's latencies measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyKind {
    /// From handing a message to the client to the broker's confirm.
    PublishToConfirm,
    /// From the update's `produced_at_us` to reading it.
    EndToEnd,
}

/// The counters only one command has.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CommandDetails {
    Produce {
        /// The name the updates were published (and deduplicated) under.
        producer: String,
        confirmed: u64,
        failed: u64,
        /// Not sent because the broker already stored them under the producer name.
        skipped: u64,
        /// `--input` lines that were not valid inventory updates (reported, not sent).
        invalid_lines: u64,
        /// The longest wait between two confirms, in seconds: how long publishing stalled
        /// at worst (a broker restart, a cluster electing a new leader).
        max_stall_s: f64,
        /// Every wait for a confirm of a second or more, when it began and how long it took:
        /// to line stalls up with what happened to the cluster (a fault harness's log).
        stalls: Vec<StallSeconds>,
    },
    Consume {
        /// Where reading started, as the user gave it.
        offset: String,
        first_offset: Option<u64>,
        last_offset: Option<u64>,
        /// Messages whose body is not an inventory update (counted, not fatal).
        not_inventory_updates: u64,
        /// Messages the broker delivered; with --product, `messages` counts only those that
        /// matched, as the broker filters whole chunks.
        delivered: u64,
        /// From subscribing to the first message read: `elapsed_s` (and the rate) count only the
        /// reading after it.
        waited_s: f64,
    },
    Bench {
        producers: u64,
        consumers: u64,
        confirmed: u64,
        failed: u64,
        /// Messages read, all consumers together.
        consumed: u64,
        consumed_per_s: f64,
        /// Publish time (`produced_at_us`) to read, over every message every consumer read.
        end_to_end_us: LatencySummary,
        /// One sample per second of the run.
        timeline: Vec<BenchSecond>,
        /// Consumers sharing a name (single active consumers); 1: each reads every message.
        consumers_per_group: u64,
        /// With more than one consumer per group: each group's reads, consumer by consumer.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        groups: Vec<GroupReads>,
        /// With `--backlog`: what was built before the consumers subscribed, and its drain.
        #[serde(skip_serializing_if = "Option::is_none")]
        backlog: Option<BacklogDrain>,
    },
}

/// A bench consumer group: its consumers share the partitions as single active consumers, so
/// together they read every message once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReads {
    /// The name its consumers share.
    pub group: String,
    /// Messages its consumers read, together, each counted once.
    pub consumed: u64,
    /// Messages a consumer got after another of the group had read them (a partition handed
    /// over while read), not counted in `consumed`.
    pub read_again: u64,
    pub consumers: Vec<GroupConsumerReads>,
}

/// One consumer of a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupConsumerReads {
    pub consumer: String,
    pub consumed: u64,
    /// The partitions it read from: where the broker made it the active one.
    pub partitions: Vec<String>,
}

/// `bench --backlog`: the backlog built before any consumer subscribed, and how fast the
/// consumers drained it while the producers went on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacklogDrain {
    pub asked_bytes: u64,
    /// What the stream held (confirmed) when the consumers subscribed: bodies' bytes.
    pub bytes: u64,
    pub messages: u64,
    /// From the producers' start to the consumers'.
    pub build_s: f64,
    /// The share of the backlog read down for it to count as drained (1: caught up).
    pub drain_ratio: f64,
    /// From the consumers' start until they drained it; `None`: not drained by the run's end.
    pub drain_s: Option<f64>,
    /// What the consumers read (all together) over the drain, per second.
    pub drain_msg_per_s: f64,
    pub drain_mb_per_s: f64,
}

/// One second of a benchmark: rates over that second, latencies of what happened in it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BenchSecond {
    /// Seconds since the start, at the end of this sample.
    pub second: f64,
    pub published_per_s: f64,
    pub confirmed_per_s: f64,
    pub consumed_per_s: f64,
    pub confirm_p50_us: u64,
    pub confirm_p99_us: u64,
    pub end_to_end_p50_us: u64,
    pub end_to_end_p99_us: u64,
}

/// A wait for a confirm of a second or more, while updates were outstanding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    pub started: SystemTime,
    pub length: Duration,
}

/// A `Stall` as the JSON summary shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StallSeconds {
    /// When it began, in seconds since the Unix epoch.
    pub started_unix_s: f64,
    pub seconds: f64,
}

impl From<&Stall> for StallSeconds {
    fn from(stall: &Stall) -> Self {
        let started = stall
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        StallSeconds {
            started_unix_s: (started.as_secs_f64() * 1000.0).round() / 1000.0,
            seconds: (stall.length.as_secs_f64() * 1000.0).round() / 1000.0,
        }
    }
}

/// What a publisher achieved (one partition's, or their sum).
#[derive(Debug, Clone, Default)]
pub struct PublishOutcome {
    pub sent: u64,
    pub bytes: u64,
    pub confirmed: u64,
    /// Rejected by the broker, or never confirmed before the timeout.
    pub failed: u64,
    pub reconnects: u64,
    /// From opening the publisher to the last confirm (or the give-up).
    pub elapsed: Duration,
    pub latency: LatencyHistogram,
    /// The longest time between two confirms: how long publishing stalled at worst.
    pub max_stall: Duration,
    /// Each wait for a confirm of a second or more, in the order they began.
    pub stalls: Vec<Stall>,
}

impl PublishOutcome {
    /// The partitions' outcomes as one: counts add up, times are the longest.
    pub fn sum(outcomes: &[PublishOutcome]) -> PublishOutcome {
        let mut total = PublishOutcome::default();
        for outcome in outcomes {
            total.sent += outcome.sent;
            total.bytes += outcome.bytes;
            total.confirmed += outcome.confirmed;
            total.failed += outcome.failed;
            total.reconnects += outcome.reconnects;
            total.elapsed = total.elapsed.max(outcome.elapsed);
            total.latency.merge(&outcome.latency);
            total.max_stall = total.max_stall.max(outcome.max_stall);
            total.stalls.extend_from_slice(&outcome.stalls);
        }
        total.stalls.sort_by_key(|stall| stall.started);
        total
    }
}

/// How much a run moved and how long it took; the summary derives its rates from these.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub messages: u64,
    /// Bytes of message bodies.
    pub bytes: u64,
    pub elapsed: Duration,
}

impl RunSummary {
    /// The summary of what `producer` published to `stream` (`command`: produce or serve):
    /// `skipped` updates the broker already held, `invalid_lines` of input not sent.
    pub fn published(
        command: CommandName,
        stream: &str,
        producer: &str,
        outcome: PublishOutcome,
        skipped: u64,
        invalid_lines: u64,
    ) -> Self {
        let mut summary = RunSummary::new(
            command,
            stream,
            Totals {
                messages: outcome.sent,
                bytes: outcome.bytes,
                elapsed: outcome.elapsed,
            },
            LatencyKind::PublishToConfirm,
            &outcome.latency,
            CommandDetails::Produce {
                producer: producer.to_string(),
                max_stall_s: (outcome.max_stall.as_secs_f64() * 1000.0).round() / 1000.0,
                stalls: outcome.stalls.iter().map(StallSeconds::from).collect(),
                confirmed: outcome.confirmed,
                failed: outcome.failed,
                skipped,
                invalid_lines,
            },
        );
        summary.reconnects = outcome.reconnects;
        summary
    }

    pub fn new(
        command: CommandName,
        stream: &str,
        totals: Totals,
        latency_kind: LatencyKind,
        latency: &LatencyHistogram,
        details: CommandDetails,
    ) -> Self {
        let Totals {
            messages,
            bytes,
            elapsed,
        } = totals;
        let elapsed_s = elapsed.as_secs_f64();
        let per_s = |n: f64| {
            if elapsed_s > 0.0 {
                ((n / elapsed_s) * 100.0).round() / 100.0
            } else {
                0.0
            }
        };
        RunSummary {
            command,
            stream: stream.to_string(),
            consumer: None,
            messages,
            bytes,
            elapsed_s: (elapsed_s * 1e6).round() / 1e6,
            msg_per_s: per_s(messages as f64),
            mb_per_s: per_s(bytes as f64 / 1e6),
            latency_kind,
            latency_us: latency.summary(),
            interrupted: false,
            reconnects: 0,
            details,
            verify: None,
            consumers: Vec::new(),
            partitions: Vec::new(),
            group: None,
            instances: None,
            instance_summaries: Vec::new(),
            instance: None,
        }
    }
}

/// CPU time this process has used so far (user and system, all threads); zero where the
/// system will not say.
pub fn process_cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills in the rusage it is pointed at and only reads `who`.
    let done = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
    if !done {
        return Duration::ZERO;
    }
    // SAFETY: getrusage succeeded, so it wrote the whole struct (zeroed before in any case).
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_histogram_summarizes_to_zero() {
        assert_eq!(LatencyHistogram::new().summary(), LatencySummary::default());
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000 {
            h.record_us(us);
        }
        let s = h.summary();
        assert_eq!(s.count, 10_000);
        assert_eq!(s.min, 1);
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.002;
        assert!(close(s.p50, 5_000), "{s:?}");
        assert!(close(s.p90, 9_000), "{s:?}");
        assert!(close(s.p99, 9_900), "{s:?}");
        assert!(close(s.p999, 9_990), "{s:?}");
        assert!(close(s.max, 10_000), "{s:?}");
        assert!((s.mean - 5_000.5).abs() < 10.0, "{s:?}");
    }

    #[test]
    fn a_histogram_survives_base64() {
        let mut h = LatencyHistogram::new();
        for us in [3, 250, 250, 9_000, 1_200_000] {
            h.record_us(us);
        }
        let back = LatencyHistogram::from_base64(&h.to_base64()).expect("decodes");
        assert_eq!(back.summary(), h.summary());
        assert!(LatencyHistogram::from_base64("not a histogram").is_none());
    }

    #[test]
    fn merge_adds_counts_and_out_of_range_values_are_kept() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record_us(0);
        b.record_us(u64::MAX);
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 2);
        assert_eq!(s.min, 1);
    }

    #[test]
    fn rates_come_from_counts_and_time() {
        let s = RunSummary::new(
            CommandName::Produce,
            "s",
            Totals {
                messages: 1_000,
                bytes: 2_000_000,
                elapsed: Duration::from_millis(500),
            },
            LatencyKind::PublishToConfirm,
            &LatencyHistogram::new(),
            CommandDetails::Produce {
                producer: "p".into(),
                max_stall_s: 0.0,
                stalls: Vec::new(),
                confirmed: 1_000,
                failed: 0,
                skipped: 0,
                invalid_lines: 0,
            },
        );
        assert_eq!(s.msg_per_s, 2_000.0);
        assert_eq!(s.mb_per_s, 4.0);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["confirmed"], 1_000);
        assert_eq!(json["latency_us"]["count"], 0);
        assert_eq!(json["latency_kind"], "publish_to_confirm");
        assert_eq!(json["producer"], "p");
    }

    #[test]
    fn publish_outcomes_add_up() {
        let one = PublishOutcome {
            sent: 3,
            bytes: 30,
            confirmed: 2,
            failed: 1,
            reconnects: 1,
            elapsed: Duration::from_secs(2),
            latency: Default::default(),
            max_stall: Duration::from_millis(300),
            stalls: vec![Stall {
                started: SystemTime::UNIX_EPOCH + Duration::from_secs(7),
                length: Duration::from_millis(1_500),
            }],
        };
        let sum = PublishOutcome::sum(&[one.clone(), one]);
        assert_eq!(sum.stalls.len(), 2);
        assert_eq!(
            StallSeconds::from(&sum.stalls[0]),
            StallSeconds {
                started_unix_s: 7.0,
                seconds: 1.5
            }
        );
        assert_eq!((sum.sent, sum.bytes, sum.confirmed), (6, 60, 4));
        assert_eq!((sum.failed, sum.reconnects), (2, 2));
        assert_eq!(sum.max_stall, Duration::from_millis(300));
        assert_eq!(sum.elapsed, Duration::from_secs(2));
    }
}
