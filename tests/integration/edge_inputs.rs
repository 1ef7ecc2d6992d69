//! Edge inputs (issue 15): a `seq` near `u64::MAX` under `--verify`, a `serve` port already in
//! use, `--plot`/`--hdr-log` paths that cannot be written, and an `--input` that is a directory
//! or missing: bounded memory and one-line errors.

use std::process::{Command, Output, Stdio};

use assert_cmd::assert::OutputAssertExt;

use crate::util::{assert_one_line_error, assert_stream_deleted, binary, TestStream};

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A directory of this test's own (removed on drop), with a way to name files in it.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new(name: &str) -> Self {
        TempDir(
            tempfile::Builder::new()
                .prefix(&format!("invstream-{name}-"))
                .tempdir()
                .unwrap(),
        )
    }

    fn file(&self, name: &str) -> String {
        self.0.path().join(name).to_str().unwrap().to_string()
    }
}

#[test]
fn verify_with_a_seq_near_u64_max_stays_small_and_reports_the_jump() {
    let stream = TestStream::new("huge-seq");
    let dir = TempDir::new("huge-seq");
    let input = dir.file("updates.ndjson");
    let huge: u64 = 18_446_744_073_709_551_000;
    let lines: Vec<String> = [0, 1, 2, huge, huge + 1]
        .iter()
        .map(|seq| {
            format!(
                r#"{{"seq":{seq},"product_id":7,"sku":"SKU-7","warehouse":"AMS-1","event":"sold","quantity_delta":-1,"stock_level":3}}"#
            )
        })
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let summary = stream.run_json(&["produce", "--input", &input, "--producer-name", "huge"]);
    assert_eq!(summary["confirmed"], 5, "{summary}");

    // Peak resident size through /usr/bin/time: a bitset up to the seq would be 2^58 words.
    let output = Command::new("/usr/bin/time")
        .args(["-f", "peak_rss_kb=%M"])
        .arg(binary())
        .args([
            "--json",
            "--stream",
            &stream.name,
            "consume",
            "--offset",
            "first",
            "--verify",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    let peak_kb: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kb="))
        .unwrap_or_else(|| panic!("no peak size in: {stderr}"))
        .trim()
        .parse()
        .unwrap();
    assert!(
        peak_kb < 200_000,
        "peak resident size {peak_kb} kB: {stderr}"
    );
    // Gaps: exit 1, with the report (every seq from 0, as this read starts at offset 0).
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the JSON summary");
    let verify = &report["verify"];
    assert_eq!(verify["ok"], false, "{report}");
    let p = &verify["producers"][0];
    assert_eq!(p["producer"], "huge", "{report}");
    assert_eq!(p["distinct"], 5, "{report}");
    assert_eq!(p["duplicates"], 0, "{report}");
    assert_eq!(p["first_seq"], 0, "{report}");
    assert_eq!(p["last_seq"].as_u64(), Some(huge + 1), "{report}");
    assert_eq!(p["gaps"].as_u64(), Some(huge + 2 - 5), "{report}");
    let first_gaps: Vec<u64> = (3..13).collect();
    assert_eq!(p["first_gaps"], serde_json::json!(first_gaps), "{report}");
}

#[test]
fn serve_on_a_port_in_use_is_a_one_line_error() {
    let stream = TestStream::new("serve-port-used");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let output = stream.run(&["serve", "--listen", &listen]);
    assert_one_line_error(&output, 1, &format!("cannot listen on {listen}"));
    output
        .assert()
        .stderr(predicates::str::contains("--listen"));
}

#[test]
fn plot_and_hdr_log_to_unwritable_paths_are_one_line_errors_before_the_bench_runs() {
    let stream = TestStream::new("bench-unwritable");
    let dir = TempDir::new("bench-unwritable");
    let regular = dir.file("a-file");
    std::fs::write(&regular, "").unwrap();
    let under_a_file = format!("{regular}/bench.svg");
    for (flag, path) in [
        ("--plot", under_a_file.as_str()),
        ("--hdr-log", "/dev/null/x.hlog"),
    ] {
        let output = stream.run(&["bench", "--count", "2000", flag, path]);
        assert_one_line_error(&output, 1, &format!("{flag} {path}: "));
        assert_one_line_error(&output, 1, "is not a directory");
        // Refused before a bench stream was made, let alone a whole run done.
        assert!(!stderr_of(&output).contains("created stream"));
    }
}

#[test]
fn an_input_that_is_a_directory_or_missing_is_a_one_line_error() {
    let stream = TestStream::new("input-not-a-file");
    let dir = TempDir::new("input-not-a-file");
    let missing = dir.file("missing.ndjson");
    let directory = dir.0.path().to_str().unwrap();
    let output = stream.run(&["produce", "--input", directory]);
    assert_one_line_error(&output, 1, &format!("--input {directory} is a directory"));
    let output = stream.run(&["produce", "--input", &missing]);
    assert_one_line_error(
        &output,
        1,
        &format!("cannot read --input {missing}: No such file or directory"),
    );
    // Found before anything connected: the stream was not created.
    assert_stream_deleted(&stream.name);
}
