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
# Every ledger a config without `state` opens (README, "The restriction ledger") lands here, never
# in the data folder of the user who runs the tests.
export XDG_DATA_HOME="$PWD/target/test-data-home"
rm -rf "$XDG_DATA_HOME"
# A throwaway PostgreSQL server for the ledger's tests, stopped when this command exits.
source scripts/postgres.sh

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
# The Python package (hosts/python): the Rust core behind PyO3, one manylinux_2_28 wheel.
bash scripts/build-wheel.sh
wheel=$(ls target/wheels/soar_restricted_group-*.whl)
# The Splunk SOAR app, made by the SDK's own tools with the wheel inside (Python 3.13).
bash scripts/build-splunk-soar-app.sh

# The wheel installed as a user would, into a fresh venv under target/, with the pinned test tools
# and ansible-core; pytest drives it (and the Ansible collection under real ansible-playbook) with
# no cargo on PATH. Installed before the cargo tests: the python_host benchmark runs it once.
py_venv=target/py-venv
rm -rf "$py_venv"
python3 -m venv "$py_venv"
"$py_venv/bin/pip" install --quiet --disable-pip-version-check "$wheel" \
  -r hosts/python/requirements-test.txt -r hosts/ansible/tests/requirements.txt
(cd hosts/python && "../../$py_venv/bin/ruff" check . && "../../$py_venv/bin/ruff" format --check . \
  && "../../$py_venv/bin/mypy" --strict .)

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

# The Python package, the conformance scenarios through its CLI, and the Ansible collection, run
# against the installed wheel with cargo (and rustup) off PATH: a user who has only Python.
no_cargo_path=$(printf '%s' "$PATH" | tr ':' '\n' | grep -v -e '\.cargo/bin' -e rustup | paste -sd: -)
PATH="$no_cargo_path" SOAR_TEST_WITHOUT_CARGO=1 \
SOAR_HOST_BIN="$PWD/target/debug/soar-host" \
SOAR_FIXTURES="$PWD/target/fixtures" \
  "$py_venv/bin/python" -m pytest -q -p no:cacheprovider hosts/python/tests hosts/ansible/tests

# The Splunk SOAR app: ruff, mypy --strict and its pytest suite in the SDK's Python 3.13.
soar_venv=target/splunk-soar/venv
(cd hosts/splunk-soar && "../../$soar_venv/bin/ruff" check . && "../../$soar_venv/bin/ruff" format --check . \
  && "../../$soar_venv/bin/mypy" --strict . \
  && PATH="$no_cargo_path" "../../$soar_venv/bin/python" -m pytest -q -p no:cacheprovider tests)

# The Ansible collection checked by ansible-test's own sanity tests, in a copy laid out as
# ansible_collections/soar/restricted_group. ansible-test bootstraps pip in its test venvs with a
# script from a host these machines cannot reach: an offline stand-in takes its place, under a HOME
# of the test command's own.
sanity=target/ansible-sanity
rm -rf "$sanity/ansible_collections"
mkdir -p "$sanity/ansible_collections/soar" "$sanity/home/.ansible/test/cache"
cp -r hosts/ansible "$sanity/ansible_collections/soar/restricted_group"
pip_version=$("$py_venv/bin/python" -c "import inspect, re
from ansible_test._internal import python_requirements as r
print(re.search(r\"pip='([0-9.]+)'\", inspect.getsource(r.get_venv_packages)).group(1))")
cp hosts/ansible/tests/offline_get_pip.py "$sanity/home/.ansible/test/cache/get_pip_${pip_version//./_}.py"
(cd "$sanity/ansible_collections/soar/restricted_group" && git init --quiet . && git add --all \
  && HOME="$PWD/../../../home" "../../../../../$py_venv/bin/ansible-test" sanity --local --python 3.11 --requirements)
