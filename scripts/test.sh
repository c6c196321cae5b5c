#!/usr/bin/env bash
# The test command: from a fresh clone, installs what the tests need and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# A clean build gains nothing from incremental state, which costs gigabytes of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
for component in rustfmt clippy; do
  rustup component list --installed | grep -q "^$component" || rustup component add "$component"
done
cargo fmt --all --check
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
# The Python host (hosts/python): installed as a user would (pip, the component as package data)
# into a venv under target/, with its exact dependencies and the pinned ansible-core; pytest drives
# it, and the Ansible collection (hosts/ansible) under real ansible-playbook, against the simulator.
# Installed before the cargo tests: the python_host benchmark runs it once as a test.
py_venv=target/py-venv
py_requirements=(hosts/python/pyproject.toml hosts/ansible/tests/requirements.txt)
if ! cat "${py_requirements[@]}" | cmp -s - "$py_venv/installed.txt" 2>/dev/null; then
  rm -rf "$py_venv"
  python3 -m venv "$py_venv"
  "$py_venv/bin/pip" install --quiet --disable-pip-version-check "./hosts/python[test]" -r hosts/ansible/tests/requirements.txt
  cat "${py_requirements[@]}" > "$py_venv/installed.txt"
fi
cp target/wasm32-wasip2/component/restricted_group_plugin.wasm hosts/python/src/soar_restricted_group/
"$py_venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall ./hosts/python
rm -rf hosts/python/build

# One package set and --all-targets for both commands, so that dependencies are built once with one
# feature set; the end-to-end tests run the `soar-host` binary this build leaves in target/debug.
# The benchmarks run once each as tests so that they keep working (timings come from `cargo bench`).
packages=(-p soar-types -p restricted-group-plugin -p soar-host-policy -p soar-host -p scim-simulator -p soar-host-cli -p soar-e2e)
cargo clippy --quiet --workspace --all-targets -- -D warnings
cargo clippy --quiet --target wasm32-wasip2 -p soar-types -p restricted-group-plugin -p hostile-plugin -- -D warnings
cargo clippy --quiet --target wasm32-wasip2 -p hostile-plugin --all-features -- -D warnings
cargo build --quiet "${packages[@]}" --all-targets
cargo test "${packages[@]}" --all-targets "$@"

# The second host: the same component in Node.js through jco (npm, exact versions, lockfile).
# `npm install` rather than `npm ci`: jco's optional per-platform packages are not all published,
# which `npm ci` refuses as an out-of-sync lockfile.
if [ ! -d tests/node-host/node_modules/@bytecodealliance/jco-transpile ]; then
  npm install --prefix tests/node-host --no-audit --no-fund --loglevel=error
fi
SOAR_HOST_BIN="$PWD/target/debug/soar-host" \
SOAR_PLUGIN="$PWD/target/wasm32-wasip2/component/restricted_group_plugin.wasm" \
SOAR_FIXTURES="$PWD/target/fixtures" \
  npm --prefix tests/node-host test --silent

# The Python host, the conformance scenarios through its CLI, and the Ansible collection.
SOAR_HOST_BIN="$PWD/target/debug/soar-host" \
SOAR_FIXTURES="$PWD/target/fixtures" \
  "$py_venv/bin/python" -m pytest -q -p no:cacheprovider hosts/python/tests hosts/ansible/tests
