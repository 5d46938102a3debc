#!/usr/bin/env bash
# Start/stop a Kafka Connect worker (distributed mode, one worker) with Debezium's connectors on
# 127.0.0.1 for the decant test bed. Connectors are then created through its REST API, exactly as
# users do (POST /connectors).
#
#   tests/bed/connect.sh start  [--dir DIR] [--port PORT] [--bootstrap HOST:PORT]  # prints the REST URL
#   tests/bed/connect.sh stop   [--dir DIR] [--port PORT]
#   tests/bed/connect.sh kill   [--dir DIR] [--port PORT]   # SIGKILL: a crash, offsets unflushed
#   tests/bed/connect.sh status [--dir DIR] [--port PORT]   # exit 0 running, 3 not running
#
# PORT (REST, 127.0.0.1 only) defaults to 18083, DIR to $DECANT_CACHE/connect-worker-$PORT,
# BOOTSTRAP to 127.0.0.1:19092. DIR holds worker.properties, connect.pid and connect.log. The
# worker keeps its configs, offsets and statuses in the topics decant-connect-<PORT>-{configs,
# offsets,status} of that broker (replication factor 1), so a restart with the same port and
# broker resumes every connector where its last offset flush (every second) left it. JSON
# converters with schemas on for keys and values (the Connect default); Debezium's plugins from
# DECANT_CONNECT_PLUGINS (plugin.path), the worker from DECANT_CONNECT_LIBS (both in bed.env,
# written by tests/bed/setup.sh). Ready = GET /health answers 200 and GET /connector-plugins lists
# a connector of every plugin directory. start is idempotent: if DIR's worker is up it just prints
# the URL.
set -euo pipefail

DECANT_CACHE=${DECANT_CACHE:-$HOME/.cache/decant}
BED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=service.sh
. "$BED_DIR/service.sh"

usage() { echo "usage: $0 start|stop|kill|status [--dir DIR] [--port PORT] [--bootstrap HOST:PORT]" >&2; exit 2; }
[ $# -ge 1 ] || usage
cmd=$1
shift
PORT=18083
DIR=
BOOTSTRAP=127.0.0.1:19092
while [ $# -gt 0 ]; do
    case $1 in
        --dir) DIR=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --bootstrap) BOOTSTRAP=$2; shift 2 ;;
        *) usage ;;
    esac
done
DIR=${DIR:-$DECANT_CACHE/connect-worker-$PORT}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PIDFILE=$DIR/connect.pid
LOG=$DIR/connect.log
PROPS=$DIR/worker.properties
URL=http://127.0.0.1:$PORT
ADDR=$URL
NAME="connect.sh: the worker"

LIBS=$(bed_env DECANT_CONNECT_LIBS)
PLUGINS=$(bed_env DECANT_CONNECT_PLUGINS)

# guard against pid reuse: the process must be this directory's worker
running_pid() { service_pid "ConnectDistributed $PROPS"; }

write_properties() {
    cat >"$PROPS" <<PROPS_EOF
# written by tests/bed/connect.sh
bootstrap.servers=$BOOTSTRAP
group.id=decant-connect-$PORT
config.storage.topic=decant-connect-$PORT-configs
offset.storage.topic=decant-connect-$PORT-offsets
status.storage.topic=decant-connect-$PORT-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
offset.storage.partitions=1
status.storage.replication.factor=1
status.storage.partitions=1
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=true
value.converter.schemas.enable=true
# source offsets are committed every second (default 60 s): a restarted worker re-reads little
offset.flush.interval.ms=1000
listeners=http://127.0.0.1:$PORT
rest.advertised.host.name=127.0.0.1
rest.advertised.port=$PORT
plugin.path=$PLUGINS
# one worker: a restarted worker gets its tasks back at once, not after the default 5 minutes
scheduled.rebalance.max.delay.ms=0
# every plugin directory has ServiceLoader manifests: no class scan (~30 s on 2 cores)
plugin.discovery=service_load
task.shutdown.graceful.timeout.ms=10000
PROPS_EOF
}

# Every plugin directory debezium-connector-X offers a class io.debezium.connector.X…
plugins_listed() {
    local listed d name
    listed=$(curl -fsS -m 5 "$URL/connector-plugins" 2>/dev/null) || return 1
    for d in "$PLUGINS"/*/; do
        name=$(basename "$d")
        name=${name#debezium-connector-}
        grep -q "\"class\":\"io\.debezium\.connector\.$name" <<<"$listed" || return 1
    done
}

do_start() {
    [ -n "$LIBS" ] && [ -d "$LIBS" ] || { echo "connect.sh: worker jars not found (DECANT_CONNECT_LIBS='$LIBS'; run tests/bed/setup.sh)" >&2; exit 1; }
    [ -n "$PLUGINS" ] && [ -d "$PLUGINS" ] || { echo "connect.sh: plugins not found (DECANT_CONNECT_PLUGINS='$PLUGINS'; run tests/bed/setup.sh)" >&2; exit 1; }
    if running_pid >/dev/null; then
        echo "$URL"
        return
    fi
    if port_open "$PORT"; then
        echo "connect.sh: 127.0.0.1:$PORT is already in use by another process" >&2
        exit 1
    fi
    write_properties
    (
        # own session (not killed with the caller's process group); no inherited lock fds
        exec setsid java -Xms128m -Xmx768m -XX:+UseSerialGC \
            -Dlog4j2.configurationFile="$BED_DIR/connect/log4j2.properties" \
            -cp "$LIBS/*" org.apache.kafka.connect.cli.ConnectDistributed "$PROPS" \
            </dev/null >>"$LOG" 2>&1 8>&- 9>&-
    ) &
    local started=$!
    echo "$started" >"$PIDFILE"
    # /health answers 200 once the herder has joined its group and read the config topic
    service_wait_ready "$started" 120 worker_ready
}

worker_ready() { curl -fsS -m 5 -o /dev/null "$URL/health" 2>/dev/null && plugins_listed; }

case $cmd in
    start) do_start ;;
    stop) service_stop ;;
    kill) service_kill ;;
    status) service_status ;;
    *) usage ;;
esac
