//! What the `serve` tests (serve.rs, serve_frames.rs) share: a gateway started on a free port and
//! stopped with its summary, a POST, `/metrics` as numbers, and the seqs a `consume --print` read.

use std::collections::HashMap;
use std::process::{Child, Output};
use std::time::Duration;

use crate::util::{send_signal, wait_summary, BrokerNode, StderrLog, TestStream};

/// One inventory update, a request body.
pub const UPDATE: &str = r#"{"product_id":7,"sku":"SKU-7","warehouse":"AMS-1","event":"sold","quantity_delta":-1,"stock_level":3}"#;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `invstream serve` on a free port; returns it and its base URL once it listens.
pub fn start(stream: &TestStream, extra: &[&str]) -> (Child, String) {
    let (child, base, _) = start_watched(stream, extra);
    (child, base)
}

/// As `start`, through `node` only, waiting out a broker outage for up to `retry_for` and each
/// request's confirms for up to `confirm_timeout`.
pub fn start_through(
    node: &BrokerNode,
    stream: &TestStream,
    retry_for: &str,
    confirm_timeout: &str,
) -> (Child, String) {
    let patience = [
        "--retry-for",
        retry_for,
        "--confirm-timeout",
        confirm_timeout,
    ];
    start(stream, &[&["--uri", &node.uri()][..], &patience].concat())
}

/// As `start`, keeping what the gateway writes on stderr.
pub fn start_watched(stream: &TestStream, extra: &[&str]) -> (Child, String, StderrLog) {
    let listen = format!("127.0.0.1:{}", free_port());
    let (child, log) = stream.spawn_watched(
        &[&["serve", "--listen", &listen], extra].concat(),
        "serving stream",
    );
    (child, format!("http://{listen}"), log)
}

/// SIGTERM, then the JSON summary it prints on the way out.
pub fn stop(child: Child) -> serde_json::Value {
    send_signal(&child, "TERM");
    wait_summary(child)
}

/// POSTs `body` to `url`: (status, the JSON body or null, Retry-After).
pub async fn post(
    client: &reqwest::Client,
    url: String,
    body: String,
) -> (u16, serde_json::Value, Option<String>) {
    let response = client
        .post(url)
        .body(body)
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body, retry_after)
}

/// The `/metrics` text as name → value.
pub fn metric_values(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// `GET /metrics` (with a bounded wait) as name → value.
pub async fn metrics(client: &reqwest::Client, base: &str) -> HashMap<String, f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("the gateway answers /metrics")
        .text()
        .await
        .unwrap();
    metric_values(&text)
}

/// The seqs of the updates a successful `consume --print` printed, in the order read.
pub fn printed_seqs(output: &Output) -> Vec<u64> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["update"]["seq"]
                .as_u64()
                .unwrap()
        })
        .collect()
}
