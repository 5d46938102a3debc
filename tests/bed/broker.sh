#!/usr/bin/env bash
# Start/stop a single-node Apache Kafka broker (KRaft, combined broker + controller) on
# 127.0.0.1 for the decant test bed.
#
#   tests/bed/broker.sh start  [--dir DIR] [--port PORT]   # prints the bootstrap address
#   tests/bed/broker.sh stop   [--dir DIR] [--port PORT]
#   tests/bed/broker.sh status [--dir DIR] [--port PORT]   # exit 0 running, 3 not running
#
# PORT (the client listener) defaults to 19092, DIR to $DECANT_CACHE/broker-$PORT. DIR holds
# server.properties, the log directory data/ (formatted once: a restart keeps topics, offsets and
# transactions), broker.pid, broker.log and controller.port (the controller listener, a free port
# chosen at the first start and kept). Internal topics have replication factor 1. start is
# idempotent: if the broker of DIR is already up it just prints the address. The jars come from
# tests/bed/setup.sh (DECANT_KAFKA_LIBS in bed.env).
set -euo pipefail

DECANT_CACHE=${DECANT_CACHE:-$HOME/.cache/decant}
BED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=service.sh
. "$BED_DIR/service.sh"

usage() { echo "usage: $0 start|stop|status [--dir DIR] [--port PORT]" >&2; exit 2; }
[ $# -ge 1 ] || usage
cmd=$1
shift
PORT=19092
DIR=
while [ $# -gt 0 ]; do
    case $1 in
        --dir) DIR=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        *) usage ;;
    esac
done
DIR=${DIR:-$DECANT_CACHE/broker-$PORT}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PIDFILE=$DIR/broker.pid
LOG=$DIR/broker.log
PROPS=$DIR/server.properties
ADDR=127.0.0.1:$PORT
NAME="broker.sh: Kafka"

LIBS=${DECANT_KAFKA_LIBS:-}
if [ -z "$LIBS" ] && [ -f "$DECANT_CACHE/bed.env" ]; then
    LIBS=$(sed -n 's/^DECANT_KAFKA_LIBS=//p' "$DECANT_CACHE/bed.env")
fi

running_pid() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # guard against pid reuse: the process must be this directory's broker
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "kafka.Kafka $PROPS" || return 1
    echo "$pid"
}

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

java_run() {
    # SerialGC: one broker per test on a 2-core machine; no parallel GC threads fighting.
    java -Xms128m -Xmx768m -XX:+UseSerialGC -Dlog4j2.configurationFile="$BED_DIR/kafka/log4j2.yaml" \
        -cp "$LIBS/*" "$@"
}

write_properties() {
    local cport=$1
    cat >"$PROPS" <<PROPS_EOF
# written by tests/bed/broker.sh
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://$ADDR,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://$ADDR
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS_EOF
}

do_start() {
    [ -n "$LIBS" ] && [ -d "$LIBS" ] || { echo "broker.sh: Kafka jars not found (DECANT_KAFKA_LIBS='$LIBS'; run tests/bed/setup.sh)" >&2; exit 1; }
    local pid
    if pid=$(running_pid); then
        echo "$ADDR"
        return
    fi
    if port_open "$PORT"; then
        echo "broker.sh: 127.0.0.1:$PORT is already in use by another process" >&2
        exit 1
    fi
    local cport
    cport=$(cat "$DIR/controller.port" 2>/dev/null || true)
    if [ -z "$cport" ]; then
        cport=$(free_port)
        echo "$cport" >"$DIR/controller.port"
    fi
    write_properties "$cport"
    if [ ! -f "$DIR/data/meta.properties" ]; then
        local cluster
        cluster=$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
        java_run kafka.tools.StorageTool format -t "$cluster" -c "$PROPS" --standalone >>"$LOG" 2>&1 ||
            { echo "broker.sh: formatting $DIR/data failed; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1; }
    fi
    local mark
    mark=$(wc -l <"$LOG" 2>/dev/null || echo 0)
    (
        # own session (not killed with the caller's process group); no inherited lock fds
        exec setsid java -Xms128m -Xmx768m -XX:+UseSerialGC \
            -Dlog4j2.configurationFile="$BED_DIR/kafka/log4j2.yaml" \
            -cp "$LIBS/*" kafka.Kafka "$PROPS" </dev/null >>"$LOG" 2>&1 8>&- 9>&-
    ) &
    local started=$!
    echo "$started" >"$PIDFILE"
    BROKER_LOG_MARK=$mark
    service_wait_ready "$started" 60 broker_ready
}

# "Kafka Server started" (after this start's mark in the log) follows the listeners' start and
# the controller's activation.
broker_ready() {
    tail -n +"$((BROKER_LOG_MARK + 1))" "$LOG" | grep -q "Kafka Server started" && port_open "$PORT"
}

case $cmd in
    start) do_start ;;
    stop) service_stop ;;
    status) service_status ;;
    *) usage ;;
esac
