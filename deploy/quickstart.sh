#!/usr/bin/env bash
# decant quick start on this machine, no Docker: PostgreSQL (logical WAL) -> real Debezium 3.6.3
# -> local Apache Kafka (KRaft) -> `decant run` twice, side by side: into compacted upsert topics and
# into Iceberg tables (SQLite catalog, local warehouse); both printed as tables, the Iceberg ones
# through an independent reader (chdb, embedded ClickHouse).
# Sets up the test bed if needed (cached; the first run installs PostgreSQL, Kafka and Debezium,
# a few minutes),
# applies a workload of mixed types, TOAST updates, key changes and deletes, runs decant exactly
# once on it with embedded defaults, and prints every output topic reduced to its last value
# per key (a tombstone removes the key), i.e. what a compacted topic / Tableflow upsert table shows.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${QUICKSTART_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/decant-quickstart.XXXXXX")}
mkdir -p "$work"
cargo build --release -q -p decant
bash tests/bed/run_capture.sh --out "$work/capture" --work "$work/bed" --keep-broker \
    --schema-name quickstart --prefix quickstart
# shellcheck disable=SC1091
. "${DECANT_CACHE:-$HOME/.cache/decant}/bed.env"
port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/bed/dbz.properties" | head -1)
cat >"$work/decant.toml" <<TOML
[kafka]
bootstrap_servers = "127.0.0.1:$port"
group_id = "decant-quickstart"
transactional_id = "decant-quickstart-0"
[source]
topic_pattern = 'quickstart\.quickstart\..*'
[output]
prefix = "out"
partitions = 1
[dead_letter]
topic = "out.dead-letter"
[state]
dir = "$work/state"
[observability]
listen = "127.0.0.1:0"
TOML
# The same source into Iceberg: an upsert table per source table, offsets in every snapshot.
sed -e 's/^group_id = .*/group_id = "decant-quickstart-lake"/' \
    -e 's/^prefix = "out"/type = "iceberg"/' "$work/decant.toml" >"$work/decant-lake.toml"
cat >>"$work/decant-lake.toml" <<TOML
[iceberg]
catalog_uri = "sqlite:$work/lake/catalog.db"
warehouse = "$work/lake/warehouse"
commit_interval_ms = 2000
TOML
sed -i "s#^dir = .*#dir = \"$work/state-lake\"#" "$work/decant-lake.toml"
./target/release/decant validate --config "$work/decant.toml"
./target/release/decant validate --config "$work/decant-lake.toml"
./target/release/decant run --config "$work/decant.toml" >"$work/decant.log" 2>&1 &
decant_pid=$!
./target/release/decant run --config "$work/decant-lake.toml" >"$work/decant-lake.log" 2>&1 &
lake_pid=$!
cleanup() {
    kill -TERM "$decant_pid" "$lake_pid" 2>/dev/null
    wait "$decant_pid" "$lake_pid" 2>/dev/null
    bash tests/bed/broker.sh stop --dir "$work/bed/broker" --port "$port" >/dev/null 2>&1
}
trap cleanup EXIT
# Wait until the output topics stop growing (decant commits every second by default).
last=-1 same=0
for _ in $(seq 1 180); do
    sleep 1
    n=$("$DECANT_TOPIC_DUMP" --bootstrap "127.0.0.1:$port" --regex 'out\.quickstart\..*' 2>/dev/null | wc -l)
    if [ "$n" -gt 0 ] && [ "$n" = "$last" ]; then
        same=$((same + 1))
        [ "$same" -ge 4 ] && break
    else
        same=0
    fi
    last=$n
done
"$DECANT_TOPIC_DUMP" --bootstrap "127.0.0.1:$port" --regex 'out\.quickstart\..*' --out "$work/output.jsonl"
echo "decant wrote $(wc -l <"$work/output.jsonl") records to the compacted topics out.quickstart.* (log: $work/decant.log)"
python3 - "$work/output.jsonl" <<'PY'
import json, sys
state = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    topic, key = r["topic"], r.get("key")
    if r.get("payload") is None:
        state.get(topic, {}).pop(key, None)     # tombstone: the key is gone
    else:
        state.setdefault(topic, {})[key] = json.loads(r["payload"])
def cell(v):
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= 28 else s[:25] + "..."
for topic, rows in sorted(state.items()):
    def order(k):   # by key values, numbers numerically
        vals = json.loads(k).values() if k else []
        return [f"{v:020d}" if isinstance(v, int) else str(v) for v in vals]
    rows = [rows[k] for k in sorted(rows, key=order)]
    if not rows:
        print(f"\n{topic}: empty"); continue
    cols = list(rows[0].keys())[:8]
    widths = [max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in cols]
    print(f"\n{topic} ({len(rows)} rows, first {len(cols)} of {len(rows[0])} columns)")
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(cell(r.get(c)).ljust(w) for c, w in zip(cols, widths)))
PY

# Iceberg: wait until the catalog stops moving, then read every table at its current snapshot
# with chdb (not decant's code), as any engine would.
last="" same=0
for _ in $(seq 1 180); do
    sleep 1
    now=$("$DECANT_PY" tests/bed/lake_tables.py "$work/lake/catalog.db" 2>/dev/null || true)
    if [ -n "$now" ] && [ "$now" = "$last" ]; then
        same=$((same + 1))
        [ "$same" -ge 4 ] && break
    else
        same=0
    fi
    last=$now
done
echo
echo "decant committed these Iceberg tables (catalog $work/lake/catalog.db, warehouse $work/lake/warehouse; log: $work/decant-lake.log):"
"$DECANT_PY" tests/bed/lake_tables.py "$work/lake/catalog.db" | while read -r line; do
    meta=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["metadata"])' "$line")
    name=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(j["namespace"] + "." + j["table"])' "$line")
    # Binary columns are printed base64-encoded.
    binary=$(python3 -c '
import json, sys
m = json.load(open(sys.argv[1].removeprefix("file://")))
s = [x for x in m["schemas"] if x["schema-id"] == m["current-schema-id"]][0]
print(",".join(f["name"] for f in s["fields"] if f["type"] == "binary"))' "$meta")
    TZ=UTC "$DECANT_PY" tests/bed/chdb_read.py "$meta" --base64="$binary" >"$work/lake-rows.jsonl"
    python3 - "$name" "$meta" "$work/lake-rows.jsonl" <<'PY'
import json, sys
name, meta, path = sys.argv[1:4]
rows = [json.loads(l) for l in open(path)]
snap = json.load(open(meta.removeprefix("file://")))
current = [s for s in snap.get("snapshots", []) if s["snapshot-id"] == snap.get("current-snapshot-id")]
offsets = current[0]["summary"].get("decant.offsets", "{}") if current else "{}"
def cell(v):
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= 28 else s[:25] + "..."
print(f"\niceberg {name} ({len(rows)} rows, {len(snap.get('snapshots', []))} snapshots; committed offsets {offsets})")
if rows:
    cols = list(rows[0].keys())[:8]
    widths = [max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(cell(r.get(c)).ljust(w) for c, w in zip(cols, widths)))
PY
done
