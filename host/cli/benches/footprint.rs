//! Memory and size, measured: `cargo bench -p soar-host --bench footprint` prints the component's
//! size, the peak resident size of a `soar-host` single-user action, and the memory each
//! concurrent in-flight invocation adds to one host process.

mod common;

use common::*;
use scim_simulator::Fault;
use std::process::Command;
use std::time::Duration;

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn children_peak_kib() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as u64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let component = std::fs::metadata(plugin_path()).unwrap().len();
    println!("component size: {component} bytes ({:.1} KiB)", component as f64 / 1024.0);

    // Peak RSS of one process running one single-user action, with a warm compile cache.
    let sim = simulator(2);
    let dir = std::env::temp_dir().join(format!("soar-footprint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    let value = serde_json::json!({
        "allow_http": true, "cache_dir": "cache",
        "identity_providers": [{"name": "zpa", "base_url": sim.base_url(), "restricted_group": GROUP, "token_env": "BENCH_TOKEN"}]
    });
    std::fs::write(&config, value.to_string()).unwrap();
    for action in ["add-to-group", "remove-from-group", "add-to-group", "remove-from-group"] {
        let status = Command::new(env!("CARGO_BIN_EXE_soar-host"))
            .args(["--plugin", &plugin_path().display().to_string(), "--config", &config.display().to_string()])
            .args([action, "--user", "user0@corp.example"])
            .env("BENCH_TOKEN", TOKEN)
            .output()
            .unwrap()
            .status;
        assert!(status.success());
    }
    println!("peak resident size of a soar-host single-user action: {} KiB", children_peak_kib());
    let _ = std::fs::remove_dir_all(&dir);

    // The plugin's own linear memory at its largest during one add and one remove.
    {
        let runtime = runtime(false);
        let context = context(&sim);
        let calls = add_and_remove(&sim, "user1@corp.example");
        let peaks: Vec<usize> = calls.iter().map(|call| runtime.invoke(call, &context).peak_memory_bytes).collect();
        println!("plugin linear memory at its largest: add {} KiB, remove {} KiB", peaks[0] / 1024, peaks[1] / 1024);
    }

    // Memory added per concurrent invocation: 32 invocations in flight at once (each waiting on
    // a slow server), resident size sampled while they wait, against the same process idle.
    let slow = simulator(32);
    slow.set_fault(Fault::Slow, true);
    for pooling in [false, true] {
        let runtime = runtime(pooling);
        let context = context(&slow);
        let calls: Vec<_> = (0..32).map(|n| add_and_remove(&slow, &format!("user{n}@corp.example"))).collect();
        runtime.invoke(&calls[0][0], &context);
        runtime.invoke(&calls[0][1], &context);
        let mut per_invocation = Vec::new();
        for _ in 0..5 {
            let idle = resident_kib();
            let busy = std::thread::scope(|scope| {
                for call in &calls {
                    let (runtime, context) = (&runtime, &context);
                    scope.spawn(move || runtime.invoke(&call[0], context));
                }
                std::thread::sleep(Duration::from_millis(300));
                resident_kib()
            });
            per_invocation.push(busy.saturating_sub(idle) / 32);
            slow.set_fault(Fault::Slow, false);
            for call in &calls {
                runtime.invoke(&call[1], &context);
            }
            slow.set_fault(Fault::Slow, true);
        }
        let allocator = if pooling { "pooling" } else { "default" };
        println!(
            "memory added per concurrent invocation ({allocator} allocator): {} KiB (median of 5)",
            median(per_invocation)
        );
    }
}
