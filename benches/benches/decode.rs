//! Decoder throughput on the three Flink-anchor shapes, in messages and bytes per second on one
//! core. Each iteration decodes every message of the shape into Arrow batches (flushed every
//! 8192 rows, as the pipeline does) and drops them.
//! Settings: 20 samples per benchmark, criterion's 3 s warm-up and 5 s measurement.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use decant_benches::{bench_data, load};
use decant_decode::{Decoder, DecoderConfig};
use decant_model::KafkaRecord;

fn declared(shape: &str) -> DecoderConfig {
    let cfg = DecoderConfig::default();
    let (table, key, cols): (&str, &str, Vec<(&str, &str)>) = match shape {
        "products" => (
            "inventory.products",
            "id",
            vec![
                ("id", "int64"),
                ("name", "string"),
                ("description", "string"),
                ("weight", "float64"),
            ],
        ),
        _ => (
            "public.orders",
            "order_id",
            vec![
                ("order_id", "int64"),
                ("customer_id", "int64"),
                ("store_id", "int32"),
                ("status", "string"),
                ("currency", "string"),
                ("total_amount", "decimal_string(12,2)"),
                ("tax_amount", "decimal_string(12,2)"),
                ("discount_amount", "decimal_string(12,2)"),
                ("quantity", "int32"),
                ("priority", "int16"),
                ("is_gift", "boolean"),
                ("shipping_method", "string"),
                ("shipping_address", "string"),
                ("coupon_code", "string"),
                ("notes", "string"),
                ("order_date", "io.debezium.time.Date"),
                ("created_at", "io.debezium.time.MicroTimestamp"),
                ("updated_at", "io.debezium.time.MicroTimestamp"),
                ("shipped_at", "io.debezium.time.MicroTimestamp"),
                ("row_version", "int32"),
            ],
        ),
    };
    cfg.declare(table, &[key], &cols)
}

fn bench(c: &mut Criterion) {
    let dir = bench_data();
    let mut group = c.benchmark_group("decode");
    for (name, file, cfg) in [
        ("products_no_schema", "products.jsonl", declared("products")),
        ("orders_no_schema", "orders.jsonl", declared("orders")),
        (
            "orders_with_schema",
            "orders_schema.jsonl",
            DecoderConfig::default(),
        ),
    ] {
        let msgs = load(&dir, file);
        let bytes: usize = msgs.iter().map(Vec::len).sum();
        group.throughput(Throughput::Elements(msgs.len() as u64));
        group.bench_function(format!("{name}/msgs"), |b| {
            let mut dec = Decoder::new(cfg.clone()).expect("config");
            b.iter(|| run(&mut dec, &msgs))
        });
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(format!("{name}/bytes"), |b| {
            let mut dec = Decoder::new(cfg.clone()).expect("config");
            b.iter(|| run(&mut dec, &msgs))
        });
    }
    group.finish();
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
