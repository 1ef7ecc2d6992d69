//! Brokers a test can break: a RabbitMQ node of its own (`scripts/broker.sh node-up`) to stop,
//! crash, pause and restart, the test CA for TLS nodes, and a TCP proxy that cuts connections.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use rabbitmq_stream_client::{Client, ClientOptions, Environment};

use super::{runtime, wait_until, TestStream};

/// A RabbitMQ node of one test's own (`scripts/broker.sh node-up`), which the test may stop,
/// crash, pause and restart without disturbing the others; stopped and deleted on drop.
pub struct BrokerNode {
    pub name: String,
    pub port: u16,
}

impl BrokerNode {
    /// Starts node `name` with its stream port on `port` (and a TLS listener on `tls_port`).
    pub fn start(name: &str, port: u16, tls_port: Option<u16>) -> Self {
        let node = BrokerNode {
            name: name.to_string(),
            port,
        };
        let port = port.to_string();
        let tls_port = tls_port.map(|p| p.to_string());
        let mut args = vec!["node-up", name, &port];
        args.extend(tls_port.as_deref());
        node.script(&args);
        node
    }

    /// As `start`, with a TLS listener on `tls_port` that refuses clients without a certificate
    /// the test CA signed (`ssl_options.fail_if_no_peer_cert = true`).
    pub fn start_requiring_client_cert(name: &str, port: u16, tls_port: u16) -> Self {
        let node = BrokerNode {
            name: name.to_string(),
            port,
        };
        let (port, tls_port) = (port.to_string(), tls_port.to_string());
        node.script(&["node-up", name, &port, &tls_port, "require-client-cert"]);
        node
    }

    /// As `start`, telling clients to use stream port `advertised_port` instead of its own (a
    /// `TcpProxy::on(advertised_port, port)` in front of it): a client's producer and consumer
    /// connections, made to the advertised leader, then go through that proxy too.
    pub fn start_advertising(name: &str, port: u16, advertised_port: u16) -> Self {
        let node = BrokerNode {
            name: name.to_string(),
            port,
        };
        let advertised = advertised_port.to_string();
        node.script_with_env(
            &["node-up", name, &port.to_string()],
            &[("ADVERTISED_PORT", &advertised)],
        );
        node
    }

    /// `--uri` for this node.
    pub fn uri(&self) -> String {
        format!("rabbitmq-stream://guest:guest@localhost:{}/%2f", self.port)
    }

    /// Declares a stream on this node with the client crate and returns once it survives a
    /// crash of the node. A stream declared a moment before a SIGKILL can come back listed but
    /// never available again ("not available yet" for the whole --retry-for). First the node
    /// must report the stream's writer (`rabbitmq-streams stream_status`); that is not enough
    /// (broker_crash_during_produce failed 2 of 2 runs killing right after it), and nothing seen
    /// from outside says when it is: the metadata files (LATEST.LOG, the coordinator's WAL, the
    /// segment) hold the stream at once and do not change after. So 2 s more, as before: with
    /// them it passed every run.
    pub fn create_stream(&self, name: &str) {
        runtime().block_on(async {
            let env = Environment::builder()
                .port(self.port)
                .build()
                .await
                .expect("connects to the node");
            env.stream_creator()
                .create(name)
                .await
                .expect("creates the stream");
        });
        wait_until(
            &format!("node {} to report stream {name}'s writer", self.name),
            || self.stream_has_writer(name),
        );
        // No signal for "crash-safe" (see above): time is the only one that held.
        std::thread::sleep(Duration::from_secs(2));
    }

    /// A stream of the test's own, declared on this node (`create_stream`).
    pub fn stream(&self, purpose: &str) -> TestStream {
        let stream = TestStream::new(purpose);
        self.create_stream(&stream.name);
        stream
    }

    /// Whether `rabbitmq-streams stream_status` on this node lists a writer for stream `name`.
    fn stream_has_writer(&self, name: &str) -> bool {
        let output = self.ctl(
            "rabbitmq-streams",
            &[
                "-q",
                "-n",
                &self.name,
                "--formatter",
                "json",
                "stream_status",
                name,
            ],
        );
        output.status.success()
            && serde_json::from_slice::<serde_json::Value>(&output.stdout).is_ok_and(|members| {
                members
                    .as_array()
                    .is_some_and(|m| m.iter().any(|member| member["role"] == "writer"))
            })
    }

    /// The last publishing id this node stores for `producer` on `stream` (None while it has
    /// none, or the node does not answer).
    pub fn publisher_sequence(&self, producer: &str, stream: &str) -> Option<u64> {
        runtime().block_on(async {
            let options = ClientOptions::builder().port(self.port).build();
            let client = Client::connect(options).await.ok()?;
            let sequence = client.query_publisher_sequence(producer, stream).await;
            let _ = client.close().await;
            sequence.ok()
        })
    }

    /// Runs one of RabbitMQ's tools (`rabbitmqctl`, `rabbitmq-streams`, `rabbitmq-diagnostics`)
    /// against this node, in its environment (`scripts/broker.sh`'s `node_env`).
    pub fn ctl(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let tool = format!("/usr/lib/rabbitmq/bin/{tool}");
        Command::new("bash")
            .args([
                "-c",
                r#"source "$1"; node_env "$2" "${@:3}""#,
                "invstream-test",
                concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh"),
                &self.name,
                &tool,
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("bash runs scripts/broker.sh's node_env")
    }

    /// Runs `scripts/broker.sh ACTION NAME`: node-stop, node-start, node-kill, node-pause…
    pub fn act(&self, action: &str) {
        self.script(&[action, &self.name]);
    }

    fn script(&self, args: &[&str]) {
        self.script_with_env(args, &[]);
    }

    fn script_with_env(&self, args: &[&str], env: &[(&str, &str)]) {
        let output = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("bash runs scripts/broker.sh");
        assert!(
            output.status.success(),
            "scripts/broker.sh {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for BrokerNode {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh"))
            .args(["node-down", &self.name])
            .output();
    }
}

/// The directory of the test CA and certificates (`scripts/broker.sh tls-certs`).
pub fn tls_dir() -> PathBuf {
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker.sh"))
        .arg("tls-certs")
        .output()
        .expect("bash runs scripts/broker.sh");
    assert!(
        output.status.success(),
        "scripts/broker.sh tls-certs failed"
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

pub struct TcpProxy {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// While set, each new connection is accepted and closed at once (a broker that is away).
    refusing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Both ends of every connection forwarded so far, so `sever` can cut the live ones.
    live: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    /// A proxy listening on `port` (0: any free one).
    pub fn on(port: u16, target_port: u16) -> Self {
        use std::sync::atomic::AtomicBool;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let refusing = std::sync::Arc::new(AtomicBool::new(false));
        let live = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stopped, refused, forwarded) = (stop.clone(), refusing.clone(), live.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) if refused.load(Ordering::Relaxed) => {
                        let _ = client.shutdown(std::net::Shutdown::Both);
                    }
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                            continue;
                        };
                        client.set_nonblocking(false).unwrap();
                        let mut live = forwarded.lock().unwrap();
                        live.push(client.try_clone().unwrap());
                        live.push(server.try_clone().unwrap());
                        for (mut from, mut to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                            });
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TcpProxy {
            port,
            stop,
            refusing,
            live,
        }
    }

    /// Stops accepting: new connections are refused from now on.
    pub fn cut(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Closes every connection forwarded so far (both ends), as a broker that goes away does.
    pub fn sever(&self) {
        for connection in self.live.lock().unwrap().drain(..) {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
    }

    /// While `refusing`, new connections are closed as soon as they are accepted; after, they
    /// are forwarded again.
    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::Relaxed);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
