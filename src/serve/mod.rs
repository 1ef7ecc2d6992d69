//! `invstream serve`: an HTTP ingestion gateway. Requests feed the same `Publisher` as
//! `produce`; concurrent requests share the client's publish frames; a request is answered 202
//! only once the broker confirmed all of its updates, so a 2xx means stored.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::broker::{probe_server_version, BrokerSettings};
use crate::cli::ServeArgs;
use crate::error::{InvError, Result};
use crate::input::NumberedUpdate;
use crate::model::{now_us, InventoryEvent, InventoryUpdate, StockStatus};
use crate::produce::{connect_and_ensure_stream, Publisher, PublisherOptions, PublisherStats};
use crate::report::Output;
use crate::stats::RunSummary;

/// Upper bounds (seconds) of the confirm latency histogram's buckets in `/metrics`.
const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

struct Gateway {
    /// `None` once the server shuts down and the publisher is closed.
    publisher: Mutex<Option<Publisher>>,
    stats: PublisherStats,
    broker: BrokerSettings,
    /// The next publishing id; a missing `seq` is the publishing id - 1.
    next_id: AtomicU64,
    max_in_flight: u64,
    confirm_timeout: Duration,
}

/// `invstream serve`: runs until Ctrl-C or SIGTERM, then finishes in-flight requests and
/// returns what was published.
pub async fn run(
    broker: &BrokerSettings,
    stream: &str,
    args: &ServeArgs,
    out: Output,
) -> Result<RunSummary> {
    // Listen first: nothing can fail between opening the publisher and closing it.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| InvError::Usage {
            message: format!(
                "cannot listen on {}: {e} (pick another --listen address)",
                args.listen
            ),
        })?;
    let env = connect_and_ensure_stream(broker, stream, &args.retention, out).await?;
    let producer_name = args
        .producer_name
        .clone()
        .unwrap_or_else(|| format!("invstream-{stream}-serve"));
    let last_id = broker.last_publishing_id(&producer_name, stream).await?;
    let options = PublisherOptions {
        batch_size: args.batch_size,
        max_in_flight: args.max_in_flight,
        filter_values: !args.no_filter_values,
        producer_name: &producer_name,
        dedup: true,
        batching: Default::default(),
        out,
    };
    let publisher = Publisher::open(&env, broker, stream, options).await?;
    let gateway = Arc::new(Gateway {
        stats: publisher.stats(),
        publisher: Mutex::new(Some(publisher)),
        broker: broker.clone(),
        next_id: AtomicU64::new(last_id + 1),
        max_in_flight: args.max_in_flight,
        confirm_timeout: args.confirm_timeout,
    });
    let app = Router::new()
        .route("/updates", post(post_updates))
        .route("/send_notification", post(send_notification))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(args.max_body_bytes as usize))
        .with_state(gateway.clone());
    let local: SocketAddr = listener.local_addr().unwrap_or(args.listen);
    out.status(&format!(
        "serving stream '{stream}' on http://{local} (POST /updates, POST /send_notification, GET /healthz, GET /metrics); Ctrl-C to stop"
    ));
    // Reconnects as soon as the connection drops, not at the next request; if the broker stays
    // away past --retry-for, the server stops with that error.
    let (gave_up_tx, gave_up_rx) = tokio::sync::oneshot::channel();
    let keeper = tokio::spawn(keep_connected(gateway.clone(), gave_up_tx));
    let gave_up = Arc::new(std::sync::Mutex::new(None));
    let stop = {
        let gave_up = gave_up.clone();
        async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                Ok(error) = gave_up_rx => {
                    *gave_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
                }
            }
        }
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await;
    keeper.abort();
    let gave_up = gave_up.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(error) = gave_up {
        if let Some(publisher) = gateway.publisher.lock().await.take() {
            publisher.close().await;
        }
        return Err(error);
    }
    out.status("stopping: in-flight requests finished");
    // Taken out (not dropped): the client's producer must be closed, never just dropped.
    let Some(publisher) = gateway.publisher.lock().await.take() else {
        return Err(InvError::Client {
            message: "the publisher was already closed".to_string(),
        });
    };
    let mut publisher = publisher;
    let outcome = publisher
        .finish(args.confirm_timeout, &indicatif::ProgressBar::hidden())
        .await;
    publisher.close().await;
    let outcome = outcome?;
    served.map_err(|e| InvError::Client {
        message: format!("HTTP server: {e}"),
    })?;
    let mut summary = outcome.into_summary(stream, 0, 0);
    summary.command = "serve";
    Ok(summary)
}

/// Waits for the publisher's connection to drop, then reconnects it (holding the publisher, so
/// requests wait meanwhile). Sends the error if the broker stays away past `--retry-for`.
async fn keep_connected(gateway: Arc<Gateway>, gave_up: tokio::sync::oneshot::Sender<InvError>) {
    loop {
        gateway.stats.lost().await;
        let mut publisher = gateway.publisher.lock().await;
        let Some(publisher) = publisher.as_mut() else {
            return;
        };
        if let Err(error) = publisher.recover().await {
            let _ = gave_up.send(error);
            return;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A JSON error answer: `{"error": …}` plus details.
struct ApiError {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Backpressure: the client should come back, and soon.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

fn error(status: StatusCode, message: impl Into<String>, details: Value) -> ApiError {
    let mut body = json!({ "error": message.into() });
    if let (Some(body), Value::Object(details)) = (body.as_object_mut(), details) {
        body.extend(details);
    }
    ApiError { status, body }
}

/// `POST /updates`: one JSON update, a JSON array of them, or NDJSON.
async fn post_updates(
    State(gateway): State<Arc<Gateway>>,
    body: Bytes,
) -> std::result::Result<Response, ApiError> {
    gateway.publish(parse_updates(&body)?).await
}

/// Parses a body into (update, had its own seq) pairs; any invalid update rejects the request.
fn parse_updates(body: &[u8]) -> std::result::Result<Vec<(InventoryUpdate, bool)>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the body is not UTF-8", json!({})))?;
    let trimmed = text.trim();
    let now = now_us();
    let invalid = |field: &str, position: usize, reason: String| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid inventory update",
            json!({ field: position, "reason": reason }),
        )
    };
    if trimmed.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the body holds no update",
            json!({}),
        ));
    }
    if trimmed.starts_with('[') {
        let items: Vec<Value> = serde_json::from_str(trimmed).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "the body is not a JSON array",
                json!({ "reason": e.to_string() }),
            )
        })?;
        if items.is_empty() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "the array holds no update",
                json!({}),
            ));
        }
        return items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                InventoryUpdate::from_input_value(item, 0, now)
                    .map_err(|r| invalid("index", index, r))
            })
            .collect();
    }
    let lines: Vec<&str> = trimmed.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            let value: Value = serde_json::from_str(line)
                .map_err(|e| invalid("line", index + 1, e.to_string()))?;
            InventoryUpdate::from_input_value(value, 0, now)
                .map_err(|r| invalid("line", index + 1, r))
        })
        .collect()
}

/// The original exercise's body: a product and its new status.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Notification {
    product_id: Value,
    status: String,
}

/// `POST /send_notification`: `{"product_id": "1", "status": "in stock"}`, recorded as an
/// `adjusted` update with the lowest stock level of that status.
async fn send_notification(
    State(gateway): State<Arc<Gateway>>,
    body: Bytes,
) -> std::result::Result<Response, ApiError> {
    let notification: Notification = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "expected {\"product_id\": \"1\", \"status\": \"in stock\"}",
                json!({ "reason": e.to_string() }),
            ))
        }
    };
    let product_id = match &notification.product_id {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let Some(product_id) = product_id else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid field",
            json!({ "field": "product_id", "reason": "not a non-negative integer" }),
        ));
    };
    let Some(status) = StockStatus::parse_loose(&notification.status) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid field",
            json!({ "field": "status", "reason": "use in stock, low stock or out of stock" }),
        ));
    };
    let update = InventoryUpdate {
        seq: 0,
        product_id,
        sku: format!("SKU-{product_id:06}"),
        warehouse: "unknown".to_string(),
        event: InventoryEvent::Adjusted,
        quantity_delta: 0,
        stock_level: status.representative_stock_level(),
        status,
        produced_at_us: now_us(),
    };
    gateway.publish(vec![(update, false)]).await
}

impl Gateway {
    /// Publishes on a task of its own, so a client that hangs up cannot cut a send short.
    async fn publish(
        self: &Arc<Self>,
        updates: Vec<(InventoryUpdate, bool)>,
    ) -> std::result::Result<Response, ApiError> {
        let gateway = self.clone();
        match tokio::spawn(async move { gateway.publish_now(updates).await }).await {
            Ok(answer) => answer,
            Err(e) => Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("publishing failed: {e}"),
                json!({}),
            )),
        }
    }

    /// Publishes one request's updates and answers once the broker confirmed them all.
    async fn publish_now(
        &self,
        updates: Vec<(InventoryUpdate, bool)>,
    ) -> std::result::Result<Response, ApiError> {
        let count = updates.len() as u64;
        if count > self.max_in_flight {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{count} updates in one request, more than --max-in-flight ({})",
                    self.max_in_flight
                ),
                json!({}),
            ));
        }
        let (receipt, first_id, seqs) = {
            let Ok(mut publisher) =
                tokio::time::timeout(self.confirm_timeout, self.publisher.lock()).await
            else {
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "reconnecting to the broker; retry shortly",
                    json!({}),
                ));
            };
            let Some(publisher) = publisher.as_mut() else {
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting down",
                    json!({}),
                ));
            };
            if !publisher.has_room(count) {
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many updates waiting for the broker's confirms; retry shortly",
                    json!({ "in_flight": self.stats.in_flight() }),
                ));
            }
            let first_id = self.next_id.fetch_add(count, Ordering::Relaxed);
            let numbered: Vec<NumberedUpdate> = updates
                .into_iter()
                .enumerate()
                .map(|(i, (mut update, had_seq))| {
                    let id = first_id + i as u64;
                    if !had_seq {
                        update.seq = id - 1;
                    }
                    (id, update)
                })
                .collect();
            let seqs: Vec<u64> = numbered.iter().map(|(_, u)| u.seq).collect();
            match publisher.send(&numbered, self.confirm_timeout).await {
                Ok(receipt) => (receipt, first_id, seqs),
                Err(e) => {
                    return Err(error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        e.to_string(),
                        json!({}),
                    ))
                }
            }
        };
        match tokio::time::timeout(self.confirm_timeout, receipt.settled()).await {
            Ok(Some(outcome)) if outcome.failed == 0 => Ok((
                StatusCode::ACCEPTED,
                Json(json!({
                    "accepted": count,
                    "first_id": first_id,
                    "last_id": first_id + count - 1,
                    "seqs": seqs,
                })),
            )
                .into_response()),
            Ok(Some(outcome)) => Err(error(
                StatusCode::BAD_GATEWAY,
                "the broker rejected some updates of this request",
                json!({ "confirmed": outcome.confirmed, "failed": outcome.failed }),
            )),
            _ => Err(error(
                StatusCode::GATEWAY_TIMEOUT,
                "no confirm from the broker in time; the updates may or may not be stored",
                json!({}),
            )),
        }
    }
}

/// `GET /healthz`: 200 while the broker answers on its stream port, 503 otherwise.
async fn healthz(State(gateway): State<Arc<Gateway>>) -> std::result::Result<Response, ApiError> {
    let broker = &gateway.broker;
    match probe_server_version(&broker.host, broker.port).await {
        Some(version) => Ok((
            StatusCode::OK,
            Json(json!({ "status": "ok", "broker": broker.addr(), "version": version })),
        )
            .into_response()),
        None => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker does not answer",
            json!({ "status": "unavailable", "broker": broker.addr() }),
        )),
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    let stats = &gateway.stats;
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    metric(
        "invstream_published_total",
        "counter",
        "Updates handed to the broker.",
        stats.sent(),
    );
    metric(
        "invstream_confirmed_total",
        "counter",
        "Updates the broker confirmed.",
        stats.confirmed(),
    );
    metric(
        "invstream_failed_total",
        "counter",
        "Updates the broker rejected.",
        stats.failed(),
    );
    metric(
        "invstream_in_flight",
        "gauge",
        "Updates sent and not yet confirmed.",
        stats.in_flight(),
    );
    metric(
        "invstream_reconnects_total",
        "counter",
        "Times the connection to the broker dropped and was made again.",
        stats.reconnects(),
    );
    let latency = stats.latency();
    let name = "invstream_confirm_latency_seconds";
    text.push_str(&format!(
        "# HELP {name} Time from publishing an update to its confirm.\n# TYPE {name} histogram\n"
    ));
    for bound in LATENCY_BUCKETS_S {
        let count = latency.count_at_most((bound * 1e6) as u64);
        text.push_str(&format!("{name}_bucket{{le=\"{bound}\"}} {count}\n"));
    }
    text.push_str(&format!(
        "{name}_bucket{{le=\"+Inf\"}} {}\n",
        latency.count()
    ));
    text.push_str(&format!("{name}_sum {}\n", latency.sum_us() / 1e6));
    text.push_str(&format!("{name}_count {}\n", latency.count()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
