#!/usr/bin/env bash
# Start/stop a local nisshi (Kafka-compatible) broker on 127.0.0.1 for the decant test bed.
#
#   tests/bed/broker.sh start  [--dir DIR] [--port PORT] [--durable]   # prints the bootstrap address
#   tests/bed/broker.sh stop   [--dir DIR] [--port PORT]
#   tests/bed/broker.sh status [--dir DIR] [--port PORT]               # exit 0 running, 3 not running
#
# PORT defaults to 19092, DIR to $DECANT_CACHE/broker-$PORT (pid file broker.pid, log broker.log).
# Storage: memory://nisshi/ (gone when the broker stops), or with --durable the libsql engine
# sqlite://broker.db, a SQLite file DIR/broker.db that survives restarts (nisshi resolves the
# sqlite URL's host+path against its working directory, so the broker runs with cwd=DIR).
# nisshi does not auto-create topics: create them (Kafka AdminClient / `nisshi topic create`).
# start is idempotent: if the broker of DIR is already up it just prints the address (a running
# broker with a different storage mode is an error). Needs tests/bed/setup.sh to have run.
set -euo pipefail

DECANT_CACHE=${DECANT_CACHE:-$HOME/.cache/decant}

usage() { echo "usage: $0 start|stop|status [--dir DIR] [--port PORT] [--durable]" >&2; exit 2; }
[ $# -ge 1 ] || usage
cmd=$1
shift
PORT=19092
DIR=
DURABLE=0
while [ $# -gt 0 ]; do
    case $1 in
        --dir) DIR=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --durable) DURABLE=1; shift ;;
        *) usage ;;
    esac
done
DIR=${DIR:-$DECANT_CACHE/broker-$PORT}
PIDFILE=$DIR/broker.pid
LOG=$DIR/broker.log
MODEFILE=$DIR/broker.mode
ADDR=127.0.0.1:$PORT

NISSHI=${DECANT_NISSHI:-}
if [ -z "$NISSHI" ] && [ -f "$DECANT_CACHE/bed.env" ]; then
    NISSHI=$(sed -n 's/^DECANT_NISSHI=//p' "$DECANT_CACHE/bed.env")
fi
NISSHI=${NISSHI:-$DECANT_CACHE/nisshi-0.7.0-pre.2/bin/nisshi}

running_pid() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # guard against pid reuse
    [ "$(readlink -f /proc/"$pid"/exe 2>/dev/null)" = "$(readlink -f "$NISSHI")" ] || return 1
    echo "$pid"
}

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; }

metadata_ok() { timeout 10 "$NISSHI" topic list --broker "tcp://$ADDR" >/dev/null 2>&1; }

do_start() {
    [ -x "$NISSHI" ] || { echo "broker.sh: nisshi not found at $NISSHI (run tests/bed/setup.sh)" >&2; exit 1; }
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    local mode=memory storage=memory://nisshi/
    if [ "$DURABLE" = 1 ]; then
        mode=durable
        storage=sqlite://broker.db
        "$NISSHI" --help | grep -q '^Storage engines:.*libsql' || {
            echo "broker.sh: --durable needs nisshi built with the libsql feature ($NISSHI has: $("$NISSHI" --help | sed -n 's/^Storage engines: //p'))" >&2
            exit 1
        }
    fi
    local pid
    if pid=$(running_pid); then
        if [ "$(cat "$MODEFILE" 2>/dev/null)" != "$mode" ]; then
            echo "broker.sh: broker in $DIR already running (pid $pid) in mode $(cat "$MODEFILE" 2>/dev/null); stop it first" >&2
            exit 1
        fi
        metadata_ok || { echo "broker.sh: broker pid $pid runs but does not answer metadata requests" >&2; exit 1; }
        echo "$ADDR"
        return
    fi
    if port_open; then
        echo "broker.sh: 127.0.0.1:$PORT is already in use by another process" >&2
        exit 1
    fi
    echo "$mode" >"$MODEFILE"
    (
        cd "$DIR"
        # own session (not killed with the caller's process group); no inherited lock fds
        exec setsid "$NISSHI" broker \
            --cluster-id decant-bed \
            --listener-url "tcp://$ADDR" \
            --advertised-listener-url "tcp://$ADDR" \
            --storage-engine "$storage" \
            </dev/null >>"$LOG" 2>&1 8>&- 9>&-
    ) &
    local started=$!
    echo "$started" >"$PIDFILE"
    for _ in $(seq 1 150); do
        # Liveness by pid only: until the subshell has exec'd into nisshi, /proc/PID/exe is
        # still bash or setsid, and the pid-reuse guard of running_pid would call it dead.
        if ! kill -0 "$started" 2>/dev/null; then
            echo "broker.sh: nisshi exited during start-up; last log lines:" >&2
            tail -20 "$LOG" >&2
            rm -f "$PIDFILE"
            exit 1
        fi
        if port_open && metadata_ok; then
            echo "$ADDR"
            return
        fi
        sleep 0.2
    done
    echo "broker.sh: nisshi did not become ready on $ADDR within 30s; see $LOG" >&2
    do_stop >/dev/null
    exit 1
}

do_stop() {
    local pid
    if pid=$(running_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "broker.sh: nisshi pid $pid ignored SIGTERM for 10s, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        echo "stopped $ADDR (pid $pid)"
    else
        echo "not running: $ADDR ($DIR)"
    fi
    rm -f "$PIDFILE"
}

do_status() {
    local pid
    if pid=$(running_pid); then
        echo "running $ADDR pid $pid mode $(cat "$MODEFILE" 2>/dev/null) dir $DIR"
    else
        echo "stopped $ADDR dir $DIR"
        exit 3
    fi
}

case $cmd in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    *) usage ;;
esac
