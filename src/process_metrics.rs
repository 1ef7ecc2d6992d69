//! The `process_*` metrics of the Prometheus client conventions (CPU time, memory, file
//! descriptors, start time), read from `/proc/self` at each scrape so dashboards made for any
//! Prometheus client work unchanged. Linux only: elsewhere they are absent rather than wrong.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Shows this process's `process_*` metrics at each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        match ProcessSample::read() {
            Some(sample) => sample.encode(&mut encoder),
            None => Ok(()),
        }
    }
}

/// One reading of the process; a figure the system would not give is `None` (and not shown).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Default, PartialEq)]
struct ProcessSample {
    cpu_seconds: f64,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    start_time_seconds: Option<f64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
}

impl ProcessSample {
    #[cfg(target_os = "linux")]
    fn read() -> Option<ProcessSample> {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let stat = parse_stat(&read("/proc/self/stat")?)?;
        // SAFETY: sysconf only reads its argument; it answers -1 for a name it does not know.
        let (ticks_per_second, page_bytes) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let boot_time = read("/proc/stat").and_then(|text| parse_boot_time(&text));
        let start_time_seconds = match (boot_time, ticks_per_second > 0) {
            (Some(boot), true) => {
                Some(boot as f64 + stat.start_ticks as f64 / ticks_per_second as f64)
            }
            _ => None,
        };
        let resident_bytes = u64::try_from(page_bytes)
            .ok()
            .map(|page| stat.resident_pages.saturating_mul(page));
        Some(ProcessSample {
            cpu_seconds: crate::stats::process_cpu_time().as_secs_f64(),
            resident_bytes,
            virtual_bytes: Some(stat.virtual_bytes),
            start_time_seconds,
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as u64),
            max_fds: read("/proc/self/limits").and_then(|text| parse_max_fds(&text)),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn read() -> Option<ProcessSample> {
        None
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        // Registered without `_total`: the encoder adds it to a counter.
        let cpu = ConstCounter::new(self.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let start_time = self.start_time_seconds.map(ConstGauge::new);
        if let Some(gauge) = start_time {
            gauge.encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                None,
                gauge.metric_type(),
            )?)?;
        }
        let counts = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                self.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                self.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                self.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                self.max_fds,
            ),
        ];
        for (name, help, value) in counts {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// What `/proc/self/stat` says that the metrics use.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, PartialEq)]
struct Stat {
    /// Since boot, in clock ticks.
    start_ticks: u64,
    virtual_bytes: u64,
    resident_pages: u64,
}

/// Reads `/proc/[pid]/stat` (proc(5)): the fields after the command name, which is in
/// parentheses and may itself hold spaces and parentheses, so it ends at the last `)`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, after_name) = text.rsplit_once(')')?;
    // Field 3 (the state) is the first after the name; proc(5) counts from 1.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
    Some(Stat {
        start_ticks: field(22)?,
        virtual_bytes: field(23)?,
        resident_pages: field(24)?,
    })
}

/// The boot time in seconds since the epoch: the `btime` line of `/proc/stat`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// The soft limit on open files from `/proc/self/limits`; `None` when unlimited.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        // A command name with a space and a parenthesis of its own.
        let text = "4242 (tokio rt) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 \
                    9 0 987654 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 4096 17 0 0 0 \
                    0 0 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                start_ticks: 987654,
                virtual_bytes: 123456789,
                resident_pages: 2048,
            })
        );
        assert_eq!(parse_stat("4242 (cut) S 1 2 3"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn boot_time_is_the_btime_line() {
        let text = "cpu  1 2 3 4\nintr 5 6\nctxt 77\nbtime 1700000000\nprocesses 99\n";
        assert_eq!(parse_boot_time(text), Some(1_700_000_000));
        assert_eq!(parse_boot_time("cpu 1 2\n"), None);
    }

    #[test]
    fn max_fds_is_the_soft_limit_on_open_files() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n\
                    Max locked memory         8388608              8388608              bytes     \n";
        assert_eq!(parse_max_fds(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_fds(unlimited), None);
    }

    #[test]
    fn a_missing_figure_is_left_out_not_shown_as_zero() {
        let sample = ProcessSample {
            cpu_seconds: 1.5,
            resident_bytes: Some(4096),
            max_fds: None,
            ..ProcessSample::default()
        };
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Fixed(sample)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("\nprocess_cpu_seconds_total 1.5\n"), "{text}");
        assert!(
            text.contains("\nprocess_resident_memory_bytes 4096\n"),
            "{text}"
        );
        assert!(!text.contains("process_max_fds"), "{text}");
        assert!(!text.contains("process_start_time_seconds"), "{text}");
    }

    /// A collector of one given sample.
    #[derive(Debug)]
    struct Fixed(ProcessSample);

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            self.0.encode(&mut encoder)
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_as_plausible_figures() {
        let sample = ProcessSample::read().expect("/proc/self is readable on Linux");
        assert!(
            sample.resident_bytes.is_some_and(|b| b > 1 << 20),
            "{sample:?}"
        );
        assert!(sample.virtual_bytes >= sample.resident_bytes, "{sample:?}");
        assert!(sample.open_fds.is_some_and(|n| n >= 3), "{sample:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = sample.start_time_seconds.expect("a start time");
        // Started before now, and (this being a test run) within the last day.
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{sample:?}"
        );
    }
}
