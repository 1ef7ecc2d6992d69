//! Micro-benchmarks of the per-message work on the client side: generating, encoding and
//! decoding an inventory update, building a publish batch, reading a delivered message,
//! recording a latency.

use rabbitmq_stream_client::types::{CompressionType, Message};
use rabbitmq_stream_protocol::codec::Decoder;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use invstream::entry::to_message;
use invstream::entry::{EntryEncoder, MessageProperties, MessageView};
use invstream::model::{InventoryUpdate, UpdateGenerator};
use invstream::stats::LatencyHistogram;

fn model(c: &mut Criterion) {
    let mut group = c.benchmark_group("update");
    group.throughput(Throughput::Elements(1));
    let mut generator = UpdateGenerator::new(1_000, 1);
    group.bench_function("generate", |b| {
        b.iter(|| black_box(generator.next_update(1)))
    });
    let update = UpdateGenerator::new(1_000, 1).next_update(1_700_000_000_000_000);
    let mut buf = Vec::with_capacity(256);
    group.bench_function("encode_json", |b| {
        b.iter(|| black_box(&update).encode_into(&mut buf))
    });
    let mut body = Vec::new();
    update.encode_into(&mut body);
    group.bench_function("decode_json", |b| {
        b.iter(|| InventoryUpdate::decode(black_box(&body)))
    });
    group.bench_function("decode_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap())
    });
    group.bench_function("to_message", |b| {
        b.iter(|| {
            to_message(
                black_box(&update),
                "bench",
                1,
                MessageProperties::Lean,
                false,
            )
        })
    });
    // What consume does with each delivered message: find the body (skipping properties and
    // application properties) and parse it; and, with --verify, the producer property.
    let mut message = Vec::new();
    EntryEncoder::default().append_message(&update, "invstream-bench", false, &mut message);
    group.bench_function("read_delivered_message", |b| {
        b.iter(|| {
            let view = MessageView::parse(black_box(&message)).unwrap();
            let update = InventoryUpdate::decode(view.body().unwrap()).unwrap();
            black_box((update, view.string_property("producer")))
        })
    });
    // The same with the client's own decoder (every section into a `Message`), as before.
    group.bench_function("read_delivered_message_decoding_all", |b| {
        b.iter(|| {
            let (_, decoded) = Message::decode(black_box(&message)).unwrap();
            black_box(InventoryUpdate::decode(decoded.data().unwrap()).unwrap())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("build_1000_messages", |b| {
        b.iter_batched(
            || {
                let mut generator = UpdateGenerator::new(1_000, 7);
                (0..1_000)
                    .map(|_| generator.next_update(1))
                    .collect::<Vec<_>>()
            },
            |updates| {
                updates
                    .iter()
                    .map(|u| to_message(u, "bench", u.seq + 1, MessageProperties::Lean, false))
                    .collect::<Vec<_>>()
            },
            BatchSize::SmallInput,
        )
    });
    // The sub-entry path: 1,000 updates as ten batches of 100, written straight into entry
    // bytes (no Message per update), uncompressed and with zstd.
    for (name, codec) in [
        ("sub_entry_1000_in_batches_of_100", CompressionType::None),
        (
            "sub_entry_1000_in_batches_of_100_zstd",
            CompressionType::Zstd,
        ),
    ] {
        let mut generator = UpdateGenerator::new(1_000, 7);
        let updates: Vec<(u64, InventoryUpdate)> = (0..1_000)
            .map(|seq| (seq + 1, generator.next_update(1)))
            .collect();
        let mut encoder = EntryEncoder::default();
        group.bench_function(name, |b| {
            b.iter(|| {
                updates
                    .chunks(100)
                    .map(|chunk| encoder.sub_entry_batch(chunk, "bench", codec).unwrap())
                    .collect::<Vec<_>>()
            })
        });
    }
    group.finish();

    let mut histogram = LatencyHistogram::new();
    let mut value = 1u64;
    c.bench_function("histogram/record", |b| {
        b.iter(|| {
            value = value.wrapping_mul(6364136223846793005).wrapping_add(1) % 1_000_000;
            histogram.record_us(black_box(value));
        })
    });
}

criterion_group!(benches, model);
criterion_main!(benches);
