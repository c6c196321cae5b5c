//! Guardrails an operator needs before letting a playbook lock people out: protected users,
//! a cap on users per call, and an audit trail; plus the egress checks on resolved addresses
//! and the per-origin rate limit.

use serde_json::{json, Value};
use soar_e2e::*;

const ALICE: &str = "alice@corp.example";
const BOB: &str = "bob@corp.example";
const ADMIN: &str = "breakglass@corp.example";

fn config_with(sim: &scim_simulator::Simulator, extra: Value) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", sim, "SOAR_TEST_TOKEN")], extra);
    (dir, config)
}

#[test]
fn protected_users_are_never_added_and_the_others_proceed() {
    let sim = simulator(TOKEN, &[ALICE, BOB, ADMIN], &[]);
    let (_, config) = config_with(
        &sim,
        json!({"protected_users": ["BreakGlass@Corp.Example", format!("id:{}", user_id(&sim, BOB))]}),
    );

    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--user", ADMIN]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.json()["status"], "partial");
    assert_eq!(run.outcome(0, 0), "added");
    assert_eq!(run.user_error_kind(0, 1), "protected-user");
    let lookups: Vec<String> = sim.requests().iter().filter_map(|r| r.param("filter").map(str::to_string)).collect();
    assert!(
        lookups.iter().all(|f| !f.to_lowercase().contains("breakglass")),
        "nothing sent for the protected user: {lookups:?}"
    );

    // Protected by id, asked for by email: caught after the lookup, before any change.
    sim.clear_requests();
    let run = run_with(&config, &["add-to-group", "--user", BOB]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.user_error_kind(0, 0), "protected-user");
    assert!(sim.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(member_names(&sim), [ALICE]);
}

#[test]
fn removal_of_a_protected_user_is_allowed() {
    let sim = simulator(TOKEN, &[ADMIN], &[ADMIN]);
    let (_, config) = config_with(&sim, json!({"protected_users": [ADMIN]}));
    let run = run_with(&config, &["remove-from-group", "--user", ADMIN]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("removed")), "{run:?}");
    assert!(member_names(&sim).is_empty());
}

#[test]
fn an_oversized_call_is_refused_with_nothing_sent() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let (dir, config) = config_with(&sim, json!({"max_users_per_action": 3}));
    let list = dir.join("users.txt");
    std::fs::write(&list, (0..4).map(|n| format!("user{n}@corp.example\n")).collect::<String>()).unwrap();
    let run = run_with(&config, &["add-to-group", "--users-file", &list.display().to_string()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.json()["error"]["kind"], "invalid-input");
    assert!(run.json()["error"]["message"].as_str().unwrap().contains("max_users_per_action (3)"));
    assert!(sim.requests().is_empty());

    // The default cap is 100.
    let (dir, config) = config_with(&sim, json!({}));
    let list = dir.join("many.txt");
    std::fs::write(&list, (0..101).map(|n| format!("user{n}@corp.example\n")).collect::<String>()).unwrap();
    let run = run_with(&config, &["remove-from-group", "--users-file", &list.display().to_string()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(sim.requests().is_empty());
}

fn audit_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {line}")))
        .collect()
}

#[test]
fn every_change_and_dry_run_decision_is_audited_without_the_token() {
    let sim = simulator(TOKEN, &[ALICE, BOB], &[]);
    let (dir, config) = config_with(&sim, json!({"audit_log": "audit.jsonl"}));
    let audit = dir.join("audit.jsonl");
    let gid = group_id(&sim, GROUP);

    let run = run_with(&config, &["--correlation-id", "INC-1", "add-to-group", "--user", ALICE, "--dry-run"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = run_with(
        &config,
        &["--correlation-id", "INC-2", "add-to-group", "--user", ALICE, "--user", "ghost@corp.example"],
    );
    assert_eq!(run.code, 3, "{run:?}");
    let run = run_with(&config, &["--correlation-id", "INC-3", "remove-from-group", "--user", ALICE]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0);

    let lines = audit_lines(&audit);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let summary: Vec<(String, String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["correlation_id"].as_str().unwrap_or("").into(),
                l["action"].as_str().unwrap_or("").into(),
                l["user"].as_str().unwrap_or("").into(),
                l["outcome"].as_str().or(l["error"].as_str()).unwrap_or("").into(),
            )
        })
        .collect();
    let expected = [
        ("INC-1", "add-to-group", ALICE, "would-add"),
        ("INC-2", "add-to-group", ALICE, "added"),
        ("INC-2", "add-to-group", "ghost@corp.example", "user-not-found"),
        ("INC-3", "remove-from-group", ALICE, "removed"),
    ];
    for (got, want) in summary.iter().zip(expected) {
        assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str(), got.3.as_str()), want);
    }
    for line in &lines {
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
        assert_eq!(line["provider"], "zpa");
        assert_eq!(line["group_id"], gid.as_str());
    }
    assert_eq!(lines[1]["user_id"], user_id(&sim, ALICE).as_str());
    assert_eq!(lines[0]["dry_run"], true);
    assert!(!std::fs::read_to_string(&audit).unwrap().contains(TOKEN));
}

#[test]
fn a_failure_is_audited_too() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN_2")], json!({"audit_log": "audit.jsonl"}));
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!(run.code, 1, "{run:?}");
    let lines = audit_lines(&dir.join("audit.jsonl"));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["error"], "auth-failed");
    assert_eq!(lines[0]["http_status"], 401);
}

#[test]
fn an_unwritable_audit_log_stops_the_action_before_any_request() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let (dir, _) = config_with(&sim, json!({}));
    std::fs::create_dir_all(dir.join("audit-is-a-folder.jsonl")).unwrap();
    let config =
        write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"audit_log": "audit-is-a-folder.jsonl"}));
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.json()["error"]["message"].as_str().unwrap().contains("cannot open audit_log"));
    assert!(sim.requests().is_empty());
    assert!(member_names(&sim).is_empty());
}

#[test]
fn the_correlation_id_is_in_every_log_line() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    sim.set_quirk(scim_simulator::Quirk::FilterRejected, true);
    let (_, config) = config_with(&sim, json!({}));
    let run = run_with(&config, &["--correlation-id", "RUN-77", "add-to-group", "--user", ALICE]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("soar-host")).collect();
    assert!(!lines.is_empty(), "the refused filter is logged: {}", run.stderr);
    assert!(lines.iter().all(|l| l.starts_with("soar-host [RUN-77] ")), "{lines:?}");
}

#[test]
fn addresses_a_provider_may_not_reach_are_denied_before_connecting() {
    let dir = scratch_dir();
    for (base_url, extra, says) in [
        ("https://169.254.169.254/scim/v2", json!({}), "link-local"),
        ("https://10.255.255.1/scim/v2", json!({}), "allow_private_network"),
        ("https://[fd00::1]/scim/v2", json!({}), "allow_private_network"),
    ] {
        let mut provider =
            json!({"name": "p", "base_url": base_url, "restricted_group": GROUP, "token_env": "SOAR_TEST_TOKEN"});
        for (k, v) in extra.as_object().unwrap() {
            provider[k] = v.clone();
        }
        let config =
            write_json(&dir, "config.json", &json!({"identity_providers": [provider], "connect_timeout_ms": 500}));
        let run = run_with(&config, &["test-connection"]);
        assert_eq!(run.code, 1, "{run:?}");
        let error = &run.json()["providers"][0]["error"];
        assert_eq!(error["kind"], "denied", "{base_url}: {error}");
        assert!(error["message"].as_str().unwrap().contains(says), "{error}");
        assert_eq!(run.json()["http_requests"], 0, "refused before connecting: nothing was sent");
    }
}

#[test]
fn the_rate_limit_wait_counts_against_the_deadline() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}))).unwrap(),
    )
    .unwrap();
    // One request a second, one action of 500 ms: the second request cannot fit.
    config["identity_providers"][0]["requests_per_second"] = json!(1);
    config["deadline_ms"] = json!(500);
    let config = write_json(&dir, "limited.json", &config);
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    let kind = doc["providers"][0]["users"][0]["error"]["kind"].clone();
    assert_eq!(kind, "timeout", "{doc}");
    assert!(doc.to_string().contains("rate limit"), "{doc}");
    assert_eq!(sim.requests().len(), 1, "only the group lookup was sent");
    assert!(member_names(&sim).is_empty());
}
