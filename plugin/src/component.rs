//! Binds the plugin to the WIT world `soar:restricted-group/plugin`: converts WIT records to the
//! plain Rust model and back, and implements [`Host`] with the WIT imports.

use crate::manifest;
use soar_types::host::{self, Host};
use soar_types::model;
use soar_types::{error_kind_variants, map_variants, profile_variants, status_variants, user_outcome_variants, Action};

wit_bindgen::generate!({
    world: "plugin",
    path: "../wit",
});

use exports::soar::restricted_group::actions as wit_actions;
use exports::soar::restricted_group::members as wit_members;
use soar::restricted_group::{http, log, types, wait};

struct Plugin;

export!(Plugin);

/// The host, reached through the WIT imports.
struct Imports;

fn to_wit_request(request: host::Request) -> http::Request {
    http::Request {
        idp: request.idp,
        method: match request.method {
            host::Method::Get => http::Method::Get,
            host::Method::Post => http::Method::Post,
            host::Method::Put => http::Method::Put,
            host::Method::Patch => http::Method::Patch,
            host::Method::Delete => http::Method::Delete,
        },
        url: request.url,
        headers: request.headers,
        body: request.body,
    }
}

fn from_wit_answer(answer: Result<http::Response, http::HttpError>) -> Result<host::Response, host::HttpError> {
    match answer {
        Ok(response) => Ok(host::Response { status: response.status, headers: response.headers, body: response.body }),
        Err(error) => Err(match error {
            http::HttpError::Denied(why) => host::HttpError::Denied(why),
            http::HttpError::Timeout(why) => host::HttpError::Timeout(why),
            http::HttpError::ConnectionFailed(why) => host::HttpError::ConnectionFailed(why),
            http::HttpError::TlsFailed(why) => host::HttpError::TlsFailed(why),
            http::HttpError::TooLarge(why) => host::HttpError::TooLarge(why),
        }),
    }
}

impl Host for Imports {
    fn send(&mut self, request: host::Request) -> Result<host::Response, host::HttpError> {
        from_wit_answer(http::send(&to_wit_request(request)))
    }

    fn send_all(&mut self, requests: Vec<host::Request>) -> Vec<Result<host::Response, host::HttpError>> {
        let requests: Vec<(http::Request, http::Purpose)> = requests
            .into_iter()
            .map(|mut request| {
                let host::Purpose { doing, attempt, reason } = std::mem::take(&mut request.purpose);
                (to_wit_request(request), http::Purpose { doing, attempt, reason })
            })
            .collect();
        http::send_all(&requests).into_iter().map(from_wit_answer).collect()
    }

    fn sleep(&mut self, duration_ms: u64) -> bool {
        wait::sleep(duration_ms)
    }

    fn log(&mut self, level: host::LogLevel, message: &str) {
        let level = match level {
            host::LogLevel::Debug => log::Level::Debug,
            host::LogLevel::Info => log::Level::Info,
            host::LogLevel::Warn => log::Level::Warn,
            host::LogLevel::Error => log::Level::Error,
        };
        log::write(level, message);
    }
}

impl wit_actions::Guest for Plugin {
    fn test_connection(settings: types::Settings) -> types::ActionResult {
        to_wit_result(crate::test_connection(&mut Imports, &from_wit_settings(settings)))
    }

    fn add_to_group(request: types::MembershipRequest) -> types::ActionResult {
        run(request, Action::AddToGroup)
    }

    fn remove_from_group(request: types::MembershipRequest) -> types::ActionResult {
        run(request, Action::RemoveFromGroup)
    }

    fn check_membership(request: types::MembershipRequest) -> types::ActionResult {
        run(request, Action::CheckMembership)
    }

    fn describe() -> wit_actions::Manifest {
        to_wit_manifest(manifest::manifest_document())
    }
}

impl wit_members::Guest for Plugin {
    fn list_members(request: wit_members::MembersRequest) -> Vec<wit_members::ProviderMembers> {
        let request = model::MembersRequest { settings: from_wit_settings(request.settings), named: request.named };
        crate::list_members(&mut Imports, &request)
            .into_iter()
            .map(|provider| wit_members::ProviderMembers {
                idp: provider.idp,
                group: provider.group.map(to_wit_group),
                error: provider.error.map(to_wit_error),
                members: provider
                    .members
                    .into_iter()
                    .map(|member| wit_members::Member { id: member.id, user_name: member.user_name })
                    .collect(),
                complete: provider.complete,
            })
            .collect()
    }
}

fn to_wit_group(group: model::GroupRef) -> types::GroupRef {
    types::GroupRef { display_name: group.display_name, id: group.id }
}

fn run(request: types::MembershipRequest, action: Action) -> types::ActionResult {
    let request = model::MembershipRequest {
        settings: from_wit_settings(request.settings),
        users: request.users.into_iter().map(from_wit_user).collect(),
        dry_run: request.dry_run,
        protected: request.protected.into_iter().map(from_wit_user).collect(),
    };
    to_wit_result(crate::run(&mut Imports, action, &request))
}

fn from_wit_settings(settings: types::Settings) -> model::Settings {
    model::Settings {
        providers: settings
            .providers
            .into_iter()
            .map(|provider| model::Provider {
                name: provider.name,
                base_url: provider.base_url,
                restricted_group: provider.restricted_group,
                restricted_group_id: provider.restricted_group_id,
                profile: profile_variants! { map_variants!(provider.profile, types::Profile => model::Profile;) },
                max_retries: provider.max_retries,
            })
            .collect(),
        retry_after_cap_ms: settings.retry_after_cap_ms,
    }
}

fn from_wit_user(user: types::UserRef) -> model::UserRef {
    match user {
        types::UserRef::Email(email) => model::UserRef::Email(email),
        types::UserRef::Id(id) => model::UserRef::Id(id),
        types::UserRef::External(external) => model::UserRef::External(external),
    }
}

fn to_wit_result(result: model::ActionResult) -> types::ActionResult {
    types::ActionResult {
        status: status_variants! { map_variants!(result.status, model::Status => types::Status;) },
        providers: result
            .providers
            .into_iter()
            .map(|provider| types::ProviderResult {
                idp: provider.idp,
                group: provider.group.map(to_wit_group),
                outcome: provider.outcome.map(|model::ProviderOutcome::Connected| types::ProviderOutcome::Connected),
                error: provider.error.map(to_wit_error),
                users: provider
                    .users
                    .into_iter()
                    .map(|user| types::UserResult {
                        user: user.user,
                        user_id: user.user_id,
                        outcome: user.outcome.map(to_wit_outcome),
                        error: user.error.map(to_wit_error),
                        membership_verified: user.membership_verified,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn to_wit_outcome(outcome: model::UserOutcome) -> types::UserOutcome {
    user_outcome_variants! { map_variants!(outcome, model::UserOutcome => types::UserOutcome;) }
}

fn to_wit_error(error: model::ActionError) -> types::Error {
    let kind = error_kind_variants! { map_variants!(error.kind, model::ErrorKind => types::ErrorKind;) };
    types::Error {
        kind,
        message: error.message,
        status: error.status,
        detail: error.detail,
        retry_after_ms: error.retry_after_ms,
        ids: error.ids,
    }
}

fn text(value: &serde_json::Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

fn list(value: &serde_json::Value) -> &[serde_json::Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The manifest document (`manifest.json`) as the WIT record; schemas travel as JSON text.
fn to_wit_manifest(document: serde_json::Value) -> wit_actions::Manifest {
    let credential = &document["credential"];
    wit_actions::Manifest {
        name: text(&document["name"]),
        version: text(&document["version"]),
        wit_version: text(&document["wit_version"]),
        description: text(&document["description"]),
        settings: list(&document["settings"])
            .iter()
            .map(|field| wit_actions::SettingField {
                key: text(&field["key"]),
                scope: text(&field["scope"]),
                json_schema: field["json_schema"].to_string(),
                required: field["required"].as_bool().unwrap_or(false),
                description: text(&field["description"]),
                example: text(&field["example"]),
            })
            .collect(),
        credential: wit_actions::Credential {
            name: text(&credential["name"]),
            description: text(&credential["description"]),
            host_held: credential["host_held"].as_bool().unwrap_or(true),
            config_keys: list(&credential["config_keys"]).iter().map(text).collect(),
        },
        actions: list(&document["actions"])
            .iter()
            .map(|action| wit_actions::ActionInfo {
                name: text(&action["name"]),
                kind: match action["kind"].as_str().and_then(soar_types::manifest::ActionKind::parse) {
                    Some(kind) => soar_types::action_kind_variants! {
                        map_variants!(kind, soar_types::manifest::ActionKind => wit_actions::ActionKind;)
                    },
                    None => wit_actions::ActionKind::Investigate,
                },
                description: text(&action["description"]),
                changes_state: action["changes_state"].as_bool().unwrap_or(true),
                parameters: list(&action["parameters"])
                    .iter()
                    .map(|parameter| wit_actions::Parameter {
                        name: text(&parameter["name"]),
                        description: text(&parameter["description"]),
                        required: parameter["required"].as_bool().unwrap_or(false),
                        json_schema: parameter["json_schema"].to_string(),
                    })
                    .collect(),
                output_schema: action["output_schema"].to_string(),
                undo: action["undo"].as_str().map(str::to_string),
            })
            .collect(),
    }
}
