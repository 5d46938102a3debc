"""Confluent's Python client against the bed's Schema Registry (tests/bed/registry.sh).

    registry_clients.py --url URL          # prints one line per check, then "N passed, N failed"

confluent-kafka-python's serializers register schemas through the registry the way producers do
(TopicNameStrategy, auto.register.schemas), its deserializers fetch them back by the id framed in
the bytes, and its SchemaRegistryClient reads subjects, versions and compatibility. One topic
per format: Avro (AvroSerializer), JSON Schema (JSONSerializer), Protobuf (ProtobufSerializer,
with a message type built at run time from a FileDescriptorProto: no protoc needed; it registers
the schema as a base64 FileDescriptorProto, which Apicurio hands back as registered, where
Confluent's server answers with .proto text). Exit status 1 when a check fails.
"""

import argparse
import sys
import time
import traceback

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

RESULTS = []


def check(name):
    def wrap(fn):
        def run(*args):
            try:
                fn(*args)
                RESULTS.append((name, None))
                print(f"ok   {name}")
            except Exception as e:  # noqa: BLE001 - report every failure, keep going
                RESULTS.append((name, e))
                print(f"FAIL {name}: {e!r}")
                traceback.print_exc(file=sys.stderr)
        return run
    return wrap


def framed_id(data):
    assert data[0] == 0, f"magic byte {data[0]}"
    return int.from_bytes(data[1:5], "big")


AVRO = """{"type":"record","name":"Row","namespace":"decant.bed","fields":[
  {"name":"id","type":"int"},
  {"name":"label","type":["null","string"],"default":null},
  {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}}]}"""

JSON_SCHEMA = """{"type":"object","title":"decant.bed.Row","properties":{
  "id":{"type":"integer","connect.type":"int32","connect.index":0},
  "label":{"oneOf":[{"type":"null"},{"type":"string"}],"connect.index":1}},
  "required":["id"]}"""


def protobuf_type(suffix):
    """A message class built from a FileDescriptorProto (what protoc would generate)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto()
    fdp.name = f"decant_bed_{suffix}.proto"
    fdp.package = f"decant.bed.t{suffix}"
    fdp.syntax = "proto3"
    msg = fdp.message_type.add()
    msg.name = "Row"
    for number, (name, ftype) in enumerate(
        [("id", descriptor_pb2.FieldDescriptorProto.TYPE_INT32),
         ("label", descriptor_pb2.FieldDescriptorProto.TYPE_STRING)], start=1):
        f = msg.field.add()
        f.name, f.number, f.type = name, number, ftype
        f.label = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{fdp.package}.Row"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    args = ap.parse_args()
    sr = SchemaRegistryClient({"url": args.url})
    run = f"{int(time.time() * 1000)}"

    @check("avro: serializer registers <topic>-value, deserializer reads it back")
    def avro():
        topic = f"decant-py-avro-{run}"
        ctx = SerializationContext(topic, MessageField.VALUE)
        ser = AvroSerializer(sr, AVRO)
        from decimal import Decimal
        row = {"id": 7, "label": "seven", "amount": Decimal("12.34")}
        data = ser(row, ctx)
        sid = framed_id(data)
        back = AvroDeserializer(sr)(data, ctx)
        assert back == row, back
        latest = sr.get_latest_version(f"{topic}-value")
        assert latest.schema_id == sid and latest.version == 1, latest
        assert sr.get_schema(sid).schema_type in (None, "AVRO")
        # a backward-compatible evolution registers version 2; an incompatible one is refused
        evolved = AVRO.replace('{"name":"id","type":"int"},',
                               '{"name":"id","type":"int"},{"name":"n","type":"long","default":0},')
        assert sr.test_compatibility(f"{topic}-value", Schema(evolved, "AVRO"))
        sid2 = sr.register_schema(f"{topic}-value", Schema(evolved, "AVRO"))
        assert sid2 != sid
        assert sr.get_versions(f"{topic}-value") == [1, 2]
        incompatible = AVRO.replace('"name":"id","type":"int"', '"name":"id","type":"string"')
        assert not sr.test_compatibility(f"{topic}-value", Schema(incompatible, "AVRO"))
        found = sr.lookup_schema(f"{topic}-value", Schema(AVRO, "AVRO"))
        assert found.version == 1 and found.schema_id == sid, found
    avro()

    @check("json schema: JSONSerializer registers, JSONDeserializer validates and reads back")
    def json_schema():
        topic = f"decant-py-json-{run}"
        ctx = SerializationContext(topic, MessageField.VALUE)
        ser = JSONSerializer(JSON_SCHEMA, sr)
        row = {"id": 101, "label": None}
        data = ser(row, ctx)
        sid = framed_id(data)
        assert data[5:6] == b"{", data[:12]
        back = JSONDeserializer(None, schema_registry_client=sr)(data, ctx)
        assert back == row, back
        s = sr.get_schema(sid)
        assert s.schema_type == "JSON", s.schema_type
    json_schema()

    @check("protobuf: ProtobufSerializer registers, ProtobufDeserializer reads back")
    def protobuf():
        topic = f"decant-py-proto-{run}"
        ctx = SerializationContext(topic, MessageField.VALUE)
        cls = protobuf_type(run)
        ser = ProtobufSerializer(cls, sr, {"use.deprecated.format": False})
        data = ser(cls(id=101, label="scooter"), ctx)
        sid = framed_id(data)
        assert data[5] == 0, f"message index [0] is written as one 0 byte, got {data[5:8]!r}"
        back = ProtobufDeserializer(cls, {"use.deprecated.format": False})(data, ctx)
        assert back.id == 101 and back.label == "scooter", back
        s = sr.get_schema(sid)
        assert s.schema_type == "PROTOBUF", s.schema_type
        # The Python serializer registers the schema as a base64 FileDescriptorProto. Confluent's
        # server answers with .proto text; Apicurio answers with what was registered. A reader
        # (decant's Protobuf decoder) must take both.
        if "message Row" not in s.schema_str:
            import base64
            from google.protobuf import descriptor_pb2
            fdp = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(s.schema_str))
            assert [m.name for m in fdp.message_type] == ["Row"], fdp
    protobuf()

    @check("subjects and global config")
    def subjects():
        names = sr.get_subjects()
        for fmt in ("avro", "json", "proto"):
            assert f"decant-py-{fmt}-{run}-value" in names, names
        assert sr.get_compatibility() in ("BACKWARD", "NONE"), sr.get_compatibility()
    subjects()

    failed = sum(1 for _, e in RESULTS if e is not None)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
