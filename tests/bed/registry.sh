#!/usr/bin/env bash
# Start/stop a Schema Registry on 127.0.0.1 for the decant test bed: Apicurio Registry 3.3.3
# (Maven Central, tests/bed/registry/pom.xml), whose Confluent-compatible API is what Confluent's
# serializers, converters and clients (and decant) talk to.
#
#   tests/bed/registry.sh start  [--dir DIR] [--port PORT] [--secure]   # prints the Confluent API URL
#   tests/bed/registry.sh stop   [--dir DIR] [--port PORT]
#   tests/bed/registry.sh status [--dir DIR] [--port PORT]   # exit 0 running, 3 not running
#
# The URL printed is http://127.0.0.1:PORT/apis/ccompat/v7: use it as `schema.registry.url`
# (Java), `url` (confluent-kafka-python) or `decant decode --registry`. PORT defaults to 18081,
# DIR to $DECANT_CACHE/registry-$PORT. DIR holds data/ (an H2 database file: a restart keeps
# every subject, version and id), registry.pid, registry.log and management.port (Quarkus's
# management interface, /q/health, on 127.0.0.1 at a free port chosen at the first start and
# kept). The first start of a DIR sets the global compatibility to BACKWARD (Confluent's default;
# Apicurio's is NONE). No authentication (anonymous read and write). Ready = GET /subjects answers
# 200 (~12 s on the 2-core bed machine). start is idempotent: if DIR's registry is up it just
# prints the URL. The application (DECANT_REGISTRY_HOME) and a Java >= 21 (DECANT_REGISTRY_JAVA)
# come from tests/bed/setup.sh (step `registry`, written to bed.env).
#
# --secure also starts tests/bed/registry_front.py beside it: three HTTPS fronts on free ports
# (chosen at the first start, kept in DIR/secure.env) forwarding to the registry: one requiring
# basic authentication (decant-key / decant-secret, like Confluent Cloud's API keys), one a
# bearer token (decant-token), one a client certificate (mTLS). Certificates are made with
# openssl into DIR/tls: a CA, the server's (SAN 127.0.0.1, localhost), a client's, and an
# unrelated CA (other-ca.pem) for "unknown CA" tests. DIR/secure.env (KEY=value lines) names
# every URL, file and credential: BASIC_URL, BEARER_URL, MTLS_URL, CA, OTHER_CA, CLIENT_CERT,
# CLIENT_KEY, BASIC_USER, BASIC_PASSWORD, BEARER_TOKEN.
set -euo pipefail

DECANT_CACHE=${DECANT_CACHE:-$HOME/.cache/decant}
BED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=service.sh
. "$BED_DIR/service.sh"

usage() { echo "usage: $0 start|stop|status [--dir DIR] [--port PORT] [--secure]" >&2; exit 2; }
[ $# -ge 1 ] || usage
cmd=$1
shift
PORT=18081
DIR=
SECURE=0
while [ $# -gt 0 ]; do
    case $1 in
        --dir) DIR=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --secure) SECURE=1; shift ;;
        *) usage ;;
    esac
done
DIR=${DIR:-$DECANT_CACHE/registry-$PORT}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PIDFILE=$DIR/registry.pid
LOG=$DIR/registry.log
ADDR=http://127.0.0.1:$PORT/apis/ccompat/v7
NAME="registry.sh: Schema Registry"

HOME_DIR=$(bed_env DECANT_REGISTRY_HOME)
JAVA=$(bed_env DECANT_REGISTRY_JAVA)

# guard against pid reuse: the process must be this directory's registry
running_pid() { service_pid "-Ddecant.bed.registry=$DIR "; }

registry_ready() { curl -fsS -m 5 -o /dev/null "$ADDR/subjects" 2>/dev/null; }

TLS=$DIR/tls
SECURE_ENV=$DIR/secure.env
FRONT_PIDFILE=$DIR/front.pid

secure_get() { sed -n "s/^$1=//p" "$SECURE_ENV"; }

# CA, server and client certificates and an unrelated CA (once per DIR).
make_tls() {
    [ -f "$TLS/.ok" ] && return
    command -v openssl >/dev/null || { echo "registry.sh: --secure needs openssl" >&2; exit 1; }
    rm -rf "$TLS"
    mkdir -p "$TLS"
    (
        cd "$TLS"
        make_certs "decant bed registry"
    )
    touch "$TLS/.ok"
}

write_secure_env() {
    [ -f "$SECURE_ENV" ] && return
    local p1 p2 p3
    p1=$(free_port); p2=$(free_port); p3=$(free_port)
    cat >"$SECURE_ENV" <<ENV_EOF
BASIC_URL=https://127.0.0.1:$p1
BEARER_URL=https://127.0.0.1:$p2
MTLS_URL=https://127.0.0.1:$p3
CA=$TLS/ca.pem
OTHER_CA=$TLS/other-ca.pem
CLIENT_CERT=$TLS/client.pem
CLIENT_KEY=$TLS/client.key
BASIC_USER=decant-key
BASIC_PASSWORD=decant-secret
BEARER_TOKEN=decant-token
ENV_EOF
}

front_running() {
    local pid
    pid=$(cat "$FRONT_PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$TLS/server.pem"
}

start_front() {
    front_running && return
    local port
    (
        exec setsid python3 "$BED_DIR/registry_front.py" --upstream "$ADDR" \
            --cert "$TLS/server.pem" --key "$TLS/server.key" --ca "$TLS/ca.pem" \
            --basic "${BASIC#https://}:$(secure_get BASIC_USER):$(secure_get BASIC_PASSWORD)" \
            --bearer "${BEARER#https://}:$(secure_get BEARER_TOKEN)" --mtls "${MTLS#https://}" \
            </dev/null >>"$DIR/front.log" 2>&1 8>&- 9>&-
    ) &
    echo $! >"$FRONT_PIDFILE"
    for _ in $(seq 1 100); do
        grep -q '^ready' "$DIR/front.log" 2>/dev/null && tail -1 "$DIR/front.log" | grep -q '^ready' && return
        kill -0 "$(cat "$FRONT_PIDFILE")" 2>/dev/null || break
        sleep 0.1
    done
    echo "registry.sh: registry_front.py did not start; see $DIR/front.log" >&2
    tail -20 "$DIR/front.log" >&2
    exit 1
}

stop_front() {
    if front_running; then
        kill -TERM "$(cat "$FRONT_PIDFILE")" 2>/dev/null || true
    fi
    rm -f "$FRONT_PIDFILE"
}

# What service.sh's stop and failed start also end: the TLS fronts of a --secure registry.
service_cleanup() { stop_front; }

secure_up() {
    make_tls
    write_secure_env
    BASIC=$(secure_get BASIC_URL); BEARER=$(secure_get BEARER_URL); MTLS=$(secure_get MTLS_URL)
    : >"$DIR/front.log"
    start_front
}

do_start() {
    [ -n "$HOME_DIR" ] && [ -f "$HOME_DIR/quarkus-run.jar" ] ||
        { echo "registry.sh: Apicurio Registry not found (DECANT_REGISTRY_HOME='$HOME_DIR'; run tests/bed/setup.sh registry env)" >&2; exit 1; }
    [ -n "$JAVA" ] && [ -x "$JAVA" ] ||
        { echo "registry.sh: no Java >= 21 (DECANT_REGISTRY_JAVA='$JAVA'; run tests/bed/setup.sh registry env)" >&2; exit 1; }
    if running_pid >/dev/null; then
        [ "$SECURE" = 1 ] && secure_up
        echo "$ADDR"
        return
    fi
    if port_open "$PORT"; then
        echo "registry.sh: 127.0.0.1:$PORT is already in use by another process" >&2
        exit 1
    fi
    local mport first=0
    mport=$(cat "$DIR/management.port" 2>/dev/null || true)
    if [ -z "$mport" ]; then
        mport=$(free_port)
        echo "$mport" >"$DIR/management.port"
    fi
    [ -f "$DIR/data/registry.mv.db" ] || first=1
    mkdir -p "$DIR/data"
    (
        # own session (not killed with the caller's process group); no inherited lock fds.
        # SerialGC and C1 only: a 2-core machine shared with a broker and builds; starts in ~12 s.
        cd "$DIR"
        exec setsid "$JAVA" -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
            "-Ddecant.bed.registry=$DIR" \
            -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$PORT" \
            -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$mport" \
            -Dapicurio.storage.sql.kind=h2 \
            "-Dapicurio.datasource.url=jdbc:h2:file:$DIR/data/registry" \
            "-Dapicurio.storage.snapshot.location=$DIR" \
            -Dquarkus.otel.sdk.disabled=true \
            -jar "$HOME_DIR/quarkus-run.jar" </dev/null >>"$LOG" 2>&1 8>&- 9>&-
    ) &
    local started=$!
    echo "$started" >"$PIDFILE"
    service_wait_ready "$started" 120 registry_ready >/dev/null
    if [ "$first" = 1 ]; then
        curl -fsS -m 10 -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
            -d '{"compatibility":"BACKWARD"}' "$ADDR/config" >/dev/null ||
            { echo "registry.sh: setting the global compatibility failed" >&2; service_stop >/dev/null; exit 1; }
    fi
    [ "$SECURE" = 1 ] && secure_up
    echo "$ADDR"
}

case $cmd in
    start) do_start ;;
    stop) service_stop ;;
    status) service_status ;;
    *) usage ;;
esac
