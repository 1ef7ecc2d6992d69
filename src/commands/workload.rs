//! `invstream bench --workload FILE.yaml`: an OMB workload's topics benched at once, each a
//! bench run on a stream (or super stream) of its own, after an unmeasured warm-up; their
//! summaries and totals in one [`WorkloadOutcome`]. `producerRate: 0` runs the max-rate search.

use futures::future::join_all;

use crate::commands::bench::{self, BenchRun};
use crate::error::Result;
use crate::omb;
use crate::report::{thousands, Output};
use crate::settings::{BenchSettings, CommonSettings, WorkloadSettings};
use crate::shutdown::Shutdown;
use crate::stats::{CommandDetails, LatencyHistogram};
use crate::workload::WorkloadOutcome;

/// Says the workload's warnings (what the file asks that invstream does otherwise).
pub fn warn(settings: &WorkloadSettings, out: Output) {
    for warning in &settings.warnings {
        out.status(&format!("workload '{}': {warning}", settings.name));
    }
}

pub async fn run(
    common: &CommonSettings,
    settings: &WorkloadSettings,
    bench_settings: &BenchSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<WorkloadOutcome> {
    let topics = settings.topics;
    out.status(&format!(
        "workload '{}': {topics} topic(s), each a {} with {} producer(s) and {} consumer(s){}{}{}{}",
        settings.name,
        match bench_settings.super_stream_partitions {
            Some(n) => format!("super stream of {n} partitions"),
            None => "stream".into(),
        },
        bench_settings.producers,
        bench_settings.consumers,
        match bench_settings.consumers_per_group {
            1 => String::new(),
            each => format!(" in groups of {each}"),
        },
        match bench_settings.message_size {
            Some(size) => format!(", {size}-byte messages"),
            None => String::new(),
        },
        match bench_settings.rate {
            Some(rate) => format!(", {} msg/s each", thousands(rate)),
            None => ", as fast as possible".into(),
        },
        match bench_settings.backlog {
            Some(backlog) => format!(
                ", after a backlog of {:.1} MB each",
                backlog.bytes as f64 / 1e6
            ),
            None => String::new(),
        },
    ));
    // The runs speak through the outcome only: several at once would mix their lines.
    let quiet = Output::silent();
    if let Some(warmup) = settings.warmup {
        out.status(&format!(
            "warm-up for {} (not measured)",
            humantime::format_duration(warmup)
        ));
        let warm = BenchSettings {
            duration: Some(warmup),
            ..bench_settings.clone()
        };
        all_topics(common, topics, &warm, shutdown, quiet).await?;
    }
    let measured = match shutdown.received() {
        Some(_) => Vec::new(),
        None => {
            out.status(&match bench_settings.duration {
                Some(d) => format!("measuring for {}", humantime::format_duration(d)),
                None => format!("measuring {} messages a topic", bench_settings.count),
            });
            all_topics(common, topics, bench_settings, shutdown, quiet).await?
        }
    };
    let driver = omb::DRIVER.to_string();
    bench::export_omb(
        bench_settings,
        &settings.name,
        driver,
        topics,
        &measured,
        out,
    )?;
    Ok(outcome(settings, bench_settings, measured, shutdown))
}

/// One bench run per topic, at once, each under a stream name of its own.
async fn all_topics(
    common: &CommonSettings,
    topics: u32,
    settings: &BenchSettings,
    shutdown: &Shutdown,
    quiet: Output,
) -> Result<Vec<BenchRun>> {
    let commons: Vec<CommonSettings> = (0..topics)
        .map(|topic| CommonSettings {
            stream: match topics {
                1 => common.stream.clone(),
                _ => format!("{}-topic{}", common.stream, topic + 1),
            },
            ..common.clone()
        })
        .collect();
    join_all(
        commons
            .iter()
            .map(|common| bench::run_measured(common, settings, shutdown, quiet)),
    )
    .await
    .into_iter()
    .collect()
}

fn outcome(
    settings: &WorkloadSettings,
    bench_settings: &BenchSettings,
    measured: Vec<BenchRun>,
    shutdown: &Shutdown,
) -> WorkloadOutcome {
    let (mut confirm, mut end_to_end) = (LatencyHistogram::new(), LatencyHistogram::new());
    let (mut published, mut confirmed, mut failed, mut consumed) = (0, 0, 0, 0);
    let (mut publish_rate, mut consume_rate) = (0.0, 0.0);
    let mut interrupted = shutdown.received().is_some();
    let mut per_topic = Vec::new();
    for run in measured {
        confirm.merge(&run.confirm);
        end_to_end.merge(&run.end_to_end);
        let summary = run.summary;
        published += summary.messages;
        publish_rate += summary.msg_per_s;
        interrupted |= summary.interrupted;
        if let CommandDetails::Bench {
            confirmed: c,
            failed: f,
            consumed: r,
            consumed_per_s,
            ..
        } = &summary.details
        {
            confirmed += c;
            failed += f;
            consumed += r;
            consume_rate += consumed_per_s;
        }
        per_topic.push(summary);
    }
    WorkloadOutcome {
        command: "bench",
        workload: settings.name.clone(),
        file: settings.file.display().to_string(),
        topics: settings.topics,
        partitions_per_topic: bench_settings.super_stream_partitions.unwrap_or(1),
        producers_per_topic: bench_settings.producers,
        consumers_per_topic: bench_settings.consumers,
        consumers_per_subscription: bench_settings.consumers_per_group,
        message_size: bench_settings.message_size,
        rate_per_topic: bench_settings.rate,
        warmup_s: settings.warmup.map_or(0.0, |w| w.as_secs_f64()),
        warnings: settings.warnings.clone(),
        published,
        confirmed,
        failed,
        consumed,
        publish_msg_per_s: publish_rate.round(),
        consume_msg_per_s: consume_rate.round(),
        confirm_latency_us: confirm.summary(),
        end_to_end_latency_us: end_to_end.summary(),
        interrupted,
        per_topic,
    }
}
