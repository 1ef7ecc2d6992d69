//! First-run semantics (issue 13): every produce run publishes new updates under a name of its
//! own, a given `--producer-name` continues, `--resume` finishes a run exactly once (also from
//! the command printed on Ctrl-C), two runs under one given name are reported, output errors
//! never panic, `RUST_LOG` turns logs on, and `consume --product` is right on streams written
//! without filter values.

use std::fs::File;
use std::process::{Command, Output, Stdio};

use assert_cmd::assert::OutputAssertExt;
use predicates::prelude::*;
use predicates::str::{contains, starts_with};

use crate::util::{binary, send_signal, summary_of, wait_summary, TestStream};

/// The verify report's producers, checked for no gap and no duplicate: (name, distinct).
fn producers(verified: &serde_json::Value) -> Vec<(String, u64)> {
    assert_eq!(verified["verify"]["ok"], true, "{verified}");
    let producers = verified["verify"]["producers"].as_array().unwrap();
    producers
        .iter()
        .map(|p| {
            assert_eq!(p["duplicates"], 0, "{verified}");
            assert_eq!(p["gaps"], 0, "{verified}");
            (
                p["producer"].as_str().unwrap().to_string(),
                p["distinct"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn next_reads_only_the_second_runs_updates() {
    let stream = TestStream::new("fr-next");
    let first = stream.run_json(&["produce", "--count", "3000"]);
    assert_eq!(first["confirmed"], 3_000, "{first}");
    let consumer = stream.spawn_until(
        &[
            "consume",
            "--offset",
            "next",
            "--count",
            "3000",
            "--duration",
            "60s",
            "--verify",
        ],
        "reading stream",
    );
    let second = stream.run_json(&["produce", "--count", "3000"]);
    assert_eq!(second["confirmed"], 3_000, "{second}");
    assert_eq!(
        second["skipped"], 0,
        "a new run sends all its updates: {second}"
    );
    assert_ne!(first["producer"], second["producer"]);

    let consumed = wait_summary(consumer);
    assert_eq!(consumed["messages"], 3_000, "{consumed}");
    assert_eq!(consumed["first_offset"], 3_000, "{consumed}");
    assert_eq!(
        producers(&consumed),
        vec![(second["producer"].as_str().unwrap().to_string(), 3_000)],
        "only the second run's updates, each once: {consumed}"
    );
}

#[test]
fn two_concurrent_default_runs_both_publish_everything() {
    let stream = TestStream::new("fr-concurrent");
    // Paced (2 s each), so the two runs overlap however fast this machine publishes.
    let args = ["produce", "--count", "200000", "--rate", "100000"];
    let (a, b) = (stream.start(&args), stream.start(&args));
    let (a, b) = (wait_summary(a), wait_summary(b));
    for run in [&a, &b] {
        assert_eq!(run["confirmed"], 200_000, "{run}");
        assert_eq!(run["failed"], 0, "{run}");
    }
    assert_ne!(a["producer"], b["producer"]);

    let verified = stream.verify();
    assert_eq!(verified["messages"], 400_000, "{verified}");
    let mut found = producers(&verified);
    found.sort();
    let mut expected = vec![
        (a["producer"].as_str().unwrap().to_string(), 200_000),
        (b["producer"].as_str().unwrap().to_string(), 200_000),
    ];
    expected.sort();
    assert_eq!(found, expected, "{verified}");
}

#[test]
fn a_given_name_written_by_two_runs_at_once_is_reported() {
    let stream = TestStream::new("fr-same-name");
    // A slow run (8 s)…
    let (slow, slow_log) = stream.spawn_watched(
        &[
            "produce",
            "--producer-name",
            "same",
            "--count",
            "200000",
            "--rate",
            "25000",
        ],
        "publishing",
    );
    // …that has stored something (so the second run's seq starts after it)…
    let first = stream.run_json(&["consume", "--offset", "first", "--count", "1"]);
    assert_eq!(first["messages"], 1, "{first}");
    // …and a fast one under the same name while it runs: it ends first and leaves the broker's
    // last id for the name beyond anything the slow run sent.
    let fast = stream.run(&[
        "--json",
        "produce",
        "--producer-name",
        "same",
        "--count",
        "200000",
    ]);
    let slow = slow.wait_with_output().unwrap();
    let slow_stderr = slow_log.text();
    let fast_stderr = stderr_of(&fast);

    let message = "another invstream run is publishing as producer 'same'";
    let reported: Vec<&str> = [(&slow, &slow_stderr), (&fast, &fast_stderr)]
        .into_iter()
        .filter(|(output, _)| !output.status.success())
        .map(|(output, stderr)| {
            assert_eq!(output.status.code(), Some(1), "{stderr}");
            let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(message)).collect();
            assert_eq!(lines.len(), 1, "one line says so: {stderr}");
            assert!(lines[0].starts_with("invstream: error: "), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            lines[0]
        })
        .collect();
    assert!(
        !reported.is_empty(),
        "neither run reported the other\nslow: {slow_stderr}\nfast: {fast_stderr}"
    );
}

#[test]
fn resume_finishes_a_run_exactly_once() {
    let stream = TestStream::new("fr-resume");
    let named = |count: &str, extra: &[&str]| stream.produce_as("r", count, extra);
    let first = named("1000", &[]);
    assert_eq!(first["confirmed"], 1_000, "{first}");
    assert_eq!(first["producer"], "r");
    let resumed = named("2500", &["--resume"]);
    assert_eq!(resumed["skipped"], 1_000, "{resumed}");
    assert_eq!(resumed["messages"], 1_500, "{resumed}");
    assert_eq!(resumed["confirmed"], 1_500, "{resumed}");
    let again = named("2500", &["--resume"]);
    assert_eq!(again["skipped"], 2_500, "{again}");
    assert_eq!(again["messages"], 0, "{again}");
    let verified = stream.verify();
    assert_eq!(verified["messages"], 2_500, "{verified}");
    assert_eq!(producers(&verified), vec![("r".to_string(), 2_500)]);
}

#[test]
fn ctrl_c_prints_the_command_that_finishes_the_run_exactly_once() {
    let stream = TestStream::new("fr-ctrl-c");
    // Paced (4 s), so the signal lands mid-run.
    let (child, log) = stream.spawn_watched(
        &[
            "produce",
            "--producer-name",
            "c",
            "--count",
            "100000",
            "--rate",
            "25000",
        ],
        "publishing",
    );
    send_signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    let stderr = log.text();
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let interrupted: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a JSON summary");
    assert_eq!(interrupted["interrupted"], true, "{interrupted}");
    assert!(
        interrupted["confirmed"].as_u64().unwrap() < 100_000,
        "{interrupted}"
    );

    let marker = "to send the rest exactly once, run: ";
    let line = stderr
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no finishing command on stderr:\n{stderr}"));
    let command = &line[line.find(marker).unwrap() + marker.len()..];
    assert!(
        command.contains("--resume") && command.contains("--producer-name"),
        "{command}"
    );
    let rest = command
        .strip_prefix("invstream ")
        .unwrap_or_else(|| panic!("the command starts with `invstream `: {command}"));
    // The printed command is shell-quoted: let a shell run it, with the test's binary.
    let bin = binary();
    let finish = Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' {rest}", bin.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let finished = summary_of(&finish);
    assert_eq!(
        finished["skipped"].as_u64().unwrap() + finished["messages"].as_u64().unwrap(),
        100_000,
        "{finished}"
    );
    let verified = stream.verify();
    assert_eq!(verified["messages"], 100_000, "{verified}");
    assert_eq!(producers(&verified), vec![("c".to_string(), 100_000)]);
}

/// `invstream --quiet --stream NAME ARGS…` with stdout on /dev/full.
fn into_dev_full(stream: &TestStream, args: &[&str]) -> Output {
    let full = File::create("/dev/full").expect("/dev/full opens");
    Command::new(binary())
        .args(["--quiet", "--stream", &stream.name])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// `invstream ARGS…` with stdout a pipe whose read end is already closed.
fn into_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn output_errors_are_one_line_and_a_closed_stdout_ends_quietly() {
    let stream = TestStream::new("fr-output");
    stream.produce(100);
    let commands: [&[&str]; 5] = [
        &["produce", "--count", "10"],
        &["consume", "--offset", "first"],
        &["--json", "consume", "--offset", "first"],
        &["consume", "--offset", "first", "--print"],
        &["bench", "--count", "1000"],
    ];
    for args in commands {
        // One line (not merely one after trimming), so not util::assert_one_line_error.
        let one_line = predicate::function(|stderr: &str| stderr.lines().count() == 1);
        into_dev_full(&stream, args)
            .assert()
            .append_context("args", format!("{args:?}"))
            .code(1)
            .stderr(
                one_line
                    .and(starts_with("invstream: error: "))
                    .and(contains("No space left on device"))
                    .and(contains("panicked").not()),
            );

        into_closed_pipe(&[&["--quiet", "--stream", &stream.name], args].concat())
            .assert()
            .append_context("args", format!("{args:?}"))
            .code(0)
            .stderr(contains("panicked").not().and(contains("error").not()));
    }
    for args in [&["--help"][..], &["produce", "--help"], &["--version"]] {
        into_closed_pipe(args)
            .assert()
            .append_context("args", format!("{args:?}"))
            .code(0)
            .stderr(predicates::str::is_empty());
    }
}

#[test]
fn rust_log_turns_on_logs_and_default_stderr_has_none() {
    let stream = TestStream::new("fr-logs");
    let run = |rust_log: Option<&str>| {
        let mut command = Command::new(binary());
        command
            .args(["--json", "--stream", &stream.name])
            .args(["produce", "--count", "10"])
            .stdin(Stdio::null())
            .env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
        stderr_of(&output)
    };
    let logged = run(Some("invstream=debug,rabbitmq_stream_client=info"));
    assert!(
        logged
            .lines()
            .any(|l| l.contains("DEBUG") && l.contains("invstream::broker::connection")),
        "invstream's own debug events: {logged}"
    );
    assert!(
        logged.lines().any(|l| l.contains("stream created")),
        "{logged}"
    );
    assert!(
        !logged.contains('\x1b'),
        "no colours into a pipe: {logged:?}"
    );

    let plain = run(None);
    assert!(!plain.is_empty());
    for line in plain.lines() {
        assert!(
            line.starts_with("invstream: "),
            "only status lines: {plain}"
        );
    }
}

#[test]
fn product_filter_on_a_stream_written_without_filter_values_is_exact() {
    let stream = TestStream::new("fr-product");
    let produced = stream.run_json(&["produce", "--count", "5000", "--products", "20"]);
    assert_eq!(produced["confirmed"], 5_000, "{produced}");
    let printed = |extra: &[&str]| -> Vec<(u64, u64)> {
        let args = [&["consume", "--offset", "first", "--print"][..], extra].concat();
        let output = stream.run(&args);
        assert!(output.status.success(), "{}", stderr_of(&output));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| {
                let message: serde_json::Value = serde_json::from_str(line).unwrap();
                (
                    message["offset"].as_u64().unwrap(),
                    message["update"]["product_id"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let all = printed(&[]);
    assert_eq!(all.len(), 5_000);
    let product = all[0].1;
    let expected: Vec<(u64, u64)> = all.into_iter().filter(|m| m.1 == product).collect();
    let filtered = printed(&["--product", &product.to_string()]);
    assert_eq!(filtered.len(), expected.len(), "product {product}");
    assert!(
        filtered == expected,
        "the same updates of product {product}"
    );
}
