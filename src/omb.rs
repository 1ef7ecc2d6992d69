//! OpenMessaging Benchmark (OMB) results: a measured bench run written as OMB's `TestResult`
//! JSON (`bench --export-omb DIR`), so OMB's `bin/create_charts.py` draws invstream's runs beside
//! a team's Kafka (or other driver) results. Pure but for [`write`]: the samples of the feed and
//! the whole run's histograms in, one file out.
//!
//! As OMB writes it: rates in messages per second and latencies in milliseconds (doubles), one
//! entry per interval, the aggregated percentiles and quantile curve over the whole measured run.
//! Unlike OMB, an interval is one second (OMB's is ten), the date in the file name is UTC, and
//! the publish delay (how late a rate-limited send went out) is not measured: its fields hold 0.
//! No key OMB's `TestResult` lacks: OMB's `ResultsToCsv` reads these files with a mapper that
//! refuses unknown keys.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::engines::feed::IntervalSample;
use crate::error::{InvError, Result};
use crate::stats::LatencyHistogram;

/// The driver name in the results and in the file name.
pub const DRIVER: &str = "invstream";

/// What an OMB result says of the run besides its measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct OmbRun {
    /// The workload file's `name`, or `invstream-bench` for a run without one.
    pub workload: String,
    /// `invstream`, or with a `--param` configuration's label (a series of its own in the charts).
    pub driver: String,
    /// Bytes per message body.
    pub message_size: u64,
    pub topics: u32,
    pub partitions: u32,
    pub producers_per_topic: u64,
    /// OMB's `consumerPerSubscription` (as OMB fills its `consumersPerTopic`): consumers
    /// sharing a subscription's partitions.
    pub consumers_per_topic: u64,
    /// Subscriptions (bench's consumer groups): each reads every message of a topic.
    pub subscriptions_per_topic: u64,
}

/// One topic's measured run: its samples and its whole run's latencies.
pub struct TopicRun<'a> {
    pub samples: &'a [IntervalSample],
    pub confirm: &'a LatencyHistogram,
    pub end_to_end: &'a LatencyHistogram,
}

/// OMB's `TestResult`, field for field (OMB's names and types).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub workload: String,
    pub driver: String,
    pub message_size: u64,
    pub topics: u32,
    pub partitions: u32,
    pub producers_per_topic: u64,
    pub consumers_per_topic: u64,

    pub publish_rate: Vec<f64>,
    pub publish_error_rate: Vec<f64>,
    pub consume_rate: Vec<f64>,
    pub backlog: Vec<u64>,

    pub publish_latency_avg: Vec<f64>,
    pub publish_latency_50pct: Vec<f64>,
    pub publish_latency_75pct: Vec<f64>,
    pub publish_latency_95pct: Vec<f64>,
    pub publish_latency_99pct: Vec<f64>,
    pub publish_latency_999pct: Vec<f64>,
    pub publish_latency_9999pct: Vec<f64>,
    pub publish_latency_max: Vec<f64>,

    pub publish_delay_latency_avg: Vec<f64>,
    pub publish_delay_latency_50pct: Vec<u64>,
    pub publish_delay_latency_75pct: Vec<u64>,
    pub publish_delay_latency_95pct: Vec<u64>,
    pub publish_delay_latency_99pct: Vec<u64>,
    pub publish_delay_latency_999pct: Vec<u64>,
    pub publish_delay_latency_9999pct: Vec<u64>,
    pub publish_delay_latency_max: Vec<u64>,

    pub aggregated_publish_latency_avg: f64,
    pub aggregated_publish_latency_50pct: f64,
    pub aggregated_publish_latency_75pct: f64,
    pub aggregated_publish_latency_95pct: f64,
    pub aggregated_publish_latency_99pct: f64,
    pub aggregated_publish_latency_999pct: f64,
    pub aggregated_publish_latency_9999pct: f64,
    pub aggregated_publish_latency_max: f64,

    pub aggregated_publish_delay_latency_avg: f64,
    pub aggregated_publish_delay_latency_50pct: u64,
    pub aggregated_publish_delay_latency_75pct: u64,
    pub aggregated_publish_delay_latency_95pct: u64,
    pub aggregated_publish_delay_latency_99pct: u64,
    pub aggregated_publish_delay_latency_999pct: u64,
    pub aggregated_publish_delay_latency_9999pct: u64,
    pub aggregated_publish_delay_latency_max: u64,

    pub aggregated_publish_latency_quantiles: Quantiles,
    pub aggregated_publish_delay_latency_quantiles: Quantiles,

    pub end_to_end_latency_avg: Vec<f64>,
    pub end_to_end_latency_50pct: Vec<f64>,
    pub end_to_end_latency_75pct: Vec<f64>,
    pub end_to_end_latency_95pct: Vec<f64>,
    pub end_to_end_latency_99pct: Vec<f64>,
    pub end_to_end_latency_999pct: Vec<f64>,
    pub end_to_end_latency_9999pct: Vec<f64>,
    pub end_to_end_latency_max: Vec<f64>,

    pub aggregated_end_to_end_latency_quantiles: Quantiles,

    pub aggregated_end_to_end_latency_avg: f64,
    pub aggregated_end_to_end_latency_50pct: f64,
    pub aggregated_end_to_end_latency_75pct: f64,
    pub aggregated_end_to_end_latency_95pct: f64,
    pub aggregated_end_to_end_latency_99pct: f64,
    pub aggregated_end_to_end_latency_999pct: f64,
    pub aggregated_end_to_end_latency_9999pct: f64,
    pub aggregated_end_to_end_latency_max: f64,
}

/// A latency curve: percentile (0 to 100) → milliseconds, in percentile order; a JSON object
/// keyed by the percentile as Java writes a `Double` (`"99.9"`), as OMB's `TreeMap` comes out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quantiles(pub Vec<(f64, f64)>);

impl Serialize for Quantiles {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (percentile, ms) in &self.0 {
            map.serialize_entry(&format!("{percentile:?}"), ms)?;
        }
        map.end()
    }
}

/// Avg, 50, 75, 95, 99, 99.9, 99.99 percentiles and max of a histogram, in milliseconds as OMB
/// writes them (0 for an empty one, as HdrHistogram says).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Percentiles {
    avg: f64,
    p50: f64,
    p75: f64,
    p95: f64,
    p99: f64,
    p999: f64,
    p9999: f64,
    max: f64,
}

impl Percentiles {
    fn of(histogram: &LatencyHistogram) -> Self {
        if histogram.count() == 0 {
            return Percentiles::default();
        }
        let at = |q: f64| ms(histogram.value_at_quantile(q));
        let h = histogram.inner();
        Percentiles {
            avg: h.mean() / 1000.0,
            p50: at(0.50),
            p75: at(0.75),
            p95: at(0.95),
            p99: at(0.99),
            p999: at(0.999),
            p9999: at(0.9999),
            max: ms(h.max()),
        }
    }
}

/// Microseconds as OMB's milliseconds.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The whole run's curve as OMB's `percentiles(100)` iteration gives it (100 steps per halving
/// of the distance to 100%).
fn quantiles(histogram: &LatencyHistogram) -> Quantiles {
    let mut curve: Vec<(f64, f64)> = Vec::new();
    if histogram.count() == 0 {
        return Quantiles(curve);
    }
    for step in histogram.inner().iter_quantiles(100) {
        // Rounded to nine decimals: the iteration's sums of fractions come out as `50.000000000000036`.
        let percentile = (step.quantile_iterated_to() * 100.0 * 1e9).round() / 1e9;
        let point = (percentile, ms(step.value_iterated_to()));
        // A map keeps one value per percentile: the last, as a `TreeMap.put` does.
        match curve.last_mut() {
            Some(last) if last.0 == point.0 => *last = point,
            _ => curve.push(point),
        }
    }
    Quantiles(curve)
}

/// One interval, the topics' together.
#[derive(Default)]
struct Interval {
    publish_rate: f64,
    error_rate: f64,
    consume_rate: f64,
    backlog: u64,
    confirm: LatencyHistogram,
    end_to_end: LatencyHistogram,
}

/// The interval `index` of every topic's run, added up: rates summed, histograms merged; a topic
/// whose run ended before it adds its last backlog only.
fn interval(topics: &[TopicRun], index: usize, subscriptions: u64) -> Interval {
    let mut interval = Interval::default();
    for topic in topics {
        let Some(sample) = topic.samples.get(index).or(topic.samples.last()) else {
            continue;
        };
        let confirmed: u64 = sample.confirmed_by_partition.iter().sum();
        interval.backlog += (confirmed * subscriptions).saturating_sub(sample.consumed_total);
        if index >= topic.samples.len() {
            continue;
        }
        interval.publish_rate += sample.second.confirmed_per_s;
        interval.consume_rate += sample.second.consumed_per_s;
        let failed_before = match index {
            0 => 0,
            _ => topic.samples[index - 1].failed_total,
        };
        let span = sample.length.as_secs_f64().max(f64::EPSILON);
        interval.error_rate +=
            (sample.failed_total.saturating_sub(failed_before) as f64 / span).round();
        interval.confirm.merge(&sample.confirm);
        interval.end_to_end.merge(&sample.end_to_end);
    }
    interval
}

impl TestResult {
    /// The result of `topics`' runs at once (one for a stream or a plain bench), interval by
    /// interval: each entry of the per-interval lists is one sample (a second).
    pub fn new(run: &OmbRun, topics: &[TopicRun]) -> Self {
        let intervals = topics.iter().map(|t| t.samples.len()).max().unwrap_or(0);
        let intervals: Vec<Interval> = (0..intervals)
            .map(|index| interval(topics, index, run.subscriptions_per_topic))
            .collect();
        let publish: Vec<Percentiles> = intervals
            .iter()
            .map(|i| Percentiles::of(&i.confirm))
            .collect();
        let end_to_end: Vec<Percentiles> = intervals
            .iter()
            .map(|i| Percentiles::of(&i.end_to_end))
            .collect();
        let (mut all_confirm, mut all_end_to_end) =
            (LatencyHistogram::new(), LatencyHistogram::new());
        for topic in topics {
            all_confirm.merge(topic.confirm);
            all_end_to_end.merge(topic.end_to_end);
        }
        let (aggregated_publish, aggregated_end_to_end) = (
            Percentiles::of(&all_confirm),
            Percentiles::of(&all_end_to_end),
        );
        let each = |of: &[Percentiles], figure: fn(&Percentiles) -> f64| -> Vec<f64> {
            of.iter().map(figure).collect()
        };
        let not_measured = vec![0; intervals.len()];
        TestResult {
            workload: run.workload.clone(),
            driver: run.driver.clone(),
            message_size: run.message_size,
            topics: run.topics,
            partitions: run.partitions,
            producers_per_topic: run.producers_per_topic,
            consumers_per_topic: run.consumers_per_topic,
            publish_rate: intervals.iter().map(|i| i.publish_rate).collect(),
            publish_error_rate: intervals.iter().map(|i| i.error_rate).collect(),
            consume_rate: intervals.iter().map(|i| i.consume_rate).collect(),
            backlog: intervals.iter().map(|i| i.backlog).collect(),
            publish_latency_avg: each(&publish, |p| p.avg),
            publish_latency_50pct: each(&publish, |p| p.p50),
            publish_latency_75pct: each(&publish, |p| p.p75),
            publish_latency_95pct: each(&publish, |p| p.p95),
            publish_latency_99pct: each(&publish, |p| p.p99),
            publish_latency_999pct: each(&publish, |p| p.p999),
            publish_latency_9999pct: each(&publish, |p| p.p9999),
            publish_latency_max: each(&publish, |p| p.max),
            publish_delay_latency_avg: vec![0.0; intervals.len()],
            publish_delay_latency_50pct: not_measured.clone(),
            publish_delay_latency_75pct: not_measured.clone(),
            publish_delay_latency_95pct: not_measured.clone(),
            publish_delay_latency_99pct: not_measured.clone(),
            publish_delay_latency_999pct: not_measured.clone(),
            publish_delay_latency_9999pct: not_measured.clone(),
            publish_delay_latency_max: not_measured,
            aggregated_publish_latency_avg: aggregated_publish.avg,
            aggregated_publish_latency_50pct: aggregated_publish.p50,
            aggregated_publish_latency_75pct: aggregated_publish.p75,
            aggregated_publish_latency_95pct: aggregated_publish.p95,
            aggregated_publish_latency_99pct: aggregated_publish.p99,
            aggregated_publish_latency_999pct: aggregated_publish.p999,
            aggregated_publish_latency_9999pct: aggregated_publish.p9999,
            aggregated_publish_latency_max: aggregated_publish.max,
            aggregated_publish_delay_latency_avg: 0.0,
            aggregated_publish_delay_latency_50pct: 0,
            aggregated_publish_delay_latency_75pct: 0,
            aggregated_publish_delay_latency_95pct: 0,
            aggregated_publish_delay_latency_99pct: 0,
            aggregated_publish_delay_latency_999pct: 0,
            aggregated_publish_delay_latency_9999pct: 0,
            aggregated_publish_delay_latency_max: 0,
            aggregated_publish_latency_quantiles: quantiles(&all_confirm),
            aggregated_publish_delay_latency_quantiles: Quantiles::default(),
            end_to_end_latency_avg: each(&end_to_end, |p| p.avg),
            end_to_end_latency_50pct: each(&end_to_end, |p| p.p50),
            end_to_end_latency_75pct: each(&end_to_end, |p| p.p75),
            end_to_end_latency_95pct: each(&end_to_end, |p| p.p95),
            end_to_end_latency_99pct: each(&end_to_end, |p| p.p99),
            end_to_end_latency_999pct: each(&end_to_end, |p| p.p999),
            end_to_end_latency_9999pct: each(&end_to_end, |p| p.p9999),
            end_to_end_latency_max: each(&end_to_end, |p| p.max),
            aggregated_end_to_end_latency_quantiles: quantiles(&all_end_to_end),
            aggregated_end_to_end_latency_avg: aggregated_end_to_end.avg,
            aggregated_end_to_end_latency_50pct: aggregated_end_to_end.p50,
            aggregated_end_to_end_latency_75pct: aggregated_end_to_end.p75,
            aggregated_end_to_end_latency_95pct: aggregated_end_to_end.p95,
            aggregated_end_to_end_latency_99pct: aggregated_end_to_end.p99,
            aggregated_end_to_end_latency_999pct: aggregated_end_to_end.p999,
            aggregated_end_to_end_latency_9999pct: aggregated_end_to_end.p9999,
            aggregated_end_to_end_latency_max: aggregated_end_to_end.max,
        }
    }
}

/// `WORKLOAD-invstream-yyyy-MM-dd-HH-mm-ss.json`, as OMB names its results (the date in UTC);
/// each run of characters a file name should not hold (`/`, spaces) becomes one `-`.
pub fn file_name(workload: &str, at: time::OffsetDateTime) -> String {
    let mut name = String::with_capacity(workload.len());
    for c in workload.chars() {
        match c.is_ascii_alphanumeric() || "_.".contains(c) {
            true => name.push(c),
            false if !name.ends_with('-') => name.push('-'),
            false => {}
        }
    }
    let workload = name;
    format!(
        "{workload}-{DRIVER}-{:04}-{:02}-{:02}-{:02}-{:02}-{:02}.json",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Writes `result` into `dir` under [`file_name`] of now, never over an existing file (a run
/// ending in the same second gets `-2`, `-3`… before `.json`); returns the file's path.
pub fn write(dir: &Path, result: &TestResult) -> Result<PathBuf> {
    let failed = |path: &Path, e: std::io::Error| {
        InvError::Output(format!("cannot write --export-omb {}: {e}", path.display()))
    };
    let mut bytes = serde_json::to_vec_pretty(result)
        .map_err(|e| InvError::Output(format!("cannot encode the OMB result: {e}")))?;
    bytes.push(b'\n');
    let name = file_name(&result.workload, time::OffsetDateTime::now_utc());
    let stem = name.trim_end_matches(".json");
    for attempt in 1.. {
        let path = match attempt {
            1 => dir.join(&name),
            n => dir.join(format!("{stem}-{n}.json")),
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        match file {
            Ok(mut file) => {
                file.write_all(&bytes).map_err(|e| failed(&path, e))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(failed(&path, e)),
        }
    }
    unreachable!("the attempts never end before a name is free")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::BenchSecond;

    fn run() -> OmbRun {
        OmbRun {
            workload: "1-topic-1-partition-1kb".into(),
            driver: DRIVER.into(),
            message_size: 1024,
            topics: 1,
            partitions: 1,
            producers_per_topic: 1,
            consumers_per_topic: 1,
            subscriptions_per_topic: 1,
        }
    }

    /// A second in which `confirmed` were confirmed at `confirm_us` each and `consumed` read at
    /// `end_to_end_us` each, with the totals so far.
    fn sample(
        at: u64,
        confirmed_total: u64,
        consumed_total: u64,
        confirm_us: u64,
    ) -> IntervalSample {
        let mut confirm = LatencyHistogram::new();
        confirm.record_n_us(confirm_us, 100);
        let mut end_to_end = LatencyHistogram::new();
        end_to_end.record_n_us(confirm_us * 2, 100);
        IntervalSample {
            start: Duration::from_secs(at - 1),
            length: Duration::from_secs(1),
            second: BenchSecond {
                second: at as f64,
                published_per_s: 1000.0,
                confirmed_per_s: 1000.0,
                consumed_per_s: 900.0,
                confirm_p50_us: confirm.value_at_quantile(0.5),
                confirm_p99_us: confirm.value_at_quantile(0.99),
                end_to_end_p50_us: end_to_end.value_at_quantile(0.5),
                end_to_end_p99_us: end_to_end.value_at_quantile(0.99),
            },
            confirm,
            end_to_end,
            in_flight: 0,
            reconnects: 0,
            confirmed_by_partition: vec![confirmed_total],
            sent_total: confirmed_total,
            consumed_total,
            failed_total: at,
            chunk_messages: LatencyHistogram::new(),
            reader_positions: vec![consumed_total],
            last: false,
        }
    }

    fn three_seconds() -> Vec<IntervalSample> {
        vec![
            sample(1, 1000, 900, 2_500),
            sample(2, 2000, 1800, 3_000),
            sample(3, 3000, 3000, 1_500),
        ]
    }

    fn result_of(samples: &[IntervalSample]) -> TestResult {
        let (mut confirm, mut end_to_end) = (LatencyHistogram::new(), LatencyHistogram::new());
        for s in samples {
            confirm.merge(&s.confirm);
            end_to_end.merge(&s.end_to_end);
        }
        TestResult::new(
            &run(),
            &[TopicRun {
                samples,
                confirm: &confirm,
                end_to_end: &end_to_end,
            }],
        )
    }

    #[test]
    fn one_entry_per_interval_in_every_list() {
        let json = serde_json::to_value(result_of(&three_seconds())).unwrap();
        let lists: Vec<(&String, usize)> = json
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(key, value)| value.as_array().map(|a| (key, a.len())))
            .collect();
        assert_eq!(lists.len(), 28, "{lists:?}");
        for (key, len) in lists {
            assert_eq!(len, 3, "{key}");
        }
        assert_eq!(
            json["publishRate"],
            serde_json::json!([1000.0, 1000.0, 1000.0])
        );
        assert_eq!(json["consumeRate"][0], 900.0);
        assert_eq!(json["backlog"], serde_json::json!([100, 200, 0]));
        assert_eq!(json["publishErrorRate"], serde_json::json!([1.0, 1.0, 1.0]));
    }

    #[test]
    fn latencies_are_milliseconds() {
        let samples = three_seconds();
        let result = result_of(&samples);
        // HdrHistogram's value for 2,500 µs at three digits, in ms.
        let p50_us = samples[0].confirm.value_at_quantile(0.5);
        assert_eq!(result.publish_latency_50pct[0], p50_us as f64 / 1000.0);
        assert!((result.publish_latency_50pct[0] - 2.5).abs() < 0.01);
        assert!((result.end_to_end_latency_99pct[1] - 6.0).abs() < 0.01);
        assert!((result.publish_latency_avg[2] - 1.5).abs() < 0.01);
        assert!((result.aggregated_publish_latency_max - 3.0).abs() < 0.01);
        assert!((result.aggregated_end_to_end_latency_50pct - 5.0).abs() < 0.01);
        let curve = &result.aggregated_publish_latency_quantiles.0;
        assert!(curve
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert!(
            curve.iter().all(|(_, ms)| (1.4..3.1).contains(ms)),
            "{curve:?}"
        );
    }

    #[test]
    fn the_json_has_omb_keys_and_no_others() {
        let json = serde_json::to_value(result_of(&three_seconds())).unwrap();
        let object = json.as_object().unwrap();
        // What OMB's create_charts.py reads, and OMB's TestResult's other fields.
        for key in [
            "workload",
            "driver",
            "messageSize",
            "topics",
            "partitions",
            "producersPerTopic",
            "consumersPerTopic",
            "publishRate",
            "publishErrorRate",
            "consumeRate",
            "backlog",
            "publishLatency99pct",
            "publishLatency9999pct",
            "publishDelayLatency99pct",
            "endToEndLatency95pct",
            "endToEndLatencyAvg",
            "aggregatedPublishLatencyQuantiles",
            "aggregatedPublishDelayLatencyQuantiles",
            "aggregatedEndToEndLatencyQuantiles",
            "aggregatedPublishLatency999pct",
            "aggregatedEndToEndLatencyMax",
        ] {
            assert!(object.contains_key(key), "{key} missing");
        }
        // TestResult.java's 62 public fields, no more.
        assert_eq!(object.len(), 62);
        assert_eq!(json["workload"], "1-topic-1-partition-1kb");
        assert_eq!(json["driver"], "invstream");
        let quantiles = json["aggregatedPublishLatencyQuantiles"]
            .as_object()
            .unwrap();
        assert!(quantiles.contains_key("50.0"), "{quantiles:?}");
        assert!(quantiles.contains_key("100.0"));
    }

    #[test]
    fn topics_add_up_and_a_shorter_run_keeps_its_last_backlog() {
        let long = three_seconds();
        let short = vec![sample(1, 1000, 500, 1_000)];
        let empty = LatencyHistogram::new();
        let topic = |samples| TopicRun {
            samples,
            confirm: &empty,
            end_to_end: &empty,
        };
        let result = TestResult::new(&run(), &[topic(&long), topic(&short)]);
        assert_eq!(result.publish_rate, vec![2000.0, 1000.0, 1000.0]);
        assert_eq!(result.backlog, vec![600, 700, 500]);
        assert_eq!(
            result.aggregated_publish_latency_quantiles,
            Quantiles::default()
        );
        assert_eq!(result.aggregated_publish_latency_50pct, 0.0);
    }

    #[test]
    fn files_are_named_as_omb_names_them_and_never_overwritten() {
        let at = time::OffsetDateTime::from_unix_timestamp(1_741_338_301).unwrap();
        assert_eq!(
            file_name("max rate/1 topic", at),
            "max-rate-1-topic-invstream-2025-03-07-09-05-01.json"
        );
        assert!(file_name("1 topic / 1 partition / 1Kb", at)
            .starts_with("1-topic-1-partition-1Kb-invstream-"));
        let dir = tempfile::tempdir().unwrap();
        let result = result_of(&three_seconds());
        let first = write(dir.path(), &result).unwrap();
        let second = write(dir.path(), &result).unwrap();
        assert_ne!(first, second);
        let read: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&second).unwrap()).unwrap();
        assert_eq!(read["publishRate"].as_array().unwrap().len(), 3);
        let missing = dir.path().join("nope");
        let e = write(&missing, &result).unwrap_err().to_string();
        assert!(e.contains("--export-omb") && !e.contains('\n'), "{e}");
    }
}
