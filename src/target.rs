//! What a command works on: one stream, or a super stream's partitions. A stream is the
//! one-partition case, so publishing, planning and summaries are written once for both.

use rabbitmq_stream_client::Environment;

use crate::broker::{BrokerSettings, Retention};
use crate::error::{InvError, Result};
use crate::report::Output;
use crate::settings::PartitionLayout;
use crate::superstream::{self, SuperStream};

/// What a command asked to publish to, before the broker was asked.
#[derive(Debug, Clone, Copy)]
pub enum Asked<'a> {
    Stream(&'a str),
    /// A super stream, created as `layout` asks when missing (three hash partitions for `None`).
    SuperStream {
        name: &'a str,
        layout: Option<&'a PartitionLayout>,
    },
}

/// A stream, or a super stream with its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The stream's or the super stream's name.
    pub name: String,
    /// The streams that hold its messages: the stream itself, or the partitions in the broker's
    /// order (the order hash routing counts in).
    pub partitions: Vec<String>,
    /// Whether `name` is a super stream (its partitions are other streams).
    pub is_super_stream: bool,
}

impl Target {
    pub fn stream(name: &str) -> Self {
        Target {
            name: name.to_string(),
            partitions: vec![name.to_string()],
            is_super_stream: false,
        }
    }

    pub fn super_stream(super_stream: SuperStream) -> Self {
        Target {
            name: super_stream.name,
            partitions: super_stream.partitions,
            is_super_stream: true,
        }
    }

    /// The producer name a partition's publisher uses: the name itself on a stream,
    /// `NAME-PARTITION` on a super stream's partition (the broker deduplicates per stream, and
    /// each partition's publisher numbers its own ids).
    pub fn producer_name(&self, name: &str, partition: &str) -> String {
        match self.is_super_stream {
            true => partition_producer(name, partition),
            false => name.to_string(),
        }
    }

    /// Every partition's producer name under `name`, with its partition, in partition order.
    pub fn producer_names(&self, name: &str) -> Vec<(String, String)> {
        self.partitions
            .iter()
            .map(|partition| (self.producer_name(name, partition), partition.clone()))
            .collect()
    }

    /// "stream 'NAME'" or "super stream 'NAME'", for messages.
    pub fn describe(&self) -> String {
        match self.is_super_stream {
            true => format!("super stream '{}'", self.name),
            false => format!("stream '{}'", self.name),
        }
    }
}

/// Connects and creates the target (with `retention`) if it is missing: the start of every
/// command that publishes. A stream that is a partition of a super stream is refused: updates
/// published to it would miss the routing its readers rely on.
pub async fn connect_and_ensure(
    broker: &BrokerSettings,
    asked: Asked<'_>,
    retention: &Retention,
    out: Output,
) -> Result<(Environment, Target)> {
    let arguments = retention.arguments();
    match asked {
        Asked::Stream(stream) => {
            let env = broker.connect().await?;
            let created = broker
                .while_starting(|| broker.ensure_stream(stream, arguments.clone()))
                .await?;
            if created {
                out.status(&format!("created stream '{stream}'"));
            } else if let Some(owner) = superstream::owner_of_partition(broker, stream).await {
                return Err(InvError::usage(format!(
                    "stream '{stream}' is a partition of super stream '{owner}': publish with --super-stream {owner}, so each update goes to its product's partition"
                )));
            }
            Ok((env, Target::stream(stream)))
        }
        Asked::SuperStream { name, layout } => {
            let env = superstream::connect(broker).await?;
            let super_stream = superstream::ensure(broker, name, layout, arguments, out).await?;
            Ok((env, Target::super_stream(super_stream)))
        }
    }
}

/// The producer name a super stream partition's publisher uses.
pub fn partition_producer(name: &str, partition: &str) -> String {
    format!("{name}-{partition}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_its_own_only_partition_and_keeps_the_producer_name() {
        let stream = Target::stream("s");
        assert_eq!(stream.partitions, ["s"]);
        assert_eq!(
            stream.producer_names("p"),
            [("p".to_string(), "s".to_string())]
        );
        let super_stream = Target::super_stream(SuperStream {
            name: "ss".into(),
            partitions: vec!["ss-0".into(), "ss-1".into()],
        });
        assert_eq!(super_stream.producer_name("p", "ss-1"), "p-ss-1");
        assert_eq!(super_stream.describe(), "super stream 'ss'");
    }
}
