#!/usr/bin/env bash
# Builds the plugin component (wasm32-wasip2, size-optimised) and the test fixtures' components.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
cargo build --quiet -p restricted-group-plugin --target wasm32-wasip2 --profile component
wasm=target/wasm32-wasip2/component/restricted_group_plugin.wasm
echo "plugin: $wasm ($(wc -c <"$wasm") bytes)" >&2
# The Python package carries it (package data of the wheel).
cp "$wasm" hosts/python/python/soar_restricted_group/
if [ "${1:-}" = "--fixtures" ]; then
  # Hostile components for the sandbox tests: one plain, one per forbidden WASI import, and one
  # built against the frozen WIT 1.0.0.
  out=target/fixtures
  mkdir -p "$out"
  for feature in plain clock filesystem sockets wit-1-0; do
    flags=()
    [ "$feature" = plain ] || flags=(--features "$feature")
    cargo build --quiet -p hostile-plugin --target wasm32-wasip2 --release "${flags[@]}"
    cp target/wasm32-wasip2/release/hostile_plugin.wasm "$out/hostile-$feature.wasm"
  done
  echo "fixtures: $out" >&2
fi
