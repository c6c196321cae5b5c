//! What the benchmarks share: the built component, a seeded simulator and an invocation context.

#![allow(dead_code)]

use restricted_group_plugin::model::{MembershipRequest, Profile, Provider, Settings, UserRef};
use serde_json::json;
use soar_host::config::Limits;
use soar_host::egress::{EgressPolicy, Endpoint};
use soar_host::http_client::{HttpClient, HttpSettings};
use soar_host::runtime::{Call, InvocationContext, LoadOptions, PluginRuntime};
use soar_host::secret::Secret;
use soar_host::simulator::{Seed, SeedGroup, Simulator, SimulatorOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const TOKEN: &str = "bench-token";
pub const GROUP: &str = "ZPA Restricted Users";

pub fn plugin_path() -> PathBuf {
    let path = PathBuf::from(soar_host::cli::WORKSPACE_PLUGIN);
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
    let base = soar_host::url::parse(&sim.base_url()).unwrap();
    InvocationContext {
        egress: Arc::new(EgressPolicy::new(vec![Endpoint { name: "zpa".into(), base, token: Secret::new(TOKEN) }])),
        http: Arc::new(HttpClient::new(HttpSettings::new(8 << 20, Duration::from_secs(10)))),
        limits: Limits::default(),
        log: Arc::new(|_| {}),
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
    [Call::AddToGroup(request.clone()), Call::RemoveFromGroup(request)]
}

/// The cheapest export call: test-connection with no provider.
pub fn trivial_call() -> Call {
    Call::TestConnection(Settings { providers: Vec::new(), retry_after_cap_ms: 0 })
}
