//! The restriction lifecycle at scale: `reconcile` of a 10,000-member group on a 20,000-user
//! tenant at ZIA's 5 requests/s (10,000 active records, 100 expired, 100 dropped from the group by
//! an identity provider's push, 100 members nobody recorded); the `restrictions` report over
//! 100,000 records on SQLite and PostgreSQL; and what the ledger costs a single-user add at
//! 100 ms RTT. `cargo bench -p soar-host-cli --bench lifecycle` with `SOAR_TEST_POSTGRES` (and
//! `SOAR_TEST_POSTGRES_PASSWORD`) naming a PostgreSQL server: `source scripts/postgres.sh` starts
//! a throwaway one. Without `--bench` (as the test command runs it) every case runs once at a
//! tenth of the size and 10 ms, to keep it working.

mod common;

use common::{median, plugin_path};
use scim_simulator::{generated_user, Simulator, SimulatorOptions};
use serde_json::{json, Value};
use soar_host::ledger::{Change, Ledger, RecordKey, Restriction};
use soar_host::lifecycle::{restrictions_of, RestrictionsQuery, StateFilter};
use soar_host::secret::Secret;
use soar_host::state::StateSpec;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-lifecycle-token-77a0";
const GROUP: &str = "Bench Restricted Users";

struct Bench {
    full: bool,
    latency_ms: u64,
    dir: PathBuf,
    cache: PathBuf,
    postgres: Option<(String, String)>,
}

impl Bench {
    fn scale(&self, n: usize) -> usize {
        if self.full {
            n
        } else {
            n.div_ceil(10)
        }
    }

    fn soar_host(&self, env_data: Option<&Path>) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_soar-host"));
        command.env("XDG_CACHE_HOME", &self.cache).env("BENCH_TOKEN", TOKEN);
        match env_data {
            Some(data) => command.env("XDG_DATA_HOME", data),
            // No data folder and no `state`: the change runs unrecorded, the cost of no ledger.
            None => command.env_remove("XDG_DATA_HOME").env_remove("HOME"),
        };
        if let Some((_, password)) = &self.postgres {
            command.env("SOAR_TEST_POSTGRES_PASSWORD", password);
        }
        command.args(["--plugin", &plugin_path().display().to_string()]);
        command
    }

    fn config(&self, sim: &Simulator, name: &str, state: Option<&str>, zia: bool) -> PathBuf {
        let mut provider = json!({"name": name, "base_url": sim.base_url(), "restricted_group": GROUP,
                                  "token_env": "BENCH_TOKEN"});
        if zia {
            provider["profile"] = json!("zia");
            provider["requests_per_second"] = json!(self.rate());
        }
        let mut config = json!({"allow_http": true, "identity_providers": [provider], "deadline_ms": 170_000,
                                "cache_dir": self.cache.display().to_string()});
        if let Some(state) = state {
            config["state"] = json!(state);
            if state.starts_with("postgres") {
                config["state_password_env"] = json!("SOAR_TEST_POSTGRES_PASSWORD");
            }
        }
        let path = self.dir.join(format!("config-{}.json", std::process::id()));
        std::fs::write(&path, config.to_string()).unwrap();
        path
    }

    fn rate(&self) -> u32 {
        if self.full {
            5
        } else {
            50
        }
    }

    fn open(&self, state: &str) -> Ledger {
        let spec = match state.strip_prefix("sqlite:") {
            Some(path) => StateSpec::Sqlite(PathBuf::from(path)),
            None => {
                let (url, password) = self.postgres.as_ref().expect("PostgreSQL");
                let parsed = soar_host::state::parse(url, Path::new("."), None).expect("a PostgreSQL URL");
                return Ledger::open(&parsed, Some(Secret::new(password.clone())), Duration::from_secs(10)).unwrap();
            }
        };
        Ledger::open(&spec, None, Duration::from_secs(10)).unwrap()
    }
}

/// Active records for `ids` of provider `idp` and group `group_id`; those in `expired` ended.
fn seed(ledger: &Ledger, idp: &str, group_id: &str, ids: &[(String, String)], expired: usize) {
    let now = soar_host::ledger::now_ms();
    for chunk in ids.chunks(10_000).enumerate() {
        let (offset, chunk) = chunk;
        let changes: Vec<Change> = chunk
            .iter()
            .enumerate()
            .map(|(i, (user, id))| {
                let index = offset * 10_000 + i;
                Change::Restrict(Restriction {
                    key: RecordKey { idp: idp.into(), group_id: group_id.into(), user_id: id.clone() },
                    user: user.clone(),
                    user_name: Some(user.clone()),
                    reason: Some("bench".into()),
                    correlation_id: Some(format!("BENCH-{index}")),
                    expires_at: Some(if index < expired { now - 60_000 } else { now + 86_400_000 }),
                    preexisting: false,
                })
            })
            .collect();
        ledger.settle(&[], now - 120_000, &changes).unwrap();
    }
}

fn reconcile_case(bench: &Bench) {
    let (tenant, members, changed) = (bench.scale(20_000), bench.scale(10_000), bench.scale(100));
    let mut options = SimulatorOptions::new(TOKEN);
    options.generate_users = tenant;
    options.latency_ms = bench.latency_ms;
    options.rate_limit = Some(bench.rate());
    options.max_page_size = 1000;
    let sim = Simulator::start(options).expect("simulator");
    let id = |n: usize| sim.user_id_of(&generated_user(n)).unwrap();
    // Recorded: users 1..=members. In the group: all but the last `changed` of them (dropped by a
    // push), and `changed` users nobody recorded.
    let in_group: Vec<String> = (1..=members - changed).chain(members + 1..=members + changed).map(id).collect();
    let refs: Vec<&str> = in_group.iter().map(String::as_str).collect();
    let group_id = sim.add_group(GROUP, &refs);
    let state = format!("sqlite:{}", bench.dir.join("reconcile.sqlite3").display());
    let recorded: Vec<(String, String)> = (1..=members).map(|n| (generated_user(n), id(n))).collect();
    seed(&bench.open(&state), "tenant", &group_id, &recorded, changed);
    let config = bench.config(&sim, "tenant", Some(&state), true);
    let started = Instant::now();
    let output = bench
        .soar_host(Some(&bench.dir))
        .args(["--config", &config.display().to_string(), "reconcile"])
        .output()
        .unwrap();
    let wall = started.elapsed();
    let document: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("reconcile: {}", String::from_utf8_lossy(&output.stderr)));
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for user in document["providers"][0]["users"].as_array().unwrap() {
        *counts.entry(user["outcome"].as_str().unwrap_or("failed").to_string()).or_default() += 1;
    }
    let expect = [
        ("lifted-expired", changed),
        ("re-added", changed),
        ("unrecorded", changed),
        ("in-place", members - 2 * changed),
    ];
    for (outcome, count) in expect {
        assert_eq!(counts.get(outcome).copied().unwrap_or(0), count, "{outcome}: {counts:?}");
    }
    let after = sim.members(&group_id);
    assert_eq!(after.len(), members, "the dropped are back and the expired gone: {}", after.len());
    assert_eq!(sim.throttled(), 0, "no 429");
    println!(
        "| reconcile: {members} members, {members} records ({changed} expired, {changed} dropped), {changed} unrecorded; {tenant}-user tenant at {}/s, pages of 1,000 | {} requests | {:.2} s | ≤ 10 requests, ≤ 5 s |",
        bench.rate(),
        document["http_requests"],
        wall.as_secs_f64()
    );
}

fn restrictions_case(bench: &Bench, state: &str, label: &str) {
    let records = bench.scale(100_000);
    let ledger = bench.open(state);
    let idp = format!("report-{}", std::process::id());
    let ids: Vec<(String, String)> = (1..=records).map(|n| (generated_user(n), format!("{}", 9_000_000 + n))).collect();
    seed(&ledger, &idp, "1", &ids, 0);
    let sim = Simulator::start(SimulatorOptions::new(TOKEN)).unwrap();
    let config_path = bench.config(&sim, &idp, Some(state), false);
    let env = |name: &str| match name {
        "BENCH_TOKEN" => Some(TOKEN.to_string()),
        _ => std::env::var(name).ok(),
    };
    let config = soar_host::config::Config::load(&config_path, &env).unwrap();
    let query = RestrictionsQuery { idp: Some(idp.clone()), user: None, state: StateFilter::All };
    let document = median(
        (0..5)
            .map(|_| {
                let started = Instant::now();
                let restrictions = restrictions_of(&config, Some(&ledger), &query).unwrap();
                let text = serde_json::to_string(&restrictions).unwrap();
                let wall = started.elapsed();
                assert_eq!(restrictions.len(), records, "{text:.300}");
                wall
            })
            .collect(),
    );
    // The command as a person or a script runs it: process start, config, ledger, pretty JSON.
    let command = median(
        (0..3)
            .map(|_| {
                let started = Instant::now();
                let output = bench
                    .soar_host(Some(&bench.dir))
                    .args([
                        "--config",
                        &config_path.display().to_string(),
                        "restrictions",
                        "--state",
                        "all",
                        "--idp",
                        &idp,
                    ])
                    .output()
                    .unwrap();
                let wall = started.elapsed();
                assert!(
                    output.status.success() && output.stdout.len() > records * 100,
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                wall
            })
            .collect(),
    );
    println!(
        "| restrictions over {records} records, {label}: the JSON document (median of 5); the command, start to end (median of 3) | - | {:.0} ms; {:.0} ms | ≤ 200 ms |",
        document.as_secs_f64() * 1e3,
        command.as_secs_f64() * 1e3
    );
}

fn state_cost_case(bench: &Bench) {
    let mut options = SimulatorOptions::new(TOKEN);
    options.generate_users = 100;
    options.latency_ms = bench.latency_ms * 10;
    let sim = Simulator::start(options).unwrap();
    sim.add_group(GROUP, &[]);
    let sqlite = format!("sqlite:{}", bench.dir.join("single.sqlite3").display());
    let mut stores: Vec<(String, Option<String>)> = vec![("no ledger".into(), None), ("SQLite".into(), Some(sqlite))];
    if let Some((url, _)) = &bench.postgres {
        stores.push(("PostgreSQL".into(), Some(url.clone())));
    }
    let mut baseline = None;
    for (label, state) in stores {
        let config = bench.config(&sim, "tenant", state.as_deref(), false);
        let mut runs: Vec<(Duration, u64)> = (0..7)
            .map(|round| {
                let user = generated_user(1 + round % 50);
                for action in ["remove-from-group", "add-to-group"] {
                    let started = Instant::now();
                    let data = state.as_ref().map(|_| bench.dir.as_path());
                    let output = bench
                        .soar_host(data)
                        .args(["--config", &config.display().to_string(), action, "--user", &user])
                        .output()
                        .unwrap();
                    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
                    assert_eq!(document["status"], "success", "{document}");
                    if action == "add-to-group" {
                        return (started.elapsed(), document["http_requests"].as_u64().unwrap());
                    }
                }
                unreachable!()
            })
            .collect();
        runs.sort();
        let (wall, requests) = runs[runs.len() / 2];
        let more = baseline.map(|base: Duration| wall.as_secs_f64() * 1e3 - base.as_secs_f64() * 1e3);
        baseline.get_or_insert(wall);
        println!(
            "| add one user at {} ms RTT, {label} (median of 7) | {requests} requests | {:.1} ms{} | no extra round trip, ≤ 5 ms more |",
            bench.latency_ms * 10,
            wall.as_secs_f64() * 1e3,
            more.map(|ms| format!(" ({ms:+.1} ms)")).unwrap_or_default()
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let full = std::env::args().any(|arg| arg == "--bench");
    let dir = std::env::temp_dir().join(format!("soar-lifecycle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = soar_e2e::workspace().join("target/bench-lifecycle-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let postgres = std::env::var("SOAR_TEST_POSTGRES")
        .ok()
        .map(|url| (url, std::env::var("SOAR_TEST_POSTGRES_PASSWORD").unwrap_or_default()));
    let bench = Bench { full, latency_ms: if full { 10 } else { 1 }, dir: dir.clone(), cache, postgres };
    println!("| case | requests | wall | target |");
    println!("|---|---|---|---|");
    reconcile_case(&bench);
    restrictions_case(&bench, &format!("sqlite:{}", dir.join("report.sqlite3").display()), "SQLite");
    match bench.postgres.clone() {
        Some((url, _)) => restrictions_case(&bench, &url, "PostgreSQL"),
        None => println!("| restrictions, PostgreSQL | - | not measured: SOAR_TEST_POSTGRES is not set | |"),
    }
    state_cost_case(&bench);
    let _ = std::fs::remove_dir_all(&dir);
}
