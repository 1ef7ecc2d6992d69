//! `invstream bench --param … --runs …`: every configuration benched `--runs` times (after a
//! `--warmup` run), each run on a stream of its own deleted after it, the broker's version and
//! nodes noted first; then one results model ([`Workbench`]) rendered as a table, written to
//! the exports and the report, saved as a baseline or compared with one.

use std::time::Duration;

use serde::Serialize;

use crate::broker::VersionProbe;
use crate::commands::bench::{self, BenchRun};
use crate::error::Result;
use crate::omb;
use crate::report::{thousands, Output};
use crate::settings::{CommonSettings, Configuration, WorkbenchSettings};
use crate::shutdown::Shutdown;
use crate::stats::{process_cpu_time, CommandDetails};
use crate::workbench::baseline::{self, Noise, RowComparison, Verdict};
use crate::workbench::export::{self, render_table};
use crate::workbench::{
    percentile_curve, BrokerState, ConfigurationResult, NodeState, RunResult, Skipped, Workbench,
};

/// What the workbench did: the results, the comparison with a baseline, and whether it ended
/// early. Its JSON form is `bench --param --json`'s output.
#[derive(Debug, Serialize)]
pub struct WorkbenchOutcome {
    pub command: &'static str,
    #[serde(flatten)]
    pub results: Workbench,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineComparison>,
    /// A signal ended it: the configurations not run are missing.
    pub interrupted: bool,
    /// Messages not confirmed over all runs.
    pub failed: u64,
}

#[derive(Debug, Serialize)]
pub struct BaselineComparison {
    pub name: String,
    /// `baseline range` or a percentage.
    pub noise: String,
    pub rows: Vec<RowComparison>,
}

impl WorkbenchOutcome {
    /// Rows worse than the baseline.
    pub fn regressions(&self) -> Vec<&RowComparison> {
        self.baseline
            .iter()
            .flat_map(|b| &b.rows)
            .filter(|row| row.verdict == Verdict::Worse)
            .collect()
    }

    /// The table, and each row against the baseline.
    pub fn render_text(&self) -> String {
        let mut text = format!(
            "bench: {} configuration(s), {} run(s) each, {}\n\n{}",
            self.results.configurations.len(),
            self.results.runs_per_configuration,
            self.results.broker.describe(),
            render_table(&self.results)
        );
        for skipped in &self.results.skipped {
            text.push_str(&format!("skipped {}: {}\n", skipped.label, skipped.reason));
        }
        if let Some(comparison) = &self.baseline {
            text.push_str(&format!(
                "\nagainst baseline '{}' (noise: {}):\n",
                comparison.name, comparison.noise
            ));
            for row in &comparison.rows {
                text.push_str(&format!("  {}: {}\n", row.label, baseline::describe(row)));
            }
        }
        if self.interrupted {
            text.push_str("\nstopped early: configurations not run are missing\n");
        }
        text
    }
}

/// Every configuration's runs, then the exports and the baseline.
pub async fn run(
    common: &CommonSettings,
    settings: &WorkbenchSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<WorkbenchOutcome> {
    let broker = broker_state(common).await?;
    out.status(&format!(
        "bench comparing {} configuration(s) × {} run(s) on {}",
        settings.configurations.len(),
        settings.runs,
        broker.describe()
    ));
    for (label, reason) in &settings.skipped {
        out.status(&format!("skipping {label}: {reason}"));
    }
    let started = now_rfc3339();
    let mut configurations = Vec::new();
    let mut failed = 0;
    let total = settings.configurations.len();
    for (index, configuration) in settings.configurations.iter().enumerate() {
        let place = format!("[{}/{total}] {}", index + 1, configuration.label);
        let runs =
            run_configuration(common, settings, configuration, &place, shutdown, out).await?;
        failed += runs.iter().map(|r| r.failed).sum::<u64>();
        if !runs.is_empty() {
            configurations.push(ConfigurationResult::new(configuration.params.clone(), runs));
        }
        if shutdown.received().is_some() {
            break;
        }
    }
    let results = Workbench {
        command: settings.command_line.clone(),
        started,
        broker,
        runs_per_configuration: settings.runs,
        warmup_s: settings.warmup.map(|w| w.as_secs_f64()),
        configurations,
        skipped: settings
            .skipped
            .iter()
            .map(|(label, reason)| Skipped {
                label: label.clone(),
                reason: reason.clone(),
            })
            .collect(),
    };
    for (format, path) in &settings.exports {
        export::write(*format, path, &results)?;
        out.status(&format!("wrote {}", path.display()));
    }
    if let Some((name, dir)) = &settings.save_baseline {
        let file = baseline::save(dir, name, &results)?;
        out.status(&format!("saved baseline '{name}' as {}", file.display()));
    }
    let baseline = settings
        .baseline
        .as_ref()
        .map(|(name, before)| BaselineComparison {
            name: name.clone(),
            noise: match settings.noise {
                Noise::BaselineRange => "the baseline's min–max range, at least ±5%".into(),
                Noise::Percent(p) => format!("±{p}%"),
            },
            rows: baseline::compare(before, &results, settings.noise),
        });
    Ok(WorkbenchOutcome {
        command: "bench",
        results,
        baseline,
        interrupted: shutdown.received().is_some(),
        failed,
    })
}

/// A configuration's warm-up and runs; a run a signal cut short is not counted.
async fn run_configuration(
    common: &CommonSettings,
    settings: &WorkbenchSettings,
    configuration: &Configuration,
    place: &str,
    shutdown: &Shutdown,
    out: Output,
) -> Result<Vec<RunResult>> {
    // Each run speaks only through its result: its own lines would bury the table's.
    let quiet = Output::silent();
    if let Some(warmup) = settings.warmup {
        out.status(&format!(
            "{place}: warm-up for {}",
            humantime::format_duration(warmup)
        ));
        let mut warm = configuration.settings.clone();
        warm.duration = Some(warmup);
        bench::run_measured(common, &warm, shutdown, quiet).await?;
    }
    let mut runs = Vec::new();
    for number in 1..=settings.runs {
        if shutdown.received().is_some() {
            break;
        }
        let cpu_before = process_cpu_time();
        let measured =
            bench::run_measured(common, &configuration.settings, shutdown, quiet).await?;
        let cpu = process_cpu_time().saturating_sub(cpu_before);
        if measured.summary.interrupted {
            out.status(&format!(
                "{place}, run {number}: stopped early, not counted"
            ));
            break;
        }
        // Each run is a series of its own in OMB's charts, named by its configuration.
        let driver = format!("{} {}", omb::DRIVER, configuration.label);
        let this_run = std::slice::from_ref(&measured);
        bench::export_omb(
            &configuration.settings,
            bench::OMB_WORKLOAD,
            driver,
            1,
            this_run,
            out,
        )?;
        let run = run_result(measured, cpu);
        out.status(&format!(
            "{place}, run {number}/{}: {} msg/s published, {} msg/s consumed, confirm p99 {:.2} ms",
            settings.runs,
            thousands(run.publish_msg_per_s.round() as u64),
            thousands(run.consume_msg_per_s.round() as u64),
            run.confirm_p99_us as f64 / 1000.0
        ));
        runs.push(run);
    }
    Ok(runs)
}

/// A bench run's figures for the results model.
fn run_result(measured: BenchRun, cpu: Duration) -> RunResult {
    let BenchRun {
        summary,
        confirm,
        end_to_end,
        ..
    } = measured;
    let (confirmed, failed, consumed, consumed_per_s, timeline) = match summary.details {
        CommandDetails::Bench {
            confirmed,
            failed,
            consumed,
            consumed_per_s,
            timeline,
            ..
        } => (confirmed, failed, consumed, consumed_per_s, timeline),
        _ => (0, 0, 0, 0.0, Vec::new()),
    };
    let (confirm_summary, end_to_end_summary) = (confirm.summary(), end_to_end.summary());
    RunResult {
        stream: summary.stream,
        published: summary.messages,
        confirmed,
        consumed,
        failed,
        publish_msg_per_s: summary.msg_per_s,
        consume_msg_per_s: consumed_per_s,
        publish_mb_per_s: summary.mb_per_s,
        confirm_p50_us: confirm_summary.p50,
        confirm_p99_us: confirm_summary.p99,
        end_to_end_p50_us: end_to_end_summary.p50,
        end_to_end_p99_us: end_to_end_summary.p99,
        client_cpu_s: (cpu.as_secs_f64() * 1000.0).round() / 1000.0,
        timeline,
        confirm_curve: percentile_curve(&confirm),
        end_to_end_curve: percentile_curve(&end_to_end),
    }
}

/// Each node of `--uri` and the version it reports, noted before the first run.
pub async fn broker_state(common: &CommonSettings) -> Result<BrokerState> {
    let mut nodes = Vec::new();
    for node in common.broker.each_node() {
        let version = VersionProbe::new(&node)?.version().await;
        nodes.push(NodeState {
            addr: node.addr(),
            version,
        });
    }
    Ok(BrokerState { nodes })
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
