//! Super streams (RabbitMQ 3.13+) on the single test broker: routing by product, the union of
//! the partitions verifying exactly, `--product` reading one partition, single-active groups
//! sharing the partitions, and a broker too old for them.

use std::collections::HashMap;

use invstream::routing::partition_of_product;
use rabbitmq_stream_client::{Client, ClientOptions};

use crate::util::{
    invstream, require_broker, runtime, send_signal, summary_of, wait_summary, wait_until,
    TestStream, OLD_BROKER_PORT,
};

/// A super stream name of the test's own; the super stream and its partitions are deleted on
/// drop. `--stream` (the plain stream `TestStream` names) is unused.
struct TestSuperStream {
    stream: TestStream,
}

impl TestSuperStream {
    fn new(purpose: &str) -> Self {
        TestSuperStream {
            stream: TestStream::new(&format!("ss-{purpose}")),
        }
    }

    fn name(&self) -> &str {
        &self.stream.name
    }

    fn partition(&self, index: usize) -> String {
        format!("{}-{index}", self.name())
    }

    /// `invstream --json ARGS… --super-stream NAME`, its summary (panics if it failed).
    fn run_json(&self, args: &[&str]) -> serde_json::Value {
        self.stream
            .run_json(&[args, &["--super-stream", self.name()]].concat())
    }

    fn produce(&self, count: u64, partitions: u32) -> serde_json::Value {
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

    /// The offset the broker stores for consumer `name` on partition `partition`.
    fn stored_offset(&self, name: &str, partition: &str) -> Option<u64> {
        runtime().block_on(async {
            let client = Client::connect(ClientOptions::default()).await.ok()?;
            let offset = client.query_offset(name.to_string(), partition).await;
            let _ = client.close().await;
            offset.ok()
        })
    }
}

impl Drop for TestSuperStream {
    fn drop(&mut self) {
        let name = self.name().to_string();
        runtime().block_on(async move {
            if let Ok(client) = Client::connect(ClientOptions::default()).await {
                let _ = client.delete_super_stream(&name).await;
                let _ = client.close().await;
            }
        });
    }
}

/// The messages of each partition (per partition summaries), in partition order.
fn partition_counts(summary: &serde_json::Value) -> Vec<u64> {
    summary["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no per-partition summaries: {summary}"))
        .iter()
        .map(|p| p["messages"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_million_updates_route_by_product_keep_their_order_and_verify_across_partitions() {
    const COUNT: u64 = 1_000_000;
    let ss = TestSuperStream::new("million");
    let produced = ss.produce(COUNT, 3);
    let counts = partition_counts(&produced);
    assert_eq!(counts.len(), 3, "{produced}");
    assert_eq!(counts.iter().sum::<u64>(), COUNT, "{produced}");

    // Each partition read as a plain stream: every update belongs there by the Java client's
    // hash of its product id, and each product's seq only grows.
    for (index, count) in counts.iter().enumerate() {
        let partition = ss.partition(index);
        let output = invstream(&[
            "--stream", &partition, "consume", "--offset", "first", "--print",
        ]);
        assert!(output.status.success(), "{partition}: {output:?}");
        let mut last_seq: HashMap<u64, u64> = HashMap::new();
        let mut lines = 0;
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let message: serde_json::Value = serde_json::from_str(line).unwrap();
            let product = message["update"]["product_id"].as_u64().unwrap();
            let seq = message["update"]["seq"].as_u64().unwrap();
            assert_eq!(
                partition_of_product(product, 3) as usize,
                index,
                "product {product} (seq {seq}) is in {partition}"
            );
            if let Some(before) = last_seq.insert(product, seq) {
                assert!(before < seq, "product {product}: seq {seq} after {before}");
            }
            lines += 1;
        }
        assert_eq!(lines, *count, "{partition}");
    }

    let read = ss.run_json(&["consume", "--offset", "first", "--verify"]);
    assert_eq!(read["messages"], COUNT, "{read}");
    assert_eq!(partition_counts(&read), counts, "{read}");
    let verify = &read["verify"];
    assert_eq!(verify["ok"], true, "{verify}");
    let producers = verify["producers"].as_array().unwrap();
    assert_eq!(
        producers.len(),
        1,
        "one producer name across partitions: {verify}"
    );
    assert_eq!(producers[0]["producer"], produced["producer"], "{verify}");
    assert_eq!(producers[0]["distinct"], COUNT, "{verify}");
    assert_eq!(producers[0]["last_seq"], COUNT - 1, "{verify}");
}

#[test]
fn product_reads_only_its_partition_and_an_existing_super_stream_is_kept() {
    let ss = TestSuperStream::new("product");
    let produced = ss.produce(30_000, 3);
    let counts = partition_counts(&produced);

    // routing.rs pins product 1 to partition 2 of three.
    let read = ss.run_json(&["consume", "--offset", "first", "--product", "1"]);
    let partitions = read["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 1, "{read}");
    assert_eq!(partitions[0]["stream"], ss.partition(2), "{read}");
    assert_eq!(
        read["delivered"], counts[2],
        "the whole partition, nothing else: {read}"
    );
    assert!(read["messages"].as_u64().unwrap() > 0, "{read}");

    // Asked for 5 partitions of the existing 3: one line says so, and the 3 are used.
    let output = ss.stream.run(&[
        "--json",
        "produce",
        "--count",
        "10",
        "--partitions",
        "5",
        "--super-stream",
        ss.name(),
    ]);
    let summary = summary_of(&output);
    assert_eq!(partition_counts(&summary).len(), 3, "{summary}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("already exists"))
            .count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("not --partitions 5"), "{stderr}");
}

/// Each partition's reading, as (first offset, last offset, messages), by one instance.
fn ranges(summary: &serde_json::Value) -> HashMap<String, (u64, u64, u64)> {
    summary["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no per-partition summaries: {summary}"))
        .iter()
        .filter(|p| p["messages"].as_u64().unwrap() > 0)
        .map(|p| {
            let first = p["first_offset"].as_u64().unwrap();
            let last = p["last_offset"].as_u64().unwrap();
            let messages = p["messages"].as_u64().unwrap();
            (
                p["stream"].as_str().unwrap().to_string(),
                (first, last, messages),
            )
        })
        .collect()
}

#[test]
fn single_active_instances_share_the_partitions_and_hand_over_without_gap_or_duplicate() {
    let ss = TestSuperStream::new("sac");
    // The super stream, with one update already there (read too: --offset first).
    let mut totals = partition_counts(&ss.produce(1, 3));
    let group = "orders-group";
    let instance = || {
        ss.stream.spawn_until(
            &[
                "consume",
                "--super-stream",
                ss.name(),
                "--name",
                group,
                "--single-active",
                "--offset",
                "first",
                "--follow",
                "--store-every",
                "1",
            ],
            "reading super stream",
        )
    };
    let add = |totals: &mut Vec<u64>, summary: &serde_json::Value| {
        for (total, count) in totals.iter_mut().zip(partition_counts(summary)) {
            *total += count;
        }
    };
    // The offset of each partition's last message (stored offsets take offsets of their own,
    // so it is not the count of messages).
    let last_offsets = || -> Vec<Option<u64>> {
        (0..3)
            .map(|i| {
                let output = invstream(&[
                    "--json",
                    "--stream",
                    &ss.partition(i),
                    "consume",
                    "--offset",
                    "first",
                ]);
                summary_of(&output)["last_offset"].as_u64()
            })
            .collect()
    };
    // Every partition's last message stored under the group's name: all read.
    let all_read = |ends: &[Option<u64>]| {
        (0..3).all(|i| ends[i].is_none() || ss.stored_offset(group, &ss.partition(i)) == ends[i])
    };
    let a = instance();
    let b = instance();
    add(&mut totals, &ss.produce(30_000, 3));
    let ends = last_offsets();
    wait_until("the group stores the end of every partition", || {
        all_read(&ends)
    });
    send_signal(&a, "INT");
    let a = wait_summary(a);
    add(&mut totals, &ss.produce(30_000, 3));
    let ends = last_offsets();
    wait_until(
        "the remaining instance reads every partition to its end",
        || all_read(&ends),
    );
    send_signal(&b, "INT");
    let b = wait_summary(b);

    let (a, b) = (ranges(&a), ranges(&b));
    // The first instance alone read the one update there was; then the second joined and
    // the broker gave it a partition of its own.
    let a_partitions = a.values().filter(|(.., messages)| *messages > 1).count();
    assert!(
        (1..3).contains(&a_partitions),
        "the broker splits the partitions between the instances: the first read {a:?}"
    );
    for (index, total) in totals.iter().enumerate() {
        let partition = ss.partition(index);
        let mut readings: Vec<_> = [a.get(&partition), b.get(&partition)]
            .into_iter()
            .flatten()
            .copied()
            .collect();
        readings.sort();
        // One reader at a time: each takes over after the other's last offset; together they
        // read every update of the partition once.
        for pair in readings.windows(2) {
            assert!(
                pair[0].1 < pair[1].0,
                "{partition}: read twice: {readings:?}"
            );
        }
        let read: u64 = readings.iter().map(|(_, _, messages)| messages).sum();
        assert_eq!(read, *total, "{partition}: {readings:?}");
    }
}

#[test]
fn a_broker_without_super_streams_is_named_in_one_line() {
    require_broker(OLD_BROKER_PORT);
    let uri = format!("rabbitmq-stream://guest:guest@localhost:{OLD_BROKER_PORT}/%2f");
    for command in ["produce", "consume"] {
        let output = invstream(&["--uri", &uri, command, "--super-stream", "orders"]);
        assert!(!output.status.success(), "{command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{command}: {stderr}");
        assert!(lines[0].starts_with("invstream: error: "), "{stderr}");
        assert!(
            lines[0].contains("runs RabbitMQ 3.10") && lines[0].contains("need RabbitMQ 3.13"),
            "{command}: {stderr}"
        );
    }
}
