//! The plugin's manifest: what a SOAR platform needs to import it (settings, the credential the
//! host keeps, the actions with their parameters, outputs and undo). Its text lives in
//! `manifest.json`; `soar_types::manifest` has the types the host prints it with.

use serde_json::{json, Value};
use soar_types::WIT_VERSION;

pub const PLUGIN_NAME: &str = "zscaler-restricted-group";
pub const PLUGIN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The manifest's text: credential and actions, with the result schema they share.
const MANIFEST_JSON: &str = include_str!("manifest.json");
/// The config file's JSON Schema, generated from the host's config types: the manifest's settings.
const CONFIG_SCHEMA: &str = include_str!(concat!(env!("OUT_DIR"), "/config.schema.min.json"));

/// The manifest as JSON, each action's `output_schema` filled in from the shared result schema.
pub fn manifest_document() -> Value {
    let mut document: Value = serde_json::from_str(MANIFEST_JSON).expect("manifest.json is valid JSON");
    let template = document["result_schema"].take();
    document.as_object_mut().expect("an object").remove("result_schema");
    document["name"] = PLUGIN_NAME.into();
    document["version"] = PLUGIN_VERSION.into();
    document["wit_version"] = WIT_VERSION.into();
    document["settings"] = settings(&serde_json::from_str(CONFIG_SCHEMA).expect("config.schema.json is JSON"));
    let enum_with_null = |outcomes: Value| {
        let mut values = outcomes.as_array().cloned().unwrap_or_default();
        values.push(Value::Null);
        json!({"enum": values})
    };
    for action in document["actions"].as_array_mut().expect("actions") {
        let mut schema = template.clone();
        schema["properties"]["action"] = json!({"const": action["name"]});
        let provider = &mut schema["properties"]["providers"]["items"]["properties"];
        provider["outcome"] = enum_with_null(action["provider_outcomes"].take());
        provider["users"]["items"]["properties"]["outcome"] = enum_with_null(action["user_outcomes"].take());
        let object = action.as_object_mut().expect("an action object");
        object.remove("provider_outcomes");
        object.remove("user_outcomes");
        object.insert("output_schema".into(), schema);
    }
    document
}

/// One setting per key of the config file (top level, then each provider's), from its schema.
fn settings(schema: &Value) -> Value {
    let provider = &schema["properties"]["identity_providers"]["items"];
    let mut settings = Vec::new();
    for (scope, object) in [("top", schema), ("provider", provider)] {
        let required = object["required"].as_array().cloned().unwrap_or_default();
        for (key, property) in object["properties"].as_object().into_iter().flatten() {
            let mut json_schema = property.clone();
            let fields = json_schema.as_object_mut().expect("a property schema");
            let description = fields.remove("description").unwrap_or_default();
            let example = match fields.remove("examples").and_then(|examples| examples.get(0).cloned()) {
                Some(Value::String(text)) => text,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            settings.push(json!({
                "key": key,
                "scope": scope,
                "json_schema": json_schema,
                "required": required.iter().any(|name| name == key),
                "description": description,
                "example": example,
            }));
        }
    }
    Value::Array(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_document_has_what_the_wit_record_needs() {
        let document = manifest_document();
        assert_eq!(document["wit_version"], WIT_VERSION);
        for action in document["actions"].as_array().unwrap() {
            assert_eq!(action["output_schema"]["properties"]["action"]["const"], action["name"]);
            assert!(action.get("user_outcomes").is_none());
            for key in ["name", "kind", "description", "changes_state", "parameters", "undo"] {
                assert!(action.get(key).is_some(), "{key}");
            }
        }
        assert!(document.get("result_schema").is_none());
        let settings = document["settings"].as_array().unwrap();
        let keys: Vec<(&str, &str)> =
            settings.iter().map(|s| (s["scope"].as_str().unwrap(), s["key"].as_str().unwrap())).collect();
        for wanted in [("top", "identity_providers"), ("top", "deadline_ms"), ("provider", "base_url")] {
            assert!(keys.contains(&wanted), "{wanted:?} in {keys:?}");
        }
        let retries = settings.iter().find(|s| s["key"] == "max_retries").unwrap();
        assert_eq!(retries["json_schema"]["maximum"], 100, "the loader's bound, from the same types");
        assert_eq!(settings.iter().find(|s| s["key"] == "name").unwrap()["required"], true);
    }

    #[test]
    fn the_manifest_names_what_the_types_name() {
        use soar_types::model::{ErrorKind, UserOutcome};
        use soar_types::Action;
        let document = manifest_document();
        let actions: Vec<&str> =
            document["actions"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(actions, Action::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>());
        let schema = &document["actions"][0]["output_schema"];
        let kinds: Vec<&str> = schema["$defs"]["error"]["properties"]["kind"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(kinds, ErrorKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>());
        for action in document["actions"].as_array().unwrap() {
            let outcomes = &action["output_schema"]["properties"]["providers"]["items"]["properties"]["users"]["items"]
                ["properties"]["outcome"]["enum"];
            for outcome in outcomes.as_array().unwrap().iter().filter_map(|o| o.as_str()) {
                assert!(UserOutcome::parse(outcome).is_some(), "{outcome} is no user outcome");
            }
        }
    }
}
