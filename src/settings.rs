//! The settings stage: the raw command line (`cli`) turned into checked settings, one struct per
//! command, in one place, before anything connects. Every combination that cannot work is
//! refused here with a message that names the flag.

use std::collections::HashMap;
use std::time::Duration;

use crate::broker::{BrokerSettings, Management, Password, Retention, TlsFiles};
use crate::cli::{
    BenchArgs, Cli, Command, Compression, ConsumeArgs, GlobalArgs, LayoutArgs, ManArgs,
    ProduceArgs, ReadFrom, RetentionArgs, ServeArgs, StreamsAction, StreamsArgs,
};
use crate::engines::publisher::{Batching, PublisherOptions};
use crate::engines::reader::{ReaderSpec, StartOffset, StopRule};
use crate::entry::MessageProperties;
use crate::error::{InvError, Result};
use crate::input::InputSource;
use crate::target::PartitionLayout;

mod checks;
mod max_rate;
pub(crate) mod names;
mod workbench;
mod workload;

pub use max_rate::MaxRateSettings;
pub use workbench::{Configuration, WorkbenchSettings};
pub use workload::{WorkloadRun, WorkloadSettings};

/// What every command shares.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    pub broker: BrokerSettings,
    pub stream: String,
    pub json: bool,
    pub quiet: bool,
}

/// One command's checked settings.
#[derive(Debug)]
pub enum CommandSettings {
    Produce(ProduceSettings),
    Consume(ConsumeSettings),
    Serve(ServeSettings),
    Bench(BenchSettings),
    /// `bench` comparing configurations (`--param`, `--runs`, exports, baselines).
    Workbench(Box<WorkbenchSettings>),
    /// `streams list|info|delete`.
    Streams(StreamsSettings),
    /// `bench --find-max-rate`.
    MaxRate(Box<MaxRateSettings>),
    /// `bench --workload FILE.yaml`.
    Workload(Box<WorkloadSettings>),
}

/// `invstream streams`: what to do, and where the management API is.
#[derive(Debug, Clone)]
pub struct StreamsSettings {
    pub action: StreamsTask,
    pub management: Management,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamsTask {
    List,
    Info {
        name: String,
        /// `--consumer`, `--producer`: names to show besides those the broker lists.
        consumers: Vec<String>,
        producers: Vec<String>,
    },
    Delete {
        name: String,
        /// `--yes`: no question asked.
        yes: bool,
    },
}

/// How a publisher frames and bounds what it sends (shared by produce, serve and bench).
#[derive(Debug, Clone, Copy)]
pub struct PublishSettings {
    /// Messages per publish frame, never above `max_in_flight`.
    pub batch_size: u64,
    pub max_in_flight: u64,
    pub filter_values: bool,
    pub batching: Batching,
    pub properties: MessageProperties,
}

impl PublishSettings {
    /// A publisher's options under `producer_name`, deduplicated by the broker when `dedup`.
    pub fn publisher_options(&self, producer_name: String, dedup: bool) -> PublisherOptions {
        PublisherOptions {
            batch_size: self.batch_size,
            max_in_flight: self.max_in_flight,
            filter_values: self.filter_values,
            producer_name,
            dedup,
            batching: self.batching,
            properties: self.properties,
            carried_name: None,
        }
    }
}

/// Where a produce run's updates come from.
#[derive(Debug, Clone)]
pub enum UpdateSourceSettings {
    Generated {
        count: u64,
        products: u64,
        seed: u64,
    },
    Input {
        source: InputSource,
        strict: bool,
    },
}

#[derive(Debug, Clone)]
pub struct ProduceSettings {
    pub source: UpdateSourceSettings,
    /// `None`: a new name for this run.
    pub producer_name: Option<String>,
    /// `--count` is the total for the name; input resumes after its last stored line.
    pub resume: bool,
    pub dedup: bool,
    pub rate: Option<u64>,
    pub confirm_timeout: Duration,
    pub publish: PublishSettings,
    pub retention: Retention,
    /// `--super-stream`: publish to its partitions instead of the stream.
    pub super_stream: Option<SuperStreamSettings>,
}

#[derive(Debug, Clone)]
pub struct ConsumeSettings {
    pub start: StartOffset,
    pub stop_rule: StopRule,
    /// `--count`, or `--count-per-partition`.
    pub count: Option<u64>,
    /// `--count-per-partition`: each partition's reader stops at `count`; else, on a super
    /// stream, `count` is each consumer's total over all partitions.
    pub count_per_partition: bool,
    pub duration: Option<Duration>,
    pub readers: Vec<ReaderSpec>,
    pub store_every: u64,
    pub single_active: bool,
    pub read_from: ReadFrom,
    pub print: bool,
    pub verify: bool,
    pub products: Vec<u64>,
    /// `--super-stream`: read its partitions instead of the stream.
    pub super_stream: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub publish: PublishSettings,
    pub producer_name: Option<String>,
    /// `--super-stream`: publish to its partitions instead of the stream.
    pub super_stream: Option<String>,
    pub retention: Retention,
    pub listen: std::net::SocketAddr,
    /// How long a request waits for its updates' confirms before 504.
    pub confirm_timeout: Duration,
    pub limits: ServeLimits,
    /// `--auth-token-file`: one bearer token per line (read when serving starts).
    pub tokens_file: Option<std::path::PathBuf>,
    /// `/metrics` without a token.
    pub public_metrics: bool,
    /// `--listen-tls-cert` and `--listen-tls-key`: serve HTTPS.
    pub listen_tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// What the gateway bounds, so no client can hold its memory or its connections.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub max_body_bytes: u64,
    pub max_header_bytes: u64,
    pub body_read_timeout: Duration,
    pub max_connections: u64,
}

/// The smallest and largest `--max-header-bytes` (hyper reads no less than 8 KiB at once).
const HEADER_BYTES_RANGE: std::ops::RangeInclusive<u64> = 8 * 1024..=16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub producers: u64,
    pub consumers: u64,
    /// `--consumers-per-group`: consumers sharing a name as single active consumers; 1: every
    /// consumer reads every message on its own.
    pub consumers_per_group: u64,
    /// `--backlog`: what is published before the consumers subscribe.
    pub backlog: Option<BacklogSettings>,
    pub count: u64,
    pub duration: Option<Duration>,
    pub rate: Option<u64>,
    pub message_size: Option<u64>,
    pub publish: PublishSettings,
    /// `--super-stream-partitions`: bench a super stream of this many partitions.
    pub super_stream_partitions: Option<u32>,
    pub keep_stream: bool,
    pub hdr_log: Option<std::path::PathBuf>,
    pub plot: Option<std::path::PathBuf>,
    /// `--export-omb`: the directory (made, and found writable) for OMB-format results.
    pub export_omb: Option<std::path::PathBuf>,
    /// `--prometheus`: where to serve the live samples.
    pub prometheus: Option<std::net::SocketAddr>,
    /// `--no-tui`: the per-second lines even on a terminal.
    pub no_tui: bool,
    /// `--instances N --group NAME`: this process is one of a group that runs the benchmark
    /// together (the counts above are the group's).
    pub group: Option<GroupSettings>,
}

/// `bench --instances N --group NAME --join-timeout D`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    pub name: String,
    pub instances: u32,
    pub join_timeout: Duration,
}

impl BenchSettings {
    /// The consumer groups: each reads every message once (a consumer alone is a group).
    pub fn groups(&self) -> u64 {
        self.consumers / self.consumers_per_group
    }
}

/// `bench --backlog`: published before any consumer subscribes, then drained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BacklogSettings {
    pub bytes: u64,
    /// The share of the backlog read down for it to count as drained (1: caught up).
    pub drain_ratio: f64,
}

/// `completions` and `man`: documents made from the command line's own definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentSettings {
    Completions(clap_complete::Shell),
    /// One page on stdout: invstream(1), or the named command's.
    ManPage {
        command: Option<String>,
    },
    /// Every page into a folder (made if missing); `quiet`: not even the line saying where.
    ManPages {
        out: std::path::PathBuf,
        quiet: bool,
    },
}

/// A super stream as a produce run asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperStreamSettings {
    pub name: String,
    /// How to create it when it is missing (`None`: three hash partitions).
    pub layout: Option<PartitionLayout>,
}

impl SuperStreamSettings {
    /// `--partition-keys`: updates go where the broker routes their warehouse.
    pub fn by_warehouse(&self) -> bool {
        matches!(self.layout, Some(PartitionLayout::Keys(_)))
    }
}

/// The document a command line asks for (`completions`, `man`), checked; `None` for a command
/// that works on a broker (then [`from_cli`]). Nothing else is read: no broker setting (a bad
/// `INVSTREAM_URI`) stops a document.
pub fn document(cli: &Cli) -> Result<Option<DocumentSettings>> {
    Ok(Some(match &cli.command {
        Command::Completions(args) => DocumentSettings::Completions(args.shell),
        Command::Man(args) => man(args, cli.global.quiet)?,
        _ => return Ok(None),
    }))
}

fn man(args: &ManArgs, quiet: bool) -> Result<DocumentSettings> {
    if let Some(out) = &args.out {
        if out.exists() && !out.is_dir() {
            return Err(InvError::usage(format!(
                "--out {} is not a folder: give the folder for the pages (made if missing)",
                out.display()
            )));
        }
        return Ok(DocumentSettings::ManPages {
            out: out.clone(),
            quiet,
        });
    }
    let names = crate::cli::command_names();
    if let Some(command) = &args.command {
        if !names.contains(command) {
            return Err(InvError::usage(format!(
                "no man page for '{command}': name one of {} (or none, for invstream(1))",
                names.join(", ")
            )));
        }
    }
    Ok(DocumentSettings::ManPage {
        command: args.command.clone(),
    })
}

/// Checks the whole command line of a command that works on a broker; a document's is checked
/// by [`document`].
pub fn from_cli(cli: &Cli) -> Result<(CommonSettings, CommandSettings)> {
    let common = common(&cli.global)?;
    if let Command::Bench(args) = &cli.command {
        group_alone(args)?;
    }
    let command = match &cli.command {
        Command::Produce(args) => CommandSettings::Produce(produce(args)?),
        Command::Consume(args) => CommandSettings::Consume(consume(args)?),
        Command::Serve(args) => CommandSettings::Serve(serve(args)?),
        Command::Bench(args) if args.workload.is_some() => {
            CommandSettings::Workload(Box::new(workload::workload(cli, args)?))
        }
        Command::Bench(args) if args.max_rate.find_max_rate => {
            CommandSettings::MaxRate(Box::new(max_rate::max_rate(args)?))
        }
        Command::Bench(args) if args.workbench.asked() => {
            CommandSettings::Workbench(Box::new(workbench::workbench(cli, args)?))
        }
        Command::Bench(args) => CommandSettings::Bench(bench(args)?),
        Command::Streams(args) => CommandSettings::Streams(streams(args, &common.broker)?),
        Command::Completions(_) | Command::Man(_) => {
            return Err(InvError::usage(
                "completions and man connect to nothing: their settings are settings::document",
            ))
        }
    };
    let super_stream = match &command {
        CommandSettings::Produce(p) => p.super_stream.as_ref().map(|s| s.name.as_str()),
        CommandSettings::Consume(c) => c.super_stream.as_deref(),
        CommandSettings::Serve(s) => s.super_stream.as_deref(),
        CommandSettings::Bench(_)
        | CommandSettings::Workbench(_)
        | CommandSettings::Streams(_)
        | CommandSettings::MaxRate(_)
        | CommandSettings::Workload(_) => None,
    };
    checks::stream_or_super_stream(super_stream, cli.global.stream_typed)?;
    names::check(&common, &command)?;
    Ok((common, command))
}

fn streams(args: &StreamsArgs, broker: &BrokerSettings) -> Result<StreamsSettings> {
    let (action, management_url) = match &args.action {
        StreamsAction::List(a) => (StreamsTask::List, a.management.management_url.as_deref()),
        StreamsAction::Info(a) => (
            StreamsTask::Info {
                name: a.name.clone(),
                consumers: a.consumer.clone(),
                producers: a.producer.clone(),
            },
            a.management.management_url.as_deref(),
        ),
        // Deleting goes over the stream protocol alone.
        StreamsAction::Delete(a) => (
            StreamsTask::Delete {
                name: a.name.clone(),
                yes: a.yes,
            },
            None,
        ),
    };
    Ok(StreamsSettings {
        action,
        management: Management::new(management_url, broker)?,
    })
}

fn common(args: &GlobalArgs) -> Result<CommonSettings> {
    let tls = TlsFiles {
        ca_cert: args.tls.tls_ca_cert.clone(),
        cert: args.tls.tls_cert.clone(),
        key: args.tls.tls_key.clone(),
        insecure: args.tls.tls_insecure,
    };
    let password = password(args)?;
    Ok(CommonSettings {
        broker: BrokerSettings::new(&args.uri, password.as_ref(), &tls, args.retry_for)?,
        stream: args.stream.clone(),
        json: args.json,
        quiet: args.quiet,
    })
}

/// The password given apart from `--uri`: `--password-file`'s first line or
/// `INVSTREAM_PASSWORD`, not both (which one was meant?). The messages never hold it.
fn password(args: &GlobalArgs) -> Result<Option<Password>> {
    let file = match (&args.password_file, &args.password_variable) {
        (Some(_), Some(_)) => {
            return Err(InvError::usage(
                "both --password-file (or INVSTREAM_PASSWORD_FILE) and INVSTREAM_PASSWORD give the password: keep one",
            ))
        }
        (None, variable) => return Ok(variable.clone()),
        (Some(file), None) => file,
    };
    let cannot = |why: String| {
        InvError::usage(format!(
            "cannot read the password from --password-file {}: {why}",
            file.display()
        ))
    };
    let bytes = crate::files::read_bounded(file, MAX_PASSWORD_FILE_BYTES).map_err(|e| {
        cannot(format!(
            "{e}; give a file this user can read, holding the password alone, or set INVSTREAM_PASSWORD instead"
        ))
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| cannot("it is not UTF-8 text; write the password as text".into()))?;
    // Editors end a file with a newline; the password does not hold it.
    let password = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(cannot("it is empty; write the password in it".into()));
    }
    Ok(Some(Password::new(password.to_string())))
}

/// The most a password file holds: a password, not a document.
const MAX_PASSWORD_FILE_BYTES: u64 = 64 << 10;

/// Compression applies only to sub-entry batches: asking for it without them is a mistake.
fn batching(args: &LayoutArgs) -> Result<Batching> {
    if args.sub_entry_size == 1 && args.compression != Compression::None {
        return Err(InvError::usage(
            "--compression applies to sub-entry batches: add --sub-entry-size N (e.g. 100)",
        ));
    }
    Ok(Batching {
        sub_entry_size: args.sub_entry_size,
        compression: args.compression.codec(),
    })
}

fn publish(
    batch_size: u64,
    max_in_flight: u64,
    filter_values: bool,
    layout: &LayoutArgs,
) -> Result<PublishSettings> {
    Ok(PublishSettings {
        // A frame larger than the in-flight bound could never be admitted.
        batch_size: batch_size.min(max_in_flight),
        max_in_flight,
        filter_values,
        batching: batching(layout)?,
        properties: layout.properties,
    })
}

fn retention(args: &RetentionArgs) -> Result<Retention> {
    checks::retention(args.max_segment_size_bytes, args.max_age)?;
    Ok(Retention {
        max_length_bytes: args.max_length_bytes,
        max_segment_size_bytes: args.max_segment_size_bytes,
        max_age: args.max_age,
    })
}

/// `--input FILE` must be a file that can be opened, found before anything connects (or creates
/// the stream). Only a regular file is opened to check: opening a named pipe (or a device) would
/// take the writer's data, and the reader opens it once, later.
fn check_input(source: &InputSource) -> Result<()> {
    let InputSource::File(path) = source else {
        return Ok(());
    };
    let path_text = path.display();
    let cannot_read =
        |e: std::io::Error| InvError::Input(format!("cannot read --input {path_text}: {e}"));
    let meta = std::fs::metadata(path).map_err(cannot_read)?;
    if meta.is_dir() {
        return Err(InvError::Input(format!(
            "--input {path_text} is a directory: give an NDJSON file (.gz too) or - for stdin"
        )));
    }
    if meta.is_file() {
        std::fs::File::open(path).map_err(cannot_read)?;
    }
    Ok(())
}

fn produce(args: &ProduceArgs) -> Result<ProduceSettings> {
    checks::positive(
        "--confirm-timeout",
        Some(args.confirm_timeout),
        "count every update failed before its confirm could come",
    )?;
    checks::filter_values_without_sub_entries(args.filter_values, args.layout.sub_entry_size)?;
    let source = match &args.input {
        Some(input) => {
            let source = InputSource::parse(input);
            check_input(&source)?;
            UpdateSourceSettings::Input {
                source,
                strict: args.strict,
            }
        }
        None => UpdateSourceSettings::Generated {
            count: args.count,
            products: args.products,
            seed: args.seed,
        },
    };
    Ok(ProduceSettings {
        source,
        producer_name: args.producer_name.clone(),
        resume: args.resume,
        dedup: !args.no_dedup,
        rate: args.rate,
        confirm_timeout: args.confirm_timeout,
        publish: publish(
            args.batch_size,
            args.max_in_flight,
            args.filter_values,
            &args.layout,
        )?,
        retention: retention(&args.retention)?,
        super_stream: super_stream(args)?,
    })
}

fn super_stream(args: &ProduceArgs) -> Result<Option<SuperStreamSettings>> {
    let Some(name) = &args.super_stream else {
        return Ok(None);
    };
    let mut keys = args.partition_keys.clone();
    keys.sort();
    keys.dedup();
    if keys.len() != args.partition_keys.len() {
        return Err(InvError::usage(
            "--partition-keys must differ: each names one partition",
        ));
    }
    let layout = match (args.partitions, args.partition_keys.is_empty()) {
        (Some(n), _) => Some(PartitionLayout::Count(n)),
        (None, false) => Some(PartitionLayout::Keys(args.partition_keys.clone())),
        (None, true) => None,
    };
    Ok(Some(SuperStreamSettings {
        name: name.clone(),
        layout,
    }))
}

fn consume(args: &ConsumeArgs) -> Result<ConsumeSettings> {
    checks::positive("--duration", args.duration, "end before reading anything")?;
    checks::verify_reads_everything(args.verify, &args.product)?;
    let labels = match (&args.consumers, &args.name) {
        (Some(labels), _) => labels.0.clone(),
        (None, Some(name)) => vec![name.clone()],
        (None, None) => vec!["consumer".to_string()],
    };
    let slow: HashMap<&str, Duration> = args.slow.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    if let Some(unknown) = slow.keys().find(|n| !labels.iter().any(|l| l == *n)) {
        return Err(InvError::usage(format!(
            "--slow names '{unknown}', which is not a consumer: the consumers are {}",
            labels.join(", ")
        )));
    }
    if args.offset == StartOffset::Stored && args.name.is_none() {
        return Err(InvError::usage(
            "--offset stored needs --name NAME: the broker stores offsets per consumer name",
        ));
    }
    let fan_out = args.consumers.is_some();
    let count = args.count.or(args.count_per_partition);
    let readers = labels
        .into_iter()
        .map(|label| ReaderSpec {
            // With --consumers, --name is a prefix: each consumer keeps its own offset.
            tracking_name: match (&args.name, fan_out) {
                (Some(name), true) => Some(format!("{name}-{label}")),
                (name, _) => name.clone(),
            },
            slow: slow.get(label.as_str()).copied(),
            stored: None,
            label,
        })
        .collect();
    Ok(ConsumeSettings {
        stop_rule: StopRule::new(&args.offset, count, args.duration, args.follow),
        start: args.offset.clone(),
        count,
        count_per_partition: args.count_per_partition.is_some(),
        duration: args.duration,
        readers,
        store_every: args.store_every,
        single_active: args.single_active,
        read_from: args.read_from,
        print: args.print,
        verify: args.verify,
        products: args.product.clone(),
        super_stream: args.super_stream.clone(),
    })
}

fn serve(args: &ServeArgs) -> Result<ServeSettings> {
    checks::positive(
        "--confirm-timeout",
        Some(args.confirm_timeout),
        "answer 504 before any confirm could come",
    )?;
    checks::positive(
        "--body-read-timeout",
        Some(args.body_read_timeout),
        "answer 408 to every request whose body does not come at once",
    )?;
    if !HEADER_BYTES_RANGE.contains(&args.max_header_bytes) {
        return Err(InvError::Usage(format!(
            "--max-header-bytes {} is out of range: use 8kib to 16mib",
            args.max_header_bytes
        )));
    }
    if args.auth_token_file.is_none() && !args.allow_anonymous && !args.listen.ip().is_loopback() {
        return Err(InvError::Usage(format!(
            "refusing to serve {} without authentication: other machines can reach it, so add --auth-token-file FILE (one token per line, e.g. openssl rand -hex 32 > FILE), listen on 127.0.0.1, or add --allow-anonymous to insist",
            args.listen
        )));
    }
    Ok(ServeSettings {
        publish: publish(
            args.batch_size,
            args.max_in_flight,
            args.filter_values,
            &LayoutArgs {
                properties: args.properties,
                ..LayoutArgs::default()
            },
        )?,
        producer_name: args.producer_name.clone(),
        super_stream: args.super_stream.clone(),
        retention: retention(&args.retention)?,
        listen: args.listen,
        confirm_timeout: args.confirm_timeout,
        limits: ServeLimits {
            max_body_bytes: args.max_body_bytes,
            max_header_bytes: args.max_header_bytes,
            body_read_timeout: args.body_read_timeout,
            max_connections: args.max_connections,
        },
        tokens_file: args.auth_token_file.clone(),
        public_metrics: args.public_metrics,
        listen_tls: args
            .listen_tls_cert
            .clone()
            .zip(args.listen_tls_key.clone()),
    })
}

pub(crate) fn bench(args: &BenchArgs) -> Result<BenchSettings> {
    checks::positive(
        "--duration",
        args.duration,
        "end before publishing anything",
    )?;
    checks::filter_values_without_sub_entries(args.filter_values, args.layout.sub_entry_size)?;
    if let Some(plot) = &args.plot {
        checks::output_file("--plot", plot, Some("svg"))?;
    }
    if let Some(log) = &args.hdr_log {
        checks::output_file("--hdr-log", log, None)?;
    }
    if let Some(dir) = &args.export_omb {
        checks::output_dir("--export-omb", dir)?;
    }
    checks::consumer_groups(args.consumers, args.consumers_per_group)?;
    let backlog = match args.backlog {
        Some(bytes) => Some(checks::backlog(
            bytes,
            args.backlog_drain_ratio,
            args.consumers,
        )?),
        None => None,
    };
    Ok(BenchSettings {
        producers: args.producers,
        consumers: args.consumers,
        consumers_per_group: args.consumers_per_group,
        backlog,
        count: args.count,
        duration: args.duration,
        rate: args.rate,
        message_size: args.message_size,
        publish: publish(
            args.batch_size,
            args.max_in_flight,
            args.filter_values,
            &args.layout,
        )?,
        super_stream_partitions: args.super_stream_partitions,
        keep_stream: args.keep_stream,
        hdr_log: args.hdr_log.clone(),
        plot: args.plot.clone(),
        export_omb: args.export_omb.clone(),
        prometheus: args.prometheus,
        no_tui: args.no_tui,
        group: group(args)?,
    })
}

/// A group (`--instances`) runs one plain benchmark: not a workload, a search or a comparison.
fn group_alone(args: &BenchArgs) -> Result<()> {
    if args.group.instances.is_none() {
        return Ok(());
    }
    for (flag, given) in [
        ("--workload", args.workload.is_some()),
        ("--find-max-rate", args.max_rate.find_max_rate),
        (
            "--param, --runs and the comparison's options",
            args.workbench.asked(),
        ),
    ] {
        if given {
            return Err(InvError::usage(format!(
                "{flag} does not work with --instances: a group runs one benchmark"
            )));
        }
    }
    Ok(())
}

/// `--instances`/`--group`: checked against what a group cannot do yet.
fn group(args: &BenchArgs) -> Result<Option<GroupSettings>> {
    let (Some(instances), Some(name)) = (args.group.instances, &args.group.group) else {
        return Ok(None);
    };
    for (flag, given) in [
        ("--prometheus", args.prometheus.is_some()),
        ("--backlog", args.backlog.is_some()),
        (
            "--consumers-per-group above 1",
            args.consumers_per_group > 1,
        ),
    ] {
        if given {
            return Err(InvError::usage(format!(
                "{flag} does not work with --instances yet: run the group without it"
            )));
        }
    }
    checks::positive(
        "--join-timeout",
        Some(args.group.join_timeout),
        "give up at once",
    )?;
    Ok(Some(GroupSettings {
        name: name.clone(),
        instances,
        join_timeout: args.group.join_timeout,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Result<(CommonSettings, CommandSettings)> {
        let cli =
            Cli::try_parse_command_line(std::iter::once("invstream").chain(args.iter().copied()))
                .expect("the arguments parse");
        from_cli(&cli)
    }

    /// `--password-file`'s password (its newline dropped) or INVSTREAM_PASSWORD's replaces the
    /// URI's; both, or a file that cannot be read, is refused in one line without the password.
    #[test]
    fn the_password_comes_from_a_file_or_the_variable_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret-pw\r\n").unwrap();
        let file_arg = file.to_str().unwrap();
        let parse = |args: &[&str], variable: Option<&str>| {
            let mut cli = Cli::try_parse_command_line(
                std::iter::once("invstream").chain(args.iter().copied()),
            )
            .unwrap();
            cli.global.password_variable = variable.map(|v| Password::new(v.into()));
            from_cli(&cli)
        };
        let uri = "rabbitmq-stream://ann:old@localhost:5552/%2f";
        let with_password = |password: &str| {
            let uri = format!("rabbitmq-stream://ann:{password}@localhost:5552/%2f");
            let tls = TlsFiles::default();
            BrokerSettings::new(&[uri], None, &tls, Duration::from_secs(60)).unwrap()
        };
        let (common, _) = parse(
            &["--uri", uri, "--password-file", file_arg, "produce"],
            None,
        )
        .unwrap();
        assert_eq!(common.broker, with_password("s3cret-pw"));
        let (common, _) = parse(&["--uri", uri, "produce"], Some("from-env")).unwrap();
        assert_eq!(common.broker, with_password("from-env"));
        assert!(!format!("{common:?}").contains("from-env"));

        let both = parse(&["--password-file", file_arg, "produce"], Some("from-env"))
            .unwrap_err()
            .to_string();
        assert!(
            both.contains("keep one") && !both.contains("from-env"),
            "{both}"
        );
        let missing = dir.path().join("nothing-here");
        let unreadable = parse(
            &["--password-file", missing.to_str().unwrap(), "produce"],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(unreadable.contains("nothing-here"), "{unreadable}");
        assert!(unreadable.contains("INVSTREAM_PASSWORD"), "{unreadable}");
        assert!(!unreadable.contains('\n'), "{unreadable}");
        std::fs::write(&file, "\n").unwrap();
        let empty = parse(&["--password-file", file_arg, "produce"], None)
            .unwrap_err()
            .to_string();
        assert!(empty.contains("empty"), "{empty}");
    }

    #[test]
    fn a_typed_stream_beside_a_super_stream_is_refused_wherever_it_is_typed() {
        for args in [
            &["--stream", "s", "produce", "--super-stream", "ss"][..],
            &["produce", "--super-stream", "ss", "--stream=s"],
            &["consume", "--stream", "s", "--super-stream", "ss"],
            &["serve", "--super-stream", "ss", "--stream", "s"],
        ] {
            let error = settings(args).unwrap_err().to_string();
            assert!(
                error.contains("name two different targets"),
                "{args:?}: {error}"
            );
        }
        // The default stream is not typed: the super stream alone is the target.
        assert!(settings(&["produce", "--super-stream", "ss"]).is_ok());
        assert!(settings(&["--stream", "s", "produce"]).is_ok());
    }

    fn produce_settings(args: &[&str]) -> Result<ProduceSettings> {
        let mut all = vec!["produce"];
        all.extend_from_slice(args);
        match settings(&all)?.1 {
            CommandSettings::Produce(p) => Ok(p),
            other => panic!("{other:?}"),
        }
    }

    fn consume_settings(args: &[&str]) -> Result<ConsumeSettings> {
        let mut all = vec!["consume"];
        all.extend_from_slice(args);
        match settings(&all)?.1 {
            CommandSettings::Consume(c) => Ok(c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_frame_never_exceeds_the_in_flight_bound_in_any_command() {
        let p = produce_settings(&["--batch-size", "5000", "--max-in-flight", "100"]).unwrap();
        assert_eq!(p.publish.batch_size, 100);
        for command in [
            &["serve", "--batch-size", "5000", "--max-in-flight", "100"][..],
            &["bench", "--batch-size", "5000", "--max-in-flight", "100"][..],
        ] {
            let batch_size = match settings(command).unwrap().1 {
                CommandSettings::Serve(s) => s.publish.batch_size,
                CommandSettings::Bench(b) => b.publish.batch_size,
                other => panic!("{other:?}"),
            };
            assert_eq!(batch_size, 100, "{command:?}");
        }
    }

    #[test]
    fn compression_needs_sub_entry_batches_in_every_command() {
        for command in ["produce", "bench"] {
            let err = settings(&[command, "--compression", "zstd"])
                .unwrap_err()
                .to_string();
            assert!(err.contains("add --sub-entry-size"), "{command}: {err}");
            assert!(
                settings(&[command, "--compression", "zstd", "--sub-entry-size", "10"]).is_ok()
            );
        }
    }

    #[test]
    fn filter_values_are_opt_in() {
        assert!(!produce_settings(&[]).unwrap().publish.filter_values);
        assert!(
            !produce_settings(&["--no-filter-values"])
                .unwrap()
                .publish
                .filter_values
        );
        assert!(
            produce_settings(&["--filter-values"])
                .unwrap()
                .publish
                .filter_values
        );
    }

    #[test]
    fn each_run_gets_a_new_producer_unless_named() {
        let p = produce_settings(&[]).unwrap();
        assert_eq!((p.producer_name, p.resume, p.dedup), (None, false, true));
        let p = produce_settings(&["--producer-name", "shop", "--resume"]).unwrap();
        assert_eq!(p.producer_name.as_deref(), Some("shop"));
        assert!(p.resume);
    }

    #[test]
    fn stored_offsets_need_a_name_and_slow_readers_must_exist() {
        let err = consume_settings(&["--offset", "stored"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--offset stored needs --name"), "{err}");
        let c = consume_settings(&["--offset", "stored", "--name", "stats"]).unwrap();
        assert_eq!(c.readers[0].tracking_name.as_deref(), Some("stats"));
        let err = consume_settings(&["--consumers", "a,b", "--slow", "c=1ms"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--slow names 'c'"), "{err}");
    }

    #[test]
    fn fan_out_readers_keep_their_own_offsets_under_the_name() {
        let c = consume_settings(&[
            "--consumers",
            "stats,email",
            "--name",
            "shop",
            "--slow",
            "email=2ms",
        ])
        .unwrap();
        let names: Vec<_> = c
            .readers
            .iter()
            .map(|r| r.tracking_name.clone().unwrap())
            .collect();
        assert_eq!(names, ["shop-stats", "shop-email"]);
        assert_eq!(c.readers[1].slow, Some(Duration::from_millis(2)));
    }

    #[test]
    fn replays_stop_at_the_end() {
        assert_eq!(
            consume_settings(&["--offset", "first"]).unwrap().stop_rule,
            StopRule::AtEnd
        );
        assert_eq!(consume_settings(&[]).unwrap().stop_rule, StopRule::Follow);
    }

    #[test]
    fn retry_for_and_tls_come_from_the_global_flags() {
        let (common, _) = settings(&["--retry-for", "0s", "consume"]).unwrap();
        assert_eq!(common.broker.retry_for, Duration::ZERO);
        let err = settings(&["--tls-insecure", "consume"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("need a rabbitmq-stream+tls:// URI"), "{err}");
    }

    #[test]
    fn a_body_read_timeout_of_zero_is_refused() {
        let err = settings(&["serve", "--body-read-timeout", "0s"])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--body-read-timeout 0s would"), "{err}");
        assert!(settings(&["serve", "--body-read-timeout", "1s"]).is_ok());
    }
}
