//! Nothing lost, nothing duplicated: deduplicated re-runs after a crash or Ctrl-C, and
//! `consume --verify` to prove it.

use crate::util::{assert_exactly, send_signal, wait_until, TestStream};

#[test]
fn every_produce_run_publishes_new_updates() {
    let stream = TestStream::new("rerun-new");
    let first = stream.run_json(&["produce", "--count", "1000"]);
    let second = stream.run_json(&["produce", "--count", "1000"]);
    for run in [&first, &second] {
        assert_eq!(run["confirmed"], 1_000, "{run}");
        assert_eq!(run["skipped"], 0, "{run}");
    }
    assert_ne!(first["producer"], second["producer"]);
    let verified = stream.verify();
    assert_eq!(verified["messages"], 2_000, "{verified}");
    assert_eq!(verified["verify"]["ok"], true, "{verified}");
    for producer in verified["verify"]["producers"].as_array().unwrap() {
        assert_eq!(producer["distinct"], 1_000, "{verified}");
    }
}

#[test]
fn a_named_producer_continues_its_seq_and_resume_sends_only_what_is_missing() {
    let stream = TestStream::new("dedup");
    let named = |count: &str, extra: &[&str]| stream.produce_as("shop", count, extra);
    assert_eq!(named("1000", &[])["confirmed"], 1_000);
    // Without --resume: 500 new updates, seq 1000..1499.
    let more = named("500", &[]);
    assert_eq!(
        (more["confirmed"].as_u64(), more["skipped"].as_u64()),
        (Some(500), Some(0)),
        "{more}"
    );
    // --resume: --count is the name's total.
    let resumed = named("2000", &["--resume"]);
    assert_eq!(resumed["skipped"], 1_500, "{resumed}");
    assert_eq!(resumed["messages"], 500);
    let again = named("2000", &["--resume"]);
    assert_eq!(again["messages"], 0, "{again}");
    assert_exactly(&stream.verify(), 2_000);
}

#[test]
fn produce_killed_with_sigkill_then_rerun_stores_each_update_once() {
    let stream = TestStream::new("sigkill");
    let args = [
        "produce",
        "--producer-name",
        "sigkill",
        "--resume",
        "--count",
        "1000000",
        // Paced (10 s), so the kill lands mid-run however fast this machine publishes and
        // however slowly a loaded broker answers the test's polls (at 4 s a loaded run once
        // stored everything before the kill landed).
        "--rate",
        "100000",
    ];
    // Killed once the broker holds some of the first run's updates.
    let rerun = stream.crash_then_rerun("sigkill", &args, 1_000_000);
    assert_eq!(rerun["failed"], 0);
    assert_exactly(&stream.verify(), 1_000_000);
}

/// Starts a long produce, signals it once it is publishing, and returns its exit code and
/// JSON summary.
fn signal_produce(stream: &TestStream, signal: &str) -> (Option<i32>, serde_json::Value) {
    let (child, stderr) = stream.spawn_watched(
        &[
            "produce",
            "--count",
            "5000000",
            "--producer-name",
            "signalled",
        ],
        "publishing",
    );
    wait_until("the broker stores some updates", || {
        stream
            .publisher_sequence("signalled")
            .is_some_and(|seq| seq > 0)
    });
    send_signal(&child, signal);
    let output = child.wait_with_output().unwrap();
    let stderr = stderr.text();
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("a JSON summary ({e}); stderr: {stderr}"));
    (output.status.code(), summary)
}

fn assert_interrupted_cleanly(stream: &TestStream, summary: &serde_json::Value) {
    assert_eq!(summary["interrupted"], true, "{summary}");
    let confirmed = summary["confirmed"].as_u64().unwrap();
    assert!(confirmed > 0 && confirmed < 5_000_000, "{summary}");
    assert_eq!(
        summary["failed"], 0,
        "outstanding confirms arrived: {summary}"
    );
    // Everything confirmed is in the stream, once.
    let verified = stream.verify();
    assert!(
        verified["messages"].as_u64().unwrap() >= confirmed,
        "{verified}"
    );
    assert_eq!(verified["verify"]["ok"], true, "{verified}");
}

#[test]
fn ctrl_c_during_produce_reports_what_was_confirmed_and_exits_130() {
    let stream = TestStream::new("sigint");
    let (code, summary) = signal_produce(&stream, "INT");
    assert_eq!(code, Some(130), "{summary}");
    assert_interrupted_cleanly(&stream, &summary);
}

#[test]
fn sigterm_during_produce_reports_what_was_confirmed_and_exits_143() {
    let stream = TestStream::new("sigterm");
    let (code, summary) = signal_produce(&stream, "TERM");
    assert_eq!(code, Some(143), "{summary}");
    assert_interrupted_cleanly(&stream, &summary);
}

#[test]
fn verify_finds_duplicates_and_exits_non_zero() {
    let stream = TestStream::new("verify-dup");
    // Without deduplication, two runs under one name write the same seqs.
    for _ in 0..2 {
        let run = stream.run_json(&[
            "produce",
            "--count",
            "100",
            "--producer-name",
            "dup",
            "--no-dedup",
        ]);
        assert_eq!(run["confirmed"], 100, "{run}");
    }
    let output = stream.run(&["--json", "consume", "--offset", "first", "--verify"]);
    assert_eq!(output.status.code(), Some(1));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["verify"]["ok"], false);
    assert_eq!(
        summary["verify"]["producers"][0]["duplicates"], 100,
        "{summary}"
    );
}
