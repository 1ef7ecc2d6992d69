//! `bench --prometheus ADDR`: the run's live samples as Prometheus metrics (OpenMetrics text at
//! `GET /metrics`) while it runs, as stream-perf-test's users scrape theirs into Grafana. A view
//! of the sample feed like the others: it keeps the latest sample and the run's histograms,
//! and a scrape reads them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::engines::feed::{IntervalSample, SampleView};
use crate::error::{InvError, Result};
use crate::stats::LatencyHistogram;

/// The content type of the metrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Encodes `latency` (microseconds, as HdrHistogram keeps it) as a Prometheus histogram in
/// seconds: the buckets are read from the HDR histogram, so nothing is kept twice.
pub fn encode_latency_histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    latency: &LatencyHistogram,
) -> std::fmt::Result {
    let mut buckets = Vec::with_capacity(LATENCY_BUCKETS_S.len() + 1);
    let mut below = 0;
    for bound in LATENCY_BUCKETS_S {
        let at_most = latency.count_at_most((bound * 1e6) as u64);
        buckets.push((bound, at_most.saturating_sub(below)));
        below = below.max(at_most);
    }
    buckets.push((f64::INFINITY, latency.count().saturating_sub(below)));
    encoder
        .encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(latency.sum_us() / 1e6, latency.count(), &buckets, None)
}

/// Encodes `(name, help, value)` counters, names without `_total` (the encoder adds it).
pub fn encode_counters(
    encoder: &mut DescriptorEncoder,
    counters: &[(&str, &str, u64)],
) -> std::fmt::Result {
    for &(name, help, value) in counters {
        let counter = ConstCounter::new(value);
        counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
    }
    Ok(())
}

/// What a scrape shows: the latest sample and the whole run's latencies so far.
#[derive(Default)]
struct Snapshot {
    last: Option<IntervalSample>,
    confirm: LatencyHistogram,
    end_to_end: LatencyHistogram,
}

/// The feed's view that the `/metrics` endpoint reads.
pub struct BenchMetrics {
    snapshot: Arc<Mutex<Snapshot>>,
    /// Partition names, for the per-partition counter's label.
    partitions: Arc<Vec<String>>,
}

impl SampleView for BenchMetrics {
    fn on_sample(&mut self, sample: &IntervalSample) {
        let mut snapshot = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        snapshot.confirm.merge(&sample.confirm);
        snapshot.end_to_end.merge(&sample.end_to_end);
        snapshot.last = Some(sample.clone());
    }
}

impl BenchMetrics {
    pub fn new(partitions: Vec<String>) -> BenchMetrics {
        BenchMetrics {
            snapshot: Arc::default(),
            partitions: Arc::new(partitions),
        }
    }

    /// Serves `GET /metrics` on `listener` until `stop` resolves.
    pub fn serve(
        &self,
        listener: TcpListener,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SampleCollector {
            snapshot: self.snapshot.clone(),
            partitions: self.partitions.clone(),
        }));
        let registry = Arc::new(registry);
        let app = axum::Router::new().route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { render(&registry) }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await;
        })
    }
}

/// Binds `--prometheus ADDR` before the run starts, so a taken port is said at once.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        InvError::Usage(format!(
            "cannot listen on {addr} for --prometheus: {e}; give a free address, e.g. --prometheus 127.0.0.1:9464"
        ))
    })
}

fn render(registry: &Registry) -> axum::response::Response {
    let mut text = String::with_capacity(4096);
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "could not render the metrics",
        )
            .into_response(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuantileLabel {
    quantile: String,
}

struct SampleCollector {
    snapshot: Arc<Mutex<Snapshot>>,
    partitions: Arc<Vec<String>>,
}

impl std::fmt::Debug for SampleCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SampleCollector")
    }
}

impl prometheus_client::collector::Collector for SampleCollector {
    /// Nothing before the first sample; then the latest sample's totals, rates and quantiles,
    /// and the run's histograms.
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let snapshot = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        let Some(last) = &snapshot.last else {
            return Ok(());
        };
        let confirmed: u64 = last.confirmed_by_partition.iter().sum();
        encode_counters(
            &mut encoder,
            &[
                (
                    "invstream_bench_published",
                    "Messages sent",
                    last.sent_total,
                ),
                (
                    "invstream_bench_confirmed",
                    "Messages the broker confirmed",
                    confirmed,
                ),
                (
                    "invstream_bench_consumed",
                    "Messages the consumers read, all together",
                    last.consumed_total,
                ),
                (
                    "invstream_bench_reconnects",
                    "Connections replaced, all publishers together",
                    last.reconnects,
                ),
            ],
        )?;
        self.encode_partitions(&mut encoder, last)?;
        encode_gauges(&mut encoder, last)?;
        encode_last_quantiles(&mut encoder, last)?;
        encode_latency_histogram(
            &mut encoder,
            "invstream_bench_confirm_latency_seconds",
            "Publish-to-confirm latency over the run so far",
            &snapshot.confirm,
        )?;
        encode_latency_histogram(
            &mut encoder,
            "invstream_bench_end_to_end_latency_seconds",
            "Publish-to-read latency over the run so far",
            &snapshot.end_to_end,
        )
    }
}

impl SampleCollector {
    /// Confirmed so far per partition, labelled by its stream.
    fn encode_partitions(
        &self,
        encoder: &mut DescriptorEncoder,
        last: &IntervalSample,
    ) -> std::fmt::Result {
        let mut by_partition = encoder.encode_descriptor(
            "invstream_bench_partition_confirmed",
            "Messages confirmed per partition (the stream itself for a stream)",
            None,
            MetricType::Counter,
        )?;
        for (stream, value) in self.partitions.iter().zip(&last.confirmed_by_partition) {
            let label = PartitionLabel {
                stream: stream.clone(),
            };
            ConstCounter::new(*value).encode(by_partition.encode_family(&label)?)?;
        }
        Ok(())
    }
}

/// The last sample's rates, messages in flight and the time so far.
fn encode_gauges(encoder: &mut DescriptorEncoder, last: &IntervalSample) -> std::fmt::Result {
    let second = &last.second;
    let gauges = [
        (
            "invstream_bench_published_per_second",
            "Messages sent per second, over the last sample",
            second.published_per_s,
        ),
        (
            "invstream_bench_confirmed_per_second",
            "Messages confirmed per second, over the last sample",
            second.confirmed_per_s,
        ),
        (
            "invstream_bench_consumed_per_second",
            "Messages read per second, over the last sample",
            second.consumed_per_s,
        ),
        (
            "invstream_bench_in_flight",
            "Messages sent and not confirmed yet",
            last.in_flight as f64,
        ),
        (
            "invstream_bench_elapsed_seconds",
            "Time since the run started",
            (last.start + last.length).as_secs_f64(),
        ),
    ];
    for (name, help, value) in gauges {
        let gauge = ConstGauge::new(value);
        gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
    }
    Ok(())
}

/// The last sample's confirm and end-to-end p50, p99 and p99.9, in seconds.
fn encode_last_quantiles(
    encoder: &mut DescriptorEncoder,
    last: &IntervalSample,
) -> std::fmt::Result {
    for (name, help, interval) in [
        (
            "invstream_bench_last_confirm_latency_seconds",
            "Publish-to-confirm latency of the last sample's confirms, by quantile",
            &last.confirm,
        ),
        (
            "invstream_bench_last_end_to_end_latency_seconds",
            "Publish-to-read latency of the last sample's reads, by quantile",
            &last.end_to_end,
        ),
    ] {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for quantile in [0.5, 0.99, 0.999] {
            let label = QuantileLabel {
                quantile: quantile.to_string(),
            };
            let seconds = interval.value_at_quantile(quantile) as f64 / 1e6;
            ConstGauge::new(seconds).encode(family.encode_family(&label)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::BenchSecond;

    fn sample(sent: u64, confirmed: Vec<u64>) -> IntervalSample {
        let mut confirm = LatencyHistogram::new();
        confirm.record_us(2_000);
        IntervalSample {
            start: Duration::ZERO,
            length: Duration::from_secs(1),
            second: BenchSecond {
                second: 1.0,
                published_per_s: sent as f64,
                confirmed_per_s: 0.0,
                consumed_per_s: 0.0,
                confirm_p50_us: 2_000,
                confirm_p99_us: 2_000,
                end_to_end_p50_us: 0,
                end_to_end_p99_us: 0,
            },
            confirm,
            end_to_end: LatencyHistogram::new(),
            in_flight: 7,
            reconnects: 0,
            confirmed_by_partition: confirmed,
            sent_total: sent,
            consumed_total: 0,
            failed_total: 0,
            chunk_messages: LatencyHistogram::new(),
            reader_positions: Vec::new(),
            last: false,
        }
    }

    fn scrape(view: &BenchMetrics) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SampleCollector {
            snapshot: view.snapshot.clone(),
            partitions: view.partitions.clone(),
        }));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn a_scrape_shows_the_latest_totals_and_the_run_so_far() {
        let mut view = BenchMetrics::new(vec!["s-0".into(), "s-1".into()]);
        assert!(
            !scrape(&view).contains("invstream_bench"),
            "nothing before the first sample"
        );
        view.on_sample(&sample(100, vec![40, 50]));
        view.on_sample(&sample(300, vec![140, 150]));
        let text = scrape(&view);
        assert!(
            text.contains("invstream_bench_published_total 300"),
            "{text}"
        );
        assert!(
            text.contains("invstream_bench_confirmed_total 290"),
            "{text}"
        );
        assert!(
            text.contains("invstream_bench_partition_confirmed_total{stream=\"s-1\"} 150"),
            "{text}"
        );
        assert!(text.contains("invstream_bench_in_flight 7"), "{text}");
        assert!(
            text.contains("invstream_bench_confirm_latency_seconds_count 2"),
            "both samples' confirms: {text}"
        );
        assert!(
            text.contains("invstream_bench_last_confirm_latency_seconds{quantile=\"0.99\"} 0.002"),
            "{text}"
        );
    }
}
