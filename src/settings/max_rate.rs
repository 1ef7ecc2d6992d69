//! `bench --find-max-rate`: the search's settings, and the bench run each tried rate starts
//! from (its `--rate` and `--duration` set per try).

use std::time::Duration;

use super::{bench, BenchSettings};
use crate::cli::BenchArgs;
use crate::error::{InvError, Result};

#[derive(Debug, Clone)]
pub struct MaxRateSettings {
    /// Every try's bench run, without its rate and duration.
    pub bench: BenchSettings,
    pub start_rate: u64,
    /// The bound on the confirm p99.
    pub max_p99: Duration,
    /// How long each rate runs.
    pub settle: Duration,
    /// A fraction (0.05 for `5%`).
    pub precision: f64,
}

impl MaxRateSettings {
    /// The bench run that tries `rate`.
    pub fn trial(&self, rate: u64) -> BenchSettings {
        BenchSettings {
            rate: Some(rate),
            duration: Some(self.settle),
            ..self.bench.clone()
        }
    }
}

pub fn max_rate(args: &BenchArgs) -> Result<MaxRateSettings> {
    let asked = &args.max_rate;
    for (flag, given, instead) in [
        (
            "--rate",
            args.rate.is_some(),
            "the search sets the rate of each try",
        ),
        (
            "--duration",
            args.duration.is_some(),
            "each rate runs for --settle",
        ),
        (
            "--backlog",
            args.backlog.is_some(),
            "each try's consumers read from its start",
        ),
        (
            "--param",
            args.workbench.asked(),
            "compare configurations and search a rate in separate runs",
        ),
        (
            "--plot",
            args.plot.is_some(),
            "each try is a run of its own",
        ),
        (
            "--hdr-log",
            args.hdr_log.is_some(),
            "each try is a run of its own",
        ),
        (
            "--export-omb",
            args.export_omb.is_some(),
            "each try is a run of its own",
        ),
        (
            "--keep-stream",
            args.keep_stream,
            "each try makes a stream of its own, deleted after it",
        ),
        (
            "--prometheus",
            args.prometheus.is_some(),
            "each try is a run of its own",
        ),
    ] {
        if given {
            // `--param` stands for every comparing flag.
            let flag = match flag {
                "--param" => "--param, --runs, --warmup, the exports and baselines",
                other => other,
            };
            return Err(InvError::usage(format!(
                "--find-max-rate cannot take {flag}: {instead}"
            )));
        }
    }
    if asked.settle < Duration::from_secs(2) {
        return Err(InvError::usage(format!(
            "--settle {} is too short to judge a rate: its second half must hold whole seconds (try 10s)",
            humantime::format_duration(asked.settle)
        )));
    }
    if asked.max_p99.is_zero() {
        return Err(InvError::usage(
            "--max-p99 0 allows no confirm at all: give a bound such as 100ms",
        ));
    }
    if asked.precision <= 0.0 {
        return Err(InvError::usage(
            "--precision 0% would never end: give e.g. 5%",
        ));
    }
    Ok(MaxRateSettings {
        bench: bench(args)?,
        start_rate: asked.start_rate,
        max_p99: asked.max_p99,
        settle: asked.settle,
        precision: asked.precision / 100.0,
    })
}
