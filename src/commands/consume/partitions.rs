//! What `consume` reads: a `Target`, a list of partitions. A plain stream is the one-partition
//! case whose partition is the stream itself; a super stream's are its partition streams.
//! Everything after [`open`] reads that list the same way; what differs is only how partitions
//! are named to the user, and the producer suffix `--verify` takes off.

use rabbitmq_stream_client::Environment;

use crate::engines::reader::ReaderSpec;
use crate::error::Result;
use crate::report::Output;
use crate::settings::{CommonSettings, ConsumeSettings};
use crate::superstream;
use crate::target::Target;

/// Connects and finds the partitions to read: `--super-stream` needs a broker with super
/// streams (3.13+) and an existing super stream, and with a hash-layout `--product` only the
/// partitions holding those products are read; a plain stream is checked when it is read.
pub(super) async fn open(
    common: &CommonSettings,
    settings: &ConsumeSettings,
    out: Output,
) -> Result<(Environment, Target)> {
    let broker = &common.broker;
    let Some(name) = &settings.super_stream else {
        return Ok((broker.connect().await?, Target::stream(&common.stream)));
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
    Ok((env, Target::super_stream(name, partitions)))
}

/// The super stream a partition belongs to: a single-active group then forms per partition
/// (the subscription's `super-stream` property).
pub(super) fn super_stream_name(target: &Target) -> Option<&str> {
    target.is_super_stream.then_some(target.name.as_str())
}

/// A partition as a sink names it: in `--print` lines, in the "no messages at offsets" note,
/// and as the `-PARTITION` its producers' names end in. `None` on a plain stream, which has one
/// partition and names it in the run's status line.
pub(super) fn partition_name<'a>(target: &Target, partition: &'a str) -> Option<&'a str> {
    target.is_super_stream.then_some(partition)
}

/// A reader's label in its events and its connection's name: the consumer's on a plain stream;
/// on a super stream the partition, or `CONSUMER@PARTITION` with several consumers.
pub(super) fn label(
    target: &Target,
    consumer: &ReaderSpec,
    partition: &str,
    consumers: usize,
) -> String {
    match (target.is_super_stream, consumers > 1) {
        (false, _) => consumer.label.clone(),
        (true, false) => partition.to_string(),
        (true, true) => format!("{}@{partition}", consumer.label),
    }
}
