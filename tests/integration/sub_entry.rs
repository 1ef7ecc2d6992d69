//! Sub-entry batching: every codec round trip, dedup per batch, and streams that mix simple
//! entries with sub-entry batches, including ones another client (Python's rstream) wrote.

use crate::util::{invstream, TestStream};

fn assert_verified(verified: &serde_json::Value, count: u64) {
    assert_eq!(verified["messages"], count, "{verified}");
    assert_eq!(verified["verify"]["ok"], true, "{verified}");
}

#[test]
fn every_compression_round_trips() {
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let stream = TestStream::new(&format!("sub-entry-{codec}"));
        let produced = stream.run_json(&[
            "produce",
            "--count",
            "20000",
            "--sub-entry-size",
            "100",
            "--compression",
            codec,
        ]);
        assert_eq!(produced["confirmed"], 20_000, "{codec}: {produced}");
        let verified = stream.verify();
        assert_verified(&verified, 20_000);
        assert_eq!(verified["last_offset"], 19_999, "{codec}: {verified}");
    }
}

#[test]
fn rerunning_a_sub_entry_produce_sends_only_what_is_missing() {
    let stream = TestStream::new("sub-entry-dedup");
    let args = |count: &'static str| {
        [
            "produce",
            "--producer-name",
            "batched",
            "--resume",
            "--count",
            count,
            "--sub-entry-size",
            "64",
            "--compression",
            "lz4",
        ]
    };
    assert_eq!(stream.run_json(&args("1000"))["confirmed"], 1_000);
    let second = stream.run_json(&args("2500"));
    assert_eq!(second["skipped"], 1_000, "{second}");
    assert_eq!(second["confirmed"], 1_500, "{second}");
    assert_eq!(stream.run_json(&args("2500"))["messages"], 0);
    assert_verified(&stream.verify(), 2_500);
}

#[test]
fn a_stream_mixing_simple_entries_and_compressed_batches_reads_in_order() {
    let stream = TestStream::new("sub-entry-mixed");
    let produce = |name: &str, extra: &[&str]| {
        assert_eq!(stream.produce_as(name, "3000", extra)["confirmed"], 3_000);
    };
    produce("simple", &[]);
    produce(
        "gzip",
        &["--sub-entry-size", "100", "--compression", "gzip"],
    );
    produce("again-simple", &[]);
    let verified = stream.verify();
    assert_verified(&verified, 9_000);
    assert_eq!(verified["first_offset"], 0, "{verified}");
    assert_eq!(verified["last_offset"], 8_999, "{verified}");
    let producers = verified["verify"]["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 3, "{verified}");
    // From an offset inside a batch: nothing before it is delivered.
    let from_middle = stream.run_json(&["consume", "--offset", "4550", "--verify"]);
    assert_eq!(from_middle["first_offset"], 4_550, "{from_middle}");
    assert_eq!(from_middle["messages"], 4_450, "{from_middle}");
}

#[test]
fn a_stream_another_client_wrote_with_sub_entries_is_read_whole() {
    let stream = TestStream::new("sub-entry-rstream");
    let python = std::env::var("INVSTREAM_PYTHON").unwrap_or_else(|_| {
        panic!("INVSTREAM_PYTHON is not set: scripts/test.sh makes a Python with rstream")
    });
    let output = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rstream_write.py"
        ))
        .arg(&stream.name)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "rstream_write.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1100");
    let verified = stream.verify();
    assert_verified(&verified, 1_100);
    assert_eq!(verified["not_inventory_updates"], 0, "{verified}");
}

#[test]
fn compression_without_sub_entries_is_a_usage_error() {
    let output = invstream(&["produce", "--compression", "gzip"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("--sub-entry-size"), "{stderr}");
}
