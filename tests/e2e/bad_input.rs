//! Bad input is refused with exit 2, one JSON error document naming what is wrong, and nothing
//! sent: the simulator behind each config must have received no request at all.

use scim_simulator::Simulator;
use serde_json::{json, Value};
use soar_e2e::*;
use std::path::Path;

const ALICE: &str = "alice@corp.example";

fn refused(run: &Run, kind: &str, says: &str) {
    assert_eq!(run.code, 2, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["status"], "error", "{doc}");
    assert_eq!(doc["error"]["kind"], kind, "{doc}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "message {message:?} should mention {says:?}");
    assert!(!message.contains('\n'), "one line: {message:?}");
}

fn setup() -> (Simulator, std::path::PathBuf, Value) {
    let sim = simulator(TOKEN, &[ALICE], &[]);
    let dir = scratch_dir();
    let config = write_config(&dir, &[("zpa", &sim, "SOAR_TEST_TOKEN")], json!({}));
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    (sim, dir, value)
}

fn with_provider_change(dir: &Path, base: &Value, key: &str, value: Value) -> std::path::PathBuf {
    let mut changed = base.clone();
    if value.is_null() {
        changed["identity_providers"][0].as_object_mut().unwrap().remove(key);
    } else {
        changed["identity_providers"][0][key] = value;
    }
    write_json(dir, &format!("config-{key}.json"), &changed)
}

#[test]
fn invalid_users_refuse_the_whole_call() {
    let (sim, dir, _) = setup();
    let config = dir.join("config.json");
    for (user, says) in [
        ("not-an-email", "not an email address"),
        ("alice@", "nothing after '@'"),
        ("x\" or userName pr \"@example.com", "not allowed before '@'"),
        ("id:", "names no id"),
    ] {
        let run = run_with(&config, &["add-to-group", "--user", ALICE, "--user", user]);
        refused(&run, "invalid-input", says);
    }
    let long = format!("{}@corp.example", "a".repeat(250));
    refused(&run_with(&config, &["add-to-group", "--user", &long]), "invalid-input", "254");
    refused(&run_with(&config, &["add-to-group"]), "invalid-input", "no users given");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "# nobody\n\n").unwrap();
    refused(
        &run_with(&config, &["remove-from-group", "--users-file", &empty.display().to_string()]),
        "invalid-input",
        "no users given",
    );
    refused(&run_with(&config, &["add-to-group", "--user", ALICE, "--idp", "nope"]), "invalid-input", "--idp nope");
    refused(&run_with(&config, &["add-to-group", ALICE]), "invalid-input", "--user");
    refused(
        &run_with(&config, &["add-to-group", "--user", ALICE, "--max-retries", "many"]),
        "invalid-input",
        "--max-retries",
    );
    assert!(sim.requests().is_empty(), "nothing may be sent: {:?}", request_lines(&sim));
}

#[test]
fn bad_provider_settings_are_refused() {
    let (sim, dir, base) = setup();
    for (key, value, says) in [
        ("base_url", json!("ftp://127.0.0.1/scim"), "only https"),
        ("base_url", json!(format!("{}?tenant=1", sim.base_url())), "has a query"),
        ("base_url", json!(format!("{}#top", sim.base_url())), "fragment"),
        ("base_url", json!(sim.base_url().replace("http://", "http://admin:pw@")), "user info"),
        ("base_url", json!("http://scim.corp.example/scim/v2"), "not loopback"),
        ("base_url", json!("not a url"), "base_url"),
        ("token_env", json!("SOAR_TEST_UNSET_VARIABLE"), "token_env names an environment variable that is not set"),
        ("token_env", Value::Null, "no token"),
        ("restricted_group", Value::Null, "restricted_group_id"),
        ("name", json!("Prod IdP"), "may hold only"),
        ("tokn_env", json!("X"), "unknown key \"identity_providers[0].tokn_env\""),
    ] {
        let config = with_provider_change(&dir, &base, key, value);
        refused(&run_with(&config, &["add-to-group", "--user", ALICE]), "invalid-config", says);
    }
    let empty_token = dir.join("token.txt");
    std::fs::write(&empty_token, "\n").unwrap();
    let mut file_token = base.clone();
    file_token["identity_providers"][0].as_object_mut().unwrap().remove("token_env");
    file_token["identity_providers"][0]["token_file"] = json!("token.txt");
    let config = write_json(&dir, "file-token.json", &file_token);
    refused(&run_with(&config, &["test-connection"]), "invalid-config", "token is empty");

    let mut no_http = base.clone();
    no_http.as_object_mut().unwrap().remove("allow_http");
    let config = write_json(&dir, "no-http.json", &no_http);
    refused(&run_with(&config, &["test-connection"]), "invalid-config", "allow_http");
    assert!(sim.requests().is_empty(), "nothing may be sent: {:?}", request_lines(&sim));
}

#[test]
fn a_token_file_works_and_its_trailing_newline_is_trimmed() {
    let (sim, dir, base) = setup();
    std::fs::write(dir.join("token.txt"), format!("{TOKEN}\n")).unwrap();
    let mut file_token = base.clone();
    file_token["identity_providers"][0].as_object_mut().unwrap().remove("token_env");
    file_token["identity_providers"][0]["token_file"] = json!("token.txt");
    let config = write_json(&dir, "file-token.json", &file_token);
    let run = run_with(&config, &["test-connection"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(sim.requests()[0].authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
}

#[test]
fn unreadable_malformed_or_unknown_config_is_refused() {
    let (sim, dir, base) = setup();
    let missing = dir.join("missing.json");
    refused(&run_with(&missing, &["test-connection"]), "invalid-config", "cannot read config file");
    let malformed = dir.join("malformed.json");
    std::fs::write(&malformed, "{\"identity_providers\": [").unwrap();
    refused(&run_with(&malformed, &["test-connection"]), "invalid-config", "not valid JSON");
    let mut unknown = base.clone();
    unknown["colour"] = json!("blue");
    let config = write_json(&dir, "unknown.json", &unknown);
    refused(&run_with(&config, &["test-connection"]), "invalid-config", "unknown key \"colour\"");
    let run = soar_host(&["--plugin", &plugin_path().display().to_string(), "test-connection"], None);
    refused(&run, "invalid-config", "--config FILE is required");
    assert!(sim.requests().is_empty());
}

#[test]
fn unusable_plugins_are_refused() {
    let (sim, dir, _) = setup();
    let config = dir.join("config.json").display().to_string();
    let with_plugin = |plugin: &Path| {
        soar_host(&["--plugin", &plugin.display().to_string(), "--config", &config, "test-connection"], None)
    };
    refused(&with_plugin(&dir.join("nope.wasm")), "plugin-load", "cannot read the plugin");
    let text = dir.join("text.wasm");
    std::fs::write(&text, "hello").unwrap();
    refused(&with_plugin(&text), "plugin-load", "not a WebAssembly file");
    let core_module = dir.join("core.wasm");
    std::fs::write(&core_module, b"\0asm\x01\0\0\0").unwrap();
    refused(&with_plugin(&core_module), "plugin-load", "not a component");

    // The real component, its exported interface renamed to another major version.
    let bytes = std::fs::read(plugin_path()).unwrap();
    let from = b"soar:restricted-group/actions@1.2.0";
    let to = b"soar:restricted-group/actions@2.0.0";
    let mut patched = bytes.clone();
    let mut replaced = 0;
    for start in 0..patched.len().saturating_sub(from.len()) {
        if &patched[start..start + from.len()] == from {
            patched[start..start + from.len()].copy_from_slice(to);
            replaced += 1;
        }
    }
    assert!(replaced > 0);
    let v2 = dir.join("v2.wasm");
    std::fs::write(&v2, patched).unwrap();
    refused(&with_plugin(&v2), "plugin-load", "was built for WIT soar:restricted-group@2.0.0");
    assert!(sim.requests().is_empty());
}

#[test]
fn usage_errors_name_the_problem() {
    let plugin = plugin_path().display().to_string();
    refused(&soar_host(&["--plugin", &plugin], None), "invalid-input", "no command");
    refused(&soar_host(&["--plugin", &plugin, "frobnicate"], None), "invalid-input", "unknown command frobnicate");
    refused(&soar_host(&["--plugin", &plugin, "--output", "xml", "describe"], None), "invalid-input", "--output xml");
    refused(&soar_host(&["--bogus", "describe"], None), "invalid-input", "unknown option --bogus");
}

#[test]
fn help_and_version_work_without_a_config() {
    let run = soar_host(&["--help"], None);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("add-to-group") && run.stdout.contains("example"));
    let run = soar_host(&["add-to-group", "--help"], None);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("example:\n  soar-host --config"), "{}", run.stdout);
    let run = soar_host(&["--plugin", &plugin_path().display().to_string(), "--version"], None);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("soar-host 0.1.0"));
    assert!(
        run.stdout.contains(&format!("plugin zscaler-restricted-group 0.1.0 (wit {})", soar_types::WIT_VERSION)),
        "{}",
        run.stdout
    );
}

#[test]
fn every_command_has_help_with_a_working_example() {
    for command in
        ["test-connection", "add-to-group", "remove-from-group", "check-membership", "describe", "simulator", "demo"]
    {
        let run = soar_host(&[command, "--help"], None);
        assert_eq!(run.code, 0, "{command}: {run:?}");
        assert!(run.stdout.contains(&format!("usage: soar-host [GLOBAL OPTIONS] {command}")), "{}", run.stdout);
        assert!(run.stdout.contains("example:\n  ") && run.stdout.contains("soar-host"), "{}", run.stdout);
    }
}

#[test]
fn table_output_is_one_line_per_provider_and_user() {
    let (sim, dir, _) = setup();
    let config = dir.join("config.json");
    let run =
        run_with(&config, &["--output", "table", "add-to-group", "--user", ALICE, "--user", "ghost@corp.example"]);
    assert_eq!(run.code, 3, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("add-to-group partial"), "{lines:?}");
    assert!(lines[1].starts_with("PROVIDER") && lines[1].contains("OUTCOME"), "{lines:?}");
    assert!(lines[2].starts_with("zpa") && lines[2].contains(ALICE) && lines[2].contains("added"), "{lines:?}");
    assert!(
        lines[3].contains("ghost@corp.example") && lines[3].contains("error") && lines[3].contains("user-not-found"),
        "{lines:?}"
    );
    assert!(!run.stdout.contains('\u{1b}'), "no colours when stdout is not a terminal");
    assert_eq!(member_names(&sim), [ALICE]);
}

#[test]
fn describe_prints_the_manifest() {
    let run = soar_host(&["--plugin", &plugin_path().display().to_string(), "describe"], None);
    assert_eq!(run.code, 0, "{run:?}");
    let manifest = run.json();
    assert_eq!(manifest["wit_version"], soar_types::WIT_VERSION);
    assert_eq!(manifest["credential"]["host_held"], true);
    let actions: Vec<&str> =
        manifest["actions"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(actions, ["test-connection", "add-to-group", "remove-from-group", "check-membership"]);
    assert_eq!(manifest["actions"][1]["undo"], "remove-from-group");
}
