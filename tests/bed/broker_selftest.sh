#!/usr/bin/env bash
# Self-test of broker.sh: memory and durable (sqlite) nisshi brokers, produce with an idempotent
# Java KafkaProducer (jshell + the Debezium jars' kafka-clients), stop, start, dump again.
#   memory : records readable; after a restart the topic is gone
#   durable: after a restart the same records (offsets, timestamps, headers, keys, values) are back
# and producing after the restart continues at the next offset.
#   tests/bed/broker_selftest.sh [--port PORT]      (default 19095)
set -euo pipefail
BED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PORT=19095
[ "${1:-}" = --port ] && PORT=$2
# shellcheck disable=SC1091
. "${DECANT_CACHE:-$HOME/.cache/decant}/bed.env"
LIBS=$(sed -n "s/.*-cp '[^:]*:\([^']*\)\/\*'.*/\1/p" "$DECANT_DBZ_RUNNER")
T=$(mktemp -d)
trap '"$BED_DIR/broker.sh" stop --dir "$T/b" --port "$PORT" >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
pass=0
fail=0
check() { if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $*" >&2; fi; }

cat >"$T/produce.jsh" <<EOF
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.serialization.ByteArraySerializer;
var p = new java.util.Properties();
p.put("bootstrap.servers", "127.0.0.1:$PORT");
p.put("enable.idempotence", "true");
p.put("acks", "all");
p.put("key.serializer", ByteArraySerializer.class.getName());
p.put("value.serializer", ByteArraySerializer.class.getName());
var pr = new KafkaProducer<byte[], byte[]>(p);
for (int i = 0; i < 5; i++) {
    var r = new ProducerRecord<byte[], byte[]>("selftest", null, ("k" + i).getBytes(), ("v" + i).getBytes());
    r.headers().add("h", ("x" + i).getBytes());
    pr.send(r).get();
}
pr.send(new ProducerRecord<byte[], byte[]>("selftest", "tomb".getBytes(), null)).get();
pr.send(new ProducerRecord<byte[], byte[]>("selftest", new byte[]{(byte) 0xff, 0}, new byte[]{(byte) 0xc3, 0x28})).get();
pr.close();
System.out.println("PRODUCED");
/exit
EOF
produce() {
    jshell -R-Dlog4j2.configurationFile=/dev/null --class-path "$LIBS/kafka-clients-4.3.0.jar:$LIBS/slf4j-api-2.0.18.jar" \
        "$T/produce.jsh" 2>&1 | grep -v SLF4J | grep -q '^PRODUCED'
}
dump() { "$DECANT_TOPIC_DUMP" --bootstrap "127.0.0.1:$PORT" --topic selftest; }
lines() { [ "$(wc -l <"$1")" = "$2" ]; }

for mode in memory durable; do
    flag=
    [ $mode = durable ] && flag=--durable
    rm -rf "$T/b"
    "$BED_DIR/broker.sh" start --dir "$T/b" --port "$PORT" $flag >/dev/null
    "$DECANT_NISSHI" topic create --broker "tcp://127.0.0.1:$PORT" --partitions 1 selftest >/dev/null
    check produce
    dump >"$T/$mode.1"
    check lines "$T/$mode.1" 7
    "$BED_DIR/broker.sh" stop --dir "$T/b" --port "$PORT" >/dev/null
    "$BED_DIR/broker.sh" start --dir "$T/b" --port "$PORT" $flag >/dev/null
    if [ $mode = memory ]; then
        check test "$("$DECANT_TOPIC_DUMP" --bootstrap "127.0.0.1:$PORT" --regex 'selftest' --list)" = ""
    else
        dump >"$T/$mode.2"
        check cmp -s "$T/$mode.1" "$T/$mode.2"
        check produce
        dump >"$T/$mode.3"
        check lines "$T/$mode.3" 14
        check grep -q '"offset":13,' "$T/$mode.3"
    fi
    "$BED_DIR/broker.sh" stop --dir "$T/b" --port "$PORT" >/dev/null
done
echo "broker selftest: $pass passed, $fail failed"
[ "$fail" = 0 ]
