//! The sandbox end to end: the real component imports only what the host allows; hostile
//! components get typed errors, send nothing where they must not, and the same host then runs
//! the real plugin normally.

use scim_simulator::Simulator;
use serde_json::{json, Value};
use soar_e2e::*;
use soar_host::action::{ActionHost, ActionRequest};
use soar_host::runtime::{component_imports, import_allowed, PluginRuntime};
use soar_types::Action;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn load(path: &Path) -> Result<PluginRuntime, String> {
    load_runtime(path)
}

/// An action host over `runtime` whose providers are `(name, simulator, restricted_group)`;
/// the hostile plugin reads its command from `restricted_group`.
fn host_for(
    runtime: Arc<PluginRuntime>,
    providers: &[(&str, &Simulator, &str)],
    extra: Value,
) -> (ActionHost, Arc<Mutex<Vec<String>>>) {
    let list: Vec<Value> = providers.iter().map(|(name, sim, group)| provider_entry(name, sim, group)).collect();
    let mut value = json!({"allow_http": true, "identity_providers": list});
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    action_host(runtime, &value)
}

fn first_error(document: &Value) -> (String, String) {
    let error = &document["providers"][0]["error"];
    (error["kind"].as_str().unwrap_or("").into(), error["message"].as_str().unwrap_or("").into())
}

#[test]
fn the_real_plugin_imports_only_the_allowed_set() {
    let imports = component_imports(&std::fs::read(plugin_path()).unwrap()).unwrap();
    assert!(!imports.is_empty());
    for name in &imports {
        assert!(import_allowed(name), "the plugin imports {name}");
        assert!(
            !name.starts_with("wasi:clocks")
                && !name.starts_with("wasi:filesystem")
                && !name.starts_with("wasi:sockets")
        );
    }
    for own in ["http", "log", "wait"] {
        assert!(
            imports.iter().any(|i| i == &format!("soar:restricted-group/{own}@{}", soar_types::WIT_VERSION)),
            "{imports:?}"
        );
    }
}

#[test]
fn components_importing_clocks_files_or_sockets_fail_to_load_by_name() {
    for (variant, import) in
        [("clock", "wasi:clocks/"), ("filesystem", "wasi:filesystem/"), ("sockets", "wasi:sockets/")]
    {
        let why = load(&hostile_path(variant)).err().unwrap_or_else(|| panic!("{variant} loaded"));
        let named = why.split(", which").next().unwrap();
        assert!(named.contains(import), "{variant}: {why}");
        assert!(why.contains("which this host does not provide"), "{why}");
    }
}

#[test]
fn requests_outside_the_named_providers_base_url_are_denied_and_never_sent() {
    let home = simulator(TOKEN, &[], &[]);
    let elsewhere = simulator("other-token", &[], &[]);
    let runtime = Arc::new(load(&hostile_path("plain")).unwrap());
    let base = home.base_url();
    let origin = base.split("/scim/").next().unwrap().to_string();
    let other_port = elsewhere.base_url();
    let attempts = [
        format!("send p GET {other_port}/Users"),
        format!("send p GET {origin}/scim/1/999/v2/Users"),
        format!("send p GET {base}evil/Users"),
        format!("send p GET {base}/../../1/999/v2/Users"),
        format!("send p GET {base}/%2e%2e/%2E%2e/x"),
        "send p GET http://169.254.169.254/latest/meta-data/".to_string(),
        format!("send q GET {base}/Users"),
        format!("send p GET {base}/Users Authorization: Bearer stolen"),
        format!("send p GET {base}/Users Cookie: a=b"),
        format!("send p GET {base}/Users Upgrade: websocket"),
        format!("send p GET {base}/Users Expect: 100-continue"),
        format!("send p GET {base}/Users TE: trailers"),
        format!("send p GET {base}/..;/1/999/v2/Users"),
        format!("send p GET {base}/%c0%ae%c0%ae/1/999/v2/Users"),
        format!("send p GET {base}/Users%2F..%2F..%2Fadmin"),
        format!("send p GET {}", base.replace("127.0.0.1", "127.0.0.1.")),
        format!("send p GET {}", base.replace("http://", "https://")),
    ];
    for attempt in &attempts {
        let (host, _) = host_for(runtime.clone(), &[("p", &home, attempt)], json!({}));
        let report = host.run(&ActionRequest::new(Action::TestConnection));
        let (_, message) = first_error(&report.document);
        assert!(message.starts_with("denied: "), "{attempt}: {message}");
        assert_eq!(report.document["http_requests"], 0, "{attempt}");
    }
    assert!(home.requests().is_empty(), "{:?}", request_lines(&home));
    assert!(elsewhere.requests().is_empty(), "{:?}", request_lines(&elsewhere));
    assert_eq!((home.connections(), elsewhere.connections()), (0, 0), "not even a connection");

    // Under the base URL the request goes out, with the provider's token.
    let (host, _) = host_for(runtime.clone(), &[("p", &home, &format!("send p GET {base}/Users"))], json!({}));
    let report = host.run(&ActionRequest::new(Action::TestConnection));
    assert!(first_error(&report.document).1.starts_with("status 200"), "{}", report.document);
    assert_eq!(home.requests()[0].authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
}

#[test]
fn runaway_plugins_cost_one_invocation_and_the_host_carries_on() {
    let sim = simulator(TOKEN, &["alice@corp.example"], &[]);
    let hostile = Arc::new(load(&hostile_path("plain")).unwrap());
    for (command, kind, says) in [
        ("loop", "plugin-timeout", "deadline of 1500 ms"),
        ("alloc", "plugin-out-of-memory", "more than 16 MiB"),
        ("panic the plans went wrong", "plugin-panicked", "the plugin panicked: the plans went wrong (at "),
        ("trap", "plugin-trapped", "the plugin trapped"),
    ] {
        let (host, _) =
            host_for(hostile.clone(), &[("p", &sim, command)], json!({"deadline_ms": 1500, "memory_limit_mib": 16}));
        let mut request = ActionRequest::new(Action::AddToGroup);
        request.users = vec!["alice@corp.example".into()];
        let report = host.run(&request);
        assert_eq!(report.exit_code, 1, "{command}: {}", report.document);
        assert_eq!(report.document["status"], "failed");
        let (got_kind, message) = first_error(&report.document);
        assert_eq!(got_kind, kind, "{command}: {message}");
        assert!(message.contains(says), "{command}: {message}");
        assert_eq!(report.document["error"]["kind"], kind);
        assert!(!report.document.to_string().contains(TOKEN));
    }
    // The same process then serves the real plugin.
    let real = real_runtime();
    let (host, _) = host_for(real, &[("p", &sim, GROUP)], json!({}));
    let mut request = ActionRequest::new(Action::AddToGroup);
    request.users = vec!["alice@corp.example".into()];
    let report = host.run(&request);
    assert_eq!(report.exit_code, 0, "{}", report.document);
    assert_eq!(member_names(&sim), ["alice@corp.example"]);
}

#[test]
fn a_server_echoing_the_token_cannot_hand_it_to_the_plugin() {
    let sim = simulator(TOKEN, &[], &[]);
    sim.set_quirk(scim_simulator::Quirk::EchoAuthorization, true);
    let hostile = Arc::new(load(&hostile_path("plain")).unwrap());
    let command = format!("send p GET {}/Users/404", sim.base_url());
    let (host, logs) = host_for(hostile, &[("p", &sim, &command)], json!({}));
    let report = host.run(&ActionRequest::new(Action::TestConnection));
    let (_, message) = first_error(&report.document);
    assert!(message.starts_with("status 404"), "{message}");
    assert!(message.contains("Authorization: Bearer <redacted>"), "{message}");
    assert!(!report.document.to_string().contains(TOKEN));
    assert!(logs.lock().unwrap().iter().all(|line| !line.contains(TOKEN)));
}

#[test]
fn the_plugin_sees_no_environment_arguments_or_input() {
    let sim = simulator(TOKEN, &[], &[]);
    let hostile = Arc::new(load(&hostile_path("plain")).unwrap());
    for (command, expected) in [("env", "env [] args []"), ("stdin", "stdin Ok(0) \"\"")] {
        let (host, _) = host_for(hostile.clone(), &[("p", &sim, command)], json!({}));
        let report = host.run(&ActionRequest::new(Action::TestConnection));
        assert_eq!(first_error(&report.document).1, expected);
    }
}

#[test]
fn bodies_over_the_cap_are_refused_both_ways() {
    let sim = simulator(TOKEN, &[], &[]);
    let hostile = Arc::new(load(&hostile_path("plain")).unwrap());
    let command = format!("send-big p {}/Users 5000", sim.base_url());
    let (host, _) = host_for(hostile, &[("p", &sim, &command)], json!({"max_response_bytes": 1000}));
    let report = host.run(&ActionRequest::new(Action::TestConnection));
    assert!(first_error(&report.document).1.starts_with("error: HttpError::TooLarge"), "{}", report.document);
    assert!(sim.requests().is_empty(), "an oversized request body is never sent");

    let (host, _) = host_for(real_runtime(), &[("p", &sim, GROUP)], json!({"max_response_bytes": 100}));
    let report = host.run(&ActionRequest::new(Action::TestConnection));
    let error = &report.document["providers"][0]["error"];
    assert_eq!(error["kind"], "too-large", "{error}");
    assert!(error["message"].as_str().unwrap().contains("max_response_bytes"), "{error}");
}

#[test]
fn a_log_flood_is_capped() {
    let sim = simulator(TOKEN, &[], &[]);
    let hostile = Arc::new(load(&hostile_path("plain")).unwrap());
    let (host, logs) = host_for(hostile, &[("p", &sim, "log-flood")], json!({}));
    let report = host.run(&ActionRequest::new(Action::TestConnection));
    assert_eq!(first_error(&report.document).1, "flooded");
    let logs = logs.lock().unwrap();
    assert_eq!(logs.len(), 1001, "1,000 lines and one saying the rest were dropped");
    assert!(logs.last().unwrap().contains("the rest are dropped"));
}

#[test]
fn wait_returns_at_once_when_the_deadline_would_pass() {
    let sim = simulator(TOKEN, &[], &[]);
    let hostile = Arc::new(load(&hostile_path("plain")).unwrap());
    let (host, _) = host_for(hostile.clone(), &[("p", &sim, "sleep 5000")], json!({"deadline_ms": 1000}));
    let report = host.run(&ActionRequest::new(Action::TestConnection));
    assert_eq!(first_error(&report.document).1, "slept false");
    let (host, _) = host_for(hostile, &[("p", &sim, "sleep 10")], json!({"deadline_ms": 1000}));
    let report = host.run(&ActionRequest::new(Action::TestConnection));
    assert_eq!(first_error(&report.document).1, "slept true");
}

#[test]
fn a_component_built_for_wit_1_0_still_runs_in_this_host() {
    let home = simulator(TOKEN, &[], &[]);
    let bytes = std::fs::read(hostile_path("wit-1-0")).unwrap();
    let imports = component_imports(&bytes).unwrap();
    assert!(imports.iter().any(|i| i == "soar:restricted-group/http@1.0.0"), "{imports:?}");
    let runtime = Arc::new(load(&hostile_path("wit-1-0")).expect("a 1.0 component loads in a 1.1 host"));
    let (host, _) = host_for(runtime, &[("p", &home, &format!("send p GET {}/Users", home.base_url()))], json!({}));
    let report = host.run(&ActionRequest::new(Action::TestConnection));
    assert!(first_error(&report.document).1.starts_with("status 200"), "{}", report.document);
    assert_eq!(home.requests()[0].authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
}
