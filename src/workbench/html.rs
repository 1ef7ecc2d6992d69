//! `--report FILE.html`: one self-contained page (inline SVG and CSS, no script, nothing fetched)
//! with the comparison table, throughput per configuration with its min–max, latency by
//! percentile per configuration, each run's per-second timeline, and the command and broker.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::export::{table_rows, Exporter};
use super::{ConfigurationResult, Figure, PercentilePoint, RunResult, Workbench};
use crate::stats::BenchSecond;

/// How to read one rate of a second of a run.
type Rate = fn(&BenchSecond) -> f64;
use crate::error::{InvError, Result};
use crate::plot::{draw_percentile_curves, nines, PercentileCurve};

/// The page as an exporter, so `--report` is written like every other export.
pub struct HtmlExporter;

impl Exporter for HtmlExporter {
    fn serialize(&self, results: &Workbench) -> Result<Vec<u8>> {
        page(results)
            .map(String::into_bytes)
            .map_err(|e| InvError::Output(format!("cannot draw the --report charts: {e}")))
    }
}

type Drawn = std::result::Result<String, Box<dyn std::error::Error>>;

/// One colour per configuration, each readable on white.
const COLORS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(0, 0, 0),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(0, 0, 128),
];

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}\
table{border-collapse:collapse;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th:nth-child(2),td:nth-child(2){text-align:left}th{background:#eef}code{background:#f4f4f4;padding:2px 4px}\
.chart{margin:1em 0}h2{margin-top:1.5em}";

fn page(results: &Workbench) -> Drawn {
    let mut html =
        String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    let _ = write!(
        html,
        "<title>invstream bench report</title><style>{STYLE}</style></head><body>\
         <h1>invstream bench report</h1>\
         <p><code>{}</code></p><p>{}; {} run(s) per configuration{}; started {}</p>",
        escape(&results.command),
        escape(&results.broker.describe()),
        results.runs_per_configuration,
        results
            .warmup_s
            .map_or(String::new(), |s| format!(", {s} s warm-up each")),
        escape(&results.started),
    );
    html.push_str("<h2>Comparison</h2>");
    html.push_str(&table(results));
    for skipped in &results.skipped {
        let _ = write!(
            html,
            "<p>Not run: {}: {}</p>",
            escape(&skipped.label),
            escape(&skipped.reason)
        );
    }
    html.push_str("<h2>Throughput per configuration (median, bars: min–max)</h2>");
    html.push_str(&chart(throughput_bars(&results.configurations)?));
    html.push_str("<h2>Latency by percentile</h2>");
    let confirm = |run: &RunResult| run.confirm_curve.clone();
    let end_to_end = |run: &RunResult| run.end_to_end_curve.clone();
    html.push_str(&chart(latency_curves(
        &results.configurations,
        "publish → confirm",
        confirm,
    )?));
    html.push_str(&chart(latency_curves(
        &results.configurations,
        "publish → read (end to end)",
        end_to_end,
    )?));
    html.push_str("<h2>Each run, second by second</h2>");
    for (index, configuration) in results.configurations.iter().enumerate() {
        html.push_str(&chart(timeline(index, configuration)?));
    }
    html.push_str("</body></html>\n");
    Ok(html)
}

fn chart(svg: String) -> String {
    format!("<div class=\"chart\">{svg}</div>")
}

/// The comparison table, each configuration numbered as in the charts.
fn table(results: &Workbench) -> String {
    let rows = table_rows(results);
    let mut html = String::from("<table><tr><th>#</th>");
    for cell in &rows[0] {
        let _ = write!(html, "<th>{}</th>", escape(cell));
    }
    html.push_str("</tr>");
    for (index, row) in rows[1..].iter().enumerate() {
        let _ = write!(html, "<tr><td>{}</td>", index + 1);
        for cell in row {
            let _ = write!(html, "<td>{}</td>", escape(cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

/// Publish and consume msg/s per configuration: a bar at the median, a line from min to max.
fn throughput_bars(configurations: &[ConfigurationResult]) -> Drawn {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        let peak = configurations
            .iter()
            .flat_map(|c| [c.stats.publish_msg_per_s.max, c.stats.consume_msg_per_s.max])
            .fold(1.0f64, f64::max);
        let count = configurations.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..count, 0.0..peak * 1.1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(configurations.len() * 2 + 1)
            .x_label_formatter(&|x| match x.fract() == 0.5 {
                true => format!("#{}", *x as usize + 1),
                false => String::new(),
            })
            .x_desc("configuration (see the table)")
            .y_desc("messages / s")
            .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
            .draw()?;
        let series: [(&str, RGBColor, f64, Figure); 2] = [
            ("publish", BLUE, 0.15, |c| c.stats.publish_msg_per_s),
            ("consume", RED, 0.5, |c| c.stats.consume_msg_per_s),
        ];
        for (label, color, offset, spread) in series {
            let bars = configurations.iter().enumerate().map(move |(i, c)| {
                let x = i as f64 + offset;
                Rectangle::new(
                    [(x, 0.0), (x + 0.35, spread(c).median)],
                    color.mix(0.6).filled(),
                )
            });
            chart.draw_series(bars)?.label(label).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled())
            });
            let ranges = configurations.iter().enumerate().map(move |(i, c)| {
                let x = i as f64 + offset + 0.175;
                PathElement::new(
                    vec![(x, spread(c).min), (x, spread(c).max)],
                    BLACK.stroke_width(2),
                )
            });
            chart.draw_series(ranges)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// One curve per configuration (its median run by publish rate).
fn latency_curves(
    configurations: &[ConfigurationResult],
    title: &str,
    curve_of: impl Fn(&RunResult) -> Vec<PercentilePoint>,
) -> Drawn {
    let curves: Vec<PercentileCurve> = configurations
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let run = median_run(c)?;
            let points = curve_of(run)
                .iter()
                .map(|p| {
                    (
                        nines(p.percentile),
                        (p.latency_us as f64 / 1000.0).max(0.001),
                    )
                })
                .collect();
            Some(PercentileCurve {
                label: format!("#{} {}", i + 1, c.label),
                color: COLORS[i % COLORS.len()],
                points,
            })
        })
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 420)).into_drawing_area();
        root.fill(&WHITE)?;
        draw_percentile_curves(&root, title, curves, SeriesLabelPosition::LowerRight)?;
        root.present()?;
    }
    Ok(svg)
}

/// Each run of one configuration: published and consumed per second.
fn timeline(index: usize, configuration: &ConfigurationResult) -> Drawn {
    let runs = &configuration.runs;
    let seconds = runs
        .iter()
        .filter_map(|r| r.timeline.last().map(|s| s.second))
        .fold(1.0f64, f64::max);
    let peak = runs
        .iter()
        .flat_map(|r| &r.timeline)
        .flat_map(|s| [s.published_per_s, s.consumed_per_s])
        .fold(1.0f64, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 300)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("#{} {}", index + 1, configuration.label),
                ("sans-serif", 16),
            )
            .margin(10)
            .margin_right(40)
            .x_label_area_size(35)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..seconds, 0.0..peak * 1.1)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("messages / s")
            .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
            .draw()?;
        for (number, run) in runs.iter().enumerate() {
            let series: [(&str, RGBColor, Rate); 2] = [
                ("published", BLUE, |s| s.published_per_s),
                ("consumed", RED, |s| s.consumed_per_s),
            ];
            for (what, color, value) in series {
                let shade = color.mix(0.9 - 0.5 * number as f64 / runs.len() as f64);
                let points = || run.timeline.iter().map(|s| (s.second, value(s)));
                chart
                    .draw_series(LineSeries::new(points(), shade.stroke_width(2)))?
                    .label(format!("run {} {what}", number + 1))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
                // A run shorter than a second has one sample: a dot, where a line has nothing.
                chart.draw_series(points().map(|p| Circle::new(p, 3, shade.filled())))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// The run whose publish rate is the median (the lower middle one for an even count).
fn median_run(configuration: &ConfigurationResult) -> Option<&RunResult> {
    let mut runs: Vec<&RunResult> = configuration.runs.iter().collect();
    runs.sort_by(|a, b| a.publish_msg_per_s.total_cmp(&b.publish_msg_per_s));
    runs.get(runs.len().saturating_sub(1) / 2).copied()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{configuration, workbench};
    use super::*;

    #[test]
    fn the_page_holds_the_table_and_a_chart_per_section_and_fetches_nothing() {
        let mut results = workbench(vec![
            configuration("compression", "none", &[100.0, 120.0]),
            configuration("compression", "zstd", &[300.0]),
        ]);
        results.command = "invstream bench --param compression=none,zstd <x>".into();
        let mut curve_run = results.configurations[0].runs[0].clone();
        curve_run.confirm_curve = vec![
            PercentilePoint {
                percentile: 50.0,
                latency_us: 900,
            },
            PercentilePoint {
                percentile: 99.9,
                latency_us: 9_000,
            },
        ];
        results.configurations[0].runs[0] = curve_run;
        let html = String::from_utf8(HtmlExporter.serialize(&results).unwrap()).unwrap();
        assert!(html.contains("<td>compression=zstd</td>"));
        assert!(html.contains("&lt;x&gt;"), "the command is escaped");
        // Bars, two latency charts and one timeline per configuration.
        assert_eq!(html.matches("<svg").count(), 1 + 2 + 2);
        assert!(
            !html.contains("src=") && !html.contains("href="),
            "nothing fetched"
        );
        assert!(!html.contains("<script"));
    }

    #[test]
    fn percentiles_become_nines() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), 5.0);
    }
}
