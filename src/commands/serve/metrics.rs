//! `GET /metrics` with the `prometheus-client` crate (OpenMetrics text): the publisher's counters
//! and its HDR confirm-latency histogram through a collector read at each scrape, and the
//! gateway's own counters (401 answers, refused and open connections).

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::engines::publisher::PublisherStats;

/// The content type of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Everything `/metrics` shows. Counter names are registered without `_total`: the encoder adds it.
pub struct Metrics {
    registry: Registry,
    unauthorized: Counter,
    refused_connections: Counter,
    open_connections: Gauge,
}

impl Metrics {
    /// `stats`: every publisher's counters (a super stream's partitions), shown as totals;
    /// `queued`: how many updates wait to be sent (in the coalescer's queue).
    pub fn new(stats: Vec<PublisherStats>, queued: Box<dyn Fn() -> u64 + Send + Sync>) -> Metrics {
        let mut registry = Registry::default();
        let unauthorized = Counter::default();
        registry.register(
            "invstream_http_unauthorized",
            "Requests answered 401: no or a wrong bearer token",
            unauthorized.clone(),
        );
        let refused_connections = Counter::default();
        registry.register(
            "invstream_http_connections_refused",
            "Connections refused (503, then closed) because --max-connections were open",
            refused_connections.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "invstream_http_connections_open",
            "HTTP connections open now",
            open_connections.clone(),
        );
        registry.register_collector(Box::new(PublisherCollector { stats, queued }));
        Metrics {
            registry,
            unauthorized,
            refused_connections,
            open_connections,
        }
    }

    pub fn unauthorized(&self) {
        self.unauthorized.inc();
    }

    pub fn refused_connection(&self) {
        self.refused_connections.inc();
    }

    /// Counts a connection as open until the returned guard drops.
    pub fn connection_opened(&self) -> OpenConnection {
        self.open_connections.inc();
        OpenConnection(self.open_connections.clone())
    }

    /// The OpenMetrics text of every metric, ending with `# EOF`.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// One open connection, counted in `invstream_http_connections_open` while it lives.
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Reads the publishers' counters and latency histograms at each scrape, added up.
struct PublisherCollector {
    stats: Vec<PublisherStats>,
    queued: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl std::fmt::Debug for PublisherCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublisherCollector")
    }
}

impl prometheus_client::collector::Collector for PublisherCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.stats;
        let sum = |value: fn(&PublisherStats) -> u64| stats.iter().map(value).sum::<u64>();
        let counters = [
            (
                "invstream_published",
                "Updates handed to the broker",
                sum(PublisherStats::sent),
            ),
            (
                "invstream_confirmed",
                "Updates the broker confirmed",
                sum(PublisherStats::confirmed),
            ),
            (
                "invstream_failed",
                "Updates the broker rejected",
                sum(PublisherStats::failed),
            ),
            (
                "invstream_publish_frames",
                "Publish frames handed to the broker (concurrent requests share them)",
                sum(PublisherStats::frames),
            ),
            (
                "invstream_reconnects",
                "Times the connection to the broker dropped and was made again",
                sum(PublisherStats::reconnects),
            ),
        ];
        crate::live_metrics::encode_counters(&mut encoder, &counters)?;
        let in_flight =
            ConstGauge::new(i64::try_from(sum(PublisherStats::in_flight)).unwrap_or(i64::MAX));
        in_flight.encode(encoder.encode_descriptor(
            "invstream_in_flight",
            "Updates sent and not yet confirmed",
            None,
            in_flight.metric_type(),
        )?)?;
        let queued = ConstGauge::new(i64::try_from((self.queued)()).unwrap_or(i64::MAX));
        queued.encode(encoder.encode_descriptor(
            "invstream_queued",
            "Updates accepted for sending and not yet handed to the broker (they share frames)",
            None,
            queued.metric_type(),
        )?)?;

        let mut latency = crate::stats::LatencyHistogram::new();
        for stats in stats {
            latency.merge(&stats.latency());
        }
        crate::live_metrics::encode_latency_histogram(
            &mut encoder,
            "invstream_confirm_latency_seconds",
            "Time from publishing an update to its confirm",
            &latency,
        )
    }
}
