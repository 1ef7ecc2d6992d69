//! `invstream bench --workload FILE.yaml`: OpenMessaging Benchmark workload files
//! (tests/workloads/) run for short durations; every mapped setting is visible in the run.

use std::path::PathBuf;

use crate::util::{invstream, summary_of, TestStream};

fn workload(file: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/workloads")
        .join(file)
        .display()
        .to_string()
}

/// The workload run short (`--duration`, `--warmup` override the file's minutes): its JSON
/// outcome and what it said on stderr.
fn run(stream: &TestStream, file: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let path = workload(file);
    let mut args = vec![
        "--json",
        "--stream",
        &stream.name,
        "bench",
        "--workload",
        &path,
        "--duration",
        "2s",
        "--warmup",
        "0s",
    ];
    args.extend_from_slice(extra);
    let output = invstream(&args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (summary_of(&output), stderr)
}

#[test]
fn one_topic_of_three_partitions_creates_them_and_publishes_sized_messages_at_the_rate() {
    let stream = TestStream::new("wl-3p");
    let (outcome, stderr) = run(
        &stream,
        "1-topic-3-partitions-3-producers.yaml",
        &["--keep-stream"],
    );
    assert_eq!(outcome["workload"], "1 topic / 3 partitions / 3 producers");
    assert_eq!(outcome["topics"], 1, "{outcome}");
    assert_eq!(outcome["partitions_per_topic"], 3, "{outcome}");
    assert_eq!(outcome["producers_per_topic"], 3, "{outcome}");
    assert_eq!(outcome["message_size"], 512, "{outcome}");
    assert!(stderr.contains("9,000 msg/s each"), "{stderr}");
    let topic = &outcome["per_topic"][0];
    assert_eq!(topic["producers"], 3, "{topic}");
    // 9,000 msg/s for 2 s (the file's 5 minutes overridden), each body at least 512 bytes.
    let published = outcome["published"].as_u64().unwrap();
    assert!((14_000..=22_000).contains(&published), "{outcome}");
    assert!(
        topic["bytes"].as_u64().unwrap() >= published * 512,
        "{topic}"
    );
    assert_eq!(outcome["confirmed"], outcome["published"], "{outcome}");
    assert_eq!(outcome["consumed"], outcome["published"], "{outcome}");
    // The super stream was made with the file's three partitions (kept: --keep-stream).
    let name = topic["stream"].as_str().unwrap();
    let info = summary_of(&invstream(&["--json", "streams", "info", name]));
    assert_eq!(info["kind"], "super_stream", "{info}");
    assert_eq!(info["partitions"].as_array().unwrap().len(), 3, "{info}");
    let deleted = invstream(&["streams", "delete", name, "--yes"]);
    assert!(deleted.status.success());
}

/// `consumerPerSubscription: 2` on a one-partition topic: each subscription is a group of two
/// single active consumers, one reading, the other standing by.
#[test]
fn two_topics_run_at_once_each_read_once_by_every_subscription() {
    let stream = TestStream::new("wl-2t");
    let dir = tempfile::tempdir().unwrap();
    let omb_dir = dir.path().to_str().unwrap();
    let (outcome, stderr) = run(
        &stream,
        "2-topics-2-consumers-per-subscription.yaml",
        &["--export-omb", omb_dir],
    );
    assert_eq!(outcome["topics"], 2, "{outcome}");
    // One OMB result for the workload's measured run (the warm-up is not one), both topics in it.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let omb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(omb["workload"], outcome["workload"], "{omb}");
    assert_eq!(omb["topics"], 2, "{omb}");
    assert_eq!(omb["consumersPerTopic"], 2, "{omb}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.contains("-invstream-20"), "{name}");
    assert!(!omb["publishRate"].as_array().unwrap().is_empty(), "{omb}");
    let topics = outcome["per_topic"].as_array().unwrap();
    assert_eq!(topics.len(), 2, "{outcome}");
    assert_ne!(topics[0]["stream"], topics[1]["stream"]);
    assert_eq!(outcome["consumers_per_subscription"], 2, "{outcome}");
    let mut published = 0;
    for topic in topics {
        // Two subscriptions of two consumers: each group reads every message of its topic once.
        assert_eq!(topic["consumers"], 4, "{topic}");
        assert_eq!(topic["consumers_per_group"], 2, "{topic}");
        let confirmed = topic["confirmed"].as_u64().unwrap();
        assert!(confirmed > 0, "{topic}");
        assert_eq!(
            topic["consumed"].as_u64().unwrap(),
            2 * confirmed,
            "{topic}"
        );
        let groups = topic["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 2, "{topic}");
        for group in groups {
            let consumers = group["consumers"].as_array().unwrap();
            assert_eq!(consumers.len(), 2, "{group}");
            let read: u64 = consumers
                .iter()
                .map(|c| c["consumed"].as_u64().unwrap())
                .sum();
            assert_eq!(read, confirmed, "{group}");
            assert_eq!(group["consumed"], confirmed, "{group}");
            // One partition: one consumer is active, the other stands by.
            let active: Vec<_> = consumers
                .iter()
                .filter(|c| !c["partitions"].as_array().unwrap().is_empty())
                .collect();
            assert_eq!(active.len(), 1, "{group}");
            assert_eq!(active[0]["consumed"], confirmed, "{group}");
        }
        // The file's 8,000 msg/s is the whole test's: 4,000 each.
        assert!(topic["messages"].as_u64().unwrap() <= 10_000, "{topic}");
        published += topic["messages"].as_u64().unwrap();
    }
    assert_eq!(outcome["published"], published, "{outcome}");
    assert!(stderr.contains("4 consumer(s) in groups of 2"), "{stderr}");
    assert_eq!(outcome["warnings"], serde_json::json!([]), "{outcome}");
}

/// A group of two on three partitions: the broker spreads the partitions over its consumers,
/// each active on some, and together they read every message once.
#[test]
fn a_group_on_three_partitions_splits_them_between_its_consumers() {
    let stream = TestStream::new("wl-3p-group");
    let (outcome, _) = run(
        &stream,
        "1-topic-3-partitions-3-producers.yaml",
        &["--consumers", "2", "--consumers-per-group", "2"],
    );
    let topic = &outcome["per_topic"][0];
    let confirmed = topic["confirmed"].as_u64().unwrap();
    assert!(confirmed > 0, "{topic}");
    assert_eq!(topic["consumed"], confirmed, "{topic}");
    let group = &topic["groups"][0];
    assert_eq!(group["consumed"], confirmed, "{group}");
    let consumers = group["consumers"].as_array().unwrap();
    assert_eq!(consumers.len(), 2, "{group}");
    let mut partitions = Vec::new();
    for consumer in consumers {
        let own = consumer["partitions"].as_array().unwrap();
        assert!(
            !own.is_empty(),
            "each consumer is active somewhere: {group}"
        );
        assert!(consumer["consumed"].as_u64().unwrap() > 0, "{group}");
        partitions.extend(own.iter().map(|p| p.as_str().unwrap().to_string()));
    }
    // Each partition read by one of them (they subscribed before anything was published).
    partitions.sort();
    assert_eq!(partitions.len(), 3, "{group}");
    partitions.dedup();
    assert_eq!(
        partitions.len(),
        3,
        "every partition read, by one consumer: {group}"
    );
}

/// `consumerBacklogSizeGB: 0.01`: published before any consumer starts, then drained while the
/// producers go on (`backlogDrainRatio: 0.5`: half of it read down).
#[test]
fn a_backlog_is_built_before_the_consumers_start_and_its_drain_reported() {
    let stream = TestStream::new("wl-backlog");
    let (outcome, stderr) = run(&stream, "backlog.yaml", &[]);
    assert!(
        stderr.contains("after a backlog of 10.7 MB each"),
        "{stderr}"
    );
    assert_eq!(outcome["warnings"], serde_json::json!([]), "{outcome}");
    assert_eq!(outcome["message_size"], 1024, "{outcome}");
    assert_eq!(outcome["consumed"], outcome["published"], "{outcome}");
    let topic = &outcome["per_topic"][0];
    let backlog = &topic["backlog"];
    assert_eq!(backlog["asked_bytes"], 10_737_418, "{backlog}");
    assert!(
        backlog["bytes"].as_u64().unwrap() >= 10_737_418,
        "{backlog}"
    );
    assert!(backlog["messages"].as_u64().unwrap() >= 10_000, "{backlog}");
    assert_eq!(backlog["drain_ratio"], 0.5, "{backlog}");
    assert!(backlog["drain_s"].as_f64().unwrap() > 0.0, "{backlog}");
    assert!(
        backlog["drain_msg_per_s"].as_f64().unwrap() > 0.0,
        "{backlog}"
    );
    assert!(
        backlog["drain_mb_per_s"].as_f64().unwrap() > 0.0,
        "{backlog}"
    );
    // At 5,000 msg/s, 10,486 messages take two seconds, and nothing is read while they build.
    let build_s = backlog["build_s"].as_f64().unwrap();
    assert!(build_s >= 1.5, "{backlog}");
    for second in topic["timeline"].as_array().unwrap() {
        if second["second"].as_f64().unwrap() <= build_s.floor() {
            assert_eq!(second["consumed_per_s"], 0.0, "{second}");
        }
    }
    // Then the producers go on for the run's 2 s.
    assert!(
        topic["messages"].as_u64().unwrap() > backlog["messages"].as_u64().unwrap() + 5_000,
        "{topic}"
    );
}

#[test]
fn keys_invstream_cannot_honour_are_warned_about_and_the_run_goes_on() {
    let stream = TestStream::new("wl-payload");
    let (outcome, stderr) = run(&stream, "1-topic-1-partition-1kb.yaml", &[]);
    assert!(
        stderr.contains(
            "payloadFile: payload/payload-1Kb.data: invstream sends inventory updates padded"
        ),
        "{stderr}"
    );
    assert_eq!(outcome["rate_per_topic"], 10_000, "{outcome}");
}

#[test]
fn a_workload_with_an_unknown_key_or_a_missing_file_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: typo\ntopics: 1\nproducerRat: 100\n").unwrap();
    for (path, said) in [
        (bad.display().to_string(), "unknown key(s) producerRat"),
        (
            dir.path().join("none.yaml").display().to_string(),
            "cannot read it",
        ),
    ] {
        let output = invstream(&["bench", "--workload", &path]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(said), "{said}: {stderr}");
    }
}
