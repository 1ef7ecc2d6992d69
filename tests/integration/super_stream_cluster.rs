//! Super streams on the real 3-node cluster (`scripts/cluster.sh up`): partitions whose leaders
//! spread over the nodes, written and read given all three nodes. Routing by product, the union
//! verifying exactly, single-active instances sharing the partitions, and a partition leader's
//! node killed mid-produce. They stop nodes or load the cluster, so they run in the `cluster`
//! test group (.config/nextest.toml), one at a time.

use std::collections::HashMap;

use invstream::routing::partition_of_product;

use crate::cluster::{cluster, leader_of, port, require_cluster, NodeBack};
use crate::util::{
    send_signal, spawn_until_marker, summary_of, wait_summary, wait_until, TestSuperStream,
};

/// A super stream of the test's own on the cluster (every node given, node 1 first), once the
/// cluster is checked healthy.
fn cluster_super_stream(purpose: &str) -> TestSuperStream {
    require_cluster();
    TestSuperStream::on_nodes(
        &format!("cluster-ss-{purpose}"),
        &[port(1), port(2), port(3)],
    )
}

/// The messages of each partition (per partition summaries), in partition order.
fn partition_counts(summary: &serde_json::Value, field: &str) -> Vec<u64> {
    summary["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no per-partition summaries: {summary}"))
        .iter()
        .map(|p| p[field].as_u64().unwrap())
        .collect()
}

/// The union of the partitions read back holds every update once: per partition as produced,
/// one producer across partitions, `count` distinct, no gap, no duplicate.
fn assert_read_exactly(read: &serde_json::Value, produced: &serde_json::Value, count: u64) {
    assert_eq!(read["messages"], count, "{read}");
    assert_eq!(
        partition_counts(read, "messages"),
        partition_counts(produced, "confirmed"),
        "each partition holds what was confirmed on it: {read}\n{produced}"
    );
    let verify = &read["verify"];
    assert_eq!(verify["ok"], true, "{verify}");
    let producers = verify["producers"].as_array().unwrap();
    assert_eq!(
        producers.len(),
        1,
        "one producer name across partitions: {verify}"
    );
    let producer = &producers[0];
    assert_eq!(producer["producer"], produced["producer"], "{verify}");
    assert_eq!(producer["distinct"], count, "{verify}");
    assert_eq!(producer["duplicates"], 0, "{verify}");
    assert_eq!(producer["gaps"], 0, "{verify}");
    assert_eq!(producer["first_seq"], 0, "{verify}");
    assert_eq!(producer["last_seq"], count - 1, "{verify}");
}

#[test]
fn a_million_updates_route_by_product_keep_their_order_and_verify_across_partitions() {
    const COUNT: u64 = 1_000_000;
    let ss = cluster_super_stream("million");
    let produced = ss.produce(COUNT, 3);
    let counts = partition_counts(&produced, "confirmed");
    assert_eq!(counts.len(), 3, "{produced}");
    assert_eq!(counts.iter().sum::<u64>(), COUNT, "{produced}");

    // Each partition read as a plain stream: every update belongs there by the Java client's
    // hash of its product id, and each product's seq only grows.
    for (index, count) in counts.iter().enumerate() {
        let partition = ss.partition(index);
        let output = ss
            .command_via(
                port(1),
                &[
                    "--stream", &partition, "consume", "--offset", "first", "--print",
                ],
            )
            .output()
            .unwrap();
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
    assert_read_exactly(&read, &produced, COUNT);
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
    let ss = cluster_super_stream("sac");
    // The super stream, with one update already there (read too: --offset first).
    let mut totals = partition_counts(&ss.produce(1, 3), "confirmed");
    let group = "orders-group";
    let instance = || {
        spawn_until_marker(
            ss.command_via(
                port(1),
                &[
                    "consume",
                    "--super-stream",
                    &ss.name,
                    "--name",
                    group,
                    "--single-active",
                    "--offset",
                    "first",
                    "--follow",
                    "--store-every",
                    "1",
                ],
            ),
            "reading super stream",
        )
        .0
    };
    let add = |totals: &mut Vec<u64>, summary: &serde_json::Value| {
        for (total, count) in totals
            .iter_mut()
            .zip(partition_counts(summary, "confirmed"))
        {
            *total += count;
        }
    };
    // The offset of each partition's last message (stored offsets take offsets of their own,
    // so it is not the count of messages).
    let last_offsets = || -> Vec<Option<u64>> {
        (0..3)
            .map(|i| {
                let output = ss
                    .command_via(
                        port(1),
                        &["--stream", &ss.partition(i), "consume", "--offset", "first"],
                    )
                    .output()
                    .unwrap();
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
fn a_partition_leaders_node_killed_mid_produce_loses_and_duplicates_nothing() {
    const COUNT: u64 = 600_000;
    let ss = cluster_super_stream("kill");
    let producer = format!("p-{}", ss.name);
    // Paced over 20 s: the kill lands early in it however busy the machine is.
    let (run, log) = spawn_until_marker(
        ss.command_via(
            port(1),
            &[
                "produce",
                "--super-stream",
                &ss.name,
                "--partitions",
                "3",
                "--producer-name",
                &producer,
                "--count",
                &COUNT.to_string(),
                "--rate",
                "30000",
            ],
        ),
        "publishing",
    );
    // Partition leaders are spread over the nodes (queue-leader-locator=balanced). The one node
    // 1 leads, if any, loses the connection the run went through too (node 1 is the first URI).
    let leaders: Vec<u8> = (0..3).map(|i| leader_of(&ss.partition(i))).collect();
    let target = leaders.iter().position(|n| *n == 1).unwrap_or(0);
    let (partition, node) = (ss.partition(target), leaders[target]);
    // Confirmed progress on that partition: the broker holds some of its updates.
    wait_until("the broker stores some updates of the partition", || {
        ss.publisher_sequence(&producer, &partition)
            .is_some_and(|seq| seq > 0)
    });
    let _back = NodeBack(node);
    cluster(&["kill-node", &node.to_string()]);
    let output = run.wait_with_output().unwrap();
    let stderr = log.text();
    assert!(output.status.success(), "{stderr}");
    let produced: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(produced["confirmed"], COUNT, "{produced}");
    assert_eq!(produced["failed"], 0, "{produced}");
    let partitions = produced["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3, "{produced}");
    let faulted = &partitions[target];
    assert_eq!(faulted["stream"], partition.as_str(), "{produced}");
    assert!(
        faulted["reconnects"].as_u64().unwrap() >= 1,
        "the kill of node {node} missed {partition}'s publisher (leaders {leaders:?}): {produced}\n{stderr}"
    );
    for summary in partitions {
        assert_eq!(summary["failed"], 0, "{summary}");
        let stall = summary["max_stall_s"].as_f64().unwrap();
        assert!(
            stall < 10.0,
            "{} stalled {stall} s: {produced}",
            summary["stream"]
        );
    }
    // Read back through a survivor while the node is still down.
    let survivor = (1..=3).find(|n| *n != node).unwrap();
    let read = summary_of(
        &ss.command_via(
            port(survivor),
            &[
                "consume",
                "--super-stream",
                &ss.name,
                "--offset",
                "first",
                "--verify",
            ],
        )
        .output()
        .unwrap(),
    );
    assert_read_exactly(&read, &produced, COUNT);
}
