//! Issue 26's data-loss class: runs that said "confirmed" (or a gateway that answered 2xx) for
//! updates the stream does not hold. Each test starts the racing runs at the same instant or at
//! an offset, then counts what the broker stored against what the runs said they confirmed.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::serve_util::{free_port, post, UPDATE};
use crate::util::{
    assert_one_line_error, runtime, send_signal, summary_of, wait_summary, wait_within, BrokerNode,
    TcpProxy, TestStream,
};

/// Every update the stream holds, read to its end.
fn stored(stream: &TestStream) -> u64 {
    let summary = stream.run_json(&["consume", "--offset", "first"]);
    summary["messages"].as_u64().unwrap()
}

/// Two `produce` runs under one `--producer-name`, the second started `offset` after the first:
/// each either fails saying the name is taken, or its confirmed updates are stored; what the
/// stream holds is exactly the sum of what the runs that succeeded confirmed.
fn two_runs_under_one_name(purpose: &str, offset: Duration) {
    let stream = TestStream::new(purpose);
    let args = [
        "produce",
        "--producer-name",
        "shared",
        "--count",
        "20000",
        "--rate",
        "10000",
    ];
    let first = stream.start(&args);
    std::thread::sleep(offset);
    let second = stream.start(&args);
    let limit = Duration::from_secs(60);
    let outputs = [
        wait_within(first, limit, "the first run"),
        wait_within(second, limit, "the second run"),
    ];
    let mut confirmed = 0;
    for output in &outputs {
        if output.status.success() {
            let summary = summary_of(output);
            assert_eq!(summary["failed"], 0, "{summary}");
            confirmed += summary["confirmed"].as_u64().unwrap();
        } else {
            assert_one_line_error(
                output,
                1,
                "another invstream run is publishing as producer 'shared'",
            );
        }
    }
    assert!(confirmed > 0, "neither run published");
    assert_eq!(
        stored(&stream),
        confirmed,
        "the stream must hold exactly what the runs said they confirmed"
    );
    // And nothing twice, seq going on from run to run.
    crate::util::assert_exactly(&stream.verify(), confirmed);
}

#[test]
fn two_produce_runs_under_one_name_at_once_store_all_they_confirm() {
    two_runs_under_one_name("adv-name-now", Duration::ZERO);
}

#[test]
fn two_produce_runs_under_one_name_apart_store_all_they_confirm() {
    two_runs_under_one_name("adv-name-later", Duration::from_millis(700));
}

/// Two gateways started at the same instant on one stream: one serves, the other stops at once
/// saying the gateway's producer name is taken; then every 2xx is an update the stream holds.
#[test]
fn two_gateways_on_one_stream_never_both_serve() {
    let stream = TestStream::new("adv-two-gateways");
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let gateways = [
        stream.start(&["serve", "--listen", &a]),
        stream.start(&["serve", "--listen", &b]),
    ];
    // The one that serves answers /healthz; the other exits.
    let client = reqwest::Client::new();
    let rt = runtime();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut serving = None;
    let mut refused = None;
    let mut gateways = gateways.map(Some);
    while serving.is_none() || refused.is_none() {
        assert!(
            Instant::now() < deadline,
            "after 30 s: serving {serving:?}, refused {refused:?}"
        );
        for (index, listen) in [&a, &b].into_iter().enumerate() {
            let Some(child) = gateways[index].as_mut() else {
                continue;
            };
            if child.try_wait().unwrap().is_some() {
                refused = Some((index, gateways[index].take().unwrap()));
                continue;
            }
            let up = rt.block_on(async {
                client
                    .get(format!("http://{listen}/healthz"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            });
            if up && serving.is_none() {
                serving = Some(index);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (refused_index, refused_child) = refused.unwrap();
    let serving_index = serving.unwrap();
    assert_ne!(serving_index, refused_index);
    // Both start at once, so the refused one may be the one that created the stream: its
    // note about that is true and stays; the error after it is still one line.
    let mut refused_output = refused_child.wait_with_output().unwrap();
    let created = format!("invstream: created stream '{}'\n", stream.name);
    let stderr = String::from_utf8(refused_output.stderr).unwrap();
    refused_output.stderr = stderr.strip_prefix(&created).unwrap_or(&stderr).into();
    assert_one_line_error(
        &refused_output,
        1,
        "another invstream run is publishing as producer",
    );
    let listen = [&a, &b][serving_index];
    let accepted = rt.block_on(async {
        let mut accepted = 0;
        for _ in 0..50 {
            let (status, body, _) =
                post(&client, format!("http://{listen}/updates"), UPDATE.into()).await;
            assert!(status == 202 || status == 200, "{status} {body}");
            accepted += 1;
        }
        accepted
    });
    let gateway = gateways[serving_index].take().unwrap();
    send_signal(&gateway, "TERM");
    let summary = wait_summary(gateway);
    assert_eq!(summary["confirmed"], accepted, "{summary}");
    assert_eq!(stored(&stream), accepted);
}

/// Two benches started at once with one `--stream`: each runs on a stream of its own, so each
/// consumer reads exactly what its own producers sent.
#[test]
fn two_benches_started_together_each_read_only_their_own() {
    let stream = TestStream::new("adv-benches");
    let args = [
        "bench",
        "--count",
        "20000",
        "--producers",
        "1",
        "--consumers",
        "1",
    ];
    let benches = [stream.start(&args), stream.start(&args)];
    let limit = Duration::from_secs(120);
    let summaries = benches.map(|b| summary_of(&wait_within(b, limit, "a bench")));
    for summary in &summaries {
        assert_eq!(summary["confirmed"], 20_000, "{summary}");
        assert_eq!(summary["consumed"], 20_000, "{summary}");
    }
    assert_ne!(summaries[0]["stream"], summaries[1]["stream"]);
}

/// A named pipe as `--input` is opened once: what its writer sends is published, and the run
/// ends when the writer closes it.
#[test]
fn a_named_pipe_as_input_is_read_once_and_published_whole() {
    let stream = TestStream::new("adv-fifo");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("updates.pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let producer = stream.start(&[
        "produce",
        "--input",
        fifo.to_str().unwrap(),
        "--batch-size",
        "10",
    ]);
    // Opening for writing waits for the reader, as a shell's `cmd > pipe` does.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut pipe = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
            for i in 0..100 {
                writeln!(
                    pipe,
                    r#"{{"seq":{i},"product_id":{i},"sku":"S","warehouse":"W","event":"sold","quantity_delta":-1,"stock_level":3}}"#
                )
                .unwrap();
            }
        })
    };
    let output = wait_within(producer, Duration::from_secs(30), "produce --input PIPE");
    writer.join().unwrap();
    let summary = summary_of(&output);
    assert_eq!(summary["confirmed"], 100, "{summary}");
    assert_eq!(stored(&stream), 100);
}

/// A name's publishing ids are update numbers for generated updates and line numbers for an
/// input file: `--input FILE --resume` under a name that stored more than FILE has lines (it
/// published generated updates) fails instead of passing over the whole file as "already
/// stored".
#[test]
fn input_resume_under_a_name_that_published_generated_updates_is_refused() {
    let stream = TestStream::new("adv-origin");
    let summary = stream.produce_as("mixed", "50", &[]);
    assert_eq!(summary["confirmed"], 50, "{summary}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("updates.ndjson");
    let lines: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"seq":{i},"product_id":{i},"sku":"S","warehouse":"W","event":"sold","quantity_delta":-1,"stock_level":3}}"#
            )
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let file = file.to_str().unwrap();
    let input_resume = stream.run(&[
        "produce",
        "--producer-name",
        "mixed",
        "--input",
        file,
        "--resume",
    ]);
    // Status lines first (the reader finds the file's end only once it reads it), then one
    // error line, and no advice to run the same thing again.
    let stderr = String::from_utf8_lossy(&input_resume.stderr);
    assert_eq!(input_resume.status.code(), Some(1), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("invstream: error:")
            && last.contains("ends at line 20, but the producer already stored up to line 50"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("to send the rest exactly once"),
        "{stderr}"
    );
    assert_eq!(stored(&stream), 50, "nothing was sent");
}

/// A gateway whose name lock was lost with its connection (a broker restart) takes the name
/// again before it sends another update: when another gateway took it meanwhile, the first one
/// stops instead of numbering updates the broker would confirm and drop as the other's.
#[test]
fn a_gateway_that_lost_its_name_to_another_stops_instead_of_acknowledging() {
    let node = BrokerNode::start("inv-lock-retake", 5595, None);
    // The first gateway reaches the node through a proxy that can refuse its reconnects.
    let proxy = TcpProxy::on(0, node.port);
    let stream = node.stream("adv-lock-retake");
    let through_proxy = format!("rabbitmq-stream://guest:guest@localhost:{}/%2f", proxy.port);
    let first_listen = format!("127.0.0.1:{}", free_port());
    let (first, first_log) = stream.spawn_watched(
        &[
            "--uri",
            &through_proxy,
            "--retry-for",
            "120s",
            "serve",
            "--listen",
            &first_listen,
        ],
        "serving stream",
    );
    let client = reqwest::Client::new();
    let rt = runtime();
    let post_many = |listen: &str, count: usize| -> Vec<u16> {
        rt.block_on(async {
            let mut statuses = Vec::new();
            for _ in 0..count {
                let answer = client
                    .post(format!("http://{listen}/updates"))
                    .body(UPDATE)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
                statuses.push(answer.map_or(0, |r| r.status().as_u16()));
            }
            statuses
        })
    };
    let accepted = |statuses: &[u16]| statuses.iter().filter(|s| (200..300).contains(*s)).count();
    let mut acknowledged = accepted(&post_many(&first_listen, 20));
    assert_eq!(acknowledged, 20);

    // A restart drops every connection of the first gateway; the proxy keeps it away.
    proxy.refuse(true);
    node.act("node-stop");
    node.act("node-start");
    let second_listen = format!("127.0.0.1:{}", free_port());
    let (second, _second_log) = stream.spawn_watched(
        &["--uri", &node.uri(), "serve", "--listen", &second_listen],
        "serving stream",
    );
    acknowledged += accepted(&post_many(&second_listen, 20));

    // The first gateway comes back: its name is held by the second now.
    proxy.refuse(false);
    acknowledged += accepted(&post_many(&first_listen, 5));
    let first = wait_within(first, Duration::from_secs(90), "the first gateway");
    let first_stderr = first_log.text();
    assert_eq!(first.status.code(), Some(1), "{first_stderr}");
    assert!(
        first_stderr.contains("another invstream run is publishing as producer"),
        "{first_stderr}"
    );
    acknowledged += accepted(&post_many(&second_listen, 20));
    send_signal(&second, "TERM");
    wait_summary(second);

    let uri = node.uri();
    let read = [
        "--uri", &uri, "--json", "consume", "--offset", "first", "--verify",
    ];
    let verified = summary_of(&stream.run(&read));
    crate::util::assert_exactly(&verified, acknowledged as u64);
}
