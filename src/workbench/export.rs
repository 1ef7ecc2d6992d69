//! The workbench's results as files (`--export-json`, `--export-csv`, `--export-markdown`,
//! `--report`) and as the table on the terminal: one exporter per format behind one trait, as in
//! hyperfine's `export` module.

use std::fmt::Write as _;
use std::path::Path;

use super::{Figure, Spread, Workbench};
use crate::error::{InvError, Result};

/// Turns the results into one file's bytes.
pub trait Exporter {
    fn serialize(&self, results: &Workbench) -> Result<Vec<u8>>;
}

/// The formats a user can ask for, by flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Csv,
    Markdown,
    Html,
}

impl ExportFormat {
    pub fn exporter(self) -> Box<dyn Exporter> {
        match self {
            ExportFormat::Json => Box::new(JsonExporter),
            ExportFormat::Csv => Box::new(CsvExporter),
            ExportFormat::Markdown => Box::new(MarkdownExporter),
            ExportFormat::Html => Box::new(super::html::HtmlExporter),
        }
    }

    /// The flag that asks for this format.
    pub fn flag(self) -> &'static str {
        match self {
            ExportFormat::Json => "--export-json",
            ExportFormat::Csv => "--export-csv",
            ExportFormat::Markdown => "--export-markdown",
            ExportFormat::Html => "--report",
        }
    }
}

/// Writes `results` in `format` to `path`; the error names the flag and the path.
pub fn write(format: ExportFormat, path: &Path, results: &Workbench) -> Result<()> {
    let bytes = format.exporter().serialize(results)?;
    std::fs::write(path, bytes).map_err(|e| {
        InvError::Output(format!(
            "cannot write {} {}: {e}",
            format.flag(),
            path.display()
        ))
    })
}

/// The whole model, every run's timeline and curves included (what `--baseline` reads back).
pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn serialize(&self, results: &Workbench) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(results)
            .map_err(|e| InvError::Output(format!("cannot encode the results: {e}")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// One row per configuration: each parameter, then each figure's median, min and max.
pub struct CsvExporter;

impl Exporter for CsvExporter {
    fn serialize(&self, results: &Workbench) -> Result<Vec<u8>> {
        let names = parameter_names(results);
        let mut header: Vec<String> = vec!["configuration".into()];
        header.extend(names.iter().cloned());
        header.push("runs".into());
        for (figure, _) in FIGURES {
            for part in ["median", "min", "max"] {
                header.push(format!("{figure}_{part}"));
            }
        }
        let mut text = csv_line(&header);
        for configuration in &results.configurations {
            let mut row = vec![configuration.label.clone()];
            for name in &names {
                let value = configuration.params.iter().find(|p| &p.name == name);
                row.push(value.map_or(String::new(), |p| p.value.clone()));
            }
            row.push(configuration.runs.len().to_string());
            for (_, figure) in FIGURES {
                let spread = figure(configuration);
                row.extend([spread.median, spread.min, spread.max].map(|v| v.to_string()));
            }
            text.push_str(&csv_line(&row));
        }
        Ok(text.into_bytes())
    }
}

/// The comparison table in Markdown, with the command and the broker above it.
pub struct MarkdownExporter;

impl Exporter for MarkdownExporter {
    fn serialize(&self, results: &Workbench) -> Result<Vec<u8>> {
        let mut text = format!(
            "`{}`\n\n{}, {} run(s) per configuration, started {}\n\n",
            results.command,
            results.broker.describe(),
            results.runs_per_configuration,
            results.started
        );
        let rows = table_rows(results);
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        text.push_str(&line(&rows[0]));
        text.push_str(&line(&vec!["---".to_string(); rows[0].len()]));
        for row in &rows[1..] {
            text.push_str(&line(row));
        }
        Ok(text.into_bytes())
    }
}

/// The figures the CSV shows, by name.
pub const FIGURES: [(&str, Figure); 8] = [
    ("publish_msg_per_s", |c| c.stats.publish_msg_per_s),
    ("consume_msg_per_s", |c| c.stats.consume_msg_per_s),
    ("publish_mb_per_s", |c| c.stats.publish_mb_per_s),
    ("confirm_p50_us", |c| c.stats.confirm_p50_us),
    ("confirm_p99_us", |c| c.stats.confirm_p99_us),
    ("end_to_end_p50_us", |c| c.stats.end_to_end_p50_us),
    ("end_to_end_p99_us", |c| c.stats.end_to_end_p99_us),
    ("client_cpu_s", |c| c.stats.client_cpu_s),
];

/// The comparison table as cells, header first: median and [min–max] of each figure.
pub fn table_rows(results: &Workbench) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "configuration",
        "publish msg/s",
        "consume msg/s",
        "MB/s",
        "confirm p50 ms",
        "confirm p99 ms",
        "e2e p50 ms",
        "e2e p99 ms",
        "client CPU s",
    ]
    .map(String::from)
    .to_vec()];
    for c in &results.configurations {
        let s = &c.stats;
        rows.push(vec![
            c.label.clone(),
            rate(s.publish_msg_per_s),
            rate(s.consume_msg_per_s),
            decimal(s.publish_mb_per_s, 1),
            millis(s.confirm_p50_us),
            millis(s.confirm_p99_us),
            millis(s.end_to_end_p50_us),
            millis(s.end_to_end_p99_us),
            decimal(s.client_cpu_s, 2),
        ]);
    }
    rows
}

/// The table for the terminal, columns aligned.
pub fn render_table(results: &Workbench) -> String {
    let rows = table_rows(results);
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(column, (cell, &width))| match column {
                0 => format!("{cell:<width$}"),
                _ => format!("{cell:>width$}"),
            })
            .collect();
        let _ = writeln!(text, "{}", cells.join("  ").trim_end());
    }
    text
}

/// `123,456 [120,001–130,000]`; just the median for a single run.
fn rate(s: Spread) -> String {
    let n = |v: f64| crate::report::thousands(v.round() as u64);
    spread_text(s, n)
}

fn decimal(s: Spread, places: usize) -> String {
    spread_text(s, |v| format!("{v:.places$}"))
}

fn millis(s: Spread) -> String {
    spread_text(s, |us| format!("{:.2}", us / 1000.0))
}

fn spread_text(s: Spread, show: impl Fn(f64) -> String) -> String {
    // One run, or runs that differ below what is shown: the range would say nothing.
    if show(s.min) == show(s.max) {
        return show(s.median);
    }
    format!("{} [{}–{}]", show(s.median), show(s.min), show(s.max))
}

/// Every parameter name, in the order first seen.
fn parameter_names(results: &Workbench) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for p in results.configurations.iter().flat_map(|c| &c.params) {
        if !names.contains(&p.name) {
            names.push(p.name.clone());
        }
    }
    names
}

/// One CSV record; fields with a comma, quote or line break are quoted (RFC 4180).
fn csv_line(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| match f.contains([',', '"', '\n', '\r']) {
            true => format!("\"{}\"", f.replace('"', "\"\"")),
            false => f.clone(),
        })
        .collect();
    format!("{}\n", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{configuration, workbench};
    use super::*;

    fn two() -> Workbench {
        workbench(vec![
            configuration("sub-entry-size", "1", &[100.0, 120.0, 110.0]),
            configuration("sub-entry-size", "10", &[1_000.0, 1_200.0, 1_100.0]),
        ])
    }

    #[test]
    fn json_reads_back_as_the_same_results() {
        let bytes = JsonExporter.serialize(&two()).unwrap();
        let back: Workbench = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.configurations.len(), 2);
        assert_eq!(
            back.configurations[1].stats.publish_msg_per_s.median,
            1_100.0
        );
    }

    #[test]
    fn csv_has_a_row_per_configuration_with_its_parameter_and_spreads() {
        let text = String::from_utf8(CsvExporter.serialize(&two()).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("configuration,sub-entry-size,runs,publish_msg_per_s_median"));
        assert!(
            lines[2].starts_with("sub-entry-size=10,10,3,1100,1000,1200,"),
            "{}",
            lines[2]
        );
        assert_eq!(
            csv_line(&["a,b".into(), "c\"d".into()]),
            "\"a,b\",\"c\"\"d\"\n"
        );
    }

    #[test]
    fn markdown_and_the_terminal_table_show_median_and_range() {
        let text = String::from_utf8(MarkdownExporter.serialize(&two()).unwrap()).unwrap();
        assert!(
            text.contains("| sub-entry-size=10 | 1,100 [1,000–1,200] |"),
            "{text}"
        );
        assert!(text.contains("RabbitMQ 4.0.5 at localhost:5552"));
        let table = render_table(&two());
        assert_eq!(table.lines().count(), 3);
        assert!(table
            .lines()
            .nth(2)
            .unwrap()
            .contains("1,100 [1,000–1,200]"));
    }
}
