# Sourced by broker.sh, connect.sh and registry.sh: the life cycle of a bed service started in the
# background, and the small helpers they share. The caller sets NAME (for messages), ADDR (what it
# serves), DIR, PIDFILE and LOG, and defines running_pid (prints the pid of DIR's service, or
# fails; usually `service_pid MARKER`) and, if the service has helpers of its own to end with it,
# service_cleanup.

# service_pid MARKER: the pid in PIDFILE while that process runs and its command line contains
# MARKER (a reused pid belongs to another command line); fails otherwise.
service_pid() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$1" || return 1
    echo "$pid"
}

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# bed_env NAME: $NAME from the environment, else the line setup.sh wrote into
# $DECANT_CACHE/bed.env, else empty.
bed_env() {
    local v=${!1:-}
    if [ -z "$v" ] && [ -f "$DECANT_CACHE/bed.env" ]; then
        v=$(sed -n "s/^$1=//p" "$DECANT_CACHE/bed.env")
    fi
    echo "$v"
}

# make_certs LABEL: in the current directory, with openssl: a CA (ca.pem/key), an unrelated CA
# (other-ca.pem/key, for "unknown CA" tests), a server certificate signed by the CA (server.pem/key,
# SAN 127.0.0.1 and localhost) and a client certificate (client.pem/key, for mutual TLS).
make_certs() {
    local label=$1 days=3650 ca
    for ca in ca other-ca; do
        openssl req -x509 -newkey rsa:2048 -nodes -days $days -subj "/CN=$label $ca" \
            -keyout $ca.key -out $ca.pem 2>/dev/null
    done
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
        -extfile server.ext -out server.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=decant-client" -keyout client.key -out client.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
        -extfile client.ext -out client.pem 2>/dev/null
    rm -f ./*.csr ./*.ext ./*.srl
}

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

# service_kill: SIGKILL at once, as a crash does (nothing is flushed or closed cleanly); fails
# when the service is not running, since then nothing crashed.
service_kill() {
    local pid
    if ! pid=$(running_pid); then
        echo "$NAME is not running: $ADDR ($DIR)" >&2
        exit 1
    fi
    kill -KILL "$pid" 2>/dev/null || true
    # running_pid, not kill -0: a zombie not yet reaped has no command line and counts as gone
    for _ in $(seq 1 100); do
        running_pid >/dev/null || break
        sleep 0.1
    done
    echo "killed $ADDR (pid $pid)"
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
