//! The plugin's manifest as the host prints it (`soar-host describe`): settings, the credential
//! the host keeps, and each action with its parameters, output schema and undo.

use serde::Serialize;
use serde_json::Value;

action_kind_variants! { named_enum!(
    /// What an action is for, in the terms SOAR platforms use.
    pub enum ActionKind;
) }

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
