//! The core loop: what `produce` writes, `consume` reads back, from every kind of offset.

use crate::util::{rfc3339_now, runtime, wait_summary, TestStream};

const LATENCY_KEYS: [&str; 8] = ["count", "min", "mean", "p50", "p90", "p99", "p999", "max"];

#[test]
fn produce_then_consume_from_first_reads_everything_in_order() {
    let stream = TestStream::new("roundtrip");
    let produced = stream.produce(100_000);
    assert_eq!(produced["messages"], 100_000);
    assert_eq!(produced["failed"], 0);

    let consumed = stream.run_json(&["consume", "--offset", "first"]);
    assert_eq!(consumed["messages"], 100_000, "{consumed}");
    assert_eq!(consumed["first_offset"], 0);
    assert_eq!(consumed["last_offset"], 99_999);
    assert_eq!(consumed["not_inventory_updates"], 0, "every message parses");
    assert_eq!(consumed["bytes"], produced["bytes"]);
    assert_eq!(consumed["latency_us"]["count"], 100_000);

    // What is in the stream, read independently with the client crate: seq 0..99,999 in order,
    // each message its JSON body and the `producer` property (the lean layout).
    let stored = stream.read_with_client(100_000);
    let producer = format!("String({:?})", produced["producer"].as_str().unwrap());
    for (expected, message) in (0..100_000u64).zip(&stored) {
        assert_eq!(message.offset, expected);
        assert_eq!(message.update["seq"], expected, "{}", message.update);
        assert_eq!(message.content_type, None);
        assert_eq!(
            message.properties,
            [("producer".to_string(), producer.clone())].into()
        );
    }
}

/// `--properties full` adds the content type and `product_id` and `event` (the body's own);
/// `--filter-values` adds `product_id` to the lean layout, for other clients' post-filters.
#[test]
fn properties_full_and_filter_values_add_the_properties_readers_route_on() {
    for (extra, content_type, keys) in [
        (
            &["--properties", "full"][..],
            Some("application/json"),
            &["event", "producer", "product_id"][..],
        ),
        (
            &["--filter-values"][..],
            None,
            &["producer", "product_id"][..],
        ),
    ] {
        let stream = TestStream::new("properties");
        let args = [&["produce", "--count", "50"][..], extra].concat();
        let produced = stream.run_json(&args);
        assert_eq!(produced["confirmed"], 50, "{produced}");
        for message in stream.read_with_client(50) {
            assert_eq!(message.content_type.as_deref(), content_type, "{extra:?}");
            let found: Vec<&str> = message.properties.keys().map(String::as_str).collect();
            assert_eq!(found, keys, "{extra:?}");
            let product_id = format!("String(\"{}\")", message.update["product_id"]);
            assert_eq!(message.properties["product_id"], product_id, "{extra:?}");
            if keys.contains(&"event") {
                let event = format!("String({})", message.update["event"]);
                assert_eq!(message.properties["event"], event, "{extra:?}");
            }
        }
        let consumed = stream.run_json(&["consume", "--offset", "first", "--verify"]);
        assert_eq!(consumed["messages"], 50, "{consumed}");
        assert_eq!(consumed["verify"]["ok"], true, "{consumed}");
    }
}

/// The keys every command's JSON summary has (README, "JSON output").
const SUMMARY_KEYS: [&str; 8] = [
    "command",
    "stream",
    "messages",
    "bytes",
    "elapsed_s",
    "msg_per_s",
    "mb_per_s",
    "latency_us",
];

fn assert_keys(summary: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        assert!(summary.get(key).is_some(), "summary lacks {key}: {summary}");
    }
}

#[test]
fn json_summaries_have_every_documented_key() {
    let stream = TestStream::new("json");
    let produced = stream.produce(2_500);
    assert_keys(
        &produced,
        &[&SUMMARY_KEYS[..], &["confirmed", "failed"]].concat(),
    );
    assert_eq!(produced["command"], "produce");
    assert_eq!(produced["stream"], stream.name.as_str());
    assert_eq!(produced["confirmed"], 2_500);
    assert_eq!(produced["latency_us"]["count"], 2_500);

    let consumed = stream.run_json(&["consume", "--offset", "first"]);
    let read_keys = [
        "offset",
        "first_offset",
        "last_offset",
        "not_inventory_updates",
    ];
    assert_keys(&consumed, &[&SUMMARY_KEYS[..], &read_keys].concat());
    assert_eq!(consumed["offset"], "first");
    for summary in [&produced, &consumed] {
        assert_keys(&summary["latency_us"], &LATENCY_KEYS);
    }
}

#[test]
fn next_reads_only_what_is_published_after_subscribing() {
    let stream = TestStream::new("next");
    stream.produce(500);
    let consumer = stream.spawn_until(
        &[
            "consume",
            "--offset",
            "next",
            "--count",
            "1000",
            "--duration",
            "60s",
        ],
        "reading stream",
    );
    stream.produce(1_000);
    let consumed = wait_summary(consumer);
    assert_eq!(consumed["messages"], 1_000, "{consumed}");
    assert_eq!(
        consumed["first_offset"], 500,
        "nothing from before the subscription"
    );
    assert_eq!(consumed["last_offset"], 1_499);
}

#[test]
fn last_reads_the_last_chunk_only() {
    let stream = TestStream::new("last");
    stream.produce(10_000);
    let consumed = stream.run_json(&["consume", "--offset", "last", "--duration", "3s"]);
    let messages = consumed["messages"].as_u64().unwrap();
    let first = consumed["first_offset"].as_u64().unwrap();
    assert_eq!(
        first,
        stream.last_chunk_start(),
        "from the start of the last chunk, as the client crate reads it: {consumed}"
    );
    assert!(messages >= 1, "{consumed}");
    assert_eq!(consumed["last_offset"], 9_999);
    assert_eq!(messages, 10_000 - first, "one contiguous tail: {consumed}");
}

#[test]
fn numeric_offset_starts_exactly_there() {
    let stream = TestStream::new("offset");
    stream.produce(10_000);
    let consumed = stream.run_json(&["consume", "--offset", "1234"]);
    assert_eq!(consumed["first_offset"], 1_234, "{consumed}");
    assert_eq!(consumed["last_offset"], 9_999);
    assert_eq!(consumed["messages"], 10_000 - 1_234);

    let beyond = stream.run_json(&["consume", "--offset", "20000"]);
    assert_eq!(beyond["messages"], 0, "nothing after the end: {beyond}");
}

#[test]
fn timestamp_offset_starts_at_messages_stored_after_it() {
    let stream = TestStream::new("timestamp");
    stream.produce(1_000);
    // Time itself is the subject: the broker's chunk timestamps (taken when it writes them) and
    // the test's clock reading `between` must fall clearly apart, so these sleeps wait on no
    // signal; there is none for "time has passed".
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    let between = rfc3339_now();
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    stream.produce(1_000);
    let consumed = stream.run_json(&["consume", "--offset", &between]);
    assert_eq!(consumed["first_offset"], 1_000, "{consumed}");
    assert_eq!(consumed["messages"], 1_000);
    assert_eq!(consumed["offset"], between.as_str());
}

#[test]
fn consume_stops_at_count() {
    let stream = TestStream::new("count");
    stream.produce(5_000);
    let consumed = stream.run_json(&["consume", "--offset", "first", "--count", "1234"]);
    assert_eq!(consumed["messages"], 1_234, "{consumed}");
    assert_eq!(consumed["last_offset"], 1_233);
}

#[test]
fn reading_does_not_remove_messages() {
    let stream = TestStream::new("replay");
    stream.produce(3_000);
    for _ in 0..2 {
        let consumed = stream.run_json(&["consume", "--offset", "first"]);
        assert_eq!(consumed["messages"], 3_000, "{consumed}");
    }
}

#[test]
fn offset_past_the_end_reads_nothing_and_ends() {
    let stream = TestStream::new("past-end");
    let created = stream.run(&["produce", "--count", "1", "--json"]);
    assert!(created.status.success());
    let consumed = stream.run_json(&["consume", "--offset", "2"]);
    assert_eq!(consumed["messages"], 0, "{consumed}");
    assert_eq!(consumed["first_offset"], serde_json::Value::Null);
}

#[test]
fn truly_empty_stream_reads_nothing_and_ends() {
    let stream = TestStream::new("really-empty");
    let env = stream.environment();
    runtime()
        .block_on(env.stream_creator().create(&stream.name))
        .unwrap();
    let consumed = stream.run_json(&["consume", "--offset", "first"]);
    assert_eq!(consumed["messages"], 0, "{consumed}");
    assert_eq!(consumed["last_offset"], serde_json::Value::Null);
}

#[test]
fn rate_paces_publishing() {
    // 20,000 at 10,000/s: the last of 20 batches is due 1.9 s after the first. Only a lower
    // bound is checked (a slow machine takes longer, never shorter).
    let stream = TestStream::new("rate");
    let started = std::time::Instant::now();
    let summary = stream.run_json(&["produce", "--count", "20000", "--rate", "10000"]);
    assert_eq!(summary["confirmed"], 20_000, "{summary}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1_900),
        "took {:?}",
        started.elapsed()
    );
}

/// `consume --offset next` started before its producer: the wait for the first message is
/// reported apart (`waited_s`), and the reading's elapsed time (so its rate) leaves it out.
#[test]
fn a_consumer_waiting_for_its_producer_reports_the_wait_apart_from_the_rate() {
    let stream = TestStream::new("consume-wait");
    stream.produce(10);
    let started = std::time::Instant::now();
    let consumer = stream.spawn_until(
        &["consume", "--offset", "next", "--count", "20000"],
        "reading stream",
    );
    // The producer comes 2 s after the consumer subscribed: that is the wait to report.
    std::thread::sleep(std::time::Duration::from_millis(2000));
    stream.produce(20_000);
    let summary = wait_summary(consumer);
    let whole_run = started.elapsed().as_secs_f64();
    assert_eq!(summary["messages"], 20_000, "{summary}");
    let waited = summary["waited_s"].as_f64().unwrap();
    let elapsed = summary["elapsed_s"].as_f64().unwrap();
    assert!(waited >= 2.0, "the wait is reported: {summary}");
    assert!(
        waited + elapsed <= whole_run,
        "the reading's time leaves the wait out: {summary} (whole run {whole_run:.3} s)"
    );
    // The rate is the messages over the reading alone.
    let rate = summary["msg_per_s"].as_f64().unwrap();
    let reading_rate = 20_000.0 / elapsed;
    assert!(
        (rate - reading_rate).abs() <= reading_rate * 0.01 + 1.0,
        "msg_per_s is messages / elapsed_s, without the wait: {summary}"
    );
    assert!(
        rate > 20_000.0 / (waited + elapsed) * 1.2,
        "the wait would have lowered it: {summary}"
    );
}
