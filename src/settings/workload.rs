//! `bench --workload FILE.yaml`: the OMB workload file read and mapped ([`crate::workload`]),
//! its flags put before the command line's own (so those win: `--duration 20s` shortens a
//! 15-minute workload), and the whole parsed and checked again as any bench command line.

use std::time::Duration;

use clap::FromArgMatches;

use super::{bench, max_rate, BenchSettings, MaxRateSettings};
use crate::cli::{usage_error, BenchArgs, Cli, Command};
use crate::error::{InvError, Result};
use crate::workload;

#[derive(Debug)]
pub struct WorkloadSettings {
    /// The workload's `name` (else the file's stem).
    pub name: String,
    pub file: std::path::PathBuf,
    /// One bench per topic, at once, each on a stream (or super stream) of its own.
    pub topics: u32,
    /// An unmeasured run of this long first (OMB's warm-up); `None` for none.
    pub warmup: Option<Duration>,
    /// What the file asks and invstream does otherwise, said before the run.
    pub warnings: Vec<String>,
    pub run: WorkloadRun,
}

#[derive(Debug)]
pub enum WorkloadRun {
    /// Each topic's bench run.
    Bench(Box<BenchSettings>),
    /// `producerRate: 0` (or `--find-max-rate`) on one topic: the max-rate search.
    MaxRate(Box<MaxRateSettings>),
}

pub fn workload(cli: &Cli, args: &BenchArgs) -> Result<WorkloadSettings> {
    let file = args.workload.clone().expect("asked for a workload");
    let refused =
        |reason: String| InvError::usage(format!("--workload {}: {reason}", file.display()));
    let text = std::fs::read_to_string(&file).map_err(|e| {
        refused(format!(
            "cannot read it ({e}): give the path of an OMB workload YAML file"
        ))
    })?;
    let parsed = workload::parse(&text).map_err(|e| refused(e.to_string()))?;
    let stem = file
        .file_stem()
        .map_or("workload".into(), |s| s.to_string_lossy().into_owned());
    let dir = file.parent().unwrap_or(std::path::Path::new("."));
    let plan = workload::plan(&parsed, &stem, dir);
    // The file's flags right after `bench`, the command line's own after them.
    let mut argv = cli.raw_args.clone();
    let at = argv
        .iter()
        .position(|a| a == "bench")
        .map_or(argv.len(), |i| i + 1);
    for (offset, flag) in plan.flags.iter().enumerate() {
        argv.insert(at + offset, flag.into());
    }
    let command = cli
        .sources
        .command()
        .map_err(|e| InvError::usage(usage_error::one_line(&e)))?
        .mut_subcommand("bench", |bench| bench.args_override_self(true));
    let matches = command
        .try_get_matches_from(&argv)
        .map_err(|e| refused(usage_error::one_line(&e)))?;
    let reparsed =
        Cli::from_arg_matches(&matches).map_err(|e| refused(usage_error::one_line(&e)))?;
    let Command::Bench(mut args) = reparsed.command else {
        return Err(refused("not a bench command line".into()));
    };
    // The warm-up is the workload's, not a comparison's.
    let warmup = args.workbench.warmup.take().filter(|w| !w.is_zero());
    if args.workbench.asked() {
        return Err(refused(
            "--param, --runs, the exports and baselines do not take a workload yet: run the workload, or compare flags without it".into(),
        ));
    }
    let run = match args.max_rate.find_max_rate {
        true if plan.topics > 1 => {
            return Err(refused(format!(
                "--find-max-rate searches one topic's rate, and this workload has {}",
                plan.topics
            )))
        }
        true => WorkloadRun::MaxRate(Box::new(max_rate::max_rate(&args)?)),
        false => WorkloadRun::Bench(Box::new(bench(&args)?)),
    };
    Ok(WorkloadSettings {
        name: plan.name,
        file,
        topics: plan.topics,
        warmup,
        warnings: plan.warnings,
        run,
    })
}
