//! `bench --instances N --group NAME`: one benchmark run by several processes, which find each
//! other through the broker. Three processes on this machine stand for three machines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::{
    assert_one_line_error, assert_stream_deleted, binary, runtime, send_signal, unique_name,
    wait_within, TestStream,
};

/// A group name of this test's own; its coordination stream is deleted when this drops.
struct TestGroup {
    name: String,
}

impl TestGroup {
    fn new(purpose: &str) -> Self {
        TestGroup {
            name: unique_name(&format!("test-{purpose}")),
        }
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let stream = format!("invstream-group-{}", self.name);
        runtime().block_on(async move {
            if let Ok(env) = rabbitmq_stream_client::Environment::builder().build().await {
                let _ = env.delete_stream(&stream).await;
            }
        });
    }
}

/// One process of a group: its stderr read line by line as it comes.
struct Instance {
    child: Child,
    lines: Receiver<String>,
    stderr: JoinHandle<String>,
}

impl Instance {
    /// `invstream GLOBAL… --stream STREAM bench --instances N --group G ARGS…`, started.
    fn start(
        stream: &TestStream,
        global: &[&str],
        group: &TestGroup,
        n: u32,
        args: &[&str],
    ) -> Self {
        let mut child = Command::new(binary())
            .args(global)
            .args(["--stream", &stream.name, "bench", "--no-tui"])
            .args(["--instances", &n.to_string(), "--group", &group.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the invstream binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                all.push_str(&line);
                all.push('\n');
                let _ = tx.send(line);
            }
            all
        });
        Instance {
            child,
            lines,
            stderr,
        }
    }

    /// The first line on stderr (from now) holding `marker`; panics after 60 s.
    fn line_with(&self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(marker) => return line,
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no line with '{marker}' on stderr")
                }
            }
        }
    }

    /// Its exit, stdout and the whole of its stderr.
    fn finish(self, what: &str) -> (Output, String) {
        let output = wait_within(self.child, Duration::from_secs(120), what);
        (output, self.stderr.join().unwrap_or_default())
    }
}

/// Exit 1 and one line on stderr (read by the instance's own reader), `invstream: error: …`
/// holding `needle`.
fn assert_one_error_line(output: &Output, stderr: &str, needle: &str) {
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("invstream: error:"), "{stderr}");
    assert!(lines[0].contains(needle), "{needle}: {stderr}");
}

/// The JSON summary on an instance's stdout (whatever its exit).
fn summary(output: &Output, stderr: &str) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("stdout is not one JSON object ({e}): {stdout}\nstderr: {stderr}")
    })
}

#[test]
fn three_instances_make_one_benchmark_whose_figures_are_the_sum_of_theirs() {
    let stream = TestStream::new("instances");
    let group = TestGroup::new("instances");
    let omb = tempfile::tempdir().unwrap();
    let omb_dir = omb.path().to_str().unwrap();
    let args = [
        "--producers",
        "3",
        "--consumers",
        "3",
        "--count",
        "30000",
        "--export-omb",
        omb_dir,
    ];
    let instances: Vec<Instance> = (0..3)
        .map(|_| Instance::start(&stream, &["--json"], &group, 3, &args))
        .collect();
    let mut summaries = Vec::new();
    for instance in instances {
        let (output, stderr) = instance.finish("an instance of the group");
        assert!(output.status.success(), "{output:?}\n{stderr}");
        summaries.push(summary(&output, &stderr));
    }
    for summary in &summaries {
        assert_eq!(summary["instances"], 3, "{summary}");
        assert_eq!(summary["group"], group.name.as_str(), "{summary}");
        let each = summary["instance_summaries"].as_array().unwrap();
        assert_eq!(each.len(), 3, "{summary}");
        let sum = |key: &str| each.iter().map(|s| s[key].as_u64().unwrap()).sum::<u64>();
        for key in ["messages", "confirmed", "consumed", "failed", "bytes"] {
            assert_eq!(summary[key], sum(key), "{key}: {summary}");
        }
        assert_eq!(summary["confirmed"], 30_000, "{summary}");
        assert_eq!(
            summary["consumed"], 90_000,
            "every consumer read all: {summary}"
        );
        assert_eq!(summary["failed"], 0, "{summary}");
        // Each instance ran its share: one producer, one consumer, 10,000 messages.
        for one in each {
            assert_eq!(one["producers"], 1, "{summary}");
            assert_eq!(one["consumers"], 1, "{summary}");
            assert_eq!(one["messages"], 10_000, "{summary}");
            assert!(one["instance"].get("lost_at_s").is_none(), "{summary}");
        }
        assert!(
            !summary["timeline"].as_array().unwrap().is_empty(),
            "{summary}"
        );
        // Every instance prints the same group.
        assert_eq!(
            summary["instance_summaries"],
            summaries[0]["instance_summaries"]
        );
    }
    let pids: Vec<u64> = summaries[0]["instance_summaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["instance"]["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    // The leader alone wrote the group's OMB result: the group's producers and consumers, an
    // entry per second of the group's timeline.
    let files: Vec<_> = std::fs::read_dir(omb.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(result["producersPerTopic"], 3, "{result}");
    assert_eq!(
        result["publishRate"].as_array().unwrap().len(),
        summaries[0]["timeline"].as_array().unwrap().len(),
        "{result}"
    );
    // The leader deleted the benchmark's stream.
    assert_stream_deleted(summaries[0]["stream"].as_str().unwrap());
}

/// With `--super-stream-partitions`, the leader creates the super stream, each instance's
/// producers route over its partitions and each consumer reads them all.
#[test]
fn three_instances_share_a_super_stream_the_leader_created() {
    let stream = TestStream::new("instances-super");
    let group = TestGroup::new("instances-super");
    let args = [
        "--producers",
        "3",
        "--consumers",
        "3",
        "--count",
        "30000",
        "--super-stream-partitions",
        "3",
    ];
    let instances: Vec<Instance> = (0..3)
        .map(|_| Instance::start(&stream, &["--json"], &group, 3, &args))
        .collect();
    let joined: Vec<String> = instances.iter().map(|i| i.line_with("of group")).collect();
    let mut summaries = Vec::new();
    for instance in instances {
        let (output, stderr) = instance.finish("an instance of the group");
        assert!(output.status.success(), "{output:?}\n{stderr}");
        summaries.push(summary(&output, &stderr));
    }
    for (summary, line) in summaries.iter().zip(&joined) {
        assert!(line.contains("super stream '"), "{line}");
        assert_eq!(summary["confirmed"], 30_000, "{summary}");
        assert_eq!(summary["consumed"], 90_000, "{summary}");
        let each = summary["instance_summaries"].as_array().unwrap();
        let sum = |key: &str| each.iter().map(|s| s[key].as_u64().unwrap()).sum::<u64>();
        assert_eq!(summary["confirmed"], sum("confirmed"), "{summary}");
        assert_eq!(summary["consumed"], sum("consumed"), "{summary}");
    }
    // The leader deleted the super stream and its partitions.
    let name = summaries[0]["stream"].as_str().unwrap();
    for partition in 0..3 {
        assert_stream_deleted(&format!("{name}-{partition}"));
    }
}

#[test]
fn an_instance_killed_mid_run_is_named_in_the_report_and_the_others_finish() {
    let stream = TestStream::new("instances-kill");
    let group = TestGroup::new("instances-kill");
    let args = [
        "--producers",
        "3",
        "--consumers",
        "3",
        "--duration",
        "10s",
        "--rate",
        "3000",
    ];
    let instances: Vec<Instance> = (0..3)
        .map(|_| Instance::start(&stream, &["--json"], &group, 3, &args))
        .collect();
    let joined: Vec<String> = instances.iter().map(|i| i.line_with("of group")).collect();
    // Kill one that does not lead: the leader says who was lost.
    let victim = joined
        .iter()
        .position(|line| !line.contains("the leader"))
        .expect("two of three do not lead");
    let leader = joined
        .iter()
        .position(|line| line.contains("the leader"))
        .expect("one leads");
    std::thread::sleep(Duration::from_secs(5));
    let mut instances: Vec<Option<Instance>> = instances.into_iter().map(Some).collect();
    let mut killed = instances[victim].take().unwrap();
    let killed_pid = killed.child.id() as u64;
    send_signal(&killed.child, "KILL");
    let _ = killed.child.wait();
    for (index, instance) in instances.into_iter().enumerate() {
        let Some(instance) = instance else { continue };
        let (output, stderr) = instance.finish("a surviving instance");
        assert_eq!(
            output.status.code(),
            Some(1),
            "a lost instance fails the group: {stderr}"
        );
        let summary = summary(&output, &stderr);
        assert_eq!(summary["instances"], 3, "{summary}");
        let each = summary["instance_summaries"].as_array().unwrap();
        let lost: Vec<&serde_json::Value> = each
            .iter()
            .filter(|s| s["instance"].get("lost_at_s").is_some())
            .collect();
        assert_eq!(lost.len(), 1, "{summary}");
        assert_eq!(lost[0]["instance"]["pid"], killed_pid, "{summary}");
        let at = lost[0]["instance"]["lost_at_s"].as_f64().unwrap();
        assert!((2.0..=9.0).contains(&at), "lost after about 5 s: {summary}");
        // Its messages up to its last sample are in the group's count.
        let sum = |key: &str| each.iter().map(|s| s[key].as_u64().unwrap()).sum::<u64>();
        assert_eq!(summary["confirmed"], sum("confirmed"), "{summary}");
        assert!(lost[0]["messages"].as_u64().unwrap() > 0, "{summary}");
        if index == leader {
            assert!(
                stderr.contains(&format!("pid {killed_pid}) lost after")),
                "the leader says so: {stderr}"
            );
        }
    }
}

/// The leader is not replaced: the others count it lost on their own, after 15 s without a
/// word from it, and still end (exit 1, naming it), rather than wait for ever.
#[test]
fn a_killed_leader_is_counted_lost_by_the_others_on_their_own() {
    let stream = TestStream::new("instances-leader");
    let group = TestGroup::new("instances-leader");
    let args = ["--duration", "4s", "--rate", "900", "--producers", "3"];
    let instances: Vec<Instance> = (0..3)
        .map(|_| Instance::start(&stream, &["--json"], &group, 3, &args))
        .collect();
    let joined: Vec<String> = instances.iter().map(|i| i.line_with("of group")).collect();
    let leader = joined
        .iter()
        .position(|line| line.contains("the leader"))
        .expect("one leads");
    std::thread::sleep(Duration::from_secs(3));
    let mut instances: Vec<Option<Instance>> = instances.into_iter().map(Some).collect();
    let mut killed = instances[leader].take().unwrap();
    let killed_pid = killed.child.id() as u64;
    send_signal(&killed.child, "KILL");
    let _ = killed.child.wait();
    for instance in instances.into_iter().flatten() {
        let (output, stderr) = instance.finish("an instance whose leader died");
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("counted lost"), "{stderr}");
        let summary = summary(&output, &stderr);
        let first = &summary["instance_summaries"][0]["instance"];
        assert_eq!(first["pid"], killed_pid, "{summary}");
        assert!(first.get("lost_at_s").is_some(), "{summary}");
    }
    // The leader would have deleted the benchmark's stream: the test does.
    let bench_stream = joined[leader]
        .split("on stream '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the joined line names the stream")
        .to_string();
    runtime().block_on(async move {
        if let Ok(env) = rabbitmq_stream_client::Environment::builder().build().await {
            let _ = env.delete_stream(&bench_stream).await;
        }
    });
}

#[test]
fn a_missing_instance_ends_with_the_join_timeouts_one_line_error() {
    let stream = TestStream::new("instances-missing");
    let group = TestGroup::new("instances-missing");
    let args = ["--count", "1000", "--join-timeout", "3s"];
    let instances: Vec<Instance> = (0..2)
        .map(|_| Instance::start(&stream, &["-q"], &group, 3, &args))
        .collect();
    for instance in instances {
        let (output, stderr) = instance.finish("an instance waiting for the third");
        assert_one_error_line(
            &output,
            &stderr,
            "2 of 3 instances joined within --join-timeout 3s",
        );
    }
}

#[test]
fn instances_started_with_other_options_are_refused() {
    let stream = TestStream::new("instances-mismatch");
    let group = TestGroup::new("instances-mismatch");
    let a = Instance::start(
        &stream,
        &["-q"],
        &group,
        2,
        &["--count", "1000", "--join-timeout", "10s"],
    );
    let b = Instance::start(
        &stream,
        &["-q"],
        &group,
        2,
        &["--count", "2000", "--join-timeout", "10s"],
    );
    for instance in [a, b] {
        let (output, stderr) = instance.finish("an instance with other options");
        assert_one_error_line(&output, &stderr, "was started with other benchmark options");
    }
}

#[test]
fn a_group_refuses_what_it_cannot_do_yet_before_connecting() {
    let output = crate::util::invstream(&[
        "bench",
        "--instances",
        "2",
        "--group",
        "g",
        "--prometheus",
        "127.0.0.1:0",
    ]);
    assert_one_line_error(&output, 1, "--prometheus does not work with --instances");
    let output = crate::util::invstream(&["bench", "--instances", "2"]);
    assert_eq!(output.status.code(), Some(2), "--group is required");
}
