#!/usr/bin/env bash
# The test command: from a fresh clone, installs what the tests need and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-plugin.sh --fixtures

# Independent SCIM software for the interop tests (PyPI), pinned, in a venv under target/.
venv=target/scim-venv
requirements=tests/interop/requirements.txt
if ! cmp -s "$requirements" "$venv/installed.txt" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/installed.txt"
fi
export SOAR_SCIM2_SERVER="$PWD/$venv/bin/scim2-server"
export SOAR_SCIM2_CLI="$PWD/$venv/bin/scim2"
cargo build --quiet -p soar-host
cargo test -p restricted-group-plugin -p soar-host -p soar-e2e "$@"
