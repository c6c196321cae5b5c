#!/usr/bin/env bash
# The test command: from a fresh clone, installs what the tests need and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-plugin.sh --fixtures
cargo build --quiet -p soar-host
cargo test -p restricted-group-plugin -p soar-host -p soar-e2e "$@"
