"""Reads decant's Avro output (output.format = "avro") the way a Python consumer would:
confluent-kafka-python's AvroDeserializer, schemas fetched from the registry by the id framed in
each record, values as fastavro's typed Python objects.

    avro_output_reader.py --bootstrap HOST:PORT --registry URL --prefix OUT_PREFIX.

Every output topic whose name starts with the prefix is read from its beginning
(read_committed) to its end. Keys are read with their writer schema; values with the subject's
latest schema as reader schema (`use.latest.version`), so records written before a column was
added come back with the column's default — what a reader of the evolved table sees.

Each field's Python type is checked against its Avro type (decimal -> decimal.Decimal, date ->
datetime.date, time-micros -> datetime.time, timestamp-micros -> an aware datetime,
local-timestamp-micros -> a naive datetime, uuid -> uuid.UUID, string -> str, bytes -> bytes, …)
and the value is rendered back into decant's canonical JSON (the form tests/bed/pg_state.py
writes PostgreSQL's rows in), so the output can be compared with PostgreSQL column by column.

Python's datetime cannot hold ±infinity (decant writes PostgreSQL's as the extreme longs
i64::MAX / i64::MIN, as Java readers and Iceberg take them): fastavro fails on such a record.
The record is then read again without the time logical types, and only fields holding exactly
those extremes may come out as "infinity" / "-infinity"; they are listed in the line's
"python_unrepresentable". Anything else out of range fails.

One JSON line per record on stdout: topic, partition, offset, key and payload (canonical JSON
text; payload null for a tombstone), key_schema_id, value_schema_id, python_unrepresentable.
Exit status 1 when a record cannot be read or a type does not match.
"""

import argparse
import base64
import datetime
import decimal
import io
import json
import math
import sys
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import parse_schema, schemaless_reader

from canonical_json import Raw, dumps

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
JSON_TAGS = {"json", "geometry", "point", "list", "struct"}
TIME_LOGICAL = {"timestamp-micros", "local-timestamp-micros", "time-micros"}


def parse_json_text(text):
    """Parse JSON keeping the exact text of numbers (as pg_state.py does)."""
    return json.loads(
        text,
        parse_float=Raw,
        parse_int=Raw,
        parse_constant=lambda c: Raw(json.dumps(c)),
        object_pairs_hook=dict,
    )


def framed_id(data):
    if data[0] != 0:
        raise ValueError(f"magic byte {data[0]}, expected 0")
    return int.from_bytes(data[1:5], "big")


def non_null(avro_type):
    if isinstance(avro_type, list):
        rest = [t for t in avro_type if t != "null"]
        assert len(rest) == 1, f"unexpected union {avro_type}"
        return rest[0]
    return avro_type


def base_and_logical(avro_type):
    t = non_null(avro_type)
    if isinstance(t, dict):
        return t["type"], t.get("logicalType"), t
    return t, None, {}


def expect(cond, what):
    if not cond:
        raise TypeError(what)


def canonical(field, v, raw_time=False):
    """The canonical JSON value of field `field`'s Python value `v` (types checked)."""
    name = field["name"]
    if v is None:
        return None
    base, logical, spec = base_and_logical(field["type"])
    where = f"field {name} ({base}/{logical}): {type(v).__name__} {v!r}"
    if raw_time and logical in TIME_LOGICAL:
        # Read as a plain long: ±infinity, or a value converted here as fastavro would.
        expect(isinstance(v, int), where)
        if v == I64_MAX:
            return "infinity"
        if v == I64_MIN:
            return "-infinity"
        delta = datetime.timedelta(microseconds=v)
        if logical == "timestamp-micros":
            v = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + delta
        elif logical == "local-timestamp-micros":
            v = datetime.datetime(1970, 1, 1) + delta
        else:
            v = (datetime.datetime(1970, 1, 1) + delta).time()
    if logical == "decimal":
        expect(isinstance(v, decimal.Decimal), where)
        expect(v.as_tuple().exponent == -spec["scale"], f"{where}: scale")
        return format(v, "f")
    if logical == "date":
        expect(isinstance(v, datetime.date) and not isinstance(v, datetime.datetime), where)
        return v.isoformat()
    if logical == "time-micros":
        expect(isinstance(v, datetime.time), where)
        return v.isoformat()
    if logical == "timestamp-micros":
        expect(isinstance(v, datetime.datetime) and v.tzinfo is not None, where)
        return v.astimezone(datetime.timezone.utc).replace(tzinfo=None).isoformat() + "Z"
    if logical == "local-timestamp-micros":
        expect(isinstance(v, datetime.datetime) and v.tzinfo is None, where)
        return v.isoformat()
    if logical == "uuid":
        expect(isinstance(v, uuid.UUID), where)
        return str(v)
    if base == "boolean":
        expect(isinstance(v, bool), where)
        return v
    if base in ("int", "long"):
        expect(isinstance(v, int) and not isinstance(v, bool), where)
        return v
    if base in ("float", "double"):
        expect(isinstance(v, float), where)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return Raw(repr(v))
    if base == "bytes":
        expect(isinstance(v, bytes), where)
        return base64.b64encode(v).decode()
    if base == "string":
        expect(isinstance(v, str), where)
        if field.get("decant.type") in JSON_TAGS:
            return parse_json_text(v)
        return v
    raise TypeError(f"{where}: unexpected Avro type")


def without_time_logical(schema):
    """The schema with time logical types removed (their values read as plain longs)."""
    if isinstance(schema, dict):
        if schema.get("logicalType") in TIME_LOGICAL:
            return schema["type"]
        return {k: without_time_logical(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [without_time_logical(s) for s in schema]
    return schema


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--prefix", required=True)
    args = ap.parse_args()

    # A bounded wait per request, and the request sent again when it times out: the bed's
    # Apicurio once left a request unanswered (the client then waited forever in recv).
    sr = SchemaRegistryClient({"url": args.registry, "timeout": 10})
    send_once = sr._rest_client.send_request

    def send_retrying(*a, **kw):
        for attempt in range(1, 6):
            try:
                return send_once(*a, **kw)
            except httpx.TimeoutException:
                if attempt == 5:
                    raise
                print(f"registry request timed out (attempt {attempt}); sending it again",
                      file=sys.stderr)

    sr._rest_client.send_request = send_retrying
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "avro-output-reader",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    })
    md = consumer.list_topics(timeout=30)
    topics = sorted(t for t in md.topics if t.startswith(args.prefix))
    parts = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in md.topics[t].partitions]
    consumer.assign(parts)
    pending = {(tp.topic, tp.partition) for tp in parts}

    key_reader = AvroDeserializer(sr)
    value_readers = {
        t: AvroDeserializer(sr, conf={"use.latest.version": True}) for t in topics
    }
    schemas = {}

    def schema_of(schema_id):
        if schema_id not in schemas:
            schemas[schema_id] = json.loads(sr.get_schema(schema_id).schema_str)
        return schemas[schema_id]

    def latest_value_schema(topic):
        return json.loads(sr.get_latest_version(f"{topic}-value").schema.schema_str)

    failures = 0
    while pending:
        msg = consumer.poll(10)
        if msg is None:
            print(f"no record for 10 s; still waiting for {sorted(pending)}", file=sys.stderr)
            failures += 1
            break
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                pending.discard((msg.topic(), msg.partition()))
                continue
            raise RuntimeError(msg.error())
        topic = msg.topic()
        line = {"topic": topic, "partition": msg.partition(), "offset": msg.offset(),
                "python_unrepresentable": []}
        try:
            key_id = framed_id(msg.key())
            key = key_reader(msg.key(), SerializationContext(topic, MessageField.KEY))
            key_fields = schema_of(key_id)["fields"]
            line["key_schema_id"] = key_id
            line["key"] = dumps({f["name"]: canonical(f, key[f["name"]]) for f in key_fields})
            if msg.value() is None:
                line["payload"] = None
                line["value_schema_id"] = None
            else:
                value_id = framed_id(msg.value())
                line["value_schema_id"] = value_id
                reader = latest_value_schema(topic)
                raw_time = False
                try:
                    value = value_readers[topic](
                        msg.value(), SerializationContext(topic, MessageField.VALUE))
                except (OverflowError, ValueError) as e:
                    # ±infinity timestamps: beyond Python's datetime (see the module doc).
                    raw_time = True
                    value = schemaless_reader(
                        io.BytesIO(msg.value()[5:]),
                        parse_schema(without_time_logical(schema_of(value_id))),
                        parse_schema(without_time_logical(reader)),
                    )
                    line["python_error"] = repr(e)
                row = {}
                for f in reader["fields"]:
                    row[f["name"]] = canonical(f, value[f["name"]], raw_time)
                    if (raw_time and base_and_logical(f["type"])[1] in TIME_LOGICAL
                            and value[f["name"]] in (I64_MAX, I64_MIN)):
                        line["python_unrepresentable"].append(f["name"])
                if raw_time and not line["python_unrepresentable"]:
                    raise ValueError(f"fastavro failed ({line['python_error']}) on a record without ±infinity")
                line["payload"] = dumps(row)
        except Exception as e:  # noqa: BLE001 - report the record, keep reading
            failures += 1
            print(f"FAIL {topic}/{msg.partition()}@{msg.offset()}: {e!r}", file=sys.stderr)
            continue
        print(json.dumps(line))
    consumer.close()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
