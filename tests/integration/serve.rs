//! `invstream serve`: every route, every error status, concurrent load where each 2xx answered
//! update is in the stream exactly once, and a super-stream gateway. Its broker going away is in
//! serve_broker.rs, who may get in (tokens, HTTPS, limits) in serve_access.rs.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::serve_util::{free_port, metrics, post, printed_seqs, start, stop, UPDATE};
use crate::util::{binary, runtime, send_signal, spawn_until_line, TestStream, TestSuperStream};

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

    let stored = printed_seqs(&stream.run(&["consume", "--offset", "first", "--print"]));
    let distinct: HashSet<u64> = stored.iter().copied().collect();
    assert_eq!(stored.len(), distinct.len(), "no duplicates");
    assert_eq!(
        distinct,
        accepted.into_iter().collect::<HashSet<u64>>(),
        "exactly the acknowledged updates"
    );
}

#[test]
fn a_super_stream_gateway_stores_each_product_in_its_partition_and_verifies_exactly() {
    use invstream::routing::partition_of_product;
    const PRODUCTS: u64 = 12;
    let super_stream = TestSuperStream::new("serve");
    let name = super_stream.name().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let (child, _log) = crate::util::spawn_until_marker(
        super_stream.command_via(
            crate::util::BROKER_PORT,
            &["serve", "--listen", &listen, "--super-stream", &name],
        ),
        "serving super stream",
    );
    let base = format!("http://{listen}");
    let (accepted, metrics) = runtime().block_on(async {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for request in 0..24u64 {
            let (client, url) = (client.clone(), format!("{base}/updates"));
            tasks.push(tokio::spawn(async move {
                // Five updates of several products per request, without seq (the gateway numbers them).
                let body: Vec<String> = (0..5)
                    .map(|i| {
                        let product = 1 + (request * 5 + i) % PRODUCTS;
                        UPDATE.replacen("\"product_id\":7", &format!("\"product_id\":{product}"), 1)
                    })
                    .collect();
                let (status, body, _) = post(&client, url, body.join("\n")).await;
                assert_eq!(status, 202, "{body}");
                body["accepted"].as_u64().unwrap()
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            accepted += task.await.unwrap();
        }
        (accepted, metrics(&client, &base).await)
    });
    assert_eq!(accepted, 120);
    // /metrics: the partitions' totals.
    assert_eq!(metrics["invstream_confirmed_total"], 120.0, "{metrics:?}");
    assert_eq!(metrics["invstream_published_total"], 120.0, "{metrics:?}");
    assert_eq!(metrics["invstream_in_flight"], 0.0, "{metrics:?}");
    let summary = stop(child);
    assert_eq!(summary["confirmed"], 120, "{summary}");

    // Read back across the partitions: exactly what was acknowledged, no gap, no duplicate.
    let read = super_stream.run_json(&["consume", "--offset", "first", "--verify"]);
    assert_eq!(read["messages"], 120, "{read}");
    let verify = &read["verify"];
    assert_eq!(verify["ok"], true, "{verify}");
    let producers = verify["producers"].as_array().unwrap();
    assert_eq!(
        producers.len(),
        1,
        "one producer across partitions: {verify}"
    );
    assert_eq!(producers[0]["distinct"], 120, "{verify}");
    // Each product in the partition hash routing names.
    let mut seen = 0;
    for partition in 0..3u32 {
        let output = crate::util::invstream(&[
            "--stream",
            &format!("{name}-{partition}"),
            "consume",
            "--offset",
            "first",
            "--print",
        ]);
        assert!(output.status.success());
        for line in String::from_utf8(output.stdout).unwrap().lines() {
            let message: serde_json::Value = serde_json::from_str(line).unwrap();
            let product = message["update"]["product_id"].as_u64().unwrap();
            assert_eq!(
                partition_of_product(product, 3),
                partition,
                "product {product} in partition {partition}"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 120);
}

/// `--listen localhost:PORT` (a host name, resolved); a SIGTERM is the gateway's normal end
/// (exit 0, no "(interrupted)"), and the idle time between two requests is no "longest stall".
#[test]
fn a_gateway_stopped_by_sigterm_ends_normally_and_idle_time_is_no_stall() {
    let stream = TestStream::new("serve-idle");
    let port = free_port();
    let listen = format!("localhost:{port}");
    let mut command = std::process::Command::new(binary());
    command.args(["--stream", &stream.name, "serve", "--listen", &listen]);
    let (child, serving, _log) = spawn_until_line(command, "serving stream");
    assert!(
        serving.contains(&format!("on http://127.0.0.1:{port} ")),
        "{serving}"
    );
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/updates");
        let (status, body, _) = post(&client, url.clone(), UPDATE.to_string()).await;
        assert_eq!(status, 202, "{body}");
        // Idle: no request for 2.5 s.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let (status, body, _) = post(&client, url, UPDATE.to_string()).await;
        assert_eq!(status, 202, "{body}");
    });
    send_signal(&child, "TERM");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.starts_with(&format!("serve → stream '{}'\n", stream.name)),
        "no (interrupted): {report}"
    );
    assert!(report.contains("2 sent, 2 confirmed"), "{report}");
    assert!(
        !report.contains("longest stall"),
        "idle is no stall: {report}"
    );
}
