//! What the benchmarks share: the built component, a seeded simulator and an invocation context.

#![allow(dead_code)]

use scim_simulator::{Seed, SeedGroup, Simulator, SimulatorOptions};
use serde_json::json;
use soar_host::config::Limits;
use soar_host::egress::{EgressPolicy, Endpoint};
use soar_host::http_client::{HttpClient, HttpSettings};
use soar_host::runtime::{Call, LoadOptions, PluginRuntime};
use soar_host::secret::Secret;
use soar_host::services::InvocationContext;
use soar_types::model::{MembershipRequest, Profile, Provider, Settings, UserRef};
use soar_types::Action;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const TOKEN: &str = "bench-token";
pub const GROUP: &str = "ZPA Restricted Users";

pub fn plugin_path() -> PathBuf {
    let path = soar_e2e::workspace().join("target/wasm32-wasip2/component/restricted_group_plugin.wasm");
    assert!(path.is_file(), "build the plugin first: bash scripts/build-plugin.sh");
    path
}

pub fn runtime(pooling: bool) -> Arc<PluginRuntime> {
    let options = LoadOptions { pooling, ..Default::default() };
    Arc::new(PluginRuntime::load_file(&plugin_path(), &options).expect("plugin loads"))
}

/// A simulator with `users` users (`user0@corp.example`, ...) and the restricted group.
pub fn simulator(users: usize) -> Simulator {
    let mut options = SimulatorOptions::new(TOKEN);
    options.seed = Seed {
        idp_id: None,
        users: (0..users).map(|n| json!({"userName": format!("user{n}@corp.example")})).collect(),
        groups: vec![SeedGroup::new(GROUP)],
    };
    Simulator::start(options).expect("simulator")
}

pub fn context(sim: &Simulator) -> InvocationContext {
    let base = soar_host::endpoint::parse(&sim.base_url()).unwrap();
    InvocationContext {
        egress: Arc::new(EgressPolicy::new(vec![Endpoint {
            name: "zpa".into(),
            base,
            token: Secret::new(TOKEN),
            max_concurrent_requests: 4,
        }])),
        http: Arc::new(HttpClient::new(HttpSettings::new(8 << 20, Duration::from_secs(10)))),
        limits: Limits::default(),
        spent_ms: 0,
        log: Arc::new(|_| {}),
        observer: None,
    }
}

pub fn settings(sim: &Simulator) -> Settings {
    Settings {
        providers: vec![Provider {
            name: "zpa".into(),
            base_url: sim.base_url(),
            restricted_group: Some(GROUP.into()),
            restricted_group_id: None,
            profile: Profile::Zpa,
            max_retries: 0,
        }],
        retry_after_cap_ms: 1000,
    }
}

/// add-to-group and remove-from-group of one user.
pub fn add_and_remove(sim: &Simulator, user: &str) -> [Call; 2] {
    let request = MembershipRequest {
        settings: settings(sim),
        users: vec![UserRef::Email(user.into())],
        dry_run: false,
        protected: Vec::new(),
    };
    [Call { action: Action::AddToGroup, request: request.clone() }, Call { action: Action::RemoveFromGroup, request }]
}

/// test-connection of the simulator's provider.
pub fn test_connection_call(sim: &Simulator) -> Call {
    let request =
        MembershipRequest { settings: settings(sim), users: Vec::new(), dry_run: false, protected: Vec::new() };
    Call { action: Action::TestConnection, request }
}

/// The cheapest export call: test-connection with no provider.
pub fn trivial_call() -> Call {
    let settings = Settings { providers: Vec::new(), retry_after_cap_ms: 0 };
    Call {
        action: Action::TestConnection,
        request: MembershipRequest { settings, users: Vec::new(), dry_run: false, protected: Vec::new() },
    }
}

/// The middle value (the upper one of an even count).
pub fn median<T: Ord + Copy>(mut values: Vec<T>) -> T {
    values.sort_unstable();
    values[values.len() / 2]
}
