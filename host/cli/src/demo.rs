//! `soar-host demo`: the whole path on an embedded simulator, with no config to write.

use scim_simulator::{generate_token, Seed, SeedGroup, Simulator, SimulatorOptions};
use serde_json::{json, Value};
use soar_host::action::{ActionHost, ActionRequest};
use soar_host::config::Config;
use soar_host::runtime::PluginRuntime;
use soar_host::services::LogSink;
use soar_types::Action;
use std::path::Path;
use std::sync::Arc;

pub const DEMO_USER: &str = "dana.scully@corp.example";
pub const DEMO_GROUP: &str = "ZPA Restricted Users";
const TOKEN_VARIABLE: &str = "SOAR_DEMO_TOKEN";

/// Runs test-connection, add-to-group twice and remove-from-group against a fresh simulator.
/// Returns `{"steps": [...]}` and whether every step ended as expected.
pub fn run(runtime: PluginRuntime, correlation_id: Option<String>, log: LogSink) -> anyhow::Result<(Value, bool)> {
    let token = generate_token();
    let mut options = SimulatorOptions::new(token.clone());
    options.seed = Seed {
        idp_id: None,
        users: vec![
            json!({"userName": DEMO_USER, "active": true, "name": {"givenName": "Dana", "familyName": "Scully"}}),
            json!({"userName": "fox.mulder@corp.example", "active": true}),
        ],
        groups: vec![SeedGroup::new(DEMO_GROUP)],
    };
    let simulator = Simulator::start(options)?;
    // The demo's restrictions go to a ledger of its own, never the user's.
    let ledger_dir = std::env::temp_dir().join(format!("soar-host-demo-{}", std::process::id()));
    let _remove_ledger = RemovedOnDrop(ledger_dir.clone());
    let config_value = json!({
        "allow_http": true,
        "state": format!("sqlite:{}", ledger_dir.join("restrictions.sqlite3").display()),
        "identity_providers": [{
            "name": "demo-zpa",
            "base_url": simulator.base_url(),
            "restricted_group": DEMO_GROUP,
            "token_env": TOKEN_VARIABLE,
            "profile": "zpa"
        }]
    });
    let lookup = move |name: &str| (name == TOKEN_VARIABLE).then(|| token.clone());
    let config = Config::from_value(&config_value, Path::new("."), &lookup)?;
    let host = ActionHost::new(Arc::new(runtime), config, log);
    let step = |action: Action| {
        let mut request = ActionRequest::new(action);
        request.correlation_id = correlation_id.clone();
        if action.takes_users() {
            request.users = vec![DEMO_USER.to_string()];
        }
        host.run(&request).document
    };
    let steps = vec![
        (step(Action::TestConnection), "connected"),
        (step(Action::AddToGroup), "added"),
        (step(Action::AddToGroup), "already-member"),
        (step(Action::RemoveFromGroup), "removed"),
    ];
    let as_expected = steps.iter().all(|(document, expected)| {
        let provider = &document["providers"][0];
        let outcome = provider["users"][0]["outcome"].as_str().or(provider["outcome"].as_str());
        outcome == Some(expected)
    });
    let steps: Vec<Value> = steps.into_iter().map(|(document, _)| document).collect();
    Ok((json!({"steps": steps}), as_expected))
}

/// A folder removed when the demo ends, however it ends.
struct RemovedOnDrop(std::path::PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
