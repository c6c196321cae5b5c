//! The manifest against reality: every action it lists runs with the parameters it declares,
//! and every document the CLI prints validates against the output schema it declares.

use serde_json::{json, Value};
use soar_e2e::*;

fn manifest() -> Value {
    let run = soar_host(&["--plugin", &plugin_path().display().to_string(), "describe"], None);
    assert_eq!(run.code, 0, "{run:?}");
    run.json()
}

fn validate(schema: &Value, document: &Value, what: &str) {
    let validator =
        jsonschema::validator_for(schema).unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
    let errors: Vec<String> =
        validator.iter_errors(document).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{document:#}");
}

#[test]
fn the_manifest_describes_what_a_platform_needs() {
    let manifest = manifest();
    assert_eq!(manifest["name"], "zscaler-restricted-group");
    assert_eq!(manifest["wit_version"], soar_types::WIT_VERSION);
    for field in manifest["settings"].as_array().unwrap() {
        for key in ["key", "scope", "json_schema", "required", "description", "example"] {
            assert!(field.get(key).is_some(), "{field} lacks {key}");
        }
        jsonschema::validator_for(&field["json_schema"]).unwrap();
    }
    let credential = &manifest["credential"];
    assert_eq!(credential["host_held"], true);
    assert_eq!(credential["config_keys"], json!(["token_env", "token_file"]));
    let kinds: Vec<(&str, &str, bool)> = manifest["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["kind"].as_str().unwrap(), a["changes_state"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("test-connection", "test", false),
            ("add-to-group", "contain", true),
            ("remove-from-group", "correct", true),
            ("check-membership", "investigate", false)
        ]
    );
    let undo: Vec<Value> = manifest["actions"].as_array().unwrap().iter().map(|a| a["undo"].clone()).collect();
    assert_eq!(undo, [Value::Null, json!("remove-from-group"), json!("add-to-group"), Value::Null]);
}

/// Builds CLI arguments from an action's declared parameters.
fn arguments(action: &Value, users: &[&str], idp: &str, dry_run: bool) -> Vec<String> {
    let mut args = vec![action["name"].as_str().unwrap().to_string()];
    for parameter in action["parameters"].as_array().unwrap() {
        jsonschema::validator_for(&parameter["json_schema"]).unwrap();
        match parameter["name"].as_str().unwrap() {
            "users" => {
                validate(&parameter["json_schema"], &json!(users), "users parameter");
                for user in users {
                    args.extend(["--user".to_string(), user.to_string()]);
                }
            }
            "idp" => {
                validate(&parameter["json_schema"], &json!(idp), "idp parameter");
                args.extend(["--idp".to_string(), idp.to_string()]);
            }
            "dry_run" if dry_run => args.push("--dry-run".to_string()),
            "dry_run" => {}
            other => panic!("undeclared parameter handling for {other}"),
        }
    }
    args
}

#[test]
fn every_action_runs_with_its_declared_parameters_and_its_output_validates() {
    let manifest = manifest();
    let sim = simulator(TOKEN, &["alice@corp.example", "bob@corp.example"], &["bob@corp.example"]);
    let dir = scratch_dir();
    let config =
        write_config(&dir, &[("zpa-prod", &sim, "SOAR_TEST_TOKEN")], json!({"protected_users": ["root@corp.example"]}));
    let wrong_token = write_config(&scratch_dir(), &[("zpa-prod", &sim, "SOAR_TEST_TOKEN_2")], json!({}));
    let mut checked = 0;
    for action in manifest["actions"].as_array().unwrap() {
        let schema = &action["output_schema"];
        let scenarios: Vec<(&std::path::PathBuf, Vec<&str>, bool)> = vec![
            (&config, vec!["alice@corp.example", "bob@corp.example"], false),
            (&config, vec!["alice@corp.example", "nobody@corp.example", "root@corp.example"], true),
            (&config, vec!["alice@corp.example"], false),
            (&wrong_token, vec!["alice@corp.example"], false),
            (&config, vec!["not an email"], false),
        ];
        for (config, users, dry_run) in scenarios {
            let args = arguments(action, &users, "zpa-prod", dry_run);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = run_with(config, &refs);
            assert!([0, 1, 2, 3].contains(&run.code), "{run:?}");
            validate(schema, &run.json(), &format!("{} {users:?}", action["name"]));
            checked += 1;
        }
    }
    assert_eq!(checked, 20);

    // The schemas are not vacuous: a document with an undeclared outcome is rejected.
    let add = &manifest["actions"][1];
    let run = run_with(&config, &["add-to-group", "--user", "alice@corp.example", "--dry-run"]);
    let mut wrong = run.json();
    wrong["providers"][0]["users"][0]["outcome"] = json!("vanished");
    let validator = jsonschema::validator_for(&add["output_schema"]).unwrap();
    assert!(!validator.is_valid(&wrong));
}

#[test]
fn the_demo_steps_validate_too() {
    let manifest = manifest();
    let run = soar_host(&["--plugin", &plugin_path().display().to_string(), "demo"], None);
    assert_eq!(run.code, 0);
    for step in run.json()["steps"].as_array().unwrap() {
        let action = manifest["actions"].as_array().unwrap().iter().find(|a| a["name"] == step["action"]).unwrap();
        validate(&action["output_schema"], step, "demo step");
    }
}
