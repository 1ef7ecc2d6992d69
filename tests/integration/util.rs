//! Helpers: run the binary, check the broker, give each test its own stream and delete it after.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rabbitmq_stream_client::types::OffsetSpecification;
use rabbitmq_stream_client::{Client, ClientOptions, Environment};

pub const BROKER_PORT: u16 = 5552;
/// Debian bookworm's RabbitMQ 3.10.8, started by `scripts/broker.sh old-up`.
pub const OLD_BROKER_PORT: u16 = 5553;

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_invstream"))
}

/// Fails the test, with the command that fixes it, when nothing listens on `port`.
pub fn require_broker(port: u16) {
    let up =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_ok();
    let how = if port == OLD_BROKER_PORT {
        "scripts/broker.sh old-up"
    } else {
        "scripts/broker.sh up"
    };
    assert!(
        up,
        "no broker answers on localhost:{port}: start it with `{how}` (scripts/test.sh does)"
    );
}

/// A stream name no other test (or earlier run) uses; the stream is deleted when this drops.
pub struct TestStream {
    pub name: String,
}

impl TestStream {
    pub fn new(purpose: &str) -> Self {
        require_broker(BROKER_PORT);
        TestStream {
            name: unique_name(&format!("test-{purpose}")),
        }
    }

    /// `invstream --stream NAME ARGS…`, waited for.
    pub fn run(&self, args: &[&str]) -> Output {
        invstream(&[&["--stream", &self.name], args].concat())
    }

    /// Runs the command with `--json` and returns its summary; panics (with stderr) if it failed.
    pub fn run_json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.run(&[&["--json"], args].concat());
        summary_of(&output)
    }

    /// Publishes `count` more updates (without deduplication, so each call adds `count`).
    pub fn produce(&self, count: u64) -> serde_json::Value {
        let summary = self.run_json(&["produce", "--no-dedup", "--count", &count.to_string()]);
        assert_eq!(summary["confirmed"], count, "{summary}");
        summary
    }

    /// `produce --producer-name NAME --count COUNT EXTRA…`, its summary.
    pub fn produce_as(&self, name: &str, count: &str, extra: &[&str]) -> serde_json::Value {
        let args = [
            &["produce", "--producer-name", name, "--count", count][..],
            extra,
        ]
        .concat();
        self.run_json(&args)
    }

    /// `consume --offset first --verify`, its summary.
    pub fn verify(&self) -> serde_json::Value {
        self.run_json(&["consume", "--offset", "first", "--verify"])
    }

    /// Starts `invstream --json --stream NAME ARGS…` and returns once it printed a line on
    /// stderr containing `ready_marker` (e.g. after it subscribed).
    pub fn spawn_until(&self, args: &[&str], ready_marker: &str) -> Child {
        self.spawn_watched(args, ready_marker).0
    }

    /// As `spawn_until`, keeping what the process writes on stderr.
    pub fn spawn_watched(&self, args: &[&str], ready_marker: &str) -> (Child, StderrLog) {
        let mut command = Command::new(binary());
        command.args(["--json", "--stream", &self.name]).args(args);
        spawn_until_marker(command, ready_marker)
    }

    /// Runs `invstream --json --stream NAME ARGS…` (a `produce --producer-name P --resume` of
    /// `total` updates), kills it with SIGKILL (a crash) as soon as the broker holds some of
    /// producer `P`'s updates, then runs the same command again to completion and returns that
    /// run's summary, checked to skip what the first run stored and send the rest (both > 0).
    /// Panics if the first run finished before the kill (the crash would prove nothing).
    pub fn crash_then_rerun(&self, producer: &str, args: &[&str], total: u64) -> serde_json::Value {
        let args = [&["--json", "--stream", &self.name][..], args].concat();
        let mut child = Command::new(binary())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the invstream binary starts");
        wait_until("the broker stores some of the first run's updates", || {
            self.publisher_sequence(producer).is_some_and(|seq| seq > 0)
        });
        let finished = child.try_wait().expect("the first run's status");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        assert!(
            finished.is_none(),
            "the first run ended ({finished:?}) before the kill: pace it slower"
        );
        let rerun = summary_of(&Command::new(binary()).args(&args).output().unwrap());
        let (skipped, sent) = (
            rerun["skipped"].as_u64().unwrap(),
            rerun["messages"].as_u64().unwrap(),
        );
        assert!(
            skipped > 0,
            "the re-run skips what the first stored: {rerun}"
        );
        assert!(sent > 0, "the first run was killed mid-way: {rerun}");
        assert_eq!(skipped + sent, total, "{rerun}");
        rerun
    }

    /// The last publishing id the broker stored for `producer` on this stream (None while the
    /// stream does not exist).
    pub fn publisher_sequence(&self, producer: &str) -> Option<u64> {
        runtime().block_on(async {
            let client = Client::connect(ClientOptions::default()).await.ok()?;
            let sequence = client.query_publisher_sequence(producer, &self.name).await;
            let _ = client.close().await;
            sequence.ok()
        })
    }

    /// The offset the broker stores for consumer `name` on this stream (None while it has none).
    pub fn stored_offset(&self, name: &str) -> Option<u64> {
        runtime().block_on(async {
            let client = Client::connect(ClientOptions::default()).await.ok()?;
            let offset = client.query_offset(name.to_string(), &self.name).await;
            let _ = client.close().await;
            offset.ok()
        })
    }

    /// The offset of the first message of the stream's last chunk, as the client crate reads
    /// it with `OffsetSpecification::Last`.
    pub fn last_chunk_start(&self) -> u64 {
        let env = self.environment();
        runtime().block_on(async {
            let mut consumer = env
                .consumer()
                .offset(OffsetSpecification::Last)
                .build(&self.name)
                .await
                .expect("subscribes");
            let delivery = consumer
                .next()
                .await
                .expect("a delivery")
                .expect("no error");
            let _ = consumer.handle().close().await;
            delivery.offset()
        })
    }

    /// The environment the test itself uses, e.g. to create a stream with the client crate.
    pub fn environment(&self) -> Environment {
        runtime()
            .block_on(Environment::builder().build())
            .expect("connects to the broker")
    }

    /// The first `count` messages of the stream, read with the client crate itself, so tests
    /// check what is stored independently of invstream's consumer.
    pub fn read_with_client(&self, count: u64) -> Vec<StoredMessage> {
        let env = self.environment();
        runtime().block_on(async {
            let mut consumer = env
                .consumer()
                .offset(OffsetSpecification::First)
                .build(&self.name)
                .await
                .expect("subscribes");
            let mut messages = Vec::new();
            for _ in 0..count {
                let delivery = consumer
                    .next()
                    .await
                    .expect("a delivery")
                    .expect("no error");
                let message = delivery.message();
                messages.push(StoredMessage {
                    offset: delivery.offset(),
                    update: serde_json::from_slice(message.data().unwrap_or_default())
                        .expect("the body is JSON"),
                    content_type: message
                        .properties()
                        .and_then(|p| p.content_type.as_ref())
                        .map(|c| c.to_string()),
                });
            }
            let _ = consumer.handle().close().await;
            messages
        })
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let name = self.name.clone();
        runtime().block_on(async move {
            if let Ok(env) = Environment::builder().build().await {
                let _ = env.delete_stream(&name).await;
            }
        });
    }
}

/// `PREFIX-PID-N-NANOS`: a name no other test (or earlier run) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A super stream of the test's own, on the test broker or on given nodes (a cluster); deleted,
/// with its partitions, on drop.
pub struct TestSuperStream {
    pub name: String,
    /// The stream ports of the nodes to go through, in order (the test broker's alone by default).
    ports: Vec<u16>,
}

impl TestSuperStream {
    /// On the test broker.
    pub fn new(purpose: &str) -> Self {
        require_broker(BROKER_PORT);
        Self::on_nodes(&format!("ss-{purpose}"), &[BROKER_PORT])
    }

    /// On the nodes whose stream ports are `ports` (the caller checks they are up).
    pub fn on_nodes(purpose: &str, ports: &[u16]) -> Self {
        TestSuperStream {
            name: unique_name(purpose),
            ports: ports.to_vec(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn partition(&self, index: usize) -> String {
        format!("{}-{index}", self.name)
    }

    /// `invstream --uri (every node, the one on `first_port` first) --json ARGS…`
    pub fn command_via(&self, first_port: u16, args: &[&str]) -> Command {
        let mut ports = vec![first_port];
        ports.extend(self.ports.iter().filter(|p| **p != first_port));
        let uris: Vec<String> = ports
            .iter()
            .map(|p| format!("rabbitmq-stream://guest:guest@localhost:{p}/%2f"))
            .collect();
        let mut command = Command::new(binary());
        command
            .args(["--uri", &uris.join(","), "--json"])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// `invstream --json ARGS… --super-stream NAME`, waited for.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command_via(
            self.ports[0],
            &[args, &["--super-stream", &self.name]].concat(),
        )
        .output()
        .expect("the invstream binary runs")
    }

    /// As `run`, its summary (panics, with stderr, if it failed).
    pub fn run_json(&self, args: &[&str]) -> serde_json::Value {
        summary_of(&self.run(args))
    }

    /// Publishes `count` updates over `partitions` partitions; all must be confirmed.
    pub fn produce(&self, count: u64, partitions: u32) -> serde_json::Value {
        let summary = self.run_json(&[
            "produce",
            "--count",
            &count.to_string(),
            "--partitions",
            &partitions.to_string(),
        ]);
        assert_eq!(summary["confirmed"], count, "{summary}");
        summary
    }

    /// A protocol connection through the first node that takes one.
    async fn client(&self) -> Option<Client> {
        for port in &self.ports {
            let options = ClientOptions::builder().port(*port).build();
            if let Ok(client) = Client::connect(options).await {
                return Some(client);
            }
        }
        None
    }

    /// The last publishing id each of the first `partitions` partitions holds for producer
    /// `name` (its `NAME-PARTITION`), 0 where none.
    pub fn sequences(&self, name: &str, partitions: usize) -> Vec<u64> {
        (0..partitions)
            .map(|index| {
                let partition = self.partition(index);
                self.publisher_sequence(&format!("{name}-{partition}"), &partition)
                    .unwrap_or(0)
            })
            .collect()
    }

    /// The last publishing id the broker stored for `producer` on `partition`.
    pub fn publisher_sequence(&self, producer: &str, partition: &str) -> Option<u64> {
        runtime().block_on(async {
            let client = self.client().await?;
            let sequence = client.query_publisher_sequence(producer, partition).await;
            let _ = client.close().await;
            sequence.ok()
        })
    }

    /// The offset the broker stores for consumer `name` on `partition`.
    pub fn stored_offset(&self, name: &str, partition: &str) -> Option<u64> {
        runtime().block_on(async {
            let client = self.client().await?;
            let offset = client.query_offset(name.to_string(), partition).await;
            let _ = client.close().await;
            offset.ok()
        })
    }
}

impl Drop for TestSuperStream {
    fn drop(&mut self) {
        runtime().block_on(async {
            if let Some(client) = self.client().await {
                let _ = client.delete_super_stream(&self.name).await;
                let _ = client.close().await;
            }
        });
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Everything a spawned invstream writes on stderr.
pub struct StderrLog(std::thread::JoinHandle<String>);

impl StderrLog {
    /// The whole of stderr, once the process closed it (exited).
    pub fn text(self) -> String {
        self.0.join().unwrap_or_default()
    }
}

/// A message as the client crate reads it from the stream.
pub struct StoredMessage {
    pub offset: u64,
    pub update: serde_json::Value,
    pub content_type: Option<String>,
}

/// `invstream ARGS…`, waited for.
pub fn invstream(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the invstream binary runs")
}

/// Asserts a `consume --verify --json` summary read exactly `count` updates: `count` messages,
/// `count` distinct seqs over all producers, none duplicated, no gap.
pub fn assert_exactly(verified: &serde_json::Value, count: u64) {
    assert_eq!(verified["messages"], count, "{verified}");
    assert_eq!(verified["verify"]["ok"], true, "{verified}");
    let producers = verified["verify"]["producers"].as_array().unwrap();
    let distinct: u64 = producers
        .iter()
        .map(|p| p["distinct"].as_u64().unwrap())
        .sum();
    assert_eq!(distinct, count, "{verified}");
    for producer in producers {
        assert_eq!(producer["duplicates"], 0, "{verified}");
        assert_eq!(producer["gaps"], 0, "{verified}");
    }
}

/// Asserts a failed run that exited with `code` and said one line on stderr,
/// `invstream: error: …` containing `needle`, and no panic.
pub fn assert_one_line_error(output: &Output, code: i32, needle: &str) {
    use assert_cmd::assert::OutputAssertExt;
    use predicates::prelude::*;
    let one_line = predicate::function(|stderr: &str| stderr.trim().lines().count() == 1);
    output.clone().assert().code(code).stderr(
        predicate::str::starts_with("invstream: error:")
            .and(predicate::str::contains(needle))
            .and(predicate::str::contains("panicked").not())
            .and(one_line),
    );
}

/// Polls `done` every 20 ms until it holds; panics after 30 s, naming `what` it waited for.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "waited 30 s for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (e.g. "INT", "TERM") to a spawned invstream.
pub fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} failed");
}

/// Asserts the broker has no stream `name`: reading it fails with "does not exist".
pub fn assert_stream_deleted(name: &str) {
    let output = invstream(&["--stream", name, "consume", "--offset", "first"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "stream '{name}' is still there");
    assert!(
        stderr.contains(&format!("stream '{name}' does not exist")),
        "reading '{name}' failed for another reason: {stderr}"
    );
}

/// Parses the JSON summary a successful `--json` run printed on stdout.
pub fn summary_of(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"))
}

/// Waits for a spawned run and returns its JSON summary.
pub fn wait_summary(child: Child) -> serde_json::Value {
    summary_of(&child.wait_with_output().expect("invstream finishes"))
}

pub fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A RabbitMQ node of one test's own (`scripts/broker.sh node-up`), which the test may stop,
/// crash, pause and restart without disturbing the others; stopped and deleted on drop.
pub struct BrokerNode {
    pub name: String,
    pub port: u16,
}

impl BrokerNode {
    /// Starts node `name` with its stream port on `port` (and a TLS listener on `tls_port`).
    pub fn start(name: &str, port: u16, tls_port: Option<u16>) -> Self {
        let node = BrokerNode {
            name: name.to_string(),
            port,
        };
        let port = port.to_string();
        let tls_port = tls_port.map(|p| p.to_string());
        let mut args = vec!["node-up", name, &port];
        args.extend(tls_port.as_deref());
        node.script(&args);
        node
    }

    /// As `start`, with a TLS listener on `tls_port` that refuses clients without a certificate
    /// the test CA signed (`ssl_options.fail_if_no_peer_cert = true`).
    pub fn start_requiring_client_cert(name: &str, port: u16, tls_port: u16) -> Self {
        let node = BrokerNode {
            name: name.to_string(),
            port,
        };
        let (port, tls_port) = (port.to_string(), tls_port.to_string());
        node.script(&["node-up", name, &port, &tls_port, "require-client-cert"]);
        node
    }

    /// As `start`, telling clients to use stream port `advertised_port` instead of its own (a
    /// `TcpProxy::on(advertised_port, port)` in front of it): a client's producer and consumer
    /// connections, made to the advertised leader, then go through that proxy too.
    pub fn start_advertising(name: &str, port: u16, advertised_port: u16) -> Self {
        let node = BrokerNode {
            name: name.to_string(),
            port,
        };
        let advertised = advertised_port.to_string();
        node.script_with_env(
            &["node-up", name, &port.to_string()],
            &[("ADVERTISED_PORT", &advertised)],
        );
        node
    }

    /// `--uri` for this node.
    pub fn uri(&self) -> String {
        format!("rabbitmq-stream://guest:guest@localhost:{}/%2f", self.port)
    }

    /// Declares a stream on this node with the client crate and returns once it survives a
    /// crash of the node. A stream declared a moment before a SIGKILL can come back listed but
    /// never available again ("not available yet" for the whole --retry-for). First the node
    /// must report the stream's writer (`rabbitmq-streams stream_status`); that is not enough
    /// (broker_crash_during_produce failed 2 of 2 runs killing right after it), and nothing seen
    /// from outside says when it is: the metadata files (LATEST.LOG, the coordinator's WAL, the
    /// segment) hold the stream at once and do not change after. So 2 s more, as before: with
    /// them it passed every run.
    pub fn create_stream(&self, name: &str) {
        runtime().block_on(async {
            let env = Environment::builder()
                .port(self.port)
                .build()
                .await
                .expect("connects to the node");
            env.stream_creator()
                .create(name)
                .await
                .expect("creates the stream");
        });
        wait_until(
            &format!("node {} to report stream {name}'s writer", self.name),
            || self.stream_has_writer(name),
        );
        // No signal for "crash-safe" (see above): time is the only one that held.
        std::thread::sleep(Duration::from_secs(2));
    }

    /// A stream of the test's own, declared on this node (`create_stream`).
    pub fn stream(&self, purpose: &str) -> TestStream {
        let stream = TestStream::new(purpose);
        self.create_stream(&stream.name);
        stream
    }

    /// Whether `rabbitmq-streams stream_status` on this node lists a writer for stream `name`.
    fn stream_has_writer(&self, name: &str) -> bool {
        let output = Command::new("bash")
            .args([
                "-c",
                r#"source "$1"; node_env "$2" "${@:3}""#,
                "invstream-test",
                concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh"),
                &self.name,
                "/usr/lib/rabbitmq/bin/rabbitmq-streams",
                "-q",
                "-n",
                &self.name,
                "--formatter",
                "json",
                "stream_status",
                name,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("bash runs scripts/broker.sh's node_env");
        output.status.success()
            && serde_json::from_slice::<serde_json::Value>(&output.stdout).is_ok_and(|members| {
                members
                    .as_array()
                    .is_some_and(|m| m.iter().any(|member| member["role"] == "writer"))
            })
    }

    /// The last publishing id this node stores for `producer` on `stream` (None while it has
    /// none, or the node does not answer).
    pub fn publisher_sequence(&self, producer: &str, stream: &str) -> Option<u64> {
        runtime().block_on(async {
            let options = ClientOptions::builder().port(self.port).build();
            let client = Client::connect(options).await.ok()?;
            let sequence = client.query_publisher_sequence(producer, stream).await;
            let _ = client.close().await;
            sequence.ok()
        })
    }

    /// Runs `scripts/broker.sh ACTION NAME`: node-stop, node-start, node-kill, node-pause…
    pub fn act(&self, action: &str) {
        self.script(&[action, &self.name]);
    }

    fn script(&self, args: &[&str]) {
        self.script_with_env(args, &[]);
    }

    fn script_with_env(&self, args: &[&str], env: &[(&str, &str)]) {
        let output = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("bash runs scripts/broker.sh");
        assert!(
            output.status.success(),
            "scripts/broker.sh {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for BrokerNode {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh"))
            .args(["node-down", &self.name])
            .output();
    }
}

/// The directory of the test CA and certificates (`scripts/broker.sh tls-certs`).
pub fn tls_dir() -> PathBuf {
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh"))
        .arg("tls-certs")
        .output()
        .expect("bash runs scripts/broker.sh");
    assert!(
        output.status.success(),
        "scripts/broker.sh tls-certs failed"
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Current resident memory (VmRSS) of a process, in kB (Linux).
pub fn resident_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A TCP forwarder from a local port to the broker, which a test can cut: the broker as seen
/// through it "goes away" without disturbing the other tests that share the real broker.
pub struct TcpProxy {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// While set, each new connection is accepted and closed at once (a broker that is away).
    refusing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Both ends of every connection forwarded so far, so `sever` can cut the live ones.
    live: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    /// A proxy listening on `port` (0: any free one).
    pub fn on(port: u16, target_port: u16) -> Self {
        use std::sync::atomic::AtomicBool;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let refusing = std::sync::Arc::new(AtomicBool::new(false));
        let live = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stopped, refused, forwarded) = (stop.clone(), refusing.clone(), live.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) if refused.load(Ordering::Relaxed) => {
                        let _ = client.shutdown(std::net::Shutdown::Both);
                    }
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                            continue;
                        };
                        client.set_nonblocking(false).unwrap();
                        let mut live = forwarded.lock().unwrap();
                        live.push(client.try_clone().unwrap());
                        live.push(server.try_clone().unwrap());
                        for (mut from, mut to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                            });
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TcpProxy {
            port,
            stop,
            refusing,
            live,
        }
    }

    /// Stops accepting: new connections are refused from now on.
    pub fn cut(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Closes every connection forwarded so far (both ends), as a broker that goes away does.
    pub fn sever(&self) {
        for connection in self.live.lock().unwrap().drain(..) {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
    }

    /// While `refusing`, new connections are closed as soon as they are accepted; after, they
    /// are forwarded again.
    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::Relaxed);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Starts `command` (stdout piped) and returns once it printed a line on stderr containing
/// `ready_marker`, keeping the rest of its stderr.
pub fn spawn_until_marker(command: Command, ready_marker: &str) -> (Child, StderrLog) {
    let (child, _, log) = spawn_until_line(command, ready_marker);
    (child, log)
}

/// As `spawn_until_marker`, with the line that held the marker (it says what to do next: the
/// node a consumer reads from, say).
pub fn spawn_until_line(mut command: Command, ready_marker: &str) -> (Child, String, StderrLog) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the invstream binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(ready_marker) => return (child, line, StderrLog(reader)),
            Ok(_) => continue,
            Err(_) => {
                let _ = child.kill();
                let stderr = StderrLog(reader).text();
                panic!("invstream never printed '{ready_marker}' on stderr:\n{stderr}");
            }
        }
    }
}
