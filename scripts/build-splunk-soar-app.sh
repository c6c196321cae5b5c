#!/usr/bin/env bash
# Builds the Splunk SOAR app (hosts/splunk-soar) with the SDK's own tools: a uv.lock resolved
# for the Linux x86_64 Pythons SOAR runs (3.13, 3.15), the manifest `soarapps manifests create`
# generates from the code, and the package `soarapps package build` makes, with the
# manylinux_2_28 wheel of scripts/build-wheel.sh inside. The wheel is served from a package
# index on 127.0.0.1 for the time of the build, as a company's private index would serve it.
# Leaves target/splunk-soar/zscaler_restricted_group.tgz, the manifest beside it, and the SDK's
# venv (Python 3.13) in target/splunk-soar/venv.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/splunk-soar
app=zscaler_restricted_group

# Python 3.13: SOAR_PYTHON313, else python3.13 on PATH, else the newest pyenv 3.13.
python313=
for candidate in "${SOAR_PYTHON313:-}" "$(command -v python3.13 || true)" \
  $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV); do
  if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
    python313=$candidate
    break
  fi
done
if [ -z "$python313" ]; then
  echo "the Splunk SOAR SDK needs Python 3.13: install it (pyenv install 3.13), put python3.13 on PATH or set SOAR_PYTHON313" >&2
  exit 1
fi
wheel=$(ls target/wheels/soar_restricted_group-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "no wheel in target/wheels: run bash scripts/build-wheel.sh first" >&2
  exit 1
fi

venv=$out/venv
requirements=hosts/splunk-soar/requirements-build.txt
if ! cmp -s "$requirements" "$venv/installed.txt" 2>/dev/null; then
  rm -rf "$venv"
  "$python313" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/installed.txt"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"

# The index: PEP 503's simple layout, the wheel's SHA-256 in its link, on a free port.
index=$out/index
rm -rf "$index"
mkdir -p "$index/simple/soar-restricted-group"
cp "$wheel" "$index/simple/soar-restricted-group/"
name=$(basename "$wheel")
digest=$(sha256sum "$wheel" | cut -d' ' -f1)
printf '<!DOCTYPE html><html><body><a href="%s#sha256=%s">%s</a></body></html>\n' "$name" "$digest" "$name" \
  >"$index/simple/soar-restricted-group/index.html"
port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/python" -m http.server --bind 127.0.0.1 --directory "$index" "$port" >"$out/index.log" 2>&1 &
index_pid=$!
trap 'kill $index_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/simple/soar-restricted-group/" >/dev/null && break
  sleep 0.1
done

# The project as the SDK wants it: a folder named after the app, pointing at the index above.
build=$out/build/$app
rm -rf "$out/build"
mkdir -p "$build"
cp -r hosts/splunk-soar/src hosts/splunk-soar/pyproject.toml hosts/splunk-soar/README.md \
  hosts/splunk-soar/logo.svg hosts/splunk-soar/logo_dark.svg "$build/"
find "$build" -name __pycache__ -prune -exec rm -rf {} +
sed -i "s|^url = \"http://127.0.0.1:[0-9]*/simple\"|url = \"http://127.0.0.1:$port/simple\"|" "$build/pyproject.toml"
export UV_CACHE_DIR="$PWD/$out/uv-cache"
(cd "$build" && UV_PYTHON_DOWNLOADS=never "../../venv/bin/uv" lock --quiet --python "$python313")
(cd "$build" && "../../venv/bin/soarapps" manifests create "$app.json" . >"../../manifest.log" 2>&1) \
  || { cat "$out/manifest.log" >&2; exit 1; }
cp "$build/$app.json" "$out/$app.json"
rm -f "$out/$app.tgz"
(cd "$build" && "../../venv/bin/python" ../../../../hosts/splunk-soar/tools/package_app.py package build . \
  --output-file "../../$app.tgz" >"../../package.log" 2>&1) || { cat "$out/package.log" >&2; exit 1; }
echo "splunk soar app: $out/$app.tgz ($(wc -c <"$out/$app.tgz") bytes)" >&2
