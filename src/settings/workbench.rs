//! `bench --param …`: every combination of the parameters' values becomes a bench configuration,
//! checked here like any bench command line (the command line parsed again with the
//! combination's values, a repeated flag's last value winning), so a value that cannot work
//! is refused before the first run starts.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, FromArgMatches};

use super::{bench, checks, BenchSettings};
use crate::cli::{usage_error, BenchArgs, Cli, Command, ParamValues};
use crate::error::{InvError, Result};
use crate::workbench::baseline::{self, Noise};
use crate::workbench::export::ExportFormat;
use crate::workbench::{label, Param, Workbench};

/// `bench` comparing configurations.
#[derive(Debug)]
pub struct WorkbenchSettings {
    /// Every combination that can run, the first parameter's values varying slowest.
    pub configurations: Vec<Configuration>,
    /// Combinations whose flags cannot work together (e.g. compression without sub-entry
    /// batches), with the reason: said, and left out of the runs.
    pub skipped: Vec<(String, String)>,
    pub runs: u32,
    pub warmup: Option<Duration>,
    /// Files to write the results to, `--report` included.
    pub exports: Vec<(ExportFormat, PathBuf)>,
    /// `--save-baseline`: the name and the directory.
    pub save_baseline: Option<(String, PathBuf)>,
    /// `--baseline`: its name and what it holds, read before anything runs.
    pub baseline: Option<(String, Box<Workbench>)>,
    pub noise: Noise,
    /// The command line as typed, passwords redacted, for the report and the exports.
    pub command_line: String,
}

/// One combination and the bench settings it makes.
#[derive(Debug)]
pub struct Configuration {
    pub params: Vec<Param>,
    pub label: String,
    pub settings: BenchSettings,
}

/// Flags that belong to the comparison or to one run's files, not to a configuration.
const NOT_PARAMETERS: [&str; 19] = [
    "prometheus",
    "no-tui",
    "param",
    "runs",
    "warmup",
    "export-json",
    "export-csv",
    "export-markdown",
    "report",
    "save-baseline",
    "baseline",
    "baseline-dir",
    "noise",
    "keep-stream",
    "hdr-log",
    "plot",
    "export-omb",
    "no-filter-values",
    "help",
];

pub fn workbench(cli: &Cli, args: &BenchArgs) -> Result<WorkbenchSettings> {
    let asked = &args.workbench;
    for (flag, given) in [
        ("--plot", args.plot.is_some()),
        ("--hdr-log", args.hdr_log.is_some()),
        ("--keep-stream", args.keep_stream),
        ("--prometheus", args.prometheus.is_some()),
    ] {
        if given {
            return Err(InvError::usage(format!(
                "{flag} is for a single bench run, and comparing configurations makes a stream per run (deleted after it): use --report FILE.html for the charts, or drop {flag}"
            )));
        }
    }
    let mut exports = Vec::new();
    for (format, path) in [
        (ExportFormat::Json, &asked.export_json),
        (ExportFormat::Csv, &asked.export_csv),
        (ExportFormat::Markdown, &asked.export_markdown),
        (ExportFormat::Html, &asked.report),
    ] {
        if let Some(path) = path {
            let extension = (format == ExportFormat::Html).then_some("html");
            checks::output_file(format.flag(), path, extension)?;
            exports.push((format, path.clone()));
        }
    }
    let dir = asked
        .baseline_dir
        .clone()
        .unwrap_or_else(baseline::default_dir);
    let save_baseline = match &asked.save_baseline {
        Some(name) => {
            baseline::check_name(name)
                .map_err(|e| InvError::usage(format!("--save-baseline {e}")))?;
            Some((name.clone(), dir.clone()))
        }
        None => None,
    };
    let baseline = match &asked.baseline {
        Some(name) => {
            baseline::check_name(name).map_err(|e| InvError::usage(format!("--baseline {e}")))?;
            Some((name.clone(), Box::new(baseline::load(&dir, name)?)))
        }
        None => None,
    };
    checks::positive("--warmup", asked.warmup, "warm nothing up")?;
    let (mut configurations, mut skipped) = (Vec::new(), Vec::new());
    for params in combinations(&asked.param) {
        match configuration(cli, params)? {
            Ok(configuration) => configurations.push(configuration),
            Err(refused) => skipped.push(refused),
        }
    }
    if configurations.is_empty() {
        let (label, reason) = &skipped[0];
        return Err(InvError::usage(format!(
            "--param: no combination can run (e.g. {label}: {reason})"
        )));
    }
    Ok(WorkbenchSettings {
        configurations,
        skipped,
        runs: asked.runs,
        warmup: asked.warmup,
        exports,
        save_baseline,
        baseline,
        noise: asked.noise.map_or(Noise::BaselineRange, Noise::Percent),
        command_line: command_line(&cli.raw_args),
    })
}

/// Every combination of the values, hyperfine's order: the last parameter varies fastest.
fn combinations(params: &[ParamValues]) -> Vec<Vec<Param>> {
    let mut combinations = vec![Vec::new()];
    for param in params {
        combinations = combinations
            .into_iter()
            .flat_map(|prefix: Vec<Param>| {
                param.values.iter().map(move |value| {
                    let mut combination = prefix.clone();
                    combination.push(Param {
                        name: param.name.clone(),
                        value: value.clone(),
                    });
                    combination
                })
            })
            .collect();
    }
    combinations
}

/// The bench settings of one combination: the command line as typed with the combination's
/// values added (a flag without a value is added for `true`, taken out for `false`), parsed and
/// checked again. A value a flag cannot take is an error; flags that parse but cannot work
/// together give the combination's label and why, to be skipped.
fn configuration(
    cli: &Cli,
    params: Vec<Param>,
) -> Result<std::result::Result<Configuration, (String, String)>> {
    // The first parse's variables and config file, so a combination differs only in its values.
    let mut command = cli
        .sources
        .command()
        .map_err(|e| InvError::usage(usage_error::one_line(&e)))?
        .mut_subcommand("bench", |bench| bench.args_override_self(true));
    let bench_flags = command
        .find_subcommand("bench")
        .expect("bench is a subcommand");
    let mut argv = cli.raw_args.clone();
    let label = label(&params);
    // Flags a combination turns off: off whatever their variable or the config file says.
    let mut turned_off = Vec::new();
    for param in &params {
        let known = bench_flags
            .get_arguments()
            .find(|a| a.get_long() == Some(param.name.as_str()))
            .filter(|_| !NOT_PARAMETERS.contains(&param.name.as_str()));
        let Some(flag) = known else {
            let names: Vec<&str> = bench_flags
                .get_arguments()
                .filter(|a| !a.is_hide_set())
                .filter_map(|a| a.get_long())
                .filter(|name| !NOT_PARAMETERS.contains(name))
                .collect();
            return Err(InvError::usage(format!(
                "--param {}: not a bench flag that can vary; use one of {}",
                param.name,
                names.join(", ")
            )));
        };
        let long = format!("--{}", param.name);
        if matches!(flag.get_action(), ArgAction::SetTrue) {
            match param.value.as_str() {
                "true" => argv.push(long.into()),
                "false" => {
                    argv.retain(|a| *a != *long);
                    turned_off.push(flag.get_id().clone());
                }
                other => {
                    return Err(InvError::usage(format!(
                    "--param {}={other}: {long} takes no value, so its values are true and false",
                    param.name
                )))
                }
            }
        } else {
            argv.push(format!("{long}={}", param.value).into());
        }
    }
    command = command.mut_subcommand("bench", |bench| {
        turned_off.iter().fold(bench, |bench, id| {
            bench.mut_arg(id, |flag| flag.env(None).default_value("false"))
        })
    });
    let refused = |reason: String| InvError::usage(format!("--param {label}: {reason}"));
    let matches = command
        .try_get_matches_from(&argv)
        .map_err(|e| refused(usage_error::one_line(&e)))?;
    let parsed = Cli::from_arg_matches(&matches).map_err(|e| refused(usage_error::one_line(&e)))?;
    let Command::Bench(args) = &parsed.command else {
        return Err(refused("not a bench command line".into()));
    };
    Ok(match bench(args) {
        Ok(settings) => Ok(Configuration {
            params,
            label,
            settings,
        }),
        Err(e) => Err((label, e.to_string())),
    })
}

/// The arguments as one line a shell would take back, URIs without their passwords.
fn command_line(raw_args: &[std::ffi::OsString]) -> String {
    raw_args
        .iter()
        .enumerate()
        .map(|(index, arg)| {
            let arg = arg.to_string_lossy();
            let arg = match index {
                // The program, as the user would type it.
                0 => "invstream".to_string(),
                _ => crate::broker::redact_uri(&arg),
            };
            match arg.contains(|c: char| c.is_whitespace() || "'\"$`\\;&|<>*?".contains(c)) {
                true => format!("'{}'", arg.replace('\'', "'\\''")),
                false => arg,
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::{from_cli, CommandSettings};
    use super::*;
    use rabbitmq_stream_client::types::CompressionType;

    fn parse(args: &[&str]) -> Result<WorkbenchSettings> {
        let cli =
            Cli::try_parse_command_line(std::iter::once("invstream").chain(args.iter().copied()))
                .map_err(|e| InvError::usage(e.to_string()))?;
        match from_cli(&cli)?.1 {
            CommandSettings::Workbench(settings) => Ok(*settings),
            other => panic!("not a workbench: {other:?}"),
        }
    }

    /// A combination parses with the first parse's config file, and a flag it turns off is
    /// off even where the file turns it on.
    #[test]
    fn combinations_keep_the_config_file_and_turn_its_flags_off() {
        let config = crate::cli::config_file::ConfigFile::parse(
            std::path::Path::new("c.toml"),
            "[bench]\ncount = 4000\nfilter-values = true",
        )
        .unwrap();
        let sources = crate::cli::Sources {
            environment: false,
            config: Some(config),
        };
        let argv = ["invstream", "bench", "--param", "filter-values=true,false"];
        let matches = sources
            .command()
            .unwrap()
            .try_get_matches_from(argv)
            .unwrap();
        let mut cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap();
        cli.raw_args = argv.iter().map(Into::into).collect();
        cli.sources = sources;
        let CommandSettings::Workbench(settings) = from_cli(&cli).unwrap().1 else {
            panic!("not a workbench")
        };
        let filter_values: Vec<(bool, u64)> = settings
            .configurations
            .iter()
            .map(|c| (c.settings.publish.filter_values, c.settings.count))
            .collect();
        assert_eq!(filter_values, [(true, 4000), (false, 4000)]);
    }

    #[test]
    fn every_combination_becomes_a_configuration_with_its_values() {
        let settings = parse(&[
            "bench",
            "--count",
            "5000",
            "--param",
            "sub-entry-size=10,100",
            "--param",
            "compression=none,zstd",
            "--runs",
            "3",
        ])
        .unwrap();
        let labels: Vec<&str> = settings
            .configurations
            .iter()
            .map(|c| c.label.as_str())
            .collect();
        assert_eq!(
            labels,
            [
                "sub-entry-size=10 compression=none",
                "sub-entry-size=10 compression=zstd",
                "sub-entry-size=100 compression=none",
                "sub-entry-size=100 compression=zstd",
            ]
        );
        let last = &settings.configurations[3].settings;
        assert_eq!(last.count, 5000, "flags outside --param stay");
        assert_eq!(last.publish.batching.sub_entry_size, 100);
        assert_eq!(last.publish.batching.compression, CompressionType::Zstd);
        assert_eq!(
            settings.configurations[0]
                .settings
                .publish
                .batching
                .compression,
            CompressionType::None
        );
        assert_eq!(settings.runs, 3);
    }

    #[test]
    fn combinations_whose_flags_cannot_work_together_are_skipped_with_the_reason() {
        let settings = parse(&[
            "bench",
            "--param",
            "sub-entry-size=1,10",
            "--param",
            "compression=none,zstd",
        ])
        .unwrap();
        assert_eq!(settings.configurations.len(), 3);
        assert_eq!(settings.skipped.len(), 1);
        assert_eq!(settings.skipped[0].0, "sub-entry-size=1 compression=zstd");
        assert!(settings.skipped[0].1.contains("sub-entry"));
        let error = parse(&["bench", "--param", "compression=zstd,gzip"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("no combination can run"), "{error}");
    }

    #[test]
    fn a_value_given_outside_param_is_overridden_and_flags_toggle() {
        let settings = parse(&[
            "bench",
            "--producers",
            "4",
            "--filter-values",
            "--param",
            "producers=1,2",
            "--param",
            "filter-values=true,false",
        ])
        .unwrap();
        let producers: Vec<u64> = settings
            .configurations
            .iter()
            .map(|c| c.settings.producers)
            .collect();
        assert_eq!(producers, [1, 1, 2, 2]);
        let filters: Vec<bool> = settings
            .configurations
            .iter()
            .map(|c| c.settings.publish.filter_values)
            .collect();
        assert_eq!(filters, [true, false, true, false]);
    }

    #[test]
    fn a_parameter_that_cannot_work_is_refused_naming_its_combination() {
        let error = parse(&["bench", "--param", "compression=none,lz9"])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("--param compression=lz9:"), "{error}");
        let error = parse(&["bench", "--param", "uri=a,b"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a bench flag that can vary"), "{error}");
        assert!(error.contains("sub-entry-size"), "{error}");
        let error = parse(&["bench", "--param", "runs=1,2"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a bench flag that can vary"), "{error}");
        let error = parse(&["bench", "--runs", "2", "--plot", "x.svg"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--report"), "{error}");
        let error = parse(&["bench", "--param", "filter-values=yes"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("true and false"), "{error}");
    }

    #[test]
    fn the_command_line_is_recorded_without_passwords() {
        let line = command_line(&[
            "target/debug/invstream".into(),
            "--uri".into(),
            "rabbitmq-stream://guest:secret@localhost:5552/%2f".into(),
            "bench".into(),
            "--param".into(),
            "rate=1 000".into(),
        ]);
        assert_eq!(
            line,
            "invstream --uri 'rabbitmq-stream://guest:***@localhost:5552/%2f' bench --param 'rate=1 000'"
        );
    }
}
