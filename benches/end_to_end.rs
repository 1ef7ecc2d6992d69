//! End-to-end: produce 100,000 updates to the live broker and read them back, through the same
//! code the CLI runs (`produce::run`, `consume::run`). Brings the broker up with
//! `scripts/broker.sh up` (a no-op when one answers on localhost:5552) and fails, never skips,
//! when it cannot. Each produce goes to a fresh stream, deleted at the end.
//!
//!     cargo bench --bench end_to_end

use std::process::Command as Process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use invstream::broker::BrokerSettings;
use invstream::cli::Cli;
use invstream::commands::{consume, produce};
use invstream::report::Output;
use invstream::settings::{self, CommandSettings};
use invstream::shutdown::Shutdown;
use invstream::stats::RunSummary;

const COUNT: u64 = 100_000;

static STREAMS: AtomicU64 = AtomicU64::new(0);

fn broker_up() {
    let status = Process::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh"))
        .arg("up")
        .status()
        .expect("bash runs scripts/broker.sh");
    assert!(
        status.success(),
        "scripts/broker.sh up failed: no broker to benchmark against"
    );
}

/// Runs one invstream command line (without the program name) and returns its summary.
fn run(runtime: &tokio::runtime::Runtime, args: &[&str]) -> RunSummary {
    let cli = Cli::try_parse_from(["invstream", "--quiet"].iter().chain(args))
        .expect("a valid command line");
    let (common, command) = settings::from_cli(&cli).expect("valid settings");
    let out = Output {
        json: false,
        quiet: true,
        summary_to_stderr: false,
    };
    let shutdown = Shutdown::new();
    let summary = runtime.block_on(async {
        match &command {
            CommandSettings::Produce(s) => produce::run(&common, s, &shutdown, out).await,
            CommandSettings::Consume(s) => consume::run(&common, s, &shutdown, out).await,
            _ => unreachable!("only produce and consume are benchmarked"),
        }
    });
    let summary = summary.unwrap_or_else(|e| panic!("invstream {args:?}: {e}"));
    assert_eq!(summary.messages, COUNT, "{args:?}");
    summary
}

fn fresh_stream(kind: &str) -> String {
    let n = STREAMS.fetch_add(1, Ordering::Relaxed);
    format!("bench-e2e-{}-{kind}-{n}", std::process::id())
}

fn delete_streams(runtime: &tokio::runtime::Runtime, names: &[String]) {
    runtime.block_on(async {
        let env = BrokerSettings::from_uri(invstream::broker::DEFAULT_URI)
            .expect("the default URI is valid")
            .connect()
            .await
            .expect("connects to the broker");
        for name in names {
            let _ = env.delete_stream(name).await;
        }
    });
}

fn end_to_end(c: &mut Criterion) {
    broker_up();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let count = COUNT.to_string();
    let mut created = Vec::new();

    let mut group = c.benchmark_group("end_to_end_100k");
    group.throughput(Throughput::Elements(COUNT));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    for (name, extra) in [
        ("produce", &[][..]),
        ("produce_sub_entry_100", &["--sub-entry-size", "100"][..]),
        (
            "produce_sub_entry_100_zstd",
            &["--sub-entry-size", "100", "--compression", "zstd"][..],
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let stream = fresh_stream(name);
                let mut args = vec!["--stream", &stream, "produce", "--count", &count];
                args.extend_from_slice(extra);
                run(&runtime, &args);
                created.push(stream);
            })
        });
    }
    for (name, extra) in [
        ("consume", &[][..]),
        ("consume_sub_entry_100", &["--sub-entry-size", "100"][..]),
    ] {
        let stream = fresh_stream(name);
        let mut args = vec!["--stream", &stream, "produce", "--count", &count];
        args.extend_from_slice(extra);
        run(&runtime, &args);
        group.bench_function(name, |b| {
            b.iter(|| {
                run(
                    &runtime,
                    &["--stream", &stream, "consume", "--offset", "first"],
                )
            })
        });
        created.push(stream);
    }
    group.finish();
    delete_streams(&runtime, &created);
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
