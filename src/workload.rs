//! OpenMessaging Benchmark (OMB) workload files, read as OMB writes them, turned into bench
//! flags: a topic is a stream (a super stream when `partitionsPerTopic > 1`), a subscription a
//! group of `consumerPerSubscription` consumers reading every message once (single active
//! consumers sharing the partitions), `producersPerTopic` producers per stream, a backlog
//! (`consumerBacklogSizeGB`) built before the consumers start. What invstream
//! cannot honour is said in a warning with what it does instead; a key OMB does not have is an
//! error. Pure: the settings stage reads the file and parses the flags again.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Every key OMB's `Workload` has, and invstream's own (its bench flags, camelCase).
const KNOWN_KEYS: [&str; 21] = [
    "name",
    "topics",
    "partitionsPerTopic",
    "keyDistributor",
    "messageSize",
    "useRandomizedPayloads",
    "randomBytesRatio",
    "randomizedPayloadPoolSize",
    "payloadFile",
    "subscriptionsPerTopic",
    "producersPerTopic",
    "consumerPerSubscription",
    "producerRate",
    "consumerBacklogSizeGB",
    "backlogDrainRatio",
    "testDurationMinutes",
    "warmupDurationMinutes",
    "batchSize",
    "subEntrySize",
    "compression",
    "filterValues",
];

/// A workload file's keys (OMB's names). Absent keys take OMB's defaults where OMB has one.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Workload {
    pub name: Option<String>,
    pub topics: Option<u32>,
    pub partitions_per_topic: Option<u32>,
    pub key_distributor: Option<String>,
    pub message_size: Option<u64>,
    pub use_randomized_payloads: Option<bool>,
    pub random_bytes_ratio: Option<f64>,
    pub randomized_payload_pool_size: Option<u64>,
    pub payload_file: Option<String>,
    pub subscriptions_per_topic: Option<u32>,
    pub producers_per_topic: Option<u32>,
    pub consumer_per_subscription: Option<u32>,
    pub producer_rate: Option<u64>,
    #[serde(rename = "consumerBacklogSizeGB")]
    pub consumer_backlog_size_gb: Option<f64>,
    pub backlog_drain_ratio: Option<f64>,
    pub test_duration_minutes: Option<f64>,
    pub warmup_duration_minutes: Option<f64>,
    pub batch_size: Option<u64>,
    pub sub_entry_size: Option<u64>,
    pub compression: Option<String>,
    pub filter_values: Option<bool>,
}

/// Why a workload file cannot be read as one.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadError {
    NotYaml(String),
    UnknownKeys(Vec<String>),
    /// A list where one value is wanted (a matrix of values: not read yet).
    List(String),
    BadValue(String),
}

impl std::fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkloadError::NotYaml(e) => write!(f, "not a YAML mapping of workload keys: {e}"),
            WorkloadError::UnknownKeys(keys) => write!(
                f,
                "unknown key(s) {}: an OMB workload has {}",
                keys.join(", "),
                KNOWN_KEYS.join(", ")
            ),
            WorkloadError::List(key) => write!(
                f,
                "{key} is a list: one value per key (compare values with --param)"
            ),
            WorkloadError::BadValue(e) => write!(f, "{e}"),
        }
    }
}

/// Reads `text`, an OMB workload file's content.
pub fn parse(text: &str) -> Result<Workload, WorkloadError> {
    let value: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| WorkloadError::NotYaml(e.to_string()))?;
    let serde_norway::Value::Mapping(mapping) = &value else {
        return Err(WorkloadError::NotYaml(
            "the file is not key: value lines".into(),
        ));
    };
    let mut unknown = Vec::new();
    for (key, value) in mapping {
        let key = key.as_str().unwrap_or("?").to_string();
        if !KNOWN_KEYS.contains(&key.as_str()) {
            unknown.push(key);
        } else if value.is_sequence() {
            return Err(WorkloadError::List(key));
        }
    }
    if !unknown.is_empty() {
        return Err(WorkloadError::UnknownKeys(unknown));
    }
    serde_norway::from_value(value).map_err(|e| WorkloadError::BadValue(e.to_string()))
}

/// What a workload asks of bench: the flags (before the command line's own, which win), how
/// many streams, and what could not be honoured.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadPlan {
    pub name: String,
    /// One bench per topic, run at once.
    pub topics: u32,
    pub flags: Vec<String>,
    pub warnings: Vec<String>,
}

/// `dir`: the workload file's folder, where a relative `payloadFile` is looked for.
pub fn plan(workload: &Workload, fallback_name: &str, dir: &Path) -> WorkloadPlan {
    let topics = workload.topics.unwrap_or(1).max(1);
    let mut planned = Planned::default();
    planned.shape(workload);
    planned.payload(workload, dir);
    planned.routing(workload);
    planned.rate(workload, topics);
    planned.backlog(workload, topics);
    planned.durations(workload);
    planned.own_keys(workload);
    WorkloadPlan {
        name: workload
            .name
            .clone()
            .unwrap_or_else(|| fallback_name.to_string()),
        topics,
        flags: planned.flags,
        warnings: planned.warnings,
    }
}

/// The flags and warnings of a plan, one group of OMB keys at a time.
#[derive(Default)]
struct Planned {
    flags: Vec<String>,
    warnings: Vec<String>,
}

impl Planned {
    fn flag(&mut self, name: &str, value: impl ToString) {
        self.flags.push(format!("--{name}={}", value.to_string()));
    }

    /// Partitions, producers and subscriptions: what runs.
    fn shape(&mut self, workload: &Workload) {
        let partitions = workload.partitions_per_topic.unwrap_or(1).max(1);
        if partitions > 1 {
            self.flag("super-stream-partitions", partitions);
        }
        if let Some(producers) = workload.producers_per_topic {
            self.flag("producers", producers.max(1));
        }
        // Each subscription reads every message once: a group of consumers sharing them.
        let subscriptions = workload.subscriptions_per_topic.unwrap_or(1);
        let per_subscription = workload.consumer_per_subscription.unwrap_or(1).max(1);
        self.flag("consumers", subscriptions * per_subscription);
        if per_subscription > 1 {
            self.flag("consumers-per-group", per_subscription);
        }
    }

    /// `keyDistributor`: invstream routes by product id whatever the key.
    fn routing(&mut self, workload: &Workload) {
        let partitions = workload.partitions_per_topic.unwrap_or(1).max(1);
        if let Some(keys) = workload
            .key_distributor
            .as_deref()
            .filter(|k| *k != "NO_KEY")
        {
            self.warnings.push(format!(
                "keyDistributor: {keys}: updates are routed by the hash of their product id{}",
                match partitions {
                    1 => " (one partition: no routing)",
                    _ => "",
                }
            ));
        }
    }

    /// What each message holds: its size, from `messageSize` or the payload file's.
    fn payload(&mut self, workload: &Workload, dir: &Path) {
        let payload_size = workload.payload_file.as_ref().and_then(|file| {
            let path = dir.join(file);
            std::fs::metadata(&path).ok().map(|m| m.len())
        });
        if let Some(size) = workload.message_size.or(payload_size) {
            self.flag("message-size", size);
        }
        if let Some(file) = &workload.payload_file {
            self.warnings.push(format!(
                "payloadFile: {file}: invstream sends inventory updates padded to the message size{}, not the file's bytes",
                match payload_size {
                    Some(size) if workload.message_size.is_none() => format!(" (the file's {size} bytes)"),
                    None if workload.message_size.is_none() => " (the file was not found, so updates keep their own size, ~180 bytes)".to_string(),
                    _ => String::new(),
                }
            ));
        }
        if workload.use_randomized_payloads == Some(true)
            || workload.random_bytes_ratio.is_some()
            || workload.randomized_payload_pool_size.is_some()
        {
            self.warnings.push(
                "useRandomizedPayloads, randomBytesRatio, randomizedPayloadPoolSize: every generated update differs already; the payload pool is not used".into(),
            );
        }
    }

    /// `producerRate` (the whole test's, split between the topics; 0: the max-rate search).
    fn rate(&mut self, workload: &Workload, topics: u32) {
        match workload.producer_rate {
            Some(rate) if rate > 0 => self.flag("rate", (rate / u64::from(topics)).max(1)),
            Some(_) if topics == 1 => self.flags.push("--find-max-rate".into()),
            Some(_) => self.warnings.push(format!(
                "producerRate: 0 over {topics} topics: published as fast as possible (the max-rate search runs on one topic)"
            )),
            None => {}
        }
    }

    /// `consumerBacklogSizeGB` (GiB, as OMB counts them; the whole test's, split between the
    /// topics) published before the consumers start, and `backlogDrainRatio`, the share of it
    /// they must read down.
    fn backlog(&mut self, workload: &Workload, topics: u32) {
        let Some(gb) = workload.consumer_backlog_size_gb.filter(|gb| *gb > 0.0) else {
            return;
        };
        if workload.producer_rate == Some(0) && topics == 1 {
            self.warnings.push(format!(
                "consumerBacklogSizeGB: {gb}: the max-rate search builds no backlog (each try's consumers read from its start)"
            ));
            return;
        }
        let bytes = (gb * (1u64 << 30) as f64 / f64::from(topics))
            .round()
            .max(1.0);
        self.flag("backlog", bytes as u64);
        if let Some(ratio) = workload.backlog_drain_ratio {
            self.flag("backlog-drain-ratio", ratio);
        }
        let subscriptions = workload.subscriptions_per_topic.unwrap_or(1);
        if subscriptions > 1 {
            self.warnings.push(format!(
                "consumerBacklogSizeGB: {gb}: the streams hold {gb} GiB before the consumers start (OMB counts a backlog once per subscription: it would publish 1/{subscriptions} of it)"
            ));
        }
    }

    /// The measured run and the warm-up before it (OMB warms up for a minute unless told).
    fn durations(&mut self, workload: &Workload) {
        if let Some(minutes) = workload.test_duration_minutes {
            self.flag("duration", minutes_text(minutes));
        }
        self.flag(
            "warmup",
            minutes_text(workload.warmup_duration_minutes.unwrap_or(1.0)),
        );
    }

    /// invstream's own keys, beside OMB's.
    fn own_keys(&mut self, workload: &Workload) {
        if let Some(size) = workload.batch_size {
            self.flag("batch-size", size);
        }
        if let Some(size) = workload.sub_entry_size {
            self.flag("sub-entry-size", size);
        }
        if let Some(compression) = &workload.compression {
            self.flag("compression", compression);
        }
        if workload.filter_values == Some(true) {
            self.flags.push("--filter-values".into());
        }
    }
}

/// What a workload run measured: each topic's bench summary, and their totals (its `--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkloadOutcome {
    pub command: &'static str,
    pub workload: String,
    pub file: String,
    pub topics: u32,
    /// 1: each topic is a stream.
    pub partitions_per_topic: u32,
    pub producers_per_topic: u64,
    /// Consumers, all subscriptions together.
    pub consumers_per_topic: u64,
    /// Consumers sharing a subscription's partitions (OMB's `consumerPerSubscription`).
    pub consumers_per_subscription: u64,
    /// `None`: inventory updates of their own size (~180 bytes).
    pub message_size: Option<u64>,
    /// Per topic; `None`: as fast as possible.
    pub rate_per_topic: Option<u64>,
    pub warmup_s: f64,
    pub warnings: Vec<String>,
    pub published: u64,
    pub confirmed: u64,
    pub failed: u64,
    pub consumed: u64,
    pub publish_msg_per_s: f64,
    pub consume_msg_per_s: f64,
    pub confirm_latency_us: crate::stats::LatencySummary,
    pub end_to_end_latency_us: crate::stats::LatencySummary,
    pub interrupted: bool,
    /// Each topic's own summary.
    pub per_topic: Vec<crate::stats::RunSummary>,
}

/// Minutes as a duration flag takes them: `1.5` → `90s`.
fn minutes_text(minutes: f64) -> String {
    let seconds = Duration::from_secs_f64((minutes * 60.0).max(0.0)).as_secs();
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_PARTITIONS: &str = "
name: 1 topic / 3 partitions / 3 producers
topics: 1
partitionsPerTopic: 3
messageSize: 1024
payloadFile: payload/payload-1Kb.data
subscriptionsPerTopic: 1
consumerPerSubscription: 1
producersPerTopic: 3
producerRate: 30000
consumerBacklogSizeGB: 0
testDurationMinutes: 15
";

    #[test]
    fn an_omb_workload_becomes_bench_flags() {
        let workload = parse(THREE_PARTITIONS).unwrap();
        let plan = plan(&workload, "file", Path::new("/nowhere"));
        assert_eq!(plan.name, "1 topic / 3 partitions / 3 producers");
        assert_eq!(plan.topics, 1);
        assert_eq!(
            plan.flags,
            [
                "--super-stream-partitions=3",
                "--producers=3",
                "--consumers=1",
                "--message-size=1024",
                "--rate=30000",
                "--duration=900s",
                "--warmup=60s",
            ]
        );
        // The payload file is named, and what is sent instead.
        assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
        assert!(plan.warnings[0].starts_with("payloadFile: payload/payload-1Kb.data"));
    }

    #[test]
    fn topics_split_the_rate_and_a_zero_rate_searches_on_one_topic() {
        let two = parse("topics: 2\nproducerRate: 50000\nwarmupDurationMinutes: 0.5\nsubscriptionsPerTopic: 2\nconsumerPerSubscription: 2\n").unwrap();
        let plan2 = plan(&two, "two", Path::new("."));
        assert_eq!(plan2.topics, 2);
        assert!(
            plan2.flags.contains(&"--rate=25000".to_string()),
            "{:?}",
            plan2.flags
        );
        assert!(plan2.flags.contains(&"--warmup=30s".to_string()));
        let search = plan(&parse("producerRate: 0\n").unwrap(), "s", Path::new("."));
        assert!(search.flags.contains(&"--find-max-rate".to_string()));
        let flat_out = plan(
            &parse("topics: 3\nproducerRate: 0\n").unwrap(),
            "f",
            Path::new("."),
        );
        assert!(!flat_out.flags.contains(&"--find-max-rate".to_string()));
        assert!(flat_out.warnings[0].starts_with("producerRate: 0 over 3 topics"));
    }

    #[test]
    fn consumers_per_subscription_are_groups_sharing_the_partitions() {
        let shared = parse("subscriptionsPerTopic: 2\nconsumerPerSubscription: 3\n").unwrap();
        let plan = plan(&shared, "g", Path::new("."));
        assert!(
            plan.flags.contains(&"--consumers=6".to_string()),
            "{plan:?}"
        );
        assert!(plan.flags.contains(&"--consumers-per-group=3".to_string()));
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        // One consumer per subscription: no groups, as before.
        let alone = plan_of("subscriptionsPerTopic: 2\nconsumerPerSubscription: 1\n");
        assert!(alone.flags.contains(&"--consumers=2".to_string()));
        assert!(!alone
            .flags
            .iter()
            .any(|f| f.starts_with("--consumers-per-group")));
    }

    #[test]
    fn a_backlog_is_built_first_split_between_the_topics() {
        let one = plan_of("consumerBacklogSizeGB: 0.01\nbacklogDrainRatio: 0.5\n");
        assert!(
            one.flags.contains(&"--backlog=10737418".to_string()),
            "{one:?}"
        );
        assert!(one.flags.contains(&"--backlog-drain-ratio=0.5".to_string()));
        assert!(one.warnings.is_empty(), "{:?}", one.warnings);
        let two = plan_of("topics: 2\nconsumerBacklogSizeGB: 1\nproducerRate: 100\n");
        assert!(
            two.flags.contains(&"--backlog=536870912".to_string()),
            "{two:?}"
        );
        assert!(!two
            .flags
            .iter()
            .any(|f| f.starts_with("--backlog-drain-ratio")));
        // OMB counts a backlog per subscription: said.
        let subscribed = plan_of("subscriptionsPerTopic: 2\nconsumerBacklogSizeGB: 1\n");
        assert!(subscribed.warnings[0].contains("once per subscription"));
        // None asked, or the max-rate search: no backlog flag.
        for text in [
            "consumerBacklogSizeGB: 0\n",
            "consumerBacklogSizeGB: 1\nproducerRate: 0\n",
        ] {
            let plan = plan_of(text);
            assert!(
                !plan.flags.iter().any(|f| f.starts_with("--backlog")),
                "{plan:?}"
            );
        }
        assert!(
            plan_of("consumerBacklogSizeGB: 1\nproducerRate: 0\n").warnings[0]
                .starts_with("consumerBacklogSizeGB: 1: the max-rate search builds no backlog")
        );
    }

    fn plan_of(text: &str) -> WorkloadPlan {
        plan(&parse(text).unwrap(), "w", Path::new("."))
    }

    #[test]
    fn invstreams_own_keys_are_its_flags() {
        let workload =
            parse("subEntrySize: 100\ncompression: zstd\nbatchSize: 500\nfilterValues: true\n")
                .unwrap();
        let flags = plan(&workload, "own", Path::new(".")).flags;
        for wanted in [
            "--sub-entry-size=100",
            "--compression=zstd",
            "--batch-size=500",
            "--filter-values",
        ] {
            assert!(flags.contains(&wanted.to_string()), "{wanted}: {flags:?}");
        }
    }

    #[test]
    fn unknown_keys_lists_and_bad_values_are_refused() {
        assert_eq!(
            parse("topics: 1\ntopicz: 2\nfoo: 1\n"),
            Err(WorkloadError::UnknownKeys(vec![
                "topicz".into(),
                "foo".into()
            ]))
        );
        assert_eq!(
            parse("subEntrySize: [1, 10]\n"),
            Err(WorkloadError::List("subEntrySize".into()))
        );
        assert!(matches!(
            parse("topics: many\n"),
            Err(WorkloadError::BadValue(_))
        ));
        assert!(matches!(
            parse("- 1\n- 2\n"),
            Err(WorkloadError::NotYaml(_))
        ));
    }

    #[test]
    fn a_payload_file_found_sets_the_message_size() {
        let dir = std::env::temp_dir().join(format!("invstream-workload-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("payload")).unwrap();
        std::fs::write(dir.join("payload/p.data"), vec![b'x'; 512]).unwrap();
        let plan = plan(&parse("payloadFile: payload/p.data\n").unwrap(), "p", &dir);
        assert!(
            plan.flags.contains(&"--message-size=512".to_string()),
            "{:?}",
            plan.flags
        );
        assert!(plan.warnings[0].contains("the file's 512 bytes"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
