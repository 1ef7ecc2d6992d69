//! What `consume` reads: a list of partitions. A plain stream is the one-partition case whose
//! partition is the stream itself; a super stream's are its partition streams. Everything after
//! [`ReadTarget::open`] reads that list the same way; what differs is only how partitions are
//! named to the user, and the producer suffix `--verify` takes off.

use rabbitmq_stream_client::Environment;

use crate::error::Result;
use crate::reader::ReaderSpec;
use crate::report::Output;
use crate::settings::{CommonSettings, ConsumeSettings};
use crate::superstream;

/// The stream or super stream a run reads, and its partitions.
pub(super) struct ReadTarget {
    /// The stream's name, or the super stream's: the summary's `stream`.
    pub name: String,
    /// The streams to read, in the broker's order: `[name]` for a plain stream; a super
    /// stream's partitions (with a hash-layout `--product`, only those holding the products).
    pub partitions: Vec<String>,
    /// Whether `name` is a super stream: its partitions then get summaries of their own, and
    /// each partition's producer `NAME-PARTITION` verifies as `NAME`.
    pub super_stream: bool,
}

impl ReadTarget {
    /// Connects and finds the partitions: `--super-stream` needs a broker with super streams
    /// (3.13+) and an existing super stream; a plain stream is checked when it is read.
    pub async fn open(
        common: &CommonSettings,
        settings: &ConsumeSettings,
        out: Output,
    ) -> Result<(Environment, ReadTarget)> {
        let broker = &common.broker;
        let Some(name) = &settings.super_stream else {
            let target = ReadTarget {
                name: common.stream.clone(),
                partitions: vec![common.stream.clone()],
                super_stream: false,
            };
            return Ok((broker.connect().await?, target));
        };
        let env = superstream::connect(broker).await?;
        let existing = superstream::existing(broker, name).await?;
        let partitions = superstream::partitions_holding(&existing, &settings.products);
        if partitions.len() < existing.partitions.len() {
            out.status(&format!(
                "--product: reading partition {} of super stream '{name}', which holds those products",
                partitions.join(", ")
            ));
        }
        let target = ReadTarget {
            name: name.clone(),
            partitions,
            super_stream: true,
        };
        Ok((env, target))
    }

    /// `stream 'NAME'` or `super stream 'NAME'`, for status lines.
    pub fn describe(&self) -> String {
        match self.super_stream {
            true => format!("super stream '{}'", self.name),
            false => format!("stream '{}'", self.name),
        }
    }

    /// The super stream a partition belongs to: a single-active group then forms per
    /// partition (the subscription's `super-stream` property).
    pub fn super_stream_name(&self) -> Option<&str> {
        self.super_stream.then_some(self.name.as_str())
    }

    /// A partition as a sink names it: in `--print` lines, in the "no messages at offsets"
    /// note, and as the `-PARTITION` its producers' names end in. `None` on a plain stream,
    /// which has one partition and names it in the run's status line.
    pub fn partition_name<'a>(&self, partition: &'a str) -> Option<&'a str> {
        self.super_stream.then_some(partition)
    }

    /// A reader's label in its events and its connection's name: the consumer's on a plain
    /// stream; on a super stream the partition, or `CONSUMER@PARTITION` with several consumers.
    pub fn label(&self, consumer: &ReaderSpec, partition: &str, consumers: usize) -> String {
        match (self.super_stream, consumers > 1) {
            (false, _) => consumer.label.clone(),
            (true, false) => partition.to_string(),
            (true, true) => format!("{}@{partition}", consumer.label),
        }
    }
}
