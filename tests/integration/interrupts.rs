//! Ctrl-C during `consume` and `bench`: each stops cleanly once it is well under way; SIGTERM
//! during a quiet `produce` still says how to finish it.

use crate::util::{assert_stream_deleted, send_signal, spawn_piped, wait_until, TestStream};

#[test]
fn ctrl_c_during_consume_prints_the_summary_and_stores_the_offset() {
    let stream = TestStream::new("consume-sigint");
    stream.produce(5_000);
    // 1 ms a message: 5 s to the end, so the signal lands mid-stream.
    let (child, stderr) = stream.spawn_watched(
        &[
            "consume",
            "--name",
            "reader",
            "--offset",
            "first",
            "--slow",
            "reader=1ms",
            "--store-every",
            "100",
        ],
        "reading stream",
    );
    wait_until("the reader stored an offset past 300", || {
        stream.stored_offset("reader").is_some_and(|o| o >= 300)
    });
    send_signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    let stderr = stderr.text();
    assert_eq!(output.status.code(), Some(0), "consume exits 0: {stderr}");
    let first: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("a JSON summary ({e}); stderr: {stderr}"));
    assert_eq!(first["interrupted"], true, "{first}");
    assert_eq!(first["first_offset"], 0, "{first}");
    let last = first["last_offset"].as_u64().unwrap();
    assert!((300..4_999).contains(&last), "stopped mid-stream: {first}");
    assert_eq!(first["messages"], last + 1, "{first}");
    assert_eq!(stream.stored_offset("reader"), Some(last), "{first}");

    // `--offset stored` goes on right after the last message read.
    let rest = stream.run_json(&["consume", "--name", "reader", "--offset", "stored"]);
    assert_eq!(rest["first_offset"], last + 1, "{rest}");
    assert_eq!(rest["last_offset"], 4_999, "{rest}");
    assert_eq!(rest["messages"], 4_999 - last, "{rest}");
}

#[test]
fn ctrl_c_during_bench_deletes_its_stream_and_exits_130() {
    let stream = TestStream::new("bench-sigint");
    let (child, stderr) = stream.spawn_watched(
        &["bench", "--duration", "60s", "--rate", "5000"],
        // A per-second line: producers and consumers are running.
        "published",
    );
    send_signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    let stderr = stderr.text();
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("a JSON summary ({e}); stderr: {stderr}"));
    assert_eq!(summary["interrupted"], true, "{summary}");
    assert!(summary["confirmed"].as_u64().unwrap() > 0, "{summary}");
    let bench_stream = summary["stream"].as_str().unwrap();
    assert!(bench_stream.starts_with(&stream.name), "{summary}");
    assert_stream_deleted(bench_stream);
}

/// `-q` silences status lines, but not the command that finishes an interrupted produce: it is
/// what the user needs next. SIGTERM exits 143.
#[test]
fn sigterm_during_a_quiet_produce_still_prints_the_resume_command() {
    let stream = TestStream::new("quiet-sigterm");
    let child = spawn_piped(&[
        "-q",
        "--stream",
        &stream.name,
        "produce",
        "--producer-name",
        "quiet",
        "--count",
        "100000",
        "--rate",
        "5000",
    ]);
    wait_until("the broker holds some of the run's updates", || {
        stream.publisher_sequence("quiet").is_some_and(|s| s > 0)
    });
    send_signal(&child, "TERM");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "only the resume command: {stderr}");
    assert!(
        lines[0].starts_with("invstream: to send the rest exactly once, run: invstream ")
            && lines[0].contains("--resume"),
        "{stderr}"
    );
}
