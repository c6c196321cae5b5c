//! The egress cases of `tests/conformance/egress.json`, which every host runs: the providers are
//! loaded as a config file, and each case's request must be allowed or denied as the data says.

use serde_json::{json, Value};
use soar_host_policy::address::{address_refusal, AddressRules};
use soar_host_policy::config::Config;
use soar_host_policy::egress::EgressPolicy;
use soar_host_policy::endpoint;
use std::net::IpAddr;
use std::path::Path;

const TOKEN: &str = "conformance-egress-token-0123";

#[test]
fn the_egress_rule_decides_every_conformance_case() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(workspace.join("tests/conformance/egress.json")).expect("egress.json");
    let data: Value = serde_json::from_str(&text).expect("egress.json is JSON");
    let providers: Vec<Value> = data["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .map(|p| json!({"name": p["name"], "base_url": p["base_url"], "restricted_group": "G", "token_env": "EGRESS_TOKEN"}))
        .collect();
    let folder = std::env::temp_dir().join(format!("soar-egress-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&folder).expect("scratch folder");
    let path = folder.join("config.json");
    std::fs::write(&path, json!({"identity_providers": providers}).to_string()).expect("config");
    let config = Config::load(&path, &|_: &str| Some(TOKEN.to_string())).expect("the providers load");
    let _ = std::fs::remove_dir_all(&folder);
    let policy = EgressPolicy::for_providers(&config.providers);
    let cases = data["cases"].as_array().expect("cases");
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let headers: Vec<(String, String)> = case["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|pair| (pair[0].as_str().unwrap().to_string(), pair[1].as_str().unwrap().to_string()))
                .collect();
            let decision = policy.authorize(case["idp"].as_str().unwrap(), case["url"].as_str().unwrap(), &headers);
            if let Err(denied) = &decision {
                assert!(!denied.to_string().contains(TOKEN), "{denied}");
            }
            (decision.is_ok() != case["allowed"].as_bool().unwrap()).then(|| {
                format!(
                    "{} {} ({}): {:?}",
                    case["idp"],
                    case["url"],
                    case["about"],
                    decision.map(|a| a.url.to_string())
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "decided otherwise than the data:\n{}", wrong.join("\n"));
}

#[test]
fn the_address_rule_decides_every_conformance_case() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(workspace.join("tests/conformance/egress.json")).expect("egress.json");
    let data: Value = serde_json::from_str(&text).expect("egress.json is JSON");
    let cases = data["addresses"].as_array().expect("addresses");
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let base = endpoint::parse(case["base_url"].as_str().unwrap()).expect("a base URL");
            let rules = AddressRules {
                loopback_base: endpoint::names_loopback(&base),
                allow_private_network: case["allow_private_network"].as_bool().unwrap_or(false),
                plain_http: base.scheme() == "http",
            };
            let ip: IpAddr = case["address"].as_str().unwrap().parse().expect("an address");
            let decided = address_refusal(ip, rules).map(|refusal| refusal.kind());
            let expected = if case["allowed"].as_bool().unwrap() { None } else { case["refusal"].as_str() };
            (decided != expected)
                .then(|| format!("{} {}: {decided:?} ({})", case["address"], case["base_url"], case["about"]))
        })
        .collect();
    assert!(wrong.is_empty(), "decided otherwise than the data:\n{}", wrong.join("\n"));
}
