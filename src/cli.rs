//! Command-line arguments (clap): the commands, their flags and help texts. The parsers that
//! turn flag values into checked values are in [`parse`]; every option also comes from an
//! environment variable ([`environment`]) and from the config file ([`config_file`]), in that
//! order after the command line.

use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::broker::DEFAULT_URI;
use crate::engines::reader::StartOffset;
use crate::entry::MessageProperties;

pub mod config_file;
pub mod environment;
mod parse;
pub mod usage_error;
pub use parse::{
    parse_byte_size, parse_consumers, parse_duration, parse_listen, parse_max_age, parse_offset,
    parse_param, parse_percent, parse_slow, ConsumerNames, ParamValues,
};

/// High-throughput ingestion of inventory updates into RabbitMQ Streams.
///
/// A stream is an append-only log: many services (stats, alerts, loyalty, ads, notifications)
/// read the same updates at their own pace, and any of them can replay from the start.
#[derive(Debug, Parser)]
#[command(name = "invstream", version = crate::build_info::VERSION, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
    /// The arguments as given (the program name first): `bench --param` parses them again with
    /// each combination's values.
    #[arg(skip)]
    pub raw_args: Vec<std::ffi::OsString>,
    /// Where values other than the command line's came from, for parsing it again the same way.
    #[arg(skip)]
    pub sources: Sources,
}

/// What the command line is parsed with besides itself: the environment variables (read when
/// the definition is made) and the config file's values as defaults.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub environment: bool,
    pub config: Option<config_file::ConfigFile>,
}

impl Sources {
    /// The process's: every option's variable, and the config file `--config`,
    /// `INVSTREAM_CONFIG` or the XDG default names.
    pub fn of_process(raw_args: &[std::ffi::OsString]) -> Result<Sources, clap::Error> {
        let location = config_file::Location::find(raw_args, |name| std::env::var_os(name));
        let config = match location {
            Some(location) => location.read()?,
            None => None,
        };
        Ok(Sources {
            environment: true,
            config,
        })
    }

    /// The clap definition these sources give values to.
    pub fn command(&self) -> Result<clap::Command, clap::Error> {
        let command = match self.environment {
            true => environment::with_environment_variables(Cli::command()),
            false => Cli::command(),
        };
        match &self.config {
            Some(config) => config.apply(command),
            None => Ok(command),
        }
    }
}

impl Cli {
    /// Parses `args` (the program name first) as the binary does: with every option's
    /// environment variable, the config file and `INVSTREAM_PASSWORD`.
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let raw_args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let sources = Sources::of_process(&raw_args)?;
        let mut cli = Cli::try_parse_with(raw_args, sources)?;
        // Set to nothing (`INVSTREAM_PASSWORD= invstream …`) is taken as unset.
        cli.global.password_variable = std::env::var_os(environment::PASSWORD_VARIABLE)
            .filter(|p| !p.is_empty())
            .map(|p| crate::broker::Password::new(p.to_string_lossy().into_owned()));
        Ok(cli)
    }

    /// Parses `args` (the program name first) alone: no config file, and no variables but the
    /// few the derive names (tests, whose results must not depend on a developer's settings).
    pub fn try_parse_command_line<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let raw_args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        Cli::try_parse_with(raw_args, Sources::default())
    }

    /// Notes which flags were typed rather than defaulted: settings need to know where a value
    /// came from.
    fn try_parse_with(
        raw_args: Vec<std::ffi::OsString>,
        sources: Sources,
    ) -> Result<Cli, clap::Error> {
        let matches = sources.command()?.try_get_matches_from(&raw_args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.global.stream_typed = typed(&matches, "stream");
        cli.raw_args = raw_args;
        cli.sources = sources;
        Ok(cli)
    }
}

/// Whether global flag `id` was given on the command line, before or after the subcommand.
fn typed(matches: &ArgMatches, id: &str) -> bool {
    let on_command_line = |m: &ArgMatches| m.value_source(id) == Some(ValueSource::CommandLine);
    on_command_line(matches)
        || matches
            .subcommand()
            .is_some_and(|(_, sub)| on_command_line(sub))
}

/// Options every command shares.
#[derive(Debug, Args)]
#[command(next_help_heading = "Connection and output (every command)")]
pub struct GlobalArgs {
    /// Broker to connect to: rabbitmq-stream://USER:PASSWORD@HOST:PORT/VHOST (write vhost "/" as
    /// %2f). Repeat it (or separate URIs with commas) for the nodes of a cluster: start-up and
    /// reconnects try each in turn
    #[arg(long, global = true, env = "INVSTREAM_URI", hide_env_values = true, default_value = DEFAULT_URI, value_delimiter = ',')]
    pub uri: Vec<String>,

    /// Stream to publish to or read from
    #[arg(
        long,
        global = true,
        env = "INVSTREAM_STREAM",
        hide_env_values = true,
        default_value = "inventory_updates",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub stream: String,

    /// Whether `--stream` was typed on the command line (not the default or INVSTREAM_STREAM):
    /// a typed one beside `--super-stream` names two targets.
    #[arg(skip)]
    pub stream_typed: bool,

    /// Print one JSON summary object on stdout instead of the human report
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress bar and no status lines on stderr (errors are still printed)
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// TOML file of option values: keys are the long names, global options at the top, a
    /// [COMMAND] table per command (e.g. [produce] count = 5000); the command line and the
    /// environment win over it [default: $XDG_CONFIG_HOME/invstream/config.toml, else
    /// ~/.config/invstream/config.toml, read only if it exists]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    /// File holding the broker password (a trailing newline is dropped), or the variable
    /// INVSTREAM_PASSWORD: either replaces the password of every --uri, so none is typed where
    /// shell history and the process list keep it
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,

    /// INVSTREAM_PASSWORD, when set: not an option (a password typed on the command line is
    /// what the variable and --password-file avoid).
    #[arg(skip)]
    pub password_variable: Option<crate::broker::Password>,

    /// When the connection drops mid-run, reconnect with backoff for up to this long (re-sending
    /// unconfirmed messages, resuming reads after the last offset read); 0s gives up at once
    #[arg(long, global = true, default_value = "60s", value_parser = parse_duration)]
    pub retry_for: Duration,

    #[command(flatten)]
    pub tls: TlsArgs,
}

/// TLS for `rabbitmq-stream+tls://` URIs (the broker's TLS stream port is 5551 by default).
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "TLS (with a rabbitmq-stream+tls:// URI)")]
pub struct TlsArgs {
    /// PEM file of the CA certificate(s) that signed the broker's certificate [default: the
    /// system trust store, which holds the public CAs]
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca_cert: Option<std::path::PathBuf>,

    /// PEM file of a client certificate, for brokers that ask for one (with --tls-key)
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM file of the client certificate's private key (PKCS#8, "BEGIN PRIVATE KEY")
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Encrypt but do not check the broker's certificate (tests only: anyone can impersonate it)
    #[arg(long, global = true, conflicts_with = "tls_ca_cert")]
    pub tls_insecure: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish generated inventory updates in batches and wait for every publisher confirm
    Produce(ProduceArgs),
    /// Read inventory updates back and report throughput and latency
    Consume(ConsumeArgs),
    /// HTTP ingestion gateway: POST updates, answered once the broker confirmed them
    Serve(ServeArgs),
    /// Producers and consumers at once on a stream of their own: a line per second, then a
    /// summary (like RabbitMQ's stream-perf-test)
    Bench(Box<BenchArgs>),
    /// List, inspect and delete streams and super streams: messages, offsets, leader and
    /// replicas, stored consumer offsets and producers' last publishing ids
    Streams(StreamsArgs),
    /// Shell completions on stdout, e.g. `invstream completions bash >
    /// ~/.local/share/bash-completion/completions/invstream`
    Completions(CompletionsArgs),
    /// Manual pages (roff): invstream(1) on stdout, a command's page with its name, or every
    /// page into a folder with --out; `man -l -` reads one from stdin
    Man(ManArgs),
}

/// The commands a user can run, by name, in the order `--help` lists them (not clap's `help`).
pub fn command_names() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

#[derive(Debug, Args)]
pub struct StreamsArgs {
    #[command(subcommand)]
    pub action: StreamsAction,
}

#[derive(Debug, Subcommand)]
pub enum StreamsAction {
    /// Every stream and super stream of the virtual host (--uri's), with messages, segments,
    /// leader and the super stream each partition belongs to (needs the management API)
    List(StreamsListArgs),
    /// A stream or super stream: messages, segments, first and last offset, leader and
    /// replicas, stored consumer offsets and producers' last publishing ids (per partition)
    Info(StreamsInfoArgs),
    /// Delete a stream, or a super stream with its partitions and its exchange (asks first on a
    /// terminal; elsewhere needs --yes)
    Delete(StreamsDeleteArgs),
}

/// Where RabbitMQ's management HTTP API is (`invstream streams`).
#[derive(Debug, Args, Clone, Default)]
pub struct ManagementArgs {
    /// The management API (the rabbitmq_management plugin), credentials in the URL or the
    /// --uri's [default: http://HOST:15672 with HOST from the first --uri]
    #[arg(
        long,
        value_name = "URL",
        env = "INVSTREAM_MANAGEMENT_URL",
        hide_env_values = true
    )]
    pub management_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct StreamsListArgs {
    #[command(flatten)]
    pub management: ManagementArgs,
}

#[derive(Debug, Args)]
pub struct StreamsInfoArgs {
    /// The stream or super stream
    #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub name: String,

    /// Also show this consumer name's stored offset (repeatable); the names a stream tracks
    /// are listed only with the rabbitmq_stream_management plugin
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub consumer: Vec<String>,

    /// Also show this producer name's last publishing id (repeatable); on a super stream, each
    /// partition's (every partition publishes under the run's name)
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub producer: Vec<String>,

    #[command(flatten)]
    pub management: ManagementArgs,
}

#[derive(Debug, Args)]
pub struct StreamsDeleteArgs {
    /// The stream or super stream
    #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub name: String,

    /// Delete without asking (needed when stdin or stderr is not a terminal)
    #[arg(long, short)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print, e.g. produce (invstream-produce(1)); none: invstream(1)
    pub command: Option<String>,

    /// Write every page (invstream.1, invstream-produce.1, …) into this folder, made if missing,
    /// e.g. /usr/local/share/man/man1
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent producers, each with its own connection
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub producers: u64,

    /// Concurrent consumers, each reading every message from the start (with
    /// --consumers-per-group, every group reads every message)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=64))]
    pub consumers: u64,

    /// Consumers per group: a group's consumers share one name as single active consumers, so
    /// the broker makes one active per partition and the group reads every message once
    /// (--consumers must be a multiple)
    #[arg(long, value_name = "C", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub consumers_per_group: u64,

    /// Build a backlog first: publish until the stream holds this many bytes (e.g. 10mb, 1gb)
    /// before any consumer subscribes, then report how fast the consumers drain it while the
    /// producers go on
    #[arg(long, value_name = "BYTES", value_parser = parse_byte_size)]
    pub backlog: Option<u64>,

    /// With --backlog: the share of the backlog the consumers must read down for it to count
    /// as drained, from 0 (exclusive) to 1 (caught up), as OMB's backlogDrainRatio
    #[arg(
        long,
        value_name = "RATIO",
        default_value_t = 1.0,
        requires = "backlog"
    )]
    pub backlog_drain_ratio: f64,

    /// Messages to publish in all (split between the producers)
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000))]
    pub count: u64,

    /// Publish for this long instead of a count, e.g. 30s
    #[arg(long, value_parser = parse_duration, conflicts_with = "count")]
    pub duration: Option<Duration>,

    /// Messages per publish frame
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=65_535))]
    pub batch_size: u64,

    /// Most messages sent but not yet confirmed, per producer
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_in_flight: u64,

    /// Publish at most this many messages per second in all (default: as fast as possible)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: Option<u64>,

    /// Pad each message body to at least this many bytes (an update is about 180)
    #[arg(long, value_parser = parse_byte_size)]
    pub message_size: Option<u64>,

    /// Tag messages with their product id as stream filter value (see produce --filter-values)
    #[arg(long)]
    pub filter_values: bool,

    /// Accepted and without effect: filter values are off unless --filter-values, and the
    /// commands recorded in docs/BENCHMARKS.md still pass this flag
    #[arg(long, hide = true, conflicts_with = "filter_values")]
    pub no_filter_values: bool,

    #[command(flatten)]
    pub layout: LayoutArgs,

    /// Bench a super stream of its own (STREAM-bench-MILLIS-PID) with N partitions instead of a
    /// stream: producers route each update by product id, each consumer reads every partition
    /// (RabbitMQ 3.13+)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub super_stream_partitions: Option<u32>,

    /// Keep the benchmark's stream (STREAM-bench-MILLIS-PID) instead of deleting it
    #[arg(long)]
    pub keep_stream: bool,

    /// Write each second's latencies as an HdrHistogram interval log (tags confirm and
    /// end_to_end, microseconds), for HistogramLogAnalyzer and similar tools
    #[arg(long, value_name = "FILE")]
    pub hdr_log: Option<std::path::PathBuf>,

    /// Draw the throughput timeline and the latency percentile distributions into an SVG file
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,

    /// Write the measured run in the OpenMessaging Benchmark's result format into DIR (made if
    /// missing): one WORKLOAD-invstream-DATE.json per run (one per --param run), which OMB's
    /// bin/create_charts.py draws beside other drivers' results; one entry per second
    #[arg(long, value_name = "DIR")]
    pub export_omb: Option<std::path::PathBuf>,

    /// Serve the run's live samples as Prometheus metrics at http://ADDR/metrics while it runs
    /// (rates, in flight, totals per partition, latency), e.g. 127.0.0.1:9464
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<std::net::SocketAddr>,

    /// Print a line per second instead of the live dashboard (which is shown only when stdout
    /// and stderr are terminals, without --json or -q; q, Esc or Ctrl-C stop it)
    #[arg(long)]
    pub no_tui: bool,

    #[command(flatten)]
    pub workbench: WorkbenchArgs,

    #[command(flatten)]
    pub max_rate: MaxRateArgs,

    #[command(flatten)]
    pub group: GroupArgs,

    /// Run an OpenMessaging Benchmark workload file (YAML, OMB's keys): a topic is a stream
    /// (a super stream with partitionsPerTopic > 1), a subscription a consumer; flags given
    /// here override the file's values, e.g. --duration 20s --warmup 0s for a short try
    #[arg(long, value_name = "FILE.yaml", help_heading = "Workload files")]
    pub workload: Option<std::path::PathBuf>,
}

/// `bench --instances N --group NAME`: one benchmark run by N processes (any machines that
/// reach the broker), which find each other through the broker.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "One benchmark over several processes")]
pub struct GroupArgs {
    /// Run this benchmark with N processes: start it N times with the same options (on any
    /// machines), which share the producers, consumers and --count and --rate between them;
    /// the first of them (the leader) shows the group's figures and writes its files
    #[arg(long, value_name = "N", requires = "group", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub instances: Option<u32>,

    /// With --instances: the group's name, the same for all of its processes (they meet on the
    /// stream invstream-group-NAME)
    #[arg(long, value_name = "NAME", requires = "instances", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub group: Option<String>,

    /// With --instances: how long to wait for all N to join before giving up
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s", requires = "instances")]
    pub join_timeout: Duration,
}

/// `bench --find-max-rate`: a search for the highest publish rate the broker sustains.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Finding the highest sustainable rate")]
pub struct MaxRateArgs {
    /// Search for the highest publish rate at which every update is confirmed, confirm p99
    /// stays under --max-p99 and the consumers keep up: runs of --settle each at a fixed rate,
    /// doubling from --start-rate, then bisecting to --precision
    #[arg(long)]
    pub find_max_rate: bool,

    /// With --find-max-rate: the bound on the confirm latency's 99th percentile
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "100ms", requires = "find_max_rate")]
    pub max_p99: Duration,

    /// With --find-max-rate: how long each rate is tried (its second half is judged)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s", requires = "find_max_rate")]
    pub settle: Duration,

    /// With --find-max-rate: the first rate tried, in messages per second
    #[arg(long, value_name = "RATE", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..), requires = "find_max_rate")]
    pub start_rate: u64,

    /// With --find-max-rate: stop when the lowest failed rate is within this much above the
    /// highest sustained one, e.g. 5%
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, default_value = "5%", requires = "find_max_rate")]
    pub precision: f64,
}

/// Several configurations of one bench, compared: parameters, repeated runs, exports, an HTML
/// report and baselines.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Comparing configurations")]
pub struct WorkbenchArgs {
    /// Run every combination of these values, each on a fresh stream: NAME is a bench flag
    /// without its dashes, e.g. --param sub-entry-size=1,10,100 --param compression=none,zstd
    /// (repeatable; flags without a value take true,false)
    #[arg(long, value_name = "NAME=V1,V2,...", value_parser = parse_param)]
    pub param: Vec<ParamValues>,

    /// Runs per configuration: the table shows their median and [min–max]
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,

    /// Before each configuration's runs, one unmeasured run of this long (its own stream), e.g. 5s
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub warmup: Option<Duration>,

    /// Write every configuration's results, each run's timeline and latency curves, as JSON
    #[arg(long, value_name = "FILE")]
    pub export_json: Option<std::path::PathBuf>,

    /// Write the comparison table (median, min and max of each figure) as CSV
    #[arg(long, value_name = "FILE")]
    pub export_csv: Option<std::path::PathBuf>,

    /// Write the comparison table as Markdown, with the command and the broker
    #[arg(long, value_name = "FILE")]
    pub export_markdown: Option<std::path::PathBuf>,

    /// Write a self-contained HTML report: the table, throughput per configuration, latency
    /// percentile curves and each run's timeline
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<std::path::PathBuf>,

    /// Keep this run's results as a baseline of this name, to compare later runs with
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,

    /// Compare each configuration with this saved baseline: better, worse or within noise;
    /// exits 1 when one is worse
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,

    /// Where baselines are kept [default: ~/.local/share/invstream/baselines]
    #[arg(
        long,
        value_name = "DIR",
        env = "INVSTREAM_BASELINE_DIR",
        hide_env_values = true
    )]
    pub baseline_dir: Option<std::path::PathBuf>,

    /// With --baseline: a throughput is worse when its median is this much below the
    /// baseline's (default: below the baseline's own min–max range, and at least 5%), e.g. 10%
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent, requires = "baseline")]
    pub noise: Option<f64>,
}

impl WorkbenchArgs {
    /// Whether any of these flags was given: then bench compares configurations.
    pub fn asked(&self) -> bool {
        !self.param.is_empty()
            || self.runs > 1
            || self.warmup.is_some()
            || self.export_json.is_some()
            || self.export_csv.is_some()
            || self.export_markdown.is_some()
            || self.report.is_some()
            || self.save_baseline.is_some()
            || self.baseline.is_some()
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on: HOST:PORT (an address or a host name, e.g. localhost:8080), or
    /// :PORT for every interface
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: std::net::SocketAddr,

    /// Largest request body; larger ones get 413
    #[arg(long, default_value = "16mib", value_parser = parse_byte_size)]
    pub max_body_bytes: u64,

    /// Largest request head (request line and headers; 8kib to 16mib); larger ones get 431
    #[arg(long, default_value = "64kib", value_parser = parse_byte_size)]
    pub max_header_bytes: u64,

    /// How long a client may take to send a request's body; past it the request gets 408 (and
    /// when the server stops, a body still arriving gets 2 s more, then 503)
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// Most client connections open at once; past it a connection gets a 503 and is closed
    #[arg(long, default_value_t = 1_024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Bearer tokens that clients must send (Authorization: Bearer TOKEN), one per line; blank
    /// lines and # comments are ignored. /healthz needs none; /metrics needs one unless
    /// --public-metrics
    #[arg(
        long,
        value_name = "FILE",
        env = "INVSTREAM_SERVE_TOKENS_FILE",
        hide_env_values = true
    )]
    pub auth_token_file: Option<std::path::PathBuf>,

    /// Serve without tokens even on an address other machines can reach (--listen other than
    /// loopback), which is refused otherwise
    #[arg(long, conflicts_with = "auth_token_file")]
    pub allow_anonymous: bool,

    /// Let GET /metrics answer without a token
    #[arg(long)]
    pub public_metrics: bool,

    /// Serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate chain, with --listen-tls-key.
    /// Named apart from the global --tls-cert/--tls-key, the broker client's certificate
    #[arg(long, value_name = "FILE", requires = "listen_tls_key")]
    pub listen_tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of --listen-tls-cert
    #[arg(long, value_name = "FILE", requires = "listen_tls_cert")]
    pub listen_tls_key: Option<std::path::PathBuf>,

    /// Most updates sent and not yet confirmed; past it requests get 503 with Retry-After
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_in_flight: u64,

    /// Most messages per publish frame (concurrent requests share frames)
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=65_535))]
    pub batch_size: u64,

    /// How long a request waits for the broker's confirms before 504
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub confirm_timeout: Duration,

    /// Name the broker deduplicates under [default: invstream-STREAM-serve]
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub producer_name: Option<String>,

    /// Properties each message carries beside its JSON body
    #[arg(long, value_enum, default_value_t = MessageProperties::Lean)]
    pub properties: MessageProperties,

    /// Tag messages with their product id as stream filter value (see produce --filter-values)
    #[arg(long)]
    pub filter_values: bool,

    /// Publish to this super stream's partitions instead of --stream, each update routed by
    /// its product id (created with 3 partitions when missing; RabbitMQ 3.13+)
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub super_stream: Option<String>,

    /// Accepted and without effect: filter values are off unless --filter-values, and the
    /// commands recorded in docs/BENCHMARKS.md still pass this flag
    #[arg(long, hide = true, conflicts_with = "filter_values")]
    pub no_filter_values: bool,

    #[command(flatten)]
    pub retention: RetentionArgs,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Publish the updates in this NDJSON file (.gz is decompressed) or - for stdin, instead of
    /// generated ones; bad lines are reported with their line number and skipped
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["count", "products", "seed"])]
    pub input: Option<String>,

    /// With --input: stop at the first invalid line instead of skipping it
    #[arg(long, requires = "input")]
    pub strict: bool,

    /// Number of updates to publish
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000))]
    pub count: u64,

    /// Messages per publish frame
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=65_535))]
    pub batch_size: u64,

    /// Most messages sent but not yet confirmed; bounds memory and the broker's backlog
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_in_flight: u64,

    /// Publish at most this many updates per second, e.g. to replay a file at production pace
    /// (default: as fast as possible)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: Option<u64>,

    /// Number of distinct products the updates are spread over
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub products: u64,

    /// Seed of the generator: the same seed gives the same updates
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// How long to wait for outstanding confirms after the last send before counting them failed
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub confirm_timeout: Duration,

    /// Name the broker deduplicates under (publishing id = seq + 1; seq continues after what the
    /// broker already holds for the name) [default: a new name per run,
    /// invstream-STREAM-TIMESTAMP-PID, so concurrent runs never drop each other's updates]
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub producer_name: Option<String>,

    /// Finish an interrupted run exactly once: --count is then the total for --producer-name
    /// (with --input: go on after the last line the broker stored); invstream prints this
    /// command when a run stops early
    #[arg(long, requires = "producer_name")]
    pub resume: bool,

    /// Turn deduplication off: re-sends after a lost connection may be stored twice, and seq
    /// starts at 0 whatever the name holds
    #[arg(long, conflicts_with = "resume")]
    pub no_dedup: bool,

    /// Tag each message with its product id as stream filter value (RabbitMQ 3.13+), so
    /// `consume --product` gets only the chunks holding those products; costs the broker ~20%
    /// of its write rate
    #[arg(long)]
    pub filter_values: bool,

    /// Accepted and without effect: filter values are off unless --filter-values, and the
    /// commands recorded in docs/BENCHMARKS.md still pass this flag
    #[arg(long, hide = true, conflicts_with = "filter_values")]
    pub no_filter_values: bool,

    #[command(flatten)]
    pub layout: LayoutArgs,

    #[command(flatten)]
    pub retention: RetentionArgs,

    /// Publish to this super stream (RabbitMQ 3.13+) instead of --stream, creating it when
    /// missing: one publisher per partition, each update routed by its product id (every update
    /// of a product in one partition, in order); every partition's producer is named
    /// --producer-name (deduplicated per partition, as the Java client does), and --resume
    /// finishes each partition's part exactly once
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub super_stream: Option<String>,

    /// With --super-stream: create it with this many partitions, NAME-0 … NAME-(N-1)
    /// [default: 3]; an existing one is used as it is
    #[arg(long, requires = "super_stream", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub partitions: Option<u32>,

    /// With --super-stream: create it with one partition per key (NAME-KEY) and route each
    /// update by its warehouse, as the broker binds it, e.g. AMS-1,BER-2,LYS-3,MAD-4,WAW-5
    #[arg(long, value_name = "KEYS", requires = "super_stream", conflicts_with = "partitions", value_delimiter = ',', value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub partition_keys: Vec<String>,
}

/// How messages are laid out: their properties, and sub-entry batching (many messages in one
/// stream entry, for throughput).
#[derive(Debug, Args, Clone, Copy)]
pub struct LayoutArgs {
    /// Properties each message carries beside its JSON body
    #[arg(long, value_enum, default_value_t = MessageProperties::Lean)]
    pub properties: MessageProperties,

    /// Put this many messages in each stream entry (sub-entry batching): several times the
    /// throughput, confirmed and deduplicated per batch, no filter values; 1 = one per entry
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=65_535))]
    pub sub_entry_size: u64,

    /// Compression of sub-entry batches (needs --sub-entry-size > 1)
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
}

impl Default for LayoutArgs {
    /// One message per entry, as every client reads.
    fn default() -> Self {
        LayoutArgs {
            properties: MessageProperties::Lean,
            sub_entry_size: 1,
            compression: Compression::None,
        }
    }
}

/// Which member of a stream a consumer reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadFrom {
    Replica,
    Leader,
}

/// The stream protocol's compression codecs for sub-entry batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn codec(self) -> rabbitmq_stream_client::types::CompressionType {
        use rabbitmq_stream_client::types::CompressionType;
        match self {
            Compression::None => CompressionType::None,
            Compression::Gzip => CompressionType::Gzip,
            Compression::Snappy => CompressionType::Snappy,
            Compression::Lz4 => CompressionType::Lz4,
            Compression::Zstd => CompressionType::Zstd,
        }
    }
}

/// Retention settings, used only when the stream is created. An existing stream is used as it
/// is when none are given; when some are, they must match the stream's.
#[derive(Debug, Args, Default)]
pub struct RetentionArgs {
    /// Maximum size of the stream before old segments are dropped, e.g. 20gb or 500mb
    #[arg(long, value_parser = parse_byte_size)]
    pub max_length_bytes: Option<u64>,

    /// Size of one segment file, e.g. 500mb (the broker's default is 500mb)
    #[arg(long, value_parser = parse_byte_size)]
    pub max_segment_size_bytes: Option<u64>,

    /// Maximum age of messages before their segment may be dropped, e.g. 7days or 12h
    #[arg(long, value_parser = parse_max_age)]
    pub max_age: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Where to start: first (oldest message still stored), last (the last chunk), next (only
    /// what is published from now on), an offset number, an RFC 3339 timestamp, or stored
    /// (right after the offset the broker keeps for --name)
    #[arg(long, default_value = "next", value_parser = parse_offset, allow_hyphen_values = true)]
    pub offset: StartOffset,

    /// Stop after this many messages (with --super-stream: read from all partitions together;
    /// with --consumers: each consumer's)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// With --super-stream: stop after this many messages from each partition, instead of a
    /// --count over all partitions together
    #[arg(long, value_name = "N", requires = "super_stream", conflicts_with = "count", value_parser = clap::value_parser!(u64).range(1..))]
    pub count_per_partition: Option<u64>,

    /// Stop after this long, e.g. 30s or 5m
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Keep reading new messages until Ctrl-C (the default for last and next)
    #[arg(long, conflicts_with_all = ["count", "count_per_partition", "duration"])]
    pub follow: bool,

    /// Independent consumers on the stream, each with its own connection and offset: a list of
    /// names (stats,email,loyalty) or a number
    #[arg(long, value_parser = parse_consumers)]
    pub consumers: Option<ConsumerNames>,

    /// Make one consumer slow, sleeping this long per message, e.g. email=2ms (repeatable)
    #[arg(long, value_parser = parse_slow, value_name = "NAME=DURATION")]
    pub slow: Vec<(String, Duration)>,

    /// Consumer name: the broker keeps its offset (stored every --store-every messages, every
    /// second and on exit), so --offset stored resumes where it stopped; with --consumers, a
    /// prefix (NAME-stats, NAME-email, ...)
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub name: Option<String>,

    /// With --name: store the offset at least every this many messages
    #[arg(long, default_value_t = 10_000, requires = "name", value_parser = clap::value_parser!(u64).range(1..))]
    pub store_every: u64,

    /// With --name: only one consumer of that name reads at a time; when it stops, another takes
    /// over from the stored offset
    #[arg(long, requires = "name")]
    pub single_active: bool,

    /// Which member of the stream to read from: a replica when it has one (like the Java
    /// client; the leader keeps its cores for writes), or the leader
    #[arg(long, value_enum, default_value_t = ReadFrom::Replica)]
    pub read_from: ReadFrom,

    /// Write every message read to stdout as NDJSON (offset, timestamp, update); the summary
    /// then goes to stderr
    #[arg(long, conflicts_with = "consumers")]
    pub print: bool,

    /// Check `seq` per producer for gaps and duplicates; exit 1 if there are any
    #[arg(long)]
    pub verify: bool,

    /// Only updates of these products (comma-separated ids); the broker filters by chunk
    /// (RabbitMQ 3.13+), invstream checks every message
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64))]
    pub product: Vec<u64>,

    /// Read every partition of this super stream (RabbitMQ 3.13+) instead of --stream, one
    /// reader per partition; with --product only the partitions holding those products; with
    /// --name each partition keeps its offset (and --single-active shares the partitions
    /// between the instances of that name); with --consumers each consumer reads every
    /// partition; --print lines name their partition
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub super_stream: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag that takes a duration (found by trying: it takes `1s` and refuses `soon`)
    /// refuses one past the bound by name, so none reaches an `Instant` addition that overflows.
    #[test]
    fn every_duration_flag_is_bounded() {
        let huge = "18446744073709551615s";
        let mut checked = Vec::new();
        let mut cli = Cli::command();
        // Built, so the global flags (--retry-for) are each command's too.
        cli.build();
        for command in cli.get_subcommands() {
            let name = command.get_name();
            for arg in command.get_arguments() {
                let (Some(flag), true) = (arg.get_long(), arg.get_action().takes_values()) else {
                    continue;
                };
                let value = |v: &str| match flag {
                    "slow" => format!("consumer={v}"),
                    _ => v.to_string(),
                };
                let flag = format!("--{flag}");
                let parse = |v: &str| {
                    Cli::try_parse_from(["invstream", name, flag.as_str(), value(v).as_str()])
                };
                if parse("1s").is_err() || parse("soon").is_ok() {
                    continue;
                }
                let err = parse(huge).unwrap_err();
                assert_eq!(
                    err.kind(),
                    clap::error::ErrorKind::ValueValidation,
                    "{flag}"
                );
                let text = err.to_string();
                assert!(text.contains(&flag), "{name} {flag}: {text}");
                assert!(
                    text.contains("longer than the maximum"),
                    "{name} {flag}: {text}"
                );
                checked.push(format!("{name} {flag}"));
            }
        }
        for expected in [
            "produce --confirm-timeout",
            "produce --retry-for",
            "produce --max-age",
            "consume --duration",
            "consume --slow",
            "serve --confirm-timeout",
            "bench --duration",
        ] {
            assert!(
                checked.iter().any(|c| c == expected),
                "{expected} in {checked:?}"
            );
        }
    }

    /// Help names each option's environment variable as `[env: NAME]`: never `[env: NAME=]`,
    /// which reads as set to nothing, nor its value (a URI's password, a token file's path).
    #[test]
    fn help_names_environment_variables_without_values() {
        let mut cli = Cli::command();
        cli.build();
        let mut named = Vec::new();
        for command in std::iter::once(&cli).chain(cli.get_subcommands()) {
            for arg in command.get_arguments() {
                if let Some(env) = arg.get_env() {
                    assert!(
                        arg.is_hide_env_values_set(),
                        "{} --{}: hide_env_values",
                        command.get_name(),
                        arg.get_id()
                    );
                    named.push(env.to_string_lossy().into_owned());
                }
            }
        }
        assert!(
            named.iter().any(|n| n == "INVSTREAM_SERVE_TOKENS_FILE"),
            "{named:?}"
        );
        let mut serve = Cli::command();
        let help = serve
            .find_subcommand_mut("serve")
            .expect("serve")
            .render_long_help()
            .to_string();
        assert!(
            help.contains("[env: INVSTREAM_SERVE_TOKENS_FILE]"),
            "{help}"
        );
        assert!(!help.contains("=]"), "{help}");
    }

    #[test]
    fn dash_dash_version_and_dash_v_print_the_build() {
        let command = Cli::command();
        let expected = format!("invstream {}\n", crate::build_info::VERSION);
        assert_eq!(command.render_version(), expected);
        assert_eq!(command.render_long_version(), expected);
    }

    #[test]
    fn follow_conflicts_with_stop_rules() {
        let err =
            Cli::try_parse_from(["invstream", "consume", "--follow", "--count", "5"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let ok =
            Cli::try_parse_from(["invstream", "--json", "consume", "--offset", "first"]).unwrap();
        assert!(ok.global.json);
    }
}
