//! Where a stream's leader is, asked of every node at once: how a watchdog tells a leader that
//! hangs (its connection open and silent) from one that has been replaced elsewhere, and which
//! node a reconnect should try first.

use std::time::Duration;

use futures::future::join_all;

use super::BrokerSettings;

/// How long one node may take to name a stream's leader. During a cluster's failure detection
/// the live nodes' answers hang too (until the paused node is declared down), so a probe must
/// not wait on any one node for long: it is asked again at the next tick.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One node's answer: the node asked, the leader it names and the replicas (`host:port`, as
/// advertised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderNamed {
    pub asked: String,
    pub leader: String,
    pub replicas: Vec<String>,
}

impl LeaderNamed {
    /// Whether `node` is among the stream's members in this answer.
    pub fn lists(&self, node: &str) -> bool {
        self.leader == node || self.replicas.iter().any(|replica| replica == node)
    }
}

impl BrokerSettings {
    /// Asks each node (`--uri`) at once which node leads `stream`, each within `PROBE_TIMEOUT`:
    /// the answers of the nodes that gave one in time. Nodes that hang, refuse or know no
    /// leader are left out.
    pub async fn leaders_named(&self, stream: &str) -> Vec<LeaderNamed> {
        let asks = self.each_node().into_iter().map(|node| async move {
            let ask = async {
                let client = node.connect_client().await.ok()?;
                let answer = client.metadata(vec![stream.to_string()]).await;
                // Closing waits for the broker's reply: never on this path.
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(PROBE_TIMEOUT, client.close()).await;
                });
                let metadata = answer.ok()?.remove(stream)?;
                let addr = |broker: &rabbitmq_stream_client::types::Broker| {
                    format!("{}:{}", broker.host, broker.port)
                };
                Some(LeaderNamed {
                    asked: node.addr(),
                    leader: addr(&metadata.leader),
                    replicas: metadata.replicas.iter().map(addr).collect(),
                })
            };
            tokio::time::timeout(PROBE_TIMEOUT, ask)
                .await
                .ok()
                .flatten()
        });
        join_all(asks).await.into_iter().flatten().collect()
    }

    /// These settings with the nodes reordered for a reconnect: `first` (a node that was
    /// named leader) before the others, `last` (a node suspected of hanging) after them, so a
    /// hung node's handshake timeout is paid only when nothing else answers. A node matches a
    /// `host:port` exactly, or by port alone when the address was advertised under another
    /// name (`localhost` for `127.0.0.1`) and only one node has that port.
    pub fn preferring(&self, first: Option<&str>, last: Option<&str>) -> BrokerSettings {
        let nodes: Vec<(String, u16)> = self
            .each_node()
            .into_iter()
            .map(|node| (node.host, node.port))
            .collect();
        let position = |addr: Option<&str>| addr.and_then(|addr| matching_node(&nodes, addr));
        let (first, last) = (position(first), position(last));
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(
            |index| match (Some(*index) == first, Some(*index) == last) {
                (true, _) => 0,
                (false, false) => 1,
                (false, true) => 2,
            },
        );
        let mut ordered = order.into_iter().map(|index| nodes[index].clone());
        let (host, port) = ordered.next().expect("there is at least one node");
        BrokerSettings {
            host,
            port,
            other_nodes: ordered.collect(),
            ..self.clone()
        }
    }
}

/// Which of `nodes` is `addr` (`host:port`): the one with both equal, else the only one with
/// that port.
fn matching_node(nodes: &[(String, u16)], addr: &str) -> Option<usize> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Some(exact) = nodes.iter().position(|(h, p)| h == host && *p == port) {
        return Some(exact);
    }
    let mut same_port = nodes.iter().enumerate().filter(|(_, (_, p))| *p == port);
    match (same_port.next(), same_port.next()) {
        (Some((index, _)), None) => Some(index),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::TlsFiles;

    fn cluster(nodes: &str) -> BrokerSettings {
        let uris: Vec<String> = nodes
            .split(',')
            .map(|node| format!("rabbitmq-stream://guest:guest@{node}/%2f"))
            .collect();
        BrokerSettings::new(&uris, None, &TlsFiles::default(), Duration::from_secs(60)).unwrap()
    }

    fn order(settings: &BrokerSettings) -> Vec<String> {
        settings
            .each_node()
            .iter()
            .map(BrokerSettings::addr)
            .collect()
    }

    #[test]
    fn the_named_leader_goes_first_and_the_suspect_last() {
        let nodes = cluster("10.0.0.1:5552,10.0.0.2:5552,10.0.0.3:5552");
        let moved = nodes.preferring(Some("10.0.0.3:5552"), Some("10.0.0.1:5552"));
        assert_eq!(
            order(&moved),
            ["10.0.0.3:5552", "10.0.0.2:5552", "10.0.0.1:5552"]
        );
        let suspect_only = nodes.preferring(None, Some("10.0.0.1:5552"));
        assert_eq!(
            order(&suspect_only),
            ["10.0.0.2:5552", "10.0.0.3:5552", "10.0.0.1:5552"]
        );
        assert_eq!(order(&nodes.preferring(None, None)), order(&nodes));
    }

    #[test]
    fn an_advertised_name_matches_by_its_unique_port() {
        let nodes = cluster("127.0.0.1:5561,127.0.0.1:5562,127.0.0.1:5563");
        let moved = nodes.preferring(Some("localhost:5562"), Some("localhost:5561"));
        assert_eq!(
            order(&moved),
            ["127.0.0.1:5562", "127.0.0.1:5563", "127.0.0.1:5561"]
        );
        // An unknown node changes nothing.
        assert_eq!(
            order(&nodes.preferring(Some("elsewhere:9999"), None)),
            order(&nodes)
        );
    }
}
