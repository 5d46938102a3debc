#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs and starts the test bed (cached under
# ${DECANT_CACHE:-~/.cache/decant}; a second run reuses it), then lints and runs every test. The
# cargo target directory is cached there as well (CARGO_TARGET_DIR overrides it).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash tests/bed/setup.sh
if [ -f "${DECANT_CACHE:-$HOME/.cache/decant}/bed.env" ]; then
  set -a; . "${DECANT_CACHE:-$HOME/.cache/decant}/bed.env"; set +a
fi
# A Schema Registry (Apicurio, Confluent API) with its TLS fronts (basic, bearer, mTLS) for
# decant-registry's tests against a real registry (crates/decant-registry/tests/bed_registry.rs);
# tests that need a registry of their own start one (tests/src/registry.rs).
DECANT_REGISTRY_URL=$(bash tests/bed/registry.sh start --secure)
export DECANT_REGISTRY_URL
export DECANT_REGISTRY_SECURE_ENV=${DECANT_CACHE:-$HOME/.cache/decant}/registry-18081/secure.env
trap 'bash tests/bed/registry.sh stop >/dev/null 2>&1 || true' EXIT
# Builds are cached outside the clone too (a fresh clone reuses them; cargo rebuilds what changed).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${DECANT_CACHE:-$HOME/.cache/decant}/target}
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The `decant run` tests start the real binary (target/debug/decant); `cargo test` alone does not
# build a plain binary that no test target depends on.
cargo build -p decant
cargo test --workspace --all-targets
echo "tests/run.sh: done in $(( $(date +%s) - start )) s"
