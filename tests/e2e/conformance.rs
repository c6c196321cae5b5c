//! The conformance scenarios (`tests/conformance/scenarios/*.json`) through `soar-host`: each
//! seeds its own simulator, runs one command line, and must give the expected document (all but
//! `message` and `detail`), exit code and members on the server; a refusal reaches no server. The
//! Python and Node hosts run the same files.

use scim_simulator::{Fault, Quirk, Seed, Simulator, SimulatorOptions};
use serde_json::{json, Value};
use soar_e2e::*;
use std::path::PathBuf;

const CONFORMANCE_TOKEN: &str = "tok-LEAKCHECK-conformance-5c1e";
const WRONG_TOKEN: &str = "tok-LEAKCHECK-conformance-wrong";

fn scenarios() -> Vec<(PathBuf, Value)> {
    let folder = workspace().join("tests/conformance/scenarios");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("tests/conformance/scenarios")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("scenario");
            let scenario = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, scenario)
        })
        .collect()
}

/// A document without the fields whose wording is each host's own.
fn comparable(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !matches!(key.as_str(), "message" | "detail"))
                .map(|(key, item)| (key.clone(), comparable(item)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(comparable).collect()),
        other => other.clone(),
    }
}

fn names(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn start_simulator(scenario: &Value) -> Simulator {
    let setup = &scenario["simulator"];
    let mut options = SimulatorOptions::new(CONFORMANCE_TOKEN);
    if let Some(seed) = scenario.get("seed") {
        options.seed = serde_json::from_value::<Seed>(seed.clone()).expect("scenario seed");
    }
    options.generate_users = setup["users"].as_u64().unwrap_or(5) as usize;
    options.generate_members = setup["members"].as_u64().unwrap_or(0) as usize;
    options.quirks = names(&setup["quirks"]).iter().map(|q| Quirk::parse(q).expect("quirk")).collect();
    options.faults = names(&setup["faults"]).iter().map(|f| Fault::parse(f).expect("fault")).collect();
    Simulator::start(options).expect("simulator starts")
}

/// What went wrong with one scenario, or nothing.
fn mismatch(scenario: &Value) -> Option<String> {
    let sim = start_simulator(scenario);
    let dir = scratch_dir();
    let mut provider =
        json!({"name": "zpa", "base_url": sim.base_url(), "restricted_group": GROUP, "token_env": "CONFORMANCE_TOKEN"});
    for (key, value) in scenario["provider"].as_object().into_iter().flatten() {
        provider[key] = value.clone();
    }
    let mut config = json!({"identity_providers": [provider], "allow_http": true});
    for (key, value) in scenario["config"].as_object().into_iter().flatten() {
        config[key] = value.clone();
    }
    let config_path = write_json(&dir, "config.json", &config);
    let token = if scenario["token"] == "wrong" { WRONG_TOKEN } else { CONFORMANCE_TOKEN };
    let mut args = vec!["--plugin".to_string(), plugin_path().display().to_string()];
    args.extend(["--config".to_string(), config_path.display().to_string()]);
    args.extend(names(&scenario["args"]));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = soar_host_with_env(&refs, None, &[("CONFORMANCE_TOKEN", token)]);
    let (expected, got) = (comparable(&scenario["document"]), comparable(&run.json()));
    let mut problems = Vec::new();
    if run.code != scenario["exit_code"] {
        problems.push(format!("exit code {} instead of {}", run.code, scenario["exit_code"]));
    }
    if got != expected {
        problems.push(format!("document\n{got:#}\ninstead of\n{expected:#}"));
    }
    if let Some(members) = scenario.get("members_after") {
        let mut want = names(members);
        want.sort();
        if member_names(&sim) != want {
            problems.push(format!("members {:?} instead of {want:?}", member_names(&sim)));
        }
    }
    if run.code == 2 && !sim.requests().is_empty() {
        problems.push(format!("a refusal sent {} requests", sim.requests().len()));
    }
    for secret in token_forms(token) {
        if run.stdout.contains(&secret) || run.stderr.contains(&secret) {
            problems.push("a form of the token is in the output".into());
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

#[test]
fn soar_host_meets_every_conformance_scenario() {
    let all = scenarios();
    assert!(all.len() >= 30, "the scenarios are missing: {} found", all.len());
    let failures: Vec<String> = all
        .iter()
        .filter(|(_, s)| names(&s["hosts"]).is_empty() || names(&s["hosts"]).iter().any(|h| h == "rust"))
        .filter_map(|(path, s)| mismatch(s).map(|why| format!("{}: {why}", path.display())))
        .collect();
    assert!(failures.is_empty(), "{} scenarios failed:\n{}", failures.len(), failures.join("\n\n"));
}
