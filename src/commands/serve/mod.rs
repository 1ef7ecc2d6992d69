//! `invstream serve`: an HTTP ingestion gateway. Requests feed the same `Publisher` as
//! `produce`; concurrent requests share publish frames ([`coalesce`]); a request is answered
//! 202 only once the broker confirmed all of its updates, so a 2xx means stored.
//!
//! Who gets in: [`auth`] (bearer tokens), [`tls`] (HTTPS), [`limits`] (connections, header
//! size, slow clients); [`metrics`] renders `/metrics`.

mod admission;
mod auth;
mod coalesce;
mod limits;
mod metrics;
mod request;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::broker::lock::{release_all, NameLock};
use crate::broker::{BrokerSettings, VersionProbe};
use crate::engines::publisher::{
    BatchOutcome, BatchReceipt, PartitionedPublisher, PublishOutcome, PublisherStats,
};
use crate::error::{InvError, Result};
use crate::model::{now_us, InventoryEvent, InventoryUpdate, StockStatus};
use crate::report::Output;
use crate::settings::{CommonSettings, ServeSettings};
use crate::shutdown::Shutdown;
use crate::stats::{CommandName, RunSummary};
use crate::superstream::{connect_and_ensure, take_producer_name, Asked};
use crate::target::Target;
use admission::Admission;
use coalesce::{Coalescer, HandOff, Waited};
use request::{error, parse_updates, readable_body, ApiError};

struct Gateway {
    /// `None` once the server shuts down and the publisher is closed.
    publisher: Arc<Mutex<Option<PartitionedPublisher>>>,
    /// Every publisher's counters (one per partition of a super stream).
    stats: Vec<PublisherStats>,
    broker: BrokerSettings,
    /// What `/healthz` asks the broker (over TLS for a TLS URI).
    probe: VersionProbe,
    /// Requests wait here for the one task that sends them, in shared frames.
    coalescer: Arc<Coalescer>,
    /// Which requests fit under the in-flight bound, queued ones counted.
    admission: Admission,
    max_in_flight: u64,
    /// `--max-body-bytes`, named in the 413 answer.
    max_body_bytes: u64,
    confirm_timeout: Duration,
    metrics: Arc<metrics::Metrics>,
}

/// Who may connect, and how: read before anything listens or connects.
struct Access {
    tokens: Option<Arc<auth::Tokens>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Access {
    fn read(settings: &ServeSettings) -> Result<Access> {
        let tokens = match &settings.tokens_file {
            Some(path) => Some(Arc::new(auth::Tokens::load(path)?)),
            None => None,
        };
        let tls = match &settings.listen_tls {
            Some((cert, key)) => Some(tls::acceptor(cert, key)?),
            None => None,
        };
        Ok(Access { tokens, tls })
    }
}

/// `invstream serve`: runs until Ctrl-C or SIGTERM, then finishes in-flight requests and
/// returns what was published.
pub async fn run(
    common: &CommonSettings,
    settings: &ServeSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let broker = &common.broker;
    let access = Access::read(settings)?;
    let probe = VersionProbe::new(broker)?;
    // Listen first: nothing can fail between opening the publisher and closing it.
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| {
            InvError::usage(format!(
                "cannot listen on {}: {e} (pick another --listen address)",
                settings.listen
            ))
        })?;
    let asked = match &settings.super_stream {
        Some(name) => Asked::SuperStream { name, layout: None },
        None => Asked::Stream(&common.stream),
    };
    let (env, mut target) = connect_and_ensure(broker, asked, &settings.retention, out).await?;
    let producer_name = settings
        .producer_name
        .clone()
        .unwrap_or_else(|| format!("invstream-{}-serve", target.name));
    // The gateway's name is held for as long as it serves, taken before the broker is asked
    // what it holds: two gateways numbering updates under one name would each be confirmed for
    // updates the broker dropped as the other's duplicates.
    let (locks, stored) =
        take_producer_name(broker, &env, &mut target, &producer_name, out).await?;
    // A request's updates are numbered after the highest id the name holds (in any partition).
    let last_id = stored.into_iter().max().unwrap_or(0);
    let publisher = match open(&env, broker, settings, &target, &producer_name, out).await {
        Ok(publisher) => publisher,
        Err(e) => {
            release_all(locks).await;
            return Err(e);
        }
    };
    let served = Served {
        target: &target,
        producer_name: &producer_name,
        settings,
        shutdown,
        out,
    };
    served
        .serve(listener, access, probe, broker, (publisher, locks), last_id)
        .await
}

/// Opens the gateway's publisher.
async fn open(
    env: &rabbitmq_stream_client::Environment,
    broker: &BrokerSettings,
    settings: &ServeSettings,
    target: &Target,
    producer_name: &str,
    out: Output,
) -> Result<PartitionedPublisher> {
    let options = settings
        .publish
        .publisher_options(producer_name.to_string(), true);
    let events = Arc::new(move |event| out.publisher_event(&event));
    PartitionedPublisher::open(env, broker, target, options, false, events).await
}

/// One serving gateway, from its open publisher to its summary.
struct Served<'a> {
    target: &'a Target,
    producer_name: &'a str,
    settings: &'a ServeSettings,
    shutdown: &'a Shutdown,
    out: Output,
}

impl Served<'_> {
    /// Serves until the stop (or until the broker stays away past `--retry-for`), then
    /// finishes what is in flight and sums up.
    async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        access: Access,
        probe: VersionProbe,
        broker: &BrokerSettings,
        (mut publisher, locks): (PartitionedPublisher, Vec<NameLock>),
        last_id: u64,
    ) -> Result<RunSummary> {
        let settings = self.settings;
        // The publishers hold the names from now on (taken again if lost), until they close.
        publisher.hold_names(locks);
        let (stats, admission) = (publisher.stats(), Admission::of(&publisher));
        let queued = {
            let admission = admission.clone();
            Box::new(move || admission.queued())
        };
        let metrics = Arc::new(metrics::Metrics::new(stats.clone(), queued));
        let publisher = Arc::new(Mutex::new(Some(publisher)));
        let coalescer = Arc::new(Coalescer::default());
        // A missing `seq` is the publishing id - 1.
        let sender = tokio::spawn(coalescer.clone().run(
            publisher.clone(),
            last_id + 1,
            settings.confirm_timeout,
        ));
        let gateway = Arc::new(Gateway {
            stats,
            metrics: metrics.clone(),
            publisher,
            broker: broker.clone(),
            probe,
            coalescer,
            admission,
            max_in_flight: settings.publish.max_in_flight,
            max_body_bytes: settings.limits.max_body_bytes,
            confirm_timeout: settings.confirm_timeout,
        });
        let app = routes(gateway.clone(), settings, &access, metrics.clone());
        let local: SocketAddr = listener.local_addr().unwrap_or(settings.listen);
        self.out.status(&self.serving_line(local, &access));
        let gave_up = self
            .until_stopped(listener, app, access, metrics, &gateway)
            .await;
        sender.abort();
        // Taken out (not dropped): the client's producer must be closed, never just dropped.
        let taken = gateway.publisher.lock().await.take();
        let Some(mut publisher) = taken else {
            return Err(InvError::Output(
                "the publisher was already closed".to_string(),
            ));
        };
        if let Some(error) = gave_up {
            publisher.close().await;
            return Err(error);
        }
        self.out.status("stopping: in-flight requests finished");
        let outcome = publisher.finish(settings.confirm_timeout).await;
        publisher.close().await;
        let outcome = PublishOutcome::sum(&outcome?);
        let mut summary = RunSummary::published(
            CommandName::Serve,
            &self.target.name,
            self.producer_name,
            outcome,
            0,
            0,
        );
        // Ctrl-C or SIGTERM is how a gateway ends: its normal end, not an interruption.
        summary.interrupted = false;
        Ok(summary)
    }

    /// Serves until the stop, reconnecting as soon as the connection drops (not at the next
    /// request). The error when the broker stayed away past `--retry-for`.
    async fn until_stopped(
        &self,
        listener: tokio::net::TcpListener,
        app: Router,
        access: Access,
        metrics: Arc<metrics::Metrics>,
        gateway: &Arc<Gateway>,
    ) -> Option<InvError> {
        let (gave_up_tx, gave_up_rx) = tokio::sync::oneshot::channel();
        let keeper = tokio::spawn(keep_connected(gateway.clone(), gave_up_tx));
        let gave_up = Arc::new(std::sync::Mutex::new(None));
        let stop = {
            let gave_up = gave_up.clone();
            let mut signal = self.shutdown.signal();
            async move {
                tokio::select! {
                    _ = signal.stopped() => {}
                    Ok(error) = gave_up_rx => {
                        *gave_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
                    }
                }
            }
        };
        let bounds = self.settings.limits;
        let limits = limits::ConnectionLimits {
            max_connections: usize::try_from(bounds.max_connections).unwrap_or(usize::MAX),
            max_header_bytes: usize::try_from(bounds.max_header_bytes).unwrap_or(usize::MAX),
            body_read_timeout: bounds.body_read_timeout,
        };
        limits::serve(listener, app, access.tls, limits, metrics, stop).await;
        keeper.abort();
        let gave_up = gave_up.lock().unwrap_or_else(|p| p.into_inner()).take();
        gave_up
    }

    fn serving_line(&self, local: SocketAddr, access: &Access) -> String {
        let scheme = match access.tls {
            Some(_) => "https",
            None => "http",
        };
        let who = match access.tokens {
            Some(_) => "bearer token required",
            None => "no authentication",
        };
        let what = match self.target.is_super_stream {
            true => format!(
                "{} ({} partitions, routed by product id)",
                self.target.describe(),
                self.target.partitions.len()
            ),
            false => self.target.describe(),
        };
        format!(
            "serving {what} on {scheme}://{local} (POST /updates, POST /send_notification, GET /healthz, GET /metrics; {who}); Ctrl-C to stop"
        )
    }
}

/// The gateway's routes: the protected ones behind the token check (when tokens are asked
/// for), `/healthz` open, `/metrics` open with `--public-metrics`; every one under the body and
/// header bounds.
fn routes(
    gateway: Arc<Gateway>,
    settings: &ServeSettings,
    access: &Access,
    metrics: Arc<metrics::Metrics>,
) -> Router {
    let mut protected = Router::new()
        .route("/updates", post(post_updates))
        .route("/send_notification", post(send_notification));
    let mut open = Router::new().route("/healthz", get(healthz));
    if settings.public_metrics {
        open = open.route("/metrics", get(get_metrics));
    } else {
        protected = protected.route("/metrics", get(get_metrics));
    }
    if let Some(tokens) = &access.tokens {
        // A route layer: checked before the body is read, and unknown paths still get 404.
        protected = protected.route_layer(middleware::from_fn_with_state(
            auth::Auth {
                tokens: tokens.clone(),
                metrics,
            },
            auth::require_token,
        ));
    }
    protected
        .merge(open)
        .layer(DefaultBodyLimit::max(
            usize::try_from(settings.limits.max_body_bytes).unwrap_or(usize::MAX),
        ))
        .layer(middleware::from_fn_with_state(
            usize::try_from(settings.limits.max_header_bytes).unwrap_or(usize::MAX),
            limits::cap_headers,
        ))
        .with_state(gateway)
}

/// Waits for the publisher's connection to drop, then reconnects it (holding the publisher, so
/// requests wait meanwhile). Sends the error if the broker stays away past `--retry-for`.
async fn keep_connected(gateway: Arc<Gateway>, gave_up: tokio::sync::oneshot::Sender<InvError>) {
    loop {
        admission::any_lost(&gateway.stats).await;
        let mut publisher = gateway.publisher.lock().await;
        let Some(publisher) = publisher.as_mut() else {
            return;
        };
        // A request's own send may have reconnected while we waited for the lock.
        if !gateway.stats.iter().any(PublisherStats::is_lost) {
            continue;
        }
        if let Err(error) = publisher.recover().await {
            let _ = gave_up.send(error);
            return;
        }
    }
}

/// `POST /updates`: one JSON update, a JSON array of them, or NDJSON.
async fn post_updates(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let body = readable_body(body, &headers, gateway.max_body_bytes)?;
    gateway.publish(parse_updates(&body)?).await
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
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let body = readable_body(body, &headers, gateway.max_body_bytes)?;
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
        Value::Number(n) => n.as_u64().ok_or(n.to_string()),
        Value::String(s) => s.trim().parse().map_err(|_| s.trim().to_string()),
        other => Err(other.to_string()),
    };
    let product_id = product_id.map_err(|given| {
        let reason = match given.parse::<f64>() {
            Ok(n) if n.fract() == 0.0 && n > u64::MAX as f64 => {
                "larger than the largest product id, 18446744073709551615"
            }
            _ => "not a whole number from 0 to 18446744073709551615",
        };
        error(
            StatusCode::BAD_REQUEST,
            "invalid field",
            json!({ "field": "product_id", "reason": reason }),
        )
    })?;
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
    /// Publishes one request's updates and answers once the broker confirmed them all. The
    /// updates go out with those of concurrent requests, in shared frames ([`coalesce`]).
    async fn publish(
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
        let products: Vec<u64> = updates.iter().map(|(u, _)| u.product_id).collect();
        let Some(admitted) = self.admission.try_admit(&products) else {
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many updates waiting for the broker's confirms; retry shortly",
                json!({
                    "in_flight": self.stats.iter().map(PublisherStats::in_flight).sum::<u64>(),
                    "queued": self.admission.queued(),
                }),
            ));
        };
        // Once queued it is sent even if the client hangs up (or withdrawn, if still waiting).
        let ticket = self.coalescer.submit(updates, admitted);
        let (receipts, first_id, seqs) = match ticket.handed(self.confirm_timeout).await {
            Waited::Answer(HandOff::Sent {
                receipts,
                first_id,
                seqs,
            }) => (receipts, first_id, seqs),
            Waited::Answer(HandOff::Unsent(why)) => {
                return Err(error(StatusCode::SERVICE_UNAVAILABLE, why, json!({})))
            }
            Waited::Withdrawn => {
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "reconnecting to the broker; retry shortly",
                    json!({}),
                ))
            }
            Waited::Answer(HandOff::Partly(why)) => {
                return Err(error(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("sending stopped part-way through this request ({why}); some of its updates may be stored"),
                    json!({}),
                ))
            }
            Waited::NoAnswer => {
                return Err(error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "no confirm from the broker in time; the updates may or may not be stored",
                    json!({}),
                ))
            }
        };
        match tokio::time::timeout(self.confirm_timeout, settled(receipts)).await {
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

/// How a request's updates ended, once every receipt (one per partition it touched) settled;
/// `None` if a producer went away first.
async fn settled(receipts: Vec<BatchReceipt>) -> Option<BatchOutcome> {
    let mut total = BatchOutcome {
        confirmed: 0,
        failed: 0,
    };
    for receipt in receipts {
        let outcome = receipt.settled().await?;
        total.confirmed += outcome.confirmed;
        total.failed += outcome.failed;
    }
    Some(total)
}

/// `GET /healthz`: 200 while the gateway's own connection is up and the broker answers on its
/// stream port (over TLS for a TLS URI); 503 while the gateway reconnects or the broker is away.
async fn healthz(State(gateway): State<Arc<Gateway>>) -> std::result::Result<Response, ApiError> {
    let broker = &gateway.broker;
    if gateway.stats.iter().any(PublisherStats::is_lost) {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway lost its broker connection and is reconnecting",
            json!({ "status": "reconnecting", "broker": broker.addr() }),
        ));
    }
    match gateway.probe.version().await {
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

/// `GET /metrics`: OpenMetrics text (Prometheus reads it).
async fn get_metrics(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not render the metrics",
            json!({}),
        )
        .into_response(),
    }
}
