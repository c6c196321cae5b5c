//! Restrictions that last as long as intended, through the real binary: time-bound restrictions
//! in the ledger, `restrictions`, `reconcile` after an identity provider's push, a process killed
//! between its change and its record, bad input refused before anything is sent, and the same
//! story and many machines' workers on a real PostgreSQL server (`SOAR_TEST_POSTGRES`, which the
//! test command starts). After every step the group's members are read from the simulator.

use crate::hardening::refused;
use scim_simulator::{Quirk, Simulator, SimulatorOptions};
use serde_json::{json, Value};
use soar_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

const ALICE: &str = "alice@corp.example";
const BOB: &str = "bob@corp.example";
const CAROL: &str = "carol@corp.example";

/// The PostgreSQL server of the test command, and its password.
fn postgres() -> (String, String) {
    let url = std::env::var("SOAR_TEST_POSTGRES")
        .expect("SOAR_TEST_POSTGRES names the test PostgreSQL server: run the tests with bash scripts/test.sh");
    let password = std::env::var("SOAR_TEST_POSTGRES_PASSWORD").unwrap_or_default();
    (url, password)
}

/// A config for one provider `idp` at `sim`, the ledger at `state` (its password from
/// SOAR_TEST_POSTGRES_PASSWORD through state_password_env).
fn config(dir: &Path, idp: &str, sim: &Simulator, state: &str, extra: Value) -> PathBuf {
    let mut config = json!({
        "allow_http": true,
        "state": state,
        "audit_log": "audit.jsonl",
        "identity_providers": [{"name": idp, "base_url": sim.base_url(), "restricted_group": GROUP, "token_env": "SOAR_TEST_TOKEN"}]
    });
    if state.starts_with("postgres") {
        config["state_password_env"] = json!("SOAR_TEST_POSTGRES_PASSWORD");
    }
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    write_json(dir, &format!("{idp}.json"), &config)
}

fn run(config: &Path, rest: &[&str]) -> Run {
    let mut args = base_args(config);
    args.extend(rest.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let password = std::env::var("SOAR_TEST_POSTGRES_PASSWORD").unwrap_or_default();
    soar_host_with_env(&refs, None, &[("SOAR_TEST_POSTGRES_PASSWORD", password.as_str())])
}

fn outcomes(run: &Run) -> Vec<(String, String)> {
    let document = run.json();
    document["providers"][0]["users"]
        .as_array()
        .unwrap_or_else(|| panic!("{document}"))
        .iter()
        .map(|u| (u["user"].as_str().unwrap().to_string(), u["outcome"].as_str().unwrap_or("-").to_string()))
        .collect()
}

fn records(config: &Path, state: &str) -> Vec<Value> {
    let run = run(config, &["restrictions", "--state", state]);
    assert_eq!(run.code, 0, "{run:?}");
    run.json()["restrictions"].as_array().unwrap().clone()
}

/// Replaces the group's members through the server's own API, as an identity provider's push does.
fn push_members(sim: &Simulator, users: &[&str]) {
    let members: Vec<Value> = users.iter().map(|u| json!({"value": user_id(sim, u)})).collect();
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "members", "value": members}]});
    let url = format!("{}/Groups/{}", sim.base_url(), group_id(sim, GROUP));
    let status = ureq::patch(&url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/scim+json")
        .send(body.to_string())
        .map(|response| response.status().as_u16())
        .unwrap();
    assert!(status < 300, "{status}");
}

/// Waits (at most a minute) until `check` holds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(60), "{what} never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The whole story on one ledger.
fn the_story(state: &str, idp: &str) {
    let sim = simulator(TOKEN, &[ALICE, BOB, CAROL], &[]);
    let dir = scratch_dir();
    let config = config(&dir, idp, &sim, state, json!({}));

    // Restricted for two seconds: active with its expiry, then expired.
    let add = run(
        &config,
        &["--correlation-id", "INC-1", "add-to-group", "--user", ALICE, "--for", "2s", "--reason", "impossible travel"],
    );
    assert_eq!((add.code, outcomes(&add)), (0, vec![(ALICE.into(), "added".into())]), "{add:?}");
    assert_eq!(member_names(&sim), [ALICE]);
    let active = records(&config, "active");
    assert_eq!(active.len(), 1, "{active:?}");
    let record = &active[0];
    assert_eq!(
        (record["user"].as_str(), record["reason"].as_str(), record["correlation_id"].as_str()),
        (Some(ALICE), Some("impossible travel"), Some("INC-1"))
    );
    assert_eq!((record["state"].as_str(), record["lifted_at"].is_null()), (Some("active"), true));
    let restricted = record["restricted_at"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let expires = record["expires_at"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    assert!((expires - restricted).get_milliseconds().abs() <= 2_500, "{record}");
    eventually("the restriction expires", || records(&config, "expired").len() == 1);
    assert!(records(&config, "active").is_empty());

    // A dry run changes nothing, on the server or in the ledger.
    let dry = run(&config, &["reconcile", "--dry-run"]);
    assert_eq!(outcomes(&dry), [(ALICE.to_string(), "would-lift".to_string())], "{dry:?}");
    assert_eq!(member_names(&sim), [ALICE]);
    assert_eq!(records(&config, "expired").len(), 1);

    // reconcile removes the user; the record is lifted by expiry.
    let reconciled = run(&config, &["reconcile"]);
    assert_eq!(
        (reconciled.code, outcomes(&reconciled)),
        (0, vec![(ALICE.into(), "lifted-expired".into())]),
        "{reconciled:?}"
    );
    assert!(member_names(&sim).is_empty());
    let lifted = records(&config, "lifted");
    assert_eq!((lifted.len(), lifted[0]["lifted_by"].as_str()), (1, Some("expired")), "{lifted:?}");

    // Restricted again: the same record, active again, until lifted.
    let add = run(&config, &["add-to-group", "--user", ALICE, "--reason", "second look"]);
    assert_eq!(outcomes(&add), [(ALICE.to_string(), "added".to_string())]);
    let all = records(&config, "all");
    assert_eq!(all.len(), 1, "one current record per provider, group and user: {all:?}");
    assert_eq!((all[0]["state"].as_str(), all[0]["expires_at"].is_null()), (Some("active"), true));

    // The identity provider pushes its own view: alice is dropped, carol (whom nobody recorded) is in.
    push_members(&sim, &[CAROL]);
    assert_eq!(member_names(&sim), [CAROL]);
    let dry = run(&config, &["reconcile", "--dry-run"]);
    let mut seen = outcomes(&dry);
    seen.sort();
    assert_eq!(seen, [(ALICE.into(), "would-re-add".into()), (CAROL.into(), "unrecorded".into())]);
    assert_eq!(member_names(&sim), [CAROL]);
    let reconciled = run(&config, &["reconcile"]);
    let mut seen = outcomes(&reconciled);
    seen.sort();
    assert_eq!(seen, [(ALICE.into(), "re-added".into()), (CAROL.into(), "unrecorded".into())], "{reconciled:?}");
    assert_eq!(member_names(&sim), [ALICE, CAROL], "alice is back; carol is reported, never removed");
    let record = &records(&config, "active")[0];
    assert_eq!(record["times_reasserted"], 1);
    let again = run(&config, &["reconcile"]);
    let mut seen = outcomes(&again);
    seen.sort();
    assert_eq!(seen, [(ALICE.into(), "in-place".into()), (CAROL.into(), "unrecorded".into())]);

    // remove-from-group lifts it; a second one still lifts nothing more and fails nothing.
    let removed = run(&config, &["remove-from-group", "--user", ALICE]);
    assert_eq!(outcomes(&removed), [(ALICE.to_string(), "removed".to_string())]);
    let lifted = records(&config, "lifted");
    assert_eq!(lifted[0]["lifted_by"].as_str(), Some("remove-from-group"));
    assert_eq!(member_names(&sim), [CAROL]);
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"action\":\"reconcile\"") && audit.contains("\"reason\":\"impossible travel\""),
        "{audit}"
    );
}

#[test]
fn the_restriction_story_on_sqlite() {
    the_story("sqlite:ledger.sqlite3", "story-sqlite");
}

#[test]
fn the_restriction_story_on_postgres() {
    let (url, _) = postgres();
    the_story(&url, &format!("story-pg-{}", std::process::id()));
}

#[test]
fn a_membership_that_predates_the_record_is_left_in_place_at_expiry() {
    let sim = simulator(TOKEN, &[ALICE], &[ALICE]);
    let dir = scratch_dir();
    let config = config(&dir, "predates", &sim, "sqlite:ledger.sqlite3", json!({}));
    let add = run(&config, &["add-to-group", "--user", ALICE, "--for", "1s"]);
    assert_eq!(outcomes(&add), [(ALICE.to_string(), "already-member".to_string())]);
    eventually("the restriction expires", || records(&config, "expired").len() == 1);
    let reconciled = run(&config, &["reconcile"]);
    assert_eq!(outcomes(&reconciled), [(ALICE.to_string(), "kept-preexisting".to_string())]);
    assert_eq!(member_names(&sim), [ALICE], "expiry never removes a membership the product did not make");
    assert_eq!(records(&config, "lifted")[0]["lifted_by"], "expired");
}

#[test]
fn a_process_killed_between_its_change_and_its_record_is_settled_by_reconcile() {
    let mut options = SimulatorOptions::new(TOKEN);
    options.latency_ms = 1_500;
    options.seed.users = vec![json!({"userName": ALICE}), json!({"userName": BOB})];
    options.seed.groups = vec![seed_group(GROUP)];
    let sim = Simulator::start(options).unwrap();
    let dir = scratch_dir();
    let config = config(&dir, "killed", &sim, "sqlite:ledger.sqlite3", json!({"deadline_ms": 120_000}));
    let start = |user: &str| {
        soar_host_command(base_args(&config))
            .args(["add-to-group", "--user", user, "--reason", "killed midway"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Killed once its PATCH reached the server: the change lands, its record was never written.
    let mut child = start(ALICE);
    eventually("alice's PATCH reaches the server", || sim.requests().iter().any(|r| r.method == "PATCH"));
    child.kill().unwrap();
    child.wait().unwrap();
    eventually("the server applies alice's PATCH", || member_names(&sim) == [ALICE]);
    // Killed while it looked bob up: nothing changed.
    sim.clear_requests();
    let mut child = start(BOB);
    eventually("bob's lookup reaches the server", || !sim.requests().is_empty());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(records(&config, "all").is_empty(), "neither was recorded");
    let reconciled = run(&config, &["reconcile"]);
    assert_eq!(reconciled.code, 0, "{reconciled:?}");
    assert_eq!(outcomes(&reconciled), [(ALICE.to_string(), "in-place".to_string())]);
    let active = records(&config, "all");
    assert_eq!(active.len(), 1, "no restriction lost, none invented: {active:?}");
    assert_eq!((active[0]["user"].as_str(), active[0]["reason"].as_str()), (Some(ALICE), Some("killed midway")));
    assert_eq!(member_names(&sim), [ALICE]);
    // Settled once: a second reconcile finds nothing left to settle.
    let again = run(&config, &["reconcile"]);
    assert_eq!(outcomes(&again), [(ALICE.to_string(), "in-place".to_string())]);
    assert_eq!(records(&config, "all").len(), 1);
}

#[test]
fn bad_restrictions_and_unusable_stores_are_refused_before_anything_is_sent() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let sqlite = config(&dir, "bad", &sim, "sqlite:ledger.sqlite3", json!({}));
    for (rest, says) in [
        (vec!["--for", "0s"], "more than nothing"),
        (vec!["--for", "-5m"], "--for -5m"),
        (vec!["--for", "400d"], "at most 365 days"),
        (vec!["--for", "soon"], "give a duration"),
        (vec!["--until", "2001-01-01T00:00:00Z"], "in the past"),
        (vec!["--until", "tomorrow"], "RFC 3339"),
        (vec!["--until", "2099-01-01T00:00:00Z"], "at most 365 days"),
        (vec!["--reason", "two\nlines"], "one line"),
    ] {
        let mut args = vec!["add-to-group", "--user", ALICE];
        args.extend(rest);
        refused(&run(&sqlite, &args), "invalid-input", says);
    }
    refused(
        &run(&sqlite, &["remove-from-group", "--user", ALICE, "--for", "1h"]),
        "invalid-input",
        "does not take --for",
    );
    refused(
        &run(&sqlite, &["add-to-group", "--user", ALICE, "--for", "1h", "--until", "2099-01-01T00:00:00Z"]),
        "invalid-input",
        "cannot be used with",
    );
    for (state, says) in [
        ("ftp://ledger.example/x", "scheme 'ftp'"),
        ("postgres://soar:hunter2@127.0.0.1/x", "holds a password"),
        ("postgres://soar@127.0.0.1:1/x", "cannot be opened"),
    ] {
        let config = config(&dir, "bad", &sim, state, json!({}));
        let run = run(&config, &["add-to-group", "--user", ALICE]);
        refused(&run, "invalid-config", says);
        assert!(!run.stdout.contains("hunter2"));
    }
    // A read-only and a corrupt SQLite file.
    std::fs::write(dir.join("corrupt.sqlite3"), b"this is not a database, not even close: 0123456789".repeat(100))
        .unwrap();
    refused(
        &run(&config(&dir, "bad", &sim, "sqlite:corrupt.sqlite3", json!({})), &["add-to-group", "--user", ALICE]),
        "invalid-config",
        "cannot be opened",
    );
    let readonly = config(&dir, "bad", &sim, "sqlite:ro/ledger.sqlite3", json!({}));
    assert_eq!(run(&readonly, &["restrictions"]).code, 0, "created");
    std::fs::set_permissions(dir.join("ro"), std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    std::fs::set_permissions(dir.join("ro/ledger.sqlite3"), std::os::unix::fs::PermissionsExt::from_mode(0o400))
        .unwrap();
    let is_root = unsafe { libc::geteuid() } == 0;
    if !is_root {
        refused(&run(&readonly, &["add-to-group", "--user", ALICE]), "invalid-config", "cannot be opened");
    }
    assert!(sim.requests().is_empty(), "nothing was sent");
    // Reads never open the store.
    let broken = config(&dir, "bad", &sim, "postgres://soar@127.0.0.1:1/x", json!({}));
    assert_eq!(run(&broken, &["check-membership", "--user", ALICE]).code, 0);
    assert_eq!(run(&broken, &["test-connection"]).code, 0);
}

#[test]
fn workers_on_many_machines_share_postgres_for_the_change_lock_and_the_rate_limit() {
    let (url, _) = postgres();
    let mut options = SimulatorOptions::new(TOKEN);
    options.seed.users = (1..=5).map(|n| json!({"userName": format!("user{n}@corp.example")})).collect();
    options.seed.groups = vec![seed_group(GROUP)];
    options.quirks = vec![Quirk::DuplicateMembers];
    options.rate_limit = Some(5);
    let sim = Simulator::start(options).unwrap();
    let dir = scratch_dir();
    let idp = format!("machines-{}", std::process::id());
    let config = config(&dir, &idp, &sim, &url, json!({"deadline_ms": 120_000}));
    let mut with_rate: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    with_rate["identity_providers"][0]["requests_per_second"] = json!(5);
    let password = std::env::var("SOAR_TEST_POSTGRES_PASSWORD").unwrap_or_default();
    all_succeed((0..20).map(|n| {
        // Each worker its own cache folder, as on its own machine: only PostgreSQL is shared.
        let mut own = with_rate.clone();
        own["cache_dir"] = json!(dir.join(format!("machine-{n}")).display().to_string());
        let path = write_json(&dir, &format!("machine-{n}.json"), &own);
        let mut command = soar_host_command(base_args(&path));
        command
            .args(["add-to-group", "--user", "user1@corp.example", "--user", "user2@corp.example"])
            .args(["--user", "user3@corp.example"])
            .env("SOAR_TEST_POSTGRES_PASSWORD", &password)
            .env("XDG_CACHE_HOME", dir.join(format!("machine-{n}")));
        command
    }));
    let stored = sim.members(&group_id(&sim, GROUP));
    assert_eq!(stored.len(), 3, "each member stored once: {stored:?}");
    assert_eq!(sim.throttled(), 0, "one rate limit for every machine: no 429");
}

#[test]
fn reconcile_with_a_plugin_older_than_wit_1_2_is_refused_saying_what_to_load() {
    let sim = simulator(TOKEN, &[ALICE], &[ALICE]);
    let dir = scratch_dir();
    let config = config(&dir, "older", &sim, "sqlite:ledger.sqlite3", json!({}));
    let older = hostile_path("wit-1-0").display().to_string();
    let config_path = config.display().to_string();
    let args = ["--plugin", older.as_str(), "--config", config_path.as_str(), "reconcile"];
    let reconciled = soar_host(&args, None);
    refused(&reconciled, "plugin-load", "soar:restricted-group@1.2.0");
    assert!(sim.requests().is_empty(), "nothing was sent");
    assert_eq!(member_names(&sim), [ALICE]);
    // The ledger is still readable with it.
    let listed = soar_host(&["--plugin", older.as_str(), "--config", config_path.as_str(), "restrictions"], None);
    assert_eq!((listed.code, listed.json()["restrictions"].as_array().map(Vec::len)), (0, Some(0)), "{listed:?}");
}

#[test]
fn a_store_that_fails_mid_run_is_reported_and_reconcile_recovers_the_record() {
    let (url, password) = postgres();
    let mut options = SimulatorOptions::new(TOKEN);
    options.latency_ms = 1_500;
    options.seed.users = vec![json!({"userName": ALICE})];
    options.seed.groups = vec![seed_group(GROUP)];
    let sim = Simulator::start(options).unwrap();
    let dir = scratch_dir();
    let idp = format!("dies-{}", std::process::id());
    let config = config(&dir, &idp, &sim, &url, json!({"deadline_ms": 120_000}));
    let child = soar_host_command(base_args(&config))
        .args(["add-to-group", "--user", ALICE, "--reason", "store dies"])
        .env("SOAR_TEST_POSTGRES_PASSWORD", &password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its intent is written and its PATCH is at the server: its session with the store ends now.
    eventually("the PATCH reaches the server", || sim.requests().iter().any(|r| r.method == "PATCH"));
    let mut admin = postgres::Config::from_str(&url).unwrap().password(&password).connect(postgres::NoTls).unwrap();
    let ended = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("soar-host {}", child.id())],
        )
        .unwrap();
    assert_eq!(ended.get::<_, i64>(0), 1, "the action's one session");
    let output = child.wait_with_output().unwrap();
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{document}");
    assert_eq!(
        (document["status"].as_str(), document["providers"][0]["users"][0]["outcome"].as_str()),
        (Some("success"), Some("added"))
    );
    let said = document["ledger_error"].as_str().unwrap_or_else(|| panic!("{document}"));
    assert!(said.contains("restriction ledger") && said.contains("postgres://soar@"), "{said}");
    assert!(!said.contains(&password) && !String::from_utf8_lossy(&output.stderr).contains(&password));
    assert_eq!(member_names(&sim), [ALICE], "the change was made");
    // Nothing lost: the intent written before the change makes the record at the next reconcile.
    assert!(records(&config, "all").iter().all(|r| r["user"] != ALICE));
    let reconciled = run(&config, &["reconcile"]);
    assert_eq!(outcomes(&reconciled), [(ALICE.to_string(), "in-place".to_string())], "{reconciled:?}");
    let recorded = records(&config, "active");
    assert_eq!((recorded.len(), recorded[0]["reason"].as_str()), (1, Some("store dies")), "{recorded:?}");
}
