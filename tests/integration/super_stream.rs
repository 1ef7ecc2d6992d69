//! Super streams (RabbitMQ 3.13+) on the single test broker: `--product` reading one partition,
//! an existing super stream kept as it is, a partition that starts past offset 0 said so, and a
//! broker too old for them. Routing, verifying
//! across partitions and single-active groups run on the cluster (super_stream_cluster.rs).

use std::time::Duration;

use crate::util::{invstream, require_broker, wait_within, TestSuperStream, OLD_BROKER_PORT};

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

    // Asked for 5 partitions of the existing 3: refused in one line (routing by 5 would put a
    // product's updates where its readers do not look), nothing published.
    let output = ss.run(&["produce", "--count", "10", "--partitions", "5"]);
    crate::util::assert_one_line_error(&output, 1, "not as --partitions 5 asks");
}

/// `--offset first` on a super stream says, per partition, where a partition's messages start
/// when that is past offset 0, as a stream's read does (the super-stream path never told its
/// readers where they asked to start, so it said nothing). Here an offset-tracking entry,
/// stored on a partition while it was empty, holds that partition's offset 0.
#[test]
fn reading_from_first_says_which_partition_starts_past_offset_0() {
    let ss = TestSuperStream::new("asked");
    let counts = partition_counts(&ss.produce(1, 3));
    let empty = counts
        .iter()
        .position(|c| *c == 0)
        .expect("two partitions are empty");
    let partition = ss.partition(empty);
    ss.store_offset("bookmark", &partition, 0);
    ss.produce(3_000, 3);

    let output = ss.run(&["consume", "--offset", "first"]);
    let read = crate::util::summary_of(&output);
    assert_eq!(read["messages"], 3_001, "{read}");
    assert_eq!(read["partitions"][empty]["first_offset"], 1, "{read}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let notes: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("no messages at offsets"))
        .collect();
    assert_eq!(
        notes,
        [format!(
            "invstream: partition '{partition}': no messages at offsets 0…0 (removed by retention, or offset-tracking entries): reading from offset 1"
        )],
        "{stderr}"
    );
}

/// `--count N` on a super stream is N in all, from whichever partitions deliver them (each
/// partition's reader used to read N, so 3 partitions gave 3N); `--count-per-partition N`
/// asks for N from each; with `--consumers`, each consumer reads N in all.
#[test]
fn count_on_a_super_stream_is_the_total_over_its_partitions() {
    let ss = TestSuperStream::new("count");
    let produced = ss.produce(300, 3);
    let counts = partition_counts(&produced);
    assert!(
        counts.iter().all(|c| *c >= 10),
        "every partition holds 10: {counts:?}"
    );
    // A partition's messages carry the run's producer name, as a stream's do, and the broker
    // deduplicates under that name on every partition (as the Java client's super stream
    // producer names them).
    let producer = format!("String({:?})", produced["producer"].as_str().unwrap());
    for message in crate::util::read_with_client(&format!("{}-0", ss.name), 10) {
        assert_eq!(message.properties["producer"], producer, "{produced}");
    }

    let output = ss.run(&["consume", "--offset", "first", "--count", "10"]);
    let read = crate::util::summary_of(&output);
    assert_eq!(read["messages"], 10, "exactly 10 in all: {read}");
    assert_eq!(partition_counts(&read).iter().sum::<u64>(), 10, "{read}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("until --count from all partitions together"),
        "{stderr}"
    );

    let each = ss.run_json(&[
        "consume",
        "--offset",
        "first",
        "--count-per-partition",
        "10",
    ]);
    assert_eq!(each["messages"], 30, "{each}");
    assert_eq!(partition_counts(&each), [10, 10, 10], "{each}");

    let fan_out = ss.run_json(&[
        "consume",
        "--offset",
        "first",
        "--count",
        "10",
        "--consumers",
        "2",
    ]);
    assert_eq!(fan_out["messages"], 20, "{fan_out}");
    for consumer in fan_out["consumers"].as_array().unwrap() {
        assert_eq!(
            consumer["messages"], 10,
            "each consumer 10 in all: {fan_out}"
        );
    }

    // Asked of a plain stream, a per-partition count is refused by name.
    let plain = crate::util::invstream(&["consume", "--count-per-partition", "10"]);
    assert_eq!(plain.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("--super-stream"),
        "{plain:?}"
    );
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

/// A single-active group's catch-up (`--offset stored`, no `--follow`) ends at each partition's
/// end, also where nothing came after the offset the group stored. An active member learns
/// where it starts only when activated, after subscribing, so it waited there for a message
/// that might never come (the chaos harness's catch-up hung so).
#[test]
fn a_single_active_catch_up_ends_also_where_nothing_is_new() {
    let ss = TestSuperStream::new("sac-stored");
    ss.produce(3_000, 3);
    let catch_up = |offset: &str| {
        let child = ss
            .command(&[
                "consume",
                "--name",
                "catch-up",
                "--single-active",
                "--offset",
                offset,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the invstream binary starts");
        let output = wait_within(child, Duration::from_secs(60), "the catch-up read");
        crate::util::summary_of(&output)["messages"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        catch_up("first"),
        3_000,
        "the whole super stream, offsets stored"
    );
    ss.produce(300, 3);
    assert_eq!(
        catch_up("stored"),
        300,
        "what came after the stored offsets"
    );
    assert_eq!(catch_up("stored"), 0, "nothing new: the read ends");
}
