//! `invstream serve`: every route, every error status, and concurrent load where each 2xx
//! answered update is in the stream exactly once.

use std::collections::HashSet;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::util::{runtime, TestStream};

const UPDATE: &str = r#"{"product_id":7,"sku":"SKU-7","warehouse":"AMS-1","event":"sold","quantity_delta":-1,"stock_level":3}"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `invstream serve` on a free port; returns it and its base URL once it listens.
fn start(stream: &TestStream, extra: &[&str]) -> (Child, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = stream.spawn_until(
        &[&["serve", "--listen", &listen], extra].concat(),
        "serving stream",
    );
    (child, format!("http://{listen}"))
}

/// SIGTERM, then the JSON summary it prints on the way out.
fn stop(child: Child) -> serde_json::Value {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    crate::util::wait_summary(child)
}

async fn post(
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

#[test]
fn routes_answer_and_errors_say_what_is_wrong() {
    let stream = TestStream::new("serve-routes");
    let (child, base) = start(
        &stream,
        &["--max-body-bytes", "4kb", "--max-in-flight", "100"],
    );
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{base}/updates");
        let (status, body, _) = post(&client, url.clone(), UPDATE.to_string()).await;
        assert_eq!(
            (status, body["accepted"].as_u64()),
            (202, Some(1)),
            "{body}"
        );
        let (status, body, _) = post(&client, url.clone(), format!("[{UPDATE},{UPDATE}]")).await;
        assert_eq!(
            (status, body["accepted"].as_u64()),
            (202, Some(2)),
            "{body}"
        );
        let (status, body, _) = post(
            &client,
            url.clone(),
            format!("{UPDATE}\n{UPDATE}\n{UPDATE}\n"),
        )
        .await;
        assert_eq!(
            (status, body["accepted"].as_u64()),
            (202, Some(3)),
            "{body}"
        );
        let seed = r#"{"product_id": "1", "status": "in stock"}"#.to_string();
        let (status, body, _) = post(&client, format!("{base}/send_notification"), seed).await;
        assert_eq!(status, 202, "{body}");

        let (status, body, _) = post(
            &client,
            url.clone(),
            format!("{UPDATE}\n{{\"product_id\":1}}"),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["line"], 2, "{body}");
        assert!(
            body["reason"].as_str().unwrap().contains("missing field"),
            "{body}"
        );
        let (status, body, _) =
            post(&client, url.clone(), format!("[{UPDATE},{{\"sku\":5}}]")).await;
        assert_eq!((status, body["index"].as_u64()), (400, Some(1)), "{body}");
        let (status, _, _) = post(&client, url.clone(), "   ".to_string()).await;
        assert_eq!(status, 400);
        let bad_status = r#"{"product_id": "1", "status": "sold out"}"#.to_string();
        let (status, body, _) =
            post(&client, format!("{base}/send_notification"), bad_status).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("status")),
            "{body}"
        );

        let (status, _, _) = post(&client, url.clone(), vec![UPDATE; 50].join("\n")).await;
        assert_eq!(status, 413, "bodies over --max-body-bytes");

        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);

        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut values = std::collections::HashMap::new();
        for line in metrics.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            values.insert(name.to_string(), value);
        }
        assert_eq!(values["invstream_confirmed_total"], 7.0, "{metrics}");
        assert_eq!(values["invstream_published_total"], 7.0);
        assert_eq!(values["invstream_in_flight"], 0.0);
        assert_eq!(values["invstream_reconnects_total"], 0.0);
        assert_eq!(
            values["invstream_confirm_latency_seconds_bucket{le=\"+Inf\"}"],
            7.0
        );
        assert_eq!(values["invstream_confirm_latency_seconds_count"], 7.0);
    });
    let summary = stop(child);
    assert_eq!(summary["command"], "serve");
    assert_eq!(summary["confirmed"], 7, "{summary}");
}

#[test]
fn concurrent_load_stores_exactly_the_acknowledged_updates() {
    let stream = TestStream::new("serve-load");
    let (child, base) = start(&stream, &["--max-in-flight", "40"]);
    let (accepted, unavailable) = runtime().block_on(async {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut tasks = Vec::new();
        for task in 0..32u64 {
            let (client, url) = (client.clone(), format!("{base}/updates"));
            tasks.push(tokio::spawn(async move {
                let (mut accepted, mut unavailable) = (Vec::new(), 0u64);
                for request in 0..10_000u64 {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let first = task * 1_000_000 + request * 10;
                    let body: Vec<String> = (first..first + 10)
                        .map(|seq| UPDATE.replacen('{', &format!("{{\"seq\":{seq},"), 1))
                        .collect();
                    match post(&client, url.clone(), body.join("\n")).await {
                        (202, _, _) => accepted.extend(first..first + 10),
                        (503, _, retry_after) => {
                            assert_eq!(retry_after.as_deref(), Some("1"));
                            unavailable += 1;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        (status, body, _) => panic!("unexpected {status}: {body}"),
                    }
                }
                (accepted, unavailable)
            }));
        }
        let mut all = Vec::new();
        let mut unavailable = 0;
        for task in tasks {
            let (accepted, busy) = task.await.unwrap();
            all.extend(accepted);
            unavailable += busy;
        }
        (all, unavailable)
    });
    let summary = stop(child);
    assert!(!accepted.is_empty());
    assert!(
        unavailable > 0,
        "with 32 clients and 40 in flight, some requests must get 503"
    );
    assert_eq!(summary["confirmed"], accepted.len() as u64, "{summary}");

    let output = stream.run(&["consume", "--offset", "first", "--print"]);
    assert!(output.status.success());
    let stored: Vec<u64> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["update"]["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let distinct: HashSet<u64> = stored.iter().copied().collect();
    assert_eq!(stored.len(), distinct.len(), "no duplicates");
    assert_eq!(
        distinct,
        accepted.into_iter().collect::<HashSet<u64>>(),
        "exactly the acknowledged updates"
    );
}

#[test]
fn healthz_turns_unhealthy_when_the_broker_goes_away() {
    let stream = TestStream::new("serve-health");
    let proxy = crate::util::TcpProxy::to(crate::util::BROKER_PORT);
    let uri = format!("rabbitmq-stream://guest:guest@localhost:{}/%2f", proxy.port);
    let (child, base) = start(&stream, &["--uri", &uri]);
    let health = |base: &str| {
        runtime().block_on(async {
            reqwest::get(format!("{base}/healthz"))
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert_eq!(health(&base), 200);
    proxy.cut();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(health(&base), 503);
    let _ = stop(child);
}

#[test]
fn the_gateway_reconnects_after_a_broker_restart_and_loses_nothing_it_acknowledged() {
    let node = crate::util::BrokerNode::start("inv-serve-restart", 5568, None);
    let stream = TestStream::new("serve-restart");
    let uri = node.uri();
    node.create_stream(&stream.name);
    std::thread::sleep(Duration::from_secs(2));
    let (child, base) = start(&stream, &["--uri", &uri]);
    let client = reqwest::Client::new();
    let batch = |n: usize| vec![UPDATE; n].join("\n");
    let rt = runtime();
    let (status, _, _) = rt.block_on(post(&client, format!("{base}/updates"), batch(1_000)));
    assert_eq!(status, 202);

    node.act("node-stop");
    node.act("node-start");
    // Until the gateway has its connection back it answers 503 (nothing stored) or 202.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut accepted = 1_000;
    loop {
        let (status, body, _) = rt.block_on(post(&client, format!("{base}/updates"), batch(500)));
        match status {
            202 => {
                accepted += 500;
                break;
            }
            502..=504 if Instant::now() < deadline => {
                assert_ne!(status, 502, "{body}");
                std::thread::sleep(Duration::from_millis(500));
            }
            _ => panic!("the gateway did not recover: {status} {body}"),
        }
    }
    let summary = stop(child);
    assert!(summary["reconnects"].as_u64().unwrap() >= 1, "{summary}");
    let read = stream.run_json(&["--uri", &uri, "consume", "--offset", "first"]);
    // A 504 may have stored its updates; a 202 always did.
    assert!(read["messages"].as_u64().unwrap() >= accepted, "{read}");
}
