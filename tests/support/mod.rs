//! What the end-to-end tests share: the real built component, the real `soar-host` binary,
//! simulators on loopback, config files in scratch folders, and checks that no token leaks.

use scim_simulator::{Seed, SeedGroup, Simulator, SimulatorOptions};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A token no output may ever contain.
pub const TOKEN: &str = "tok-LEAKCHECK-7f3a91c2e5";
pub const OTHER_TOKEN: &str = "tok-LEAKCHECK-second-0b4d";
pub const GROUP: &str = "ZPA Restricted Users";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

fn target_dir() -> PathBuf {
    // Test executables live in target/<profile>/deps.
    let exe = std::env::current_exe().expect("test executable");
    exe.parent().and_then(Path::parent).and_then(Path::parent).expect("target dir").to_path_buf()
}

fn must_exist(path: PathBuf, build: &str) -> PathBuf {
    assert!(path.is_file(), "{} is missing: run `{build}` first (scripts/test.sh does)", path.display());
    path
}

/// The component the workspace builds (scripts/build-plugin.sh).
pub fn plugin_path() -> PathBuf {
    must_exist(
        target_dir().join("wasm32-wasip2/component/restricted_group_plugin.wasm"),
        "bash scripts/build-plugin.sh",
    )
}

/// A hostile fixture component: `plain`, `clock`, `filesystem` or `sockets`.
pub fn hostile_path(variant: &str) -> PathBuf {
    must_exist(target_dir().join(format!("fixtures/hostile-{variant}.wasm")), "bash scripts/build-plugin.sh --fixtures")
}

pub fn soar_host_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe.parent().and_then(Path::parent).expect("profile dir");
    must_exist(profile_dir.join("soar-host"), "cargo build -p soar-host")
}

/// A fresh folder under target/e2e.
pub fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = target_dir().join("e2e").join(format!(
        "{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::thread::current().name().unwrap_or("t").replace("::", "-")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The forms a token takes when a server echoes it: exact, percent-encoded, base64 of the
/// header, `\u`-escaped in JSON, and the test tokens' marker.
pub fn token_forms(token: &str) -> Vec<String> {
    use base64::Engine;
    vec![
        token.to_string(),
        "LEAKCHECK".to_string(),
        token.bytes().map(|b| format!("%{b:02X}")).collect(),
        base64::engine::general_purpose::STANDARD.encode(format!("Bearer {token}")),
        token.chars().map(|c| format!("\\u{:04x}", c as u32)).collect(),
    ]
}

/// One `soar-host` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as the one JSON document it must be.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not one JSON document ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr)
        })
    }

    pub fn assert_no_secret(&self) {
        for secret in [TOKEN, OTHER_TOKEN] {
            assert!(!self.stdout.contains(secret), "token on stdout:\n{}", self.stdout);
            assert!(!self.stderr.contains(secret), "token on stderr:\n{}", self.stderr);
        }
    }

    /// The outcome of user `user` at provider `provider` (by index).
    pub fn outcome(&self, provider: usize, user: usize) -> Value {
        self.json()["providers"][provider]["users"][user]["outcome"].clone()
    }

    pub fn user_error_kind(&self, provider: usize, user: usize) -> Value {
        self.json()["providers"][provider]["users"][user]["error"]["kind"].clone()
    }
}

/// Runs the real binary with the tokens in its environment and a private compile cache.
/// `XDG_CACHE_HOME` of every `soar-host` the tests start: its compile cache and group locks
/// live in `soar-host/` under it.
pub fn cli_cache_home() -> PathBuf {
    target_dir().join("e2e-cache")
}

/// `XDG_DATA_HOME` of every `soar-host` the tests start: the default restriction ledger of a
/// config without `state` lives there, never in the user's own data folder.
pub fn cli_data_home() -> PathBuf {
    target_dir().join("e2e-data")
}

pub fn soar_host(args: &[&str], stdin: Option<&str>) -> Run {
    soar_host_with_env(args, stdin, &[])
}

/// The real binary with `args`, the tests' tokens, compile cache and data folder in its
/// environment (a later `.env` overrides them).
pub fn soar_host_command<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    let mut command = Command::new(soar_host_binary());
    command
        .args(args)
        .env("XDG_CACHE_HOME", cli_cache_home())
        .env("XDG_DATA_HOME", cli_data_home())
        .env("SOAR_TEST_TOKEN", TOKEN)
        .env("SOAR_TEST_TOKEN_2", OTHER_TOKEN);
    command
}

/// Starts `commands` all at once, their output captured, and requires each to exit 0.
pub fn all_succeed(commands: impl IntoIterator<Item = Command>) {
    let children: Vec<_> = commands
        .into_iter()
        .map(|mut command| command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("soar-host starts"))
        .collect();
    for child in children {
        let output = child.wait_with_output().expect("soar-host finished");
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
    }
}

/// [`soar_host`] with more environment variables (a proxy, say).
pub fn soar_host_with_env(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut child = soar_host_command(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start soar-host");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    let output = child.wait_with_output().expect("soar-host finished");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    run.assert_no_secret();
    run
}

/// A simulator with a token, seeded with these users and one restricted group holding `members`
/// (user names).
pub fn simulator(token: &str, users: &[&str], members: &[&str]) -> Simulator {
    let mut options = SimulatorOptions::new(token);
    options.seed = Seed {
        idp_id: None,
        users: users.iter().map(|u| json!({"userName": u, "active": true})).collect(),
        groups: Vec::new(),
    };
    let sim = Simulator::start(options).expect("simulator starts");
    let member_ids: Vec<String> = members.iter().map(|m| user_id(&sim, m)).collect();
    let refs: Vec<&str> = member_ids.iter().map(String::as_str).collect();
    sim.add_group(GROUP, &refs);
    sim
}

pub fn seed_group(display_name: &str) -> SeedGroup {
    SeedGroup::new(display_name)
}

/// The SCIM id the simulator gave a user.
pub fn user_id(sim: &Simulator, user_name: &str) -> String {
    sim.user_id_of(user_name).unwrap_or_else(|| panic!("no user {user_name}"))
}

pub fn group_id(sim: &Simulator, display_name: &str) -> String {
    sim.group_id_of(display_name).unwrap_or_else(|| panic!("no group {display_name}"))
}

/// The restricted group's members, as sorted user names, read from the simulator's store.
pub fn member_names(sim: &Simulator) -> Vec<String> {
    let mut names: Vec<String> = sim
        .members(&group_id(sim, GROUP))
        .iter()
        .map(|id| sim.user_name_of(id).unwrap_or_else(|| id.clone()))
        .collect();
    names.sort();
    names
}

/// A config file for these providers: `(name, simulator, token variable)`; extra top-level keys
/// merged in.
pub fn write_config(dir: &Path, providers: &[(&str, &Simulator, &str)], extra: Value) -> PathBuf {
    let list: Vec<Value> = providers
        .iter()
        .map(|(name, sim, token_env)| {
            json!({"name": name, "base_url": sim.base_url(), "restricted_group": GROUP, "token_env": token_env})
        })
        .collect();
    let mut config = json!({"allow_http": true, "identity_providers": list});
    if let Value::Object(extra) = extra {
        for (key, value) in extra {
            config[key] = value;
        }
    }
    write_json(dir, "config.json", &config)
}

pub fn write_json(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).expect("JSON")).expect("write file");
    path
}

/// `--config FILE` plus the plugin built by the workspace.
pub fn base_args(config: &Path) -> Vec<String> {
    vec!["--plugin".into(), plugin_path().display().to_string(), "--config".into(), config.display().to_string()]
}

pub fn run_with(config: &Path, rest: &[&str]) -> Run {
    let mut args = base_args(config);
    args.extend(rest.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    soar_host(&refs, None)
}

/// Requests that reached the simulator, as `METHOD path?query` lines (query decoded).
pub fn request_lines(sim: &Simulator) -> Vec<String> {
    sim.requests()
        .iter()
        .map(|r| {
            let query: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if query.is_empty() {
                format!("{} {}", r.method, r.path)
            } else {
                format!("{} {}?{}", r.method, r.path, query.join("&"))
            }
        })
        .collect()
}

/// The real plugin, loaded once per test binary.
pub fn real_runtime() -> std::sync::Arc<soar_host::runtime::PluginRuntime> {
    static RUNTIME: std::sync::OnceLock<std::sync::Arc<soar_host::runtime::PluginRuntime>> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| std::sync::Arc::new(load_runtime(&plugin_path()).expect("the real plugin loads"))).clone()
}

pub fn load_runtime(path: &Path) -> Result<soar_host::runtime::PluginRuntime, String> {
    let options = soar_host::runtime::LoadOptions::default();
    soar_host::runtime::PluginRuntime::load_file(path, &options).map_err(|e| e.to_string())
}

/// An in-process action host for a config document; `SOAR_TEST_TOKEN` and `SOAR_TEST_TOKEN_2`
/// resolve to the test tokens. Log lines are collected.
pub fn action_host(
    runtime: std::sync::Arc<soar_host::runtime::PluginRuntime>,
    config: &Value,
) -> (soar_host::action::ActionHost, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let env = |name: &str| match name {
        "SOAR_TEST_TOKEN" => Some(TOKEN.to_string()),
        "SOAR_TEST_TOKEN_2" => Some(OTHER_TOKEN.to_string()),
        _ => None,
    };
    let config = soar_host::config::Config::from_value(config, Path::new("."), &env).expect("config");
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = logs.clone();
    let log = std::sync::Arc::new(move |record: &soar_host::services::LogRecord| {
        sink.lock().unwrap().push(record.message.clone())
    });
    (soar_host::action::ActionHost::new(runtime, config, log), logs)
}

/// One provider entry of a config document.
pub fn provider_entry(name: &str, sim: &Simulator, restricted_group: &str) -> Value {
    json!({"name": name, "base_url": sim.base_url(), "restricted_group": restricted_group, "token_env": "SOAR_TEST_TOKEN"})
}

/// Runs an action with the plugin core compiled into the host, no sandbox, on the same host
/// services (egress, HTTP client, deadline): the baseline the component is compared with.
pub fn invoke_native(
    call: &soar_host::runtime::Call,
    context: &soar_host::services::InvocationContext,
) -> (soar_types::model::ActionResult, u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(context.limits.deadline_ms);
    let mut services = soar_host::services::HostServices::new(context, deadline);
    let result = restricted_group_plugin::run(&mut services, call.action, &call.request);
    (result, services.http_requests())
}

/// A simulator serving https as `localhost` with a certificate from a CA made for the test,
/// seeded with alice and the restricted group; and the PEM of that CA.
pub fn https_simulator() -> (Simulator, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let tls =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            )
            .unwrap();
    let mut options = SimulatorOptions::new(TOKEN);
    options.seed =
        Seed { idp_id: None, users: vec![json!({"userName": "alice@corp.example"})], groups: vec![seed_group(GROUP)] };
    options.tls = Some(std::sync::Arc::new(tls));
    (Simulator::start(options).unwrap(), ca_cert.pem())
}
