//! Resilience: every simulator fault either succeeds after a retry or fails with the right
//! error kind, membership is never changed wrongly, and many invocations at once in one host
//! process never corrupt a group.

use scim_simulator::{Fault, Quirk, Simulator};
use serde_json::{json, Value};
use soar_e2e::*;
use soar_host::action::{ActionHost, ActionRequest};
use soar_host::group_lock::GroupLocks;
use soar_types::Action;
use std::sync::Arc;
use std::time::Instant;

const ALICE: &str = "alice@corp.example";

fn faulty(fault: Fault) -> (Simulator, std::path::PathBuf) {
    let sim = simulator(TOKEN, &[ALICE, "bob@corp.example"], &[]);
    sim.set_fault(fault, true);
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    (sim, config)
}

fn first_error(run: &Run) -> Value {
    let doc = run.json();
    let provider = &doc["providers"][0];
    if provider["error"].is_object() {
        provider["error"].clone()
    } else {
        provider["users"][0]["error"].clone()
    }
}

#[test]
fn a_dropped_connection_is_retried() {
    let (sim, config) = faulty(Fault::DropConnection);
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    // Each read is retried; the PATCH's lost answer is followed by a read of alice's groups
    // (itself dropped once) before the PATCH is sent again.
    assert_eq!(run.json()["http_requests"], 8, "{:?}", request_lines(&sim));
    assert_eq!(patches_sent(&sim), 2);
    assert_eq!(member_names(&sim), [ALICE]);
}

#[test]
fn a_burst_of_5xx_is_retried() {
    let (sim, config) = faulty(Fault::Burst5xx);
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(run.json()["http_requests"], 6, "3 refused, then the 3 needed");
    assert_eq!(member_names(&sim), [ALICE]);
}

fn patches_sent(sim: &Simulator) -> usize {
    request_lines(sim).iter().filter(|line| line.starts_with("PATCH ")).count()
}

#[test]
fn a_change_whose_answer_is_lost_is_checked_before_anything_is_resent() {
    let (sim, config) = faulty(Fault::DropAfterChange);
    sim.set_quirk(Quirk::DuplicateMembers, true);
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(member_names(&sim), [ALICE], "one member entry, on a server that would store a second");
    assert_eq!(patches_sent(&sim), 1, "{:?}", request_lines(&sim));
    let run = run_with(&config, &["remove-from-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("removed")), "{run:?}");
    assert!(member_names(&sim).is_empty());
    assert_eq!(patches_sent(&sim), 2, "{:?}", request_lines(&sim));
}

#[test]
fn with_max_retries_0_a_lost_answer_is_reported_not_resent() {
    let (sim, config) = faulty(Fault::DropAfterChange);
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--max-retries", "0"]);
    assert_eq!((run.code, run.user_error_kind(0, 0)), (1, json!("transport")), "{run:?}");
    let message = run.json()["providers"][0]["users"][0]["error"]["message"].as_str().unwrap_or("").to_string();
    assert!(message.contains("may have been applied"), "{message}");
    assert_eq!(patches_sent(&sim), 1);
    assert_eq!(member_names(&sim), [ALICE], "the server applied it; the report says it could not be confirmed");
}

#[test]
fn where_membership_cannot_be_read_a_lost_answer_is_resent_up_to_max_retries() {
    let (sim, config) = faulty(Fault::DropAfterChange);
    sim.set_quirk(Quirk::NoMembership, true);
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--max-retries", "2"]);
    assert_eq!((run.code, run.user_error_kind(0, 0)), (1, json!("transport")), "{run:?}");
    assert_eq!(patches_sent(&sim), 3, "{:?}", request_lines(&sim));
    assert_eq!(member_names(&sim), [ALICE]);
}

#[test]
fn retry_after_in_seconds_and_as_a_date_is_honoured() {
    for fault in [Fault::RateLimitSeconds, Fault::RateLimitDate] {
        let (sim, config) = faulty(fault);
        let run = run_with(&config, &["add-to-group", "--user", ALICE]);
        assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{fault}: {run:?}");
        assert_eq!(run.json()["http_requests"], 4, "{fault}");
        assert!(run.stderr.contains("retrying in 1000 ms"), "{fault}: {}", run.stderr);
        assert_eq!(member_names(&sim), [ALICE]);
    }
}

#[test]
fn retry_after_is_capped_by_the_config() {
    let (sim, _) = faulty(Fault::RateLimitSeconds);
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({"retry_after_cap_ms": 100}));
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert!(run.stderr.contains("retrying in 100 ms"), "{}", run.stderr);
}

#[test]
fn throttling_with_no_retries_or_no_time_left_reports_when_to_come_back() {
    let (sim, config) = faulty(Fault::RateLimitSeconds);
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--max-retries", "0"]);
    assert_eq!(run.code, 1, "{run:?}");
    let error = first_error(&run);
    assert_eq!(
        (error["kind"].clone(), error["retry_after_ms"].clone(), error["status"].clone()),
        (json!("rate-limited"), json!(1000), json!(429))
    );
    // The group and the user were looked up together, each once: nothing was retried.
    assert_eq!(run.json()["http_requests"], 2);
    let paths: Vec<String> = sim.requests().iter().map(|r| r.path.clone()).collect();
    assert_ne!(paths[0], paths[1], "{paths:?}");

    sim.clear_requests();
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--timeout-ms", "500"]);
    assert_eq!(run.code, 1, "{run:?}");
    let error = first_error(&run);
    assert_eq!((error["kind"].clone(), error["retry_after_ms"].clone()), (json!("rate-limited"), json!(1000)));
    assert!(error["message"].as_str().unwrap().contains("deadline"), "{error}");
    assert!(member_names(&sim).is_empty());
}

#[test]
fn a_stalled_server_times_out_and_the_host_returns() {
    let (sim, config) = faulty(Fault::Stall);
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--timeout-ms", "800"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(first_error(&run)["kind"], "timeout");
    sim.set_fault(Fault::Stall, false);
    assert!(member_names(&sim).is_empty());
}

#[test]
fn broken_answers_are_protocol_or_transport_errors_and_change_nothing() {
    for (fault, kind) in
        [(Fault::MalformedJson, "protocol"), (Fault::WrongContentType, "protocol"), (Fault::TruncatedBody, "transport")]
    {
        let (sim, config) = faulty(fault);
        let run = run_with(&config, &["add-to-group", "--user", ALICE, "--max-retries", "1"]);
        assert_eq!(run.code, 1, "{fault}: {run:?}");
        let error = first_error(&run);
        assert_eq!(error["kind"], kind, "{fault}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.len() < 600, "{fault}: quotes at most 200 characters: {message}");
        assert!(sim.requests().iter().all(|r| r.method == "GET"), "{fault}");
        sim.set_fault(fault, false);
        assert!(member_names(&sim).is_empty(), "{fault}");
    }
}

#[test]
fn a_conflict_on_add_rereads_membership_and_on_remove_waits_for_the_lock() {
    let (sim, config) = faulty(Fault::ConflictOnce);
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    let patches = sim.requests().iter().filter(|r| r.method == "PATCH").count();
    assert_eq!(patches, 2, "refused once, sent again after reading membership: {:?}", request_lines(&sim));
    assert_eq!(member_names(&sim), [ALICE]);

    sim.clear_requests();
    let run = run_with(&config, &["remove-from-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("removed")), "{run:?}");
    assert!(run.stderr.contains("HTTP 409; retrying in 1000 ms"), "{}", run.stderr);
    assert!(member_names(&sim).is_empty());
}

fn concurrent_host(sim: &Simulator) -> Arc<ActionHost> {
    let config = json!({"allow_http": true, "identity_providers": [provider_entry("zpa", sim, GROUP)]});
    Arc::new(action_host(real_runtime(), &config).0)
}

fn run_all(host: &Arc<ActionHost>, jobs: Vec<(Action, String)>) -> Vec<i32> {
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(action, user)| {
            let host = host.clone();
            std::thread::spawn(move || {
                let mut request = ActionRequest::new(action);
                request.users = vec![user];
                host.run(&request).exit_code
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("no panic")).collect()
}

#[test]
fn thirty_two_adds_then_sixteen_removes_leave_exactly_the_other_half() {
    let users: Vec<String> = (0..32).map(|n| format!("user{n:02}@corp.example")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let sim = simulator(TOKEN, &names, &[]);
    let host = concurrent_host(&sim);
    let codes = run_all(&host, users.iter().map(|u| (Action::AddToGroup, u.clone())).collect());
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
    assert_eq!(member_names(&sim), users);
    let codes = run_all(&host, users[..16].iter().map(|u| (Action::RemoveFromGroup, u.clone())).collect());
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
    assert_eq!(member_names(&sim), users[16..].to_vec());
}

#[test]
fn thirty_two_adds_of_one_user_leave_one_member_entry_even_where_duplicates_are_stored() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    sim.set_quirk(Quirk::DuplicateMembers, true);
    let host = concurrent_host(&sim);
    let codes = run_all(&host, (0..32).map(|_| (Action::AddToGroup, ALICE.to_string())).collect());
    assert!(codes.iter().all(|c| *c == 0), "every invocation reports success: {codes:?}");
    assert_eq!(sim.members(&group_id(&sim, GROUP)).len(), 1);
}

#[test]
fn interleaved_adds_and_removes_then_a_last_add_leave_one_member_entry() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    sim.set_quirk(Quirk::DuplicateMembers, true);
    let host = concurrent_host(&sim);
    let jobs = (0..32)
        .map(|n| (if n % 2 == 0 { Action::AddToGroup } else { Action::RemoveFromGroup }, ALICE.to_string()))
        .collect();
    let codes = run_all(&host, jobs);
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
    let codes = run_all(&host, vec![(Action::AddToGroup, ALICE.to_string())]);
    assert_eq!(codes, [0]);
    assert_eq!(sim.members(&group_id(&sim, GROUP)), [user_id(&sim, ALICE)]);
}

#[test]
fn concurrent_soar_host_processes_adding_one_user_leave_one_member_entry() {
    // A slow server widens the gap between each process's membership check and its PATCH.
    let (sim, config) = faulty(Fault::Slow);
    sim.set_quirk(Quirk::DuplicateMembers, true);
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..8).map(|_| scope.spawn(|| run_with(&config, &["add-to-group", "--user", ALICE]))).collect();
        handles.into_iter().map(|handle| handle.join().expect("no panic")).collect()
    });
    assert!(runs.iter().all(|run| run.code == 0), "{runs:?}");
    let added = runs.iter().filter(|run| run.outcome(0, 0) == json!("added")).count();
    assert_eq!(added, 1, "one process adds, the others find alice there");
    assert_eq!(sim.members(&group_id(&sim, GROUP)), [user_id(&sim, ALICE)]);
}

#[test]
fn a_change_waits_for_another_process_holding_the_group_and_gives_up_at_the_deadline() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let config = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let locks = GroupLocks::new(Some(cli_cache_home().join("soar-host/locks")));
    let held = locks
        .acquire(
            vec![GroupLocks::key(&soar_host::endpoint::tenant(&soar_host::endpoint::parse(&sim.base_url()).unwrap()))],
            Instant::now(),
        )
        .expect("the test holds the group's lock as another process would");
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--timeout-ms", "300"]);
    assert_eq!((run.code, run.json()["error"]["kind"].clone()), (1, json!("timeout")), "{run:?}");
    assert!(sim.requests().is_empty(), "nothing is sent while another process changes the group");
    let run = run_with(&config, &["check-membership", "--user", ALICE]);
    assert_eq!(run.code, 0, "reads do not wait for the lock: {run:?}");
    drop(held);
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--timeout-ms", "5000"]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
}

#[test]
fn the_host_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ActionHost>();
    assert_send_sync::<soar_host::runtime::PluginRuntime>();
}

#[test]
fn a_pooled_runtime_serves_concurrent_invocations() {
    let users: Vec<String> = (0..32).map(|n| format!("pooled{n:02}@corp.example")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let sim = simulator(TOKEN, &names, &[]);
    let options = soar_host::runtime::LoadOptions { pooling: true, ..Default::default() };
    let pooled =
        Arc::new(soar_host::runtime::PluginRuntime::load_file(&plugin_path(), &options).expect("pooled runtime"));
    let config = json!({"allow_http": true, "identity_providers": [provider_entry("zpa", &sim, GROUP)]});
    let host = Arc::new(action_host(pooled, &config).0);
    let codes = run_all(&host, users.iter().map(|u| (Action::AddToGroup, u.clone())).collect());
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
    assert_eq!(member_names(&sim), users);
}
