//! Arbitrary record bytes (value, optional key, registry framing) through a decoder that has
//! learned a schema-bearing table first: must never panic, and batches must always build.
#![no_main]

use decant_decode::{Decoder, DecoderConfig, SchemaFormat, StaticResolver};
use decant_model::KafkaRecord;
use libfuzzer_sys::fuzz_target;

const LEARN: &str = r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"},"field":"d"},{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","field":"z"},{"type":"array","items":{"type":"int32"},"optional":true,"field":"a"}],"optional":true,"name":"p.s.t.Value","field":"after"},{"type":"string","optional":false,"field":"op"}],"optional":false,"name":"p.s.t.Envelope"},"payload":{"after":{"id":1,"d":"AQ==","z":"2020-01-01T00:00:00Z","a":[1]},"op":"c"}}"#;

const AVRO: &str = r#"{"type":"record","name":"Envelope","namespace":"p.s.t","fields":[{"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"id","type":"int"},{"name":"d","type":["null",{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}]}]}]},{"name":"after","type":["null","Value"]},{"name":"op","type":"string"}]}"#;

fuzz_target!(|data: &[u8]| {
    let cfg = DecoderConfig {
        infer_schemaless: data.first().is_some_and(|b| b & 1 == 1),
        ..Default::default()
    };
    let Ok(dec) = Decoder::new(cfg) else { return };
    let mut dec = dec.with_resolver(Box::new(StaticResolver::new().with(1, SchemaFormat::Avro, AVRO)));
    let _ = dec.decode(&KafkaRecord::value_only("p.s.t", 0, 0, LEARN.as_bytes()));
    let split = data.len() / 3;
    let (key, value) = data.split_at(split);
    let rec = KafkaRecord {
        topic: "p.s.t",
        partition: 0,
        offset: 1,
        timestamp_ms: None,
        headers: &[],
        key: (!key.is_empty()).then_some(key),
        value: Some(value),
    };
    let _ = dec.decode(&rec);
    dec.take_batches().expect("batches always build");
});
