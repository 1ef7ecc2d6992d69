//! `GET /metrics` with the `prometheus-client` crate (OpenMetrics text): the publisher's counters
//! and its HDR confirm-latency histogram through a collector read at each scrape, the gateway's
//! own (every answer by route, method and status, and how long it took; 401 answers, refused and
//! open connections), what the binary was built from, and the `process_*` metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::build_info;
use crate::engines::publisher::PublisherStats;
use crate::process_metrics::ProcessCollector;

/// Bounds of the request-duration buckets, in seconds: from a `/healthz` answered at once to a
/// `POST /updates` that waited long for its confirms.
const REQUEST_BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a path no route matched: one value, so scanners' paths add no series.
const OTHER_ROUTE: &str = "other";

/// One answer's labels in `invstream_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's pattern (`/updates`), or [`OTHER_ROUTE`].
    route: String,
    method: &'static str,
    status: u16,
}

/// A route's label in `invstream_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

type DurationFamily = Family<RouteLabel, Histogram, fn() -> Histogram>;

/// The content type of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Everything `/metrics` shows. Counter names are registered without `_total`: the encoder adds it.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: DurationFamily,
    unauthorized: Counter,
    refused_connections: Counter,
    open_connections: Gauge,
}

impl Metrics {
    /// `stats`: every publisher's counters (a super stream's partitions), shown as totals;
    /// `queued`: how many updates wait to be sent (in the coalescer's queue).
    pub fn new(stats: Vec<PublisherStats>, queued: Box<dyn Fn() -> u64 + Send + Sync>) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "invstream_http_requests",
            "HTTP requests answered, by route, method and status (a refused connection's 503 is counted in invstream_http_connections_refused)",
            requests.clone(),
        );
        let durations: DurationFamily =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS_S));
        registry.register(
            "invstream_http_request_duration_seconds",
            "Time from a request's arrival to its answer being ready (for POST /updates, once its updates were confirmed), by route",
            durations.clone(),
        );
        registry.register(
            "invstream_build",
            "What this binary was built from (as invstream --version says)",
            Info::new(vec![
                ("version", build_info::PACKAGE_VERSION),
                ("commit", build_info::COMMIT),
                ("profile", build_info::PROFILE),
            ]),
        );
        registry.register_collector(Box::new(ProcessCollector));
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
            requests,
            durations,
            unauthorized,
            refused_connections,
            open_connections,
        }
    }

    /// Counts one answer and how long it took.
    fn answered(&self, route: String, method: &Method, status: StatusCode, took: Duration) {
        self.durations
            .get_or_create(&RouteLabel {
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method: method_label(method),
                status: status.as_u16(),
            })
            .inc();
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

/// Counts every answer the router gives (the limits' and the token check's included) by route,
/// method and status, timed from the request's arrival to its answer. A layer on the router, so
/// it runs after routing, where the matched route is known.
pub async fn observe_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let arrived = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(OTHER_ROUTE, MatchedPath::as_str)
        .to_string();
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics.answered(route, &method, response.status(), arrived.elapsed());
    response
}

/// The method label: the standard methods by name, any other as one value (a client may invent
/// methods; each would otherwise be a new series).
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    STANDARD
        .into_iter()
        .find(|name| *name == method.as_str())
        .unwrap_or("other")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(Vec::new(), Box::new(|| 0))
    }

    #[test]
    fn answers_are_counted_by_route_method_and_status_and_timed_by_route() {
        let metrics = metrics();
        let took = Duration::from_millis(3);
        for _ in 0..2 {
            metrics.answered("/updates".into(), &Method::POST, StatusCode::ACCEPTED, took);
        }
        metrics.answered(
            "/updates".into(),
            &Method::POST,
            StatusCode::BAD_REQUEST,
            took,
        );
        metrics.answered(
            OTHER_ROUTE.into(),
            &Method::GET,
            StatusCode::NOT_FOUND,
            took,
        );
        let text = metrics.render().unwrap();
        for line in [
            r#"invstream_http_requests_total{route="/updates",method="POST",status="202"} 2"#,
            r#"invstream_http_requests_total{route="/updates",method="POST",status="400"} 1"#,
            r#"invstream_http_requests_total{route="other",method="GET",status="404"} 1"#,
            r#"invstream_http_request_duration_seconds_count{route="/updates"} 3"#,
            r#"invstream_http_request_duration_seconds_bucket{le="0.0025",route="/updates"} 0"#,
            r#"invstream_http_request_duration_seconds_bucket{le="0.005",route="/updates"} 3"#,
            r#"invstream_http_request_duration_seconds_count{route="other"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn build_info_names_what_version_names() {
        let text = metrics().render().unwrap();
        let line = format!(
            r#"invstream_build_info{{version="{}",commit="{}",profile="{}"}} 1"#,
            build_info::PACKAGE_VERSION,
            build_info::COMMIT,
            build_info::PROFILE
        );
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        assert!(build_info::VERSION.contains(build_info::COMMIT));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_shown() {
        let text = metrics().render().unwrap();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} in\n{text}"
            );
        }
    }

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
