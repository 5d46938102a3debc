//! Decoder throughput on the three Flink-anchor shapes, and on orders as Confluent's
//! AvroConverter and ProtobufConverter frame it (schemas resolved once, as from a registry), in
//! messages and bytes per second on one core. Each iteration decodes every message of the shape into Arrow batches (flushed every
//! 8192 rows, as the pipeline does) and drops them.
//! Settings: 20 samples per benchmark, criterion's 3 s warm-up and 5 s measurement.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use decant_benches::{bench_data, declared, load, load_framed};
use decant_decode::{Decoder, DecoderConfig};
use decant_model::KafkaRecord;

fn bench(c: &mut Criterion) {
    let dir = bench_data();
    let mut group = c.benchmark_group("decode");
    let shapes = [
        ("products_no_schema", "products.jsonl", declared("products")),
        ("orders_no_schema", "orders.jsonl", declared("orders")),
        (
            "orders_with_schema",
            "orders_schema.jsonl",
            DecoderConfig::default(),
        ),
    ];
    for (name, file, cfg) in shapes {
        let msgs = load(&dir, file);
        let decoder = || Decoder::new(cfg.clone()).expect("config");
        measure(&mut group, name, &msgs, decoder);
    }
    for name in ["orders_avro", "orders_protobuf"] {
        let (msgs, resolver) = load_framed(&dir, name);
        let decoder = || {
            Decoder::new(DecoderConfig::default())
                .expect("config")
                .with_resolver(Box::new(resolver.clone()))
        };
        measure(&mut group, name, &msgs, decoder);
    }
    group.finish();
}

fn measure(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    msgs: &[Vec<u8>],
    decoder: impl Fn() -> Decoder,
) {
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    group.throughput(Throughput::Elements(msgs.len() as u64));
    group.bench_function(format!("{name}/msgs"), |b| {
        let mut dec = decoder();
        b.iter(|| run(&mut dec, msgs))
    });
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(format!("{name}/bytes"), |b| {
        let mut dec = decoder();
        b.iter(|| run(&mut dec, msgs))
    });
}

fn run(dec: &mut Decoder, msgs: &[Vec<u8>]) -> usize {
    let mut rows = 0;
    for (i, m) in msgs.iter().enumerate() {
        let rec = KafkaRecord::value_only("bench", 0, i as i64, m);
        dec.decode(&rec).expect("bench messages decode");
        if dec.pending_rows() >= 8192 {
            rows += dec
                .take_batches()
                .expect("batches")
                .iter()
                .map(|b| b.len())
                .sum::<usize>();
        }
    }
    rows + dec
        .take_batches()
        .expect("batches")
        .iter()
        .map(|b| b.len())
        .sum::<usize>()
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
