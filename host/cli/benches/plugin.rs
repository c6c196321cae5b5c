//! Speed, measured: `cargo bench -p soar-host --bench plugin`. `scripts/bench-report.py` turns
//! criterion's estimates into the README's table of medians.

mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use soar_e2e::invoke_native;
use soar_host::runtime::{LoadOptions, PluginRuntime};
use std::process::Command;
use std::time::{Duration, Instant};

/// Row 1: component load: compile from the .wasm vs load the precompiled artefact from the cache.
fn load(c: &mut Criterion) {
    let bytes = std::fs::read(plugin_path()).unwrap();
    let cache = std::env::temp_dir().join(format!("soar-bench-cache-{}", std::process::id()));
    let warm = LoadOptions { cache_dir: Some(&cache), ..Default::default() };
    PluginRuntime::load_bytes(&bytes, &warm).unwrap();
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.bench_function("compile", |b| b.iter(|| PluginRuntime::load_bytes(&bytes, &LoadOptions::default()).unwrap()));
    group.bench_function("cache", |b| b.iter(|| PluginRuntime::load_bytes(&bytes, &warm).unwrap()));
    group.finish();
    let _ = std::fs::remove_dir_all(&cache);
}

/// Row 2: a fresh store, instantiation and a trivial export call: default allocator vs pooling.
fn instantiate(c: &mut Criterion) {
    let sim = simulator(1);
    let context = context(&sim);
    let call = trivial_call();
    let mut group = c.benchmark_group("instantiate-call");
    for (name, pooling) in [("default", false), ("pooling", true)] {
        let runtime = runtime(pooling);
        group.bench_function(name, |b| b.iter(|| runtime.invoke(&call, &context)));
    }
    group.finish();
}

/// Row 3: add-to-group then remove-from-group of one user on loopback: the component through the
/// host vs the same core compiled natively, with the same HTTP client.
fn add_remove(c: &mut Criterion) {
    let sim = simulator(4);
    let context = context(&sim);
    let calls = add_and_remove(&sim, "user0@corp.example");
    let mut group = c.benchmark_group("add-remove");
    for (name, pooling) in [("wasm", false), ("wasm-pooling", true)] {
        let runtime = runtime(pooling);
        group.bench_function(name, |b| {
            b.iter(|| {
                for call in &calls {
                    assert!(runtime.invoke(call, &context).result.is_ok());
                }
            })
        });
    }
    group.bench_function("native", |b| {
        b.iter(|| {
            for call in &calls {
                invoke_native(call, &context);
            }
        })
    });
    group.finish();
}

/// 3b. One request (test-connection): the fixed cost of a sandboxed invocation next to one round trip.
fn one_request(c: &mut Criterion) {
    let sim = simulator(1);
    let context = context(&sim);
    let call = test_connection_call(&sim);
    let mut group = c.benchmark_group("test-connection");
    for (name, pooling) in [("wasm", false), ("wasm-pooling", true)] {
        let runtime = runtime(pooling);
        group.bench_function(name, |b| b.iter(|| assert!(runtime.invoke(&call, &context).result.is_ok())));
    }
    group.bench_function("native", |b| b.iter(|| invoke_native(&call, &context)));
    group.finish();
}

/// Row 4: throughput of one host process: invocations (an add or a remove) from 1 and 2 threads.
fn throughput(c: &mut Criterion) {
    let sim = simulator(4);
    let runtime = runtime(true);
    // One host: one runtime and one HTTP client (keep-alive connections) shared by the threads.
    let context = context(&sim);
    let mut group = c.benchmark_group("throughput");
    group.throughput(Throughput::Elements(2));
    for threads in [1usize, 2] {
        group.bench_with_input(BenchmarkId::from_parameter(threads), &threads, |b, &threads| {
            b.iter_custom(|iterations| {
                let started = Instant::now();
                std::thread::scope(|scope| {
                    for thread in 0..threads {
                        let (runtime, sim, context) = (&runtime, &sim, &context);
                        scope.spawn(move || {
                            let calls = add_and_remove(sim, &format!("user{thread}@corp.example"));
                            for _ in 0..iterations.div_ceil(threads as u64) {
                                for call in &calls {
                                    runtime.invoke(call, context);
                                }
                            }
                        });
                    }
                });
                started.elapsed()
            })
        });
    }
    group.finish();
}

/// Row 5: one process per action: `soar-host test-connection` with a warm cache vs `curl` sending
/// the same authenticated GET (the floor of any process-per-action design).
fn process_per_action(c: &mut Criterion) {
    let sim = simulator(1);
    let dir = std::env::temp_dir().join(format!("soar-bench-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    let value = serde_json::json!({
        "allow_http": true,
        "cache_dir": "cache",
        "identity_providers": [{"name": "zpa", "base_url": sim.base_url(), "restricted_group": GROUP, "token_env": "BENCH_TOKEN"}]
    });
    std::fs::write(&config, value.to_string()).unwrap();
    let soar_host = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_soar-host"));
        command.args([
            "--plugin",
            &plugin_path().display().to_string(),
            "--config",
            &config.display().to_string(),
            "test-connection",
        ]);
        command.env("BENCH_TOKEN", TOKEN);
        command
    };
    assert!(soar_host().output().unwrap().status.success(), "warm the cache");
    let url = format!(
        "{}/Groups?filter=displayName%20eq%20%22ZPA%20Restricted%20Users%22&excludedAttributes=members&startIndex=1&count=100",
        sim.base_url()
    );
    let mut group = c.benchmark_group("process");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    group.bench_function("soar-host-test-connection", |b| {
        b.iter(|| assert!(soar_host().output().unwrap().status.success()))
    });
    group.bench_function("curl", |b| {
        b.iter(|| {
            let out = Command::new("curl")
                .args(["-sf", "-H", &format!("Authorization: Bearer {TOKEN}"), &url])
                .output()
                .expect("curl is installed");
            assert!(out.status.success());
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, load, instantiate, add_remove, one_request, throughput, process_per_action);
criterion_main!(benches);
