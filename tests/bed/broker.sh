#!/usr/bin/env bash
# Start/stop a single-node Apache Kafka broker (KRaft, combined broker + controller) on
# 127.0.0.1 for the decant test bed.
#
#   tests/bed/broker.sh start  [--dir DIR] [--port PORT] [--secure]   # prints the bootstrap address
#   tests/bed/broker.sh stop   [--dir DIR] [--port PORT]
#   tests/bed/broker.sh status [--dir DIR] [--port PORT]   # exit 0 running, 3 not running
#
# PORT (the client listener) defaults to 19092, DIR to $DECANT_CACHE/broker-$PORT. DIR holds
# server.properties, the log directory data/ (formatted once: a restart keeps topics, offsets and
# transactions), broker.pid, broker.log and controller.port (the controller listener, a free port
# chosen at the first start and kept). Internal topics have replication factor 1. start is
# idempotent: if the broker of DIR is already up it just prints the address. The jars come from
# tests/bed/setup.sh (DECANT_KAFKA_LIBS in bed.env).
#
# --secure adds three TLS listeners beside the plaintext one (which stays for the Debezium runner
# and plain tests), on free ports chosen at the first start and kept in DIR/secure.env:
#   SASL_SSL  SASL PLAIN (alice / alice-secret) and SCRAM-SHA-512 (carol / carol-secret, stored at
#             format time with --add-scram)
#   MTLS      SSL with required client certificates (DIR/tls/client.pem + client.key)
#   OAUTH     SASL_SSL OAUTHBEARER: RS256 JWTs checked by Kafka's OAuthBearerValidatorCallbackHandler
#             against the JWKS of tests/bed/oidc.py, which runs beside the broker (DIR/oidc.pid) and
#             issues tokens by client-credentials grant (decant / decant-secret; forged /
#             forged-secret gets tokens signed by a key the JWKS does not list; expired /
#             expired-secret gets tokens that expired an hour ago)
# The CA, the server certificate (SAN 127.0.0.1, localhost), the client certificate, an unrelated
# CA (other-ca.pem, for "unknown CA" tests) and the token signing keys are made with openssl into
# DIR/tls. DIR/secure.env (KEY=value lines) names every address, file and credential.
set -euo pipefail

DECANT_CACHE=${DECANT_CACHE:-$HOME/.cache/decant}
BED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=service.sh
. "$BED_DIR/service.sh"

usage() { echo "usage: $0 start|stop|status [--dir DIR] [--port PORT] [--secure]" >&2; exit 2; }
[ $# -ge 1 ] || usage
cmd=$1
shift
PORT=19092
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
DIR=${DIR:-$DECANT_CACHE/broker-$PORT}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
PIDFILE=$DIR/broker.pid
LOG=$DIR/broker.log
PROPS=$DIR/server.properties
ADDR=127.0.0.1:$PORT
NAME="broker.sh: Kafka"

LIBS=$(bed_env DECANT_KAFKA_LIBS)

# guard against pid reuse: the process must be this directory's broker
running_pid() { service_pid "kafka.Kafka $PROPS"; }

java_run() {
    # SerialGC: one broker per test on a 2-core machine; no parallel GC threads fighting.
    java -Xms128m -Xmx768m -XX:+UseSerialGC -Dlog4j2.configurationFile="$BED_DIR/kafka/log4j2.yaml" \
        -cp "$LIBS/*" "$@"
}

TLS=$DIR/tls
SECURE_ENV=$DIR/secure.env
OIDC_PIDFILE=$DIR/oidc.pid
JAVA_EXTRA=()

secure_get() { sed -n "s/^$1=//p" "$SECURE_ENV"; }

# CA, server and client certificates, an unrelated CA, token signing keys (once per DIR).
make_tls() {
    [ -f "$TLS/.ok" ] && return
    command -v openssl >/dev/null || { echo "broker.sh: --secure needs openssl" >&2; exit 1; }
    rm -rf "$TLS"
    mkdir -p "$TLS"
    (
        cd "$TLS"
        make_certs "decant bed"
        cat server.key server.pem >server.keystore.pem
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out oidc.key 2>/dev/null
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out oidc-rogue.key 2>/dev/null
    )
    touch "$TLS/.ok"
}

# Ports and credentials of the secure listeners (once per DIR).
write_secure_env() {
    [ -f "$SECURE_ENV" ] && return
    local p1 p2 p3 p4
    p1=$(free_port); p2=$(free_port); p3=$(free_port); p4=$(free_port)
    cat >"$SECURE_ENV" <<ENV_EOF
SASL_SSL=127.0.0.1:$p1
MTLS=127.0.0.1:$p2
OAUTH=127.0.0.1:$p3
OIDC_PORT=$p4
OIDC_TOKEN_URL=http://127.0.0.1:$p4/token
OIDC_JWKS_URL=http://127.0.0.1:$p4/jwks
CA=$TLS/ca.pem
OTHER_CA=$TLS/other-ca.pem
CLIENT_CERT=$TLS/client.pem
CLIENT_KEY=$TLS/client.key
PLAIN_USER=alice
PLAIN_PASSWORD=alice-secret
SCRAM_USER=carol
SCRAM_PASSWORD=carol-secret
OIDC_CLIENT_ID=decant
OIDC_CLIENT_SECRET=decant-secret
OIDC_FORGED_CLIENT_ID=forged
OIDC_FORGED_CLIENT_SECRET=forged-secret
OIDC_EXPIRED_CLIENT_ID=expired
OIDC_EXPIRED_CLIENT_SECRET=expired-secret
ENV_EOF
}

oidc_running() {
    local pid
    pid=$(cat "$OIDC_PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$TLS/oidc.key"
}

start_oidc() {
    oidc_running && return
    local port
    port=$(secure_get OIDC_PORT)
    (
        exec setsid python3 "$BED_DIR/oidc.py" --port "$port" --key "$TLS/oidc.key" \
            --rogue-key "$TLS/oidc-rogue.key" --client decant:decant-secret \
            --client forged:forged-secret:forged --client expired:expired-secret:expired \
            </dev/null >>"$DIR/oidc.log" 2>&1 8>&- 9>&-
    ) &
    echo $! >"$OIDC_PIDFILE"
    for _ in $(seq 1 100); do
        port_open "$port" && return
        kill -0 "$(cat "$OIDC_PIDFILE")" 2>/dev/null || break
        sleep 0.1
    done
    echo "broker.sh: oidc.py did not start on 127.0.0.1:$port; see $DIR/oidc.log" >&2
    tail -20 "$DIR/oidc.log" >&2
    exit 1
}

stop_oidc() {
    if oidc_running; then
        kill -TERM "$(cat "$OIDC_PIDFILE")" 2>/dev/null || true
    fi
    rm -f "$OIDC_PIDFILE"
}

secure_properties() {
    local sasl mtls oauth
    sasl=$(secure_get SASL_SSL); mtls=$(secure_get MTLS); oauth=$(secure_get OAUTH)
    cat <<PROPS_EOF
listeners=PLAINTEXT://$ADDR,CONTROLLER://127.0.0.1:$1,SASL_SSL://$sasl,MTLS://$mtls,OAUTH://$oauth
advertised.listeners=PLAINTEXT://$ADDR,SASL_SSL://$sasl,MTLS://$mtls,OAUTH://$oauth
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL,OAUTH:SASL_SSL
ssl.keystore.type=PEM
ssl.keystore.location=$TLS/server.keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
listener.name.mtls.ssl.client.auth=required
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.oauth.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;
listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler
sasl.oauthbearer.jwks.endpoint.url=$(secure_get OIDC_JWKS_URL)
sasl.oauthbearer.expected.audience=kafka
sasl.oauthbearer.expected.issuer=http://127.0.0.1:$(secure_get OIDC_PORT)
PROPS_EOF
}

write_properties() {
    local cport=$1
    {
    cat <<PROPS_EOF
# written by tests/bed/broker.sh
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
controller.listener.names=CONTROLLER
PROPS_EOF
    if [ "$SECURE" = 1 ]; then
        secure_properties "$cport"
    else
        cat <<PROPS_EOF
listeners=PLAINTEXT://$ADDR,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://$ADDR
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
PROPS_EOF
    fi
    cat <<PROPS_EOF
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
    } >"$PROPS"
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
    local scram=()
    if [ "$SECURE" = 1 ]; then
        make_tls
        write_secure_env
        start_oidc
        # Kafka 4 fetches only the URLs it is told to trust.
        JAVA_EXTRA=(-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls="$(secure_get OIDC_JWKS_URL)")
        scram=(--add-scram "SCRAM-SHA-512=[name=carol,password=carol-secret]")
    fi
    write_properties "$cport"
    if [ ! -f "$DIR/data/meta.properties" ]; then
        local cluster
        # Kafka's cluster id: a UUID in URL-safe base64. One starting with '-' would read as an
        # option to StorageTool's argument parser (1 in 64 ids): draw again.
        cluster=$(python3 -c 'import base64, uuid
while True:
    c = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not c.startswith("-"):
        break
print(c)')
        java_run kafka.tools.StorageTool format -t "$cluster" -c "$PROPS" --standalone "${scram[@]}" >>"$LOG" 2>&1 ||
            { echo "broker.sh: formatting $DIR/data failed; see $LOG" >&2; tail -20 "$LOG" >&2; exit 1; }
    fi
    local mark
    mark=$(wc -l <"$LOG" 2>/dev/null || echo 0)
    (
        # own session (not killed with the caller's process group); no inherited lock fds
        exec setsid java -Xms128m -Xmx768m -XX:+UseSerialGC "${JAVA_EXTRA[@]}" \
            -Dlog4j2.configurationFile="$BED_DIR/kafka/log4j2.yaml" \
            -cp "$LIBS/*" kafka.Kafka "$PROPS" </dev/null >>"$LOG" 2>&1 8>&- 9>&-
    ) &
    local started=$!
    echo "$started" >"$PIDFILE"
    BROKER_LOG_MARK=$mark
    service_wait_ready "$started" 60 broker_ready
}

# What service.sh's stop and failed start also end: the OIDC endpoint of a --secure broker.
service_cleanup() { stop_oidc; }

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
