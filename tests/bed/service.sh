# Sourced by broker.sh and connect.sh: the life cycle of a bed service started in the background.
# The caller sets NAME (for messages), ADDR (what it serves), DIR, PIDFILE and LOG, and defines
# running_pid (prints the pid of DIR's service, or fails: it also guards against pid reuse) and,
# if the service has helpers of its own to end with it, service_cleanup.

# service_wait_ready PID SECONDS READY_FN: polls READY_FN every 0.1 s until it succeeds (prints
# ADDR), the process PID exits (its log's tail, exit 1) or SECONDS pass (stop, exit 1).
service_wait_ready() {
    local started=$1 seconds=$2 ready=$3 i
    for ((i = 0; i < seconds * 10; i++)); do
        if ! kill -0 "$started" 2>/dev/null; then
            echo "$NAME exited during start-up; last log lines:" >&2
            tail -20 "$LOG" >&2
            rm -f "$PIDFILE"
            run_cleanup
            exit 1
        fi
        if "$ready"; then
            echo "$ADDR"
            return
        fi
        sleep 0.1
    done
    echo "$NAME did not become ready on $ADDR within ${seconds}s; see $LOG" >&2
    service_stop >/dev/null
    exit 1
}

# service_stop: SIGTERM (a clean shutdown), SIGKILL after 30 s.
service_stop() {
    local pid
    if pid=$(running_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 300); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$NAME pid $pid ignored SIGTERM for 30s, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        echo "stopped $ADDR (pid $pid)"
    else
        echo "not running: $ADDR ($DIR)"
    fi
    rm -f "$PIDFILE"
    run_cleanup
}

run_cleanup() {
    if declare -F service_cleanup >/dev/null; then
        service_cleanup
    fi
}

# service_status: exit 0 and a line when running, exit 3 when not.
service_status() {
    local pid
    if pid=$(running_pid); then
        echo "running $ADDR pid $pid dir $DIR"
    else
        echo "stopped $ADDR dir $DIR"
        exit 3
    fi
}
