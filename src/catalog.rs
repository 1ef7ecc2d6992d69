//! What a virtual host holds, as `invstream streams` shows it: the results model of `list`,
//! `info` and `delete` (rendered by `report::streams`), and the pure steps that build the list
//! from the management API's answers. It asks nothing itself.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::broker::management::{BindingEntry, QueueEntry};

/// `invstream streams list`: every stream and super stream of the virtual host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamList {
    pub vhost: String,
    /// The management API asked (no credentials).
    pub management_url: String,
    /// Every stream, partitions included, by name.
    pub streams: Vec<ListedStream>,
    /// Every super stream, by name, with its partitions in their order.
    pub super_streams: Vec<ListedSuperStream>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedStream {
    pub name: String,
    /// Messages in the stream, as the broker counts them (`null` before its first statistics).
    pub messages: Option<u64>,
    /// Segment files on the leader.
    pub segments: Option<u64>,
    /// The Erlang node leading it (`rabbit@host`), and every node holding it.
    pub leader_node: Option<String>,
    pub members: Vec<String>,
    /// The super stream it is a partition of, and its binding key there.
    pub super_stream: Option<String>,
    pub binding_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedSuperStream {
    pub name: String,
    pub partitions: Vec<Partition>,
    /// The partitions' messages together (`null` when one of them has no count yet).
    pub messages: Option<u64>,
}

/// A super stream's partition: the stream and the key its exchange binds it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub stream: String,
    /// `null` when the management API was not there to say.
    pub binding_key: Option<String>,
}

/// The list from the management API's streams, super streams (exchange names) and bindings.
pub fn list(
    vhost: &str,
    management_url: &str,
    queues: Vec<QueueEntry>,
    super_streams: &[String],
    bindings: &[BindingEntry],
) -> StreamList {
    let mut listed_super: Vec<ListedSuperStream> = super_streams
        .iter()
        .map(|name| ListedSuperStream {
            name: name.clone(),
            partitions: partitions_from(name, bindings),
            messages: None,
        })
        .collect();
    listed_super.sort_by(|a, b| a.name.cmp(&b.name));
    let mut owner: HashMap<&str, (&str, &str)> = HashMap::new();
    for s in &listed_super {
        for p in &s.partitions {
            owner.insert(
                &p.stream,
                (&s.name, p.binding_key.as_deref().unwrap_or_default()),
            );
        }
    }
    let mut streams: Vec<ListedStream> = queues
        .into_iter()
        .map(|q| {
            let (super_stream, binding_key) = match owner.get(q.name.as_str()) {
                Some((s, key)) => (Some(s.to_string()), Some(key.to_string())),
                None => (None, None),
            };
            ListedStream {
                name: q.name,
                messages: q.messages,
                segments: q.segments,
                leader_node: q.leader,
                members: q.members,
                super_stream,
                binding_key,
            }
        })
        .collect();
    streams.sort_by(|a, b| a.name.cmp(&b.name));
    let messages: HashMap<&str, Option<u64>> = streams
        .iter()
        .map(|s| (s.name.as_str(), s.messages))
        .collect();
    for s in &mut listed_super {
        s.messages = s
            .partitions
            .iter()
            .map(|p| messages.get(p.stream.as_str()).copied().flatten())
            .sum();
    }
    StreamList {
        vhost: vhost.to_string(),
        management_url: management_url.to_string(),
        streams,
        super_streams: listed_super,
    }
}

/// The partitions of super stream `name` among `bindings`, in their partition order (then by
/// name, for bindings without one).
pub fn partitions_from(name: &str, bindings: &[BindingEntry]) -> Vec<Partition> {
    let mut mine: Vec<&BindingEntry> = bindings.iter().filter(|b| b.source == name).collect();
    mine.sort_by(|a, b| {
        (a.partition_order(), &a.destination).cmp(&(b.partition_order(), &b.destination))
    });
    mine.into_iter()
        .map(|b| Partition {
            stream: b.destination.clone(),
            binding_key: Some(b.routing_key.clone()),
        })
        .collect()
}

/// What `invstream streams info NAME` found: a stream, or a super stream and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamInfo {
    pub name: String,
    pub kind: Kind,
    pub vhost: String,
    /// A stream's own details (its keys at the top level of the JSON).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamDetail>,
    /// A super stream's partitions, each with its details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<PartitionDetail>>,
    /// Whether `consumers` and `producers` are every name the broker tracks (listed by the
    /// `rabbitmq_stream_management` plugin), or only those asked for with --consumer/--producer.
    pub tracking_listed: bool,
    /// What could not be shown, and why (the management API away, the plugin missing).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Stream,
    SuperStream,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Stream => "stream",
            Kind::SuperStream => "super stream",
        }
    }
}

/// One stream's details, from the stream protocol and (where it answers) the management API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamDetail {
    /// Messages, as the management API counts them.
    pub messages: Option<u64>,
    pub segments: Option<u64>,
    /// The first offset still stored; `null` for an empty stream.
    pub first_offset: Option<u64>,
    /// The first offset of the last chunk.
    pub committed_chunk_id: Option<u64>,
    /// The offset of the last message.
    pub last_offset: Option<u64>,
    /// `host:port` of the leader and the replicas (the stream protocol's metadata).
    pub leader: Option<String>,
    pub replicas: Vec<String>,
    /// Erlang node names, from the management API.
    pub leader_node: Option<String>,
    pub members: Vec<String>,
    /// Consumer names and the offset each stored (`null`: none stored under that name).
    pub consumers: Vec<StoredOffset>,
    /// Producer names and their last publishing id (0: nothing published under that name).
    pub producers: Vec<ProducerSequence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionDetail {
    pub stream: String,
    pub binding_key: Option<String>,
    #[serde(flatten)]
    pub detail: StreamDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredOffset {
    pub name: String,
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProducerSequence {
    pub name: String,
    pub last_publishing_id: u64,
}

/// The names to show for one stream: those the broker listed (when it could) and those asked
/// for, each once, sorted; the listed value where there is one, `None` where it must be asked.
pub fn tracked_names(
    listed: &BTreeMap<String, u64>,
    asked: &[String],
) -> Vec<(String, Option<u64>)> {
    let mut names: BTreeMap<String, Option<u64>> = listed
        .iter()
        .map(|(name, value)| (name.clone(), Some(*value)))
        .collect();
    for name in asked {
        names.entry(name.clone()).or_insert(None);
    }
    names.into_iter().collect()
}

/// What `invstream streams delete NAME` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deleted {
    pub name: String,
    pub kind: Kind,
    pub vhost: String,
    /// The streams deleted: the stream, or the super stream's partitions.
    pub streams: Vec<String>,
    /// The super stream's exchange, deleted with it.
    pub exchange: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, messages: Option<u64>) -> QueueEntry {
        QueueEntry {
            name: name.into(),
            kind: Some("stream".into()),
            messages,
            segments: Some(1),
            leader: Some("rabbit@a".into()),
            members: vec!["rabbit@a".into()],
        }
    }

    fn binding(source: &str, destination: &str, key: &str, order: u64) -> BindingEntry {
        serde_json::from_value(serde_json::json!({
            "source": source, "destination": destination, "routing_key": key,
            "arguments": {"x-stream-partition-order": order}
        }))
        .unwrap()
    }

    #[test]
    fn partitions_are_listed_under_their_super_stream_in_order() {
        let bindings = [
            binding("orders", "orders-1", "1", 1),
            binding("orders", "orders-0", "0", 0),
            binding("other", "x", "x", 0),
        ];
        let list = list(
            "/",
            "http://h:15672",
            vec![
                queue("solo", Some(5)),
                queue("orders-1", Some(7)),
                queue("orders-0", Some(3)),
            ],
            &["orders".to_string()],
            &bindings,
        );
        let names: Vec<&str> = list.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["orders-0", "orders-1", "solo"]);
        assert_eq!(list.streams[1].super_stream.as_deref(), Some("orders"));
        assert_eq!(list.streams[1].binding_key.as_deref(), Some("1"));
        assert_eq!(list.streams[2].super_stream, None);
        let orders = &list.super_streams[0];
        let partitions: Vec<&str> = orders
            .partitions
            .iter()
            .map(|p| p.stream.as_str())
            .collect();
        assert_eq!(partitions, ["orders-0", "orders-1"]);
        assert_eq!(orders.messages, Some(10));
    }

    #[test]
    fn a_partition_without_a_count_leaves_the_total_unknown() {
        let list = list(
            "/",
            "u",
            vec![queue("s-0", None), queue("s-1", Some(2))],
            &["s".to_string()],
            &[binding("s", "s-0", "0", 0), binding("s", "s-1", "1", 1)],
        );
        assert_eq!(list.super_streams[0].messages, None);
    }

    #[test]
    fn asked_names_join_the_listed_ones_once() {
        let listed = BTreeMap::from([("b".to_string(), 9), ("a".to_string(), 1)]);
        let names = tracked_names(&listed, &["c".into(), "a".into()]);
        assert_eq!(
            names,
            [
                ("a".to_string(), Some(1)),
                ("b".to_string(), Some(9)),
                ("c".to_string(), None)
            ]
        );
    }

    #[test]
    fn info_json_keeps_a_stream_flat_and_a_super_stream_by_partition() {
        let detail = StreamDetail {
            last_offset: Some(999),
            ..StreamDetail::default()
        };
        let stream = StreamInfo {
            name: "s".into(),
            kind: Kind::Stream,
            vhost: "/".into(),
            stream: Some(detail.clone()),
            partitions: None,
            tracking_listed: true,
            notes: vec![],
        };
        let json = serde_json::to_value(&stream).unwrap();
        assert_eq!(json["kind"], "stream");
        assert_eq!(json["last_offset"], 999);
        assert!(json.get("partitions").is_none());
        let super_stream = StreamInfo {
            kind: Kind::SuperStream,
            stream: None,
            partitions: Some(vec![PartitionDetail {
                stream: "s-0".into(),
                binding_key: Some("0".into()),
                detail,
            }]),
            ..stream
        };
        let json = serde_json::to_value(&super_stream).unwrap();
        assert_eq!(json["kind"], "super_stream");
        assert_eq!(json["partitions"][0]["last_offset"], 999);
        assert_eq!(json["partitions"][0]["binding_key"], "0");
        assert!(json.get("last_offset").is_none());
    }
}
