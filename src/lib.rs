//! invstream: high-throughput ingestion of inventory updates into RabbitMQ Streams.
//!
//! The binary (`main.rs`) only parses arguments and calls [`run`]; everything else lives here so
//! tests and benchmarks use the same code the CLI runs:
//! - [`cli`]: arguments and their parsers
//! - [`broker`]: connection settings, connecting, stream creation, errors from the broker
//! - [`model`]: the inventory update and its generator
//! - [`entry`]: updates written straight into stream entry bytes (the fast publish path)
//! - [`input`]: the user's own updates from NDJSON files (gzip too) and stdin
//! - [`produce`] / [`consume`] / [`serve`] / [`bench`]: the commands
//! - [`stats`]: counters, latency histograms and [`stats::RunSummary`], the one result model
//! - [`report`]: how a summary, progress and status lines are shown
//! - [`plot`]: SVG plots and HdrHistogram interval logs of a benchmark
//! - [`verify`]: gap and duplicate checks of `seq` per producer (`consume --verify`)

pub mod bench;
pub mod broker;
pub mod cli;
pub mod consume;
pub mod entry;
pub mod error;
pub mod input;
pub mod model;
pub mod plot;
pub mod produce;
pub mod report;
pub mod serve;
pub mod stats;
pub mod verify;

use std::process::ExitCode;

use anyhow::Context;

use crate::broker::BrokerSettings;
use crate::cli::{Cli, Command};
use crate::report::Output;
use crate::stats::{CommandDetails, RunSummary};

/// Exit code after Ctrl-C, as shells use for SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs one command and says how the process should exit: 0 when everything asked for was done,
/// 1 when a message was not confirmed or `--verify` found a gap or duplicate, 130 after Ctrl-C
/// of a produce.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let broker = BrokerSettings::from_args(&cli.global)?;
    let stream = cli.global.stream.as_str();
    let out = Output {
        json: cli.global.json,
        quiet: cli.global.quiet,
        summary_to_stderr: matches!(&cli.command, Command::Consume(args) if args.print),
    };
    let summary = match &cli.command {
        Command::Produce(args) => produce::run(&broker, stream, args, out)
            .await
            .with_context(|| format!("produce to stream '{stream}' at {}", broker.addr()))?,
        Command::Consume(args) => consume::run(&broker, stream, args, out)
            .await
            .with_context(|| format!("consume from stream '{stream}' at {}", broker.addr()))?,
        Command::Serve(args) => serve::run(&broker, stream, args, out)
            .await
            .with_context(|| format!("serve stream '{stream}' at {}", broker.addr()))?,
        Command::Bench(args) => bench::run(&broker, stream, args, out)
            .await
            .with_context(|| format!("bench at {}", broker.addr()))?,
    };
    out.summary(&summary);
    Ok(exit_code(&summary))
}

fn exit_code(summary: &RunSummary) -> ExitCode {
    let verify_failed = std::iter::once(summary)
        .chain(&summary.consumers)
        .any(|s| s.verify.as_ref().is_some_and(|v| !v.ok));
    if verify_failed {
        return ExitCode::FAILURE;
    }
    match summary.details {
        CommandDetails::Produce { failed, .. } | CommandDetails::Bench { failed, .. }
            if failed > 0 =>
        {
            ExitCode::FAILURE
        }
        CommandDetails::Produce { .. } if summary.interrupted => ExitCode::from(EXIT_INTERRUPTED),
        _ => ExitCode::SUCCESS,
    }
}
