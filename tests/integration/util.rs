//! Helpers: run the binary, check the broker, give each test its own stream and delete it after;
//! nodes a test may break are in [`nodes`], a super stream of its own in [`super_stream`].

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rabbitmq_stream_client::types::OffsetSpecification;
use rabbitmq_stream_client::{Client, ClientOptions, Environment};

mod nodes;
mod super_stream;
pub use nodes::{tls_dir, BrokerNode, TcpProxy};
pub use super_stream::TestSuperStream;

pub const BROKER_PORT: u16 = 5552;
/// Debian bookworm's RabbitMQ 3.10.8, started by `scripts/broker.sh old-up`.
pub const OLD_BROKER_PORT: u16 = 5553;

/// The binary under test. Every run goes through here first, so here the test process drops
/// the variables invstream reads (`INVSTREAM_PRODUCE_COUNT`, …) and points the config file's
/// XDG default at a folder without one: a developer's own settings must not change what a test
/// sees. A test sets what it needs on its `Command` (`.env(…)`, `--config`). nextest runs each
/// test in a process of its own, before any thread that reads the environment.
pub fn binary() -> PathBuf {
    static HERMETIC: std::sync::Once = std::sync::Once::new();
    HERMETIC.call_once(|| {
        for name in invstream::cli::environment::variables() {
            std::env::remove_var(name);
        }
        let no_config = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-config-home");
        std::env::set_var("XDG_CONFIG_HOME", no_config);
    });
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

    /// `invstream --json --stream NAME ARGS…`, started (pipes for stdout and stderr) and not
    /// waited for.
    pub fn start(&self, args: &[&str]) -> Child {
        spawn_piped(&[&["--json", "--stream", &self.name], args].concat())
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
        read_with_client(&self.name, count)
    }
}

/// The first `count` messages of `stream`, read with the client crate itself, so tests check what
/// is stored independently of invstream's consumer.
pub fn read_with_client(stream: &str, count: u64) -> Vec<StoredMessage> {
    let env = runtime()
        .block_on(Environment::builder().build())
        .expect("connects to the broker");
    runtime().block_on(async {
        let mut consumer = env
            .consumer()
            .offset(OffsetSpecification::First)
            .build(stream)
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
                properties: message
                    .application_properties()
                    .map(|map| {
                        map.iter()
                            .map(|(key, value)| (key.to_string(), format!("{value:?}")))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        let _ = consumer.handle().close().await;
        messages
    })
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
    /// Application properties, each value as `{:?}` writes it (e.g. `String("sold")`).
    pub properties: std::collections::BTreeMap<String, String>,
}

/// `invstream ARGS…` with stdout and stderr piped, started and not waited for.
pub fn spawn_piped(args: &[&str]) -> Child {
    Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the invstream binary starts")
}

/// Waits up to `limit` for `child` (its pipes drained meanwhile); `None`, after killing it,
/// when it still runs: a hang is a result, never a suite that does not end.
pub fn wait_or_kill(child: Child, limit: Duration) -> Option<Output> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => Some(output.expect("invstream finishes")),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            None
        }
    }
}

/// As [`wait_or_kill`], failing the test (naming `what`) when `child` still runs after `limit`.
pub fn wait_within(child: Child, limit: Duration, what: &str) -> Output {
    wait_or_kill(child, limit).unwrap_or_else(|| panic!("{what} still ran after {limit:?}: killed"))
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

/// Current resident memory (VmRSS) of a process, in kB (Linux).
pub fn resident_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A TCP forwarder from a local port to the broker, which a test can cut: the broker as seen
/// through it "goes away" without disturbing the other tests that share the real broker.
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
