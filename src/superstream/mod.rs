//! Super streams (RabbitMQ 3.13+): one logical stream made of partition streams. This module is
//! their administration, in the broker module's style: creating one over the protocol, finding
//! its partitions, asking which partitions hold some products, the 3.13 check, and opening a
//! command's target (a stream or a super stream). The commands and engines work on a
//! `target::Target`, of which a super stream's partitions are one kind; to the engines a
//! partition is an ordinary stream.

pub use crate::target::PartitionLayout;
use std::collections::{HashMap, HashSet};

use rabbitmq_stream_client::types::ResponseCode;
use rabbitmq_stream_client::{Client, Environment};

use crate::broker::lock::{release_all, NameLock};
use crate::broker::{version_at_least, BrokerSettings, Retention, VersionProbe};
use crate::error::{ConnectError, InvError, Result};
use crate::report::Output;
use crate::routing::partition_of_product;
use crate::settings::names::{LOCK_PREFIX, MAX_NAME_BYTES};
use crate::target::{PartitionNaming, Target};

/// Partitions of a super stream created without `--partitions`.
pub const DEFAULT_PARTITIONS: u32 = 3;

/// A super stream as the broker holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperStream {
    pub name: String,
    /// The partition streams, in the broker's order (the order hash routing counts in).
    pub partitions: Vec<String>,
}

/// Connects for a super-stream command. A broker older than 3.13 has no super streams (a 3.10
/// one closes the connection on a request it does not know), so that is asked first and said
/// in one line; [`existing`] and [`ensure`] expect a broker that passed this.
pub async fn connect(broker: &BrokerSettings) -> Result<Environment> {
    check_broker_supports(broker).await?;
    broker.connect().await
}

/// Fails with one line when the broker is older than 3.13. A broker that does not answer the
/// probe is left to the connection to report.
async fn check_broker_supports(broker: &BrokerSettings) -> Result<()> {
    match VersionProbe::new(broker)?.version().await {
        Some(version) if !version_at_least(&version, 3, 13) => Err(too_old(broker, &version)),
        _ => Ok(()),
    }
}

fn too_old(broker: &BrokerSettings, version: &str) -> InvError {
    ConnectError::Client {
        message: format!(
            "the broker at {} runs RabbitMQ {version}, which has no super streams: they need RabbitMQ 3.13 or newer, e.g. the rabbitmq:4 image (the README's \"A broker\"), or use a plain stream with --stream",
            broker.addr()
        ),
    }
    .into()
}

/// A protocol connection of our own, for the requests the `Environment` does not offer,
/// through the first node that answers (as the `Environment` connects).
async fn client(broker: &BrokerSettings) -> Result<Client> {
    broker.connect_client().await
}

/// The partitions of super stream `name`, or `None` if there is no such super stream.
async fn partitions_with(client: &Client, name: &str) -> Result<Option<Vec<String>>> {
    let response = client.partitions(name.to_string()).await.map_err(|e| {
        InvError::from(ConnectError::Client {
            message: format!("asking for the partitions of super stream '{name}': {e}"),
        })
    })?;
    Ok((response.is_ok() && !response.streams.is_empty()).then_some(response.streams))
}

/// The super stream that `stream` is a partition of, if any: its name is `stream` up to one of
/// its dashes (`orders-0`, `orders-AMS-1`). Publishing straight into a partition bypasses the
/// routing its readers rely on. Asked only of brokers with super streams; a broker that cannot
/// answer is taken as saying no (this check only warns a user off).
pub async fn owner_of_partition(broker: &BrokerSettings, stream: &str) -> Option<String> {
    if !stream.contains('-') {
        return None;
    }
    match VersionProbe::new(broker).ok()?.version().await {
        Some(version) if version_at_least(&version, 3, 13) => {}
        _ => return None,
    }
    let client = client(broker).await.ok()?;
    let mut owner = None;
    for (at, _) in stream.match_indices('-') {
        let candidate = &stream[..at];
        if let Ok(Some(partitions)) = partitions_with(&client, candidate).await {
            if partitions.iter().any(|p| p == stream) {
                owner = Some(candidate.to_string());
                break;
            }
        }
    }
    let _ = client.close().await;
    owner
}

/// The partitions of an existing super stream; fails, saying how to create it, when it is
/// missing.
pub async fn existing(broker: &BrokerSettings, name: &str) -> Result<SuperStream> {
    let client = client(broker).await?;
    let partitions = partitions_with(&client, name).await;
    let _ = client.close().await;
    match partitions? {
        Some(partitions) => Ok(SuperStream {
            name: name.to_string(),
            partitions,
        }),
        None => Err(missing(broker, name)),
    }
}

/// The partitions of super stream `name`, or `None` when there is none (or the broker is older
/// than 3.13, which has no super streams).
pub async fn find(broker: &BrokerSettings, name: &str) -> Result<Option<SuperStream>> {
    match VersionProbe::new(broker)?.version().await {
        Some(version) if !version_at_least(&version, 3, 13) => return Ok(None),
        _ => {}
    }
    let client = client(broker).await?;
    let partitions = partitions_with(&client, name).await;
    let _ = client.close().await;
    Ok(partitions?.map(|partitions| SuperStream {
        name: name.to_string(),
        partitions,
    }))
}

fn missing(broker: &BrokerSettings, name: &str) -> InvError {
    ConnectError::Client {
        message: format!(
            "super stream '{name}' does not exist in virtual host '{}': create it by publishing to it (invstream produce --super-stream {name} --partitions 3) or check --super-stream",
            broker.vhost
        ),
    }
    .into()
}

/// Creates super stream `name` when it is missing, laid out as `layout` (three hash partitions
/// when `None`), with `arguments` (retention) on each partition. An existing one is used as it
/// is; when it differs from what `layout` asks, one status line says so.
pub async fn ensure(
    broker: &BrokerSettings,
    name: &str,
    layout: Option<&PartitionLayout>,
    arguments: HashMap<String, String>,
    out: Output,
) -> Result<SuperStream> {
    let client = client(broker).await?;
    let outcome = ensure_with(&client, broker, name, layout, arguments, out).await;
    let _ = client.close().await;
    outcome
}

async fn ensure_with(
    client: &Client,
    broker: &BrokerSettings,
    name: &str,
    layout: Option<&PartitionLayout>,
    arguments: HashMap<String, String>,
    out: Output,
) -> Result<SuperStream> {
    let asked = layout
        .cloned()
        .unwrap_or(PartitionLayout::Count(DEFAULT_PARTITIONS));
    // Partition leaders spread over the cluster's nodes (the default puts them all on the node
    // we are connected to): partitions over nodes are how a super stream grows.
    let mut arguments = arguments;
    arguments
        .entry("queue-leader-locator".to_string())
        .or_insert_with(|| "balanced".to_string());
    if partitions_with(client, name).await?.is_none() {
        let response = client
            .create_super_stream(
                name,
                asked.partitions(name),
                asked.binding_keys(),
                arguments,
            )
            .await
            .map_err(|e| broker.client_error(e, "creating the super stream"))?;
        match response.code() {
            ResponseCode::Ok => out.status(&format!(
                "created super stream '{name}' with partitions {}",
                asked.partitions(name).join(", ")
            )),
            // Another run created it meanwhile: used as it is, below.
            ResponseCode::StreamAlreadyExists => {}
            code => return Err(broker.refused(code, "create super", name)),
        }
    }
    let partitions = partitions_with(client, name)
        .await?
        .ok_or_else(|| missing(broker, name))?;
    // A layout asked for and not had is refused: routing by another partition count would put
    // a product's updates where its readers do not look.
    if let Some(layout) = layout {
        if layout.partitions(name) != partitions {
            return Err(InvError::usage(format!(
                "super stream '{name}' already exists with partitions {}, not as {} asks: leave that flag out to use it as it is, or pick another --super-stream",
                partitions.join(", "),
                match layout {
                    PartitionLayout::Count(n) => format!("--partitions {n}"),
                    PartitionLayout::Keys(keys) => format!("--partition-keys {}", keys.join(",")),
                }
            )));
        }
    }
    Ok(SuperStream {
        name: name.to_string(),
        partitions,
    })
}

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
            } else if let Some(owner) = owner_of_partition(broker, stream).await {
                return Err(InvError::usage(format!(
                    "stream '{stream}' is a partition of super stream '{owner}': publish with --super-stream {owner}, so each update goes to its product's partition"
                )));
            }
            Ok((env, Target::stream(stream)))
        }
        Asked::SuperStream { name, layout } => {
            let env = connect(broker).await?;
            let super_stream = ensure(broker, name, layout, arguments, out).await?;
            Ok((
                env,
                Target::super_stream(&super_stream.name, super_stream.partitions),
            ))
        }
    }
}

/// Takes producer name `name` for this run on every partition of `target` (see
/// `broker::lock`), then asks what it holds: the locks, and the last publishing id each
/// partition holds under it. On a super stream, a name that holds nothing under itself but holds
/// updates under the `NAME-PARTITION` names invstream gave partitions until December 2026 goes
/// on under those (`target.naming` becomes `Suffixed`): sent again under the shared name they
/// would be stored twice. Any run deciding this holds the shared names while it asks, so two
/// runs always agree.
pub async fn take_producer_name(
    broker: &BrokerSettings,
    env: &Environment,
    target: &mut Target,
    name: &str,
    out: Output,
) -> Result<(Vec<NameLock>, Vec<u64>)> {
    let shared = target.producer_names(name);
    let locks = broker.lock_producer_names(env, &shared).await?;
    let stored = match last_ids(broker, &shared).await {
        Ok(stored) => stored,
        Err(e) => {
            release_all(locks).await;
            return Err(e);
        }
    };
    let suffixed = target.suffixed_producer_names(name);
    // Names that did not fit the broker were refused then, so never used.
    let usable = suffixed
        .iter()
        .all(|(producer, _)| LOCK_PREFIX.len() + producer.len() <= MAX_NAME_BYTES);
    if suffixed.is_empty() || !usable || stored.iter().any(|id| *id > 0) {
        return Ok((locks, stored));
    }
    match last_ids(broker, &suffixed).await {
        Ok(held) if held.iter().all(|id| *id == 0) => return Ok((locks, stored)),
        Ok(_) => {}
        Err(e) => {
            release_all(locks).await;
            return Err(e);
        }
    }
    let taken = broker.lock_producer_names(env, &suffixed).await;
    release_all(locks).await;
    let taken = taken?;
    target.naming = PartitionNaming::Suffixed;
    out.status(&format!(
        "producer '{name}' holds updates under per-partition names ({}, as invstream named them until December 2026): going on under those",
        suffixed[0].0
    ));
    // Asked again now that they are held: an older run may have published until then.
    match last_ids(broker, &suffixed).await {
        Ok(stored) => Ok((taken, stored)),
        Err(e) => {
            release_all(taken).await;
            Err(e)
        }
    }
}

/// The last publishing id of each (producer name, stream) in `names`, 0 where none.
async fn last_ids(broker: &BrokerSettings, names: &[(String, String)]) -> Result<Vec<u64>> {
    let mut ids = Vec::with_capacity(names.len());
    for (producer, stream) in names {
        ids.push(
            broker
                .while_starting(|| broker.last_publishing_id(producer, stream))
                .await?,
        );
    }
    Ok(ids)
}

/// The partitions that hold `products`: by hash routing when the partitions are the hash
/// layout (`NAME-0` … `NAME-(N-1)`), every partition otherwise (a key-routed super stream).
pub fn partitions_holding(super_stream: &SuperStream, products: &[u64]) -> Vec<String> {
    let count = super_stream.partitions.len() as u32;
    let hash_layout = super_stream
        .partitions
        .iter()
        .enumerate()
        .all(|(i, p)| *p == format!("{}-{i}", super_stream.name));
    if products.is_empty() || !hash_layout {
        return super_stream.partitions.clone();
    }
    let wanted: HashSet<usize> = products
        .iter()
        .map(|p| partition_of_product(*p, count) as usize)
        .collect();
    super_stream
        .partitions
        .iter()
        .enumerate()
        .filter(|(i, _)| wanted.contains(i))
        .map(|(_, p)| p.clone())
        .collect()
}

/// Deletes super stream `name` and its partitions (a benchmark's own, when it ends).
pub async fn delete(broker: &BrokerSettings, name: &str) -> Result<()> {
    let client = client(broker).await?;
    let result = client.delete_super_stream(name).await;
    let _ = client.close().await;
    match result {
        Ok(response) if response.code() == &ResponseCode::Ok => Ok(()),
        Ok(response) => Err(broker.refused(response.code(), "delete super", name)),
        Err(e) => Err(broker.client_error(e, "deleting the super stream")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_after_their_binding_keys() {
        assert_eq!(
            PartitionLayout::Count(3).partitions("orders"),
            ["orders-0", "orders-1", "orders-2"]
        );
        let keys = PartitionLayout::Keys(vec!["AMS-1".into(), "BER-2".into()]);
        assert_eq!(keys.binding_keys(), ["AMS-1", "BER-2"]);
        assert_eq!(keys.partitions("orders"), ["orders-AMS-1", "orders-BER-2"]);
    }

    fn super_stream(partitions: &[&str]) -> SuperStream {
        SuperStream {
            name: "s".into(),
            partitions: partitions.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn products_pick_their_partition_in_the_hash_layout_only() {
        let hashed = super_stream(&["s-0", "s-1", "s-2"]);
        // routing.rs pins product 1 to partition 2 and 42 to partition 0 of three.
        assert_eq!(partitions_holding(&hashed, &[1]), ["s-2"]);
        assert_eq!(partitions_holding(&hashed, &[42, 1]), ["s-0", "s-2"]);
        assert_eq!(partitions_holding(&hashed, &[]).len(), 3);
        let keyed = super_stream(&["s-AMS-1", "s-BER-2"]);
        assert_eq!(partitions_holding(&keyed, &[1]).len(), 2);
    }
}
