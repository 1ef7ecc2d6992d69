//! A real 3-node RabbitMQ cluster (`scripts/cluster.sh up`, which scripts/test.sh runs): a node
//! lost in the middle of a run must not stall it. These tests stop and kill nodes, so they run
//! one at a time (the `cluster` test group in .config/nextest.toml); each brings its node back
//! when it ends, failed or not.

use std::process::Command;
use std::time::Duration;

use crate::util::{
    assert_exactly, binary, spawn_until_line, spawn_until_marker, summary_of, StderrLog,
};

/// Node i's stream port (scripts/cluster.sh: 5560 + i).
pub(crate) fn port(node: u8) -> u16 {
    5560 + u16::from(node)
}

pub(crate) fn uri(node: u8) -> String {
    format!("rabbitmq-stream://guest:guest@localhost:{}/%2f", port(node))
}

pub(crate) fn cluster(args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh"))
        .args(args)
        .output()
        .expect("bash runs scripts/cluster.sh");
    assert!(
        output.status.success(),
        "scripts/cluster.sh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Whether node `node` takes a stream client's handshake and a publish (a node back from a
/// kill can run, clustered, with its stream listener refusing every connection).
fn node_serves(node: u8) -> bool {
    Command::new(binary())
        .args(["--uri", &uri(node), "--quiet", "--retry-for", "0s"])
        .args([
            "--stream",
            "cluster-health-probe",
            "produce",
            "--count",
            "1",
        ])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Every node answers and serves the stream protocol; a cluster left broken by an earlier
/// fault is made anew (`down`, `up`: ~20 s) rather than failing the tests after it.
pub(crate) fn require_cluster() {
    for node in 1..=3 {
        let up = std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], port(node)).into(),
            Duration::from_secs(2),
        )
        .is_ok();
        assert!(
            up,
            "cluster node {node} does not answer on localhost:{}: start the cluster with `scripts/cluster.sh up` (scripts/test.sh does)",
            port(node)
        );
    }
    if !(1..=3).all(node_serves) {
        cluster(&["down"]);
        cluster(&["up"]);
        for node in 1..=3 {
            assert!(node_serves(node), "cluster node {node} serves no stream client after `scripts/cluster.sh down` and `up`");
        }
    }
}

/// The node (1-3) leading stream `name` now.
pub(crate) fn leader_of(name: &str) -> u8 {
    let leader = cluster(&["leader", name]);
    leader
        .trim_start_matches('c')
        .chars()
        .next()
        .and_then(|c| c.to_digit(10))
        .unwrap_or_else(|| panic!("no leader for {name}: {leader}")) as u8
}

/// `--uri` for every node, `first` first.
pub(crate) fn uris_from(first: u8) -> String {
    let mut order = vec![first];
    order.extend((1..=3).filter(|n| *n != first));
    order.iter().map(|n| uri(*n)).collect::<Vec<_>>().join(",")
}

/// A stream name of this test's own; deleted (through a live node) when dropped.
struct ClusterStream {
    name: String,
}

impl ClusterStream {
    /// A stream name for this test, once the cluster is checked healthy.
    fn new(purpose: &str) -> Self {
        require_cluster();
        Self::unchecked(purpose)
    }

    /// `new` without the health check (for many streams in one test, checked once).
    fn unchecked(purpose: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        ClusterStream {
            name: format!("cluster-{purpose}-{}-{nanos}", std::process::id()),
        }
    }

    /// `invstream --uri (each node, `first` first) --stream NAME ARGS…`
    fn command(&self, first: u8, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(["--uri", &uris_from(first), "--json", "--stream", &self.name])
            .args(args);
        command
    }

    /// The node (1-3) leading the stream now.
    fn leader(&self) -> u8 {
        leader_of(&self.name)
    }

    fn verify(&self, through: u8) -> serde_json::Value {
        summary_of(
            &self
                .command(through, &["consume", "--offset", "first", "--verify"])
                .output()
                .unwrap(),
        )
    }
}

impl Drop for ClusterStream {
    fn drop(&mut self) {
        let _ = cluster(&["ctl", "1", "delete_queue", &self.name]);
    }
}

/// Brings node `n` back when dropped (the test may fail while it is down).
pub(crate) struct NodeBack(pub(crate) u8);

impl Drop for NodeBack {
    fn drop(&mut self) {
        let _ = cluster(&["start-node", &self.0.to_string()]);
    }
}

/// A paced 1,000,000 produce given all three nodes, through node 2 (which then leads the
/// stream); `fault` takes the leader node down mid-run and leaves it down.
fn leader_lost_mid_produce(fault: &str) {
    let stream = ClusterStream::new(fault);
    // Paced over 20 s: the fault lands early in it however busy the machine is.
    let (producer, log) = spawn_until_marker(
        stream.command(2, &["produce", "--count", "1000000", "--rate", "50000"]),
        "publishing",
    );
    // The stream exists and the producer writes to its leader once "publishing" is printed.
    let leader = stream.leader();
    let _back = NodeBack(leader);
    cluster(&[fault, &leader.to_string()]);
    let output = producer.wait_with_output().unwrap();
    let stderr = log.text();
    assert!(output.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["confirmed"], 1_000_000, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert!(
        summary["reconnects"].as_u64().unwrap() >= 1,
        "the fault missed the producer: {summary}\n{stderr}"
    );
    let stall = summary["max_stall_s"].as_f64().unwrap();
    assert!(stall < 10.0, "publishing stalled {stall} s: {summary}");
    // Read back while the node is still down.
    let survivor = (1..=3).find(|n| *n != leader).unwrap();
    assert_exactly(&stream.verify(survivor), 1_000_000);
}

#[test]
fn leader_node_stopped_mid_produce_the_run_completes_on_the_new_leader() {
    leader_lost_mid_produce("stop-node");
}

#[test]
fn leader_node_killed_mid_produce_the_run_completes_on_the_new_leader() {
    leader_lost_mid_produce("kill-node");
}

#[test]
fn a_fresh_stream_written_at_once_through_each_node_is_never_missing() {
    require_cluster();
    for round in 0..20 {
        let streams: Vec<ClusterStream> = (1..=3)
            .map(|node| ClusterStream::unchecked(&format!("fresh-{round}-{node}")))
            .collect();
        let runs: Vec<_> = streams
            .iter()
            .zip(1..=3)
            .map(|(stream, node)| {
                // This node alone: created and written through the same node at once.
                Command::new(binary())
                    .args(["--uri", &uri(node), "--json", "--stream", &stream.name])
                    .args(["produce", "--count", "100"])
                    .output()
                    .unwrap()
            })
            .collect();
        for (output, node) in runs.iter().zip(1..=3) {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                !stderr.contains("does not exist"),
                "round {round}, node {node}: {stderr}"
            );
            assert_eq!(
                summary_of(output)["confirmed"],
                100,
                "round {round}, node {node}"
            );
        }
    }
}

/// A stream declared through node 1, which leads it, with a backlog of 300,000 that takes
/// seconds to read.
fn stream_with_backlog(purpose: &str) -> ClusterStream {
    let stream = ClusterStream::new(purpose);
    let backlog = summary_of(
        &stream
            .command(1, &["produce", "--count", "300000"])
            .output()
            .unwrap(),
    );
    assert_eq!(backlog["confirmed"], 300_000);
    assert_eq!(stream.leader(), 1);
    stream
}

/// A reader of the backlog and the 100,000 after it, through node 1, with `extra` flags.
fn backlog_reader(stream: &ClusterStream, extra: &[&str]) -> Command {
    // A gap would leave it waiting: it ends by itself (--duration), and the count tells.
    let args = [
        "consume",
        "--offset",
        "first",
        "--count",
        "400000",
        "--verify",
        "--duration",
        "90s",
    ];
    stream.command(1, &[&args[..], extra].concat())
}

/// Stops node `stopped` while `consumer` reads the backlog, publishes the last 100,000 through
/// node `through` afterwards (so the consumer must have moved to read them), and checks it read
/// all 400,000 in order after at least one reconnect: its summary and stderr.
fn read_on_after_stop(
    stream: &ClusterStream,
    consumer: std::process::Child,
    log: StderrLog,
    stopped: u8,
    through: u8,
) -> (serde_json::Value, String) {
    let _back = NodeBack(stopped);
    cluster(&["stop-node", &stopped.to_string()]);
    let more = summary_of(
        &stream
            .command(through, &["produce", "--count", "100000"])
            .output()
            .unwrap(),
    );
    assert_eq!(more["confirmed"], 100_000);
    let output = consumer.wait_with_output().unwrap();
    let stderr = log.text();
    assert!(output.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        summary["reconnects"].as_u64().unwrap() >= 1,
        "the stop missed the consumer: {summary}\n{stderr}"
    );
    assert_eq!(summary["messages"], 400_000, "{summary}");
    assert_eq!(summary["first_offset"], 0, "{summary}");
    assert_eq!(summary["last_offset"], 399_999, "{summary}");
    assert_eq!(summary["verify"]["ok"], true, "{summary}");
    (summary, stderr)
}

#[test]
fn a_consumer_resumes_on_another_member_when_the_node_it_reads_from_stops() {
    let stream = stream_with_backlog("follow");
    let (consumer, log) = spawn_until_marker(
        backlog_reader(
            &stream,
            // The node it reads from is then known for sure (which replica a consumer picks is
            // random, and finding it from outside raced with fast reads in CI).
            &["--read-from", "leader"],
        ),
        "reading stream",
    );
    // Stop the node it reads from; the rest comes through node 2.
    read_on_after_stop(&stream, consumer, log, 1, 2);
}

/// The node (1-3) a consumer's "reading 'STREAM' from localhost:PORT (…)" line names.
fn node_read_from(line: &str) -> u8 {
    line.split("from localhost:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|port| port.parse::<u16>().ok())
        .and_then(|port| port.checked_sub(5560))
        .filter(|node| (1..=3).contains(node))
        .unwrap_or_else(|| panic!("no cluster node in: {line}")) as u8
}

#[test]
fn a_consumer_reading_a_replica_resumes_on_another_member_when_that_node_stops() {
    // Nodes 2 and 3 hold the stream's replicas.
    let stream = stream_with_backlog("replica");
    // The default, --read-from replica: the consumer says which replica it picked.
    let (consumer, line, log) = spawn_until_line(backlog_reader(&stream, &[]), "(a replica)");
    let replica = node_read_from(&line);
    assert_ne!(replica, 1, "the leader is not a replica: {line}");
    // Stop exactly that node; the rest is published through the leader after it stopped.
    let (summary, stderr) = read_on_after_stop(&stream, consumer, log, replica, 1);
    // Its last subscription is on a node that runs.
    let last = stderr
        .lines()
        .rfind(|l| l.contains(&format!("reading '{}' from", stream.name)))
        .unwrap();
    assert_ne!(node_read_from(last), replica, "{stderr}");
    assert_exactly(&summary, 400_000);
}
