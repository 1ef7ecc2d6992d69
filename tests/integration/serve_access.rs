//! Who gets into `invstream serve`: tokens, HTTPS, safe defaults, and the connection cap
//! (issue 16). Each test starts its own gateway on its own stream.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::serve_util::{free_port, metric_values, start, start_watched, stop, UPDATE};
use crate::util::{runtime, TestStream};

const TOKENS: &str = "# gateway tokens\n\ntoken-one-0123456789abcdef\n  token-two-fedcba9876543210  \n#token-commented-out\n";

/// A directory of this test's own for token files and certificates, removed when it drops.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new() -> Self {
        TempDir(tempfile::tempdir().expect("a temporary directory"))
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
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
    let dir = TempDir::new();
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
    let dir = TempDir::new();
    let empty = dir.write("empty", "# nothing yet\n\n");
    let missing = dir.0.path().join("missing").to_string_lossy().into_owned();
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
    let dir = TempDir::new();
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
    let dir = TempDir::new();
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
