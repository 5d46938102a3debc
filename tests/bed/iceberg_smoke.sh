#!/usr/bin/env bash
# Smoke test of chdb_read.py against a real (tiny) Iceberg table written by pyiceberg.
# pyiceberg lives in a throwaway venv ($DECANT_CACHE/iceberg-smoke-venv), never in the bed venv.
#   tests/bed/iceberg_smoke.sh        # exit 0 when chdb_read.py reads both snapshots correctly
set -euo pipefail
BED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DECANT_CACHE=${DECANT_CACHE:-$HOME/.cache/decant}
# shellcheck disable=SC1091
. "$DECANT_CACHE/bed.env"
V=$DECANT_CACHE/iceberg-smoke-venv
if ! "$V/bin/python" -c 'import pyiceberg' 2>/dev/null; then
    rm -rf "$V"
    python3 -m venv "$V"
    "$V/bin/pip" install -q --disable-pip-version-check 'pyiceberg[sql-sqlite,pyarrow]==0.12.0'
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$V/bin/python" - "$T" <<'EOF'
import datetime, decimal, sys
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
d = sys.argv[1]
cat = SqlCatalog("smoke", uri=f"sqlite:///{d}/catalog.db", warehouse=f"file://{d}/wh")
cat.create_namespace("ns")
schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.decimal128(12, 2)),
                    ("ts", pa.timestamp("us"))])
t = cat.create_table("ns.t", schema=schema)
t.append(pa.table({"id": [2, 1], "name": ["b", None], "amount": [decimal.Decimal("1.50"), None],
                   "ts": [datetime.datetime(2024, 1, 1, 12, 0, 0, 123456), None]}, schema=schema))
open(f"{d}/first", "w").write(t.metadata_location)
t.append(pa.table({"id": [3], "name": ["ü"], "amount": [decimal.Decimal("-3.00")],
                   "ts": [datetime.datetime(1969, 7, 20)]}, schema=schema))
open(f"{d}/second", "w").write(cat.load_table("ns.t").metadata_location)
EOF
first=$("$DECANT_PY" "$BED_DIR/chdb_read.py" "$(cat "$T/first")")
second=$("$DECANT_PY" "$BED_DIR/chdb_read.py" "$(cat "$T/second")")
want_first='{"id":1,"name":null,"amount":null,"ts":null}
{"id":2,"name":"b","amount":"1.50","ts":"2024-01-01 12:00:00.123456"}'
want_second="$want_first"'
{"id":3,"name":"ü","amount":"-3.00","ts":"1969-07-20 00:00:00.000000"}'
[ "$first" = "$want_first" ] || { echo "first snapshot differs:"; echo "$first"; exit 1; }
[ "$second" = "$want_second" ] || { echo "second snapshot differs:"; echo "$second"; exit 1; }
if "$DECANT_PY" "$BED_DIR/chdb_read.py" "$T/nope/metadata/v1.metadata.json" 2>/dev/null; then
    echo "missing file did not fail"
    exit 1
fi
echo "iceberg smoke: 2 passed, 0 failed"
