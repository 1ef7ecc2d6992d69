//! Latency data people can look at: an SVG with the per-second throughput timeline and the
//! latency percentile distribution (`--plot`), and HdrHistogram interval logs (`--hdr-log`)
//! that HdrHistogram's own tools (HistogramLogAnalyzer, hdr-plot) read.

use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use plotters::prelude::*;

use crate::error::{InvError, Result};
use crate::stats::{BenchSecond, LatencyHistogram};

/// One interval of an HdrHistogram log: when it started (since the run's start), how long it
/// lasted, what it measured, and its histogram.
pub struct LoggedInterval<'a> {
    pub start: Duration,
    pub length: Duration,
    pub tag: &'static str,
    pub histogram: &'a LatencyHistogram,
}

/// Writes `intervals` as an HdrHistogram interval log (V2, deflate-compressed histograms in
/// base64, one line per interval, tagged), values in microseconds.
pub fn write_hdr_log(path: &Path, started: SystemTime, intervals: &[LoggedInterval]) -> Result<()> {
    let failed =
        |e: String| InvError::Output(format!("cannot write --hdr-log {}: {e}", path.display()));
    let mut text = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment("invstream latencies in microseconds; tags: confirm (publish to broker confirm), end_to_end (publish to read)")
            .with_start_time(started)
            .with_base_time(started)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut text, &mut serializer)
            .map_err(|e| failed(e.to_string()))?;
        for interval in intervals {
            let tag = Tag::new(interval.tag);
            writer
                .write_histogram(
                    interval.histogram.inner(),
                    interval.start,
                    interval.length,
                    tag,
                )
                .map_err(|e| failed(format!("{e:?}")))?;
        }
    }
    std::fs::write(path, text).map_err(|e| failed(e.to_string()))
}

/// Reads one of a second's rates.
type Rate = fn(&BenchSecond) -> f64;

/// Percentiles drawn, as "nines": 0 = p0, 1 = p90, 2 = p99, 3 = p99.9 …
const NINES_MAX: f64 = 5.0;

/// (nines, latency in ms) points of a latency distribution, HdrHistogram-plot style.
fn percentile_curve(histogram: &LatencyHistogram) -> Vec<(f64, f64)> {
    if histogram.count() == 0 {
        return Vec::new();
    }
    (0..=500)
        .map(|i| {
            let nines = f64::from(i) * NINES_MAX / 500.0;
            let quantile = 1.0 - 10f64.powf(-nines);
            (nines, histogram.value_at_quantile(quantile) as f64 / 1000.0)
        })
        .collect()
}

/// Draws the per-second throughput (published, confirmed, consumed) over time and the latency
/// percentile distributions (confirm, end to end) into one SVG file.
pub fn write_plot(
    path: &Path,
    title: &str,
    timeline: &[BenchSecond],
    confirm: &LatencyHistogram,
    end_to_end: &LatencyHistogram,
) -> Result<()> {
    draw(path, title, timeline, confirm, end_to_end)
        .map_err(|e| InvError::Output(format!("cannot draw --plot {}: {e}", path.display())))
}

/// The two panels (rates over time, latency percentiles) on one SVG. Long as plotters' builder
/// chains are: each panel's axes, series and legend are one expression over the same area.
fn draw(
    path: &Path,
    title: &str,
    timeline: &[BenchSecond],
    confirm: &LatencyHistogram,
    end_to_end: &LatencyHistogram,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1000, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(430);

    let seconds = timeline.last().map_or(1.0, |s| s.second).max(1.0);
    let peak = timeline
        .iter()
        .flat_map(|s| [s.published_per_s, s.confirmed_per_s, s.consumed_per_s])
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&top)
        .caption("throughput per second", ("sans-serif", 18))
        .margin(15)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..seconds, 0.0..peak * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("messages / s")
        .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .draw()?;
    let series: [(&str, RGBColor, Rate); 3] = [
        ("published", BLUE, |s| s.published_per_s),
        ("confirmed", GREEN, |s| s.confirmed_per_s),
        ("consumed", RED, |s| s.consumed_per_s),
    ];
    for (label, color, value) in series {
        chart
            .draw_series(LineSeries::new(
                timeline.iter().map(|s| (s.second, value(s))),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let curves = vec![
        PercentileCurve {
            label: "publish → confirm".into(),
            color: BLUE,
            points: percentile_curve(confirm),
        },
        PercentileCurve {
            label: "publish → read".into(),
            color: RED,
            points: percentile_curve(end_to_end),
        },
    ];
    draw_percentile_curves(
        &bottom,
        "latency by percentile",
        curves,
        SeriesLabelPosition::MiddleRight,
    )?;
    root.present()?;
    Ok(())
}

/// One latency distribution to draw: (nines, milliseconds) points.
pub struct PercentileCurve {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// A percentile as nines: 90% → 1, 99% → 2, 99.9% → 3; 100% at the axis' end.
pub fn nines(percentile: f64) -> f64 {
    match percentile >= 100.0 {
        true => NINES_MAX,
        false => (-(1.0 - percentile / 100.0).log10()).min(NINES_MAX),
    }
}

/// Latency by percentile on `area`, HdrHistogram-plot style: percentiles on an axis of nines,
/// milliseconds on a log axis (confirms take milliseconds, reads of a backlog seconds).
pub fn draw_percentile_curves<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    curves: Vec<PercentileCurve>,
    legend: SeriesLabelPosition,
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let values = || {
        curves
            .iter()
            .flat_map(|curve| curve.points.iter().map(|(_, ms)| *ms))
    };
    let slowest = values().fold(0.01f64, f64::max);
    let fastest = values().fold(slowest, f64::min).max(0.001);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(15)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..NINES_MAX, (fastest * 0.8..slowest * 1.25).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("milliseconds (log scale)")
        .y_label_formatter(&|ms| trim_float(*ms))
        .x_labels(6)
        .x_label_formatter(&|nines| {
            let percent = 100.0 * (1.0 - 10f64.powf(-nines));
            format!("{}%", trim_float(percent))
        })
        .draw()?;
    for PercentileCurve {
        label,
        color,
        points,
    } in curves
    {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// 99.90000001 → "99.9", 50 → "50".
pub fn trim_float(value: f64) -> String {
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_and_curve() {
        assert_eq!(trim_float(100.0 * (1.0 - 10f64.powf(-3.0))), "99.9");
        assert_eq!(trim_float(0.0), "0");
        let mut h = LatencyHistogram::new();
        for us in 1..=1000 {
            h.record_us(us);
        }
        let curve = percentile_curve(&h);
        assert_eq!(curve.first().map(|p| p.0), Some(0.0));
        assert!(curve.windows(2).all(|w| w[0].1 <= w[1].1), "monotonic");
        assert!(
            (curve[100].1 - 0.9).abs() < 0.01,
            "p90 of 1..1000 µs is 0.9 ms"
        );
        assert!(percentile_curve(&LatencyHistogram::new()).is_empty());
    }

    #[test]
    fn hdr_log_has_one_tagged_line_per_interval() {
        let dir = std::env::temp_dir().join(format!("invstream-hdr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.hlog");
        let mut h = LatencyHistogram::new();
        h.record_us(1500);
        let intervals = [
            LoggedInterval {
                start: Duration::ZERO,
                length: Duration::from_secs(1),
                tag: "confirm",
                histogram: &h,
            },
            LoggedInterval {
                start: Duration::from_secs(1),
                length: Duration::from_secs(1),
                tag: "end_to_end",
                histogram: &h,
            },
        ];
        write_hdr_log(&path, SystemTime::now(), &intervals).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("#[StartTime: "), "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("Tag=confirm,"))
                .count(),
            1
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("Tag=end_to_end,"))
                .count(),
            1
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
