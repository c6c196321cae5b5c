#!/usr/bin/env bash
# One command from a fresh clone to the demo: installs the wasm target, builds, runs `soar-host demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-plugin.sh
cargo run --quiet -p soar-host-cli -- demo "$@"
