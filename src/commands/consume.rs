//! `invstream consume`: reads a stream, or the partitions of a super stream (`--super-stream`),
//! with one reader per consumer (`--consumers`) on each partition, each counting, timing (and
//! with `--verify` checking) what it reads; then one summary, with one per consumer in a fan-out
//! and one per partition on a super stream. A plain stream is read as the one partition it is,
//! so that every rule is written once, whatever is read: `consume/partitions.rs` finds the
//! partitions, `plan.rs` what each holds before subscribing (where a replay ends, stored
//! offsets, where a timestamp starts), `readers.rs` subscribes and reads, `tally.rs` is each
//! reader's sink, and `summary.rs` sums them up.

mod partitions;
mod plan;
mod readers;
mod summary;
mod tally;

use crate::engines::reader::StopRule;
use crate::error::Result;
use crate::report::Output;
use crate::settings::{CommonSettings, ConsumeSettings};
use crate::shutdown::Shutdown;
use crate::stats::RunSummary;
use crate::target::Target;
use plan::PartitionPlan;
use readers::Subscriber;

/// `invstream consume`, of a stream or a super stream.
pub async fn run(
    common: &CommonSettings,
    settings: &ConsumeSettings,
    shutdown: &Shutdown,
    out: Output,
) -> Result<RunSummary> {
    let (env, target) = partitions::open(common, settings, out).await?;
    let plans = plan::plan(&env, &common.broker, settings, &target).await?;
    if !settings.products.is_empty() {
        out.status("--product: the broker skips chunks without these products where messages carry filter values (produce --filter-values); invstream checks every message it gets");
    }
    let readers = Subscriber::new(&env, &common.broker, settings, &target, out)
        .subscribe(&plans)
        .await?;
    let results = match readers.is_empty() {
        // Every reader's replay starts past its partition's end: nothing to wait for.
        true => {
            out.status(&format!(
                "{} has nothing to read from offset {}",
                target.describe(),
                settings.start
            ));
            readers.into_idle()
        }
        false => {
            let consumers = readers.consumers_reading();
            out.status(&reading_line(&target, settings, &plans, consumers));
            readers.read(shutdown, out).await?
        }
    };
    let mut summary = summary::summarize(&target, settings, &results);
    summary.interrupted = shutdown.received().is_some();
    Ok(summary)
}

/// The line that says reading began (scripts and tests wait for its "reading stream" or
/// "reading super stream"): what is read, by how many consumers, from where, and until when.
fn reading_line(
    target: &Target,
    settings: &ConsumeSettings,
    plans: &[PartitionPlan],
    consumers: usize,
) -> String {
    let bounded = settings.count.is_some() || settings.duration.is_some();
    let end = plans.first().and_then(|plan| plan.end_offset);
    let until = match (settings.stop_rule, target.is_super_stream, end) {
        (StopRule::AtEnd, true, _) => "up to the end of each partition now".to_string(),
        (StopRule::AtEnd, false, Some(end)) => {
            format!("up to offset {end}, the end of the stream now")
        }
        (_, true, _) if settings.count_per_partition => {
            "until --count-per-partition from each partition, or --duration".to_string()
        }
        (_, true, _) if bounded => {
            "until --count from all partitions together, or --duration".to_string()
        }
        (_, false, _) if bounded => "until --count or --duration".to_string(),
        _ => "following new messages; Ctrl-C to stop".to_string(),
    };
    let who = match consumers {
        1 => "reading".to_string(),
        n => format!("{n} consumers reading"),
    };
    let partitions = match (target.is_super_stream, target.partitions.len()) {
        (false, _) => String::new(),
        (true, n) => format!(
            " ({n} partition{}{})",
            if n == 1 { "" } else { "s" },
            match settings.single_active {
                true => ", one active instance per partition",
                false => "",
            }
        ),
    };
    format!(
        "{who} {}{partitions} from {} ({until})",
        target.describe(),
        settings.start
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ReadFrom;
    use crate::engines::reader::{ReaderSpec, StartOffset};

    fn settings(count: Option<u64>, count_per_partition: bool) -> ConsumeSettings {
        let start = StartOffset::First;
        ConsumeSettings {
            stop_rule: StopRule::new(&start, count, None, false),
            start,
            count,
            count_per_partition,
            duration: None,
            readers: vec![ReaderSpec {
                label: "consumer".into(),
                tracking_name: None,
                slow: None,
                stored: None,
            }],
            store_every: 1,
            single_active: false,
            read_from: ReadFrom::Leader,
            print: false,
            verify: false,
            products: vec![],
            super_stream: Some("orders".into()),
        }
    }

    /// The reading line says what --count means on a super stream: all partitions together,
    /// unless --count-per-partition.
    #[test]
    fn the_reading_line_says_what_the_count_counts() {
        let target = Target::super_stream("orders", vec!["orders-0".into(), "orders-1".into()]);
        assert_eq!(
            reading_line(&target, &settings(Some(10), false), &[], 1),
            "reading super stream 'orders' (2 partitions) from first (until --count from all partitions together, or --duration)"
        );
        assert_eq!(
            reading_line(&target, &settings(Some(10), true), &[], 1),
            "reading super stream 'orders' (2 partitions) from first (until --count-per-partition from each partition, or --duration)"
        );
        let stream = Target::stream("s");
        assert!(reading_line(&stream, &settings(Some(10), false), &[], 1)
            .ends_with("(until --count or --duration)"));
    }
}
