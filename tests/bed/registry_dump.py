"""The registry side of a capture: every schema id that framed records use, with its subjects.

    registry_dump.py --url URL --messages messages.jsonl --out schemas.jsonl

Reads kcat -J style lines (`key`/`payload` text or `key_b64`/`payload_b64`), takes the schema id
of every key and value framed the Confluent way (magic byte 0, 4-byte big-endian id), asks the
registry (through confluent-kafka-python's SchemaRegistryClient, so Confluent's own client reads
what Confluent's converter wrote) for each id's schema and for the subject versions that use it,
and writes one JSON line per id, ordered by id:

    {"id": 3, "schemaType": "AVRO", "subjects": [["decant.bed.typezoo-key", 1]],
     "references": [], "schema": "<the schema text as registered>"}

Tests feed these to decant's StaticResolver (no registry needed) or register them in a fresh
registry and re-frame the records with the new ids.
"""

import argparse
import base64
import json
import struct
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient


def framed_ids(line):
    rec = json.loads(line)
    for text, b64 in (("key", "key_b64"), ("payload", "payload_b64")):
        if rec.get(b64) is not None:
            data = base64.b64decode(rec[b64])
        elif rec.get(text) is not None:
            data = rec[text].encode("utf-8")
        else:
            continue
        if len(data) >= 5 and data[0] == 0:
            yield struct.unpack(">I", data[1:5])[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--messages", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    ids = set()
    with open(args.messages, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                ids.update(framed_ids(line))
    if not ids:
        sys.exit(f"registry_dump: no framed record in {args.messages}")

    client = SchemaRegistryClient({"url": args.url})
    with open(args.out, "w", encoding="utf-8") as out:
        for sid in sorted(ids):
            schema = client.get_schema(sid)
            subjects = sorted([sv.subject, sv.version] for sv in client.get_schema_versions(sid))
            refs = [
                {"name": r.name, "subject": r.subject, "version": r.version}
                for r in (schema.references or [])
            ]
            line = {
                "id": sid,
                "schemaType": schema.schema_type or "AVRO",
                "subjects": subjects,
                "references": refs,
                "schema": schema.schema_str,
            }
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
    print(f"registry_dump: {len(ids)} schema ids -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
