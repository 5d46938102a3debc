//! Property tests: no input, however malformed, may panic the decoder, and a failed record
//! leaves no partial row behind.

use decant_decode::{Decoder, DecoderConfig, SchemaFormat, StaticResolver};
use decant_model::KafkaRecord;
use proptest::prelude::*;

/// Real messages: a PostgreSQL update with embedded schema, a schemaless MySQL update with
/// decimals/timestamps, a delete with a key, a DynamoDB Streams record.
const SEEDS: &[&str] = &[
    r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"price"},{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","field":"ts"},{"type":"array","items":{"type":"string"},"optional":true,"field":"tags"},{"type":"struct","fields":[{"type":"double","field":"x"},{"type":"double","field":"y"},{"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,"name":"io.debezium.data.geometry.Point","field":"p"}],"optional":true,"name":"s.public.t.Value","field":"before"},{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"price"},{"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","field":"ts"},{"type":"array","items":{"type":"string"},"optional":true,"field":"tags"},{"type":"struct","fields":[{"type":"double","field":"x"},{"type":"double","field":"y"},{"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,"name":"io.debezium.data.geometry.Point","field":"p"}],"optional":true,"name":"s.public.t.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"}],"optional":false,"field":"source"},{"type":"string","optional":false,"field":"op"}],"optional":false,"name":"s.public.t.Envelope"},"payload":{"before":null,"after":{"id":1,"name":"a\"b","price":"AQ==","ts":1596001099434000,"tags":["x","__debezium_unavailable_value"],"p":{"x":1.0,"y":2.0,"wkb":null,"srid":null}},"source":{"schema":"public","table":"t"},"op":"u"}}"#,
    r#"{"before":{"id":1,"v":"x"},"after":{"id":1,"v":"__debezium_unavailable_value"},"source":{"db":"inventory","table":"t","file":"mysql-bin.000003","pos":154,"row":0,"ts_ms":1},"op":"u"}"#,
    r#"{"before":{"id":7,"v":null},"after":null,"source":{"schema":"public","table":"u","lsn":1},"op":"d"}"#,
    r#"{"eventName":"MODIFY","dynamodb":{"Keys":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"},"n":{"N":"12.50"},"l":{"L":[{"n":"1"},{"s":"x"}]},"b":{"B":"AQ=="},"ns":{"NS":["1","2.5"]}}},"eventSourceARN":"arn:aws:dynamodb:eu:1:table/T/stream/x"}"#,
];

fn decoder() -> Decoder {
    let cfg = DecoderConfig {
        infer_schemaless: true,
        ..Default::default()
    };
    let resolver = StaticResolver::new().with(
        1,
        SchemaFormat::Avro,
        r#"{"type":"record","name":"Envelope","namespace":"s.public.t","fields":[{"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"id","type":"int"},{"name":"d","type":["null",{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}]}]}]},{"name":"after","type":["null","Value"]},{"name":"op","type":"string"}]}"#,
    );
    Decoder::new(cfg)
        .expect("config")
        .with_resolver(Box::new(resolver))
}

fn decode(dec: &mut Decoder, key: Option<&[u8]>, value: Option<&[u8]>) {
    let rec = KafkaRecord {
        topic: "s.public.t",
        partition: 0,
        offset: 0,
        timestamp_ms: None,
        headers: &[],
        key,
        value,
    };
    let before = dec.pending_rows();
    match dec.decode(&rec) {
        Ok(_) => {}
        // A failed record must not leave a row behind, and must say where it came from.
        Err(e) => {
            assert_eq!(dec.pending_rows(), before, "rolled back: {e}");
            assert!(e.to_string().starts_with("s.public.t/0@0: "), "{e}");
        }
    }
    // Batches must always build (no half rows, no type mismatches).
    dec.take_batches().expect("batches build");
}

#[test]
fn seeds_decode() {
    let mut dec = decoder();
    for s in SEEDS {
        let rec = KafkaRecord::value_only("s.public.t", 0, 0, s.as_bytes());
        dec.decode(&rec).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(dec.take_batches().expect("batches").len(), 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(value in proptest::collection::vec(any::<u8>(), 0..512),
                                   key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))) {
        let mut dec = decoder();
        decode(&mut dec, key.as_deref(), Some(&value));
        let mut framed = vec![0u8, 0, 0, 0, 1];
        framed.extend_from_slice(&value);
        decode(&mut dec, key.as_deref(), Some(&framed));
    }

    #[test]
    fn mutated_real_messages_never_panic(seed in 0usize..SEEDS.len(),
                                         edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8)) {
        let mut bytes = SEEDS[seed].as_bytes().to_vec();
        for (pos, byte, kind) in edits {
            if bytes.is_empty() { break; }
            let i = pos % bytes.len();
            match kind {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        let mut dec = decoder();
        // Learn the table first so mutations hit the row decoding, not only the schema.
        let good = KafkaRecord::value_only("s.public.t", 0, 0, SEEDS[seed].as_bytes());
        let _ = dec.decode(&good);
        decode(&mut dec, Some(br#"{"id":1}"#), Some(&bytes));
    }
}
