//! What a command works on: one stream, or a super stream's partitions. A stream is the
//! one-partition case, so publishing, planning and summaries are written once for both.

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
    /// How a super stream's partitions name their producers.
    pub naming: PartitionNaming,
}

/// The producer name each partition of a super stream publishes under, for a run named `NAME`.
/// The broker deduplicates per stream, so one name serves every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionNaming {
    /// `NAME` on every partition, as the Java client's super stream producer names them. Also
    /// the shortest: the broker copies a name of up to 64 bytes with every message it
    /// deduplicates, and a longer one costs it 5–8% more per message (docs/BENCHMARKS.md).
    Shared,
    /// `NAME-PARTITION`: what invstream used until December 2026. A given name that holds
    /// updates only under these goes on under them, so `--resume` never sends them again.
    Suffixed,
}

impl Target {
    pub fn stream(name: &str) -> Self {
        Target {
            name: name.to_string(),
            partitions: vec![name.to_string()],
            is_super_stream: false,
            naming: PartitionNaming::Shared,
        }
    }

    /// Super stream `name` with `partitions` in the broker's order.
    pub fn super_stream(name: &str, partitions: Vec<String>) -> Self {
        Target {
            name: name.to_string(),
            partitions,
            is_super_stream: true,
            naming: PartitionNaming::Shared,
        }
    }

    /// The producer name a partition's publisher uses: the name itself, on a super stream's
    /// partitions too unless [`PartitionNaming::Suffixed`] (each partition's publisher numbers
    /// its own ids; the broker deduplicates per stream).
    pub fn producer_name(&self, name: &str, partition: &str) -> String {
        self.name_under(self.naming, name, partition)
    }

    fn name_under(&self, naming: PartitionNaming, name: &str, partition: &str) -> String {
        match (self.is_super_stream, naming) {
            (true, PartitionNaming::Suffixed) => suffixed_producer(name, partition),
            _ => name.to_string(),
        }
    }

    /// Every partition's producer name under `name` as `naming` makes it, with its partition.
    fn names_under(&self, naming: PartitionNaming, name: &str) -> Vec<(String, String)> {
        self.partitions
            .iter()
            .map(|partition| (self.name_under(naming, name, partition), partition.clone()))
            .collect()
    }

    /// Every partition's producer name under `name` as invstream named them until December 2026
    /// (`NAME-PARTITION`), with its partition; empty on a stream.
    pub fn suffixed_producer_names(&self, name: &str) -> Vec<(String, String)> {
        match self.is_super_stream {
            true => self.names_under(PartitionNaming::Suffixed, name),
            false => Vec::new(),
        }
    }

    /// Every partition's producer name under `name`, with its partition, in partition order.
    pub fn producer_names(&self, name: &str) -> Vec<(String, String)> {
        self.names_under(self.naming, name)
    }

    /// "stream 'NAME'" or "super stream 'NAME'", for messages.
    pub fn describe(&self) -> String {
        match self.is_super_stream {
            true => format!("super stream '{}'", self.name),
            false => format!("stream '{}'", self.name),
        }
    }
}

/// How a new super stream is laid out, as asked on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionLayout {
    /// `--partitions N`: partitions `NAME-0` … `NAME-(N-1)`, binding keys `0` … `N-1`; updates
    /// are routed by a hash of their product id.
    Count(u32),
    /// `--partition-keys a,b`: partitions `NAME-a`, `NAME-b`, binding keys `a`, `b`; updates are
    /// routed by their warehouse, which the broker maps to a partition.
    Keys(Vec<String>),
}

impl PartitionLayout {
    /// The binding keys of the partitions, in order.
    pub fn binding_keys(&self) -> Vec<String> {
        match self {
            PartitionLayout::Count(n) => (0..*n).map(|i| i.to_string()).collect(),
            PartitionLayout::Keys(keys) => keys.clone(),
        }
    }

    /// The partition stream names for super stream `name`, in order.
    pub fn partitions(&self, name: &str) -> Vec<String> {
        self.binding_keys()
            .iter()
            .map(|key| format!("{name}-{key}"))
            .collect()
    }
}

/// The producer name a super stream partition's publisher used until December 2026
/// (`NAME-PARTITION`).
pub fn suffixed_producer(name: &str, partition: &str) -> String {
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
        let mut super_stream = Target::super_stream("ss", vec!["ss-0".into(), "ss-1".into()]);
        assert_eq!(super_stream.describe(), "super stream 'ss'");
        assert_eq!(super_stream.producer_name("p", "ss-1"), "p");
        let suffixed = [
            ("p-ss-0".to_string(), "ss-0".to_string()),
            ("p-ss-1".to_string(), "ss-1".to_string()),
        ];
        assert_eq!(super_stream.suffixed_producer_names("p"), suffixed);
        assert_eq!(stream.suffixed_producer_names("p"), []);
        super_stream.naming = PartitionNaming::Suffixed;
        assert_eq!(super_stream.producer_names("p"), suffixed);
    }
}
