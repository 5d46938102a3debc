#!/usr/bin/env bash
# decant quick start on this machine, no Docker: PostgreSQL (logical WAL) -> real Debezium 3.6.3
# -> local Kafka-API broker -> decant. Sets up the test bed if needed (cached; the first run
# builds the broker, ~20 min on 2 cores), applies a small workload of mixed types, TOAST updates,
# key changes and deletes, decodes every captured record and prints the resulting tables.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${QUICKSTART_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/decant-quickstart.XXXXXX")}
bash tests/bed/run_capture.sh --out "$out" --schema-name quickstart --prefix quickstart
cargo build --release -q -p decant
./target/release/decant decode "$out/messages.jsonl" >"$out/decoded.jsonl"
echo "decoded $(wc -l <"$out/decoded.jsonl") changes from $(wc -l <"$out/messages.jsonl") Kafka records -> $out/decoded.jsonl"
python3 - "$out/decoded.jsonl" <<'PY'
import json, sys
state = {}
for line in open(sys.argv[1]):
    c = json.loads(line)
    if c["op"] == "upsert":
        row = dict(c["row"])
        prev = state.get((c["table"], json.dumps(c["key"])), {})
        for col in c["unchanged"]:          # TOAST: keep the last known value
            row[col] = prev.get(col)
        state[(c["table"], json.dumps(c["key"]))] = row
    elif c["op"] == "delete":
        state.pop((c["table"], json.dumps(c["key"])), None)
tables = {}
for (table, _), row in sorted(state.items()):
    tables.setdefault(table, []).append(row)
def cell(v):
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= 28 else s[:25] + "..."
for table, rows in tables.items():
    cols = list(rows[0].keys())[:8]
    widths = [max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in cols]
    print(f"\n{table} ({len(rows)} rows, first {len(cols)} of {len(rows[0])} columns)")
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(cell(r.get(c)).ljust(w) for c, w in zip(cols, widths)))
PY
