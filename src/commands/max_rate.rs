//! `invstream bench --find-max-rate`: bench runs at fixed rates, each on a stream of its own,
//! judged and chosen by [`crate::max_rate`]; a status line per try, then one outcome.

use std::time::Instant;

use crate::commands::bench::{self, BenchRun};
use crate::commands::workbench::broker_state;
use crate::error::Result;
use crate::max_rate::{RateSearch, SearchOutcome, TrialFigures, Try};
use crate::report::{thousands, Output};
use crate::settings::{CommonSettings, MaxRateSettings};
use crate::shutdown::Shutdown;
use crate::stats::CommandDetails;

pub async fn run(
    common: &CommonSettings,
    settings: &MaxRateSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<SearchOutcome> {
    let started = Instant::now();
    let broker = broker_state(common).await?.describe();
    let max_p99_us = settings.max_p99.as_micros() as u64;
    out.status(&format!(
        "searching the highest rate {broker} sustains: {} a try, from {}, to within {}% (confirm p99 under {} ms, consumers keeping up)",
        humantime::format_duration(settings.settle),
        thousands(settings.start_rate),
        settings.precision * 100.0,
        max_p99_us as f64 / 1000.0
    ));
    // Each try speaks only through its verdict line.
    let quiet = Output::silent();
    let mut search = RateSearch::new(settings.start_rate, settings.precision);
    let mut tries = Vec::new();
    let mut interrupted = false;
    while let Some(rate) = search.next_rate() {
        let measured = bench::run_measured(common, &settings.trial(rate), shutdown, quiet).await?;
        if measured.summary.interrupted || shutdown.received().is_some() {
            out.status(&format!(
                "{} msg/s: stopped early, not judged",
                thousands(rate)
            ));
            interrupted = true;
            break;
        }
        let tried = judged(rate, settings, measured, max_p99_us);
        out.status(&format!(
            "try {}: {} msg/s: {} (published {} msg/s, confirm p99 {:.1} ms in its worst second, each consumer read {} msg/s)",
            tries.len() + 1,
            thousands(rate),
            crate::report::max_rate::verdict(&tried.verdict, max_p99_us),
            thousands(tried.published_per_s as u64),
            tried.confirm_p99_us as f64 / 1000.0,
            thousands(tried.consumed_per_s as u64),
        ));
        search.record(rate, tried.verdict.sustained());
        tries.push(tried);
    }
    Ok(SearchOutcome {
        command: "bench",
        max_sustainable_rate: search.found(),
        lowest_failed_rate: search.ceiling(),
        precision_pct: settings.precision * 100.0,
        max_p99_ms: max_p99_us as f64 / 1000.0,
        settle_s: settings.settle.as_secs_f64(),
        producers: settings.bench.producers,
        consumers: settings.bench.consumers,
        tries,
        elapsed_s: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        interrupted,
        broker,
    })
}

/// A try's figures, judged.
fn judged(rate: u64, settings: &MaxRateSettings, measured: BenchRun, max_p99_us: u64) -> Try {
    let BenchRun {
        summary,
        confirm,
        end_to_end,
        ..
    } = measured;
    let (confirmed, failed, timeline) = match summary.details {
        CommandDetails::Bench {
            confirmed,
            failed,
            timeline,
            ..
        } => (confirmed, failed, timeline),
        _ => (0, 0, Vec::new()),
    };
    let figures = TrialFigures {
        rate,
        window_s: settings.settle.as_secs_f64(),
        // Each group reads every message once.
        consumers: settings.bench.groups(),
        published: summary.messages,
        confirmed,
        failed,
        confirm_p50_us: confirm.summary().p50,
        end_to_end_p99_us: end_to_end.summary().p99,
        timeline,
    };
    Try::new(&figures, max_p99_us)
}
