//! Everything the user sees: `RunSummary` rendered as a human report or as JSON (stdout), and
//! progress bars and status lines (stderr, only when someone is watching); consumed messages
//! printed as lines are in [`print`].

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::publisher::PublisherEvent;
use crate::reader::ReaderEvent;
use crate::stats::{BenchSecond, CommandDetails, LatencyKind, LatencySummary, RunSummary};
use crate::verify::VerifyReport;

mod print;
pub use print::MessagePrinter;

/// How output goes: one place decides what is shown where, so commands never print directly.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    /// Stdout carries the messages themselves (`consume --print`): the summary goes to stderr.
    pub summary_to_stderr: bool,
}

impl Output {
    /// A progress bar on stderr when stderr is a terminal and the user did not ask for quiet;
    /// hidden otherwise, so pipes and logs stay clean. `total` is `None` for open-ended work.
    pub fn progress(&self, total: Option<u64>, what: &str) -> ProgressBar {
        if self.quiet || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        let bar = match total {
            Some(total) => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {per_sec} eta {eta}",
                    )
                    .expect("the template is valid"),
                );
                bar
            }
            None => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{elapsed_precise}] {spinner} {human_pos} {per_sec} {msg}",
                    )
                    .expect("the template is valid"),
                );
                bar
            }
        };
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A one-line status message on stderr, e.g. "subscribed"; silent with --quiet. A stderr
    /// nobody reads any more is not worth failing a run for.
    pub fn status(&self, line: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "invstream: {line}");
        }
    }

    /// The final result on stdout (stderr with `--print`), as JSON or as the human report.
    /// A write error is returned (a closed pipe, a full disk), never a panic.
    pub fn summary(&self, summary: &RunSummary) -> std::io::Result<()> {
        let text = match self.json {
            true => format!("{}\n", render_json(summary)),
            false => render_text(summary),
        };
        match self.summary_to_stderr {
            true => write_all_flushed(&mut std::io::stderr().lock(), &text),
            false => write_all_flushed(&mut std::io::stdout().lock(), &text),
        }
    }

    /// A status line for a publisher's event.
    pub fn publisher_event(&self, event: &PublisherEvent) {
        self.status(&publisher_event_line(event));
    }

    /// A status line for a reader's event.
    pub fn reader_event(&self, event: &ReaderEvent) {
        self.status(&reader_event_line(event));
    }
}

fn write_all_flushed(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}

pub fn publisher_event_line(event: &PublisherEvent) -> String {
    match event {
        PublisherEvent::ConnectionLost { addr, retry_for } => format!(
            "lost the connection to {addr}; reconnecting (up to {}, --retry-for)",
            humantime::format_duration(*retry_for)
        ),
        PublisherEvent::NoConfirmInTime => {
            "no confirm within the confirm timeout: reconnecting".to_string()
        }
        PublisherEvent::Reconnected {
            after,
            resending,
            deduplicated,
        } => {
            let note = match deduplicated {
                true => "the broker drops any it already stored",
                false => "without deduplication some may be stored twice",
            };
            format!(
                "reconnected after {:.1}s; re-sending {resending} unconfirmed entries ({note})",
                after.as_secs_f64()
            )
        }
    }
}

pub fn reader_event_line(event: &ReaderEvent) -> String {
    match event {
        ReaderEvent::Subscribed {
            reader,
            stream,
            node,
            leader,
        } => format!(
            "{reader}: reading '{stream}' from {node} ({})",
            match leader {
                true => "its leader",
                false => "a replica",
            }
        ),
        ReaderEvent::ConnectionLost {
            reader,
            addr,
            retry_for,
        } => format!(
            "{reader}: lost the connection to {addr}; reconnecting (up to {}, --retry-for)",
            humantime::format_duration(*retry_for)
        ),
        ReaderEvent::Reconnected {
            reader,
            after,
            from,
        } => format!(
            "{reader}: reconnected after {:.1}s; reading on from {}",
            after.as_secs_f64(),
            from.map_or_else(|| "where it started".to_string(), |o| format!("offset {o}"))
        ),
    }
}

/// One second of a benchmark, as a line on stderr.
/// The feed's view that prints a line per sample (bench's per-second lines, on stderr).
pub struct SecondLines(pub Output);

impl crate::feed::SampleView for SecondLines {
    fn on_sample(&mut self, sample: &crate::feed::IntervalSample) {
        self.0.status(&bench_second_line(&sample.second));
    }
}

pub fn bench_second_line(s: &BenchSecond) -> String {
    let ms = |us: u64| format!("{:.1}", us as f64 / 1000.0);
    format!(
        "{:>6.1}s  published {:>9}/s  confirmed {:>9}/s  consumed {:>9}/s  confirm p50 {} ms p99 {} ms  end-to-end p50 {} ms p99 {} ms",
        s.second,
        thousands(s.published_per_s as u64),
        thousands(s.confirmed_per_s as u64),
        thousands(s.consumed_per_s as u64),
        ms(s.confirm_p50_us),
        ms(s.confirm_p99_us),
        ms(s.end_to_end_p50_us),
        ms(s.end_to_end_p99_us),
    )
}

pub fn render_json(summary: &RunSummary) -> String {
    serde_json::to_string(summary).expect("a RunSummary always serializes")
}

/// The human report: aligned lines, thousands separators, units in every label.
pub fn render_text(s: &RunSummary) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| out.push_str(&format!("  {label:<16}{value}\n"));
    let kind = match s.partitions.is_empty() {
        true => "stream",
        false => "super stream",
    };
    let header = match &s.details {
        CommandDetails::Produce { .. } | CommandDetails::Bench { .. } => {
            format!("{} → {kind} '{}'", s.command, s.stream)
        }
        CommandDetails::Consume { offset, .. } => {
            format!("consume ← {kind} '{}' from offset {offset}", s.stream)
        }
    };
    match &s.details {
        CommandDetails::Produce {
            confirmed,
            failed,
            skipped,
            invalid_lines,
            max_stall_s,
            ..
        } => {
            let mut skipped = match skipped {
                0 => String::new(),
                n => format!(" ({} skipped: already stored)", thousands(*n)),
            };
            if *invalid_lines > 0 {
                skipped.push_str(&format!(
                    ", {} invalid input lines",
                    thousands(*invalid_lines)
                ));
            }
            line(
                "messages",
                format!(
                    "{} sent, {} confirmed, {} failed{skipped}",
                    thousands(s.messages),
                    thousands(*confirmed),
                    thousands(*failed)
                ),
            );
            // Worth a line only when publishing really stalled (a failover, a restart).
            if *max_stall_s >= 1.0 {
                line(
                    "longest stall",
                    format!("{max_stall_s:.1} s without a confirm"),
                );
            }
        }
        CommandDetails::Bench {
            producers,
            consumers,
            confirmed,
            failed,
            consumed,
            consumed_per_s,
            ..
        } => {
            line(
                "messages",
                format!(
                    "{} sent, {} confirmed, {} failed ({producers} producers)",
                    thousands(s.messages),
                    thousands(*confirmed),
                    thousands(*failed)
                ),
            );
            line(
                "consumed",
                format!(
                    "{} by {consumers} consumers, {} msg/s",
                    thousands(*consumed),
                    thousands(consumed_per_s.round() as u64)
                ),
            );
        }
        CommandDetails::Consume {
            first_offset,
            last_offset,
            not_inventory_updates,
            delivered,
            ..
        } => {
            let filtered = match *delivered == s.messages {
                true => String::new(),
                false => format!(
                    "matching --product, of {} the broker delivered; ",
                    thousands(*delivered)
                ),
            };
            line(
                "messages",
                format!(
                    "{} read ({filtered}{} not inventory updates)",
                    thousands(s.messages),
                    thousands(*not_inventory_updates)
                ),
            );
            let offsets = match (first_offset, last_offset) {
                (Some(first), Some(last)) => {
                    format!("{} … {}", thousands(*first), thousands(*last))
                }
                _ => "none".to_string(),
            };
            line("offsets", offsets);
        }
    }
    line(
        "bytes",
        format!("{} ({:.1} MB)", thousands(s.bytes), s.bytes as f64 / 1e6),
    );
    line("elapsed", format!("{:.3} s", s.elapsed_s));
    if s.reconnects > 0 {
        line("reconnects", thousands(s.reconnects));
    }
    line(
        "throughput",
        format!(
            "{} msg/s, {:.1} MB/s",
            thousands(s.msg_per_s.round() as u64),
            s.mb_per_s
        ),
    );
    let mut text = format!(
        "{header}{}\n",
        if s.interrupted { " (interrupted)" } else { "" }
    );
    text.push_str(&out);
    text.push_str(&format!(
        "  latency (µs), {}:\n",
        latency_label(s.latency_kind)
    ));
    text.push_str(&render_latency(&s.latency_us));
    if let CommandDetails::Bench { end_to_end_us, .. } = &s.details {
        text.push_str("  latency (µs), produced_at → read by a consumer:\n");
        text.push_str(&render_latency(end_to_end_us));
    }
    if !s.consumers.is_empty() {
        text.push_str(&render_consumers(&s.consumers));
    }
    if !s.partitions.is_empty() {
        text.push_str(&render_partitions(&s.partitions));
    }
    for summary in std::iter::once(s).chain(&s.consumers) {
        if let Some(verify) = &summary.verify {
            text.push_str(&render_verify(verify, summary.consumer.as_deref()));
        }
    }
    text
}

/// The `--verify` verdict, one line per producer.
fn render_verify(report: &VerifyReport, consumer: Option<&str>) -> String {
    let who = consumer.map(|c| format!(" ({c})")).unwrap_or_default();
    let verdict = if report.ok { "OK" } else { "FAILED" };
    let mut text = format!("  verify{who}: {verdict}\n");
    if report.producers.is_empty() {
        text.push_str("    no inventory updates with a producer name were read\n");
    }
    for p in &report.producers {
        let name = if p.producer.is_empty() {
            "(unnamed)"
        } else {
            &p.producer
        };
        text.push_str(&format!(
            "    producer {name}: {} distinct seq {}…{}, {} gaps, {} duplicates",
            thousands(p.distinct),
            thousands(p.first_seq),
            thousands(p.last_seq),
            thousands(p.gaps),
            thousands(p.duplicates)
        ));
        if !p.first_gaps.is_empty() {
            let gaps: Vec<String> = p.first_gaps.iter().map(|g| g.to_string()).collect();
            text.push_str(&format!(" (first missing: {})", gaps.join(", ")));
        }
        text.push('\n');
    }
    text
}

/// One line per consumer of a fan-out, so their rates can be compared side by side.
fn render_consumers(consumers: &[RunSummary]) -> String {
    let mut text = format!(
        "  {:<16}{:>12}{:>12}{:>10}{:>14}{:>14}{:>14}\n",
        "consumer", "messages", "msg/s", "elapsed s", "latency p50", "latency p99", "last offset"
    );
    for c in consumers {
        let last = match &c.details {
            CommandDetails::Consume {
                last_offset: Some(last),
                ..
            } => thousands(*last),
            _ => "-".to_string(),
        };
        text.push_str(&format!(
            "  {:<16}{:>12}{:>12}{:>10.3}{:>14}{:>14}{:>14}\n",
            c.consumer.as_deref().unwrap_or("-"),
            thousands(c.messages),
            thousands(c.msg_per_s.round() as u64),
            c.elapsed_s,
            thousands(c.latency_us.p50),
            thousands(c.latency_us.p99),
            last
        ));
    }
    text
}

/// One line per partition of a super stream.
fn render_partitions(partitions: &[RunSummary]) -> String {
    let mut text = format!(
        "  {:<24}{:>12}{:>12}{:>14}{:>14}\n",
        "partition", "messages", "msg/s", "latency p50", "latency p99"
    );
    for p in partitions {
        text.push_str(&format!(
            "  {:<24}{:>12}{:>12}{:>14}{:>14}\n",
            p.stream,
            thousands(p.messages),
            thousands(p.msg_per_s.round() as u64),
            thousands(p.latency_us.p50),
            thousands(p.latency_us.p99),
        ));
    }
    text
}

fn latency_label(kind: LatencyKind) -> &'static str {
    match kind {
        LatencyKind::PublishToConfirm => "publish → broker confirm",
        LatencyKind::EndToEnd => "produced_at → read (the message's age on a replay)",
    }
}

fn render_latency(l: &LatencySummary) -> String {
    if l.count == 0 {
        return "    (nothing measured)\n".to_string();
    }
    let cells = [
        ("min", l.min),
        ("p50", l.p50),
        ("p90", l.p90),
        ("p99", l.p99),
        ("p99.9", l.p999),
        ("max", l.max),
    ];
    let mut text = format!(
        "    {:<8}{:>12}\n",
        "mean",
        thousands(l.mean.round() as u64)
    );
    for (label, value) in cells {
        text.push_str(&format!("    {label:<8}{:>12}\n", thousands(value)));
    }
    text
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{LatencyHistogram, Totals};

    fn consume_summary() -> RunSummary {
        let mut latency = LatencyHistogram::new();
        latency.record_us(1_500);
        RunSummary::new(
            crate::stats::CommandName::Consume,
            "inventory_updates",
            Totals {
                messages: 100_000,
                bytes: 25_000_000,
                elapsed: Duration::from_secs(2),
            },
            LatencyKind::EndToEnd,
            &latency,
            CommandDetails::Consume {
                offset: "first".into(),
                first_offset: Some(0),
                last_offset: Some(99_999),
                not_inventory_updates: 0,
                delivered: 100_000,
            },
        )
    }

    #[test]
    fn a_reader_says_which_node_it_reads_from() {
        let event = |leader| ReaderEvent::Subscribed {
            reader: "stats".into(),
            stream: "orders".into(),
            node: "localhost:5562".into(),
            leader,
        };
        assert_eq!(
            reader_event_line(&event(false)),
            "stats: reading 'orders' from localhost:5562 (a replica)"
        );
        assert!(reader_event_line(&event(true)).ends_with("(its leader)"));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn json_has_every_documented_key() {
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&consume_summary())).unwrap();
        for key in [
            "command",
            "stream",
            "offset",
            "messages",
            "bytes",
            "elapsed_s",
            "msg_per_s",
            "mb_per_s",
            "first_offset",
            "last_offset",
            "not_inventory_updates",
            "latency_us",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        for key in ["count", "min", "mean", "p50", "p90", "p99", "p999", "max"] {
            assert!(
                json["latency_us"].get(key).is_some(),
                "missing latency_us.{key}"
            );
        }
        assert_eq!(json["msg_per_s"], 50_000.0);
    }

    #[test]
    fn text_report_names_rates_and_percentiles() {
        let text = render_text(&consume_summary());
        assert!(text.contains("100,000 read"), "{text}");
        assert!(text.contains("50,000 msg/s"), "{text}");
        assert!(text.contains("0 … 99,999"), "{text}");
        assert!(text.contains("p99.9"), "{text}");
    }
}
