//! The baseline invstream is measured against: rabbitmq-stream-client used the way its README
//! and `examples/batch_send.rs` show, on the same inventory updates. Produce: `batch_send` of
//! 1,000 messages, a callback per confirm, then wait for all confirms. Consume: read from
//! `first`, parse each body as a `serde_json::Value`.
//!
//! `ceiling` produces like `produce` but sends one pre-built body over and over: the least a
//! client can do per message, so its throughput is what the broker allows (issue 4's "broker
//! ceiling").
//!
//! `cargo run --release --example naive_baseline -- produce|ceiling|consume STREAM [COUNT]`
//! prints one JSON object: {"mode", "messages", "elapsed_s", "msg_per_s"}. `delete STREAM`
//! deletes a stream (scripts/bench-compare.sh cleans up with it: gigabytes of streams left on
//! disk slow every later run down).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use invstream::model::{now_us, UpdateGenerator};
use rabbitmq_stream_client::types::{Message, OffsetSpecification};
use rabbitmq_stream_client::Environment;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: naive_baseline produce|ceiling|consume|delete STREAM [COUNT]";
    let mode = args.get(1).ok_or(usage)?.clone();
    let stream = args.get(2).ok_or(usage)?.clone();
    let count: u64 = args
        .get(3)
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(100_000);
    let environment = Environment::builder().build().await?;
    if mode == "delete" {
        environment.delete_stream(&stream).await?;
        return Ok(());
    }

    // Timed like invstream: produce from the moment the producer exists, consume from before
    // subscribing.
    let mut started = Instant::now();
    match mode.as_str() {
        "produce" | "ceiling" => {
            let _ = environment.stream_creator().create(&stream).await;
            let producer = environment.producer().build(&stream).await?;
            started = Instant::now();
            let confirmed = Arc::new(AtomicU64::new(0));
            let mut generator = UpdateGenerator::new(1_000, 1);
            let prebuilt = Message::builder()
                .body(serde_json::to_vec(&generator.next_update(now_us())).unwrap())
                .build();
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
                let confirmed = confirmed.clone();
                producer
                    .batch_send(messages, move |status| {
                        let confirmed = confirmed.clone();
                        async move {
                            if status.is_ok() {
                                confirmed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                    .await?;
                sent += size;
            }
            while confirmed.load(Ordering::Relaxed) < count {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            producer.close().await?;
        }
        "consume" => {
            let mut consumer = environment
                .consumer()
                .offset(OffsetSpecification::First)
                .build(&stream)
                .await?;
            let mut read = 0;
            while let Some(Ok(delivery)) = consumer.next().await {
                let body = delivery.message().data().unwrap_or_default();
                let value: serde_json::Value = serde_json::from_slice(body)?;
                std::hint::black_box(value);
                read += 1;
                if read == count {
                    break;
                }
            }
            let _ = consumer.handle().close().await;
        }
        _ => return Err(usage.into()),
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"{mode}\",\"messages\":{count},\"elapsed_s\":{elapsed_s:.6},\"msg_per_s\":{:.2}}}",
        count as f64 / elapsed_s
    );
    Ok(())
}
