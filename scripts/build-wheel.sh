#!/usr/bin/env bash
# Builds the Python package's wheel (hosts/python): the component, then the Rust host behind PyO3 as
# one abi3 wheel with the component and the `soar-host` command inside, linked against glibc 2.28
# (maturin --zig) so that RHEL 8-era SOAR servers and Splunk SOAR's packager take it; auditwheel
# must confirm the manylinux_2_28 tag. The build shares target/ (its own target-triple folder), so
# later builds compile only what changed. Leaves target/wheels/soar_restricted_group-*.whl.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-plugin.sh
build_venv=target/build-venv
build_requirements=hosts/python/requirements-build.txt
if ! cmp -s "$build_requirements" "$build_venv/installed.txt" 2>/dev/null; then
  rm -rf "$build_venv"
  python3 -m venv "$build_venv"
  "$build_venv/bin/pip" install --quiet --disable-pip-version-check -r "$build_requirements"
  cp "$build_requirements" "$build_venv/installed.txt"
fi
rm -f target/wheels/soar_restricted_group-*.whl
# maturin finds zig as `python3 -m ziglang`: the build venv's Python comes first on PATH.
PATH="$PWD/$build_venv/bin:$PATH" maturin build --quiet --release --strip --zig --compatibility manylinux_2_28 \
  -m hosts/python/Cargo.toml --out target/wheels
wheel=$(ls target/wheels/soar_restricted_group-*.whl)
tags=$("$build_venv/bin/auditwheel" show "$wheel" | tr '\n' ' ')
if ! grep -q 'consistent with the following platform tag: "manylinux_2_28_x86_64"' <<<"$tags"; then
  echo "the wheel is not manylinux_2_28: $tags" >&2
  exit 1
fi
echo "wheel: $wheel ($(wc -c <"$wheel") bytes)" >&2
