#!/usr/bin/env bash
# decant as the EXTRA_BENCH of ../shared/bench/flink-debezium-bench/run.sh, so its decode
# throughput lands in the same run (and table) as Flink's own Debezium decoder:
#   cargo build --release -p decant
#   EXTRA_BENCH="$PWD/benches/flink_anchor.sh" bash ../shared/bench/flink-debezium-bench/run.sh
# Called as: flink_anchor.sh --file F.jsonl --schema S.schema --schema-include true|false --passes N
# Prints: RESULT decant <file> <msgs> <bytes> <rows> <median_s> <min_s> <max_s> <msgs/s> <MB/s> 0
# Schemaless shapes get decant's declared types (the semantic ones: Date, MicroTimestamp and
# exact decimals, where Flink's job declares INT/BIGINT/DECIMAL); checksum 0 (not computed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${DECANT_BIN:-$here/../target/release/decant}
file= schema= include=false passes=3
while [ $# -gt 0 ]; do
  case $1 in
    --file) file=$2; shift 2 ;;
    --schema) schema=$2; shift 2 ;;
    --schema-include) include=$2; shift 2 ;;
    --passes) passes=$2; shift 2 ;;
    *) echo "flink_anchor.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cfg=$(mktemp)
trap 'rm -f "$cfg"' EXIT
case "$(basename "$schema")" in
  products.schema) cat >"$cfg" <<'TOML'
[decode.tables."inventory.products"]
key = ["id"]
columns = [ { name = "id", type = "int64" }, { name = "name", type = "string" },
            { name = "description", type = "string" }, { name = "weight", type = "decimal(10,2)" } ]
TOML
  ;;
  orders.schema) cat >"$cfg" <<'TOML'
[decode.tables."public.orders"]
key = ["order_id"]
columns = [
  { name = "order_id", type = "int64" }, { name = "customer_id", type = "int64" },
  { name = "store_id", type = "int32" }, { name = "status", type = "string" },
  { name = "currency", type = "string" }, { name = "total_amount", type = "decimal_string(12,2)" },
  { name = "tax_amount", type = "decimal_string(12,2)" }, { name = "discount_amount", type = "decimal_string(12,2)" },
  { name = "quantity", type = "int32" }, { name = "priority", type = "int16" },
  { name = "is_gift", type = "boolean" }, { name = "shipping_method", type = "string" },
  { name = "shipping_address", type = "string" }, { name = "coupon_code", type = "string" },
  { name = "notes", type = "string" }, { name = "order_date", type = "io.debezium.time.Date" },
  { name = "created_at", type = "io.debezium.time.MicroTimestamp" },
  { name = "updated_at", type = "io.debezium.time.MicroTimestamp" },
  { name = "shipped_at", type = "io.debezium.time.MicroTimestamp" }, { name = "row_version", type = "int32" } ]
TOML
  ;;
  *) : >"$cfg" ;;
esac
args=(decode --raw --discard "$file")
[ "$include" = true ] || args+=(--config "$cfg")
times=()
for _ in $(seq 1 "$passes"); do
  line=$("$bin" "${args[@]}" 2>&1 >/dev/null | grep '^decoded')
  times+=("$(sed -E 's/.* in ([0-9.]+) s:.*/\1/' <<<"$line")")
  msgs=$(sed -E 's/^decoded ([0-9]+) messages.*/\1/' <<<"$line")
done
bytes=$(awk '{ n += length($0) } END { print n }' "$file")
python3 - "$(basename "$file")" "$msgs" "$bytes" "${times[@]}" <<'PY'
import statistics, sys
name, msgs, nbytes, *t = sys.argv[1:]
msgs, nbytes, t = int(msgs), int(nbytes), sorted(float(x) for x in t)
med = statistics.median(t)
print("\t".join(map(str, ["RESULT", "decant", name, msgs, nbytes, 0, f"{med:.6f}", f"{t[0]:.6f}",
                          f"{t[-1]:.6f}", f"{msgs / med:.0f}", f"{nbytes / 1e6 / med:.1f}", 0])))
PY
