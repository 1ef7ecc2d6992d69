//! Everything the user sees: `RunSummary` rendered as a human report or as JSON (stdout), and
//! progress bars and status lines (stderr, only when someone is watching); consumed messages
//! printed as lines are in [`print`].

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engines::publisher::PublisherEvent;
use crate::engines::reader::ReaderEvent;
use crate::stats::{
    BacklogDrain, BenchSecond, CommandDetails, CommandName, GroupReads, LatencyKind,
    LatencySummary, RunSummary,
};
use crate::verify::VerifyReport;

mod glyphs;
mod held;
pub mod max_rate;
mod print;
pub mod streams;
pub mod workload;
pub use glyphs::{colour, for_terminal, glyphs};
pub use held::{held_since, hold_status, StatusHold};
pub use print::MessagePrinter;

/// A progress bar's rate as whole messages with its unit: `94,725 msg/s`, not indicatif's
/// `94,725.1613/s`.
fn whole_rate(state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write) {
    let _ = write!(out, "{}", rate_text(state.per_sec()));
}

/// A rate of messages as the reports write it: whole messages, thousands separated, the unit.
pub fn rate_text(per_s: f64) -> String {
    format!("{} msg/s", thousands(per_s.max(0.0).round() as u64))
}

/// How output goes: one place decides what is shown where, so commands never print directly.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    /// Stdout carries the messages themselves (`consume --print`): the summary goes to stderr.
    pub summary_to_stderr: bool,
}

impl Output {
    /// Nothing on the terminal: for the runs a command drives inside its own (a matrix's runs,
    /// a search's tries, a workload's topics), which speak through the command's own lines.
    pub fn silent() -> Self {
        Output {
            quiet: true,
            json: false,
            summary_to_stderr: false,
        }
    }

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
                        "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {rate} eta {eta}",
                    )
                    .expect("the template is valid")
                    .with_key("rate", whole_rate)
                    .progress_chars(progress_chars()),
                );
                bar
            }
            None => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{elapsed_precise}] {spinner} {human_pos} {rate} {msg}",
                    )
                    .expect("the template is valid")
                    .with_key("rate", whole_rate)
                    .tick_chars(tick_chars()),
                );
                bar
            }
        };
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A one-line status message on stderr, e.g. "subscribed"; silent with --quiet, held back
    /// while a dashboard owns the terminal ([`hold_status`]). A stderr nobody reads any more is
    /// not worth failing a run for.
    pub fn status(&self, line: &str) {
        if self.quiet {
            return;
        }
        self.notice(line);
    }

    /// A status line that `-q` does not silence: what the user must do next (the command that
    /// finishes an interrupted produce).
    pub fn notice(&self, line: &str) {
        if let Some(line) = held::try_hold(line.to_string()) {
            let line = for_terminal(&line);
            let _ = writeln!(std::io::stderr().lock(), "invstream: {line}");
        }
    }

    /// The final result on stdout (stderr with `--print`), as JSON or as the human report.
    /// A write error is returned (a closed pipe, a full disk), never a panic.
    pub fn summary(&self, summary: &RunSummary) -> std::io::Result<()> {
        let text = match self.json {
            true => format!("{}\n", render_json(summary)),
            false => for_terminal(&render_text(summary)).into_owned(),
        };
        match self.summary_to_stderr {
            true => write_all_flushed(&mut std::io::stderr().lock(), &text),
            false => write_all_flushed(&mut std::io::stdout().lock(), &text),
        }
    }

    /// A finished document on stdout (the workbench's table or JSON); a write error is
    /// returned, never a panic.
    pub fn document(&self, text: &str) -> std::io::Result<()> {
        let text = match self.json {
            true => std::borrow::Cow::Borrowed(text),
            false => for_terminal(text),
        };
        write_all_flushed(&mut std::io::stdout().lock(), &text)
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

/// A progress bar's filled and empty cells (and, in ASCII, the one between): Unicode blocks,
/// or ASCII outside a UTF-8 locale.
fn progress_chars() -> &'static str {
    match glyphs::unicode() {
        true => "█░",
        false => "#>-",
    }
}

/// An open-ended progress display's spinner (its last one shows when it is done).
fn tick_chars() -> &'static str {
    match glyphs::unicode() {
        true => "⠁⠂⠄⡀⢀⠠⠐⠈ ",
        false => "-\\|/ ",
    }
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
        PublisherEvent::LeaderMoved {
            from,
            to,
            stalled_for,
        } => format!(
            "no confirm for {:.1}s from {from}, and the cluster names {to} the stream's leader: moving there",
            stalled_for.as_secs_f64()
        ),
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

impl crate::engines::feed::SampleView for SecondLines {
    fn on_sample(&mut self, sample: &crate::engines::feed::IntervalSample) {
        self.0.status(&bench_second_line(&sample.second));
    }
}

pub fn bench_second_line(s: &BenchSecond) -> String {
    let ms = |us: u64| format!("{:.1}", us as f64 / 1000.0);
    format!(
        "{:>6.1}s  published {:>9} msg/s  confirmed {:>9} msg/s  consumed {:>9} msg/s  confirm p50 {} ms p99 {} ms  end-to-end p50 {} ms p99 {} ms",
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
    let mut text = header_line(s);
    text.push_str(&details_lines(s));
    text.push_str(&totals_lines(s));
    text.push_str(&latency_sections(s));
    if !s.consumers.is_empty() {
        text.push_str(&render_consumers(&s.consumers));
    }
    if !s.partitions.is_empty() {
        text.push_str(&render_partitions(&s.partitions));
    }
    if !s.instance_summaries.is_empty() {
        text.push_str(&render_instances(&s.instance_summaries));
    }
    text.push_str(&verify_sections(s));
    text
}

/// One labelled line, its value in the report's one column.
fn line(label: &str, value: impl std::fmt::Display) -> String {
    format!("  {label:<16}{value}\n")
}

/// The command, which way its messages went, and whether a signal cut it short.
fn header_line(s: &RunSummary) -> String {
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
    // A signal is how a gateway (serve) ends: no interruption of it.
    let interrupted = match s.interrupted && s.command != CommandName::Serve {
        true => " (interrupted)",
        false => "",
    };
    let group = match (&s.group, s.instances) {
        (Some(group), Some(n)) => format!(" (group '{group}', {n} instances)"),
        _ => String::new(),
    };
    format!("{header}{group}{interrupted}\n")
}

/// The lines only this command has: what became of its messages.
fn details_lines(s: &RunSummary) -> String {
    match &s.details {
        CommandDetails::Produce {
            confirmed,
            failed,
            skipped,
            invalid_lines,
            max_stall_s,
            ..
        } => {
            let note = produce_note(*skipped, *invalid_lines);
            sent_line(s.messages, *confirmed, *failed, &note) + &stall_line(*max_stall_s)
        }
        CommandDetails::Bench {
            producers,
            consumers,
            confirmed,
            failed,
            consumed,
            consumed_per_s,
            consumers_per_group,
            groups,
            backlog,
            ..
        } => {
            let note = format!(" ({producers} producers)");
            let grouped = match consumers_per_group {
                1 => String::new(),
                each => format!(" in groups of {each}"),
            };
            let consumed = format!(
                "{} by {consumers} consumers{grouped}, {} msg/s",
                thousands(*consumed),
                thousands(consumed_per_s.round() as u64)
            );
            let mut text =
                sent_line(s.messages, *confirmed, *failed, &note) + &line("consumed", consumed);
            for group in groups {
                text.push_str(&group_line(group));
            }
            if let Some(backlog) = backlog {
                text.push_str(&line("backlog", backlog_text(backlog)));
            }
            text
        }
        CommandDetails::Consume {
            first_offset,
            last_offset,
            not_inventory_updates,
            delivered,
            waited_s,
            ..
        } => {
            read_line(s.messages, *delivered, *not_inventory_updates)
                + &offsets_line(*first_offset, *last_offset)
                + &wait_line(*waited_s, s.messages)
        }
    }
}

/// A bench consumer group: what it read, and what each of its consumers read from how many
/// partitions (none: it stood by).
fn group_line(group: &GroupReads) -> String {
    let consumers: Vec<String> = group
        .consumers
        .iter()
        .map(|c| {
            let from = match c.partitions.len() {
                0 => "standing by".to_string(),
                1 => "1 partition".to_string(),
                n => format!("{n} partitions"),
            };
            format!("{} {} ({from})", c.consumer, thousands(c.consumed))
        })
        .collect();
    let again = match group.read_again {
        0 => String::new(),
        n => format!(", {} read again", thousands(n)),
    };
    line(
        &group.group,
        format!(
            "{}{again}: {}",
            thousands(group.consumed),
            consumers.join(", ")
        ),
    )
}

/// `bench --backlog`: what was built, and how fast it was drained.
pub(crate) fn backlog_text(backlog: &BacklogDrain) -> String {
    let built = format!(
        "{:.1} MB ({} messages) built in {:.1} s",
        backlog.bytes as f64 / 1e6,
        thousands(backlog.messages),
        backlog.build_s
    );
    match backlog.drain_s {
        Some(drain_s) => format!(
            "{built}, drained in {drain_s:.2} s ({} msg/s, {:.1} MB/s)",
            thousands(backlog.drain_msg_per_s.round() as u64),
            backlog.drain_mb_per_s
        ),
        None => format!("{built}, not drained by the end"),
    }
}

/// What was published and what the broker made of it; `note` follows the counts.
fn sent_line(sent: u64, confirmed: u64, failed: u64, note: &str) -> String {
    line(
        "messages",
        format!(
            "{} sent, {} confirmed, {} failed{note}",
            thousands(sent),
            thousands(confirmed),
            thousands(failed)
        ),
    )
}

/// What a produce did not send, and why; empty when it sent everything.
fn produce_note(skipped: u64, invalid_lines: u64) -> String {
    let mut note = match skipped {
        0 => String::new(),
        n => format!(" ({} skipped: already stored)", thousands(n)),
    };
    if invalid_lines > 0 {
        note.push_str(&format!(
            ", {} invalid input lines",
            thousands(invalid_lines)
        ));
    }
    note
}

/// Worth a line only when publishing really stalled (a failover, a restart).
fn stall_line(max_stall_s: f64) -> String {
    match max_stall_s >= 1.0 {
        true => line(
            "longest stall",
            format!("{max_stall_s:.1} s without a confirm"),
        ),
        false => String::new(),
    }
}

/// How long a consume waited for its first message, when long enough to matter: the rate above
/// counts only the reading after it.
fn wait_line(waited_s: f64, read: u64) -> String {
    match waited_s >= 0.5 && read > 0 {
        true => line(
            "waited",
            format!("{waited_s:.1} s for the first message (not in the rate)"),
        ),
        false => String::new(),
    }
}

/// What a consume read, and what it left out (other products, other bodies).
fn read_line(read: u64, delivered: u64, not_inventory_updates: u64) -> String {
    let filtered = match delivered == read {
        true => String::new(),
        false => format!(
            "matching --product, of {} the broker delivered; ",
            thousands(delivered)
        ),
    };
    line(
        "messages",
        format!(
            "{} read ({filtered}{} not inventory updates)",
            thousands(read),
            thousands(not_inventory_updates)
        ),
    )
}

fn offsets_line(first: Option<u64>, last: Option<u64>) -> String {
    let offsets = match (first, last) {
        (Some(first), Some(last)) => format!("{} … {}", thousands(first), thousands(last)),
        _ => "none".to_string(),
    };
    line("offsets", offsets)
}

/// Every command's totals: how much, how long, how fast.
fn totals_lines(s: &RunSummary) -> String {
    let mut text = line(
        "bytes",
        format!("{} ({:.1} MB)", thousands(s.bytes), s.bytes as f64 / 1e6),
    );
    let elapsed = match s.consumers.is_empty() {
        true => format!("{:.3} s", s.elapsed_s),
        false => format!(
            "{:.3} s (from the first message read to the last)",
            s.elapsed_s
        ),
    };
    text.push_str(&line("elapsed", elapsed));
    if s.reconnects > 0 {
        text.push_str(&line("reconnects", thousands(s.reconnects)));
    }
    let throughput = match fan_out_rates(&s.consumers) {
        Some(rates) => rates,
        None => format!(
            "{} msg/s, {:.1} MB/s",
            thousands(s.msg_per_s.round() as u64),
            s.mb_per_s
        ),
    };
    text.push_str(&line("throughput", throughput));
    text
}

/// Several consumers read the same messages each at its own pace: their messages over one
/// time would follow the slowest, so they are shown as what each read and the slowest and
/// fastest rate (each one's own in the table below). `None` without several consumers.
fn fan_out_rates(consumers: &[RunSummary]) -> Option<String> {
    let fewest = consumers.iter().map(|c| c.messages).min()?;
    let most = consumers.iter().map(|c| c.messages).max()?;
    let by_rate = |a: &&RunSummary, b: &&RunSummary| a.msg_per_s.total_cmp(&b.msg_per_s);
    let slowest = consumers.iter().min_by(by_rate)?;
    let fastest = consumers.iter().max_by(by_rate)?;
    let each = match fewest == most {
        true => format!("each read {}", thousands(most)),
        false => format!("each read {} to {}", thousands(fewest), thousands(most)),
    };
    let rate = |c: &RunSummary| {
        format!(
            "{} msg/s ({})",
            thousands(c.msg_per_s.round() as u64),
            c.consumer.as_deref().unwrap_or("-")
        )
    };
    Some(format!(
        "{} consumers, {each}; slowest {}, fastest {}",
        consumers.len(),
        rate(slowest),
        rate(fastest)
    ))
}

/// The run's latencies, and a benchmark's end-to-end ones besides.
fn latency_sections(s: &RunSummary) -> String {
    let mut text = format!("  latency (µs), {}:\n", latency_label(s.latency_kind));
    text.push_str(&render_latency(&s.latency_us));
    if let CommandDetails::Bench { end_to_end_us, .. } = &s.details {
        text.push_str("  latency (µs), produced_at → read by a consumer:\n");
        text.push_str(&render_latency(end_to_end_us));
    }
    text
}

/// The `--verify` verdicts: the run's own, then each consumer's.
fn verify_sections(s: &RunSummary) -> String {
    std::iter::once(s)
        .chain(&s.consumers)
        .filter_map(|summary| {
            let verify = summary.verify.as_ref()?;
            Some(render_verify(verify, summary.consumer.as_deref()))
        })
        .collect()
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
        if p.reordered > 0 {
            text.push_str(&format!(
                ", {} out of order within their product",
                thousands(p.reordered)
            ));
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

/// One line per instance of a group, the lost ones said so with when.
fn render_instances(instances: &[RunSummary]) -> String {
    let mut text = format!(
        "  {:<32}{:>12}{:>12}{:>12}{:>14}\n",
        "instance", "sent", "confirmed", "consumed", "confirm p99"
    );
    for s in instances {
        let Some(instance) = &s.instance else {
            continue;
        };
        let (confirmed, consumed) = match &s.details {
            CommandDetails::Bench {
                confirmed,
                consumed,
                ..
            } => (*confirmed, *consumed),
            _ => (0, 0),
        };
        let leader = match instance.number {
            1 => " leader",
            _ => "",
        };
        let who = format!(
            "{} {} pid {}{leader}",
            instance.number, instance.host, instance.pid
        );
        let lost = match instance.lost_at_s {
            Some(at) => format!("  LOST after {at:.1} s: counted as of its last sample"),
            None => String::new(),
        };
        text.push_str(&format!(
            "  {who:<32}{:>12}{:>12}{:>12}{:>14}{lost}\n",
            thousands(s.messages),
            thousands(confirmed),
            thousands(consumed),
            ms(s.latency_us.p99),
        ));
    }
    text
}

/// A group's event as a status line.
pub fn group_event_line(event: &crate::engines::group::GroupEvent) -> String {
    use crate::engines::group::GroupEvent;
    match event {
        GroupEvent::Waiting { joined, expected } => {
            format!("{joined} of {expected} instances here")
        }
        GroupEvent::Lost {
            number,
            member,
            at_s,
        } => format!(
            "instance {number} ({} pid {}) lost after {at_s:.1} s: nothing from it for {} s; the others go on",
            member.host,
            member.pid,
            crate::engines::group::LOST_AFTER.as_secs()
        ),
        GroupEvent::AssumedLost { number, member } => format!(
            "nothing from instance {number} ({} pid {}) for {} s: counted lost",
            member.host,
            member.pid,
            crate::engines::group::ASSUME_LOST_AFTER.as_secs()
        ),
    }
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
/// A value as one line of JSON (the `--json` document of commands that print one object).
pub fn json_line<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    serde_json::to_string(value).map(|mut text| {
        text.push('\n');
        text
    })
}

/// Microseconds as milliseconds with one decimal, `12.3 ms`.
pub fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

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
    use crate::stats::{GroupConsumerReads, LatencyHistogram, PublishOutcome, Totals};
    use crate::verify::ProducerCheck;

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
                waited_s: 0.0,
            },
        )
    }

    fn histogram(latencies_us: &[u64]) -> LatencyHistogram {
        let mut histogram = LatencyHistogram::new();
        for &us in latencies_us {
            histogram.record_us(us);
        }
        histogram
    }

    fn published(command: CommandName, sent: u64, skipped: u64, invalid: u64) -> RunSummary {
        let outcome = PublishOutcome {
            sent,
            bytes: sent * 250,
            confirmed: sent - 10,
            failed: 10,
            reconnects: 0,
            elapsed: Duration::from_millis(1_500),
            latency: histogram(&[800, 1_200, 2_500, 40_000]),
            max_stall: Duration::from_millis(400),
            stalls: Vec::new(),
        };
        RunSummary::published(
            command,
            "inventory_updates",
            "p1",
            outcome,
            skipped,
            invalid,
        )
    }

    fn consumed(stream: &str, messages: u64, offsets: Option<(u64, u64)>) -> RunSummary {
        RunSummary::new(
            CommandName::Consume,
            stream,
            Totals {
                messages,
                bytes: messages * 200,
                elapsed: Duration::from_millis(2_250),
            },
            LatencyKind::EndToEnd,
            &histogram(&[300, 900, 1_700]),
            CommandDetails::Consume {
                offset: "first".into(),
                first_offset: offsets.map(|(first, _)| first),
                last_offset: offsets.map(|(_, last)| last),
                not_inventory_updates: 3,
                delivered: messages,
                waited_s: 0.0,
            },
        )
    }

    /// A fan-out: two consumers (one read nothing), filtered by --product, verified.
    fn consume_with_verify_and_consumers() -> RunSummary {
        let mut total = consumed("inventory_updates", 12_345, Some((0, 12_344)));
        if let CommandDetails::Consume { delivered, .. } = &mut total.details {
            *delivered = 20_000;
        }
        total.reconnects = 1;
        total.verify = Some(VerifyReport {
            ok: false,
            producers: vec![
                ProducerCheck {
                    producer: "p1".into(),
                    distinct: 12_000,
                    duplicates: 0,
                    gaps: 0,
                    first_seq: 0,
                    last_seq: 11_999,
                    first_gaps: vec![],
                    reordered: 0,
                },
                ProducerCheck {
                    producer: String::new(),
                    distinct: 342,
                    duplicates: 3,
                    gaps: 2,
                    first_seq: 1,
                    last_seq: 345,
                    first_gaps: vec![17, 18],
                    reordered: 4,
                },
            ],
        });
        let mut a = consumed("inventory_updates", 12_345, Some((0, 12_344)));
        a.consumer = Some("a".into());
        a.verify = Some(VerifyReport {
            ok: true,
            producers: vec![],
        });
        let mut b = RunSummary::new(
            CommandName::Consume,
            "inventory_updates",
            Totals::default(),
            LatencyKind::EndToEnd,
            &LatencyHistogram::new(),
            CommandDetails::Consume {
                offset: "first".into(),
                first_offset: None,
                last_offset: None,
                not_inventory_updates: 0,
                delivered: 0,
                waited_s: 0.0,
            },
        );
        b.consumer = Some("b".into());
        total.consumers = vec![a, b];
        total
    }

    /// A super stream's two partitions, one of them empty.
    fn consume_with_partitions() -> RunSummary {
        let mut total = consumed("orders", 5_000, None);
        total.interrupted = true;
        total.partitions = vec![
            consumed("orders-0", 5_000, Some((10, 5_009))),
            consumed("orders-1", 0, None),
        ];
        total
    }

    /// A benchmark with its per-second timeline, which only `--json` shows.
    fn bench() -> RunSummary {
        let second = |second: f64| BenchSecond {
            second,
            published_per_s: 100_000.0,
            confirmed_per_s: 99_500.5,
            consumed_per_s: 98_000.0,
            confirm_p50_us: 1_200,
            confirm_p99_us: 8_000,
            end_to_end_p50_us: 2_000,
            end_to_end_p99_us: 12_500,
        };
        RunSummary::new(
            CommandName::Bench,
            "inventory_updates-bench-1796459048455-4194304",
            Totals {
                messages: 1_000_000,
                bytes: 230_000_000,
                elapsed: Duration::from_millis(10_123),
            },
            LatencyKind::PublishToConfirm,
            &histogram(&[900, 1_100, 1_300, 9_000]),
            CommandDetails::Bench {
                producers: 2,
                consumers: 3,
                confirmed: 999_990,
                failed: 10,
                consumed: 2_999_970,
                consumed_per_s: 296_352.4,
                end_to_end_us: histogram(&[1_500, 2_000, 30_000]).summary(),
                timeline: vec![second(1.0), second(2.0)],
                consumers_per_group: 1,
                groups: Vec::new(),
                backlog: None,
            },
        )
    }

    /// A gateway that lost its connection, stalled and was stopped by a signal; it skipped
    /// updates the broker held and refused invalid ones.
    fn serve() -> RunSummary {
        let mut summary = published(CommandName::Serve, 4_321, 5, 2);
        summary.interrupted = true;
        summary.reconnects = 2;
        if let CommandDetails::Produce { max_stall_s, .. } = &mut summary.details {
            *max_stall_s = 2.5;
        }
        summary
    }

    /// The whole report, byte for byte: what users (and scripts) read is kept exactly.
    fn assert_text(summary: &RunSummary, expected: &[&str]) {
        let expected: String = expected.iter().map(|line| format!("{line}\n")).collect();
        assert_eq!(render_text(summary), expected);
    }

    #[test]
    fn a_produce_report_in_full() {
        assert_text(
            &published(CommandName::Produce, 1_000, 0, 3),
            &[
                "produce → stream 'inventory_updates'",
                "  messages        1,000 sent, 990 confirmed, 10 failed, 3 invalid input lines",
                "  bytes           250,000 (0.2 MB)",
                "  elapsed         1.500 s",
                "  throughput      667 msg/s, 0.2 MB/s",
                "  latency (µs), publish → broker confirm:",
                "    mean          11,129",
                "    min              800",
                "    p50            1,200",
                "    p90           40,031",
                "    p99           40,031",
                "    p99.9         40,031",
                "    max           40,031",
            ],
        );
    }

    #[test]
    fn a_consume_report_with_consumers_and_verify_in_full() {
        assert_text(
            &consume_with_verify_and_consumers(),
            &[
                "consume ← stream 'inventory_updates' from offset first",
                "  messages        12,345 read (matching --product, of 20,000 the broker delivered; 3 not inventory updates)",
                "  offsets         0 … 12,344",
                "  bytes           2,469,000 (2.5 MB)",
                "  elapsed         2.250 s (from the first message read to the last)",
                "  reconnects      1",
                "  throughput      2 consumers, each read 0 to 12,345; slowest 0 msg/s (b), fastest 5,487 msg/s (a)",
                "  latency (µs), produced_at → read (the message's age on a replay):",
                "    mean             967",
                "    min              300",
                "    p50              900",
                "    p90            1,700",
                "    p99            1,700",
                "    p99.9          1,700",
                "    max            1,700",
                "  consumer            messages       msg/s elapsed s   latency p50   latency p99   last offset",
                "  a                     12,345       5,487     2.250           900         1,700        12,344",
                "  b                          0           0     0.000             0             0             -",
                "  verify: FAILED",
                "    producer p1: 12,000 distinct seq 0…11,999, 0 gaps, 0 duplicates",
                "    producer (unnamed): 342 distinct seq 1…345, 2 gaps, 3 duplicates (first missing: 17, 18), 4 out of order within their product",
                "  verify (a): OK",
                "    no inventory updates with a producer name were read",
            ],
        );
    }

    #[test]
    fn a_super_stream_consume_report_with_partitions_in_full() {
        assert_text(
            &consume_with_partitions(),
            &[
                "consume ← super stream 'orders' from offset first (interrupted)",
                "  messages        5,000 read (3 not inventory updates)",
                "  offsets         none",
                "  bytes           1,000,000 (1.0 MB)",
                "  elapsed         2.250 s",
                "  throughput      2,222 msg/s, 0.4 MB/s",
                "  latency (µs), produced_at → read (the message's age on a replay):",
                "    mean             967",
                "    min              300",
                "    p50              900",
                "    p90            1,700",
                "    p99            1,700",
                "    p99.9          1,700",
                "    max            1,700",
                "  partition                   messages       msg/s   latency p50   latency p99",
                "  orders-0                       5,000       2,222           900         1,700",
                "  orders-1                           0           0           900         1,700",
            ],
        );
    }

    #[test]
    fn a_bench_report_in_full() {
        assert_text(
            &bench(),
            &[
                "bench → stream 'inventory_updates-bench-1796459048455-4194304'",
                "  messages        1,000,000 sent, 999,990 confirmed, 10 failed (2 producers)",
                "  consumed        2,999,970 by 3 consumers, 296,352 msg/s",
                "  bytes           230,000,000 (230.0 MB)",
                "  elapsed         10.123 s",
                "  throughput      98,785 msg/s, 22.7 MB/s",
                "  latency (µs), publish → broker confirm:",
                "    mean           3,076",
                "    min              900",
                "    p50            1,100",
                "    p90            9,007",
                "    p99            9,007",
                "    p99.9          9,007",
                "    max            9,007",
                "  latency (µs), produced_at → read by a consumer:",
                "    mean          11,169",
                "    min            1,500",
                "    p50            2,000",
                "    p90           30,015",
                "    p99           30,015",
                "    p99.9         30,015",
                "    max           30,015",
            ],
        );
    }

    /// Groups and a backlog: a line per group (each consumer, the partitions it read) and the
    /// backlog's build and drain.
    #[test]
    fn a_bench_in_groups_after_a_backlog_says_each_group_and_the_drain() {
        let mut summary = bench();
        if let CommandDetails::Bench {
            consumers,
            consumers_per_group,
            groups,
            backlog,
            ..
        } = &mut summary.details
        {
            (*consumers, *consumers_per_group) = (2, 2);
            let consumer = |name: &str, consumed, partitions: &[&str]| GroupConsumerReads {
                consumer: name.into(),
                consumed,
                partitions: partitions.iter().map(|p| p.to_string()).collect(),
            };
            *groups = vec![GroupReads {
                group: "bench-group-0".into(),
                consumed: 999_990,
                read_again: 12,
                consumers: vec![
                    consumer("bench-consumer-0", 666_660, &["s-0", "s-2"]),
                    consumer("bench-consumer-1", 333_330, &["s-1"]),
                ],
            }];
            *backlog = Some(BacklogDrain {
                asked_bytes: 10_000_000,
                bytes: 10_240_000,
                messages: 10_000,
                build_s: 2.01,
                drain_ratio: 1.0,
                drain_s: Some(0.25),
                drain_msg_per_s: 44_000.0,
                drain_mb_per_s: 45.06,
            });
        }
        let text = render_text(&summary);
        for wanted in [
            "  consumed        2,999,970 by 2 consumers in groups of 2, 296,352 msg/s\n",
            "  bench-group-0   999,990, 12 read again: bench-consumer-0 666,660 (2 partitions), bench-consumer-1 333,330 (1 partition)\n",
            "  backlog         10.2 MB (10,000 messages) built in 2.0 s, drained in 0.25 s (44,000 msg/s, 45.1 MB/s)\n",
        ] {
            assert!(text.contains(wanted), "{wanted}{text}");
        }
    }

    #[test]
    fn a_serve_report_in_full() {
        assert_text(
            &serve(),
            &[
                "serve → stream 'inventory_updates'",
                "  messages        4,321 sent, 4,311 confirmed, 10 failed (5 skipped: already stored), 2 invalid input lines",
                "  longest stall   2.5 s without a confirm",
                "  bytes           1,080,250 (1.1 MB)",
                "  elapsed         1.500 s",
                "  reconnects      2",
                "  throughput      2,881 msg/s, 0.7 MB/s",
                "  latency (µs), publish → broker confirm:",
                "    mean          11,129",
                "    min              800",
                "    p50            1,200",
                "    p90           40,031",
                "    p99           40,031",
                "    p99.9         40,031",
                "    max           40,031",
            ],
        );
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

    /// Consumers that read the same messages: "each read N", and the slowest and fastest by
    /// their own rates (no total rate, which would follow the slowest).
    #[test]
    fn a_fan_out_names_each_read_and_the_slowest_and_fastest_rates() {
        let consumer = |name: &str, elapsed_ms: u64| {
            let mut c = consumed("s", 100_000, Some((0, 99_999)));
            c.consumer = Some(name.into());
            c.elapsed_s = elapsed_ms as f64 / 1000.0;
            c.msg_per_s = 100_000.0 / c.elapsed_s;
            c
        };
        let consumers = [
            consumer("stats", 1_719),
            consumer("email", 250_000),
            consumer("ads", 1_505),
        ];
        assert_eq!(
            fan_out_rates(&consumers).unwrap(),
            "3 consumers, each read 100,000; slowest 400 msg/s (email), fastest 66,445 msg/s (ads)"
        );
        assert_eq!(fan_out_rates(&[]), None);
    }

    #[test]
    fn rates_are_whole_messages_with_their_unit() {
        assert_eq!(rate_text(94_725.161_3), "94,725 msg/s");
        assert_eq!(rate_text(0.4), "0 msg/s");
        let second = BenchSecond {
            second: 1.0,
            published_per_s: 2_919_181.7,
            confirmed_per_s: 0.0,
            consumed_per_s: 1_842_852.0,
            confirm_p50_us: 4_600,
            confirm_p99_us: 10_200,
            end_to_end_p50_us: 8_800,
            end_to_end_p99_us: 327_700,
        };
        let line = bench_second_line(&second);
        assert!(line.contains("published 2,919,181 msg/s"), "{line}");
        assert!(line.contains("confirmed         0 msg/s"), "{line}");
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

    #[test]
    fn a_wait_for_the_first_message_is_said_apart_from_the_rate() {
        let mut summary = consumed("s", 1_000, Some((0, 999)));
        assert!(!render_text(&summary).contains("waited"));
        if let CommandDetails::Consume { waited_s, .. } = &mut summary.details {
            *waited_s = 2.04;
        }
        let text = render_text(&summary);
        assert!(
            text.contains("2.0 s for the first message (not in the rate)"),
            "{text}"
        );
        assert!(render_json(&summary).contains("\"waited_s\":2.04"));
    }
}
