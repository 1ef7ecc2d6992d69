//! Baselines: a workbench run's results saved under a name (`--save-baseline`), and a later run
//! compared with them configuration by configuration (`--baseline`), each row marked better,
//! worse or within noise. A worse row makes the command exit non-zero, for CI.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::export::{Exporter, JsonExporter};
use super::{Figure, Spread, Workbench};
use crate::error::{InvError, Result};

/// Where baselines are kept without `--baseline-dir` or `INVSTREAM_BASELINE_DIR`:
/// `$XDG_DATA_HOME/invstream/baselines`, else `~/.local/share/invstream/baselines`.
pub fn default_dir() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("invstream").join("baselines")
}

/// A baseline's name: letters, digits, `.`, `_` and `-`, not starting with a dot (it becomes a
/// file name).
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let fine = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    match fine {
        true => Ok(()),
        false => Err(format!(
            "'{name}' is not a baseline name: use letters, digits, '.', '_' and '-', e.g. main-2026-12"
        )),
    }
}

pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Stores `results` as baseline `name` in `dir` (made if missing); says where.
pub fn save(dir: &Path, name: &str, results: &Workbench) -> Result<PathBuf> {
    let failed = |e: std::io::Error| {
        InvError::Output(format!(
            "cannot save baseline '{name}' in {}: {e} (set another with --baseline-dir)",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let file = path(dir, name);
    std::fs::write(&file, JsonExporter.serialize(results)?).map_err(failed)?;
    Ok(file)
}

/// Baseline `name` from `dir`; a missing one is named with the ones that exist.
pub fn load(dir: &Path, name: &str) -> Result<Workbench> {
    let file = path(dir, name);
    let text = match std::fs::read(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let saved = saved_names(dir);
            let saved = match saved.is_empty() {
                true => "none saved yet".to_string(),
                false => format!("saved: {}", saved.join(", ")),
            };
            return Err(InvError::Usage(format!(
                "no baseline '{name}' in {} ({saved}); make one with --save-baseline {name}",
                dir.display()
            )));
        }
        Err(e) => {
            return Err(InvError::Usage(format!(
                "cannot read baseline {}: {e}",
                file.display()
            )))
        }
    };
    serde_json::from_slice(&text).map_err(|e| {
        InvError::Usage(format!(
            "baseline {} is not an invstream workbench result ({e}); save it again with --save-baseline {name}",
            file.display()
        ))
    })
}

fn saved_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(String::from)
        })
        .collect();
    names.sort();
    names
}

/// How far a figure may move before it counts: `--noise P%` around the baseline's median, or by
/// default the baseline's own min–max range, but never narrower than ±5% of its median (one
/// run has no range, and on a shared machine the same run moves a few percent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    BaselineRange,
    Percent(f64),
}

/// The narrowest default band, as a fraction of the baseline's median.
const SMALLEST_BAND: f64 = 0.05;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Better,
    WithinNoise,
    Worse,
    /// The baseline has no configuration of this label.
    New,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::WithinNoise => "within noise",
            Verdict::Worse => "worse",
            Verdict::New => "new",
        }
    }
}

/// One figure of a row against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct FigureChange {
    pub figure: &'static str,
    pub baseline: Spread,
    pub current: Spread,
    /// The current median against the baseline's, in percent.
    pub change_percent: f64,
    pub verdict: Verdict,
}

/// A configuration against the baseline's configuration of the same label.
#[derive(Debug, Clone, Serialize)]
pub struct RowComparison {
    pub label: String,
    /// Worse if any figure is worse; better if one is better and none worse.
    pub verdict: Verdict,
    pub figures: Vec<FigureChange>,
}

/// The figures a comparison judges: throughput, where higher is better. Latency percentiles of
/// short runs move far more than the machine does, so they are shown, not judged.
const JUDGED: [(&str, Figure); 2] = [
    ("publish msg/s", |c| c.stats.publish_msg_per_s),
    ("consume msg/s", |c| c.stats.consume_msg_per_s),
];

/// Every configuration of `current` against `baseline`.
pub fn compare(baseline: &Workbench, current: &Workbench, noise: Noise) -> Vec<RowComparison> {
    current
        .configurations
        .iter()
        .map(|now| {
            let Some(before) = baseline
                .configurations
                .iter()
                .find(|b| b.label == now.label)
            else {
                return RowComparison {
                    label: now.label.clone(),
                    verdict: Verdict::New,
                    figures: Vec::new(),
                };
            };
            let figures: Vec<FigureChange> = JUDGED
                .iter()
                .map(|(figure, spread)| judge(figure, spread(before), spread(now), noise))
                .collect();
            let verdict = if figures.iter().any(|f| f.verdict == Verdict::Worse) {
                Verdict::Worse
            } else if figures.iter().any(|f| f.verdict == Verdict::Better) {
                Verdict::Better
            } else {
                Verdict::WithinNoise
            };
            RowComparison {
                label: now.label.clone(),
                verdict,
                figures,
            }
        })
        .collect()
}

/// One higher-is-better figure against its band.
fn judge(figure: &'static str, baseline: Spread, current: Spread, noise: Noise) -> FigureChange {
    let (low, high) = match noise {
        Noise::Percent(p) => (
            baseline.median * (1.0 - p / 100.0),
            baseline.median * (1.0 + p / 100.0),
        ),
        Noise::BaselineRange => (
            baseline.min.min(baseline.median * (1.0 - SMALLEST_BAND)),
            baseline.max.max(baseline.median * (1.0 + SMALLEST_BAND)),
        ),
    };
    let verdict = if current.median < low {
        Verdict::Worse
    } else if current.median > high {
        Verdict::Better
    } else {
        Verdict::WithinNoise
    };
    let change_percent = match baseline.median {
        0.0 => 0.0,
        before => ((current.median / before - 1.0) * 1000.0).round() / 10.0,
    };
    FigureChange {
        figure,
        baseline,
        current,
        change_percent,
        verdict,
    }
}

/// "worse: publish msg/s -48.2%, consume msg/s -47.9%" for the table's last column.
pub fn describe(row: &RowComparison) -> String {
    if row.figures.is_empty() {
        return row.verdict.as_str().to_string();
    }
    let changes: Vec<String> = row
        .figures
        .iter()
        .map(|f| format!("{} {:+.1}%", f.figure, f.change_percent))
        .collect();
    format!("{}: {}", row.verdict.as_str(), changes.join(", "))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{configuration, workbench};
    use super::*;

    #[test]
    fn a_result_against_itself_is_within_noise() {
        let results = workbench(vec![configuration("rate", "1000", &[990.0, 1_000.0])]);
        for noise in [Noise::BaselineRange, Noise::Percent(5.0)] {
            let rows = compare(&results, &results, noise);
            assert_eq!(rows[0].verdict, Verdict::WithinNoise, "{noise:?}");
        }
    }

    #[test]
    fn half_the_throughput_is_worse_and_double_is_better() {
        let before = workbench(vec![configuration(
            "rate",
            "1000",
            &[990.0, 1_000.0, 1_010.0],
        )]);
        let slower = workbench(vec![configuration("rate", "1000", &[500.0, 505.0])]);
        let faster = workbench(vec![configuration("rate", "1000", &[2_000.0])]);
        let rows = compare(&before, &slower, Noise::BaselineRange);
        assert_eq!(rows[0].verdict, Verdict::Worse);
        assert_eq!(rows[0].figures[0].change_percent, -49.8);
        assert!(describe(&rows[0]).starts_with("worse: publish msg/s -49.8%"));
        assert_eq!(
            compare(&before, &faster, Noise::BaselineRange)[0].verdict,
            Verdict::Better
        );
    }

    #[test]
    fn the_band_is_the_baseline_range_or_the_noise_asked_for() {
        let before = workbench(vec![configuration("x", "1", &[900.0, 1_000.0, 1_100.0])]);
        let lower = workbench(vec![configuration("x", "1", &[920.0])]);
        assert_eq!(
            compare(&before, &lower, Noise::BaselineRange)[0].verdict,
            Verdict::WithinNoise,
            "inside the baseline's 900–1,100"
        );
        assert_eq!(
            compare(&before, &lower, Noise::Percent(5.0))[0].verdict,
            Verdict::Worse,
            "8% below the median, more than 5%"
        );
        let one_run = workbench(vec![configuration("x", "1", &[1_000.0])]);
        let slightly = workbench(vec![configuration("x", "1", &[960.0])]);
        assert_eq!(
            compare(&one_run, &slightly, Noise::BaselineRange)[0].verdict,
            Verdict::WithinNoise,
            "one run: the 5% floor"
        );
    }

    #[test]
    fn a_configuration_the_baseline_lacks_is_new() {
        let before = workbench(vec![configuration("x", "1", &[1.0])]);
        let now = workbench(vec![configuration("x", "2", &[1.0])]);
        assert_eq!(
            compare(&before, &now, Noise::BaselineRange)[0].verdict,
            Verdict::New
        );
    }

    #[test]
    fn saved_baselines_load_back_and_a_missing_one_names_the_saved() {
        let dir = tempfile::tempdir().unwrap();
        let results = workbench(vec![configuration("x", "1", &[1.0])]);
        save(dir.path(), "main", &results).unwrap();
        assert_eq!(load(dir.path(), "main").unwrap().configurations.len(), 1);
        let missing = load(dir.path(), "other").unwrap_err().to_string();
        assert!(missing.contains("saved: main"), "{missing}");
        assert!(check_name("../x").is_err());
        assert!(check_name("main-2026.12_a").is_ok());
    }
}
