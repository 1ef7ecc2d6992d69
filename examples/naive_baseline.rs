//! The baseline invstream is measured against: rabbitmq-stream-client used the way its README
//! and `examples/batch_send.rs` show, on the same inventory updates. Produce: `batch_send` of
//! 1,000 messages, a callback per confirm, then wait for all confirms. Consume: read from
//! `first`, parse each body as a `serde_json::Value`.
//!
//! `ceiling` produces like `produce` but sends one pre-built body over and over: the least a
//! client can do per message, so its throughput is what the broker allows (issue 4's "broker
//! ceiling").
//!
//! Timed as invstream times its runs, so `elapsed_s` and `msg_per_s` compare like for like:
//! - produce and ceiling: from just before the first batch is built and sent, once the
//!   connection is open, the stream declared and the producer built (invstream's clock starts
//!   when `Publisher::open` has built its producer), to the last confirm (taken in the confirm
//!   callback that brings the count to COUNT; invstream stops at the last confirm too). Closing
//!   the producer and the connection is outside it.
//! - consume: from the moment the subscription exists (the consumer is built; invstream's
//!   reader starts its clock right after subscribing) to the last message read and parsed.
//!   Closing is outside it.
//!
//! `wall_s` is the whole process as far as it can see itself: from the first line of `main`
//! (before the async runtime is built) to just before printing, connection set-up and closing
//! included. `scripts/bench-compare.sh` also takes each process's wall time from
//! `/usr/bin/time`, for invstream and the baseline alike.
//!
//! `cargo run --release --example naive_baseline -- produce|ceiling|consume STREAM [COUNT]`
//! prints one JSON object: {"mode", "messages", "elapsed_s", "msg_per_s", "wall_s"}.
//! `delete STREAM` / `delete-super SUPER_STREAM`
//! deletes a stream, or a super stream and its partitions (scripts/bench-compare.sh cleans up
//! with it: gigabytes of streams left on disk slow every later run down).
//!
//! Environment, for measuring beside other brokers and deduplication (issue 25), both unset by
//! default so the baseline is unchanged: `NAIVE_BASELINE_PORT` (stream port of the broker on
//! localhost, default 5552) and `NAIVE_BASELINE_PRODUCER_NAME` (produce and ceiling: build the
//! producer with `.name(...)`, so the broker deduplicates under that name and the client
//! numbers publishing ids from after the broker's last one for it; default: no name).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use invstream::model::{now_us, UpdateGenerator};
use rabbitmq_stream_client::error::ProducerPublishError;
use rabbitmq_stream_client::types::{Message, OffsetSpecification};
use rabbitmq_stream_client::{ConfirmationStatus, Dedup, Environment, NoDedup, Producer};

/// The producer without a name (the default) or with one (`NAIVE_BASELINE_PRODUCER_NAME`):
/// the client types them apart, so `produce` goes through this.
enum AnyProducer {
    Plain(Producer<NoDedup>),
    Named(Producer<Dedup>),
}

impl AnyProducer {
    async fn batch_send<Fut>(
        &mut self,
        messages: Vec<Message>,
        cb: impl Fn(Result<ConfirmationStatus, ProducerPublishError>) -> Fut + Send + Sync + 'static,
    ) -> Result<(), ProducerPublishError>
    where
        Fut: std::future::Future<Output = ()> + Send + Sync + 'static,
    {
        match self {
            AnyProducer::Plain(p) => p.batch_send(messages, cb).await,
            AnyProducer::Named(p) => p.batch_send(messages, cb).await,
        }
    }

    async fn close(self) -> Result<(), rabbitmq_stream_client::error::ProducerCloseError> {
        match self {
            AnyProducer::Plain(p) => p.close().await,
            AnyProducer::Named(p) => p.close().await,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let process_start = Instant::now();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(process_start))
}

async fn run(process_start: Instant) -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: naive_baseline produce|ceiling|consume|delete|delete-super STREAM [COUNT]";
    let mode = args.get(1).ok_or(usage)?.clone();
    let stream = args.get(2).ok_or(usage)?.clone();
    let count: u64 = args
        .get(3)
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(100_000);
    let mut builder = Environment::builder();
    if let Ok(port) = std::env::var("NAIVE_BASELINE_PORT") {
        builder = builder.port(port.parse()?);
    }
    let environment = builder.build().await?;
    if mode == "delete" {
        environment.delete_stream(&stream).await?;
        return Ok(());
    }
    if mode == "delete-super" {
        environment.delete_super_stream(&stream).await?;
        return Ok(());
    }

    let elapsed: Duration = match mode.as_str() {
        "produce" | "ceiling" => {
            let _ = environment.stream_creator().create(&stream).await;
            let mut producer = match std::env::var("NAIVE_BASELINE_PRODUCER_NAME") {
                Ok(name) => {
                    AnyProducer::Named(environment.producer().name(&name).build(&stream).await?)
                }
                Err(_) => AnyProducer::Plain(environment.producer().build(&stream).await?),
            };
            let confirmed = Arc::new(AtomicU64::new(0));
            // Set by the confirm callback that brings the count to `count`.
            let last_confirm: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
            let mut generator = UpdateGenerator::new(1_000, 1);
            let prebuilt = Message::builder()
                .body(serde_json::to_vec(&generator.next_update(now_us())).unwrap())
                .build();
            // The clock starts here: connection, stream and producer are ready; building the
            // first batch is inside it, as invstream's is.
            let started = Instant::now();
            let mut sent = 0;
            while sent < count {
                let size = (count - sent).min(1_000);
                let messages: Vec<Message> = (0..size)
                    .map(|_| match mode.as_str() {
                        "ceiling" => prebuilt.clone(),
                        _ => {
                            let update = generator.next_update(now_us());
                            Message::builder()
                                .body(serde_json::to_vec(&update).unwrap())
                                .build()
                        }
                    })
                    .collect();
                let (confirmed, last_confirm) = (confirmed.clone(), last_confirm.clone());
                producer
                    .batch_send(messages, move |status| {
                        let (confirmed, last_confirm) = (confirmed.clone(), last_confirm.clone());
                        async move {
                            if status.is_ok()
                                && confirmed.fetch_add(1, Ordering::Relaxed) + 1 == count
                            {
                                *last_confirm.lock().unwrap() = Some(Instant::now());
                            }
                        }
                    })
                    .await?;
                sent += size;
            }
            let last = loop {
                if let Some(at) = *last_confirm.lock().unwrap() {
                    break at;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            producer.close().await?;
            last - started
        }
        "consume" => {
            let mut consumer = environment
                .consumer()
                .offset(OffsetSpecification::First)
                .build(&stream)
                .await?;
            // Subscribed: the clock starts here and stops at the last message read.
            let started = Instant::now();
            let mut elapsed = None;
            let mut read = 0;
            while let Some(Ok(delivery)) = consumer.next().await {
                let body = delivery.message().data().unwrap_or_default();
                let value: serde_json::Value = serde_json::from_slice(body)?;
                std::hint::black_box(value);
                read += 1;
                if read == count {
                    elapsed = Some(started.elapsed());
                    break;
                }
            }
            let _ = consumer.handle().close().await;
            elapsed.ok_or_else(|| format!("the stream ended after {read} of {count} messages"))?
        }
        _ => return Err(usage.into()),
    };
    let elapsed_s = elapsed.as_secs_f64();
    let wall_s = process_start.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"{mode}\",\"messages\":{count},\"elapsed_s\":{elapsed_s:.6},\"msg_per_s\":{:.2},\"wall_s\":{wall_s:.6}}}",
        count as f64 / elapsed_s
    );
    Ok(())
}
