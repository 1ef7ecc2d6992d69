//! `invstream streams`: the list, a stream's or super stream's details and what a delete
//! removed, as text for people or one JSON object (`command` first, then the model's keys).

use serde::Serialize;

use super::thousands;
use crate::catalog::{Deleted, Kind, StreamDetail, StreamInfo, StreamList};

/// The model under a `command` key, for `--json`.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    command: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

fn json<T: Serialize>(command: &'static str, body: &T) -> serde_json::Result<String> {
    super::json_line(&Envelope { command, body })
}

pub fn list_json(list: &StreamList) -> serde_json::Result<String> {
    json("streams list", list)
}

pub fn info_json(info: &StreamInfo) -> serde_json::Result<String> {
    json("streams info", info)
}

pub fn deleted_json(deleted: &Deleted) -> serde_json::Result<String> {
    json("streams delete", deleted)
}

fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "?".to_string(), thousands)
}

/// Columns padded to their widest cell; the last one is not padded.
pub(crate) fn table(rows: &[Vec<String>], right_aligned: &[usize]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            line.push(' ');
            match (right_aligned.contains(&c), c + 1 == row.len()) {
                (true, _) => line.push_str(&format!("{}{cell}", " ".repeat(pad))),
                (false, true) => line.push_str(cell),
                (false, false) => line.push_str(&format!("{cell}{}", " ".repeat(pad))),
            }
            line.push(' ');
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn list_text(list: &StreamList) -> String {
    let mut out = format!(
        "streams in virtual host '{}' ({} streams, {} super streams; management API at {})\n",
        list.vhost,
        list.streams.len(),
        list.super_streams.len(),
        list.management_url
    );
    if !list.streams.is_empty() {
        let mut rows = vec![vec![
            "name".to_string(),
            "messages".to_string(),
            "segments".to_string(),
            "leader".to_string(),
            "partition of".to_string(),
        ]];
        for s in &list.streams {
            rows.push(vec![
                s.name.clone(),
                count(s.messages),
                count(s.segments),
                s.leader_node.clone().unwrap_or_else(|| "?".to_string()),
                match (&s.super_stream, &s.binding_key) {
                    (Some(owner), Some(key)) => format!("{owner} (key {key})"),
                    (Some(owner), None) => owner.clone(),
                    _ => String::new(),
                },
            ]);
        }
        out.push_str(&table(&rows, &[1, 2]));
    }
    if !list.super_streams.is_empty() {
        out.push_str("super streams\n");
        let mut rows = vec![vec![
            "name".to_string(),
            "messages".to_string(),
            "partitions".to_string(),
        ]];
        for s in &list.super_streams {
            let partitions: Vec<String> = s.partitions.iter().map(|p| p.stream.clone()).collect();
            rows.push(vec![
                s.name.clone(),
                count(s.messages),
                partitions.join(", "),
            ]);
        }
        out.push_str(&table(&rows, &[1]));
    }
    out
}

fn detail_lines(d: &StreamDetail, tracking_listed: bool) -> String {
    let mut lines: Vec<(String, String)> = Vec::new();
    lines.push(("messages".into(), count(d.messages)));
    lines.push(("segments".into(), count(d.segments)));
    lines.push((
        "offsets".into(),
        match (d.first_offset, d.last_offset, d.committed_chunk_id) {
            (Some(first), Some(last), Some(chunk)) => format!(
                "{} … {} (the last chunk starts at {})",
                thousands(first),
                thousands(last),
                thousands(chunk)
            ),
            _ => "none (empty)".to_string(),
        },
    ));
    let node = |name: &Option<String>| name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
    lines.push((
        "leader".into(),
        match &d.leader {
            Some(leader) => format!("{leader}{}", node(&d.leader_node)),
            None => format!("? (no leader now){}", node(&d.leader_node)),
        },
    ));
    lines.push((
        "replicas".into(),
        match d.replicas.is_empty() {
            true => "none".to_string(),
            false => d.replicas.join(", "),
        },
    ));
    let none = match tracking_listed {
        true => "none stored",
        false => "not listed (see the note below)",
    };
    let consumers: Vec<String> = d
        .consumers
        .iter()
        .map(|c| match c.offset {
            Some(offset) => format!("{}: offset {}", c.name, thousands(offset)),
            None => format!("{}: no offset stored", c.name),
        })
        .collect();
    lines.push((
        "consumers".into(),
        match consumers.is_empty() {
            true => none.to_string(),
            false => consumers.join("; "),
        },
    ));
    let producers: Vec<String> = d
        .producers
        .iter()
        .map(|p| {
            format!(
                "{}: last publishing id {}",
                p.name,
                thousands(p.last_publishing_id)
            )
        })
        .collect();
    lines.push((
        "producers".into(),
        match producers.is_empty() {
            true => none.to_string(),
            false => producers.join("; "),
        },
    ));
    lines
        .into_iter()
        .map(|(label, value)| format!("  {label:<14}  {value}\n"))
        .collect()
}

pub fn info_text(info: &StreamInfo) -> String {
    let mut out = String::new();
    match (info.kind, &info.stream, &info.partitions) {
        (Kind::Stream, Some(detail), _) => {
            out.push_str(&format!(
                "stream '{}' in virtual host '{}'\n",
                info.name, info.vhost
            ));
            out.push_str(&detail_lines(detail, info.tracking_listed));
        }
        (_, _, Some(partitions)) => {
            out.push_str(&format!(
                "super stream '{}' in virtual host '{}': {} partitions\n",
                info.name,
                info.vhost,
                partitions.len()
            ));
            for p in partitions {
                let key = p
                    .binding_key
                    .as_ref()
                    .map(|k| format!(" (binding key {k})"))
                    .unwrap_or_default();
                out.push_str(&format!("partition '{}'{key}\n", p.stream));
                out.push_str(&detail_lines(&p.detail, info.tracking_listed));
            }
        }
        _ => out.push_str(&format!("{} '{}'\n", info.kind.label(), info.name)),
    }
    for note in &info.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

pub fn deleted_text(d: &Deleted) -> String {
    match (d.kind, &d.exchange) {
        (Kind::SuperStream, exchange) => format!(
            "deleted super stream '{}' in virtual host '{}': partitions {}{}\n",
            d.name,
            d.vhost,
            d.streams.join(", "),
            exchange
                .as_ref()
                .map(|e| format!(" and exchange '{e}'"))
                .unwrap_or_default()
        ),
        (Kind::Stream, _) => format!(
            "deleted stream '{}' in virtual host '{}'\n",
            d.name, d.vhost
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{
        ListedStream, ListedSuperStream, Partition, PartitionDetail, ProducerSequence, StoredOffset,
    };

    fn list() -> StreamList {
        StreamList {
            vhost: "/".into(),
            management_url: "http://localhost:15672".into(),
            streams: vec![
                ListedStream {
                    name: "inventory_updates".into(),
                    messages: Some(100_000),
                    segments: Some(1),
                    leader_node: Some("rabbit@vm".into()),
                    members: vec!["rabbit@vm".into()],
                    super_stream: None,
                    binding_key: None,
                },
                ListedStream {
                    name: "orders-0".into(),
                    messages: Some(3_341),
                    segments: Some(1),
                    leader_node: Some("rabbit@vm".into()),
                    members: vec!["rabbit@vm".into()],
                    super_stream: Some("orders".into()),
                    binding_key: Some("0".into()),
                },
            ],
            super_streams: vec![ListedSuperStream {
                name: "orders".into(),
                partitions: vec![Partition {
                    stream: "orders-0".into(),
                    binding_key: Some("0".into()),
                }],
                messages: Some(3_341),
            }],
        }
    }

    #[test]
    fn the_list_is_a_table_with_partitions_named_by_their_super_stream() {
        let text = list_text(&list());
        let expected = "\
streams in virtual host '/' (2 streams, 1 super streams; management API at http://localhost:15672)
  name               messages  segments  leader     partition of
  inventory_updates   100,000         1  rabbit@vm
  orders-0              3,341         1  rabbit@vm  orders (key 0)
super streams
  name    messages  partitions
  orders     3,341  orders-0
";
        assert_eq!(text, expected, "\n{text}");
    }

    /// The JSON keys are a contract (README "JSON output").
    #[test]
    fn list_json_pins_its_keys() {
        let json: serde_json::Value = serde_json::from_str(&list_json(&list()).unwrap()).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&json),
            [
                "command",
                "management_url",
                "streams",
                "super_streams",
                "vhost"
            ]
        );
        assert_eq!(json["command"], "streams list");
        assert_eq!(
            keys(&json["streams"][0]),
            [
                "binding_key",
                "leader_node",
                "members",
                "messages",
                "name",
                "segments",
                "super_stream"
            ]
        );
        assert_eq!(
            keys(&json["super_streams"][0]),
            ["messages", "name", "partitions"]
        );
        assert_eq!(
            keys(&json["super_streams"][0]["partitions"][0]),
            ["binding_key", "stream"]
        );
    }

    fn detail() -> StreamDetail {
        StreamDetail {
            messages: Some(1_000),
            segments: Some(1),
            first_offset: Some(0),
            committed_chunk_id: Some(990),
            last_offset: Some(999),
            leader: Some("localhost:5552".into()),
            replicas: vec![],
            leader_node: Some("rabbit@vm".into()),
            members: vec!["rabbit@vm".into()],
            consumers: vec![StoredOffset {
                name: "stats".into(),
                offset: Some(99),
            }],
            producers: vec![ProducerSequence {
                name: "shop".into(),
                last_publishing_id: 1_000,
            }],
        }
    }

    #[test]
    fn a_stream_shows_its_offsets_members_and_tracking() {
        let info = StreamInfo {
            name: "s".into(),
            kind: Kind::Stream,
            vhost: "/".into(),
            stream: Some(detail()),
            partitions: None,
            tracking_listed: true,
            notes: vec![],
        };
        let text = info_text(&info);
        let expected = "\
stream 's' in virtual host '/'
  messages        1,000
  segments        1
  offsets         0 … 999 (the last chunk starts at 990)
  leader          localhost:5552 (rabbit@vm)
  replicas        none
  consumers       stats: offset 99
  producers       shop: last publishing id 1,000
";
        assert_eq!(text, expected, "\n{text}");
        let json: serde_json::Value = serde_json::from_str(&info_json(&info).unwrap()).unwrap();
        let mut keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "command",
                "committed_chunk_id",
                "consumers",
                "first_offset",
                "kind",
                "last_offset",
                "leader",
                "leader_node",
                "members",
                "messages",
                "name",
                "notes",
                "producers",
                "replicas",
                "segments",
                "tracking_listed",
                "vhost"
            ]
        );
        assert_eq!(json["consumers"][0]["offset"], 99);
        assert_eq!(json["producers"][0]["last_publishing_id"], 1000);
    }

    #[test]
    fn a_super_stream_shows_each_partition_and_the_notes() {
        let empty = StreamDetail {
            leader: Some("localhost:5552".into()),
            ..StreamDetail::default()
        };
        let info = StreamInfo {
            name: "orders".into(),
            kind: Kind::SuperStream,
            vhost: "/".into(),
            stream: None,
            partitions: Some(vec![PartitionDetail {
                stream: "orders-0".into(),
                binding_key: None,
                detail: empty,
            }]),
            tracking_listed: false,
            notes: vec!["the management API did not answer".into()],
        };
        let text = info_text(&info);
        assert!(
            text.starts_with(
                "super stream 'orders' in virtual host '/': 1 partitions\npartition 'orders-0'\n"
            ),
            "{text}"
        );
        assert!(text.contains("  offsets         none (empty)\n"), "{text}");
        assert!(
            text.contains("  consumers       not listed (see the note below)\n"),
            "{text}"
        );
        assert!(
            text.ends_with("note: the management API did not answer\n"),
            "{text}"
        );
    }

    #[test]
    fn a_delete_says_what_went() {
        let d = Deleted {
            name: "orders".into(),
            kind: Kind::SuperStream,
            vhost: "/".into(),
            streams: vec!["orders-0".into(), "orders-1".into()],
            exchange: Some("orders".into()),
        };
        assert_eq!(
            deleted_text(&d),
            "deleted super stream 'orders' in virtual host '/': partitions orders-0, orders-1 and exchange 'orders'\n"
        );
        let json: serde_json::Value = serde_json::from_str(&deleted_json(&d).unwrap()).unwrap();
        assert_eq!(json["command"], "streams delete");
        assert_eq!(json["kind"], "super_stream");
        assert_eq!(json["exchange"], "orders");
    }
}
