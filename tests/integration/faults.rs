//! Faults of the broker itself: restarts and crashes mid-run, a broker that stays away past
//! `--retry-for`, a stuck broker, and TLS. Each test runs its own RabbitMQ node
//! (`scripts/broker.sh node-up`) so stopping it disturbs no other test.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::util::{
    assert_exactly, assert_one_line_error, binary, invstream, resident_kb, spawn_until_line,
    summary_of, tls_dir, wait_summary, wait_until, BrokerNode, StderrLog, TcpProxy, TestStream,
    TestSuperStream,
};

/// Updates per second of a produce that a fault interrupts: 1,000,000 take 4 s.
const FAULT_RUN_RATE: u64 = 250_000;

fn verify_on(node: &BrokerNode, stream: &TestStream) -> serde_json::Value {
    stream.run_json(&[
        "--uri",
        &node.uri(),
        "consume",
        "--offset",
        "first",
        "--verify",
    ])
}

/// Starts `invstream --json --stream NAME --uri NODE ARGS…` (a produce) and returns once `node`
/// stores some of its updates, so that a fault that follows lands mid-run.
fn spawn_stored_produce(
    node: &BrokerNode,
    stream: &TestStream,
    args: &[&str],
) -> (Child, StderrLog) {
    let mut command = Command::new(binary());
    command
        .args(["--json", "--stream", &stream.name, "--uri", &node.uri()])
        .args(args);
    let (child, line, log) = spawn_until_line(command, "publishing");
    let producer = line
        .split("as producer '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no producer name in: {line}"));
    wait_until("the node stores some of the run's updates", || {
        node.publisher_sequence(producer, &stream.name)
            .is_some_and(|seq| seq > 0)
    });
    (child, log)
}

/// Publishes 1,000,000 updates to `node`, doing `fault` to the broker mid-way; the run must
/// finish by itself with every update stored exactly once.
fn produce_through(
    node: &BrokerNode,
    purpose: &str,
    count: u64,
    extra: &[&str],
    fault: impl FnOnce(&BrokerNode),
) {
    let count_arg = count.to_string();
    // Paced, so the fault lands mid-run however fast this machine publishes: the run lasts
    // count / RATE seconds, and the fault (once the broker holds some of the run, plus the
    // seconds `rabbitmqctl stop` takes) comes well before its end.
    let rate = FAULT_RUN_RATE.to_string();
    // Declared ahead (and reported ready), as a real deployment would have it: a stream declared
    // a moment before the broker crashes may not survive it.
    let stream = node.stream(purpose);
    let (child, log) = spawn_stored_produce(
        node,
        &stream,
        &[&["produce", "--count", &count_arg, "--rate", &rate], extra].concat(),
    );
    fault(node);
    let output = child.wait_with_output().unwrap();
    let stderr = log.text();
    assert!(output.status.success(), "{stderr}");
    let produced: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(produced["confirmed"], count, "{produced}");
    assert_eq!(produced["failed"], 0, "{produced}");
    assert!(
        produced["reconnects"].as_u64().unwrap() >= 1,
        "the broker went away mid-run: {produced}"
    );
    assert_exactly(&verify_on(node, &stream), count);
}

/// `rabbitmqctl stop`, then start again.
fn restart(node: &BrokerNode) {
    node.act("node-stop");
    node.act("node-start");
}

/// SIGKILL, then start again.
fn crash(node: &BrokerNode) {
    node.act("node-kill");
    node.act("node-start");
}

#[test]
fn broker_restart_during_produce_loses_and_duplicates_nothing() {
    let node = BrokerNode::start("inv-restart-produce", 5620, None);
    produce_through(&node, "restart-produce", 1_000_000, &[], restart);
}

#[test]
fn broker_crash_during_produce_loses_and_duplicates_nothing() {
    let node = BrokerNode::start("inv-crash-produce", 5621, None);
    produce_through(&node, "crash-produce", 1_000_000, &[], crash);
}

#[test]
fn broker_restart_during_a_compressed_sub_entry_produce_loses_and_duplicates_nothing() {
    let node = BrokerNode::start("inv-restart-sub-entry", 5569, None);
    let extra = ["--sub-entry-size", "100", "--compression", "zstd"];
    produce_through(&node, "restart-sub-entry", 1_000_000, &extra, restart);
}

#[test]
fn broker_restart_during_a_following_consume_resumes_without_gap_or_duplicate() {
    let node = BrokerNode::start("inv-restart-consume", 5564, None);
    let stream = node.stream("restart-consume");
    let uri = node.uri();
    let produce = |total: &str| {
        let summary = stream.run_json(&["--uri", &uri, "produce", "--count", total]);
        assert_eq!(summary["failed"], 0, "{summary}");
    };
    produce("100000");
    // --count keeps following new messages until it has read that many.
    let consumer = stream.spawn_until(
        &[
            "--uri", &uri, "consume", "--offset", "first", "--count", "300000", "--verify",
        ],
        "reading stream",
    );
    restart(&node);
    // The same producer name: the second run adds the 200,000 that are missing.
    produce("300000");
    let consumed = wait_summary(consumer);
    assert_exactly(&consumed, 300_000);
    assert!(consumed["reconnects"].as_u64().unwrap() >= 1, "{consumed}");
}

#[test]
fn broker_restart_while_a_paced_consumer_has_a_backlog_left_resumes_without_gap_or_duplicate() {
    let node = BrokerNode::start("inv-restart-backlog", 5571, None);
    let stream = node.stream("restart-backlog");
    let uri = node.uri();
    // One frame of 100 in flight: the broker writes chunks of at most 100, so the few chunks the
    // client holds ahead of the reader (credit 1, a channel of 4) are a few hundred messages, not
    // the whole backlog (with frames of 1,000 merged into big chunks, a CI run's client held all
    // 20,000 before the stop and rightly resumed at 20,000).
    let produce = |count: &str| {
        let summary = stream.run_json(&[
            "--uri",
            &uri,
            "produce",
            "--count",
            count,
            "--batch-size",
            "100",
            "--max-in-flight",
            "100",
        ]);
        assert_eq!(summary["failed"], 0, "{summary}");
    };
    // 20 s of paced reading: the stop lands inside it even when stopping a node takes long on a
    // loaded machine (with 10,000 a CI run's stop came after the backlog was read).
    const BACKLOG: u64 = 20_000;
    produce(&BACKLOG.to_string());
    // Paced (--slow: ≥ 1 ms a message, so the backlog takes ≥ 20 s), so the broker stops while
    // most of the backlog is still unread; --count keeps following new messages until it has
    // read that many, the last 2,000 published after the restart.
    let (mut consumer, log) = stream.spawn_watched(
        &[
            "--uri",
            &uri,
            "consume",
            "--offset",
            "first",
            "--count",
            "22000",
            "--verify",
            "--slow",
            "consumer=1ms",
        ],
        "reading stream",
    );
    restart(&node);
    produce("2000");
    // A gap (or a resume past the end) would leave it waiting for messages that never come:
    // give it a bound, then kill it and fail.
    let deadline = Instant::now() + Duration::from_secs(90);
    while consumer.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = consumer.kill();
            let _ = consumer.wait();
            panic!(
                "the consumer did not read 22,000 within 90 s:\n{}",
                log.text()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = consumer.wait_with_output().unwrap();
    let stderr = log.text();
    assert!(output.status.success(), "{stderr}");
    let consumed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_exactly(&consumed, 22_000);
    assert!(consumed["reconnects"].as_u64().unwrap() >= 1, "{consumed}");
    // It resumed inside the backlog, after what it had read, not at its end.
    let resumed_at: u64 = stderr
        .split("reading on from offset ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no resume offset in: {stderr}"))
        .parse()
        .unwrap();
    assert!(
        resumed_at > 0 && resumed_at < BACKLOG - 1_000,
        "resumed at {resumed_at}: the stop came too late to leave a backlog\n{stderr}"
    );
}

#[test]
fn a_broker_away_longer_than_retry_for_ends_the_run_with_a_clear_error() {
    let node = BrokerNode::start("inv-gone", 5565, None);
    let stream = node.stream("gone");
    let uri = node.uri();
    let (producer, log) = spawn_stored_produce(
        &node,
        &stream,
        &["--retry-for", "3s", "produce", "--count", "50000000"],
    );
    node.act("node-stop");
    let output = producer.wait_with_output().unwrap();
    let stderr = log.text();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not reconnect within --retry-for 3s")
            && stderr.contains("to send the rest exactly once, run: invstream")
            && stderr.contains("--resume"),
        "{stderr}"
    );
    assert!(!stderr.contains("guest:guest"), "{stderr}");

    node.act("node-start");
    let (consumer, log) = stream.spawn_watched(
        &[
            "--uri",
            &uri,
            "--retry-for",
            "2s",
            "consume",
            "--offset",
            "first",
            "--follow",
        ],
        "reading stream",
    );
    node.act("node-stop");
    let output = consumer.wait_with_output().unwrap();
    let stderr = log.text();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("while reading and could not reconnect within --retry-for 2s"),
        "{stderr}"
    );
}

#[test]
fn a_stuck_broker_holds_memory_flat_and_ends_the_run_at_the_confirm_timeout() {
    let node = BrokerNode::start("inv-stuck", 5566, None);
    let stream = TestStream::new("stuck");
    let (producer, log) = spawn_stored_produce(
        &node,
        &stream,
        &[
            "--retry-for",
            "0s",
            "produce",
            "--count",
            "100000000",
            "--max-in-flight",
            "10000",
            "--confirm-timeout",
            "3s",
        ],
    );
    node.act("node-pause");
    let pid = producer.id();
    let paused_at = Instant::now();
    let mut samples = Vec::new();
    while paused_at.elapsed() < Duration::from_millis(2_500) {
        samples.extend(resident_kb(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = producer.wait_with_output().unwrap();
    node.act("node-resume");
    let stderr = log.text();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("none arrived within the confirm timeout"),
        "{stderr}"
    );
    let (first, max) = (samples[0], *samples.iter().max().unwrap());
    assert!(
        max < first + 16 * 1024,
        "memory grew while the broker was stuck: {samples:?} kB"
    );
}

#[test]
fn tls_round_trip_with_a_ca_and_a_client_certificate() {
    let _node = BrokerNode::start("inv-tls", 5567, Some(5551));
    let stream = TestStream::new("tls");
    let certs = tls_dir();
    let ca = certs.join("ca.pem");
    let (ca, cert, key) = (
        ca.to_str().unwrap(),
        certs.join("client.pem"),
        certs.join("client.key"),
    );
    let tls_uri = "rabbitmq-stream+tls://guest:guest@localhost:5551/%2f";
    let produced = stream.run_json(&[
        "--uri",
        tls_uri,
        "--tls-ca-cert",
        ca,
        "produce",
        "--count",
        "5000",
    ]);
    assert_eq!(produced["confirmed"], 5_000, "{produced}");
    let consumed = stream.run_json(&[
        "--uri",
        tls_uri,
        "--tls-ca-cert",
        ca,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "consume",
        "--offset",
        "first",
        "--verify",
    ]);
    assert_exactly(&consumed, 5_000);

    // A super stream over TLS: the 3.13 check asks the broker's version over TLS too (a plain
    // probe of a TLS port gets no answer), the partitions are created and read over it.
    let super_stream = TestSuperStream::on_nodes("tls", &[5567]);
    let over_tls = |args: &[&str]| {
        let tls = ["--uri", tls_uri, "--tls-ca-cert", ca, "--json"];
        let super_stream = ["--super-stream", super_stream.name()];
        summary_of(&invstream(&[&tls[..], args, &super_stream].concat()))
    };
    let produced = over_tls(&["produce", "--count", "3000", "--partitions", "3"]);
    assert_eq!(produced["confirmed"], 3_000, "{produced}");
    assert_eq!(
        produced["partitions"].as_array().map(Vec::len),
        Some(3),
        "{produced}"
    );
    assert_exactly(
        &over_tls(&["consume", "--offset", "first", "--verify"]),
        3_000,
    );

    // A CA that did not sign the broker's certificate.
    let output = stream.run(&[
        "--uri",
        tls_uri,
        "--tls-ca-cert",
        cert.to_str().unwrap(),
        "produce",
        "--count",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("TLS handshake with localhost:5551 failed")
            && stderr.contains("--tls-ca-cert"),
        "{stderr}"
    );
    // Without --tls-ca-cert, the system trust store: it does not hold the test CA...
    let output = stream.run(&["--uri", tls_uri, "produce", "--count", "1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("UnknownIssuer") && stderr.contains("system trust store"),
        "{stderr}"
    );
    // ...unless the machine trusts it (SSL_CERT_FILE stands for the distribution's bundle).
    let output = Command::new(binary())
        .env("SSL_CERT_FILE", ca)
        .args(["--json", "--stream", &stream.name, "--uri", tls_uri])
        .args(["produce", "--count", "10"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(summary_of(&output)["confirmed"], 10);
}

#[test]
fn a_broker_that_requires_a_client_certificate_names_the_flags_and_accepts_them() {
    let _node = BrokerNode::start_requiring_client_cert("inv-mtls", 5579, 5580);
    let stream = TestStream::new("mtls");
    let certs = tls_dir();
    let (ca, cert, key) = (
        certs.join("ca.pem"),
        certs.join("client.pem"),
        certs.join("client.key"),
    );
    let (ca, cert, key) = (
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let tls_uri = "rabbitmq-stream+tls://guest:guest@localhost:5580/%2f";

    // Without a client certificate: one line that says which flags to add.
    for command in [
        &["produce", "--count", "1"][..],
        &["consume", "--offset", "first"],
    ] {
        let output = stream.run(&[&["--uri", tls_uri, "--tls-ca-cert", ca][..], command].concat());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "want one line: {stderr}");
        assert!(
            lines[0].starts_with("invstream: error: ")
                && lines[0].contains("requires a client certificate")
                && lines[0].contains("--tls-cert")
                && lines[0].contains("--tls-key"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("ConnectionClosed"), "{stderr}");
    }

    // With it: the round trip works.
    let with_cert = [
        "--uri",
        tls_uri,
        "--tls-ca-cert",
        ca,
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ];
    let produced = stream.run_json(&[&with_cert[..], &["produce", "--count", "5000"]].concat());
    assert_eq!(produced["confirmed"], 5_000, "{produced}");
    let consumed = stream.run_json(
        &[
            &with_cert[..],
            &["consume", "--offset", "first", "--verify"],
        ]
        .concat(),
    );
    assert_exactly(&consumed, 5_000);
}

#[test]
fn a_broker_under_a_disk_alarm_is_named_in_one_line() {
    let node = BrokerNode::start("inv-disk-alarm", 5593, None);
    let stream = node.stream("disk-alarm");
    // A free-disk limit no disk meets: the node raises its disk alarm and blocks publishers.
    let set = node.ctl("rabbitmqctl", &["set_disk_free_limit", "100000000000000"]);
    assert!(set.status.success(), "{set:?}");
    wait_until("the node's disk alarm", || {
        !node
            .ctl("rabbitmq-diagnostics", &["-q", "check_local_alarms"])
            .status
            .success()
    });
    let output = stream.run(&["--uri", &node.uri(), "produce", "--count", "10"]);
    assert_one_line_error(&output, 1, "disk or memory alarm");
}

/// A producer that loses its connection while the broker is under a disk alarm is refused a
/// new publisher (`PreconditionFailed`) until the alarm clears: that is a wait, within
/// `--retry-for`, not the end of the run (the chaos harness's 30-minute schedule ended both of
/// its producers so, a connection lost during a disk alarm).
#[test]
fn a_reconnect_during_a_disk_alarm_waits_for_the_alarm_to_clear() {
    const NODE_PORT: u16 = 5641;
    const PROXY_PORT: u16 = 5642;
    // The node advertises the proxy's port: the producer's connection goes through it, and
    // the test cuts it.
    let proxy = TcpProxy::on(PROXY_PORT, NODE_PORT);
    let node = BrokerNode::start_advertising("inv-alarm-reconnect", NODE_PORT, PROXY_PORT);
    let stream = node.stream("alarm-reconnect");
    let uri = format!("rabbitmq-stream://guest:guest@localhost:{PROXY_PORT}/%2f");
    let mut command = Command::new(binary());
    command.args([
        "--json",
        "--stream",
        &stream.name,
        "--uri",
        &uri,
        "--retry-for",
        "2m",
        "produce",
        "--count",
        "20000",
        "--rate",
        "2000",
    ]);
    let (child, line, log) = spawn_until_line(command, "publishing");
    let producer = line
        .split("as producer '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no producer name in: {line}"))
        .to_string();
    wait_until("the node stores some of the run's updates", || {
        node.publisher_sequence(&producer, &stream.name)
            .is_some_and(|seq| seq > 0)
    });
    let limit = |bytes: &str| {
        let set = node.ctl("rabbitmqctl", &["set_disk_free_limit", bytes]);
        assert!(set.status.success(), "{set:?}");
    };
    let alarmed = || {
        !node
            .ctl("rabbitmq-diagnostics", &["-q", "check_local_alarms"])
            .status
            .success()
    };
    limit("100000000000000");
    wait_until("the node's disk alarm", alarmed);
    proxy.sever();
    // The producer comes back at once and is refused a publisher while the alarm lasts (it
    // ended there, within a second, before): still running 5 s later.
    let mut child = child;
    std::thread::sleep(Duration::from_secs(5));
    if let Some(status) = child.try_wait().unwrap() {
        panic!("produce ended during the alarm ({status}):\n{}", log.text());
    }
    limit("50MB");
    wait_until("the alarm cleared", || !alarmed());
    let output = child.wait_with_output().unwrap();
    let stderr = log.text();
    assert!(output.status.success(), "{stderr}");
    let produced: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(produced["confirmed"], 20000, "{produced}");
    assert!(produced["reconnects"].as_u64().unwrap() >= 1, "{produced}");
    assert!(
        stderr.contains("lost the connection to localhost:5642"),
        "{stderr}"
    );
    assert_exactly(&verify_on(&node, &stream), 20000);
}
