//! One frame of the dashboard from the model: the run and its gauge, the rates chart, latency,
//! flow (outstanding, chunks, reconnects), each reader's position and lag, the events, the keys.

use std::time::Duration;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::LineGauge;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::model::{Model, HISTORY};
use crate::report::thousands;
use crate::stats::LatencySummary;

const PUBLISHED: Color = Color::Cyan;
const CONFIRMED: Color = Color::Green;
const CONSUMED: Color = Color::Yellow;

/// Text in `colour`, unless `NO_COLOR` says no colour.
fn fg(colour: Color) -> Style {
    match crate::report::colour() {
        true => Style::new().fg(colour),
        false => Style::new(),
    }
}

/// Draws the whole screen; `elapsed` is the time since the producers started.
pub fn draw(frame: &mut Frame, model: &Model, elapsed: Duration) {
    let [title, gauge, chart, middle, bottom, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(7),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(title_line(model, elapsed), title);
    frame.render_widget(progress_gauge(model, elapsed), gauge);
    draw_rates(frame, model, chart);
    let [latency, flow] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(middle);
    frame.render_widget(latency_table(model), latency);
    frame.render_widget(flow_panel(model), flow);
    let [readers, events] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(bottom);
    frame.render_widget(readers_table(model, readers.height), readers);
    frame.render_widget(events_panel(model, events.height), events);
    frame.render_widget(keys_line(model), keys);
}

fn title_line(model: &Model, elapsed: Duration) -> Paragraph<'static> {
    let remaining = match model.remaining(elapsed) {
        Some(left) => format!("remaining {}", clock(left)),
        None => "remaining –".to_string(),
    };
    // The clock first: a narrow terminal cuts the end of the line.
    Paragraph::new(Line::from(vec![
        Span::styled(
            format!("elapsed {}  {remaining}", clock(elapsed)),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("  invstream {}", model.plan.title)),
    ]))
}

fn progress_gauge(model: &Model, elapsed: Duration) -> LineGauge<'static> {
    let ratio = model.progress(elapsed);
    let what = match (model.plan.count, model.plan.duration) {
        (_, Some(duration)) => format!("of {}", clock(duration)),
        (Some(count), None) => format!(
            "{}/{} confirmed",
            thousands(model.confirmed),
            thousands(count)
        ),
        (None, None) => String::new(),
    };
    LineGauge::default()
        .ratio(ratio)
        .label(format!("{:>3.0}% {what}", ratio * 100.0))
        .filled_style(fg(CONFIRMED))
}

fn draw_rates(frame: &mut Frame, model: &Model, area: Rect) {
    let series = |pick: fn(&super::model::RatePoint) -> f64| -> Vec<(f64, f64)> {
        model.rates.iter().map(|p| (p.at_s, pick(p))).collect()
    };
    let (published, confirmed, consumed) = (
        series(|p| p.published),
        series(|p| p.confirmed),
        series(|p| p.consumed),
    );
    let end = model.rates.back().map_or(0.0, |p| p.at_s);
    let start = (end - HISTORY.as_secs_f64()).max(0.0);
    let end = end.max(start + 1.0);
    let top = model
        .rates
        .iter()
        .map(|p| p.published.max(p.confirmed).max(p.consumed))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let last = model.rates.back();
    let label = |name: &str, value: Option<f64>| {
        format!("{name} {}/s", thousands(value.unwrap_or(0.0) as u64))
    };
    let datasets = vec![
        Dataset::default()
            .name(label("published", last.map(|p| p.published)))
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(fg(PUBLISHED))
            .data(&published),
        Dataset::default()
            .name(label("confirmed", last.map(|p| p.confirmed)))
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(fg(CONFIRMED))
            .data(&confirmed),
        Dataset::default()
            .name(label("consumed", last.map(|p| p.consumed)))
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(fg(CONSUMED))
            .data(&consumed),
    ];
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(" Rates (msg/s, last minute) "))
        .x_axis(
            Axis::default()
                .bounds([start, end])
                .labels([format!("{start:.0}s"), format!("{end:.0}s")])
                .style(Style::new().dark_gray()),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels(["0".to_string(), short_count(top)])
                .style(Style::new().dark_gray()),
        )
        .hidden_legend_constraints((Constraint::Percentage(60), Constraint::Percentage(60)));
    frame.render_widget(chart, area);
}

fn latency_table(model: &Model) -> Table<'static> {
    let row = |name: &str, s: &LatencySummary| {
        Row::new(vec![
            name.to_string(),
            ms(s.p50, s.count),
            ms(s.p99, s.count),
            ms(s.p999, s.count),
        ])
    };
    let rows = vec![
        row("confirm, last s", &model.confirm_second),
        row("confirm, run", &model.confirm_run.summary()),
        row("end-to-end, last s", &model.end_to_end_second),
        row("end-to-end, run", &model.end_to_end_run.summary()),
    ];
    Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(8),
        ],
    )
    .header(Row::new(vec!["ms", "p50", "p99", "p99.9"]).style(Style::new().bold()))
    .block(Block::bordered().title(" Latency "))
}

fn flow_panel(model: &Model) -> Paragraph<'static> {
    let chunks = model.chunks_run.summary();
    let lines = vec![
        Line::from(format!(
            "outstanding {} (sent, not confirmed)",
            thousands(model.in_flight)
        )),
        Line::from(format!("confirmed   {}", thousands(model.confirmed))),
        Line::from(format!(
            "chunk msgs  last s {} | run p50 {} max {}",
            mean(&model.chunks_second),
            thousands(chunks.p50),
            thousands(chunks.max)
        )),
        Line::from(vec![
            Span::raw("reconnects  "),
            match model.reconnects {
                0 => Span::raw("0"),
                n => Span::styled(n.to_string(), Style::new().red().bold()),
            },
            Span::raw(format!("   events {}", model.events_seen)),
        ]),
    ];
    Paragraph::new(lines).block(Block::bordered().title(" Flow "))
}

fn readers_table(model: &Model, height: u16) -> Table<'static> {
    // Borders and the header take three lines.
    let room = usize::from(height.saturating_sub(3));
    let many = model.readers.len() > room;
    let shown = if many { room.saturating_sub(1) } else { room };
    let mut rows: Vec<Row> = model
        .readers
        .iter()
        .take(shown)
        .map(|r| {
            let lag = Span::styled(
                thousands(r.lag),
                match r.lag {
                    0 => Style::new(),
                    _ => fg(CONSUMED),
                },
            );
            Row::new(vec![
                Line::from(match model.plan.partitions {
                    1 => format!("consumer {}", r.consumer),
                    _ => format!("consumer {} p{}", r.consumer, r.partition),
                }),
                Line::from(thousands(r.position)),
                Line::from(lag),
            ])
        })
        .collect();
    if many {
        rows.push(Row::new(vec![format!(
            "+{} more",
            model.readers.len() - shown
        )]));
    }
    if model.readers.is_empty() {
        rows.push(Row::new(vec!["no consumers".to_string()]));
    }
    Table::new(
        rows,
        [
            Constraint::Min(8),
            Constraint::Length(13),
            Constraint::Length(11),
        ],
    )
    .header(Row::new(vec!["reader", "position", "lag"]).style(Style::new().bold()))
    .block(Block::bordered().title(" Consumers "))
}

fn events_panel(model: &Model, height: u16) -> Paragraph<'static> {
    let room = usize::from(height.saturating_sub(2));
    let skip = model.events.len().saturating_sub(room);
    let lines: Vec<Line> = model
        .events
        .iter()
        .skip(skip)
        .map(|e| {
            let style = if e.contains("lost") || e.contains("could not") || e.contains("error") {
                Style::new().red()
            } else {
                Style::new()
            };
            Line::styled(e.clone(), style)
        })
        .collect();
    Paragraph::new(lines)
        .wrap(Wrap { trim: true })
        .block(Block::bordered().title(" Events "))
}

fn keys_line(model: &Model) -> Paragraph<'static> {
    let state = match (model.over, model.stopping) {
        (true, _) => "run over: finishing",
        (false, true) => "stopping: waiting for the last confirms",
        (false, false) => "running",
    };
    Paragraph::new(Line::from(vec![
        Span::styled(" q ", Style::new().reversed()),
        Span::raw(" / "),
        Span::styled(" Esc ", Style::new().reversed()),
        Span::raw(" / "),
        Span::styled(" Ctrl-C ", Style::new().reversed()),
        Span::raw(format!(" stop   {state}")),
    ]))
}

/// `mm:ss`, or `h:mm:ss` from an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s / 3600 {
        0 => format!("{:02}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", s / 60 % 60, s % 60),
    }
}

/// Microseconds as milliseconds, "–" when nothing was measured.
fn ms(us: u64, count: u64) -> String {
    match count {
        0 => "–".to_string(),
        _ if us < 10_000 => format!("{:.2}", us as f64 / 1000.0),
        _ => format!("{:.1}", us as f64 / 1000.0),
    }
}

fn mean(s: &LatencySummary) -> String {
    match s.count {
        0 => "–".to_string(),
        _ => thousands(s.mean.round() as u64),
    }
}

/// 1.2M, 350k, 999.
fn short_count(n: f64) -> String {
    match n {
        n if n >= 1e6 => format!("{:.1}M", n / 1e6),
        n if n >= 1e3 => format!("{:.0}k", n / 1e3),
        n => format!("{n:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::model::RunPlan;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn screen_text(width: u16, height: u16) -> String {
        let model = Model::new(RunPlan {
            title: "bench on stream 's': 1 producers, 1 consumers, 1,000 messages".into(),
            count: Some(1_000),
            duration: None,
            partitions: 1,
            consumers: 1,
            started: std::time::Instant::now(),
        });
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|f| draw(f, &model, Duration::from_secs(3)))
            .unwrap();
        let buffer = terminal.backend().buffer();
        buffer
            .content()
            .chunks(usize::from(width))
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
            .collect()
    }

    #[test]
    fn every_panel_fits_a_small_and_a_large_terminal() {
        for (w, h) in [(80, 24), (200, 60)] {
            let text = screen_text(w, h);
            for title in [
                "Rates",
                "Latency",
                "Flow",
                "Consumers",
                "Events",
                "elapsed 00:03",
            ] {
                assert!(text.contains(title), "{w}x{h} lacks {title}:\n{text}");
            }
        }
    }

    #[test]
    fn clocks_and_latencies_read_short() {
        assert_eq!(clock(Duration::from_secs(65)), "01:05");
        assert_eq!(clock(Duration::from_secs(3_725)), "1:02:05");
        assert_eq!(ms(1_234, 1), "1.23");
        assert_eq!(ms(0, 0), "–");
    }
}
