//! Running one action for a caller: check everything first (anything wrong refuses the call
//! before a request is sent), run the plugin, and build the JSON document and exit code that
//! the contract fixes.

use crate::audit::{AuditContext, AuditLog};
use crate::cache;
use crate::config::{self, Config, ConfigError, ProviderConfig};
use crate::egress::EgressPolicy;
use crate::endpoint;
use crate::group_lock::{GroupLocks, HeldLocks, LockFailure};
use crate::http_client::{HttpClient, HttpSettings, OriginRules};
use crate::runtime::{Call, LoadError, PluginFailure, PluginRuntime};
use crate::services::{InvocationContext, LogRecord, LogSink, Observer};
use serde_json::{json, Value};
use soar_types::host::LogLevel;
use soar_types::model::{
    ActionError, ActionResult, ErrorKind, GroupRef, MembershipRequest, Provider, ProviderResult, Settings, Status,
    UserRef, UserResult,
};
use soar_types::user_ref::parse_user_ref;
use soar_types::{Action, SCHEMA_VERSION};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One call, as a platform or the CLI asks for it.
#[derive(Clone, Debug)]
pub struct ActionRequest {
    pub action: Action,
    /// Users as written: `alice@corp.example`, `id:SCIM_ID`, `external:EXTERNAL_ID`.
    pub users: Vec<String>,
    pub idp: Option<String>,
    pub dry_run: bool,
    pub max_retries: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub correlation_id: Option<String>,
}

impl ActionRequest {
    pub fn new(action: Action) -> Self {
        ActionRequest {
            action,
            users: Vec::new(),
            idp: None,
            dry_run: false,
            max_retries: None,
            timeout_ms: None,
            correlation_id: None,
        }
    }
}

/// A call refused before anything was sent (exit 2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub kind: ErrorKind,
    pub message: String,
}

impl Refusal {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Refusal { kind, message: message.into() }
    }
}

impl From<ConfigError> for Refusal {
    fn from(error: ConfigError) -> Self {
        Refusal::new(ErrorKind::InvalidConfig, error.to_string())
    }
}

impl From<LoadError> for Refusal {
    fn from(error: LoadError) -> Self {
        Refusal::new(ErrorKind::PluginLoad, error.to_string())
    }
}

/// The printed document and the process exit code.
#[derive(Clone, Debug)]
pub struct Report {
    pub document: Value,
    pub exit_code: i32,
}

/// The exit-2 document: `{"schema_version":1,"action":..,"status":"error","error":{..}}`.
pub fn refusal_report(action: Option<&str>, refusal: &Refusal) -> Report {
    Report {
        document: json!({
            "schema_version": SCHEMA_VERSION,
            "action": action,
            "status": "error",
            "error": ActionError::new(refusal.kind, refusal.message.clone()),
        }),
        exit_code: 2,
    }
}

pub fn exit_code(status: Status) -> i32 {
    match status {
        Status::Success => 0,
        Status::Partial => 3,
        Status::Failed => 1,
    }
}

/// A loaded plugin and a checked config: what it takes to run actions.
pub struct ActionHost {
    runtime: Arc<PluginRuntime>,
    config: Config,
    http: Arc<HttpClient>,
    log: LogSink,
    /// One lock per tenant (normalised base URL, see [`tenant_key`]): changes to a tenant's
    /// restricted group from this process run one at a time, so that a membership check and the
    /// PATCH that follows are never interleaved with another invocation's (a server that stores
    /// duplicate members would otherwise get them).
    change_locks: Vec<(String, Mutex<()>)>,
    /// The same exclusion between processes, through lock files under the cache folder.
    group_locks: GroupLocks,
}

impl ActionHost {
    pub fn new(runtime: Arc<PluginRuntime>, config: Config, log: LogSink) -> Self {
        let http = Arc::new(HttpClient::new(HttpSettings {
            max_response_bytes: config.limits.max_response_bytes,
            connect_timeout: Duration::from_millis(config.limits.connect_timeout_ms),
            extra_roots: config.ca_certificates.clone(),
            rate_dir: cache::cache_dir(config.cache_dir.as_deref()).map(|dir| dir.join("rate")),
            rate_horizon: Duration::from_millis(config.retry_after_cap_ms).max(Duration::from_secs(1)),
            proxy: config.proxy.clone(),
            max_concurrent_requests: config.providers.iter().map(|p| p.max_concurrent_requests).max().unwrap_or(1),
            origins: config
                .providers
                .iter()
                .map(|p| OriginRules {
                    base: p.base_url.clone(),
                    allow_private_network: p.allow_private_network,
                    requests_per_second: p.requests_per_second,
                })
                .collect(),
        }));
        let mut tenants: Vec<String> = config.providers.iter().map(tenant_key).collect();
        tenants.sort();
        tenants.dedup();
        let change_locks = tenants.into_iter().map(|key| (key, Mutex::new(()))).collect();
        let lock_dir = cache::cache_dir(config.cache_dir.as_deref()).map(|dir| dir.join("locks"));
        for warning in config.warnings.iter().chain(runtime.warnings()) {
            log(&LogRecord { level: LogLevel::Warn, message: warning.clone() });
        }
        ActionHost { runtime, config, http, log, change_locks, group_locks: GroupLocks::new(lock_dir) }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// Runs one action and reports it; every refusal comes before the first request.
    pub fn run(&self, request: &ActionRequest) -> Report {
        self.run_watched(request, None)
    }

    /// [`Self::run`], with an observer told of every exchange and wait (a trace, a progress line).
    pub fn run_watched(&self, request: &ActionRequest, observer: Option<Arc<dyn Observer>>) -> Report {
        match self.prepare(request) {
            Ok((call, providers)) => self.execute(request, &call, &providers, observer),
            Err(refusal) => refusal_report(Some(request.action.as_str()), &refusal),
        }
    }

    fn prepare<'a>(&'a self, request: &ActionRequest) -> Result<(Call, Vec<&'a ProviderConfig>), Refusal> {
        let out_of_range = |why| Refusal::new(ErrorKind::InvalidInput, why);
        if let Some(problem) = request.correlation_id.as_deref().and_then(correlation_id_problem) {
            return Err(Refusal::new(ErrorKind::InvalidInput, format!("--correlation-id {problem}")));
        }
        if let Some(timeout_ms) = request.timeout_ms {
            config::DEADLINE_MS.check("--timeout-ms", timeout_ms).map_err(out_of_range)?;
        }
        if let Some(retries) = request.max_retries {
            config::MAX_RETRIES.check("--max-retries", retries.into()).map_err(out_of_range)?;
        }
        let providers = self
            .config
            .select(request.idp.as_deref())
            .map_err(|unknown| Refusal::new(ErrorKind::InvalidInput, unknown.to_string()))?;
        let settings = Settings {
            providers: providers
                .iter()
                .map(|p| Provider {
                    name: p.name.clone(),
                    base_url: p.base_url.to_string(),
                    restricted_group: p.restricted_group.clone(),
                    restricted_group_id: p.restricted_group_id.clone(),
                    profile: p.profile,
                    max_retries: request.max_retries.unwrap_or(p.max_retries),
                })
                .collect(),
            retry_after_cap_ms: self.config.retry_after_cap_ms,
        };
        let users = match request.action.takes_users() {
            true => parse_users(&request.users, self.config.max_users_per_action)?,
            false => Vec::new(),
        };
        let input = MembershipRequest {
            settings,
            users,
            dry_run: request.dry_run && request.action.takes_users(),
            protected: self.config.protected_users.clone(),
        };
        Ok((Call { action: request.action, request: input }, providers))
    }

    fn execute(
        &self,
        request: &ActionRequest,
        call: &Call,
        providers: &[&ProviderConfig],
        observer: Option<Arc<dyn Observer>>,
    ) -> Report {
        let changes = call.action.changes_state();
        let mut audit = match (&self.config.audit_log, changes) {
            (Some(path), true) => match AuditLog::open(path) {
                Ok(audit) => {
                    if audit.shared_with_others() {
                        let message = format!("audit_log {} can be read by other users: chmod 600 it", path.display());
                        (self.log)(&LogRecord { level: LogLevel::Warn, message });
                    }
                    Some(audit)
                }
                Err(why) => {
                    let refusal = Refusal::new(ErrorKind::InvalidConfig, why.to_string());
                    return refusal_report(Some(request.action.as_str()), &refusal);
                }
            },
            _ => None,
        };
        let mut limits = self.config.limits.clone();
        if let Some(timeout_ms) = request.timeout_ms {
            limits.deadline_ms = timeout_ms;
        }
        let proxy_credentials = self.config.proxy_secrets.iter().cloned();
        let mut context = InvocationContext {
            egress: Arc::new(
                EgressPolicy::for_providers(providers.iter().copied()).with_other_secrets(proxy_credentials),
            ),
            http: self.http.clone(),
            limits,
            log: self.log.clone(),
            observer,
        };
        let started = Instant::now();
        let dry_run = call.request.dry_run;
        let exclusive = changes && !dry_run;
        // Locks are taken in key order, so two actions never wait on each other in a cycle.
        let _changing: Vec<MutexGuard<()>> = if exclusive {
            self.change_locks
                .iter()
                .filter(|(key, _)| providers.iter().any(|p| &tenant_key(p) == key))
                .map(|(_, lock)| lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
                .collect()
        } else {
            Vec::new()
        };
        let across_processes = if exclusive {
            self.lock_groups_across_processes(providers, started, context.limits.deadline_ms)
        } else {
            Ok(HeldLocks::none())
        };
        let mut report = match across_processes {
            Ok(_held_until_reported) => {
                // Waiting for another change counts against this action's deadline.
                let waited_ms = started.elapsed().as_millis() as u64;
                context.limits.deadline_ms = context.limits.deadline_ms.saturating_sub(waited_ms).max(1);
                let invocation = self.runtime.invoke(call, &context);
                match invocation.result {
                    Ok(result) => result_report(request, dry_run, invocation.http_requests, &result),
                    Err(failure) => {
                        failure_report(request, dry_run, invocation.http_requests, &failure, providers, call)
                    }
                }
            }
            Err(failure) => failure_report(request, dry_run, 0, &failure, providers, call),
        };
        if let Some(audit) = audit.as_mut() {
            let audit_context = AuditContext {
                action: request.action.as_str(),
                correlation_id: request.correlation_id.as_deref(),
                dry_run,
            };
            if let Err(why) = audit.record(&audit_context, &report.document) {
                // The change is made; the playbook must learn that its record is not.
                (self.log)(&LogRecord { level: LogLevel::Error, message: why.to_string() });
                report.document["audit_error"] = Value::String(why.to_string());
                report.exit_code = report.exit_code.max(1);
            }
        }
        report
    }

    /// The cross-process locks of the providers' groups, waited for until the deadline. A lock
    /// folder that cannot be used costs only the exclusion between processes, with a warning.
    fn lock_groups_across_processes(
        &self,
        providers: &[&ProviderConfig],
        started: Instant,
        deadline_ms: u64,
    ) -> Result<HeldLocks, PluginFailure> {
        let keys = providers.iter().map(|p| GroupLocks::key(&tenant_key(p))).collect();
        match self.group_locks.acquire(keys, started + Duration::from_millis(deadline_ms)) {
            Ok(held) => Ok(held),
            Err(LockFailure::Unavailable(why)) => {
                let message = format!(
                    "the group lock folder cannot be used ({why}); changes from other soar-host processes are not kept apart: set cache_dir to a writable folder"
                );
                (self.log)(&LogRecord { level: LogLevel::Warn, message });
                Ok(HeldLocks::none())
            }
            Err(LockFailure::TimedOut) => Err(PluginFailure {
                kind: ErrorKind::Timeout,
                message: format!(
                    "another soar-host process kept changing this group for the whole deadline of {deadline_ms} ms; nothing was sent: run the action again, or give it a longer --timeout-ms"
                ),
            }),
        }
    }
}

/// The tenant a provider changes, however its base URL is written ([`endpoint::tenant`]). Every
/// spelling of the group (by name in any case, or by id) of one provider locks the same key: a
/// provider has one restricted group.
pub fn tenant_key(provider: &ProviderConfig) -> String {
    endpoint::tenant(&provider.base_url)
}

/// Why a correlation id (echoed in every log line) cannot be used, if it cannot.
pub fn correlation_id_problem(value: &str) -> Option<&'static str> {
    let usable = !value.is_empty() && !value.chars().any(char::is_control) && value.chars().count() <= 200;
    (!usable).then_some("must be one line of at most 200 characters")
}

/// Parses and checks every user; any invalid one refuses the whole call.
pub fn parse_users(users: &[String], max_users: u64) -> Result<Vec<UserRef>, Refusal> {
    if users.is_empty() {
        return Err(Refusal::new(
            ErrorKind::InvalidInput,
            "no users given: name at least one with --user USER or --users-file FILE",
        ));
    }
    if users.len() as u64 > max_users {
        return Err(Refusal::new(
            ErrorKind::InvalidInput,
            format!(
                "{} users in one call is more than max_users_per_action ({max_users}); split the call or raise the limit",
                users.len()
            ),
        ));
    }
    users
        .iter()
        .map(|user| {
            let parsed = parse_user_ref(user.trim()).map_err(|why| Refusal::new(ErrorKind::InvalidInput, why.0))?;
            if let UserRef::Id(id) = &parsed {
                if let Some(problem) = endpoint::id_problem(id) {
                    let message =
                        format!("{user}: the id {problem}; name the user by its SCIM id as the server gives it");
                    return Err(Refusal::new(ErrorKind::InvalidInput, message));
                }
            }
            Ok(parsed)
        })
        .collect()
}

fn result_report(request: &ActionRequest, dry_run: bool, http_requests: u32, result: &ActionResult) -> Report {
    let document = json!({
        "schema_version": SCHEMA_VERSION,
        "action": request.action.as_str(),
        "status": result.status,
        "dry_run": dry_run,
        "correlation_id": request.correlation_id,
        "http_requests": http_requests,
        "providers": result.providers,
    });
    Report { document, exit_code: exit_code(result.status) }
}

/// A plugin that failed (timeout, memory, panic, trap): every provider carries the failure.
fn failure_report(
    request: &ActionRequest,
    dry_run: bool,
    http_requests: u32,
    failure: &PluginFailure,
    providers: &[&ProviderConfig],
    call: &Call,
) -> Report {
    let error = ActionError::new(failure.kind, failure.message.clone());
    let users: Vec<UserResult> = call.request.users.iter().map(UserResult::pending).collect();
    let providers: Vec<ProviderResult> = providers
        .iter()
        .map(|p| ProviderResult {
            idp: p.name.clone(),
            group: Some(GroupRef { display_name: p.restricted_group.clone(), id: p.restricted_group_id.clone() }),
            outcome: None,
            error: Some(error.clone()),
            users: users.clone(),
        })
        .collect();
    let result = ActionResult { status: Status::Failed, providers };
    let mut report = result_report(request, dry_run, http_requests, &result);
    report.document["error"] = json!(error);
    report
}
