//! invstream: high-throughput ingestion of inventory updates into RabbitMQ Streams.
//!
//! The binary (`main.rs`) only parses arguments and calls [`run`]; everything else lives here so
//! tests and benchmarks use the same code the CLI runs. `docs/ARCHITECTURE.md` draws the map:
//! - [`cli`] (raw flags) → [`settings`] (checked settings per command, in one place)
//! - [`commands`] (produce, consume, serve, bench): each settings → engine → summary, once for a
//!   stream and a super stream ([`target`])
//! - [`engines`] (publisher, reader, feed): they never print, they emit events, counters and
//!   per-interval samples
//! - [`broker`]: settings, connecting and retrying, stream administration, error mapping
//! - [`model`] (the update, its generator and JSON), [`entry`] (the message format on the wire),
//!   [`input`] (NDJSON files and stdin)
//! - [`stats`] (counters, histograms, [`stats::RunSummary`]) apart from [`report`] (every
//!   rendering) and [`plot`] (SVG and HDR logs); [`verify`] checks `seq` per producer
//! - [`shutdown`]: one token for SIGINT and SIGTERM; [`error`]: errors grouped by what failed
//! - [`catalog`]: what a virtual host holds, as `streams list|info|delete` shows it
//! - [`build_info`]: what `--version` names (the commit and profile `build.rs` found)

pub mod broker;
pub mod build_info;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod dashboard;
pub mod engines;
pub mod entry;
pub mod error;
pub mod files;
pub mod input;
pub mod live_metrics;
pub mod max_rate;
pub mod model;
pub mod omb;
pub mod plot;
pub mod process_metrics;
pub mod report;
pub mod routing;
pub mod settings;
pub mod shutdown;
pub mod stats;
pub mod superstream;
pub mod target;
pub mod verify;
pub mod workbench;
pub mod workload;

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::Cli;
use crate::report::Output;
use crate::settings::CommandSettings;
use crate::shutdown::Shutdown;
use crate::stats::{CommandDetails, RunSummary};

pub use crate::shutdown::{EXIT_INTERRUPTED, EXIT_TERMINATED};

/// Runs one command and says how the process should exit: 0 when everything asked for was done,
/// 1 when a message was not confirmed, `--verify` found a gap or duplicate or a group
/// (`bench --instances`) lost an instance, 130 (SIGINT) or
/// 143 (SIGTERM) when a signal ended a produce or bench early (consume and serve stop on a
/// signal as their normal end: 0). A summary that cannot be written
/// because stdout was closed (`| head`) ends quietly, like any other command line tool.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Completions and man pages are made from the command line's definition: nothing connects.
    if let Some(document) = settings::document(&cli)? {
        return commands::docs::run(&document);
    }
    let (common, command) = settings::from_cli(&cli)?;
    let shutdown = Shutdown::on_signals();
    let out = Output {
        json: common.json,
        quiet: common.quiet,
        summary_to_stderr: matches!(&command, CommandSettings::Consume(c) if c.print),
    };
    // A command heeds a signal once started; until then (connecting, creating its stream) the
    // signal ends it here, at once.
    let addr = common.broker.addr();
    tokio::select! {
        code = run_command(common, command, shutdown.clone(), out) => code,
        signal = shutdown.unheeded() => {
            out.status(&format!("stopped by {signal} while starting (the broker at {addr})"));
            Ok(ExitCode::from(signal.exit_code()))
        }
    }
}

/// The command, its summary and its exit code.
async fn run_command(
    common: settings::CommonSettings,
    command: CommandSettings,
    shutdown: Shutdown,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let addr = common.broker.addr();
    // What the command works on, for the context of its errors.
    let super_stream = match &command {
        CommandSettings::Produce(p) => p.super_stream.as_ref().map(|s| s.name.as_str()),
        CommandSettings::Consume(c) => c.super_stream.as_deref(),
        CommandSettings::Serve(s) => s.super_stream.as_deref(),
        _ => None,
    };
    let stream = match super_stream {
        Some(name) => format!("super stream '{name}'"),
        None => format!("stream '{}'", common.stream),
    };
    let summary = match &command {
        CommandSettings::Produce(settings) => {
            commands::produce::run(&common, settings, &shutdown, out)
                .await
                .with_context(|| format!("produce to {stream} at {addr}"))?
        }
        CommandSettings::Consume(settings) => {
            commands::consume::run(&common, settings, &shutdown, out)
                .await
                .with_context(|| format!("consume from {stream} at {addr}"))?
        }
        CommandSettings::Serve(settings) => commands::serve::run(&common, settings, &shutdown, out)
            .await
            .with_context(|| format!("serve {stream} at {addr}"))?,
        CommandSettings::Bench(settings) => match &settings.group {
            Some(group) => commands::bench_group::run(&common, settings, group, &shutdown, out)
                .await
                .with_context(|| format!("bench at {addr}"))?,
            None => commands::bench::run(&common, settings, &shutdown, out)
                .await
                .with_context(|| format!("bench at {addr}"))?,
        },
        CommandSettings::Workbench(settings) => {
            return run_workbench(&common, settings, &shutdown, out).await
        }
        CommandSettings::Streams(settings) => return run_streams(&common, settings, out).await,
        CommandSettings::MaxRate(settings) => {
            return run_max_rate(&common, settings, &shutdown, out).await
        }
        CommandSettings::Workload(settings) => {
            commands::workload::warn(settings, out);
            return match &settings.run {
                settings::WorkloadRun::MaxRate(search) => {
                    run_max_rate(&common, search, &shutdown, out).await
                }
                settings::WorkloadRun::Bench(bench) => {
                    run_workload(&common, settings, bench, &shutdown, out).await
                }
            };
        }
    };
    if let Err(e) = out.summary(&summary) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(error::InvError::Output(format!(
            "cannot write the summary: {e} (is the disk full, or the output closed?)"
        ))
        .into());
    }
    Ok(exit_code(&summary, &shutdown))
}

/// `streams list|info|delete`: the list, the details or what was deleted, as text or JSON; 1
/// when a delete was declined at the terminal.
async fn run_streams(
    common: &settings::CommonSettings,
    settings: &settings::StreamsSettings,
    out: Output,
) -> anyhow::Result<ExitCode> {
    use commands::streams::Outcome;
    use report::streams as render;
    let addr = common.broker.addr();
    let during = match &settings.action {
        settings::StreamsTask::List => "listing the streams".to_string(),
        settings::StreamsTask::Info { name, .. } => format!("streams info {name}"),
        settings::StreamsTask::Delete { name, .. } => format!("deleting {name}"),
    };
    let outcome = commands::streams::run(&common.broker, settings)
        .await
        .with_context(|| format!("{during} at {addr}"))?;
    let text = match (&outcome, out.json) {
        (Outcome::List(list), true) => render::list_json(list)?,
        (Outcome::List(list), false) => render::list_text(list),
        (Outcome::Info(info), true) => render::info_json(info)?,
        (Outcome::Info(info), false) => render::info_text(info),
        (Outcome::Deleted(deleted), true) => render::deleted_json(deleted)?,
        (Outcome::Deleted(deleted), false) => render::deleted_text(deleted),
        (Outcome::Declined, _) => {
            out.status("nothing deleted");
            return Ok(ExitCode::FAILURE);
        }
    };
    write_results(out, &text)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes a command's results document on stdout: `Ok(false)` when the reader went away (a
/// broken pipe is not an error: `| head` is a normal end), an error saying what to check when
/// the write fails otherwise.
fn write_results(out: Output, text: &str) -> anyhow::Result<bool> {
    match out.document(text) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(error::InvError::Output(format!(
            "cannot write the results: {e} (is the disk full, or the output closed?)"
        ))
        .into()),
    }
}

/// `bench` comparing configurations: its table or JSON, then 1 when a row is worse than the
/// baseline or a message went unconfirmed, 130/143 when a signal ended it early.
async fn run_workbench(
    common: &settings::CommonSettings,
    settings: &settings::WorkbenchSettings,
    shutdown: &Shutdown,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let addr = common.broker.addr();
    let outcome = commands::workbench::run(common, settings, shutdown, out)
        .await
        .with_context(|| format!("bench at {addr}"))?;
    let text = match out.json {
        true => report::json_line(&outcome).context("encoding the results")?,
        false => outcome.render_text(),
    };
    if !write_results(out, &text)? {
        return Ok(ExitCode::SUCCESS);
    }
    let regressions = outcome.regressions();
    if !regressions.is_empty() {
        let rows: Vec<&str> = regressions.iter().map(|r| r.label.as_str()).collect();
        // Said even with -q: this is the run's finding, and why it exits 1.
        eprintln!(
            "invstream: worse than baseline '{}': {}",
            outcome.baseline.as_ref().map_or("", |b| b.name.as_str()),
            rows.join("; ")
        );
    }
    Ok(match shutdown.received() {
        Some(signal) => ExitCode::from(signal.exit_code()),
        None if !regressions.is_empty() || outcome.failed > 0 => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    })
}

/// `bench --find-max-rate`: the rate found and the tries, as text or JSON; 1 when no rate was
/// sustained, 130/143 when a signal ended the search early.
async fn run_max_rate(
    common: &settings::CommonSettings,
    settings: &settings::MaxRateSettings,
    shutdown: &Shutdown,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let addr = common.broker.addr();
    let outcome = commands::max_rate::run(common, settings, shutdown, out)
        .await
        .with_context(|| format!("bench --find-max-rate at {addr}"))?;
    let text = match out.json {
        true => report::max_rate::json(&outcome).context("encoding the results")?,
        false => report::max_rate::text(&outcome),
    };
    if !write_results(out, &text)? {
        return Ok(ExitCode::SUCCESS);
    }
    Ok(match shutdown.received() {
        Some(signal) => ExitCode::from(signal.exit_code()),
        None if outcome.max_sustainable_rate.is_none() => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    })
}

/// `bench --workload`: the topics' table and totals, or JSON; 1 when an update went
/// unconfirmed, 130/143 when a signal ended it early.
async fn run_workload(
    common: &settings::CommonSettings,
    settings: &settings::WorkloadSettings,
    bench: &settings::BenchSettings,
    shutdown: &Shutdown,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let addr = common.broker.addr();
    let outcome = commands::workload::run(common, settings, bench, shutdown, out)
        .await
        .with_context(|| format!("bench --workload {} at {addr}", settings.file.display()))?;
    let text = match out.json {
        true => report::workload::json(&outcome).context("encoding the results")?,
        false => report::workload::text(&outcome),
    };
    if !write_results(out, &text)? {
        return Ok(ExitCode::SUCCESS);
    }
    Ok(match shutdown.received() {
        Some(signal) => ExitCode::from(signal.exit_code()),
        None if outcome.failed > 0 || outcome.confirmed < outcome.published => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    })
}

fn exit_code(summary: &RunSummary, shutdown: &Shutdown) -> ExitCode {
    let verify_failed = std::iter::once(summary)
        .chain(&summary.consumers)
        .any(|s| s.verify.as_ref().is_some_and(|v| !v.ok));
    if verify_failed {
        return ExitCode::FAILURE;
    }
    // A run cut short by a signal says so, whatever it left unconfirmed (its summary counts
    // those as failed and the resume command was printed); a server (serve) stopping on one
    // is its normal end.
    if let (true, Some(signal)) = (summary.command.publishes_a_run(), shutdown.received()) {
        return ExitCode::from(signal.exit_code());
    }
    // A group that lost an instance did not run the benchmark asked for: every instance says so.
    let lost = summary
        .instance_summaries
        .iter()
        .any(|s| s.instance.as_ref().is_some_and(|i| i.lost_at_s.is_some()));
    if lost {
        return ExitCode::FAILURE;
    }
    match summary.details {
        CommandDetails::Produce { failed, .. } | CommandDetails::Bench { failed, .. }
            if failed > 0 =>
        {
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}
