//! `invstream serve` and its broker: `/healthz` follows the gateway's own connection (plain and
//! TLS), and during an outage no update is acknowledged unless it is stored exactly once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::serve_util::{metrics, post, printed_seqs, start, start_through, stop, UPDATE};
use crate::util::{runtime, TestStream};

/// `GET /healthz` with a bounded wait: (status, the body's "status").
fn health(base: &str) -> (u16, String) {
    runtime().block_on(async {
        let response = reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .expect("the gateway answers /healthz");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        (
            status,
            body["status"].as_str().unwrap_or_default().to_string(),
        )
    })
}

/// `invstream_reconnects_total` from `/metrics`.
fn reconnects(base: &str) -> f64 {
    runtime().block_on(metrics(&reqwest::Client::new(), base))["invstream_reconnects_total"]
}

#[test]
fn healthz_follows_the_gateways_own_broker_connection() {
    // The node advertises the proxy's port, so the producer's connection (made to the stream's
    // advertised leader) goes through the proxy as well as the probe; through the shared broker
    // (advertising 5552) it would bypass the proxy and never be cut.
    const NODE_PORT: u16 = 5575;
    const PROXY_PORT: u16 = 5576;
    let proxy = crate::util::TcpProxy::on(PROXY_PORT, NODE_PORT);
    let _node =
        crate::util::BrokerNode::start_advertising("inv-serve-health", NODE_PORT, PROXY_PORT);
    let stream = TestStream::new("serve-health");
    let uri = format!("rabbitmq-stream://guest:guest@localhost:{}/%2f", proxy.port);
    let (child, base) = start(&stream, &["--uri", &uri]);
    assert_eq!(health(&base), (200, "ok".to_string()));

    // New connections refused, the gateway's own left alone: the probe fails, the gateway
    // keeps its connection (nothing to reconnect).
    proxy.refuse(true);
    assert_eq!(health(&base), (503, "unavailable".to_string()));
    proxy.refuse(false);
    assert_eq!(health(&base).0, 200);
    assert_eq!(reconnects(&base), 0.0);

    // The gateway's established connection cut too, and no new one let through: /healthz
    // must say the gateway itself is reconnecting, within a bounded time.
    proxy.refuse(true);
    proxy.sever();
    crate::util::wait_until("/healthz to report the gateway reconnecting", || {
        health(&base) == (503, "reconnecting".to_string())
    });
    // Let it back in: healthy again only once the gateway has its connection back (its
    // reconnect backoff, seconds by now, outlasts a probe that merely gets through).
    proxy.refuse(false);
    crate::util::wait_until("/healthz to turn healthy again", || health(&base).0 == 200);
    assert!(
        reconnects(&base) >= 1.0,
        "/healthz said healthy before the gateway reconnected"
    );
    let (status, body, _) = runtime().block_on(post(
        &reqwest::Client::new(),
        format!("{base}/updates"),
        UPDATE.to_string(),
    ));
    assert_eq!(status, 202, "{body}");
    let summary = stop(child);
    assert_eq!(summary["confirmed"], 1, "{summary}");
}

#[test]
fn healthz_speaks_tls_to_a_tls_broker() {
    let _node = crate::util::BrokerNode::start("inv-serve-tls", 5577, Some(5578));
    let stream = TestStream::new("serve-tls-health");
    let ca = crate::util::tls_dir().join("ca.pem");
    let uri = "rabbitmq-stream+tls://guest:guest@localhost:5578/%2f";
    let (child, base) = start(
        &stream,
        &["--uri", uri, "--tls-ca-cert", ca.to_str().unwrap()],
    );
    let rt = runtime();
    let client = reqwest::Client::new();
    let body: serde_json::Value = rt.block_on(async {
        let response = client
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.unwrap()
    });
    assert_eq!(body["status"], "ok", "{body}");
    assert!(
        body["version"]
            .as_str()
            .is_some_and(|v| v.starts_with(char::is_numeric)),
        "{body}"
    );
    let (status, body, _) =
        rt.block_on(post(&client, format!("{base}/updates"), UPDATE.to_string()));
    assert_eq!(status, 202, "{body}");
    assert_eq!(stop(child)["confirmed"], 1);
}

/// One request's fate in the outage test.
struct Answered {
    sent: Instant,
    answered: Instant,
    status: u16,
    seqs: std::ops::Range<u64>,
}

#[test]
fn during_a_broker_outage_no_update_is_acknowledged_unless_it_is_stored_exactly_once() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let node = crate::util::BrokerNode::start("inv-serve-restart", 5568, None);
    let stream = node.stream("serve-restart");
    let uri = node.uri();
    // A short confirm timeout: a request that cannot reach the broker is answered (503 or 504)
    // while the node is still down, rather than held past the outage.
    let (child, base) = start_through(&node, &stream, "120s", "3s");
    let log = Arc::new(Mutex::new(Vec::<Answered>::new()));
    let done = Arc::new(AtomicBool::new(false));
    // Four clients, each request ten updates whose seqs (kept by the gateway) no other has.
    let clients = {
        let (log, done, url) = (log.clone(), done.clone(), format!("{base}/updates"));
        std::thread::spawn(move || {
            runtime().block_on(async {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let mut tasks = Vec::new();
                for task in 0..4u64 {
                    let (client, url, log, done) =
                        (client.clone(), url.clone(), log.clone(), done.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut request = 0u64;
                        while !done.load(Ordering::Relaxed) {
                            let first = task * 10_000_000 + request * 10;
                            request += 1;
                            let body: Vec<String> = (first..first + 10)
                                .map(|seq| UPDATE.replacen('{', &format!("{{\"seq\":{seq},"), 1))
                                .collect();
                            let sent = Instant::now();
                            let status = match client.post(&url).body(body.join("\n")).send().await
                            {
                                Ok(response) => response.status().as_u16(),
                                Err(e) => panic!("the gateway did not answer: {e}"),
                            };
                            log.lock().unwrap().push(Answered {
                                sent,
                                answered: Instant::now(),
                                status,
                                seqs: first..first + 10,
                            });
                            if status != 202 {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }));
                }
                for task in tasks {
                    task.await.unwrap();
                }
            })
        })
    };
    let seen = |what: &dyn Fn(&Answered) -> bool| log.lock().unwrap().iter().any(what);
    crate::util::wait_until("some requests acknowledged before the outage", || {
        log.lock()
            .unwrap()
            .iter()
            .filter(|a| a.status == 202)
            .count()
            >= 20
    });
    node.act("node-stop");
    let down_at = Instant::now();
    // Requests sent to the gateway while the node is down are answered (503/504) while it is
    // still down: wait for one, then bring the node back.
    crate::util::wait_until("a request sent during the outage to be answered", || {
        seen(&|a| a.sent > down_at)
    });
    let up_from = Instant::now();
    node.act("node-start");
    let started = Instant::now();
    crate::util::wait_until(
        "a request sent after the restart to be acknowledged",
        || seen(&|a| a.sent > started && a.status == 202),
    );
    done.store(true, Ordering::Relaxed);
    clients.join().expect("the clients finish");
    let summary = stop(child);
    assert!(summary["reconnects"].as_u64().unwrap() >= 1, "{summary}");

    let log = log.lock().unwrap();
    let during_outage: Vec<&Answered> = log
        .iter()
        .filter(|a| a.sent > down_at && a.answered < up_from)
        .collect();
    assert!(!during_outage.is_empty());
    for answered in &during_outage {
        // Nothing can be confirmed by a stopped broker: a 2xx here would be a lie.
        assert!(
            matches!(answered.status, 503 | 504),
            "answered {} for seqs {:?} while the broker was down",
            answered.status,
            answered.seqs
        );
    }
    let mut acknowledged = HashSet::new();
    let mut maybe = HashSet::new();
    for answered in log.iter() {
        match answered.status {
            202 => acknowledged.extend(answered.seqs.clone()),
            // Not acknowledged: may or may not be stored, never twice.
            503 | 504 => maybe.extend(answered.seqs.clone()),
            other => panic!("unexpected status {other} for seqs {:?}", answered.seqs),
        }
    }

    let stored =
        printed_seqs(&stream.run(&["--uri", &uri, "consume", "--offset", "first", "--print"]));
    let distinct: HashSet<u64> = stored.iter().copied().collect();
    assert_eq!(stored.len(), distinct.len(), "an update is stored twice");
    let missing: Vec<&u64> = acknowledged.difference(&distinct).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged updates are not in the stream, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let unknown: Vec<&u64> = distinct
        .iter()
        .filter(|seq| !acknowledged.contains(seq) && !maybe.contains(seq))
        .collect();
    assert!(unknown.is_empty(), "stored but never sent: {unknown:?}");
}
