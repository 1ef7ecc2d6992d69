//! The gateway's accept loop, with the limits that keep a flood of clients from taking its
//! memory: at most `--max-connections` connections at once (past it a connection gets a minimal
//! `503` and is closed), request headers capped at `--max-header-bytes` (431 past it), and
//! deadlines on the TLS handshake, on reading request headers and on reading a request's body
//! (`--body-read-timeout`, 408 past it), so idle or slow clients cannot hold a connection slot,
//! or the server's stop, forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::metrics::Metrics;

/// How long a client may take to send a request's headers (and, between requests, to start the
/// next one) before its connection is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take over the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Refused connections answered at once; past it a refused connection is closed without one.
const REFUSING_AT_ONCE: usize = 64;
/// How long a refused connection is kept to read (and drop) its request after the 503, so the
/// close does not reset the connection before the client read the answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Most HTTP/2 requests at once on one connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 128;
/// How long a request body still arriving when the server stops may take: the stop waits for
/// open requests, and a client that sent half a body would otherwise hold it for the whole
/// `--body-read-timeout`.
const STOPPING_BODY_GRACE: Duration = Duration::from_secs(2);

/// What a connection past `--max-connections` gets before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 56\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections (--max-connections); retry shortly\n";

pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    /// How long a request's body may take to arrive.
    pub body_read_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` resolves, then stops accepting and waits for the open
/// connections to finish their requests. (One accept loop: its arms share the connection count,
/// the graceful-shutdown watcher and the TLS acceptor.)
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    let builder = Arc::new(builder);
    let (stopping_tx, stopping) = watch::channel(false);
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            BodyDeadline {
                timeout: limits.body_read_timeout,
                stopping,
            },
            body_deadline,
        ))
        // Outermost, so every answer is counted and timed, the limits' own included.
        .layer(axum::middleware::from_fn_with_state(
            metrics.clone(),
            super::metrics::observe_requests,
        ));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors, or a connection that went away before it was
                    // accepted: wait a little rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.refused_connection();
            refuse(stream, tls.is_some(), &refusing);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let open = metrics.connection_opened();
        let (builder, app, tls, watcher) = (
            builder.clone(),
            app.clone(),
            tls.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            let service = TowerToHyperService::new(app);
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let _ = watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await;
                }
                None => {
                    // hyper's header timeout starts once it knows the protocol: a client that
                    // connects and sends nothing is closed here.
                    if !matches!(
                        tokio::time::timeout(HEADER_READ_TIMEOUT, stream.readable()).await,
                        Ok(Ok(()))
                    ) {
                        return;
                    }
                    let _ = watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await;
                }
            }
        });
    }
    drop(listener);
    stopping_tx.send_replace(true);
    graceful.shutdown().await;
}

/// What [`body_deadline`] needs: `--body-read-timeout`, and whether the server is stopping.
#[derive(Clone)]
struct BodyDeadline {
    timeout: Duration,
    stopping: watch::Receiver<bool>,
}

/// Why a request's body stopped arriving (stored in a [`TimedBody`]'s flag).
const BODY_IN_TIME: u8 = 0;
const BODY_TOO_SLOW: u8 = 1;
const BODY_CUT_BY_STOP: u8 = 2;

/// Gives a request's body until `--body-read-timeout` to arrive (408 past it), or
/// [`STOPPING_BODY_GRACE`] once the server stops (503): the handler reading it then gets an
/// error, and its client this answer.
async fn body_deadline(
    State(deadline): State<BodyDeadline>,
    request: Request,
    next: Next,
) -> Response {
    if hyper::body::Body::is_end_stream(request.body()) {
        return next.run(request).await;
    }
    let late = Arc::new(AtomicU8::new(BODY_IN_TIME));
    let (parts, body) = request.into_parts();
    let BodyDeadline {
        timeout,
        mut stopping,
    } = deadline;
    let expiry = Box::pin(async move {
        tokio::select! {
            _ = tokio::time::sleep(timeout) => BODY_TOO_SLOW,
            _ = async {
                let _ = stopping.wait_for(|stopping| *stopping).await;
                tokio::time::sleep(STOPPING_BODY_GRACE).await;
            } => BODY_CUT_BY_STOP,
        }
    });
    let body = TimedBody {
        inner: body,
        expiry: Some(expiry),
        late: late.clone(),
    };
    let response = next.run(Request::from_parts(parts, Body::new(body))).await;
    let (status, message) = match late.load(Ordering::Relaxed) {
        BODY_TOO_SLOW => (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within --body-read-timeout ({})",
                humantime::format_duration(timeout)
            ),
        ),
        BODY_CUT_BY_STOP => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping and the request body had not arrived: send it again"
                .to_string(),
        ),
        _ => return response,
    };
    super::request::error(status, message, json!({})).into_response()
}

/// A request body that fails once its expiry comes first (setting `late` to why).
struct TimedBody {
    inner: Body,
    /// `None` once it came.
    expiry: Option<Pin<Box<dyn Future<Output = u8> + Send>>>,
    late: Arc<AtomicU8>,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let Some(expiry) = this.expiry.as_mut() else {
            return Poll::Ready(Some(Err(axum::Error::new(
                "the request body came too late",
            ))));
        };
        match expiry.as_mut().poll(cx) {
            Poll::Ready(why) => {
                this.late.store(why, Ordering::Relaxed);
                this.expiry = None;
                Poll::Ready(Some(Err(axum::Error::new(
                    "the request body came too late",
                ))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Answers 431 to a request whose line and headers are larger than `--max-header-bytes`.
/// hyper's read buffer already stops a head that arrives in pieces past that size; one that
/// arrives at once, or over HTTP/2, is measured here, before anything else looks at it.
pub async fn cap_headers(State(max): State<usize>, request: Request, next: Next) -> Response {
    let size = request.method().as_str().len()
        + request.uri().to_string().len()
        + request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if size > max {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Json(json!({
                "error": format!("the request line and headers take {size} bytes, more than --max-header-bytes ({max})")
            })),
        )
            .into_response();
    }
    next.run(request).await
}

/// Closes a connection past `--max-connections`: plain HTTP gets a minimal 503 first (a TLS
/// client cannot read one before a handshake, which a flood should not get, so it is closed).
fn refuse(stream: TcpStream, tls: bool, refusing: &Arc<Semaphore>) {
    if tls {
        return;
    }
    let Ok(permit) = refusing.clone().try_acquire_owned() else {
        // Too many refusals under way: answer if the socket takes it at once, then close.
        let _ = stream.try_write(REFUSAL);
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_LINGER, answer_and_close(stream)).await;
    });
}

/// Writes the 503, then reads what the client sent until it closes (at most 64 KiB).
async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> std::io::Result<()> {
    stream.write_all(REFUSAL).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < 64 * 1024 {
        let read = stream.read(&mut sink).await?;
        if read == 0 {
            break;
        }
        drained += read;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
    }
}
