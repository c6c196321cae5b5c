//! The plugin's manifest: what a SOAR platform needs to import it (settings, the credential the
//! host keeps, the actions with their parameters, outputs and undo).

use serde::Serialize;
use serde_json::{json, Value};

pub const PLUGIN_NAME: &str = "zscaler-restricted-group";
pub const PLUGIN_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The version of the WIT package `soar:restricted-group` this plugin is built against.
pub const WIT_VERSION: &str = "1.0.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    Test,
    Contain,
    Correct,
    Investigate,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Parameter {
    pub name: String,
    pub description: String,
    pub required: bool,
    pub json_schema: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActionInfo {
    pub name: String,
    pub kind: ActionKind,
    pub description: String,
    pub changes_state: bool,
    pub parameters: Vec<Parameter>,
    pub output_schema: Value,
    pub undo: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SettingField {
    pub key: String,
    pub scope: String,
    pub json_schema: Value,
    pub required: bool,
    pub description: String,
    pub example: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Credential {
    pub name: String,
    pub description: String,
    pub host_held: bool,
    pub config_keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub wit_version: String,
    pub description: String,
    pub settings: Vec<SettingField>,
    pub credential: Credential,
    pub actions: Vec<ActionInfo>,
}

fn setting(key: &str, scope: &str, schema: Value, required: bool, description: &str, example: &str) -> SettingField {
    SettingField {
        key: key.into(),
        scope: scope.into(),
        json_schema: schema,
        required,
        description: description.into(),
        example: example.into(),
    }
}

fn parameter(name: &str, required: bool, schema: Value, description: &str) -> Parameter {
    Parameter {
        name: name.into(),
        description: description.into(),
        required,
        json_schema: schema,
    }
}

const ERROR_KINDS: &[&str] = &[
    "invalid-input", "invalid-config", "auth-failed", "user-not-found", "group-not-found", "ambiguous-group",
    "rate-limited", "denied", "timeout", "transport", "tls", "too-large", "redirect", "server", "protocol",
    "lookup-limit", "protected-user", "plugin-load", "plugin-timeout", "plugin-out-of-memory", "plugin-panicked",
    "plugin-trapped",
];

/// The JSON Schema of the result document the host prints for an action whose users may end
/// with `outcomes`.
pub fn result_schema(action: &str, outcomes: &[&str], provider_outcomes: &[&str]) -> Value {
    let error = json!({
        "type": "object",
        "required": ["kind", "message"],
        "properties": {
            "kind": {"enum": ERROR_KINDS},
            "message": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "retry_after_ms": {"type": "integer", "minimum": 0},
            "ids": {"type": "array", "items": {"type": "string"}}
        }
    });
    let nullable_error = json!({"oneOf": [{"type": "null"}, error]});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["schema_version", "action", "status"],
        "properties": {
            "schema_version": {"const": 1},
            "action": {"const": action},
            "status": {"enum": ["success", "partial", "failed", "error"]},
            "dry_run": {"type": "boolean"},
            "correlation_id": {"type": ["string", "null"]},
            "http_requests": {"type": "integer", "minimum": 0},
            "error": error,
            "providers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["idp", "group", "outcome", "error", "users"],
                    "properties": {
                        "idp": {"type": "string"},
                        "group": {"oneOf": [{"type": "null"}, {
                            "type": "object",
                            "properties": {
                                "display_name": {"type": ["string", "null"]},
                                "id": {"type": ["string", "null"]}
                            }
                        }]},
                        "outcome": {"enum": provider_outcomes.iter().map(|o| Value::from(*o)).chain([Value::Null]).collect::<Vec<_>>()},
                        "error": nullable_error,
                        "users": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["user", "user_id", "outcome", "error"],
                                "properties": {
                                    "user": {"type": "string"},
                                    "user_id": {"type": ["string", "null"]},
                                    "outcome": {"enum": outcomes.iter().map(|o| Value::from(*o)).chain([Value::Null]).collect::<Vec<_>>()},
                                    "error": nullable_error,
                                    "membership_verified": {"type": "boolean"}
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

pub fn manifest() -> Manifest {
    let users = parameter(
        "users",
        true,
        json!({"type": "array", "minItems": 1, "items": {"type": "string"}}),
        "The users: an email address (the SCIM userName), id:SCIM_ID or external:EXTERNAL_ID.",
    );
    let idp = parameter(
        "idp",
        false,
        json!({"type": "string", "pattern": "^[a-z0-9_-]+$"}),
        "Run on this identity provider only; by default on every configured one.",
    );
    let dry_run = parameter(
        "dry_run",
        false,
        json!({"type": "boolean", "default": false}),
        "Report what would change (would-add, would-remove) and change nothing.",
    );
    let change_outcomes_add: &[&str] = &["added", "already-member", "would-add", "not-in-provider"];
    let change_outcomes_remove: &[&str] = &["removed", "not-member", "would-remove", "not-in-provider"];
    Manifest {
        name: PLUGIN_NAME.into(),
        version: PLUGIN_VERSION.into(),
        wit_version: WIT_VERSION.into(),
        description: "Adds risky users to a Zscaler (ZPA or ZIA) restricted user group through SCIM 2.0 and \
                      removes them again; works with any SCIM 2.0 service."
            .into(),
        settings: vec![
            setting(
                "identity_providers",
                "top",
                json!({"type": "array", "minItems": 1}),
                true,
                "The identity providers whose SCIM endpoints hold the restricted group.",
                r#"[{"name": "entra-prod", "base_url": "https://scim1.private.zscaler.com/scim/1/144118148382065427/v2", "restricted_group": "ZPA Restricted Users", "token_env": "ZPA_SCIM_TOKEN"}]"#,
            ),
            setting(
                "name",
                "provider",
                json!({"type": "string", "pattern": "^[a-z0-9_-]+$"}),
                true,
                "A unique name for the identity provider.",
                "entra-prod",
            ),
            setting(
                "base_url",
                "provider",
                json!({"type": "string", "format": "uri"}),
                true,
                "The SCIM Service Provider Endpoint shown in the ZPA admin portal (https; no query, fragment or user info).",
                "https://scim1.private.zscaler.com/scim/1/144118148382065427/v2",
            ),
            setting(
                "restricted_group",
                "provider",
                json!({"type": "string", "minLength": 1}),
                false,
                "The restricted group's displayName (give this or restricted_group_id).",
                "ZPA Restricted Users",
            ),
            setting(
                "restricted_group_id",
                "provider",
                json!({"type": "string", "minLength": 1}),
                false,
                "The restricted group's SCIM id (give this or restricted_group).",
                "9100001",
            ),
            setting(
                "max_retries",
                "provider",
                json!({"type": "integer", "minimum": 0, "default": 4}),
                false,
                "Retries of 429, 502, 503, 504 and connection failures, with backoff and Retry-After.",
                "4",
            ),
            setting(
                "retry_after_cap_ms",
                "top",
                json!({"type": "integer", "minimum": 0, "default": 60000}),
                false,
                "The longest Retry-After wait honoured, in milliseconds.",
                "60000",
            ),
            setting(
                "profile",
                "provider",
                json!({"enum": ["zpa", "zia", "generic"]}),
                false,
                "The kind of SCIM service; detected from base_url when not given.",
                "zpa",
            ),
        ],
        credential: Credential {
            name: "SCIM bearer token".into(),
            description: "The bearer token generated in the ZPA (or ZIA) admin portal for the identity provider. \
                          The host reads it and attaches it only to requests under that provider's base URL; \
                          the plugin never receives it."
                .into(),
            host_held: true,
            config_keys: vec!["token_env".into(), "token_file".into()],
        },
        actions: vec![
            ActionInfo {
                name: "test-connection".into(),
                kind: ActionKind::Test,
                description: "Checks that each provider's base URL and token work and that its restricted group exists."
                    .into(),
                changes_state: false,
                parameters: vec![idp.clone()],
                output_schema: result_schema("test-connection", &[], &["connected"]),
                undo: None,
            },
            ActionInfo {
                name: "add-to-group".into(),
                kind: ActionKind::Contain,
                description: "Adds the users to the restricted group (already a member is success). ZPA applies the \
                              group's policies when the user next authenticates, not at once."
                    .into(),
                changes_state: true,
                parameters: vec![users.clone(), idp.clone(), dry_run.clone()],
                output_schema: result_schema("add-to-group", change_outcomes_add, &[]),
                undo: Some("remove-from-group".into()),
            },
            ActionInfo {
                name: "remove-from-group".into(),
                kind: ActionKind::Correct,
                description: "Removes the users from the restricted group (not a member is success). An identity \
                              provider that manages the group may add them back at its next sync."
                    .into(),
                changes_state: true,
                parameters: vec![users.clone(), idp.clone(), dry_run],
                output_schema: result_schema("remove-from-group", change_outcomes_remove, &[]),
                undo: Some("add-to-group".into()),
            },
            ActionInfo {
                name: "check-membership".into(),
                kind: ActionKind::Investigate,
                description: "Reports whether each user is in the restricted group; changes nothing.".into(),
                changes_state: false,
                parameters: vec![users, idp],
                output_schema: result_schema("check-membership", &["member", "not-member", "not-in-provider"], &[]),
                undo: None,
            },
        ],
    }
}
