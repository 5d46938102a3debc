"""Reads decant's registry output formats the way a Python consumer would: confluent-kafka-python's
deserializer of the format, schemas fetched from the registry by the id framed in each record.

    registry_output_reader.py --format avro|json_sr --bootstrap HOST:PORT --registry URL \
        --prefix OUT_PREFIX.

Every output topic whose name starts with the prefix is read from its beginning
(read_committed) to its end. Keys are read with their writer schema; values with the subject's
latest schema as reader schema (`use.latest.version`), so records written before a column was
added come back with the column null — what a reader of the evolved table sees.

Each field's Python value is checked against its schema type and rendered back into decant's
canonical JSON (the form tests/bed/pg_state.py writes PostgreSQL's rows in), so the output can be
compared with PostgreSQL column by column. What differs per format is a class (Avro, JsonSr):
how a schema lists its fields, the deserializers, the fallback, and the per-type rendering.

  avro     AvroDeserializer (fastavro): decimal -> decimal.Decimal, date -> datetime.date,
           time-micros -> datetime.time, timestamp-micros -> an aware datetime,
           local-timestamp-micros -> a naive datetime, uuid -> uuid.UUID, bytes -> bytes, …
           Fallback: Python's datetime cannot hold ±infinity (decant writes PostgreSQL's as the
           extreme longs i64::MAX / i64::MIN, as Java readers and Iceberg take them), so fastavro
           fails on such a record; it is read again without the time logical types, and only
           fields holding exactly those extremes may come out as "infinity" / "-infinity".
  json_sr  JSONDeserializer (validating against the schema, numbers with a fraction parsed as
           decimal.Decimal through its `json_decode` hook so decimals keep every digit): types
           named by Kafka Connect's conventions (`connect.type`, `title`: Connect Decimal and
           Date, Debezium's MicroTime / MicroTimestamp / ZonedTimestamp / Json / Uuid …).
           Fallback: NaN and ±Infinity are JSON strings (as Connect writes them), which a
           `number` schema does not validate; the record is read again without validation, and
           only float fields holding exactly those strings may differ from their schema.

Fields read through a fallback are listed in the line's "fallback_fields". One JSON line per
record on stdout: topic, partition, offset, key and payload (canonical JSON text; payload null
for a tombstone), key_schema_id, value_schema_id, fallback_fields, null_documents (the JSON
document fields holding the text "null", which the payload shows as null). Exit status 1 when
a record cannot be read or a type does not match.
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
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError
from fastavro import parse_schema, schemaless_reader

from canonical_json import Raw, dumps

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
EPOCH = datetime.datetime(1970, 1, 1)
JSON_TAGS = {"json", "geometry", "point", "list", "struct"}


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


def expect(cond, what):
    if not cond:
        raise TypeError(what)


# Renderings both formats share: a value of this Python type -> canonical JSON.

def float_text(v, where):
    expect(isinstance(v, float), where)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return Raw(repr(v))


def decimal_text(v, scale, where):
    expect(isinstance(v, decimal.Decimal), where)
    expect(v.as_tuple().exponent == -scale, f"{where}: scale")
    return format(v, "f")


def aware_text(v, where):
    expect(isinstance(v, datetime.datetime) and v.tzinfo is not None, where)
    return v.astimezone(datetime.timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def micros_text(v, logical):
    """A count of µs as the time or timestamp it stands for (±infinity at the extremes)."""
    if v == I64_MAX:
        return "infinity"
    if v == I64_MIN:
        return "-infinity"
    at = EPOCH + datetime.timedelta(microseconds=v)
    if logical == "time":
        return at.time().isoformat()
    if logical == "utc":
        return at.isoformat() + "Z"
    return at.isoformat()


class Avro:
    TIME_LOGICAL = {"timestamp-micros", "local-timestamp-micros", "time-micros"}

    def __init__(self, sr, topics):
        self.key_reader = AvroDeserializer(sr)
        self.value_readers = {t: AvroDeserializer(sr, conf={"use.latest.version": True}) for t in topics}

    @staticmethod
    def fields(schema):
        return [(f["name"], f) for f in schema["fields"]]

    @staticmethod
    def is_document(field):
        return field.get("decant.type") in JSON_TAGS

    @staticmethod
    def non_null(avro_type):
        if isinstance(avro_type, list):
            rest = [t for t in avro_type if t != "null"]
            assert len(rest) == 1, f"unexpected union {avro_type}"
            return rest[0]
        return avro_type

    def base_and_logical(self, field):
        t = self.non_null(field["type"])
        if isinstance(t, dict):
            return t["type"], t.get("logicalType"), t
        return t, None, {}

    def read_value(self, topic, data, writer, reader):
        """The value, and the fields read through the fallback (see the module doc)."""
        try:
            return self.value_readers[topic](data, SerializationContext(topic, MessageField.VALUE)), []
        except (OverflowError, ValueError) as e:
            value = schemaless_reader(
                io.BytesIO(data[5:]),
                parse_schema(self.without_time_logical(writer)),
                parse_schema(self.without_time_logical(reader)),
            )
            extremes = [name for name, f in self.fields(reader)
                        if self.base_and_logical(f)[1] in self.TIME_LOGICAL
                        and value[name] in (I64_MAX, I64_MIN)]
            if not extremes:
                raise ValueError(f"fastavro failed ({e!r}) on a record without ±infinity")
            # The fallback reads the time fields as plain longs: render them from the count.
            times = self.time_fields(reader)
            return {k: (("raw", v) if k in times and v is not None else v)
                    for k, v in value.items()}, extremes

    def time_fields(self, schema):
        return {n for n, f in self.fields(schema) if self.base_and_logical(f)[1] in self.TIME_LOGICAL}

    @classmethod
    def without_time_logical(cls, schema):
        """The schema with time logical types removed (their values read as plain longs)."""
        if isinstance(schema, dict):
            if schema.get("logicalType") in cls.TIME_LOGICAL:
                return schema["type"]
            return {k: cls.without_time_logical(v) for k, v in schema.items()}
        if isinstance(schema, list):
            return [cls.without_time_logical(s) for s in schema]
        return schema

    def canonical(self, name, field, v):
        if v is None:
            return None
        base, logical, spec = self.base_and_logical(field)
        where = f"field {name} ({base}/{logical}): {type(v).__name__} {v!r}"
        if isinstance(v, tuple) and v[0] == "raw":
            expect(isinstance(v[1], int), where)
            kind = {"time-micros": "time", "timestamp-micros": "utc"}.get(logical, "local")
            return micros_text(v[1], kind)
        if logical == "decimal":
            return decimal_text(v, spec["scale"], where)
        if logical == "date":
            expect(isinstance(v, datetime.date) and not isinstance(v, datetime.datetime), where)
            return v.isoformat()
        if logical == "time-micros":
            expect(isinstance(v, datetime.time), where)
            return v.isoformat()
        if logical == "timestamp-micros":
            return aware_text(v, where)
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
            return float_text(v, where)
        if base == "bytes":
            expect(isinstance(v, bytes), where)
            return base64.b64encode(v).decode()
        if base == "string":
            expect(isinstance(v, str), where)
            return parse_json_text(v) if field.get("decant.type") in JSON_TAGS else v
        raise TypeError(f"{where}: unexpected Avro type")


class JsonSr:
    NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

    def __init__(self, sr, topics):
        def decode(data):
            # Numbers with a fraction as decimal.Decimal: a Decimal column keeps every digit.
            return json.loads(data, parse_float=decimal.Decimal)

        self.key_reader = JSONDeserializer(None, schema_registry_client=sr, json_decode=decode)
        self.value_readers = {
            t: JSONDeserializer(None, schema_registry_client=sr, json_decode=decode,
                                conf={"use.latest.version": True}) for t in topics}
        self.lenient_readers = {
            t: JSONDeserializer(None, schema_registry_client=sr, json_decode=decode,
                                conf={"use.latest.version": True, "validate": False}) for t in topics}

    @staticmethod
    def fields(schema):
        props = schema["properties"]
        return sorted(props.items(), key=lambda p: p[1]["connect.index"])

    @classmethod
    def is_document(cls, prop):
        s = cls.non_null(prop)
        return s.get("title") == "io.debezium.data.Json" or s.get("decant.type") in JSON_TAGS

    @staticmethod
    def non_null(prop):
        if "oneOf" in prop:
            rest = [b for b in prop["oneOf"] if b.get("type") != "null"]
            assert len(rest) == 1, f"unexpected union {prop}"
            return rest[0]
        return prop

    def read_value(self, topic, data, writer, reader):
        ctx = SerializationContext(topic, MessageField.VALUE)
        try:
            return self.value_readers[topic](data, ctx), []
        except SerializationError as e:
            value = self.lenient_readers[topic](data, ctx)
            non_finite = [name for name, p in self.fields(reader)
                          if self.non_null(p).get("connect.type") in ("float32", "float64")
                          and value.get(name) in self.NON_FINITE]
            if not non_finite:
                raise ValueError(f"validation failed ({e!r}) on a record without NaN / ±Infinity")
            return {k: self.NON_FINITE[v] if k in non_finite else v for k, v in value.items()}, non_finite

    def canonical(self, name, prop, v):
        if v is None:
            return None
        s = self.non_null(prop)
        json_type, connect, title = s.get("type"), s.get("connect.type"), s.get("title")
        where = f"field {name} ({json_type}/{connect}/{title}): {type(v).__name__} {v!r}"
        if title == "org.apache.kafka.connect.data.Decimal":
            # A whole number has no fraction to parse as Decimal: an int is the same value.
            v = decimal.Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v
            return decimal_text(v, int(s["connect.parameters"]["scale"]), where)
        if title == "org.apache.kafka.connect.data.Date":
            expect(isinstance(v, int), where)
            return (datetime.date(1970, 1, 1) + datetime.timedelta(days=v)).isoformat()
        if title in ("io.debezium.time.MicroTime", "io.debezium.time.MicroTimestamp"):
            expect(isinstance(v, int) and not isinstance(v, bool), where)
            return micros_text(v, "time" if title.endswith("MicroTime") else "local")
        if title == "io.debezium.time.ZonedTimestamp":
            expect(isinstance(v, str), where)
            if v in ("infinity", "-infinity"):
                return v
            return aware_text(datetime.datetime.fromisoformat(v), where)
        if title == "io.debezium.time.ZonedTime":
            expect(isinstance(v, str) and datetime.time.fromisoformat(v).tzinfo is not None, where)
            return v
        if title == "io.debezium.data.Uuid":
            expect(isinstance(v, str), where)
            return str(uuid.UUID(v))
        if title == "io.debezium.data.Json" or s.get("decant.type") in JSON_TAGS:
            expect(isinstance(v, str), where)
            return parse_json_text(v)
        if json_type == "boolean":
            expect(isinstance(v, bool), where)
            return v
        if json_type == "integer":
            expect(isinstance(v, int) and not isinstance(v, bool), where)
            return v
        if json_type == "number" and connect in ("float32", "float64"):
            v = float(v) if isinstance(v, (int, decimal.Decimal)) and not isinstance(v, bool) else v
            return float_text(v, where)
        if json_type == "string" and connect == "bytes":
            expect(isinstance(v, str), where)
            base64.b64decode(v, validate=True)
            return v
        if json_type == "string":
            expect(isinstance(v, str), where)
            return v
        raise TypeError(f"{where}: unexpected JSON Schema type")


FORMATS = {"avro": Avro, "json_sr": JsonSr}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--format", required=True, choices=sorted(FORMATS))
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
        "group.id": f"{args.format}-output-reader",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    })
    md = consumer.list_topics(timeout=30)
    topics = sorted(t for t in md.topics if t.startswith(args.prefix))
    parts = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in md.topics[t].partitions]
    consumer.assign(parts)
    pending = {(tp.topic, tp.partition) for tp in parts}

    fmt = FORMATS[args.format](sr, topics)
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
                "fallback_fields": []}
        try:
            key_id = framed_id(msg.key())
            key = fmt.key_reader(msg.key(), SerializationContext(topic, MessageField.KEY))
            line["key_schema_id"] = key_id
            line["key"] = dumps({n: fmt.canonical(n, f, key[n]) for n, f in fmt.fields(schema_of(key_id))})
            if msg.value() is None:
                line["payload"] = None
                line["value_schema_id"] = None
            else:
                value_id = framed_id(msg.value())
                line["value_schema_id"] = value_id
                reader = latest_value_schema(topic)
                value, line["fallback_fields"] = fmt.read_value(
                    topic, msg.value(), schema_of(value_id), reader)
                line["payload"] = dumps({n: fmt.canonical(n, f, value.get(n)) for n, f in fmt.fields(reader)})
                # The payload embeds documents as JSON, where a JSON `null` document and SQL NULL
                # are both `null`: name the fields that held the document text "null".
                line["null_documents"] = [n for n, f in fmt.fields(reader)
                                          if fmt.is_document(f) and value.get(n) == "null"]
        except Exception as e:  # noqa: BLE001 - report the record, keep reading
            failures += 1
            print(f"FAIL {topic}/{msg.partition()}@{msg.offset()}: {e!r}", file=sys.stderr)
            continue
        print(json.dumps(line))
    consumer.close()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
