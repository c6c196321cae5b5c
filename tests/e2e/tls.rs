//! TLS on loopback with a CA and server certificate generated for the test: trusted through
//! `ca_file`, refused with a `tls` error and a clear message without it.

use serde_json::json;
use soar_e2e::*;

#[test]
fn https_works_with_the_ca_file_and_fails_clearly_without_it() {
    let (sim, ca_pem) = https_simulator();
    assert!(sim.base_url().starts_with("https://localhost:"));
    let dir = scratch_dir();
    std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
    let provider =
        json!({"name": "tls", "base_url": sim.base_url(), "restricted_group": GROUP, "token_env": "SOAR_TEST_TOKEN"});

    let trusted = write_json(&dir, "trusted.json", &json!({"identity_providers": [provider], "ca_file": "ca.pem"}));
    let run = run_with(&trusted, &["add-to-group", "--user", "alice@corp.example"]);
    assert_eq!((run.code, run.outcome(0, 0)), (0, json!("added")), "{run:?}");
    assert_eq!(member_names(&sim), ["alice@corp.example"]);

    sim.clear_requests();
    let untrusted = write_json(&dir, "untrusted.json", &json!({"identity_providers": [provider]}));
    let run = run_with(&untrusted, &["test-connection"]);
    assert_eq!(run.code, 1, "{run:?}");
    let error = &run.json()["providers"][0]["error"];
    assert_eq!(error["kind"], "tls", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("not trusted") && message.contains("ca_file"), "{message}");
    assert!(sim.requests().is_empty(), "no request completed over an untrusted connection");
}

#[test]
fn a_missing_or_empty_ca_file_is_refused() {
    let (sim, _) = https_simulator();
    let dir = scratch_dir();
    let provider =
        json!({"name": "tls", "base_url": sim.base_url(), "restricted_group": GROUP, "token_env": "SOAR_TEST_TOKEN"});
    let missing = write_json(&dir, "missing.json", &json!({"identity_providers": [provider], "ca_file": "nope.pem"}));
    let run = run_with(&missing, &["test-connection"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.json()["error"]["message"].as_str().unwrap().contains("ca_file"));
    std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
    let empty = write_json(&dir, "empty.json", &json!({"identity_providers": [provider], "ca_file": "empty.pem"}));
    let run = run_with(&empty, &["test-connection"]);
    assert_eq!(run.code, 2, "refused when the config is read, before anything is sent: {run:?}");
    assert_eq!(run.json()["error"]["kind"], "invalid-config");
    assert!(run.json()["error"]["message"].as_str().unwrap().contains("holds no PEM certificate"), "{run:?}");
    assert!(sim.requests().is_empty());
}
