//! `invstream serve`: every route, every error status, and concurrent load where each 2xx
//! answered update is in the stream exactly once.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::serve_util::{
    free_port, metric_values, metrics, post, printed_seqs, start, start_through, start_watched,
    stop,
};
use crate::util::{runtime, TestStream};

const UPDATE: &str = r#"{"product_id":7,"sku":"SKU-7","warehouse":"AMS-1","event":"sold","quantity_delta":-1,"stock_level":3}"#;

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

// --- Who gets in: tokens, HTTPS, safe defaults, connection limits (issue 16) ---

const TOKENS: &str = "# gateway tokens\n\ntoken-one-0123456789abcdef\n  token-two-fedcba9876543210  \n#token-commented-out\n";

/// A directory of this test's own for token files and certificates, removed when it drops.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(stream: &TestStream) -> Self {
        let dir = std::env::temp_dir().join(&stream.name);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How many messages the stream holds, read back with `invstream consume`.
fn stored_count(stream: &TestStream) -> u64 {
    let read = stream.run_json(&["consume", "--offset", "first"]);
    read["messages"].as_u64().unwrap()
}

#[test]
fn without_a_valid_token_nothing_is_stored_and_the_answer_is_401() {
    let stream = TestStream::new("serve-auth");
    let dir = TempDir::new(&stream);
    let tokens = dir.write("tokens", TOKENS);
    let (child, base, stderr) = start_watched(&stream, &["--auth-token-file", &tokens]);
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{base}/updates");
        let refused = [
            client.post(&url).body(UPDATE),
            client.post(&url).bearer_auth("token-three").body(UPDATE),
            client
                .post(&url)
                .bearer_auth("token-one-0123456789abcde")
                .body(UPDATE),
            client
                .post(&url)
                .bearer_auth("#token-commented-out")
                .body(UPDATE),
            client
                .post(&url)
                .header("authorization", "Basic token-one-0123456789abcdef")
                .body(UPDATE),
        ];
        for request in refused {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 401);
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
        }
        for token in ["token-two-fedcba9876543210", "token-one-0123456789abcdef"] {
            let response = client
                .post(&url)
                .bearer_auth(token)
                .body(UPDATE)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 202);
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["accepted"], 1, "{body}");
        }
        // /healthz stays open; /metrics needs a token (no --public-metrics).
        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(metrics.status().as_u16(), 401);
        let metrics = client
            .get(format!("{base}/metrics"))
            .bearer_auth("token-one-0123456789abcdef")
            .send()
            .await
            .unwrap();
        assert_eq!(metrics.status().as_u16(), 200);
        let text = metrics.text().await.unwrap();
        let values = metric_values(&text);
        assert_eq!(values["invstream_http_unauthorized_total"], 6.0, "{text}");
        assert_eq!(values["invstream_confirmed_total"], 2.0, "{text}");
        // Headers past --max-header-bytes (64 KiB) get 431.
        let big = client
            .get(format!("{base}/healthz"))
            .header("x-padding", "a".repeat(80 * 1024))
            .send()
            .await
            .unwrap();
        assert_eq!(big.status().as_u16(), 431);
    });
    crate::util::send_signal(&child, "TERM");
    let output = child.wait_with_output().unwrap();
    let stderr = stderr.text();
    let stdout = String::from_utf8_lossy(&output.stdout);
    for token in ["token-one", "token-two"] {
        assert!(
            !stderr.contains(token) && !stdout.contains(token),
            "{stderr}{stdout}"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["confirmed"], 2, "{summary}");
    assert_eq!(stored_count(&stream), 2, "the 401 requests stored nothing");
}

/// Runs `invstream --stream NAME ARGS…`, which must exit on its own within 30 s: a gateway
/// that serves instead is killed and the test fails (rather than hanging).
fn exits_without_serving(stream: &TestStream, args: &[&str]) -> std::process::Output {
    let child = Command::new(crate::util::binary())
        .args(["--stream", &stream.name])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("invstream {args:?} served instead of exiting with an error");
        }
    }
}

#[test]
fn token_file_mistakes_and_anonymous_public_listening_are_one_line_errors() {
    let stream = TestStream::new("serve-auth-errors");
    let dir = TempDir::new(&stream);
    let empty = dir.write("empty", "# nothing yet\n\n");
    let missing = dir.0.join("missing").to_string_lossy().into_owned();
    let port = free_port();
    let public = format!("0.0.0.0:{port}");
    let cases: [(&[&str], &str); 3] = [
        (&["--auth-token-file", &empty], "--auth-token-file"),
        (&["--auth-token-file", &missing], "--auth-token-file"),
        (&["--listen", &public], "--auth-token-file"),
    ];
    for (args, names) in cases {
        let output = exits_without_serving(&stream, &[&["serve"], args].concat());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?}: {stderr}");
    }
    // The file may also come from INVSTREAM_SERVE_TOKENS_FILE.
    let output = Command::new(crate::util::binary())
        .args(["--stream", &stream.name, "serve", "--listen", &public])
        .env("INVSTREAM_SERVE_TOKENS_FILE", &empty)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("holds no token"),
        "{stderr}"
    );

    // With tokens, the same public address serves.
    let tokens = dir.write("tokens", TOKENS);
    let child = stream.spawn_until(
        &["serve", "--listen", &public, "--auth-token-file", &tokens],
        "serving stream",
    );
    let response = runtime().block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/updates"))
            .bearer_auth("token-two-fedcba9876543210")
            .body(UPDATE)
            .send()
            .await
            .unwrap()
    });
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(stop(child)["confirmed"], 1);
}

/// A test CA and a certificate it signed for localhost and 127.0.0.1: (CA, cert, key) in PEM.
fn test_certificates() -> (rustls::pki_types::CertificateDer<'static>, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "invstream test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    (ca.der().clone(), cert.pem(), key.serialize_pem())
}

/// One POST /updates over TLS with the given ALPN offer: (negotiated ALPN, HTTP version, status).
async fn post_over_tls(
    port: u16,
    roots: rustls::RootCertStore,
    alpn: &[&[u8]],
) -> std::io::Result<(Option<Vec<u8>>, hyper::Version, u16)> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await?;
    let negotiated = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    let request = hyper::Request::post(format!("https://localhost:{port}/updates"))
        .body(Full::new(axum::body::Bytes::from_static(UPDATE.as_bytes())))
        .unwrap();
    let to_io = |e: hyper::Error| std::io::Error::other(e);
    let response = if negotiated.as_deref() == Some(b"h2") {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(to_io)?;
        tokio::spawn(connection);
        sender.send_request(request).await.map_err(to_io)?
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(to_io)?;
        tokio::spawn(connection);
        sender.send_request(request).await.map_err(to_io)?
    };
    let (version, status) = (response.version(), response.status().as_u16());
    let _ = response.into_body().collect().await;
    Ok((negotiated, version, status))
}

#[test]
fn https_serves_http2_and_http1_with_the_given_certificate() {
    let stream = TestStream::new("serve-https");
    let dir = TempDir::new(&stream);
    let (ca, cert, key) = test_certificates();
    let cert = dir.write("gateway.crt", &cert);
    let key = dir.write("gateway.key", &key);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (child, stderr) = stream.spawn_watched(
        &[
            "serve",
            "--listen",
            &listen,
            "--listen-tls-cert",
            &cert,
            "--listen-tls-key",
            &key,
        ],
        "serving stream",
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    runtime().block_on(async {
        let (alpn, version, status) = post_over_tls(port, roots.clone(), &[b"h2", b"http/1.1"])
            .await
            .unwrap();
        assert_eq!(
            (alpn.as_deref(), version, status),
            (Some(&b"h2"[..]), hyper::Version::HTTP_2, 202)
        );
        let (alpn, version, status) = post_over_tls(port, roots.clone(), &[b"http/1.1"])
            .await
            .unwrap();
        assert_eq!(
            (alpn.as_deref(), version, status),
            (Some(&b"http/1.1"[..]), hyper::Version::HTTP_11, 202)
        );
        // A client that does not trust the CA is refused by its own check.
        let untrusted = post_over_tls(port, rustls::RootCertStore::empty(), &[b"h2"]).await;
        assert!(untrusted.is_err());
        // Plain HTTP to the HTTPS port fails at once: an error, no answer, no hang.
        let plain = tokio::time::timeout(
            Duration::from_secs(10),
            reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/updates"))
                .body(UPDATE)
                .send(),
        )
        .await
        .expect("plain HTTP to the HTTPS port does not hang");
        assert!(plain.is_err(), "{plain:?}");
    });
    let summary = stop(child);
    assert!(stderr.text().contains(&format!("https://{listen}")));
    assert_eq!(summary["confirmed"], 2, "{summary}");
    assert_eq!(stored_count(&stream), 2);
}

/// Sends one HTTP/1.1 request on `stream` and reads its answer: (status, body).
fn raw_exchange(stream: &mut std::net::TcpStream, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    stream.write_all(request.as_bytes()).unwrap();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).unwrap();
        assert!(
            read > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0);
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).to_string();
    (status, body)
}

#[test]
fn a_flood_of_connections_past_the_cap_gets_503_while_accepted_ones_are_served() {
    const CAP: usize = 8;
    const FLOOD: usize = 2_000;
    let stream = TestStream::new("serve-flood");
    let dir = TempDir::new(&stream);
    let tokens = dir.write("tokens", TOKENS);
    let (child, base) = start(
        &stream,
        &[
            "--max-connections",
            &CAP.to_string(),
            "--auth-token-file",
            &tokens,
            "--public-metrics",
        ],
    );
    let addr = base.strip_prefix("http://").unwrap().to_string();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: gateway\r\n\r\n");
    // Fill every slot with a keep-alive connection that was answered (so it was accepted).
    let mut held: Vec<std::net::TcpStream> = (0..CAP)
        .map(|_| {
            let mut connection = std::net::TcpStream::connect(&addr).unwrap();
            assert_eq!(raw_exchange(&mut connection, &get("/healthz")).0, 200);
            connection
        })
        .collect();
    let before_kb = crate::util::resident_kb(child.id()).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (addr, request) = (addr.clone(), get("/healthz"));
            std::thread::spawn(move || {
                let mut refused = 0;
                for _ in 0..FLOOD / 16 {
                    let mut connection = std::net::TcpStream::connect(&addr).unwrap();
                    let (status, body) = raw_exchange(&mut connection, &request);
                    assert_eq!(status, 503, "{body}");
                    refused += 1;
                }
                refused
            })
        })
        .collect();
    // The accepted connections are served during the flood.
    let post = format!(
        "POST /updates HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer token-one-0123456789abcdef\r\nContent-Length: {}\r\n\r\n{UPDATE}",
        UPDATE.len()
    );
    for connection in held.iter_mut() {
        let (status, body) = raw_exchange(connection, &post);
        assert_eq!(status, 202, "{body}");
    }
    let refused: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(refused, FLOOD);
    let after_kb = crate::util::resident_kb(child.id()).unwrap();
    assert!(
        after_kb < before_kb + 16 * 1024,
        "resident memory grew from {before_kb} kB to {after_kb} kB"
    );
    let (status, text) = raw_exchange(&mut held[0], &get("/metrics"));
    assert_eq!(status, 200);
    let values = metric_values(&text);
    assert_eq!(
        values["invstream_http_connections_refused_total"], FLOOD as f64,
        "{text}"
    );
    assert_eq!(
        values["invstream_http_connections_open"], CAP as f64,
        "{text}"
    );

    // Closed connections give their slots back: new ones are served again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut connection = std::net::TcpStream::connect(&addr).unwrap();
        match raw_exchange(&mut connection, &get("/healthz")).0 {
            200 => break,
            503 if Instant::now() < deadline => std::thread::yield_now(),
            status => panic!("no slot came back: {status}"),
        }
    }
    let summary = stop(child);
    assert_eq!(summary["confirmed"], CAP as u64, "{summary}");
    assert_eq!(stored_count(&stream), CAP as u64);
}

// --- serve --super-stream: the gateway routes each update by product ---

/// Deletes a super stream (and its partitions) when it drops.
struct SuperStreamGuard(String);

impl Drop for SuperStreamGuard {
    fn drop(&mut self) {
        let name = self.0.clone();
        runtime().block_on(async move {
            use rabbitmq_stream_client::{Client, ClientOptions};
            if let Ok(client) = Client::connect(ClientOptions::default()).await {
                let _ = client.delete_super_stream(&name).await;
                let _ = client.close().await;
            }
        });
    }
}

#[test]
fn a_super_stream_gateway_stores_each_product_in_its_partition_and_verifies_exactly() {
    use invstream::routing::partition_of_product;
    const PRODUCTS: u64 = 12;
    let stream = TestStream::new("serve-ss");
    let name = format!("{}-ss", stream.name);
    let _guard = SuperStreamGuard(name.clone());
    let listen = format!("127.0.0.1:{}", free_port());
    let child = stream.spawn_until(
        &["serve", "--listen", &listen, "--super-stream", &name],
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
    let read = stream.run_json(&[
        "consume",
        "--super-stream",
        &name,
        "--offset",
        "first",
        "--verify",
    ]);
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
