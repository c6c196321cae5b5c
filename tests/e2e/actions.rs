//! The actions end to end: the real `soar-host` binary loads the real component and talks HTTP
//! to simulators on 127.0.0.1; every test checks the membership the server holds afterwards.

use serde_json::json;
use soar_e2e::*;

const ALICE: &str = "alice@corp.example";
const BOB: &str = "bob@corp.example";

#[test]
fn demo_runs_its_four_steps() {
    let run = soar_host(&["--plugin", &plugin_path().display().to_string(), "demo"], None);
    assert_eq!(run.code, 0, "{run:?}");
    let steps = run.json()["steps"].as_array().expect("steps").clone();
    let outcomes: Vec<String> = steps
        .iter()
        .map(|s| {
            let p = &s["providers"][0];
            p["users"][0]["outcome"].as_str().or(p["outcome"].as_str()).unwrap_or("?").to_string()
        })
        .collect();
    assert_eq!(outcomes, ["connected", "added", "already-member", "removed"]);
    let requests: Vec<u64> = steps.iter().map(|s| s["http_requests"].as_u64().unwrap()).collect();
    assert_eq!(requests, [1, 3, 2, 3], "request counts of the demo's steps");
}

#[test]
fn test_connection_proves_url_token_and_group_in_one_request() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa-prod", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["status"], "success");
    assert_eq!(doc["providers"][0]["outcome"], "connected");
    assert_eq!(doc["providers"][0]["group"]["id"], group_id(&sim, GROUP).as_str());
    assert_eq!(doc["http_requests"], 1);
    assert!(doc["http_requests"].as_u64().unwrap() <= 2);
}

#[test]
fn add_then_add_again_then_remove_changes_the_server_exactly() {
    let sim = simulator(TOKEN, &[ALICE, BOB], &[BOB]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa-prod", &sim, "SOAR_TEST_TOKEN")], json!({}));

    let run = run_with(&config, &["--correlation-id", "INC-4711", "add-to-group", "--user", ALICE]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["action"], "add-to-group");
    assert_eq!(doc["correlation_id"], "INC-4711");
    assert_eq!(doc["dry_run"], false);
    assert_eq!(run.outcome(0, 0), "added");
    assert_eq!(doc["providers"][0]["users"][0]["user_id"], user_id(&sim, ALICE).as_str());
    assert!(doc["http_requests"].as_u64().unwrap() <= 3, "ZPA users carry groups: {doc}");
    assert_eq!(member_names(&sim), [ALICE, BOB]);

    let run = run_with(&config, &["add-to-group", "--user", "ALICE@Corp.Example"]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("already-member")), "{run:?}");
    assert_eq!(sim.members(&group_id(&sim, GROUP)).len(), 2, "no duplicate member");

    let run = run_with(&config, &["remove-from-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("removed")), "{run:?}");
    assert!(run.json()["http_requests"].as_u64().unwrap() <= 4);
    assert_eq!(member_names(&sim), [BOB]);

    let run = run_with(&config, &["remove-from-group", "--user", ALICE]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("not-member")), "{run:?}");
    assert_eq!(member_names(&sim), [BOB]);
}

#[test]
fn dry_run_reports_and_changes_nothing() {
    let sim = simulator(TOKEN, &[ALICE, BOB], &[BOB]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa-prod", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--user", BOB, "--dry-run"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["dry_run"], true);
    assert_eq!((run.outcome(0, 0), run.outcome(0, 1)), (json!("would-add"), json!("already-member")));
    let run = run_with(&config, &["remove-from-group", "--user", ALICE, "--user", BOB, "--dry-run"]);
    assert_eq!((run.outcome(0, 0), run.outcome(0, 1)), (json!("not-member"), json!("would-remove")));
    assert!(sim.requests().iter().all(|r| r.method == "GET"), "a dry run only reads");
    assert_eq!(member_names(&sim), [BOB]);
}

#[test]
fn a_batch_is_one_patch_and_few_round_trips() {
    let users: Vec<String> = (0..12).map(|n| format!("user{n}@corp.example")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let sim = simulator(TOKEN, &names, &names[..2]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa-prod", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let mut args = vec!["add-to-group"];
    for name in &names {
        args.extend(["--user", name]);
    }
    let run = run_with(&config, &args);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let outcomes: Vec<&str> =
        doc["providers"][0]["users"].as_array().unwrap().iter().map(|u| u["outcome"].as_str().unwrap()).collect();
    assert_eq!(&outcomes[..2], ["already-member", "already-member"]);
    assert!(outcomes[2..].iter().all(|o| *o == "added"), "{outcomes:?}");
    let n = names.len() as u64;
    assert!(doc["http_requests"].as_u64().unwrap() <= 2 * n + 2, "{doc}");
    assert_eq!(doc["http_requests"], 3, "group lookup, one `or` user query, one PATCH");
    let patches = sim.requests().iter().filter(|r| r.method == "PATCH").count();
    assert_eq!(patches, 1);
    let mut expected = users.clone();
    expected.sort();
    assert_eq!(member_names(&sim), expected);
}

#[test]
fn users_file_and_standard_input_skip_blanks_and_comments() {
    let sim = simulator(TOKEN, &[ALICE, BOB], &[]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa-prod", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let list = dir.join("users.txt");
    std::fs::write(&list, format!("# risky users\n\n{ALICE}\n")).unwrap();
    let run = run_with(&config, &["add-to-group", "--users-file", &list.display().to_string()]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    let mut args = base_args(&config);
    args.extend(["add-to-group", "--users-file", "-"].map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = soar_host(&refs, Some(&format!("{BOB}\n# done\n")));
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(member_names(&sim), [ALICE, BOB]);
}

#[test]
fn several_providers_each_get_their_own_token_and_outcome() {
    let entra = simulator(TOKEN, &[ALICE], &[]);
    let okta = simulator(OTHER_TOKEN, &[BOB], &[]);
    let dir = scratch_dir();
    let config =
        write_config(&dir, &[("entra", &entra, "SOAR_TEST_TOKEN"), ("okta", &okta, "SOAR_TEST_TOKEN_2")], json!({}));
    let run = run_with(&config, &["add-to-group", "--user", ALICE, "--user", BOB]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!((run.outcome(0, 0), run.outcome(0, 1)), (json!("added"), json!("not-in-provider")));
    assert_eq!((run.outcome(1, 0), run.outcome(1, 1)), (json!("not-in-provider"), json!("added")));
    assert_eq!(member_names(&entra), [ALICE]);
    assert_eq!(member_names(&okta), [BOB]);
    for (sim, token) in [(&entra, TOKEN), (&okta, OTHER_TOKEN)] {
        let expected = format!("Bearer {token}");
        assert!(sim.requests().iter().all(|r| r.authorization.as_deref() == Some(expected.as_str())));
    }

    let run = run_with(&config, &["remove-from-group", "--user", BOB, "--idp", "okta"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["providers"].as_array().unwrap().len(), 1);
    assert_eq!(member_names(&okta), Vec::<String>::new());
    assert_eq!(member_names(&entra), [ALICE]);
}

#[test]
fn one_provider_down_and_another_up_is_partial() {
    let up = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let mut config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(write_config(&dir, &[("up", &up, "SOAR_TEST_TOKEN")], json!({}))).unwrap(),
    )
    .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    config["identity_providers"].as_array_mut().unwrap().push(json!({
        "name": "down", "base_url": format!("http://{closed}/scim/v2"), "restricted_group": GROUP,
        "token_env": "SOAR_TEST_TOKEN", "max_retries": 0
    }));
    let config = write_json(&dir, "config.json", &config);
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!(run.code, 3, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["status"], "partial");
    assert_eq!(run.outcome(0, 0), "added");
    assert_eq!(doc["providers"][1]["error"]["kind"], "transport");
    assert_eq!(member_names(&up), [ALICE]);
}

#[test]
fn failures_come_back_as_typed_errors() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();

    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let run = run_with(&config, &["add-to-group", "--user", "nobody@corp.example"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["status"], "failed");
    assert_eq!(run.user_error_kind(0, 0), "user-not-found");

    let wrong_token = write_config(&scratch_dir(), &[("zpa", &sim, "SOAR_TEST_TOKEN_2")], json!({}));
    let run = run_with(&wrong_token, &["add-to-group", "--user", ALICE]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["providers"][0]["error"]["kind"], "auth-failed");
    assert_eq!(run.json()["providers"][0]["error"]["status"], 401);
    let run = run_with(&wrong_token, &["test-connection"]);
    assert_eq!((run.code, run.json()["providers"][0]["error"]["kind"].clone()), (1, json!("auth-failed")));

    let mut other_group =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&config).unwrap()).unwrap();
    other_group["identity_providers"][0]["restricted_group"] = json!("No Such Group");
    let missing = write_json(&dir, "missing.json", &other_group);
    let run = run_with(&missing, &["test-connection"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["providers"][0]["error"]["kind"], "group-not-found");

    sim.add_group(GROUP, &[]);
    let run = run_with(&config, &["add-to-group", "--user", ALICE]);
    assert_eq!(run.code, 1, "{run:?}");
    let error = &run.json()["providers"][0]["error"];
    assert_eq!(error["kind"], "ambiguous-group");
    assert_eq!(error["ids"].as_array().unwrap().len(), 2);
    assert!(sim.requests().iter().all(|r| r.method == "GET"), "nothing changed");
}

#[test]
fn users_named_by_id_and_external_id() {
    let sim = simulator(TOKEN, &[BOB], &[]);
    let carol =
        sim.add_user_resource(json!({"userName": "c.w@corp.example", "externalId": "EMP-0042", "active": "true"}));
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let bob = user_id(&sim, BOB);
    let run = run_with(&config, &["add-to-group", "--user", &format!("id:{bob}"), "--user", "external:EMP-0042"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!((run.outcome(0, 0), run.outcome(0, 1)), (json!("added"), json!("added")));
    assert_eq!(run.json()["providers"][0]["users"][1]["user_id"], carol.as_str());
    assert_eq!(member_names(&sim), [BOB, "c.w@corp.example"]);
    let run = run_with(&config, &["check-membership", "--user", "external:EMP-0042", "--user", "id:999999"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.outcome(0, 0), "member");
    assert_eq!(run.user_error_kind(0, 1), "user-not-found");
}

#[test]
fn the_component_and_the_native_core_agree() {
    use soar_host::runtime::Call;
    use soar_host::services::InvocationContext;
    let sim = simulator(TOKEN, &[ALICE, BOB], &[BOB]);
    let config = json!({"allow_http": true, "identity_providers": [provider_entry("zpa", &sim, GROUP)]});
    let env = |name: &str| (name == "SOAR_TEST_TOKEN").then(|| TOKEN.to_string());
    let config = soar_host::config::Config::from_value(&config, std::path::Path::new("."), &env).unwrap();
    let provider = &config.providers[0];
    let context = InvocationContext {
        egress: std::sync::Arc::new(soar_host::egress::EgressPolicy::for_providers([provider])),
        http: std::sync::Arc::new(soar_host::http_client::HttpClient::new(soar_host::http_client::HttpSettings::new(
            1 << 20,
            std::time::Duration::from_secs(5),
        ))),
        limits: config.limits.clone(),
        log: std::sync::Arc::new(|_: &soar_host::services::LogRecord| {}),
        observer: None,
        spent_ms: 0,
    };
    let request = soar_types::model::MembershipRequest {
        settings: soar_types::model::Settings {
            providers: vec![soar_types::model::Provider {
                name: "zpa".into(),
                base_url: provider.base_url.to_string(),
                restricted_group: Some(GROUP.into()),
                restricted_group_id: None,
                profile: provider.profile,
                max_retries: 0,
            }],
            retry_after_cap_ms: 1000,
        },
        users: vec![
            soar_types::model::UserRef::Email(ALICE.into()),
            soar_types::model::UserRef::Email(BOB.into()),
            soar_types::model::UserRef::Email("nobody@corp.example".into()),
        ],
        dry_run: true,
        protected: Vec::new(),
    };
    let call = Call { action: soar_types::Action::AddToGroup, request };
    let wasm = real_runtime().invoke(&call, &context);
    let (native, native_requests) = invoke_native(&call, &context);
    assert_eq!(wasm.result.unwrap(), native);
    assert_eq!(wasm.http_requests, native_requests);
}

#[test]
fn one_host_reuses_its_connections_across_invocations() {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let config = json!({"allow_http": true, "identity_providers": [provider_entry("zpa", &sim, GROUP)]});
    let (host, _) = action_host(real_runtime(), &config);
    for _ in 0..10 {
        let report = host.run(&soar_host::action::ActionRequest::new(soar_types::Action::TestConnection));
        assert_eq!(report.exit_code, 0);
    }
    assert_eq!(sim.requests().len(), 10);
    assert_eq!(sim.connections(), 1, "keep-alive: one connection for ten invocations");
}
