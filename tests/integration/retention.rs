//! A stream that retention truncated (issue 15): 1 MB segments, 3 MB at most, so the broker
//! drops the oldest segments as new ones roll. A stored offset or an `--offset N` below the
//! stream's first offset reads from the first one and says so; `--verify` checks each producer
//! from the first seq it reads instead of counting everything retention removed as gaps.

use rabbitmq_stream_client::{Client, ClientOptions};

use crate::util::{runtime, summary_of, wait_until, TestStream};

/// Writes 1,000 updates (producer `early`), lets consumer `n` store offset 99, then 100,000
/// more (producer `late`, ~17 MB) so that `early`'s segments are gone; returns the stream's
/// first offset now.
fn truncated_stream(stream: &TestStream) -> u64 {
    let retention = [
        "--max-length-bytes",
        "3mb",
        "--max-segment-size-bytes",
        "1mb",
    ];
    stream.run_json(
        &[
            &["produce", "--count", "1000", "--producer-name", "early"][..],
            &retention,
        ]
        .concat(),
    );
    stream.run_json(&[
        "consume", "--offset", "first", "--count", "100", "--name", "n",
    ]);
    assert_eq!(stream.stored_offset("n"), Some(99));
    stream.run_json(&["produce", "--count", "100000", "--producer-name", "late"]);
    let mut first = 0;
    wait_until("retention removes the first segments", || {
        let read = stream.run_json(&["consume", "--offset", "first", "--count", "1"]);
        first = read["first_offset"].as_u64().unwrap();
        first > 1_000
    });
    first
}

/// Stores `offset` for consumer `name` with the client crate and waits until the broker has it.
fn store_offset(stream: &TestStream, name: &str, offset: u64) {
    runtime().block_on(async {
        let client = Client::connect(ClientOptions::default()).await.unwrap();
        client
            .store_offset(name, &stream.name, offset)
            .await
            .unwrap();
        let _ = client.close().await;
    });
    wait_until("the broker stores the offset", || {
        stream.stored_offset(name) == Some(offset)
    });
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn reading_below_a_truncated_streams_first_offset_starts_at_the_first_and_says_so() {
    let stream = TestStream::new("retention");
    let first = truncated_stream(&stream);

    // The stored offset (99) is below the first offset now. The broker may also have dropped
    // it with the segments (it keeps offsets only for what the stream still holds): then a
    // clear line says that retention may be why, and the test stores 99 again.
    if stream.stored_offset("n").is_none() {
        let output = stream.run(&["consume", "--offset", "stored", "--name", "n"]);
        let stderr = stderr_of(&output);
        assert!(!output.status.success(), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("consumer 'n' has no offset stored")
                && stderr.contains("retention removed"),
            "{stderr}"
        );
        store_offset(&stream, "n", 99);
    }
    let output = stream.run(&[
        "--json", "consume", "--offset", "stored", "--name", "n", "--count", "10",
    ]);
    let read = summary_of(&output);
    assert_eq!(read["first_offset"], first, "{read}");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&format!(
            "no messages at offsets 100…{} (removed by retention",
            first - 1
        )) && stderr.contains(&format!("reading from offset {first}")),
        "{stderr}"
    );
    assert_eq!(stream.stored_offset("n"), Some(first + 9));

    let output = stream.run(&["--json", "consume", "--offset", "500", "--count", "10"]);
    let read = summary_of(&output);
    assert!(read["first_offset"].as_u64().unwrap() > 500, "{read}");
    assert_eq!(read["first_offset"], first, "{read}");
    assert!(
        stderr_of(&output).contains(&format!("no messages at offsets 500…{}", first - 1)),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn verify_on_a_truncated_stream_checks_each_producer_from_the_first_seq_read() {
    let stream = TestStream::new("retention-verify");
    let first = truncated_stream(&stream);

    let output = stream.run(&["--json", "consume", "--offset", "first", "--verify"]);
    let read = summary_of(&output);
    assert_eq!(read["first_offset"], first, "{read}");
    assert_eq!(read["verify"]["ok"], true, "{read}");
    let producers = read["verify"]["producers"].as_array().unwrap();
    // `early` (offsets 0…999) is gone with its segments; `late` is there from part way.
    assert_eq!(producers.len(), 1, "{read}");
    let late = &producers[0];
    assert_eq!(late["producer"], "late", "{read}");
    assert_eq!(
        (late["gaps"].as_u64(), late["duplicates"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(late["last_seq"], 99_999, "{read}");
    assert_eq!(
        late["first_seq"].as_u64().unwrap() + late["distinct"].as_u64().unwrap(),
        100_000,
        "{read}"
    );
    assert!(late["first_seq"].as_u64().unwrap() > 0, "{read}");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&format!("no messages at offsets 0…{}", first - 1))
            && stderr.contains("--verify checks each producer from the first seq read"),
        "{stderr}"
    );
}

/// `--verify` on a super stream whose partitions retention truncated: each partition holds its
/// producers' updates only from some seq on, and the one start rule checks each producer from
/// the highest such start, so the removed heads are not reported as gaps (they were, when the
/// super-stream path checked from seq 0 whenever --offset first was asked).
#[test]
fn super_stream_verify_on_truncated_partitions_reports_no_false_gaps() {
    let ss = crate::util::TestSuperStream::new("truncated");
    let retention = [
        "--max-length-bytes",
        "3mb",
        "--max-segment-size-bytes",
        "1mb",
    ];
    let args = [
        &["produce", "--count", "120000", "--producer-name", "late"][..],
        &["--partitions", "3"],
        &retention,
    ]
    .concat();
    let produced = ss.run_json(&args);
    assert_eq!(produced["confirmed"], 120_000, "{produced}");
    wait_until("retention removes every partition's first segments", || {
        let read = ss.run_json(&["consume", "--offset", "first", "--count-per-partition", "3"]);
        read["partitions"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["first_offset"].as_u64() > Some(0)))
    });
    let verified = ss.run_json(&["consume", "--offset", "first", "--verify"]);
    assert_eq!(verified["verify"]["ok"], true, "{verified}");
    let producer = &verified["verify"]["producers"][0];
    assert_eq!(producer["gaps"], 0, "{verified}");
    assert!(producer["first_seq"].as_u64() > Some(0), "{verified}");
    assert_eq!(producer["last_seq"], 119_999, "{verified}");
}
