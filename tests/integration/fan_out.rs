//! The seeds' patterns: many independent consumers, named consumers that resume, subscribers
//! filtered by product, single active consumer failover.

use crate::util::{send_signal, wait_summary, wait_until, TestStream};

const SERVICES: &str = "stats,email,loyalty,ads,notifications";

fn consumer<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["consumers"]
        .as_array()
        .unwrap_or_else(|| panic!("no per-consumer summaries: {summary}"))
        .iter()
        .find(|c| c["consumer"] == name)
        .unwrap_or_else(|| panic!("no consumer {name}: {summary}"))
}

#[test]
fn five_consumers_each_read_the_whole_stream() {
    let stream = TestStream::new("fanout");
    stream.produce(100_000);
    let summary = stream.run_json(&["consume", "--offset", "first", "--consumers", SERVICES]);
    assert_eq!(summary["messages"], 500_000, "{summary}");
    for name in SERVICES.split(',') {
        let c = consumer(&summary, name);
        assert_eq!(c["messages"], 100_000, "{name}: {c}");
        assert_eq!(c["first_offset"], 0, "{name}");
        assert_eq!(c["last_offset"], 99_999, "{name}");
        assert_eq!(c["not_inventory_updates"], 0, "{name}");
    }
}

/// A fan-out's report gives each consumer its own line (messages, elapsed, rate, p50/p99), in
/// the text and in `--json`'s `consumers`; the text's throughput names what each read and the
/// slowest and fastest rates instead of one total rate that would follow the slowest.
#[test]
fn a_fan_out_reports_each_consumer_and_no_total_rate() {
    let stream = TestStream::new("fanout-table");
    stream.produce(5_000);
    let args = ["consume", "--offset", "first", "--consumers", "fast,slow"];
    let slowly = ["--slow", "slow=1ms", "--count", "500"];
    let summary = stream.run_json(&[&args[..], &slowly].concat());
    for name in ["fast", "slow"] {
        let c = consumer(&summary, name);
        assert_eq!(c["messages"], 500, "{name}: {c}");
        for key in ["elapsed_s", "msg_per_s", "waited_s"] {
            assert!(c[key].as_f64().is_some(), "{name} has {key}: {c}");
        }
        for key in ["p50", "p99"] {
            assert!(c["latency_us"][key].as_u64().is_some(), "{name}: {c}");
        }
    }
    let (fast, slow) = (consumer(&summary, "fast"), consumer(&summary, "slow"));
    assert!(
        fast["msg_per_s"].as_f64() > slow["msg_per_s"].as_f64(),
        "{summary}"
    );

    let output = stream.run(&[&args[..], &slowly].concat());
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let throughput: Vec<&str> = text.lines().filter(|l| l.contains("throughput")).collect();
    assert_eq!(throughput.len(), 1, "{text}");
    assert!(
        throughput[0].contains("2 consumers, each read 500; slowest")
            && throughput[0].contains("msg/s (slow), fastest")
            && throughput[0].ends_with("msg/s (fast)"),
        "{text}"
    );
    let table = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("consumer "))
        .collect::<Vec<_>>();
    assert!(
        table[0].contains("elapsed s") && table[0].contains("latency p99"),
        "{text}"
    );
    assert!(table[1].trim_start().starts_with("fast"), "{text}");
    assert!(table[2].trim_start().starts_with("slow"), "{text}");
}

#[test]
fn a_slow_consumer_does_not_hold_back_the_others_and_resumes_later() {
    let stream = TestStream::new("slow");
    stream.produce(20_000);
    // The three consumers from the first offset, stored under `name`, with `extra` flags.
    let read_all = |name: &str, extra: &[&str]| {
        let args = [
            "consume",
            "--offset",
            "first",
            "--consumers",
            "stats,email,loyalty",
        ];
        stream.run_json(&[&args[..], &["--name", name], extra].concat())
    };
    // Within the same 4 s window, the others read all 20,000 while the slow one (2 ms a
    // message, so at most ~2,000) did not: had it held them back, they would stop where it did.
    let slowed = read_all("svc", &["--slow", "email=2ms", "--duration", "4s"]);
    let email = consumer(&slowed, "email");
    let email_read = email["messages"].as_u64().unwrap();
    assert!(
        email_read > 0 && email_read < 10_000,
        "email was slow: {email}"
    );
    for name in ["stats", "loyalty"] {
        let other = consumer(&slowed, name);
        assert_eq!(other["messages"], 20_000, "{name} read everything: {other}");
        assert_eq!(other["last_offset"], 19_999, "{name}: {other}");
    }

    // The slow one carries on later from where it stopped, and nothing is read twice.
    let resumed = stream.run_json(&[
        "consume",
        "--offset",
        "stored",
        "--consumers",
        "email",
        "--name",
        "svc",
    ]);
    assert_eq!(resumed["first_offset"], email_read, "{resumed}");
    assert_eq!(resumed["last_offset"], 19_999);
    assert_eq!(resumed["messages"].as_u64().unwrap() + email_read, 20_000);
}

#[test]
fn named_consumer_resumes_after_its_stored_offset() {
    let stream = TestStream::new("named");
    stream.produce(50_000);
    let first = stream.run_json(&[
        "consume", "--name", "alerts", "--offset", "first", "--count", "40000",
    ]);
    assert_eq!(first["last_offset"], 39_999, "{first}");
    stream.produce(10_000);
    let resumed = stream.run_json(&["consume", "--name", "alerts", "--offset", "stored"]);
    assert_eq!(resumed["first_offset"], 40_000, "{resumed}");
    // Stored offsets are entries in the stream too, so the last offset is 59,999 or a little more.
    assert!(
        resumed["last_offset"].as_u64().unwrap() >= 59_999,
        "{resumed}"
    );
    assert_eq!(
        resumed["messages"], 20_000,
        "the union is the stream, no gap, no duplicate"
    );

    let unknown = stream.run(&["consume", "--name", "nobody", "--offset", "stored"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("has no offset stored") && stderr.contains("--offset first"),
        "{stderr}"
    );
}

#[test]
fn product_filter_returns_exactly_those_products() {
    let stream = TestStream::new("product");
    stream.produce(20_000);
    let filtered = stream.run_json(&["consume", "--offset", "first", "--product", "42,77"]);

    let expected: Vec<u64> = stream
        .read_with_client(20_000)
        .iter()
        .filter(|m| [42, 77].contains(&m.update["product_id"].as_u64().unwrap()))
        .map(|m| m.offset)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(filtered["messages"], expected.len() as u64, "{filtered}");
    assert_eq!(filtered["first_offset"], expected[0]);
    assert_eq!(filtered["last_offset"], *expected.last().unwrap());
    assert!(filtered["delivered"].as_u64().unwrap() >= expected.len() as u64);
}

#[test]
fn single_active_consumer_fails_over_without_gap_or_duplicate() {
    let stream = TestStream::new("sac");
    stream.produce(10_000);
    let common = [
        "consume",
        "--name",
        "group",
        "--single-active",
        "--offset",
        "first",
        "--store-every",
        "100",
    ];
    // The first instance is active and slow (10 s to the end); the second waits as standby.
    let active = stream.spawn_until(
        &[&common[..], &["--slow", "group=1ms"]].concat(),
        "reading stream",
    );
    let (standby, standby_log) = stream.spawn_watched(&common, "reading stream");
    // The active one is stopped mid-stream, with the standby subscribed.
    wait_until("the active consumer stored an offset past 1,000", || {
        stream.stored_offset("group").is_some_and(|o| o >= 1_000)
    });
    send_signal(&active, "INT");
    let active = wait_summary(active);
    let standby = wait_summary(standby);
    assert_eq!(active["first_offset"], 0, "{active}");
    let last = active["last_offset"].as_u64().unwrap();
    assert!(
        (1_000..9_999).contains(&last),
        "stopped mid-stream: {active}"
    );
    assert_eq!(active["messages"], last + 1, "{active}");
    assert!(standby["messages"].as_u64().unwrap() > 0, "{standby}");
    assert_eq!(
        standby["first_offset"],
        last + 1,
        "took over right after: {standby}"
    );
    assert_eq!(standby["last_offset"], 9_999, "{standby}");
    assert_eq!(
        standby["messages"],
        9_999 - last,
        "no gap, no duplicate: {standby}"
    );
    // It says it took over where the other stopped, not that messages are missing.
    let said = standby_log.text();
    assert!(
        said.contains(&format!(
            "invstream: active now: reading from offset {}, right after the offset the previous active consumer stored",
            last + 1
        )),
        "{said}"
    );
    assert!(!said.contains("removed by retention"), "{said}");
}
