#!/usr/bin/env python3
"""Prints the medians criterion measured (target/criterion) as the README's table rows."""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def median_ns(group, name):
    path = root / group / name / "new" / "estimates.json"
    if not path.is_file():
        sys.exit(f"no measurement at {path}: run `cargo bench -p soar-host-cli --bench plugin` first")
    return json.loads(path.read_text())["median"]["point_estimate"]


def show(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


compile_ns, cache_ns = median_ns("load", "compile"), median_ns("load", "cache")
default_ns, pooled_ns = median_ns("instantiate-call", "default"), median_ns("instantiate-call", "pooling")
wasm_ns, native_ns = median_ns("add-remove", "wasm"), median_ns("add-remove", "native")
pooled_wasm_ns = median_ns("add-remove", "wasm-pooling")
tc = {name: median_ns("test-connection", name) for name in ("wasm", "wasm-pooling", "native")}
one_ns, two_ns = median_ns("throughput", "1"), median_ns("throughput", "2")
process_ns, curl_ns = median_ns("process", "soar-host-test-connection"), median_ns("process", "curl")
rows = [
    ("1. component load: compile / from cache", f"{show(compile_ns)} / {show(cache_ns)}", f"{compile_ns / cache_ns:.0f}x"),
    ("2. instantiate + trivial call: default / pooling", f"{show(default_ns)} / {show(pooled_ns)}", f"{default_ns / pooled_ns:.1f}x"),
    ("3. add + remove one user: wasm / wasm pooled / native", f"{show(wasm_ns)} / {show(pooled_wasm_ns)} / {show(native_ns)}",
     f"{wasm_ns / native_ns:.2f} / {pooled_wasm_ns / native_ns:.2f}"),
    ("3b. test-connection (one request): wasm / wasm pooled / native", f"{show(tc['wasm'])} / {show(tc['wasm-pooling'])} / {show(tc['native'])}",
     f"{tc['wasm'] / tc['native']:.2f} / {tc['wasm-pooling'] / tc['native']:.2f}"),
    ("4. invocations per second: 1 thread / 2 threads", f"{2e9 / one_ns:.0f} / {2e9 / two_ns:.0f}", f"{one_ns / two_ns:.2f}x"),
    ("5. one process: soar-host test-connection / curl", f"{show(process_ns)} / {show(curl_ns)}", f"{process_ns / curl_ns:.2f}x"),
]
print("| measurement | medians | ratio |")
print("|---|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")
