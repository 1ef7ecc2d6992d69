//! A super stream of the test's own, on the test broker or on a cluster's nodes.

use std::process::{Command, Output, Stdio};

use rabbitmq_stream_client::types::Message;
use rabbitmq_stream_client::{Client, ClientOptions, Environment};

use super::{binary, require_broker, runtime, summary_of, unique_name, BROKER_PORT};

/// A super stream of the test's own, on the test broker or on given nodes (a cluster); deleted,
/// with its partitions, on drop.
pub struct TestSuperStream {
    pub name: String,
    /// The stream ports of the nodes to go through, in order (the test broker's alone by default).
    ports: Vec<u16>,
}

impl TestSuperStream {
    /// On the test broker.
    pub fn new(purpose: &str) -> Self {
        require_broker(BROKER_PORT);
        Self::on_nodes(&format!("ss-{purpose}"), &[BROKER_PORT])
    }

    /// On the nodes whose stream ports are `ports` (the caller checks they are up).
    pub fn on_nodes(purpose: &str, ports: &[u16]) -> Self {
        TestSuperStream {
            name: unique_name(purpose),
            ports: ports.to_vec(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn partition(&self, index: usize) -> String {
        format!("{}-{index}", self.name)
    }

    /// `invstream --uri (every node, the one on `first_port` first) --json ARGS…`
    pub fn command_via(&self, first_port: u16, args: &[&str]) -> Command {
        let mut ports = vec![first_port];
        ports.extend(self.ports.iter().filter(|p| **p != first_port));
        let uris: Vec<String> = ports
            .iter()
            .map(|p| format!("rabbitmq-stream://guest:guest@localhost:{p}/%2f"))
            .collect();
        let mut command = Command::new(binary());
        command
            .args(["--uri", &uris.join(","), "--json"])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// `invstream --json ARGS… --super-stream NAME`, to start.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_via(
            self.ports[0],
            &[args, &["--super-stream", &self.name]].concat(),
        )
    }

    /// `invstream --json ARGS… --super-stream NAME`, waited for.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .expect("the invstream binary runs")
    }

    /// As `run`, its summary (panics, with stderr, if it failed).
    pub fn run_json(&self, args: &[&str]) -> serde_json::Value {
        summary_of(&self.run(args))
    }

    /// Publishes `count` updates over `partitions` partitions; all must be confirmed.
    pub fn produce(&self, count: u64, partitions: u32) -> serde_json::Value {
        let summary = self.run_json(&[
            "produce",
            "--count",
            &count.to_string(),
            "--partitions",
            &partitions.to_string(),
        ]);
        assert_eq!(summary["confirmed"], count, "{summary}");
        summary
    }

    /// A protocol connection through the first node that takes one.
    async fn client(&self) -> Option<Client> {
        for port in &self.ports {
            let options = ClientOptions::builder().port(*port).build();
            if let Ok(client) = Client::connect(options).await {
                return Some(client);
            }
        }
        None
    }

    /// The last publishing id each of the first `partitions` partitions holds for producer
    /// `name` (every partition publishes under the run's name), 0 where none.
    pub fn sequences(&self, name: &str, partitions: usize) -> Vec<u64> {
        (0..partitions)
            .map(|index| {
                self.publisher_sequence(name, &self.partition(index))
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Publishes `count` messages to `partition` as producer `producer`, with publishing ids
    /// 1…`count`, confirmed: what a run under that name left there.
    pub fn publish_as(&self, producer: &str, partition: &str, count: u64) {
        runtime().block_on(async {
            let env = Environment::builder()
                .port(self.ports[0])
                .build()
                .await
                .expect("connects to the broker");
            let mut sender = env
                .producer()
                .name(producer)
                .build(partition)
                .await
                .expect("a producer on the partition");
            let messages = (1..=count)
                .map(|id| {
                    Message::builder()
                        .body(format!("{{\"id\":{id}}}"))
                        .publishing_id(id)
                        .build()
                })
                .collect();
            let confirms = sender
                .batch_send_with_confirm(messages)
                .await
                .expect("the broker confirms");
            assert!(confirms.iter().all(|c| c.confirmed()), "all confirmed");
            let _ = sender.close().await;
        });
    }

    /// The last publishing id the broker stored for `producer` on `partition`.
    pub fn publisher_sequence(&self, producer: &str, partition: &str) -> Option<u64> {
        runtime().block_on(async {
            let client = self.client().await?;
            let sequence = client.query_publisher_sequence(producer, partition).await;
            let _ = client.close().await;
            sequence.ok()
        })
    }

    /// Stores `offset` for consumer `name` on `partition`, as a named reader would, and waits
    /// until the broker holds it (the request has no answer). The broker writes it into the
    /// partition as an offset-tracking entry, which takes an offset of its own.
    pub fn store_offset(&self, name: &str, partition: &str, offset: u64) {
        runtime().block_on(async {
            let client = self.client().await.expect("a connection to the broker");
            client
                .store_offset(name, partition, offset)
                .await
                .expect("the broker takes the offset");
            let _ = client.close().await;
        });
        super::wait_until("the broker stores the offset", || {
            self.stored_offset(name, partition) == Some(offset)
        });
    }

    /// The offset the broker stores for consumer `name` on `partition`.
    pub fn stored_offset(&self, name: &str, partition: &str) -> Option<u64> {
        runtime().block_on(async {
            let client = self.client().await?;
            let offset = client.query_offset(name.to_string(), partition).await;
            let _ = client.close().await;
            offset.ok()
        })
    }
}

impl Drop for TestSuperStream {
    fn drop(&mut self) {
        runtime().block_on(async {
            if let Some(client) = self.client().await {
                let _ = client.delete_super_stream(&self.name).await;
                let _ = client.close().await;
            }
        });
    }
}
