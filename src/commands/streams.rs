//! `invstream streams list|info|delete`: settings → broker queries (the stream protocol, and the
//! management HTTP API for what the protocol cannot list) → a `catalog` model that `report`
//! renders. `list` needs the management API; `info` shows what the protocol gives without it;
//! `delete` uses the protocol alone (a super stream's partitions and exchange go together).

use std::io::{BufRead, IsTerminal, Write};

use crate::broker::{BrokerSettings, Management};
use crate::catalog::{
    self, Deleted, Kind, PartitionDetail, ProducerSequence, StoredOffset, StreamDetail, StreamInfo,
    StreamList,
};
use crate::error::{InvError, Result, StreamError};
use crate::settings::{StreamsSettings, StreamsTask};
use crate::superstream;

/// What a `streams` command found or did.
#[derive(Debug)]
pub enum Outcome {
    List(StreamList),
    Info(Box<StreamInfo>),
    Deleted(Deleted),
    /// Asked on a terminal, the user said no.
    Declined,
}

pub async fn run(broker: &BrokerSettings, settings: &StreamsSettings) -> Result<Outcome> {
    let management = &settings.management;
    Ok(match &settings.action {
        StreamsTask::List => Outcome::List(list(management).await?),
        StreamsTask::Info {
            name,
            consumers,
            producers,
        } => Outcome::Info(Box::new(
            info(broker, management, name, consumers, producers).await?,
        )),
        StreamsTask::Delete { name, yes } => match delete(broker, name, *yes).await? {
            Some(deleted) => Outcome::Deleted(deleted),
            None => Outcome::Declined,
        },
    })
}

/// Every stream and super stream, from the management API (the protocol cannot list them).
async fn list(management: &Management) -> Result<StreamList> {
    let (queues, super_streams, bindings) = tokio::try_join!(
        management.streams(),
        management.super_streams(),
        management.bindings()
    )?;
    Ok(catalog::list(
        management.vhost(),
        &management.to_string(),
        queues,
        &super_streams,
        &bindings,
    ))
}

/// A stream or a super stream as the broker holds it now.
enum Found {
    Stream,
    SuperStream(Vec<String>),
}

/// What `name` is: a super stream (asked first: its partitions are streams too), a stream, or
/// nothing, which is an error saying so.
async fn find(
    broker: &BrokerSettings,
    management: Option<&Management>,
    name: &str,
) -> Result<Found> {
    if let Some(s) = superstream::find(broker, name).await? {
        return Ok(Found::SuperStream(s.partitions));
    }
    if broker.stream_members(name).await?.is_some() {
        return Ok(Found::Stream);
    }
    // A stream between leaders is missing from the protocol's metadata, not from the API.
    if let Some(m) = management {
        if let Ok(Some(_)) = m.stream(name).await {
            return Ok(Found::Stream);
        }
    }
    Err(StreamError::NoSuchName {
        name: name.to_string(),
        vhost: broker.vhost.clone(),
    }
    .into())
}

/// What the management API could say for one stream.
#[derive(Default)]
struct FromManagement {
    detail: StreamDetail,
    tracking: Option<crate::broker::management::Tracking>,
}

async fn info(
    broker: &BrokerSettings,
    management: &Management,
    name: &str,
    consumers: &[String],
    producers: &[String],
) -> Result<StreamInfo> {
    let mut notes = Vec::new();
    // One question first: is the API there at all? Without it, the protocol's answers stand.
    let api = match management.stream(name).await {
        Ok(_) => Some(management),
        Err(e) => {
            notes.push(format!(
                "{e}; shown without it: no message counts, segments or binding keys, and only the consumer and producer names given with --consumer and --producer"
            ));
            None
        }
    };
    let found = find(broker, api, name).await?;
    let (kind, streams) = match &found {
        Found::Stream => (Kind::Stream, vec![name.to_string()]),
        Found::SuperStream(partitions) => (Kind::SuperStream, partitions.clone()),
    };
    let keys = match (&found, api) {
        (Found::SuperStream(_), Some(m)) => m.bindings_of(name).await?.unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut from_api = Vec::new();
    let mut tracking_listed = api.is_some();
    for stream in &streams {
        let mut got = FromManagement::default();
        if let Some(m) = api {
            if let Some(q) = m.stream(stream).await? {
                got.detail.messages = q.messages;
                got.detail.segments = q.segments;
                got.detail.leader_node = q.leader;
                got.detail.members = q.members;
            }
            if tracking_listed {
                got.tracking = m.tracking(stream).await?;
                if got.tracking.is_none() {
                    tracking_listed = false;
                    notes.push(format!(
                        "the management API at {m} does not list the names a stream tracks (GET /api/stream/VHOST/STREAM/tracking, from the rabbitmq_stream_management plugin, RabbitMQ 3.13+): only the names given with --consumer and --producer are shown; to list them all, rabbitmq-plugins enable rabbitmq_stream_management"
                    ));
                }
            }
        }
        from_api.push(got);
    }
    let details =
        // A super stream's partitions each publish under the run's name (as the Java client's).
        futures::future::try_join_all(streams.iter().zip(from_api).map(|(stream, got)| {
            detail(broker, stream, got, consumers.to_vec(), producers.to_vec())
        }))
        .await?;
    let (stream, partitions) = match kind {
        Kind::Stream => (details.into_iter().next(), None),
        Kind::SuperStream => {
            let partitions = streams
                .iter()
                .zip(details)
                .map(|(stream, detail)| PartitionDetail {
                    stream: stream.clone(),
                    binding_key: keys
                        .iter()
                        .find(|b| &b.destination == stream)
                        .map(|b| b.routing_key.clone()),
                    detail,
                })
                .collect();
            (None, Some(partitions))
        }
    };
    Ok(StreamInfo {
        name: name.to_string(),
        kind,
        vhost: broker.vhost.clone(),
        stream,
        partitions,
        tracking_listed,
        notes,
    })
}

/// One stream's details: the management API's part (`got`) and the stream protocol's
/// (members, bounds, the values of names not listed).
async fn detail(
    broker: &BrokerSettings,
    stream: &str,
    got: FromManagement,
    consumers: Vec<String>,
    producers: Vec<String>,
) -> Result<StreamDetail> {
    let mut detail = got.detail;
    let tracking = got.tracking.unwrap_or_default();
    let (members, bounds) =
        tokio::try_join!(broker.stream_members(stream), broker.stream_bounds(stream))?;
    if let Some(members) = members {
        detail.leader = Some(members.leader);
        detail.replicas = members.replicas;
    }
    if let Some(bounds) = bounds {
        detail.first_offset = Some(bounds.first_offset);
        detail.committed_chunk_id = Some(bounds.committed_chunk_id);
        detail.last_offset = Some(bounds.last_offset);
    }
    for (name, listed) in catalog::tracked_names(&tracking.offsets, &consumers) {
        let offset = match listed {
            Some(offset) => Some(offset),
            None => broker.stored_offset(&name, stream).await?,
        };
        detail.consumers.push(StoredOffset { name, offset });
    }
    for (name, listed) in catalog::tracked_names(&tracking.writers, &producers) {
        let last_publishing_id = match listed {
            Some(id) => id,
            None => broker.last_publishing_id(&name, stream).await?,
        };
        detail.producers.push(ProducerSequence {
            name,
            last_publishing_id,
        });
    }
    Ok(detail)
}

/// Deletes `name` once confirmed; `None` when the user declined.
async fn delete(broker: &BrokerSettings, name: &str, yes: bool) -> Result<Option<Deleted>> {
    let found = find(broker, None, name).await?;
    let (kind, streams, exchange) = match found {
        Found::Stream => (Kind::Stream, vec![name.to_string()], None),
        Found::SuperStream(partitions) => (Kind::SuperStream, partitions, Some(name.to_string())),
    };
    let what = match kind {
        Kind::Stream => format!("stream '{name}' in virtual host '{}'", broker.vhost),
        Kind::SuperStream => format!(
            "super stream '{name}' in virtual host '{}' with its partitions ({}) and its exchange",
            broker.vhost,
            streams.join(", ")
        ),
    };
    if !yes && !confirmed(&what)? {
        return Ok(None);
    }
    match kind {
        Kind::Stream => broker.delete_stream(name).await?,
        Kind::SuperStream => superstream::delete(broker, name).await?,
    }
    Ok(Some(Deleted {
        name: name.to_string(),
        kind,
        vhost: broker.vhost.clone(),
        streams,
        exchange,
    }))
}

/// Asks on the terminal whether to delete `what`; without a terminal to ask on (stdin or
/// stderr redirected), refuses: a script must say `--yes`.
fn confirmed(what: &str) -> Result<bool> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(InvError::usage(format!(
            "not deleting {what}: stdin or stderr is not a terminal, so invstream cannot ask; add --yes to delete it"
        )));
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "invstream: delete {what}? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| InvError::Input(format!("cannot read the answer from stdin: {e}")))?;
    Ok(is_yes(&answer))
}

/// `y` or `yes`, in any case; anything else (an empty line, end of input) is no.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_y_or_yes_deletes() {
        for yes in ["y\n", "Y", " yes \n", "YES"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yep", "ja"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }
}
