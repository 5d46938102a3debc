//! Output encoder throughput on the orders shape: every change's canonical JSON key and value
//! (what the pipeline hands the compacted-topic sink) encoded by each `output.format`'s
//! [`RecordEncoder`] — `json` (the text as is), `avro`, `json_sr`, `protobuf` — in changes and input bytes
//! per second on one core. The schemas are derived and registered once (an in-memory
//! registrar), as a running decant does per table shape; the timed loop is the per-record
//! work. Settings: 20 samples per benchmark, criterion's 3 s warm-up and 5 s measurement.

use std::sync::{Arc, Mutex};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use decant_benches::{bench_data, load};
use decant_decode::{Decoder, DecoderConfig, render};
use decant_model::encode::{Encoded, RecordEncoder};
use decant_model::sink::{Change, ChangeOp, Destination, Origin, OutputShape};
use decant_model::{KafkaRecord, TableId};
use decant_registry::{Registrar, RegistryError, Schema};

/// Registers in memory: ids in registration order, versions per subject.
#[derive(Default)]
struct MemoryRegistrar(Mutex<Vec<(String, Schema)>>);

impl Registrar for MemoryRegistrar {
    fn register(&self, subject: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let at = all.iter().position(|(s, t)| s == subject && t == schema);
        Ok(at.unwrap_or_else(|| {
            all.push((subject.to_owned(), schema.clone()));
            all.len() - 1
        }) as u32
            + 1)
    }

    fn latest(&self, subject: &str) -> Result<(u32, Schema), RegistryError> {
        let all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .enumerate()
            .rev()
            .find(|(_, (s, _))| s == subject)
            .map(|(i, (_, t))| (i as u32 + 1, t.clone()))
            .ok_or_else(|| RegistryError::Http {
                url: "memory".into(),
                status: 404,
                code: Some(40401),
                message: format!("Subject '{subject}' not found"),
            })
    }
}

/// The orders upserts as the sink receives them: (key JSON, value JSON), and their shape.
fn orders() -> (TableId, Arc<OutputShape>, Vec<(String, String)>) {
    let msgs = load(&bench_data(), "orders_schema.jsonl");
    let mut dec = Decoder::new(DecoderConfig::default()).expect("config");
    for (i, m) in msgs.iter().enumerate() {
        let rec = KafkaRecord::value_only("pgserver1.public.orders", 0, i as i64, m);
        dec.decode(&rec).expect("orders decode");
    }
    let batches = dec.take_batches().expect("batches");
    let schema = batches.first().expect("a batch").schema.clone();
    let columns: Vec<(String, decant_model::ColumnType)> = schema
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.ty.clone()))
        .collect();
    // The captured values come without their Kafka key: order_id is the table's primary key.
    let key_index = if schema.key.is_empty() {
        vec![
            schema
                .columns
                .iter()
                .position(|c| c.name == "order_id")
                .expect("order_id"),
        ]
    } else {
        schema.key.clone()
    };
    let key: Vec<String> = key_index
        .iter()
        .map(|i| schema.columns[*i].name.clone())
        .collect();
    let key_types = key_index
        .iter()
        .map(|i| schema.columns[*i].ty.clone())
        .collect();
    let shape = Arc::new(OutputShape {
        sources: (0..columns.len()).map(Some).collect(),
        columns,
        key,
        key_types,
    });
    let mut rows = Vec::new();
    let mut line = String::new();
    for b in &batches {
        for r in 0..b.len() {
            line.clear();
            render::render_row(b, r, &mut line);
            let v: serde_json::Value = serde_json::from_str(&line).expect("rendered row");
            if v["row"].is_object() {
                let key_json: serde_json::Map<String, serde_json::Value> = shape
                    .key
                    .iter()
                    .map(|k| (k.clone(), v["row"][k].clone()))
                    .collect();
                rows.push((
                    serde_json::Value::Object(key_json).to_string(),
                    v["row"].to_string(),
                ));
            }
        }
    }
    (schema.table.clone(), shape, rows)
}

/// Builds a fresh encoder of one format (its schemas registered on its first change).
type MakeEncoder = fn() -> Box<dyn RecordEncoder>;

fn bench(c: &mut Criterion) {
    let (table, shape, rows) = orders();
    let bytes: usize = rows.iter().map(|(k, v)| k.len() + v.len()).sum();
    let mut group = c.benchmark_group("encode");
    let formats: [(&str, MakeEncoder); 4] = [
        ("json", || Box::new(decant_model::JsonEncoder)),
        ("avro", || {
            Box::new(decant_registry::AvroEncoder::new(Box::new(
                MemoryRegistrar::default(),
            )))
        }),
        ("json_sr", || {
            Box::new(decant_registry::JsonSrEncoder::new(Box::new(
                MemoryRegistrar::default(),
            )))
        }),
        ("protobuf", || {
            Box::new(decant_registry::ProtobufEncoder::new(Box::new(
                MemoryRegistrar::default(),
            )))
        }),
    ];
    for (name, make) in formats {
        for (unit, throughput) in [
            ("msgs", Throughput::Elements(rows.len() as u64)),
            ("bytes", Throughput::Bytes(bytes as u64)),
        ] {
            group.throughput(throughput);
            group.bench_function(format!("orders_{name}/{unit}"), |b| {
                let mut enc = make();
                b.iter(|| encode_all(enc.as_mut(), &table, &shape, &rows))
            });
        }
    }
    group.finish();
}

/// Encodes every row; returns the output bytes (so nothing is optimised away).
fn encode_all(
    enc: &mut dyn RecordEncoder,
    table: &TableId,
    shape: &Arc<OutputShape>,
    rows: &[(String, String)],
) -> usize {
    let mut out = 0;
    for (key, value) in rows {
        let change = Change {
            dest: Destination {
                table,
                label: "public.orders",
                topic: "decant.public.orders",
            },
            shape,
            op: ChangeOp::Upsert,
            key,
            value: Some(value),
            typed: None,
            null_documents: &[],
            origin: Origin {
                topic: "pgserver1.public.orders",
                partition: 0,
                offset: 0,
                lsn: None,
                ts_ms: None,
            },
            batch: "bench",
        };
        match enc.encode(&change).expect("encodes") {
            Encoded::Record { key, value } => out += key.len() + value.map_or(0, <[u8]>::len),
            Encoded::Refused(why) => panic!("refused: {why}"),
        }
    }
    out
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
