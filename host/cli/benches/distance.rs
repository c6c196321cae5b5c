//! Tenant distance: the `soar-host` binary against a simulator that answers every request after
//! `--latency-ms 100` (a tenant 100 ms away), one process per action as a SOAR runs it. Reports
//! requests, wall time and wall time in round trips (RTT) after the process's own start.
//! `cargo bench -p soar-host-cli --bench distance`; without `--bench` (as the test command runs
//! it) every case runs once at a tenth of the size and 10 ms, to keep it working.

mod common;

use common::plugin_path;
use scim_simulator::{generated_user, Quirk, Simulator, SimulatorOptions, GENERATED_GROUP};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-distance-token-5b1e";

struct Case {
    name: &'static str,
    action: &'static str,
    tenant: usize,
    /// Users 1..=members start in the group.
    members: usize,
    /// Users first..=last are asked for.
    users: (usize, usize),
    quirks: &'static [Quirk],
    /// The ZIA profile at 5 requests/s, with the simulator throttling above that and serving
    /// pages of 1,000 as ZIA does.
    zia: bool,
    target: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "add one user, users carry `groups`",
        action: "add-to-group",
        tenant: 2_000,
        members: 0,
        users: (7, 7),
        quirks: &[],
        zia: false,
        target: "≤ 2 RTT",
    },
    Case {
        name: "remove one user, users carry `groups`",
        action: "remove-from-group",
        tenant: 2_000,
        members: 10,
        users: (7, 7),
        quirks: &[],
        zia: false,
        target: "≤ 2 RTT",
    },
    Case {
        name: "add one user, users without `groups`",
        action: "add-to-group",
        tenant: 2_000,
        members: 0,
        users: (7, 7),
        quirks: &[Quirk::NoUserGroups],
        zia: false,
        target: "≤ 3 RTT",
    },
    Case {
        name: "add 100 users, users without `groups`",
        action: "add-to-group",
        tenant: 2_000,
        members: 0,
        users: (1, 100),
        quirks: &[Quirk::NoUserGroups],
        zia: false,
        target: "≤ 8 requests, ≤ 6 RTT",
    },
    Case {
        name: "add 1,000 users, users carry `groups`",
        action: "add-to-group",
        tenant: 2_000,
        members: 0,
        users: (1, 1_000),
        quirks: &[],
        zia: false,
        target: "≤ 15 RTT",
    },
    Case {
        name: "add 10,000 users of a 20,000-user tenant, `zia` profile at 5 requests/s, pages of 1,000, users without `groups`",
        action: "add-to-group",
        tenant: 20_000,
        members: 0,
        users: (1, 10_000),
        quirks: &[Quirk::NoUserGroups],
        zia: true,
        target: "≤ 130 requests, ≤ 30 s, every user added once, no 429",
    },
];

struct Measured {
    requests: u64,
    wall: Duration,
    status: String,
}

struct Bench {
    full: bool,
    latency: Duration,
    dir: PathBuf,
    cache: PathBuf,
}

impl Bench {
    fn soar_host(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_soar-host"));
        command.env("XDG_CACHE_HOME", &self.cache).env("BENCH_TOKEN", TOKEN);
        command.args(["--plugin", &plugin_path().display().to_string()]);
        command
    }

    /// The process's own start: loading the component from a warm cache, no request.
    fn start(&self) -> Duration {
        let mut walls: Vec<Duration> = (0..5)
            .map(|_| {
                let started = Instant::now();
                assert!(self.soar_host().arg("describe").output().unwrap().status.success());
                started.elapsed()
            })
            .collect();
        walls.sort();
        walls[walls.len() / 2]
    }

    fn scale(&self, n: usize) -> usize {
        if self.full {
            n
        } else {
            n.div_ceil(10)
        }
    }

    /// Requests a second on the `zia` cases (ZIA's 5, or 50 for the quick check).
    fn rate(&self) -> u32 {
        if self.full {
            5
        } else {
            50
        }
    }

    fn run(&self, case: &Case) -> (Measured, Simulator) {
        let mut options = SimulatorOptions::new(TOKEN);
        options.generate_users = self.scale(case.tenant);
        options.generate_members = self.scale(case.members);
        options.latency_ms = self.latency.as_millis() as u64;
        options.quirks = case.quirks.to_vec();
        let rate = self.rate();
        options.rate_limit = case.zia.then_some(rate);
        if case.zia {
            options.max_page_size = 1000;
        }
        let sim = Simulator::start(options).expect("simulator");
        let (first, last) = (case.users.0.min(self.scale(case.users.1)), self.scale(case.users.1));
        let names: Vec<String> = (first..=last).map(generated_user).collect();
        let users = self.dir.join("users.txt");
        std::fs::write(&users, names.join("\n")).unwrap();
        let mut provider = json!({"name": "tenant", "base_url": sim.base_url(), "restricted_group": GENERATED_GROUP,
                                  "token_env": "BENCH_TOKEN"});
        if case.zia {
            provider["profile"] = json!("zia");
            provider["requests_per_second"] = json!(rate);
        }
        let config = json!({"allow_http": true, "identity_providers": [provider],
                            "max_users_per_action": 10_000, "deadline_ms": 170_000});
        let config_path = self.dir.join("config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let started = Instant::now();
        let output = self
            .soar_host()
            .args(["--config", &config_path.display().to_string(), case.action])
            .args(["--users-file", &users.display().to_string()])
            .output()
            .unwrap();
        let wall = started.elapsed();
        let document: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("{}: {}", case.name, String::from_utf8_lossy(&output.stderr)));
        let done = |outcome: &str| {
            document["providers"][0]["users"].as_array().unwrap().iter().all(|u| u["outcome"] == outcome)
        };
        let expected = if case.action == "add-to-group" { "added" } else { "removed" };
        assert!(done(expected), "{}: {document}", case.name);
        let requests = document["http_requests"].as_u64().unwrap();
        (Measured { requests, wall, status: document["status"].as_str().unwrap().to_string() }, sim)
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let full = std::env::args().any(|arg| arg == "--bench");
    let latency = Duration::from_millis(if full { 100 } else { 10 });
    let dir = std::env::temp_dir().join(format!("soar-distance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = soar_e2e::workspace().join("target/bench-distance-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let bench = Bench { full, latency, dir: dir.clone(), cache };
    let start = bench.start();
    println!(
        "RTT {} ms; process start (component from a warm cache) {:.0} ms, taken off before counting RTT",
        latency.as_millis(),
        start.as_secs_f64() * 1e3
    );
    println!("| case | requests | wall | sequential RTT | target |");
    println!("|---|---|---|---|---|");
    for case in CASES {
        let repeats = if !full || case.users.1 >= 1_000 { 1 } else { 5 };
        let mut runs: Vec<Measured> = Vec::new();
        for _ in 0..repeats {
            let (measured, sim) = bench.run(case);
            if case.zia {
                check_stored_once(&sim, bench.scale(case.users.1));
                assert_eq!(measured.status, "success", "no 429 reaches the result");
                println!(
                    "(429 answers from the simulator's rate limit: {}, each retried by the host)",
                    sim.throttled()
                );
            }
            runs.push(measured);
        }
        runs.sort_by_key(|m| m.wall);
        let median = &runs[runs.len() / 2];
        let rtt = median.wall.saturating_sub(start).as_secs_f64() / latency.as_secs_f64();
        // At a rate limit the wall is the rate's, not the distance's.
        let sequential = match case.zia {
            true => format!("rate-bound: {} requests at {rate}/s", median.requests, rate = bench.rate()),
            false => format!("{rtt:.1}"),
        };
        println!(
            "| {} | {} | {:.2} s | {sequential} | {} |",
            case.name,
            median.requests,
            median.wall.as_secs_f64(),
            case.target
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every generated user 1..=count is in the group, once.
fn check_stored_once(sim: &Simulator, count: usize) {
    let members = sim.members(&sim.group_id_of(GENERATED_GROUP).unwrap());
    let distinct: BTreeSet<&String> = members.iter().collect();
    assert_eq!((members.len(), distinct.len()), (count, count), "each user stored once");
}
