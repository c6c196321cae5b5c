//! Tenant distance: independent requests travel together (never more than
//! `max_concurrent_requests` at once per provider), batches cost a handful of requests, and a
//! large call finishes or times out with an outcome for every user. Requests are counted at the
//! server; nothing here is timed (the figures are `cargo bench -p soar-host-cli --bench distance`).

use scim_simulator::{generated_user, Quirk, Simulator, SimulatorOptions};
use serde_json::{json, Value};
use soar_e2e::*;
use soar_host::action::ActionRequest;
use soar_types::Action;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A tenant of `users` generated users, the first `members` of them in the restricted group,
/// answering after `latency_ms` (long enough for requests sent together to overlap at the
/// server, which is what the tests count).
fn tenant(users: usize, members: usize, latency_ms: u64, quirks: &[Quirk]) -> Simulator {
    let mut options = SimulatorOptions::new(TOKEN);
    options.generate_users = users;
    options.generate_members = members;
    options.latency_ms = latency_ms;
    options.quirks = quirks.to_vec();
    Simulator::start(options).expect("simulator starts")
}

/// A `--users-file` of generated users `first..=last`.
fn users_file(dir: &Path, first: usize, last: usize) -> PathBuf {
    let lines: Vec<String> = (first..=last).map(generated_user).collect();
    let path = dir.join("users.txt");
    std::fs::write(&path, lines.join("\n") + "\n").expect("users file");
    path
}

fn add_users(sim: &Simulator, first: usize, last: usize, extra: Value) -> Run {
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", sim, "SOAR_TEST_TOKEN")], extra);
    let file = users_file(&dir, first, last);
    run_with(&config, &["add-to-group", "--users-file", &file.display().to_string()])
}

fn requests(run: &Run) -> u64 {
    run.json()["http_requests"].as_u64().expect("http_requests")
}

fn outcomes(run: &Run) -> Vec<Value> {
    let document = run.json();
    document["providers"][0]["users"].as_array().expect("users").iter().map(|u| u["outcome"].clone()).collect()
}

#[test]
fn a_hundred_users_without_groups_on_users_take_a_handful_of_requests_sent_together() {
    let sim = tenant(300, 0, 20, &[Quirk::NoUserGroups]);
    let run = add_users(&sim, 1, 100, json!({"max_concurrent_requests": 3}));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(outcomes(&run).iter().all(|o| o == "added"));
    assert!(requests(&run) <= 8, "{} requests: {:?}", requests(&run), request_lines(&sim));
    assert_eq!(member_names(&sim).len(), 100);
    assert!((2..=3).contains(&sim.most_in_flight()), "at most 3 at once, and some together: {}", sim.most_in_flight());

    let sim = tenant(300, 0, 20, &[Quirk::NoUserGroups]);
    let run = add_users(&sim, 1, 100, json!({"max_concurrent_requests": 1}));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(sim.most_in_flight(), 1, "max_concurrent_requests 1 sends one at a time");
}

#[test]
fn one_user_costs_two_rounds_where_users_carry_groups() {
    let sim = tenant(50, 0, 30, &[]);
    let run = add_users(&sim, 7, 7, json!({}));
    assert_eq!((run.code, outcomes(&run)), (0, vec![json!("added")]), "{run:?}");
    let lines = request_lines(&sim);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[2].starts_with("PATCH"), "group and user looked up together, then the change: {lines:?}");
    assert_eq!(sim.most_in_flight(), 2, "the two lookups travel together");
}

#[test]
fn users_that_or_filters_cannot_find_are_read_page_by_page_when_that_is_fewer_requests() {
    let sim = tenant(250, 0, 0, &[Quirk::OrFilterRejected, Quirk::NoUserGroups]);
    let run = add_users(&sim, 101, 230, json!({"max_users_per_action": 1000}));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(outcomes(&run).iter().all(|o| o == "added"));
    assert_eq!(member_names(&sim).len(), 130);
    let lines = request_lines(&sim);
    let single_lookups = lines.iter().filter(|l| l.contains("filter=userName eq") && !l.contains(" or ")).count();
    assert_eq!(single_lookups, 0, "130 users, 3 pages of users: {lines:#?}");
    assert!(requests(&run) < 15, "{} requests: {lines:#?}", requests(&run));

    // Few users: one filter each is fewer requests than reading the tenant.
    let sim = tenant(250, 0, 0, &[Quirk::OrFilterRejected, Quirk::NoUserGroups]);
    let run = add_users(&sim, 1, 3, json!({}));
    assert_eq!(run.code, 0, "{run:?}");
    let lines = request_lines(&sim);
    assert!(!lines.iter().any(|l| l.contains("startIndex=101")), "{lines:?}");
}

#[test]
fn a_large_call_ends_inside_the_deadline_with_an_outcome_for_every_user() {
    // 2,000 users at 5 requests a second and a 3 s deadline: the lookups alone need more.
    let sim = tenant(2_500, 0, 0, &[Quirk::NoUserGroups]);
    let extra = json!({"max_users_per_action": 2000, "deadline_ms": 3000});
    let dir = scratch_dir();
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], extra)).unwrap(),
    )
    .unwrap();
    config["identity_providers"][0]["requests_per_second"] = json!(5);
    let config = write_json(&dir, "config.json", &config);
    let file = users_file(&dir, 1, 2_000);
    let run = run_with(&config, &["add-to-group", "--users-file", &file.display().to_string()]);
    let document = run.json();
    let users = document["providers"][0]["users"].as_array().expect("users");
    assert_eq!(users.len(), 2_000, "an outcome or an error for every user");
    let stored: std::collections::BTreeSet<String> = member_names(&sim).into_iter().collect();
    for user in users {
        let name = user["user"].as_str().unwrap();
        match user["outcome"].as_str() {
            Some("added") => assert!(stored.contains(name), "{name} reported added but not stored"),
            None => {
                assert_eq!(user["error"]["kind"], "timeout", "{user}");
                assert!(!stored.contains(name), "{name} stored but reported {user}");
            }
            other => panic!("unexpected outcome {other:?}: {user}"),
        }
    }
    assert!([1, 3].contains(&run.code), "failed or partial, not success: {}", run.code);
    assert!(users.iter().any(|u| u["outcome"].is_null()), "the deadline cut the call short");
}

#[test]
fn send_all_is_served_in_bounded_waves_and_an_empty_list_is_answered_empty() {
    let sim = tenant(5, 0, 20, &[]);
    let hostile = Arc::new(load_runtime(&hostile_path("plain")).expect("fixture loads"));
    let url = format!("{}/Users", sim.base_url());
    let run = |command: &str, extra: Value| {
        let mut config = json!({"allow_http": true, "identity_providers": [provider_entry("p", &sim, command)]});
        for (key, value) in extra.as_object().unwrap() {
            config[key] = value.clone();
        }
        let (host, _) = action_host(hostile.clone(), &config);
        let report = host.run(&ActionRequest::new(Action::TestConnection));
        report.document["providers"][0]["error"]["message"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(run(&format!("send-all p 0 {url}"), json!({})), "answers 0 statuses {}");
    sim.clear_requests();
    let answer = run(&format!("send-all p 40 {url}"), json!({"max_concurrent_requests": 2}));
    assert_eq!(answer, "answers 40 statuses {\"200\"}");
    assert_eq!(sim.requests().len(), 40);
    assert_eq!(sim.most_in_flight(), 2);
    // Every request passes the egress rule: to another origin, each is denied and none sent.
    sim.clear_requests();
    let answer = run("send-all p 3 http://127.0.0.1:9/Users", json!({}));
    assert!(answer.starts_with("answers 3 statuses {") && answer.contains("Denied("), "{answer}");
    assert!(sim.requests().is_empty());
}
