//! Host-side bindings of the WIT world `soar:restricted-group/plugin`, and conversions between
//! its records and the plugin's plain Rust model (which the JSON output is made from).

use crate::secret::Redactor;
use crate::text::printable;
use soar_types::host as plain;
use soar_types::manifest as m;
use soar_types::model;
use soar_types::{
    action_kind_variants, error_kind_variants, map_variants, profile_variants, status_variants, user_outcome_variants,
};

// Every 1.x plugin exports `actions`; `members` only since 1.2.0, so it is bound apart and
// looked for when a plugin is loaded.
wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin-actions",
});

/// `members` (WIT 1.2), sharing the imports' types with the bindings above.
pub mod members_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "plugin-members",
        with: {
            "soar:restricted-group/types": super::soar::restricted_group::types,
            "soar:restricted-group/http": super::soar::restricted_group::http,
            "soar:restricted-group/log": super::soar::restricted_group::log,
            "soar:restricted-group/wait": super::soar::restricted_group::wait,
        },
    });
}

pub use members_world::exports::soar::restricted_group::members as wit_members;
pub use members_world::PluginMembersPre;

use exports::soar::restricted_group::actions as wit_actions;
pub use soar::restricted_group::http::{
    Host as HttpHost, HttpError, Method as HttpMethod, Purpose as HttpPurpose, Request as HttpRequest,
    Response as HttpResponse,
};
pub use soar::restricted_group::log::{Host as LogHost, Level as LogLevelWit};
use soar::restricted_group::types as t;
pub use soar::restricted_group::types::Host as TypesHost;
pub use soar::restricted_group::wait::Host as WaitHost;

pub fn settings_to_wit(settings: &model::Settings) -> t::Settings {
    t::Settings {
        providers: settings
            .providers
            .iter()
            .map(|p| t::Provider {
                name: p.name.clone(),
                base_url: p.base_url.clone(),
                restricted_group: p.restricted_group.clone(),
                restricted_group_id: p.restricted_group_id.clone(),
                profile: profile_variants! { map_variants!(p.profile, model::Profile => t::Profile;) },
                max_retries: p.max_retries,
            })
            .collect(),
        retry_after_cap_ms: settings.retry_after_cap_ms,
    }
}

fn user_to_wit(user: &model::UserRef) -> t::UserRef {
    match user {
        model::UserRef::Email(email) => t::UserRef::Email(email.clone()),
        model::UserRef::Id(id) => t::UserRef::Id(id.clone()),
        model::UserRef::External(external) => t::UserRef::External(external.clone()),
    }
}

pub fn request_to_wit(request: &model::MembershipRequest) -> t::MembershipRequest {
    t::MembershipRequest {
        settings: settings_to_wit(&request.settings),
        users: request.users.iter().map(user_to_wit).collect(),
        dry_run: request.dry_run,
        protected: request.protected.iter().map(user_to_wit).collect(),
    }
}

/// The plugin's result in the plain model: every string scrubbed of secrets and made printable
/// (servers supply ids, names and error texts).
pub fn result_from_wit(result: t::ActionResult, redactor: &Redactor) -> model::ActionResult {
    let text = |s: String| printable(&redactor.redact(&s)).into_owned();
    let optional = |s: Option<String>| s.map(text);
    let error = |e: t::Error| error_from_wit(e, redactor);
    model::ActionResult {
        status: status_variants! { map_variants!(result.status, t::Status => model::Status;) },
        providers: result
            .providers
            .into_iter()
            .map(|p| model::ProviderResult {
                idp: text(p.idp),
                group: p.group.map(|g| model::GroupRef { display_name: optional(g.display_name), id: optional(g.id) }),
                outcome: p.outcome.map(|t::ProviderOutcome::Connected| model::ProviderOutcome::Connected),
                error: p.error.map(error),
                users: p
                    .users
                    .into_iter()
                    .map(|u| model::UserResult {
                        user: text(u.user),
                        user_id: optional(u.user_id),
                        outcome: u.outcome.map(user_outcome_from_wit),
                        error: u.error.map(error),
                        membership_verified: u.membership_verified,
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub fn members_request_to_wit(request: &model::MembersRequest) -> wit_members::MembersRequest {
    wit_members::MembersRequest { settings: settings_to_wit(&request.settings), named: request.named.clone() }
}

/// The plugin's member lists in the plain model, scrubbed and made printable like any result.
pub fn members_from_wit(
    providers: Vec<wit_members::ProviderMembers>,
    redactor: &Redactor,
) -> Vec<model::ProviderMembers> {
    let text = |s: String| printable(&redactor.redact(&s)).into_owned();
    providers
        .into_iter()
        .map(|p| model::ProviderMembers {
            idp: text(p.idp),
            group: p.group.map(|g| model::GroupRef { display_name: g.display_name.map(text), id: g.id.map(text) }),
            error: p.error.map(|e| error_from_wit(e, redactor)),
            members: p
                .members
                .into_iter()
                .map(|m| model::Member { id: text(m.id), user_name: m.user_name.map(text) })
                .collect(),
            complete: p.complete,
        })
        .collect()
}

fn error_from_wit(e: t::Error, redactor: &Redactor) -> model::ActionError {
    let text = |s: String| printable(&redactor.redact(&s)).into_owned();
    model::ActionError {
        kind: error_kind_from_wit(e.kind),
        message: text(e.message),
        status: e.status,
        detail: e.detail.map(text),
        retry_after_ms: e.retry_after_ms,
        ids: e.ids.map(|ids| ids.into_iter().map(text).collect()),
    }
}

fn user_outcome_from_wit(outcome: t::UserOutcome) -> model::UserOutcome {
    user_outcome_variants! { map_variants!(outcome, t::UserOutcome => model::UserOutcome;) }
}

fn error_kind_from_wit(kind: t::ErrorKind) -> model::ErrorKind {
    error_kind_variants! { map_variants!(kind, t::ErrorKind => model::ErrorKind;) }
}

/// A JSON Schema string from the plugin; text that is not JSON is kept as a string.
fn schema(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

pub fn manifest_from_wit(manifest: wit_actions::Manifest) -> m::Manifest {
    m::Manifest {
        name: manifest.name,
        version: manifest.version,
        wit_version: manifest.wit_version,
        description: manifest.description,
        settings: manifest
            .settings
            .into_iter()
            .map(|f| m::SettingField {
                key: f.key,
                scope: f.scope,
                json_schema: schema(f.json_schema),
                required: f.required,
                description: f.description,
                example: f.example,
            })
            .collect(),
        credential: m::Credential {
            name: manifest.credential.name,
            description: manifest.credential.description,
            host_held: manifest.credential.host_held,
            config_keys: manifest.credential.config_keys,
        },
        actions: manifest
            .actions
            .into_iter()
            .map(|a| m::ActionInfo {
                name: a.name,
                kind: action_kind_variants! { map_variants!(a.kind, wit_actions::ActionKind => m::ActionKind;) },
                description: a.description,
                changes_state: a.changes_state,
                parameters: a
                    .parameters
                    .into_iter()
                    .map(|p| m::Parameter {
                        name: p.name,
                        description: p.description,
                        required: p.required,
                        json_schema: schema(p.json_schema),
                    })
                    .collect(),
                output_schema: schema(a.output_schema),
                undo: a.undo,
            })
            .collect(),
    }
}

/// A request and why it is sent (a 1.0 component's `send` says nothing: the default purpose).
pub fn request_from_wit(request: HttpRequest, purpose: Option<HttpPurpose>) -> plain::Request {
    let purpose = purpose
        .map(|HttpPurpose { doing, attempt, reason }| plain::Purpose { doing, attempt, reason })
        .unwrap_or_default();
    plain::Request {
        purpose,
        idp: request.idp,
        method: match request.method {
            HttpMethod::Get => plain::Method::Get,
            HttpMethod::Post => plain::Method::Post,
            HttpMethod::Put => plain::Method::Put,
            HttpMethod::Patch => plain::Method::Patch,
            HttpMethod::Delete => plain::Method::Delete,
        },
        url: request.url,
        headers: request.headers,
        body: request.body,
    }
}

pub fn response_to_wit(response: plain::Response) -> HttpResponse {
    HttpResponse { status: response.status, headers: response.headers, body: response.body }
}

pub fn http_error_to_wit(error: plain::HttpError) -> HttpError {
    match error {
        plain::HttpError::Denied(why) => HttpError::Denied(why),
        plain::HttpError::Timeout(why) => HttpError::Timeout(why),
        plain::HttpError::ConnectionFailed(why) => HttpError::ConnectionFailed(why),
        plain::HttpError::TlsFailed(why) => HttpError::TlsFailed(why),
        plain::HttpError::TooLarge(why) => HttpError::TooLarge(why),
    }
}

pub fn log_level_from_wit(level: LogLevelWit) -> plain::LogLevel {
    match level {
        LogLevelWit::Debug => plain::LogLevel::Debug,
        LogLevelWit::Info => plain::LogLevel::Info,
        LogLevelWit::Warn => plain::LogLevel::Warn,
        LogLevelWit::Error => plain::LogLevel::Error,
    }
}
