//! The Python host (hosts/python) beside the Rust one, in one run, against one out-of-process
//! `soar-host simulator` on loopback: `cargo bench -p soar-host-cli --bench python_host`.
//!
//! - in process: a host from the config file (the plugin from the compiled cache), test-connection,
//!   add + remove of one user, through the Rust library's `ActionHost` and the Python package's
//!   `Host` (hosts/python/bench/inprocess.py), which binds the same core;
//! - one process per action, interleaved: `python -m soar_restricted_group test-connection`, a
//!   plain standard-library script doing the same authenticated GET (hosts/python/bench/plain_get.py),
//!   the wheel's `soar-host` console script, the cargo-built `soar-host` and `curl`.
//!
//! The Python is `SOAR_PYTHON`, else `target/py-venv/bin/python` (which `scripts/test.sh` installs).
//! Without `--bench` (as the test command runs it) every measurement runs twice, to keep it working.

mod common;

use common::{median, GROUP};
use serde_json::{json, Value};
use soar_host::action::{ActionHost, ActionRequest};
use soar_host::config::Config;
use soar_types::Action;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-python-token-0123456789";

fn median_of(rounds: usize, mut run: impl FnMut()) -> Duration {
    median(
        (0..rounds)
            .map(|_| {
                let started = Instant::now();
                run();
                started.elapsed()
            })
            .collect(),
    )
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

struct Simulator(Child, String);

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_simulator() -> Simulator {
    let mut child = Command::new(env!("CARGO_BIN_EXE_soar-host"))
        .args(["simulator", "--token-env", "BENCH_TOKEN", "--generate-users", "5"])
        .env("BENCH_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("soar-host simulator starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("simulator line");
    let ready: Value = serde_json::from_str(&line).expect("the simulator prints its base URL");
    let base_url = ready["base_url"].as_str().expect("base_url").to_string();
    Simulator(child, base_url)
}

fn python() -> PathBuf {
    let path = std::env::var_os("SOAR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| soar_e2e::workspace().join("target/py-venv/bin/python"));
    assert!(path.is_file(), "no Python host at {}: run bash scripts/test.sh once, or set SOAR_PYTHON", path.display());
    path
}

fn succeeds(command: &mut Command) {
    let output = command.output().expect("the command starts");
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let full = std::env::args().any(|arg| arg == "--bench");
    let rounds = if full { 200 } else { 2 };
    let process_rounds = if full { 30 } else { 2 };
    let workspace = soar_e2e::workspace();
    let plugin = workspace.join("target/wasm32-wasip2/component/restricted_group_plugin.wasm");
    let dir = std::env::temp_dir().join(format!("soar-bench-python-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sim = start_simulator();
    let cache = dir.join("cache");
    let config_path = dir.join("config.json");
    let config = json!({
        "allow_http": true,
        "cache_dir": cache,
        "identity_providers": [{"name": "zpa", "base_url": sim.1, "restricted_group": GROUP, "token_env": "BENCH_TOKEN"}]
    });
    std::fs::write(&config_path, config.to_string()).unwrap();
    // SAFETY: set before any thread of this process reads the environment.
    unsafe { std::env::set_var("BENCH_TOKEN", TOKEN) };

    // In process, Rust: what `Host.from_config_file` does (config, plugin from the cache, host).
    let load = || {
        let loaded = Config::load(&config_path, &soar_host::config::ProcessEnvironment).expect("config");
        let runtime = soar_host_cli::load_plugin(&plugin, Some(&loaded)).expect("plugin loads");
        ActionHost::new(Arc::new(runtime), loaded, Arc::new(|_: &_| {}))
    };
    let host = load();
    let rust_load = median_of(rounds, || drop(load()));
    let rust_test_connection =
        median_of(rounds, || assert_eq!(host.run(&ActionRequest::new(Action::TestConnection)).exit_code, 0));
    let change = |action| {
        let mut request = ActionRequest::new(action);
        request.users = vec!["user1@corp.example".into()];
        assert_eq!(host.run(&request).exit_code, 0);
    };
    let rust_add_remove = median_of(rounds, || {
        change(Action::AddToGroup);
        change(Action::RemoveFromGroup);
    });

    // In process, Python.
    let script = workspace.join("hosts/python/bench/inprocess.py");
    let output = Command::new(python())
        .arg(&script)
        .args([plugin.as_os_str(), config_path.as_os_str(), rounds.to_string().as_ref()])
        .output()
        .expect("python starts");
    assert!(output.status.success(), "inprocess.py: {}", String::from_utf8_lossy(&output.stderr));
    let py: Value = serde_json::from_slice(&output.stdout).expect("inprocess.py prints JSON");
    let py_ms = |key: &str| py[key].as_f64().expect("a median");

    // One process per action, interleaved so that the machine's noise falls on all alike.
    let url =
        format!("{}/Groups?filter=displayName%20eq%20%22ZPA%20Restricted%20Users%22&excludedAttributes=members", sim.1);
    let plugin_arg = plugin.display().to_string();
    let config_arg = config_path.display().to_string();
    let commands: Vec<(&str, Command)> = vec![
        ("python -m soar_restricted_group test-connection", {
            let mut c = Command::new(python());
            c.args([
                "-m",
                "soar_restricted_group",
                "--plugin",
                &plugin_arg,
                "--config",
                &config_arg,
                "test-connection",
            ]);
            c
        }),
        ("plain Python script (urllib.request GET)", {
            let mut c = Command::new(python());
            c.arg(workspace.join("hosts/python/bench/plain_get.py")).arg(&url);
            c
        }),
        ("the wheel's soar-host test-connection", {
            let mut c = Command::new(python().with_file_name("soar-host"));
            c.args(["--plugin", &plugin_arg, "--config", &config_arg, "test-connection"]);
            c
        }),
        ("cargo-built soar-host test-connection", {
            let mut c = Command::new(env!("CARGO_BIN_EXE_soar-host"));
            c.args(["--plugin", &plugin_arg, "--config", &config_arg, "test-connection"]);
            c
        }),
        ("curl", {
            let mut c = Command::new("curl");
            c.args(["-sf", "-H", &format!("Authorization: Bearer {TOKEN}"), &url]);
            c
        }),
    ];
    let mut commands: Vec<(&str, Command, Vec<Duration>)> =
        commands.into_iter().map(|(name, command)| (name, command, Vec::new())).collect();
    for (_, command, _) in commands.iter_mut() {
        succeeds(command.current_dir(&dir).stdout(Stdio::null())); // warm caches and page cache
    }
    for _ in 0..process_rounds {
        for (_, command, times) in commands.iter_mut() {
            let started = Instant::now();
            succeeds(command);
            times.push(started.elapsed());
        }
    }
    let process: Vec<(&str, f64)> = commands.into_iter().map(|(name, _, times)| (name, ms(median(times)))).collect();

    println!("| in process | Python package | Rust library | Python / Rust |");
    println!("|---|---|---|---|");
    for (name, python_ms, rust) in [
        ("host from the config file (plugin from the cache)", py_ms("load_from_cache"), rust_load),
        ("test-connection", py_ms("test_connection"), rust_test_connection),
        ("add + remove one user", py_ms("add_and_remove"), rust_add_remove),
    ] {
        println!("| {name} | {python_ms:.2} ms | {:.2} ms | {:.1}x |", ms(rust), python_ms / ms(rust));
    }
    println!();
    println!("| one process per action (median of {process_rounds}) | wall | / plain Python script |");
    println!("|---|---|---|");
    let plain = process[1].1;
    for (name, wall) in &process {
        println!("| {name} | {wall:.1} ms | {:.2}x |", wall / plain);
    }
    drop(sim);
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
