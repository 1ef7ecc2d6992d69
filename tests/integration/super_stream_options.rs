//! The options of a plain produce and consume, with `--super-stream` (single test broker):
//! `produce --resume` after a crash (each partition finishes its own part exactly once),
//! `--producer-name` (a name per partition, held by one run at a time), `consume --print` (every
//! line names its partition) and `consume --consumers N` (each consumer reads every partition).

use std::collections::HashMap;
use std::process::{Command, Stdio};

use invstream::model::UpdateGenerator;
use invstream::routing::partition_of_product;

use crate::util::{binary, summary_of, wait_until, TestSuperStream};

/// The verdict of a `consume --verify` summary: one producer, `count` distinct seqs, no gap.
fn assert_verifies_exactly(verify: &serde_json::Value, producer: &str, count: u64) {
    assert_eq!(verify["ok"], true, "{verify}");
    let producers = verify["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 1, "{verify}");
    assert_eq!(producers[0]["producer"], producer, "{verify}");
    assert_eq!(producers[0]["distinct"], count, "{verify}");
    assert_eq!(producers[0]["duplicates"], 0, "{verify}");
    assert_eq!(producers[0]["gaps"], 0, "{verify}");
}

#[test]
fn resume_finishes_each_partition_of_a_killed_super_stream_produce_exactly_once() {
    const COUNT: u64 = 20_000;
    const PARTITIONS: usize = 3;
    let ss = TestSuperStream::new("sso-resume");
    let producer = "resumer";
    let args = [
        "--json",
        "produce",
        "--super-stream",
        ss.name(),
        "--partitions",
        "3",
        "--producer-name",
        producer,
        "--count",
        "20000",
        "--rate",
        "2000",
        "--batch-size",
        "50",
        "--resume",
    ];
    // A crash part way: SIGKILL once the broker holds some of the run's updates.
    let mut child = Command::new(binary())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the invstream binary starts");
    wait_until("the broker stores some of the first run's updates", || {
        ss.sequences(producer, PARTITIONS).iter().any(|s| *s > 0)
    });
    let finished = child.try_wait().expect("the first run's status");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(finished.is_none(), "the first run ended before the kill");
    // What each partition holds once the broker has written what reached it (it stops
    // changing: the connection is gone).
    let mut stored = ss.sequences(producer, PARTITIONS);
    wait_until("the partitions' last ids settle after the kill", || {
        let now = ss.sequences(producer, PARTITIONS);
        let same = now == stored;
        stored = now;
        same
    });
    assert!(
        stored.iter().max() > stored.iter().min(),
        "the partitions hold different amounts: {stored:?}"
    );
    // The updates no partition holds: the most a correct resume sends.
    let mut generator = UpdateGenerator::new(1_000, 1);
    let missing = (0..COUNT)
        .map(|_| generator.next_update(0))
        .filter(|update| {
            let partition = partition_of_product(update.product_id, PARTITIONS as u32) as usize;
            update.seq + 1 > stored[partition]
        })
        .count() as u64;

    let rerun = summary_of(&Command::new(binary()).args(args).output().unwrap());
    let (sent, skipped) = (
        rerun["messages"].as_u64().unwrap(),
        rerun["skipped"].as_u64().unwrap(),
    );
    assert!(sent > 0 && skipped > 0, "{rerun}");
    assert_eq!(sent + skipped, COUNT, "{rerun}");
    assert!(
        sent <= missing,
        "sent {sent}, but only {missing} were missing from their partitions: {rerun}"
    );
    assert_eq!(rerun["confirmed"], sent, "{rerun}");

    let read = ss.run_json(&["consume", "--offset", "first", "--verify"]);
    assert_eq!(read["messages"], COUNT, "{read}");
    assert_verifies_exactly(&read["verify"], producer, COUNT);
}

#[test]
fn a_producer_name_serves_every_partition_and_goes_on_after_the_highest() {
    const PARTITIONS: usize = 3;
    let ss = TestSuperStream::new("sso-name");
    let first = ss.run_json(&[
        "produce",
        "--partitions",
        "3",
        "--producer-name",
        "shop",
        "--count",
        "3000",
    ]);
    assert_eq!(first["confirmed"], 3000, "{first}");
    // Every partition publishes under the name itself (as the Java client's super stream
    // producer does); together they hold ids 1…3000.
    let stored = ss.sequences("shop", PARTITIONS);
    assert!(stored.iter().all(|s| *s > 0), "{stored:?}");
    assert_eq!(stored.iter().max(), Some(&3000), "{stored:?}");
    for partition in first["partitions"].as_array().unwrap() {
        assert_eq!(partition["producer"], "shop", "{first}");
    }
    // The same name again (no --resume): 3000 more, seq going on after the highest.
    let second = ss.run_json(&["produce", "--producer-name", "shop", "--count", "3000"]);
    assert_eq!(
        (second["confirmed"].as_u64(), second["skipped"].as_u64()),
        (Some(3000), Some(0)),
        "{second}"
    );
    assert_eq!(ss.sequences("shop", PARTITIONS).iter().max(), Some(&6000));
    let read = ss.run_json(&["consume", "--offset", "first", "--verify"]);
    assert_eq!(read["messages"], 6000, "{read}");
    assert_verifies_exactly(&read["verify"], "shop", 6000);
}

#[test]
fn print_writes_every_update_once_naming_its_partition() {
    const COUNT: u64 = 30_000;
    let ss = TestSuperStream::new("sso-print");
    let produced = ss.run_json(&["produce", "--partitions", "3", "--count", "30000"]);
    assert_eq!(produced["confirmed"], COUNT, "{produced}");
    let output = ss.run(&["consume", "--offset", "first", "--print"]);
    assert!(output.status.success(), "{output:?}");
    // The summary goes to stderr; stdout is only the updates, one whole JSON line each.
    let mut seqs = std::collections::HashSet::new();
    let mut last_seq: HashMap<u64, u64> = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let message: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let product = message["update"]["product_id"].as_u64().unwrap();
        let seq = message["update"]["seq"].as_u64().unwrap();
        let partition = partition_of_product(product, 3) as usize;
        assert_eq!(message["partition"], ss.partition(partition), "{line}");
        assert!(message["offset"].is_u64(), "{line}");
        if let Some(before) = last_seq.insert(product, seq) {
            assert!(before < seq, "product {product}: seq {seq} after {before}");
        }
        assert!(seqs.insert(seq), "seq {seq} printed twice");
    }
    assert_eq!(seqs.len() as u64, COUNT);
    let summary: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stderr)
            .trim()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["messages"], COUNT, "{summary}");
}

#[test]
fn consumers_each_read_every_partition() {
    const COUNT: u64 = 3_000;
    let ss = TestSuperStream::new("sso-fanout");
    let produced = ss.run_json(&["produce", "--partitions", "3", "--count", "3000"]);
    let producer = produced["producer"].as_str().unwrap().to_string();
    let read = ss.run_json(&[
        "consume",
        "--offset",
        "first",
        "--consumers",
        "stats,email",
        "--verify",
    ]);
    assert_eq!(read["messages"], 2 * COUNT, "{read}");
    let consumers = read["consumers"].as_array().unwrap();
    let names: Vec<_> = consumers.iter().map(|c| c["consumer"].clone()).collect();
    assert_eq!(names, ["stats", "email"], "{read}");
    for consumer in consumers {
        assert_eq!(consumer["messages"], COUNT, "{read}");
        assert_verifies_exactly(&consumer["verify"], &producer, COUNT);
    }
    // Per partition, both consumers together: twice what it holds.
    let produced_counts: Vec<u64> = produced["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["messages"].as_u64().unwrap())
        .collect();
    let read_counts: Vec<u64> = read["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["messages"].as_u64().unwrap())
        .collect();
    let doubled: Vec<u64> = produced_counts.iter().map(|c| 2 * c).collect();
    assert_eq!(read_counts, doubled, "{read}");
}

/// A name that holds updates only under the per-partition names invstream used until December
/// 2026 (`NAME-PARTITION`) goes on under those: `--resume` passes over what they hold instead
/// of storing it a second time under the shared name.
#[test]
fn a_name_held_under_per_partition_names_goes_on_under_them() {
    let ss = TestSuperStream::new("sso-legacy");
    let created = ss.run_json(&["produce", "--partitions", "1", "--count", "1"]);
    assert_eq!(created["confirmed"], 1, "{created}");
    let partition = ss.partition(0);
    let legacy = format!("shop-{partition}");
    ss.publish_as(&legacy, &partition, 400);
    let output = ss.run(&[
        "produce",
        "--producer-name",
        "shop",
        "--count",
        "1000",
        "--resume",
    ]);
    let resumed = crate::util::summary_of(&output);
    assert_eq!(
        (resumed["skipped"].as_u64(), resumed["confirmed"].as_u64()),
        (Some(400), Some(600)),
        "{resumed}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("under per-partition names ({legacy}")),
        "{stderr}"
    );
    assert_eq!(ss.publisher_sequence(&legacy, &partition), Some(1000));
    assert_eq!(ss.publisher_sequence("shop", &partition), Some(0));
    // The same name again goes on under them too, after the highest.
    let again = ss.run_json(&["produce", "--producer-name", "shop", "--count", "10"]);
    assert_eq!(again["confirmed"], 10, "{again}");
    assert_eq!(ss.publisher_sequence(&legacy, &partition), Some(1010));
    let read = ss.run_json(&["consume", "--offset", "first"]);
    assert_eq!(read["messages"], 1 + 1010, "{read}");
}
