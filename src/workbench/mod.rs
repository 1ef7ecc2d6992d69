//! The benchmark workbench's results: several configurations of `bench` (`--param`), each run
//! `--runs` times, summarised as median and min–max per figure. One model, like hyperfine's
//! `BenchmarkResult`; every rendering reads it: the terminal table and the exports
//! ([`export`]), the HTML report ([`html`]), and baselines saved and compared ([`baseline`]).

use serde::{Deserialize, Serialize};

use crate::stats::{BenchSecond, LatencyHistogram};

pub mod baseline;
pub mod export;
pub mod html;

/// One `bench --param …` invocation: what ran, where, and what each configuration did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workbench {
    /// The command line as typed (URI passwords redacted).
    pub command: String,
    /// When the first run started (RFC 3339, UTC).
    pub started: String,
    pub broker: BrokerState,
    pub runs_per_configuration: u32,
    /// `--warmup`, in seconds, before each configuration's runs.
    pub warmup_s: Option<f64>,
    pub configurations: Vec<ConfigurationResult>,
    /// Combinations not run because their flags cannot work together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// A combination left out, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub label: String,
    pub reason: String,
}

/// The broker the runs went to, as noted before the first run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerState {
    /// Each node named in `--uri`, and the RabbitMQ version it reported (`None`: no answer).
    pub nodes: Vec<NodeState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    pub addr: String,
    pub version: Option<String>,
}

impl BrokerState {
    /// "RabbitMQ 4.0.5 at localhost:5552", or each node with its version.
    pub fn describe(&self) -> String {
        let named: Vec<String> = self
            .nodes
            .iter()
            .map(|node| match &node.version {
                Some(version) => format!("RabbitMQ {version} at {}", node.addr),
                None => format!("{} (no answer)", node.addr),
            })
            .collect();
        named.join(", ")
    }
}

/// One `NAME=VALUE` of a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub value: String,
}

/// One combination of parameter values, its runs and their spread.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigurationResult {
    /// `sub-entry-size=10 compression=zstd`; `defaults` without `--param`.
    pub label: String,
    pub params: Vec<Param>,
    pub stats: ConfigurationStats,
    pub runs: Vec<RunResult>,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// The stream (or super stream) the run had to itself, deleted after it.
    pub stream: String,
    pub published: u64,
    pub confirmed: u64,
    pub consumed: u64,
    pub failed: u64,
    pub publish_msg_per_s: f64,
    pub consume_msg_per_s: f64,
    /// Megabytes (10^6 bytes) of message bodies published per second.
    pub publish_mb_per_s: f64,
    pub confirm_p50_us: u64,
    pub confirm_p99_us: u64,
    pub end_to_end_p50_us: u64,
    pub end_to_end_p99_us: u64,
    /// Client CPU time (user and system) over the run, in seconds.
    pub client_cpu_s: f64,
    /// The run's per-second timeline, as in `bench --json`.
    pub timeline: Vec<BenchSecond>,
    /// Publish-to-confirm latency by percentile, for the report's curves.
    pub confirm_curve: Vec<PercentilePoint>,
    /// Publish-to-read latency by percentile.
    pub end_to_end_curve: Vec<PercentilePoint>,
}

/// A latency at a percentile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PercentilePoint {
    pub percentile: f64,
    pub latency_us: u64,
}

/// The percentiles the curves keep: dense where tails differ (99, 99.9, …), as HdrHistogram's
/// percentile plots space them.
const CURVE_PERCENTILES: [f64; 16] = [
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999,
    99.9999, 100.0,
];

/// `histogram`'s latency at each of the curve percentiles; empty when it holds nothing.
pub fn percentile_curve(histogram: &LatencyHistogram) -> Vec<PercentilePoint> {
    if histogram.count() == 0 {
        return Vec::new();
    }
    CURVE_PERCENTILES
        .iter()
        .map(|&percentile| PercentilePoint {
            percentile,
            latency_us: histogram.value_at_quantile(percentile / 100.0),
        })
        .collect()
}

/// How to read one figure of a configuration (its publish rate, its confirm p99, …).
pub type Figure = fn(&ConfigurationResult) -> Spread;

/// A figure over a configuration's runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// The median (the mean of the middle two for an even count), min and max of `values`;
    /// all zero for none.
    pub fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = match sorted.len() % 2 {
            1 => sorted[middle],
            _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
        };
        Spread {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }
}

/// Each figure of a configuration as median and min–max over its runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigurationStats {
    pub publish_msg_per_s: Spread,
    pub consume_msg_per_s: Spread,
    pub publish_mb_per_s: Spread,
    pub confirm_p50_us: Spread,
    pub confirm_p99_us: Spread,
    pub end_to_end_p50_us: Spread,
    pub end_to_end_p99_us: Spread,
    pub client_cpu_s: Spread,
}

impl ConfigurationStats {
    pub fn of(runs: &[RunResult]) -> ConfigurationStats {
        let spread = |figure: fn(&RunResult) -> f64| {
            Spread::of(&runs.iter().map(figure).collect::<Vec<_>>())
        };
        ConfigurationStats {
            publish_msg_per_s: spread(|r| r.publish_msg_per_s),
            consume_msg_per_s: spread(|r| r.consume_msg_per_s),
            publish_mb_per_s: spread(|r| r.publish_mb_per_s),
            confirm_p50_us: spread(|r| r.confirm_p50_us as f64),
            confirm_p99_us: spread(|r| r.confirm_p99_us as f64),
            end_to_end_p50_us: spread(|r| r.end_to_end_p50_us as f64),
            end_to_end_p99_us: spread(|r| r.end_to_end_p99_us as f64),
            client_cpu_s: spread(|r| r.client_cpu_s),
        }
    }
}

impl ConfigurationResult {
    pub fn new(params: Vec<Param>, runs: Vec<RunResult>) -> ConfigurationResult {
        ConfigurationResult {
            label: label(&params),
            stats: ConfigurationStats::of(&runs),
            params,
            runs,
        }
    }
}

/// `sub-entry-size=10 compression=zstd`, or `defaults` for no parameter.
pub fn label(params: &[Param]) -> String {
    if params.is_empty() {
        return "defaults".to_string();
    }
    params
        .iter()
        .map(|p| format!("{}={}", p.name, p.value))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A run whose publish rate is `publish` and every other figure derived from it.
    pub fn run(publish: f64) -> RunResult {
        RunResult {
            stream: "s".into(),
            published: 1_000,
            confirmed: 1_000,
            consumed: 1_000,
            failed: 0,
            publish_msg_per_s: publish,
            consume_msg_per_s: publish * 0.9,
            publish_mb_per_s: publish * 180.0 / 1e6,
            confirm_p50_us: 1_000,
            confirm_p99_us: 5_000,
            end_to_end_p50_us: 2_000,
            end_to_end_p99_us: 9_000,
            client_cpu_s: 0.5,
            timeline: Vec::new(),
            confirm_curve: Vec::new(),
            end_to_end_curve: Vec::new(),
        }
    }

    pub fn configuration(name: &str, value: &str, rates: &[f64]) -> ConfigurationResult {
        ConfigurationResult::new(
            vec![Param {
                name: name.into(),
                value: value.into(),
            }],
            rates.iter().map(|&r| run(r)).collect(),
        )
    }

    pub fn workbench(configurations: Vec<ConfigurationResult>) -> Workbench {
        Workbench {
            command: "invstream bench --param sub-entry-size=1,10".into(),
            started: "2026-12-05T14:00:00Z".into(),
            broker: BrokerState {
                nodes: vec![NodeState {
                    addr: "localhost:5552".into(),
                    version: Some("4.0.5".into()),
                }],
            },
            runs_per_configuration: 3,
            warmup_s: None,
            configurations,
            skipped: Vec::new(),
        }
    }

    #[test]
    fn spread_takes_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(Spread::of(&[]).median, 0.0);
    }

    #[test]
    fn a_configuration_is_labelled_by_its_params_and_summarises_its_runs() {
        let c = configuration("sub-entry-size", "10", &[100.0, 300.0, 200.0]);
        assert_eq!(c.label, "sub-entry-size=10");
        assert_eq!(c.stats.publish_msg_per_s.median, 200.0);
        assert_eq!(c.stats.publish_msg_per_s.min, 100.0);
        assert_eq!(label(&[]), "defaults");
    }

    #[test]
    fn a_curve_rises_with_the_percentile_and_ends_at_the_maximum() {
        let mut histogram = LatencyHistogram::new();
        for us in 1..=10_000 {
            histogram.record_us(us);
        }
        let curve = percentile_curve(&histogram);
        assert_eq!(curve.len(), CURVE_PERCENTILES.len());
        assert!(curve.windows(2).all(|w| w[0].latency_us <= w[1].latency_us));
        assert!(curve.last().unwrap().latency_us >= 9_990);
        assert!(percentile_curve(&LatencyHistogram::new()).is_empty());
    }
}
